"""feedsvc.store: reloads that parse only changed files, keep broken files' last good version,
swap catalogs atomically, and run from a watcher thread or on SIGHUP.

Every wait is bounded; every watcher a test starts is parked (a long interval) when it ends.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
import weakref
from datetime import datetime, timezone
from pathlib import Path

import pytest
import watchfiles
from helpers import (
    ATOM,
    SEEDS,
    WAIT,
    Server,
    article_text,
    as_unprivileged,
    served_by_every_worker,
    set_mtime,
    wait_until,
    watcher_of,
)
from lxml import etree

import feedsvc.content.files
import feedsvc.runtime.parsecache
import feedsvc.runtime.store
from feedsvc import create_app
from feedsvc.content.fields import Limits
from feedsvc.errors import FeedsvcError, TopicNotFound
from feedsvc.runtime.loader import FileState, refresh
from feedsvc.runtime.scan import Stamp, scan
from feedsvc.runtime.store import FeedStore, build_catalog, collector_paused, reload_on_sighup
from feedsvc.runtime.watcher import Watcher

T0 = 1_600_000_000  # 2020-09-13T12:26:40Z: a fixed past instant for mtimes


def urls(store: FeedStore, include_all: bool = True) -> set[str]:
    return {a.url for a in store.catalog.selected(include_all)}


def titles(store: FeedStore) -> dict[str, str]:
    return {a.path: a.title for a in store.catalog.articles}


@pytest.fixture
def parked():
    """Stores whose watchers are parked when the test ends (a watcher thread never stops by itself)."""
    stores: list[FeedStore] = []
    yield stores.append
    for store in stores:
        store.stop_watching()


@pytest.fixture
def restore_sighup():
    """Put back the SIGHUP handler create_app replaced."""
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


# --- reload(): added, changed, removed ---------------------------------------------------------


def test_store_loads_the_folder(seeds_dir):
    store = FeedStore(seeds_dir)
    assert len(store.catalog.articles) == 5
    assert len(store.catalog.selected(include_all=False)) == 1


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache: scanned in a child"])
def test_store_of_a_missing_folder_raises(tmp_path, cache, caplog):
    with pytest.raises(FeedsvcError, match="does not exist"):
        FeedStore(tmp_path / "absent", cache_dir=tmp_path / "cache" if cache else None)
    assert "stopped early" not in caplog.text  # the child's error is raised here, not redone after a warning


def test_reload_without_changes_keeps_the_catalog(seeds_dir):
    store = FeedStore(seeds_dir)
    catalog = store.catalog
    assert store.reload() is False
    assert store.catalog is catalog


def test_added_file_is_noticed(seeds_dir, write_article):
    store = FeedStore(seeds_dir)
    write_article("new.md", webUrl="https://example.com/new")
    assert store.reload() is True
    assert "https://example.com/new" in urls(store)
    assert len(store.catalog.articles) == 6


def test_added_file_in_a_new_subfolder_is_noticed(seeds_dir, write_article):
    store = FeedStore(seeds_dir)
    write_article("2021/01/new.md", webUrl="https://example.com/deep")
    assert store.reload() is True
    assert "https://example.com/deep" in urls(store)


def test_changed_file_is_noticed(seeds_dir, write_article):
    write_article("x.md", title="Before")
    store = FeedStore(seeds_dir)
    write_article("x.md", title="After the edit")
    assert store.reload() is True
    assert titles(store)["x.md"] == "After the edit"


def test_changed_file_of_the_same_size_is_noticed_by_its_mtime(seeds_dir, write_article):
    path = write_article("x.md", title="Version A")
    set_mtime(path, T0)
    store = FeedStore(seeds_dir)
    write_article("x.md", title="Version B")
    set_mtime(path, T0 + 1)
    assert store.reload() is True
    assert titles(store)["x.md"] == "Version B"


def test_removed_file_is_noticed(seeds_dir, write_article):
    path = write_article("x.md", webUrl="https://example.com/gone")
    store = FeedStore(seeds_dir)
    assert "https://example.com/gone" in urls(store)
    path.unlink()
    assert store.reload() is True
    assert "https://example.com/gone" not in urls(store)
    assert len(store.catalog.articles) == 5


def test_removing_a_topics_last_file_removes_the_topic(seeds_dir, write_article):
    path = write_article("x.md", topics=["Quantum"])
    store = FeedStore(seeds_dir)
    assert "quantum" in store.catalog.topic_names
    path.unlink()
    store.reload()
    assert "quantum" not in store.catalog.topic_names


def test_editor_leftovers_do_not_trigger_a_reload(seeds_dir):
    store = FeedStore(seeds_dir)
    catalog = store.catalog
    (seeds_dir / ".x.md.swp").write_text("binary junk")
    (seeds_dir / "x.md~").write_text("---\n")
    assert store.reload() is False
    assert store.catalog is catalog


# --- only changed files are parsed again ---------------------------------------------------------


def test_first_load_parses_every_file(seeds_dir, load_calls):
    FeedStore(seeds_dir)
    assert sorted(load_calls) == sorted(p.name for p in seeds_dir.iterdir())


def test_reload_without_changes_parses_nothing(seeds_dir, load_calls):
    store = FeedStore(seeds_dir)
    load_calls.clear()
    for _ in range(3):
        store.reload()
    assert load_calls == []


def test_reload_parses_only_the_added_file(seeds_dir, write_article, load_calls):
    store = FeedStore(seeds_dir)
    load_calls.clear()
    write_article("added.md", webUrl="https://example.com/added")
    store.reload()
    assert load_calls == ["added.md"]


def test_reload_parses_only_the_changed_file(seeds_dir, load_calls):
    store = FeedStore(seeds_dir)
    load_calls.clear()
    target = sorted(seeds_dir.iterdir())[2]
    target.write_text(target.read_text(encoding="utf-8").replace('title: "', 'title: "Edited: ', 1), encoding="utf-8")
    assert store.reload() is True
    assert load_calls == [target.name]
    assert titles(store)[target.name].startswith("Edited: ")


def test_touching_a_file_parses_it_again_but_changes_nothing_visible(seeds_dir, load_calls):
    store = FeedStore(seeds_dir)
    articles = store.catalog.articles
    load_calls.clear()
    target = min(seeds_dir.iterdir())
    set_mtime(target, T0)
    store.reload()
    assert load_calls == [target.name]
    assert store.catalog.articles == articles


def test_reload_after_removal_parses_nothing(seeds_dir, load_calls):
    store = FeedStore(seeds_dir)
    load_calls.clear()
    min(seeds_dir.iterdir()).unlink()
    assert store.reload() is True
    assert load_calls == []
    assert len(store.catalog.articles) == 4


def test_mixed_changes_parse_exactly_the_changed_files(seeds_dir, write_article, load_calls):
    write_article("keep.md", webUrl="https://example.com/keep")
    write_article("edit.md", webUrl="https://example.com/edit")
    drop = write_article("drop.md", webUrl="https://example.com/drop")
    store = FeedStore(seeds_dir)
    load_calls.clear()
    write_article("edit.md", webUrl="https://example.com/edit", title="Edited title")
    write_article("sub/add.md", webUrl="https://example.com/add")
    drop.unlink()
    store.reload()
    assert sorted(load_calls) == ["edit.md", "sub/add.md"]
    assert {"https://example.com/keep", "https://example.com/edit", "https://example.com/add"} <= urls(store)
    assert "https://example.com/drop" not in urls(store)


def test_restart_with_a_parse_cache_parses_only_what_changed_meanwhile(seeds_dir, tmp_path, write_article, load_calls):
    cache = tmp_path / "parse-cache"
    FeedStore(seeds_dir, cache_dir=cache).flush()
    assert len(load_calls) == 5
    load_calls.clear()
    restarted = FeedStore(seeds_dir, cache_dir=cache)
    assert load_calls == []
    assert len(restarted.catalog.articles) == 5
    write_article("while-down.md", webUrl="https://example.com/while-down")
    FeedStore(seeds_dir, cache_dir=cache).flush()
    assert load_calls == ["while-down.md"]


def test_refresh_reuses_unchanged_states_by_identity(seeds_dir):
    found = scan(seeds_dir)
    first = refresh(seeds_dir, {}, found)
    second = refresh(seeds_dir, first, scan(seeds_dir))
    assert all(second[name] is first[name] for name in first)


# --- a file an edit breaks: stale, not skipped ---------------------------------------------------


BROKEN_YAML = "---\ntitle: [never closed\n---\n"


def healthz(client) -> dict:
    response = client.get("/healthz")
    assert response.status_code == 200
    return response.get_json()


def feed_titles(client, query: str = "?include=all&limit=500") -> list[str]:
    root = etree.fromstring(client.get("/atom.xml" + query).data)
    return [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")]


@pytest.fixture
def stale_setup(app, client, write_article):
    """An app serving a good x.md (topic Stale)."""
    write_article("x.md", title="Good version", topics=["Stale"], webUrl="https://example.com/stale")
    store = app.extensions["feedsvc"]
    assert store.reload() is True
    return store, client, write_article


def test_broken_edit_keeps_serving_the_last_good_version(stale_setup):
    store, client, write_article = stale_setup
    write_article("x.md", text=BROKEN_YAML)
    assert store.reload() is True
    assert "Good version" in feed_titles(client)
    assert client.get("/topics/stale/rss.xml").status_code == 200
    assert titles(store)["x.md"] == "Good version"


def test_broken_edit_is_reported_stale_not_skipped(stale_setup):
    store, client, write_article = stale_setup
    write_article("x.md", text=BROKEN_YAML)
    store.reload()
    data = healthz(client)
    assert data["skipped"] == []
    assert [item["path"] for item in data["stale"]] == ["x.md"]
    assert "invalid YAML" in data["stale"][0]["reason"]
    assert data["stale"][0]["line"] == 3
    assert data["articles"] == 6


def test_stale_until_fixed(stale_setup):
    store, client, write_article = stale_setup
    write_article("x.md", text=BROKEN_YAML)
    store.reload()
    write_article("x.md", text="---\ntitle: still broken\n")  # broken another way: still the first good version
    store.reload()
    assert titles(store)["x.md"] == "Good version"
    assert [item["path"] for item in healthz(client)["stale"]] == ["x.md"]
    assert "not closed" in healthz(client)["stale"][0]["reason"]

    write_article("x.md", title="Fixed version", topics=["Stale"], webUrl="https://example.com/stale")
    store.reload()
    data = healthz(client)
    assert data["stale"] == [] and data["skipped"] == []
    assert "Fixed version" in feed_titles(client) and "Good version" not in feed_titles(client)


def test_stale_until_removed(stale_setup, seeds_dir):
    store, client, write_article = stale_setup
    write_article("x.md", text=BROKEN_YAML)
    store.reload()
    (seeds_dir / "x.md").unlink()
    store.reload()
    data = healthz(client)
    assert data["stale"] == [] and data["skipped"] == []
    assert data["articles"] == 5
    assert "Good version" not in feed_titles(client)
    assert client.get("/topics/stale/rss.xml").status_code == 404


def test_file_broken_from_the_start_is_skipped_not_stale(write_article, make_client):
    write_article("bad.md", text=BROKEN_YAML)
    data = healthz(make_client())
    assert [item["path"] for item in data["skipped"]] == ["bad.md"]
    assert data["stale"] == []


def test_file_that_vanishes_is_dropped_on_the_next_scan(seeds_dir, write_article):
    path = write_article("x.md", webUrl="https://example.com/vanish")
    store = FeedStore(seeds_dir)
    path.unlink()
    store.reload()
    assert "https://example.com/vanish" not in urls(store)
    assert store.catalog.stale == ()


def test_stale_state_in_the_loader(seeds_dir, write_article):
    path = write_article("x.md", title="Good")
    found = scan(seeds_dir)
    good = refresh(seeds_dir, {}, found)["x.md"]
    assert not good.stale and good.article.title == "Good"
    path.write_text(BROKEN_YAML, encoding="utf-8")
    broken = refresh(seeds_dir, {"x.md": good}, scan(seeds_dir))["x.md"]
    assert broken.stale is True
    assert broken.article == good.article
    assert [p.severity for p in broken.problems] == ["error"]
    never_good = refresh(seeds_dir, {}, scan(seeds_dir))["x.md"]
    assert never_good.stale is False and never_good.article is None


def test_build_catalog_lists_stale_files_and_keeps_their_articles(seeds_dir, write_article):
    write_article("b.md", title="B", webUrl="https://example.com/b")
    write_article("a.md", title="A", webUrl="https://example.com/a")
    states = refresh(seeds_dir, {}, scan(seeds_dir))
    states["a.md"] = FileState(Stamp(1, 1), states["a.md"].article, states["a.md"].problems, stale=True)
    when = datetime.fromtimestamp(T0, tz=timezone.utc)
    catalog = build_catalog(states, when)
    assert catalog.stale == ("a.md",)
    assert "https://example.com/a" in {a.url for a in catalog.articles}
    assert catalog.last_modified == when


# --- the watcher ---------------------------------------------------------------------------------


def test_watch_with_zero_interval_starts_nothing(seeds_dir):
    store = FeedStore(seeds_dir)
    store.watch(0)
    assert watcher_of(store) is None


def test_watch_starts_one_thread_per_process(seeds_dir, parked):
    store = FeedStore(seeds_dir)
    parked(store)
    store.watch(0.2)
    watcher = watcher_of(store)
    store.watch(0.2)
    assert watcher_of(store) is watcher
    assert isinstance(watcher, Watcher) and watcher.daemon and watcher.is_alive()
    assert watcher.pid == os.getpid()


def test_watcher_notices_added_changed_and_removed_files(seeds_dir, write_article, parked):
    store = FeedStore(seeds_dir)
    parked(store)
    store.watch(0.2)

    write_article("w.md", title="Watched", webUrl="https://example.com/watched")
    assert wait_until(lambda: "https://example.com/watched" in urls(store))

    write_article("w.md", title="Watched, edited", webUrl="https://example.com/watched")
    assert wait_until(lambda: titles(store).get("w.md") == "Watched, edited")

    (seeds_dir / "w.md").unlink()
    assert wait_until(lambda: "w.md" not in titles(store))


def test_app_starts_the_watcher_on_its_first_request(seeds_dir, write_article, parked):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0.2})
    store = app.extensions["feedsvc"]
    parked(store)
    client = app.test_client()
    assert watcher_of(store) is None
    assert client.get("/healthz").status_code == 200
    assert watcher_of(store) is not None and watcher_of(store).interval == 0.2

    write_article("w.md", title="Watched", topics=["Watching"], webUrl="https://example.com/watched")
    assert wait_until(lambda: client.get("/topics/watching/rss.xml").status_code == 200)
    assert healthz(client)["articles"] == 6


@pytest.mark.slow
def test_watcher_survives_a_failing_reload(seeds_dir, write_article, parked, monkeypatch):
    store = FeedStore(seeds_dir)
    parked(store)
    real, failures = store.reload, []

    def flaky(touched=None) -> bool:
        if len(failures) < 2:
            failures.append(1)
            raise OSError("disk went away")
        return real(touched)

    monkeypatch.setattr(store, "reload", flaky)
    store.watch(0.05)
    write_article("w.md", webUrl="https://example.com/after-failure")
    assert wait_until(lambda: "https://example.com/after-failure" in urls(store))
    assert len(failures) == 2
    assert watcher_of(store).is_alive()


@pytest.mark.slow
def test_watcher_keeps_the_old_catalog_when_the_folder_disappears(tmp_path, write_article, parked):
    folder = tmp_path / "moving"
    folder.mkdir()
    (folder / "a.md").write_text(article_text(webUrl="https://example.com/a"), encoding="utf-8")
    store = FeedStore(folder)
    parked(store)
    catalog = store.catalog
    folder.rename(tmp_path / "moved")
    store.watch(0.05)
    time.sleep(0.3)
    assert store.catalog is catalog and watcher_of(store).is_alive()
    (tmp_path / "moved").rename(folder)
    (folder / "b.md").write_text(article_text(webUrl="https://example.com/b"), encoding="utf-8")
    assert wait_until(lambda: "https://example.com/b" in urls(store))


# --- SIGHUP --------------------------------------------------------------------------------------


def join_sighup_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == "feedsvc-sighup":
            thread.join(timeout=WAIT)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_without_a_watcher(seeds_dir, write_article, restore_sighup):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0})
    store = app.extensions["feedsvc"]
    reload_on_sighup(store)  # what the server and wsgi.py do: the app factory sets no handler
    write_article("hup.md", webUrl="https://example.com/hup")
    assert "https://example.com/hup" not in urls(store)
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_until(lambda: "https://example.com/hup" in urls(store))
    join_sighup_threads()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_wakes_a_sleeping_watcher(seeds_dir, write_article, restore_sighup, parked):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 3600, "WATCH_EVENTS": False})
    store = app.extensions["feedsvc"]
    reload_on_sighup(store)
    parked(store)
    app.test_client().get("/healthz")  # starts the watcher, which sleeps for an hour
    watcher = watcher_of(store)
    assert watcher is not None
    time.sleep(0.1)
    write_article("hup.md", webUrl="https://example.com/hup")
    time.sleep(0.2)
    assert "https://example.com/hup" not in urls(store)
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_until(lambda: "https://example.com/hup" in urls(store))
    assert watcher_of(store) is watcher
    assert not [t for t in threading.enumerate() if t.name == "feedsvc-sighup"]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_handler_is_installed_only_from_the_main_thread(seeds_dir, restore_sighup):
    sentinel = signal.getsignal(signal.SIGHUP)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 0})
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join(timeout=WAIT)
    assert errors == []
    assert signal.getsignal(signal.SIGHUP) is sentinel


# --- a reload is atomic: a request sees the old data or the new, never a mix ---------------------


N_FILES = 6
VERSIONS = {
    "A": {"title": "Alpha {i}", "url": "https://example.com/alpha/{i}"},
    "B": {"title": "Bravo, the second version, {i}", "url": "https://example.com/bravo/{i}"},
}
VERSION_URLS = {v: {spec["url"].format(i=i) for i in range(N_FILES)} for v, spec in VERSIONS.items()}


def write_version(folder: Path, version: str, tick: int) -> None:
    spec = VERSIONS[version]
    for i in range(N_FILES):
        path = folder / f"atomic-{i}.md"
        text = article_text(
            title=spec["title"].format(i=i),
            webUrl=spec["url"].format(i=i),
            topics=["Atomic"],
            publishedDateTime=f"2021-05-0{i + 1}T10:00:00Z",
        )
        path.write_text(text, encoding="utf-8")
        set_mtime(path, T0 + tick)  # a distinct stamp every round, whatever the clock's resolution


def atomic_urls(fmt: str, body: bytes) -> set[str]:
    if fmt == "json":
        found = [item["url"] for item in json.loads(body)["items"]]
    elif fmt == "rss":
        found = [item.findtext("link") for item in etree.fromstring(body).iter("item")]
    else:
        found = [e.findtext(f"{ATOM}id") for e in etree.fromstring(body).iter(f"{ATOM}entry")]
    return {u for u in found if "/alpha/" in u or "/bravo/" in u}


@pytest.mark.slow
def test_reload_is_atomic_under_concurrent_requests(seeds_dir, make_client):
    write_version(seeds_dir, "A", 0)
    client = make_client()
    store = client.application.extensions["feedsvc"]
    rounds, errors, done = 40, [], threading.Event()
    answered = [0]  # requests the main thread has checked so far

    def writer() -> None:
        try:
            for tick in range(1, rounds + 1):
                write_version(seeds_dir, "B" if tick % 2 else "A", tick)
                if not store.reload():
                    raise AssertionError(f"round {tick}: reload saw no change")
                # Let at least one request see this version (bounded), while the next round races on.
                target, deadline = answered[0] + 1, time.monotonic() + 1.0
                while answered[0] < target and time.monotonic() < deadline:
                    time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)
        finally:
            done.set()

    paths = [
        ("/topics/atomic/rss.xml", "rss"),
        ("/topics/atomic/atom.xml", "atom"),
        ("/topics/atomic/feed.json", "json"),
        ("/atom.xml?limit=500", "atom"),
        ("/feed.json?limit=500", "json"),
    ]
    seen: dict[str, int] = {"A": 0, "B": 0}
    requests = 0
    thread = threading.Thread(target=writer, name="test-reloader")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while (not done.is_set() or requests < len(paths)) and time.monotonic() < deadline:
            path, fmt = paths[requests % len(paths)]
            response = client.get(path)
            assert response.status_code == 200
            body = response.data
            assert response.headers["ETag"] == f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
            found = atomic_urls(fmt, body)
            version = next((v for v, expected in VERSION_URLS.items() if found == expected), None)
            assert version is not None, f"{path}: a mix of versions: {sorted(found)}"
            seen[version] += 1
            health = healthz(client)
            assert health["articles"] == 5 + N_FILES and health["skipped"] == [] and health["stale"] == []
            requests += 1
            answered[0] = requests
    finally:
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    assert requests >= len(paths)
    assert seen["A"] and seen["B"], seen


# --- reload(touched=...): only the paths file events named ---------------------------------------


def test_reload_of_touched_paths_looks_at_those_paths_only(seeds_dir, write_article, load_calls):
    edit = write_article("edit.md", title="Before", webUrl="https://example.com/edit")
    drop = write_article("drop.md", webUrl="https://example.com/drop")
    store = FeedStore(seeds_dir)
    load_calls.clear()
    write_article("edit.md", title="After the edit", webUrl="https://example.com/edit")
    add = write_article("sub/add.md", webUrl="https://example.com/add")
    write_article("unnamed.md", webUrl="https://example.com/unnamed")  # changed too, but no event named it
    drop.unlink()
    assert store.reload(touched=[str(edit), str(add), str(drop)]) is True
    assert sorted(load_calls) == ["edit.md", "sub/add.md"]
    assert titles(store)["edit.md"] == "After the edit"
    assert "https://example.com/add" in urls(store)
    assert "https://example.com/drop" not in urls(store)
    assert "https://example.com/unnamed" not in urls(store)
    assert store.reload() is True  # a full reload finds the rest
    assert "https://example.com/unnamed" in urls(store)


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_reload_of_one_touched_path(seeds_dir, write_article, change):
    path = write_article("x.md", title="First", webUrl="https://example.com/first")
    store = FeedStore(seeds_dir)
    if change == "edit":
        write_article("x.md", title="Second, edited", webUrl="https://example.com/first")
    elif change == "add":
        path = write_article("y.md", title="Second, added", webUrl="https://example.com/second")
    else:
        path.unlink()
    assert store.reload(touched=[str(path)]) is True
    expected = {"edit": {"x.md": "Second, edited"}, "add": {"x.md": "First", "y.md": "Second, added"}, "remove": {}}
    assert {p: t for p, t in titles(store).items() if p in ("x.md", "y.md")} == expected[change]


def test_reload_of_touched_paths_that_changed_nothing_keeps_the_catalog(seeds_dir, load_calls):
    store = FeedStore(seeds_dir)
    catalog = store.catalog
    load_calls.clear()
    (seeds_dir / ".x.md.swp").write_text("binary junk")
    (seeds_dir / "x.md~").write_text("---\n")
    assert store.reload(touched=[str(seeds_dir / ".x.md.swp"), str(seeds_dir / "x.md~")]) is False
    assert store.reload(touched=[str(p) for p in sorted(seeds_dir.iterdir()) if p.suffix == ".txt"]) is False
    assert store.catalog is catalog and load_calls == []


def test_reload_of_a_touched_folder_scans_the_whole_tree(seeds_dir, write_article):
    store = FeedStore(seeds_dir)
    write_article("2021/01/new.md", webUrl="https://example.com/deep")
    write_article("elsewhere.md", webUrl="https://example.com/elsewhere")
    assert store.reload(touched=[str(seeds_dir / "2021")]) is True
    assert {"https://example.com/deep", "https://example.com/elsewhere"} <= urls(store)


def test_reload_of_a_vanished_unknown_path_scans_the_whole_tree(seeds_dir, write_article):
    write_article("sub/x.md", webUrl="https://example.com/moved-out")
    store = FeedStore(seeds_dir)
    (seeds_dir / "sub").rename(seeds_dir.parent / "moved-out")  # one event, for the folder
    assert store.reload(touched=[str(seeds_dir / "sub")]) is True
    assert "https://example.com/moved-out" not in urls(store)
    assert len(store.catalog.articles) == 5


def test_reload_keeps_unchanged_articles_as_the_same_objects(seeds_dir, write_article):
    store = FeedStore(seeds_dir)
    before = {a.path: a for a in store.catalog.articles}
    path = write_article("x.md", webUrl="https://example.com/x")
    assert store.reload(touched=[str(path)]) is True
    after = {a.path: a for a in store.catalog.articles}
    assert set(after) == set(before) | {"x.md"}
    assert all(after[name] is before[name] for name in before)


def catalog_view(catalog) -> dict:
    """What readers can ask a catalog, as plain values."""
    view = {
        "topic_names": catalog.topic_names,
        "topics": (catalog.topics(False), catalog.topics(True)),
        "problems": catalog.problems,
        "skipped": catalog.skipped,
        "stale": catalog.stale,
    }
    for slug in [None, *catalog.topic_names]:
        for include_all in (False, True):
            try:
                view[slug, include_all] = catalog.entries(slug, include_all)
            except TopicNotFound:
                view[slug, include_all] = None
    return view


def test_reloaded_catalogs_equal_a_fresh_load(seeds_dir, write_article):
    store = FeedStore(seeds_dir)
    catalog_view(store.catalog)  # computed, so the next catalogs take it over
    seed = sorted(seeds_dir.iterdir())[3]
    changes = [
        lambda: write_article("x.md", topics=["Quantum", "AI"], webUrl="https://example.com/x"),
        lambda: write_article("x.md", topics=["quantum"], webUrl="https://example.com/x", published=False),
        lambda: seed.write_text(
            seed.read_text(encoding="utf-8").replace("published: false", "published: true"), encoding="utf-8"
        ),
        lambda: write_article("dup.md", topics=["AI"], webUrl="https://example.com/x"),
        lambda: write_article("0-first.md", text=BROKEN_YAML),
        lambda: (seeds_dir / "x.md").unlink(),
        lambda: seed.unlink(),
    ]
    for number, change in enumerate(changes):
        change()
        assert store.reload() is True, number
        assert catalog_view(store.catalog) == catalog_view(FeedStore(seeds_dir).catalog), number


def test_skipped_files_are_listed_in_path_order_after_a_reload(seeds_dir, write_article):
    write_article("b-broken.md", text=BROKEN_YAML)
    store = FeedStore(seeds_dir)
    write_article("a-broken.md", text=BROKEN_YAML)
    assert store.reload() is True
    assert [p.path for p in FeedStore(seeds_dir).catalog.skipped] == ["a-broken.md", "b-broken.md"]
    assert [p.path for p in store.catalog.skipped] == ["a-broken.md", "b-broken.md"]


# --- the watcher, by file-system events ----------------------------------------------------------


def record_reloads(store: FeedStore, monkeypatch, failures: int = 0) -> list[tuple]:
    """Make store.reload note (touched, what it returned) as each call ends; the first `failures`
    calls given touched paths raise OSError (noted as "failed")."""
    real, calls = store.reload, []

    def recording(touched=None) -> bool:
        if touched is not None and sum(result == "failed" for _, result in calls) < failures:
            calls.append((list(touched), "failed"))
            raise OSError("disk went away")
        result = real(touched)
        calls.append((None if touched is None else list(touched), result))
        return result

    monkeypatch.setattr(store, "reload", recording)
    return calls


def full_reloads(calls: list[tuple]) -> list:
    return [result for touched, result in calls if touched is None]


@pytest.mark.slow
def test_event_watcher_makes_an_edit_live_from_its_event(seeds_dir, write_article, parked, monkeypatch):
    path = write_article("w.md", title="Before", webUrl="https://example.com/w")
    store = FeedStore(seeds_dir)
    parked(store)
    calls = record_reloads(store, monkeypatch)
    store.watch(3600)  # polling would take an hour: only events can make the edit live
    assert wait_until(lambda: full_reloads(calls))  # the first batch: a full reload
    assert watcher_of(store).following
    write_article("w.md", title="After the edit", webUrl="https://example.com/w")
    assert wait_until(lambda: titles(store)["w.md"] == "After the edit")
    # Made live by a reload of the paths the event named, not by a full one.
    assert any(touched and path.name in {Path(p).name for p in touched} for touched, _ in calls)
    assert full_reloads(calls) == [False]


@pytest.mark.slow
def test_event_watcher_picks_up_a_file_written_before_its_watch_exists(seeds_dir, write_article, parked, monkeypatch):
    store = FeedStore(seeds_dir)
    parked(store)
    real_watch = watchfiles.watch

    def late_watch(*args, **kwargs):
        write_article("early.md", webUrl="https://example.com/early")  # no event will name it
        return real_watch(*args, **kwargs)

    monkeypatch.setattr(watchfiles, "watch", late_watch)
    store.watch(3600)
    assert wait_until(lambda: "https://example.com/early" in urls(store))
    assert watcher_of(store).following


def test_event_watcher_polls_when_events_cannot_be_had(seeds_dir, write_article, parked, monkeypatch, caplog):
    def no_events(*args, **kwargs):
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watchfiles, "watch", no_events)
    caplog.set_level(logging.WARNING, logger="feedsvc.runtime.store")
    store = FeedStore(seeds_dir)
    parked(store)
    store.watch(0.05)
    write_article("w.md", webUrl="https://example.com/polled")
    assert wait_until(lambda: "https://example.com/polled" in urls(store))
    write_article("w.md", title="Polled, edited", webUrl="https://example.com/polled")
    assert wait_until(lambda: titles(store)["w.md"] == "Polled, edited")
    assert watcher_of(store).is_alive() and not watcher_of(store).following
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "cannot follow file events" in m and "inotify watch limit reached" in m and "polling every 0.05 s" in m
        for m in messages
    ), messages


@pytest.mark.slow
@pytest.mark.parametrize("events", [True, False], ids=["events", "polling"])
def test_stop_watching_ends_the_watcher_thread(seeds_dir, parked, events):
    store = FeedStore(seeds_dir, watch_events=events)
    parked(store)
    store.watch(3600)
    watcher = watcher_of(store)
    if events:
        assert wait_until(lambda: watcher.following)  # inside watchfiles' loop
    store.stop_watching()
    watcher.join(timeout=WAIT)
    assert not watcher.is_alive()


@pytest.mark.slow
def test_event_watcher_follows_a_failed_reload_with_a_full_one(seeds_dir, write_article, parked, monkeypatch):
    store = FeedStore(seeds_dir)
    parked(store)
    calls = record_reloads(store, monkeypatch, failures=1)
    store.watch(3600)
    assert wait_until(lambda: full_reloads(calls))
    write_article("w.md", webUrl="https://example.com/after-failure")
    assert wait_until(lambda: "https://example.com/after-failure" in urls(store))
    failed = [i for i, (_, result) in enumerate(calls) if result == "failed"]
    assert len(failed) == 1
    assert full_reloads(calls[failed[0] + 1 :])[:1] == [True]  # the next reload was a full one, and found it
    assert watcher_of(store).is_alive() and watcher_of(store).following


def test_request_reload_in_events_mode_rescans_what_no_event_named(seeds_dir, tmp_path, write_article, parked):
    target = tmp_path / "outside.md"  # a link's target outside the folder: editing it sends no event
    target.write_text(article_text(title="Outside, first", webUrl="https://example.com/outside"), encoding="utf-8")
    (seeds_dir / "link.md").symlink_to(target)
    store = FeedStore(seeds_dir)
    parked(store)
    store.watch(3600)
    write_article("marker.md", title="Marker 1", webUrl="https://example.com/marker")
    assert wait_until(lambda: titles(store).get("marker.md") == "Marker 1")  # the first full reload is done
    target.write_text(article_text(title="Outside, edited", webUrl="https://example.com/outside"), encoding="utf-8")
    write_article("marker.md", title="Marker 2, edited", webUrl="https://example.com/marker")
    assert wait_until(lambda: titles(store)["marker.md"] == "Marker 2, edited")
    assert titles(store)["link.md"] == "Outside, first"  # the event reload looked at marker.md only
    store.request_reload()
    assert wait_until(lambda: titles(store)["link.md"] == "Outside, edited")
    assert watcher_of(store).is_alive()
    assert not [t for t in threading.enumerate() if t.name == "feedsvc-sighup"]


def test_request_reload_after_stop_watching_still_reloads(seeds_dir, write_article, parked):
    store = FeedStore(seeds_dir)
    parked(store)
    store.watch(3600)
    watcher = watcher_of(store)
    store.stop_watching()
    watcher.join(timeout=WAIT)
    write_article("late.md", webUrl="https://example.com/late")
    store.request_reload()
    try:
        assert wait_until(lambda: "https://example.com/late" in urls(store))
    finally:
        join_sighup_threads()


# --- the collector is paused during a load, and what the load made is frozen ---------------------


@pytest.fixture
def collector_state():
    """Put the collector back as it was."""
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_collector_paused_enables_the_collector_again(collector_state):
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_paused_enables_the_collector_again_after_an_error(collector_state):
    gc.enable()
    with pytest.raises(OSError), collector_paused():
        raise OSError("disk went away")
    assert gc.isenabled()


def test_collector_paused_leaves_a_disabled_collector_disabled(collector_state):
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_a_load_runs_without_the_collector_and_freezes_what_it_made(seeds_dir, monkeypatch, collector_state):
    gc.enable()
    during: list[bool] = []
    real = feedsvc.content.files.load_named

    def spy(*args, **kwargs):
        during.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(feedsvc.runtime.loader, "load_named", spy)
    frozen = gc.get_freeze_count()
    store = FeedStore(seeds_dir)
    assert during == [False] * 5
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen
    tracked = {id(o) for o in gc.get_objects()}  # every generation the collector still walks
    assert id(store.catalog) not in tracked and id(store.catalog.articles[0]) not in tracked


def test_an_old_catalog_is_freed_after_a_reload(seeds_dir, write_article):
    store = FeedStore(seeds_dir)
    catalog_view(store.catalog)
    first = weakref.ref(store.catalog)
    path = write_article("x.md", webUrl="https://example.com/x")
    assert store.reload(touched=[str(path)]) is True
    catalog_view(store.catalog)  # an inherited catalog, computed too
    second = weakref.ref(store.catalog)
    write_article("x.md", title="Edited", topics=["Other"], webUrl="https://example.com/x")
    assert store.reload() is True
    # Frozen objects are never collected: only reference counting can free the old catalogs.
    assert first() is None and second() is None
    assert store.catalog is not None


def test_a_reference_cycle_alive_during_a_reload_is_freed_later(seeds_dir, write_article):
    store = FeedStore(seeds_dir)

    class Node:
        pass

    cycle = Node()
    cycle.me = cycle  # as a request's objects or an exception's traceback can be
    ref = weakref.ref(cycle)
    write_article("x.md", webUrl="https://example.com/x")
    assert store.reload() is True
    del cycle
    gc.collect()
    assert ref() is None  # a reload freezes nothing: only the first load does


# --- the parse cache is written on a thread ------------------------------------------------------


@pytest.fixture
def held_cache_writes(monkeypatch):
    """parsecache.save, held until `release` is set: notes each write's thread and state count."""
    held = types.SimpleNamespace(entered=threading.Event(), release=threading.Event(), writes=[])

    def slow_save(path, seeds_dir, limits, states, **options) -> None:
        held.writes.append((threading.current_thread(), len(states)))
        held.entered.set()
        assert held.release.wait(WAIT)

    monkeypatch.setattr(feedsvc.runtime.parsecache, "save", slow_save)
    yield held
    held.release.set()


