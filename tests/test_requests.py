"""Request hardening: private previews (PREVIEW_TOKEN), odd requests, security headers, and a
token that never reaches another response or the access log."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import lxml.html
import pytest
from granian.log import log_request_builder
from helpers import ATOM, PROJECT, SEEDS, check_feed, free_port
from lxml import etree

from feedsvc.server import ACCESS_LOG_FORMAT, RedactTokens, redact

TOKEN = "pv-7Hq2-secret-xyz"
WRONG = "pv-7Hq2-secret-xyZ"
PATHS = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}


@pytest.fixture
def token_client(make_client):
    return make_client(PREVIEW_TOKEN=TOKEN)


def leaks_token(response, *tokens: str) -> bool:
    """Whether any of `tokens` is in the body or in any header of a response."""
    body = response.get_data(as_text=True)
    headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
    return any(t in body or t in headers for t in tokens)


def assert_short_plain_error(response, status: int | None = None) -> str:
    """A one-line text/plain 4xx, under 300 bytes, with nothing internal in it."""
    if status is not None:
        assert response.status_code == status
    assert 400 <= response.status_code < 500, response.status_code
    assert response.mimetype == "text/plain"
    assert len(response.data) < 300, len(response.data)
    text = response.get_data(as_text=True)
    assert text.count("\n") == 1 and text.endswith("\n"), repr(text)
    assert text.startswith(f"{response.status_code} ")
    for secret in ("Traceback", 'File "', str(PROJECT), str(SEEDS), "/tmp/"):
        assert secret not in text
    return text


# --- previews: include=all needs the token ----------------------------------------------------

PREVIEW_URLS = [
    "/rss.xml?include=all",
    "/atom.xml?include=all",
    "/feed.json?include=all",
    "/topics/ai/rss.xml?include=all",
    "/topics/computer-vision/feed.json?include=all&limit=2",
    "/?include=all",
    "/feeds.opml?include=all",
]


@pytest.mark.parametrize("url", PREVIEW_URLS)
@pytest.mark.parametrize(
    "given",
    [None, WRONG, "", TOKEN.upper(), TOKEN[:-1], TOKEN + "x", " " + TOKEN],
    ids=["none", "wrong", "empty", "upper", "prefix", "longer", "space"],
)
def test_preview_without_the_right_token_is_403(token_client, url, given):
    query = "" if given is None else "&token=" + given.replace(" ", "%20")
    response = token_client.get(url + query)
    text = assert_short_plain_error(response, 403)
    assert "token" in text  # it says what is missing...
    assert TOKEN not in text  # ...but never what the token is
    assert not given or given not in text
    assert not leaks_token(response, TOKEN)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("url", PREVIEW_URLS)
def test_preview_with_the_right_token_is_200(token_client, url):
    assert token_client.get(f"{url}&token={TOKEN}").status_code == 200


def test_published_feeds_need_no_token(token_client):
    for url in ("/rss.xml", "/atom.xml", "/feed.json", "/", "/feeds.opml", "/?include=published"):
        assert token_client.get(url).status_code == 200


def test_token_given_twice_is_400_without_echo(token_client):
    response = token_client.get(f"/rss.xml?include=all&token={TOKEN}&token={TOKEN}")
    assert_short_plain_error(response, 400)
    assert not leaks_token(response, TOKEN)


def test_without_preview_token_include_all_is_open(client):
    for url in PREVIEW_URLS:
        assert client.get(url).status_code == 200, url


def test_without_preview_token_a_given_token_is_not_echoed(client):
    for path in PATHS.values():
        response = client.get(f"/{path}?include=all&token={TOKEN}")
        assert response.status_code == 200
        assert not leaks_token(response, TOKEN)


def test_numeric_preview_token_from_the_environment(make_client, monkeypatch):
    monkeypatch.setenv("FEEDSVC_PREVIEW_TOKEN", "20240611")
    client = make_client()
    assert client.get("/rss.xml?include=all").status_code == 403
    assert client.get("/rss.xml?include=all&token=20240611").status_code == 200
    assert client.get("/rss.xml?include=all&token=1").status_code == 403


# --- the token goes only into the links of its own response ------------------------------------


def token_of(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query).get("token", [])


@pytest.mark.parametrize("fmt", ["rss", "atom"])
@pytest.mark.parametrize("slug", [None, "ai"])
def test_token_is_only_in_the_feed_level_links_of_its_xml_response(token_client, fmt, slug):
    path = f"/topics/{slug}/page/2/{PATHS[fmt]}" if slug else f"/page/2/{PATHS[fmt]}"
    response = token_client.get(f"{path}?include=all&token={TOKEN}&limit=2")
    assert response.status_code == 200
    root = check_feed(fmt, response.data)
    parent = root if fmt == "atom" else root.find("channel")
    links = {l.get("rel"): l for l in parent.findall(f"{ATOM}link")}
    with_token = {rel for rel, l in links.items() if token_of(l.get("href"))}
    assert {"self", "first", "last", "previous"} <= with_token
    assert all(token_of(links[rel].get("href")) == [TOKEN] for rel in with_token)
    self_query = parse_qs(urlsplit(links["self"].get("href")).query)
    assert self_query == {"include": ["all"], "token": [TOKEN], "limit": ["2"]}  # the page is in the path
    for link in parent.findall(f"{ATOM}link"):
        parent.remove(link)
    if fmt == "atom":  # the feed id names the feed, not a reader's view of it
        assert TOKEN not in root.findtext(f"{ATOM}id")
    assert TOKEN not in etree.tostring(root, encoding="unicode")


def test_token_is_only_in_the_feed_links_of_its_json_response(token_client):
    response = token_client.get(f"/feed.json?include=all&token={TOKEN}&limit=2")
    feed = json.loads(response.data)
    assert token_of(feed["feed_url"]) == [TOKEN]
    assert token_of(feed["next_url"]) == [TOKEN]
    rest = {k: v for k, v in feed.items() if k not in ("feed_url", "next_url")}
    assert TOKEN not in json.dumps(rest, ensure_ascii=False)


def test_token_is_only_in_the_feed_links_of_the_preview_index(token_client):
    response = token_client.get(f"/?include=all&token={TOKEN}")
    document = lxml.html.fromstring(response.data)
    feed_links = [
        e
        for e in document.iter("a", "link")
        if e.get("href") and "/feeds.opml" not in e.get("href") and e.get("rel") != "stylesheet"
    ]
    assert len(feed_links) >= 6
    assert all(token_of(e.get("href")) == [TOKEN] for e in feed_links)
    for element in feed_links:
        del element.attrib["href"]
    assert TOKEN not in lxml.html.tostring(document, encoding="unicode")


def test_token_is_only_in_the_outline_urls_of_the_preview_opml(token_client):
    response = token_client.get(f"/feeds.opml?include=all&token={TOKEN}")
    root = etree.fromstring(response.data)
    outlines = root.findall(".//outline[@xmlUrl]")  # the feeds, not the outline grouping the topics
    assert outlines
    for outline in outlines:
        assert token_of(outline.get("xmlUrl")) == [TOKEN]
        assert token_of(outline.get("jsonUrl")) == [TOKEN]
        assert token_of(outline.get("htmlUrl")) == [TOKEN]  # the preview's topic page
        del outline.attrib["xmlUrl"], outline.attrib["jsonUrl"], outline.attrib["htmlUrl"]
    assert TOKEN not in etree.tostring(root, encoding="unicode")


OTHER_REQUESTS = [
    "/rss.xml",
    "/atom.xml",
    "/feed.json",
    "/topics/ai/rss.xml",
    "/topics/ai/feed.json",
    "/",
    "/feeds.opml",
    "/?include=published",
    f"/rss.xml?token={TOKEN}",
    f"/?token={TOKEN}",
    f"/feeds.opml?token={TOKEN}",
    f"/atom.xml?include=published&token={TOKEN}",
    "/rss.xml?include=all",
    f"/rss.xml?include=all&token={WRONG}",
    "/healthz",
    "/missing",
    f"/topics/ai/rss.xml?include=all&token={TOKEN}&limit=0",
]


@pytest.mark.parametrize("gzip", [False, True])
def test_token_never_reaches_the_responses_to_other_requests(token_client, gzip):
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    for path in PATHS.values():  # previews first: what they cached must not leak
        for topic in ("", "/topics/ai"):
            assert token_client.get(f"{topic}/{path}?include=all&token={TOKEN}", headers=headers).status_code == 200
    token_client.get(f"/?include=all&token={TOKEN}")
    token_client.get(f"/feeds.opml?include=all&token={TOKEN}")
    for _ in range(2):  # the second round may be answered from kept responses
        for url in OTHER_REQUESTS:
            response = token_client.get(url, headers=headers)
            if gzip and response.headers.get("Content-Encoding") == "gzip":
                import gzip as gz

                response.set_data(gz.decompress(response.data))
            assert not leaks_token(response, TOKEN), url


def test_kept_preview_responses_are_not_replayed_without_the_token(token_client):
    for _ in range(3):
        assert token_client.get(f"/rss.xml?include=all&token={TOKEN}").status_code == 200
    assert token_client.get("/rss.xml?include=all").status_code == 403
    assert token_client.get(f"/rss.xml?include=all&token={WRONG}").status_code == 403
    assert token_client.get(f"/rss.xml?token={TOKEN}&include=all&token=").status_code == 400


# --- caching: previews are private -------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(PATHS))
@pytest.mark.parametrize("gzip", [False, True])
def test_preview_responses_are_private_and_published_ones_public(token_client, fmt, gzip):
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    for _ in range(2):  # first from Flask, then possibly replayed
        preview = token_client.get(f"/{PATHS[fmt]}?include=all&token={TOKEN}", headers=headers)
        assert preview.status_code == 200
        assert preview.cache_control.private and not preview.cache_control.public
        published = token_client.get(f"/{PATHS[fmt]}", headers=headers)
        assert published.cache_control.public and not published.cache_control.private


def test_preview_304_stays_private(token_client):
    url = f"/atom.xml?include=all&token={TOKEN}"
    etag = token_client.get(url).headers["ETag"]
    for _ in range(2):
        response = token_client.get(url, headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert response.cache_control.private and not response.cache_control.public
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_open_preview_without_token_is_private_too(client):
    assert client.get("/rss.xml?include=all").cache_control.private


# --- odd requests: short 4xx, never 5xx --------------------------------------------------------

ODD_REQUESTS = [
    ("GET", "/nope"),
    ("GET", "/rss"),
    ("GET", "/rss.xml/"),
    ("GET", "/topics/ai/page/0/"),
    ("GET", "/topics/%00/"),
    ("GET", "/topics/ai/page/99999999999999999999999/"),
    ("GET", "/topics/ai/rss"),
    ("GET", "/topics/%ff/rss.xml"),
    ("GET", "/topics/%00/atom.xml"),
    ("GET", "/topics/%2e%2e/rss.xml"),
    ("GET", "/topics/..%2f..%2fetc%2fpasswd/rss.xml"),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd"),
    ("GET", "/topics/" + "a" * 5000 + "/rss.xml"),
    ("GET", "/topics/" + "%C3%A9" * 2000 + "/feed.json"),
    ("GET", "/topics/caf%C3%A9/rss.xml"),
    ("GET", "/topics/%E2%98%83/feed.json"),
    ("GET", "/topics/%F0%9F%98%80/atom.xml"),
    ("GET", "/topics/%C0%AE%C0%AE/rss.xml"),
    ("GET", "/topics/<script>/rss.xml"),
    ("GET", "/rss.xml?include=" + "x" * 10_000),
    ("GET", "/rss.xml?limit=" + "1x" * 5_000),
    ("GET", "/page/" + "9" * 10_000 + "/rss.xml"),
    ("GET", "/rss.xml?limit=1&limit=2"),
    ("GET", "/atom.xml?include=all&include=published"),
    ("GET", "/feed.json?page=1&page=1"),
    ("GET", "/?include=all&include=all"),
    ("GET", "/rss.xml?limit=%ff"),
    ("GET", "/rss.xml?limit=%00"),
    ("GET", "/rss.xml?page=0"),
    ("GET", "/rss.xml?limit=-1"),
    ("GET", "/rss.xml?limit=%D9%A1%D9%A2"),
    ("GET", "/rss.xml?limit=1e3"),
    ("GET", "/rss.xml?include=%C0%AE"),
    ("GET", "/rss.xml?include=ALL"),
    ("GET", "/feeds.opml?include=%00"),
    ("POST", "/rss.xml"),
    ("PUT", "/"),
    ("PUT", "/feed.json"),
    ("DELETE", "/topics/ai/atom.xml"),
    ("PATCH", "/feeds.opml"),
    ("TRACE", "/rss.xml"),
    ("PROPFIND", "/"),
    ("POST", "/nope"),
]


@pytest.mark.parametrize(("method", "url"), ODD_REQUESTS, ids=[f"{m} {u[:50]}" for m, u in ODD_REQUESTS])
def test_odd_request_is_a_short_4xx(client, seeds_dir, method, url):
    response = client.open(url, method=method)
    text = assert_short_plain_error(response)
    assert str(seeds_dir) not in text
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "POST"])
@pytest.mark.parametrize("url", ["/rss.xml", "/topics/ai/atom.xml", "/feed.json", "/", "/feeds.opml", "/healthz"])
def test_other_methods_are_405_with_allow(client, method, url):
    response = client.open(url, method=method)
    assert_short_plain_error(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "HEAD"} <= allowed and method not in allowed


@pytest.mark.parametrize(
    "url", ["/rss.xml", "/topics/ai/atom.xml", "/feed.json", "/", "/feeds.opml", "/healthz", "/nope", "*"]
)
def test_options_is_answered_without_error(client, url):
    response = client.open(url, method="OPTIONS")
    assert response.status_code < 500
    if response.status_code == 200:
        assert "GET" in {m.strip() for m in response.headers["Allow"].split(",")}
        assert response.data == b""
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_head_of_a_feed_has_headers_and_no_body(client):
    get, head = client.get("/rss.xml"), client.head("/rss.xml")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_huge_query_of_unknown_parameters_is_ignored(client):
    response = client.get("/rss.xml?" + "&".join(f"p{n}=v{n}" for n in range(1500)))
    assert response.status_code == 200
    check_feed("rss", response.data)
    response = client.get("/atom.xml?junk=" + "x" * 10_000)
    assert response.status_code == 200
    assert "x" * 100 not in response.get_data(as_text=True)


def test_long_bad_value_is_not_echoed_whole(client):
    text = assert_short_plain_error(client.get("/rss.xml?include=" + "A" * 10_000), 400)
    assert "A" * 41 not in text
    text = assert_short_plain_error(client.get("/topics/" + "b" * 5000 + "/rss.xml"), 404)
    assert "b" * 61 not in text


@pytest.mark.parametrize(
    "url",
    [
        "/rss.xml?include=" + quote("\U000e0001" * 40),
        "/rss.xml?limit=" + quote("\U000e0001" * 40),
        "/topics/" + quote("\U000e0001" * 60) + "/rss.xml",
    ],
    ids=["include", "limit", "topic"],
)
def test_error_quoting_non_printable_input_stays_short(client, url):
    assert_short_plain_error(client.get(url))


def test_odd_requests_never_break_the_next_one(client):
    for method, url in ODD_REQUESTS:
        client.open(url, method=method)
    response = client.get("/topics/ai/rss.xml")
    assert response.status_code == 200
    check_feed("rss", response.data)


# --- security headers --------------------------------------------------------------------------


def csp(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as directive -> values."""
    policy = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        policy[name.lower()] = values
    return policy


