"""feedsvc.publish: query flags, the site's URLs and the feed-level metadata (no Flask)."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import ATOM
from lxml import etree

from feedsvc.content.model import Article, Provider
from feedsvc.errors import QueryError, TopicNotFound
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query, parse_query
from feedsvc.feeds.render import render_feed
from feedsvc.feeds.site import Site

FORMATS = {"rss": "rss.xml", "atom": "atom.xml"}

DEFAULT, MAXIMUM = 50, 500
BASE = "https://feeds.example.org"


def parse(**args) -> Query:
    """parse_query over a query string's multi-dict: parse(limit=["5"])."""
    return parse_query(args, DEFAULT, MAXIMUM)


# --- include ----------------------------------------------------------------------------------


def test_no_flags_means_published_and_default_limit():
    assert parse() == Query(include_all=False, limit=DEFAULT)


@pytest.mark.parametrize("value, include_all", [("published", False), ("all", True)])
def test_include_values(value, include_all):
    assert parse(include=[value]).include_all is include_all


@pytest.mark.parametrize("value", ["", "ALL", "All", "everything", "true", "1", "all ", " all", "published,all"])
def test_invalid_include_is_a_query_error(value):
    with pytest.raises(QueryError):
        parse(include=[value])


@pytest.mark.parametrize(
    "args",
    [
        {"include": ["all", "all"]},
        {"include": ["all", "published"]},
        {"limit": ["5", "5"]},
        {"limit": ["5", "10"]},
    ],
    ids=["include-same", "include-different", "limit-same", "limit-different"],
)
def test_repeated_flag_is_a_query_error(args):
    with pytest.raises(QueryError):
        parse_query(args, DEFAULT, MAXIMUM)


def test_query_error_message_is_one_short_line():
    with pytest.raises(QueryError) as caught:
        parse(include=["x" * 5000])
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 200


# --- limit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, limit", [("1", 1), ("7", 7), ("50", 50), ("499", 499), ("500", 500), ("0010", 10)])
def test_limit_in_range(raw, limit):
    assert parse(limit=[raw]).limit == limit


@pytest.mark.parametrize("raw", ["501", "1000", "999999999"])
def test_limit_above_max_is_clamped(raw):
    assert parse(limit=[raw]).limit == MAXIMUM


def test_limit_clamps_to_the_given_max():
    assert parse_query({"limit": ["100"]}, DEFAULT, 2).limit == 2


@pytest.mark.parametrize(
    "raw",
    ["0", "00", "-1", "-50", "", " ", " 5", "5 ", "+5", "5.0", "1e3", "abc", "5a", "0x10", "３", "٣", "¹", "五"],
)
def test_bad_limit_is_a_query_error(raw):
    with pytest.raises(QueryError):
        parse(limit=[raw])


def test_long_zero_padded_limit_is_its_number():
    assert parse(limit=["0000000000001"]).limit == 1


@pytest.mark.parametrize("raw", ["1000000000", "10000000000", "99999999999999999999999"])
def test_limit_far_above_max_is_clamped(raw):
    assert parse(limit=[raw]).limit == MAXIMUM


def test_default_limit_is_clamped_to_max():
    assert parse_query({}, DEFAULT, 2).limit == 2


def test_unknown_params_are_ignored():
    args = {"utm_source": ["newsletter"], "_": ["1", "2"], "format": ["json"], "Include": ["bogus"]}
    assert parse_query(args, DEFAULT, MAXIMUM) == Query(False, DEFAULT)


def test_unknown_params_beside_known_ones():
    args = {"include": ["all"], "limit": ["3"], "cachebuster": ["x", "y"]}
    assert parse_query(args, DEFAULT, MAXIMUM) == Query(True, 3)


# --- Query.canonical --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, canonical",
    [
        (Query(False, DEFAULT), ""),
        (Query(True, DEFAULT), "?include=all"),
        (Query(False, 7), "?limit=7"),
        (Query(True, 7), "?include=all&limit=7"),
        (Query(False, MAXIMUM), "?limit=500"),
    ],
)
def test_canonical(query, canonical):
    assert query.canonical(DEFAULT) == canonical


def test_canonical_depends_on_the_default():
    assert Query(False, 20).canonical(20) == ""
    assert Query(False, 50).canonical(20) == "?limit=50"


@pytest.mark.parametrize(
    "args",
    [{}, {"include": ["published"]}, {"limit": ["50"]}, {"include": ["published"], "limit": ["50"], "x": ["1"]}],
)
def test_equivalent_requests_have_one_canonical_form(args):
    assert parse_query(args, DEFAULT, MAXIMUM).canonical(DEFAULT) == ""


def test_canonical_order_is_fixed():
    forward = parse_query({"include": ["all"], "limit": ["9"]}, DEFAULT, MAXIMUM)
    backward = parse_query({"limit": ["9"], "include": ["all"]}, DEFAULT, MAXIMUM)
    assert forward.canonical(DEFAULT) == backward.canonical(DEFAULT) == "?include=all&limit=9"


# --- Site URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [BASE, BASE + "/"])
def test_url_is_absolute_with_one_slash(base):
    site = Site(base)
    assert site.url("/") == BASE + "/"
    assert site.url("/feeds.opml") == BASE + "/feeds.opml"
    assert site.url("feeds.opml") == BASE + "/feeds.opml"


def test_url_under_a_path_prefix():
    assert Site("https://example.org/news/").url("/rss.xml") == "https://example.org/news/rss.xml"


