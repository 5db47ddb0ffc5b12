"""Render entries as RSS 2.0 and Atom 1.0: the only module that touches feedgen.

feedgen's defaults are guarded here: every date is set from the content (it would stamp
"now"), entries are appended in our order (it would prepend), names go to dc:creator (RSS
<author> needs an e-mail), media items stand alone (it would wrap them in media:group, which
the W3C validator rejects), and entry-level Atom links with a rel are written by an extension
(feedgen 1.0.0 drops their rel/type/title, upstream issue #135).

Text is plain text everywhere; where readers take a field as HTML it is HTML-escaped first. RSS
<description>, item and channel, is HTML (RSS 2.0: "entity-encoded HTML is allowed"; feedparser
reads both as text/html), so an excerpt "<script>" reaches the XML as "&amp;lt;script&amp;gt;".
RSS titles, dc:creator and categories are plain text (the RSS Board's profile, feedparser), as are
Atom's typeless <title>, <subtitle> and <summary> (RFC 4287 section 3.1.1): XML-escaped only.
(Django's syndication view escapes titles twice by default, its ticket #6533; readers that treat
RSS titles as text then show "&lt;".) HTML bodies (content:encoded, Atom content) are made by lxml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator  # first: feedgen.util needs lxml.etree imported by it

from feedgen.ext.base import BaseEntryExtension, BaseExtension  # isort: skip
from feedgen.util import xml_elem  # isort: skip
import lxml.html  # isort: skip
from lxml.html.builder import E  # isort: skip

from feedsvc.content.model import Entry
from feedsvc.content.text import html_text

ATOM_NS = "http://www.w3.org/2005/Atom"
# An empty feed still needs an <updated>; a fixed instant keeps its bytes the same every day.
EMPTY_FEED_DATE = datetime(1970, 1, 1, tzinfo=timezone.utc)
MEDIA_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
NEWSLETTER_COLUMN = 600  # px: the width e-mail templates are laid out for


@dataclass(frozen=True)
class FeedInfo:
    """What a feed says about itself; every URL absolute."""

    feed_id: str
    title: str
    subtitle: str
    self_url: str
    html_url: str
    author: str
    alternates: dict[str, str] = field(default_factory=dict)  # media type -> URL
    links: dict[str, str] = field(default_factory=dict)  # rel -> URL: paging (RFC 5005), WebSub hub
    ttl_minutes: int | None = None


class AtomLinksExtension(BaseExtension):
    """Namespace holder for the entry extension below (feed level adds nothing)."""


class AtomLinksEntryExtension(BaseEntryExtension):
    """Writes entry-level Atom links with their rel/type/title, which feedgen 1.0.0 drops.

    feedgen builds its Atom elements without a namespace under a root that declares the default
    one, so the link is made the same way: an ordinary <link> in the default (Atom) namespace. A
    "{Atom}link" element would be serialised as <ns0:link xmlns:ns0="...">, which the W3C validator
    warns about ("Avoid Namespace Prefix") and some readers do not take for an Atom link."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def add(self, href: str, rel: str, title: str | None = None, type: str | None = None) -> None:
        """Queue one <link> for this entry."""
        attributes = {"href": href, "rel": rel, "title": title, "type": type}
        self.links.append({k: v for k, v in attributes.items() if v})

    def extend_atom(self, entry):
        """Append the queued links to the <entry> element."""
        for attributes in self.links:
            xml_elem("link", entry, **attributes)
        return entry


