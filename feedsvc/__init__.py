"""feedsvc: publish news-article files as per-topic RSS 2.0 and Atom 1.0 feeds."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from flask import Config, Flask

from .fastpath import ResponseCache
from .fields import Limits
from .parsecache import default_cache_dir

PROJECT_SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def default_config() -> dict[str, Any]:
    """The settings a bare `create_app()` runs with."""
    return {
        "SEEDS_DIR": str(PROJECT_SEEDS if PROJECT_SEEDS.is_dir() else Path.cwd() / "seeds"),
        "DEFAULT_LIMIT": 50,
        "MAX_LIMIT": 500,
        "BASE_URL": None,  # None: the URL the request came to
        "SITE_TITLE": "feedsvc",
        "FEED_AUTHOR": "feedsvc",
        "MAX_AGE": 300,  # seconds: Cache-Control max-age and RSS <ttl>
        "RELOAD_INTERVAL": 2,  # seconds between checks for changed files when polling; 0: no reloads
        "WATCH_EVENTS": True,  # reload on file-system events (inotify) instead of polling
        "RESCAN_INTERVAL": 60,  # seconds between full scans when following events (events can be lost)
        "RELOAD_STUCK_AFTER": 120,  # seconds a reload may run before /healthz calls this worker unhealthy
        "RENDER_CACHE_SIZE": 512,  # rendered bodies kept (LRU)
        "FAST_PATH": True,  # replay finished feed responses in front of Flask
        "FEED_PAGING": True,  # RFC 5005 paging links; off for static builds (a static host ignores ?page=)
        "WEBSUB_HUB": None,  # URL of a WebSub hub to advertise and notify
        "CACHE_DIR": str(default_cache_dir()),  # parse cache; "" turns it off
        "PREVIEW_TOKEN": None,  # when set, include=all needs token=<it>
        "MAX_FILE_BYTES": 1_000_000,  # a larger article file is skipped
        "MAX_TITLE_CHARS": 300,  # longer titles are cut at a word boundary
        "MAX_EXCERPT_CHARS": 1_000,  # longer excerpts are cut at a word boundary
    }


TEXT_SETTINGS = ("SEEDS_DIR", "BASE_URL", "SITE_TITLE", "FEED_AUTHOR", "CACHE_DIR", "PREVIEW_TOKEN", "WEBSUB_HUB")


def limits_of(config) -> Limits:
    """The loader's size limits from a config mapping."""
    return Limits(config["MAX_FILE_BYTES"], config["MAX_TITLE_CHARS"], config["MAX_EXCERPT_CHARS"])


def create_config(config: dict[str, Any] | None = None) -> Config:
    """Defaults, then FEEDSVC_* environment variables (JSON-decoded where they parse), then `config`."""
    settings = Config(str(Path(__file__).parent))
    settings.from_mapping(default_config())
    settings.from_prefixed_env("FEEDSVC")
    for key in TEXT_SETTINGS:  # from_prefixed_env reads JSON: a token "20240611" must stay text
        if f"FEEDSVC_{key}" in os.environ:
            settings[key] = os.environ[f"FEEDSVC_{key}"]
    if config:
        settings.from_mapping(config)
    return settings


def reload_on_sighup(store) -> None:
    """Reload at once on SIGHUP, where this process may set signal handlers (its main thread)."""
    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda signum, frame: store.request_reload())


def websub_listener(config):
    """Notify the hub of every public feed a reload changed; needs BASE_URL to name the feeds."""
    from .errors import FeedsvcError
    from .publish import Site
    from .websub import HubNotifier, changed_feed_urls

    if not config["BASE_URL"]:
        raise FeedsvcError("WEBSUB_HUB needs BASE_URL (FEEDSVC_BASE_URL): the hub is told absolute feed URLs")
    site = Site(config["BASE_URL"], default_limit=config["DEFAULT_LIMIT"])
    key = hashlib.sha256(str(Path(config["SEEDS_DIR"]).resolve()).encode()).hexdigest()[:16]
    notifier = HubNotifier(config["WEBSUB_HUB"], lock_path=str(Path(tempfile.gettempdir()) / f"feedsvc-websub-{key}.lock"))
    return lambda old, new: notifier.publish(changed_feed_urls(site, old, new))


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then FEEDSVC_* environment variables, then `config`."""
    from . import web
    from .store import FeedStore

    app = Flask(__name__)
    app.config.update(create_config(config))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = FeedStore(
        app.config["SEEDS_DIR"], app.config["RENDER_CACHE_SIZE"], limits_of(app.config), app.config["CACHE_DIR"] or None,
        watch_events=app.config["WATCH_EVENTS"], rescan_interval=app.config["RESCAN_INTERVAL"],
        stuck_after=app.config["RELOAD_STUCK_AFTER"],
    )
    app.extensions["feedsvc"] = store
    if app.config["WEBSUB_HUB"]:
        store.listeners.append(websub_listener(app.config))
    # Started lazily, and again in each forked worker: a thread does not survive fork().
    def watch() -> None:
        store.watch(app.config["RELOAD_INTERVAL"])

    app.before_request(watch)
    if app.config["FAST_PATH"]:
        app.wsgi_app = ResponseCache(app.wsgi_app, store, watch, app.config["RENDER_CACHE_SIZE"])
    reload_on_sighup(store)
    app.register_blueprint(web.bp)
    web.register_error_handlers(app)
    return app
