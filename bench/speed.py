#!/usr/bin/env python3
"""Speed benchmarks: each figure beside its baseline, measured side by side in one run.

    .venv/bin/python bench/speed.py [--quick] [--only floor,startup,reload,scale,servers]

1. floor    cached topic feed vs. a constant Flask route returning the same bytes, same server
            (`feedsvc serve`: granian) and worker (bench/floor_app.py), 2,000 articles; wrk, 64
            connections, rounds alternating the two routes; goal: feed >= 0.9x constant (1 worker;
            2 reported too)
2. startup  process start to the first feed body over 10,000 files, fresh processes
            (bench/ttff_child.py), cold (no parse cache) and warm (parse cache present), against a
            plain sequential CSafeLoader load in a fresh process; goals <= 0.6x and <= 0.15x
3. reload   one edited file in 10,000, through the app's watcher (file events): from the reload
            noticing it to the topic's feed having it, <= 100 ms (edit to live shown beside it); the
            same with the parse-cache write due, and with a full scan (the polling fallback); and
            only the feeds the edit touches are rendered again (RenderCache.renders per feed)
4. scale    time to first feed at 1k/10k/100k articles: the time per article must not grow (at most
            +10% per 10x, for noise; the baseline's growth is shown beside it), peak RSS through load,
            serve and reload at 100k <= 1 GB; tracemalloc on 10k says what the memory is
5. servers  feedsvc serve (granian, production options, access log) against gunicorn (sync,
            gthread), bare granian (WSGI, CLI defaults) and bjoern on the cached feed, same worker
            count: requests/s and p99

Prints a table (value, baseline, ratio, goal, PASS/FAIL) and writes bench/out/results.json, which
bench/plot.py draws. Generated corpora are kept in bench/out/corpus/ (made by bench/gen_corpus.py,
seed 1) and reused. Needs wrk on PATH; gunicorn and bjoern for the server comparison (the `bench`
extra: pip install -e '.[bench]'; bjoern builds against libev: apt-get install libev-dev).
Other processes' CPU use is sampled before each measurement (waiting up to a while for a quiet
machine) and written beside every sample.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
CORPORA = OUT / "corpus"
PY = sys.executable
FEED_PATH = "/topics/ai/rss.xml"
CONSTANT_PATH = "/bench/constant"
GB = 1_000_000_000
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import gen_corpus


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine and noise


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as stream:
        values = [int(v) for v in stream.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time in use over `seconds` (while this benchmark is idle: others' use)."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait until others use under `limit` of the CPU (at most `max_wait` s); the last share seen."""
    deadline = time.monotonic() + max_wait
    share = busy_share()
    while share > limit and time.monotonic() < deadline:
        log(f"machine busy ({share:.0%} of CPU in use by others): waiting")
        time.sleep(4)
        share = busy_share()
    return round(share, 3)


class Noise:
    """How long to wait for a quiet machine, and the limit (set from the command line)."""

    limit = 0.15
    max_wait = 90.0

    @classmethod
    def check(cls) -> float:
        return wait_quiet(cls.limit, cls.max_wait)


def machine() -> dict:
    """What this ran on."""
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        memory = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in ("flask", "werkzeug", "gunicorn", "granian", "bjoern", "pyyaml", "feedgen"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - not installed
            versions[name] = None
    wrk = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[:1]
        if shutil.which("wrk")
        else []
    )
    return {
        "cpu": model, "cores": os.cpu_count(), "memory": memory, "kernel": platform.release(),
        "python": platform.python_version(), "packages": versions, "wrk": wrk[0] if wrk else None,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3], "feedsvc_source": source(),
    }  # fmt: skip


# ---------------------------------------------------------------- corpora


def corpus(count: int, seed: int = 1) -> Path:
    """bench/gen_corpus.py's corpus of `count` articles, made once and kept."""
    folder = CORPORA / f"{count}-seed{seed}"
    marker = folder / ".complete"  # hidden: feedsvc never reads it
    if marker.exists() and marker.read_text() == f"{count} {seed}\n":
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    log(f"generating {count} articles in {folder}")
    gen_corpus.generate(folder, count, seed)
    marker.write_text(f"{count} {seed}\n")
    return folder


