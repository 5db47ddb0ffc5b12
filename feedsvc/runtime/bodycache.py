"""Rendered bodies, compressed once and cached until the entries under them change.

Request-free (no Flask). A cached body is keyed by everything that shapes it but the data (feed,
format, flags, base URL) and remembers the entries it was made from: a new catalog whose
entries for that feed are equal reuses the body, so a reload re-renders only the feeds it
touched.
"""

from __future__ import annotations

import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from threading import Lock

from feedsvc.feeds import html
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query
from feedsvc.feeds.render import feed_entries, render_body
from feedsvc.feeds.site import Site


@dataclass(frozen=True)
class Rendered:
    """One body in both codings, with their strong entity tags (RFC 9110 8.8.3)."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        """Compress once (mtime=0, so the gzip bytes are as stable as the body) and tag."""
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        return cls(body, gzip.compress(body, compresslevel=6, mtime=0), digest)

    def variant(self, use_gzip: bool) -> tuple[bytes, str]:
        """The bytes and entity tag of one coding; a strong tag differs per coding (RFC 9110 8.8.3.3)."""
        return (self.gzipped, f"{self.etag}-gz") if use_gzip else (self.body, self.etag)


@dataclass
class _Record:
    source: object  # the entries the body was made from
    owner: object  # the catalog last seen to agree with `source`
    rendered: Rendered


class RenderCache:
    """A bounded LRU of rendered bodies; safe to share between threads."""

    def __init__(self, max_items: int = 512) -> None:
        self.max_items = max_items
        self._records: OrderedDict[Hashable, _Record] = OrderedDict()
        self._lock = Lock()
        self.renders = 0  # how many bodies were made: a test of "re-render only what changed"

    def get(self, key: Hashable, owner: object, source: object, produce: Callable[[], bytes]) -> Rendered:
        """The body for `key`, made by `produce()` unless a body made from equal `source` exists."""
        with self._lock:
            record = self._records.get(key)
            if record is not None and (record.owner is owner or record.source == source):
                record.owner = owner
                self._records.move_to_end(key)
                return record.rendered
        rendered = Rendered.of(produce())
        with self._lock:
            self.renders += 1
            self._records[key] = _Record(source, owner, rendered)
            self._records.move_to_end(key)
            while len(self._records) > self.max_items:
                self._records.popitem(last=False)
        return rendered


def cached_feed(cache: RenderCache, catalog: Catalog, site: Site, slug: str | None, fmt: str, query: Query) -> Rendered:
    """One feed's rendered body, made again only when its entries (or name) changed."""
    name = catalog.topic_names_for(query.include_all).get(slug, "All topics")
    entries, pages = feed_entries(catalog, slug, query)
    key = (site, slug, fmt, query)
    source = (name, pages, entries)
    return cache.get(
        key, catalog, source, lambda: render_body(fmt, site.feed_info(name, slug, fmt, query, pages), entries)
    )


def cached_page(
    cache: RenderCache, catalog: Catalog, site: Site, slug: str | None, query: Query, feed: str | None = None
) -> Rendered:
    """A topic's HTML page (the same entries, paging and limit as its feeds), or with `feed` the
    page a browser gets for that feed's URL; made again only when what it shows changed."""
    name = catalog.topic_names_for(query.include_all).get(slug, "All topics")
    entries, pages = feed_entries(catalog, slug, query)
    total = len(catalog.entries(slug, query.include_all))
    key = (site, slug, ("page", feed), query)
    source = (name, pages, total, entries)
    return cache.get(
        key, catalog, source, lambda: html.render(site.page_info(name, slug, query, pages, total, feed), entries)
    )
