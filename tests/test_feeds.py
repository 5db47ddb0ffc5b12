"""feedsvc.feeds (the only module that touches feedgen), through `render` with hand-made values.

Every assertion is on parsed XML (lxml elements and attributes), never on raw substrings.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import feedgen.entry
import feedgen.feed
import pytest
from helpers import ATOM, CORPUS, DC, MEDIA, SEEDS, Server, ShiftingClock, check_feed, feedcheck
from lxml import etree

from feedsvc.content.model import Article, Entry, Image, Provider, Related
from feedsvc.feeds import rss_atom
from feedsvc.feeds.rss_atom import EMPTY_FEED_DATE, FeedInfo, render

FORMATS = ["rss", "atom"]
UTC = timezone.utc
BASE = "https://feeds.example.org"


def info(fmt: str) -> FeedInfo:
    """The feed-level fields of a topic feed in `fmt`, every URL absolute."""
    other = "atom" if fmt == "rss" else "rss"
    return FeedInfo(
        feed_id=f"{BASE}/topics/ai/atom.xml",
        title="feedsvc: AI",
        subtitle="News about AI, with related coverage",
        self_url=f"{BASE}/topics/ai/{fmt}.xml",
        html_url=f"{BASE}/#ai",
        author="feedsvc",
        alternates={rss_atom.MEDIA_TYPES[other]: f"{BASE}/topics/ai/{other}.xml"},
    )


PARENT = Article(
    path="parent.md",
    title="Parent article about facial recognition",
    url="https://news.example.com/parent",
    published=datetime(2021, 1, 10, 9, 0, tzinfo=UTC),
    excerpt="The parent's excerpt.",
    provider=Provider("Example News", "example.com"),
    topics=("AI", "Computer Vision"),
)

# Deliberately not in date order: render must keep the order it is given.
MIDDLE = Entry(
    url="https://news.example.com/middle",
    title="Middle story",
    published=datetime(2021, 1, 11, 12, 0, tzinfo=UTC),
    excerpt="The middle excerpt.",
    provider=Provider("Example News", "example.com"),
    image=Image("https://img.example.com/middle.jpg", 800, 600),
    categories=("AI", "Computer Vision"),
)
NEWEST_RELATED = Entry.from_related(
    Related(
        title="Related coverage elsewhere",
        url="https://other.example.net/related-story",
        published=datetime(2021, 1, 12, 8, 30, tzinfo=UTC),
        excerpt="What the other paper wrote.",
        provider=Provider("Other Paper", "other.example.net"),
        image=Image("https://img.example.net/related.png"),  # no size known
    ),
    PARENT,
)
OLDEST = Entry(
    url="https://news.example.com/oldest",
    title="Oldest story, no provider, no image",
    published=datetime(2020, 12, 24, 18, 15, tzinfo=UTC),
    excerpt="",
    provider=None,
    image=None,
    categories=("AI",),
)
RELATED_NO_EXCERPT = Entry.from_related(
    Related(
        title="A related link without excerpt",
        url="https://third.example.org/no-excerpt",
        published=datetime(2021, 1, 9, 0, 0, tzinfo=UTC),
    ),
    PARENT,
)
ENTRIES = [MIDDLE, OLDEST, NEWEST_RELATED, RELATED_NO_EXCERPT]
NEWEST = NEWEST_RELATED.published


def parse(body: bytes) -> etree._Element:
    return etree.fromstring(body)


def items(fmt: str, root: etree._Element) -> list[etree._Element]:
    """The <item>s of an RSS channel or the <entry>s of an Atom feed, in document order."""
    return root.findall("channel/item") if fmt == "rss" else root.findall(f"{ATOM}entry")


def item_url(fmt: str, element: etree._Element) -> str:
    """The URL an item/entry stands for (RSS <link>, Atom alternate <link href>)."""
    if fmt == "rss":
        return element.findtext("link")
    (alternate,) = [l for l in element.findall(f"{ATOM}link") if l.get("rel") in (None, "alternate")]
    return alternate.get("href")


def by_url(fmt: str, root: etree._Element) -> dict[str, etree._Element]:
    return {item_url(fmt, e): e for e in items(fmt, root)}


def feed_date(fmt: str, root: etree._Element) -> datetime:
    """Atom <updated> of the feed, or RSS <lastBuildDate> of the channel."""
    if fmt == "atom":
        return datetime.fromisoformat(root.findtext(f"{ATOM}updated"))
    return parsedate_to_datetime(root.findtext("channel/lastBuildDate"))


def every_date(fmt: str, root: etree._Element) -> list[datetime]:
    """Every date the document states, feed-level and entry-level."""
    if fmt == "atom":
        elements = [*root.iter(f"{ATOM}updated"), *root.iter(f"{ATOM}published")]
        return [datetime.fromisoformat(e.text) for e in elements]
    elements = [*root.iter("pubDate"), *root.iter("lastBuildDate")]
    return [parsedate_to_datetime(e.text) for e in elements]


@pytest.fixture
def shifting_clock(monkeypatch):
    """Replace the clock feedgen stamps "now" with; every read gives a different instant."""
    monkeypatch.setattr(ShiftingClock, "calls", 0)
    monkeypatch.setattr(feedgen.feed, "datetime", ShiftingClock)
    monkeypatch.setattr(feedgen.entry, "datetime", ShiftingClock)
    return ShiftingClock


# --- validity -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("entries", [ENTRIES, [OLDEST], []], ids=["several", "one", "empty"])
def test_rendered_feeds_pass_the_feed_checks(fmt, entries):
    check_feed(fmt, render(fmt, info(fmt), entries))


def test_rss_root_and_atom_root():
    assert parse(render("rss", info("rss"), ENTRIES)).tag == "rss"
    assert parse(render("atom", info("atom"), ENTRIES)).tag == f"{ATOM}feed"


def test_render_returns_utf8_bytes_with_xml_declaration():
    for fmt in FORMATS:
        body = render(fmt, info(fmt), [NEWEST_RELATED])
        assert isinstance(body, bytes)
        assert etree.fromstring(body).getroottree().docinfo.encoding.upper() == "UTF-8"


# --- no wall clock --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bytes_across_a_shifting_clock(fmt, shifting_clock):
    first = render(fmt, info(fmt), ENTRIES)
    second = render(fmt, info(fmt), ENTRIES)
    assert shifting_clock.calls > 0, "the fake clock was not read: the test would prove nothing"
    assert first == second


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bytes_with_and_without_the_fake_clock(fmt, monkeypatch):
    real = render(fmt, info(fmt), ENTRIES)
    monkeypatch.setattr(feedgen.feed, "datetime", ShiftingClock)
    monkeypatch.setattr(feedgen.entry, "datetime", ShiftingClock)
    assert render(fmt, info(fmt), ENTRIES) == real


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bytes_after_the_clock_ticks(fmt):
    first = render(fmt, info(fmt), ENTRIES)
    time.sleep(1.1)  # RFC 822 / RFC 3339 dates have one-second resolution
    assert render(fmt, info(fmt), ENTRIES) == first


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_date_comes_from_the_content(fmt, shifting_clock):
    root = parse(render(fmt, info(fmt), ENTRIES))
    stated = every_date(fmt, root)
    assert stated
    assert set(stated) <= {e.published for e in ENTRIES}


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_date_is_the_newest_entry_date(fmt, shifting_clock):
    root = parse(render(fmt, info(fmt), ENTRIES))
    assert feed_date(fmt, root) == NEWEST
    # not simply the first entry's date: the first entry given is not the newest
    assert ENTRIES[0].published != NEWEST


@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_dates_are_the_published_dates(fmt, shifting_clock):
    root = parse(render(fmt, info(fmt), ENTRIES))
    for entry in ENTRIES:
        element = by_url(fmt, root)[entry.url]
        if fmt == "rss":
            assert parsedate_to_datetime(element.findtext("pubDate")) == entry.published
        else:
            assert datetime.fromisoformat(element.findtext(f"{ATOM}published")) == entry.published
            assert datetime.fromisoformat(element.findtext(f"{ATOM}updated")) == entry.published


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_feed_has_a_fixed_date(fmt, shifting_clock):
    first = render(fmt, info(fmt), [])
    second = render(fmt, info(fmt), [])
    assert first == second
    root = parse(first)
    assert items(fmt, root) == []
    assert feed_date(fmt, root) == EMPTY_FEED_DATE == datetime(1970, 1, 1, tzinfo=UTC)


# --- order ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("order", [ENTRIES, list(reversed(ENTRIES))], ids=["given", "reversed"])
def test_entries_keep_the_given_order(fmt, order):
    root = parse(render(fmt, info(fmt), order))
    assert [item_url(fmt, e) for e in items(fmt, root)] == [e.url for e in order]


@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_titles_follow_their_urls(fmt):
    root = parse(render(fmt, info(fmt), ENTRIES))
    tag = "title" if fmt == "rss" else f"{ATOM}title"
    assert [e.findtext(tag) for e in items(fmt, root)] == [e.title for e in ENTRIES]


# --- feed-level fields ----------------------------------------------------------------------


def test_atom_feed_level_fields():
    root = parse(render("atom", info("atom"), ENTRIES))
    assert root.findtext(f"{ATOM}id") == f"{BASE}/topics/ai/atom.xml"
    assert root.findtext(f"{ATOM}title") == "feedsvc: AI"
    assert root.findtext(f"{ATOM}subtitle") == "News about AI, with related coverage"
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "feedsvc"
    links = {(l.get("rel"), l.get("type")): l.get("href") for l in root.findall(f"{ATOM}link")}
    assert links == {
        ("self", "application/atom+xml"): f"{BASE}/topics/ai/atom.xml",
        ("alternate", "text/html"): f"{BASE}/#ai",
        ("alternate", "application/rss+xml"): f"{BASE}/topics/ai/rss.xml",
    }


def test_rss_channel_level_fields():
    channel = parse(render("rss", info("rss"), ENTRIES)).find("channel")
    assert channel.findtext("title") == "feedsvc: AI"
    assert channel.findtext("link") == f"{BASE}/#ai"
    assert channel.findtext("description") == "News about AI, with related coverage"
    links = {(l.get("rel"), l.get("type")): l.get("href") for l in channel.findall(f"{ATOM}link")}
    assert links == {
        ("self", "application/rss+xml"): f"{BASE}/topics/ai/rss.xml",
        ("alternate", "application/atom+xml"): f"{BASE}/topics/ai/atom.xml",
    }


# --- authors --------------------------------------------------------------------------------


def test_rss_names_providers_in_dc_creator_never_in_author():
    root = parse(render("rss", info("rss"), ENTRIES))
    assert list(root.iter("author")) == []
    for entry in ENTRIES:
        item = by_url("rss", root)[entry.url]
        creators = [c.text for c in item.findall(f"{DC}creator")]
        assert creators == ([entry.provider.name] if entry.provider else [])


def test_atom_names_providers_in_entry_author():
    root = parse(render("atom", info("atom"), ENTRIES))
    for entry in ENTRIES:
        element = by_url("atom", root)[entry.url]
        names = [a.findtext(f"{ATOM}name") for a in element.findall(f"{ATOM}author")]
        assert names == ([entry.provider.name] if entry.provider else [])


# --- media ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_media_group_anywhere(fmt):
    root = parse(render(fmt, info(fmt), ENTRIES))
    assert list(root.iter(f"{MEDIA}group")) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_image_with_size_is_thumbnail_and_content(fmt):
    element = by_url(fmt, parse(render(fmt, info(fmt), ENTRIES)))[MIDDLE.url]
    (thumbnail,) = element.findall(f"{MEDIA}thumbnail")
    (content,) = element.findall(f"{MEDIA}content")
    assert dict(thumbnail.attrib) == {"url": MIDDLE.image.url, "width": "800", "height": "600"}
    assert dict(content.attrib) == {"url": MIDDLE.image.url, "medium": "image", "width": "800", "height": "600"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_image_without_size_has_no_size_attributes(fmt):
    element = by_url(fmt, parse(render(fmt, info(fmt), ENTRIES)))[NEWEST_RELATED.url]
    (thumbnail,) = element.findall(f"{MEDIA}thumbnail")
    (content,) = element.findall(f"{MEDIA}content")
    assert dict(thumbnail.attrib) == {"url": "https://img.example.net/related.png"}
    assert dict(content.attrib) == {"url": "https://img.example.net/related.png", "medium": "image"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_without_image_has_no_media(fmt):
    element = by_url(fmt, parse(render(fmt, info(fmt), ENTRIES)))[OLDEST.url]
    assert [c for c in element if isinstance(c.tag, str) and c.tag.startswith(MEDIA)] == []


# --- related entries ------------------------------------------------------------------------


def atom_links(element: etree._Element, rel: str) -> list[dict[str, str]]:
    return [dict(l.attrib) for l in element.findall(f"{ATOM}link") if l.get("rel") == rel]


@pytest.mark.parametrize("entry", [NEWEST_RELATED, RELATED_NO_EXCERPT], ids=["with-excerpt", "no-excerpt"])
def test_atom_related_entry_links_its_article(entry):
    element = by_url("atom", parse(render("atom", info("atom"), ENTRIES)))[entry.url]
    assert atom_links(element, "related") == [{"href": PARENT.url, "rel": "related", "title": PARENT.title}]


@pytest.mark.parametrize("entry", [MIDDLE, OLDEST], ids=["middle", "oldest"])
def test_atom_plain_entry_has_no_related_link(entry):
    element = by_url("atom", parse(render("atom", info("atom"), ENTRIES)))[entry.url]
    assert atom_links(element, "related") == []


def test_atom_entry_has_one_alternate_link_to_itself():
    root = parse(render("atom", info("atom"), ENTRIES))
    for element, entry in zip(items("atom", root), ENTRIES):
        alternates = [l.get("href") for l in element.findall(f"{ATOM}link") if l.get("rel") in (None, "alternate")]
        assert alternates == [entry.url]


@pytest.mark.parametrize("entry", [NEWEST_RELATED, RELATED_NO_EXCERPT], ids=["with-excerpt", "no-excerpt"])
def test_rss_related_item_has_dc_relation_and_names_its_article(entry):
    item = by_url("rss", parse(render("rss", info("rss"), ENTRIES)))[entry.url]
    assert [r.text for r in item.findall(f"{DC}relation")] == [PARENT.url]
    description = item.findtext("description")
    assert PARENT.title in description
    if entry.excerpt:
        assert entry.excerpt in description


@pytest.mark.parametrize("fmt", FORMATS)
def test_related_summary_names_the_article(fmt):
    tag = "description" if fmt == "rss" else f"{ATOM}summary"
    element = by_url(fmt, parse(render(fmt, info(fmt), ENTRIES)))[RELATED_NO_EXCERPT.url]
    assert element.findtext(tag) == f"Related to: {PARENT.title}"


def test_rss_plain_item_has_no_dc_relation_and_its_own_excerpt():
    item = by_url("rss", parse(render("rss", info("rss"), ENTRIES)))[MIDDLE.url]
    assert item.findall(f"{DC}relation") == []
    assert item.findtext("description") == MIDDLE.excerpt


def test_rss_item_without_excerpt_or_image_has_no_description():
    item = by_url("rss", parse(render("rss", info("rss"), ENTRIES)))[OLDEST.url]
    assert item.find("description") is None  # its title is its text (RSS 2.0: title or description)


def test_atom_entry_without_excerpt_or_content_has_its_title_as_summary():
    """Neither content nor summary leaves an Atom entry without text (W3C validator: "Missing textual content")."""
    entry = by_url("atom", parse(render("atom", info("atom"), ENTRIES)))[OLDEST.url]
    assert entry.find(f"{ATOM}content") is None
    assert entry.findtext(f"{ATOM}summary") == OLDEST.title


def test_atom_entry_links_are_ordinary_links_in_the_default_namespace():
    """feedgen's Atom elements are unprefixed; the related link too, never <ns0:link xmlns:ns0="...Atom">."""
    root = parse(render("atom", info("atom"), ENTRIES))
    assert root.nsmap[None] == ATOM.strip("{}")
    related = [link for link in root.iter(f"{ATOM}link") if link.get("rel") == "related"]
    assert len(related) == 2
    for element in root.iter(f"{ATOM}*"):
        assert element.prefix is None, etree.tostring(element)
        assert ATOM.strip("{}") not in {ns for prefix, ns in element.nsmap.items() if prefix}


