#!/usr/bin/env python3
"""Soak test: hot reload under load, with files edited, added, deleted and broken meanwhile.

    python bench/soak.py [--duration 30] [--count 200 | --from-seeds] [--seed 1] [--interval 0.5]

1. Copies a corpus into a temp folder: ~200 generated articles (bench/gen_corpus.py) by default,
   or the project's seeds with --from-seeds.
2. Starts `feedsvc serve` (granian, preload, FEEDSVC_WORKERS workers) on a free loopback port
   with FEEDSVC_RELOAD_INTERVAL=0.5 and FEEDSVC_MAX_LIMIT=5000 (so every feed fits one page).
3. Runs wrk (64 connections, the bench/mix.py request mix) for DURATION seconds.
4. Meanwhile, every second, the mutator changes files: rewrites articles in place, non-atomically
   (truncate, a pause, half the bytes, a pause, the rest: a reload can see an empty or
   half-saved file), adds new ones (written the same way), deletes some, breaks some (invalid
   YAML, an unclosed front matter, a missing webUrl) and fixes them later.
5. Meanwhile, checkers poll every topic feed and the all-topics feed, with include=all and with
   the default (published), in RSS, Atom and JSON Feed, with and without gzip, limit=5000, and
   assert that no feed misses an entry it must have.

Which entries a feed must have: a file is *established* once one valid version of it stayed on
disk, untouched, for 2 reload intervals (every worker's watcher has then loaded it). From then
on, until it is deleted, its article must be in every feed it belongs to (its topics; the
published feeds only if `published: true`; rewrites keep webUrl, topics and flag): a later
edit that breaks it, or a rewrite caught half-saved, keeps serving the last good version
(feedsvc/store.py). A miss is reported with the file's recent history, as "valid" when its
current file is valid and complete since 2 intervals before the request (the plain case), or
"stale" when it is broken or being rewritten (the last good version must be served).
Also checked: an article deleted 2 intervals before a request is gone ("ghost" otherwise).

Exit status 1 on any socket error, any wrk status other than 2xx/304, any 5xx, any checker
request that fails, any miss or ghost, an error in the server's log, or a server that dies;
2 on a usage or setup error. Bounded: the run is killed DURATION + 150 s after it starts.
Stdlib + the project's dependencies (PyYAML, python-slugify).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from slugify import slugify

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import gen_corpus
import mix

ATOM = "{http://www.w3.org/2005/Atom}"
FORMATS = ("feed.json", "rss.xml", "atom.xml")
BIG_LIMIT = 5000


def now() -> float:
    return time.monotonic()


# --------------------------------------------------------------------------- the files


@dataclass
class Tracked:
    """One article file as the mutator made it, with what a feed must show of it."""

    name: str
    url: str
    slugs: frozenset
    published: bool
    text: str  # the current (or last) valid text
    fields: dict | None = None  # gen_corpus fields, for new versions; None for a seed file
    anchor: bool = False  # never deleted: keeps its topics' feeds in existence for wrk's mix
    good_since: float | None = None  # the current on-disk version is valid and complete since
    writing_since: float | None = None
    broken: bool = False  # the current on-disk version is invalid
    broken_since: float | None = None
    established_at: float | None = None
    deleted_at: float | None = None
    history: list = field(default_factory=list)

    def event(self, when: float, what: str) -> None:
        self.history.append((when, what))
        del self.history[:-12]

    def begin_write(self, when: float, interval: float, what: str) -> None:
        if self.established_at is None and self.good_since is not None and when - self.good_since >= 2 * interval:
            self.established_at = self.good_since + 2 * interval
        self.good_since, self.writing_since = None, when
        self.event(when, f"begin {what}")

    def end_write(self, when: float, valid: bool, what: str) -> None:
        self.writing_since = None
        if valid:
            self.good_since, self.broken, self.broken_since = when, False, None
        else:
            self.broken, self.broken_since = True, when
        self.event(when, f"end {what}")

    def expected(self, t0: float, t1: float, interval: float) -> str | None:
        """Why a feed answered between t0 and t1 must hold this article, or None."""
        if self.deleted_at is not None and self.deleted_at <= t1:
            return None
        if self.good_since is not None and self.good_since + 2 * interval <= t0:
            return "valid"
        if self.established_at is not None and self.established_at <= t0:
            return "stale"
        return None  # never valid long enough for every worker to have loaded it

    def gone(self, t0: float, interval: float) -> bool:
        """Deleted long enough ago that no feed may show it."""
        return self.deleted_at is not None and self.deleted_at + 2 * interval <= t0


def write_slowly(path: Path, data: bytes, rng: random.Random) -> None:
    """Rewrite in place, non-atomically: truncate, pause, half, pause, the rest."""
    with open(path, "wb") as stream:  # O_TRUNC: the file is empty now
        stream.flush()
        time.sleep(rng.uniform(0.005, 0.03))
        cut = rng.randint(len(data) // 4, 3 * len(data) // 4)
        stream.write(data[:cut])
        stream.flush()
        time.sleep(rng.uniform(0.02, 0.15))  # a reader can see a half-saved file
        stream.write(data[cut:])
        stream.flush()


BREAKS = ("yaml-flow", "yaml-indent", "no-weburl", "unclosed")


def break_text(text: str, rng: random.Random, flavour: str | None = None) -> tuple[str, str]:
    """A broken version of a valid article text, and how it is broken."""
    lines = text.split("\n")
    end = lines.index("---", 1)  # the closing line of the front matter
    flavour = flavour or rng.choice(BREAKS)
    if flavour == "yaml-flow":
        lines.insert(1, "topics: [unclosed, list")
    elif flavour == "yaml-indent":
        title = next(i for i, line in enumerate(lines) if line.startswith("title:"))
        lines.insert(title + 1, "   oops: this line is indented under a scalar")
    elif flavour == "no-weburl":
        lines = [line for line in lines if not line.startswith("webUrl:")]
    else:
        del lines[end]
    return "\n".join(lines), flavour


def seed_variant(text: str, rng: random.Random, revision: int) -> str:
    """A new version of a seed file with the same identity: another title."""
    title = gen_corpus.headline(rng) + f" (revision {revision})"
    return re.sub(
        r"^title:.*$", lambda _: "title: " + json.dumps(title, ensure_ascii=False), text, count=1, flags=re.MULTILINE
    )


def front_matter(text: str) -> dict:
    """The front-matter mapping of a valid article text."""
    body = text.lstrip("\ufeff").replace("\r\n", "\n")
    return yaml.safe_load(body.split("\n---", 1)[0].removeprefix("---\n"))


def topic_names(data: dict) -> list[str]:
    topics = data.get("topics") or []
    return [str(t) for t in (topics if isinstance(topics, list) else [topics])]


def identity_of(text: str) -> tuple[str, frozenset, bool]:
    """(webUrl, topic slugs, published) of a valid article text, read as the service does."""
    data = front_matter(text)
    topics = topic_names(data)
    published = data.get("published") is True or str(data.get("published")).lower() in ("true", "yes", "on", "1", "y")
    return str(data["webUrl"]), frozenset(s for s in (slugify(str(t)) for t in topics) if s), published


class Corpus:
    """The temp folder's files and their tracked states; the mutator's side."""

    def __init__(self, folder: Path, interval: float, rng: random.Random, topic_names: tuple[str, ...]) -> None:
        self.folder, self.interval, self.rng, self.topic_names = folder, interval, rng, topic_names
        self.files: dict[str, Tracked] = {}
        self.lock = threading.Lock()
        self.changes: Counter = Counter()
        self.next_index = 100_000

    def add_existing(self, name: str, text: str, fields: dict | None, when: float) -> None:
        url, slugs, published = identity_of(text)
        tracked = Tracked(name, url, slugs, published, text, fields)
        tracked.good_since = when
        tracked.event(when, "initial")
        self.files[name] = tracked

    def choose_anchors(self) -> None:
        """One file a topic (published if any) is never deleted, so no topic feed vanishes."""
        for slug in sorted({s for t in self.files.values() for s in t.slugs}):
            candidates = sorted(
                (t for t in self.files.values() if slug in t.slugs), key=lambda t: (not t.published, t.name)
            )
            candidates[0].anchor = True

    def live(self) -> list[Tracked]:
        return [t for t in self.files.values() if t.deleted_at is None]

    # Each operation: record the start, write, record the end.
    def rewrite(self, tracked: Tracked) -> None:
        if tracked.fields is not None:
            tracked.fields = gen_corpus.revise(tracked.fields, self.rng)
            text = gen_corpus.render(tracked.fields)
        else:
            self.changes["revision"] += 1
            text = seed_variant(tracked.text, self.rng, self.changes["revision"])
        what = "fix" if tracked.broken else "rewrite"
        with self.lock:
            tracked.begin_write(now(), self.interval, what)
        write_slowly(self.folder / tracked.name, text.encode("utf-8"), self.rng)
        with self.lock:
            tracked.text = text
            tracked.end_write(now(), True, what)
        self.changes[what] += 1

    def add(self) -> None:
        index, self.next_index = self.next_index, self.next_index + 1
        fields = gen_corpus.make_article(index, self.rng, self.topic_names)
        text = gen_corpus.render(fields)
        name = gen_corpus.file_name(index, self.rng, ".md")
        url, slugs, published = identity_of(text)
        tracked = Tracked(name, url, slugs, published, text, fields)
        with self.lock:
            self.files[name] = tracked
            tracked.begin_write(now(), self.interval, "add")
        write_slowly(self.folder / name, text.encode("utf-8"), self.rng)
        with self.lock:
            tracked.end_write(now(), True, "add")
        self.changes["add"] += 1

    def delete(self, tracked: Tracked) -> None:
        with self.lock:
            tracked.deleted_at = now()  # before the unlink: a request from now on may miss it
            tracked.event(tracked.deleted_at, "delete")
        (self.folder / tracked.name).unlink()
        self.changes["delete"] += 1

    def break_file(self, tracked: Tracked) -> None:
        text, flavour = break_text(tracked.text, self.rng)
        with self.lock:
            tracked.begin_write(now(), self.interval, f"break ({flavour})")
        write_slowly(self.folder / tracked.name, text.encode("utf-8"), self.rng)
        with self.lock:
            tracked.end_write(now(), False, f"break ({flavour})")
        self.changes["break"] += 1

    def tick(self) -> None:
        """One second's changes."""
        rng, t = self.rng, now()
        live = self.live()
        valid = [f for f in live if not f.broken]
        settled = [f for f in valid if f.good_since is not None and t - f.good_since > 2 * self.interval + 0.2]
        for tracked in rng.sample(valid, min(len(valid), rng.randint(1, 3))):
            self.rewrite(tracked)
        if rng.random() < 0.8:
            self.add()
        deletable = [f for f in self.live() if not f.anchor]
        if deletable and rng.random() < 0.6:
            self.delete(rng.choice(deletable))
        settled = [f for f in settled if f.deleted_at is None and f.writing_since is None and not f.broken]
        if settled and rng.random() < 0.6:
            self.break_file(rng.choice(settled))
        for tracked in [f for f in self.live() if f.broken and now() - f.broken_since > 1.5]:
            if rng.random() < 0.5:
                self.rewrite(tracked)  # a fix: a valid version, same identity

    def expectations(self, slug: str | None, include_all: bool, t0: float, t1: float) -> tuple[dict, set]:
        """(url -> (file, reason)) the feed must hold; URLs of deleted files it must not hold."""
        must, gone = {}, set()
        with self.lock:
            for tracked in self.files.values():
                if slug is not None and slug not in tracked.slugs:
                    continue
                if not include_all and not tracked.published:
                    continue
                reason = tracked.expected(t0, t1, self.interval)
                if reason:
                    must[tracked.url] = (tracked, reason)
                elif tracked.fields is not None and tracked.gone(t0, self.interval):
                    gone.add(tracked.url)
        return must, gone


