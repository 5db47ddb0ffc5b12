"""The thin HTTP layer: map requests to calls of the core, and core errors to status codes."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .catalog import Catalog
from .errors import FeedsvcError, QueryError, TopicNotFound
from .feeds import MEDIA_TYPES
from .publish import FORMATS, Query, Site, parse_query, render_feed

bp = Blueprint("feeds", __name__)
log = logging.getLogger(__name__)


def current_catalog() -> Catalog:
    """The catalog this request reads; taken once so a reload never mixes two."""
    return current_app.extensions["feedsvc"].catalog


def current_site() -> Site:
    """The site as this request sees it (config BASE_URL, else the requested host)."""
    config = current_app.config
    return Site(
        base_url=config["BASE_URL"] or request.host_url,
        title=config["SITE_TITLE"],
        author=config["FEED_AUTHOR"],
        default_limit=config["DEFAULT_LIMIT"],
    )


def current_query() -> Query:
    """The request's include/limit flags, validated."""
    config = current_app.config
    return parse_query(request.args.to_dict(flat=False), config["DEFAULT_LIMIT"], config["MAX_LIMIT"])


@bp.get("/<any(rss, atom):fmt>.xml", defaults={"slug": None})
@bp.get("/topics/<slug>/<any(rss, atom):fmt>.xml")
def feed(slug: str | None, fmt: str) -> Response:
    """One feed, RSS 2.0 or Atom 1.0."""
    body = render_feed(current_catalog(), current_site(), slug, fmt, current_query())
    return Response(body, content_type=f"{MEDIA_TYPES[fmt]}; charset=utf-8")


@bp.get("/")
def index() -> str:
    """The HTML index of every topic, with feed autodiscovery links."""
    query, catalog = current_query(), current_catalog()
    topics = catalog.topics(query.include_all)
    return render_template("index.html", site=current_site(), query=query, topics=topics, formats=FORMATS)


@bp.get("/feeds.opml")
def opml() -> Response:
    """An OPML 2.0 subscription list of every topic feed."""
    query = current_query()
    topics = current_catalog().topics(query.include_all)
    body = render_template("feeds.opml.xml", site=current_site(), query=query, topics=topics)
    return Response(body, content_type="text/x-opml; charset=utf-8")


@bp.get("/healthz")
def healthz() -> Response:
    """What is loaded and which files were skipped, and why."""
    catalog = current_catalog()
    return jsonify(
        status="ok",
        articles=len(catalog.articles),
        published=len(catalog.selected(include_all=False)),
        topics=len(catalog.topic_names),
        skipped=[{"path": p.path, "line": p.line, "reason": p.message} for p in catalog.skipped],
        warnings=sum(1 for p in catalog.problems if p.severity == "warning"),
    )


def plain_error(status: int, message: str) -> Response:
    """A short one-line text error: no HTML, no traceback, no file path."""
    return Response(f"{status} {message}\n", status=status, content_type="text/plain; charset=utf-8")


def register_error_handlers(app: Flask) -> None:
    """Map the exception tree (and HTTP errors) to short plain-text responses."""
    app.register_error_handler(QueryError, lambda e: plain_error(400, str(e)))
    app.register_error_handler(TopicNotFound, lambda e: plain_error(404, str(e)))
    app.register_error_handler(HTTPException, lambda e: plain_error(e.code or 500, e.name))

    @app.errorhandler(FeedsvcError)
    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return plain_error(500, "Internal Server Error")