# --- ids, guids, categories -----------------------------------------------------------------


def test_rss_guid_is_a_permalink_to_the_url():
    root = parse(render("rss", info("rss"), ENTRIES))
    for item, entry in zip(items("rss", root), ENTRIES):
        (guid,) = item.findall("guid")
        assert guid.get("isPermaLink") == "true"
        assert guid.text == entry.url


def test_atom_entry_id_is_the_url():
    root = parse(render("atom", info("atom"), ENTRIES))
    assert [e.findtext(f"{ATOM}id") for e in items("atom", root)] == [e.url for e in ENTRIES]


@pytest.mark.parametrize("fmt", FORMATS)
def test_categories_in_order(fmt):
    root = parse(render(fmt, info(fmt), ENTRIES))
    for element, entry in zip(items(fmt, root), ENTRIES):
        if fmt == "rss":
            found = [c.text for c in element.findall("category")]
        else:
            found = [c.get("term") for c in element.findall(f"{ATOM}category")]
        assert found == list(entry.categories)


def test_related_entry_is_filed_under_its_articles_topics():
    assert NEWEST_RELATED.categories == PARENT.topics


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_markup_in_text_is_escaped_not_interpreted(fmt):
    tricky = Entry(
        url="https://news.example.com/tricky?a=1&b=2",
        title='Fish & <Chips> "quoted"',
        published=datetime(2021, 2, 2, tzinfo=UTC),
        excerpt="Less < more & <b>bold</b>",
        provider=Provider("R&D <Labs>"),
        image=None,
        categories=("R&D",),
    )
    body = render(fmt, info(fmt), [tricky])
    check_feed(fmt, body)
    element = items(fmt, parse(body))[0]
    ns = "" if fmt == "rss" else ATOM
    assert element.findtext(f"{ns}title") == tricky.title
    assert item_url(fmt, element) == tricky.url
    if fmt == "rss":  # RSS readers read <description> as HTML: it holds the excerpt HTML-escaped
        assert element.findtext("description") == "Less &lt; more &amp; &lt;b&gt;bold&lt;/b&gt;"
    else:  # a typeless Atom summary is text (RFC 4287 3.1.1)
        assert element.find(f"{ATOM}summary").get("type") in (None, "text")
        assert element.findtext(f"{ATOM}summary") == tricky.excerpt


