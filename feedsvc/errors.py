"""The exception tree: core code raises these; only the web layer maps them to HTTP."""

from __future__ import annotations


class FeedsvcError(Exception):
    """Base of every error feedsvc raises on purpose."""


class ArticleError(FeedsvcError):
    """One article file cannot be used; the reason says how to fix it."""

    def __init__(self, path: str, reason: str, line: int | None = None, field: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.field = field  # the front-matter key at fault, so a caller can find its line
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")


class QueryError(FeedsvcError):
    """A request's query flags are malformed (HTTP 400)."""


class BadHost(FeedsvcError):
    """A request names no valid host to build its links on, and BASE_URL is unset (HTTP 400)."""


class TopicNotFound(FeedsvcError):
    """No selected article carries the requested topic (HTTP 404)."""


class PageNotFound(FeedsvcError):
    """A page past the last page of a feed was asked for (HTTP 404)."""


class BuildRefused(FeedsvcError):
    """`feedsvc build` stopped before swapping anything in; the old tree is untouched."""


class AccessDenied(FeedsvcError):
    """A private preview was asked for without the right token (HTTP 403)."""
