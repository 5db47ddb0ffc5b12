"""The e-mail digests: /digest.html, /topics/<slug>/digest.html (an e-mail-safe HTML fragment of
the newest entries) and their plain-text twins digest.txt.

Structure is checked on the parsed fragment (lxml.html): one presentation table, inline styles
only, nothing that loads or runs, absolute links, images fitted to a 600 px column with alt text.
Content is checked against the JSON Feed and the RSS feed of the same query.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

import lxml.html
import pytest
from helpers import MEDIA, get_ok, is_absolute_uri
from lxml import etree

from feedsvc import create_app

BASE = "https://feeds.example.org/"
COLUMN = 600
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
TOKEN = "digest-preview-token-4711"
# Everything the fragment may carry: no class/id (no stylesheet to use them), no event handlers.
ALLOWED_ATTRIBUTES = {"href", "src", "alt", "width", "height", "style", "role", "cellpadding", "cellspacing", "border"}
ALLOWED_TAGS = {"table", "tbody", "tr", "td", "a", "img", "div", "span", "p", "br", "b", "strong", "i", "em"}
FORBIDDEN_TAGS = {
    "script",
    "style",
    "link",
    "iframe",
    "object",
    "embed",
    "form",
    "input",
    "meta",
    "base",
    "svg",
    "video",
    "audio",
    "frame",
    "frameset",
    "html",
    "head",
    "body",
    "noscript",
    "template",
}
# CSS that e-mail clients ignore or mangle; a table layout needs none of it.
FORBIDDEN_CSS = ("position", "float", "flex", "grid", "@import", "url(", "expression(", "javascript:")


# -- reading the documents -------------------------------------------------------------------


def digest_path(slug: str | None, kind: str) -> str:
    return f"/topics/{slug}/digest.{kind}" if slug else f"/digest.{kind}"


def feed_path(slug: str | None, name: str) -> str:
    return f"/topics/{slug}/{name}" if slug else f"/{name}"


def fragment_table(body: bytes) -> lxml.html.HtmlElement:
    """The digest's single top-level element, which must be a table."""
    elements = lxml.html.fragments_fromstring(body.decode("utf-8"))
    assert len(elements) == 1 and not isinstance(elements[0], str), [getattr(e, "tag", e) for e in elements]
    table = elements[0]
    assert table.tag == "table"
    return table


def cells(table) -> list:
    """The table's cells, row by row: the header, then one a entry."""
    rows = table.xpath("./tr | ./tbody/tr")
    assert rows, "a table without rows"
    found = []
    for row in rows:
        tds = row.xpath("./td")
        assert len(tds) == 1, "one column: a 600 px e-mail is read top to bottom"
        found.append(tds[0])
    return found


def parse_html_digest(body: bytes) -> dict:
    """The digest's heading and entries, read from its markup."""
    header, *entry_cells = cells(fragment_table(body))
    heading = header.xpath(".//a")
    assert len(heading) == 1
    entries = []
    for cell in entry_cells:
        images = cell.xpath(".//img")
        assert len(images) <= 1
        text_links = [a for a in cell.xpath("./a") if not a.xpath(".//img")]
        assert len(text_links) == 1, "one title link per entry"
        divs = cell.xpath("./div")
        meta = divs[0].text_content()
        related = [d for d in divs[1:] if d.text_content().startswith("Related to: ")]
        excerpts = [d for d in divs[1:] if d not in related]
        assert len(related) <= 1 and len(excerpts) <= 1
        provider, _, date = meta.rpartition(" \u00b7 ")
        entries.append(
            {
                "title": text_links[0].text_content(),
                "url": text_links[0].get("href"),
                "provider": provider or None,
                "date": date,
                "excerpt": excerpts[0].text_content() if excerpts else "",
                "related": (
                    (related[0].xpath("./a")[0].text_content(), related[0].xpath("./a")[0].get("href"))
                    if related
                    else None
                ),
                "image": images[0] if images else None,
                "image_link": images[0].getparent().get("href") if images else None,
            }
        )
    return {"title": heading[0].text_content(), "url": heading[0].get("href"), "entries": entries}


