"""Caching, gzip and hot reload over real HTTP against `feedsvc serve` (gunicorn, 2 workers).

Each test starts its own server on a free port over its own copy of the seeds, with
FEEDSVC_RELOAD_INTERVAL=0.3, and stops it with SIGTERM. Every wait is bounded.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SEEDS
from feedcheck import ATOM, check_rss
from lxml import etree
from test_cli import free_port, wait_for
from test_websub import RecordingHub

FEEDSVC = Path(sys.executable).with_name("feedsvc")
RELOAD_INTERVAL = "0.3"
EDIT_DEADLINE = 10.0  # seconds for an edit on disk to reach every worker


class Server:
    """One `feedsvc serve` process."""

    def __init__(self, seeds: Path, env: dict[str, str] | None = None) -> None:
        self.seeds, self.port = seeds, free_port()
        command = [str(FEEDSVC)] if FEEDSVC.exists() else [sys.executable, "-m", "feedsvc.cli"]
        command += ["serve", "--seeds", str(seeds), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"]
        cache = seeds.parent / "parse-cache"  # never the user's ~/.cache
        environment = {**os.environ, "FEEDSVC_RELOAD_INTERVAL": RELOAD_INTERVAL, "FEEDSVC_CACHE_DIR": str(cache),
                       "FEEDSVC_MAX_AGE": "300", **(env or {})}
        # A file, not a pipe: a pipe nobody reads while the server logs would fill and block it.
        self.log = seeds.parent / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        self.output = ""
        try:
            wait_for(self.url("/healthz"), seconds=20)
        except BaseException:
            self.stop()
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
        """(status, headers, raw body bytes) as a client sees them on the wire."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def stop(self) -> int:
        """SIGTERM, then wait (bounded) for a clean exit; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.output = self.log.read_text(encoding="utf-8", errors="replace")
        return self.process.returncode


@pytest.fixture
def server(seeds_dir):
    """A server of its own, over seeds the test may edit."""
    running = Server(seeds_dir)
    yield running
    code = running.stop()
    assert code == 0, running.output[-3000:]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for the tests that only read."""
    seeds = tmp_path_factory.mktemp("shared") / "seeds"
    shutil.copytree(SEEDS, seeds)
    running = Server(seeds)
    yield running
    code = running.stop()
    assert code == 0, running.output[-3000:]


def rss_titles(body: bytes) -> list[str]:
    return [item.findtext("title") for item in etree.fromstring(body).iter("item")]


PUBLISHED = "003_b297a05077328abf.txt"
OLD_TITLE = "The LAPD Just Banned Its Officers From Using Third-Party Facial Recognition Software"


def test_feed_over_http_is_valid_with_validators(shared_server):
    server = shared_server
    status, headers, body = server.request("/topics/ai/rss.xml")
    assert status == 200
    check_rss(body)
    assert headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert headers["ETag"].startswith('"') and not headers["ETag"].startswith("W/")
    assert headers["Last-Modified"]
    assert sorted(p.strip() for p in headers["Cache-Control"].split(",")) == ["max-age=300", "public"]
    assert int(headers["Content-Length"]) == len(body)


def test_if_none_match_is_304_over_http(shared_server):
    server = shared_server
    status, headers, body = server.request("/topics/ai/atom.xml")
    assert status == 200 and body
    etag = headers["ETag"]
    for _ in range(4):  # whichever worker answers: both render the same bytes, so the same tag
        status, again, body = server.request("/topics/ai/atom.xml", {"If-None-Match": etag})
        assert status == 304
        assert body == b""
        assert again["ETag"] == etag
    status, _, body = server.request("/topics/ai/atom.xml", {"If-None-Match": '"something-else"'})
    assert status == 200 and body


def test_if_modified_since_is_304_over_http(shared_server):
    server = shared_server
    _, headers, _ = server.request("/feed.json")
    status, _, body = server.request("/feed.json", {"If-Modified-Since": headers["Last-Modified"]})
    assert status == 304 and body == b""