# --------------------------------------------------------------------------- HTTP


def get(url: str, use_gzip: bool = False, timeout: float = 30) -> tuple[int, bytes]:
    headers = {"Accept-Encoding": "gzip"} if use_gzip else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as answer:
            status, body, coding = answer.status, answer.read(), answer.headers.get("Content-Encoding")
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    if coding == "gzip":
        body = gzip.decompress(body)
    return status, body


def entry_ids(fmt: str, body: bytes) -> tuple[set, bool]:
    """The entry ids of a feed, and whether it has a next page."""
    if fmt == "feed.json":
        data = json.loads(body)
        return {item["id"] for item in data["items"]}, "next_url" in data
    root = ET.fromstring(body)
    if fmt == "rss.xml":
        ids = {guid.text for guid in root.iter("guid")}
    else:
        ids = {entry.findtext(f"{ATOM}id") for entry in root.iter(f"{ATOM}entry")}
    has_next = any(link.get("rel") == "next" for link in root.iter(f"{ATOM}link"))
    return ids, has_next


@dataclass
class Miss:
    when: float
    feed: str
    url: str
    name: str
    reason: str
    history: list
    later: str = ""


class Checker(threading.Thread):
    """Polls feeds and compares them with what the corpus says they must hold."""

    def __init__(
        self, number: int, base: str, corpus: Corpus, slugs: list[str], stop: threading.Event, start_time: float
    ) -> None:
        super().__init__(name=f"checker-{number}", daemon=True)
        self.number, self.base, self.corpus, self.slugs, self.stop = number, base, corpus, slugs, stop
        self.start_time = start_time
        self.checks = 0
        self.entries_checked = 0
        self.misses: list[Miss] = []
        self.ghosts: list[str] = []
        self.errors: list[str] = []

    def feeds(self):
        """Every (slug, include_all, format, gzip) in turn; threads start at different places."""
        combos = [(slug, inc) for slug in [None, *self.slugs] for inc in (True, False)]
        turn = self.number
        while True:
            for slug, include_all in combos:
                yield slug, include_all, FORMATS[turn % 3], turn % 2 == 1
                turn += 1
            turn += 1

    def url(self, slug: str | None, include_all: bool, fmt: str) -> str:
        path = f"/topics/{slug}/{fmt}" if slug else f"/{fmt}"
        return f"{self.base}{path}?limit={BIG_LIMIT}" + ("&include=all" if include_all else "")

    def check(self, slug, include_all, fmt, use_gzip) -> None:
        url = self.url(slug, include_all, fmt)
        t0 = now()
        try:
            status, body = get(url, use_gzip)
        except OSError as exc:
            self.errors.append(f"{url}: {exc}")
            return
        t1 = now()
        self.checks += 1
        label = url[len(self.base) :] + (" (gzip)" if use_gzip else "")
        if status != 200:
            self.errors.append(f"{label}: status {status}: {body[:200]!r}")
            return
        try:
            ids, has_next = entry_ids(fmt, body)
        except (ValueError, ET.ParseError, KeyError) as exc:
            self.errors.append(f"{label}: unparsable feed: {exc}")
            return
        if has_next:
            self.errors.append(f"{label}: the feed has a next page: raise FEEDSVC_MAX_LIMIT / limit")
        must, gone = self.corpus.expectations(slug, include_all, t0, t1)
        self.entries_checked += len(must)
        for url_ in sorted(set(must) - ids):
            tracked, reason = must[url_]
            with self.corpus.lock:
                history = [(round(t - self.start_time, 3), what) for t, what in tracked.history]
            miss = Miss(round(t0 - self.start_time, 3), label, url_, tracked.name, reason, history)
            miss.later = self.recheck(url, use_gzip, fmt, url_)
            self.misses.append(miss)
        self.ghosts.extend(f"{label} at {t0 - self.start_time:.3f}s: {u}" for u in sorted(gone & ids))

    def recheck(self, url: str, use_gzip: bool, fmt: str, wanted: str) -> str:
        """Ask again a few times: is the entry back, and when?"""
        seen = []
        for delay in (0.0, 0.5, 1.0, 2.0):
            time.sleep(delay)
            try:
                status, body = get(url, use_gzip)
                seen.append(
                    f"+{delay}s: {'present' if wanted in entry_ids(fmt, body)[0] else 'missing'}"
                    if status == 200
                    else f"+{delay}s: status {status}"
                )
            except (OSError, ValueError, ET.ParseError) as exc:
                seen.append(f"+{delay}s: {exc}")
        return ", ".join(seen)

    def run(self) -> None:
        for combo in self.feeds():
            if self.stop.is_set():
                return
            self.check(*combo)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; only the process we started, by its pid."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def wait_ready(base: str, server: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = now() + timeout
    while now() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"soak: the server exited ({server.returncode}) before answering:\n{log.read_text()}")
        try:
            if get(base + "/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"soak: the server did not answer /healthz within {timeout} s:\n{log.read_text()[-4000:]}")


# A record starts with the app's time stamp, granian's "[LEVEL] " or an access line's client address.
RECORD_START = re.compile(r"^(\d{4}-\d\d-\d\d |\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] |127\.0\.0\.1 - )")
ERROR_LINE = re.compile(r" (ERROR|CRITICAL) |\[(ERROR|CRITICAL)\]|Traceback|refused to gracefully stop")


def server_errors(log_text: str) -> tuple[list[str], list[list[str]]]:
    """The server log's error lines, and each error record with its traceback lines."""
    lines, blocks, current = [], [], None
    for line in log_text.splitlines():
        if RECORD_START.match(line):
            current = None
            if ERROR_LINE.search(line):
                current = [line]
                blocks.append(current)
        elif current is not None:
            current.append(line)
        if ERROR_LINE.search(line):
            lines.append(line)
    return lines, blocks


def parse_wrk(text: str) -> dict[str, float]:
    match = re.search(r"^MIXRESULT (.*)$", text, re.MULTILINE)
    if not match:
        return {}
    return {k: float(v) for k, v in (pair.split("=", 1) for pair in match.group(1).split())}


def self_test(corpus: Corpus) -> None:
    """The test's own assumptions, on one file: variants are valid with the same identity, breaks are invalid."""
    from feedsvc.content.files import load_bytes
    from feedsvc.errors import ArticleError

    rng = random.Random(0)
    for sample in list(corpus.files.values())[:3]:
        article, _ = load_bytes(sample.text.encode(), "sample")
        if article.url != sample.url:
            raise SystemExit(f"soak: self-test: the service reads webUrl {article.url}, the test expects {sample.url}")
        for flavour in BREAKS:
            text, _ = break_text(sample.text, rng, flavour)
            try:
                load_bytes(text.encode(), "broken")
            except ArticleError:
                continue
            raise SystemExit(f"soak: self-test: a '{flavour}' break of {sample.name} is still a valid article")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=int, default=int(os.environ.get("DURATION", "30")), help="seconds (default 30)"
    )
    parser.add_argument("--count", type=int, default=200, help="generated articles to start with (default 200)")
    parser.add_argument("--from-seeds", action="store_true", help="start from a copy of the project's seeds instead")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the corpus and the changes (default 1)")
    parser.add_argument("--interval", type=float, default=0.5, help="FEEDSVC_RELOAD_INTERVAL (default 0.5)")
    parser.add_argument("--connections", type=int, default=int(os.environ.get("CONNECTIONS", "64")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("FEEDSVC_WORKERS", "2")))
    parser.add_argument("--checkers", type=int, default=2, help="polling threads (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (corpus, server log, wrk output)")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.interval <= 0:
        parser.error("--duration must be >= 1 and --interval > 0")
    wrk = shutil.which("wrk")
    if not wrk:
        print("soak: wrk is not installed (not on PATH): e.g. 'apt-get install -y wrk'", file=sys.stderr)
        return 2
    feedsvc = (
        os.environ.get("FEEDSVC")
        or shutil.which("feedsvc", path=str(Path(sys.executable).parent))
        or shutil.which("feedsvc")
    )
    if not feedsvc:
        print("soak: no feedsvc command: install the project (see README) or set FEEDSVC", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="feedsvc-soak."))
    processes: dict[str, subprocess.Popen] = {}  # what run() started: stopped here, whatever happens

    def watchdog() -> None:  # the run is bounded, whatever hangs
        print(
            f"soak: FAIL: still running {args.duration + 150} s after the start; stopping", file=sys.stderr, flush=True
        )
        for process in list(processes.values()):
            if process.poll() is None:
                process.kill()
        os._exit(3)

    timer = threading.Timer(args.duration + 150, watchdog)
    timer.daemon = True
    timer.start()

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args, work, wrk, feedsvc, processes)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130
    finally:
        for process in list(processes.values())[::-1]:
            stop_process(process)
        timer.cancel()
        if args.keep:
            print(f"soak: files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, wrk: str, feedsvc: str, processes: dict) -> int:
    rng = random.Random(args.seed)
    folder = work / "corpus"
    started = now()
    if args.from_seeds:
        shutil.copytree(ROOT / "seeds", folder)
        texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()) if p.is_file()}
        names = sorted({t for text in texts.values() for t in topic_names(front_matter(text))})
        corpus = Corpus(folder, args.interval, rng, tuple(names) or gen_corpus.TOPICS)
        for name, text in texts.items():
            corpus.add_existing(name, text, None, started)
    else:
        made = gen_corpus.generate(folder, args.count, args.seed)
        corpus = Corpus(folder, args.interval, rng, gen_corpus.TOPICS)
        for name, fields in made:
            corpus.add_existing(name, (folder / name).read_text(encoding="utf-8"), fields, started)
    corpus.choose_anchors()
    self_test(corpus)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    env = dict(
        os.environ,
        FEEDSVC_RELOAD_INTERVAL=str(args.interval),
        FEEDSVC_MAX_LIMIT=str(BIG_LIMIT),
        FEEDSVC_WORKERS=str(args.workers),
    )
    # The parse cache of this throw-away folder goes with it (not one more file in ~/.cache/feedsvc).
    env.setdefault("FEEDSVC_CACHE_DIR", str(work / "cache"))
    env.pop("FEEDSVC_PREVIEW_TOKEN", None)  # the checkers read previews (include=all) without a token
    print(
        f"soak: {len(corpus.files)} articles in {folder}; feedsvc serve on {base} ({args.workers} workers, "
        f"reload every {args.interval} s)",
        flush=True,
    )
    with open(log, "wb") as log_stream:
        server = subprocess.Popen(
            [
                feedsvc,
                "serve",
                "--seeds",
                str(folder),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    processes["server"] = server
    wait_ready(base, server, log)

    # Before any change: every article is there (also checks the test's reading of ids and topics).
    slugs = sorted({s for t in corpus.files.values() for s in t.slugs})
    baseline = Checker(0, base, corpus, slugs, threading.Event(), started)
    for slug in [None, *slugs]:
        for include_all in (True, False):
            for fmt in FORMATS:
                baseline.check(slug, include_all, fmt, False)
    if baseline.misses or baseline.errors:
        for problem in baseline.errors + [f"{m.feed}: missing {m.url} ({m.name})" for m in baseline.misses[:20]]:
            print(f"soak: baseline: {problem}", file=sys.stderr)
        print("soak: FAIL: the feeds do not match the corpus before any change", file=sys.stderr)
        return 1

    requests = mix.build(base)
    problems = mix.verify(base, requests)
    if problems:
        print("soak: FAIL: requests of the mix fail before any change:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    mix_file = work / "mix.txt"
    mix.write(requests, mix_file)
    wrk_out = work / "wrk.out"
    with open(wrk_out, "wb") as wrk_stream:
        wrk_process = subprocess.Popen(
            [
                wrk,
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--timeout",
                "2s",
                "--latency",
                "-s",
                str(BENCH / "mix.lua"),
                base,
                "--",
                str(mix_file),
            ],
            stdout=wrk_stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    processes["wrk"] = wrk_process
    load_start = now()
    print(
        f"soak: wrk -t{args.threads} -c{args.connections} -d{args.duration}s ({len(requests)} distinct requests); "
        f"changing files every second; {args.checkers} checkers",
        flush=True,
    )

    stop = threading.Event()
    checkers = [Checker(n, base, corpus, slugs, stop, started) for n in range(args.checkers)]
    for checker in checkers:
        checker.start()
    mutator_errors = []
    ticks = 0
    while now() - load_start < args.duration - 0.5:
        tick_start = now()
        try:
            corpus.tick()
        except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
            mutator_errors.append(f"{type(exc).__name__}: {exc}")
        ticks += 1
        if server.poll() is not None:
            break
        time.sleep(max(0.0, 1.0 - (now() - tick_start)))
    # Let the last changes settle, check once more, then stop.
    time.sleep(2 * args.interval + 0.5)
    stop.set()
    for checker in checkers:
        checker.join(60)
    final = Checker(1, base, corpus, slugs, threading.Event(), started)
    for slug in [None, *slugs]:
        for include_all in (True, False):
            final.check(slug, include_all, "feed.json", True)
    checkers.append(final)
    try:
        health = json.loads(get(base + "/healthz")[1])
    except (OSError, ValueError) as exc:
        health = {"error": str(exc)}
    try:
        wrk_process.wait(args.duration + 60)
    except subprocess.TimeoutExpired:
        stop_process(wrk_process)
    alive = server.poll() is None
    stop_process(server)

    # ------------------------------------------------------------------- report
    wrk_text = wrk_out.read_text(errors="replace")
    result = parse_wrk(wrk_text)
    log_text = log.read_text(errors="replace")
    error_lines, error_blocks = server_errors(log_text)
    access_5xx = len(re.findall(r'" 5\d\d ', log_text))
    stale_lines = [line for line in log_text.splitlines() if " WARNING feedsvc.runtime.loader: stale " in line]
    half_saved = sum(1 for line in stale_lines if "no front matter" in line or "not closed" in line)
    skipped_lines = sum(1 for line in log_text.splitlines() if " WARNING feedsvc.runtime.loader: skipped " in line)
    failed_reloads = sum(
        1 for line in log_text.splitlines() if re.search(r" ERROR feedsvc\.store: reload of .* failed", line)
    )
    misses = [m for c in checkers for m in c.misses]
    ghosts = [g for c in checkers for g in c.ghosts]
    check_errors = [e for c in checkers for e in c.errors]
    checks = sum(c.checks for c in checkers)
    entries = sum(c.entries_checked for c in checkers)
    statuses_bad = sum(int(result.get(k, 0)) for k in ("s3xx", "s4xx", "s5xx", "other"))
    socket_errors = sum(int(result.get(k, 0)) for k in ("connect", "read", "write", "timeout"))
    live = corpus.live()

    print()
    print(
        f"== soak summary ({args.duration}s, {args.connections} connections, {args.workers} workers, "
        f"reload every {args.interval}s, {'seeds' if args.from_seeds else f'{args.count} generated articles'}, seed {args.seed})"
    )
    if result:
        print(f"requests:        {int(result['requests'])} ({result['rps']:.1f} requests/s)")
        print(
            f"latency:         p50 {result['p50_us'] / 1000:.1f} ms, p90 {result['p90_us'] / 1000:.1f} ms, "
            f"p99 {result['p99_us'] / 1000:.1f} ms, max {result['max_us'] / 1000:.1f} ms"
        )
        print(
            f"statuses:        2xx {int(result['s2xx'])}, 304 {int(result['s304'])}, other 3xx {int(result['s3xx'])}, "
            f"4xx {int(result['s4xx'])}, 5xx {int(result['s5xx'])}"
        )
        print(
            f"socket errors:   connect {int(result['connect'])}, read {int(result['read'])}, "
            f"write {int(result['write'])}, timeout {int(result['timeout'])}"
        )
    else:
        print("wrk:             no result line\n" + wrk_text[-2000:])
    print(
        f"file changes:    {sum(corpus.changes[k] for k in ('rewrite', 'add', 'delete', 'break', 'fix'))} in {ticks} s "
        f"(rewrite {corpus.changes['rewrite']}, add {corpus.changes['add']}, delete {corpus.changes['delete']}, "
        f"break {corpus.changes['break']}, fix {corpus.changes['fix']}); {len(live)} files at the end, "
        f"{sum(1 for t in live if t.broken)} broken"
    )
    print(
        f"server saw:      {len(stale_lines)} stale loads (a broken or half-saved file; {half_saved} empty/unclosed), "
        f"{skipped_lines} skipped loads (new files caught half-saved)"
    )
    print(f"checks:          {checks} feed fetches, {entries} expected entries verified")
    print(f"misses:          {len(misses)} (entries missing while they must be served)")
    print(f"ghosts:          {len(ghosts)} (deleted articles still served)")
    print(f"checker errors:  {len(check_errors)}")
    print(f"failed reloads:  {failed_reloads} (a reload that raised: the worker kept its previous catalog)")
    print(
        f"server log:      {len(error_blocks)} error records, {access_5xx} 5xx in the access log; "
        f"/healthz at the end: {health.get('articles')} articles, {len(health.get('stale', []))} stale, "
        f"{len(health.get('skipped', []))} skipped"
    )
    for miss in misses[:20]:
        print(f"  MISS at {miss.when}s {miss.feed}: {miss.url} ({miss.name}, {miss.reason}); afterwards: {miss.later}")
        print(f"       history: {miss.history}")
    for ghost in ghosts[:10]:
        print(f"  GHOST {ghost}")
    for error in check_errors[:10]:
        print(f"  CHECK ERROR {error}")
    for block in error_blocks[:5]:
        print("  SERVER " + "\n         ".join(block[:60]))
    for error in mutator_errors[:5]:
        print(f"  MUTATOR ERROR {error}")

    failures = []
    if not result:
        failures.append("wrk printed no result")
    if socket_errors:
        failures.append(f"{socket_errors} socket errors")
    if statuses_bad or int(result.get("status_errors", 0)):
        failures.append(f"{statuses_bad} wrk responses not 2xx/304 ({int(result.get('s5xx', 0))} 5xx)")
    if access_5xx:
        failures.append(f"{access_5xx} 5xx in the access log")
    if misses:
        failures.append(f"{len(misses)} missing entries")
    if ghosts:
        failures.append(f"{len(ghosts)} deleted entries still served")
    if check_errors:
        failures.append(f"{len(check_errors)} checker errors")
    if error_lines:
        failures.append(f"{len(error_blocks) or len(error_lines)} errors in the server log")
    if mutator_errors:
        failures.append(f"{len(mutator_errors)} mutator errors")
    if not alive:
        failures.append("the server died")
    if checks == 0:
        failures.append("no check ran")
    if failures:
        print("soak: FAIL: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("soak: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