def test_parse_cache_is_written_and_flush_waits_for_it(seeds_dir, tmp_path):
    cache = tmp_path / "parse-cache"
    FeedStore(seeds_dir, cache_dir=cache).flush()
    written = feedsvc.runtime.parsecache.cache_file(cache, seeds_dir)
    assert written.is_file()
    assert set(feedsvc.runtime.parsecache.load(written, seeds_dir, Limits())) == set(scan(seeds_dir).files)


def test_flush_does_not_wait_out_the_writers_pauses_for_requests(seeds_dir, tmp_path, monkeypatch):
    # A pause of a minute after every state: a write nobody waits for would take five minutes.
    monkeypatch.setattr(feedsvc.runtime.parsecache, "PAUSE_EVERY", 1)
    monkeypatch.setattr(feedsvc.runtime.store, "CACHE_WRITE_PAUSE", 60.0)
    cache = tmp_path / "parse-cache"
    store = FeedStore(seeds_dir, cache_dir=cache)
    started = time.monotonic()
    store.flush()
    assert time.monotonic() - started < WAIT
    written = feedsvc.runtime.parsecache.cache_file(cache, seeds_dir)
    assert set(feedsvc.runtime.parsecache.load(written, seeds_dir, Limits())) == set(scan(seeds_dir).files)


