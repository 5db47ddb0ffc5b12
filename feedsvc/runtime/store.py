"""Holds the current Catalog, reloads changed files, and swaps in a new catalog as a whole.

Request-free (no Flask). A reload parses only the files whose size or mtime changed; a file an
edit broke keeps serving its last good version (stale) until it is fixed or removed.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TypeVar

from feedsvc.content.fields import Limits
from feedsvc.content.model import Problem
from feedsvc.errors import FeedsvcError
from feedsvc.feeds.catalog import Catalog, moved_on
from feedsvc.runtime import parsecache
from feedsvc.runtime.bodycache import RenderCache
from feedsvc.runtime.loader import (
    FileState,
    log_unusable,
    refresh,
    result_of,
    stale_names,
    unlisted_problems,
    with_unlisted,
)
from feedsvc.runtime.scan import Scan, name_in, rescan, scan
from feedsvc.runtime.watcher import Watcher

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[Catalog, Catalog], None]
# Told of every reload: the seconds it took and its outcome, "changed", "unchanged" or "failed".
ReloadObserver = Callable[[float, str], None]
CACHE_WRITE_INTERVAL = 30.0  # seconds: a large cache is not rewritten on every edit
CACHE_WRITE_PAUSE = 0.0005  # seconds the background cache write sleeps every millisecond or so
# Seconds a reload may run before /healthz calls it stuck: a full re-parse of 100,000 files takes
# about 20 s (BENCHMARKS.md), a blocked one never ends (RELOAD_STUCK_AFTER).
STUCK_AFTER = 120.0


@dataclass(frozen=True)
class Health:
    """How this process follows its folder, for /healthz: `status` is "ok", "degraded" (serving,
    but folders cannot be listed) or "unhealthy" (reloads stuck, failing, or stopped), with why."""

    status: str
    reason: str | None
    unreadable: tuple[Problem, ...]  # folders that cannot be listed (their last good articles are served)
    reload_started: datetime | None  # when the last reload began
    reload_finished: datetime | None  # when the last reload ended, well or not
    failures: int  # reloads that failed in a row


class FeedStore:
    """The catalog of one seeds folder; readers take `.catalog` once per request."""

    def __init__(
        self,
        seeds_dir: Path | str,
        render_cache_size: int = 512,
        limits: Limits = Limits(),
        cache_dir: Path | str | None = None,
        watch_events: bool = True,
        rescan_interval: float = 60.0,
        stuck_after: float = STUCK_AFTER,
        render_cache: RenderCache | None = None,  # instead of one of `render_cache_size` items
    ) -> None:
        self.seeds_dir = Path(seeds_dir)
        self.watch_events, self.rescan_interval, self.stuck_after = watch_events, rescan_interval, stuck_after
        self.limits = limits
        self.cache_path = parsecache.cache_file(Path(cache_dir), self.seeds_dir) if cache_dir else None
        self._cache_written = 0.0
        self.cache = render_cache or RenderCache(render_cache_size)
        self.listeners: list[Listener] = []
        self.reload_observers: list[ReloadObserver] = []
        self._states: dict[str, FileState] = {}
        self._reload_lock = threading.Lock()
        self._watcher: Watcher | None = None
        self.catalog = Catalog(())
        self._loaded = False
        self._writer: threading.Thread | None = None
        self._hurry = threading.Event()  # set while someone waits for the writer (flush)
        self._found: Scan | None = None
        self._cache_dirty = False  # the files changed since the cache was last written
        self._unreadable: dict[str, str] = {}  # folders the last look could not list
        self._attempts: dict[object, tuple[float, datetime]] = {}  # reloads under way: when each began
        self._last_started: datetime | None = None
        self._last_finished: datetime | None = None
        self._failures, self._last_error = 0, ""
        self._health_lock = threading.Lock()
        with self._reload_lock, collector_paused(freeze=True):
            found = None
            if self.cache_path:
                parsecache.remove_stale_temps(self.cache_path.parent)
                found, self._states = scan_while(
                    self.seeds_dir, partial(parsecache.load, self.cache_path, self.seeds_dir, self.limits)
                )
            cached = self._states
            self._swap(scanned=found)
            for name, state in self._states.items():  # a cold start logged these as it parsed them
                if state.problems and cached.get(name) is state:
                    log_unusable(state)
        self._log_loaded()

    def reload(self, touched: Iterable[str] | None = None) -> bool:
        """Re-read changed files (only the `touched` paths, when file events named them); swap in
        a new catalog in one assignment if anything changed."""
        attempt, began = self._begin(), time.perf_counter()
        try:
            with self._reload_lock, collector_paused():
                old = self.catalog
                changed = self._swap(touched)
        except BaseException as exc:
            self._end(attempt, exc)
            self._observe(time.perf_counter() - began, "failed")
            raise
        self._end(attempt, None)
        self._observe(time.perf_counter() - began, "changed" if changed else "unchanged")
        if not changed:
            return False
        self._log_loaded()
        for listener in self.listeners:
            listener(old, self.catalog)
        return True

    def _swap(self, touched: Iterable[str] | None = None, scanned: Scan | None = None) -> bool:
        """Scan (or, after file events, stat the `touched` paths; or take the scan given), parse
        what changed, and swap in the new catalog; False when nothing changed."""
        found, names = self._look(touched, scanned)
        found = with_unlisted(found, self._states)  # the files of a folder that cannot be listed stay
        self._note_unreadable(found)
        states = refresh(self.seeds_dir, self._states, found, self.limits, names)
        changed = states is not self._states and states != self._states
        if self._loaded and not changed:
            self._found = found
            return False
        first = not self._loaded
        modified = self.next_last_modified(found.newest_mtime_ns, changed)
        catalog = build_catalog(states, modified, previous=None if first else self.catalog)
        self._states, self._found, self._loaded, self.catalog = states, found, True, catalog
        if changed:  # a warm start that found every file as cached writes nothing
            self._cache_dirty = True
            self.save_cache(force=first)
        return True

    def _look(self, touched: Iterable[str] | None, scanned: Scan | None) -> tuple[Scan, Iterable[str] | None]:
        """The folder as it is now (the scan given, the last one updated for the `touched` paths,
        or a full scan), and the names that can have changed since the last look (None: all)."""
        known = self._found
        if scanned is None and touched is not None and known is not None:
            touched = list(touched)
            found = rescan(self.seeds_dir, known, touched)
            if found is not None:  # only the paths the events named: no pass over every file
                return found, {name_in(self.seeds_dir, path) for path in touched}
        found = scanned or scan(self.seeds_dir)
        if known is None:
            return found, None
        stamp_of = known.files.get
        return found, [name for name, stamp in found.files.items() if stamp_of(name) != stamp]

    def _note_unreadable(self, found: Scan) -> None:
        """Log each folder that cannot be listed when it becomes so, and again when it can be."""
        before, self._unreadable = self._unreadable, found.unreadable
        for problem in unlisted_problems(found.unreadable):
            if problem.path not in before:
                log.warning("%s: %s; the last good articles of its files are served meanwhile", problem.path,
                            problem.message)  # fmt: skip
        for folder in before.keys() - found.unreadable.keys():
            log.info("%s can be listed again", folder)

    def _begin(self) -> object:
        """Note that a reload begins (for health()); the token to end it with."""
        attempt = object()
        with self._health_lock:
            self._attempts[attempt] = (time.monotonic(), now_utc())
            self._last_started = self._attempts[attempt][1]
        return attempt

    def _end(self, attempt: object, error: BaseException | None) -> None:
        """Note how a reload ended (for health())."""
        with self._health_lock:
            self._attempts.pop(attempt, None)
            self._last_finished = now_utc()
            if error is None:
                self._failures, self._last_error = 0, ""
            else:
                self._failures, self._last_error = self._failures + 1, self.describe(error)

    def _observe(self, seconds: float, outcome: str) -> None:
        """Tell the reload observers (metrics) how a reload went."""
        for observer in self.reload_observers:
            observer(seconds, outcome)

    def describe(self, error: BaseException) -> str:
        """An error in words fit for /healthz: no absolute path (the log has the whole story)."""
        if isinstance(error, FeedsvcError):
            return str(error).replace(str(self.seeds_dir), "SEEDS_DIR")
        if isinstance(error, OSError) and error.strerror:
            return f"{type(error).__name__}: {error.strerror}"
        return type(error).__name__

    def health(self) -> Health:
        """Whether this process follows its folder: reloads neither stuck (running over
        `stuck_after` seconds) nor failing, its watcher alive; and which folders cannot be listed."""
        with self._health_lock:
            oldest = min(self._attempts.values(), default=None)
            failures, error = self._failures, self._last_error
            started, finished = self._last_started, self._last_finished
        unreadable = unlisted_problems(self._unreadable)
        watcher, status, reason = self._watcher, "ok", None
        if oldest is not None and time.monotonic() - oldest[0] > self.stuck_after:
            status = "unhealthy"
            reason = (
                f"a reload has been running since {oldest[1]:%Y-%m-%dT%H:%M:%SZ}, over RELOAD_STUCK_AFTER "
                f"({self.stuck_after:g} s): this process no longer follows changes to the files; restart it"
            )
        elif failures:
            status = "unhealthy"
            reason = f"the last {failures} reload(s) failed ({error}): the articles of the last good load are served"
        elif watcher is not None and watcher.ended_unasked():
            status, reason = "unhealthy", "the reload thread has stopped (see the log): restart this process"
        elif unreadable:
            status, reason = "degraded", "; ".join(f"{p.path}: {p.message}" for p in unreadable)
        return Health(status, reason, unreadable, started, finished, failures)

    def _log_loaded(self) -> None:
        log.info(
            "loaded %d articles from %s (%d skipped, %d stale)",
            len(self.catalog.articles),
            self.seeds_dir,
            len(self.catalog.skipped),
            len(self.catalog.stale),
        )

    def next_last_modified(self, newest_mtime_ns: int, changed: bool) -> datetime:
        """Last-Modified for the new catalog: the tree's newest mtime, but never backwards, and
        forward to now when the content changed yet no mtime moved past the last value (cp -p,
        rsync -t, a removed file): a client's If-Modified-Since must never hide a change."""
        previous = self.catalog.last_modified
        if changed and self._loaded:
            return moved_on(previous, newest_mtime_ns)
        return max(datetime.fromtimestamp(newest_mtime_ns // 1_000_000_000, tz=timezone.utc), previous)

    def save_cache(self, force: bool = False) -> None:
        """Write the parse cache on a thread of its own (not a daemon: the interpreter finishes the
        write before it exits) when files changed since the last write: at start, then at most
        every CACHE_WRITE_INTERVAL seconds (the watcher asks again every second or interval, so
        the last edit of a burst is written too). A write under way is not doubled (a cache that
        lags behind the files costs a re-parse, never a wrong answer)."""
        due = force or time.monotonic() - self._cache_written >= CACHE_WRITE_INTERVAL
        writing = self._writer is not None and self._writer.is_alive()
        if not self.cache_path or not self._cache_dirty or not due or writing:
            return
        self._cache_written, self._cache_dirty = time.monotonic(), False
        self._writer = threading.Thread(target=self._write_cache, args=(self._states,), name="feedsvc-cache")
        self._writer.start()

    def _write_cache(self, states: dict[str, FileState]) -> None:
        """Write one snapshot of the file states (the dict is replaced on reload, never changed)."""
        try:
            parsecache.save(self.cache_path, self.seeds_dir, self.limits, states, pause=CACHE_WRITE_PAUSE,
                            hurry=self._hurry)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written costs a re-parse, nothing more
            self._cache_dirty = True  # try again when the next write is due
            log.warning("cannot write the parse cache %s: %s", self.cache_path, exc)

    def flush(self) -> None:
        """Wait for a parse-cache write under way (before a short-lived process exits, or the
        server's master forks its workers), which then no longer pauses for requests: whoever
        flushes serves none meanwhile (a cold start at 10,000 files waited 0.26 s, 0.14 s this way)."""
        if self._writer is not None:
            self._hurry.set()
            try:
                self._writer.join()
            finally:
                self._hurry.clear()

    def request_reload(self) -> None:
        """Reload soon (from a signal handler): wake the watcher, or reload in a thread of its own."""
        watcher = self._watcher
        if watcher is not None and watcher.pid == os.getpid() and watcher.is_alive() and not watcher.stopping.is_set():
            watcher.wake.set()
        else:
            threading.Thread(target=self.reload, name="feedsvc-sighup", daemon=True).start()

    def watch(self, interval: float) -> None:
        """Follow changes in this process (again after a fork): by file-system events when
        `watch_events` (with a full scan every `rescan_interval` s), else by polling every
        `interval` s; `interval` 0 turns reloading off."""
        if interval <= 0:
            return
        if self._watcher is None or self._watcher.pid != os.getpid():
            self._watcher = Watcher(self, interval, self.watch_events, self.rescan_interval)
            self._watcher.start()

    def stop_watching(self) -> None:
        """Stop this process's watcher thread (tests, and a store being thrown away)."""
        if self._watcher is not None and self._watcher.pid == os.getpid():
            self._watcher.stop()


def scan_while(root: Path, work: Callable[[], T]) -> tuple[Scan, T]:
    """(scan(root), work()): the scan on a thread of its own while this one works. A scan is
    mostly stat(2) calls, which release the GIL, so reading the parse cache meanwhile hides most
    of it (a warm start at 10,000 files: BENCHMARKS.md). A scan that fails raises here."""
    with ThreadPoolExecutor(1, thread_name_prefix="feedsvc-scan") as pool:
        scanned = pool.submit(scan, root)
        done = work()
        return scanned.result(), done


def now_utc() -> datetime:
    """The current time, UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0)


@contextmanager
def collector_paused(freeze: bool = False) -> Iterator[None]:
    """Load without the cyclic garbage collector; with `freeze`, freeze what the load made.

    A load makes hundreds of thousands of objects that live until the next reload, and every
    full collection walks all of them again: the start at 100,000 articles took 37-50 s with the
    collector, 28 s without, and reloads at 10,000 paused 95-163 ms every second or third time.
    gc.freeze() after the first load moves the catalog out of every later collection (and keeps
    forked workers' pages shared); collecting first keeps older garbage out of the frozen set.
    Reloads do not freeze: a cycle alive at that moment (a request's) would never be freed.
    Catalogs hold no reference cycles, so reference counting frees the old ones.
    """
    enabled = gc.isenabled()
    if freeze:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def build_catalog(states: dict[str, FileState], last_modified: datetime, previous: Catalog | None = None) -> Catalog:
    """A catalog of the given file states, taking over what `previous` computed that still holds."""
    result = result_of(states)
    catalog = Catalog(result.articles, result.problems, stale=stale_names(states), last_modified=last_modified)
    if previous is not None:  # the files' mtimes move the public Last-Modified when published articles change
        catalog.inherit(previous, modified_ns=lambda path: states[path].stamp.mtime_ns)
    return catalog


def reload_on_sighup(store: FeedStore) -> None:
    """Reload at once on SIGHUP, where this process may set signal handlers (its main thread):
    for the server and WSGI entry points, whose process it is (an app factory sets no handler)."""
    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda signum, frame: store.request_reload())
