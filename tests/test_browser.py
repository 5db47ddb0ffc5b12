"""The digest in a real browser: headless Chromium renders it 600 px wide.

The articles' images point at a fixture HTTP server on 127.0.0.1 that serves generated PNGs of
several sizes (2400x1600, 300x300, one without a size in its article, one of a related link).
That server also serves a wrapper page: the digest fragment, as the app answers it, plus a tiny
script that, after the window's load event, writes the page's scroll width, client width and every
image's state as JSON into a hidden <pre id=result>. Chromium dumps the DOM, the test reads it.
Nothing leaves the machine. Skipped where Chromium is absent (CI installs it).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
from pathlib import Path

import lxml.html
import pytest
from helpers import NEEDS_CHROMIUM, Browser, Server, article_fields, chromium, front_matter, png, png_size
from lxml import etree

from feedsvc import create_app

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]  # a headless Chromium for each test
WIDTH = 600
IMAGES = {  # path -> (width, height, colour)
    "/img/wide-2400x1600.png": (2400, 1600, (200, 80, 40)),
    "/img/square-300x300.png": (300, 300, (40, 120, 200)),
    "/img/unsized-1200x800.png": (1200, 800, (60, 160, 90)),
    "/img/related-1000x1000.png": (1000, 1000, (150, 60, 170)),
}
LONG_WORD = "Supercalifragilisticexpialidocious" * 6  # 204 letters, no break opportunity
RESULT_SCRIPT = """
<pre id="result" hidden></pre>
<script>
window.addEventListener("load", function () {
  var root = document.documentElement;
  var images = Array.prototype.map.call(document.images, function (img) {
    var box = img.getBoundingClientRect();
    return {src: img.src, complete: img.complete, naturalWidth: img.naturalWidth,
            naturalHeight: img.naturalHeight, width: img.width, height: img.height, right: box.right};
  });
  var result = {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
                bodyScrollWidth: document.body.scrollWidth, images: images};
  document.getElementById("result").textContent = JSON.stringify(result);
});
</script>
"""


class FixtureServer:
    """Serves the PNGs and the wrapper pages on 127.0.0.1; records every path asked for."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {path: (png(*spec), "image/png") for path, spec in IMAGES.items()}
        self.requested: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API
                outer.requested.append(self.path)
                found = outer.files.get(self.path)
                if found is None:
                    self.send_error(404)
                    return
                body, media_type = found
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def page(self, path: str, fragment: str) -> str:
        """Serve `fragment` in a wrapper page with the measuring script; its URL."""
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><title>digest</title></head>'
            f"<body>{fragment}{RESULT_SCRIPT}</body></html>"
        )
        self.files[path] = (html.encode("utf-8"), "text/html; charset=utf-8")
        return self.url + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fixture_server():
    server = FixtureServer()
    try:
        yield server
    finally:
        server.close()


def measure(url: str, profile: Path) -> dict:
    """The JSON the wrapper page's script wrote after load."""
    dom = chromium(url, profile, "--dump-dom")
    results = lxml.html.fromstring(dom).xpath('//pre[@id="result"]')
    assert results and results[0].text, f"the page's script wrote no result: {dom[-2000:]}"
    return json.loads(results[0].text)


@pytest.fixture
def digest_fragment(tmp_path: Path, fixture_server: FixtureServer) -> str:
    """The app's digest of articles whose pictures live on the fixture server."""
    seeds = tmp_path / "newsletter-seeds"
    seeds.mkdir()
    image = lambda path: {"url": fixture_server.url + path, "width": IMAGES[path][0], "height": IMAGES[path][1]}
    articles = {
        "wide.md": article_fields(
            title="A wide picture, scaled down to the column",
            topics=["Newsletter"],
            webUrl="https://news.example.com/wide",
            publishedDateTime="2021-03-05T09:00:00Z",
            images=[image("/img/wide-2400x1600.png")],
            related=[
                {
                    "title": "A related story with its own picture",
                    "webUrl": "https://other.example.org/related",
                    "excerpt": "Coverage elsewhere.",
                    "images": [image("/img/related-1000x1000.png")],
                }
            ],
        ),
        "square.md": article_fields(
            title="A small square picture keeps its size",
            topics=["Newsletter"],
            webUrl="https://news.example.com/square",
            publishedDateTime="2021-03-04T09:00:00Z",
            images=[image("/img/square-300x300.png")],
        ),
        "unsized.md": article_fields(
            title=f"No size given {LONG_WORD}",
            topics=["Newsletter"],
            excerpt=f"An excerpt with an unbreakable run: {LONG_WORD} and a URL https://example.com/{'a' * 150}",
            webUrl="https://news.example.com/unsized",
            publishedDateTime="2021-03-03T09:00:00Z",
            images=[fixture_server.url + "/img/unsized-1200x800.png"],
        ),
        "text-only.md": article_fields(
            title="A story without a picture",
            topics=["Newsletter"],
            images=None,
            webUrl="https://news.example.com/text",
            publishedDateTime="2021-03-02T09:00:00Z",
        ),
    }
    for name, fields in articles.items():
        (seeds / name).write_text(front_matter(**fields), encoding="utf-8")
    app = create_app(
        {"TESTING": True, "SEEDS_DIR": str(seeds), "RELOAD_INTERVAL": 0, "BASE_URL": "https://feeds.example.org/"}
    )
    response = app.test_client().get("/topics/newsletter/digest.html?limit=10")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_digest_renders_600px_wide_with_every_image_loaded(tmp_path, fixture_server, digest_fragment):
    result = measure(fixture_server.page("/digest.html", digest_fragment), tmp_path / "profile")

    assert result["clientWidth"] == WIDTH
    assert result["scrollWidth"] <= result["clientWidth"], result  # no horizontal scroll
    assert result["bodyScrollWidth"] <= result["clientWidth"], result
    images = {image["src"].removeprefix(fixture_server.url): image for image in result["images"]}
    assert set(images) == set(IMAGES)
    for path, (natural_width, natural_height, _) in IMAGES.items():
        image = images[path]
        assert image["complete"], path
        assert (image["naturalWidth"], image["naturalHeight"]) == (natural_width, natural_height), path  # loaded
        assert 0 < image["width"] <= WIDTH and image["right"] <= result["clientWidth"], (path, image)
        assert abs(image["height"] - image["width"] * natural_height / natural_width) <= 1, (
            path,
            image,
        )  # no distortion
    assert images["/img/square-300x300.png"]["width"] == 300  # a small picture is not stretched
    assert images["/img/wide-2400x1600.png"]["width"] >= 500  # a large one fills the column
    for path in IMAGES:
        assert path in fixture_server.requested


