"""Render entries as an e-mail-safe HTML fragment and its plain-text twin, for newsletters.

E-mail clients ignore <style> blocks and external CSS and run no script: the fragment is a
table layout with inline styles only, absolute links, and images scaled to a 600 px column.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from feedsvc.content.model import Entry
from feedsvc.feeds.rss_atom import NEWSLETTER_COLUMN, FeedInfo, copy_label

MEDIA_TYPES = {"digest-html": "text/html", "digest-txt": "text/plain"}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_templates = Environment(
    loader=PackageLoader("feedsvc.feeds", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def day(moment: datetime) -> str:
    """A date as readers everywhere read it, the same in any locale: "18 Nov 2020"."""
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def render(fmt: str, info: FeedInfo, entries: Sequence[Entry]) -> bytes:
    """The digest of `entries` as "digest-html" or "digest-txt" UTF-8 bytes."""
    template = _templates.get_template("digest.html" if fmt == "digest-html" else "digest.txt")
    text = template.render(info=info, entries=entries, column=NEWSLETTER_COLUMN, day=day, copy_label=copy_label)
    return text.encode("utf-8")
