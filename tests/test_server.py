"""Caching, gzip, hot reload and signals over real HTTP against `feedsvc serve` (granian, 2 workers),
and the worker start-up of feedsvc.server in process.

Each test starts its own server on a free port over its own copy of the seeds, with
FEEDSVC_RELOAD_INTERVAL=0.3, and stops it with SIGTERM. Every wait is bounded.
"""

from __future__ import annotations

import errno
import gzip
import http.client
import logging
import multiprocessing
import os
import pickle
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from helpers import (
    ATOM,
    EDIT_DEADLINE,
    OLD_TITLE,
    PUBLISHED,
    SEEDS,
    RecordingHub,
    Server,
    check_rss,
    rss_titles,
    serve_command,
    served_by_every_worker,
    serving,
    wait_until,
    watcher_of,
)
from lxml import etree

from feedsvc import create_app
from feedsvc.errors import FeedsvcError
from feedsvc.server import RedactTokens, claim_address, escape_log_text, start_worker, worker_loader


@pytest.fixture
def server(seeds_dir):
    """A server of its own, over seeds the test may edit."""
    with serving(seeds_dir) as running:
        yield running


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for the tests that only read."""
    seeds = tmp_path_factory.mktemp("shared") / "seeds"
    shutil.copytree(SEEDS, seeds)
    with serving(seeds) as running:
        yield running


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_if_modified_since_is_304_over_http(shared_server):
    server = shared_server
    _, headers, _ = server.request("/feed.json")
    status, _, body = server.request("/feed.json", {"If-Modified-Since": headers["Last-Modified"]})
    assert status == 304 and body == b""


@pytest.mark.slow
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
    status, _, body = server.request(
        "/topics/ai/rss.xml", {"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]}
    )
    assert status == 304 and body == b""


@pytest.mark.slow
def test_head_over_http(shared_server):
    server = shared_server
    _, get_headers, _ = server.request("/topics/ai/feed.json", {"Accept-Encoding": "gzip"})
    status, headers, empty = server.request("/topics/ai/feed.json", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert status == 200 and empty == b""
    for name in ("Content-Type", "Content-Length", "Content-Encoding", "ETag", "Cache-Control"):
        assert headers[name] == get_headers[name], name


@pytest.mark.slow
def test_edit_on_disk_reaches_every_worker(server, seeds_dir):
    status, headers, body = server.request("/topics/ai/rss.xml")
    assert OLD_TITLE in rss_titles(body)
    path = seeds_dir / PUBLISHED
    path.write_text(path.read_text(encoding="utf-8").replace(OLD_TITLE, "Edited while serving"), encoding="utf-8")

    new_headers = served_by_every_worker(server, "Edited while serving", "the edit")
    assert new_headers["ETag"] != headers["ETag"]
    status, _, _ = server.request("/topics/ai/rss.xml", {"If-None-Match": headers["ETag"]})
    assert status == 200  # the old tag no longer matches


@pytest.mark.slow
def test_added_and_removed_files_over_http(server, seeds_dir):
    text = (seeds_dir / PUBLISHED).read_text(encoding="utf-8")
    added = seeds_dir / "zz-added.txt"
    added.write_text(
        text.replace(OLD_TITLE, "A brand new article").replace("gizmodo.com/the-lapd", "gizmodo.com/new-lapd"),
        encoding="utf-8",
    )
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


def edit_title(seeds_dir: Path, new_title: str, old_title: str = OLD_TITLE) -> None:
    """Rename the published AI article (one write: no reload sees half a file)."""
    path = seeds_dir / PUBLISHED
    path.write_text(path.read_text(encoding="utf-8").replace(old_title, new_title), encoding="utf-8")


def loaded_lines(log: str) -> list[str]:
    """The store's 'loaded N articles' lines: one per catalog a process built."""
    return [line for line in log.splitlines() if "feedsvc.runtime.store: loaded " in line]


