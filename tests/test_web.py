"""The HTTP service through Flask's test client: feeds, index, OPML, health, errors.

Assertions are on parsed documents (lxml, lxml.html, json); raw-substring checks are used
only for what must never appear (secrets, tracebacks, filesystem paths).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import feedgen.entry
import feedgen.feed
import lxml.html
import pytest
import yaml
from helpers import (
    ATOM,
    CORPUS,
    DC,
    MEDIA,
    PROJECT,
    SEEDS,
    Server,
    ShiftingClock,
    check_feed,
    document_path,
    entry_ids,
    get_ok,
    is_absolute_uri,
    rss_titles,
    wait_for,
)
from lxml import etree
from slugify import slugify
from werkzeug.test import EnvironBuilder

import feedsvc.content.files
from feedsvc import create_app
from feedsvc.feeds.catalog import Catalog

FORMATS = ["rss", "atom"]
SLUGS = [None, "ai", "computer-vision"]
MEDIA_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
BIG = "limit=500"  # every entry of the seeds and the corpus sample fits


# --- the content, read independently of feedsvc ---------------------------------------------


def read_front_matter(path: Path) -> dict:
    """The YAML between the first two `---` lines of an article file."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    assert lines[0].strip() == "---", path
    end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    return yaml.safe_load("\n".join(lines[1:end]))


def read_folder(folder: Path) -> list[dict]:
    return [read_front_matter(p) for p in sorted(folder.iterdir()) if p.is_file()]


SEED_FILES = {p.name[:3]: read_front_matter(p) for p in sorted(SEEDS.iterdir())}
SEED_URL = {number: data["webUrl"] for number, data in SEED_FILES.items()}
PUBLISHED_SEED = "003"
UNPUBLISHED_SEEDS = ["000", "001", "002", "004"]
THREATPOST = "https://threatpost.com/lapd-facial-recognition-privacy-concerns/161364/"
GOVERNING = "https://www.governing.com/security/New-Orleans-Police-Dept-Admits-to-Facial-Recognition-Use.html"
NOLA = "https://www.nola.com/news/crime_police/article_9eda8846-25e1-11eb-9c95-4f11b10ed17a.html"


def related_urls(data: dict) -> list[str]:
    return [link["webUrl"] for link in data.get("related") or []]


def test_the_seeds_are_what_these_tests_assume():
    assert [n for n, d in SEED_FILES.items() if d.get("published") is True] == [PUBLISHED_SEED]
    assert all(d["topics"] == ["Computer Vision", "AI"] for d in SEED_FILES.values())
    assert THREATPOST in related_urls(SEED_FILES["002"])
    assert GOVERNING in related_urls(SEED_FILES["003"])
    assert related_urls(SEED_FILES["003"]).count(NOLA) == 2
    assert all(isinstance(d.get("secured"), str) and len(d["secured"]) > 40 for d in SEED_FILES.values())


# --- helpers --------------------------------------------------------------------------------


def feed_path(slug: str | None, fmt: str) -> str:
    name = "feed.json" if fmt == "json" else f"{fmt}.xml"
    return f"/topics/{slug}/{name}" if slug else f"/{name}"


def items(fmt: str, root: etree._Element) -> list[etree._Element]:
    return root.findall("channel/item") if fmt == "rss" else root.findall(f"{ATOM}entry")


def item_url(fmt: str, element: etree._Element) -> str:
    if fmt == "rss":
        return element.findtext("link")
    (href,) = [l.get("href") for l in element.findall(f"{ATOM}link") if l.get("rel") in (None, "alternate")]
    return href


def item_date(fmt: str, element: etree._Element) -> datetime:
    if fmt == "rss":
        return parsedate_to_datetime(element.findtext("pubDate"))
    return datetime.fromisoformat(element.findtext(f"{ATOM}published"))


def item_related_to(fmt: str, element: etree._Element) -> list[str]:
    if fmt == "rss":
        return [r.text for r in element.findall(f"{DC}relation")]
    return [l.get("href") for l in element.findall(f"{ATOM}link") if l.get("rel") == "related"]


def feed_urls(client, slug: str | None, fmt: str, query: str = "") -> list[str]:
    """The entry URLs of a feed, in order."""
    root = etree.fromstring(get_ok(client, feed_path(slug, fmt) + query).data)
    return [item_url(fmt, e) for e in items(fmt, root)]


def feed_links(fmt: str, root: etree._Element) -> list[etree._Element]:
    return root.findall(f"{ATOM}link") if fmt == "atom" else root.findall(f"channel/{ATOM}link")


def self_href(fmt: str, body: bytes) -> str:
    (href,) = [l.get("href") for l in feed_links(fmt, etree.fromstring(body)) if l.get("rel") == "self"]
    return href


def assert_plain_one_line(response, status: int) -> str:
    assert response.status_code == status
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    assert text.startswith(f"{status} ")
    return text


@pytest.fixture(params=["seeds", "corpus"])
def any_client(request):
    """The seeds client or the sample-corpus client."""
    return request.getfixturevalue("client" if request.param == "seeds" else "corpus_client")


@pytest.fixture
def any_folder(any_client, request) -> Path:
    """The folder `any_client` serves (the pristine copy's source: same files)."""
    return SEEDS if request.node.callspec.params["any_client"] == "seeds" else CORPUS


# --- every feed is valid, with its media type -----------------------------------------------


@pytest.mark.parametrize("include", ["", "?include=all"], ids=["published", "all"])
@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_feed_is_valid(any_client, fmt, slug, include):
    response = get_ok(any_client, feed_path(slug, fmt) + include)
    assert response.mimetype == MEDIA_TYPES[fmt]
    assert response.mimetype_params == {"charset": "utf-8"}
    root = check_feed(fmt, response.data)
    assert items(fmt, root), "a feed of a topic that exists has entries"


# --- which articles ---------------------------------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_default_serves_only_published_seeds(client, fmt, slug):
    urls = feed_urls(client, slug, fmt, "?" + BIG)
    assert SEED_URL[PUBLISHED_SEED] in urls
    for number in UNPUBLISHED_SEEDS:
        assert SEED_URL[number] not in urls, number


@pytest.mark.parametrize("query", ["?include=published&" + BIG, "?" + BIG])
def test_include_published_is_the_default(client, query):
    assert feed_urls(client, None, "atom", query) == feed_urls(client, None, "atom", "?" + BIG)


@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_include_all_serves_every_seed(client, fmt, slug):
    urls = feed_urls(client, slug, fmt, "?include=all&" + BIG)
    assert {SEED_URL[n] for n in SEED_FILES} <= set(urls)


@pytest.mark.parametrize("fmt", FORMATS)
def test_corpus_published_selection(corpus_client, fmt):
    articles = read_folder(CORPUS)
    published = [a for a in articles if a.get("published") is True]
    assert published and len(published) < len(articles)
    related_of_published = {url for a in published for url in related_urls(a)}
    default = set(feed_urls(corpus_client, None, fmt, "?" + BIG))
    everything = set(feed_urls(corpus_client, None, fmt, "?include=all&" + BIG))
    assert {a["webUrl"] for a in published} <= default
    hidden = {a["webUrl"] for a in articles if a.get("published") is not True} - related_of_published
    assert hidden and not hidden & default
    assert {a["webUrl"] for a in articles} <= everything
    assert related_of_published <= default


# --- related links are entries of their own ---------------------------------------------------


@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_related_link_of_unpublished_article_only_with_include_all(client, fmt, slug):
    assert THREATPOST not in feed_urls(client, slug, fmt, "?" + BIG)
    assert THREATPOST in feed_urls(client, slug, fmt, "?include=all&" + BIG)


