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
import shutil
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import lxml.html
import pytest
from helpers import article_fields, front_matter

from feedsvc import create_app

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.access(p, os.X_OK)), None)
pytestmark = [
    pytest.mark.slow,  # a headless Chromium for each test
    pytest.mark.skipif(
        CHROMIUM is None, reason="headless Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium"
    ),
]
WIDTH = 600
CHROMIUM_TIMEOUT = 90  # seconds for one headless run, start to exit
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


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, made with zlib alone."""
    row = b"\x00" + bytes(colour) * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


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


def chromium(url: str, profile: Path, *extra: str, height: int = 2000) -> str:
    """Run headless Chromium on `url` in a WIDTH x `height` window (bounded); its stdout."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{height}",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    completed = subprocess.run(
        command, capture_output=True, timeout=CHROMIUM_TIMEOUT, stdin=subprocess.DEVNULL, check=False
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-3000:]
    return completed.stdout.decode("utf-8", errors="replace")


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
