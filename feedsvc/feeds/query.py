"""A request's query flags, validated: which articles (include, the preview token, RSSHub's
filter parameters, dedupe), how many entries (limit) and which page (a path segment, /page/N/;
`?page=N` only to redirect there). Request-free: plain values in, a Query or QueryError out."""

from __future__ import annotations

import hmac
import re
import sys
from dataclasses import dataclass, field
from urllib.parse import urlencode

from feedsvc.content.urls import shorten
from feedsvc.errors import AccessDenied, PageNotFound, QueryError
from feedsvc.feeds.filters import DROP_NAMES, KEEP_NAMES, NO_FILTERS, Filters, compile_pattern

INCLUDE_VALUES = ("published", "all")
DEDUPE_VALUES = {"title": True, "none": False}
BOOLEAN_VALUES = {"true": True, "false": False}
MAX_FILTER_TIME = 100 * 365 * 24 * 3600  # seconds: larger ages are clamped (a timedelta has bounds)
# A page number in a path is written one way only (no sign, no leading zero), so each page has
# one URL: a static host cannot map /page/02/ to /page/2/, so the server does not either.
_PAGE_SEGMENT = re.compile(r"[1-9][0-9]{0,17}")  # at most 18 digits: a page no feed reaches, below 2**63


@dataclass(frozen=True)
class Query:
    """The query flags that shape a feed: which articles, how many entries, which page."""

    include_all: bool = False
    limit: int = 50
    page: int = 1
    token: str | None = field(default=None, repr=False)  # the preview token this request proved
    filters: Filters = NO_FILTERS
    dedupe: bool = False  # one entry per story (same title after normalising)

    def canonical(self, default_limit: int, default_dedupe: bool = False) -> str:
        """The flags that differ from the defaults, in a fixed order ("" when none); the page is
        not one of them: it is in the path (Site.feed_path), so a static host can serve it.

        A preview token goes only into the links of the response to the request that sent it,
        so that reader's next poll and next page keep working.
        """
        pairs = [("include", "all")] if self.include_all else []
        if self.token:
            pairs.append(("token", self.token))
        if self.limit != default_limit:
            pairs.append(("limit", str(self.limit)))
        if self.dedupe != default_dedupe:
            pairs.append(("dedupe", "title" if self.dedupe else "none"))
        pairs += self.filters.pairs()
        return "?" + urlencode(pairs) if pairs else ""


def single(args: dict[str, list[str]], name: str) -> str | None:
    """The one value of a flag; given twice it is ambiguous, so an error."""
    values = args.get(name, [])
    if len(values) > 1:
        raise QueryError(f"{name} is given {len(values)} times: give it once")
    return values[0] if values else None


def whole_number(args: dict[str, list[str]], name: str, default: int, maximum: int | None = None) -> int:
    """A flag that must be a whole number >= 1 in ASCII digits; clamped to `maximum`."""
    raw = single(args, name)
    if raw is None:
        return min(default, maximum) if maximum else default
    try:
        number = int(raw) if raw.isascii() and raw.isdigit() else 0
    except ValueError:  # more digits than Python converts (sys.int_info.default_max_str_digits): huge
        number = sys.maxsize
    if number < 1:
        bound = f"from 1 to {maximum}" if maximum else "of 1 or more"
        raise QueryError(f"{name} must be a whole number {bound}, not {shorten(raw, 40)}")
    return min(number, maximum) if maximum else number


def parse_query(
    args: dict[str, list[str]],
    default_limit: int,
    max_limit: int,
    preview_token: str | None = None,
    default_dedupe: bool = False,
) -> Query:
    """Validate `include`, `limit`, `page` (and `token` for previews), `dedupe` and the filters;
    other parameters are ignored."""
    include = single(args, "include")
    if include is not None and include not in INCLUDE_VALUES:
        raise QueryError(f"include must be 'published' or 'all', not {shorten(include, 40)}")
    include_all = include == "all"
    token = check_preview_token(single(args, "token"), preview_token) if include_all else None
    limit = whole_number(args, "limit", default_limit, max_limit)
    dedupe = choice(args, "dedupe", DEDUPE_VALUES, default_dedupe)
    return Query(include_all, limit, whole_number(args, "page", 1), token, parse_filters(args), dedupe)


def choice(args: dict[str, list[str]], name: str, values: dict[str, bool], default: bool) -> bool:
    """A flag that takes one of a few words."""
    raw = single(args, name)
    if raw is None:
        return default
    if raw not in values:
        raise QueryError(f"{name} must be {' or '.join(map(repr, values))}, not {shorten(raw, 40)}")
    return values[raw]


def parse_filters(args: dict[str, list[str]]) -> Filters:
    """RSSHub's filter parameters: each pattern an RE2 regular expression (checked here, so a bad
    one is a 400), filter_time a whole number of seconds, filter_case_sensitive true or false
    (default false). An empty value counts as not given, as in RSSHub."""
    case_sensitive = choice(args, "filter_case_sensitive", BOOLEAN_VALUES, False)
    patterns = {name: single(args, name) for name in KEEP_NAMES + DROP_NAMES}
    given = {name: pattern for name, pattern in patterns.items() if pattern}
    for name, pattern in given.items():
        compile_pattern(name, pattern, case_sensitive)
    max_age = whole_number(args, "filter_time", 0, MAX_FILTER_TIME) if single(args, "filter_time") else None
    return Filters(
        keep=tuple((n, p) for n, p in given.items() if n in KEEP_NAMES),
        drop=tuple((n, p) for n, p in given.items() if n in DROP_NAMES),
        case_sensitive=case_sensitive,
        max_age=max_age,
    )


def path_page(segment: str) -> int:
    """The page number a /page/N/ path segment names; any other spelling is no page (404)."""
    if not _PAGE_SEGMENT.fullmatch(segment):
        raise PageNotFound(
            f"no page {shorten(segment, 40)}: a page is /page/N/ with N from 2 up, no leading zero (page 1 has no /page/)"
        )
    return int(segment)


def check_preview_token(given: str | None, expected: str | None) -> str | None:
    """With PREVIEW_TOKEN set, include=all needs token=<it>; compared in constant time (no timing leak)."""
    if not expected:
        return None
    if given is None or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise AccessDenied("include=all is a private preview: add token=<the preview token> to the URL")
    return given
