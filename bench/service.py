#!/usr/bin/env python3
"""The service as an operator runs it: whole `feedsvc build` and `feedsvc serve` processes, each
beside a peer measured in the same run, alternating, so that the ratio survives a machine whose
speed swings.

    .venv/bin/python bench/service.py [--only build,start,memory,serve] [--sizes 1000,10000]
        [--start-size 10000] [--memory-size 100000] [--serve-size 1000] [--rounds 5]
        [--wrk-seconds 5] [--quiet-wait 90]

build    `feedsvc build OUT --base-url URL` vs `hugo --quiet` on the same N files (--sizes), cold (empty
         parse cache / Hugo cache dir, no output); then each again over its own output (rebuild, nothing
         changed; feedsvc's parse cache warm). Hugo's site: the same files as content, publishedDateTime
         as its date, topics as a taxonomy, only each topic's RSS of its newest 50 articles
start    `feedsvc serve --workers 2` until GET /rss.xml answers 200, cold (empty cache dir) and warm
         (the cache the cold start wrote), vs a fresh python process that CSafeLoads every file's
         front matter in turn (bench/ttff_child.py baseline; process start included)
memory   PSS (/proc/PID/smaps_rollup) summed over every process of `feedsvc serve` (master and
         workers) after it served / and every topic's rss/atom/feed.json, vs one python process that
         CSafeLoads every file into a list (its PSS at the end)
serve    wrk on one cached feed: plain, If-None-Match (304) and Accept-Encoding: gzip, `feedsvc serve`
         vs nginx (gzip_static, etag) serving the bytes `feedsvc build` wrote; same round, alternating
floors   what a row cannot do better than, measured in the same rounds: `feedsvc check` on the same files
         (build and cold start: reading and validating them, nothing else), and `feedsvc serve`'s server
         answering the same bytes from constants in front of the app (bench/floor_app.py), with and
         without its access log (serving)

Ratios are feedsvc / peer (times, memory) or feedsvc req/s / nginx req/s, the median of the
per-round ratios. Writes bench/out/service.json (every sample) and prints a markdown table;
bench/plot_service.py draws it. Corpora come from bench/gen_corpus.py (seed 1, kept in
bench/out/corpus/). Needs hugo, nginx and wrk on PATH (Debian: apt-get install -y hugo nginx wrk).
Every process started here runs in its own session and is stopped on the way out, failures too.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import speed  # bench/speed.py: corpus, child_env, machine, Noise, parse_wrk, free_port, log
from speed import OUT, PY, ROOT, Noise, child_env, corpus, log, parse_wrk

BASE_URL = "http://127.0.0.1:8000/"  # what `feedsvc build` and Hugo write into links; serve gets it too
FORMATS = ("rss.xml", "atom.xml", "feed.json")
HUGO_LIMIT = 50  # feedsvc's default page size: Hugo lists the same number of newest articles


def feedsvc_command() -> str:
    """The venv's `feedsvc` console script (child_env puts this tree first on PYTHONPATH)."""
    script = Path(PY).parent / "feedsvc"
    found = str(script) if script.exists() else shutil.which("feedsvc")
    if not found:
        raise SystemExit("no feedsvc command: pip install -e . in this tree's venv")
    return found


# ---------------------------------------------------------------- processes


class Group:
    """A process in a session of its own, so that it and every child it forks stop together."""

    def __init__(self, command: list[str], log_path: Path, env: dict | None = None, cwd: Path = ROOT) -> None:
        self.command, self.log_path = command, log_path
        self.stream = open(log_path, "ab")  # noqa: SIM115 - the process writes to it until stop() closes it
        try:
            self.proc = subprocess.Popen(command, stdout=self.stream, stderr=subprocess.STDOUT, env=env or child_env(),
                                         cwd=cwd, start_new_session=True)  # fmt: skip
        except BaseException:
            self.stream.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int:
        """The exit status, the moment the process exits; on timeout the group is killed and
        RuntimeError raised.

        A blocking wait, with a timer to enforce the timeout: Popen.wait(timeout=...) polls,
        sleeping 1, 2, 4, ... then 50 ms between looks (CPython's Popen._wait), so a process that
        took 65 ms was timed 63 or 113 ms: every time came out on that 50 ms grid, a large error
        beside a 0.06-0.4 s build (a whole 1k rebuild is 0.06 s)."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            status = self.proc.wait()
        finally:
            timer.cancel()
        if expired.is_set():
            self.stop()
            raise RuntimeError(f"{self.command[0]} did not finish within {timeout:g} s; log: {self.log_path}")
        return status

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the group, SIGKILL after `grace` s; then SIGKILL to anything left in it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                log(f"{self.command[0]} ({self.proc.pid}) ignored SIGTERM for {grace:.0f} s: killing its group")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # forks that outlived their parent
        except (ProcessLookupError, PermissionError):
            pass
        self.stream.close()

    def tail(self, chars: int = 2000) -> str:
        self.stream.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> Group:  # noqa: PYI034 - typing.Self is 3.11+
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_timed(command: list[str], log_path: Path, timeout: float, env: dict | None = None, cwd: Path = ROOT) -> float:
    """Seconds from spawn to exit of a whole process (and its group); RuntimeError unless it exits 0."""
    started = time.perf_counter()
    with Group(command, log_path, env, cwd) as group:
        status = group.wait(timeout)
        elapsed = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(f"{' '.join(command[:2])} exited {status}:\n{group.tail()}")
    return elapsed


def get(port: int, path: str, headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """One GET on a fresh connection: status, headers (lower-case names), body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (from /proc/PID/task/TID/children)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    pending.extend(int(child) for child in stream.read().split())
        except OSError:
            continue  # gone meanwhile
    return found