def worker_pids(log: str) -> list[int]:
    """The PID of every worker granian started, in order."""
    return [int(pid) for pid in re.findall(r"Spawning worker-\d+ with PID: (\d+)", log)]


@pytest.mark.slow
@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="workers are spawned: each builds its own app")
def test_app_is_built_once_in_the_master_before_the_workers_fork(shared_server):
    log = shared_server.log_text()
    assert len(loaded_lines(log)) == 1, log  # the master's; a worker's catch-up found nothing new
    pids = worker_pids(log)
    assert len(set(pids)) == 2 and shared_server.process.pid not in pids
    for pid in pids:  # the workers are the master's children
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(shared_server.process.pid)


@pytest.mark.slow
def test_sighup_reaches_every_worker(seeds_dir):
    with serving(seeds_dir, {"FEEDSVC_RELOAD_INTERVAL": "0"}) as running:  # no watcher: only SIGHUP reloads
        edit_title(seeds_dir, "Reloaded on SIGHUP")
        for _ in range(8):  # both workers: still the old catalog
            assert OLD_TITLE in rss_titles(running.request("/topics/ai/rss.xml")[2])
        before = loaded_lines(running.log_text())
        running.process.send_signal(signal.SIGHUP)
        served_by_every_worker(running, "Reloaded on SIGHUP", "SIGHUP")
        deadline = time.monotonic() + 2  # a worker logs the reload just after it swapped the catalog in
        while len(loaded_lines(log := running.log_text())) < len(before) + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(loaded_lines(log)) == len(before) + 2, log  # each worker reloaded, the master did not
        assert "Respawning" not in log and len(worker_pids(log)) == 2  # the same workers: nothing restarted


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_server_cleanly(seeds_dir, signum):
    running = Server(seeds_dir)
    status, _, _ = running.request("/rss.xml")
    assert status == 200
    assert running.stop(signum) == 0
    assert "Shutting down granian" in running.output
    assert "Granian shutdown completed" in running.output
    assert "refused to gracefully stop" not in running.output  # no worker had to be killed
    with pytest.raises(OSError):
        running.request("/rss.xml")


# feedsvc.server.run, as `feedsvc serve` runs it, with the app's answers to ?slow=1 delayed.
SLOW_SERVE = """
import argparse, sys, time
from feedsvc import create_app
from feedsvc.config import create_config
from feedsvc.server import run

def build(config):
    app = create_app(config)
    inner = app.wsgi_app
    def delayed(environ, start_response):
        if environ.get("QUERY_STRING") == "slow=1":
            print("slow request in the app", file=sys.stderr, flush=True)
            time.sleep(2)
        return inner(environ, start_response)
    app.wsgi_app = delayed
    return app

parser = argparse.ArgumentParser()
for name in ("--seeds", "--port", "--workers"):
    parser.add_argument(name)
args = parser.parse_args()
sys.exit(run(create_config({"SEEDS_DIR": args.seeds, "PORT": int(args.port), "WORKERS": int(args.workers)}), build))
"""


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish(seeds_dir):
    running = Server(seeds_dir, command=[sys.executable, "-c", SLOW_SERVE])
    answers: list = []
    slow = threading.Thread(target=lambda: answers.append(running.request("/topics/ai/rss.xml?slow=1")))
    slow.start()
    # The app holds the request for 2 s from when it says it has it; on a slow host that can take a while.
    assert wait_until(lambda: "slow request in the app" in running.log_text(), seconds=EDIT_DEADLINE)
    started = time.monotonic()
    code = running.stop()
    slow.join(10)
    assert code == 0, running.output[-3000:]
    assert time.monotonic() - started >= 1  # the stop waited for the request
    status, headers, body = answers[0]
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    check_rss(body)
    assert OLD_TITLE in rss_titles(body)
    assert '"GET /topics/ai/rss.xml?slow=1 HTTP/1.1" 200 ' in running.output


