"""Where the service lives and what it calls itself: every URL it makes (feeds, pages, RFC 5005
paging links), and each feed's own metadata. Request-free."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from feedsvc.errors import BadHost
from feedsvc.feeds import digest, html, jsonfeed, rss_atom
from feedsvc.feeds.query import Query

FORMATS = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}  # the feeds
FILE_NAMES = {**FORMATS, "digest-html": "digest.html", "digest-txt": "digest.txt"}  # every document of a topic
PATH_NAMES = {**FILE_NAMES, "html": ""}  # a topic's HTML page is its folder (/topics/<slug>/)
MEDIA_TYPES = {**rss_atom.MEDIA_TYPES, "json": jsonfeed.MEDIA_TYPE, **digest.MEDIA_TYPES}
FORMAT_NAMES = {"rss": "RSS 2.0", "atom": "Atom 1.0", "json": "JSON Feed 1.1"}
STYLESHEET_PATH = "/style.css"
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
    dedupe_titles: bool = False  # the default of the dedupe flag (config DEDUPE_TITLES)

    def url(self, path: str) -> str:
        """An absolute URL for a path of this site."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    @staticmethod
    def feed_path(slug: str | None, fmt: str, page: int = 1) -> str:
        """The path of page `page` of a feed (or digest, or with fmt "html" the HTML page): one
        topic's, or every topic's when slug is None.

        Page 1 is at the document's own path, page N >= 2 in a page/N/ folder beside it, so a
        static host serves every page as a file (it ignores a query string such as ?page=N).
        """
        name = PATH_NAMES[fmt]
        # The site-wide HTML page cannot be "/" (the index): it is /all/.
        base = f"/topics/{slug}/" if slug else ("/" if name else "/all/")
        return base + (f"page/{page}/" if page > 1 else "") + name

    @staticmethod
    def page_path(slug: str | None, page: int = 1) -> str:
        """The path of page `page` of a topic's HTML page (/all/ when slug is None)."""
        return Site.feed_path(slug, "html", page)

    def feed_url(self, slug: str | None, fmt: str, query: Query | None = None, page: int = 1) -> str:
        """The absolute URL of page `page` of a feed, with its non-default flags."""
        flags = query.canonical(self.default_limit, self.dedupe_titles) if query else ""
        return self.url(self.feed_path(slug, fmt, page)) + flags

    def page_url(self, slug: str | None, query: Query | None = None, page: int = 1) -> str:
        """The absolute URL of page `page` of a topic's HTML page: the page in the path, other flags in the query."""
        flags = query.canonical(self.default_limit, self.dedupe_titles) if query else ""
        return self.url(self.page_path(slug, page)) + flags

    def page_links(self, slug: str | None, fmt: str, query: Query, pages: int) -> dict[str, str]:
        """RFC 5005 section 3 paging links: first, last, and previous/next where they exist."""
        links = {"first": 1, "last": pages}
        if query.page > 1:
            links["previous"] = query.page - 1
        if query.page < pages:
            links["next"] = query.page + 1
        return {rel: self.feed_url(slug, fmt, query, page) for rel, page in links.items()}

    def feed_info(self, name: str, slug: str | None, fmt: str, query: Query, pages: int) -> rss_atom.FeedInfo:
        """The feed-level fields of one feed."""
        others = {MEDIA_TYPES[f]: self.feed_url(slug, f, query, query.page) for f in FORMATS if f != fmt}
        return rss_atom.FeedInfo(
            # The id names the feed, not a window on it: limit and page change nothing in it (RFC 4287 4.2.6);
            # filters and dedupe make another feed (other entries), so they are part of it.
            feed_id=self.feed_url(  # no token
                slug, "atom", Query(query.include_all, self.default_limit, filters=query.filters, dedupe=query.dedupe)
            ),
            title=f"{self.title}: {name}",
            subtitle=f"News about {name}, with related coverage" if slug else "News on every topic",
            self_url=self.feed_url(slug, fmt, query, query.page),  # a page's own URL (RFC 4287 4.2.7.2)
            html_url=self.page_url(slug),  # the topic's page, for people
            author=self.author,
            alternates=others,
            links=(self.page_links(slug, fmt, query, pages) if self.paging else {})
            | ({"hub": self.hub} if self.hub else {}),
            ttl_minutes=self.max_age // 60 or None,  # RSS <ttl> counts minutes: none for under one
        )

    def page_info(
        self, name: str, slug: str | None, query: Query, pages: int, total: int, feed: str | None = None
    ) -> html.PageInfo:
        """What a topic's HTML page shows around its entries; with `feed`, the page a browser gets
        for that feed's URL (the same list, under a "this is a feed" header)."""
        first = replace(query, page=1)  # subscribe to the feed's head, whatever page is shown
        feeds = tuple(html.Link(FORMAT_NAMES[f], self.feed_url(slug, f, first), MEDIA_TYPES[f]) for f in FORMATS)

        def turn(page: int) -> str:  # a feed's browser view pages through the feed's own URLs
            return self.page_url(slug, query, page) if feed is None else self.feed_url(slug, feed, query, page)

        return html.PageInfo(
            site_title=self.title,
            name=name,
            subtitle=f"News about {name}, with related coverage" if slug else "News on every topic",
            index_url=self.url("/")
            + first.canonical(self.default_limit, self.dedupe_titles),  # a preview links to the preview
            stylesheet_url=self.url(STYLESHEET_PATH),
            page_url=self.page_url(slug, query, query.page),
            feeds=feeds,
            feed=html.Link(FORMAT_NAMES[feed], self.feed_url(slug, feed, query, query.page), MEDIA_TYPES[feed])
            if feed
            else None,
            page=query.page,
            pages=pages,
            total=total,
            previous=turn(query.page - 1) if self.paging and query.page > 1 else None,
            next=turn(query.page + 1) if self.paging and query.page < pages else None,
        )


def page_count(total: int, limit: int) -> int:
    """How many pages `total` entries fill; an empty feed still has its first page."""
    return max(1, -(-total // limit))
