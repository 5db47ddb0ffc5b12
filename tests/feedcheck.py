"""The strictest feed checks we can run here: RFC 4287's RELAX NG schema, feedparser's
well-formedness, and the W3C feed validator's rules that a schema cannot express."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
DC = "{http://purl.org/dc/elements/1.1/}"
_SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).parent / "schemas" / "atom.rng")))


def is_absolute_uri(value: str | None) -> bool:
    """An absolute http(s) URI with no character RFC 3986 forbids unescaped."""
    if not value or any(c.isspace() or ord(c) > 126 or c in '<>"{}|\\^`' for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_well_formed(body: bytes):
    """Parse with feedparser and insist on no "bozo" (malformed) flag."""
    parsed = feedparser.parse(body)
    assert not parsed.bozo, f"feedparser: {parsed.get('bozo_exception')}"
    return parsed


def check_atom(body: bytes) -> etree._Element:
    """Assert an Atom document is valid; return its root element."""
    root = etree.fromstring(body)
    assert _SCHEMA.validate(root), str(_SCHEMA.error_log)
    parse_well_formed(body)
    feed_has_author = root.find(f"{ATOM}author") is not None
    ids = [e.findtext(f"{ATOM}id") for e in root.iter(f"{ATOM}entry")]
    assert len(ids) == len(set(ids)), "duplicate entry ids"
    assert all(is_absolute_uri(i) for i in ids + [root.findtext(f"{ATOM}id")])
    assert [l.get("href") for l in root.findall(f"{ATOM}link") if l.get("rel") == "self"], "no rel=self link"
    for link in root.iter(f"{ATOM}link"):
        assert is_absolute_uri(link.get("href")), f"relative or invalid link {link.get('href')!r}"
    for entry in root.iter(f"{ATOM}entry"):
        assert feed_has_author or entry.find(f"{ATOM}author") is not None, "entry without author"
        alternates = [(l.get("type"), l.get("hreflang")) for l in entry.findall(f"{ATOM}link") if l.get("rel") in (None, "alternate")]
        assert len(alternates) == len(set(alternates)), "two alternate links of one type"
    check_media(root)
    return root


def check_rss(body: bytes) -> etree._Element:
    """Assert an RSS 2.0 document follows the RSS Board profile the W3C validator applies."""
    root = etree.fromstring(body)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    for name in ("title", "link", "description"):
        assert (channel.findtext(name) or "").strip(), f"channel without {name}"
    assert is_absolute_uri(channel.findtext("link"))
    selfs = [l for l in channel.findall(f"{ATOM}link") if l.get("rel") == "self"]
    assert len(selfs) == 1 and is_absolute_uri(selfs[0].get("href"))
    for name in ("lastBuildDate", "pubDate"):
        if channel.find(name) is not None:
            parsedate_to_datetime(channel.findtext(name))
    parse_well_formed(body)
    guids = [i.findtext("guid") for i in channel.iter("item")]
    assert len(guids) == len(set(guids)), "duplicate guids"
    for item in channel.iter("item"):
        check_rss_item(item)
    check_media(root)
    return root


def check_rss_item(item: etree._Element) -> None:
    """One RSS item: title or description, permalink guids are URLs, authors are e-mails."""
    assert item.findtext("title") or item.findtext("description")
    guid = item.find("guid")
    if guid is not None and guid.get("isPermaLink", "true") == "true":
        assert is_absolute_uri(guid.text)
    if item.find("link") is not None:
        assert is_absolute_uri(item.findtext("link"))
    if item.find("pubDate") is not None:
        assert parsedate_to_datetime(item.findtext("pubDate")).tzinfo is not None
    for author in item.findall("author"):
        assert "@" in (author.text or ""), "RSS <author> must be an e-mail address"


def check_media(root: etree._Element) -> None:
    """Media RSS: no media:group (the validator rejects it), absolute URLs, numeric sizes."""
    assert not list(root.iter(f"{MEDIA}group")), "media:group"
    for element in (*root.iter(f"{MEDIA}content"), *root.iter(f"{MEDIA}thumbnail")):
        assert is_absolute_uri(element.get("url"))
        for size in ("width", "height"):
            assert element.get(size) is None or element.get(size).isdigit()


def entry_ids(fmt: str, body: bytes) -> list[str]:
    """The entry ids of a feed in any format, in document order."""
    if fmt == "json":
        return [item["id"] for item in json.loads(body)["items"]]
    root = etree.fromstring(body)
    if fmt == "rss":
        return [item.findtext("guid") for item in root.iter("item")]
    return [entry.findtext(f"{ATOM}id") for entry in root.iter(f"{ATOM}entry")]


def check_feed(fmt: str, body: bytes) -> etree._Element:
    """Check a feed of either format."""
    return check_atom(body) if fmt == "atom" else check_rss(body)