def test_measuring_page_catches_a_layout_wider_than_the_column(tmp_path, fixture_server):
    """The harness can fail: a fixed 2400 px picture and a 900 px table scroll sideways."""
    fragment = (
        f'<table width="900"><tr><td><img src="{fixture_server.url}/img/wide-2400x1600.png" '
        'width="2400" height="1600" alt="too wide"></td></tr></table>'
    )
    result = measure(fixture_server.page("/too-wide.html", fragment), tmp_path / "profile")
    assert result["clientWidth"] == WIDTH
    assert result["scrollWidth"] >= 2400 > result["clientWidth"]
    [image] = result["images"]
    assert image["complete"] and image["naturalWidth"] == 2400 and image["width"] == 2400


def test_measuring_page_catches_an_image_that_did_not_load(tmp_path, fixture_server):
    fragment = f'<img src="{fixture_server.url}/img/missing.png" width="300" height="300" alt="gone">'
    result = measure(fixture_server.page("/missing.html", fragment), tmp_path / "profile")
    [image] = result["images"]
    assert image["naturalWidth"] == 0  # what the digest test rules out for every picture
    assert "/img/missing.png" in fixture_server.requested


def test_screenshot_of_the_digest(tmp_path, fixture_server, digest_fragment):
    """A 600 px wide screenshot (kept in the test's tmp folder for a human look)."""
    shot = tmp_path / "digest.png"
    url = fixture_server.page("/digest-shot.html", digest_fragment)
    chromium(url, tmp_path / "profile", f"--screenshot={shot}", height=3400)  # the whole digest
    data = shot.read_bytes()
    width, height = png_size(data)
    assert (width, height) == (WIDTH, 3400)
    assert len(data) > 10_000  # pictures and text, not a blank page


# --- the pages people see: the index, a topic page, a feed's URL, at a phone's and a desktop's width ----