def smaps_rollup(pid: int) -> dict[str, int]:
    """Pss and Rss of one process in KiB (proc(5): /proc/PID/smaps_rollup)."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as stream:
        for line in stream:
            name, _, rest = line.partition(":")
            if name in ("Pss", "Rss"):
                values[name.lower() + "_kib"] = int(rest.split()[0])
    return values


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the processes (proc(5): /proc/PID/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total


def settle(pid: int, limit: float = 120) -> float:
    """Wait until the process tree used no CPU for a second (a background cache write done); seconds waited."""
    started = time.monotonic()
    last = cpu_ticks(tree_pids(pid))
    while time.monotonic() - started < limit:
        time.sleep(1)
        now = cpu_ticks(tree_pids(pid))
        if now == last:
            break
        last = now
    return time.monotonic() - started


# ---------------------------------------------------------------- corpora and Hugo's site


def front_matter(path: Path) -> dict:
    """A file's YAML front matter (between the first two `---` lines), CSafeLoader."""
    import yaml

    lines = path.read_bytes().decode("utf-8-sig").split("\n")
    return yaml.load("\n".join(lines[1 : lines.index("---", 1)]), Loader=yaml.CSafeLoader)


def article_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def published_per_topic(folder: Path) -> dict[str, int]:
    """How many published articles each topic slug has: what Hugo's term feeds list (up to 50)."""
    from feedsvc.feeds.catalog import topic_slug

    counts: dict[str, int] = {}
    for path in article_files(folder):
        fields = front_matter(path)
        if fields.get("published") is True:
            for slug in {topic_slug(t) for t in fields.get("topics") or []}:
                counts[slug] = counts.get(slug, 0) + 1
    return counts


def warm_page_cache(folder: Path) -> None:
    """Read every file once, so that neither side's first round pays for the disk."""
    for path in article_files(folder):
        path.read_bytes()


HUGO_CONFIG = f"""\
baseURL: {BASE_URL}
# Only the topics' RSS: no home, section, taxonomy-list, sitemap, robots or 404 page; the articles
# are listed but never rendered (cascade _build.render: never), so no HTML page is written.
disableKinds: [home, section, taxonomy, sitemap, robotsTXT, "404"]
ignoreErrors: ["error-disable-taxonomy"]
taxonomies:
  topic: topics
frontmatter:
  date: [publishedDateTime]
outputs:
  term: [rss]
cascade:
  - _target:
      kind: page
    _build:
      render: never
      list: always
"""
# Hugo reads `published: false` as `draft: true`, so drafts are left out as feedsvc leaves them out
# of its default feeds. Links and guids are the articles' webUrl, as in feedsvc's feeds.
HUGO_RSS = """\
{{- printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\"?>" | safeHTML }}
<rss version="2.0">
  <channel>
    <title>{{ .Title }}</title>
    <link>{{ .Permalink }}</link>
    <description>{{ .Title }}</description>
    {{- with .Pages }}<lastBuildDate>{{ (index . 0).Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" | safeHTML }}</lastBuildDate>{{ end }}
    {{- range first LIMIT .Pages }}
    <item>
      <title>{{ .Title }}</title>
      <link>{{ .Params.webUrl }}</link>
      <guid isPermaLink="true">{{ .Params.webUrl }}</guid>
      <pubDate>{{ .Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" | safeHTML }}</pubDate>
      <description>{{ .Params.excerpt }}</description>
    </item>
    {{- end }}
  </channel>
</rss>
""".replace("LIMIT", str(HUGO_LIMIT))


def hugo_site(folder: Path, site: Path) -> Path:
    """A minimal Hugo site whose content/ has the corpus' files (hard links, else copies) as .md."""
    shutil.rmtree(site, ignore_errors=True)
    content = site / "content" / "articles"
    content.mkdir(parents=True)
    (site / "layouts" / "_default").mkdir(parents=True)
    (site / "hugo.yaml").write_text(HUGO_CONFIG)
    (site / "layouts" / "_default" / "rss.xml").write_text(HUGO_RSS)
    for path in article_files(folder):
        target = content / (path.stem + ".md")  # Hugo reads content by extension; the bytes are the same
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return site


def hugo_version() -> str | None:
    if not shutil.which("hugo"):
        return None
    return subprocess.run(["hugo", "version"], check=False, capture_output=True, text=True, timeout=30).stdout.strip()


def nginx_version() -> str | None:
    binary = nginx_binary()
    if not binary:
        return None
    return subprocess.run([binary, "-v"], check=False, capture_output=True, text=True, timeout=30).stderr.strip()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


# ---------------------------------------------------------------- build and rebuild