EVERY_KIND = [
    ("GET", "/"),
    ("GET", "/?include=all"),
    ("GET", "/rss.xml"),
    ("GET", "/atom.xml"),
    ("GET", "/feed.json"),
    ("GET", "/topics/ai/rss.xml"),
    ("GET", "/topics/ai/"),
    ("GET", "/all/"),
    ("GET", "/style.css"),
    ("GET", "/feeds.opml"),
    ("GET", "/healthz"),
    ("HEAD", "/rss.xml"),
    ("GET", "/nope"),
    ("GET", "/topics/nope/rss.xml"),
    ("GET", "/rss.xml?limit=0"),
    ("GET", "/rss.xml?page=99"),
    ("PUT", "/rss.xml"),
    ("OPTIONS", "/rss.xml"),
    ("OPTIONS", "/"),
]


@pytest.mark.parametrize(("method", "url"), EVERY_KIND)
def test_every_response_says_nosniff(client, method, url):
    for _ in range(2):  # through Flask, then possibly replayed
        response = client.open(url, method=method)
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


def test_every_response_says_nosniff_incl_304_and_403(client, token_client):
    etag = client.get("/rss.xml").headers["ETag"]
    for _ in range(2):
        assert client.get("/rss.xml", headers={"If-None-Match": etag}).headers["X-Content-Type-Options"] == "nosniff"
    assert token_client.get("/rss.xml?include=all").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/", {}),
        ("/?include=all", {}),
        ("/topics/ai/", {}),
        ("/all/", {}),
        ("/rss.xml", {"Sec-Fetch-Dest": "document"}),
    ],
)
def test_html_has_a_strict_content_security_policy(client, url, headers):
    response = client.get(url, headers=headers)
    assert response.mimetype == "text/html"
    policy = csp(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["style-src"] == ["'self'"] and "script-src" not in policy  # our stylesheet; no script at all
    assert policy.get("img-src", ["https:", "http:"]) == ["https:", "http:"]  # the entries' pictures only
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy.get("base-uri") == ["'none'"]
    assert not any("unsafe" in v for values in policy.values() for v in values)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_preview_index_has_the_policy_and_no_referrer(token_client):
    response = token_client.get(f"/?include=all&token={TOKEN}")
    assert csp(response)["default-src"] == ["'none'"]
    assert response.headers["Referrer-Policy"] == "no-referrer"  # the token must not travel in a Referer


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("rss", "application/rss+xml"), ("atom", "application/atom+xml"), ("json", "application/feed+json")],
)
def test_feeds_are_served_as_their_own_type(client, fmt, media_type):
    response = client.get(f"/{PATHS[fmt]}")
    assert response.mimetype == media_type
    assert response.mimetype_params.get("charset") == "utf-8"