def child_env() -> dict:
    """The environment of every process this starts: no FEEDSVC_* settings leak in from outside,
    and this tree's feedsvc comes first on the path (whatever the venv's editable install points at)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def source() -> str:
    """Which feedsvc was measured: BENCH_SOURCE if set, else this tree's git commit (and whether feedsvc/ differs from it)."""
    if os.environ.get("BENCH_SOURCE"):
        return os.environ["BENCH_SOURCE"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "feedsvc"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        return commit + (" + uncommitted changes in feedsvc/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------- start-up (fresh processes)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants now (RSS summed: shared pages count twice)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as stream:
                total += int(stream.read().split()[1])
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    pending.extend(int(child) for child in stream.read().split())
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def spawn_child(args: list[str], timeout: float = 1800) -> dict:
    """Run bench/ttff_child.py; its result with `ttff`: seconds from spawn to the result, and the
    peak of its whole process tree's RSS (parse pool included), sampled every 50 ms."""
    noise = Noise.check()
    spawned = time.time()
    proc = subprocess.Popen([PY, str(BENCH / "ttff_child.py"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=child_env())  # fmt: skip
    tree_peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            tree_peak[0] = max(tree_peak[0], tree_rss_mib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    sampler.join()
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"ttff_child {args[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    result = json.loads(line[len("RESULT ") :])
    result["ttff"] = result["done"] - spawned
    result["spawn_to_main"] = result["started"] - spawned
    result["tree_peak_rss_mib_sampled"] = round(tree_peak[0], 1)
    result["others_cpu"] = noise
    return result


def startup_series(count: int, rounds: int, work: Path, serve_reload_last: bool) -> dict:
    """Baseline, cold and warm start-up in fresh processes, interleaved, `rounds` times."""
    folder = corpus(count)
    edit = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[5]
    spawn_child(["baseline", str(folder)])  # not measured: the files into the page cache
    samples: dict[str, list[dict]] = {"baseline": [], "cold": [], "warm": []}
    for number in range(rounds):
        cache = work / f"cache-{count}-{number}"
        shutil.rmtree(cache, ignore_errors=True)
        extra = ["--serve-reload", edit] if serve_reload_last and number == rounds - 1 else []
        if number % 2:
            samples["baseline"].append(spawn_child(["baseline", str(folder)]))
        samples["cold"].append(spawn_child(["feedsvc", str(folder), str(cache), FEED_PATH, *extra]))
        samples["warm"].append(spawn_child(["feedsvc", str(folder), str(cache), FEED_PATH, *extra]))
        if not number % 2:
            samples["baseline"].append(spawn_child(["baseline", str(folder)]))
        shutil.rmtree(cache, ignore_errors=True)
        log(f"{count} articles, round {number + 1}/{rounds}: baseline {samples['baseline'][-1]['ttff']:.2f} s, "
            f"cold {samples['cold'][-1]['ttff']:.2f} s, warm {samples['warm'][-1]['ttff']:.2f} s")  # fmt: skip
    summary = {kind: round(statistics.median(s["ttff"] for s in runs), 4) for kind, runs in samples.items()}
    peaks = {kind: max(s.get("peak_rss_mib_all", s["peak_rss_mib"]) for s in runs) for kind, runs in samples.items()}
    tree = {kind: max(s["tree_peak_rss_mib_sampled"] for s in runs) for kind, runs in samples.items()}
    return {"articles": count, "rounds": rounds, "median_s": summary, "peak_rss_mib": peaks,
            "tree_peak_rss_mib_sampled": tree, "samples": samples}  # fmt: skip


# ---------------------------------------------------------------- reload (in one process)


def reload_child(folder: str, edits: int) -> dict:
    """In this process, the app as served (its watcher following file events): edit one article
    `edits` times per kind and time each edit until the topic's feed has it; count which feeds
    render again. Kinds: `event` (the watcher reloads the paths inotify named), `event, cache
    write due` (that reload also starts the parse-cache write, as it does every 30 s), `full scan`
    (watcher stopped; store.reload() with a scan of every file: the polling fallback and the
    periodic safety scan). Runs as `speed.py _reload DIR EDITS` in a fresh process."""
    from ttff_child import timed

    from feedsvc import create_app
    from feedsvc import store as store_module
    from feedsvc.feeds.catalog import topic_slug

    phases: dict[str, float] = {}
    for name in ("scan", "rescan", "refresh", "build_catalog"):
        timed(store_module, name, phases)
    cache_dir = tempfile.mkdtemp(prefix="feedsvc-speed-reload-")
    app = create_app({"SEEDS_DIR": folder, "CACHE_DIR": cache_dir, "RELOAD_INTERVAL": 2})
    store, client = app.extensions["feedsvc"], app.test_client()
    catalog = store.catalog
    names = ("rss.xml", "atom.xml", "feed.json")
    paths = [f"/topics/{t.slug}/{n}" for t in catalog.topics(include_all=False) for n in names] + [
        f"/{n}" for n in names
    ]
    for path in paths:  # the first request also starts the watcher
        assert client.get(path).status_code == 200, path
    deadline = time.monotonic() + 10
    while not store._watcher.following and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store._watcher.following, "the watcher does not follow file events"
    time.sleep(1.5)  # past the watcher's first (catch-up) full reload
    reloads: list[tuple[float, float]] = []
    real_reload = store.reload

    def spy(touched=None):
        start = time.perf_counter()
        try:
            return real_reload(touched)
        finally:
            reloads.append((start, time.perf_counter()))

    store.reload = spy
    # The newest published article with one topic: on the first page of its topic and of all topics.
    article = max(
        (a for a in catalog.articles if a.is_published and len(a.topics) == 1), key=lambda a: (a.published, a.path)
    )
    slug = topic_slug(article.topics[0])
    feed = f"/topics/{slug}/rss.xml"
    expected = {f"/topics/{slug}/{n}" for n in names} | {f"/{n}" for n in names}
    target = Path(folder) / article.path
    original = target.read_bytes()
    runs = []
    try:
        for kind in ("event", "event, cache write due", "full scan"):
            if kind == "full scan":
                store.stop_watching()
                store._watcher.join(5)
            for number in range(edits):
                marker = f"({kind} {number})"
                phases.clear()
                reloads.clear()
                before = store.cache.renders
                if kind == "event, cache write due":
                    store._cache_written = 0.0  # bench: the parse cache's 30 s write interval has passed
                written = time.perf_counter()
                target.write_bytes(original.replace(b'\ntitle: "', f'\ntitle: "{marker} '.encode(), 1))
                if kind == "full scan":
                    store.reload()
                body = client.get(feed).get_data()
                while marker.encode() not in body:
                    assert time.perf_counter() - written < 30, "the edit never went live"
                    time.sleep(0.001)
                    body = client.get(feed).get_data()
                live = time.perf_counter()
                noticed, reloaded = reloads[0] if reloads else (written, written)
                rendered = {}
                for path in paths:
                    count = store.cache.renders
                    data = client.get(path).get_data()
                    if path in expected:
                        assert marker.encode() in data, f"the edit is not in {path}"
                    rendered[path] = store.cache.renders - count
                rendered[feed] += store.cache.renders - before - sum(rendered.values())
                runs.append({
                    "kind": kind, "edit_to_live_s": live - written, "notice_to_live_s": live - noticed,
                    "reload_s": reloaded - noticed, "reloads": len(reloads),
                    "phases": {k: round(v, 4) for k, v in phases.items()},
                    "rendered": sorted(p for p, n in rendered.items() if n), "renders": sum(rendered.values()),
                })  # fmt: skip
                store.flush()
                time.sleep(0.3)
    finally:
        target.write_bytes(original)
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {"articles": len(catalog.articles), "feeds": len(paths), "edited": article.path, "topic": slug,
            "expected": sorted(expected), "runs": runs}  # fmt: skip


RELOAD_KINDS = ("event", "event, cache write due", "full scan")


def reload_series(edits: int, work: Path) -> dict:
    """Goal 3 on a copy of the 10k corpus (the kept corpus is never edited)."""
    folder = work / "reload-10000"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(corpus(10_000), folder)
    noise = Noise.check()
    proc = subprocess.run([PY, str(Path(__file__).resolve()), "_reload", str(folder), str(edits)], capture_output=True,
                          text=True, timeout=900, cwd=ROOT, env=child_env(), check=False)  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"reload child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT ") :])
    result["others_cpu"] = noise
    shutil.rmtree(folder, ignore_errors=True)
    result["medians"] = {
        kind: {key: round(statistics.median(r[key] for r in result["runs"] if r["kind"] == kind), 4)
               for key in ("edit_to_live_s", "notice_to_live_s", "reload_s")}
        for kind in RELOAD_KINDS
    }  # fmt: skip
    expected = set(result["expected"])
    result["only_touched"] = all(set(r["rendered"]) == expected for r in result["runs"])
    return result


# ---------------------------------------------------------------- servers and wrk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, timeout: float = 5) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, answer.read(), answer.headers.get("Content-Type", "")


class Server:
    """One server process (group) serving bench/floor_app.py on a free loopback port."""

    def __init__(self, kind: str, workers: int, seeds: Path, work: Path, fast_path: bool = True) -> None:
        self.kind, self.workers, self.port = kind, workers, free_port()
        self.bind = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.bind}"
        self.log_path = work / f"server-{kind}-{workers}-{self.port}.log"
        env = child_env() | {
            "FEEDSVC_SEEDS_DIR": str(seeds), "FEEDSVC_BASE_URL": self.base + "/",
            "FEEDSVC_CACHE_DIR": str(work / f"cache-{seeds.name}"), "BENCH_FEED_PATH": FEED_PATH,
        }  # fmt: skip
        if not fast_path:
            env["FEEDSVC_FAST_PATH"] = "false"
        floor = [PY, str(BENCH / "floor_app.py")]
        commands = {
            "feedsvc serve (granian)": floor + ["feedsvc-run", "--bind", self.bind, "--workers", str(workers)],
            "gunicorn sync, no access log": floor + ["gunicorn", "--bind", self.bind, "--workers", str(workers), "--no-access-log"],
            "gunicorn gthread x4, no access log": floor + ["gunicorn", "--bind", self.bind, "--workers", str(workers),
                                                           "--worker-class", "gthread", "--threads", "4", "--no-access-log"],
            "granian wsgi": [str(Path(PY).parent / "granian"), "--interface", "wsgi", "--workers", str(workers), "--host",
                             "127.0.0.1", "--port", str(self.port), "--working-dir", str(BENCH), "--no-ws", "floor_app:app"],
            "bjoern": floor + ["bjoern", "--bind", self.bind, "--workers", str(workers)],
        }  # fmt: skip
        self.command = commands[kind]
        self.stream = open(self.log_path, "wb")  # noqa: SIM115 - the server writes to it until stop() closes it
        self.proc = subprocess.Popen(self.command, stdout=self.stream, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                     start_new_session=True)  # fmt: skip
        self.wait_ready()

    def wait_ready(self, limit: float = 120) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log_path.read_text()[-2000:]}")
            try:
                if fetch(self.base + "/healthz", 2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"{self.kind} did not answer within {limit} s")
        # every worker has its app once /healthz answers repeatedly (bare granian: each worker loads its own)
        for _ in range(4 * self.workers):
            fetch(self.base + FEED_PATH)

    def check_same_bytes(self) -> dict:
        """The constant route's bytes and Content-Type are the feed's."""
        _, feed, feed_type = fetch(self.base + FEED_PATH)
        _, constant, constant_type = fetch(self.base + CONSTANT_PATH)
        if feed != constant or feed_type != constant_type:
            raise RuntimeError(f"{self.kind}: /bench/constant does not return the feed's bytes and type")
        return {"body_bytes": len(feed), "content_type": feed_type}

    def stop(self) -> None:
        """SIGTERM to the group this started (its own session), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:  # leftover workers of the group (bjoern's forks)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.stream.close()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict:
    """Requests/s, latency percentiles (ms), errors from wrk --latency output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise RuntimeError(f"no result from wrk:\n{text}")
    latency = {
        f"p{p}_ms": round(float(v) * _UNITS[u], 3)
        for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    requests = re.search(r"(\d+) requests in", text)
    return {
        "rps": float(rps.group(1)), **latency, "requests": int(requests.group(1)) if requests else None,
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()))) if errors else {},
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }  # fmt: skip


