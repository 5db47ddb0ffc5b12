"""What more than one test module uses and is not a fixture (fixtures live in conftest.py).

The folders the tests read; article files; the strictest feed checks we can run here; waits,
free ports and a real `feedsvc serve`; a recording WebSub hub; a clock that moves at every
read; a child process kept out of a folder by its mode. Test modules import from here, never
from one another.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
import yaml
from lxml import etree

from feedsvc.runtime.loader import load_folder
from feedsvc.runtime.store import FeedStore
from feedsvc.runtime.watcher import Watcher

PROJECT = Path(__file__).resolve().parent.parent
SEEDS = PROJECT / "seeds"
CORPUS = Path(__file__).resolve().parent / "data" / "corpus-sample"

WAIT = 5.0  # seconds: the bound of every wait for a background reload or thread


# --- article files ---------------------------------------------------------------------------------


def front_matter(**fields) -> str:
    """An article file's text with these front-matter fields."""
    return "---\n" + yaml.safe_dump(fields, allow_unicode=True, sort_keys=False) + "---\n"


def article_fields(**overrides) -> dict:
    """A valid, published article's fields, with overrides (None removes a field)."""
    fields = {
        "title": "A test article",
        "excerpt": "What happened, in one line.",
        "publishedDateTime": "2021-02-01T10:00:00Z",
        "webUrl": "https://example.com/news/test-article",
        "published": True,
        "provider": {"name": "Example News", "domain": "example.com"},
        "topics": ["Testing"],
        "images": [{"url": "https://example.com/img.jpg", "width": 800, "height": 600}],
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def article_text(**overrides) -> str:
    """A valid, published article file's text, with overrides (None removes a field)."""
    return front_matter(**article_fields(**overrides))


def set_mtime(path: Path, seconds: float) -> None:
    """Set a file's access and modification times to `seconds` since the epoch."""
    ns = int(seconds * 1_000_000_000)
    os.utime(path, ns=(ns, ns))


# --- feed checks: RFC 4287's RELAX NG schema, feedparser's well-formedness, and the W3C feed ---------
# --- validator's rules that a schema cannot express --------------------------------------------------

ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
DC = "{http://purl.org/dc/elements/1.1/}"
ATOM_SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).parent / "schemas" / "atom.rng")))


