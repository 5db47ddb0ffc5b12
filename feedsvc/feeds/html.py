"""Render a topic's entries as an HTML page for people: the topic page, and the page a browser
gets when it opens a feed's URL (the same list under a "this is a feed" header).

No script and nothing from other sites but the entries' pictures: one stylesheet of our own
(STYLESHEET, served at Site's STYLESHEET_PATH), so the pages keep a strict Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from feedsvc.content.model import Entry
from feedsvc.feeds.templating import day, templates

MEDIA_TYPE = "text/html"
STYLESHEET = files("feedsvc.feeds").joinpath("templates/style.css").read_bytes()
IMAGE_COLUMN = 720  # px: the widest the page shows a picture (the main column)


@dataclass(frozen=True)
class Link:
    """A link to one feed: what to call it, its absolute URL, its media type."""

    label: str
    url: str
    media_type: str


@dataclass(frozen=True)
class PageInfo:
    """What a page shows around its entries; every URL absolute."""

    site_title: str
    name: str
    subtitle: str
    index_url: str
    stylesheet_url: str
    page_url: str  # this list as a topic page
    feeds: tuple[Link, ...]  # the topic's feeds to subscribe to, one per format
    feed: Link | None  # the feed this page stands for, when a browser opened a feed's URL
    page: int
    pages: int
    total: int  # entries on every page
    previous: str | None = None
    next: str | None = None


def render(info: PageInfo, entries: Sequence[Entry]) -> bytes:
    """The page as UTF-8 bytes."""
    text = templates.get_template("page.html").render(info=info, entries=entries, column=IMAGE_COLUMN, day=day)
    return text.encode("utf-8")
