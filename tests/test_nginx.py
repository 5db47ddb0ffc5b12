"""deploy/nginx.conf for real: nginx caching in front of a real `feedsvc serve`, on loopback.

Each test starts the app (granian, FEEDSVC_MAX_AGE=2, FEEDSVC_RELOAD_INTERVAL=0.3) on a free
port and nginx on another, with deploy/nginx.conf rendered into a temporary folder: its ports,
and its pid, log, temp and cache paths substituted (nothing else changed). Shown over HTTP: a
repeat request is a cache HIT; after max-age the entry is revalidated with a conditional request
the app answers 304 (its access log has the 304 line, nginx logs REVALIDATED); with the app
stopped the cached copy is still served (STALE); a changed file reaches readers after max-age;
previews (include=all, private) are never cached. Every wait is bounded, every process is
stopped in a finally block. Skipped where nginx is not installed (CI installs it).
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import OLD_TITLE, PROJECT, PUBLISHED, Server, free_port, rss_titles

NGINX = next((p for p in ("/usr/sbin/nginx", shutil.which("nginx") or "") if p and os.access(p, os.X_OK)), None)
pytestmark = [
    pytest.mark.slow,  # a real nginx in front of a real `feedsvc serve`
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (/usr/sbin/nginx): apt-get install -y nginx"),
]
CONFIG = PROJECT / "deploy" / "nginx.conf"
MAX_AGE = 2  # seconds; nginx counts whole seconds, so an entry expires 2 to 3 s after it was stored
EXPIRY_DEADLINE = 10.0  # seconds for a cached entry to expire (with margin)
FEED = "/topics/ai/rss.xml"


def prepare(prefix: str) -> Path:
    """A fresh folder for one nginx, with the log and temp folders nginx does not create itself.

    Not under pytest's tmp_path (mode 0700): run as root, nginx's workers run as www-data (the
    config's `user`) and must reach the cache and temp folders nginx makes (and chowns) here.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    (base / "logs").mkdir()
    (base / "temp").mkdir()
    return base


def render(base: Path, app_port: int, port: int, edits: dict[str, str] | None = None) -> str:
    """deploy/nginx.conf with its ports and paths moved under `base` (each literal must be there)."""
    text = CONFIG.read_text(encoding="utf-8")
    substitutions = [  # (literal in the config, replacement, how many times it must occur)
        ("/var/lib/nginx/", f"{base}/temp/", 5),
        ("/var/cache/nginx/feedsvc", f"{base}/cache", 1),
        ("/var/log/nginx/", f"{base}/logs/", 2),
        ("/run/nginx.pid", f"{base}/nginx.pid", 1),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};", 1),
        ("listen 80;", f"listen 127.0.0.1:{port};", 1),
        *((old, new, 1) for old, new in (edits or {}).items()),
    ]
    for old, new, count in substitutions:
        assert text.count(old) == count, f"deploy/nginx.conf: {old!r} occurs {text.count(old)} times, not {count}"
        text = text.replace(old, new)
    return text