# --- the access log never holds a token --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("include=all&token=abc", "include=all&token=***"),
        ("token=abc", "token=***"),
        ("token=abc&include=all", "token=***&include=all"),
        ("GET /rss.xml?include=all&token=abc HTTP/1.1", "GET /rss.xml?include=all&token=*** HTTP/1.1"),
        ("GET /rss.xml?token=abc&token=def HTTP/1.1", "GET /rss.xml?token=***&token=*** HTTP/1.1"),
        ("/x?a=1;token=abc;b=2", "/x?a=1;token=***;b=2"),
        ("/x?token=a%20b%26c#frag", "/x?token=***#frag"),
        ("/x?token=", "/x?token=***"),
        ("/x?mytoken=abc&token_x=1", "/x?mytoken=abc&token_x=1"),
        ("/topics/token=abc/rss.xml", "/topics/token=abc/rss.xml"),
        ("/rss.xml?include=all", "/rss.xml?include=all"),
        ("", ""),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


class Records(logging.Handler):
    """Keeps every record it is handed, unformatted."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def access_record(uri: str, referer: str = "https://reader.example/") -> logging.LogRecord:
    """The record granian's access log makes, in feedsvc serve's format, for a GET of `uri` (before any filter)."""
    path, _, query = uri.partition("?")
    request = {"addr_remote": "192.0.2.1", "protocol": "HTTP/1.1", "path": path, "qs": query, "method": "GET",
               "scheme": "http", "headers": {"referer": referer, "user-agent": "reader/1.0"}.get}  # fmt: skip
    logger, records = logging.getLogger("granian.access"), Records()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        log_request_builder(ACCESS_LOG_FORMAT)(time.time(), time.perf_counter(), request, 200)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
        logger.propagate = propagate
    (record,) = records.records
    return record


def access_line(uri: str, referer: str = "https://reader.example/") -> str:
    """The access-log line feedsvc serve writes for a GET of `uri`: through RedactTokens."""
    record = access_record(uri, referer)
    assert RedactTokens().filter(record)  # a filter that redacts never drops the line
    return record.getMessage()


@pytest.mark.parametrize(
    "uri",
    [
        f"/rss.xml?include=all&token={TOKEN}",
        f"/topics/ai/atom.xml?token={TOKEN}&include=all&limit=5",
        f"/feed.json?include=all&token={TOKEN}&token={TOKEN}",
        f"/?token={TOKEN}",
    ],
)
def test_access_log_keeps_tokens_out_of_the_line(uri):
    assert TOKEN in access_record(uri).args["query_string"]  # the test would see a leak
    line = access_line(uri)
    assert TOKEN not in line
    assert f'"GET {redact(uri)} HTTP/1.1" 200 ' in line and "token=***" in line
    assert line.startswith("192.0.2.1 - - [")
    assert line.endswith('"https://reader.example/" "reader/1.0"')


def test_access_log_leaves_token_free_requests_alone():
    for uri in ("/topics/ai/rss.xml?include=all&limit=5", "/topics/ai/rss.xml"):
        assert f'"GET {uri} HTTP/1.1" 200 ' in access_line(uri)  # no "?" where there is no query


def test_percent_encoded_token_name_is_redacted_too(token_client):
    uri = f"/rss.xml?include=all&%74oken={TOKEN}"
    assert token_client.get(uri).status_code == 200
    assert TOKEN not in access_line(uri)


def test_token_with_a_semicolon_is_redacted_whole(make_client):
    token = "ab12;cd34"
    client = make_client(PREVIEW_TOKEN=token)
    uri = f"/rss.xml?include=all&token={token}"
    assert client.get(uri).status_code == 200
    assert "cd34" not in access_line(uri)


def test_referer_holding_a_preview_url_is_redacted():
    referer = f"https://feeds.example/?include=all&token={TOKEN}"
    line = access_line("/rss.xml", referer=referer)
    assert TOKEN not in line
    assert '"https://feeds.example/?include=all&token=***"' in line


def fetch(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_served_access_log_redacts_the_token(seeds_dir: Path, tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FEEDSVC_PREVIEW_TOKEN": TOKEN, "FEEDSVC_CACHE_DIR": str(tmp_path / "cache")}
    command = [
        sys.executable,
        "-m",
        "feedsvc.cli",
        "serve",
        "--seeds",
        str(seeds_dir),
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=PROJECT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert fetch(f"{base}/healthz") == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert fetch(f"{base}/rss.xml?include=all&token={TOKEN}") == 200
        assert fetch(f"{base}/feed.json?token={TOKEN}&include=all&limit=2") == 200
        assert fetch(f"{base}/rss.xml?include=all&token={WRONG}") == 403
        assert fetch(f"{base}/rss.xml?include=all&%74oken={TOKEN}") == 200
        assert fetch(f"{base}/topics/ai/rss.xml", {"Referer": f"{base}/?include=all&token={TOKEN}"}) == 200
    finally:
        server.send_signal(signal.SIGTERM)
        output, errors = (stream.decode("utf-8", "replace") for stream in server.communicate(timeout=30))
    assert server.returncode == 0, (output + errors)[-2000:]
    access = [line for line in output.splitlines() if '"GET /' in line and "oken=" in line]  # on stdout
    assert len(access) == 5, output[-2000:]  # one line per request
    assert all("oken=***" in line for line in access)
    for text in (output, errors):
        assert TOKEN not in text
        assert WRONG not in text