def test_parse_cache_write_under_way_is_not_doubled(seeds_dir, tmp_path, write_article, held_cache_writes):
    store = FeedStore(seeds_dir, cache_dir=tmp_path / "parse-cache")
    assert held_cache_writes.entered.wait(WAIT)
    assert len(store.catalog.articles) == 5  # the store is loaded while its cache is still being written
    write_article("x.md", webUrl="https://example.com/x")
    assert store.reload() is True
    assert "https://example.com/x" in urls(store)
    store.save_cache(force=True)
    held_cache_writes.release.set()
    store.flush()
    assert [count for _, count in held_cache_writes.writes] == [5]
    store.save_cache(force=True)  # once the write is done, the next one catches up
    store.flush()
    assert [count for _, count in held_cache_writes.writes] == [5, 6]


def test_parse_cache_writer_is_not_a_daemon(seeds_dir, tmp_path, held_cache_writes):
    store = FeedStore(seeds_dir, cache_dir=tmp_path / "parse-cache")
    assert held_cache_writes.entered.wait(WAIT)
    ((writer, _),) = held_cache_writes.writes
    assert writer is not threading.current_thread() and writer.is_alive()
    assert not writer.daemon  # the interpreter finishes the write before it exits
    held_cache_writes.release.set()
    store.flush()
    assert not writer.is_alive()


