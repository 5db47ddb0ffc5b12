#!/usr/bin/env python3
"""Where feedsvc's start-up and reload time goes: cProfile of each step on a generated corpus.

    .venv/bin/python bench/profile_costs.py [--count 10000] [--top 15] [--step parse,save,load,warm,reload]

Steps (each profiled on its own, in this process, after the imports):
  parse   loader.parse_states over the first 2,000 files, in this process (what each pool worker does)
  save    parsecache.save of the whole folder (what the first load and a due reload write)
  load    parsecache.load (what a warm start reads)
  warm    create_app with the parse cache present + the first feed
  reload  one file edited: store.reload() + the next request of its topic's feed
  gc      8 such edits timed without the profiler, with the garbage collector's pauses (gc.callbacks),
          then 6 more after gc.freeze()
  growth  what grows faster than the file count from 10k to 100k: loader.scan of the 10k and 100k
          corpora (made if missing), and parsecache.load of 10k and 100k states (the 10k states
          repeated under other names), each with the garbage collector on and off
The corpus is bench/gen_corpus.py's (seed 1), kept in bench/out/corpus/ like bench/speed.py's;
the reload step edits a copy. Figures under the profiler are slower than without; read shares.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from speed import corpus  # noqa: E402


def profiled(title: str, function, top: int):
    """Run `function` once without and once under cProfile; print its time and top functions."""
    start = time.perf_counter()
    function()
    plain = time.perf_counter() - start
    profile = cProfile.Profile()
    profile.enable()
    result = function()
    profile.disable()
    print(f"\n== {title}: {plain:.3f} s without the profiler")
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats(order).print_stats(top)
        lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
        total = next((ln.strip() for ln in lines if "function calls" in ln), "")
        start_at = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
        print(f"-- by {order} time ({total})\n" + "\n".join(lines[start_at:]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--step", default="parse,save,load,warm,reload,gc,growth")
    args = parser.parse_args(argv)
    steps = set(args.step.split(","))

    from feedsvc.web import create_app
    from feedsvc import loader
    from feedsvc.runtime import parsecache
    from feedsvc.content.fields import Limits

    folder = corpus(args.count)
    work = Path(tempfile.mkdtemp(prefix="feedsvc-profile-"))
    try:
        cache_dir = work / "cache"
        if steps & {"parse", "save", "load", "warm"}:
            app = create_app({"SEEDS_DIR": str(folder), "CACHE_DIR": str(cache_dir), "RELOAD_INTERVAL": 0})
            store = app.extensions["feedsvc"]
        if "parse" in steps:
            found = loader.scan(folder)
            jobs = [(name, stamp, None) for name, stamp in list(found.files.items())[:2000]]
            profiled(f"parse_states, {len(jobs)} files in one process", lambda: loader.parse_states(folder, jobs, Limits()), args.top)
        if "save" in steps:
            profiled(f"parsecache.save, {len(store._states)} files",
                     lambda: parsecache.save(store.cache_path, store.seeds_dir, store.limits, store._states), args.top)  # fmt: skip
        if "load" in steps:
            profiled("parsecache.load", lambda: parsecache.load(store.cache_path, store.seeds_dir, store.limits), args.top)
        if "warm" in steps:

            def warm():
                fresh = create_app({"SEEDS_DIR": str(folder), "CACHE_DIR": str(cache_dir), "RELOAD_INTERVAL": 0})
                return fresh.test_client().get("/topics/ai/rss.xml").status_code

            profiled("warm start: create_app (parse cache present) + first feed", warm, args.top)
        if steps & {"reload", "gc"}:
            copy = work / "copy"
            shutil.copytree(folder, copy)
            edited = create_app({"SEEDS_DIR": str(copy), "CACHE_DIR": str(work / "cache-copy"), "RELOAD_INTERVAL": 0})
            client = edited.test_client()
            client.get("/topics/robotics/rss.xml")
            target = sorted(p for p in copy.iterdir() if not p.name.startswith("."))[7]
            original = target.read_bytes()
            count = [0]

            def edit_and_reload():
                count[0] += 1
                target.write_bytes(original.replace(b'\ntitle: "', f'\ntitle: "edit {count[0]} '.encode(), 1))
                edited.extensions["feedsvc"].reload()
                return client.get("/topics/robotics/rss.xml").status_code

            if "reload" in steps:
                profiled("one edit: store.reload() + next topic feed (cache write not due)", edit_and_reload, args.top)
            if "gc" in steps:
                import gc

                pauses: list[tuple[int, float]] = []
                started: dict[str, float] = {}

                def on_gc(phase: str, info: dict) -> None:
                    if phase == "start":
                        started["at"] = time.perf_counter()
                    elif "at" in started:
                        pauses.append((info["generation"], time.perf_counter() - started["at"]))

                gc.callbacks.append(on_gc)
                print(f"\n== one edit at a time, with garbage collection pauses ({len(gc.get_objects())} objects tracked)")
                try:
                    for number in range(14):
                        if number == 8:
                            gc.freeze()
                            print("-- after gc.freeze()")
                        pauses.clear()
                        start = time.perf_counter()
                        edit_and_reload()
                        took = time.perf_counter() - start
                        full = [d for g, d in pauses if g == 2]
                        print(f"reload + next feed {took * 1000:6.1f} ms; gc {sum(d for _, d in pauses) * 1000:5.1f} ms"
                              + (f" (a full collection: {full[0] * 1000:.1f} ms)" if full else ""))
                finally:
                    gc.callbacks.remove(on_gc)
                    gc.unfreeze()
        if "growth" in steps:
            growth(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def timed_twice(function) -> tuple[float, float]:
    """Seconds of one call with the garbage collector on, and of one with it off."""
    import gc

    start = time.perf_counter()
    function()
    on = time.perf_counter() - start
    gc.disable()
    try:
        start = time.perf_counter()
        function()
        off = time.perf_counter() - start
    finally:
        gc.enable()
    return on, off


def growth(work: Path) -> None:
    """Scan and parse-cache load at 10k and 100k files, garbage collector on and off."""
    from feedsvc import loader
    from feedsvc.runtime import parsecache
    from feedsvc.content.fields import Limits
    from feedsvc.runtime.store import FeedStore

    print("\n== growth from 10k to 100k files (s, garbage collector on / off)")
    for count in (10_000, 100_000):
        folder = corpus(count)
        loader.scan(folder)  # the directory and inodes into the kernel's caches
        on, off = timed_twice(lambda: loader.scan(folder))
        print(f"loader.scan, {count} files: {on:.3f} / {off:.3f}")
    folder = corpus(10_000)
    states = FeedStore(folder, cache_dir=work / "growth-cache")._states
    path = work / "growth.bin"
    for repeat in (1, 10):
        many = {f"{number}/{name}": state for number in range(repeat) for name, state in states.items()}
        parsecache.save(path, folder, Limits(), many)
        on, off = timed_twice(lambda: parsecache.load(path, folder, Limits()))
        print(f"parsecache.load, {len(many)} states: {on:.2f} / {off:.2f}")


if __name__ == "__main__":
    sys.exit(main())
