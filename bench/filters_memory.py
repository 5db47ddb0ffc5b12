#!/usr/bin/env python3
"""Memory of a real `feedsvc serve` worker under a stream of distinct filtered URLs.

    python bench/filters_memory.py [--articles 2000] [--requests 20000] [--limit 200] [--threads 4]
                                   [--feedsvc PATH]

Every distinct filter is another cache key (render cache and fast path): this sends `--requests`
URLs that differ only in their filter (`/rss.xml?limit=L&filterout_title=zN`), with the hot
unfiltered feed asked for between them, to one worker (WORKERS=1) over a generated corpus
(bench/gen_corpus.py), and prints the worker's resident set size (VmRSS) before, while and after,
and how fast the hot feed answers at the end (a fast-path replay takes well under a millisecond).
`--feedsvc` runs another build's `feedsvc` executable (e.g. one installed from an older commit).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_corpus import generate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    """VmRSS of one process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (granian's workers are its children)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    response.read()
    return response.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--feedsvc", default=str(Path(sys.executable).with_name("feedsvc")))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="feedsvc-filters-bench-"))
    try:
        generate(work / "corpus", args.articles, seed=14)
        port = free_port()
        env = {**os.environ, "FEEDSVC_WORKERS": "1", "FEEDSVC_RELOAD_INTERVAL": "0", "FEEDSVC_CACHE_DIR": ""}
        command = [args.feedsvc, "serve", "--host", "127.0.0.1", "--port", str(port), "--seeds", str(work / "corpus")]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            run(args, port, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, port: int, server_pid: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            if get(conn, "/healthz") == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the server did not answer within 120 s")
        time.sleep(0.2)
    hot = f"/rss.xml?limit={args.limit}"
    assert get(conn, hot) == 200
    workers = descendants(server_pid) or [server_pid]

    def rss() -> int:
        return sum(rss_kib(pid) for pid in workers if Path(f"/proc/{pid}").exists())

    report = {"articles": args.articles, "limit": args.limit, "requests": args.requests, "workers": workers}
    report["rss_kib_before"] = rss()
    samples, counter, lock = [], iter(range(args.requests)), threading.Lock()
    step = max(1, args.requests // args.samples)
    started = time.monotonic()

    def work() -> None:
        local = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            assert get(local, f"{hot}&filterout_title=z{n}") == 200
            if n % 10 == 0:
                assert get(local, hot) == 200
            if n % step == step - 1:
                with lock:
                    samples.append((n + 1, rss()))

    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report["seconds"] = round(time.monotonic() - started, 1)
    report["rss_kib_samples"] = sorted(samples)
    report["rss_kib_after"] = rss()
    timings, conn = [], http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # the first one idled out
    for _ in range(50):
        begun = time.perf_counter()
        get(conn, hot)
        timings.append(time.perf_counter() - begun)
    report["hot_feed_ms_median"] = round(sorted(timings)[len(timings) // 2] * 1000, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
