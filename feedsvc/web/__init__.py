"""The web layer: the Flask app factory, over the request-free core and the runtime."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from feedsvc.config import create_config, limits_of
from feedsvc.errors import FeedsvcError
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.site import Site
from feedsvc.runtime.bodycache import RenderCache
from feedsvc.runtime.store import FeedStore
from feedsvc.runtime.websub import HubNotifier, changed_feed_urls
from feedsvc.web import views
from feedsvc.web.fastpath import ResponseCache


def websub_listener(config: Mapping[str, Any]) -> Callable[[Catalog, Catalog], None]:
    """Notify the hub of every public feed a reload changed; needs BASE_URL to name the feeds."""
    if not config["BASE_URL"]:
        raise FeedsvcError("WEBSUB_HUB needs BASE_URL (FEEDSVC_BASE_URL): the hub is told absolute feed URLs")
    site = Site(config["BASE_URL"], default_limit=config["DEFAULT_LIMIT"])
    key = hashlib.sha256(str(Path(config["SEEDS_DIR"]).resolve()).encode()).hexdigest()[:16]
    notifier = HubNotifier(
        config["WEBSUB_HUB"], lock_path=str(Path(tempfile.gettempdir()) / f"feedsvc-websub-{key}.lock")
    )
    return lambda old, new: notifier.publish(changed_feed_urls(site, old, new))


def cache_bounds(config: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Items and bytes of the feeds, then of the filtered feeds, that each cache may keep."""
    keys = ("RENDER_CACHE_SIZE", "RENDER_CACHE_BYTES", "FILTERED_CACHE_SIZE", "FILTERED_CACHE_BYTES")
    return tuple(config[key] for key in keys)  # type: ignore[return-value]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then FEEDSVC_* environment variables, then `config`.

    No global side effects: logging is set up by the CLI and the server, and so is the SIGHUP
    handler (feedsvc.server.reload_on_sighup), where the process is theirs."""
    app = Flask(__name__)
    app.config.update(create_config(config))
    store = FeedStore(
        app.config["SEEDS_DIR"],
        app.config["RENDER_CACHE_SIZE"],
        limits_of(app.config),
        app.config["CACHE_DIR"] or None,
        watch_events=app.config["WATCH_EVENTS"],
        rescan_interval=app.config["RESCAN_INTERVAL"],
        stuck_after=app.config["RELOAD_STUCK_AFTER"],
        render_cache=RenderCache(*cache_bounds(app.config)),
    )
    app.extensions["feedsvc"] = store
    if app.config["WEBSUB_HUB"]:
        store.listeners.append(websub_listener(app.config))

    # Started lazily, and again in each forked worker: a thread does not survive fork().
    def watch() -> None:
        store.watch(app.config["RELOAD_INTERVAL"])

    app.before_request(watch)
    count_replays = None
    if app.config["METRICS"]:
        from feedsvc.web.metrics import install_metrics  # imports prometheus_client: only when asked for

        count_replays = install_metrics(app, store)
    if app.config["FAST_PATH"]:
        app.wsgi_app = ResponseCache(app.wsgi_app, store, watch, *cache_bounds(app.config), count=count_replays)
    app.register_blueprint(views.bp)
    views.register_error_handlers(app)
    return app