def wrk(url: str, seconds: int, connections: int = 64, threads: int = 2, close: bool = False) -> dict:
    """wrk's figures for one URL; `close` sends `Connection: close` (a new connection per request)."""
    header = ["-H", "Connection: close"] if close else []
    proc = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", *header, url],
                          capture_output=True, text=True, timeout=seconds + 60, check=False)  # fmt: skip
    result = parse_wrk(proc.stdout)
    if result["non_2xx"]:
        raise RuntimeError(f"{url}: {result['non_2xx']} non-2xx responses")
    return result


def floor_series(workers: int, rounds: int, seconds: int, work: Path, fast_path: bool = True) -> dict:
    """Goal 1: the cached feed and the constant route on one `feedsvc serve` server, alternating."""
    seeds = corpus(2000)
    server = Server("feedsvc serve (granian)", workers, seeds, work, fast_path)
    try:
        same = server.check_same_bytes()
        for path in (CONSTANT_PATH, FEED_PATH):  # warm-up, not measured
            wrk(server.base + path, 2)
        samples: dict[str, list[dict]] = {"constant": [], "feed": []}
        for number in range(rounds):
            order = [("constant", CONSTANT_PATH), ("feed", FEED_PATH)]
            for name, path in order if number % 2 == 0 else order[::-1]:
                noise = Noise.check()
                samples[name].append(wrk(server.base + path, seconds) | {"others_cpu": noise})
            log(f"floor, {workers} worker(s){'' if fast_path else ', FAST_PATH off'}, round {number + 1}/{rounds}: "
                f"constant {samples['constant'][-1]['rps']:.0f}/s, feed {samples['feed'][-1]['rps']:.0f}/s")  # fmt: skip
    finally:
        server.stop()
    constant = statistics.median(s["rps"] for s in samples["constant"])
    feed = statistics.median(s["rps"] for s in samples["feed"])
    return {
        "workers": workers, "fast_path": fast_path, "articles": 2000, "feed_path": FEED_PATH, **same,
        "constant_rps": round(constant, 1), "feed_rps": round(feed, 1), "ratio": round(feed / constant, 3),
        "constant_p99_ms": statistics.median(s["p99_ms"] for s in samples["constant"]),
        "feed_p99_ms": statistics.median(s["p99_ms"] for s in samples["feed"]),
        "rounds": rounds, "seconds": seconds, "samples": samples,
    }  # fmt: skip


