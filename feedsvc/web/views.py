"""The thin HTTP layer: map requests to calls of the core, and core errors to status codes."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_etags

from feedsvc.errors import AccessDenied, BadHost, FeedsvcError, PageNotFound, QueryError, TopicNotFound
from feedsvc.feeds import html
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query, check_preview_token, parse_query, path_page
from feedsvc.feeds.site import FORMATS, MEDIA_TYPES, Site, request_base_url
from feedsvc.runtime.bodycache import Rendered, cached_feed, cached_page
from feedsvc.runtime.store import FeedStore, Health
from feedsvc.web.fastpath import KEEP_APART

bp = Blueprint("feeds", __name__)
log = logging.getLogger(__name__)


def current_store() -> FeedStore:
    """The app's store of articles and rendered bodies."""
    return current_app.extensions["feedsvc"]


def current_catalog() -> Catalog:
    """The catalog this request reads; taken once so a reload never mixes two."""
    return current_store().catalog


def current_site() -> Site:
    """The site as this request sees it (config BASE_URL, else the Host header; without either, 400)."""
    config = current_app.config
    return Site(
        base_url=config["BASE_URL"] or request_base_url(request.scheme, request.headers.get("Host")),
        title=config["SITE_TITLE"],
        author=config["FEED_AUTHOR"],
        default_limit=config["DEFAULT_LIMIT"],
        max_age=config["MAX_AGE"],
        hub=config["WEBSUB_HUB"],
        paging=config["FEED_PAGING"],
        dedupe_titles=config["DEDUPE_TITLES"],
    )


def current_query() -> Query:
    """The request's flags (include, limit, filters, dedupe), validated."""
    config = current_app.config
    args = request.args.to_dict(flat=False)
    return parse_query(
        args, config["DEFAULT_LIMIT"], config["MAX_LIMIT"], config["PREVIEW_TOKEN"], config["DEDUPE_TITLES"]
    )


@bp.get("/<any(rss, atom):fmt>.xml", defaults={"slug": None})
@bp.get("/page/<page>/<any(rss, atom):fmt>.xml", defaults={"slug": None})
@bp.get("/topics/<slug>/<any(rss, atom):fmt>.xml")
@bp.get("/topics/<slug>/page/<page>/<any(rss, atom):fmt>.xml")
@bp.get("/feed.json", defaults={"slug": None, "fmt": "json"})
@bp.get("/page/<page>/feed.json", defaults={"slug": None, "fmt": "json"})
@bp.get("/topics/<slug>/feed.json", defaults={"fmt": "json"})
@bp.get("/topics/<slug>/page/<page>/feed.json", defaults={"fmt": "json"})
def feed(slug: str | None, fmt: str, page: str | None = None) -> Response:
    """One page of a feed, RSS 2.0, Atom 1.0 or JSON Feed 1.1, answered conditionally; a browser
    opening its URL as a page gets the same entries as an HTML page that says how to subscribe."""
    asked, site = current_query(), current_site()  # the query's page is ?page=N's, else 1
    query = replace(asked, page=path_page(page) if page else 1)
    if "page" in request.args or page == "1":
        return moved(site.feed_url(slug, fmt, asked, asked.page), shared=not asked.include_all)
    keep_apart(query, site)
    return feed_response(slug, fmt, query, site)


def feed_response(slug: str | None, fmt: str, query: Query, site: Site) -> Response:
    """The document in `fmt`; for a browser's navigation to a feed, the HTML page of its entries."""
    catalog, cache, shared = current_catalog(), current_store().cache, not query.include_all
    last_modified = catalog.last_modified_for(query.include_all)  # drafts never move a public one
    if fmt in FORMATS and browser_navigation():
        return page_response(cached_page(cache, catalog, site, slug, query, feed=fmt), last_modified, shared, VARY_VIEW)
    rendered = cached_feed(cache, catalog, site, slug, fmt, query)
    vary = VARY_VIEW if fmt in FORMATS else ()  # a digest is made for people already: one representation
    return conditional_response(rendered, MEDIA_TYPES[fmt], last_modified, shared, vary)


def browser_navigation() -> bool:
    """Whether a browser is opening this URL as a page: Fetch Metadata's Sec-Fetch-Dest is
    "document" only for a top-level navigation, and programs (feed readers) do not send it."""
    return request.headers.get("Sec-Fetch-Dest") == "document"


