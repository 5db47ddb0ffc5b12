"""WebSub (W3C Recommendation): feeds advertise the hub, a reload that changes a feed tells the
hub, and a hub that is down or failing never slows serving.

The hub is a real HTTP server on 127.0.0.1 in a thread of this process, shut down after each test.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import ATOM, SEEDS, RecordingHub, check_feed, feed_path, wait_until
from lxml import etree

from feedsvc import create_app
from feedsvc.content.model import Article
from feedsvc.errors import FeedsvcError
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.site import Site
from feedsvc.runtime.websub import PUBLIC_FORMATS, HubNotifier, changed_feed_urls

BASE = "http://feeds.example.org/"
FORMATS = ["rss", "atom", "json"]
SLUGS = [None, "ai", "computer-vision"]


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch) -> None:
    """The notifier's lock file (one per seeds folder, under the temp folder) in this test's folder, not /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def hub():
    server = RecordingHub()
    yield server
    server.close()


@pytest.fixture
def make_hub():
    servers: list[RecordingHub] = []

    def make(statuses: list[int] | None = None) -> RecordingHub:
        servers.append(RecordingHub(statuses))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def closed_port_url() -> str:
    """A URL nothing listens on (the port was bound, then released)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()
    return f"http://127.0.0.1:{port}/hub"


def expected_urls(*slugs: str | None) -> set[str]:
    return {BASE.rstrip("/") + feed_path(slug, fmt) for slug in slugs for fmt in FORMATS}


def feed_links(fmt: str, body: bytes) -> list[tuple[str, str]]:
    """(rel, href) of every feed-level link; for JSON Feed its feed_url and hubs."""
    if fmt == "json":
        data = json.loads(body)
        return [("self", data["feed_url"])] + [("hub", h["url"]) for h in data.get("hubs", [])]
    root = etree.fromstring(body)
    links = root.findall(f"{ATOM}link") if fmt == "atom" else root.findall(f"channel/{ATOM}link")
    return [(l.get("rel"), l.get("href")) for l in links]


def websub_client(seeds_dir, hub_url: str, **config):
    return create_app(
        {
            "TESTING": True,
            "SEEDS_DIR": str(seeds_dir),
            "RELOAD_INTERVAL": 0,
            "WEBSUB_HUB": hub_url,
            "BASE_URL": BASE,
            **config,
        }
    ).test_client()


# --- discovery ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def advertising_client(tmp_path_factory):
    """A client with a hub configured, shared by the read-only discovery tests."""
    folder = tmp_path_factory.mktemp("websub") / "seeds"
    shutil.copytree(SEEDS, folder)
    return websub_client(folder, "https://hub.example.net/", CACHE_DIR="")


@pytest.mark.parametrize("page, query", [(1, ""), (1, "?include=all"), (2, "?limit=1")])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("slug", SLUGS)
def test_every_feed_advertises_the_hub_and_one_self(advertising_client, slug, fmt, page, query):
    client = advertising_client
    url = feed_path(slug, fmt, page) + query
    response = client.get(url)
    assert response.status_code == 200
    links = feed_links(fmt, response.data)
    assert [href for rel, href in links if rel == "hub"] == ["https://hub.example.net/"]
    selves = [href for rel, href in links if rel == "self"]
    assert selves == [BASE.rstrip("/") + url]
    if fmt != "json":
        check_feed(fmt, response.data)


def test_json_feed_names_the_hub_type(seeds_dir):
    data = json.loads(websub_client(seeds_dir, "https://hub.example.net/").get("/feed.json").data)
    assert data["hubs"] == [{"type": "WebSub", "url": "https://hub.example.net/"}]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_hub_advertised_without_websub_hub(client, fmt):
    links = feed_links(fmt, client.get(feed_path("ai", fmt)).data)
    assert [rel for rel, _ in links if rel == "hub"] == []
    assert len([rel for rel, _ in links if rel == "self"]) == 1


def test_websub_hub_without_base_url_is_refused(seeds_dir):
    with pytest.raises(FeedsvcError, match="BASE_URL"):
        create_app(
            {
                "TESTING": True,
                "SEEDS_DIR": str(seeds_dir),
                "RELOAD_INTERVAL": 0,
                "WEBSUB_HUB": "https://hub.example.net/",
            }
        )


def test_websub_hub_without_base_url_from_the_environment_is_refused(seeds_dir, monkeypatch):
    monkeypatch.setenv("FEEDSVC_WEBSUB_HUB", "https://hub.example.net/")
    monkeypatch.delenv("FEEDSVC_BASE_URL", raising=False)
    with pytest.raises(FeedsvcError):
        create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0})


# --- changed_feed_urls ----------------------------------------------------------------------------


DAY0 = datetime(2021, 3, 1, tzinfo=timezone.utc)


def article(n: int, *topics: str, title: str | None = None, published: bool = True, age: int | None = None) -> Article:
    return Article(
        path=f"{n:03}.md",
        title=title or f"Article {n}",
        url=f"https://news.example.com/{n}",
        published=DAY0 - timedelta(days=n if age is None else age),
        topics=topics or ("Xray",),
        is_published=published,
    )


SITE = Site(BASE, default_limit=2)
BASELINE = [article(1, "Xray"), article(2, "Xray"), article(3, "Yankee"), article(4, "Yankee", published=False)]


def urls_for(*slugs: str | None) -> list[str]:
    return [SITE.feed_url(slug, fmt) for slug in slugs for fmt in PUBLIC_FORMATS]


def test_no_change_no_urls():
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(BASELINE))) == []


def test_public_formats_are_all_three():
    assert set(PUBLIC_FORMATS) == {"rss", "atom", "json"}


def test_changed_article_names_its_topics_and_the_all_feed():
    new = [article(1, "Xray", title="Edited"), *BASELINE[1:]]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == urls_for(None, "xray")


def test_urls_are_the_default_public_feed_urls():
    new = [article(1, "Xray", title="Edited"), *BASELINE[1:]]
    found = changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new)))
    assert found == [
        "http://feeds.example.org/rss.xml",
        "http://feeds.example.org/atom.xml",
        "http://feeds.example.org/feed.json",
        "http://feeds.example.org/topics/xray/rss.xml",
        "http://feeds.example.org/topics/xray/atom.xml",
        "http://feeds.example.org/topics/xray/feed.json",
    ]


def test_article_in_two_topics_names_both():
    new = [*BASELINE, article(9, "Xray", "Yankee", age=0)]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == urls_for(None, "xray", "yankee")


def test_unpublished_change_names_nothing():
    new = [*BASELINE[:3], article(4, "Yankee", title="Draft, edited", published=False)]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == []


def test_drafts_respelling_a_topic_name_nothing():
    # Two drafts spelling Xray "XRAY" outnumber its published spelling: public feeds keep "Xray".
    new = [*BASELINE, article(5, "XRAY", published=False), article(6, "XRAY", published=False)]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == []


def test_publishing_a_draft_names_its_feeds():
    new = [*BASELINE[:3], article(4, "Yankee", published=True)]
    # Article 4 is older than the all-topics feed's first page (limit 2: articles 1 and 2).
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == urls_for("yankee")


def test_publishing_a_new_draft_names_the_all_feed_too():
    new = [*BASELINE[:3], article(4, "Yankee", published=True, age=0)]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == urls_for(None, "yankee")


def test_new_topic_is_named():
    new = [*BASELINE, article(5, "Zulu", age=0)]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == urls_for(None, "zulu")


def test_topic_that_disappears_is_named():
    new = [a for a in BASELINE if "Yankee" not in a.topics]
    assert changed_feed_urls(SITE, Catalog(tuple(BASELINE)), Catalog(tuple(new))) == urls_for("yankee")


def test_topic_that_disappears_from_the_first_page_names_the_all_feed():
    old = [*BASELINE, article(5, "Zulu", age=0)]
    assert changed_feed_urls(SITE, Catalog(tuple(old)), Catalog(tuple(BASELINE))) == urls_for(None, "zulu")


def test_change_below_the_first_page_names_nothing():
    # limit 2: Xray's first page is articles 1 and 2; an older one lands on page 2 only.
    old = [*BASELINE]
    new = [*BASELINE, article(30, "Xray", age=30)]
    assert "http://feeds.example.org/topics/xray/rss.xml" not in changed_feed_urls(
        SITE, Catalog(tuple(old)), Catalog(tuple(new))
    )


def test_empty_catalogs():
    assert changed_feed_urls(SITE, Catalog(()), Catalog(())) == []
    assert changed_feed_urls(SITE, Catalog(()), Catalog((article(1, "Xray"),))) == urls_for(None, "xray")


def test_urls_follow_the_sites_base_url():
    site = Site("https://other.example/prefix/", default_limit=2)
    new = [article(1, "Xray", title="Edited"), *BASELINE[1:]]
    found = changed_feed_urls(site, Catalog(tuple(BASELINE)), Catalog(tuple(new)))
    assert found and all(url.startswith("https://other.example/prefix/") for url in found)


# --- notifications after a reload ---------------------------------------------------------------


def test_reload_that_changes_a_feed_posts_publish_to_the_hub(seeds_dir, write_article, hub):
    client = websub_client(seeds_dir, hub.url)
    write_article("x.md", topics=["Xray"], webUrl="https://example.com/x", publishedDateTime="2022-01-01T00:00:00Z")
    assert client.application.extensions["feedsvc"].reload() is True
    want = expected_urls(None, "xray")
    assert wait_until(lambda: set(hub.notified()) == want), hub.notified()
    for post in hub.posts:
        assert post["path"] == "/hub"
        assert post["content_type"] == "application/x-www-form-urlencoded"
        assert post["form"]["hub.mode"] == ["publish"]
        assert post["form"]["hub.topic"] == post["form"]["hub.url"]
    assert len(hub.notified()) == len(want)


def test_notified_url_is_the_feeds_self_link(seeds_dir, write_article, hub):
    client = websub_client(seeds_dir, hub.url)
    write_article("x.md", topics=["Xray"], webUrl="https://example.com/x", publishedDateTime="2022-01-01T00:00:00Z")
    client.application.extensions["feedsvc"].reload()
    assert wait_until(lambda: len(hub.notified()) == 6)
    for fmt in FORMATS:
        selves = [href for rel, href in feed_links(fmt, client.get(feed_path("xray", fmt)).data) if rel == "self"]
        assert selves[0] in hub.notified()


def test_no_notification_without_a_reload_or_for_a_draft(seeds_dir, write_article, hub):
    client = websub_client(seeds_dir, hub.url)
    store = client.application.extensions["feedsvc"]
    assert store.reload() is False
    write_article("draft.md", topics=["Xray"], published=False, webUrl="https://example.com/draft")
    assert store.reload() is True  # a change, but to no public feed
    write_article("y.md", topics=["Yankee"], webUrl="https://example.com/y", publishedDateTime="2022-01-01T00:00:00Z")
    store.reload()
    # The notifier sends in order: once Yankee's arrive, anything queued before them has too.
    assert wait_until(lambda: set(hub.notified()) == expected_urls(None, "yankee"))
    assert len(hub.notified()) == 6


def test_each_reload_notifies_again(seeds_dir, write_article, hub):
    client = websub_client(seeds_dir, hub.url)
    store = client.application.extensions["feedsvc"]
    for n in range(3):
        write_article(
            "x.md",
            title=f"Version {n}",
            topics=["Xray"],
            webUrl="https://example.com/x",
            publishedDateTime="2022-01-01T00:00:00Z",
        )
        store.reload()
        assert wait_until(lambda n=n: len(hub.notified()) == 6 * (n + 1))
    assert sorted(hub.notified()) == sorted(list(expected_urls(None, "xray")) * 3)


def test_watcher_reload_notifies(seeds_dir, write_article, hub):
    client = websub_client(seeds_dir, hub.url, RELOAD_INTERVAL=0.1)
    store = client.application.extensions["feedsvc"]
    try:
        client.get("/healthz")  # starts the watcher
        write_article("x.md", topics=["Xray"], webUrl="https://example.com/x", publishedDateTime="2022-01-01T00:00:00Z")
        assert wait_until(lambda: set(hub.notified()) == expected_urls(None, "xray"))
    finally:
        store.stop_watching()


def test_removing_a_published_article_notifies_its_feeds(seeds_dir, write_article, hub):
    path = write_article("x.md", topics=["Xray"], webUrl="https://example.com/x")
    client = websub_client(seeds_dir, hub.url)
    path.unlink()
    client.application.extensions["feedsvc"].reload()
    assert wait_until(lambda: set(hub.notified()) == expected_urls(None, "xray"))


# --- HubNotifier: retries with backoff, in its own thread -------------------------------------------


def test_notify_retries_until_the_hub_accepts(make_hub):
    server = make_hub([500, 500])
    notifier = HubNotifier(server.url, attempts=5, first_delay=0.1, timeout=5)
    assert notifier.notify("https://f.example/rss.xml") is True
    assert [p["status"] for p in server.posts] == [500, 500, 204]
    times = [p["at"] for p in server.posts]
    assert times[1] - times[0] >= 0.09  # first_delay
    assert times[2] - times[1] >= 0.19  # doubled
    assert all(p["form"]["hub.url"] == ["https://f.example/rss.xml"] for p in server.posts)


def test_queued_notification_is_retried_in_the_background(make_hub):
    server = make_hub([500, 503])
    notifier = HubNotifier(server.url, attempts=5, first_delay=0.01, timeout=5)
    started = time.monotonic()
    notifier.publish(["https://f.example/atom.xml"])
    assert time.monotonic() - started < 0.1
    assert wait_until(lambda: len(server.posts) == 3)
    time.sleep(0.1)
    assert [p["status"] for p in server.posts] == [500, 503, 204]  # no attempt after the success


def test_notify_gives_up_after_its_attempts(make_hub):
    server = make_hub([500] * 10)
    notifier = HubNotifier(server.url, attempts=3, first_delay=0.01, timeout=5)
    assert notifier.notify("https://f.example/rss.xml") is False
    assert len(server.posts) == 3


def test_notify_to_a_closed_port_gives_up_quietly():
    notifier = HubNotifier(closed_port_url(), attempts=3, first_delay=0.01, timeout=2)
    started = time.monotonic()
    assert notifier.notify("https://f.example/rss.xml") is False
    assert time.monotonic() - started < 2


def test_later_notifications_are_sent_after_a_failed_one(make_hub):
    server = make_hub([500, 500])
    notifier = HubNotifier(server.url, attempts=2, first_delay=0.01, timeout=5)
    notifier.publish(["https://f.example/a", "https://f.example/b"])
    assert wait_until(lambda: len(server.posts) == 3)
    assert server.notified() == ["https://f.example/a", "https://f.example/a", "https://f.example/b"]
    assert [p["status"] for p in server.posts] == [500, 500, 204]


def test_publish_never_blocks_even_when_the_queue_is_full():
    notifier = HubNotifier(closed_port_url(), attempts=1, first_delay=0.01, timeout=1)
    notifier.queue.maxsize = 3
    started = time.monotonic()
    notifier.publish([f"https://f.example/{n}" for n in range(50)])
    assert time.monotonic() - started < 0.5


# --- a hub that is down or failing never slows serving -------------------------------------------


def assert_serving_stays_fast(client, seconds: float, done) -> int:
    """Request every feed until `done()` or `seconds` pass; each must answer fast. Returns the count."""
    deadline, count = time.monotonic() + seconds, 0
    urls = [feed_path(s, f) for s in (None, "ai", "xray") for f in FORMATS]
    while time.monotonic() < deadline and not (count >= len(urls) and done()):
        url = urls[count % len(urls)]
        started = time.monotonic()
        response = client.get(url)
        assert response.status_code == 200
        assert time.monotonic() - started < 0.5, f"{url} took {time.monotonic() - started:.2f}s"
        count += 1
    return count


@pytest.mark.slow
def test_hub_down_never_slows_serving(seeds_dir, write_article, caplog):
    hub_url = closed_port_url()
    client = websub_client(seeds_dir, hub_url)
    store = client.application.extensions["feedsvc"]
    write_article("x.md", topics=["Xray"], webUrl="https://example.com/x", publishedDateTime="2022-01-01T00:00:00Z")
    started = time.monotonic()
    assert store.reload() is True
    assert time.monotonic() - started < 1.0
    retried = lambda: f"WebSub hub {hub_url}: attempt 2" in caplog.text  # it waited first_delay (1 s), tried again
    assert_serving_stays_fast(client, 6.0, retried)
    assert retried(), caplog.text


@pytest.mark.slow
def test_failing_hub_never_slows_serving(seeds_dir, write_article, make_hub):
    server = make_hub([500] * 100)
    client = websub_client(seeds_dir, server.url)
    store = client.application.extensions["feedsvc"]
    write_article("x.md", topics=["Xray"], webUrl="https://example.com/x", publishedDateTime="2022-01-01T00:00:00Z")
    started = time.monotonic()
    assert store.reload() is True
    assert time.monotonic() - started < 1.0
    assert_serving_stays_fast(client, 6.0, lambda: len(server.posts) >= 2)
    assert len(server.posts) >= 2  # the first notification was refused, then retried after its backoff


def test_feed_content_is_current_while_the_hub_fails(seeds_dir, write_article, make_hub):
    server = make_hub([500] * 100)
    client = websub_client(seeds_dir, server.url)
    write_article("x.md", title="Fresh news", topics=["Xray"], webUrl="https://example.com/x")
    client.application.extensions["feedsvc"].reload()
    titles = [i.findtext("title") for i in etree.fromstring(client.get("/topics/xray/rss.xml").data).iter("item")]
    assert titles == ["Fresh news"]
