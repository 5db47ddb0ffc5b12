"""Run the app under granian (the production HTTP server, WSGI interface) from Python.

How the workers start: granian's master forks them with multiprocessing's start method, which is
"fork" on Linux up to Python 3.13. Then the app is built once in the master before the workers
start (a preload: workers share its pages copy-on-write and start in milliseconds). Where the
method is "spawn" (granian's choice when Python's default is forkserver, as on 3.14) nothing
built can be handed over, and each worker builds its own app instead (a warm start from the
parse cache). Either way each worker then catches up with files changed since its app was built,
starts the reload watcher, and reloads on SIGHUP, which the master forwards to every worker.

What the master and each worker guard against (each measured with a real server in
tests/test_server.py): a second server on a taken port (claim_address), workers outliving a
killed master and answered requests missing from the access log at exit (WorkerMinder), and idle
or half-sent connections holding the service (production_options: HTTP/1 only, a header read
deadline, a connection limit per worker).
"""

from __future__ import annotations

import copy
import errno
import gc
import logging
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

from flask import Flask
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LOGGING_CONFIG
from granian.server import Server

from feedsvc.errors import FeedsvcError
from feedsvc.runtime.store import FeedStore, reload_on_sighup

log = logging.getLogger(__name__)

# A preview token is a secret: it never reaches a log line (PREVIEW_TOKEN). Parameters are
# split as werkzeug splits them (on "&" only) and named as it names them (percent-decoded).
_QUERY = re.compile(r"\?([^\s#]*)")
_SEMICOLON_TOKEN = re.compile(r"(;token=)[^;]*")

GRACEFUL_TIMEOUT = 10  # seconds a stopping worker has to finish its requests before it is killed
# Python threads per worker that run the app. The app is CPU-bound under one GIL per worker: a few
# threads keep one slow render from holding up cached answers, while granian's default
# (backlog / workers / 2, 256 at 2 workers) served 2-3x fewer requests/s with the access log on.
BLOCKING_THREADS = 4
# IDLE_TIMEOUT (a setting, 15 s by default): seconds a connection may stay open without delivering
# a complete request head: a new connection that sends nothing or only part of its headers, and a
# kept-alive one between requests. Then it is closed.
# MAX_CONNECTIONS (a setting, 4096 by default): connections each worker holds open at once
# (granian's backpressure); more wait in the listen backlog. An idle connection costs a worker one
# descriptor and ~10 KB, not a Python thread (those only run complete requests), so the limit is
# high: granian's default (backlog / workers, 512 at 2 workers) let 1,100 idle sockets stall every request.
# Descriptors a worker keeps for what is not a client connection: listening socket, log, watcher, files.
RESERVED_FILES = 256
WATCH_INTERVAL = 0.5  # seconds between a worker's checks that its master still lives
LOG_DRAIN_TIMEOUT = 2.0  # seconds an exiting worker waits for the access-log lines of answered requests
# The combined log format's fields in granian's atoms; `target` (path?query) comes from RedactTokens.
ACCESS_LOG_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(target)s %(protocol)s" %(status)d %(dt_ms).1fms '
    '"%(header{referer})s" "%(header{user-agent})s"'
)


# An access-log line is one line of plain text: what a client sent (a percent-decoded %0a in the
# path, a quote in a header) must neither start a line of its own nor close a quoted field. So, as
# nginx's log_format escape=default does, `"`, `\` and every character outside printable ASCII
# are written \xHH (a WSGI string holds one byte per character: HH is the byte the client sent).
_UNSAFE_IN_LOG = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def _escape_match(match: re.Match) -> str:
    char = match.group()
    return "".join(f"\\x{byte:02X}" for byte in char.encode("latin-1" if char <= "\xff" else "utf-8"))


def escape_log_text(text: str) -> str:
    """`text` with `"`, `\\` and every character outside printable ASCII written as \\xHH."""
    return _UNSAFE_IN_LOG.sub(_escape_match, text)


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


