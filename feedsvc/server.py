"""Run the app under gunicorn (the production WSGI server) from Python, without a config file."""

from __future__ import annotations

from typing import Any

import re
from urllib.parse import unquote_plus

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

# A preview token is a secret: it never reaches a log line (PREVIEW_TOKEN). Parameters are
# split as werkzeug splits them (on "&" only) and named as it names them (percent-decoded).
_QUERY = re.compile(r"\?([^\s#]*)")
_SEMICOLON_TOKEN = re.compile(r"(;token=)[^;]*")


def redact_query(query: str) -> str:
    """A query string with the value of every parameter named `token` replaced by ***."""
    fields = []
    for field in query.split("&"):
        name, equals, _ = field.partition("=")
        if equals and unquote_plus(name) == "token":
            fields.append(f"{name}=***")
        else:  # ";token=" inside another value: not a token to werkzeug, but maybe to its sender
            fields.append(_SEMICOLON_TOKEN.sub(r"\1***", field))
    return "&".join(fields)


def redact(text: str) -> str:
    """`text` (a query string, a request line or a URL) with every preview token replaced by ***."""
    if "?" not in text:
        return redact_query(text)
    return _QUERY.sub(lambda m: "?" + redact_query(m.group(1)), text)


class RedactingLogger(Logger):
    """gunicorn's access log with preview tokens redacted from the request line and query."""

    def atoms(self, resp, req, environ, request_time) -> dict:
        """The log format's values, redacted."""
        values = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f"):  # request line, query string, Referer
            if isinstance(values.get(key), str):
                values[key] = redact(values[key])
        return values


class FeedsvcServer(BaseApplication):
    """A gunicorn application that builds the Flask app once, before forking (preload)."""

    def __init__(self, config: dict[str, Any] | None, options: dict[str, Any]) -> None:
        self.app_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Apply our options to gunicorn's settings."""
        for key, value in self.options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self):
        """Build the WSGI app (in the master when preloading, so workers share its memory)."""
        from . import create_app

        return create_app(self.app_config)


def post_worker_init(worker) -> None:
    """In each new worker: catch up with files changed since the master loaded them."""
    store = worker.wsgi.extensions["feedsvc"]
    try:
        store.reload()
    except Exception:  # noqa: BLE001 - a worker that cannot catch up still serves the preloaded data
        worker.log.exception("catching up with %s failed; the watcher will try again", store.seeds_dir)
    store.watch(worker.wsgi.config["RELOAD_INTERVAL"])


def production_options(bind: str, workers: int) -> dict[str, Any]:
    """The gunicorn settings `feedsvc serve` runs with."""
    return {
        "bind": bind,
        "workers": workers,
        "preload_app": True,
        "accesslog": "-",
        "logger_class": RedactingLogger,
        "graceful_timeout": 10,
        "post_worker_init": post_worker_init,
        # gunicorn >= 25.1 opens one control socket per user by default; two services would clash.
        "control_socket_disable": True,
    }


def run(config: dict[str, Any] | None, bind: str, workers: int) -> int:
    """Serve until stopped by SIGINT/SIGTERM (gunicorn finishes in-flight requests first)."""
    FeedsvcServer(config, production_options(bind, workers)).run()
    return 0