class Nginx:
    """One nginx master (daemon off) with the rendered config, in a folder of its own."""

    def __init__(self, app_port: int, edits: dict[str, str] | None = None) -> None:
        self.base = prepare("feedsvc-nginx-")
        self.port = free_port()
        self.config = self.base / "nginx.conf"
        self.config.write_text(render(self.base, app_port, self.port, edits), encoding="utf-8")
        self.command = [
            NGINX,
            "-p",
            str(self.base),
            "-e",
            str(self.base / "logs" / "startup.log"),
            "-c",
            str(self.config),
            "-g",
            "daemon off;",
        ]
        self.process: subprocess.Popen | None = None
        try:
            checked = subprocess.run([*self.command, "-t"], capture_output=True, text=True, timeout=30, check=False)
            assert checked.returncode == 0, checked.stderr
            with (self.base / "logs" / "master.out").open("wb") as out:
                self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
            self.wait_listening()
        except BaseException:
            self.stop()
            raise

    def wait_listening(self, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            assert self.process.poll() is None, f"nginx exited: {self.logs()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"nginx did not listen within {seconds}s: {self.logs()}"
                time.sleep(0.1)

    def request(self, path: str, headers: dict[str, str] | None = None):
        """(status, headers, raw body) through the proxy."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request("GET", path, headers={"Accept-Encoding": "identity", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def access_log(self) -> str:
        path = self.base / "logs" / "feedsvc-access.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted((self.base / "logs").glob("*")))

    def stop(self) -> None:
        """Fast shutdown (SIGTERM), bounded; then remove the folder."""
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class Stack:
    """The app and nginx in front of it."""

    def __init__(self, seeds: Path, edits: dict[str, str] | None = None) -> None:
        self.seeds = seeds
        self.app = Server(seeds, {"FEEDSVC_MAX_AGE": str(MAX_AGE)})
        try:
            self.nginx = Nginx(self.app.port, edits)
        except BaseException:
            self.app.stop()
            raise

    def app_lines(self, path: str) -> list[int]:
        """Status codes of the app's access-log lines for GET `path` (query included)."""
        log = self.app.log.read_text(encoding="utf-8", errors="replace")
        return [int(s) for s in re.findall(rf'"GET {re.escape(path)} HTTP/1\.[01]" (\d{{3}}) ', log)]

    def wait_app_lines(self, path: str, expected: list[int], seconds: float = 5.0) -> None:
        """Assert the app logged exactly `expected` for `path` (granian logs after answering: wait, bounded)."""
        deadline = time.monotonic() + seconds
        while self.app_lines(path) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.app_lines(path) == expected

    def stop(self) -> None:
        try:
            self.nginx.stop()
        finally:
            self.app.stop()


@pytest.fixture
def stack(seeds_dir):
    running = Stack(seeds_dir)
    try:
        yield running
    finally:
        running.stop()


def until(check: Callable[[], object], seconds: float, what: str, pause: float = 0.2):
    """Call `check` until it returns something true, for at most `seconds`; that value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {seconds}s"
        time.sleep(pause)


def cache_status(headers) -> str:
    return headers["X-Cache-Status"]


# -- the config ------------------------------------------------------------------------------


def directives(text: str) -> list[list[str]]:
    """The config's simple directives as word lists (comments dropped; blocks flattened)."""
    text = re.sub(r"#[^\n]*", "", text)
    found = []
    for statement in re.split(r"[;{}]", text):
        words = statement.split()
        if words:
            found.append(words)
    return found


def test_config_is_a_caching_proxy_to_127_0_0_1_8000():
    config = directives(CONFIG.read_text(encoding="utf-8"))
    named = {words[0]: words[1:] for words in config}
    assert ["server", "127.0.0.1:8000"] in config
    assert named["proxy_pass"] == ["http://feedsvc_app"]
    assert named["proxy_cache_revalidate"] == ["on"]
    assert set(named["proxy_cache_use_stale"]) == {
        "error",
        "timeout",
        "updating",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
    }
    assert named["proxy_cache_background_update"] == ["on"]
    assert named["add_header"][:2] == ["X-Cache-Status", "$upstream_cache_status"]
    assert "$feedsvc_encoding" in " ".join(named["proxy_cache_key"])
    # a browser's page and a feed reader's feed at one URL are two copies (the app's Vary: Sec-Fetch-Dest)
    assert "$feedsvc_dest" in " ".join(named["proxy_cache_key"])
    assert ["map", "$http_sec_fetch_dest", "$feedsvc_dest"] in [words[:3] for words in config]
    assert ["proxy_set_header", "Sec-Fetch-Dest", "$feedsvc_dest"] in config
    assert named["gzip"] == ["off"]  # the app's gzip goes through untouched
    assert "proxy_cache_valid" not in named  # freshness only from the app's Cache-Control
    assert "proxy_ignore_headers" in named and "Cache-Control" not in named["proxy_ignore_headers"]


def test_rendered_config_passes_nginx_t(tmp_path):
    base = prepare("feedsvc-nginx-t-")
    try:
        config = base / "nginx.conf"
        config.write_text(render(base, 8000, free_port()), encoding="utf-8")
        checked = subprocess.run(
            [
                NGINX,
                "-t",
                "-p",
                str(base),
                "-e",
                str(base / "logs" / "startup.log"),
                "-c",
                str(config),
                "-g",
                "daemon off;",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
        broken = config.read_text().replace("proxy_cache_revalidate on;", "proxy_cache_revalidate maybe;")
        config.write_text(broken)
        refused = subprocess.run(
            [
                NGINX,
                "-t",
                "-p",
                str(base),
                "-e",
                str(base / "logs" / "startup.log"),
                "-c",
                str(config),
                "-g",
                "daemon off;",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert refused.returncode != 0  # so the check above can fail
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- behaviour -------------------------------------------------------------------------------


def test_repeat_request_is_a_hit_and_each_encoding_is_cached_once(stack):
    nginx = stack.nginx
    status, first, body = nginx.request(FEED)
    assert status == 200 and cache_status(first) == "MISS"
    assert sorted(p.strip() for p in first["Cache-Control"].split(",")) == [f"max-age={MAX_AGE}", "public"]
    status, again, cached = nginx.request(FEED)
    assert status == 200 and cache_status(again) == "HIT"
    assert cached == body and again["ETag"] == first["ETag"]
    assert "Content-Encoding" not in again

    status, zipped_headers, zipped = nginx.request(FEED, {"Accept-Encoding": "gzip"})
    assert status == 200 and cache_status(zipped_headers) == "MISS"  # a copy of its own
    assert zipped_headers["Content-Encoding"] == "gzip" and zipped[:2] == b"\x1f\x8b"
    assert gzip.decompress(zipped) == body and len(zipped) < len(body)
    assert zipped_headers["ETag"] != first["ETag"]  # the app's tag for the gzip body, kept strong
    assert "accept-encoding" in zipped_headers["Vary"].lower()
    status, other_spelling, zipped_again = nginx.request(FEED, {"Accept-Encoding": "gzip, deflate, br"})
    assert cache_status(other_spelling) == "HIT" and zipped_again == zipped
    for refusing in ("deflate", "gzip;q=0, deflate", "br, gzip; q=0.0"):
        status, plain_headers, plain = nginx.request(FEED, {"Accept-Encoding": refusing})
        assert cache_status(plain_headers) == "HIT", refusing
        assert plain == body and "Content-Encoding" not in plain_headers, refusing
    status, half_headers, _ = nginx.request(FEED, {"Accept-Encoding": "gzip;q=0.5"})
    assert cache_status(half_headers) == "HIT" and half_headers["Content-Encoding"] == "gzip"

    stack.wait_app_lines(FEED, [200, 200])  # one request per encoding reached the app
    # nginx logs a request after answering it: wait (bounded) for the last line
    log = until(lambda: (text := nginx.access_log()).count(f'"GET {FEED}"') >= 8 and text, 5, "nginx's access log")
    assert log.count(f'"GET {FEED}"') == 8
    assert log.count("cache=HIT") == 6


def test_a_browsers_page_and_a_readers_feed_are_cached_apart(stack):
    nginx = stack.nginx
    status, feed_headers, feed = nginx.request(FEED)
    assert status == 200 and cache_status(feed_headers) == "MISS" and not feed.lstrip().startswith(b"<!doctype")
    for _ in range(2):
        status, headers, page = nginx.request(FEED, {"Sec-Fetch-Dest": "document"})
        assert status == 200 and headers["Content-Type"].startswith("text/html") and page.startswith(b"<!doctype html>")
    assert cache_status(headers) == "HIT" and headers["ETag"] != feed_headers["ETag"]
    for dest in ("empty", "iframe", None):  # anything but a navigation shares the feed's copy
        status, headers, body = nginx.request(FEED, {"Sec-Fetch-Dest": dest} if dest else {})
        assert cache_status(headers) == "HIT" and body == feed, dest
    assert "sec-fetch-dest" in feed_headers["Vary"].lower()


def test_expired_entry_is_revalidated_with_a_conditional_request_answered_304(stack):
    nginx = stack.nginx
    status, first, body = nginx.request(FEED)
    assert status == 200 and cache_status(first) == "MISS"

    def expired():
        status, headers, served = nginx.request(FEED)
        assert status == 200 and served == body  # fresh or stale: always the same whole copy
        return cache_status(headers) != "HIT" and headers

    headers = until(expired, EXPIRY_DEADLINE, "the cached feed expiring", pause=0.25)
    # Expired: the stale copy is answered at once while nginx revalidates in the background.
    assert cache_status(headers) == "STALE"
    until(lambda: 304 in stack.app_lines(FEED), 10, "a 304 in the app's access log")
    stack.wait_app_lines(FEED, [200, 304])  # a conditional request, not a second full fetch
    until(
        lambda: re.search(rf'"GET {re.escape(FEED)}" .* cache=REVALIDATED upstream=304 ', nginx.access_log()),
        10,
        "REVALIDATED in nginx's access log",
    )
    status, after, served = nginx.request(FEED)
    assert status == 200 and cache_status(after) == "HIT"  # fresh again
    assert served == body and after["ETag"] == first["ETag"]


def test_without_background_update_the_client_sees_revalidated_and_stale_on_error(seeds_dir):
    """The same config with proxy_cache_background_update off: the client's own request revalidates,
    and with the app down `proxy_cache_use_stale error` alone serves the cached copy."""
    running = Stack(seeds_dir, {"proxy_cache_background_update on;": "proxy_cache_background_update off;"})
    try:
        nginx = running.nginx
        status, first, body = nginx.request(FEED)
        assert status == 200 and cache_status(first) == "MISS"
        headers = until(
            lambda: (h := nginx.request(FEED)[1]) and cache_status(h) != "HIT" and h,
            EXPIRY_DEADLINE,
            "the cached feed expiring",
            pause=0.25,
        )
        assert cache_status(headers) == "REVALIDATED"
        running.wait_app_lines(FEED, [200, 304])

        assert running.app.stop() == 0
        status, headers, served = until(
            lambda: (r := nginx.request(FEED)) and cache_status(r[1]) != "HIT" and r,
            EXPIRY_DEADLINE,
            "the cached feed expiring",
            pause=0.25,
        )
        assert status == 200 and cache_status(headers) == "STALE" and served == body
        until(
            lambda: re.search(rf'"GET {re.escape(FEED)}" .* cache=STALE upstream=502 ', nginx.access_log()),
            5,
            "the failed upstream request in nginx's access log",
        )
    finally:
        running.stop()


def test_cached_feed_is_served_stale_while_the_app_is_down(stack):
    nginx = stack.nginx
    status, first, body = nginx.request("/topics/ai/atom.xml")
    assert status == 200 and cache_status(first) == "MISS"
    assert stack.app.stop() == 0  # the app is gone

    def stale():
        status, headers, served = nginx.request("/topics/ai/atom.xml")
        assert status == 200 and served == body
        return cache_status(headers) == "STALE"

    until(stale, EXPIRY_DEADLINE, "the cached feed served stale", pause=0.25)
    for _ in range(3):
        status, headers, served = nginx.request("/topics/ai/atom.xml")
        assert (status, cache_status(headers), served) == (200, "STALE", body)
        assert headers["ETag"] == first["ETag"]
    status, headers, _ = nginx.request("/topics/computer-vision/atom.xml")  # never cached
    assert status == 502 and cache_status(headers) == "MISS"
    until(
        lambda: "connect() failed" in (nginx.base / "logs" / "error.log").read_text(errors="replace"),
        5,
        "the refused connection in nginx's error log",
    )


def test_changed_file_is_visible_through_the_proxy_after_max_age(stack, seeds_dir):
    nginx = stack.nginx
    _, headers, body = nginx.request(FEED)
    assert cache_status(headers) == "MISS" and OLD_TITLE in rss_titles(body)
    path = seeds_dir / PUBLISHED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_TITLE, "Edited behind the cache"), encoding="utf-8")
    _, headers, body = nginx.request(FEED)
    assert cache_status(headers) == "HIT" and OLD_TITLE in rss_titles(body)  # the cached copy, still fresh

    until(lambda: "Edited behind the cache" in rss_titles(stack.app.request(FEED)[2]), 10, "the app reloading")
    seen = []

    def updated():
        status, headers, body = nginx.request(FEED)
        assert status == 200
        seen.append(cache_status(headers))
        return "Edited behind the cache" in rss_titles(body)

    until(updated, EXPIRY_DEADLINE + 5, "the edit reaching readers through the proxy", pause=0.25)
    assert "STALE" in seen  # the old copy was served once more while the new one was fetched
    _, headers, body = nginx.request(FEED)
    assert cache_status(headers) == "HIT" and "Edited behind the cache" in rss_titles(body)
    assert OLD_TITLE not in rss_titles(body)


def test_previews_and_uncacheable_pages_always_reach_the_app(stack):
    nginx = stack.nginx
    for _ in range(2):
        status, headers, _ = nginx.request(FEED + "?include=all")
        assert status == 200 and cache_status(headers) == "MISS"
        assert "private" in headers["Cache-Control"] and "public" not in headers["Cache-Control"]
    stack.wait_app_lines(FEED + "?include=all", [200, 200])
    for path in ("/", "/feeds.opml", "/healthz"):  # no Cache-Control: not stored
        before = stack.app_lines(path)  # /healthz: the start-up check asked for it already
        for _ in range(2):
            status, headers, _ = nginx.request(path)
            assert status == 200 and cache_status(headers) == "MISS"
        stack.wait_app_lines(path, [*before, 200, 200])


def test_pages_and_the_old_page_links_redirects_are_cached_like_feeds(stack):
    """Pages are paths (/topics/ai/page/2/rss.xml): cached per URL like any feed; an old ?page=N link's
    301 passes through (and is cached: it is permanent) with the app's Location."""
    nginx = stack.nginx
    page, old = "/topics/ai/page/2/rss.xml?limit=1", "/topics/ai/rss.xml?page=2&limit=1"
    status, first, body = nginx.request(page)
    assert status == 200 and cache_status(first) == "MISS" and rss_titles(body)
    status, again, cached = nginx.request(page)
    assert status == 200 and cache_status(again) == "HIT" and cached == body
    for expected in ("MISS", "HIT"):
        status, moved, _ = nginx.request(old)
        assert status == 301 and cache_status(moved) == expected
        assert urlsplit(moved["Location"])[2:4] == ("/topics/ai/page/2/rss.xml", "limit=1")
    stack.wait_app_lines(page, [200])
    stack.wait_app_lines(old, [301])
    status, headers, _ = nginx.request("/topics/ai/page/02/rss.xml")
    assert status == 404 and "Cache-Control" not in headers


def test_metrics_are_never_passed_on(stack):
    status, _, _ = stack.nginx.request("/metrics")
    assert status == 403
    assert stack.app.request("/healthz")[0] == 200  # the app answers (and logs) meanwhile
    stack.wait_app_lines("/metrics", [])  # nginx never asked it for /metrics


def test_access_log_never_holds_a_preview_token(stack):
    nginx = stack.nginx
    status, _, _ = nginx.request(FEED + "?include=all&token=secret-preview-9931")
    assert status == 200
    log = until(lambda: "include=all" in (text := nginx.access_log()) and text, 5, "nginx's access log")
    assert f'"GET {FEED}" include=all ' in log and "secret-preview-9931" not in log