def log_text(value: str) -> str:
    """One text atom of an access-log line: preview tokens redacted, then escaped."""
    # Text without "=" holds no parameter (redact() returns it as it is), and most atoms have none:
    # skipping them cuts the filter from ~19 µs to ~2 µs a line. Escaping adds ~2 µs a line.
    return escape_log_text(redact(value) if "=" in value else value)


class RedactTokens(logging.Filter):
    """On granian's access logger: adds the target (path?query); redacts tokens in, and escapes, every text atom."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's atoms in place; never drops a line."""
        atoms = record.args
        # granian configures logging in the master and again in each forked worker, and dictConfig
        # adds a logger's filters without removing those it had: this filter may run twice on a
        # record. One it has rewritten has a target (an atom granian does not set); escaping twice
        # would double every backslash.
        if isinstance(atoms, dict) and "target" not in atoms:
            query = atoms.get("query_string") or ""
            target = f"{atoms.get('path', '')}?{query}" if query else atoms.get("path", "")
            # Every text atom, not only the target: a Referer or another header may hold a preview URL.
            record.args = {key: log_text(value) if isinstance(value, str) else value
                           for key, value in {**atoms, "target": target}.items()}  # fmt: skip
        return True


class UnloggedRequests:
    """Requests a worker's app has started whose access-log line is not written yet.

    granian writes a request's line after it has sent the response, from the thread that ran the
    app; a worker that stops (SIGTERM) exits when its last response is sent, without waiting for
    those threads, so the lines of the last requests answered were sometimes lost (2 runs in 25 on
    a busy host). An exiting worker waits for this count to reach zero (WorkerMinder).
    """

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def started(self) -> None:
        """The app has a request (granian logs every request its app is called for, even a failed one)."""
        with self._changed:
            self._count += 1

    def logged(self) -> None:
        """An access-log line has been written."""
        with self._changed:
            self._count = max(0, self._count - 1)  # outside a worker, requests are not counted
            self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait (bounded) until every started request has its line; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


UNLOGGED = UnloggedRequests()  # one per process: each worker counts its own requests


class AccessLogHandler(logging.StreamHandler):
    """granian's access-log handler (a stream handler on stdout) that counts the lines it has written."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the line, then count it as written (even if writing it failed: it will not come later)."""
        try:
            super().emit(record)
        finally:
            UNLOGGED.logged()


def count_requests(wsgi_app: Callable) -> Callable:
    """`wsgi_app` counting each request it is called for in UNLOGGED."""

    def counted(environ: dict, start_response: Callable) -> Any:
        UNLOGGED.started()
        return wsgi_app(environ, start_response)

    return counted


def logging_config() -> dict[str, Any]:
    """granian's own logging (stdout), with RedactTokens and a counting handler on its access logger."""
    handlers = copy.deepcopy(LOGGING_CONFIG["handlers"])
    access = handlers["access"]
    handlers["access"] = {"()": AccessLogHandler, "formatter": access["formatter"], "stream": access["stream"]}
    loggers = copy.deepcopy(LOGGING_CONFIG["loggers"])
    loggers["granian.access"]["filters"] = ["redact_tokens"]
    return {"filters": {"redact_tokens": {"()": RedactTokens}}, "handlers": handlers, "loggers": loggers}