def test_gzip_as_a_real_client_sees_it(shared_server):
    server = shared_server
    status, plain_headers, plain = server.request("/topics/ai/rss.xml", {"Accept-Encoding": "identity"})
    assert status == 200 and "Content-Encoding" not in plain_headers
    status, headers, raw = server.request("/topics/ai/rss.xml", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "accept-encoding" in headers["Vary"].lower()
    assert raw[:2] == b"\x1f\x8b"
    assert int(headers["Content-Length"]) == len(raw) < len(plain)
    assert gzip.decompress(raw) == plain
    assert headers["ETag"] != plain_headers["ETag"]
    status, _, body = server.request("/topics/ai/rss.xml", {"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""


def test_head_over_http(shared_server):
    server = shared_server
    _, get_headers, body = server.request("/topics/ai/feed.json", {"Accept-Encoding": "gzip"})
    status, headers, empty = server.request("/topics/ai/feed.json", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert status == 200 and empty == b""
    for name in ("Content-Type", "Content-Length", "Content-Encoding", "ETag", "Cache-Control"):
        assert headers[name] == get_headers[name], name


def test_edit_on_disk_reaches_every_worker(server, seeds_dir):
    status, headers, body = server.request("/topics/ai/rss.xml")
    assert OLD_TITLE in rss_titles(body)
    path = seeds_dir / PUBLISHED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_TITLE, "Edited while serving"), encoding="utf-8")

    deadline, in_a_row = time.monotonic() + EDIT_DEADLINE, 0
    while in_a_row < 8:  # several answers in a row: from both workers
        assert time.monotonic() < deadline, f"the edit did not reach every worker within {EDIT_DEADLINE}s"
        status, new_headers, body = server.request("/topics/ai/rss.xml")
        assert status == 200
        in_a_row = in_a_row + 1 if "Edited while serving" in rss_titles(body) else 0
        time.sleep(0.05)
    assert new_headers["ETag"] != headers["ETag"]
    status, _, _ = server.request("/topics/ai/rss.xml", {"If-None-Match": headers["ETag"]})
    assert status == 200  # the old tag no longer matches


def test_added_and_removed_files_over_http(server, seeds_dir):
    text = (seeds_dir / PUBLISHED).read_text(encoding="utf-8")
    added = seeds_dir / "zz-added.txt"
    added.write_text(text.replace(OLD_TITLE, "A brand new article").replace("gizmodo.com/the-lapd", "gizmodo.com/new-lapd"),
                     encoding="utf-8")
    deadline = time.monotonic() + EDIT_DEADLINE
    while "A brand new article" not in rss_titles(server.request("/topics/ai/rss.xml")[2]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    added.unlink()
    deadline, in_a_row = time.monotonic() + EDIT_DEADLINE, 0
    while in_a_row < 8:
        assert time.monotonic() < deadline
        in_a_row = 0 if "A brand new article" in rss_titles(server.request("/topics/ai/rss.xml")[2]) else in_a_row + 1
        time.sleep(0.05)


def test_sigterm_stops_the_server_cleanly(seeds_dir):
    running = Server(seeds_dir)
    status, _, _ = running.request("/rss.xml")
    assert status == 200
    assert running.stop() == 0
    assert "shutting down" in running.output.lower()
    with pytest.raises(OSError):
        running.request("/rss.xml")


def test_websub_notifications_are_sent_under_gunicorn(seeds_dir):
    hub = RecordingHub()
    base = "http://feeds.example.org"
    running = Server(seeds_dir, {"FEEDSVC_WEBSUB_HUB": hub.url, "FEEDSVC_BASE_URL": base + "/"})
    try:
        _, _, body = running.request("/topics/ai/atom.xml")
        links = {l.get("rel"): l.get("href") for l in etree.fromstring(body).findall(f"{ATOM}link")}
        assert links["hub"] == hub.url  # configured and advertised
        path = seeds_dir / PUBLISHED
        path.write_text(path.read_text(encoding="utf-8").replace(OLD_TITLE, "Edited for the hub"), encoding="utf-8")
        deadline = time.monotonic() + EDIT_DEADLINE
        while "Edited for the hub" not in body.decode():
            assert time.monotonic() < deadline
            time.sleep(0.1)
            body = running.request("/topics/ai/atom.xml")[2]
        deadline = time.monotonic() + 2  # a notification leaves within milliseconds of a reload
        while f"{base}/topics/ai/atom.xml" not in hub.notified() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"{base}/topics/ai/atom.xml" in hub.notified()
    finally:
        code = running.stop()
        hub.close()
    assert code == 0, running.output[-3000:]
