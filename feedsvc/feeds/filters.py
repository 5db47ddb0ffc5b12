"""Subscriber filters (RSSHub's parameter names) and one-entry-per-story, over a feed's entries.

Pure: entries in, entries out. Every pattern a subscriber sends runs on RE2 (google-re2), whose
matching time is linear in the text and whose memory is capped (re2.Options.max_mem): a pattern
cannot backtrack for ever or grow without bound, as one can on Python's `re`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

import re2

from feedsvc.content.model import Entry
from feedsvc.content.urls import shorten
from feedsvc.errors import QueryError

# RSSHub's names (lib/middleware/parameter.ts), each with the fields of an entry it looks at.
KEEP_NAMES = ("filter", "filter_title", "filter_description", "filter_author", "filter_category")
DROP_NAMES = ("filterout", "filterout_title", "filterout_description", "filterout_author", "filterout_category")
MAX_PATTERN_CHARS = 200
# What one compiled pattern may use, its lazily built DFA included (RE2 falls back to its NFA,
# still linear, when the DFA would need more): the default is 8 MiB.
MAX_PATTERN_MEMORY = 1 << 20


@dataclass(frozen=True)
class Filters:
    """A request's filters: patterns by parameter name (only those given), case, maximum age."""

    keep: tuple[tuple[str, str], ...] = ()  # (name in KEEP_NAMES, pattern), in KEEP_NAMES order
    drop: tuple[tuple[str, str], ...] = ()  # (name in DROP_NAMES, pattern), in DROP_NAMES order
    case_sensitive: bool = False
    max_age: int | None = None  # filter_time: seconds

    def __bool__(self) -> bool:
        return bool(self.keep or self.drop or self.max_age is not None)

    def pairs(self) -> list[tuple[str, str]]:
        """The query parameters that give these filters, in a fixed order (the canonical URL's)."""
        pairs = [*self.keep, *self.drop]
        if self.max_age is not None:
            pairs.append(("filter_time", str(self.max_age)))
        if pairs and self.case_sensitive:
            pairs.append(("filter_case_sensitive", "true"))
        return pairs


NO_FILTERS = Filters()


@lru_cache(maxsize=256)  # checked when the query is parsed, used when the feed is rendered: compiled once
def compile_pattern(name: str, pattern: str, case_sensitive: bool) -> re2._Regexp:
    """The RE2 program of one pattern; QueryError when it is too long, invalid or too large."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise QueryError(f"{name} is {len(pattern)} characters long: give at most {MAX_PATTERN_CHARS}")
    options = re2.Options()
    options.max_mem = MAX_PATTERN_MEMORY
    options.case_sensitive = case_sensitive
    options.log_errors = False  # a subscriber's typo is a 400, not a line in the server's log
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0].decode("utf-8", "replace") if error.args and isinstance(error.args[0], bytes) else error
        raise QueryError(
            f"{name} is not an RE2 regular expression ({shorten(str(reason), 80)}): RE2 has no look-around or back-references"
        ) from None


def description(entry: Entry) -> str:
    """What RSSHub's filter_description reads: the excerpt, or the title when there is none."""
    return entry.excerpt or entry.title


def author(entry: Entry) -> str:
    """What filter_author reads: the provider's name."""
    return entry.provider.name if entry.provider else ""


def field_test(name: str, regex: re2._Regexp) -> Callable[[Entry], bool]:
    """Whether the fields parameter `name` looks at match `regex` (anywhere in them, as RSSHub's)."""
    search = regex.search
    kind = name.partition("_")[2]
    if kind == "title":
        return lambda e: search(e.title) is not None
    if kind == "description":
        return lambda e: search(description(e)) is not None
    if kind == "author":
        return lambda e: search(author(e)) is not None
    if kind == "category":
        return lambda e: any(search(c) is not None for c in e.categories)
    return lambda e: search(e.title) is not None or search(description(e)) is not None  # filter, filterout


def apply(entries: Sequence[Entry], filters: Filters, anchor: datetime) -> tuple[Entry, ...]:
    """The entries every keep-pattern matches, no drop-pattern matches, and published at most
    `filters.max_age` seconds before `anchor` (the feed's Last-Modified, not the clock, so that
    the same catalog always gives the same entries, bytes and ETag)."""
    keep = [field_test(n, compile_pattern(n, p, filters.case_sensitive)) for n, p in filters.keep]
    drop = [field_test(n, compile_pattern(n, p, filters.case_sensitive)) for n, p in filters.drop]
    oldest = anchor - timedelta(seconds=filters.max_age) if filters.max_age is not None else None
    return tuple(
        e
        for e in entries
        if (oldest is None or e.published >= oldest)
        and all(test(e) for test in keep)
        and not any(test(e) for test in drop)
    )


def title_key(title: str) -> str:
    """A title as one story's copies share it: NFKC, case folded, without punctuation, one space
    between words ("Market Size – Worth $5 Billion!" and "market size worth $5 billion",
    "with A.I." and "with AI")."""
    text = unicodedata.normalize("NFKC", title).casefold()
    return " ".join("".join(map(_unpunctuated, text)).split())


def _unpunctuated(char: str) -> str:
    """A dash or slash parts words ("AI–driven", "size/share"): a space; other punctuation joins
    them ("A.I.", "it’s"): nothing; any other character is itself."""
    category = unicodedata.category(char)
    if category == "Pd" or char == "/":
        return " "
    return "" if category.startswith("P") else char


def one_per_story(entries: Sequence[Entry]) -> tuple[Entry, ...]:
    """Entries whose titles are the same story (title_key) collapsed into the earliest copy
    (then first by URL), which keeps its place and id and lists the others in `copies`, oldest
    first: a copy that arrives later never changes the id a reader has already seen."""
    stories: dict[str, list[Entry]] = {}
    for entry in entries:
        key = title_key(entry.title)
        if key:
            stories.setdefault(key, []).append(entry)
    first: dict[str, Entry] = {}  # URL of each story's earliest copy -> that entry with its copies
    skipped: set[str] = set()
    for copies in stories.values():
        if len(copies) > 1:
            earliest, *later = sorted(copies, key=lambda e: (e.published, e.url))
            first[earliest.url] = replace(earliest, copies=tuple(later))
            skipped.update(e.url for e in later)
    if not first:
        return tuple(entries)
    return tuple(first.get(e.url, e) for e in entries if e.url not in skipped)
