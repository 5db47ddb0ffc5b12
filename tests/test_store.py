"""feedsvc.store: reloads that parse only changed files, keep broken files' last good version,
swap catalogs atomically, and run from a watcher thread or on SIGHUP.

Every wait is bounded; every watcher a test starts is parked (a long interval) when it ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import article_fields, front_matter
from feedcheck import ATOM
from lxml import etree

import feedsvc.loader
from feedsvc import create_app
from feedsvc.errors import FeedsvcError
from feedsvc.loader import FileState, Stamp, refresh, scan
from feedsvc.store import FeedStore, Watcher, build_catalog

T0 = 1_600_000_000  # 2020-09-13T12:26:40Z: a fixed past instant for mtimes
WAIT = 5.0  # seconds: the bound of every wait for a background reload


def wait_until(predicate, seconds: float = WAIT, step: float = 0.02) -> bool:
    """Poll predicate until it holds or the time is up; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(step)


def set_mtime(path: Path, seconds: float) -> None:
    ns = int(seconds * 1_000_000_000)
    os.utime(path, ns=(ns, ns))


def urls(store: FeedStore, include_all: bool = True) -> set[str]:
    return {a.url for a in store.catalog.selected(include_all)}


def titles(store: FeedStore) -> dict[str, str]:
    return {a.path: a.title for a in store.catalog.articles}


def article_text(**overrides) -> str:
    return front_matter(**article_fields(**overrides))


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


@pytest.fixture
def load_calls(monkeypatch) -> list[str]:
    """The file names feedsvc.loader.load_named parses from now on."""
    calls: list[str] = []
    real = feedsvc.loader.load_named

    def spy(filename: str, name: str, *args, **kwargs):
        calls.append(name)
        return real(filename, name, *args, **kwargs)

    monkeypatch.setattr(feedsvc.loader, "load_named", spy)
    return calls


# --- reload(): added, changed, removed ---------------------------------------------------------


def test_store_loads_the_folder(seeds_dir):
    store = FeedStore(seeds_dir)
    assert len(store.catalog.articles) == 5
    assert len(store.catalog.selected(include_all=False)) == 1


def test_store_of_a_missing_folder_raises(tmp_path):
    with pytest.raises(FeedsvcError):
        FeedStore(tmp_path / "absent")


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
    target = sorted(seeds_dir.iterdir())[0]
    set_mtime(target, T0)
    store.reload()
    assert load_calls == [target.name]
    assert store.catalog.articles == articles


def test_reload_after_removal_parses_nothing(seeds_dir, load_calls):
    store = FeedStore(seeds_dir)
    load_calls.clear()
    sorted(seeds_dir.iterdir())[0].unlink()
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
    store = FeedStore(seeds_dir)
    states = dict(store._states)
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
    assert store._watcher is None


def test_watch_starts_one_thread_per_process(seeds_dir, parked):
    store = FeedStore(seeds_dir)
    parked(store)
    store.watch(0.2)
    watcher = store._watcher
    store.watch(0.2)
    assert store._watcher is watcher
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
    assert store._watcher is None
    assert client.get("/healthz").status_code == 200
    assert store._watcher is not None and store._watcher.interval == 0.2

    write_article("w.md", title="Watched", topics=["Watching"], webUrl="https://example.com/watched")
    assert wait_until(lambda: client.get("/topics/watching/rss.xml").status_code == 200)
    assert healthz(client)["articles"] == 6


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
    assert store._watcher.is_alive()


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
    assert store.catalog is catalog and store._watcher.is_alive()
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
    write_article("hup.md", webUrl="https://example.com/hup")
    assert "https://example.com/hup" not in urls(store)
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_until(lambda: "https://example.com/hup" in urls(store))
    join_sighup_threads()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_wakes_a_sleeping_watcher(seeds_dir, write_article, restore_sighup, parked):
    app = create_app({"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 3600, "WATCH_EVENTS": False})
    store = app.extensions["feedsvc"]
    parked(store)
    app.test_client().get("/healthz")  # starts the watcher, which sleeps for an hour
    watcher = store._watcher
    assert watcher is not None
    time.sleep(0.1)
    write_article("hup.md", webUrl="https://example.com/hup")
    time.sleep(0.2)
    assert "https://example.com/hup" not in urls(store)
    os.kill(os.getpid(), signal.SIGHUP)
    assert wait_until(lambda: "https://example.com/hup" in urls(store))
    assert store._watcher is watcher
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
        text = article_text(title=spec["title"].format(i=i), webUrl=spec["url"].format(i=i), topics=["Atomic"],
                            publishedDateTime=f"2021-05-0{i + 1}T10:00:00Z")
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

    paths = [("/topics/atomic/rss.xml", "rss"), ("/topics/atomic/atom.xml", "atom"),
             ("/topics/atomic/feed.json", "json"), ("/atom.xml?limit=500", "atom"), ("/feed.json?limit=500", "json")]
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
            assert response.headers["ETag"] == '"%s"' % hashlib.blake2b(body, digest_size=16).hexdigest()
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