@pytest.mark.slow
def test_websub_notifications_are_sent_under_feedsvc_serve(seeds_dir, tmp_path):
    hub = RecordingHub()
    base = "http://feeds.example.org"
    # TMPDIR: the notifier's lock file in this test's folder, not /tmp.
    running = Server(
        seeds_dir, {"FEEDSVC_WEBSUB_HUB": hub.url, "FEEDSVC_BASE_URL": base + "/", "TMPDIR": str(tmp_path)}
    )
    try:
        _, _, body = running.request("/topics/ai/atom.xml")
        links = {l.get("rel"): l.get("href") for l in etree.fromstring(body).findall(f"{ATOM}link")}
        assert links["hub"] == hub.url  # configured and advertised
        edit_title(seeds_dir, "Edited for the hub")
        deadline = time.monotonic() + EDIT_DEADLINE
        while "Edited for the hub" not in body.decode():
            assert time.monotonic() < deadline
            time.sleep(0.1)
            body = running.request("/topics/ai/atom.xml")[2]
        feed = f"{base}/topics/ai/atom.xml"
        deadline = time.monotonic() + 2  # a notification leaves within milliseconds of a reload
        while feed not in hub.notified() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # both workers have reloaded by now (every 0.3 s): was a second POST sent?
        assert hub.notified().count(feed) == 1  # one notifying worker per host (the flock)
    finally:
        code = running.stop()
        hub.close()
    assert code == 0, running.output[-3000:]


# ------------------------------------------------------------------ a server exposed to the network


@pytest.mark.slow
def test_a_second_server_on_a_taken_port_exits_at_once(server, seeds_dir, tmp_path):
    other = tmp_path / "other-seeds"  # what the second server would answer with
    shutil.copytree(seeds_dir, other)
    edit_title(other, "Served by the second server")
    command = [*serve_command(), "--seeds", str(other), "--port", str(server.port), "--workers", "2"]
    env = {**os.environ, "FEEDSVC_CACHE_DIR": str(tmp_path / "other-cache")}
    started = time.monotonic()
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        errors = second.communicate(timeout=10)[1].decode()
    except subprocess.TimeoutExpired:
        second.terminate()
        second.communicate(timeout=30)
        pytest.fail("a second server on a taken port kept running")
    took = time.monotonic() - started
    assert second.returncode != 0
    assert f"address 127.0.0.1:{server.port} is in use" in errors
    assert took < 5, took  # at once: the check comes before the app is built
    for _ in range(20):  # every answer still comes from the first server's articles
        titles = rss_titles(server.request("/topics/ai/rss.xml")[2])
        assert OLD_TITLE in titles and "Served by the second server" not in titles