def feedsvc_build(folder: Path, work: Path, size: int, cold: bool, timeout: float) -> float:
    """`feedsvc build OUT --base-url ...`; cold: no parse cache, no output (nor its .previous twin)."""
    parent, cache = work / f"feedsvc-build-{size}", work / f"feedsvc-cache-{size}"
    if cold:
        shutil.rmtree(parent, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    parent.mkdir(exist_ok=True)
    env = child_env() | {"FEEDSVC_CACHE_DIR": str(cache)}
    command = [feedsvc_command(), "build", str(parent / "out"), "--base-url", BASE_URL, "--seeds", str(folder)]
    return run_timed(command, work / f"feedsvc-build-{size}.log", timeout, env)


def hugo_build(site: Path, cold: bool, timeout: float) -> float:
    """`hugo --quiet` in the site; cold: no public/, no resources/, an empty cache dir."""
    cache = site.parent / f"{site.name}-cache"
    if cold:
        for path in (site / "public", site / "resources", cache):
            shutil.rmtree(path, ignore_errors=True)
    return run_timed(["hugo", "--quiet", "--cacheDir", str(cache)], site.parent / f"{site.name}.log", timeout, cwd=site)


def check_builds(work: Path, site: Path, size: int, expected: dict[str, int]) -> dict:
    """Both wrote what they should: every topic's feed; Hugo's with min(50, published) items."""
    out = work / f"feedsvc-build-{size}" / "out"
    missing = [slug for slug in expected for name in FORMATS if not (out / "topics" / slug / name).is_file()]
    if missing:
        raise RuntimeError(f"feedsvc build wrote no feed for topics {sorted(set(missing))}")
    hugo_topics = {p.name: p / "index.xml" for p in (site / "public" / "topics").iterdir() if p.is_dir()}
    if set(hugo_topics) != set(expected):
        raise RuntimeError(f"Hugo's topics {sorted(hugo_topics)} are not feedsvc's {sorted(expected)}")
    items = {}
    for slug, path in hugo_topics.items():
        items[slug] = len(ET.parse(path).getroot().findall("./channel/item"))
        if items[slug] != min(HUGO_LIMIT, expected[slug]):
            raise RuntimeError(f"Hugo's {slug} feed has {items[slug]} items, not min(50, {expected[slug]})")
    html = [str(p) for p in (site / "public").rglob("*.html")]
    return {"hugo_items": items, "hugo_html_files": len(html),
            "feedsvc_files": sum(1 for p in out.rglob("*") if p.is_file()),
            "hugo_files": sum(1 for p in (site / "public").rglob("*") if p.is_file())}  # fmt: skip


def feedsvc_check(folder: Path, work: Path, timeout: float) -> float:
    """`feedsvc check FOLDER`: the floor of a cold build or start, every file read and validated
    (on every core, as they do), nothing rendered or written; no parse cache is read."""
    return run_timed([feedsvc_command(), "check", str(folder)], work / "feedsvc-check.log", timeout)


def build_series(size: int, rounds: int, work: Path, timeout: float) -> dict:
    """Cold build and rebuild, feedsvc and Hugo, alternating which goes first each round; and
    `feedsvc check` on the same files, the cold build's floor."""
    folder = corpus(size)
    site = hugo_site(folder, work / f"hugo-{size}")
    expected = published_per_topic(folder)
    warm_page_cache(folder)
    samples: dict[str, list[float]] = {"feedsvc_cold": [], "feedsvc_rebuild": [], "hugo_cold": [], "hugo_rebuild": [],
                                       "feedsvc_check": []}  # fmt: skip
    noise, checked = [], {}
    for number in range(rounds):
        noise.append(Noise.check())
        order = ("feedsvc", "hugo") if number % 2 == 0 else ("hugo", "feedsvc")
        for tool in order:
            if tool == "feedsvc":
                samples["feedsvc_check"].append(feedsvc_check(folder, work, timeout))
            for cold in (True, False):
                if tool == "feedsvc":
                    seconds = feedsvc_build(folder, work, size, cold, timeout)
                else:
                    seconds = hugo_build(site, cold, timeout)
                samples[f"{tool}_{'cold' if cold else 'rebuild'}"].append(seconds)
        if number == 0:
            checked = check_builds(work, site, size, expected)
            last = (work / f"feedsvc-build-{size}.log").read_text().strip().splitlines()[-1]
            if not re.search(r": 0 files written, \d+ unchanged$", last):
                raise RuntimeError(f"feedsvc's rebuild over unchanged files wrote something: {last}")
        log(f"build {size}, round {number + 1}/{rounds}: feedsvc {samples['feedsvc_cold'][-1]:.2f} s "
            f"(rebuild {samples['feedsvc_rebuild'][-1]:.2f}), hugo {samples['hugo_cold'][-1]:.2f} s "
            f"(rebuild {samples['hugo_rebuild'][-1]:.2f})")  # fmt: skip
    return {"articles": size, "rounds": rounds, "samples": samples, "others_cpu": noise, "check": checked,
            "published_per_topic": expected}  # fmt: skip


# ---------------------------------------------------------------- serve: start-up and memory


def serve_env(cache: Path, extra: dict | None = None) -> dict:
    return child_env() | {"FEEDSVC_CACHE_DIR": str(cache), "FEEDSVC_BASE_URL": BASE_URL} | (extra or {})


def start_serve(folder: Path, cache: Path, work: Path, workers: int, timeout: float, tag: str,
                extra_env: dict | None = None) -> tuple[float, Group, int]:  # fmt: skip
    """Spawn `feedsvc serve`; seconds until GET /rss.xml answers 200, the running group, its port."""
    port = speed.free_port()
    command = [feedsvc_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
               "--seeds", str(folder)]  # fmt: skip
    started = time.time()
    group = Group(command, work / f"serve-{tag}.log", serve_env(cache, extra_env))
    try:
        while True:
            if group.proc.poll() is not None:
                raise RuntimeError(f"feedsvc serve exited ({group.proc.returncode}):\n{group.tail()}")
            left = timeout - (time.time() - started)
            if left <= 0:
                raise RuntimeError(f"feedsvc serve did not answer /rss.xml within {timeout:.0f} s:\n{group.tail()}")
            try:
                status, _, _ = get(port, "/rss.xml", timeout=min(30, left))
                if status == 200:
                    return time.time() - started, group, port
                raise RuntimeError(f"/rss.xml answered {status}:\n{group.tail()}")
            except OSError:  # not listening yet (or a worker not accepting yet)
                time.sleep(0.005)
    except BaseException:
        group.stop()
        raise


def all_started(group: Group, workers: int, limit: float) -> bool:
    """Wait (at most `limit` s) until granian logged `Started worker-N` for every worker of this start."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        group.stream.flush()
        text = group.log_path.read_text(errors="replace")
        run = text[text.rfind("Starting granian") :]  # the log file is shared by the starts of a series
        if len(re.findall(r"Started worker-\d+", run)) >= workers:
            return True
        time.sleep(0.05)
    return False


def peer_startup(folder: Path, timeout: float) -> float:
    """bench/ttff_child.py baseline: spawn to the last file loaded (as feedsvc's figure, process exit excluded)."""
    started = time.time()
    proc = subprocess.run([PY, str(BENCH / "ttff_child.py"), "baseline", str(folder)], check=False, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=child_env())  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"ttff_child baseline failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT ") :])["done"] - started


