#!/usr/bin/env python3
"""One fresh process of bench/speed.py's start-up measurements; prints one JSON line on stdout.

    ttff_child.py baseline DIR
        the baseline: for each file (sorted walk, hidden names left out) read it, split the front
        matter at the `---` lines, yaml.load(..., Loader=yaml.CSafeLoader), keep the result
    ttff_child.py feedsvc DIR CACHE_DIR FEED_PATH [--serve-reload FILE]
        create_app({SEEDS_DIR, CACHE_DIR, RELOAD_INTERVAL: 0}) and one test-client GET of FEED_PATH;
        with --serve-reload, then: every feed served once, FILE edited and reloaded (cache write
        due), FILE restored and reloaded again; peak RSS after each stage
    ttff_child.py tracemalloc DIR FEED_PATH
        what the loaded catalog is made of: tracemalloc (parsed in this process) and a census of
        live objects by type

BENCH_GC_OFF=1 runs it with the garbage collector disabled (inherited by the parse pool's forks).

The parent takes the time before it spawns this process; `done` is the wall-clock time when the
result exists (the last file parsed; the feed's body in hand), so both sides pay interpreter start
and their own imports, and neither pays process exit.
"""

import json
import os
import resource
import sys
import time

# The feedsvc of this tree, whatever the venv has installed (bench/speed.py also sets PYTHONPATH).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STARTED = time.time()
if os.environ.get("BENCH_GC_OFF") == "1":  # an experiment: the same run with the garbage collector off
    import gc

    gc.disable()


def peak_mib(who=resource.RUSAGE_SELF) -> float:
    """Peak resident set size so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as stream:
        pages = int(stream.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def baseline(root: str) -> dict:
    import os

    import yaml

    loaded = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            with open(os.path.join(folder, name), "rb") as stream:
                text = stream.read().decode("utf-8-sig")
            lines = text.split("\n")
            end = lines.index("---", 1)
            loaded.append(yaml.load("\n".join(lines[1:end]), Loader=yaml.CSafeLoader))
    done = time.time()
    return {"done": done, "started": STARTED, "files": len(loaded), "peak_rss_mib": peak_mib()}


def timed(module, name: str, phases: dict) -> None:
    """Wrap module.name so its total time lands in phases[name] (bench instrumentation only)."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def feed_paths(app) -> list[str]:
    """Every published feed: each topic in each format, and the all-topics feeds."""
    catalog = app.extensions["feedsvc"].catalog
    names = ("rss.xml", "atom.xml", "feed.json")
    slugs = [topic.slug for topic in catalog.topics(include_all=False)]
    return [f"/topics/{slug}/{name}" for slug in slugs for name in names] + [f"/{name}" for name in names]


def feedsvc_run(root: str, cache_dir: str, feed_path: str, edit: str | None) -> dict:
    from feedsvc.runtime import parsecache
    from feedsvc.runtime import store as store_module
    from feedsvc.web import create_app

    imported = time.time()
    phases: dict[str, float] = {}
    for name in ("scan", "refresh", "build_catalog"):
        timed(store_module, name, phases)
    for name in ("load", "save"):
        timed(parsecache, name, phases)
    app = create_app({"SEEDS_DIR": root, "CACHE_DIR": cache_dir, "RELOAD_INTERVAL": 0})
    created = time.time()
    client = app.test_client()
    response = client.get(feed_path)
    body = response.get_data()
    done = time.time()
    if response.status_code != 200:
        raise SystemExit(f"{feed_path}: {response.status_code}")
    store = app.extensions["feedsvc"]
    out = {
        "done": done, "started": STARTED, "imported": imported, "created": created,
        "articles": len(store.catalog.articles), "skipped": len(store.catalog.skipped), "body_bytes": len(body),
        "phases": {k: round(v, 4) for k, v in phases.items()},
        "peak_rss_mib": peak_mib(), "pool_peak_rss_mib": peak_mib(resource.RUSAGE_CHILDREN),
        "rss_mib_at_first_feed": rss_mib(),
    }  # fmt: skip
    if edit:
        out["serve_reload"] = serve_and_reload(app, client, root, edit)
        out["peak_rss_mib_all"] = peak_mib()
    return out


