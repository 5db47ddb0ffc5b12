"""HTTP caching of feeds through Flask's test client: validators, conditional requests, gzip,
HEAD, the render cache behind them, and RFC 5005 paging links in every format.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import ATOM, CORPUS, SEEDS, article_fields, entry_ids, feed_path, front_matter, get_ok, set_mtime
from lxml import etree

import feedsvc.runtime.bodycache
from feedsvc import create_app
from feedsvc.build import public_paths
from feedsvc.feeds.query import Query

FORMATS = ["rss", "atom", "json"]
SLUGS = [None, "ai", "computer-vision"]
T0 = 1_600_000_000  # 2020-09-13T12:26:40Z: mtimes are set from here, never from the clock


FEEDS = [feed_path(s, f) + q for s in SLUGS for f in FORMATS for q in ("", "?include=all", "?limit=1")]


def http_date(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, tz=timezone.utc), usegmt=True)


def last_modified(response) -> datetime:
    return parsedate_to_datetime(response.headers["Last-Modified"])


def entity_tag(response) -> str:
    """The ETag header, asserted strong and quoted."""
    value = response.headers["ETag"]
    assert not value.startswith("W/"), value
    assert value.startswith('"') and value.endswith('"') and value.count('"') == 2, value
    return value


def digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def set_tree_mtime(folder: Path, seconds: float) -> None:
    """Every file and folder below `folder` (and itself) last modified at `seconds`."""
    ns = int(seconds * 1_000_000_000)
    for path in folder.rglob("*"):
        os.utime(path, ns=(ns, ns))
    os.utime(folder, ns=(ns, ns))


def store_of(client):
    return client.application.extensions["feedsvc"]


@pytest.fixture(scope="module", params=["fast-path", "flask-path"])
def read_only_apps(request, tmp_path_factory):
    """Apps over private copies of the seeds and the corpus, for tests that never change files:
    once with the response replay in front of Flask (the default), once without it."""
    folder = tmp_path_factory.mktemp("read-only")
    shutil.copytree(SEEDS, folder / "seeds")
    shutil.copytree(CORPUS, folder / "corpus")
    config = {"TESTING": True, "RELOAD_INTERVAL": 0, "CACHE_DIR": "", "FAST_PATH": request.param == "fast-path"}
    return {name: create_app({**config, "SEEDS_DIR": str(folder / name)}).test_client() for name in ("seeds", "corpus")}


@pytest.fixture
def ro_client(read_only_apps):
    return read_only_apps["seeds"]


@pytest.fixture
def ro_corpus(read_only_apps):
    return read_only_apps["corpus"]


# --- ETag -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", FEEDS)
def test_every_feed_has_a_strong_etag_derived_from_its_body(ro_client, url):
    response = get_ok(ro_client, url)
    assert entity_tag(response) == f'"{digest(response.data)}"'


def test_etag_is_the_same_from_two_separate_apps(make_client):
    one, two = make_client(), make_client()
    for url in FEEDS:
        assert get_ok(one, url).headers["ETag"] == get_ok(two, url).headers["ETag"]


def test_etag_survives_a_restart_with_gzip_too(make_client):
    headers = {"Accept-Encoding": "gzip"}
    first = get_ok(make_client(), "/topics/ai/atom.xml", headers=headers)
    again = get_ok(make_client(), "/topics/ai/atom.xml", headers=headers)
    assert first.headers["ETag"] == again.headers["ETag"] and first.data == again.data


@pytest.mark.parametrize("slug", SLUGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_etag_differs_between_include_modes(ro_client, slug, fmt):
    published = get_ok(ro_client, feed_path(slug, fmt)).headers["ETag"]
    everything = get_ok(ro_client, feed_path(slug, fmt) + "?include=all").headers["ETag"]
    explicit = get_ok(ro_client, feed_path(slug, fmt) + "?include=published").headers["ETag"]
    assert published != everything
    assert explicit == published


def test_distinct_bodies_have_distinct_etags(ro_client):
    tags: dict[str, bytes] = {}
    for url in FEEDS:
        response = get_ok(ro_client, url)
        assert tags.setdefault(response.headers["ETag"], response.data) == response.data
    assert len(tags) == len({get_ok(ro_client, url).data for url in FEEDS})


def test_etag_changes_when_the_body_changes(client, write_article):
    before = get_ok(client, "/topics/ai/rss.xml").headers["ETag"]
    write_article("new.md", topics=["AI"], webUrl="https://example.com/new-ai")
    store_of(client).reload()
    after = get_ok(client, "/topics/ai/rss.xml")
    assert after.headers["ETag"] != before
    assert "https://example.com/new-ai" in entry_ids("rss", after.data)


# --- Last-Modified ------------------------------------------------------------------------------


@pytest.fixture
def dated(seeds_dir, write_article):
    """The seeds plus a draft with an old date, every mtime at T0; a client over them."""
    write_article(
        "old-draft.md",
        title="An old draft",
        published=False,
        topics=["AI"],
        publishedDateTime="2019-01-01T08:00:00Z",
        webUrl="https://example.com/old-draft",
    )
    set_tree_mtime(seeds_dir, T0)
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0})
    return app.test_client(), seeds_dir / "old-draft.md"


def publish(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace("published: false", "published: true"), encoding="utf-8")


@pytest.mark.parametrize("url", FEEDS)
def test_last_modified_is_the_newest_mtime(dated, url):
    client, _ = dated
    response = get_ok(client, url)
    assert response.headers["Last-Modified"] == http_date(T0)
    assert last_modified(response) <= parsedate_to_datetime(response.headers["Date"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_publishing_an_old_article_moves_last_modified_forward(dated, fmt):
    client, draft = dated
    url = feed_path("ai", fmt)
    before = get_ok(client, url)
    publish(draft)
    set_mtime(draft, T0 + 3600)
    assert store_of(client).reload() is True
    after = get_ok(client, url)
    assert after.data != before.data
    assert "https://example.com/old-draft" in entry_ids(fmt, after.data)
    assert entry_ids(fmt, after.data)[-1] == "https://example.com/old-draft"  # oldest: nothing newer in the feed
    assert last_modified(after) == last_modified(before) + timedelta(seconds=3600)
    # A client that cached the old body at its Last-Modified now gets the new one.
    assert client.get(url, headers={"If-Modified-Since": before.headers["Last-Modified"]}).status_code == 200


def test_feed_dates_alone_would_not_have_moved(dated):
    """Why Last-Modified cannot be the newest entry's date: publishing an old article leaves it."""
    client, draft = dated
    build_date = lambda: etree.fromstring(get_ok(client, "/topics/ai/rss.xml").data).findtext("channel/lastBuildDate")
    before = build_date()
    publish(draft)
    set_mtime(draft, T0 + 60)
    store_of(client).reload()
    assert build_date() == before