def address_text(host: str, port: int) -> str:
    """host:port as in a URL ([::1]:8000 for IPv6)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bound_socket(family: socket.AddressFamily, address: str, port: int, option: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, 1)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def claim_address(host: str, port: int) -> socket.socket | None:
    """A socket that holds (host, port) for this server; FeedsvcError when another server listens on it.

    granian's workers each bind with SO_REUSEPORT, so a second server would bind beside the first
    and share its connections. Linux refuses a bind that overlaps a listening socket unless both
    set SO_REUSEPORT (socket(7)), so a bind without it fails (EADDRINUSE) on any listener, whether
    or not it set SO_REUSEPORT; with SO_REUSEADDR, the TIME_WAIT connections a stopped server left
    do not count. That check socket cannot stay bound: it would refuse our own workers too. It is
    swapped for a socket with SO_REUSEPORT alone, bound and never listening (it gets no
    connections): it lets our workers bind beside it, and refuses every other server's check and
    listener while this master lives, which closes the race of two servers started at once.
    """
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    where = address_text(host, port)

    def check() -> None:
        try:
            _bound_socket(family, address, port, socket.SO_REUSEADDR).close()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                hint = "stop the server listening there, or choose another --port (FEEDSVC_PORT)"
                raise FeedsvcError(f"address {where} is in use: {hint}") from None
            raise FeedsvcError(f"cannot listen on {where}: {exc.strerror}") from None

    check()
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None:  # Windows: granian runs one worker on one socket, nothing to share
        return None
    try:
        return _bound_socket(family, address, port, reuse_port)
    except OSError:
        # TIME_WAIT connections of a server that did not set SO_REUSEPORT refuse this bind (they are
        # gone within a minute), or another server started in the microseconds since the check:
        # check again, and serve without a claim if the address is still free.
        check()
        return None


def raise_file_limit(max_connections: int) -> int:
    """Raise this process's soft limit on open files to its hard limit; the connections per worker it allows."""
    try:
        import resource
    except ImportError:  # not Unix
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # systemd.exec(5), LimitNOFILE=: the soft limit stays 1024 for programs that use select();
    # the others should raise it to the hard limit themselves. Workers inherit it.
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = max_connections + RESERVED_FILES
        target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. macOS caps it below RLIM_INFINITY (OPEN_MAX)
            pass
    allowed = max(1, soft - RESERVED_FILES) if soft != resource.RLIM_INFINITY else max_connections
    if allowed < max_connections:
        # An accept() past the limit fails (EMFILE) and granian retries it at once: better to wait in the backlog.
        message = "open-file limit %s: at most %d connections per worker instead of %d (raise `ulimit -n`)"
        log.warning(message, soft, allowed, max_connections)
        return allowed
    return max_connections


def production_options(host: str, port: int, workers: int, idle_timeout: float, max_connections: int) -> dict[str, Any]:
    """The granian.server.Server settings `feedsvc serve` runs with."""
    return {
        "address": host.strip("[]"),  # "[::1]" as in a URL is the address ::1
        "port": port,
        "interface": Interfaces.WSGI,
        "workers": workers,
        "blocking_threads": BLOCKING_THREADS,
        # HTTP/1 only: in "auto" mode hyper-util first reads a connection's opening bytes to tell
        # HTTP/1 from HTTP/2, without any deadline, so a connection that sends nothing was never
        # closed (750 of 1,500 still open after 76 s). Cleartext HTTP/2 (h2c) is spoken by no
        # browser or feed reader, and nginx proxies HTTP/1.1.
        "http": HTTPModes.http1,
        # hyper's header_read_timeout runs from the moment a request head is awaited: on a new
        # connection, and on a kept-alive one after each response. So it is the idle timeout.
        "http1_settings": HTTP1Settings(header_read_timeout=max(1, round(idle_timeout * 1000))),
        "backpressure": max_connections,
        "websockets": False,
        "log_access": True,
        "log_access_format": ACCESS_LOG_FORMAT,
        "log_dictconfig": logging_config(),
        "workers_kill_timeout": GRACEFUL_TIMEOUT,
        "respawn_failed_workers": True,  # a worker that dies is replaced, as gunicorn did
    }