def test_a_process_that_exits_at_once_still_writes_its_parse_cache(seeds_dir, tmp_path):
    cache = tmp_path / "parse-cache"
    code = "import sys; from feedsvc.runtime.store import FeedStore; FeedStore(sys.argv[1], cache_dir=sys.argv[2])"
    subprocess.run(
        [sys.executable, "-c", code, str(seeds_dir), str(cache)], check=True, capture_output=True, timeout=60
    )
    written = feedsvc.runtime.parsecache.cache_file(cache, seeds_dir)
    assert set(feedsvc.runtime.parsecache.load(written, seeds_dir, Limits())) == set(scan(seeds_dir).files)


# --- health(): reloads stuck, failing or stopped; folders that cannot be listed -----------------


@pytest.fixture
def blocked_parse(monkeypatch):
    """Parsing `blocked.md` waits until `.release` is set (set again when the test ends);
    `.entered` is set when a parse of it begins."""
    held = types.SimpleNamespace(entered=threading.Event(), release=threading.Event())
    real = feedsvc.content.files.load_named

    def load_named(filename: str, name: str, *args, **kwargs):
        if name == "blocked.md":
            held.entered.set()
            held.release.wait(3 * WAIT)
        return real(filename, name, *args, **kwargs)

    monkeypatch.setattr(feedsvc.runtime.loader, "load_named", load_named)
    yield held
    held.release.set()


