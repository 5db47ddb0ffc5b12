"""feedsvc.feeds.filters: RSSHub's filter parameters and dedupe=title, on units, the seeds and
the corpus sample, in every format; and the caches' bounds under distinct filtered URLs."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import feedparser
import pytest
from helpers import ATOM, CORPUS, check_feed, entry_ids, feed_path, get_ok
from lxml import etree, html

from feedsvc import create_app
from feedsvc.content.model import Entry, Provider
from feedsvc.errors import QueryError
from feedsvc.feeds.filters import Filters, apply, one_per_story, title_key
from feedsvc.feeds.query import Query, parse_query

FORMATS = ["rss", "atom", "json"]
T0 = datetime(2021, 1, 1, tzinfo=timezone.utc)


def entry(title: str, url: str, days: int = 0, excerpt: str = "", provider: str | None = None, topics=("AI",)) -> Entry:
    """An entry published `days` after T0."""
    return Entry(
        url=url,
        title=title,
        published=T0 + timedelta(days=days),
        excerpt=excerpt,
        provider=Provider(provider) if provider else None,
        image=None,
        categories=tuple(topics),
    )


ENTRIES = (
    entry("Robots Market Size Worth $5 Billion", "https://a.example/1", 3, "A report.", "openpr.com", ("AI", "Robots")),
    entry("DeepMind folds proteins", "https://b.example/2", 2, "AlphaFold 2 wins CASP.", "CNBC", ("AI", "Science")),
    entry("Vision at the bedside", "https://c.example/3", 1, "", "Forbes", ("Computer Vision",)),
)


def titles(entries) -> list[str]:
    return [e.title for e in entries]


def query(**params: str) -> Query:
    return parse_query({k: [v] for k, v in params.items()}, 50, 500)


def run(**params: str) -> list[str]:
    """The titles of ENTRIES that the filters of these query parameters keep."""
    return titles(apply(ENTRIES, query(**params).filters, T0 + timedelta(days=3)))


# --- matching -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "kept"),
    [
        ({"filter": "deepmind"}, ["DeepMind folds proteins"]),  # case-insensitive by default
        ({"filter": "alphafold"}, ["DeepMind folds proteins"]),  # filter reads the excerpt too
        ({"filter": "bedside"}, ["Vision at the bedside"]),  # and the title where there is no excerpt
        ({"filter_title": "report"}, []),  # the title only
        ({"filter_description": "report"}, ["Robots Market Size Worth $5 Billion"]),
        ({"filter_author": "^forbes$"}, ["Vision at the bedside"]),
        ({"filter_category": "^science$"}, ["DeepMind folds proteins"]),  # any one topic
        ({"filter_title": "o", "filter_author": "CNBC|Forbes"}, ["DeepMind folds proteins", "Vision at the bedside"]),
        ({"filterout_title": "market size"}, ["DeepMind folds proteins", "Vision at the bedside"]),
        ({"filterout": "casp|bedside"}, ["Robots Market Size Worth $5 Billion"]),
        ({"filterout_author": "openpr"}, ["DeepMind folds proteins", "Vision at the bedside"]),
        ({"filterout_category": "vision"}, ["Robots Market Size Worth $5 Billion", "DeepMind folds proteins"]),
        ({"filter": "o", "filterout_category": "robots"}, ["DeepMind folds proteins", "Vision at the bedside"]),
        ({"filter_title": "DEEPMIND", "filter_case_sensitive": "true"}, []),
        ({"filter_title": "DeepMind", "filter_case_sensitive": "true"}, ["DeepMind folds proteins"]),
        ({"filter_time": "86400"}, ["Robots Market Size Worth $5 Billion", "DeepMind folds proteins"]),
        ({"filter_time": "1"}, ["Robots Market Size Worth $5 Billion"]),
        ({"filter": ""}, titles(ENTRIES)),  # an empty value is no filter, as in RSSHub
    ],
)
def test_each_parameter_keeps_what_it_names(params, kept):
    assert run(**params) == kept


def test_filter_time_counts_back_from_the_anchor_not_the_clock():
    filters = query(filter_time="86400").filters
    assert titles(apply(ENTRIES, filters, T0 + timedelta(days=2))) == titles(ENTRIES)  # day 3 is "future": kept
    assert titles(apply(ENTRIES, filters, T0 + timedelta(days=30))) == []


def test_patterns_are_unicode_aware():
    unicode = (entry("Ünïcode Straße news", "https://u.example/1"),)
    assert titles(apply(unicode, query(filter_title="ÜNÏCODE STRAẞE").filters, T0)) == titles(unicode)
    assert titles(apply(unicode, query(filter_title=r"^\pL+ \pL+e news$").filters, T0)) == titles(unicode)
    # RE2's \w and \b are ASCII (Perl's classes): the README says to use \pL for letters.
    assert titles(apply(unicode, query(filter_title=r"^\w+ ").filters, T0)) == []


def test_a_backtracking_pattern_runs_in_linear_time():
    # (a+)+$ against "aaaa...!" takes exponential time on a backtracking engine (Python's re).
    slow = (entry("a" * 5000 + "!", "https://a.example/x"),)
    started = time.perf_counter()
    assert apply(slow, query(filter_title="(a+)+$").filters, T0) == ()
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "params",
    [
        {"filter": "("},
        {"filter_title": "a" * 201},
        {"filterout_author": "[z-a]"},
        {"filter_time": "0"},
        {"filter_time": "-5"},
        {"filter_time": "soon"},
        {"filter_case_sensitive": "yes"},
        {"dedupe": "url"},
        {"filter": "(((x{1000}){1000}){1000})"},  # too large a program for RE2's memory bound
    ],
)
def test_bad_values_are_query_errors(params):
    with pytest.raises(QueryError):
        query(**params)


def test_a_flag_given_twice_is_a_query_error():
    with pytest.raises(QueryError):
        parse_query({"filter": ["a", "b"]}, 50, 500)


def test_canonical_writes_filters_in_a_fixed_order():
    scrambled = {"filter_case_sensitive": ["true"], "filter_time": ["60"], "filterout": ["b"], "filter_title": ["a"]}
    assert parse_query(scrambled, 50, 500).canonical(50) == (
        "?filter_title=a&filterout=b&filter_time=60&filter_case_sensitive=true"
    )
    assert query(dedupe="title", page="2").canonical(50) == "?dedupe=title"  # the page is in the path
    assert query(dedupe="title").canonical(50, default_dedupe=True) == ""
    assert query(dedupe="none").canonical(50, default_dedupe=True) == "?dedupe=none"
    assert query(filter_case_sensitive="true").canonical(50) == ""  # a case for no pattern changes nothing
    assert not Filters()


# --- one entry per story --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Market Size Worth $5 Billion!", "market size worth $5 billion"),
        ("DeepMind solves ‘grand challenge’ with A.I.", "DeepMind solves 'grand challenge' with AI"),
        ("Ｆｕｌｌ width  title", "full width title"),  # NFKC
        ("Straße – news", "STRASSE news"),  # casefold, and a dash is punctuation
    ],
)
def test_title_key_ignores_case_punctuation_and_spacing(one, other):
    assert title_key(one) == title_key(other)


def test_title_key_keeps_words_and_symbols_apart():
    assert title_key("Worth $5 billion") != title_key("Worth 5 billion")
    assert title_key("AI rises") != title_key("AI rise")


def test_the_earliest_copy_keeps_its_place_and_id():
    newest = entry("Same story", "https://z.example/late", 5, provider="Late News")
    other = entry("Other", "https://o.example/1", 4)
    earliest = entry("Same Story!", "https://y.example/early", 1, provider="Early Wire")
    middle = entry("same story", "https://x.example/mid", 2)
    stories = one_per_story((newest, other, middle, earliest))
    assert [e.url for e in stories] == ["https://o.example/1", "https://y.example/early"]
    assert [c.url for c in stories[1].copies] == ["https://x.example/mid", "https://z.example/late"]
    # A copy that arrives later changes nothing in the story's id.
    later = entry("SAME STORY", "https://w.example/later", 9)
    assert [e.url for e in one_per_story((later, newest, other, middle, earliest))] == [e.url for e in stories]


def test_untitled_entries_are_never_merged():
    blank = (entry("…", "https://a.example/1"), entry("!!", "https://b.example/2"))
    assert one_per_story(blank) == blank


# --- through the app: the corpus sample, every format ---------------------------------------------


@pytest.fixture(scope="module")
def corpus_client(tmp_path_factory):
    """An app over a private copy of the corpus sample (never changed)."""
    folder = tmp_path_factory.mktemp("filters") / "corpus"
    shutil.copytree(CORPUS, folder)
    config = {"TESTING": True, "SEEDS_DIR": str(folder), "RELOAD_INTERVAL": 0, "BASE_URL": "https://feeds.example/"}
    return create_app(config).test_client()


def items(fmt: str, body: bytes) -> list[dict]:
    """Each entry as {id, title, links (rel=related hrefs), html (its HTML body)}, in order."""
    if fmt == "json":
        return [
            {"id": i["id"], "title": i["title"], "html": i.get("content_html", ""), "extra": i.get("_feedsvc", {})}
            for i in json.loads(body)["items"]
        ]
    parsed = feedparser.parse(body)
    return [
        {
            "id": e.id,
            "title": e.title,
            "links": [link.href for link in e.get("links", []) if link.rel == "related"],
            "html": e.content[0].value if e.get("content") else "",
        }
        for e in parsed.entries
    ]


ALL = "limit=500&include=all"


@pytest.mark.parametrize("fmt", FORMATS)
def test_filterout_title_drops_the_market_reports_of_the_corpus(corpus_client, fmt):
    everything = items(fmt, get_ok(corpus_client, f"{feed_path('ai', fmt)}?{ALL}").data)
    body = get_ok(corpus_client, f"{feed_path('ai', fmt)}?{ALL}&filterout_title=+market+").data
    kept = items(fmt, body)
    assert len(everything) == 107 and len(kept) == 96  # eleven "… Market …" press releases gone
    assert all(" market " not in e["title"].lower() for e in kept)
    assert [e["id"] for e in everything if " market " not in e["title"].lower()] == [e["id"] for e in kept]
    if fmt != "json":
        check_feed(fmt, body)


@pytest.mark.parametrize("fmt", FORMATS)
def test_paging_and_self_links_carry_the_filters(corpus_client, fmt):
    url = f"{feed_path(None, fmt)}?{ALL.replace('500', '10')}&filter=ai&filterout_author=openpr"
    every = items(fmt, get_ok(corpus_client, url.replace("limit=10", "limit=500")).data)
    seen, next_url = [], url
    while next_url:
        body = get_ok(corpus_client, next_url).data
        seen += [e["id"] for e in items(fmt, body)]
        links = page_links(fmt, body)
        for rel in ("self", "next"):
            if rel in links:
                flags = dict(parse_qsl(urlsplit(links[rel]).query))
                assert flags["filter"] == "ai" and flags["filterout_author"] == "openpr", links[rel]
        next_url = links.get("next", "").replace("https://feeds.example", "")
    assert seen == [e["id"] for e in every] and 10 < len(seen) < 107


def page_links(fmt: str, body: bytes) -> dict[str, str]:
    """The feed's self and next links."""
    if fmt == "json":
        feed = json.loads(body)
        return {"self": feed["feed_url"], **({"next": feed["next_url"]} if "next_url" in feed else {})}
    root = etree.fromstring(body)
    links = root.iter(f"{ATOM}link")
    return {link.get("rel"): link.get("href") for link in links if link.get("rel") in ("self", "next")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_filtered_feed_is_the_same_bytes_and_etag_every_time(corpus_client, fmt):
    url = f"{feed_path(None, fmt, page=2)}?include=all&limit=10&filterout=covid&filter_time=315360000"
    first = get_ok(corpus_client, url)
    # Another app over the same folder (another worker, a restart), without the fast path's replay.
    config = {**corpus_client.application.config, "FAST_PATH": False}
    again = get_ok(create_app(config).test_client(), url)
    assert first.data == again.data and first.headers["ETag"] == again.headers["ETag"]
    assert len(entry_ids(fmt, first.data)) == 10 and "filter_time=315360000" in page_links(fmt, first.data)["next"]
    # filter_time counts back from Last-Modified (the view's latest change), not from the clock.
    anchor = datetime.strptime(first.headers["Last-Modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert anchor.replace(tzinfo=timezone.utc) == corpus_client.application.extensions["feedsvc"].catalog.last_modified


def test_filter_time_keeps_what_the_last_change_makes_recent(make_client, write_article, seeds_dir):
    write_article("old.md", title="Old news", topics=["Xray"], webUrl="https://example.com/old",
                  publishedDateTime="2020-01-01T00:00:00Z")  # fmt: skip
    write_article("new.md", title="New news", topics=["Xray"], webUrl="https://example.com/new",
                  publishedDateTime="2020-01-10T00:00:00Z")  # fmt: skip
    stamp = datetime(2020, 1, 10, 12, tzinfo=timezone.utc).timestamp()
    for path in [seeds_dir, *seeds_dir.rglob("*")]:
        os.utime(path, (stamp, stamp))  # the folder last changed on 10 January 2020, noon
    client = make_client()
    body = get_ok(client, "/topics/xray/rss.xml?filter_time=86400").data
    assert [e.title for e in feedparser.parse(body).entries] == ["New news"]
    body = get_ok(client, "/topics/xray/rss.xml?filter_time=864000").data
    assert [e.title for e in feedparser.parse(body).entries] == ["New news", "Old news"]


@pytest.mark.parametrize("url", ["/rss.xml?filter=(", "/topics/ai/feed.json?filter_time=x", "/digest.html?dedupe=x"])
def test_bad_values_are_a_one_line_400(client, url):
    response = client.get(url)
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert response.data.count(b"\n") == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_dedupe_collapses_the_corpus_copies_and_links_them(corpus_client, fmt):
    plain = items(fmt, get_ok(corpus_client, f"{feed_path(None, fmt)}?{ALL}").data)
    body = get_ok(corpus_client, f"{feed_path(None, fmt)}?{ALL}&dedupe=title").data
    stories = items(fmt, body)
    assert (len(plain), len(stories)) == (107, 102)  # five stories were served twice each
    assert len({title_key(e["title"]) for e in stories}) == len(stories)
    by_id = {e["id"]: e for e in plain}
    collapsed = [e for e in stories if "Also published at" in e["html"]]
    assert len(collapsed) == 5
    for story in collapsed:
        copies = [a.get("href") for a in html.fromstring(story["html"]).iter("a") if a.get("href") not in
                  (story["id"],)][-1:]  # fmt: skip
        assert copies and copies[0] in by_id and copies[0] not in {e["id"] for e in stories}
        assert title_key(by_id[copies[0]]["title"]) == title_key(story["title"])
        if fmt == "atom":
            assert copies[0] in story["links"]
        if fmt == "json":
            assert [c["url"] for c in story["extra"]["copies"]] == copies
    if fmt != "json":
        check_feed(fmt, body)


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_the_digest_links_the_other_copies(corpus_client, kind):
    body = get_ok(corpus_client, f"/digest.{kind}?{ALL}&dedupe=title").data.decode()
    assert body.count("Also published at") == 5
    assert "https://www.entrepreneur.com/article/363767" in body  # the later copy of the Facebook AI story


def test_dedupe_default_comes_from_the_config(make_client, monkeypatch):
    monkeypatch.setenv("FEEDSVC_DEDUPE_TITLES", "true")
    on = make_client()
    assert "dedupe" not in get_ok(on, "/rss.xml").data.decode()
    off = get_ok(on, "/atom.xml?dedupe=none").data
    self_link = [l.get("href") for l in etree.fromstring(off).iter(f"{ATOM}link") if l.get("rel") == "self"]
    assert self_link[0].endswith("/atom.xml?dedupe=none")


def test_dedupe_on_by_default_collapses(write_article, make_client, monkeypatch):
    write_article("x1.md", title="Same story", topics=["Xray"], webUrl="https://example.com/x1",
                  publishedDateTime="2020-01-01T00:00:00Z")  # fmt: skip
    write_article("x2.md", title="Same  Story.", topics=["Xray"], webUrl="https://example.com/x2",
                  publishedDateTime="2020-01-02T00:00:00Z")  # fmt: skip
    assert entry_ids("rss", get_ok(make_client(), "/topics/xray/rss.xml").data) == [
        "https://example.com/x2",
        "https://example.com/x1",
    ]
    monkeypatch.setenv("FEEDSVC_DEDUPE_TITLES", "true")
    client = make_client()
    assert entry_ids("rss", get_ok(client, "/topics/xray/rss.xml").data) == ["https://example.com/x1"]
    assert len(entry_ids("rss", get_ok(client, "/topics/xray/rss.xml?dedupe=none").data)) == 2


def test_the_index_and_opml_link_to_the_filtered_feeds(client):
    opml = etree.fromstring(get_ok(client, "/feeds.opml?filterout_title=market+size&dedupe=title").data)
    urls = [o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")]  # the topics' group has none
    assert urls and all(u.endswith("/rss.xml?dedupe=title&filterout_title=market+size") for u in urls)
    index = html.fromstring(get_ok(client, "/?filter_author=wire").data)
    assert all(a.get("href").endswith("?filter_author=wire") for a in index.iter("a") if ".xml" in a.get("href"))