def reuse_port_listener(host: str, port: int = 0) -> socket.socket:
    """A listening socket bound as each granian worker binds its own (SO_REUSEADDR and SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen()
    return sock


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


HOSTS = [
    ("127.0.0.1", "127.0.0.1"),
    pytest.param("::1", "[::1]", marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")),
]


@pytest.mark.parametrize(("host", "in_url"), HOSTS)
def test_claim_address_refuses_a_port_another_server_listens_on(host, in_url):
    with reuse_port_listener(host) as other:
        port = other.getsockname()[1]
        with pytest.raises(FeedsvcError, match=re.escape(f"address {in_url}:{port} is in use")):
            claim_address(host, port)


@pytest.mark.parametrize(("host", "in_url"), HOSTS)
def test_claim_address_holds_the_port_against_other_servers_not_its_own_workers(host, in_url):
    with reuse_port_listener(host) as probe:
        port = probe.getsockname()[1]
    claim = claim_address(host, port)
    try:
        with pytest.raises(FeedsvcError, match="is in use"):  # a second server started at the same moment
            claim_address(host, port)
        # A worker binds beside the claim, and gets the connections: the claim never listens.
        with reuse_port_listener(host, port) as worker, socket.create_connection((host, port), timeout=2):
            worker.settimeout(2)
            worker.accept()[0].close()
    finally:
        claim.close()
    claim_address(host, port).close()  # free again


def alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has: it only waits to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (field 4 of /proc/PID/stat, proc(5))."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if parent == str(pid) and state != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
def test_workers_exit_when_the_master_is_killed(seeds_dir):
    running = Server(seeds_dir)
    workers = children(running.process.pid)
    try:
        assert len(workers) == 2 and workers == sorted(worker_pids(running.log_text()))
        running.process.kill()  # SIGKILL: the master cannot stop its workers itself
        running.process.wait(timeout=10)
        killed = time.monotonic()
        while any(alive(pid) for pid in workers) and time.monotonic() - killed < 5:
            time.sleep(0.02)
        took = time.monotonic() - killed
        assert not any(alive(pid) for pid in workers), f"workers still running {took:.1f}s after the master died"
        with pytest.raises(ConnectionRefusedError):  # nothing listens any more
            socket.create_connection(("127.0.0.1", running.port), timeout=2).close()
        print(f"\nworkers gone {took:.2f}s after SIGKILL of the master")
    finally:
        for pid in workers:  # a failed test leaves no orphan behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        running.stop()


IDLE_CONNECTIONS = 1500
IDLE_TIMEOUT = 3  # seconds, as FEEDSVC_IDLE_TIMEOUT


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """`count` connections: the even ones send nothing, the odd ones half a request line."""
    connections = []
    for index in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        connections.append(sock)
        assert sock.connect_ex(("127.0.0.1", port)) in (0, errno.EINPROGRESS)
    _, writable, _ = select_all([], connections, seconds=10)
    assert len(writable) == count, f"only {len(writable)} of {count} connections were made"
    for index, sock in enumerate(connections):
        if index % 2:
            sock.send(b"GET /topics/ai/rss.xml HT")
    return connections


def select_all(readable: list, writable: list, seconds: float) -> tuple[set, set, float]:
    """Wait (bounded) until every socket is readable / writable; the ready ones and the time it took."""
    selector, started = selectors.DefaultSelector(), time.monotonic()
    for sock in readable:
        selector.register(sock, selectors.EVENT_READ)
    for sock in writable:
        selector.register(sock, selectors.EVENT_WRITE)
    ready_read, ready_write = set(), set()
    while len(ready_read) + len(ready_write) < len(readable) + len(writable):
        left = started + seconds - time.monotonic()
        if left <= 0:
            break
        for key, events in selector.select(timeout=min(left, 0.5)):
            (ready_read if events & selectors.EVENT_READ else ready_write).add(key.fileobj)
            selector.unregister(key.fileobj)
    selector.close()
    return ready_read, ready_write, time.monotonic() - started


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this (readable) connection: end of stream or a reset."""
    try:
        while sock.recv(65536):  # a 408 or 400 before the close is fine: read to the end
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset
    return True