@pytest.mark.slow
def test_a_reload_running_past_the_bound_makes_the_store_unhealthy_until_it_ends(
    seeds_dir, write_article, parked, blocked_parse
):
    store = FeedStore(seeds_dir, watch_events=False, stuck_after=1.0)
    parked(store)
    assert store.health().status == "ok"
    store.watch(0.05)
    write_article("blocked.md", webUrl="https://example.com/blocked")
    assert blocked_parse.entered.wait(WAIT)
    assert store.health().status == "ok"  # running, not yet for a second
    assert wait_until(lambda: store.health().status == "unhealthy")
    health = store.health()
    assert "RELOAD_STUCK_AFTER" in health.reason and "no longer follows changes" in health.reason
    assert health.reload_started is not None
    assert health.reload_finished is None or health.reload_finished <= health.reload_started
    blocked_parse.release.set()
    assert wait_until(lambda: "https://example.com/blocked" in urls(store))
    assert wait_until(lambda: store.health().status == "ok")


def test_a_reload_that_runs_within_the_bound_is_healthy(seeds_dir, write_article, blocked_parse):
    store = FeedStore(seeds_dir, stuck_after=60)
    write_article("blocked.md", webUrl="https://example.com/blocked")
    reload = threading.Thread(target=store.reload)
    reload.start()
    try:
        assert blocked_parse.entered.wait(WAIT)
        time.sleep(0.2)
        assert store.health().status == "ok"
    finally:
        blocked_parse.release.set()
        reload.join(WAIT)