def is_absolute_uri(value: str | None) -> bool:
    """An absolute http(s) URI with no character RFC 3986 forbids unescaped."""
    if not value or any(c.isspace() or ord(c) > 126 or c in '<>"{}|\\^`' for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_well_formed(body: bytes):
    """Parse with feedparser and insist on no "bozo" (malformed) flag."""
    parsed = feedparser.parse(body)
    assert not parsed.bozo, f"feedparser: {parsed.get('bozo_exception')}"
    return parsed


def check_atom(body: bytes) -> etree._Element:
    """Assert an Atom document is valid; return its root element."""
    root = etree.fromstring(body)
    assert ATOM_SCHEMA.validate(root), str(ATOM_SCHEMA.error_log)
    parse_well_formed(body)
    feed_has_author = root.find(f"{ATOM}author") is not None
    ids = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
    assert len(ids) == len(set(ids)), "duplicate entry ids"
    assert all(is_absolute_uri(i) for i in ids + [root.findtext(f"{ATOM}id")])
    assert [l.get("href") for l in root.findall(f"{ATOM}link") if l.get("rel") == "self"], "no rel=self link"
    for link in root.iter(f"{ATOM}link"):
        assert is_absolute_uri(link.get("href")), f"relative or invalid link {link.get('href')!r}"
    for entry in root.iter(f"{ATOM}entry"):
        assert feed_has_author or entry.find(f"{ATOM}author") is not None, "entry without author"
        alternates = [
            (l.get("type"), l.get("hreflang"))
            for l in entry.findall(f"{ATOM}link")
            if l.get("rel") in (None, "alternate")
        ]
        assert len(alternates) == len(set(alternates)), "two alternate links of one type"
    check_media(root)
    return root


def check_rss(body: bytes) -> etree._Element:
    """Assert an RSS 2.0 document follows the RSS Board profile the W3C validator applies."""
    root = etree.fromstring(body)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    for name in ("title", "link", "description"):
        assert (channel.findtext(name) or "").strip(), f"channel without {name}"
    assert is_absolute_uri(channel.findtext("link"))
    selfs = [l for l in channel.findall(f"{ATOM}link") if l.get("rel") == "self"]
    assert len(selfs) == 1 and is_absolute_uri(selfs[0].get("href"))
    for name in ("lastBuildDate", "pubDate"):
        if channel.find(name) is not None:
            parsedate_to_datetime(channel.findtext(name))
    parse_well_formed(body)
    guids = [i.findtext("guid") for i in channel.iter("item")]
    assert len(guids) == len(set(guids)), "duplicate guids"
    for item in channel.iter("item"):
        check_rss_item(item)
    check_media(root)
    return root


def check_rss_item(item: etree._Element) -> None:
    """One RSS item: title or description, permalink guids are URLs, authors are e-mails."""
    assert item.findtext("title") or item.findtext("description")
    guid = item.find("guid")
    if guid is not None and guid.get("isPermaLink", "true") == "true":
        assert is_absolute_uri(guid.text)
    if item.find("link") is not None:
        assert is_absolute_uri(item.findtext("link"))
    if item.find("pubDate") is not None:
        assert parsedate_to_datetime(item.findtext("pubDate")).tzinfo is not None
    for author in item.findall("author"):
        assert "@" in (author.text or ""), "RSS <author> must be an e-mail address"


def check_media(root: etree._Element) -> None:
    """Media RSS: no media:group (the validator rejects it), absolute URLs, numeric sizes."""
    assert not list(root.iter(f"{MEDIA}group")), "media:group"
    for element in (*root.iter(f"{MEDIA}content"), *root.iter(f"{MEDIA}thumbnail")):
        assert is_absolute_uri(element.get("url"))
        for size in ("width", "height"):
            assert element.get(size) is None or element.get(size).isdigit()


def entry_ids(fmt: str, body: bytes) -> list[str]:
    """The entry ids of a feed in any format, in document order."""
    if fmt == "json":
        return [item["id"] for item in json.loads(body)["items"]]
    root = etree.fromstring(body)
    if fmt == "rss":
        return [item.findtext("guid") for item in root.iter("item")]
    return [entry.findtext(f"{ATOM}id") for entry in root.iter(f"{ATOM}entry")]


def check_feed(fmt: str, body: bytes) -> etree._Element:
    """Check a feed of either format."""
    return check_atom(body) if fmt == "atom" else check_rss(body)


def rss_titles(body: bytes) -> list[str]:
    """The item titles of an RSS document, in order."""
    return [item.findtext("title") for item in etree.fromstring(body).iter("item")]


# --- the W3C feed validator itself (tools/feedcheck: w3c/feedvalidator run offline) ---------------------

# Where the team keeps it; FEEDCHECK names another copy. It is not part of this project: a test that
# needs it is skipped, with the reason, where it is absent or cannot run (it needs html5lib).
FEEDCHECK = Path(os.environ.get("FEEDCHECK", "/work/shared/tools/feedcheck"))


@dataclass(frozen=True)
class Finding:
    """One problem the validator reports: where, ERROR or WARNING, its message id and its text."""

    target: str
    level: str
    kind: str  # the validator's message id (e.g. "DuplicateUpdated"): stable, unlike its wording
    text: str


def feedcheck(targets: list[str]) -> list[Finding]:
    """What the W3C feed validator says about these files or loopback URLs (`feedcheck -v`)."""
    if not FEEDCHECK.is_file():
        pytest.skip(f"the W3C feed validator is not at {FEEDCHECK} (set FEEDCHECK to its feedcheck script)")
    result = subprocess.run(
        [sys.executable, str(FEEDCHECK), "-v", *targets], check=False, capture_output=True, text=True, timeout=600
    )
    if result.returncode in (3, 4):  # feedcheck's "validator not present" and "html5lib missing"
        pytest.skip(f"feedcheck cannot run: {result.stderr.strip()}")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    findings, lines = [], result.stdout.splitlines()
    for line, following in zip(lines, [*lines[1:], ""]):
        for target in targets:
            level, _, text = line.removeprefix(f"{target}: ").partition(": ")
            if line.startswith(f"{target}: ") and level in ("ERROR", "WARNING"):
                kind = following.strip().removeprefix("id ").split(";")[0] if following.startswith("    id ") else ""
                findings.append(Finding(target, level, kind, text))
                break
    return findings


# --- the app, in process ---------------------------------------------------------------------------


def feed_path(slug: str | None, fmt: str, page: int = 1) -> str:
    """The path of a page of a feed: the all-topics one (slug None) or a topic's, in rss, atom or json."""
    return document_path(slug, "feed.json" if fmt == "json" else f"{fmt}.xml", page)


def document_path(slug: str | None, name: str, page: int = 1) -> str:
    """The path of page `page` of a feed or digest file `name`: page 1 at /[topics/SLUG/]NAME,
    page N >= 2 at /[topics/SLUG/]page/N/NAME."""
    return (f"/topics/{slug}/" if slug else "/") + (f"page/{page}/" if page > 1 else "") + name


def get_ok(client, url: str, **kwargs):
    """A test client's GET of `url`, which must answer 200."""
    response = client.get(url, **kwargs)
    assert response.status_code == 200, (url, response.status_code, response.data[:300])
    return response


def watcher_of(store: FeedStore) -> Watcher | None:
    """The reload thread following `store` in this process, None when there is none: found among
    the live threads (threading.enumerate() lists those started and not yet ended), as the store
    keeps its own out of reach."""
    found = [thread for thread in threading.enumerate() if isinstance(thread, Watcher) and thread.store is store]
    assert len(found) <= 1, f"more than one watcher follows one store: {found}"
    return found[0] if found else None


# --- waits ---------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], seconds: float = WAIT, step: float = 0.02) -> bool:
    """Poll predicate until it holds or the time is up; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(step)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 20.0) -> bytes:
    """GET url, retrying while the server starts."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- a real `feedsvc serve` (granian, 2 workers) -------------------------------------------------------

FEEDSVC = Path(sys.executable).with_name("feedsvc")
RELOAD_INTERVAL = "0.3"
EDIT_DEADLINE = 10.0  # seconds for an edit on disk to reach every worker

# The seeds' published AI article, and its title.
PUBLISHED = "003_b297a05077328abf.txt"
OLD_TITLE = "The LAPD Just Banned Its Officers From Using Third-Party Facial Recognition Software"


def serve_command() -> list[str]:
    """`feedsvc serve --host 127.0.0.1`, from this virtual environment."""
    command = [str(FEEDSVC)] if FEEDSVC.exists() else [sys.executable, "-m", "feedsvc.cli"]
    return [*command, "serve", "--host", "127.0.0.1"]


class Server:
    """One `feedsvc serve` process on a free port, FEEDSVC_RELOAD_INTERVAL=0.3; stop() it."""

    def __init__(self, seeds: Path, env: dict[str, str] | None = None, command: list[str] | None = None) -> None:
        """`command` (default `feedsvc serve`) is given --seeds, --port and --workers 2."""
        self.seeds, self.port = seeds, free_port()
        if command is None:
            command = serve_command()
        command = [*command, "--seeds", str(seeds), "--port", str(self.port), "--workers", "2"]
        cache = seeds.parent / "parse-cache"  # never the user's ~/.cache
        environment = {
            **os.environ,
            "FEEDSVC_RELOAD_INTERVAL": RELOAD_INTERVAL,
            "FEEDSVC_CACHE_DIR": str(cache),
            "FEEDSVC_MAX_AGE": "300",
            **(env or {}),
        }
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

    def log_text(self) -> str:
        """What the server has written so far (stdout and stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or `signum`), then wait (bounded) for a clean exit; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.output = self.log_text()
        return self.process.returncode


@contextmanager
def serving(seeds: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A Server over `seeds`, stopped on the way out, which must then exit cleanly (code 0)."""
    running = Server(seeds, env)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output[-3000:]


def served_by_every_worker(server: Server, title: str, what: str) -> dict:
    """Wait until /topics/ai/rss.xml has `title` in 8 answers in a row (so from every worker); its headers."""
    deadline, in_a_row = time.monotonic() + EDIT_DEADLINE, 0
    while in_a_row < 8:
        assert time.monotonic() < deadline, f"{what} did not reach every worker within {EDIT_DEADLINE}s"
        status, headers, body = server.request("/topics/ai/rss.xml")
        assert status == 200
        in_a_row = in_a_row + 1 if title in rss_titles(body) else 0
        time.sleep(0.05)
    return headers


# --- a WebSub hub --------------------------------------------------------------------------------


class RecordingHub:
    """A WebSub hub on 127.0.0.1, in a thread of this process, that records every POST and
    answers with the queued statuses (then 204); close() it."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hub.lock:
                    status = hub.statuses.pop(0) if hub.statuses else 204
                    hub.posts.append(
                        {
                            "at": time.monotonic(),
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type"),
                            "form": parse_qs(body.decode("ascii"), keep_blank_values=True),
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hub"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-hub", daemon=True
        )
        self.thread.start()

    def notified(self) -> list[str]:
        """The hub.url of every POST so far, in order."""
        with self.lock:
            return [post["form"]["hub.url"][0] for post in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=WAIT)


# --- a wall clock that never stands still ----------------------------------------------------------


class _ClockMeta(type):
    """Keep feedgen's `isinstance(value, datetime)` checks working with the fake clock."""

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, datetime)


