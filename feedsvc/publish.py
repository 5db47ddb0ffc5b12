"""From a request's words to feed bytes: query flags, the site's URLs, feed metadata, paging.

Request-free (no Flask): the web layer passes plain values in and gets bytes and errors out.
"""

from __future__ import annotations

import hmac
import re
import sys
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from . import digest, feeds, jsonfeed
from .catalog import Catalog
from .errors import AccessDenied, BadHost, PageNotFound, QueryError
from .model import Entry
from .render import Rendered, RenderCache
from .urls import shorten

FORMATS = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}  # the feeds
FILE_NAMES = {**FORMATS, "digest-html": "digest.html", "digest-txt": "digest.txt"}  # every document of a topic
MEDIA_TYPES = {**feeds.MEDIA_TYPES, "json": jsonfeed.MEDIA_TYPE, **digest.MEDIA_TYPES}
INCLUDE_VALUES = ("published", "all")


@dataclass(frozen=True)
class Query:
    """The query flags that shape a feed: which articles, how many entries, which page."""

    include_all: bool = False
    limit: int = 50
    page: int = 1
    token: str | None = field(default=None, repr=False)  # the preview token this request proved

    def canonical(self, default_limit: int) -> str:
        """The flags that differ from the defaults, in a fixed order ("" when none).

        A preview token goes only into the links of the response to the request that sent it,
        so that reader's next poll and next page keep working.
        """
        pairs = [("include", "all")] if self.include_all else []
        if self.token:
            pairs.append(("token", self.token))
        if self.limit != default_limit:
            pairs.append(("limit", str(self.limit)))
        if self.page != 1:
            pairs.append(("page", str(self.page)))
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
    args: dict[str, list[str]], default_limit: int, max_limit: int, preview_token: str | None = None
) -> Query:
    """Validate `include`, `limit`, `page` (and `token` for previews); other parameters are ignored."""
    include = single(args, "include")
    if include is not None and include not in INCLUDE_VALUES:
        raise QueryError(f"include must be 'published' or 'all', not {shorten(include, 40)}")
    include_all = include == "all"
    token = check_preview_token(single(args, "token"), preview_token) if include_all else None
    limit = whole_number(args, "limit", default_limit, max_limit)
    return Query(include_all=include_all, limit=limit, page=whole_number(args, "page", 1), token=token)


def check_preview_token(given: str | None, expected: str | None) -> str | None:
    """With PREVIEW_TOKEN set, include=all needs token=<it>; compared in constant time (no timing leak)."""
    if not expected:
        return None
    if given is None or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise AccessDenied("include=all is a private preview: add token=<the preview token> to the URL")
    return given


# RFC 9110 section 7.2: Host = uri-host [":" port] (RFC 3986 sections 3.2.2, 3.2.3). Every link is
# built on it, so only a DNS name, an IPv4 address or a bracketed IPv6 literal is taken, with a
# port of digits: no path, user info, space or empty value.
_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?)(?::([0-9]{1,5}))?")
DEFAULT_PORTS = {"http": "80", "https": "443"}


def request_base_url(scheme: str, host: str | None) -> str:
    """The base URL a request names in its Host header, normalised (RFC 3986 section 6.2: the
    host lower-cased, the scheme's default port left out); raise BadHost when it sent none (HTTP
    1.0 may not) or one that is not host[:port]."""
    match = _HOST_HEADER.fullmatch(host.strip(" \t").lower()) if host and scheme in DEFAULT_PORTS else None
    port = match.group(2) if match else None
    if match is None or (port is not None and not 0 < int(port) < 65536):
        raise BadHost("no valid Host header: send Host (host[:port]) or set BASE_URL (FEEDSVC_BASE_URL)")
    return f"{scheme}://{match.group(1)}{'' if port in (None, DEFAULT_PORTS[scheme]) else ':' + port}/"