def test_last_modified_moves_forward_when_a_file_is_removed(dated, seeds_dir):
    client, draft = dated
    before = get_ok(client, "/atom.xml?include=all")
    draft.unlink()  # the folder's mtime moves to the real now
    store_of(client).reload()
    after = get_ok(client, "/atom.xml?include=all")
    assert after.data != before.data
    assert last_modified(after) > last_modified(before)


def test_last_modified_moves_forward_when_a_file_is_added(dated, write_article):
    client, _ = dated
    before = get_ok(client, "/rss.xml")
    write_article("added.md", webUrl="https://example.com/added")
    store_of(client).reload()
    after = get_ok(client, "/rss.xml")
    assert after.data != before.data and last_modified(after) > last_modified(before)


def test_last_modified_is_never_after_the_date_header(seeds_dir, write_article, make_client):
    future = datetime.now(timezone.utc).timestamp() + 10 * 365 * 86400
    set_mtime(write_article("future.md", webUrl="https://example.com/future"), future)
    response = get_ok(make_client(), "/rss.xml")
    assert last_modified(response) <= parsedate_to_datetime(response.headers["Date"])


def test_last_modified_moves_forward_for_an_edit_with_an_older_mtime(dated, seeds_dir):
    client, draft = dated
    # Some other published file was saved last (a draft's mtime would not move the public Last-Modified).
    newest = next(p for p in sorted(seeds_dir.iterdir()) if "published: true" in p.read_text(encoding="utf-8"))
    set_mtime(newest, T0 + 100)
    store_of(client).reload()
    before = get_ok(client, "/topics/ai/rss.xml")
    assert before.headers["Last-Modified"] == http_date(T0 + 100)
    publish(draft)
    set_mtime(draft, T0 + 50)  # the edit arrives with its own, older, mtime
    assert store_of(client).reload() is True
    after = get_ok(client, "/topics/ai/rss.xml")
    assert after.data != before.data
    assert last_modified(after) > last_modified(before)
    status = client.get(
        "/topics/ai/rss.xml", headers={"If-Modified-Since": before.headers["Last-Modified"]}
    ).status_code
    assert status == 200  # not 304: the client must not keep the old body


def test_last_modified_never_moves_back_when_a_subfolder_empties(seeds_dir, write_article):
    sub = seeds_dir / "2021"
    path = write_article("2021/new.md", topics=["AI"], webUrl="https://example.com/in-sub")
    set_tree_mtime(seeds_dir, T0)
    set_mtime(path, T0 + 500)
    set_mtime(sub, T0 + 500)
    client = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0}).test_client()
    before = get_ok(client, "/topics/ai/rss.xml")
    assert before.headers["Last-Modified"] == http_date(T0 + 500)
    path.unlink()
    assert store_of(client).reload() is True
    after = get_ok(client, "/topics/ai/rss.xml")
    assert "https://example.com/in-sub" not in entry_ids("rss", after.data)
    assert last_modified(after) >= last_modified(before)  # not back to T0
    assert (
        client.get("/topics/ai/rss.xml", headers={"If-Modified-Since": before.headers["Last-Modified"]}).status_code
        == 200
    )


# --- drafts never change a public response -------------------------------------------------------

MARKETING = "https://example.com/marketing"


@pytest.fixture(params=[True, False], ids=["fast-path", "flask"])
def with_drafts(request, seeds_dir, write_article):
    """The seeds, a published article on "AI in Marketing" and a draft, every mtime at T0; a client over them."""
    write_article("marketing.md", topics=["AI in Marketing", "AI"], webUrl=MARKETING)
    write_article("draft.md", published=False, topics=["AI"], webUrl="https://example.com/draft")
    set_tree_mtime(seeds_dir, T0)
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0, "FAST_PATH": request.param})
    return app.test_client()


def public_responses(client) -> dict:
    """Every public route (and a page of each feed), in both codings: status, body, ETag, Last-Modified."""
    paths = public_paths(store_of(client).catalog, Query())
    feeds = [p.rpartition("/") for p in paths if p.endswith(("rss.xml", "atom.xml", "feed.json"))]
    pages = [f"{head}/{name}?limit=1" for head, _, name in feeds] + [
        f"{head}/page/2/{name}?limit=1" for head, _, name in feeds
    ]
    found = {}
    for url in [*paths, *pages]:
        for coding in ("identity", "gzip"):
            for _ in range(2):  # the second is replayed, where the fast path is on
                response = client.get(url, headers={"Accept-Encoding": coding})
                assert response.status_code == 200 or "/page/2/" in url, url
                found[url, coding] = (response.status_code, response.data, response.headers.get("ETag"),
                                      response.headers.get("Last-Modified"))  # fmt: skip
    return found