@pytest.fixture
def enough_open_files():
    """Raise this process's soft limit on open files for the idle connections (the server inherits it too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"open-file hard limit {hard} < {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
def test_idle_connections_neither_stall_the_service_nor_stay_open(seeds_dir, enough_open_files):
    running = Server(seeds_dir, {"FEEDSVC_IDLE_TIMEOUT": str(IDLE_TIMEOUT)})
    connections = []
    try:
        opened = time.monotonic()
        connections = open_idle_connections(running.port, IDLE_CONNECTIONS)
        answered, times = 0, []
        for _ in range(12):
            started = time.monotonic()
            connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=3)
            try:
                connection.request("GET", "/topics/ai/rss.xml")
                response = connection.getresponse()
                answered += response.status == 200 and OLD_TITLE in rss_titles(response.read())
            except OSError:
                pass  # not answered within 3 s
            finally:
                connection.close()
            times.append(time.monotonic() - started)
        assert answered >= 11, f"{answered} of 12 answered beside {IDLE_CONNECTIONS} idle connections: {times}"
        # Every idle connection is closed by the server within the idle timeout (and some slack).
        ready, _, _ = select_all(connections, [], seconds=IDLE_TIMEOUT + 8)
        closed = [sock for sock in ready if closed_by_server(sock)]
        took = time.monotonic() - opened
        assert len(closed) == IDLE_CONNECTIONS, f"{IDLE_CONNECTIONS - len(closed)} idle connections still open"
        print(
            f"\n{answered}/12 answered beside {IDLE_CONNECTIONS} idle connections (slowest {max(times):.3f}s); "
            f"all idle connections closed {took:.1f}s after they were opened (idle timeout {IDLE_TIMEOUT}s)"
        )
    finally:
        for sock in connections:
            sock.close()
        code = running.stop()
    assert code == 0, running.output[-3000:]


def access_lines_with(server: Server, marker: str, seconds: float = EDIT_DEADLINE) -> list[str]:
    """The access-log lines that hold `marker`, once there is one (granian writes a line after its response)."""
    deadline = time.monotonic() + seconds
    while not (lines := [line for line in server.log_text().splitlines() if marker in line]):
        assert time.monotonic() < deadline, f"no access-log line with {marker}"
        time.sleep(0.05)
    return lines


@pytest.mark.slow
def test_control_characters_in_a_request_cannot_forge_access_log_lines(shared_server):
    forged = '127.0.0.1 - - [01/Jan/2030] "GET /admin HTTP/1.1" 200'
    path = "/forge-marker%0a" + forged.replace(" ", "%20").replace('"', "%22") + "%0d%0aNUL%00here"
    request = (
        f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: agent\\" 999 "x\r\nConnection: close\r\n\r\n'
    ).encode()
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(request)
        assert sock.recv(12).startswith(b"HTTP/1.1 ")
    (line,) = access_lines_with(shared_server, "forge-marker")  # one line for the one request
    assert not any(other.startswith(forged[:20]) for other in shared_server.log_text().splitlines())
    assert "/forge-marker\\x0A127.0.0.1 - - [01/Jan/2030] \\x22GET /admin" in line
    assert "\\x0D\\x0ANUL\\x00here" in line
    assert '"agent\\x5C\\x22 999 \\x22x"' in line  # the quote in the header cannot end the field
    assert line.count('"') == 6  # request, referer and user agent: three quoted fields, nothing more


def test_escape_log_text_leaves_printable_ascii_alone_and_writes_the_rest_as_bytes():
    assert escape_log_text("/topics/ai/rss.xml?limit=5&include=all") == "/topics/ai/rss.xml?limit=5&include=all"
    assert escape_log_text('a\nb\r\x00\t"\\\x7f') == "a\\x0Ab\\x0D\\x00\\x09\\x22\\x5C\\x7F"
    # WSGI text is one character per byte: a UTF-8 path shows its bytes, as nginx writes them
    assert escape_log_text("/caf\u00c3\u00a9") == "/caf\\xC3\\xA9"


def test_access_log_filter_escapes_every_text_atom_after_redacting():
    atoms = {
        "addr": "192.0.2.1",
        "method": "GET",
        "path": "/a\nb",
        "query_string": "token=secret&limit=1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "dt_ms": 1.0,
        "_h0": "/?token=secret",
        "_h1": 'ua "quoted" \\',
    }
    record = logging.LogRecord("granian.access", logging.INFO, __file__, 0, "%(target)s", (atoms,), None)
    for _ in range(2):  # a second filter on the logger changes nothing more
        assert RedactTokens().filter(record)
        assert record.args["target"] == "/a\\x0Ab?token=***&limit=1"
        assert record.args["_h0"] == "/?token=***" and record.args["status"] == 200
        assert record.args["_h1"] == "ua \\x22quoted\\x22 \\x5C"


# A `feedsvc serve` whose access-log lines come 0.5 s after their response: the filter is slowed.
SLOW_LOG_SERVE = """
import sys, time
from feedsvc import server
from feedsvc.cli import main