SERVER_KINDS = ("feedsvc serve (granian)", "gunicorn sync, no access log", "gunicorn gthread x4, no access log",
                "granian wsgi", "bjoern")  # fmt: skip


def servers_series(worker_counts: list[int], rounds: int, seconds: int, work: Path) -> dict:
    """Goal 5: each server on the cached feed, same worker count, rounds rotating through servers."""
    seeds = corpus(2000)
    kinds = []
    for kind in SERVER_KINDS:
        module = {"gunicorn sync, no access log": "gunicorn", "gunicorn gthread x4, no access log": "gunicorn",
                  "bjoern": "bjoern"}.get(kind)  # fmt: skip
        if module and subprocess.run([PY, "-c", f"import {module}"], capture_output=True, check=False).returncode != 0:
            log(f"{kind}: not installed, left out (pip install -e '.[bench]')")
            continue
        kinds.append(kind)
    modes = ("keep-alive", "close")
    samples: dict[str, dict] = {k: {(w, m): [] for w in worker_counts for m in modes} for k in kinds}
    for number in range(rounds):
        for workers in worker_counts:
            for kind in kinds if number % 2 == 0 else kinds[::-1]:
                server = Server(kind, workers, seeds, work)
                try:
                    server.check_same_bytes()
                    wrk(server.base + FEED_PATH, 2)  # warm-up
                    for mode in modes if number % 2 == 0 else modes[::-1]:
                        noise = Noise.check()
                        result = wrk(server.base + FEED_PATH, seconds, close=mode == "close") | {"others_cpu": noise}
                        samples[kind][workers, mode].append(result)
                        log(f"servers round {number + 1}/{rounds}: {kind}, {workers} worker(s), {mode}: "
                            f"{result['rps']:.0f}/s, p99 {result.get('p99_ms')} ms")  # fmt: skip
                finally:
                    server.stop()
    table = []
    for mode in modes:
        for kind in kinds:
            for workers in worker_counts:
                runs = samples[kind][workers, mode]
                table.append({
                    "server": kind, "workers": workers, "connections": mode,
                    "rps": round(statistics.median(r["rps"] for r in runs), 1),
                    "p50_ms": statistics.median(r["p50_ms"] for r in runs), "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                    "socket_errors": sum(sum(r["socket_errors"].values()) for r in runs),
                })  # fmt: skip
    return {"articles": 2000, "feed_path": FEED_PATH, "rounds": rounds, "seconds": seconds, "table": table,
            "samples": {k: {f"{w} {m}": v for (w, m), v in d.items()} for k, d in samples.items()}}  # fmt: skip