def start_series(size: int, rounds: int, workers: int, work: Path, timeout: float) -> dict:
    """Cold start, warm restart (the cold start's cache) and the CSafeLoader peer, in each round."""
    folder = corpus(size)
    warm_page_cache(folder)
    samples: dict[str, list[float]] = {"peer": [], "cold": [], "warm": [], "check": []}
    noise, stops = [], []
    for number in range(rounds):
        noise.append(Noise.check())
        cache = work / f"start-cache-{size}"
        shutil.rmtree(cache, ignore_errors=True)
        if number % 2:
            samples["peer"].append(peer_startup(folder, timeout))
        samples["check"].append(feedsvc_check(folder, work, timeout))  # the cold start's floor
        for kind in ("cold", "warm"):
            seconds, group, _ = start_serve(folder, cache, work, workers, timeout, f"start-{size}")
            # Let every worker finish starting: granian kills a worker that gets SIGTERM while it starts
            # only after its 10 s graceful timeout, which would only slow the benchmark down.
            all_started(group, workers, limit=15)
            stopping = time.perf_counter()
            group.stop()  # the parse cache is written by a non-daemon thread: stopping waits for it
            stops.append(round(time.perf_counter() - stopping, 3))
            samples[kind].append(seconds)
            if kind == "cold" and not any(cache.glob("parse-*.bin")):
                raise RuntimeError(f"the cold start wrote no parse cache in {cache}: the warm restart would be cold")
        if not number % 2:
            samples["peer"].append(peer_startup(folder, timeout))
        log(f"start {size}, round {number + 1}/{rounds}: peer {samples['peer'][-1]:.2f} s, "
            f"cold {samples['cold'][-1]:.2f} s, warm {samples['warm'][-1]:.2f} s")  # fmt: skip
    shutil.rmtree(work / f"start-cache-{size}", ignore_errors=True)
    return {"articles": size, "rounds": rounds, "workers": workers, "samples": samples, "others_cpu": noise,
            "stop_s": stops}  # fmt: skip


def topic_slugs(port: int) -> list[str]:
    """Every topic the service publishes, from its OPML subscription list."""
    status, _, body = get(port, "/feeds.opml")
    if status != 200:
        raise RuntimeError(f"/feeds.opml answered {status}")
    slugs = []
    for outline in ET.fromstring(body).iter("outline"):
        match = re.fullmatch(r"/topics/([^/]+)/rss\.xml", urlsplit(outline.get("xmlUrl", "")).path)
        if match:
            slugs.append(match.group(1))
    if not slugs:
        raise RuntimeError("/feeds.opml lists no topic feed")
    return slugs


def serve_every_feed(port: int, workers: int) -> int:
    """GET / then every topic's rss/atom/feed.json, each 2 x workers times on fresh connections
    (the kernel hands connections to the workers, so each worker most likely renders each feed)."""
    paths = ["/"] + [f"/topics/{slug}/{name}" for slug in topic_slugs(port) for name in FORMATS]
    for _ in range(2 * workers):
        for path in paths:
            status, _, _ = get(port, path, timeout=300)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
    return len(paths)


def yaml_list(root: str) -> dict:
    """The memory peer (run as `service.py _yaml_list DIR`): every front matter in one list; PSS then."""
    loaded = [front_matter(path) for path in article_files(Path(root))]
    return {"files": len(loaded), **smaps_rollup(os.getpid())}