@bp.get("/all/", defaults={"slug": None})
@bp.get("/all/page/<page>/", defaults={"slug": None})
@bp.get("/topics/<slug>/")
@bp.get("/topics/<slug>/page/<page>/")
def topic_page(slug: str | None, page: str | None = None) -> Response:
    """A topic's newest entries as an HTML page: the same list, paging and limit as its feeds."""
    asked, site = current_query(), current_site()
    query = replace(asked, page=path_page(page) if page else 1)
    if "page" in request.args or page == "1":
        return moved(site.page_url(slug, asked, asked.page), shared=not asked.include_all)
    keep_apart(query, site)
    catalog = current_catalog()
    rendered = cached_page(current_store().cache, catalog, site, slug, query)
    return page_response(rendered, catalog.last_modified_for(query.include_all), not query.include_all)


def page_response(rendered: Rendered, last_modified: datetime, shared: bool, vary: tuple[str, ...] = ()) -> Response:
    """An HTML page of entries, answered conditionally, under the pages' security policy."""
    response = conditional_response(rendered, html.MEDIA_TYPE, last_modified, shared, vary)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


@bp.get("/style.css")
def stylesheet() -> Response:
    """The pages' one stylesheet, cacheable and revalidated by its ETag."""
    return conditional_response(STYLESHEET, "text/css", None, shared=True)


def keep_apart(query: Query, site: Site) -> None:
    """Tell the fast path to keep this response apart from the feeds' when it is a filtered feed
    or the URL is not the one the service links to (see fastpath.KEEP_APART)."""
    raw = request.query_string.decode("latin-1")
    canonical = query.canonical(site.default_limit, site.dedupe_titles)
    request.environ[KEEP_APART] = bool(query.filters) or canonical != (f"?{raw}" if raw else "")


@bp.get("/digest.<any(html, txt):kind>", defaults={"slug": None})
@bp.get("/page/<page>/digest.<any(html, txt):kind>", defaults={"slug": None})
@bp.get("/topics/<slug>/digest.<any(html, txt):kind>")
@bp.get("/topics/<slug>/page/<page>/digest.<any(html, txt):kind>")
def digest(slug: str | None, kind: str, page: str | None = None) -> Response:
    """The newest entries as an e-mail-safe HTML fragment, or its plain-text twin."""
    response = feed(slug, f"digest-{kind}", page)
    if kind == "html":
        response.headers["Content-Security-Policy"] = DIGEST_POLICY
    return response


def moved(location: str, shared: bool) -> Response:
    """301 Moved Permanently (RFC 9110 15.4.2) to where a page lives: ?page=N (the old form) to
    /page/N/, /page/1/ to the feed's own URL. Feed readers follow it and update the subscription."""
    response = one_line_response(301, f"Moved Permanently: {location}")
    response.headers["Location"] = location
    response.cache_control.public = shared
    response.cache_control.private = not shared  # a preview's Location carries its token
    response.cache_control.max_age = current_app.config["MAX_AGE"]
    return response


def conditional_response(
    rendered: Rendered, media_type: str, last_modified: datetime | None, shared: bool, vary: tuple[str, ...] = ()
) -> Response:
    """A cacheable response (RFC 9111): gzip if accepted, validators, 304 when they match; `vary`
    names the request headers besides Accept-Encoding that chose this representation (RFC 9110 12.5.5)."""
    use_gzip = request.accept_encodings["gzip"] > 0
    body, etag = rendered.variant(use_gzip)
    response = Response(body, content_type=f"{media_type}; charset=utf-8")
    if use_gzip:
        response.headers["Content-Encoding"] = "gzip"
    response.vary.update(("Accept-Encoding", *vary))
    response.set_etag(etag)
    if last_modified is not None:
        # RFC 9110 8.8.2.1: never later than the response's own Date.
        response.last_modified = min(last_modified, datetime.now(timezone.utc))
    # Previews (include=all) are for their reader only: no shared cache may keep them (RFC 9111 5.2.2.7).
    response.cache_control.public = shared
    response.cache_control.private = not shared
    response.cache_control.max_age = current_app.config["MAX_AGE"]
    environ = request.environ
    if "HTTP_IF_MATCH" in environ:
        # RFC 9110 13.1.1: true for "*" (the feed exists) or a tag equal by strong comparison; when
        # false, 412 (13.2.2 step 1). Decided here: werkzeug's make_conditional answers "*" with 412
        # and sends the whole body with a 412; the rest of the evaluation stays werkzeug's.
        if not parse_etags(environ["HTTP_IF_MATCH"]).contains(etag):
            return precondition_failed(etag, vary)
        environ = {key: value for key, value in environ.items() if key != "HTTP_IF_MATCH"}
    # If-None-Match (weak comparison, "*") wins over If-Modified-Since (RFC 9110 13.1.3, 13.2.2).
    return response.make_conditional(environ)