@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_related_link_of_published_article_by_default(client, fmt, slug):
    root = etree.fromstring(get_ok(client, feed_path(slug, fmt)).data)
    (entry,) = [e for e in items(fmt, root) if item_url(fmt, e) == GOVERNING]
    assert item_related_to(fmt, entry) == [SEED_URL[PUBLISHED_SEED]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_article_entries_are_not_marked_related(client, fmt):
    root = etree.fromstring(get_ok(client, feed_path(None, fmt) + "?include=all&" + BIG).data)
    by_url = {item_url(fmt, e): e for e in items(fmt, root)}
    for number in SEED_FILES:
        assert item_related_to(fmt, by_url[SEED_URL[number]]) == []


@pytest.mark.parametrize("include", ["", "include=all&"], ids=["published", "all"])
@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_one_entry_per_url(client, fmt, slug, include):
    urls = feed_urls(client, slug, fmt, "?" + include + BIG)
    assert urls.count(NOLA) == 1
    assert len(urls) == len(set(urls))


@pytest.mark.parametrize("include", ["", "include=all&"], ids=["published", "all"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_one_entry_per_url_in_corpus(corpus_client, fmt, include):
    urls = feed_urls(corpus_client, None, fmt, "?" + include + BIG)
    assert len(urls) == len(set(urls))


def test_files_sharing_a_web_url_give_one_entry(write_article, make_client):
    url = "https://example.com/news/shared"
    write_article("shared-old.md", webUrl=url, title="Older copy", publishedDateTime="2021-02-01T10:00:00Z")
    write_article("shared-new.md", webUrl=url, title="Newer copy", publishedDateTime="2021-02-02T10:00:00Z")
    client = make_client()
    for fmt in FORMATS:
        root = etree.fromstring(get_ok(client, feed_path("testing", fmt)).data)
        entries = [e for e in items(fmt, root) if item_url(fmt, e) == url]
        assert len(entries) == 1
        assert entries[0].findtext("title" if fmt == "rss" else f"{ATOM}title") == "Newer copy"


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_without_published_articles_is_valid_and_dated_fixed(seeds_dir, make_client, fmt):
    next(seeds_dir.glob(f"{PUBLISHED_SEED}_*")).unlink()
    client = make_client()
    first = get_ok(client, feed_path(None, fmt)).data
    root = check_feed(fmt, first)
    assert items(fmt, root) == []
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    if fmt == "atom":
        assert datetime.fromisoformat(root.findtext(f"{ATOM}updated")) == epoch
    else:
        assert parsedate_to_datetime(root.findtext("channel/lastBuildDate")) == epoch
    assert get_ok(make_client(), feed_path(None, fmt)).data == first
    assert client.get(feed_path("ai", fmt)).status_code == 404
    assert get_ok(client, feed_path("ai", fmt) + "?include=all").status_code == 200


def test_default_seed_feed_is_exactly_the_published_article_and_its_links(client):
    expected = {SEED_URL[PUBLISHED_SEED], *related_urls(SEED_FILES[PUBLISHED_SEED])}
    for fmt in FORMATS:
        urls = feed_urls(client, None, fmt)
        assert len(urls) == len(expected) == 3
        assert set(urls) == expected


# --- order and limit --------------------------------------------------------------------------


@pytest.mark.parametrize("include", ["", "include=all&"], ids=["published", "all"])
@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_entries_newest_first(any_client, fmt, slug, include):
    root = etree.fromstring(get_ok(any_client, feed_path(slug, fmt) + "?" + include + BIG).data)
    dates = [item_date(fmt, e) for e in items(fmt, root)]
    assert dates
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rss_and_atom_list_the_same_entries(any_client, fmt):
    assert feed_urls(any_client, "ai", "rss", "?include=all") == feed_urls(any_client, "ai", "atom", "?include=all")


@pytest.mark.parametrize("limit", [1, 2, 5])
@pytest.mark.parametrize("fmt", FORMATS)
def test_limit_cuts_the_newest(any_client, fmt, limit):
    everything = feed_urls(any_client, None, fmt, "?include=all&" + BIG)
    assert len(everything) > limit
    assert feed_urls(any_client, None, fmt, f"?include=all&limit={limit}") == everything[:limit]


def test_default_limit_applies(make_client):
    client = make_client(DEFAULT_LIMIT=4)
    for fmt in FORMATS:
        assert len(feed_urls(client, None, fmt, "?include=all")) == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_limit_is_clamped_at_max_limit(make_client, fmt):
    client = make_client(MAX_LIMIT=2)
    everything = feed_urls(make_client(), None, fmt, "?include=all&" + BIG)
    response = get_ok(client, feed_path(None, fmt) + "?include=all&limit=100")
    root = check_feed(fmt, response.data)
    assert [item_url(fmt, e) for e in items(fmt, root)] == everything[:2]
    assert self_href(fmt, response.data) == f"http://localhost/{fmt}.xml?include=all&limit=2"


@pytest.mark.parametrize("fmt", FORMATS)
def test_max_limit_also_caps_the_default(make_client, fmt):
    client = make_client(MAX_LIMIT=2)
    assert len(feed_urls(client, None, fmt, "?include=all")) <= 2


# --- errors -----------------------------------------------------------------------------------

ERROR_ROUTES = ["/rss.xml", "/atom.xml", "/topics/ai/rss.xml", "/topics/computer-vision/atom.xml", "/", "/feeds.opml"]
BAD_QUERIES = [
    "include=yes",
    "include=ALL",
    "include=",
    "include=all&include=all",
    "include=all&include=published",
    "limit=0",
    "limit=-1",
    "limit=abc",
    "limit=",
    "limit=1.5",
    "limit=%EF%BC%93",  # "３", a full-width digit
    "limit=%D9%A3",  # "٣", an Arabic-Indic digit
    "limit=2&limit=3",
    "include=%0Aall%0D%0A",  # line breaks in the value must not break the one line
]


@pytest.mark.parametrize("query", BAD_QUERIES)
@pytest.mark.parametrize("route", ERROR_ROUTES)
def test_bad_flags_are_400_with_one_line(client, route, query):
    text = assert_plain_one_line(client.get(f"{route}?{query}"), 400)
    assert "Traceback" not in text


def test_unknown_params_are_ignored(client):
    plain = get_ok(client, "/atom.xml").data
    assert get_ok(client, "/atom.xml?utm_source=x&_=1&_=2&Include=bogus").data == plain


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("slug", ["no-such-topic", "AI", "ai%20", "computer%20vision", "%C3%BC"])
def test_unknown_topic_is_404(client, fmt, slug):
    assert_plain_one_line(client.get(f"/topics/{slug}/{fmt}.xml"), 404)


UNKNOWN_PATHS = [
    "/topics/ai/json.xml",
    "/topics/nope/",
    "/all/page/x/",
    "/topics/ai/rss",
    "/rss",
    "/nothing",
    "/topics/ai/rss.xml/x",
]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_unknown_path_is_404(client, path):
    assert_plain_one_line(client.get(path), 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/rss.xml", "/atom.xml", "/topics/ai/rss.xml", "/topics/computer-vision/atom.xml"])
def test_feeds_refuse_other_methods(client, method, path):
    assert_plain_one_line(client.open(path, method=method, data="x"), 405)


@pytest.mark.parametrize("path", ["/rss.xml", "/topics/ai/atom.xml"])
def test_405_names_the_allowed_methods(client, path):
    response = client.post(path)
    assert response.status_code == 405
    assert "GET" in {m.strip() for m in response.headers.get("Allow", "").split(",")}


def every_request(slugs=("ai", "computer-vision")) -> list[tuple[str, str]]:
    """(method, URL) of every route, good and bad, for the "must never contain" sweeps."""
    urls = ["/", "/?include=all", "/feeds.opml", "/feeds.opml?include=all", "/healthz"]
    for fmt in FORMATS:
        for slug in (None, *slugs):
            for query in ("", "?include=all&" + BIG, "?limit=2", "?limit=0", "?include=bad"):
                urls.append(feed_path(slug, fmt) + query)
        urls += [f"/topics/no-such-topic/{fmt}.xml", f"/topics/%00/{fmt}.xml"]
    # Other routes that may exist; the sweeps check their bodies whatever their status.
    urls += ["/feed.json?include=all&" + BIG, *(f"/topics/{s}/feed.json?include=all" for s in slugs)]
    requests = [("GET", u) for u in urls]
    requests += [("POST", "/rss.xml"), ("DELETE", "/topics/ai/atom.xml"), ("GET", "/missing"), ("PUT", "/")]
    return requests


def assert_never_leaks(body: bytes, *paths: Path) -> None:
    text = body.decode("utf-8", errors="replace")
    assert "Traceback" not in text
    assert 'File "' not in text
    for path in paths:
        assert str(path) not in text


def test_no_response_leaks_a_traceback_or_a_path(client, seeds_dir, tmp_path):
    for method, url in every_request():
        response = client.open(url, method=method)
        assert response.status_code < 500, (method, url)
        assert_never_leaks(response.data, seeds_dir, tmp_path, PROJECT, SEEDS)


def test_internal_error_is_a_plain_500_without_details(client, seeds_dir, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError(f"Traceback: exploded reading {seeds_dir}/003_b297a05077328abf.txt")

    monkeypatch.setattr(Catalog, "entries", boom)
    for url in ["/rss.xml", "/topics/ai/atom.xml", "/", "/feeds.opml"]:
        response = client.get(url)
        text = assert_plain_one_line(response, 500)
        assert_never_leaks(response.data, seeds_dir, PROJECT)
        assert "exploded" not in text


# --- rel=self and the alternates --------------------------------------------------------------

SELF_CASES = [
    ("", ""),
    ("?include=published", ""),
    ("?limit=50", ""),
    ("?include=published&limit=50&utm_source=x", ""),
    ("?include=all", "?include=all"),
    ("?limit=7", "?limit=7"),
    ("?limit=7&include=all&utm_source=x", "?include=all&limit=7"),
    ("?limit=007", "?limit=7"),
    ("?limit=99999", "?limit=500"),
]


@pytest.mark.parametrize("query, canonical", SELF_CASES, ids=[q or "none" for q, _ in SELF_CASES])
@pytest.mark.parametrize("slug", SLUGS, ids=str)
@pytest.mark.parametrize("fmt", FORMATS)
def test_self_link_is_the_canonical_request_url(client, fmt, slug, query, canonical):
    body = get_ok(client, feed_path(slug, fmt) + query).data
    href = self_href(fmt, body)
    assert is_absolute_uri(href)
    assert href == "http://localhost" + feed_path(slug, fmt) + canonical


@pytest.mark.parametrize("fmt", FORMATS)
def test_self_link_follows_the_requested_host(client, fmt):
    body = get_ok(client, feed_path("ai", fmt) + "?include=all", base_url="https://feeds.example.org").data
    assert self_href(fmt, body) == f"https://feeds.example.org/topics/ai/{fmt}.xml?include=all"


@pytest.mark.parametrize("fmt", FORMATS)
def test_self_link_uses_configured_base_url(make_client, fmt):
    client = make_client(BASE_URL="https://news.example.net/feeds/")
    body = get_ok(client, feed_path(None, fmt)).data
    assert self_href(fmt, body) == f"https://news.example.net/feeds/{fmt}.xml"
    for link in feed_links(fmt, etree.fromstring(body)):
        assert link.get("href").startswith("https://news.example.net/feeds/")


# --- the Host header: links need one, unless BASE_URL is set ---------------------------------------

LINKED_ROUTES = ["/rss.xml", "/topics/ai/atom.xml", "/feed.json", "/digest.html", "/topics/ai/digest.txt", "/",
                 "/feeds.opml"]  # fmt: skip
NO_HOST = {
    "missing (HTTP/1.0)": None,
    "empty": "",
    "blank": " ",
    "a space": "feeds example.org",
    "a path": "feeds.example.org/rss.xml",
    "user info": "me@feeds.example.org",
    "a bad port": "example.org:http",
    "a port too large": "example.org:65536",
    "a port zero": "example.org:0",
    "two hosts": "a.example, b.example",
}


def wsgi_get(app, path: str, host: str | None, protocol: str = "HTTP/1.0") -> tuple[int, dict, bytes]:
    """A GET through the WSGI app (fast path included) with a hand-built environ: `host` None sends no Host."""
    environ = EnvironBuilder(path=path, base_url="http://unused.invalid/").get_environ()
    environ.pop("HTTP_HOST", None)
    environ.update({"SERVER_PROTOCOL": protocol, "SERVER_NAME": "0.0.0.0", "SERVER_PORT": "8000"})
    if host is not None:
        environ["HTTP_HOST"] = host
    seen = {}
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.update(status=status, headers=headers)))
    return int(seen["status"].split()[0]), dict(seen["headers"]), body


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
@pytest.mark.parametrize("host", list(NO_HOST.values()), ids=list(NO_HOST))
def test_a_request_without_a_valid_host_is_400_without_base_url(seeds_dir, host, fast_path):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, "FAST_PATH": fast_path})
    wsgi_get(app, "/rss.xml", "localhost")  # a good response kept for replay must not answer them
    for path in LINKED_ROUTES:
        for _ in range(2):
            status, headers, body = wsgi_get(app, path, host)
            assert status == 400, (path, body)
            assert body == b"400 no valid Host header: send Host (host[:port]) or set BASE_URL (FEEDSVC_BASE_URL)\n"
            assert headers["Content-Type"].startswith("text/plain")
    assert wsgi_get(app, "/healthz", host)[0] == 200  # health checks (HTTP/1.0, no Host) still work


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
@pytest.mark.parametrize("host", list(NO_HOST.values()), ids=list(NO_HOST))
def test_base_url_makes_the_host_header_irrelevant(seeds_dir, host, fast_path):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, "FAST_PATH": fast_path,
                      "BASE_URL": "https://feeds.example.org/news/"})  # fmt: skip
    for path in LINKED_ROUTES:
        status, _, body = wsgi_get(app, path, host)
        assert status == 200, path
    status, _, body = wsgi_get(app, "/topics/ai/rss.xml", host)
    assert self_href("rss", body) == "https://feeds.example.org/news/topics/ai/rss.xml"


