"""From a request's words to feed bytes: query flags, the site's URLs, feed metadata.

Request-free (no Flask): the web layer passes plain values in and gets bytes and errors out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from . import feeds
from .catalog import Catalog
from .errors import QueryError
from .model import Entry

FORMATS = {"rss": "rss.xml", "atom": "atom.xml"}
INCLUDE_VALUES = ("published", "all")


@dataclass(frozen=True)
class Query:
    """The query flags that shape a feed: which articles, how many entries."""

    include_all: bool = False
    limit: int = 50

    def canonical(self, default_limit: int) -> str:
        """The flags that differ from the defaults, in a fixed order ("" when none)."""
        pairs = [("include", "all")] if self.include_all else []
        if self.limit != default_limit:
            pairs.append(("limit", str(self.limit)))
        return "?" + urlencode(pairs) if pairs else ""


def single(args: dict[str, list[str]], name: str) -> str | None:
    """The one value of a flag; given twice it is ambiguous, so an error."""
    values = args.get(name, [])
    if len(values) > 1:
        raise QueryError(f"{name} is given {len(values)} times: give it once")
    return values[0] if values else None


def parse_query(args: dict[str, list[str]], default_limit: int, max_limit: int) -> Query:
    """Validate `include` and `limit`; other parameters (cache busters) are ignored."""
    include = single(args, "include")
    if include is not None and include not in INCLUDE_VALUES:
        raise QueryError(f"include must be 'published' or 'all', not {include[:40]!r}")
    raw_limit = single(args, "limit")
    limit = default_limit
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit() or int(raw_limit[:12]) < 1:
            raise QueryError(f"limit must be a whole number from 1 to {max_limit}, not {raw_limit[:40]!r}")
        limit = min(int(raw_limit[:12]), max_limit)
    return Query(include_all=include == "all", limit=limit)


@dataclass(frozen=True)
class Site:
    """Where the service lives and what it calls itself; every URL it makes is absolute."""

    base_url: str
    title: str = "feedsvc"
    author: str = "feedsvc"
    default_limit: int = 50

    def url(self, path: str) -> str:
        """An absolute URL for a path of this site."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def feed_path(self, slug: str | None, fmt: str) -> str:
        """The path of a feed: one topic's, or every topic's when slug is None."""
        name = FORMATS[fmt]
        return f"/topics/{slug}/{name}" if slug else f"/{name}"

    def feed_url(self, slug: str | None, fmt: str, query: Query | None = None) -> str:
        """The absolute URL of a feed, with its non-default flags."""
        flags = query.canonical(self.default_limit) if query else ""
        return self.url(self.feed_path(slug, fmt)) + flags

    def feed_info(self, catalog: Catalog, slug: str | None, fmt: str, query: Query) -> feeds.FeedInfo:
        """The feed-level fields of one feed."""
        name = catalog.topic_names[slug] if slug else "All topics"
        others = {feeds.MEDIA_TYPES[f]: self.feed_url(slug, f, query) for f in FORMATS if f != fmt}
        return feeds.FeedInfo(
            # The id names the feed, not a window on it: `limit` changes nothing in it (RFC 4287 4.2.6).
            feed_id=self.feed_url(slug, "atom", Query(query.include_all, self.default_limit)),
            title=f"{self.title}: {name}",
            subtitle=f"News about {name}, with related coverage" if slug else "News on every topic",
            self_url=self.feed_url(slug, fmt, query),
            html_url=self.url("/") + (f"#{slug}" if slug else ""),
            author=self.author,
            alternates=others,
        )


def feed_entries(catalog: Catalog, slug: str | None, query: Query) -> list[Entry]:
    """The entries a feed shows: selected by `include`, cut at `limit`."""
    return catalog.entries(slug, query.include_all)[: query.limit]


def render_feed(catalog: Catalog, site: Site, slug: str | None, fmt: str, query: Query) -> bytes:
    """One feed's bytes; raises TopicNotFound for an unknown topic."""
    entries = feed_entries(catalog, slug, query)
    return feeds.render(fmt, site.feed_info(catalog, slug, fmt, query), entries)