def slow_filter(self, record, filter=server.RedactTokens.filter):
    time.sleep(0.5)
    return filter(self, record)

server.RedactTokens.filter = slow_filter
sys.exit(main(["serve", "--host", "127.0.0.1", *sys.argv[1:]]))
"""


@pytest.mark.slow
@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="spawned workers would not be slowed")
def test_sigterm_right_after_a_response_keeps_its_access_log_line(seeds_dir):
    running = Server(seeds_dir, command=[sys.executable, "-c", SLOW_LOG_SERVE])
    try:
        status, _, _ = running.request("/rss.xml?last=1")
        assert status == 200
    finally:
        code = running.stop()  # at once: the line is still 0.5 s away
    assert code == 0, running.output[-3000:]
    assert '"GET /rss.xml?last=1 HTTP/1.1" 200 ' in running.output


# ------------------------------------------------------------------ worker start-up, in process


def worker_app_config(seeds_dir: Path) -> dict:
    """A watcher that never wakes on its own during a test: only a reload request or SIGHUP moves it."""
    return {"TESTING": True, "SEEDS_DIR": str(seeds_dir), "RELOAD_INTERVAL": 3600}


def ai_titles(app) -> list[str]:
    response = app.test_client().get("/topics/ai/rss.xml")
    assert response.status_code == 200
    return rss_titles(response.data)


@pytest.fixture
def worker_apps() -> Iterator[list]:
    """The apps a test starts as workers (start_worker): their reload watchers stopped, and the
    SIGHUP handler start_worker sets taken back, after the test, so that no later test finds
    them (a build forks its workers only where no other thread runs)."""
    apps: list = []
    handler = signal.getsignal(signal.SIGHUP)
    yield apps
    for app in apps:
        app.extensions["feedsvc"].stop_watching()
    signal.signal(signal.SIGHUP, handler)


def test_start_worker_catches_up_watches_and_reloads_on_sighup(seeds_dir, worker_apps):
    app = create_app(worker_app_config(seeds_dir))
    worker_apps.append(app)
    edit_title(seeds_dir, "Changed before the worker started")
    assert start_worker(lambda: app) is app
    assert "Changed before the worker started" in ai_titles(app)  # caught up before serving
    store = app.extensions["feedsvc"]
    watcher = watcher_of(store)
    assert watcher is not None and watcher.is_alive() and watcher.pid == os.getpid()
    edit_title(seeds_dir, "Changed and signalled", "Changed before the worker started")
    os.kill(os.getpid(), signal.SIGHUP)  # start_worker's handler wakes the watcher
    deadline = time.monotonic() + EDIT_DEADLINE
    while "Changed and signalled" not in ai_titles(app):
        assert time.monotonic() < deadline, "SIGHUP did not wake the watcher"
        time.sleep(0.05)


def test_forked_workers_get_the_app_built_once(seeds_dir, monkeypatch, worker_apps):
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda: "fork")
    built = worker_apps

    def build():
        built.append(create_app(worker_app_config(seeds_dir)))
        return built[-1]

    loader = worker_loader(build)
    assert len(built) == 1  # in the master, before any worker exists
    assert loader() is loader() is built[0]  # every worker starts from that one app
    assert len(built) == 1


def test_spawned_workers_each_build_their_own_app(seeds_dir, monkeypatch, worker_apps):
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda: "spawn")
    loader = worker_loader(partial(create_app, worker_app_config(seeds_dir)))
    # spawn pickles what the worker gets: a build of the app, not a built app
    first, second = pickle.loads(pickle.dumps(loader)), pickle.loads(pickle.dumps(loader))
    apps = first(), second()
    worker_apps.extend(apps)
    assert apps[0] is not apps[1]
    for app in apps:
        assert OLD_TITLE in ai_titles(app)
        assert watcher_of(app.extensions["feedsvc"]).is_alive()