@pytest.mark.parametrize(
    ("host", "base"),
    [("feeds.example.org", "http://feeds.example.org/"), ("Feeds.Example.ORG", "http://feeds.example.org/"),
     ("feeds.example.org:80", "http://feeds.example.org/"),
     ("feeds.example.org:8080", "http://feeds.example.org:8080/"), ("127.0.0.1:8000", "http://127.0.0.1:8000/"),
     ("[::1]:8000", "http://[::1]:8000/"), ("feed_svc", "http://feed_svc/"), ("localhost.", "http://localhost./")],
)  # fmt: skip
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
def test_links_are_built_on_a_valid_host_header(seeds_dir, host, base, fast_path):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, "FAST_PATH": fast_path})
    for protocol in ("HTTP/1.0", "HTTP/1.1"):
        status, _, body = wsgi_get(app, "/topics/ai/atom.xml", host, protocol)
        assert status == 200
        root = etree.fromstring(body)
        assert self_href("atom", body) == base + "topics/ai/atom.xml"
        assert all(is_absolute_uri(link.get("href")) for link in root.iter(f"{ATOM}link"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_self_link_of_the_other_format_is_its_alternate(client, fmt):
    other = "atom" if fmt == "rss" else "rss"
    query = "?limit=3&include=all"
    body = get_ok(client, feed_path("ai", fmt) + query).data
    alternates = {
        l.get("type"): l.get("href") for l in feed_links(fmt, etree.fromstring(body)) if l.get("rel") == "alternate"
    }
    other_body = get_ok(client, feed_path("ai", other) + query).data
    assert alternates[MEDIA_TYPES[other]] == self_href(other, other_body)


@pytest.mark.parametrize("slug", SLUGS, ids=str)
def test_atom_id_ignores_limit(client, slug):
    def atom_id(query):
        return etree.fromstring(get_ok(client, feed_path(slug, "atom") + query).data).findtext(f"{ATOM}id")

    assert atom_id("") == atom_id("?limit=1") == atom_id("?limit=500")
    assert atom_id("?include=all") == atom_id("?include=all&limit=2") != atom_id("")


# --- pages at paths: /page/N/NAME, /topics/SLUG/page/N/NAME ---------------------------------------

DOCUMENTS = ["rss.xml", "atom.xml", "feed.json", "digest.html", "digest.txt"]
FEED_FORMATS = {"rss.xml": "rss", "atom.xml": "atom", "feed.json": "json"}
DOCUMENT_TYPES = {"rss.xml": "application/rss+xml", "atom.xml": "application/atom+xml",
                  "feed.json": "application/feed+json", "digest.html": "text/html", "digest.txt": "text/plain"}  # fmt: skip


def assert_moved(response, location: str) -> None:
    """A 301 Moved Permanently to exactly `location`."""
    assert response.status_code == 301, (response.status_code, response.data[:200])
    assert response.headers["Location"] == location


@pytest.mark.parametrize("slug", [None, "ai"], ids=str)
@pytest.mark.parametrize("name", DOCUMENTS)
def test_page_two_is_served_at_its_path(client, name, slug):
    first = get_ok(client, document_path(slug, name) + "?include=all&limit=2")
    second = get_ok(client, document_path(slug, name, 2) + "?include=all&limit=2")
    assert second.mimetype == DOCUMENT_TYPES[name] and second.data != first.data
    if name in FEED_FORMATS:
        fmt = FEED_FORMATS[name]
        everything = entry_ids(fmt, get_ok(client, document_path(slug, name) + "?include=all&" + BIG).data)
        assert len(everything) > 4
        assert entry_ids(fmt, first.data) == everything[:2]
        assert entry_ids(fmt, second.data) == everything[2:4]


@pytest.mark.parametrize(
    "query, page, canonical",
    [
        ("?page=2", 2, ""),
        ("?limit=2&page=3&utm_source=x", 3, "?limit=2"),
        ("?page=2&limit=2&include=all", 2, "?include=all&limit=2"),
        ("?page=1&limit=1", 1, "?limit=1"),
        ("?page=1", 1, ""),
        ("?page=02&include=published&limit=50", 2, ""),
    ],
)
@pytest.mark.parametrize("slug", [None, "ai"], ids=str)
@pytest.mark.parametrize("name", DOCUMENTS)
def test_page_query_moves_permanently_to_the_path(client, name, slug, query, page, canonical):
    """Old ?page=N links and subscriptions keep working: readers follow the 301 and update."""
    location = "http://localhost" + document_path(slug, name, page) + canonical
    for path in (document_path(slug, name), document_path(slug, name, 2)):  # also on a page's own path
        assert_moved(client.get(path + query), location)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_page_one_in_the_path_moves_to_the_documents_own_url(client, name):
    assert_moved(client.get(f"/page/1/{name}"), f"http://localhost/{name}")
    assert_moved(client.get(f"/topics/ai/page/1/{name}?limit=3&x=1"), f"http://localhost/topics/ai/{name}?limit=3")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_page_redirects_are_built_on_base_url_and_keep_the_preview_token(make_client, name):
    client = make_client(BASE_URL="https://news.example.net/feeds/", PREVIEW_TOKEN="tok")
    public = client.get(f"/topics/ai/{name}?page=2&limit=1")
    assert_moved(public, f"https://news.example.net/feeds/topics/ai/page/2/{name}?limit=1")
    assert public.cache_control.public and not public.cache_control.private
    preview = client.get(f"/{name}?limit=1&token=tok&include=all&page=2")
    assert_moved(preview, f"https://news.example.net/feeds/page/2/{name}?include=all&token=tok&limit=1")
    assert preview.cache_control.private and not preview.cache_control.public
    assert client.get(f"/{name}?include=all&page=2").status_code == 403  # no redirect without the token


BAD_PAGE_SEGMENTS = ["0", "00", "01", "002", "-1", "+2", "x", "1.5", "2e1", "%202", "2%20", "%D9%A2", "9" * 30]


@pytest.mark.parametrize("segment", BAD_PAGE_SEGMENTS)
@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_page_number_not_written_plainly_is_404(client, name, segment):
    """One URL per page: /page/02/ is not /page/2/ (a static host could not answer both)."""
    assert_plain_one_line(client.get(f"/page/{segment}/{name}?limit=1"), 404)
    assert_plain_one_line(client.get(f"/topics/ai/page/{segment}/{name}?limit=1"), 404)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_page_past_the_last_is_404(client, name):
    get_ok(client, document_path("ai", name, 2) + "?limit=1")
    for page in (50, 10**17):
        assert_plain_one_line(client.get(document_path("ai", name, page) + "?limit=1"), 404)
    assert_plain_one_line(client.get(document_path("ai", name, 2)), 404)  # 50 a page: one page


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.5", "%D9%A2"])
@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_bad_page_query_is_still_400(client, name, value):
    assert_plain_one_line(client.get(f"/{name}?page={value}"), 400)
    assert_plain_one_line(client.get(f"/topics/ai/page/2/{name}?page={value}"), 400)
    assert_plain_one_line(client.get(f"/{name}?page=2&page=2"), 400)


def paging_links(fmt: str, body: bytes) -> dict[str, str]:
    """rel -> href of a feed's RFC 5005 links and its self link (JSON Feed: next_url, feed_url)."""
    if fmt == "json":
        data = json.loads(body)
        return {"self": data["feed_url"]} | ({"next": data["next_url"]} if "next_url" in data else {})
    wanted = ("self", "first", "last", "previous", "next")
    return {l.get("rel"): l.get("href") for l in feed_links(fmt, etree.fromstring(body)) if l.get("rel") in wanted}


@pytest.mark.parametrize("name", list(FEED_FORMATS))
def test_every_paging_link_is_a_path_url_that_resolves(corpus_client, name):
    fmt, base = FEED_FORMATS[name], "http://localhost"
    first = get_ok(corpus_client, f"/{name}?include=all&limit=3")
    pages = [first.data]
    url = paging_links(fmt, first.data).get("next")
    while url:
        assert len(pages) < 100
        pages.append(get_ok(corpus_client, url[len(base) :]).data)
        url = paging_links(fmt, pages[-1]).get("next")
    assert len(pages) >= 3
    for number, body in enumerate(pages, start=1):
        links = paging_links(fmt, body)
        assert links["self"] == base + document_path(None, name, number) + "?include=all&limit=3"
        for rel, href in links.items():
            assert href.startswith(base + "/") and href.endswith(f"/{name}?include=all&limit=3"), (rel, href)
            assert get_ok(corpus_client, href[len(base) :]).status_code == 200
        if fmt != "json":
            assert links["first"] == base + f"/{name}?include=all&limit=3"
            assert links["last"] == base + document_path(None, name, len(pages)) + "?include=all&limit=3"


NEWSBOAT = shutil.which("newsboat")


@pytest.mark.slow  # a real `feedsvc serve` and a real feed reader
@pytest.mark.skipif(NEWSBOAT is None, reason="newsboat is not installed: apt-get install -y newsboat")
def test_a_reader_subscribed_to_an_old_page_link_gets_the_page(seeds_dir, tmp_path):
    server = Server(seeds_dir)
    try:
        (tmp_path / "urls").write_text(server.url("/topics/ai/rss.xml?page=2&limit=1") + "\n", encoding="utf-8")
        (tmp_path / "config").write_text("", encoding="utf-8")
        command = [
            NEWSBOAT,
            "-u",
            str(tmp_path / "urls"),
            "-c",
            str(tmp_path / "cache.db"),
            "-C",
            str(tmp_path / "config"),
        ]
        reload = subprocess.run([*command, "-x", "reload"], env={**os.environ, "HOME": str(tmp_path)},
                                capture_output=True, timeout=60, check=False)  # fmt: skip
        assert reload.returncode == 0, reload.stderr
        with closing(sqlite3.connect(tmp_path / "cache.db")) as cache:
            got = [title for (title,) in cache.execute("SELECT title FROM rss_item")]
        status, _, page = server.request("/topics/ai/page/2/rss.xml?limit=1")
        assert status == 200 and got == rss_titles(page) and len(got) == 1  # followed the 301 to page 2
    finally:
        assert server.stop() == 0, server.output[-2000:]


# --- the same bytes, whatever the instance and the time ---------------------------------------


def all_bodies(client) -> dict[str, bytes]:
    urls = ["/", "/?include=all", "/feeds.opml", "/feeds.opml?include=all", "/healthz"]
    urls += [feed_path(s, f) + q for s in SLUGS for f in FORMATS for q in ("", "?include=all", "?limit=2")]
    return {url: get_ok(client, url).data for url in urls}


def test_same_bytes_from_two_app_instances(make_client):
    assert all_bodies(make_client()) == all_bodies(make_client())


@pytest.mark.slow
def test_same_bytes_across_time(make_client, monkeypatch):
    before = all_bodies(make_client())
    time.sleep(1.1)
    monkeypatch.setattr(feedgen.feed, "datetime", ShiftingClock)
    monkeypatch.setattr(feedgen.entry, "datetime", ShiftingClock)
    after = all_bodies(make_client())
    assert after == before


def test_same_bytes_from_one_instance_twice(client):
    assert all_bodies(client) == all_bodies(client)


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_date_is_the_newest_entry_date(any_client, fmt):
    root = etree.fromstring(get_ok(any_client, feed_path(None, fmt) + "?include=all").data)
    newest = max(item_date(fmt, e) for e in items(fmt, root))
    if fmt == "atom":
        assert datetime.fromisoformat(root.findtext(f"{ATOM}updated")) == newest
    else:
        assert parsedate_to_datetime(root.findtext("channel/lastBuildDate")) == newest


# --- the secured blob -------------------------------------------------------------------------


def secrets_of(folder: Path) -> list[str]:
    found = []
    for data in read_folder(folder):
        secured = data.get("secured")
        if secured:
            found.append(secured)
            found.extend(part for part in secured.split(";") if len(part) >= 16)
    return found


def test_secured_blob_never_served(any_client, any_folder):
    secrets = secrets_of(any_folder)
    assert secrets
    slugs = ("ai", "computer-vision")
    urls = ["/", "/?include=all", "/feeds.opml?include=all", "/healthz"]
    urls += [feed_path(s, f) + "?include=all&" + BIG for s in (None, *slugs) for f in FORMATS]
    urls += [feed_path(s, f) for s in (None, *slugs) for f in FORMATS]
    for url in urls:
        body = get_ok(any_client, url).get_data(as_text=True)
        for secret in secrets:
            assert secret not in body, url
    for method, url in every_request():
        body = any_client.open(url, method=method).get_data(as_text=True)
        for secret in secrets:
            assert secret not in body, url


def test_secured_blob_of_a_written_article_never_served(write_article, make_client):
    secret = "SECRET-" + "x9Qz" * 30
    write_article("secret.md", secured=secret, topics=["Secrets"])
    client = make_client()
    urls = ["/", "/feeds.opml", "/healthz"] + [feed_path(s, f) for s in (None, "secrets") for f in FORMATS]
    for url in urls:
        assert secret not in get_ok(client, url + "?include=all" if url != "/healthz" else url).get_data(as_text=True)


# --- URLs go out percent-encoded --------------------------------------------------------------

RAW_URL = "https://example.com/a b/ü"
ENCODED_URL = "https://example.com/a%20b/%C3%BC"


@pytest.fixture
def encoded_client(write_article, make_client):
    write_article(
        "unsafe-url.md",
        webUrl=RAW_URL,
        topics=["Testing"],
        images=[{"url": "https://example.com/img dir/ü.jpg", "width": 10, "height": 20}],
    )
    return make_client()


@pytest.mark.parametrize("slug", [None, "testing"], ids=str)
def test_unsafe_url_is_percent_encoded_in_both_formats(encoded_client, slug):
    found = {}
    for fmt in FORMATS:
        body = get_ok(encoded_client, feed_path(slug, fmt)).data
        root = check_feed(fmt, body)
        (entry,) = [e for e in items(fmt, root) if "example.com/a" in item_url(fmt, e)]
        identifier = entry.findtext("guid") if fmt == "rss" else entry.findtext(f"{ATOM}id")
        found[fmt] = (item_url(fmt, entry), identifier, entry.find(f"{MEDIA}content").get("url"))
    assert found["rss"] == found["atom"] == (ENCODED_URL, ENCODED_URL, "https://example.com/img%20dir/%C3%BC.jpg")


# --- the index page ---------------------------------------------------------------------------


def expected_topics(folder: Path, include_all: bool) -> dict[str, str]:
    """slug -> one display name, of the topics the selected articles carry."""
    topics = {}
    for data in read_folder(folder):
        if include_all or data.get("published") is True:
            for name in data.get("topics") or []:
                topics.setdefault(slugify(name), name)
    return topics


@pytest.mark.parametrize("include", ["", "?include=all"], ids=["published", "all"])
def test_index_lists_every_topic_with_its_count(any_client, any_folder, include):
    response = get_ok(any_client, "/" + include)
    assert response.mimetype == "text/html"
    page = lxml.html.fromstring(response.data)
    rows = {row.get("id"): row for row in page.xpath("//tr[@id]")}
    expected = expected_topics(any_folder, bool(include))
    assert set(rows) == set(expected)
    for slug, row in rows.items():
        cells = row.findall("td")
        assert cells[0].text_content().strip()
        count = int(cells[1].text_content())
        entries = feed_urls(any_client, slug, "atom", (include + "&" if include else "?") + BIG)
        assert count == len(entries) > 0, slug


@pytest.mark.parametrize("include", ["", "?include=all"], ids=["published", "all"])
def test_index_feed_links_work(any_client, include):
    page = lxml.html.fromstring(get_ok(any_client, "/" + include).data)
    hrefs = page.xpath("//a/@href")
    feeds = [h for h in hrefs if h.endswith((".xml", ".xml" + include)) and include in h]
    assert len(feeds) >= 2 * (1 + len(page.xpath("//tr[@id]")))
    for row in page.xpath("//tr[@id]"):
        slug = row.get("id")
        row_links = set(row.xpath(".//a/@href"))
        assert {f"http://localhost{feed_path(slug, fmt)}{include}" for fmt in FORMATS} <= row_links
    for href in feeds:
        assert is_absolute_uri(href)
        fmt = "rss" if "/rss.xml" in href else "atom"
        response = get_ok(any_client, href)
        assert response.mimetype == MEDIA_TYPES[fmt]


@pytest.mark.parametrize("include", ["", "?include=all"], ids=["published", "all"])
def test_index_autodiscovery_links(any_client, any_folder, include):
    page = lxml.html.fromstring(get_ok(any_client, "/" + include).data)
    found = {
        (link.get("type"), link.get("href"))
        for link in page.xpath("//head/link[@rel='alternate']")
        if link.get("type") in MEDIA_TYPES.values()
    }
    slugs = [None, *expected_topics(any_folder, bool(include))]
    expected = {(MEDIA_TYPES[f], f"http://localhost{feed_path(s, f)}{include}") for s in slugs for f in FORMATS}
    assert found == expected
    for link in page.xpath("//head/link[@rel='alternate']"):
        assert link.get("title")


def test_index_escapes_topic_names(write_article, make_client):
    write_article("markup.md", topics=["R&D <Labs>"], webUrl="https://example.com/markup")
    page = lxml.html.fromstring(get_ok(make_client(), "/").data)
    names = [row.findall("td")[0].text_content() for row in page.xpath("//tr[@id]")]
    assert "R&D <Labs>" in names
    assert page.xpath("//labs") == []


# --- OPML -------------------------------------------------------------------------------------


@pytest.mark.parametrize("include", ["", "?include=all"], ids=["published", "all"])
def test_opml_lists_every_topic_feed(any_client, any_folder, include):
    response = get_ok(any_client, "/feeds.opml" + include)
    assert response.mimetype == "text/x-opml"
    root = etree.fromstring(response.data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title").strip()
    outlines = root.findall(".//outline[@xmlUrl]")
    xml_urls = [o.get("xmlUrl") for o in outlines]
    for outline in outlines:
        assert outline.get("type") == "rss"
        assert outline.get("text")
        assert is_absolute_uri(outline.get("xmlUrl"))
    expected = {f"http://localhost{feed_path(s, 'rss')}{include}" for s in expected_topics(any_folder, bool(include))}
    # The topic feeds in one group outline; "All topics" apart, after it (see test_newsboat_...).
    (group,) = root.findall("body/outline[outline]")
    assert group.get("text") == "feedsvc: topics" and group.get("xmlUrl") is None
    assert {o.get("xmlUrl") for o in group.findall("outline")} == expected
    assert [o.get("xmlUrl") for o in root.findall("body/outline[@xmlUrl]")] == [f"http://localhost/rss.xml{include}"]
    assert xml_urls[-1] == f"http://localhost/rss.xml{include}"
    assert len(xml_urls) == len(set(xml_urls)) == len(expected) + 1
    for url in xml_urls:
        check_feed("rss", get_ok(any_client, url).data)
    for outline in outlines:  # htmlUrl: the feed's page for people (the topic page, /all/)
        xml_path = urlsplit(outline.get("xmlUrl")).path
        page_path = "/all/" if xml_path == "/rss.xml" else xml_path.removesuffix("rss.xml")
        assert urlsplit(outline.get("htmlUrl")).path == page_path
        assert b"<!doctype html>" in get_ok(any_client, outline.get("htmlUrl")).data[:100].lower()


def test_opml_escapes_topic_names(write_article, make_client):
    write_article("markup.md", topics=["R&D <Labs>"], webUrl="https://example.com/markup")
    root = etree.fromstring(get_ok(make_client(), "/feeds.opml?include=all&limit=3").data)
    # Readers (newsboat, Feedly's import) show `text` as it is: the name, XML-escaped and no more.
    assert "feedsvc: R&D <Labs>" in [o.get("text") for o in root.findall(".//outline[@xmlUrl]")]
    assert "feedsvc: R&D <Labs>" in [o.get("title") for o in root.findall(".//outline[@xmlUrl]")]
    assert all(o.get("xmlUrl").endswith("?include=all&limit=3") for o in root.findall(".//outline[@xmlUrl]"))


NEWSBOAT = Path("/usr/bin/newsboat")


def newsboat(home: Path, *arguments: str) -> None:
    """Run newsboat without a terminal on the files in `home` (urls, cache.db, config), never the user's."""
    files = ["-C", str(home / "config"), "-u", str(home / "urls"), "-c", str(home / "cache.db")]
    environment = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home)}
    subprocess.run([str(NEWSBOAT), *files, *arguments], env=environment, stdin=subprocess.DEVNULL,
                   capture_output=True, check=True, timeout=120)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not NEWSBOAT.exists(), reason="newsboat is not installed (Debian: apt-get install newsboat)")
