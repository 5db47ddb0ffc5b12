"""JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/) at /feed.json and /topics/<slug>/feed.json:
the same entries as RSS and Atom, the spec's required fields, and links to it from everywhere.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import lxml.html
import pytest
from helpers import ATOM, is_absolute_uri
from lxml import etree

from feedsvc.content.model import Article, Entry, Provider
from feedsvc.feeds import jsonfeed
from feedsvc.feeds.rss_atom import FeedInfo
from feedsvc.web import create_app

SLUGS = [None, "ai", "computer-vision"]
QUERIES = [(1, ""), (1, "?include=all"), (1, "?limit=2"), (1, "?include=all&limit=3"), (2, "?include=all&limit=2")]
# A second page exists in the all-topics feed of both folders; not in every topic's.
CASES = [(slug, page, query) for slug in SLUGS for page, query in QUERIES if not (slug and page > 1)]
MEDIA_TYPE = "application/feed+json"
VERSION = "https://jsonfeed.org/version/1.1"


def path(slug: str | None, fmt: str, page: int = 1) -> str:
    name = "feed.json" if fmt == "json" else f"{fmt}.xml"
    return (f"/topics/{slug}/" if slug else "/") + (f"page/{page}/" if page > 1 else "") + name


def get_json(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.data[:200])
    assert response.mimetype == MEDIA_TYPE
    assert response.mimetype_params == {"charset": "utf-8"}
    return json.loads(response.data.decode("utf-8"))


def xml_ids(client, slug: str | None, fmt: str, query: str, page: int = 1) -> list[str]:
    response = client.get(path(slug, fmt, page) + query)
    assert response.status_code == 200
    root = etree.fromstring(response.data)
    if fmt == "rss":
        return [item.findtext("guid") for item in root.iter("item")]
    return [entry.findtext(f"{ATOM}id") for entry in root.iter(f"{ATOM}entry")]


def rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def read_only_client(folder):
    return create_app({"TESTING": True, "SEEDS_DIR": str(folder), "RELOAD_INTERVAL": 0, "CACHE_DIR": ""}).test_client()


@pytest.fixture(scope="module")
def client(read_only_folders):
    """The seeds client, shared by this module's read-only tests (overrides conftest's)."""
    return read_only_client(read_only_folders / "seeds")


@pytest.fixture(scope="module")
def corpus_client(read_only_folders):
    """The corpus client, shared by this module's read-only tests (overrides conftest's)."""
    return read_only_client(read_only_folders / "corpus")


@pytest.fixture(params=["seeds", "corpus"])
def any_client(request):
    return request.getfixturevalue("client" if request.param == "seeds" else "corpus_client")


# --- the document -------------------------------------------------------------------------------


@pytest.mark.parametrize("slug, page, query", CASES)
def test_json_feed_has_the_required_fields(any_client, slug, page, query):
    feed = get_json(any_client, path(slug, "json", page) + query)
    assert feed["version"] == VERSION
    assert isinstance(feed["title"], str) and feed["title"].strip()
    assert isinstance(feed["items"], list)
    for item in feed["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert is_absolute_uri(item["url"])
        assert isinstance(item["content_text"], str) and item["content_text"].strip()
        rfc3339(item["date_published"])
        rfc3339(item["date_modified"])
        assert isinstance(item.get("tags", []), list)
        for author in item.get("authors", []):
            assert isinstance(author["name"], str) and author["name"]
        if "image" in item:
            assert is_absolute_uri(item["image"])
        extensions = [
            k
            for k in item
            if k
            not in {
                "id",
                "url",
                "external_url",
                "title",
                "content_html",
                "content_text",
                "summary",
                "image",
                "banner_image",
                "date_published",
                "date_modified",
                "authors",
                "author",  # JSON Feed 1.0's, kept in 1.1 for 1.0 readers
                "tags",
                "language",
                "attachments",
            }
        ]
        assert all(k.startswith("_") for k in extensions), extensions
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("slug", SLUGS)
def test_feed_level_urls_are_absolute(any_client, slug):
    feed = get_json(any_client, path(slug, "json"))
    assert is_absolute_uri(feed["home_page_url"]) and is_absolute_uri(feed["feed_url"])
    assert feed["feed_url"] == f"http://localhost{path(slug, 'json')}"
    assert feed["authors"] and all(a["name"] for a in feed["authors"])
    assert "hubs" not in feed


def check_author_beside_authors(data: dict) -> int:
    """JSON Feed 1.1 ("Existing feeds can include both author and authors for compatibility with existing
    feed readers"): `author`, a 1.0 author object (a name or url at least), is the first of `authors`."""
    if "authors" not in data:
        assert "author" not in data
        return 0
    author = data["author"]
    assert isinstance(author, dict) and set(author) <= {"name", "url", "avatar"}
    assert author.get("name") or author.get("url")
    assert author == data["authors"][0]
    return 1


@pytest.mark.parametrize("slug", SLUGS)
def test_author_is_given_beside_authors_for_json_feed_1_0_readers(any_client, slug):
    feed = get_json(any_client, path(slug, "json") + "?include=all")
    assert check_author_beside_authors(feed) == 1
    assert feed["author"] == {"name": "feedsvc", "url": feed["home_page_url"]}
    with_authors = sum(check_author_beside_authors(item) for item in feed["items"])
    assert with_authors == sum("authors" in item for item in feed["items"]) > 0


@pytest.mark.parametrize("fmt", ["rss", "atom"])
@pytest.mark.parametrize("slug, page, query", CASES)
def test_same_entries_in_the_same_order_as_rss_and_atom(any_client, slug, fmt, page, query):
    feed = get_json(any_client, path(slug, "json", page) + query)
    assert [item["id"] for item in feed["items"]] == xml_ids(any_client, slug, fmt, query, page)


@pytest.mark.parametrize("slug", SLUGS)
def test_items_match_their_atom_entries(client, slug):
    feed = get_json(client, path(slug, "json") + "?include=all")
    root = etree.fromstring(client.get(path(slug, "atom") + "?include=all").data)
    entries = {e.findtext(f"{ATOM}id"): e for e in root.iter(f"{ATOM}entry")}
    for item in feed["items"]:
        entry = entries[item["id"]]
        assert item["url"] == item["id"]
        assert item["title"] == entry.findtext(f"{ATOM}title")
        assert rfc3339(item["date_published"]) == datetime.fromisoformat(entry.findtext(f"{ATOM}published"))
        assert item["tags"] == [c.get("term") for c in entry.findall(f"{ATOM}category")]
        summary = entry.findtext(f"{ATOM}summary")
        if summary:
            assert item["content_text"] == summary


def test_related_items_name_their_article(client):
    feed = get_json(client, "/feed.json?include=all")
    related = [item for item in feed["items"] if "_feedsvc" in item]
    assert related
    urls = {item["url"] for item in feed["items"]}
    for item in related:
        target = item["_feedsvc"]["related_to"]
        assert target["url"] in urls and target["title"]
        assert target["title"] in item["content_text"]


def test_json_of_an_unknown_topic_is_404(client):
    response = client.get("/topics/no-such-topic/feed.json")
    assert response.status_code == 404 and response.mimetype == "text/plain"


def test_bad_flags_are_400(client):
    for query in ("?limit=0", "?include=everything", "?page=abc"):
        assert client.get("/feed.json" + query).status_code == 400


def test_json_is_utf8_not_ascii_escaped(write_article, make_client):
    write_article("u.md", title="Caf\u00e9 \u2014 \u6f22\u5b57", webUrl="https://example.com/u")
    response = make_client().get("/feed.json")
    assert "Caf\u00e9 \u2014 \u6f22\u5b57".encode() in response.data
    assert b"\\u" not in response.data


def test_json_feed_is_the_same_bytes_from_two_apps(make_client):
    assert make_client().get("/feed.json?include=all").data == make_client().get("/feed.json?include=all").data


def test_json_next_url_walks_every_page(corpus_client):
    everything = [item["id"] for item in get_json(corpus_client, "/feed.json?include=all&limit=500")["items"]]
    url, ids, pages = "/feed.json?include=all&limit=4", [], 0
    while url:
        feed = get_json(corpus_client, url)
        assert feed["feed_url"] == "http://localhost" + url
        ids.extend(item["id"] for item in feed["items"])
        pages += 1
        assert pages <= 50
        url = feed.get("next_url", "").removeprefix("http://localhost") or None
    assert ids == everything
    assert pages == -(-len(everything) // 4)


def test_last_page_has_no_next_url(client):
    feed = get_json(client, "/feed.json?include=all&limit=500")
    assert "next_url" not in feed


# --- links to the JSON feed ---------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?include=all", "?limit=3"])
def test_index_links_every_json_feed(any_client, query):
    response = any_client.get("/" + query)
    assert response.status_code == 200
    doc = lxml.html.fromstring(response.data)
    links = doc.xpath('//head/link[@rel="alternate"][@type="application/feed+json"]')
    rss = doc.xpath('//head/link[@rel="alternate"][@type="application/rss+xml"]')
    assert len(links) == len(rss) >= 2
    hrefs = [link.get("href") for link in links]
    assert f"http://localhost/feed.json{query}" in hrefs
    for href in hrefs:
        assert href.startswith("http://localhost/")
        local = href.removeprefix("http://localhost")
        feed = get_json(any_client, local)
        assert feed["feed_url"] == href


@pytest.mark.parametrize("query", ["", "?include=all"])
def test_opml_gives_every_outline_a_json_url(any_client, query):
    root = etree.fromstring(any_client.get("/feeds.opml" + query).data)
    outlines = root.findall(".//outline[@xmlUrl]")
    assert len(outlines) >= 2
    for outline in outlines:
        json_url, xml_url = outline.get("jsonUrl"), outline.get("xmlUrl")
        assert json_url and is_absolute_uri(json_url)
        assert json_url.split("?")[0].removesuffix("feed.json") == xml_url.split("?")[0].removesuffix("rss.xml")
        assert json_url.partition("?")[2] == xml_url.partition("?")[2]
        feed = get_json(any_client, json_url.removeprefix("http://localhost"))
        assert feed["title"] == outline.get("title")


@pytest.mark.parametrize("page, query", [(1, ""), (1, "?include=all"), (1, "?limit=2"), (2, "?include=all&limit=2")])
@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_rss_and_atom_link_their_json_twin(corpus_client, fmt, page, query):
    root = etree.fromstring(corpus_client.get(path(None, fmt, page) + query).data)
    links = root.findall(f"{ATOM}link") if fmt == "atom" else root.findall(f"channel/{ATOM}link")
    twins = [l.get("href") for l in links if l.get("rel") == "alternate" and l.get("type") == MEDIA_TYPE]
    assert twins == [f"http://localhost{path(None, 'json', page)}{query}"]
    feed = get_json(corpus_client, twins[0].removeprefix("http://localhost"))
    assert [item["id"] for item in feed["items"]] == xml_ids(corpus_client, None, fmt, query, page)


@pytest.mark.parametrize("slug", SLUGS)
def test_topic_feeds_link_their_json_twin(client, slug):
    root = etree.fromstring(client.get(path(slug, "atom")).data)
    twins = [l.get("href") for l in root.findall(f"{ATOM}link") if l.get("type") == MEDIA_TYPE]
    assert twins == [f"http://localhost{path(slug, 'json')}"]


# --- jsonfeed.render, directly ------------------------------------------------------------------


WHEN = datetime(2021, 2, 1, 10, 0, tzinfo=timezone.utc)
INFO = FeedInfo(
    feed_id="https://f.example/atom.xml",
    title="T",
    subtitle="S",
    self_url="https://f.example/feed.json",
    html_url="https://f.example/",
    author="feedsvc",
)


def entry(n: int, **overrides) -> Entry:
    fields = {
        "url": f"https://news.example.com/{n}",
        "title": f"Title {n}",
        "published": WHEN,
        "excerpt": f"Excerpt {n}",
        "provider": Provider("Example News", "example.com"),
        "image": None,
        "categories": ("AI",),
    }
    fields.update(overrides)
    return Entry(**fields)


def test_render_writes_entries_in_the_given_order():
    entries = [entry(3), entry(1), entry(2)]
    feed = json.loads(jsonfeed.render(INFO, entries))
    assert [item["id"] for item in feed["items"]] == [e.url for e in entries]
    assert feed["version"] == VERSION and feed["feed_url"] == INFO.self_url


def test_entry_without_excerpt_uses_its_title_as_content_text():
    item = json.loads(jsonfeed.render(INFO, [entry(1, excerpt="")]))["items"][0]
    assert item["content_text"] == "Title 1"
    assert "summary" not in item


def test_related_entry_content_text_names_its_article():
    article = Article(path="a.md", title="The article", url="https://news.example.com/a", published=WHEN)
    item = json.loads(jsonfeed.render(INFO, [entry(1, related_to=article)]))["items"][0]
    assert "The article" in item["content_text"]
    assert item["_feedsvc"] == {"related_to": {"url": "https://news.example.com/a", "title": "The article"}}


def test_render_adds_next_url_and_hubs_from_the_links():
    info = FeedInfo(
        **{
            **INFO.__dict__,
            "links": {"next": "https://f.example/feed.json?page=2", "first": "x", "hub": "https://hub.example/"},
        }
    )
    feed = json.loads(jsonfeed.render(info, [entry(1)]))
    assert feed["next_url"] == "https://f.example/feed.json?page=2"
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example/"}]
    assert "first" not in json.dumps(feed)


def test_empty_feed_is_valid():
    feed = json.loads(jsonfeed.render(INFO, []))
    assert feed["items"] == [] and feed["version"] == VERSION


def test_render_is_deterministic():
    entries = [entry(1), entry(2)]
    assert jsonfeed.render(INFO, entries) == jsonfeed.render(INFO, list(entries))


def test_json_and_rss_dates_agree(client):
    feed = get_json(client, "/feed.json?include=all")
    root = etree.fromstring(client.get("/rss.xml?include=all").data)
    rss_dates = {item.findtext("guid"): parsedate_to_datetime(item.findtext("pubDate")) for item in root.iter("item")}
    for item in feed["items"]:
        assert rfc3339(item["date_published"]) == rss_dates[item["id"]]