def precondition_failed(etag: str, vary: tuple[str, ...] = ()) -> Response:
    """412 Precondition Failed with no body (RFC 9110 15.5.13): no representation is sent, only the
    current entity tag, so the client can tell that what it holds is outdated."""
    response = Response(status=412)
    del response.headers["Content-Type"]
    response.set_etag(etag)
    response.vary.update(("Accept-Encoding", *vary))  # the tag is per coding (and per view)
    return response


@bp.get("/")
def index() -> str:
    """The HTML index of every topic, with feed autodiscovery links."""
    query, catalog = current_query(), current_catalog()
    topics, everything = catalog.topics(query.include_all), len(catalog.entries(None, query.include_all))
    return render_template("index.html", site=current_site(), query=query, topics=topics, everything=everything)


@bp.get("/feeds.opml")
def opml() -> Response:
    """An OPML 2.0 subscription list of every topic feed."""
    query = current_query()
    topics = current_catalog().topics(query.include_all)
    body = render_template("feeds.opml.xml", site=current_site(), query=query, topics=topics)
    return Response(body, content_type="text/x-opml; charset=utf-8")


@bp.get("/healthz")
def healthz() -> Response:
    """Whether this worker follows its folder (503 with the reason when it does not), what is
    loaded, and which files were skipped and why; drafts' figures only for previews' readers."""
    token, expected = request.args.get("token"), current_app.config["PREVIEW_TOKEN"]
    if token is not None:
        check_preview_token(token, expected)  # a wrong token is a 403, as on a feed
    health = current_store().health()
    response = jsonify(health_report(current_catalog(), health, everything=not expected or token is not None))
    response.status_code = 503 if health.status == "unhealthy" else 200
    return response


def health_report(catalog: Catalog, health: Health, everything: bool) -> dict:
    """/healthz's JSON: the public figures, and with `everything` those drafts make too (the
    number of every article, and of every topic, drafts-only ones included)."""
    report = {
        "status": health.status,
        "reason": health.reason,
        "published": len(catalog.selected(include_all=False)),
        "topics": len(catalog.topics(include_all=False)),
    }
    if everything:
        report.update(articles=len(catalog.articles), all_topics=len(catalog.topic_names))
    stale = [p for p in catalog.problems if p.path in catalog.stale]
    return report | {
        "skipped": [{"path": p.path, "line": p.line, "reason": p.message} for p in catalog.skipped],
        "stale": [{"path": p.path, "line": p.line, "reason": p.message} for p in stale],
        "warnings": sum(1 for p in catalog.problems if p.severity == "warning"),
        "unreadable": [{"path": p.path, "reason": p.message} for p in health.unreadable],
        "reload": {"started": iso(health.reload_started), "finished": iso(health.reload_finished),
                   "failures": health.failures},
    }  # fmt: skip


def iso(moment: datetime | None) -> str | None:
    """An RFC 3339 UTC time, or None."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line_response(status: int, message: str) -> Response:
    """A one-line plain-text answer (errors, redirects): no HTML, no traceback, no file path."""
    return Response(f"{status} {message}\n", status=status, content_type="text/plain; charset=utf-8")


def http_error(error: HTTPException) -> Response:
    """werkzeug's HTTP errors as one line of text, keeping headers such as a 405's Allow (RFC 9110 15.5.6)."""
    response = one_line_response(error.code or 500, error.name)
    for name, value in error.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


# HTML pages here run nothing and load only our stylesheet (CSP Level 3); topic pages and the
# feeds' browser view also show the entries' pictures, from wherever the article files point.
HTML_POLICY = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
PAGE_POLICY = "default-src 'none'; style-src 'self'; img-src https: http:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# A feed's URL answers a feed, or a page for a browser's navigation: caches must keep both apart.
VARY_VIEW = ("Sec-Fetch-Dest",)
STYLESHEET = Rendered.of(html.STYLESHEET)
# The digest shows remote images and inline styles (all an e-mail can use), and nothing else.
DIGEST_POLICY = "default-src 'none'; img-src https: http:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


@bp.after_app_request
def security_headers(response: Response) -> Response:
    """Never let a browser sniff a feed into HTML; lock HTML pages down with a strict CSP."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", HTML_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def register_error_handlers(app: Flask) -> None:
    """Map the exception tree (and HTTP errors) to short plain-text responses."""
    app.register_error_handler(QueryError, lambda e: one_line_response(400, str(e)))
    app.register_error_handler(BadHost, lambda e: one_line_response(400, str(e)))
    app.register_error_handler(TopicNotFound, lambda e: one_line_response(404, str(e)))
    app.register_error_handler(PageNotFound, lambda e: one_line_response(404, str(e)))
    app.register_error_handler(AccessDenied, lambda e: one_line_response(403, str(e)))
    app.register_error_handler(HTTPException, http_error)

    @app.errorhandler(FeedsvcError)
    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.path)
        return one_line_response(500, "Internal Server Error")