@pytest.mark.parametrize("source", [SEEDS, CORPUS], ids=["seeds", "corpus"])
def test_newsboat_importing_the_opml_shows_every_entry_in_all_topics(source, tmp_path):
    """newsboat keeps an entry id in one feed only, the one it reloaded last (its issue #898), and
    reloads in the OPML's order: "All topics", listed last, must hold every entry it serves (listed
    first, it was left empty); no entry is lost, none is stored twice. (Every entry of every topic
    feed cannot be shown there: topics overlap, and two of the corpus's serve the same entries.)"""
    shutil.copytree(source, tmp_path / "articles")
    server = Server(tmp_path / "articles")
    try:
        (tmp_path / "feeds.opml").write_bytes(wait_for(server.url("/feeds.opml")))
        (tmp_path / "config").write_text("download-retries 1\nreload-threads 1\n")
        newsboat(tmp_path, "-i", str(tmp_path / "feeds.opml"))
        newsboat(tmp_path, "-x", "reload")
        opml = etree.parse(str(tmp_path / "feeds.opml")).getroot()
        served = {}
        for outline in opml.iterfind(".//outline[@xmlUrl]"):
            served[outline.get("xmlUrl")] = {
                item.findtext("guid") for item in etree.fromstring(wait_for(outline.get("xmlUrl"))).iter("item")
            }
    finally:
        assert server.stop() == 0, server.output[-3000:]
    db = sqlite3.connect(tmp_path / "cache.db")
    try:
        stored = db.execute("SELECT feedurl, guid FROM rss_item").fetchall()
    finally:
        db.close()
    everything = server.url("/rss.xml")
    assert served[everything] == set().union(*served.values()) and len(served[everything]) > 1
    assert {guid for feed, guid in stored if feed == everything} == served[everything]
    assert sorted(guid for _, guid in stored) == sorted(served[everything])  # every entry, once
    assert list(served)[-1] == everything and len(served) > 2
    # The topic feeds came in as one group: newsboat files them under its name, as a tag.
    topics = [line for line in (tmp_path / "urls").read_text().splitlines() if "/topics/" in line]
    assert len(topics) == len(served) - 1 and all(line.endswith(' "feedsvc: topics"') for line in topics)