def respell(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace("A test article", "A draft, edited"), encoding="utf-8")


DRAFT_CHANGES = {
    # Two drafts that spell a topic otherwise: counted with the published article, they would rename it.
    "add drafts": lambda seeds: [(seeds / f"new-{n}.md").write_text(front_matter(**article_fields(
        published=False, topics=["AI IN MARKETING"], webUrl=f"https://example.com/new-{n}"))) for n in (1, 2)],
    "edit a draft": lambda seeds: respell(seeds / "draft.md"),
    "remove a draft": lambda seeds: (seeds / "draft.md").unlink(),
    "add a draft in a new folder": lambda seeds: (seeds / "2030").mkdir() or (seeds / "2030" / "d.md").write_text(
        front_matter(**article_fields(published=False, topics=["AI IN MARKETING"], webUrl="https://example.com/d"))),
    "add a broken file": lambda seeds: (seeds / "broken.md").write_text("---\ntitle: [unclosed\n---\n"),
}  # fmt: skip


def test_adding_editing_or_removing_drafts_changes_no_public_response(with_drafts, seeds_dir):
    client = with_drafts
    before = public_responses(client)
    assert {lm for _, _, _, lm in before.values() if lm} == {http_date(T0)}
    assert "AI in Marketing" in client.get("/").get_data(as_text=True)
    preview = get_ok(client, "/topics/ai-in-marketing/rss.xml?include=all")
    for change in DRAFT_CHANGES.values():
        change(seeds_dir)
        assert store_of(client).reload() is True  # the drafts were seen
        assert public_responses(client) == before
    # Previews count the drafts: there the topic is renamed and Last-Modified moved on.
    after = get_ok(client, "/topics/ai-in-marketing/rss.xml?include=all")
    assert etree.fromstring(after.data).findtext("channel/title") == "feedsvc: AI IN MARKETING"
    assert last_modified(after) > last_modified(preview)
    public = get_ok(client, "/topics/ai-in-marketing/rss.xml")
    assert etree.fromstring(public.data).findtext("channel/title") == "feedsvc: AI in Marketing"


def test_unpublishing_an_article_moves_the_public_last_modified_forward(with_drafts, seeds_dir):
    client = with_drafts
    url = "/topics/ai-in-marketing/atom.xml?include=all"
    before = get_ok(client, "/atom.xml")
    marketing = seeds_dir / "marketing.md"
    marketing.write_text(marketing.read_text(encoding="utf-8").replace("published: true", "published: false"))
    set_mtime(marketing, T0 - 3600)  # an older mtime: only the change itself can move Last-Modified
    assert store_of(client).reload() is True
    after = get_ok(client, "/atom.xml")
    assert MARKETING not in entry_ids("atom", after.data)
    assert last_modified(after) > last_modified(before)
    assert client.get("/atom.xml", headers={"If-Modified-Since": before.headers["Last-Modified"]}).status_code == 200
    assert client.get("/topics/ai-in-marketing/atom.xml").status_code == 404
    assert get_ok(client, url)


def test_a_published_edit_moves_the_public_last_modified_to_its_mtime(with_drafts, seeds_dir):
    client = with_drafts
    marketing = seeds_dir / "marketing.md"
    respell(marketing)
    set_mtime(marketing, T0 + 600)
    (seeds_dir / "draft.md").write_text("---\ntitle: later\n---\n")  # a draft saved after it (now, and broken)
    assert store_of(client).reload() is True
    assert get_ok(client, "/rss.xml").headers["Last-Modified"] == http_date(T0 + 600)


# --- Cache-Control and the RSS ttl -----------------------------------------------------------------


@pytest.mark.parametrize("url", [u for u in FEEDS if "include=all" not in u])
def test_public_feeds_are_publicly_cacheable_for_max_age(ro_client, url):
    response = get_ok(ro_client, url)
    assert response.cache_control.public is True
    assert response.cache_control.private is None
    assert response.cache_control.max_age == 300
    assert sorted(p.strip() for p in response.headers["Cache-Control"].split(",")) == ["max-age=300", "public"]


@pytest.mark.parametrize("url", [u for u in FEEDS if "include=all" in u])
def test_include_all_previews_are_cacheable_only_privately(ro_client, url):
    response = get_ok(ro_client, url)
    assert response.cache_control.max_age == 300
    assert not response.cache_control.public
    assert response.cache_control.private


@pytest.mark.parametrize("max_age", [60, 300, 600, 3600])
def test_max_age_config_sets_cache_control_and_a_matching_rss_ttl(make_client, max_age):
    client = make_client(MAX_AGE=max_age)
    for slug in SLUGS:
        for fmt in FORMATS:
            assert get_ok(client, feed_path(slug, fmt)).cache_control.max_age == max_age
        root = etree.fromstring(get_ok(client, feed_path(slug, "rss")).data)
        assert root.findtext("channel/ttl") == str(max_age // 60)


def test_default_max_age_is_300_and_ttl_5(ro_client):
    assert ro_client.application.config["MAX_AGE"] == 300
    root = etree.fromstring(get_ok(ro_client, "/rss.xml").data)
    assert root.findtext("channel/ttl") == "5"


def test_max_age_from_the_environment(seeds_dir, monkeypatch):
    monkeypatch.setenv("FEEDSVC_MAX_AGE", "900")
    client = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0}).test_client()
    response = get_ok(client, "/rss.xml")
    assert response.cache_control.max_age == 900
    assert etree.fromstring(response.data).findtext("channel/ttl") == "15"


