"""/metrics (Prometheus text format) and the request counting behind it; installed by
create_app only when METRICS is on (FEEDSVC_METRICS=true), so prometheus_client is imported then only."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from feedsvc.feeds.site import FILE_NAMES
from feedsvc.runtime.metrics import Metrics
from feedsvc.runtime.store import FeedStore
from feedsvc.web.fastpath import ReplayCounter
from feedsvc.web.views import health_report

bp = Blueprint("metrics", __name__)

_DOCUMENTS = {f"/{name}": "digest" if fmt.startswith("digest") else "feed" for fmt, name in FILE_NAMES.items()}
_PATHS = {"/feeds.opml": "opml", "/healthz": "healthz", "/metrics": "metrics"}


def route_kind(path: str) -> str:
    """The route kind a path asks for: feed, digest, page (an HTML page: the index, a topic's),
    opml, healthz, metrics, or other. From the path alone, so a 404 is counted under the kind asked for."""
    if path in _PATHS:
        return _PATHS[path]
    if path.endswith("/"):
        return "page"
    tail = path[path.rfind("/") :]
    return _DOCUMENTS.get(tail, "other")


def current_metrics() -> Metrics:
    """The app's metrics."""
    return current_app.extensions["feedsvc.metrics"]


@bp.get("/metrics")
def metrics() -> Response:
    """Every worker's metrics in the Prometheus text exposition format."""
    response = Response(current_metrics().exposition(), content_type=CONTENT_TYPE_LATEST)
    response.cache_control.no_store = True  # a scrape is a reading of now
    return response


def count_response(response: Response) -> Response:
    """Count a response the app made (a replay of the fast path counts itself)."""
    current_metrics().counter(route_kind(request.path), response.status_code, "app")()
    return response


def install_metrics(app: Flask, store: FeedStore) -> ReplayCounter:
    """Serve /metrics, count the app's responses and follow `store`; what counts the fast path's replays."""
    metrics = Metrics()
    app.extensions["feedsvc.metrics"] = metrics

    def public_figures() -> dict[str, int]:
        # /healthz's report without the preview token's figures: drafts never count here.
        report = health_report(store.catalog, store.health(), everything=False)
        return {key: len(value) if isinstance(value, list) else value for key, value in report.items()
                if key in ("published", "topics", "skipped", "stale")}  # fmt: skip

    metrics.attach(store, public_figures)
    app.register_blueprint(bp)
    app.after_request(count_response)
    return lambda path, status: metrics.counter(route_kind(path), status, "fastpath")