# --- health -----------------------------------------------------------------------------------


def all_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*all_strings(k), *all_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in all_strings(v)]
    return []


def test_healthz_of_the_seeds(client):
    response = get_ok(client, "/healthz")
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["articles"] == len(SEED_FILES) == 5
    assert data["skipped"] == []


@pytest.fixture
def broken_client(write_article, make_client, seeds_dir):
    write_article("bad.md", text="no front matter")
    write_article("nested/unclosed.md", text="---\ntitle: never closed\n")
    write_article("badyaml.md", text="---\ntitle: [unterminated\n---\n")
    write_article("notitle.md", text="---\nwebUrl: https://example.com/x\npublishedDateTime: 2021-01-01\n---\n")
    (seeds_dir / "latin1.md").write_bytes("---\ntitle: caf\xe9\n---\n".encode("latin-1"))
    return make_client()


BROKEN = {"bad.md", "nested/unclosed.md", "badyaml.md", "notitle.md", "latin1.md"}


def test_healthz_lists_skipped_files_with_reasons(broken_client):
    data = get_ok(broken_client, "/healthz").get_json()
    assert data["articles"] == 5
    skipped = {item["path"]: item for item in data["skipped"]}
    assert set(skipped) == BROKEN
    for item in skipped.values():
        assert isinstance(item["reason"], str) and item["reason"].strip()
        assert "\n" not in item["reason"]