# --- the W3C feed validator over every served feed --------------------------------------------


# Warnings the data forces: two entries published at the same instant (the validator asks for
# distinct atom:updated values, but an entry's date is its article's).
DATA_FORCED = {"DuplicateUpdated"}


@pytest.fixture(scope="module", params=["seeds", "corpus"])
def served_folder(request, tmp_path_factory):
    """A real `feedsvc serve` over a copy of the seeds or of the corpus sample."""
    folder = tmp_path_factory.mktemp(request.param) / "articles"
    shutil.copytree(SEEDS if request.param == "seeds" else CORPUS, folder)
    server = Server(folder)
    yield server
    assert server.stop() == 0, server.output[-3000:]


def every_feed_page(server: Server) -> list[str]:
    """Every RSS and Atom feed URL, site-wide and per topic, published and with drafts (paged small),
    and every page of each, found by walking rel="next" as a reader does."""
    opml = etree.fromstring(urllib.request.urlopen(server.url("/feeds.opml"), timeout=10).read())
    topics = sorted({o.get("xmlUrl").split("/topics/")[1].split("/")[0] for o in opml.iter("outline")
                     if "/topics/" in (o.get("xmlUrl") or "")})  # fmt: skip
    assert topics
    urls = []
    for path in ["", *(f"/topics/{slug}" for slug in topics)]:
        for fmt in FORMATS:
            for query in ("", "?include=all&limit=10"):
                url = server.url(f"{path}/{fmt}.xml{query}")
                while url:
                    assert url not in urls and len(urls) < 1000, url
                    urls.append(url)
                    root = etree.fromstring(urllib.request.urlopen(url, timeout=10).read())
                    following = [link.get("href") for link in root.iter(f"{ATOM}link") if link.get("rel") == "next"]
                    url = following[0] if following else None
    return urls


@pytest.mark.slow
def test_w3c_validator_finds_no_error_and_no_avoidable_warning(served_folder):
    urls = every_feed_page(served_folder)
    assert sum("/page/" in url or "page=" in url for url in urls) > 0  # later pages are checked too
    findings = feedcheck(urls)
    assert [f for f in findings if f.level == "ERROR"] == []
    assert [f for f in findings if f.kind not in DATA_FORCED] == []
