"""Replay finished feed responses in front of Flask, at the speed of returning constant bytes.

Aggregators ask for the same few URLs over and over. The first request for a URL goes through
Flask as usual; its 200 response (headers and body) is kept, keyed by everything the response
depends on (path, query, whether gzip is accepted, Sec-Fetch-Dest, host, scheme), and tied to the catalog it was
made from. Later requests for that URL under the same catalog are answered here, conditional
requests included, without routing, views or header parsing; a reload makes every kept
response a miss, so Flask (and its render cache) decides again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Any

from werkzeug.http import http_date, parse_accept_header, parse_date, parse_etags

from feedsvc.runtime.bodycache import BoundedLru
from feedsvc.runtime.store import FeedStore

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "text/html", "text/plain")
# Headers a 304 leaves out, as werkzeug's make_conditional does (RFC 9110 15.4.5).
_NOT_IN_304 = {"content-length", "content-type", "content-encoding", "last-modified", "allow"}
StartResponse = Callable[..., Any]
# (path, status) -> what counts one replay of that response with that status (feedsvc.web.metrics).
ReplayCounter = Callable[[str, int], Callable[[], None]]


def _uncounted() -> None:
    """Count nothing (metrics are off)."""


# Set (true) in the WSGI environ by a view whose response is a filtered feed or was asked for by
# a URL the service never links to (flags in another order, unknown parameters): kept apart, in
# a small pool, so that a stream of such URLs cannot push the feeds' responses out.
KEEP_APART = "feedsvc.keep_apart"


@dataclass
class Kept:
    """One finished 200 response and the catalog it was made from."""

    catalog: object
    headers: list[tuple[str, str]]
    headers_304: list[tuple[str, str]]
    body: bytes
    etag: str
    last_modified: datetime | None
    dated: bool  # the response carried a Date header, to be sent anew on every replay
    count_200: Callable[[], None] = _uncounted  # counts a replay answered 200
    count_304: Callable[[], None] = _uncounted  # counts a replay answered 304


class ResponseCache:
    """WSGI middleware that answers repeated GET/HEAD requests for feeds from kept responses."""

    def __init__(
        self,
        app: Callable,
        store: FeedStore,
        on_request: Callable[[], None],
        max_items: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        apart_items: int = 64,
        apart_bytes: int = 8 * 1024 * 1024,
        count: ReplayCounter | None = None,
    ) -> None:
        self.app, self.store, self.on_request, self.count = app, store, on_request, count
        self.main: BoundedLru[Kept] = BoundedLru(max_items, max_bytes)
        self.apart: BoundedLru[Kept] = BoundedLru(apart_items, apart_bytes)
        self._lock = Lock()
        self._gzip_memo: dict[str, bool] = {}
        self.hits = 0

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Answer from a kept response when there is one for this request and catalog."""
        method = environ["REQUEST_METHOD"]
        # If-Match and Range need the Flask path's full handling (412 in web.py, 206): leave them to it.
        if method not in ("GET", "HEAD") or "HTTP_IF_MATCH" in environ or "HTTP_RANGE" in environ:
            return self.app(environ, start_response)
        self.on_request()
        key = self.key(environ)
        with self._lock:
            kept = self.main.get(key) or self.apart.get(key)
        if kept is not None and kept.catalog is self.store.catalog:
            self.hits += 1
            return self.replay(kept, environ, start_response, method == "HEAD")
        return self.record(key, environ, start_response)

    def key(self, environ: dict) -> tuple:
        """Everything a feed response depends on."""
        accept = environ.get("HTTP_ACCEPT_ENCODING", "")
        gzip = self._gzip_memo.get(accept)
        if gzip is None:
            gzip = parse_accept_header(accept)["gzip"] > 0
            if len(self._gzip_memo) < 256:
                self._gzip_memo[accept] = gzip
        return (
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            gzip,
            # A browser's navigation to a feed's URL gets a page, not the feed (Vary: Sec-Fetch-Dest).
            environ.get("HTTP_SEC_FETCH_DEST", ""),
            environ.get("HTTP_HOST", ""),
            environ.get("wsgi.url_scheme", ""),
            environ.get("SCRIPT_NAME", ""),
        )

    def replay(self, kept: Kept, environ: dict, start_response: StartResponse, head: bool) -> Iterable[bytes]:
        """The kept response, or a 304 when the request's validators match it."""
        # Date is the moment of this response (RFC 9110 6.6.1), not of the one kept.
        date = [("Date", http_date())] if kept.dated else []
        if not_modified(kept, environ):
            kept.count_304()
            start_response("304 NOT MODIFIED", kept.headers_304 + date)
            return []
        kept.count_200()
        start_response("200 OK", kept.headers + date)
        return [] if head else [kept.body]

    def record(self, key: tuple, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Let Flask answer, and keep the answer when it is a feed's 200 made from the current catalog."""
        catalog = self.store.catalog
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, capture)
        if environ["REQUEST_METHOD"] != "GET" or not str(seen.get("status", "")).startswith("200"):
            return result
        headers = seen["headers"]
        fields = {name.lower(): value for name, value in headers}
        # Only the documents made conditional (feeds and digests carry an ETag) are kept.
        if not fields.get("content-type", "").startswith(FEED_TYPES) or "etag" not in fields or "set-cookie" in fields:
            return result
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        undated = [h for h in headers if h[0].lower() != "date"]
        self.keep(
            key,
            bool(environ.get(KEEP_APART)),
            Kept(
                catalog,
                undated,
                [h for h in undated if h[0].lower() not in _NOT_IN_304],
                body,
                fields.get("etag", ""),
                parse_date(fields.get("last-modified")),
                "date" in fields,
            ),
        )
        return [body]

    def keep(self, key: tuple, apart: bool, kept: Kept) -> None:
        """Store one response in its pool, dropping the least recently used beyond the pool's bounds."""
        if self.count is not None:  # the labels are looked up once here, not on every replay
            kept.count_200, kept.count_304 = self.count(key[0], 200), self.count(key[0], 304)
        size = len(kept.body) + sum(len(n) + len(v) for n, v in kept.headers)
        with self._lock:
            (self.apart if apart else self.main).put(key, kept, size)


def not_modified(kept: Kept, environ: dict) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) decides; without one, If-Modified-Since.

    The same decision werkzeug's make_conditional takes on the Flask path.
    """
    etags = parse_etags(environ.get("HTTP_IF_NONE_MATCH"))
    if etags:
        return etags.contains_weak(kept.etag.strip('"'))
    since = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    return since is not None and kept.last_modified is not None and kept.last_modified <= since
