"""Render entries as an e-mail-safe HTML fragment and its plain-text twin, for newsletters.

E-mail clients ignore <style> blocks and external CSS and run no script: the fragment is a
table layout with inline styles only, absolute links, and images scaled to a 600 px column.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedsvc.content.model import Entry
from feedsvc.feeds.rss_atom import NEWSLETTER_COLUMN, FeedInfo, copy_label
from feedsvc.feeds.templating import day, templates

MEDIA_TYPES = {"digest-html": "text/html", "digest-txt": "text/plain"}


def render(fmt: str, info: FeedInfo, entries: Sequence[Entry]) -> bytes:
    """The digest of `entries` as "digest-html" or "digest-txt" UTF-8 bytes."""
    template = templates.get_template("digest.html" if fmt == "digest-html" else "digest.txt")
    text = template.render(info=info, entries=entries, column=NEWSLETTER_COLUMN, day=day, copy_label=copy_label)
    return text.encode("utf-8")
