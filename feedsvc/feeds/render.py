"""One feed's bytes in any format: the entries of the requested page, handed to the renderer of
that format (rss_atom, jsonfeed, digest). Request-free and uncached."""

from __future__ import annotations

from feedsvc.content.model import Entry
from feedsvc.errors import PageNotFound
from feedsvc.feeds import digest, filters, jsonfeed, rss_atom
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query
from feedsvc.feeds.site import Site, page_count


def feed_entries(catalog: Catalog, slug: str | None, query: Query) -> tuple[tuple[Entry, ...], int]:
    """The entries of the requested page (one per story with `dedupe`, then filtered), and the
    number of pages; raise past the last page."""
    entries = catalog.entries(slug, query.include_all, query.dedupe)
    if query.filters:
        # filter_time counts back from the view's Last-Modified, not from the clock: see filters.apply.
        entries = filters.apply(entries, query.filters, catalog.last_modified_for(query.include_all))
    pages = page_count(len(entries), query.limit)
    if query.page > pages:
        raise PageNotFound(f"page {query.page} does not exist: this feed has {pages} page(s)")
    start = (query.page - 1) * query.limit
    return entries[start : start + query.limit], pages


def render_body(fmt: str, info: rss_atom.FeedInfo, entries: tuple[Entry, ...]) -> bytes:
    """Bytes of one feed in `fmt`."""
    if fmt == "json":
        return jsonfeed.render(info, entries)
    if fmt in digest.MEDIA_TYPES:
        return digest.render(fmt, info, entries)
    return rss_atom.render(fmt, info, entries)


def render_feed(catalog: Catalog, site: Site, slug: str | None, fmt: str, query: Query) -> bytes:
    """One feed's bytes, uncached; raises TopicNotFound for an unknown topic."""
    name = catalog.topic_names_for(query.include_all).get(slug, "All topics")
    entries, pages = feed_entries(catalog, slug, query)
    return render_body(fmt, site.feed_info(name, slug, fmt, query, pages), entries)