class ShiftingClock(metaclass=_ClockMeta):
    """A wall clock that jumps a year and a day forward every time it is read."""

    calls = 0

    @classmethod
    def now(cls, tz=None) -> datetime:
        cls.calls += 1
        return datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc) + timedelta(days=367 * cls.calls)


# --- a process that mode 000 keeps out of a folder -------------------------------------------------


def world_readable_folder() -> Path:
    """A new folder under the system's temporary folder that any user can reach (pytest's tmp_path
    is its owner's alone, so `nobody` could not even reach a folder in it)."""
    folder = Path(tempfile.mkdtemp(prefix="feedsvc-unlisted-"))
    folder.chmod(0o755)
    return folder


def as_unprivileged(work, seconds: float = 30.0, warm_up=lambda: load_folder(SEEDS)):
    """work()'s JSON-able result, from a forked child that mode 000 keeps out of a folder: as user
    `nobody` when this runs as root (root reads any folder, whatever its mode), else as this user.
    A fork, not a new interpreter: `nobody` may not be able to read this one's installation, so
    `warm_up()` first does here what `work` will (on other files), importing what it imports lazily."""
    uid, gid = unprivileged_ids()
    warm_up()
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: the child runs only `work`
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(reader)
            if os.geteuid() != uid:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            outcome = {"value": work()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            try:
                os.write(writer, json.dumps(outcome, default=str).encode())
            finally:
                os._exit(0)
    os.close(writer)
    data, deadline = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([reader], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(reader, 65536) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(reader)
        if not os.waitpid(pid, os.WNOHANG)[0]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
    assert data, f"the unprivileged child gave no answer within {seconds} s"
    outcome = json.loads(data)
    assert "error" not in outcome, outcome["error"]
    return outcome["value"]


def unprivileged_ids() -> tuple[int, int]:
    """(uid, gid) as_unprivileged runs as."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no user 'nobody' to take mode 000 seriously")
    return nobody.pw_uid, nobody.pw_gid


# --- headless Chromium ---------------------------------------------------------------------------

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.access(p, os.X_OK)), None)
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium"
)
CHROMIUM_TIMEOUT = 90  # seconds for one headless run, start to exit


def chromium(url: str, profile: Path, *extra: str, width: int = 600, height: int = 2000) -> str:
    """Run headless Chromium on `url` in a `width` x `height` window (bounded); its stdout."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    completed = subprocess.run(
        command, capture_output=True, timeout=CHROMIUM_TIMEOUT, stdin=subprocess.DEVNULL, check=False
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-3000:]
    return completed.stdout.decode("utf-8", errors="replace")


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, made with zlib alone."""
    row = b"\x00" + bytes(colour) * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    JSON messages ending in NUL, read on its fd 3 and written on its fd 4), so that a page is
    measured as it is served, its own Content-Security-Policy and all, at any viewport width
    (a headless window is at least 500 px wide; Emulation.setDeviceMetricsOverride is not)."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._events, from_browser = os.pipe()

        def pipes_as_3_and_4() -> None:
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=pipes_as_3_and_4,  # noqa: PLW1509 (it only calls dup2, which takes no lock)
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.session = b"", 0, None
        self._seen: list[str | None] = []  # the events read while waiting for an answer
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "Chromium did not answer in time"
            ready, _, _ = select.select([self._events], [], [], left)
            if ready:
                chunk = os.read(self._events, 1 << 20)
                assert chunk, "Chromium closed its DevTools pipe"
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, **params) -> dict:
        """Run one DevTools command (in the page's session once attached); its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + CHROMIUM_TIMEOUT
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                assert "error" not in answer, (method, answer["error"])
                return answer["result"]
            self._seen.append(answer.get("method"))

    def open(self, url: str, width: int, height: int) -> None:
        """Navigate (a top-level navigation, as a click on a link) in a `width` x `height` viewport
        (a phone's below 600 px), and wait for the load event."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=width < 600)  # fmt: skip
        self._seen = []
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + CHROMIUM_TIMEOUT
        while "Page.loadEventFired" not in self._seen:
            self._seen.append(self._message(deadline).get("method"))

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page (DevTools, not the page's CSP)."""
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 10.0) -> bool:
        """Whether a JavaScript expression became true within `seconds` (polled)."""
        deadline = time.monotonic() + seconds
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the viewport, written to `path`."""
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        """Close the browser (bounded), and the pipes."""
        try:
            self.session = None
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._commands)
        os.close(self._events)
