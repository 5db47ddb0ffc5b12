#!/usr/bin/env python3
"""The real feedsvc app plus `/bench/constant`: the framework's floor, for bench/speed.py.

`/bench/constant` is a plain Flask route that returns the exact bytes and Content-Type of one
cached topic feed (BENCH_FEED_PATH, default /topics/ai/rss.xml), fetched once at start. It runs
through Flask itself (routing, before/after-request hooks, Response), but not through feedsvc's
fast path (fastpath.ResponseCache), which would otherwise keep and replay it like a feed. So

    feed rate / constant rate

says how close feedsvc's cached feed comes to what the same server, worker and framework can do
at all with the same bytes. Everything else (the feed itself) goes through the full app as in
production. Settings come from FEEDSVC_* environment variables; set FEEDSVC_BASE_URL so that the
feed's bytes do not depend on the Host header (the constant bytes are fetched with the test client).

Servers (run from the project folder, with the venv's Python):

    python bench/floor_app.py feedsvc-run --bind 127.0.0.1:8001 --workers 1
        exactly `feedsvc serve` (feedsvc.server.run: gunicorn, preload, access log, ...), serving
        this app instead of plain create_app()
    python bench/floor_app.py gunicorn --bind ... --workers 2 [--worker-class gthread --threads 8] [--no-access-log]
        FeedsvcServer with run()'s options, changed as given
    python bench/floor_app.py bjoern --bind ... --workers 2
        bjoern (libev, C): the app is built once, then the listening socket is shared by forked workers
    granian --interface wsgi --workers 2 --working-dir bench floor_app:app
        granian imports `app` from this module (built on first access)
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

FEED_PATH = os.environ.get("BENCH_FEED_PATH", "/topics/ai/rss.xml")
CONSTANT_PATH = "/bench/constant"

# The feedsvc of this tree, whatever the venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Dispatch:
    """Send /bench/constant to Flask's own handler (no fast path), everything else to the full app."""

    def __init__(self, full, flask_core) -> None:
        self.full, self.flask_core = full, flask_core

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == CONSTANT_PATH:
            return self.flask_core(environ, start_response)
        return self.full(environ, start_response)


def build(config: dict | None = None, feed_path: str = FEED_PATH):
    """The Flask app of `create_app(config)` with the constant route added; returns the app."""
    import feedsvc
    from flask import Flask, Response

    create_app = getattr(feedsvc, "_bench_real_create_app", feedsvc.create_app)
    app = create_app(config)
    constant: dict[str, object] = {}

    @app.get(CONSTANT_PATH)  # registered before the app handles its first request (Flask requires it)
    def bench_constant():
        return Response(constant["body"], content_type=constant["content_type"])

    # Fetch the feed once, as a client would. No reload watcher may start here: in a gunicorn
    # master (preload) it would poll the folder forever beside the workers.
    interval = app.config["RELOAD_INTERVAL"]
    app.config["RELOAD_INTERVAL"] = 0
    try:
        probe = app.test_client().get(feed_path)
    finally:
        app.config["RELOAD_INTERVAL"] = interval
    if probe.status_code != 200:
        raise SystemExit(f"floor_app: {feed_path} answered {probe.status_code}: {probe.get_data(as_text=True)[:200]}")
    constant["body"] = probe.get_data()
    constant["content_type"] = probe.headers["Content-Type"]
    app.wsgi_app = Dispatch(app.wsgi_app, types.MethodType(Flask.wsgi_app, app))
    return app


def __getattr__(name: str):
    """`app` for servers that import this module (granian, gunicorn CLI): built on first access."""
    if name == "app":
        built = build()
        globals()["app"] = built
        return built
    raise AttributeError(name)


def serve_feedsvc_run(bind: str, workers: int) -> int:
    """`feedsvc serve` exactly: feedsvc.server.run, with create_app swapped for build()."""
    import feedsvc
    from feedsvc import server

    feedsvc._bench_real_create_app = feedsvc.create_app
    feedsvc.create_app = lambda config=None: build(config)  # FeedsvcServer.load imports it from the package
    return server.run(None, bind=bind, workers=workers)


def serve_gunicorn(bind: str, workers: int, worker_class: str, threads: int, access_log: bool) -> int:
    """FeedsvcServer (preload) with run()'s options, changed as asked."""
    from feedsvc.server import FeedsvcServer, production_options

    class FloorServer(FeedsvcServer):
        def load(self):
            return build(self.app_config)

    options = production_options(bind, workers) | {"worker_class": worker_class, "threads": threads}
    if not access_log:
        options["accesslog"] = None
    FloorServer(None, options).run()
    return 0


def serve_bjoern(bind: str, workers: int) -> int:
    """bjoern: build once, listen once, fork workers that share the socket (like a preload)."""
    import signal

    import bjoern

    host, _, port = bind.rpartition(":")
    wsgi = build()
    bjoern.listen(wsgi, host, int(port), reuse_port=False)
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)

    def stop(signum, frame):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bjoern.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the feedsvc app with the /bench/constant floor route.")
    parser.add_argument("server", choices=("feedsvc-run", "gunicorn", "bjoern"))
    parser.add_argument("--bind", default="127.0.0.1:8000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.server == "feedsvc-run":
        return serve_feedsvc_run(args.bind, args.workers)
    if args.server == "gunicorn":
        return serve_gunicorn(args.bind, args.workers, args.worker_class, args.threads, not args.no_access_log)
    return serve_bjoern(args.bind, args.workers)


if __name__ == "__main__":
    sys.exit(main())
