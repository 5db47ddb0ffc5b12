"""What RSS-to-email services read from the feeds.

They take an item's picture from media:content medium="image" or from an <img> in
content:encoded, and its text from content:encoded, then from the description. So every entry
with an image carries both, with the same absolute URL and a size (width/height in the <img>,
fitted to a 600 px column; the source size on media:content), and a description that shows its
plain text when read as HTML (its markup characters escaped, no element).
Checked on the seeds and the corpus, in RSS (lxml and feedparser), Atom and JSON Feed.
"""

from __future__ import annotations

import json

import feedparser
import lxml.html
import pytest
from helpers import ATOM, MEDIA, is_absolute_uri
from lxml import etree

from feedsvc import create_app

BASE = "https://feeds.example.org/"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
COLUMN = 600
ALL = "?include=all&limit=500"


@pytest.fixture(scope="module", params=["seeds", "corpus"])
def client(request, read_only_folders, tmp_path_factory):
    app = create_app(
        {
            "TESTING": True,
            "SEEDS_DIR": str(read_only_folders / request.param),
            "RELOAD_INTERVAL": 0,
            "BASE_URL": BASE,
            "CACHE_DIR": str(tmp_path_factory.mktemp(f"cache-{request.param}")),
        }
    )
    return app.test_client()


