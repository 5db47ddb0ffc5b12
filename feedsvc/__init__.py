"""feedsvc: publish news-article files as per-topic RSS 2.0 and Atom 1.0 feeds."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

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
    }


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then FEEDSVC_* environment variables, then `config`."""
    from . import web
    from .store import FeedStore

    app = Flask(__name__)
    app.config.from_mapping(default_config())
    app.config.from_prefixed_env("FEEDSVC")
    if config:
        app.config.from_mapping(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.extensions["feedsvc"] = FeedStore(app.config["SEEDS_DIR"])
    app.register_blueprint(web.bp)
    web.register_error_handlers(app)
    return app