def memory_series(size: int, rounds: int, workers: int, work: Path, timeout: float) -> dict:
    """PSS of the whole service after serving every feed, vs the list of loaded front matters."""
    folder = corpus(size)
    warm_page_cache(folder)
    samples: dict[str, list[dict]] = {"feedsvc": [], "peer": []}
    for number in range(rounds):
        for side in ("feedsvc", "peer") if number % 2 == 0 else ("peer", "feedsvc"):
            if side == "peer":
                proc = subprocess.run([PY, str(Path(__file__).resolve()), "_yaml_list", str(folder)], check=False,
                                      capture_output=True,
                                      text=True, timeout=timeout, cwd=ROOT, env=child_env())  # fmt: skip
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    raise RuntimeError(f"the memory peer failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
                samples["peer"].append(json.loads(line[len("RESULT ") :]))
                continue
            cache = work / f"memory-cache-{size}"
            shutil.rmtree(cache, ignore_errors=True)
            seconds, group, port = start_serve(folder, cache, work, workers, timeout, f"memory-{size}")
            with group:
                feeds = serve_every_feed(port, workers)
                waited = settle(group.pid)  # the parse-cache write of a cold start finishes
                processes = {pid: smaps_rollup(pid) for pid in tree_pids(group.pid)}
            samples["feedsvc"].append({
                "start_s": round(seconds, 3), "paths_served": feeds, "settle_s": round(waited, 1),
                "processes": len(processes), "pss_kib": sum(p["pss_kib"] for p in processes.values()),
                "rss_kib": sum(p["rss_kib"] for p in processes.values()),
                "per_process_pss_kib": sorted(p["pss_kib"] for p in processes.values()),
            })  # fmt: skip
            shutil.rmtree(cache, ignore_errors=True)
        log(f"memory {size}, round {number + 1}/{rounds}: feedsvc {samples['feedsvc'][-1]['pss_kib'] / 1024:.0f} MiB PSS "
            f"({samples['feedsvc'][-1]['processes']} processes), peer {samples['peer'][-1]['pss_kib'] / 1024:.0f} MiB")  # fmt: skip
    return {"articles": size, "rounds": rounds, "workers": workers, "samples": samples}


# ---------------------------------------------------------------- serve: feedsvc vs nginx


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    {types}
    default_type application/octet-stream;
    access_log {work}/access.log;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        etag on;
        gzip off;
        gzip_static on;  # ngx_http_gzip_static_module: the .gz beside the file, when gzip is accepted
        # The feeds' own media types, as feedsvc sends them (mime.types says text/xml, application/json).
        location ~ /rss[.]xml$ {{ default_type "application/rss+xml; charset=utf-8"; types {{ }} }}
        location ~ /atom[.]xml$ {{ default_type "application/atom+xml; charset=utf-8"; types {{ }} }}
        location ~ /feed[.]json$ {{ default_type "application/feed+json; charset=utf-8"; types {{ }} }}
    }}
}}
"""


def write_gz_twins(root: Path) -> int:
    """FILE.gz beside every file, compressed as feedsvc compresses (level 6, mtime 0: render.py)."""
    count = 0
    for path in [p for p in root.rglob("*") if p.is_file() and p.suffix != ".gz"]:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), compresslevel=6, mtime=0))
        count += 1
    return count


def start_nginx(root: Path, work: Path, workers: int) -> tuple[Group, int]:
    """nginx on a free loopback port with a configuration, pid file and logs of its own in `work`."""
    binary = nginx_binary()
    if not binary:
        raise RuntimeError("nginx is not installed (apt-get install -y nginx)")
    conf_dir = work / "nginx"
    conf_dir.mkdir(exist_ok=True)
    types = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else (
        "types { text/xml xml; application/json json; text/html html; text/plain txt; }")  # fmt: skip
    port = speed.free_port()
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, work=conf_dir, types=types, port=port, root=root))
    group = Group([binary, "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")], work / "nginx.out")
    deadline = time.monotonic() + 15
    try:
        while True:
            if group.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{group.tail()}{(conf_dir / 'error.log').read_text()[-2000:]}")
            try:
                if get(port, "/feeds.opml", timeout=5)[0] == 200:
                    return group, port
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer within 15 s:\n{(conf_dir / 'error.log').read_text()[-2000:]}")
            time.sleep(0.05)
    except BaseException:
        group.stop()
        raise


_SIZE = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def wrk(port: int, path: str, headers: dict, seconds: int, connections: int, threads: int) -> dict:
    """wrk's figures (speed.parse_wrk) plus bytes read per response, from its Transfer/sec."""
    flags = [item for name, value in headers.items() for item in ("-H", f"{name}: {value}")]
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", *flags,
               f"http://127.0.0.1:{port}{path}"]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        text, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    result = parse_wrk(text)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", text)
    result["bytes_per_response"] = (
        round(float(transfer.group(1)) * _SIZE[transfer.group(2)] / result["rps"]) if transfer else None
    )
    if result["non_2xx"]:
        raise RuntimeError(f"wrk on {path}: {result['non_2xx']} responses were not 2xx/3xx")
    if sum(result["socket_errors"].values()):
        log(f"wrk on port {port} {path}: socket errors {result['socket_errors']}")
    return result


VARIANTS = ("200", "304", "gzip")


def compare_answers(root: Path, path: str, ports: dict[str, int]) -> dict:
    """Both servers answer `path` with the built file's bytes, its .gz twin's with gzip, and 304 to their own ETag."""
    body, gz = (root / path.lstrip("/")).read_bytes(), (root / (path.lstrip("/") + ".gz")).read_bytes()
    info: dict = {"path": path, "body_bytes": len(body), "gzip_bytes": len(gz)}
    for side, port in ports.items():
        status, headers, data = get(port, path)
        if status != 200 or data != body:
            raise RuntimeError(
                f"{side}: {path} answered {status} with {len(data)} bytes, not the built file's {len(body)}"
            )
        status, zipped, data = get(port, path, {"Accept-Encoding": "gzip"})
        if status != 200 or zipped.get("content-encoding") != "gzip" or gzip.decompress(data) != body:
            raise RuntimeError(
                f"{side}: {path} with Accept-Encoding: gzip answered {status}, {zipped.get('content-encoding')}"
            )
        etag = headers.get("etag")
        if not etag or get(port, path, {"If-None-Match": etag})[0] != 304:
            raise RuntimeError(f"{side}: {path} does not answer 304 to If-None-Match: {etag}")
        info[side] = {"etag": etag, "content_type": headers.get("content-type"), "gzip_bytes_sent": len(data),
                      "gzip_same_bytes": data == gz}  # fmt: skip
    return info


def variant_headers(variant: str, etag: str) -> dict:
    return {"200": {}, "304": {"If-None-Match": etag}, "gzip": {"Accept-Encoding": "gzip"}}[variant]