def test_healthz_never_contains_an_absolute_path(broken_client, seeds_dir, tmp_path):
    response = get_ok(broken_client, "/healthz")
    assert_never_leaks(response.data, seeds_dir, tmp_path, PROJECT)
    for text in all_strings(json.loads(response.data)):
        assert not text.startswith("/") and not Path(text).is_absolute(), text
        assert "\\" not in text


# /healthz: public figures only, unless the preview token is given (or none is set)

TOKEN = "preview-token-0123456789"


@pytest.fixture
def drafts_folder(write_article):
    """The seeds (one published article; topics AI and Computer Vision) and a draft whose topic no
    published article has."""
    write_article("draft.md", published=False, topics=["Unannounced Merger"], webUrl="https://example.com/draft")


def test_public_healthz_shows_public_figures_only(drafts_folder, make_client):
    response = get_ok(make_client(PREVIEW_TOKEN=TOKEN), "/healthz")
    data = response.get_json()
    assert (data["status"], data["published"], data["topics"]) == ("ok", 1, 2)
    assert "articles" not in data and "all_topics" not in data  # 6 articles, 3 topics: the drafts' count
    assert "Unannounced" not in response.get_data(as_text=True)


def test_healthz_with_the_preview_token_shows_every_figure(drafts_folder, make_client):
    data = get_ok(make_client(PREVIEW_TOKEN=TOKEN), f"/healthz?token={TOKEN}").get_json()
    assert (data["published"], data["topics"], data["articles"], data["all_topics"]) == (1, 2, 6, 3)


def test_healthz_with_a_wrong_preview_token_is_403(drafts_folder, make_client):
    response = make_client(PREVIEW_TOKEN=TOKEN).get("/healthz?token=wrong")
    assert response.status_code == 403
    assert TOKEN not in response.get_data(as_text=True)


def test_healthz_without_a_preview_token_set_shows_every_figure(drafts_folder, make_client):
    # Without PREVIEW_TOKEN, include=all shows the drafts themselves to anyone: their count is no secret.
    data = get_ok(make_client(), "/healthz").get_json()
    assert (data["published"], data["topics"], data["articles"], data["all_topics"]) == (1, 2, 6, 3)


# /healthz: 503 with the reason while this worker's reloads are stuck or failing