# ---------------------------------------------------------------- report


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def figures(results: dict) -> list[dict]:
    """The goal table: value, baseline, ratio, goal, pass/fail."""
    rows = []
    floor = results.get("floor")
    if floor:
        for run in floor:
            rows.append({
                "figure": f"cached feed rate, {run['workers']} worker(s), {run['articles']} articles"
                          + ("" if run["fast_path"] else " (FAST_PATH off: Flask view + render cache)"),
                "value": f"{run['feed_rps']:.0f} req/s", "baseline": f"{run['constant_rps']:.0f} req/s (constant route)",
                "ratio": run["ratio"], "goal": ">= 0.9" if run["fast_path"] else "info",
                "pass": run["ratio"] >= 0.9 if run["fast_path"] else None,
            })  # fmt: skip
    startup = results.get("startup")
    if startup:
        med = startup["median_s"]
        for kind, goal in (("cold", 0.6), ("warm", 0.15)):
            ratio = med[kind] / med["baseline"]
            rows.append({
                "figure": f"start to first feed, {startup['articles']} files, {kind}",
                "value": f"{med[kind]:.2f} s", "baseline": f"{med['baseline']:.2f} s (sequential CSafeLoader)",
                "ratio": round(ratio, 3), "goal": f"<= {goal}", "pass": ratio <= goal,
            })  # fmt: skip
    reload = results.get("reload")
    if reload:
        for kind in RELOAD_KINDS:
            medians = reload["medians"][kind]
            live = medians["notice_to_live_s"]
            rows.append({
                "figure": f"one edit live after the reload notices it ({kind}), {reload['articles']} files",
                "value": f"{live * 1000:.0f} ms (edit to live {medians['edit_to_live_s'] * 1000:.0f} ms)",
                "baseline": "100 ms (goal)", "ratio": round(live / 0.1, 3), "goal": "<= 100 ms", "pass": live <= 0.1,
            })  # fmt: skip
        rows.append({
            "figure": f"feeds re-rendered by one edit (of {reload['feeds']})",
            "value": ", ".join(sorted({str(r['renders']) for r in reload['runs']})),
            "baseline": f"{len(reload['expected'])} (topic {reload['topic']} + all-topics)", "ratio": None,
            "goal": "only touched feeds", "pass": reload["only_touched"],
        })  # fmt: skip
    scale = results.get("scale")
    if scale:
        peak = max(
            max(s["peak_rss_mib"]["cold"], s["peak_rss_mib"]["warm"])
            for s in scale["sizes"]
            if s["articles"] == scale["largest"]
        )
        rows.append({
            "figure": f"peak RSS, {scale['largest']} articles: load, serve, reload",
            "value": f"{peak * 2**20 / 1e6:.0f} MB", "baseline": "1000 MB (goal)", "ratio": round(peak * 2**20 / GB, 3),
            "goal": "<= 1 GB", "pass": peak * 2**20 <= GB,
        })  # fmt: skip
        for kind in ("cold", "warm"):
            sizes = scale["sizes"]
            steps = [
                later["per_article_ms"][kind] / earlier["per_article_ms"][kind]
                for earlier, later in itertools.pairwise(sizes)
            ]
            control = [
                later["per_article_ms"]["baseline"] / earlier["per_article_ms"]["baseline"]
                for earlier, later in itertools.pairwise(sizes)
            ]
            rows.append({
                "figure": f"time to first feed per article, {kind} (growth per 10x; baseline's in brackets)",
                "value": " / ".join(f"{s['articles'] // 1000}k {s['per_article_ms'][kind]:.3f} ms" for s in sizes),
                "baseline": " / ".join(f"{s['articles'] // 1000}k {s['per_article_ms']['baseline']:.3f}" for s in sizes),
                "ratio": round(max(steps), 3), "goal": "<= 1.10 each 10x",
                "pass": max(steps) <= 1.10,
                "detail": ", ".join(f"x{g:.2f} [x{c:.2f}]" for g, c in zip(steps, control)),
            })  # fmt: skip
    servers = results.get("servers")
    if servers:
        for row in servers["table"]:
            rows.append({
                "figure": f"server: {row['server']}, {row['workers']} worker(s), {row['connections']}",
                "value": f"{row['rps']:.0f} req/s",
                "baseline": f"p99 {row['p99_ms']:.1f} ms", "ratio": None, "goal": "measure", "pass": None,
            })  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    width = max(len(r["figure"]) for r in rows)
    print(f"\n{'figure':<{width}}  {'value':>24}  {'baseline':<40}  {'ratio':>6}  {'goal':<18}  result")
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(
            f"{r['figure']:<{width}}  {r['value']:>24}  {r['baseline']:<40}  {ratio:>6}  {r['goal']:<18}  {verdict(r['pass'])}"
        )


