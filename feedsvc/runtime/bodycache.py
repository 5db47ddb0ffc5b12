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
from functools import cached_property
from threading import Lock
from typing import Generic, TypeVar

from feedsvc.feeds import html
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query
from feedsvc.feeds.render import feed_entries, render_body
from feedsvc.feeds.site import Site

V = TypeVar("V")


class BoundedLru(Generic[V]):
    """A least-recently-used map bounded in items and in bytes (each value's size is given when
    it is put); not thread-safe: callers hold their own lock."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[Hashable, V]]:
        """Every (key, value), least recently used first."""
        return [(key, value) for key, (value, _) in self._items.items()]

    def get(self, key: Hashable) -> V | None:
        """The value of `key`, now the most recently used; None when absent."""
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Keep `value` (unless it alone is over the byte budget), dropping the least recently used beyond the bounds."""
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if size > self.max_bytes:
            return
        self._items[key] = (value, size)
        self.bytes += size
        while len(self._items) > self.max_items or self.bytes > self.max_bytes:
            self.bytes -= self._items.popitem(last=False)[1][1]


@dataclass(frozen=True)
class Rendered:
    """One body and its gzip twin, with their strong entity tags (RFC 9110 8.8.3). The twin is
    made at the first request that accepts gzip: a static build never asks for one."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        """Tag a body."""
        return cls(body, hashlib.blake2b(body, digest_size=16).hexdigest())

    @cached_property
    def gzipped(self) -> bytes:
        """The body compressed once (mtime=0, so the gzip bytes are as stable as the body)."""
        return gzip.compress(self.body, compresslevel=6, mtime=0)

    @property
    def size(self) -> int:
        """The bytes a cache holds for it: the body and its twin, counted at a quarter of the body
        until it is made (feeds and pages compress to 10-25%)."""
        twin = self.__dict__.get("gzipped")
        return len(self.body) + (len(self.body) // 4 if twin is None else len(twin))

    def variant(self, use_gzip: bool) -> tuple[bytes, str]:
        """The bytes and entity tag of one coding; a strong tag differs per coding (RFC 9110 8.8.3.3)."""
        return (self.gzipped, f"{self.etag}-gz") if use_gzip else (self.body, self.etag)


@dataclass
class _Record:
    source: object  # the entries the body was made from
    owner: object  # the catalog last seen to agree with `source`
    rendered: Rendered


class RenderCache:
    """Rendered bodies in two bounded LRUs (items and bytes): the feeds, and apart from them the
    filtered feeds, whose endless variants must not push the feeds out; safe to share between threads."""

    def __init__(
        self,
        max_items: int = 512,
        max_bytes: int = 64 * 1024 * 1024,
        filtered_items: int = 64,
        filtered_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.main: BoundedLru[_Record] = BoundedLru(max_items, max_bytes)
        self.filtered: BoundedLru[_Record] = BoundedLru(filtered_items, filtered_bytes)
        self._lock = Lock()
        self.renders = 0  # how many bodies were made: a test of "re-render only what changed"
        self.on_lookup: Callable[[bool], None] | None = None  # told of each get(): True for a hit (metrics)

    def get(
        self, key: Hashable, owner: object, source: object, produce: Callable[[], bytes], filtered: bool = False
    ) -> Rendered:
        """The body for `key`, made by `produce()` unless a body made from equal `source` exists."""
        records = self.filtered if filtered else self.main
        with self._lock:
            record = records.get(key)
            hit = record is not None and (record.owner is owner or record.source == source)
            if hit:
                record.owner = owner
        if self.on_lookup is not None:
            self.on_lookup(hit)
        if hit:
            return record.rendered  # a record's body never changes: a miss stores a new record
        rendered = Rendered.of(produce())
        with self._lock:
            self.renders += 1
            # The entries are the catalog's own objects; the two bodies are what this record adds.
            records.put(key, _Record(source, owner, rendered), rendered.size)
        return rendered

    def records(self) -> list[tuple[Hashable, object, Rendered]]:
        """Every (key, source, body) of the feeds (not the filtered ones) held, least recently used
        first: to keep them beyond this process."""
        with self._lock:
            return [(key, record.source, record.rendered) for key, record in self.main.items()]

    def preload(self, records: list[tuple[Hashable, object, Rendered]]) -> None:
        """Hold bodies made elsewhere (another process) from their sources: `get` reuses one when its
        source equals the one asked for, as it reuses its own."""
        with self._lock:
            for key, source, rendered in records:  # the pool's bounds keep the most recent ones
                self.main.put(key, _Record(source, None, rendered), rendered.size)


def cached_feed(cache: RenderCache, catalog: Catalog, site: Site, slug: str | None, fmt: str, query: Query) -> Rendered:
    """One feed's rendered body, made again only when its entries (or name) changed."""
    name = catalog.topic_names_for(query.include_all).get(slug, "All topics")
    entries, pages = feed_entries(catalog, slug, query)
    key = (site, slug, fmt, query)
    source = (name, pages, entries)
    return cache.get(
        key,
        catalog,
        source,
        lambda: render_body(fmt, site.feed_info(name, slug, fmt, query, pages), entries),
        filtered=bool(query.filters),
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
