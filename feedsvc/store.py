"""Holds the current Catalog, reloads changed files, and swaps in a new catalog as a whole.

Pure core (no Flask). A reload parses only the files whose size or mtime changed; a file an
edit broke keeps serving its last good version (stale) until it is fixed or removed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import parsecache
from .catalog import Catalog
from .fields import Limits
from .loader import FileState, refresh, result_of, scan
from .render import RenderCache

log = logging.getLogger(__name__)

Listener = Callable[[Catalog, Catalog], None]
CACHE_WRITE_INTERVAL = 30.0  # seconds: a large cache is not rewritten on every edit


class FeedStore:
    """The catalog of one seeds folder; readers take `.catalog` once per request."""

    def __init__(
        self,
        seeds_dir: Path | str,
        render_cache_size: int = 512,
        limits: Limits = Limits(),
        cache_dir: Path | str | None = None,
    ) -> None:
        self.seeds_dir = Path(seeds_dir)
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
        if self.cache_path:
            self._states = parsecache.load(self.cache_path, self.seeds_dir, self.limits)
        self.reload()

    def reload(self) -> bool:
        """Re-read changed files; swap in a new catalog in one assignment if anything changed."""
        with self._reload_lock:
            found = scan(self.seeds_dir)
            states = refresh(self.seeds_dir, self._states, found, self.limits)
            if self._loaded and states == self._states:
                return False
            first, changed = not self._loaded, states != self._states
            modified = self.next_last_modified(found.newest_mtime_ns, changed)
            old, self._states, self._loaded = self.catalog, states, True
            self.catalog = build_catalog(states, modified)
            if changed:  # a warm start that found every file as cached writes nothing
                self.save_cache(force=first)
        log.info("loaded %d articles from %s (%d skipped, %d stale)", len(self.catalog.articles),
                 self.seeds_dir, len(self.catalog.skipped), len(self.catalog.stale))
        if not first:  # the first load is no change anybody subscribed to
            for listener in self.listeners:
                listener(old, self.catalog)
        return True

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
        """Write the parse cache: at start, then at most every CACHE_WRITE_INTERVAL seconds."""
        if not self.cache_path or (not force and time.monotonic() - self._cache_written < CACHE_WRITE_INTERVAL):
            return
        try:
            parsecache.save(self.cache_path, self.seeds_dir, self.limits, self._states)
            self._cache_written = time.monotonic()
        except OSError as exc:
            log.warning("cannot write the parse cache %s: %s", self.cache_path, exc)

    def request_reload(self) -> None:
        """Reload soon (from a signal handler): wake the watcher, or reload in a thread of its own."""
        if self._watcher is not None and self._watcher.pid == os.getpid():
            self._watcher.wake.set()
        else:
            threading.Thread(target=self.reload, name="feedsvc-sighup", daemon=True).start()

    def watch(self, interval: float) -> None:
        """Poll for changes every `interval` seconds in this process (again after a fork)."""
        if interval <= 0:
            return
        if self._watcher is None or self._watcher.pid != os.getpid():
            self._watcher = Watcher(self, interval)
            self._watcher.start()


def build_catalog(states: dict[str, FileState], last_modified: datetime) -> Catalog:
    """A catalog of the given file states."""
    result = result_of(states)
    stale = tuple(sorted(name for name, state in states.items() if state.stale))
    return Catalog(result.articles, result.problems, stale=stale, last_modified=last_modified)


class Watcher(threading.Thread):
    """A daemon thread that reloads the store every interval, or at once when woken (SIGHUP)."""

    def __init__(self, store: FeedStore, interval: float) -> None:
        super().__init__(name="feedsvc-reload", daemon=True)
        self.store, self.interval, self.pid = store, interval, os.getpid()
        self.wake = threading.Event()

    def run(self) -> None:
        """Reload until the process ends; an error is logged and the old catalog kept."""
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                self.store.reload()
            except Exception:  # noqa: BLE001 - a failed reload must never stop serving
                log.exception("reload of %s failed; still serving the previous catalog", self.store.seeds_dir)
