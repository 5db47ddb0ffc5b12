#!/usr/bin/env python3
"""The real feedsvc app plus `/bench/constant`: the framework's floor, for bench/speed.py.

`/bench/constant` is a plain Flask route that returns the exact bytes and Content-Type of one
cached topic feed (BENCH_FEED_PATH, default /topics/ai/rss.xml), fetched once at start. It runs
through Flask itself (routing, before/after-request hooks, Response), but not through feedsvc's
fast path (fastpath.ResponseCache), which would otherwise keep and replay it like a feed. So

    feed rate / constant rate

says how close feedsvc's cached feed comes to what the same server, worker and framework can do
at all with the same bytes. `/bench/raw` answers the same bytes, headers and ETag (and 304, and the gzip
twin) from constants in front of Flask and feedsvc (no routing, no request object, no cache lookup): under
`feedsvc-run` it is the server's own floor, what granian with feedsvc's production options
(access log, token redaction, request counting) serves when the app costs nothing
(bench/service.py's serve floor). Everything else (the feed itself) goes through the full app as in
production. Settings come from FEEDSVC_* environment variables; set FEEDSVC_BASE_URL so that the
feed's bytes do not depend on the Host header (the constant bytes are fetched with the test client).

Servers (run from the project folder, with the venv's Python):

    python bench/floor_app.py feedsvc-run --bind 127.0.0.1:8001 --workers 1
        exactly `feedsvc serve` (feedsvc.server.run: granian with production_options, preload,
        access log, ...), serving this app instead of plain create_app()
    python bench/floor_app.py gunicorn --bind ... --workers 2 [--worker-class gthread --threads 8] [--no-access-log]
        gunicorn as `feedsvc serve` ran it before granian (preload, feedsvc.server.start_worker in
        each worker), changed as given (the `bench` extra installs gunicorn)
    python bench/floor_app.py bjoern --bind ... --workers 2
        bjoern (libev, C): the app is built once, then the listening socket is shared by forked workers
    granian --interface wsgi --workers 2 --working-dir bench floor_app:app
        granian imports `app` from this module (built on first access)
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import types
from pathlib import Path

FEED_PATH = os.environ.get("BENCH_FEED_PATH", "/topics/ai/rss.xml")
CONSTANT_PATH = "/bench/constant"
RAW_PATH = "/bench/raw"

# The feedsvc of this tree, whatever the venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Raw:
    """The feed's answers from constants: 304 to its ETag, its gzip twin to a client that accepts
    gzip, else its bytes; each with the feed's own headers. No routing, no request object."""

    def __init__(self, headers: list[tuple[str, str]], body: bytes) -> None:
        self.etag = dict(headers)["ETag"]
        kept = [(name, value) for name, value in headers if name not in ("Content-Length", "ETag")]
        zipped = gzip.compress(body, compresslevel=6, mtime=0)  # as feedsvc.runtime.bodycache.Rendered
        self.plain = (body, [*kept, ("ETag", self.etag), ("Content-Length", str(len(body)))])
        self.zipped = (zipped, [*kept, ("ETag", f'{self.etag[:-1]}-gz"'), ("Content-Encoding", "gzip"),
                                ("Content-Length", str(len(zipped)))])  # fmt: skip
        self.unchanged = [(name, value) for name, value in headers if name not in ("Content-Length", "Content-Type")]

    def __call__(self, environ, start_response):
        if environ.get("HTTP_IF_NONE_MATCH") == self.etag:
            start_response("304 Not Modified", self.unchanged)
            return []
        body, headers = self.zipped if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "") else self.plain
        start_response("200 OK", headers)
        return [body]


class Dispatch:
    """Send /bench/constant to Flask's own handler (no fast path), /bench/raw to Raw, everything
    else to the full app."""

    def __init__(self, full, flask_core, raw: Raw) -> None:
        self.full, self.flask_core, self.raw = full, flask_core, raw

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path == RAW_PATH:
            return self.raw(environ, start_response)
        if path == CONSTANT_PATH:
            return self.flask_core(environ, start_response)
        return self.full(environ, start_response)


def build(config: dict | None = None, feed_path: str = FEED_PATH):
    """The Flask app of `create_app(config)` with the constant route added; returns the app."""
    from flask import Flask, Response

    import feedsvc

    app = feedsvc.create_app(config)
    constant: dict[str, object] = {}

    @app.get(CONSTANT_PATH)  # registered before the app handles its first request (Flask requires it)
    def bench_constant():
        return Response(constant["body"], content_type=constant["content_type"])

    # Fetch the feed once, as a client would. No reload watcher may start here: in a preloading
    # master it would poll the folder forever beside the workers.
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
    raw = Raw(list(probe.headers.items()), constant["body"])
    app.wsgi_app = Dispatch(app.wsgi_app, types.MethodType(Flask.wsgi_app, app), raw)
    return app


def __getattr__(name: str):
    """`app` for servers that import this module (granian, gunicorn CLI): built on first access."""
    if name == "app":
        built = build()
        globals()["app"] = built
        return built
    raise AttributeError(name)


def split_bind(bind: str) -> tuple[str, int]:
    """("127.0.0.1", 8000) of "127.0.0.1:8000"."""
    host, _, port = bind.rpartition(":")
    return host, int(port)


def serve_feedsvc_run(bind: str, workers: int, access_log: bool = True) -> int:
    """`feedsvc serve` exactly: feedsvc.server.run, with create_app swapped for build(); without
    `access_log`, granian writes none (what the access log costs)."""
    from feedsvc import server
    from feedsvc.config import create_config

    if not access_log:
        production_options = server.production_options
        server.production_options = lambda *args: {**production_options(*args), "log_access": False}
    host, port = split_bind(bind)
    return server.run(create_config({"HOST": host, "PORT": port, "WORKERS": workers}), build=build)


def serve_gunicorn(bind: str, workers: int, worker_class: str, threads: int, access_log: bool) -> int:
    """gunicorn, preloading, each worker started as feedsvc serve starts its workers (start_worker)."""
    from gunicorn.app.base import BaseApplication

    from feedsvc.server import GRACEFUL_TIMEOUT, start_worker

    options = {
        "bind": bind, "workers": workers, "worker_class": worker_class, "threads": threads, "preload_app": True,
        "accesslog": "-" if access_log else None, "graceful_timeout": GRACEFUL_TIMEOUT,
        "post_worker_init": lambda worker: start_worker(lambda: worker.wsgi),
        # gunicorn >= 25.1 opens one control socket per user by default; two servers would clash.
        "control_socket_disable": True,
    }  # fmt: skip

    class FloorServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                    self.cfg.set(key, value)

        def load(self):
            return build()

    FloorServer().run()
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
        return serve_feedsvc_run(args.bind, args.workers, not args.no_access_log)
    if args.server == "gunicorn":
        return serve_gunicorn(args.bind, args.workers, args.worker_class, args.threads, not args.no_access_log)
    return serve_bjoern(args.bind, args.workers)


if __name__ == "__main__":
    sys.exit(main())
