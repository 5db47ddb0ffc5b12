"""The loaded articles as an immutable snapshot: topics, selection, and the entries of each feed.

Pure core: no Flask, no feedgen. A Catalog never changes after it is built, so a request that
holds one sees one consistent set of articles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from operator import attrgetter
from threading import Lock
from typing import TypeVar

from slugify import slugify

from feedsvc.content.model import Article, Entry, Problem
from feedsvc.content.urls import shorten
from feedsvc.errors import TopicNotFound
from feedsvc.feeds.filters import one_per_story

T = TypeVar("T", Article, Entry)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Topic:
    """A topic as feeds name it: URL slug, display name, number of entries."""

    slug: str
    name: str
    count: int


@lru_cache(maxsize=65536)
def topic_slug(name: str) -> str:
    """The URL slug of a topic name ("Computer Vision" -> "computer-vision")."""
    return slugify(name)


@lru_cache(maxsize=65536)
def slugs_of(topics: tuple[str, ...]) -> tuple[str, ...]:
    """The distinct, non-empty slugs of a list of topic names (thousands of articles share one)."""
    return tuple(dict.fromkeys(slug for slug in map(topic_slug, topics) if slug))


def count_spellings(spellings: dict[str, Counter], topics: tuple[str, ...], step: int) -> None:
    """Add `step` uses (-1: take one away) of each of these topic names to the spelling counts."""
    for name in topics:
        slug = topic_slug(name)
        if slug:
            counter = spellings.get(slug)
            if counter is None:
                counter = spellings[slug] = Counter()
            counter[name] += step


def updated_spellings(
    old: dict[str, Counter], touched: set[str], gone: list[Article], added: list[Article]
) -> dict[str, Counter]:
    """The spelling counts after `gone` left and `added` came (old counters are never changed)."""
    spellings = dict(old)
    for slug in touched:
        if slug in spellings:
            spellings[slug] = spellings[slug].copy()
    for article, step in [(a, -1) for a in gone] + [(a, 1) for a in added]:
        count_spellings(spellings, article.topics, step)
    for slug in touched:
        counter = spellings.get(slug)
        if counter is not None:
            spellings[slug] = +counter  # drop spellings counted down to zero
            if not spellings[slug]:
                del spellings[slug]
    return spellings


def names_of(spellings: dict[str, Counter]) -> dict[str, str]:
    """Slug -> display name: spellings that slug alike are one topic, the commonest names it."""
    return {slug: min(c, key=lambda n: (-c[n], n)) for slug, c in sorted(spellings.items())}


def moved_forward(
    previous: datetime, gone: list[Article], added: list[Article], modified_ns: Callable[[str], int] | None
) -> datetime:
    """Last-Modified after the articles `gone` left and `added` came (both of one view): the
    newest mtime of an added article's file, never backwards, and forward to now when something
    changed but no mtime moved past the last value (a removed or unpublished article, cp -p): a
    client's If-Modified-Since must never hide a change (RFC 9110 13.1.3)."""
    if not gone and not added:
        return previous
    return moved_on(previous, max(map(modified_ns, (a.path for a in added)), default=0) if modified_ns else 0)