def test_healthz_is_503_with_the_reason_while_a_reload_is_stuck(write_article, make_client, monkeypatch):
    release, real = threading.Event(), feedsvc.content.files.load_named

    def blocked(filename: str, name: str, *args, **kwargs):
        if name == "blocked.md":
            release.wait(20)  # a read that never returns, until the test ends
        return real(filename, name, *args, **kwargs)

    monkeypatch.setattr(feedsvc.runtime.loader, "load_named", blocked)
    client = make_client(RELOAD_INTERVAL=0.05, WATCH_EVENTS=False, RELOAD_STUCK_AFTER=0.5)
    store = client.application.extensions["feedsvc"]
    try:
        assert get_ok(client, "/healthz").get_json()["status"] == "ok"  # the first request starts the watcher
        write_article("blocked.md", webUrl="https://example.com/blocked")
        assert wait_for_status(client, 503)
        data = client.get("/healthz").get_json()
        assert data["status"] == "unhealthy" and "RELOAD_STUCK_AFTER" in data["reason"]
        assert data["published"] == 1  # the figures of what is still served
        release.set()
        assert wait_for_status(client, 200)
        assert get_ok(client, "/healthz").get_json()["reason"] is None
    finally:
        release.set()
        store.stop_watching()


def test_healthz_is_503_while_reloads_fail_and_200_once_one_succeeds(make_client, monkeypatch):
    def failing(*args, **kwargs):
        raise OSError(5, "Input/output error", "/srv/private/seeds")

    client = make_client(RELOAD_INTERVAL=0.05, WATCH_EVENTS=False)
    store = client.application.extensions["feedsvc"]
    try:
        get_ok(client, "/healthz")
        monkeypatch.setattr(feedsvc.runtime.store, "scan", failing)
        assert wait_for_status(client, 503)
        response = client.get("/healthz")
        data = response.get_json()
        assert data["status"] == "unhealthy" and data["reload"]["failures"] >= 1
        assert "failed" in data["reason"] and "Input/output error" in data["reason"]
        assert "/srv" not in response.get_data(as_text=True)
        monkeypatch.undo()
        assert wait_for_status(client, 200)
        assert get_ok(client, "/healthz").get_json()["reload"]["failures"] == 0
    finally:
        store.stop_watching()


def wait_for_status(client, status: int, seconds: float = 10.0) -> bool:
    """Whether /healthz answers `status` within `seconds`."""
    deadline = time.monotonic() + seconds
    while client.get("/healthz").status_code != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_healthz_tells_when_the_last_reload_began_and_ended(client):
    store = client.application.extensions["feedsvc"]
    store.reload()
    data = get_ok(client, "/healthz").get_json()
    started, finished = (
        datetime.fromisoformat(data["reload"][k].replace("Z", "+00:00")) for k in ("started", "finished")
    )
    assert started <= finished <= datetime.now(timezone.utc)
    assert (data["status"], data["reason"], data["unreadable"], data["reload"]["failures"]) == ("ok", None, [], 0)


def test_broken_files_do_not_hide_the_other_articles(broken_client):
    for fmt in FORMATS:
        everything = feed_urls(broken_client, None, fmt, "?include=all&" + BIG)
        assert {SEED_URL[n] for n in SEED_FILES} <= set(everything)
        assert SEED_URL[PUBLISHED_SEED] in feed_urls(broken_client, "ai", fmt)


def test_broken_files_leak_nothing(broken_client, seeds_dir, tmp_path):
    for method, url in every_request():
        assert_never_leaks(broken_client.open(url, method=method).data, seeds_dir, tmp_path, PROJECT)


# --- pages for people: topic pages, /all/, a feed's URL opened in a browser ----------------------

NAVIGATION = {"Sec-Fetch-Dest": "document"}  # what every current browser sends for a top-level navigation
FEED_KINDS = ["rss", "atom", "json"]
FEED_TYPES = {**MEDIA_TYPES, "json": "application/feed+json"}


def page_entries(body: bytes) -> list[tuple[str, bool]]:
    """(entry URL, marked related) of each entry of a page, in order."""
    page = lxml.html.fromstring(body)
    return [
        (entry.xpath(".//h2/a/@href")[0], "related" in entry.get("class").split())
        for entry in page.xpath("//ol[@class='entries']/li[contains(@class, 'entry')]")
    ]


def page_path(slug: str | None) -> str:
    return f"/topics/{slug}/" if slug else "/all/"


@pytest.mark.parametrize("include", ["", "?include=all"], ids=["published", "all"])
@pytest.mark.parametrize("slug", SLUGS, ids=str)
def test_topic_page_lists_the_feeds_entries_with_subscribe_and_autodiscovery_links(any_client, slug, include):
    response = get_ok(any_client, page_path(slug) + include)
    assert response.mimetype == "text/html"
    atom = etree.fromstring(get_ok(any_client, feed_path(slug, "atom") + include).data)
    related = {
        item_url("atom", e)
        for e in items("atom", atom)
        if any(l.get("rel") == "related" for l in e.findall(f"{ATOM}link"))
    }
    entries = page_entries(response.data)
    assert [url for url, _ in entries] == feed_urls(any_client, slug, "atom", include)  # same list, same limit
    assert {url for url, marked in entries if marked} == related
    page = lxml.html.fromstring(response.data)
    feeds = {f: f"http://localhost{feed_path(slug, f)}{include}" for f in FEED_KINDS}
    alternates = {(l.get("type"), l.get("href")) for l in page.xpath("//head/link[@rel='alternate']")}
    assert alternates == {(FEED_TYPES[f], url) for f, url in feeds.items()}
    assert set(feeds.values()) <= set(page.xpath("//p[@class='subscribe']/a/@href"))
    assert page.xpath("//script") == [] and page.xpath("//@*[starts-with(name(), 'on')]") == []


def test_topic_page_shows_title_date_provider_image_and_excerpt(client):
    page = lxml.html.fromstring(get_ok(client, "/topics/ai/").data)
    first = page.xpath("//ol[@class='entries']/li")[0]
    assert first.xpath(".//h2/a/text()") == [
        "The LAPD Just Banned Its Officers From Using Third-Party Facial Recognition Software"
    ]
    assert first.xpath(".//time/@datetime") == ["2020-11-18T02:41:00Z"] and first.xpath(".//time/text()") == [
        "18 Nov 2020"
    ]
    assert first.xpath(".//*[@class='provider']/text()") == ["Gizmodo"]
    assert first.xpath(".//img/@src")[0].startswith("https://i.kinja-img.com/")
    assert "moratorium" in first.xpath(".//p[@class='excerpt']/text()")[0]
    related = page.xpath("//li[contains(@class, 'related')]")
    assert related and all(r.xpath(".//p[@class='related-to']/a/@href") == [SEED_URL[PUBLISHED_SEED]] for r in related)


def test_topic_page_escapes_what_the_files_say(write_article, make_client):
    write_article("markup.md", topics=["R&D <Labs>"], title="Tom & Jerry <b>x</b> <script>alert(1)</script> 1 < 2",
                  excerpt="<p>bold</p> & <img src=x onerror=alert(1)>", webUrl="https://example.com/markup", images=None)  # fmt: skip
    client = make_client()
    page = lxml.html.fromstring(get_ok(client, "/topics/r-d-labs/").data)
    [entry] = items("atom", etree.fromstring(get_ok(client, "/topics/r-d-labs/atom.xml").data))
    assert page.xpath("//h1/text()") == ["R&D <Labs>"]
    assert page.xpath("//h2/a/text()") == [entry.findtext(f"{ATOM}title")]  # the feed's plain text, as text
    assert page.xpath("//p[@class='excerpt']/text()") == [entry.findtext(f"{ATOM}summary")]
    assert page.xpath("//script | //b | //labs | //main//img | //p[@class='excerpt']/*") == []


@pytest.mark.parametrize("path", ["/topics/nope/", "/topics/nope/page/2/", "/topics/ai/page/9/", "/all/page/99/"])
def test_unknown_topic_or_page_is_404(client, path):
    assert_plain_one_line(client.get(path), 404)


def test_a_draft_topic_page_is_404_without_include_all(write_article, make_client):
    write_article("draft.md", topics=["Embargoed"], published=False, webUrl="https://example.com/draft")
    client = make_client()
    assert_plain_one_line(client.get("/topics/embargoed/"), 404)
    assert page_entries(get_ok(client, "/topics/embargoed/?include=all").data) == [("https://example.com/draft", False)]