def failing_scan(*args, **kwargs):
    raise OSError(errno.EIO, "Input/output error", "/srv/somewhere/secret-path")


def test_failing_reloads_make_the_store_unhealthy_until_one_succeeds(seeds_dir, write_article, parked, monkeypatch):
    store = FeedStore(seeds_dir, watch_events=False)
    parked(store)
    monkeypatch.setattr(feedsvc.runtime.store, "scan", failing_scan)
    store.watch(0.05)
    assert wait_until(lambda: store.health().failures >= 2)
    health = store.health()
    assert health.status == "unhealthy"
    assert "failed" in health.reason and "Input/output error" in health.reason
    assert "/srv" not in health.reason  # /healthz is public: no path; the log has it
    assert len(store.catalog.articles) == 5  # still served
    monkeypatch.setattr(feedsvc.runtime.store, "scan", scan)
    write_article("after.md", webUrl="https://example.com/after")
    assert wait_until(lambda: "https://example.com/after" in urls(store))
    health = store.health()
    assert (health.status, health.reason, health.failures) == ("ok", None, 0)


@pytest.mark.slow
def test_a_seeds_folder_that_vanishes_makes_the_store_unhealthy_until_it_is_back(tmp_path, parked):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "a.md").write_text(article_text(webUrl="https://example.com/a"), encoding="utf-8")
    store = FeedStore(folder)
    parked(store)
    store.watch(3600)
    folder.rename(tmp_path / "away")
    assert wait_until(lambda: store.health().status == "unhealthy")
    assert "does not exist" in store.health().reason and str(tmp_path) not in store.health().reason
    assert urls(store) == {"https://example.com/a"}
    (tmp_path / "away").rename(folder)
    assert wait_until(lambda: store.health().status == "ok")


