"""Tell a WebSub hub (W3C Recommendation, section 4) which feeds a reload changed.

Pure core (no Flask). Notifications go out from a background thread with retries and
exponential backoff, so a hub that is slow or down never slows or breaks serving.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from feedsvc.errors import TopicNotFound
from feedsvc.feeds.catalog import Catalog

log = logging.getLogger(__name__)
PUBLIC_FORMATS = ("rss", "atom", "json")


def first_page(catalog: Catalog, slug: str | None, limit: int) -> tuple | None:
    """The entries a subscriber of the feed's default URL sees, or None if it does not exist."""
    try:
        return (catalog.public_topic_names.get(slug), catalog.entries(slug, False)[:limit])
    except TopicNotFound:
        return None


def changed_feed_urls(site, old: Catalog, new: Catalog) -> list[str]:
    """The default (public, first-page) URL of every feed whose content differs between catalogs."""
    slugs = [None, *sorted(set(old.topic_names) | set(new.topic_names))]
    changed = [s for s in slugs if first_page(old, s, site.default_limit) != first_page(new, s, site.default_limit)]
    return [site.feed_url(slug, fmt) for slug in changed for fmt in PUBLIC_FORMATS]


class HubNotifier:
    """Sends `hub.mode=publish` for each changed feed URL from one daemon thread.

    Under a preforking server every worker notices the same change; only the worker holding
    an exclusive lock on `lock_path` (if given) notifies, so the hub hears of it once.
    """

    def __init__(
        self,
        hub_url: str,
        attempts: int = 5,
        first_delay: float = 1.0,
        timeout: float = 10.0,
        lock_path: str | None = None,
    ) -> None:
        self.hub_url, self.attempts, self.first_delay, self.timeout = hub_url, attempts, first_delay, timeout
        self.lock_path = lock_path
        self._lock_file = None
        self._pid: int | None = None
        self.queue: queue.Queue[str] = queue.Queue(maxsize=10_000)
        self.thread: threading.Thread | None = None

    def _ready(self) -> bool:
        """Start the sending thread in this process (threads do not survive fork) if it leads."""
        if self._pid != os.getpid():
            self._pid, self._lock_file = os.getpid(), None
            self.queue = queue.Queue(maxsize=10_000)
            self.thread = threading.Thread(target=self._run, name="feedsvc-websub", daemon=True)
            self.thread.start()
        return self.lock_path is None or self._holds_lock()

    def _holds_lock(self) -> bool:
        """Take (or keep) the notifier lock: an flock held until this process ends."""
        if self._lock_file is None:
            handle = open(self.lock_path, "a")  # noqa: SIM115 - held open for the process's life
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
            self._lock_file = handle
        return True

    def publish(self, urls: list[str]) -> None:
        """Queue notifications without waiting; when the queue is full the oldest work is dropped."""
        if not urls or not self._ready():
            return
        for url in urls:
            try:
                self.queue.put_nowait(url)
            except queue.Full:
                log.warning("WebSub queue full; not notifying %s for %s", self.hub_url, url)

    def _run(self) -> None:
        """Send queued notifications one by one, forever."""
        while True:
            self.notify(self.queue.get())
            self.queue.task_done()

    def notify(self, url: str) -> bool:
        """POST one notification, retrying with exponential backoff; True once the hub accepted it."""
        body = urlencode({"hub.mode": "publish", "hub.url": url, "hub.topic": url}).encode()
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                request = urllib.request.Request(self.hub_url, data=body, method="POST")
                request.add_header("Content-Type", "application/x-www-form-urlencoded")
                with urllib.request.urlopen(request, timeout=self.timeout):
                    return True  # urlopen raises on any status >= 400
            except (urllib.error.URLError, OSError) as exc:
                log.warning("WebSub hub %s: attempt %d for %s failed: %s", self.hub_url, attempt, url, exc)
            if attempt < self.attempts:
                time.sleep(delay)
                delay *= 2
        log.error("WebSub hub %s never accepted %s; giving up", self.hub_url, url)
        return False