def scale_series(sizes: list[int], rounds_for, work: Path, known: dict | None) -> dict:
    """Goal 4: start-up at each size (peak RSS through serve and reload on the last round)."""
    runs = []
    for count in sizes:
        if known and known["articles"] == count:
            runs.append(known)
            continue
        runs.append(startup_series(count, rounds_for(count), work, serve_reload_last=True))
    return summarize_scale(runs)


def summarize_scale(runs: list[dict]) -> dict:
    """The scale part's figures from its start-up series (smallest to largest)."""
    out = []
    for run in runs:
        out.append({
            "articles": run["articles"], "median_s": run["median_s"], "peak_rss_mib": run["peak_rss_mib"],
            "tree_peak_rss_mib_sampled": run.get("tree_peak_rss_mib_sampled"),
            "per_article_ms": {k: round(v / run["articles"] * 1000, 4) for k, v in run["median_s"].items()},
        })  # fmt: skip
    small, mid, large = out[0], out[len(out) // 2], out[-1]
    growth = {}
    for kind in ("baseline", "cold", "warm"):
        first = (mid["median_s"][kind] - small["median_s"][kind]) / (mid["articles"] - small["articles"])
        second = (large["median_s"][kind] - mid["median_s"][kind]) / (large["articles"] - mid["articles"])
        growth[kind] = round(second / first, 3)
    return {"sizes": out, "smallest": small["articles"], "mid": mid["articles"], "largest": large["articles"],
            "marginal_growth": growth, "runs": runs}  # fmt: skip


def tracemalloc_sample(count: int) -> dict:
    """What 10k loaded articles are made of (tracemalloc, parsed in-process; object census)."""
    Noise.check()
    proc = subprocess.run([PY, str(BENCH / "ttff_child.py"), "tracemalloc", str(corpus(count)), FEED_PATH],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT, env=child_env(), check=False)  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"tracemalloc child failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_reload"]:
        print("RESULT " + json.dumps(reload_child(argv[1], int(argv[2]))), flush=True)
        return 0
    parser = argparse.ArgumentParser(description="feedsvc speed benchmarks (see the module's docstring)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds (a few minutes)")
    parser.add_argument("--only", default="floor,startup,reload,scale,servers", help="comma-separated parts to run")
    parser.add_argument("--out", type=Path, default=OUT / "results.json")
    parser.add_argument(
        "--quiet-limit",
        type=float,
        default=Noise.limit,
        help="wait before a measurement while others use more than this share of the CPU (default 0.15)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=Noise.max_wait, help="wait at most this long, s (default 90)"
    )
    parser.add_argument("--merge", action="store_true", help="keep the parts of an existing results file not run now")
    args = parser.parse_args(argv)
    Noise.limit, Noise.max_wait = args.quiet_limit, args.quiet_wait
    parts = set(args.only.split(","))
    if not shutil.which("wrk") and parts & {"floor", "servers"}:
        parser.error("wrk is not on PATH (apt-get install wrk)")
    quick = args.quick
    results: dict = {}
    if args.merge and args.out.exists():
        results = json.loads(args.out.read_text())
    results.update({"machine": machine(), "quick": quick, "when": time.strftime("%Y-%m-%d %H:%M:%S %z")})
    work = Path(tempfile.mkdtemp(prefix="feedsvc-speed-"))
    rounds, seconds = (2, 5) if quick else (3, 10)
    steps = [
        ("floor", lambda: [floor_series(w, rounds, seconds, work) for w in (1, 2)]
                          + [floor_series(1, rounds, seconds, work, fast_path=False)]),
        ("startup", lambda: startup_series(10_000, 1 if quick else 5, work, serve_reload_last=True)),
        ("reload", lambda: reload_series(3 if quick else 7, work)),
        ("scale", lambda: scale_series([1_000, 10_000, 100_000], lambda n: 1 if quick else 3, work,
                                       results.get("startup") if "startup" in parts else None)),
        ("memory_10k", lambda: tracemalloc_sample(10_000)),
        ("servers", lambda: servers_series([1, 2], 1 if quick else 3, 5 if quick else 8, work)),
    ]  # fmt: skip
    failed = []
    if "startup" in parts and "scale" not in parts and results.get("scale"):
        # The scale's point at the start-up size is the start-up part: refresh it from the new one.
        steps.append(
            (
                "rescale",
                lambda: summarize_scale(
                    [
                        results["startup"] if run["articles"] == results["startup"]["articles"] else run
                        for run in results["scale"]["runs"]
                    ]
                ),
            )
        )
        parts.add("rescale")
    try:
        for name, step in steps:
            if name not in parts and not (name == "memory_10k" and "scale" in parts):
                continue
            if name == "rescale":
                results["scale"] = step()
                continue
            try:
                started = time.strftime("%Y-%m-%d %H:%M:%S %z")
                results[name] = step()
                results.setdefault("part_info", {})[name] = {
                    "feedsvc_source": results["machine"]["feedsvc_source"], "started": started,
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"), "quick": quick,
                }  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - report it, keep the other parts
                log(f"{name} FAILED: {exc}")
                failed.append(name)
            save(results, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save(results, args.out)
    print_table(results["figures"])
    print(f"\nwritten: {args.out}")
    if failed:
        print(f"parts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def save(results: dict, out: Path) -> None:
    """Write the results (after every part, so a failure later keeps what was measured)."""
    results["figures"] = figures(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