def get(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.data


def feed_urls(client, name: str) -> list[str]:
    """The all-topics feed and every topic's, drafts included, every entry on one page."""
    opml = etree.fromstring(get(client, "/feeds.opml?include=all"))
    feeds = opml.iterfind(".//outline[@xmlUrl]")  # the feeds, not the outline grouping the topics
    slugs = [o.get("xmlUrl").split("/")[-2] for o in feeds if "/topics/" in o.get("xmlUrl")]
    assert slugs
    return [f"/{name}{ALL}", *(f"/topics/{slug}/{name}{ALL}" for slug in slugs)]


def the_image(html: str) -> lxml.html.HtmlElement:
    """The one <img> of an entry's HTML content."""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    images = root.xpath(".//img")
    assert len(images) == 1, html
    assert not root.xpath(".//script | .//style | .//link | .//iframe"), html
    return images[0]


def text_of_html(html: str) -> str | None:
    """What a reader shows of a field it reads as HTML (as RSS readers do with a description): its
    text, or None when it holds an element."""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    return None if len(root) else root.text_content()


def check_fitted(image, source_width: int, source_height: int) -> None:
    """An <img> sized for the 600 px column from the source size, keeping its aspect ratio."""
    width, height = int(image.get("width")), int(image.get("height"))
    assert width == min(source_width, COLUMN)
    assert height == max(1, round(source_height * width / source_width))
    # Sized by attributes only: feed readers strip style attributes (the W3C validator warns of them).
    assert image.get("style") is None


def excerpts_by_url(client) -> dict[str, dict]:
    """Each entry's excerpt, title and related note, from the JSON Feed."""
    items = json.loads(get(client, f"/feed.json{ALL}"))["items"]
    return {item["url"]: item for item in items}


def test_rss_items_with_an_image_carry_media_content_img_and_plain_description(client):
    items_by_url = excerpts_by_url(client)
    with_image = without_image = 0
    for url in feed_urls(client, "rss.xml"):
        root = etree.fromstring(get(client, url))
        for item in root.iter("item"):
            link, title = item.findtext("link"), item.findtext("title")
            contents = item.findall(f"{MEDIA}content")
            encoded = item.findtext(f"{CONTENT}encoded")
            description = item.findtext("description")
            expected = items_by_url[link]
            if not contents:
                without_image += 1
                assert encoded is None, title  # nothing to show but the text: the description
                assert "image" not in expected
                continue
            with_image += 1
            [content] = contents
            assert content.get("medium") == "image"
            assert is_absolute_uri(content.get("url")) and content.get("url") == expected["image"]
            source_width, source_height = int(content.get("width")), int(content.get("height"))
            assert source_width > 0 and source_height > 0
            thumbnail = item.find(f"{MEDIA}thumbnail")
            assert thumbnail is not None and thumbnail.get("url") == content.get("url")
            assert item.find(f"{MEDIA}group") is None

            assert encoded, f"{title}: no content:encoded"
            image = the_image(encoded)
            assert image.get("src") == content.get("url")
            assert image.get("alt") == title
            assert image.getparent().tag == "a" and image.getparent().get("href") == link
            check_fitted(image, source_width, source_height)
            for anchor in lxml.html.fragment_fromstring(encoded, create_parent="div").xpath(".//a"):
                assert is_absolute_uri(anchor.get("href"))

            assert description, f"{title}: no description"
            shown = text_of_html(description)
            assert shown is not None, description
            summary = expected.get("summary", "")
            if "_feedsvc" in expected:
                note = f"Related to: {expected['_feedsvc']['related_to']['title']}"
                assert shown == (f"{summary} ({note})" if summary else note)
            else:
                assert shown == summary
            if summary:  # the text is in content:encoded too, after the picture
                assert summary in lxml.html.fragment_fromstring(encoded, create_parent="div").text_content()
    assert with_image > 10 and without_image > 0


def test_feedparser_sees_the_image_the_html_and_the_text(client):
    """As a Python RSS-to-email bridge reads the feed: media_content, content, summary."""
    checked = 0
    for url in feed_urls(client, "rss.xml"):
        parsed = feedparser.parse(get(client, url))
        assert not parsed.bozo
        for entry in parsed.entries:
            if not entry.get("media_content"):
                assert not entry.get("content")
                continue
            checked += 1
            [media] = entry.media_content
            assert media["medium"] == "image" and is_absolute_uri(media["url"])
            assert int(media["width"]) > 0 and int(media["height"]) > 0
            [content] = entry.content
            assert content.type == "text/html"
            image = the_image(content.value)
            assert image.get("src") == media["url"]
            assert int(image.get("width")) <= COLUMN and int(image.get("height")) > 0
            assert entry.summary and text_of_html(entry.summary)
            assert "<" not in entry.summary
    assert checked > 10


def test_atom_entries_with_an_image_have_html_content_with_the_image(client):
    for url in feed_urls(client, "atom.xml"):
        root = etree.fromstring(get(client, url))
        for entry in root.iter(f"{ATOM}entry"):
            contents = entry.findall(f"{MEDIA}content")
            content = entry.find(f"{ATOM}content")
            if not contents:
                assert content is None
                continue
            [media] = contents
            assert media.get("medium") == "image"
            assert content is not None and content.get("type") == "html"
            image = the_image(content.text)
            assert image.get("src") == media.get("url")
            assert image.get("alt") == entry.findtext(f"{ATOM}title")
            check_fitted(image, int(media.get("width")), int(media.get("height")))
            summary = entry.find(f"{ATOM}summary")
            assert summary is not None and summary.get("type", "text") == "text" and summary.text


def test_json_items_with_an_image_have_content_html_with_the_image(client):
    sizes = {}
    for item in etree.fromstring(get(client, f"/rss.xml{ALL}")).iter("item"):
        media = item.find(f"{MEDIA}content")
        if media is not None:
            sizes[item.findtext("link")] = (int(media.get("width")), int(media.get("height")))
    for url in feed_urls(client, "feed.json"):
        for item in json.loads(get(client, url))["items"]:
            if "image" not in item:
                assert "content_html" not in item
                continue
            assert is_absolute_uri(item["image"])
            image = the_image(item["content_html"])
            assert image.get("src") == item["image"] and image.get("alt") == item["title"]
            check_fitted(image, *sizes[item["url"]])
            assert text_of_html(item["content_text"]) == item["content_text"]  # no markup in the plain text


def test_small_large_and_unsized_images(seeds_dir, write_article, make_client):
    write_article(
        "large.md",
        title="Large",
        webUrl="https://a.example/large",
        images=[{"url": "https://img.example/large.png", "width": 2400, "height": 1600}],
    )
    write_article(
        "small.md",
        title="Small",
        webUrl="https://a.example/small",
        images=[{"url": "https://img.example/small.png", "width": 300, "height": 300}],
    )
    write_article("bare.md", title="Bare", webUrl="https://a.example/bare", images=["https://img.example/bare.png"])
    root = etree.fromstring(make_client(BASE_URL=BASE).get("/topics/testing/rss.xml").data)
    items = {item.findtext("title"): item for item in root.iter("item")}
    large = the_image(items["Large"].findtext(f"{CONTENT}encoded"))
    small = the_image(items["Small"].findtext(f"{CONTENT}encoded"))
    bare = the_image(items["Bare"].findtext(f"{CONTENT}encoded"))
    assert (large.get("width"), large.get("height")) == ("600", "400")
    assert (small.get("width"), small.get("height")) == ("300", "300")  # never stretched
    assert bare.get("width") == "600" and bare.get("height") is None  # unknown height: the browser's
    media = items["Large"].find(f"{MEDIA}content")
    assert (media.get("width"), media.get("height")) == ("2400", "1600")  # the source's own size
    assert items["Bare"].find(f"{MEDIA}content").get("width") is None


def test_markup_and_entities_in_the_excerpt_stay_text(seeds_dir, write_article, make_client):
    write_article(
        "amp.md", title="Q&A", webUrl="https://a.example/amp", excerpt='AT&T <b>said</b> 5 &lt; 6 and "quoted"'
    )
    root = etree.fromstring(make_client(BASE_URL=BASE).get("/topics/testing/rss.xml").data)
    [item] = [i for i in root.iter("item") if i.findtext("link") == "https://a.example/amp"]
    shown = text_of_html(item.findtext("description"))
    assert shown == 'AT&T said 5 < 6 and "quoted"'
    paragraphs = lxml.html.fragment_fromstring(item.findtext(f"{CONTENT}encoded"), create_parent="div").xpath("./p")
    assert paragraphs[-1].text_content() == shown


def test_an_image_without_an_excerpt_still_gets_content_encoded_and_a_plain_description(
    seeds_dir, write_article, make_client
):
    """feedgen writes an item's content as its <description> when it has none: an entry with a
    picture and no excerpt must still get content:encoded, and plain text as its description."""
    write_article(
        "quiet.md",
        title="Picture, no words",
        webUrl="https://a.example/quiet",
        excerpt=None,
        images=[{"url": "https://img.example/quiet.png", "width": 1200, "height": 800}],
    )
    root = etree.fromstring(make_client(BASE_URL=BASE).get("/topics/testing/rss.xml").data)
    [item] = [i for i in root.iter("item") if i.findtext("link") == "https://a.example/quiet"]
    assert item.find(f"{MEDIA}content") is not None
    encoded = item.findtext(f"{CONTENT}encoded")
    assert encoded is not None, "no content:encoded"
    assert the_image(encoded).get("src") == "https://img.example/quiet.png"
    description = item.findtext("description")
    assert text_of_html(description) == "Picture, no words", description