class WorkerMinder(threading.Thread):
    """In a worker: stops it when its master is gone, and lets it exit only once its access log is complete.

    A master killed with SIGKILL cannot stop its workers, which then served on as orphans (and a
    restarted server beside them). Every WATCH_INTERVAL the minder compares getppid() with the
    master's pid (a dead parent's children are re-parented, to init or a subreaper: getppid(2)), and
    on a change sends the worker SIGTERM, the master's own way of stopping it (in-flight requests
    finish), then kills it if it is still there GRACEFUL_TIMEOUT later. Not prctl(PR_SET_PDEATHSIG):
    it is Linux-only, and fires when the *thread* that forked the worker ends (prctl(2)), which in a
    granian that respawned workers from another thread would kill healthy workers.

    It is not a daemon thread: a process waits for those before it exits (the threading module),
    so once the main thread has finished serving it holds the exit until every request the app
    has answered has its access-log line (UNLOGGED), at most LOG_DRAIN_TIMEOUT.
    """

    def __init__(self, master: int) -> None:
        super().__init__(name="feedsvc-worker-minder")
        self.master = master

    def run(self) -> None:
        """Poll until the worker's main thread ends; then wait for the last access-log lines."""
        main, deadline = threading.main_thread(), None
        main.join(WATCH_INTERVAL)
        while main.is_alive():
            if deadline is None and os.getppid() != self.master:
                log.warning("master %d is gone: worker %d stops", self.master, os.getpid())
                deadline = time.monotonic() + GRACEFUL_TIMEOUT
                os.kill(os.getpid(), signal.SIGTERM)
            elif deadline is not None and time.monotonic() > deadline:
                os._exit(1)  # the stop hung: nobody else will kill this worker
            main.join(WATCH_INTERVAL)
        UNLOGGED.wait(LOG_DRAIN_TIMEOUT)


def start_worker(make_app: Callable[[], Flask], master: int | None = None) -> Flask:
    """In each new worker (its main thread, before it serves): the app, caught up and watching.

    `master` is the pid of the process that started the worker: run in any other process, this
    also starts a WorkerMinder.
    """
    app = make_app()
    if master is not None and master != os.getpid():
        app.wsgi_app = count_requests(app.wsgi_app)
        WorkerMinder(master).start()
    store = app.extensions["feedsvc"]
    # First the handler, then the catch-up: a SIGHUP that arrives meanwhile is not lost.
    reload_on_sighup(store)
    try:
        store.reload()
    except Exception:
        log.exception("catching up with %s failed; the watcher will try again", store.seeds_dir)
    store.watch(app.config["RELOAD_INTERVAL"])
    return app


def share_with_forks(store: FeedStore) -> None:
    """Before the workers fork: compute what every worker's requests would otherwise each compute
    (every public feed's entries), then freeze it all out of the collector's reach.

    A forked worker shares the master's memory until it writes to a page, and taking a reference
    writes the object's refcount: building every feed's entries in each worker touched every
    article, and each worker ended with a private copy of the catalog (PSS of the service: 1.6x a
    plain YAML load of the same files). Built here, the entries are shared; a request touches the
    entries of the one page it renders. gc.freeze() keeps the collector from touching the rest."""
    store.catalog.warm()
    store.flush()  # the parse-cache writer, still pickling every state, would copy them all here after the fork
    gc.collect()
    gc.freeze()


def worker_loader(build: Callable[[], Flask]) -> Callable[[], Flask]:
    """What each worker calls for its app: the master's, built here once, when workers are forked."""
    master = os.getpid()
    if multiprocessing.get_start_method() == "fork":  # the method granian's workers are started with
        app = build()
        share_with_forks(app.extensions["feedsvc"])
        return partial(start_worker, lambda: app, master)  # fork copies the app: nothing is pickled
    return partial(start_worker, build, master)  # spawn pickles `build`, and each worker runs it


def forward_sighup(server: Server) -> None:
    """Make SIGHUP to the master reach every worker at once, each reloading in place."""
    # Instead of granian's own answer, a rolling respawn of every worker: slower (3.5 s per worker),
    # and it resets the connections queued on each stopping worker's own SO_REUSEPORT socket.
    master = os.getpid()

    def forward(signum: int, frame: Any) -> None:
        if os.getpid() != master:
            return  # a worker forked before it set its own handler: its catch-up reload follows
        for worker in list(server.wrks):
            try:
                os.kill(worker.inner.pid, signal.SIGHUP)
            except (ProcessLookupError, TypeError):  # gone, or not started yet (pid None)
                pass

    signal.signal(signal.SIGHUP, forward)