@pytest.mark.parametrize("slug", SLUGS, ids=str)
def test_topic_pages_page_like_their_feed(any_client, slug):
    every = feed_urls(any_client, slug, "atom", "?" + BIG)
    seen, url, pages = [], f"http://localhost{page_path(slug)}?limit=2", 0
    while url:
        pages += 1
        page = lxml.html.fromstring(get_ok(any_client, url).data)
        seen += [u for u, _ in page_entries(lxml.html.tostring(page))]
        following = page.xpath("//nav[@class='pager']/a[@rel='next']/@href")
        assert page.xpath("//head/link[@rel='next']/@href") == following
        if pages > 1:
            assert page.xpath("//nav[@class='pager']/a[@rel='prev']/@href")
            assert url == f"http://localhost{page_path(slug)}page/{pages}/?limit=2"
        url = following[0] if following else None
    assert seen == every and pages == -(-len(every) // 2)


def test_index_links_every_topic_page_with_counts_all_topics_included(any_client, any_folder):
    page = lxml.html.fromstring(get_ok(any_client, "/").data)
    rows = page.xpath("//tbody/tr")
    assert rows[0].findall("td")[0].text_content() == "All topics"
    for row in rows:
        (href,) = row.findall("td")[0].xpath("a/@href")
        count = int(row.findall("td")[1].text_content())
        assert count == len(page_entries(get_ok(any_client, href + "?" + BIG).data)) > 0, href
    assert int(rows[0].findall("td")[1].text_content()) == len(feed_urls(any_client, None, "atom", "?" + BIG))
    assert {r.xpath("td/a/@href")[0] for r in rows[1:]} == {
        f"http://localhost/topics/{slug}/" for slug in expected_topics(any_folder, False)
    }
    assert page.xpath("//head/link[@rel='stylesheet']/@href") == ["http://localhost/style.css"]


@pytest.mark.parametrize("fmt", FEED_KINDS)
@pytest.mark.parametrize("slug", SLUGS, ids=str)
def test_a_browser_opening_a_feed_url_gets_a_page_saying_how_to_subscribe(client, slug, fmt):
    url = feed_path(slug, fmt)
    response = get_ok(client, url, headers=NAVIGATION)
    assert response.mimetype == "text/html" and response.headers["X-Content-Type-Options"] == "nosniff"
    page = lxml.html.fromstring(response.data)
    assert page.xpath("//input[@id='feed-url']/@value") == [f"http://localhost{url}"]
    assert page.xpath("//input[@id='feed-url']/@readonly") == ["readonly"]
    assert page.xpath("//section[@class='about-feed']//a/@href") == [f"http://localhost{page_path(slug)}"]
    # below that header, the topic page's own list
    topic_page = get_ok(client, page_path(slug)).data
    assert page_entries(response.data) == page_entries(topic_page)
    assert lxml.html.fromstring(topic_page).xpath("//section[@class='about-feed']") == []


@pytest.mark.parametrize("fmt", FEED_KINDS)
def test_a_feed_url_varies_on_sec_fetch_dest_with_distinct_etags(client, fmt):
    url = feed_path("ai", fmt)
    for gzip in ("", "gzip"):
        feed = get_ok(client, url, headers={"Accept-Encoding": gzip})
        view = get_ok(client, url, headers={**NAVIGATION, "Accept-Encoding": gzip})
        for response in (feed, view):
            assert [v.strip() for v in response.headers["Vary"].split(",")] == ["Accept-Encoding", "Sec-Fetch-Dest"]
        assert feed.mimetype == FEED_TYPES[fmt] and view.mimetype == "text/html"
        assert feed.headers["ETag"] != view.headers["ETag"]
        # each representation's tag revalidates only itself
        coding = {"Accept-Encoding": gzip}
        assert (
            client.get(url, headers={**NAVIGATION, **coding, "If-None-Match": view.headers["ETag"]}).status_code == 304
        )
        assert client.get(url, headers={**coding, "If-None-Match": view.headers["ETag"]}).status_code == 200
        assert (
            client.get(url, headers={**NAVIGATION, **coding, "If-None-Match": feed.headers["ETag"]}).status_code == 200
        )


@pytest.mark.parametrize("dest", [None, "", "empty", "iframe", "DOCUMENT", "image"])
def test_only_a_document_navigation_gets_the_page(client, dest):
    headers = {} if dest is None else {"Sec-Fetch-Dest": dest}
    for fmt in FEED_KINDS:
        assert get_ok(client, feed_path("ai", fmt), headers=headers).mimetype == FEED_TYPES[fmt]
    assert get_ok(client, "/topics/ai/digest.txt", headers=NAVIGATION).mimetype == "text/plain"  # digests: one view


@pytest.fixture(scope="module")
def golden_seeds(tmp_path_factory):
    """A client over the seeds as tests/test_golden.py makes them, and its recorded answers."""
    folder = tmp_path_factory.mktemp("golden") / "seeds"
    shutil.copytree(SEEDS, folder)
    for path in [folder, *folder.iterdir()]:
        os.utime(path, (1_600_000_000, 1_600_000_000))
    app = create_app({"TESTING": True, "SEEDS_DIR": str(folder), "RELOAD_INTERVAL": 0, "CACHE_DIR": ""})
    recorded = json.loads((PROJECT / "tests" / "data" / "golden" / "seeds.json").read_text(encoding="utf-8"))
    return app.test_client(), recorded


@pytest.mark.parametrize("dest", [None, "empty"])
def test_feed_bytes_for_programs_are_the_recorded_ones(golden_seeds, dest):
    client, recorded = golden_seeds
    paths = [
        p
        for p, r in recorded.items()
        if p.split("?")[0].endswith(("rss.xml", "atom.xml", "feed.json")) and r["status"] == 200
    ]
    assert len(paths) > 30
    for path in paths:
        headers = {"Accept-Encoding": "gzip"} if path.endswith(" (gzip)") else {}
        headers |= {} if dest is None else {"Sec-Fetch-Dest": dest}
        response = client.get(path.removesuffix(" (gzip)"), headers=headers, base_url="https://feeds.example/")
        if not path.endswith(" (gzip)"):
            assert response.get_data(as_text=True) == recorded[path]["body"], path
        assert response.headers["ETag"] == recorded[path]["headers"]["ETag"], path


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
def test_the_fast_path_never_replays_one_view_for_the_other(seeds_dir, fast_path):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, "FAST_PATH": fast_path})
    client = app.test_client()
    order = [NAVIGATION, {}, {"Sec-Fetch-Dest": "empty"}, NAVIGATION, {}, {"Sec-Fetch-Dest": "empty"}] * 2
    for headers in order:
        for fmt in FEED_KINDS:
            response = get_ok(client, feed_path("ai", fmt), headers=headers)
            assert response.mimetype == ("text/html" if headers == NAVIGATION else FEED_TYPES[fmt])
            assert "Sec-Fetch-Dest" in response.headers["Vary"]


def test_pages_are_conditional_and_cacheable_like_feeds(client):
    for url in ("/topics/ai/", "/all/", "/style.css"):
        response = get_ok(client, url)
        assert response.headers["ETag"] and "public" in response.headers["Cache-Control"]
        assert client.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
        zipped = get_ok(client, url, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip" and zipped.headers["ETag"] != response.headers["ETag"]
    assert get_ok(client, "/style.css").mimetype == "text/css"


def test_page_rendering_is_cached_until_its_entries_change(app, client, write_article):
    store = app.extensions["feedsvc"]
    get_ok(client, "/topics/ai/")
    renders = store.cache.renders
    first = get_ok(client, "/topics/ai/", headers={"Cache-Control": "no-cache", "X-Bust": "1"})
    assert store.cache.renders == renders  # not made again
    write_article(
        "new.md", topics=["AI"], webUrl="https://example.com/new-ai", publishedDateTime="2030-01-01T00:00:00Z"
    )
    store.reload()
    second = get_ok(client, "/topics/ai/")
    assert store.cache.renders == renders + 1 and second.headers["ETag"] != first.headers["ETag"]
    assert page_entries(second.data)[0][0] == "https://example.com/new-ai"


def test_the_stylesheet_fits_a_phone_and_both_colour_schemes(client):
    css = get_ok(client, "/style.css").get_data(as_text=True)
    assert len(css.encode()) < 8000
    assert "prefers-color-scheme: dark" in css and "max-width: 100%" in css and "overflow-wrap: anywhere" in css
    assert "@import" not in css and "url(" not in css  # nothing from elsewhere, no fonts
