"""feedsvc.publish: query flags, the site's URLs and the feed-level metadata (no Flask)."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import ATOM
from lxml import etree

from feedsvc.content.model import Article, Provider
from feedsvc.errors import PageNotFound, QueryError, TopicNotFound
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query, parse_query, path_page
from feedsvc.feeds.render import render_feed
from feedsvc.feeds.site import FILE_NAMES, Site

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


@pytest.mark.parametrize("page", [1, 2, 40])
def test_canonical_never_carries_the_page(page):
    """The page is in the path (/page/N/), so that a static host can serve it."""
    query = Query(True, 7, page=page, token="s3cret")
    assert query.canonical(DEFAULT) == "?include=all&token=s3cret&limit=7"
    assert Query(False, DEFAULT, page=page).canonical(DEFAULT) == ""


# --- page numbers in paths ----------------------------------------------------------------------


@pytest.mark.parametrize("segment, page", [("1", 1), ("2", 2), ("10", 10), ("123456789012345678", 123456789012345678)])
def test_path_page_is_a_plain_decimal(segment, page):
    assert path_page(segment) == page


@pytest.mark.parametrize(
    "segment",
    ["0", "00", "01", "002", "-1", "+2", "2 ", " 2", "1.0", "1e3", "x", "", "\u0662", "\uff12", "9" * 19, "9" * 5000],
)
def test_other_page_segments_are_no_page(segment):
    with pytest.raises(PageNotFound) as error:
        path_page(segment)
    message = str(error.value)
    assert "\n" not in message and len(message) < 160


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


PAGED_PATHS = [
    (None, "rss", 1, "/rss.xml"),
    (None, "atom", 2, "/page/2/atom.xml"),
    (None, "json", 3, "/page/3/feed.json"),
    (None, "digest-html", 1, "/digest.html"),
    (None, "digest-txt", 12, "/page/12/digest.txt"),
    ("ai", "rss", 2, "/topics/ai/page/2/rss.xml"),
    ("ai", "atom", 1, "/topics/ai/atom.xml"),
    ("computer-vision", "json", 2, "/topics/computer-vision/page/2/feed.json"),
    ("ai", "digest-html", 7, "/topics/ai/page/7/digest.html"),
    ("ai", "digest-txt", 1, "/topics/ai/digest.txt"),
]


@pytest.mark.parametrize("slug, fmt, page, path", PAGED_PATHS)
def test_feed_path_of_a_page(slug, fmt, page, path):
    assert Site.feed_path(slug, fmt, page) == path
    assert Site(BASE + "/").feed_path(slug, fmt, page) == path


@pytest.mark.parametrize("fmt", FILE_NAMES)
@pytest.mark.parametrize("slug", [None, "ai"])
def test_page_one_of_every_document_is_its_own_path(fmt, slug):
    folder = f"/topics/{slug}/" if slug else "/"
    assert Site.feed_path(slug, fmt) == Site.feed_path(slug, fmt, 1) == folder + FILE_NAMES[fmt]
    assert Site.feed_path(slug, fmt, 2) == folder + "page/2/" + FILE_NAMES[fmt]


@pytest.mark.parametrize(
    "slug, page, path",
    [(None, 1, "/all/"), (None, 2, "/all/page/2/"), ("ai", 1, "/topics/ai/"), ("ai", 12, "/topics/ai/page/12/")],
)
def test_html_page_paths_are_folders(slug, page, path):
    """A topic's HTML page has no file name: /topics/<slug>/, and /all/ for every topic (/ is the index)."""
    assert Site.page_path(slug, page) == Site.feed_path(slug, "html", page) == path


@pytest.mark.parametrize("slug, fmt, page, path", PAGED_PATHS)
def test_feed_url_of_a_page_keeps_the_other_flags_in_the_query(slug, fmt, page, path):
    site = Site(BASE + "/news/", default_limit=20)
    query = Query(True, 10, page=5, token="t")  # the page argument wins: a Query's page is not in its URL
    assert site.feed_url(slug, fmt, query, page) == BASE + "/news" + path + "?include=all&token=t&limit=10"
    assert site.feed_url(slug, fmt, Query(False, 20), page) == BASE + "/news" + path


@pytest.mark.parametrize("fmt", FILE_NAMES)
@pytest.mark.parametrize("slug", [None, "ai"])
def test_page_links_are_path_urls(fmt, slug):
    site = Site(BASE)
    url = lambda n: BASE + Site.feed_path(slug, fmt, n) + "?limit=3"
    assert url(2) == BASE + ("/topics/ai" if slug else "") + f"/page/2/{FILE_NAMES[fmt]}?limit=3"
    assert site.page_links(slug, fmt, Query(False, 3), 1) == {"first": url(1), "last": url(1)}
    assert site.page_links(slug, fmt, Query(False, 3), 4) == {"first": url(1), "last": url(4), "next": url(2)}
    middle = site.page_links(slug, fmt, Query(False, 3, page=2), 4)
    assert middle == {"first": url(1), "last": url(4), "previous": url(1), "next": url(3)}
    last = site.page_links(slug, fmt, Query(False, 3, page=4), 4)
    assert last == {"first": url(1), "last": url(4), "previous": url(3)}


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
def test_a_pages_self_and_alternates_are_its_own_path_its_id_the_feeds(catalog, fmt):
    query = Query(True, 1, page=2)
    root = etree.fromstring(render_feed(catalog, Site(BASE), "ai", fmt, query))
    links = root.findall(f"{ATOM}link") if fmt == "atom" else root.findall(f"channel/{ATOM}link")
    hrefs = {(l.get("rel"), l.get("type")): l.get("href") for l in links}
    assert hrefs["self", f"application/{fmt}+xml"] == f"{BASE}/topics/ai/page/2/{fmt}.xml?include=all&limit=1"
    other = "atom" if fmt == "rss" else "rss"
    assert hrefs["alternate", f"application/{other}+xml"] == f"{BASE}/topics/ai/page/2/{other}.xml?include=all&limit=1"
    assert hrefs["alternate", "application/feed+json"] == f"{BASE}/topics/ai/page/2/feed.json?include=all&limit=1"
    assert feed_id(catalog, "ai", query) == f"{BASE}/topics/ai/atom.xml?include=all"


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