# prometheus_client's multiprocess mode (feedsvc.runtime.metrics): the folder every process
# writes its values to. Named here, not imported: importing prometheus_client picks its mode.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_folder(enabled: bool) -> Iterator[str | None]:
    """With `enabled`: a new private folder (mode 0700) for every process's metric values, in
    PROMETHEUS_MULTIPROC_DIR while the server runs, then removed with what it holds.

    prometheus_client reads the variable when it is first imported, so this comes before the app
    is built (in the master, whose workers fork from it) or spawned workers start (they inherit
    the environment). Always a new folder, never an inherited variable's: values left by an
    earlier run (or another server) would be summed with ours (the library's docs ask for a
    folder wiped between runs; a new one is empty)."""
    if not enabled:
        yield None
        return
    previous = os.environ.get(METRICS_DIR_VARIABLE)
    if previous is None and "prometheus_client" in sys.modules:
        # Imported without the variable, it keeps each value in this process: every worker would
        # count alone, and a scrape (which reads the folder) would show nothing.
        raise FeedsvcError("prometheus_client was imported before feedsvc.server.run: call run() first")
    folder = tempfile.mkdtemp(prefix="feedsvc-metrics-")
    os.environ[METRICS_DIR_VARIABLE] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(METRICS_DIR_VARIABLE, None)
        else:
            os.environ[METRICS_DIR_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)


class DeadWorkerMarker(threading.Thread):
    """In the master: tells prometheus_client of each worker that has died (mark_process_dead), so
    the gauges kept for live processes only ("live*" modes) drop its values; granian starts a
    replacement.

    Every WATCH_INTERVAL it looks for the processes that have such gauge files (prometheus_client
    names them gauge_live<mode>_<pid>.db) and marks those whose pid is gone (granian's own watcher
    thread reaps a dead worker at once). From the files, not from granian's list of workers: a
    worker that died before a look at that list would never be marked."""

    def __init__(self, folder: str) -> None:
        super().__init__(name="feedsvc-metrics-marker", daemon=True)  # nothing to finish at exit: the folder goes
        self.folder = folder

    def run(self) -> None:
        """Mark every pid with live-gauge files that no longer runs."""
        from prometheus_client import multiprocess

        while True:
            try:
                for pid in self.pids_with_live_gauges() - {os.getpid()}:
                    if not process_exists(pid):
                        multiprocess.mark_process_dead(pid, self.folder)
            except FileNotFoundError:  # the folder is gone: the server is stopping
                return
            time.sleep(WATCH_INTERVAL)

    def pids_with_live_gauges(self) -> set[int]:
        """The pids named by the folder's live-gauge files."""
        names = (path.rsplit("_", 1)[-1].removesuffix(".db") for path in os.listdir(self.folder)
                 if path.startswith("gauge_live") and path.endswith(".db"))  # fmt: skip
        return {int(name) for name in names if name.isdigit()}


def process_exists(pid: int) -> bool:
    """Whether a process with this pid exists (kill(2) with signal 0 checks without sending one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def run(settings: Mapping[str, Any], build: Callable[..., Flask] | None = None) -> int:
    """Serve until SIGINT/SIGTERM (workers finish in-flight requests first); `build(settings)` makes
    the app. `settings` is a whole configuration (feedsvc.config.create_config): HOST, PORT,
    WORKERS, IDLE_TIMEOUT and MAX_CONNECTIONS are the server's, the rest the app's.

    FeedsvcError, before anything is built, when another server listens on (HOST, PORT).
    """
    if build is None:
        from feedsvc.web import create_app as build
    host, port = settings["HOST"], settings["PORT"]
    claim = claim_address(host, port)  # first: a taken port fails at once, not after the app is built
    try:
        with metrics_folder(settings["METRICS"]) as metrics_dir:  # before the app is built
            max_connections = raise_file_limit(settings["MAX_CONNECTIONS"])
            loader = worker_loader(partial(build, settings))
            options = production_options(host, port, settings["WORKERS"], settings["IDLE_TIMEOUT"], max_connections)
            server = Server("feedsvc:create_app", **options)
            # Startup hooks run after granian has set its own signal handlers, before any worker exists.
            server.on_startup(partial(forward_sighup, server))
            if metrics_dir is not None:
                server.on_startup(DeadWorkerMarker(metrics_dir).start)
            server.serve(target_loader=loader, wrap_loader=False)
    finally:
        if claim is not None:
            claim.close()
    return 0
