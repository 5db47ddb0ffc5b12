"""feedsvc.render and publish.cached_feed: bodies compressed once, cached until their entries change.

Pure core (no Flask): catalogs are built from Article values, bodies read back with lxml/json.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from datetime import datetime, timedelta, timezone

import pytest
from helpers import ATOM, entry_ids
from lxml import etree

import feedsvc.runtime.bodycache
from feedsvc.content.model import Article
from feedsvc.errors import PageNotFound, TopicNotFound
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query
from feedsvc.feeds.render import render_feed
from feedsvc.feeds.site import Site
from feedsvc.runtime.bodycache import BoundedLru, RenderCache, Rendered, cached_feed

BASE = "https://feeds.example.org/"
DAY0 = datetime(2021, 3, 1, 12, 0, tzinfo=timezone.utc)


def article(n: int, topic: str, title: str | None = None, published: bool = True, days: int = 0) -> Article:
    return Article(
        path=f"{n:03}.md",
        title=title or f"Article {n}",
        url=f"https://news.example.com/{n}",
        published=DAY0 - timedelta(days=days or n),
        excerpt=f"Excerpt {n}",
        topics=(topic,),
        is_published=published,
    )


X_ARTICLES = [article(1, "Xray"), article(2, "Xray"), article(3, "Xray", published=False)]
Y_ARTICLES = [article(11, "Yankee"), article(12, "Yankee"), article(13, "Yankee", published=False)]


def catalog(*articles: Article) -> Catalog:
    return Catalog(tuple(articles))


@pytest.fixture
def site() -> Site:
    return Site(BASE)


# --- Rendered ---------------------------------------------------------------------------------


BODIES = [b"", b"<rss/>", "<title>caf\u00e9 \u2014 \u6f22\u5b57</title>".encode(), bytes(range(256)) * 50]


@pytest.mark.parametrize("body", BODIES, ids=["empty", "short", "utf8", "binary"])
def test_rendered_keeps_the_body_and_its_gzip_decompresses_to_it(body):
    rendered = Rendered.of(body)
    assert rendered.body == body
    assert rendered.gzipped[:2] == b"\x1f\x8b"
    assert gzip.decompress(rendered.gzipped) == body


@pytest.mark.parametrize("body", BODIES, ids=["empty", "short", "utf8", "binary"])
def test_etag_is_a_digest_of_the_body(body):
    assert Rendered.of(body).etag == hashlib.blake2b(body, digest_size=16).hexdigest()


def test_same_body_same_bytes_and_tags():
    one, two = Rendered.of(b"<feed>same</feed>"), Rendered.of(b"<feed>same</feed>")
    assert one == two
    assert one.gzipped == two.gzipped  # mtime=0: no timestamp in the gzip header


def test_gzip_header_has_no_timestamp():
    assert Rendered.of(b"<feed/>").gzipped[4:8] == b"\x00\x00\x00\x00"


def test_different_bodies_have_different_tags():
    tags = {Rendered.of(b"<feed>%d</feed>" % n).etag for n in range(200)}
    assert len(tags) == 200


def test_variants_are_the_bytes_and_tag_of_each_coding():
    rendered = Rendered.of(b"<feed>x</feed>")
    identity, gzipped = rendered.variant(False), rendered.variant(True)
    assert identity == (rendered.body, rendered.etag)
    assert gzipped[0] == rendered.gzipped
    assert gzipped[1] != identity[1]  # a strong tag names one representation
    assert gzipped[1] == rendered.etag + "-gz"
    assert '"' not in identity[1] and '"' not in gzipped[1]  # quoted by the web layer


def test_rendered_is_frozen():
    rendered = Rendered.of(b"x")
    with pytest.raises(AttributeError):
        rendered.body = b"y"  # type: ignore[misc]


# --- RenderCache ------------------------------------------------------------------------------


class Producer:
    """A produce() callable that counts its calls."""

    def __init__(self, body: bytes) -> None:
        self.body, self.calls = body, 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.body


def test_first_get_produces_and_counts_one_render():
    cache, produce = RenderCache(), Producer(b"<a/>")
    rendered = cache.get("k", object(), ("src",), produce)
    assert rendered == Rendered.of(b"<a/>")
    assert produce.calls == 1 and cache.renders == 1


def test_same_owner_is_served_from_cache_without_comparing_sources():
    cache, owner = RenderCache(), object()
    first = cache.get("k", owner, ("src",), Producer(b"<a/>"))
    again = Producer(b"<b/>")
    assert cache.get("k", owner, ("src",), again) is first
    assert again.calls == 0 and cache.renders == 1


def test_new_owner_with_equal_source_reuses_the_body():
    cache = RenderCache()
    first = cache.get("k", object(), ("name", 1, ("e1", "e2")), Producer(b"<a/>"))
    again = Producer(b"<b/>")
    assert cache.get("k", object(), ("name", 1, ("e1", "e2")), again) is first
    assert again.calls == 0 and cache.renders == 1


def test_new_owner_with_different_source_renders_again():
    cache = RenderCache()
    cache.get("k", object(), ("name", 1, ("e1",)), Producer(b"<a/>"))
    again = Producer(b"<b/>")
    assert cache.get("k", object(), ("name", 1, ("e1", "e2")), again).body == b"<b/>"
    assert again.calls == 1 and cache.renders == 2


def test_records_preloaded_into_another_cache_are_reused_only_for_an_equal_source():
    made = RenderCache()
    first = made.get("a", object(), ("name", 1, ("e1",)), Producer(b"<a/>"))
    made.get("b", object(), ("name", 1, ("e2",)), Producer(b"<b/>"))
    assert [(key, source) for key, source, _ in made.records()] == [
        ("a", ("name", 1, ("e1",))),
        ("b", ("name", 1, ("e2",))),
    ]
    other = RenderCache()
    other.preload(made.records())
    same, changed = Producer(b"never"), Producer(b"<b2/>")
    assert other.get("a", object(), ("name", 1, ("e1",)), same) == first and same.calls == 0
    assert other.get("b", object(), ("name", 1, ("e2", "e3")), changed).body == b"<b2/>" and changed.calls == 1
    assert other.renders == 1


def test_preloading_more_records_than_the_size_keeps_the_most_recent():
    made = RenderCache()
    for n in range(5):
        made.get(n, object(), "src", Producer(b"%d" % n))
    other = RenderCache(max_items=2)
    other.preload(made.records())
    assert [key for key, _, _ in other.records()] == [3, 4]


def test_keys_are_cached_separately():
    cache, owner = RenderCache(), object()
    a = cache.get("a", owner, "src", Producer(b"<a/>"))
    b = cache.get("b", owner, "src", Producer(b"<b/>"))
    assert (a.body, b.body) == (b"<a/>", b"<b/>")
    assert cache.get("a", owner, "src", Producer(b"never")) is a
    assert cache.get("b", owner, "src", Producer(b"never")) is b
    assert cache.renders == 2


def test_repeated_gets_compress_once(monkeypatch):
    calls = []
    real = gzip.compress

    def counting(data, *args, **kwargs):
        calls.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(feedsvc.runtime.bodycache.gzip, "compress", counting)
    cache, owner = RenderCache(), object()
    for _ in range(20):
        rendered = cache.get("k", owner, "src", Producer(b"<feed>body</feed>"))
        rendered.variant(True)
        rendered.variant(False)
    assert calls == [b"<feed>body</feed>"]
    assert cache.renders == 1


def test_lru_drops_the_least_recently_used():
    cache, owner = RenderCache(max_items=2), object()
    cache.get("a", owner, "src", Producer(b"a"))
    cache.get("b", owner, "src", Producer(b"b"))
    cache.get("a", owner, "src", Producer(b"never"))  # a is now the most recent
    cache.get("c", owner, "src", Producer(b"c"))  # drops b
    assert cache.renders == 3
    kept = Producer(b"never")
    cache.get("a", owner, "src", kept)
    cache.get("c", owner, "src", kept)
    assert kept.calls == 0 and cache.renders == 3
    dropped = Producer(b"b2")
    assert cache.get("b", owner, "src", dropped).body == b"b2"
    assert dropped.calls == 1 and cache.renders == 4


def is_cached(cache: RenderCache, owner: object, key) -> bool:
    """Whether the cache holds a body for `key`: asking for it renders nothing. Asking changes the
    cache: a held key becomes the most recently used; a missing one is rendered and put in."""
    probe = Producer(b"probe")
    cache.get(key, owner, "src", probe)
    return probe.calls == 0


def filled(size: int, new_keys: int = 0) -> tuple[RenderCache, object]:
    """(cache, owner): a cache of `size` bodies asked for keys 0 to 3 * size + 4 in turn, then for
    `new_keys` keys it never had."""
    cache, owner = RenderCache(max_items=size), object()
    for n in range(3 * size + 5):
        cache.get(n, owner, "src", Producer(b"%d" % n))
    for n in range(new_keys):
        cache.get(("new", n), owner, "src", Producer(b"new"))
    return cache, owner


@pytest.mark.parametrize("size", [1, 3, 10])
def test_cache_never_holds_more_than_its_size(size):
    kept = list(range(2 * size + 5, 3 * size + 5))  # the last `size` keys, least recently used first
    cache, owner = filled(size)
    assert [n for n in kept if is_cached(cache, owner, n)] == kept  # asked in that order: the order stays
    # No other key is held: from the most recently dropped back, each is rendered again (each time
    # dropping a kept key, never putting back an older one).
    assert not any(is_cached(cache, owner, n) for n in reversed(range(2 * size + 5)))
    for position, key in enumerate(kept):  # dropped in that order: the least recently used first
        assert is_cached(*filled(size, new_keys=position), key)
        assert not is_cached(*filled(size, new_keys=position + 1), key)


def test_cache_is_safe_to_share_between_threads():
    cache, owner = RenderCache(max_items=50), object()
    errors: list[BaseException] = []
    results: dict[int, set[bytes]] = {n: set() for n in range(20)}

    def work(seed: int) -> None:
        try:
            for i in range(300):
                n = (seed * 7 + i) % 20
                results[n].add(cache.get(n, owner, ("src", n), lambda n=n: b"body-%d" % n).body)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert results == {n: {b"body-%d" % n} for n in range(20)}
    assert 20 <= cache.renders <= 20 * 8  # each key rendered at least once, at most once per thread race
    assert all(is_cached(cache, owner, n) for n in range(20))  # all 20 held (room for 50)


def test_bounded_lru_keeps_to_its_byte_budget():
    lru: BoundedLru[str] = BoundedLru(max_items=100, max_bytes=10)
    for n in range(5):
        lru.put(n, "v", 4)
    assert len(lru) == 2 and lru.bytes == 8 and lru.get(4) == "v" and lru.get(2) is None
    lru.put("huge", "v", 11)  # over the whole budget: not kept, nothing else dropped
    assert lru.get("huge") is None and len(lru) == 2


def test_filtered_bodies_never_push_out_the_feeds():
    cache, owner = RenderCache(max_items=2, filtered_items=2), object()
    cache.get("feed", owner, "src", lambda: b"feed")
    for n in range(50):
        cache.get(("filtered", n), owner, "src", lambda: b"x", filtered=True)
    renders = cache.renders
    cache.get("feed", owner, "src", lambda: b"feed")
    assert cache.renders == renders  # still held
    assert len(cache.filtered) == 2


def test_render_cache_keeps_to_its_byte_budget():
    cache, owner = RenderCache(max_items=1000, max_bytes=50_000), object()
    for n in range(100):
        cache.get(n, owner, "src", lambda n=n: bytes(range(256)) * 40 + b"%d" % n)  # ~10 kB + gzip each
    assert cache.main.bytes <= 50_000 and 0 < len(cache.main) < 10


# --- cached_feed: per (feed, format, query), dropped exactly when the entries change -------------


FORMATS = ["rss", "atom", "json"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("slug", [None, "xray", "yankee"])
@pytest.mark.parametrize("query", [Query(), Query(include_all=True), Query(limit=1, page=2)])
def test_cached_body_is_the_uncached_render(site, fmt, slug, query):
    cat = catalog(*X_ARTICLES, *Y_ARTICLES)
    rendered = cached_feed(RenderCache(), cat, site, slug, fmt, query)
    assert rendered.body == render_feed(cat, site, slug, fmt, query)


def test_repeat_requests_render_once(site):
    cache, cat = RenderCache(), catalog(*X_ARTICLES, *Y_ARTICLES)
    first = cached_feed(cache, cat, site, "xray", "rss", Query())
    for _ in range(10):
        assert cached_feed(cache, cat, site, "xray", "rss", Query()) is first
    assert cache.renders == 1


def test_each_feed_format_and_query_is_its_own_body(site):
    cache, cat = RenderCache(), catalog(*X_ARTICLES, *Y_ARTICLES)
    keys = [
        (slug, fmt, query)
        for slug in (None, "xray", "yankee")
        for fmt in FORMATS
        for query in (Query(), Query(include_all=True), Query(limit=1), Query(limit=1, page=2))
    ]
    bodies = {key: cached_feed(cache, cat, site, *key).body for key in keys}
    assert cache.renders == len(keys)
    assert len(set(bodies.values())) == len(keys)
    for key in keys:
        assert cached_feed(cache, cat, site, *key).body == bodies[key]
    assert cache.renders == len(keys)


def test_other_base_url_is_another_body(site):
    cache, cat = RenderCache(), catalog(*X_ARTICLES)
    here = cached_feed(cache, cat, site, "xray", "atom", Query())
    there = cached_feed(cache, cat, Site("https://mirror.example.net/"), "xray", "atom", Query())
    assert here.body != there.body and cache.renders == 2


def test_reload_changing_only_x_rerenders_only_x(site):
    cache = RenderCache()
    old = catalog(*X_ARTICLES, *Y_ARTICLES)
    before = {
        (slug, fmt): cached_feed(cache, old, site, slug, fmt, Query()) for slug in ("xray", "yankee") for fmt in FORMATS
    }
    renders = cache.renders

    edited = [article(1, "Xray", title="Article 1, corrected"), *X_ARTICLES[1:]]
    new = catalog(*edited, *Y_ARTICLES)
    for fmt in FORMATS:
        assert cached_feed(cache, new, site, "yankee", fmt, Query()) is before[("yankee", fmt)]
    assert cache.renders == renders

    for fmt in FORMATS:
        x = cached_feed(cache, new, site, "xray", fmt, Query())
        assert x.etag != before[("xray", fmt)].etag
        assert x.body == render_feed(new, site, "xray", fmt, Query())
    assert cache.renders == renders + len(FORMATS)


def test_unpublished_change_rerenders_only_the_include_all_feed(site):
    cache = RenderCache()
    old = catalog(*X_ARTICLES, *Y_ARTICLES)
    published = cached_feed(cache, old, site, "xray", "rss", Query())
    everything = cached_feed(cache, old, site, "xray", "rss", Query(include_all=True))
    renders = cache.renders

    new = catalog(*X_ARTICLES[:2], article(3, "Xray", title="Draft, edited", published=False), *Y_ARTICLES)
    assert cached_feed(cache, new, site, "xray", "rss", Query()) is published
    assert cache.renders == renders
    changed = cached_feed(cache, new, site, "xray", "rss", Query(include_all=True))
    assert changed.etag != everything.etag and cache.renders == renders + 1
    assert "Draft, edited" in changed.body.decode()


def test_entry_moving_to_another_page_rerenders_the_pages_it_touches(site):
    cache = RenderCache()
    xs = [article(n, "Xray") for n in range(1, 6)]  # 5 entries, newest first: 1..5
    old = catalog(*xs)
    pages = {p: cached_feed(cache, old, site, "xray", "json", Query(limit=2, page=p)) for p in (1, 2, 3)}
    renders = cache.renders

    newer = article(6, "Xray", days=100)  # the oldest: lands on page 3 and the last link stays 3
    new = catalog(*xs, newer)
    assert cached_feed(cache, new, site, "xray", "json", Query(limit=2, page=1)) is pages[1]
    assert cached_feed(cache, new, site, "xray", "json", Query(limit=2, page=2)) is pages[2]
    assert cache.renders == renders
    third = cached_feed(cache, new, site, "xray", "json", Query(limit=2, page=3))
    assert entry_ids("json", third.body) == ["https://news.example.com/5", "https://news.example.com/6"]
    assert cache.renders == renders + 1


def test_page_count_change_rerenders_even_with_the_same_entries(site):
    cache = RenderCache()
    xs = [article(n, "Xray") for n in range(1, 5)]  # 4 entries: 2 pages of 2
    first = cached_feed(cache, catalog(*xs), site, "xray", "atom", Query(limit=2))
    more = catalog(*xs, article(9, "Xray", days=50))  # a third page: page 1's rel=last moves
    again = cached_feed(cache, more, site, "xray", "atom", Query(limit=2))
    assert again is not first
    last = [l.get("href") for l in etree.fromstring(again.body).findall(f"{ATOM}link") if l.get("rel") == "last"]
    assert last == [site.feed_url("xray", "atom", Query(limit=2), 3)]


def test_topic_that_vanished_raises_and_does_not_serve_the_old_body(site):
    cache = RenderCache()
    cached_feed(cache, catalog(*X_ARTICLES, *Y_ARTICLES), site, "yankee", "rss", Query())
    with pytest.raises(TopicNotFound):
        cached_feed(cache, catalog(*X_ARTICLES), site, "yankee", "rss", Query())


def test_page_past_the_end_raises_even_when_cached_before(site):
    cache = RenderCache()
    xs = [article(n, "Xray") for n in range(1, 5)]
    cached_feed(cache, catalog(*xs), site, "xray", "rss", Query(limit=2, page=2))
    with pytest.raises(PageNotFound):
        cached_feed(cache, catalog(*xs[:2]), site, "xray", "rss", Query(limit=2, page=2))