def check_transfer(variant: str, side: str, result: dict, info: dict) -> None:
    """What wrk read per response fits the variant: the body, the gzip body, or headers only (304)."""
    got = result["bytes_per_response"]
    if got is None:
        return
    # wrk prints Transfer/sec with 3-4 significant digits (and headers come on top): 2% of slack.
    body, zipped = info["body_bytes"], info["gzip_bytes"]
    low, high = {"200": (body * 0.98, body * 1.02 + 1000), "gzip": (zipped * 0.98, zipped * 1.02 + 1000),
                 "304": (0, 1000)}[variant]  # fmt: skip
    if not low <= got <= high:
        raise RuntimeError(f"{side}, {variant}: {got} bytes per response, expected {low:.0f}-{high:.0f}")


FLOOR_PATH = "/bench/raw"  # bench/floor_app.py: the feed's bytes and headers from a WSGI function in front of the app


def start_floor(folder: Path, cache: Path, work: Path, workers: int, path: str, timeout: float,
                access_log: bool = True) -> tuple[Group, int]:  # fmt: skip
    """bench/floor_app.py under feedsvc.server.run (`feedsvc serve`'s granian, options and access
    log, or none): FLOOR_PATH answers as `path` does without any work of the app, the server's own floor."""
    port = speed.free_port()
    command = [PY, str(BENCH / "floor_app.py"), "feedsvc-run", "--bind", f"127.0.0.1:{port}", "--workers",
               str(workers), *([] if access_log else ["--no-access-log"])]  # fmt: skip
    env = serve_env(cache, {"FEEDSVC_SEEDS_DIR": str(folder), "BENCH_FEED_PATH": path})
    group = Group(command, work / f"serve-floor{'' if access_log else '-nolog'}.log", env)
    deadline = time.monotonic() + timeout
    while True:
        if group.proc.poll() is not None:
            raise RuntimeError(f"the floor server exited ({group.proc.returncode}):\n{group.tail()}")
        try:
            if get(port, FLOOR_PATH, timeout=30)[0] == 200:
                return group, port
        except OSError:
            if time.monotonic() > deadline:
                group.stop()
                raise RuntimeError(f"the floor server did not answer within {timeout:.0f} s:\n{group.tail()}") from None
            time.sleep(0.05)


def check_floor(port: int, body: bytes, etag: str) -> None:
    """The floor server answers as feedsvc does: the body, its gzip twin, 304 to feedsvc's ETag."""
    status, _, data = get(port, FLOOR_PATH)
    zipped_status, _, zipped_data = get(port, FLOOR_PATH, {"Accept-Encoding": "gzip"})
    unchanged = get(port, FLOOR_PATH, {"If-None-Match": etag})[0]
    if (status, zipped_status, unchanged) != (200, 200, 304) or data != body or gzip.decompress(zipped_data) != body:
        raise RuntimeError(
            f"the floor server's {FLOOR_PATH} does not answer as feedsvc: {status} {zipped_status} {unchanged}"
        )


def serve_series(size: int, rounds: int, seconds: int, connections: int, threads: int, workers: int, path: str,
                 work: Path, timeout: float) -> dict:  # fmt: skip
    """wrk on one feed: feedsvc serve vs nginx serving `feedsvc build`'s files, each variant, alternating."""
    folder = corpus(size)
    warm_page_cache(folder)
    site = work / "serve-site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir()
    cache = work / "serve-cache"
    command = [feedsvc_command(), "build", str(site / "out"), "--base-url", BASE_URL, "--seeds", str(folder)]
    run_timed(command, work / "serve-build.log", timeout, child_env() | {"FEEDSVC_CACHE_DIR": str(cache)})
    root = site / "out"
    twins = write_gz_twins(root)
    os.chmod(work, 0o755)  # nginx run by root hands requests to `nobody` workers, which must reach the files
    os.chmod(site, 0o755)
    groups: list[Group] = []
    samples: dict[str, dict[str, list[dict]]] = {v: {"feedsvc": [], "nginx": []} for v in VARIANTS}
    noise = []
    try:
        # The build's bytes: a build answers what the server does with the same settings, paging links included.
        _, group, fs_port = start_serve(folder, cache, work, workers, timeout, "wrk")
        groups.append(group)
        group, ng_port = start_nginx(root, work, workers)
        groups.append(group)
        floors = {}
        for side, access_log in (("floor", True), ("floor_nolog", False)):
            group, floors[side] = start_floor(folder, work / f"{side}-cache", work, workers, path, timeout, access_log)
            groups.append(group)
        ports = {"feedsvc": fs_port, "nginx": ng_port}
        info = compare_answers(root, path, ports)
        for port in floors.values():
            check_floor(port, (root / path.lstrip("/")).read_bytes(), info["feedsvc"]["etag"])
        ports |= floors
        sides = ("feedsvc", "nginx", *floors)

        def run_wrk(side: str, variant: str, duration: int) -> dict:
            # A floor answers as feedsvc does (its ETag too), from constants.
            headers = variant_headers(variant, info["nginx" if side == "nginx" else "feedsvc"]["etag"])
            return wrk(ports[side], FLOOR_PATH if side in floors else path, headers, duration, connections, threads)

        for variant in VARIANTS:  # warm-up, not measured
            for side in sides:
                run_wrk(side, variant, 1)
        for number in range(rounds):
            noise.append(Noise.check())
            for variant in VARIANTS:
                for side in sides if number % 2 == 0 else sides[::-1]:
                    result = run_wrk(side, variant, seconds)
                    check_transfer(variant, side, result, info)
                    samples[variant].setdefault(side, []).append(result)
                log(f"serve round {number + 1}/{rounds}, {variant}: "
                    + ", ".join(f"{side} {samples[variant][side][-1]['rps']:.0f}/s" for side in sides))  # fmt: skip
        for group in groups:
            if group.proc.poll() is not None:
                raise RuntimeError(f"{group.command[0]} died during the run:\n{group.tail()}")
    finally:
        for group in groups:
            group.stop()
    return {"articles": size, "rounds": rounds, "seconds": seconds, "connections": connections, "threads": threads,
            "workers": workers, "gz_files": twins, "answers": info, "samples": samples, "others_cpu": noise}  # fmt: skip