def test_a_reload_thread_that_stopped_makes_the_store_unhealthy(seeds_dir, parked, monkeypatch, caplog):
    store = FeedStore(seeds_dir, watch_events=False)
    parked(store)

    def broken_save_cache(force: bool = False) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(store, "save_cache", broken_save_cache)
    store.watch(0.05)
    assert wait_until(lambda: store.health().status == "unhealthy")
    assert "reload thread has stopped" in store.health().reason
    assert any("reload thread" in r.getMessage() and r.exc_info for r in caplog.records)


# --- a folder the service cannot list keeps its articles -----------------------------------------


def test_an_unlistable_folder_keeps_its_articles_and_is_reported(unlisted_folder):
    seeds, lock = unlisted_folder
    cache = seeds.parent / "cache"
    sub = seeds / "sub"
    published = {"https://example.com/a.md", "https://example.com/sub/b.md", "https://example.com/sub/c.md"}

    def work() -> dict:
        seen: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())
        logging.getLogger("feedsvc").addHandler(handler)
        logging.getLogger("feedsvc").setLevel(logging.INFO)  # this child's alone
        app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds), "RELOAD_INTERVAL": 0, "CACHE_DIR": str(cache)})
        store, client = app.extensions["feedsvc"], app.test_client()
        store.flush()
        steps = {"loaded": sorted(urls(store))}
        lock()
        store.reload()
        store.reload()  # a second look: the folder is logged once, not at every reload
        steps["locked"] = sorted(urls(store))
        steps["health"] = client.get("/healthz").status_code, client.get("/healthz").get_json()
        steps["feed"] = sorted(i["url"] for i in client.get("/feed.json?limit=500").get_json()["items"])
        steps["warm start"] = sorted(urls(FeedStore(seeds, cache_dir=cache)))
        steps["locked log"] = list(seen)
        sub.chmod(0o755)
        (sub / "c.md").unlink()
        store.reload()
        steps["unlocked"] = sorted(urls(store))
        steps["unlocked health"] = client.get("/healthz").get_json()
        steps["log"] = seen
        return steps

    def warm_up() -> None:  # the same calls, over a copy of the project's seeds
        copy = seeds.parent / "warm-up"
        shutil.copytree(SEEDS, copy)
        app = create_app({"TESTING": True, "SEEDS_DIR": str(copy), "RELOAD_INTERVAL": 0, "CACHE_DIR": str(cache)})
        app.extensions["feedsvc"].flush()
        app.test_client().get("/healthz")
        app.test_client().get("/feed.json?limit=500")
        FeedStore(copy, cache_dir=cache).flush()
        shutil.rmtree(copy)
        shutil.rmtree(cache)

    steps = as_unprivileged(work, warm_up=warm_up)
    assert set(steps["loaded"]) == published
    assert set(steps["locked"]) == published  # 3, not 1: sub/ could not be listed, its files are not gone
    assert set(steps["feed"]) == published
    assert set(steps["warm start"]) == published  # from the parse cache
    status, health = steps["health"]
    assert status == 200 and health["status"] == "degraded"
    assert [item["path"] for item in health["unreadable"]] == ["sub"]
    assert "cannot be listed" in health["reason"] and os.strerror(errno.EACCES) in health["reason"]
    listed = [m for m in steps["locked log"] if "cannot be listed" in m]
    assert len(listed) == 2, listed  # the store's, once for its two reloads; then the warm start's
    assert all(m.startswith("sub: folder cannot be listed") and "last good articles" in m for m in listed)
    assert set(steps["unlocked"]) == published - {"https://example.com/sub/c.md"}
    assert steps["unlocked health"]["status"] == "ok" and steps["unlocked health"]["unreadable"] == []
    assert any(m == "sub can be listed again" for m in steps["log"])


# --- a warm start logs what a cold start logs ------------------------------------------------------


def skip_lines(caplog) -> list[str]:
    return sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith(("skipped ", "stale ")))


def test_a_warm_start_names_every_skipped_and_stale_file_as_a_cold_start_does(
    seeds_dir, tmp_path, write_article, load_calls, caplog, monkeypatch
):
    cache = tmp_path / "parse-cache"
    monkeypatch.setattr(feedsvc.runtime.store, "CACHE_WRITE_INTERVAL", 0)
    write_article("notitle.md", title=None)
    write_article("nested/badyaml.md", text=BROKEN_YAML)
    write_article("x.md", title="Good version", webUrl="https://example.com/x")
    caplog.set_level(logging.INFO, logger="feedsvc")
    store = FeedStore(seeds_dir, cache_dir=cache)
    write_article("x.md", text=BROKEN_YAML)  # stale from now on
    store.reload()
    store.flush()  # the start's write first: a write under way is not doubled
    store.save_cache()
    store.flush()
    cold = skip_lines(caplog)
    assert [line.split(":")[0] for line in cold] == ["skipped nested/badyaml.md", "skipped notitle.md", "stale x.md"]
    caplog.clear()
    load_calls.clear()
    FeedStore(seeds_dir, cache_dir=cache)
    assert load_calls == []  # a warm start: nothing parsed
    assert skip_lines(caplog) == cold


# --- temporary files a killed cache writer left ---------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
import feedsvc.runtime.parsecache as parsecache
from feedsvc.content.fields import Limits
from feedsvc.runtime.loader import refresh
from feedsvc.runtime.scan import scan
seeds, cache = Path(sys.argv[1]), Path(sys.argv[2])
parsecache.PAUSE_EVERY = 1  # a pause after every state: the write is under way for minutes
parsecache.save(parsecache.cache_file(cache, seeds), seeds, Limits(), refresh(seeds, {}, scan(seeds)), pause=60)
"""


def start_writer(seeds: Path, cache: Path, before: set[Path]) -> tuple[subprocess.Popen, Path]:
    """A cache writer in a process of its own, and its temporary file once it exists."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(seeds), str(cache)])
    found: list[Path] = []
    assert wait_until(lambda: found.extend(set(cache.glob(".parse-*.tmp")) - before) or found, seconds=30)
    return writer, found[0]