@pytest.mark.parametrize(
    "slug, fmt, url",
    [
        (None, "rss", BASE + "/rss.xml"),
        (None, "atom", BASE + "/atom.xml"),
        ("ai", "rss", BASE + "/topics/ai/rss.xml"),
        ("computer-vision", "atom", BASE + "/topics/computer-vision/atom.xml"),
    ],
)
def test_feed_url_without_flags(slug, fmt, url):
    site = Site(BASE + "/")
    assert site.feed_url(slug, fmt) == url
    assert site.feed_url(slug, fmt, Query(False, DEFAULT)) == url


@pytest.mark.parametrize(
    "query, suffix",
    [(Query(True, DEFAULT), "?include=all"), (Query(False, 3), "?limit=3"), (Query(True, 3), "?include=all&limit=3")],
)
def test_feed_url_with_flags(query, suffix):
    site = Site(BASE)
    assert site.feed_url("ai", "rss", query) == BASE + "/topics/ai/rss.xml" + suffix
    assert site.feed_url(None, "atom", query) == BASE + "/atom.xml" + suffix


def test_feed_url_flags_relative_to_the_sites_default_limit():
    site = Site(BASE, default_limit=10)
    assert site.feed_url(None, "rss", Query(False, 10)) == BASE + "/rss.xml"
    assert site.feed_url(None, "rss", Query(False, 50)) == BASE + "/rss.xml?limit=50"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("slug", [None, "ai"])
@pytest.mark.parametrize("query", [Query(False, DEFAULT), Query(True, 3)])
def test_feed_urls_are_absolute(fmt, slug, query):
    parts = urlsplit(Site(BASE).feed_url(slug, fmt, query))
    assert parts.scheme == "https" and parts.netloc == "feeds.example.org"
    assert parts.path.endswith(FORMATS[fmt])
    assert dict(parse_qsl(parts.query)) == ({"include": "all", "limit": "3"} if query.include_all else {})


# --- feed metadata ----------------------------------------------------------------------------

UTC = timezone.utc


def article(name: str, published: bool, day: int, topics=("AI", "Computer Vision")) -> Article:
    return Article(
        path=f"{name}.md",
        title=f"Story {name}",
        url=f"https://news.example.com/{name}",
        published=datetime(2021, 1, day, tzinfo=UTC),
        provider=Provider("Example News"),
        topics=topics,
        is_published=published,
    )


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        (
            article("a", True, 1),
            article("b", False, 2),
            article("c", True, 3),
            article("d", True, 4, topics=("Robots",)),
        )
    )


def feed_id(catalog: Catalog, slug: str | None, query: Query) -> str:
    """The id a rendered Atom feed states in <feed><id>."""
    atom = etree.fromstring(render_feed(catalog, Site(BASE), slug, "atom", query))
    return atom.findtext(f"{ATOM}id")


def self_link(catalog: Catalog, slug: str | None, fmt: str, query: Query) -> str:
    root = etree.fromstring(render_feed(catalog, Site(BASE), slug, fmt, query))
    links = root.findall(f"{ATOM}link") if fmt == "atom" else root.findall(f"channel/{ATOM}link")
    (href,) = [l.get("href") for l in links if l.get("rel") == "self"]
    return href


@pytest.mark.parametrize("slug", [None, "ai"])
def test_feed_id_is_stable_across_limits(catalog, slug):
    ids = {feed_id(catalog, slug, Query(False, limit)) for limit in (1, 2, DEFAULT, MAXIMUM)}
    assert len(ids) == 1


@pytest.mark.parametrize("slug, expected", [(None, BASE + "/atom.xml"), ("ai", BASE + "/topics/ai/atom.xml")])
def test_feed_id_values(catalog, slug, expected):
    assert feed_id(catalog, slug, Query(False, 3)) == expected
    assert feed_id(catalog, slug, Query(True, 3)) == expected + "?include=all"


@pytest.mark.parametrize("slug", [None, "ai"])
def test_feed_id_differs_with_include_all(catalog, slug):
    assert feed_id(catalog, slug, Query(False, DEFAULT)) != feed_id(catalog, slug, Query(True, DEFAULT))


def test_feed_ids_differ_between_topics(catalog):
    ids = {feed_id(catalog, slug, Query()) for slug in (None, "ai", "computer-vision", "robots")}
    assert len(ids) == 4


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_self_link_carries_the_limit_the_id_does_not(catalog, fmt):
    assert self_link(catalog, "computer-vision", fmt, Query(True, 2)) == (
        f"{BASE}/topics/computer-vision/{fmt}.xml?include=all&limit=2"
    )
    assert self_link(catalog, None, fmt, Query(False, DEFAULT)) == f"{BASE}/{fmt}.xml"


def test_rendered_feed_is_cut_at_the_limit_newest_first(catalog):
    def urls(slug, query):
        root = etree.fromstring(render_feed(catalog, Site(BASE), slug, "atom", query))
        return [e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry")]

    assert urls(None, Query(False, DEFAULT)) == [
        "https://news.example.com/d",
        "https://news.example.com/c",
        "https://news.example.com/a",
    ]
    assert urls("ai", Query(True, 2)) == ["https://news.example.com/c", "https://news.example.com/b"]


def test_render_feed_of_unknown_topic_raises(catalog):
    with pytest.raises(TopicNotFound):
        render_feed(catalog, Site(BASE), "no-such-topic", "rss", Query())