def serve_and_reload(app, client, root: str, edit: str) -> dict:
    """Serve every feed, edit one file and reload (parse-cache write due), restore it and reload."""
    import os
    from pathlib import Path

    store = app.extensions["feedsvc"]
    paths = feed_paths(app)
    start = time.perf_counter()
    for path in paths:
        if client.get(path).status_code != 200:
            raise SystemExit(f"{path} failed")
    result = {"feeds": len(paths), "serve_all_s": time.perf_counter() - start, "peak_after_serve_mib": peak_mib()}
    target = Path(root) / edit
    original, info = target.read_bytes(), target.stat()
    try:
        target.write_bytes(original.replace(b'\ntitle: "', b'\ntitle: "(edited) ', 1))
        store._cache_written = 0.0  # bench: the parse cache's 30 s write interval has passed
        start = time.perf_counter()
        changed = store.reload()
        client.get(paths[0])
        result["reload_s"] = time.perf_counter() - start
        result["reload_changed"] = changed
        for path in paths:
            client.get(path)
        result["peak_after_reload_mib"] = peak_mib()
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    store._cache_written = 0.0
    store.reload()  # back to the original file, and the parse cache with it
    result["peak_after_restore_mib"] = peak_mib()
    return result


def tracemalloc_run(root: str, feed_path: str) -> dict:
    import gc
    import tracemalloc
    from collections import Counter

    from feedsvc.web import create_app

    tracemalloc.start(1)
    app = create_app({"SEEDS_DIR": root, "CACHE_DIR": "", "RELOAD_INTERVAL": 0})
    client = app.test_client()
    for path in [feed_path] + feed_paths(app):
        client.get(path)
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    # What writing and reading the parse cache add on top of the loaded catalog, at their peak.
    import tempfile
    from pathlib import Path

    from feedsvc.runtime import parsecache

    store = app.extensions["feedsvc"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parse.bin"
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        parsecache.save(path, store.seeds_dir, store.limits, store._states)
        save_extra = tracemalloc.get_traced_memory()[1] - base
        cache_bytes = path.stat().st_size
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        states = parsecache.load(path, store.seeds_dir, store.limits)
        load_extra = tracemalloc.get_traced_memory()[1] - base
        load_kept = tracemalloc.get_traced_memory()[0] - base
        del states
    tracemalloc.stop()
    by_line = [
        {"where": f"{s.traceback[0].filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{s.traceback[0].lineno}",
         "mib": round(s.size / 2**20, 2), "count": s.count}
        for s in snapshot.statistics("lineno")[:15]
    ]  # fmt: skip
    by_file = [
        {
            "file": s.traceback[0].filename.split("site-packages/")[-1].split("/work/main/")[-1],
            "mib": round(s.size / 2**20, 2),
        }
        for s in snapshot.statistics("filename")[:10]
    ]
    gc.collect()
    sizes: Counter = Counter()
    counts: Counter = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = cls.__module__ if isinstance(cls.__module__, str) else "?"
        kind = f"{module}.{cls.__qualname__}"
        sizes[kind] += sys.getsizeof(obj)
        counts[kind] += 1
    return {
        "articles": len(store.catalog.articles),
        "traced_mib": round(current / 2**20, 1), "traced_peak_mib": round(peak / 2**20, 1),
        "rss_mib": round(rss_mib(), 1), "by_line": by_line, "by_file": by_file,
        "parse_cache_file_mib": round(cache_bytes / 2**20, 1), "cache_save_peak_extra_mib": round(save_extra / 2**20, 1),
        "cache_load_peak_extra_mib": round(load_extra / 2**20, 1), "cache_load_kept_mib": round(load_kept / 2**20, 1),
        "gc_types": [{"type": k, "count": counts[k], "shallow_mib": round(v / 2**20, 2)} for k, v in sizes.most_common(12)],
    }  # fmt: skip


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "baseline":
        out = baseline(argv[1])
    elif mode == "feedsvc":
        edit = argv[argv.index("--serve-reload") + 1] if "--serve-reload" in argv else None
        out = feedsvc_run(argv[1], argv[2], argv[3], edit)
    elif mode == "tracemalloc":
        out = tracemalloc_run(argv[1], argv[2])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