def test_a_temp_file_a_killed_cache_writer_left_is_removed_at_the_next_start(seeds_dir, tmp_path):
    cache = tmp_path / "parse-cache"
    FeedStore(seeds_dir, cache_dir=cache).flush()
    killed, left = start_writer(seeds_dir, cache, set())
    live, writing = start_writer(seeds_dir, cache, {left})
    try:
        killed.kill()
        killed.wait(WAIT)
        FeedStore(seeds_dir, cache_dir=cache).flush()
        assert left.exists()  # younger than a minute: it could be a live writer's
        an_hour_ago = time.time() - 3600
        os.utime(left, (an_hour_ago, an_hour_ago))  # as when the next start comes later
        FeedStore(seeds_dir, cache_dir=cache).flush()
        assert not left.exists()
        assert writing.exists() and live.poll() is None  # a live writer's temporary file is left alone
    finally:
        for process in (killed, live):
            process.kill()
            process.wait(WAIT)


def test_remove_stale_temps_takes_only_old_temporary_files_of_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    names = [".parse-a1b2.tmp", ".parse-key-x9y8", ".parse-fresh.tmp", "parse-0123.bin", ".parse-kept.bin", "other.tmp"]
    for name in names:
        (cache / name).write_bytes(b"x")
        if name != ".parse-fresh.tmp":
            os.utime(cache / name, (T0, T0))
    assert feedsvc.runtime.parsecache.remove_stale_temps(cache) == 2
    assert sorted(p.name for p in cache.iterdir()) == sorted(set(names) - {".parse-a1b2.tmp", ".parse-key-x9y8"})


# --- the watch follows a seeds folder deleted and made again ---------------------------------------


def recreate(kind: str, seeds: Path, backup: Path) -> None:
    """Put `backup` in place of `seeds` as a deploy script does."""
    if kind == "rm -rf, cp -r":
        shutil.rmtree(seeds)
        shutil.copytree(backup, seeds)
    elif kind == "rename over":
        staged = seeds.with_name("seeds.new")
        shutil.copytree(backup, staged)
        old = seeds.with_name("seeds.old")
        seeds.rename(old)
        staged.rename(seeds)
        shutil.rmtree(old)
    else:  # "link turned": seeds is a link to a release folder, turned to another (ln -sfn)
        release = seeds.with_name(f"release-{time.monotonic_ns()}")
        shutil.copytree(backup, release)
        turned = seeds.with_name("seeds.link")
        turned.symlink_to(release, target_is_directory=True)
        turned.replace(seeds)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rm -rf, cp -r", "rename over", "link turned"])
def test_event_watcher_follows_a_seeds_folder_deleted_and_made_again(tmp_path, kind, parked):
    seeds = tmp_path / "seeds"
    if kind == "link turned":
        (tmp_path / "release-0").mkdir()
        seeds.symlink_to(tmp_path / "release-0", target_is_directory=True)
    else:
        seeds.mkdir()
    (seeds / "a.md").write_text(article_text(title="Version 1", webUrl="https://example.com/a"), encoding="utf-8")
    store = FeedStore(seeds, rescan_interval=60)
    parked(store)
    store.watch(3600)  # neither polling (an hour) nor the full scan (a minute) can make an edit live in time
    (seeds / "a.md").write_text(article_text(title="Version 2", webUrl="https://example.com/a"), encoding="utf-8")
    assert wait_until(lambda: titles(store)["a.md"] == "Version 2")  # events are followed
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "a.md").write_text(article_text(title="Version 3", webUrl="https://example.com/a"), encoding="utf-8")

    started = time.monotonic()
    recreate(kind, seeds, backup)
    assert wait_until(lambda: titles(store)["a.md"] == "Version 3", seconds=10)
    replaced = time.monotonic() - started
    time.sleep(0.1)
    started = time.monotonic()
    (seeds / "a.md").write_text(article_text(title="Version 4", webUrl="https://example.com/a"), encoding="utf-8")
    assert wait_until(lambda: titles(store)["a.md"] == "Version 4", seconds=10)
    edited = time.monotonic() - started
    print(f"{kind}: the new folder live after {replaced:.2f} s; an edit in it live after {edited:.2f} s")
    assert edited < 5
    assert store.health().status == "ok"


# --- a real server over a file that flips between a FIFO and a regular file ------------------------


@pytest.mark.slow
def test_served_workers_keep_reloading_while_a_file_flips_between_a_fifo_and_a_regular_file(seeds_dir, tmp_path):
    victim, spare_fifo, spare_file = seeds_dir / "flip.md", tmp_path / "flip.fifo", tmp_path / "flip.file"
    text = article_text(title="Flipping", webUrl="https://example.com/flip")
    victim.write_text(text, encoding="utf-8")
    server = Server(seeds_dir)
    stop, flips = threading.Event(), [0]

    def flip() -> None:
        while not stop.is_set():
            os.mkfifo(spare_fifo)
            os.replace(spare_fifo, victim)  # a FIFO, with no writer, where the file was
            # Each time another size: mtimes move in clock ticks of milliseconds, and a file of the
            # same stamp is not read again (no read, no race).
            spare_file.write_text(text + "\n" * (flips[0] % 1000), encoding="utf-8")
            os.replace(spare_file, victim)  # and the file again
            flips[0] += 1

    flipper = threading.Thread(target=flip)
    try:
        flipper.start()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # full reloads in both workers while it flips
            server.process.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        stop.set()
        flipper.join(WAIT)
        assert flips[0] > 100
        write_article_file(seeds_dir / "after.md", title="Added after the flipping", topics=["AI"])
        started = time.monotonic()
        served_by_every_worker(server, "Added after the flipping", "an article added after the flipping")
        print(
            f"{flips[0]} flips; an article added afterwards was served by every worker after "
            f"{time.monotonic() - started:.2f} s"
        )
        for _ in range(8):
            status, _, body = server.request("/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        stop.set()
        flipper.join(WAIT)
        server.stop()


def write_article_file(path: Path, **fields) -> None:
    path.write_text(article_text(**fields, webUrl=f"https://example.com/{path.stem}", published=True), encoding="utf-8")


EXITING_WITH_A_WATCHER = """
import atexit, sys, threading, time
atexit.register(lambda: print("at exit:", sorted(t.name for t in threading.enumerate())))  # runs last (LIFO)
from feedsvc.runtime.store import FeedStore
store = FeedStore(sys.argv[1], cache_dir=None)
store.watch(0.2)
time.sleep(0.5)
"""


@pytest.mark.slow
def test_a_process_that_exits_stops_its_watchers_first(seeds_dir):
    # A daemon thread cut off inside watchfiles' Rust code at exit aborted the process (status 134).
    done = subprocess.run([sys.executable, "-c", EXITING_WITH_A_WATCHER, str(seeds_dir)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "at exit: ['MainThread']" in done.stdout, done.stdout