class AtomFeedLinksExtension(BaseExtension):
    """Writes <atom:link> alternates, paging and hub links into an RSS channel (feedgen writes only self)."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_rss(self, feed):
        """Append the queued links to <channel>."""
        channel = feed[0]
        for attributes in self.links:
            xml_elem(f"{{{ATOM_NS}}}link", channel, **attributes)
        return feed


def newest_date(entries: Sequence[Entry]) -> datetime:
    """The feed's own date: its newest entry's, never the wall clock."""
    return max((e.published for e in entries), default=EMPTY_FEED_DATE)


def new_generator(info: FeedInfo, entries: Sequence[Entry], fmt: str) -> FeedGenerator:
    """A FeedGenerator with the feed-level fields and our extensions set."""
    fg = FeedGenerator()
    fg.load_extension("media", atom=True, rss=True)
    fg.load_extension("dc", atom=False, rss=True)
    fg.register_extension("feedsvc_links", AtomLinksExtension, AtomLinksEntryExtension, atom=True, rss=False)
    fg.register_extension("feedsvc_channel", AtomFeedLinksExtension, BaseEntryExtension, atom=False, rss=True)
    fg.id(info.feed_id)
    fg.title(info.title)
    fg.subtitle(html_text(info.subtitle) if fmt == "rss" else info.subtitle)  # RSS's channel <description> is HTML
    fg.author(name=info.author)
    fg.generator("feedsvc")
    fg.link(href=info.self_url, rel="self", type=MEDIA_TYPES[fmt])
    fg.link(href=info.html_url, rel="alternate", type="text/html")
    links = [{"href": u, "rel": "alternate", "type": t} for t, u in info.alternates.items()]
    links += [{"href": url, "rel": rel} for rel, url in info.links.items()]
    if fmt == "atom":
        for link in links:
            fg.link(**link)
    else:
        fg.feedsvc_channel.links = links
        if info.ttl_minutes:
            fg.ttl(info.ttl_minutes)
    date = newest_date(entries)
    fg.updated(date)
    fg.lastBuildDate(date)
    return fg


def add_entry(fg: FeedGenerator, item: Entry, fmt: str) -> None:
    """Append one entry with every field set explicitly, for `fmt` ("rss" or "atom")."""
    fe = fg.add_entry(order="append")
    fe.id(item.url)
    fe.guid(item.url, permalink=True)
    fe.title(item.title)
    fe.link(href=item.url, rel="alternate")
    fe.published(item.published)
    fe.updated(item.published)
    # An entry with an image gets content:encoded below; feedgen would then write that HTML as
    # <description> when there is none, so such an entry always has a plain-text one. An Atom
    # entry with neither content nor summary has no text at all (the W3C validator: "Missing
    # textual content"); its title stands in, as in JSON Feed's content_text.
    summary = related_summary(item) or (item.title if has_body(item) or fmt == "atom" else "")
    if summary:
        # feedgen writes it as Atom <summary> (text) or RSS <description> (HTML to its readers).
        fe.summary(html_text(summary) if fmt == "rss" else summary)
    for topic in item.categories:
        fe.category(term=topic)
    if item.provider:
        fe.author(name=item.provider.name)
        fe.dc.dc_creator(item.provider.name)
    if item.related_to:
        fe.feedsvc_links.add(item.related_to.url, "related", title=item.related_to.title)
        fe.dc.dc_relation(item.related_to.url)
    for copy in item.copies:  # the same story elsewhere (dedupe=title): Atom readers list rel="related"
        if not item.related_to or copy.url != item.related_to.url:
            fe.feedsvc_links.add(copy.url, "related", title=copy_label(copy))
    if item.image:
        add_image(fe, item)
    if has_body(item):
        # RSS-to-email services (Mailchimp's *|RSSITEM:IMAGE|*, Buttondown, MailUp) take the
        # picture from an <img> in content:encoded: feedgen writes it there and as Atom content.
        # The other copies of a story are links there too, where every reader shows them.
        fe.content(newsletter_html(item), type="html")


def has_body(item: Entry) -> bool:
    """Whether an entry gets an HTML body: it has a picture, or other copies to link to."""
    return item.image is not None or bool(item.copies)


def copy_label(copy: Entry) -> str:
    """How a link to another copy of a story reads: who published it, else its host."""
    return copy.provider.name if copy.provider else urlsplit(copy.url).hostname or copy.url


def related_summary(item: Entry) -> str:
    """The excerpt; a related entry also names its article, so every reader shows the tie."""
    if item.related_to is None:
        return item.excerpt
    note = f"Related to: {item.related_to.title}"
    return f"{item.excerpt} ({note})" if item.excerpt else note


def newsletter_html(item: Entry, column: int = NEWSLETTER_COLUMN) -> str:
    """An entry as a small HTML body: its image (absolute, sized for a 600 px column), its text,
    for a related entry a link to its article, and links to the story's other copies;
    serialised by lxml, never escaped by hand."""
    parts = []
    if item.image:
        width, height = item.image.fit(column)
        size = {"width": str(width), **({"height": str(height)} if height else {})}
        # Width and height attributes only: readers strip or distrust style attributes in feed HTML
        # (the W3C validator: "style attribute contains potentially dangerous content"), and each
        # reader fits pictures to its own column. The e-mail digest (digest.html) keeps inline styles.
        image = E.img(src=item.image.url, alt=item.title, **size)
        parts.append(E.p(E.a(image, href=item.url)))
    if item.excerpt:
        parts.append(E.p(item.excerpt))
    if item.related_to:
        parts.append(E.p("Related to: ", E.a(item.related_to.title, href=item.related_to.url)))
    if item.copies:
        links: list = []
        for copy in item.copies:
            links += [", "] if links else []
            links.append(E.a(copy_label(copy), href=copy.url))
        parts.append(E.p("Also published at: ", *links))
    return "".join(lxml.html.tostring(part, encoding="unicode") for part in parts)


def add_image(fe, item: Entry) -> None:
    """The first image as media:thumbnail and media:content, outside any media:group."""
    image = item.image
    size = {k: str(v) for k, v in (("width", image.width), ("height", image.height)) if v}
    fe.media.thumbnail(url=image.url, group=None, **size)
    fe.media.content(url=image.url, medium="image", group=None, **size)


def render(fmt: str, info: FeedInfo, entries: Sequence[Entry]) -> bytes:
    """The feed as UTF-8 bytes in `fmt` ("rss" or "atom"); same input, same bytes."""
    fg = new_generator(info, entries, fmt)
    for item in entries:
        add_entry(fg, item, fmt)
    if fmt == "atom":
        return fg.atom_str(pretty=True)
    return fg.rss_str(pretty=True)