# ---------------------------------------------------------------- report


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the per-round ratios (a round's two figures share the machine's speed of the moment)."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def row(ident: str, short: str, label: str, ours: str, peer: str, ratio: float, op: str, goal: float,
        goal_size: int | None, size: int) -> dict:  # fmt: skip
    """One row; its goal counts only at the size the goal is set for (`goal_size`; None: any size)."""
    applies = goal_size is None or size == goal_size
    note = "" if applies else f"goal {op} {goal:g} is for {goal_size:,}"
    passed = (ratio <= goal if op == "<=" else ratio >= goal) if applies else None
    return {"id": ident, "short": short, "row": label, "feedsvc": ours, "peer": peer, "ratio": round(ratio, 3),
            "goal_op": op, "goal": goal if applies else None, "reference_goal": goal, "goal_size": goal_size,
            "size": size, "pass": passed, "note": note}  # fmt: skip


BUILD_GOALS = {1_000: 1.0, 10_000: 0.5}  # feedsvc build / hugo, cold
REBUILD_GOAL = 0.3  # at 1k and 10k
START_GOALS, START_GOAL_SIZE = {"cold": 0.30, "warm": 0.15}, 10_000
MEMORY_GOAL, MEMORY_GOAL_SIZE = 1.0, 100_000
SERVE_GOAL = 0.6  # at any size