def moved_on(previous: datetime, newest_mtime_ns: int) -> datetime:
    """Last-Modified after a change: the newest mtime when it is later than `previous`, else now
    (a removed file, cp -p, rsync -t): a client's If-Modified-Since must never hide a change."""
    modified = datetime.fromtimestamp(newest_mtime_ns // 1_000_000_000, tz=timezone.utc)
    if modified <= previous:
        modified = datetime.now(timezone.utc).replace(microsecond=0)
    return max(modified, previous)


def newest_first(items: Iterable[T], *ties: str) -> list[T]:
    """`items` newest first, equal dates by URL, then by the attributes `ties` names, so every
    order is deterministic. Stable sorts from the last key to the first, each on one attribute
    (attrgetter runs in C): a tenth of the time of a Python key function per item."""
    ordered = list(items)
    for name in reversed(("url", *ties)):
        ordered.sort(key=attrgetter(name))
    ordered.sort(key=attrgetter("published"), reverse=True)  # reverse=True keeps ties in order
    return ordered


def build_entries(articles: list[Article]) -> tuple[Entry, ...]:
    """One entry per URL: articles first, then each related link under its newest article."""
    ordered = newest_first(articles, "path")
    entries: dict[str, Entry] = {}
    for article in ordered:
        if article.url not in entries:
            entries[article.url] = Entry.from_article(article)
    for article in ordered:
        for link in article.related:
            if link.url not in entries:  # most related links are shared: build each entry once
                entries[link.url] = Entry.from_related(link, article)
    return tuple(newest_first(entries.values()))


def duplicate_url_warnings(articles: tuple[Article, ...]) -> list[Problem]:
    """Warn about files that share a webUrl: only the newest (then first by path) is served."""
    first: dict[str, Article] = {}
    shared: dict[str, list[Article]] = {}
    for article in articles:
        seen = first.setdefault(article.url, article)
        if seen is not article:
            shared.setdefault(article.url, [seen]).append(article)
    problems = []
    for same in shared.values():
        winner, *losers = newest_first(same, "path")
        problems.extend(
            Problem(
                a.path,
                f"webUrl {a.url} is also the webUrl of {winner.path}: one entry is served, from the newest selected file",
                "warning",
            )
            for a in losers
        )
    return problems


class Catalog:
    """An immutable snapshot of the loaded articles, with per-feed entry lists computed once."""

    def __init__(
        self,
        articles: tuple[Article, ...],
        problems: tuple[Problem, ...] = (),
        stale: tuple[str, ...] = (),
        last_modified: datetime = EPOCH,
    ) -> None:
        self.articles = tuple(sorted(articles, key=attrgetter("path")))
        self.file_problems = tuple(problems)  # what loading the files found
        self.stale = stale  # files whose last good version is served while their current one is broken
        self.last_modified = last_modified  # of every file: what include=all responses carry
        # What public responses carry: inherit() moves it only when published articles change, so
        # drafts never move it. A first catalog has no history to tell a draft's edit from an
        # unpublishing one, so it starts from every file's (a restart may move it on, never back).
        self.public_last_modified = last_modified
        self._entries: dict[tuple[str | None, bool, bool], tuple[Entry, ...]] = {}
        self._lock = Lock()

    @cached_property
    def problems(self) -> tuple[Problem, ...]:
        """Every problem: the files' own, then webUrls shared by several files (computed when
        first asked for: a reload does not wait for it)."""
        return self.file_problems + tuple(duplicate_url_warnings(self.articles))

    @cached_property
    def by_topic(self) -> dict[str, tuple[Article, ...]]:
        """Topic slug -> its articles, in path order (one pass, instead of one per feed)."""
        # Articles grouped by their list of topics first (most share one): one slug lookup per
        # group, then each topic's groups merged back into path order.
        groups: dict[tuple[str, ...], list[Article]] = {}
        for article in self.articles:
            groups.setdefault(article.topics, []).append(article)
        found: dict[str, list[Article]] = {}
        for topics, articles in groups.items():
            for slug in slugs_of(topics):
                found.setdefault(slug, []).extend(articles)
        by_path = attrgetter("path")
        return {slug: tuple(sorted(articles, key=by_path)) for slug, articles in found.items()}

    @cached_property
    def spellings(self) -> dict[str, Counter]:
        """Topic slug -> how often each spelling of its name is used."""
        spellings: dict[str, Counter] = {}
        for topics, uses in Counter(map(attrgetter("topics"), self.articles)).items():
            count_spellings(spellings, topics, uses)
        return spellings

    @cached_property
    def public_spellings(self) -> dict[str, Counter]:
        """Topic slug -> how often each spelling is used by published articles (drafts name nothing in public)."""
        spellings: dict[str, Counter] = {}
        for topics, uses in Counter(a.topics for a in self.articles if a.is_published).items():
            count_spellings(spellings, topics, uses)
        return spellings

    @cached_property
    def topic_names(self) -> dict[str, str]:
        """Slug -> display name over every article (include=all); the commonest spelling names a topic."""
        return names_of(self.spellings)

    @cached_property
    def public_topic_names(self) -> dict[str, str]:
        """Slug -> display name over the published articles: what public responses call a topic."""
        return names_of(self.public_spellings)

    def topic_names_for(self, include_all: bool) -> dict[str, str]:
        """The topic names of one view: every article's, or the published ones'."""
        return self.topic_names if include_all else self.public_topic_names

    def last_modified_for(self, include_all: bool) -> datetime:
        """Last-Modified of one view's responses: every file's, or the published articles'."""
        return self.last_modified if include_all else self.public_last_modified

    def inherit(self, previous: Catalog, changed: int = 1000, modified_ns: Callable[[str], int] | None = None) -> None:
        """Take over what `previous` computed that the articles changed since do not touch: its
        topic index and the entries of untouched topics. A reload of one edited file then costs
        one topic's worth of work, not the whole folder's (when over `changed` articles differ,
        computing afresh is as cheap). Move the public Last-Modified on from `previous`'s when
        published articles changed, to the newest mtime (`modified_ns(path)`) of those added."""
        # Unchanged files keep their Article objects (loader.refresh), so identity tells what changed.
        before = dict(zip(map(id, previous.articles), previous.articles))
        after = dict(zip(map(id, self.articles), self.articles))
        gone = [before[key] for key in before.keys() - after.keys()]
        added = [after[key] for key in after.keys() - before.keys()]
        public_gone = [a for a in gone if a.is_published]
        public_added = [a for a in added if a.is_published]
        self.public_last_modified = moved_forward(previous.public_last_modified, public_gone, public_added, modified_ns)
        if len(gone) + len(added) > changed:
            return
        touched = {slug for article in gone + added for slug in slugs_of(article.topics)}
        if "by_topic" in previous.__dict__:
            topics = dict(previous.by_topic)
            for slug in touched:
                topics[slug] = self.articles_of(slug, previous, gone, added)
                if not topics[slug]:
                    del topics[slug]
            self.by_topic = topics
        if "spellings" in previous.__dict__:
            self.spellings = updated_spellings(previous.spellings, touched, gone, added)
        if "public_spellings" in previous.__dict__:
            public_touched = {slug for article in public_gone + public_added for slug in slugs_of(article.topics)}
            self.public_spellings = updated_spellings(
                previous.public_spellings, public_touched, public_gone, public_added
            )
        with previous._lock:  # requests may still be adding entries to the previous catalog
            computed = dict(previous._entries)
        self._entries = {key: value for key, value in computed.items() if key[0] is not None and key[0] not in touched}

    @staticmethod
    def articles_of(slug: str, previous: Catalog, gone: list[Article], added: list[Article]) -> tuple[Article, ...]:
        """The articles of one topic after a change: the old ones still here, and the new ones."""
        removed = {id(a) for a in gone}
        kept = [a for a in previous.by_topic.get(slug, ()) if id(a) not in removed]
        return tuple(sorted(kept + [a for a in added if slug in slugs_of(a.topics)], key=attrgetter("path")))

    def selected(self, include_all: bool) -> list[Article]:
        """The published articles, or every article when `include_all`."""
        return [a for a in self.articles if include_all or a.is_published]

    def entries(self, slug: str | None, include_all: bool, dedupe: bool = False) -> tuple[Entry, ...]:
        """The entries of one topic's feed (or of every topic when slug is None), newest first;
        with `dedupe`, one per story (filters.one_per_story)."""
        key = (slug, include_all, dedupe)
        if key not in self._entries:
            if dedupe:
                stories = one_per_story(self.entries(slug, include_all))
                with self._lock:
                    self._entries[key] = stories
                return stories
            candidates = self.articles if slug is None else self.by_topic.get(slug, ())
            articles = [a for a in candidates if include_all or a.is_published]
            if slug is not None and not articles:
                raise TopicNotFound(f"no topic {shorten(slug, 60)}: see / for the list of topics")
            with self._lock:
                self._entries[key] = build_entries(articles)
        return self._entries[key]

    def warm(self) -> None:
        """Compute now what public requests will ask for: every public feed's entries, the topic
        names and the problems. Before a fork, so that forked workers share them (see
        feedsvc.server.worker_loader) instead of each building its own copy."""
        self.topics(include_all=False)  # every topic's public entries, and the public names
        self.entries(None, include_all=False)
        _ = self.problems

    def topics(self, include_all: bool) -> list[Topic]:
        """Every topic with selected articles, by name (as the view names it), with its entry count."""
        found = []
        for slug, name in self.topic_names_for(include_all).items():
            try:
                found.append(Topic(slug, name, len(self.entries(slug, include_all))))
            except TopicNotFound:
                continue
        return sorted(found, key=lambda t: (t.name.lower(), t.slug))

    @property
    def skipped(self) -> tuple[Problem, ...]:
        """The files that are not served, with their reasons."""
        return tuple(p for p in self.file_problems if p.severity == "error" and p.path not in self.stale)