def parse_text_digest(body: bytes) -> dict:
    """The text twin's heading and entries: a block of lines an entry, a signature after '--'."""
    text = body.decode("utf-8")
    assert "\r" not in text
    head, _, rest = text.partition("\n\n")
    title, underline = head.split("\n")
    assert underline == "=" * len(title)
    rest, _, signature = rest.rpartition("\n--\n")
    entries = []
    for block in [b for b in rest.split("\n\n") if b.strip()]:
        lines = block.strip("\n").split("\n")
        title_line, meta, *middle, url = lines
        provider, _, date = meta.rpartition(" - ")
        related = [line for line in middle if line.startswith("Related to: ")]
        excerpt = [line for line in middle if line not in related]
        assert len(related) <= 1 and len(excerpt) <= 1, lines
        related_pair = None
        if related:
            match = re.fullmatch(r"Related to: (.*) <(\S+)>", related[0])
            assert match, related[0]
            related_pair = (match.group(1), match.group(2))
        entries.append(
            {
                "title": title_line,
                "url": url,
                "provider": provider or None,
                "date": date,
                "excerpt": excerpt[0] if excerpt else "",
                "related": related_pair,
            }
        )
    return {"title": title, "url": signature.strip(), "entries": entries}


def day(value: str) -> str:
    """An ISO 8601 date as the digest writes it, in UTC: "18 Nov 2020"."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def expected_entries(client, slug: str | None, query: str) -> list[dict]:
    """What the digest must list, from the JSON Feed of the same query."""
    feed = json.loads(get_ok(client, feed_path(slug, "feed.json") + query).data)
    return [
        {
            "title": item["title"],
            "url": item["url"],
            "provider": item["authors"][0]["name"] if item.get("authors") else None,
            "date": day(item["date_published"]),
            "excerpt": item.get("summary", ""),
            "related": (
                (item["_feedsvc"]["related_to"]["title"], item["_feedsvc"]["related_to"]["url"])
                if "_feedsvc" in item
                else None
            ),
            "image": item.get("image"),
        }
        for item in feed["items"]
    ]


def media_sizes(client, slug: str | None, query: str) -> dict[str, tuple[int | None, int | None]]:
    """Each entry's image size as the RSS feed's media:content gives it, by entry URL."""
    root = etree.fromstring(get_ok(client, feed_path(slug, "rss.xml") + query).data)
    sizes = {}
    for item in root.iter("item"):
        content = item.find(f"{MEDIA}content")
        if content is not None:
            size = [int(content.get(k)) if content.get(k) else None for k in ("width", "height")]
            sizes[item.findtext("link")] = tuple(size)
    return sizes


def style_declarations(style: str) -> dict[str, str]:
    """An inline style as {property: value}; every declaration must be `name:value`."""
    declarations = {}
    for part in filter(None, (p.strip() for p in style.split(";"))):
        name, colon, value = part.partition(":")
        assert colon and name.strip() and value.strip(), f"malformed declaration {part!r}"
        declarations[name.strip().lower()] = value.strip()
    return declarations


def csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in filter(None, (p.strip() for p in header.split(";"))):
        name, *values = part.split()
        directives[name] = values
    return directives


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["seeds", "corpus"])
def folder_client(request, read_only_folders, tmp_path_factory):
    cache = tmp_path_factory.mktemp("digest-cache")
    app = create_app(
        {
            "TESTING": True,
            "SEEDS_DIR": str(read_only_folders / request.param),
            "RELOAD_INTERVAL": 0,
            "BASE_URL": BASE,
            "CACHE_DIR": str(cache),
        }
    )
    return app.test_client()


def topic_slugs(client, include_all: bool) -> list[str | None]:
    """Every topic the index lists (from its feed links), and None for the all-topics digest."""
    page = lxml.html.fromstring(get_ok(client, "/?include=all" if include_all else "/").data)
    slugs = {
        urlsplit(a.get("href")).path.split("/")[2]
        for a in page.xpath("//a[@href]")
        if urlsplit(a.get("href")).path.startswith("/topics/")
    }
    assert slugs
    return [None, *sorted(slugs)]


QUERIES = ["", "?limit=3", "?include=all", "?include=all&limit=7"]


# -- structure -------------------------------------------------------------------------------


def check_email_safe(body: bytes) -> lxml.html.HtmlElement:
    """The fragment rules every digest follows; the table."""
    table = fragment_table(body)
    assert table.get("role") == "presentation"
    assert table.get("width") == str(COLUMN)
    table_style = style_declarations(table.get("style", ""))
    assert table_style.get("max-width") == f"{COLUMN}px"
    assert table_style.get("width") == "100%"
    for element in table.iter():
        if not isinstance(element.tag, str):
            assert not isinstance(element, etree._Comment), "no comments (conditional comments are code)"
            continue
        assert element.tag not in FORBIDDEN_TAGS, element.tag
        assert element.tag in ALLOWED_TAGS, element.tag
        assert set(element.attrib) <= ALLOWED_ATTRIBUTES, (element.tag, dict(element.attrib))
        if "style" in element.attrib:
            declarations = style_declarations(element.get("style"))
            for name, value in declarations.items():
                assert not any(bad in name or bad in value.lower() for bad in FORBIDDEN_CSS), (name, value)
        for name in ("href", "src"):
            if name in element.attrib:
                assert is_absolute_uri(element.get(name)), (element.tag, name, element.get(name))
    return table


def test_every_digest_is_one_email_safe_table(folder_client):
    client = folder_client
    for include_all in (False, True):
        for slug in topic_slugs(client, include_all):
            for query in ["?include=all", "?include=all&limit=3"] if include_all else ["", "?limit=3"]:
                body = get_ok(client, digest_path(slug, "html") + query).data
                table = check_email_safe(body)
                # the document itself: a fragment, nothing before or after the table
                assert body.decode("utf-8").strip().startswith("<table")
                assert body.decode("utf-8").strip().endswith("</table>")
                assert b"<style" not in body.lower() and b"<script" not in body.lower()
                assert len(cells(table)) >= 2  # a heading and at least one entry


def test_check_email_safe_rejects_what_email_clients_cannot_use():
    """The structure checks above can fail: each rule catches its own violation."""
    good = '<table role="presentation" width="600" style="width:100%;max-width:600px"><tr><td>x</td></tr></table>'
    check_email_safe(good.encode())
    bad = [
        good.replace("<td>x", "<td><script>alert(1)</script>x"),
        good.replace("<td>x", "<td><style>td{color:red}</style>x"),
        good.replace("<td>x", '<td class="entry">x'),
        good.replace("<td>x", '<td><a href="/relative">x</a>'),
        good.replace("<td>x", '<td><img src="//cdn.example.org/x.png" alt="x">'),
        good.replace("<td>x", '<td style="float:left">x'),
        good.replace("<td>x", '<td onclick="go()">x'),
        good + "<p>after</p>",
        good.replace('width="600"', 'width="800"'),
    ]
    for markup in bad:
        with pytest.raises(AssertionError):
            check_email_safe(markup.encode())


def test_images_fit_the_column_with_alt_text_and_known_sizes(folder_client):
    client = folder_client
    seen = 0
    for query in QUERIES:
        for slug in topic_slugs(client, "include=all" in query):
            digest = parse_html_digest(get_ok(client, digest_path(slug, "html") + query).data)
            expected = expected_entries(client, slug, query)
            sizes = media_sizes(client, slug, query)
            for entry, want in zip(digest["entries"], expected, strict=True):
                image = entry["image"]
                assert (image is None) == (want["image"] is None), entry["title"]
                if image is None:
                    continue
                seen += 1
                assert image.get("src") == want["image"]
                assert image.get("alt") == want["title"] != ""
                assert entry["image_link"] == want["url"]
                width = int(image.get("width"))
                source_width, source_height = sizes[want["url"]]
                assert width == min(source_width or COLUMN, COLUMN) <= COLUMN
                if source_width and source_height:
                    assert int(image.get("height")) == max(1, round(source_height * width / source_width))
                style = style_declarations(image.get("style"))
                assert style["max-width"] == f"{width}px"
                assert style["width"] == "100%" and style["height"] == "auto"
                assert style["display"] == "block" and style["border"] == "0"
    assert seen > 10


def test_entries_title_provider_date_excerpt_and_related_as_in_the_feeds(folder_client):
    client = folder_client
    for query in QUERIES:
        for slug in topic_slugs(client, "include=all" in query):
            html = parse_html_digest(get_ok(client, digest_path(slug, "html") + query).data)
            expected = expected_entries(client, slug, query)
            assert [{k: v for k, v in e.items() if k not in ("image", "image_link")} for e in html["entries"]] == [
                {k: v for k, v in e.items() if k != "image"} for e in expected
            ]
            feed = json.loads(get_ok(client, feed_path(slug, "feed.json") + query).data)
            assert html["title"] == feed["title"]
            assert html["url"] == feed["home_page_url"] and html["url"].startswith(BASE)


def test_text_twin_says_what_the_html_says(folder_client):
    client = folder_client
    for query in QUERIES:
        for slug in topic_slugs(client, "include=all" in query):
            html = parse_html_digest(get_ok(client, digest_path(slug, "html") + query).data)
            response = get_ok(client, digest_path(slug, "txt") + query)
            assert response.mimetype == "text/plain" and response.mimetype_params == {"charset": "utf-8"}
            text = parse_text_digest(response.data)
            assert text["title"] == html["title"]
            assert text["url"] == html["url"]
            assert text["entries"] == [
                {k: v for k, v in e.items() if k not in ("image", "image_link")} for e in html["entries"]
            ]
            body = response.get_data(as_text=True)
            assert not re.search(r"<[a-zA-Z/!]", body.replace("<http", "").replace("<https", "")), "markup in text"
            assert "&amp;" not in body and "&#" not in body and "&middot;" not in body


def test_text_parser_rejects_a_block_it_cannot_read():
    with pytest.raises((AssertionError, ValueError)):
        parse_text_digest(b"T\n=\n\njust one line\n\n--\nhttps://x.example/\n")
    with pytest.raises(AssertionError):
        parse_text_digest(b"Title\n====\n\nA\nP - 1 Jan 2020\nhttps://a.example/\n\n--\nhttps://x.example/\n")


# -- flags -----------------------------------------------------------------------------------


@pytest.fixture
def newsletter_client(seeds_dir, write_article, make_client):
    """The seeds plus six published and two unpublished articles in topic "Weekly"."""
    for number in range(6):
        write_article(
            f"weekly-{number}.md",
            title=f"Weekly story {number}",
            topics=["Weekly"],
            webUrl=f"https://news.example.com/weekly/{number}",
            publishedDateTime=f"2021-03-{10 + number:02d}T08:00:00Z",
        )
    for number in range(2):
        write_article(
            f"draft-{number}.md",
            title=f"Draft story {number}",
            topics=["Weekly"],
            published=False,
            webUrl=f"https://news.example.com/draft/{number}",
            publishedDateTime=f"2021-03-{20 + number:02d}T08:00:00Z",
        )
    write_article(
        "secret.md",
        title="Only a draft",
        topics=["Hidden Topic"],
        published=False,
        webUrl="https://news.example.com/hidden",
    )
    return make_client(BASE_URL=BASE)


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_limit_takes_the_newest_entries(newsletter_client, kind):
    parse = parse_html_digest if kind == "html" else parse_text_digest
    titles = lambda url: [e["title"] for e in parse(get_ok(newsletter_client, url).data)["entries"]]
    everything = titles(f"/topics/weekly/digest.{kind}")
    assert everything == [f"Weekly story {n}" for n in range(5, -1, -1)]
    for limit in (1, 2, 5):
        assert titles(f"/topics/weekly/digest.{kind}?limit={limit}") == everything[:limit]
    assert titles(f"/topics/weekly/digest.{kind}?limit=500") == everything
    site = titles(f"/digest.{kind}?limit=4")
    assert site == titles(f"/digest.{kind}")[:4] and len(site) == 4


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_include_all_adds_drafts_and_is_private(newsletter_client, kind):
    parse = parse_html_digest if kind == "html" else parse_text_digest
    public = get_ok(newsletter_client, f"/topics/weekly/digest.{kind}")
    preview = get_ok(newsletter_client, f"/topics/weekly/digest.{kind}?include=all")
    public_titles = [e["title"] for e in parse(public.data)["entries"]]
    preview_titles = [e["title"] for e in parse(preview.data)["entries"]]
    assert not any(t.startswith("Draft") for t in public_titles)
    assert preview_titles[:2] == ["Draft story 1", "Draft story 0"]
    assert preview_titles[2:] == public_titles
    assert public.cache_control.public and not public.cache_control.private
    assert preview.cache_control.private and not preview.cache_control.public
    assert public.cache_control.max_age == preview.cache_control.max_age == 300
    # a topic with drafts only exists only in the preview
    assert newsletter_client.get(f"/topics/hidden-topic/digest.{kind}").status_code == 404
    hidden = parse(get_ok(newsletter_client, f"/topics/hidden-topic/digest.{kind}?include=all").data)
    assert [e["title"] for e in hidden["entries"]] == ["Only a draft"]
    assert "Only a draft" not in get_ok(newsletter_client, f"/digest.{kind}").get_data(as_text=True)


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_preview_token_guards_include_all(seeds_dir, write_article, make_client, kind):
    write_article(
        "draft.md",
        title="Unreleased scoop",
        topics=["Weekly"],
        published=False,
        webUrl="https://news.example.com/scoop",
    )
    write_article("live.md", title="Released story", topics=["Weekly"], webUrl="https://news.example.com/live")
    client = make_client(BASE_URL=BASE, PREVIEW_TOKEN=TOKEN)
    url = f"/topics/weekly/digest.{kind}"
    assert client.get(url + "?include=all").status_code == 403
    assert client.get(url + "?include=all&token=wrong-token").status_code == 403
    assert "Unreleased scoop" not in client.get(url + "?include=all&token=wrong-token").get_data(as_text=True)
    granted = get_ok(client, url + f"?include=all&token={TOKEN}")
    assert "Unreleased scoop" in granted.get_data(as_text=True)
    assert granted.cache_control.private
    assert TOKEN not in granted.get_data(as_text=True)
    assert all(TOKEN not in value for value in granted.headers.values())
    public = get_ok(client, url + "?token=anything")  # without include=all a token changes nothing
    assert "Unreleased scoop" not in public.get_data(as_text=True) and public.cache_control.public


@pytest.mark.parametrize("kind", ["html", "txt"])
@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?limit=0", 400),
        ("?limit=abc", 400),
        ("?limit=2&limit=3", 400),
        ("?include=drafts", 400),
        ("?include=all&include=all", 400),
        ("?page=0", 400),
    ],
)
def test_bad_flags_are_short_plain_errors(newsletter_client, kind, query, status):
    response = newsletter_client.get(f"/topics/weekly/digest.{kind}{query}")
    assert response.status_code == status
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith(f"{status} ") and response.data.count(b"\n") == 1


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_unknown_topic_and_wrong_method(newsletter_client, kind):
    assert newsletter_client.get(f"/topics/no-such-topic/digest.{kind}").status_code == 404
    response = newsletter_client.post(f"/topics/weekly/digest.{kind}")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert newsletter_client.get("/topics/weekly/digest.pdf").status_code == 404


# -- headers ---------------------------------------------------------------------------------


def test_html_digest_content_security_policy(newsletter_client):
    for url in ("/digest.html", "/topics/weekly/digest.html", "/topics/weekly/digest.html?include=all&limit=2"):
        response = get_ok(newsletter_client, url)
        assert response.mimetype == "text/html" and response.mimetype_params == {"charset": "utf-8"}
        policy = csp(response.headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'none'"]  # so no script-src, connect-src, font-src...
        assert "script-src" not in policy and "connect-src" not in policy
        assert sorted(policy["img-src"]) == ["http:", "https:"]
        assert policy["style-src"] == ["'unsafe-inline'"]
        assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    text = get_ok(newsletter_client, "/topics/weekly/digest.txt")
    assert "Content-Security-Policy" not in text.headers
    assert text.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("kind", ["html", "txt"])
def test_digest_is_served_conditionally_and_gzipped(newsletter_client, kind):
    url = f"/topics/weekly/digest.{kind}"
    first = get_ok(newsletter_client, url)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and "Accept-Encoding" in first.headers["Vary"]
    again = newsletter_client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    if kind == "html":
        assert csp(again.headers["Content-Security-Policy"])["default-src"] == ["'none'"]
    since = newsletter_client.get(url, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    zipped = get_ok(newsletter_client, url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == first.data
    assert zipped.headers["ETag"] != etag


# -- content edge cases ----------------------------------------------------------------------


def test_markup_in_content_is_text_not_code(seeds_dir, write_article, make_client):
    write_article(
        "odd.md",
        title='Tom & "Jerry" <script>alert(1)</script> win',
        topics=["Weekly"],
        excerpt='AT&T <img src=x onerror=alert(2)> beats 5 < 6 & "quotes"',
        webUrl="https://news.example.com/odd",
        provider={"name": "Q&A <Daily>"},
        images=[{"url": "https://img.example.com/a.png?x=1&y=2", "width": 1200, "height": 900}],
    )
    client = make_client(BASE_URL=BASE)
    body = get_ok(client, "/topics/weekly/digest.html").data
    table = check_email_safe(body)
    assert not table.xpath("//script | //*[@onerror]")
    [entry] = parse_html_digest(body)["entries"]
    [expected] = expected_entries(client, "weekly", "")
    assert entry["title"] == expected["title"] and "&" in entry["title"] and '"Jerry"' in entry["title"]
    assert entry["image"].get("alt") == expected["title"]
    assert entry["image"].get("src") == "https://img.example.com/a.png?x=1&y=2"
    assert entry["excerpt"] == expected["excerpt"] and "AT&T" in entry["excerpt"]
    assert (int(entry["image"].get("width")), int(entry["image"].get("height"))) == (600, 450)
    text = get_ok(client, "/topics/weekly/digest.txt").get_data(as_text=True)
    [text_entry] = parse_text_digest(text.encode())["entries"]
    assert text_entry["title"] == expected["title"] and text_entry["excerpt"] == expected["excerpt"]
    assert "&amp;" not in text


def test_dates_are_utc_days_and_small_images_are_not_stretched(seeds_dir, write_article, make_client):
    write_article(
        "late.md",
        title="Late evening in New York",
        topics=["Weekly"],
        publishedDateTime="2021-02-01T23:30:00-05:00",
        webUrl="https://news.example.com/late",
        images=[{"url": "https://img.example.com/small.png", "width": 300, "height": 200}],
    )
    write_article(
        "nodims.md",
        title="Picture without a size",
        topics=["Weekly"],
        provider=None,
        publishedDateTime="2021-01-05T12:00:00Z",
        webUrl="https://news.example.com/nodims",
        images=["https://img.example.com/unknown.png"],
    )
    client = make_client(BASE_URL=BASE)
    late, nodims = parse_html_digest(get_ok(client, "/topics/weekly/digest.html").data)["entries"]
    assert late["date"] == "2 Feb 2021"  # 04:30 UTC the next day
    assert (late["image"].get("width"), late["image"].get("height")) == ("300", "200")
    assert style_declarations(late["image"].get("style"))["max-width"] == "300px"
    assert nodims["provider"] is None and nodims["date"] == "5 Jan 2021"
    assert nodims["image"].get("width") == "600" and nodims["image"].get("height") is None
    text_late, text_nodims = parse_text_digest(get_ok(client, "/topics/weekly/digest.txt").data)["entries"]
    assert text_late["date"] == "2 Feb 2021" and text_nodims["provider"] is None