# --- If-None-Match ---------------------------------------------------------------------------------


def assert_not_modified(response, etag: str) -> None:
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert "Accept-Encoding" in response.vary
    assert response.cache_control.max_age == 300


@pytest.mark.parametrize("url", FEEDS)
def test_if_none_match_with_the_etag_is_304_without_a_body(ro_client, url):
    etag = entity_tag(get_ok(ro_client, url))
    assert_not_modified(ro_client.get(url, headers={"If-None-Match": etag}), etag)


@pytest.mark.parametrize(
    "make_header",
    [
        lambda tag: tag,
        lambda tag: f'"nope", {tag}',
        lambda tag: f'{tag}, "nope"',
        lambda tag: f'"a","b",{tag}',
        lambda tag: f"W/{tag}",
        lambda tag: f'W/"nope", W/{tag}',
        lambda tag: "*",
    ],
    ids=["exact", "listed-last", "listed-first", "no-spaces", "weak", "weak-listed", "star"],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_if_none_match_forms_that_match(ro_client, fmt, make_header):
    url = feed_path("ai", fmt)
    etag = entity_tag(get_ok(ro_client, url))
    assert_not_modified(ro_client.get(url, headers={"If-None-Match": make_header(etag)}), etag)


@pytest.mark.parametrize("header", ['"nope"', 'W/"nope"', '"nope", "other"', '""'])
@pytest.mark.parametrize("fmt", FORMATS)
def test_if_none_match_that_does_not_match_is_200(ro_client, fmt, header):
    url = feed_path("ai", fmt)
    plain = get_ok(ro_client, url)
    response = ro_client.get(url, headers={"If-None-Match": header})
    assert response.status_code == 200 and response.data == plain.data


def test_etag_of_another_query_does_not_match(ro_client):
    other = entity_tag(get_ok(ro_client, "/rss.xml?include=all"))
    assert ro_client.get("/rss.xml", headers={"If-None-Match": other}).status_code == 200


def test_old_etag_is_200_after_the_feed_changed(client, write_article):
    etag = entity_tag(get_ok(client, "/topics/ai/atom.xml"))
    write_article("new.md", topics=["AI"], webUrl="https://example.com/new")
    store_of(client).reload()
    response = client.get("/topics/ai/atom.xml", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert entity_tag(response) != etag


# --- If-Modified-Since -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("offset, status", [(0, 304), (1, 304), (86400, 304), (-1, 200), (-86400, 200)])
def test_if_modified_since_is_compared_as_a_date(dated, fmt, offset, status):
    client, _ = dated
    url = feed_path("ai", fmt)
    response = client.get(url, headers={"If-Modified-Since": http_date(T0 + offset)})
    assert response.status_code == status
    assert (response.data == b"") is (status == 304)


def test_if_modified_since_in_another_date_format(dated):
    client, _ = dated
    asctime = datetime.fromtimestamp(T0, tz=timezone.utc).strftime("%a %b %d %H:%M:%S %Y")
    assert client.get("/rss.xml", headers={"If-Modified-Since": asctime}).status_code == 304


def test_unparsable_if_modified_since_is_ignored(dated):
    client, _ = dated
    assert client.get("/rss.xml", headers={"If-Modified-Since": "yesterday"}).status_code == 200


def test_if_modified_since_is_ignored_when_if_none_match_is_sent(dated):
    client, _ = dated
    headers = {"If-None-Match": '"not-it"', "If-Modified-Since": http_date(T0 + 86400)}
    assert client.get("/rss.xml", headers=headers).status_code == 200


def test_matching_if_none_match_wins_over_an_old_if_modified_since(dated):
    client, _ = dated
    etag = entity_tag(get_ok(client, "/rss.xml"))
    headers = {"If-None-Match": etag, "If-Modified-Since": http_date(T0 - 86400)}
    assert client.get("/rss.xml", headers=headers).status_code == 304


def test_if_modified_since_after_a_change_is_200(dated):
    client, draft = dated
    before = get_ok(client, "/topics/ai/feed.json")
    publish(draft)
    set_mtime(draft, T0 + 10)
    store_of(client).reload()
    response = client.get("/topics/ai/feed.json", headers={"If-Modified-Since": before.headers["Last-Modified"]})
    assert response.status_code == 200 and response.data != before.data


# --- HEAD --------------------------------------------------------------------------------------


CACHE_HEADERS = ["Content-Type", "Content-Length", "Content-Encoding", "ETag", "Last-Modified", "Cache-Control", "Vary"]


@pytest.mark.parametrize("accept", [None, "gzip"])
@pytest.mark.parametrize("url", FEEDS)
def test_head_has_gets_headers_and_no_body(ro_client, url, accept):
    headers = {"Accept-Encoding": accept} if accept else {}
    get = get_ok(ro_client, url, headers=headers)
    head = ro_client.head(url, headers=headers)
    assert head.status_code == 200
    assert head.data == b""
    for name in CACHE_HEADERS:
        assert head.headers.get(name) == get.headers.get(name), name
    assert int(head.headers["Content-Length"]) == len(get.data)


def test_conditional_head_is_304(ro_client):
    etag = entity_tag(get_ok(ro_client, "/rss.xml"))
    response = ro_client.head("/rss.xml", headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.data == b""


# --- gzip --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", FEEDS)
def test_gzip_when_accepted_decompresses_to_the_identity_body(ro_client, url):
    identity = get_ok(ro_client, url)
    zipped = get_ok(ro_client, url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.data[:2] == b"\x1f\x8b"
    assert gzip.decompress(zipped.data) == identity.data
    assert int(zipped.headers["Content-Length"]) == len(zipped.data) < len(identity.data)
    assert zipped.headers["Content-Type"] == identity.headers["Content-Type"]
    assert zipped.headers["Last-Modified"] == identity.headers["Last-Modified"]


@pytest.mark.parametrize("url", FEEDS)
def test_both_codings_vary_on_accept_encoding(ro_client, url):
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        response = get_ok(ro_client, url, headers=headers)
        assert "accept-encoding" in {v.lower() for v in response.vary}


@pytest.mark.parametrize("url", FEEDS)
def test_gzip_variant_has_its_own_strong_etag(ro_client, url):
    identity = entity_tag(get_ok(ro_client, url))
    zipped = entity_tag(get_ok(ro_client, url, headers={"Accept-Encoding": "gzip"}))
    assert zipped != identity


@pytest.mark.parametrize(
    "accept",
    [
        "gzip",
        "GZIP",
        "gzip;q=1.0",
        "deflate, gzip;q=0.5",
        "br, gzip, deflate",
        "*",
        "gzip, identity;q=0",
        "x-gzip, gzip",
    ],
)
def test_encodings_that_accept_gzip(ro_client, accept):
    response = get_ok(ro_client, "/rss.xml", headers={"Accept-Encoding": accept})
    assert response.headers["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    "accept", [None, "", "identity", "gzip;q=0", "deflate", "br", "*;q=0", "gzip;q=0, *", "gzip;q=0.0"]
)
def test_encodings_that_do_not_accept_gzip(ro_client, accept):
    headers = {} if accept is None else {"Accept-Encoding": accept}
    response = get_ok(ro_client, "/rss.xml", headers=headers)
    assert "Content-Encoding" not in response.headers
    etree.fromstring(response.data)


def test_if_none_match_is_per_coding(ro_client):
    url = "/topics/ai/rss.xml"
    gz = {"Accept-Encoding": "gzip"}
    identity = entity_tag(get_ok(ro_client, url))
    zipped = entity_tag(get_ok(ro_client, url, headers=gz))
    assert_not_modified(ro_client.get(url, headers={**gz, "If-None-Match": zipped}), zipped)
    assert_not_modified(ro_client.get(url, headers={"If-None-Match": identity}), identity)
    assert ro_client.get(url, headers={**gz, "If-None-Match": identity}).status_code == 200
    assert ro_client.get(url, headers={"If-None-Match": zipped}).status_code == 200
    assert_not_modified(ro_client.get(url, headers={**gz, "If-None-Match": f"{identity}, {zipped}"}), zipped)


def test_gzip_bytes_are_the_same_every_time(make_client):
    headers = {"Accept-Encoding": "gzip"}
    bodies = {get_ok(make_client(), "/feed.json", headers=headers).data for _ in range(3)}
    assert len(bodies) == 1


def test_compressed_once_per_rendered_body(client, monkeypatch):
    compressed: list[bytes] = []
    real = gzip.compress

    def counting(data, *args, **kwargs):
        compressed.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(feedsvc.runtime.bodycache.gzip, "compress", counting)
    cache = store_of(client).cache
    first = get_ok(client, "/topics/ai/atom.xml", headers={"Accept-Encoding": "gzip"})
    renders = cache.renders
    assert len(compressed) == 1
    for _ in range(5):
        for headers in ({"Accept-Encoding": "gzip"}, {}, {"Accept-Encoding": "gzip;q=0"}):
            get_ok(client, "/topics/ai/atom.xml", headers=headers)
        client.head("/topics/ai/atom.xml", headers={"Accept-Encoding": "gzip"})
        client.get("/topics/ai/atom.xml", headers={"If-None-Match": first.headers["ETag"]})
    assert cache.renders == renders
    assert len(compressed) == 1
    assert gzip.decompress(first.data) == compressed[0]


# --- the render cache through the web ------------------------------------------------------------


@pytest.fixture
def xy_client(write_article, make_client):
    """The seeds plus topic Xray (two articles, one a draft) and topic Yankee (two articles)."""
    write_article("x1.md", title="X one", topics=["Xray"], webUrl="https://example.com/x1")
    write_article("x2.md", title="X draft", topics=["Xray"], published=False, webUrl="https://example.com/x2")
    write_article("y1.md", title="Y one", topics=["Yankee"], webUrl="https://example.com/y1")
    write_article(
        "y2.md",
        title="Y two",
        topics=["Yankee"],
        publishedDateTime="2021-01-01T00:00:00Z",
        webUrl="https://example.com/y2",
    )
    return make_client()


def bodies(client, slug: str, query: str = "") -> dict[str, tuple[bytes, str]]:
    out = {}
    for fmt in FORMATS:
        response = get_ok(client, feed_path(slug, fmt) + query)
        out[fmt] = (response.data, response.headers["ETag"])
    return out


def test_repeat_requests_do_not_render_again(xy_client):
    cache = store_of(xy_client).cache
    first = bodies(xy_client, "yankee")
    renders = cache.renders
    for _ in range(5):
        assert bodies(xy_client, "yankee") == first
    assert cache.renders == renders


def test_reload_that_changes_only_x_keeps_y_cached(xy_client, write_article):
    cache, store = store_of(xy_client).cache, store_of(xy_client)
    y_before, x_before = bodies(xy_client, "yankee"), bodies(xy_client, "xray")
    write_article("x1.md", title="X one, corrected", topics=["Xray"], webUrl="https://example.com/x1")
    assert store.reload() is True

    renders = cache.renders
    assert bodies(xy_client, "yankee") == y_before
    assert cache.renders == renders  # every format of Y from the cache

    x_after = bodies(xy_client, "xray")
    assert cache.renders == renders + len(FORMATS)  # every format of X rendered again, once
    for fmt in FORMATS:
        assert x_after[fmt][1] != x_before[fmt][1]
        assert b"X one, corrected" in x_after[fmt][0]
    assert bodies(xy_client, "xray") == x_after and cache.renders == renders + len(FORMATS)


def test_cached_y_still_answers_304_after_an_x_reload(xy_client, write_article):
    etag = get_ok(xy_client, "/topics/yankee/rss.xml").headers["ETag"]
    write_article("x3.md", topics=["Xray"], webUrl="https://example.com/x3")
    store_of(xy_client).reload()
    assert xy_client.get("/topics/yankee/rss.xml", headers={"If-None-Match": etag}).status_code == 304


def test_draft_change_drops_only_the_include_all_bodies(xy_client, write_article):
    cache = store_of(xy_client).cache
    published, everything = bodies(xy_client, "xray"), bodies(xy_client, "xray", "?include=all")
    write_article(
        "x2.md", title="X draft, rewritten", topics=["Xray"], published=False, webUrl="https://example.com/x2"
    )
    store_of(xy_client).reload()
    renders = cache.renders
    assert bodies(xy_client, "xray") == published
    assert cache.renders == renders
    changed = bodies(xy_client, "xray", "?include=all")
    assert cache.renders == renders + len(FORMATS)
    assert all(changed[f][1] != everything[f][1] for f in FORMATS)


def test_all_topics_feed_is_rendered_again_for_any_published_change(xy_client, write_article):
    cache = store_of(xy_client).cache
    before = bodies(xy_client, None)
    write_article("y3.md", topics=["Yankee"], webUrl="https://example.com/y3")
    store_of(xy_client).reload()
    renders = cache.renders
    after = bodies(xy_client, None)
    assert cache.renders == renders + len(FORMATS)
    assert all(after[f][1] != before[f][1] for f in FORMATS)


def test_render_cache_size_bounds_the_cache(xy_client, make_client):
    client = make_client(RENDER_CACHE_SIZE=2)
    cache = store_of(client).cache
    for url in ("/topics/xray/rss.xml", "/topics/yankee/rss.xml", "/topics/ai/rss.xml"):
        get_ok(client, url)
    assert cache.renders == 3
    # The two later ones are held: asked for gzipped (another response to the fast path, the same
    # body to the render cache, which keeps both codings), neither is rendered again. Least
    # recently used first, so the order stays.
    for url in ("/topics/yankee/rss.xml", "/topics/ai/rss.xml"):
        get_ok(client, url, headers={"Accept-Encoding": "gzip"})
    assert cache.renders == 3
    get_ok(client, "/topics/xray/rss.xml")  # the least recently used: dropped, rendered again
    assert cache.renders == 4
    get_ok(client, "/topics/ai/rss.xml")
    assert cache.renders == 4


# --- RFC 5005 paging -----------------------------------------------------------------------------


def page_links(fmt: str, body: bytes) -> dict[str, str]:
    """rel -> href of the feed-level paging links (JSON Feed has only next_url)."""
    if fmt == "json":
        data = json.loads(body)
        return {"next": data["next_url"]} if "next_url" in data else {}
    root = etree.fromstring(body)
    links = root.findall(f"{ATOM}link") if fmt == "atom" else root.findall(f"channel/{ATOM}link")
    found: dict[str, str] = {}
    for link in links:
        rel = link.get("rel")
        if rel in ("first", "last", "previous", "next", "prev"):
            assert rel not in found, f"two rel={rel} links"
            found[rel] = link.get("href")
    return found


def local(url: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "localhost", url
    return parts.path + ("?" + parts.query if parts.query else "")


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def page_of(url: str) -> int:
    """The page number a feed URL's path names (/page/N/...; none: 1)."""
    match = re.search(r"/page/([0-9]+)/[^/]+$", urlsplit(url).path)
    return int(match.group(1)) if match else 1


def walk(client, url: str, fmt: str, max_pages: int = 200) -> tuple[list[str], list[str]]:
    """Follow rel=next from `url`; the entry ids in order and the URLs visited."""
    ids, visited = [], []
    while url is not None:
        assert len(visited) < max_pages, "next links never end"
        assert url not in visited, f"next links loop back to {url}"
        visited.append(url)
        body = get_ok(client, url).data
        ids.extend(entry_ids(fmt, body))
        url = page_links(fmt, body).get("next")
        url = local(url) if url else None
    return ids, visited


@pytest.mark.parametrize("slug", [None, "ai"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_walking_next_links_visits_every_entry_once_in_order(ro_corpus, fmt, slug):
    everything = entry_ids(fmt, get_ok(ro_corpus, feed_path(slug, fmt) + "?include=all&limit=500").data)
    assert len(everything) > 9
    ids, visited = walk(ro_corpus, feed_path(slug, fmt) + "?include=all&limit=3", fmt)
    assert ids == everything
    assert len(ids) == len(set(ids))
    assert len(visited) == -(-len(everything) // 3)
    assert visited[1:] == [feed_path(slug, fmt, n) + "?include=all&limit=3" for n in range(2, len(visited) + 1)]
    assert all(query_of(u) == {"include": ["all"], "limit": ["3"]} for u in visited)  # the page is in the path


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_rss_and_atom_carry_first_last_previous_next(ro_corpus, fmt):
    base = feed_path(None, fmt) + "?include=all&limit=3"
    total = len(entry_ids(fmt, get_ok(ro_corpus, feed_path(None, fmt) + "?include=all&limit=500").data))
    pages = -(-total // 3)
    assert pages >= 3
    url = lambda page: f"http://localhost{feed_path(None, fmt, page)}?include=all&limit=3"

    first = page_links(fmt, get_ok(ro_corpus, base).data)
    assert first == {"first": url(1), "last": url(pages), "next": url(2)}
    middle = page_links(fmt, get_ok(ro_corpus, local(url(2))).data)
    assert middle == {"first": url(1), "last": url(pages), "previous": url(1), "next": url(3)}
    last = page_links(fmt, get_ok(ro_corpus, local(url(pages))).data)
    assert last == {"first": url(1), "last": url(pages), "previous": url(pages - 1)}


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_walking_previous_links_goes_back_in_order(ro_corpus, fmt):
    first = get_ok(ro_corpus, feed_path(None, fmt) + "?include=all&limit=3").data
    url, pages = local(page_links(fmt, first)["last"]), []
    while url:
        body = get_ok(ro_corpus, url).data
        pages.append(entry_ids(fmt, body))
        prev = page_links(fmt, body).get("previous")
        url = local(prev) if prev else None
    ids = [i for page in reversed(pages) for i in page]
    assert ids == entry_ids(fmt, get_ok(ro_corpus, feed_path(None, fmt) + "?include=all&limit=500").data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_single_page_feed_has_no_next_or_previous(ro_client, fmt):
    links = page_links(fmt, get_ok(ro_client, feed_path("ai", fmt)).data)
    assert "next" not in links and "previous" not in links
    if fmt != "json":
        self_url = f"http://localhost{feed_path('ai', fmt)}"
        assert links == {"first": self_url, "last": self_url}


@pytest.mark.parametrize("fmt", FORMATS)
def test_page_past_the_end_is_404(ro_corpus, fmt):
    last = page_links("atom", get_ok(ro_corpus, "/atom.xml?include=all&limit=3").data)["last"]
    pages = page_of(last)
    assert pages > 2
    assert get_ok(ro_corpus, feed_path(None, fmt, pages) + "?include=all&limit=3")
    for page in (pages + 1, pages + 50, 10**30):
        response = ro_corpus.get(feed_path(None, fmt, page) + "?include=all&limit=3")
        assert response.status_code == 404
        assert response.mimetype == "text/plain"


@pytest.mark.parametrize("fmt", FORMATS)
def test_page_two_of_a_one_page_feed_is_404(ro_client, fmt):
    assert ro_client.get(feed_path("ai", fmt, 2)).status_code == 404


@pytest.mark.parametrize("page", ["0", "-1", "abc", "", "1.5", "\u0661", " 2", "2 "])
@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_page_is_400(ro_client, fmt, page):
    response = ro_client.get(feed_path(None, fmt), query_string={"page": page})
    assert response.status_code == 400
    assert response.mimetype == "text/plain"


def test_page_given_twice_is_400(ro_client):
    assert ro_client.get("/rss.xml?page=1&page=1").status_code == 400


@pytest.mark.parametrize("fmt", FORMATS)
def test_pages_are_cached_and_validated_like_any_feed(ro_corpus, fmt):
    url = feed_path(None, fmt, 2) + "?include=all&limit=3"
    response = get_ok(ro_corpus, url)
    etag = entity_tag(response)
    assert etag == f'"{digest(response.data)}"'
    assert ro_corpus.get(url, headers={"If-None-Match": etag}).status_code == 304
    zipped = get_ok(ro_corpus, url, headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(zipped.data) == response.data


# --- the fast path: finished responses replayed in front of Flask -----------------------------------


@pytest.fixture
def fast_and_flask(seeds_dir):
    """The same app twice: with the response replay (the default) and without it."""
    config = {"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0}
    fast = create_app(config).test_client()
    flask = create_app({**config, "FAST_PATH": False}).test_client()
    return fast, flask


def without_date(response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "Date")


@pytest.mark.parametrize(
    "url", ["/rss.xml", "/topics/ai/atom.xml", "/feed.json?include=all", "/page/2/atom.xml?limit=1"]
)
def test_replayed_responses_are_what_flask_answers(fast_and_flask, url):
    fast, flask = fast_and_flask
    identity = get_ok(flask, url)
    zipped = get_ok(flask, url, headers={"Accept-Encoding": "gzip"})
    for client in (fast, flask):  # fill the replay cache
        get_ok(client, url)
        get_ok(client, url, headers={"Accept-Encoding": "gzip"})
    etag, gz_etag, lm = identity.headers["ETag"], zipped.headers["ETag"], identity.headers["Last-Modified"]
    cases = [
        {},
        {"Accept-Encoding": "gzip"},
        {"Accept-Encoding": "gzip;q=0"},
        {"If-None-Match": etag},
        {"If-None-Match": f"W/{etag}"},
        {"If-None-Match": "*"},
        {"If-None-Match": '"x"'},
        {"If-None-Match": gz_etag, "Accept-Encoding": "gzip"},
        {"If-None-Match": etag, "Accept-Encoding": "gzip"},
        {"If-Modified-Since": lm},
        {"If-Modified-Since": http_date(T0 - 86400)},
        {"If-Modified-Since": "junk"},
        {"If-None-Match": '"x"', "If-Modified-Since": lm},
        {"If-None-Match": etag, "If-Modified-Since": http_date(0)},
    ]
    replays = fast.application.wsgi_app.hits
    for headers in cases:
        for method in ("GET", "HEAD"):
            a, b = fast.open(url, method=method, headers=headers), flask.open(url, method=method, headers=headers)
            assert (a.status_code, without_date(a), a.data) == (b.status_code, without_date(b), b.data), (
                method,
                headers,
            )
    assert fast.application.wsgi_app.hits - replays == 2 * len(cases)


def test_replay_never_outlives_a_reload(client, write_article):
    first = get_ok(client, "/topics/ai/rss.xml")
    get_ok(client, "/topics/ai/rss.xml")
    write_article("new.md", topics=["AI"], webUrl="https://example.com/after-reload")
    store_of(client).reload()
    after = get_ok(client, "/topics/ai/rss.xml")
    assert "https://example.com/after-reload" in entry_ids("rss", after.data)
    assert client.get("/topics/ai/rss.xml", headers={"If-None-Match": first.headers["ETag"]}).status_code == 200


def test_errors_are_never_replayed(client, write_article):
    assert client.get("/topics/later/rss.xml").status_code == 404
    write_article("later.md", topics=["Later"], webUrl="https://example.com/later")
    store_of(client).reload()
    assert get_ok(client, "/topics/later/rss.xml")


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml", "feed.json", "digest.html", "digest.txt"])
def test_pages_and_their_redirects_are_never_mixed_up_by_the_replay(fast_and_flask, name):
    """/page/2/NAME is kept and replayed; NAME?page=2 (its 301), /page/1/ and /page/01/ never get its bytes."""
    fast, flask = fast_and_flask
    urls = [f"/page/2/{name}?limit=1", f"/{name}?limit=1&page=2", f"/{name}?page=2&limit=1", f"/page/1/{name}?limit=1",
            f"/{name}?limit=1&page=1", f"/page/02/{name}?limit=1", f"/{name}?limit=1", f"/topics/ai/page/2/{name}?limit=1",
            f"/topics/ai/{name}?limit=1&page=2"]  # fmt: skip
    replays = fast.application.wsgi_app.hits
    for _ in range(3):
        for url in urls:
            a, b = fast.get(url), flask.get(url)
            assert (a.status_code, without_date(a), a.data) == (b.status_code, without_date(b), b.data), url
    assert [fast.get(u).status_code for u in urls] == [200, 301, 301, 301, 301, 404, 200, 200, 301]
    assert fast.application.wsgi_app.hits - replays == 2 * 3 + 3  # only the three 200s are replayed


@pytest.mark.slow
def test_replayed_response_has_a_current_date(client):
    first = get_ok(client, "/rss.xml")
    time.sleep(1.2)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    again = get_ok(client, "/rss.xml")
    assert client.application.wsgi_app.hits >= 1
    assert parsedate_to_datetime(again.headers["Date"]) >= before  # actual: the first response's Date
    assert again.headers["Date"] != first.headers["Date"]


def test_failed_if_match_is_412_on_a_replayed_response_too(fast_and_flask):
    fast, flask = fast_and_flask
    assert flask.get("/rss.xml", headers={"If-Match": '"not-it"'}).status_code == 412
    get_ok(fast, "/rss.xml")  # kept for replay
    assert fast.get("/rss.xml", headers={"If-Match": '"not-it"'}).status_code == 412  # actual: 200


IF_MATCH_URLS = ["/rss.xml", "/topics/ai/atom.xml?include=all", "/feed.json?limit=1", "/digest.html"]


@pytest.mark.parametrize("url", IF_MATCH_URLS)
@pytest.mark.parametrize("coding", ["identity", "gzip"])
def test_failed_if_match_is_412_without_a_body(fast_and_flask, url, coding):
    """RFC 9110 13.1.1 and 15.5.13: a false If-Match is a 412, and a 412 sends no representation."""
    for client in fast_and_flask:
        current = get_ok(client, url, headers={"Accept-Encoding": coding})  # kept for replay, where on
        other_coding = get_ok(client, url, headers={"Accept-Encoding": "identity" if coding == "gzip" else "gzip"})
        for if_match in ('"not-it"', f"W/{current.headers['ETag']}", other_coding.headers["ETag"], '"a", "b"'):
            for method in ("GET", "HEAD"):
                response = client.open(url, method=method, headers={"If-Match": if_match, "Accept-Encoding": coding})
                assert response.status_code == 412, (if_match, method)
                assert response.data == b"" and response.headers.get("Content-Length", "0") == "0"
                assert "Content-Encoding" not in response.headers and "Content-Type" not in response.headers
                assert "Cache-Control" not in response.headers  # no cache may keep it for the URL
                assert response.headers["ETag"] == current.headers["ETag"]


@pytest.mark.parametrize("url", IF_MATCH_URLS)
def test_if_match_that_holds_is_the_usual_response(fast_and_flask, url):
    for client in fast_and_flask:
        current = get_ok(client, url)
        for if_match in ("*", current.headers["ETag"], f'"other", {current.headers["ETag"]}'):
            response = client.get(url, headers={"If-Match": if_match})
            assert (response.status_code, response.data) == (200, current.data), if_match
        # If-Match holds, then If-None-Match decides (RFC 9110 13.2.2 steps 1 and 3).
        both = {"If-Match": current.headers["ETag"], "If-None-Match": current.headers["ETag"]}
        assert client.get(url, headers=both).status_code == 304


def test_a_stream_of_filtered_urls_leaves_the_hot_feeds_in_the_fast_path(make_client):
    client = make_client(FILTERED_CACHE_SIZE=4)
    fast = client.application.wsgi_app
    get_ok(client, "/rss.xml")
    hits = fast.hits
    for n in range(300):
        get_ok(client, f"/rss.xml?filterout_title=x{n}")
        get_ok(client, f"/rss.xml?junk={n}")  # a URL the service never links to: kept apart too
    get_ok(client, "/rss.xml")
    assert fast.hits == hits + 1
    assert len(fast.apart) <= 4 and len(fast.main) == 1
    assert len(client.application.extensions["feedsvc"].cache.filtered) <= 4