@dataclass(frozen=True)
class Site:
    """Where the service lives and what it calls itself; every URL it makes is absolute."""

    base_url: str
    title: str = "feedsvc"
    author: str = "feedsvc"
    default_limit: int = 50
    max_age: int = 300
    hub: str | None = None
    paging: bool = True

    def url(self, path: str) -> str:
        """An absolute URL for a path of this site."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def feed_path(self, slug: str | None, fmt: str) -> str:
        """The path of a feed (or digest): one topic's, or every topic's when slug is None."""
        name = FILE_NAMES[fmt]
        return f"/topics/{slug}/{name}" if slug else f"/{name}"

    def feed_url(self, slug: str | None, fmt: str, query: Query | None = None) -> str:
        """The absolute URL of a feed, with its non-default flags."""
        flags = query.canonical(self.default_limit) if query else ""
        return self.url(self.feed_path(slug, fmt)) + flags

    def page_links(self, slug: str | None, fmt: str, query: Query, pages: int) -> dict[str, str]:
        """RFC 5005 section 3 paging links: first, last, and previous/next where they exist."""
        links = {"first": 1, "last": pages}
        if query.page > 1:
            links["previous"] = query.page - 1
        if query.page < pages:
            links["next"] = query.page + 1
        return {rel: self.feed_url(slug, fmt, replace(query, page=page)) for rel, page in links.items()}

    def feed_info(self, name: str, slug: str | None, fmt: str, query: Query, pages: int) -> feeds.FeedInfo:
        """The feed-level fields of one feed."""
        others = {MEDIA_TYPES[f]: self.feed_url(slug, f, query) for f in FORMATS if f != fmt}
        return feeds.FeedInfo(
            # The id names the feed, not a window on it: limit and page change nothing in it (RFC 4287 4.2.6).
            feed_id=self.feed_url(slug, "atom", Query(query.include_all, self.default_limit)),  # no token
            title=f"{self.title}: {name}",
            subtitle=f"News about {name}, with related coverage" if slug else "News on every topic",
            self_url=self.feed_url(slug, fmt, query),
            html_url=self.url("/") + (f"#{slug}" if slug else ""),
            author=self.author,
            alternates=others,
            links=(self.page_links(slug, fmt, query, pages) if self.paging else {}) | ({"hub": self.hub} if self.hub else {}),
            ttl_minutes=self.max_age // 60 or None,  # RSS <ttl> counts minutes: none for under one
        )


def page_count(total: int, limit: int) -> int:
    """How many pages `total` entries fill; an empty feed still has its first page."""
    return max(1, -(-total // limit))


def feed_entries(catalog: Catalog, slug: str | None, query: Query) -> tuple[tuple[Entry, ...], int]:
    """The entries of the requested page, and the number of pages; raise past the last page."""
    entries = catalog.entries(slug, query.include_all)
    pages = page_count(len(entries), query.limit)
    if query.page > pages:
        raise PageNotFound(f"page {query.page} does not exist: this feed has {pages} page(s)")
    start = (query.page - 1) * query.limit
    return entries[start : start + query.limit], pages


def render_body(fmt: str, info: feeds.FeedInfo, entries: tuple[Entry, ...]) -> bytes:
    """Bytes of one feed in `fmt`."""
    if fmt == "json":
        return jsonfeed.render(info, entries)
    if fmt in digest.MEDIA_TYPES:
        return digest.render(fmt, info, entries)
    return feeds.render(fmt, info, entries)


def render_feed(catalog: Catalog, site: Site, slug: str | None, fmt: str, query: Query) -> bytes:
    """One feed's bytes, uncached; raises TopicNotFound for an unknown topic."""
    name = catalog.topic_names_for(query.include_all).get(slug, "All topics")
    entries, pages = feed_entries(catalog, slug, query)
    return render_body(fmt, site.feed_info(name, slug, fmt, query, pages), entries)


def cached_feed(cache: RenderCache, catalog: Catalog, site: Site, slug: str | None, fmt: str, query: Query) -> Rendered:
    """One feed's rendered body, made again only when its entries (or name) changed."""
    name = catalog.topic_names_for(query.include_all).get(slug, "All topics")
    entries, pages = feed_entries(catalog, slug, query)
    key = (site, slug, fmt, query)
    source = (name, pages, entries)
    return cache.get(key, catalog, source, lambda: render_body(fmt, site.feed_info(name, slug, fmt, query, pages), entries))