def short_count(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def figures(results: dict) -> list[dict]:
    """The rows: feedsvc's figure, the peer's, the ratio (median of the rounds' ratios), the goal."""
    rows = []
    for run in results.get("build", []):
        n, s = run["articles"], run["samples"]
        med = {k: statistics.median(v) for k, v in s.items()}
        # The cold-build goal depends on the size: the nearest size that has one is the reference.
        goal_size = min(BUILD_GOALS, key=lambda size: abs(size - n))
        rows.append(row(f"build_cold_{n}", f"build {short_count(n)}\ncold", f"`feedsvc build` vs Hugo, {n:,} files, cold",
                        f"{med['feedsvc_cold']:.2f} s", f"{med['hugo_cold']:.2f} s",
                        paired(s["feedsvc_cold"], s["hugo_cold"]), "<=", BUILD_GOALS[goal_size], goal_size, n))  # fmt: skip
        if s.get("feedsvc_check"):
            rows.append(row(f"floor_build_{n}", f"floor\nbuild {short_count(n)}",
                            f"floor: `feedsvc check` (read and validate every file, write nothing) vs Hugo's cold build, {n:,} files",
                            f"{statistics.median(s['feedsvc_check']):.2f} s", f"{med['hugo_cold']:.2f} s",
                            paired(s["feedsvc_check"], s["hugo_cold"]), "<=", BUILD_GOALS[goal_size], goal_size, n))  # fmt: skip
        rows.append(row(f"rebuild_{n}", f"rebuild {short_count(n)}\nunchanged",
                        f"rebuild, nothing changed, vs Hugo's rebuild, {n:,} files",
                        f"{med['feedsvc_rebuild']:.2f} s", f"{med['hugo_rebuild']:.2f} s",
                        paired(s["feedsvc_rebuild"], s["hugo_rebuild"]), "<=", REBUILD_GOAL,
                        None if n in BUILD_GOALS else min(BUILD_GOALS, key=lambda size: abs(size - n)), n))  # fmt: skip
    start = results.get("start")
    if start:
        n, s = start["articles"], start["samples"]
        for kind, label in (("cold", "cold"), ("warm", "warm restart")):
            rows.append(row(f"start_{kind}", f"start {short_count(n)}\n{kind}",
                            f"`feedsvc serve` start → first feed, {n:,} files, {label}, vs CSafeLoader load",
                            f"{statistics.median(s[kind]):.2f} s", f"{statistics.median(s['peer']):.2f} s",
                            paired(s[kind], s["peer"]), "<=", START_GOALS[kind], START_GOAL_SIZE, n))  # fmt: skip
        if s.get("check"):
            rows.append(row("floor_start_cold", f"floor\nstart {short_count(n)}",
                            f"floor: `feedsvc check` (read and validate every file, no server) vs CSafeLoader load, {n:,} files",
                            f"{statistics.median(s['check']):.2f} s", f"{statistics.median(s['peer']):.2f} s",
                            paired(s["check"], s["peer"]), "<=", START_GOALS["cold"], START_GOAL_SIZE, n))  # fmt: skip
    memory = results.get("memory")
    if memory:
        n, s = memory["articles"], memory["samples"]
        ours, theirs = [x["pss_kib"] for x in s["feedsvc"]], [x["pss_kib"] for x in s["peer"]]
        rows.append(row("memory", f"memory {short_count(n)}\nPSS",
                        f"PSS of the whole service ({memory['workers']} workers) after every feed, {n:,} articles,"
                        " vs a list of CSafeLoaded front matters", f"{statistics.median(ours) / 1024:.0f} MiB",
                        f"{statistics.median(theirs) / 1024:.0f} MiB", paired(ours, theirs), "<=", MEMORY_GOAL,
                        MEMORY_GOAL_SIZE, n))  # fmt: skip
    serve = results.get("serve")
    if serve:
        labels = {"200": "cached feed", "304": "If-None-Match → 304", "gzip": "Accept-Encoding: gzip"}
        for variant in VARIANTS:
            ours = [x["rps"] for x in serve["samples"][variant]["feedsvc"]]
            theirs = [x["rps"] for x in serve["samples"][variant]["nginx"]]
            rows.append(row(f"serve_{variant}", f"serve\n{variant}",
                            f"{labels[variant]}, `feedsvc serve` vs nginx static, req/s "
                            f"({serve['articles']:,} articles, wrk -c{serve['connections']} {serve['seconds']} s)",
                            f"{statistics.median(ours):.0f}/s", f"{statistics.median(theirs):.0f}/s",
                            paired(ours, theirs), ">=", SERVE_GOAL, None, serve["articles"]))  # fmt: skip
        floors = {"floor": "", "floor_nolog": ", no access log"}
        for (side, words), variant in itertools.product(floors.items(), VARIANTS):
            floor = [x["rps"] for x in serve["samples"][variant].get(side, [])]
            if floor:
                theirs = [x["rps"] for x in serve["samples"][variant]["nginx"]]
                rows.append(row(f"{side}_serve_{variant}", f"floor{words and ' -log'}\nserve {variant}",
                                f"floor: {labels[variant]} from constants in the same server (no app work{words}) vs nginx, req/s",
                                f"{statistics.median(floor):.0f}/s", f"{statistics.median(theirs):.0f}/s",
                                paired(floor, theirs), ">=", SERVE_GOAL, None, serve["articles"]))  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| row | feedsvc | peer | ratio | goal | result |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        goal = "" if r["goal"] is None else f"{r['goal_op']} {r['goal']:g}"
        # A floor row is not a goal of its own: it says whether the goal is within reach at all.
        words = {True: "floor within", False: "floor misses", None: "info"} if r["id"].startswith("floor_") else \
            {True: "PASS", False: "FAIL", None: "info"}  # fmt: skip
        result = words[r["pass"]] + (f" ({r['note']})" if r["note"] else "")
        lines.append(f"| {r['row']} | {r['feedsvc']} | {r['peer']} | {r['ratio']:.3f} | {goal} | {result} |")
    return "\n".join(lines)


def save(results: dict, out: Path) -> None:
    """Write the results after every part, so a failure later keeps what was measured."""
    results["rows"] = figures(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


def numbers(text: str) -> list[int]:
    return [int(x.replace("_", "").replace(",", "")) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_yaml_list"]:
        print("RESULT " + json.dumps(yaml_list(argv[1])), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="build,start,memory,serve", help="comma-separated parts (default all)")
    parser.add_argument("--sizes", type=numbers, default=[1_000, 10_000], help="build sizes (default 1000,10000)")
    parser.add_argument("--start-size", type=int, default=10_000, help="articles for start-up (default 10000)")
    parser.add_argument("--memory-size", type=int, default=100_000, help="articles for memory (default 100000)")
    parser.add_argument("--serve-size", type=int, default=1_000, help="articles for wrk (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of build, start and wrk (default 5)")
    parser.add_argument("--memory-rounds", type=int, default=1, help="rounds of memory (default 1)")
    parser.add_argument("--wrk-seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="feedsvc serve and nginx worker processes (default 2)")
    parser.add_argument("--feed-path", default="/topics/ai/rss.xml", help="the feed wrk asks for")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="limit for any one process or wait, s (default 1800)"
    )
    parser.add_argument(
        "--quiet-limit",
        type=float,
        default=Noise.limit,
        help="wait before a round while others use more than this share of the CPU (default 0.15)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=Noise.max_wait, help="wait at most this long, s (default 90)"
    )
    parser.add_argument("--out", type=Path, default=OUT / "service.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, sites, outputs)")
    args = parser.parse_args(argv)
    Noise.limit, Noise.max_wait = args.quiet_limit, args.quiet_wait
    parts = [p for p in ("build", "start", "memory", "serve") if p in args.only.split(",")]
    if args.rounds < 1 or args.memory_rounds < 1 or not parts:
        parser.error("--rounds and --memory-rounds must be >= 1, and --only must name a part")
    needs = {"build": ["hugo"], "serve": ["wrk"]}
    missing = sorted({tool for part in parts for tool in needs.get(part, []) if not shutil.which(tool)})
    if "serve" in parts and not nginx_binary():
        missing.append("nginx")
    if missing:
        parser.error(f"not on PATH: {', '.join(missing)} (Debian: apt-get install -y {' '.join(missing)})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: servers stop
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results: dict = {"machine": speed.machine() | {"hugo": hugo_version(), "nginx": nginx_version()},
                     "settings": settings, "base_url": BASE_URL,
                     "when": time.strftime("%Y-%m-%d %H:%M:%S %z")}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="feedsvc-service-"))
    steps = {
        "build": lambda: [build_series(n, args.rounds, work, args.timeout) for n in args.sizes],
        "start": lambda: start_series(args.start_size, args.rounds, args.workers, work, args.timeout),
        "memory": lambda: memory_series(args.memory_size, args.memory_rounds, args.workers, work, args.timeout),
        "serve": lambda: serve_series(args.serve_size, args.rounds, args.wrk_seconds, args.wrk_connections,
                                      args.wrk_threads, args.workers, args.feed_path, work, args.timeout),
    }  # fmt: skip
    failed = []
    try:
        for part in parts:
            log(f"{part}: starting")
            try:
                results[part] = steps[part]()
            except Exception as exc:  # noqa: BLE001 - report it, keep the other parts
                log(f"{part} FAILED: {exc}")
                results.setdefault("failed", {})[part] = str(exc)
                failed.append(part)
            save(results, args.out)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(results["rows"]))
    print(f"\nwritten: {args.out}")
    if failed:
        print(f"parts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
