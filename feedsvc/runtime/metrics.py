"""Operators' metrics, defined with prometheus_client (the Prometheus project's own client).

Request-free (no Flask); imported only when METRICS is on, because prometheus_client picks its
storage when it is first imported: with PROMETHEUS_MULTIPROC_DIR set (feedsvc.server sets it
for its workers), every process writes its values to mmap files in that folder and a scrape
sums them (https://prometheus.github.io/client_python/multiprocess/); without it (the test
client, one wsgi.py process) values live in this process's registry. Each app has a registry
of its own, so two apps in one process (tests) never share a count.

The core knows nothing of this module: it reports through hooks (FeedStore.reload_observers,
RenderCache.on_lookup, ResponseCache's replay counter), attached here and in feedsvc.web.metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from feedsvc.runtime.store import FeedStore

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's switch to its multiprocess mode
# A reload that finds nothing changed takes a millisecond or less; a full re-parse of 100,000 files ~20 s.
RELOAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Gauges of the folder as the last reload saw it. In multiprocess mode each worker writes its own
# value; "livemostrecent" reports the value set last, by any worker still alive: every worker
# follows the same folder, so the newest reload's view is the service's (a sum would count the
# articles once per worker, "max" would keep a figure from before files were removed). Dead
# workers' values are dropped (feedsvc.server marks them dead), the master's first-load values
# are older than any worker's catch-up reload.
FOLDER_GAUGE_MODE = "livemostrecent"


def multiprocess_dir() -> str | None:
    """The folder every process writes its values to, or None in the one-process mode."""
    return os.environ.get(MULTIPROC_DIR) or None


class Metrics:
    """The service's metrics in one registry; `exposition()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "feedsvc_http_requests",
            "HTTP requests answered, by route kind, status, and what answered (the fast path's replay or the app)",
            ["kind", "status", "served_by"],
            registry=self.registry,
        )
        self.render_cache = Counter(
            "feedsvc_render_cache_lookups",
            "Look-ups of a rendered feed body: hit (reused) or miss (rendered)",
            ["result"],
            registry=self.registry,
        )
        self.reloads = Histogram(
            "feedsvc_reload_duration_seconds",
            "Reloads of the articles folder (each check for changed files) and how long they took, by outcome",
            ["outcome"],
            buckets=RELOAD_BUCKETS,
            registry=self.registry,
        )
        # Only public figures, as /healthz shows them without the preview token: drafts never count.
        self.published = self._folder_gauge("feedsvc_published_articles", "Published articles served")
        self.topics = self._folder_gauge("feedsvc_public_topics", "Topics with published articles")
        self.skipped = self._folder_gauge("feedsvc_skipped_files", "Article files not served, for errors")
        self.stale = self._folder_gauge("feedsvc_stale_files", "Article files served as last good (an edit broke them)")
        # "max": the newest success of any worker, alive or not (it did happen). A stuck or failing
        # worker shows on its /healthz, and here in feedsvc_reload_duration_seconds_count{outcome="failed"}.
        self.last_reload = Gauge(
            "feedsvc_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load or reload of the articles folder",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self._hits, self._misses = self.render_cache.labels("hit"), self.render_cache.labels("miss")
        self._counters: dict[tuple[str, int, str], Callable[[], None]] = {}

    def _folder_gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=self.registry, multiprocess_mode=FOLDER_GAUGE_MODE)

    def attach(self, store: FeedStore, public_figures: Callable[[], dict[str, int]]) -> None:
        """Follow `store`: its reloads, its render cache, and the folder's public figures (from
        `public_figures()`: published, topics, skipped, stale), set now and after every reload."""
        store.cache.on_lookup = self.count_lookup

        def observe(seconds: float, outcome: str) -> None:
            self.reloads.labels(outcome).observe(seconds)
            if outcome == "changed":  # the figures are the catalog's: O(articles), so only for a new one
                self.folder_seen(public_figures())
            if outcome != "failed":
                self.last_reload.set_to_current_time()

        store.reload_observers.append(observe)
        self.folder_seen(public_figures())  # the store's first load
        self.last_reload.set_to_current_time()

    def folder_seen(self, figures: dict[str, int]) -> None:
        """A load or reload found these public figures."""
        self.published.set(figures["published"])
        self.topics.set(figures["topics"])
        self.skipped.set(figures["skipped"])
        self.stale.set(figures["stale"])

    def count_lookup(self, hit: bool) -> None:
        """One render-cache look-up."""
        (self._hits if hit else self._misses).inc()

    def counter(self, kind: str, status: int, served_by: str) -> Callable[[], None]:
        """What counts one request of this kind, status and server (its labels looked up once)."""
        key = (kind, status, served_by)
        count = self._counters.get(key)
        if count is None:  # a few dozen keys at most: the labels are a closed set
            count = self._counters[key] = self.requests.labels(kind, str(status), served_by).inc
        return count

    def exposition(self) -> bytes:
        """The text exposition format: every process's values in the multiprocess mode, else this registry's."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        return generate_latest(registry)
