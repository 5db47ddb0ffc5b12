"""The reload thread: follows file-system events (or polls) and reloads the store."""

from __future__ import annotations

import atexit
import logging
import os
import stat
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feedsvc.runtime.store import FeedStore

log = logging.getLogger(__name__)
FOLDER_RETRY = 1.0  # seconds between looks for a vanished seeds folder while following events


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder (through links), None when it is not there: a folder deleted
    and made again, or another renamed over it, or a link turned to another, is another folder."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


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

    def start(self) -> None:
        """Start the thread, and have it stopped before the interpreter exits (see stop_all)."""
        if not RUNNING:
            atexit.register(stop_all)
        RUNNING.add(self)
        super().start()

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
        except Exception:
            log.exception("reload of %s failed; still serving the previous catalog", self.store.seeds_dir)
            return False

    def stop(self) -> None:
        """Stop following changes (the thread ends within about 50 ms)."""
        self.stopping.set()
        self.wake.set()


# Every watcher started in this process. At exit a daemon thread is not joined: it is cut off
# where it next touches the interpreter, and one cut off inside watchfiles' Rust code aborted the
# whole process ("FATAL: exception not rethrown", exit status 134, with watchfiles 1.0). So each
# is stopped and joined first: atexit runs while daemon threads still run (Python's finalization).
RUNNING: weakref.WeakSet[Watcher] = weakref.WeakSet()
STOP_TIMEOUT = 2.0  # seconds an exiting process waits for its watchers in all


def stop_all() -> None:
    """Stop every watcher of this process and wait for them, at most STOP_TIMEOUT in all."""
    watchers = [watcher for watcher in list(RUNNING) if watcher.pid == os.getpid()]
    for watcher in watchers:
        watcher.stop()
    deadline = time.monotonic() + STOP_TIMEOUT
    for watcher in watchers:
        watcher.join(max(0.0, deadline - time.monotonic()))
