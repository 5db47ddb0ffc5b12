"""Holds the current Catalog, reloads changed files, and swaps in a new catalog as a whole.

Pure core (no Flask). A reload parses only the files whose size or mtime changed; a file an
edit broke keeps serving its last good version (stale) until it is fixed or removed.
"""

from __future__ import annotations

import gc
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from . import parsecache
from .catalog import Catalog
from .errors import FeedsvcError
from .fields import Limits
from .loader import (
    FileState,
    Scan,
    log_unusable,
    name_in,
    refresh,
    rescan,
    result_of,
    scan,
    stale_names,
    unlisted_problems,
    with_unlisted,
)
from .model import Problem
from .parallel import alongside
from .render import RenderCache

log = logging.getLogger(__name__)

Listener = Callable[[Catalog, Catalog], None]
CACHE_WRITE_INTERVAL = 30.0  # seconds: a large cache is not rewritten on every edit
CACHE_WRITE_PAUSE = 0.0005  # seconds the background cache write sleeps every millisecond or so
# Seconds a reload may run before /healthz calls it stuck: a full re-parse of 100,000 files takes
# about 20 s (BENCHMARKS.md), a blocked one never ends (RELOAD_STUCK_AFTER).
STUCK_AFTER = 120.0
FOLDER_RETRY = 1.0  # seconds between looks for a vanished seeds folder while following events


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
    ) -> None:
        self.seeds_dir = Path(seeds_dir)
        self.watch_events, self.rescan_interval, self.stuck_after = watch_events, rescan_interval, stuck_after
        self.limits = limits
        self.cache_path = parsecache.cache_file(Path(cache_dir), self.seeds_dir) if cache_dir else None
        self._cache_written = 0.0
        self.cache = RenderCache(render_cache_size)
        self.listeners: list[Listener] = []
        self._states: dict[str, FileState] = {}
        self._reload_lock = threading.Lock()
        self._watcher: Watcher | None = None
        self.catalog = Catalog(())
        self._loaded = False
        self._writer: threading.Thread | None = None
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
            if self.cache_path:  # the stat of every file runs in a forked child while the cache is read
                parsecache.remove_stale_temps(self.cache_path.parent)
                read_cache = partial(parsecache.load, self.cache_path, self.seeds_dir, self.limits)
                found, self._states = alongside(partial(scan, self.seeds_dir), read_cache)
            cached = self._states
            self._swap(scanned=found)
            for name, state in self._states.items():  # a cold start logged these as it parsed them
                if state.problems and cached.get(name) is state:
                    log_unusable(state)
        self._log_loaded()

    def reload(self, touched: Iterable[str] | None = None) -> bool:
        """Re-read changed files (only the `touched` paths, when file events named them); swap in
        a new catalog in one assignment if anything changed."""
        attempt = self._begin()
        try:
            with self._reload_lock, collector_paused():
                old = self.catalog
                changed = self._swap(touched)
        except BaseException as exc:
            self._end(attempt, exc)
            raise
        self._end(attempt, None)
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
        if self._loaded and states == self._states:
            self._found = found
            return False
        first, changed = not self._loaded, states != self._states
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
        for problem in unlisted_problems(found):
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
        unreadable = unlisted_problems(Scan({}, 0, self._unreadable))
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
        log.info("loaded %d articles from %s (%d skipped, %d stale)", len(self.catalog.articles),
                 self.seeds_dir, len(self.catalog.skipped), len(self.catalog.stale))

    def next_last_modified(self, newest_mtime_ns: int, changed: bool) -> datetime:
        """Last-Modified for the new catalog: the tree's newest mtime, but never backwards, and
        forward to now when the content changed yet no mtime moved past the last value (cp -p,
        rsync -t, a removed file): a client's If-Modified-Since must never hide a change."""
        previous = self.catalog.last_modified
        modified = datetime.fromtimestamp(newest_mtime_ns // 1_000_000_000, tz=timezone.utc)
        if changed and self._loaded and modified <= previous:
            modified = datetime.now(timezone.utc).replace(microsecond=0)
        return max(modified, previous)

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
            parsecache.save(self.cache_path, self.seeds_dir, self.limits, states, pause=CACHE_WRITE_PAUSE)
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written costs a re-parse, nothing more
            self._cache_dirty = True  # try again when the next write is due
            log.warning("cannot write the parse cache %s: %s", self.cache_path, exc)

    def flush(self) -> None:
        """Wait for a parse-cache write under way (before a short-lived process exits)."""
        if self._writer is not None:
            self._writer.join()

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


def now_utc() -> datetime:
    """The current time, UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder (through links), None when it is not there: a folder deleted
    and made again, or another renamed over it, or a link turned to another, is another folder."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


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


class Watcher(threading.Thread):
    """A daemon thread that reloads the store when files change, and at once when woken (SIGHUP).

    Polling a folder means a stat() of every file each time: 60-80 ms at 10,000 files and about
    a second at 100,000, every RELOAD_INTERVAL, in every worker. File-system events (inotify on
    Linux, through watchfiles) name the changed paths instead, so a reload stats and parses only
    those. Events can be lost (a full event queue, network file systems), so a full scan still
    runs every `rescan_interval`; where events cannot be had at all, the watcher polls.
    """

    def __init__(self, store: FeedStore, interval: float, events: bool = True, rescan_interval: float = 60.0) -> None:
        super().__init__(name="feedsvc-reload", daemon=True)
        self.store, self.interval, self.pid = store, interval, os.getpid()
        self.events, self.rescan_interval = events, rescan_interval
        self.wake = threading.Event()  # SIGHUP: a full reload now
        self.stopping = threading.Event()
        self.following = False  # whether file events are being followed (else polling)

    def run(self) -> None:
        """Follow file events if asked and possible, else poll, until stopped."""
        try:
            if self.events:
                try:
                    self.follow_events()
                    return
                except Exception as exc:  # noqa: BLE001 - no inotify (watch limit, platform): poll instead
                    self.following = False
                    log.warning("cannot follow file events in %s (%s); polling every %s s",
                                self.store.seeds_dir, exc, self.interval)  # fmt: skip
            self.poll()
        except Exception:  # logged here, and /healthz reports the thread stopped
            log.exception("the reload thread of %s stopped: this process no longer follows changes; restart it",
                          self.store.seeds_dir)  # fmt: skip

    def poll(self) -> None:
        """Reload every interval, or at once when woken."""
        while not self.stopping.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            if not self.stopping.is_set():
                self.reload(None)
                self.store.save_cache()

    def follow_events(self) -> None:
        """Reload the paths each batch of file events names; a full reload when woken or due.

        An inotify watch is on the folder it was set on, not on its path: after `rm -rf seeds &&
        cp -r backup seeds` (or a rename over it, or a link turned) no event ever comes again, and
        edits waited for the next full scan. So every batch (an empty one at least every second)
        checks that the path is still the folder watched, and a new watch is set when it is not."""
        from watchfiles import watch

        root = Path(os.path.normpath(self.store.seeds_dir))
        last_full, replaced = time.monotonic(), False
        while not self.stopping.is_set():
            identity = folder_identity(root)
            if identity is None:
                self.reload(None)  # fails while the folder is missing: logged, and /healthz tells
                self.wait_for_folder()
                replaced = True
                continue
            if replaced:  # a new folder is there already: serve it now, not after the first batch
                self.reload(None)
                replaced = False
            # Files changed before the watch was set up sent no event: the first batch (at the
            # latest after a second) is answered with a full reload.
            full_due = True
            try:
                # watchfiles yields a batch once 25 ms pass without a new event (an editor's save is
                # several events), an empty one every second without any, and returns when woken.
                for changes in watch(root, watch_filter=None, step=25, rust_timeout=1000, yield_on_timeout=True,
                                     stop_event=self, raise_interrupt=False):  # fmt: skip
                    # The folder itself deleted (a new one may have the old one's inode number
                    # already), or another folder at its path now: watch that one instead.
                    if any(path == str(root) for _, path in changes) or folder_identity(root) != identity:
                        replaced = True
                        break
                    self.following = True
                    if changes and not full_due:
                        # A failed reload forgets the paths it was given: the next one is a full one.
                        full_due = not self.reload([path for _, path in changes])
                    elif full_due or time.monotonic() - last_full >= self.rescan_interval:
                        full_due = not self.reload(None)
                        last_full = time.monotonic()
                    self.store.save_cache()  # a write that was not due at the last change may be now
            except FileNotFoundError:
                if folder_identity(root) is not None:
                    raise
                continue  # the folder vanished as the watch was being set up
            if self.wake.is_set() and not self.stopping.is_set():
                self.wake.clear()
                self.reload(None)
                last_full = time.monotonic()

    def wait_for_folder(self) -> None:
        """Wait until the seeds folder is there again (looking every FOLDER_RETRY s), or until woken."""
        while not self.stopping.is_set() and folder_identity(self.store.seeds_dir) is None:
            if self.wake.wait(FOLDER_RETRY):
                if not self.stopping.is_set():
                    self.wake.clear()  # SIGHUP: the caller reloads now
                return

    def ended_unasked(self) -> bool:
        """Whether this process's watcher thread has ended without being stopped (an error)."""
        return self.pid == os.getpid() and self.ident is not None and not self.is_alive() and not self.stopping.is_set()

    def is_set(self) -> bool:
        """For watchfiles' stop_event: stop watching when woken or stopped."""
        return self.wake.is_set() or self.stopping.is_set()

    def reload(self, touched: list[str] | None) -> bool:
        """Reload the store; False when it failed (logged; the old catalog is kept)."""
        try:
            self.store.reload(touched)
            return True
        except Exception:  # noqa: BLE001 - a failed reload must never stop serving
            log.exception("reload of %s failed; still serving the previous catalog", self.store.seeds_dir)
            return False

    def stop(self) -> None:
        """Stop following changes (the thread ends within about 50 ms)."""
        self.stopping.set()
        self.wake.set()