PHONE, DESKTOP = (390, 844), (1280, 800)  # CSS px: an iPhone 14's viewport, a laptop's
MEASURE = """(() => {
  const root = document.documentElement, main = document.querySelector("main");
  const banner = "xslt-warning-banner";  // what Chromium shows over an XSLT-styled feed
  return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, bodyScrollWidth: document.body.scrollWidth,
          contentType: document.contentType, text: document.body ? document.body.innerText : "",
          styled: main ? getComputedStyle(main).maxWidth : "none",
          background: getComputedStyle(document.body).backgroundColor,
          banners: document.querySelectorAll("." + banner + ", #" + banner).length,
          images: Array.from(document.images, (img) => ({complete: img.complete, naturalWidth: img.naturalWidth,
                                                          right: img.getBoundingClientRect().right}))};
})()"""
PAGES = {
    "index": ("/", "Artificial Intelligence"),
    "topic": ("/topics/artificial-intelligence/", "Story 7: what happened in the lab this week"),
    "feed": ("/topics/artificial-intelligence/rss.xml", "This is a web feed"),
    "atom-feed": ("/atom.xml", "This is a web feed"),
    "json-feed": ("/feed.json", "This is a web feed"),
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Where the screenshots go: $FEEDSVC_ARTIFACTS, else a temporary folder (printed either way)."""
    folder = Path(os.environ.get("FEEDSVC_ARTIFACTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `feedsvc serve` over articles with long words, long URLs, related links and pictures
    on a local fixture server: Chromium's own requests (its own Sec-Fetch-Dest) reach the app."""
    images = FixtureServer()
    seeds = tmp_path_factory.mktemp("pages") / "seeds"
    seeds.mkdir()
    picture = lambda path: {"url": images.url + path, "width": IMAGES[path][0], "height": IMAGES[path][1]}
    for number in range(8):
        related = {"title": f"Coverage of story {number}", "webUrl": f"https://other.example.org/{number}",
                   "excerpt": "Another outlet's take on it."}  # fmt: skip
        topics = ["Artificial Intelligence", "Computer Vision"] if number % 2 else ["Artificial Intelligence"]
        fields = article_fields(
            title=f"Story {number}: what happened in the lab this week" + (f" {LONG_WORD}" if number == 1 else ""),
            excerpt=f"An excerpt of the story, with a long link https://example.com/{'path/' * 40}{number}",
            webUrl=f"https://news.example.com/{number}",
            publishedDateTime=f"2021-03-{10 + number:02d}T09:00:00Z",
            topics=topics,
            images=[picture(list(IMAGES)[number % len(IMAGES)])] if number % 3 else None,
            related=[related] if number % 4 == 0 else None,
        )
        (seeds / f"story-{number}.md").write_text(front_matter(**fields), encoding="utf-8")
    server = Server(seeds)
    try:
        yield server
    finally:
        server.stop()
        images.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module's pages."""
    browser = Browser(tmp_path_factory.mktemp("profile"))
    try:
        yield browser
    finally:
        browser.close()


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_reads_well_in_chromium(served, browser, artifacts, name, size):
    """Opened as a person opens it (a top-level navigation), measured as served (its CSP in force)."""
    path, expected = PAGES[name]
    width, height = size
    browser.open(served.url(path), width, 3000)  # tall: every lazy picture is in view and loads
    assert browser.wait_for("Array.from(document.images).every((img) => img.complete)"), "pictures still loading"
    result = browser.evaluate(MEASURE)
    assert result["contentType"] == "text/html", f"{path} is not the HTML page: {result['text'][:300]}"
    assert result["banners"] == 0 and "<rss" not in result["text"] and "<?xml" not in result["text"]
    assert result["clientWidth"] == width
    assert result["scrollWidth"] <= result["clientWidth"], result  # no horizontal scroll
    assert result["bodyScrollWidth"] <= result["clientWidth"], result
    assert result["styled"] != "none"  # the stylesheet loaded under the page's CSP
    assert expected in result["text"]
    if name != "index":
        assert "Related to:" in result["text"] and "RELATED COVERAGE" in result["text"].upper()
        assert result["images"] and all(i["complete"] and i["naturalWidth"] > 0 for i in result["images"]), result
        assert all(i["right"] <= width for i in result["images"])
    browser.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                 mobile=width < 600)  # fmt: skip
    shot = browser.screenshot(artifacts / f"{name}-{'phone' if size == PHONE else 'desktop'}.png")
    assert png_size(shot) == (width, height) and len(shot) > 10_000  # text and pictures, not a blank page


@pytest.mark.parametrize("name", ["index", "topic", "feed"])
def test_page_follows_a_dark_colour_scheme(served, browser, artifacts, name):
    browser.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
    try:
        browser.open(served.url(PAGES[name][0]), *PHONE)
        dark = browser.evaluate(MEASURE)
        browser.screenshot(artifacts / f"{name}-phone-dark.png")
    finally:
        browser.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "light"}])
    browser.open(served.url(PAGES[name][0]), *PHONE)
    light = browser.evaluate(MEASURE)
    brightness = lambda colour: sum(int(c) for c in re.findall(r"\d+", colour)[:3])
    assert brightness(dark["background"]) < 150 and brightness(light["background"]) > 600, (dark, light)
    assert dark["scrollWidth"] <= dark["clientWidth"]


def test_a_feed_reader_still_gets_the_feed_from_the_same_server(served):
    """What Chromium got as a page, a program gets as the feed: same URL, same server."""
    for path in ("/topics/artificial-intelligence/rss.xml", "/atom.xml"):
        status, headers, body = served.request(path)
        assert status == 200 and headers["Content-Type"].startswith(("application/rss+xml", "application/atom+xml"))
        assert etree.fromstring(body).tag in ("rss", "{http://www.w3.org/2005/Atom}feed")
        assert "Sec-Fetch-Dest" in headers["Vary"]


def test_the_measure_tells_a_raw_xml_document_from_a_page(served, browser):
    """The harness can fail: an XML document the app serves to browsers as is (the OPML) is seen as one."""
    browser.open(served.url("/feeds.opml"), *PHONE)
    result = browser.evaluate(MEASURE)
    assert result["contentType"] in ("text/x-opml", "text/xml", "application/xml") and result["styled"] == "none"
