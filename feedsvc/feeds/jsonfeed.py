"""Render entries as JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from feedsvc.content.model import Entry
from feedsvc.feeds.rss_atom import FeedInfo, copy_label, has_body, newsletter_html, related_summary

MEDIA_TYPE = "application/feed+json"
VERSION = "https://jsonfeed.org/version/1.1"


def authorship(author: dict[str, str]) -> dict[str, Any]:
    """`authors` (1.1) and the same object as `author` (1.0): JSON Feed 1.1 keeps `author` for
    readers of 1.0 ("Existing feeds can include both author and authors for compatibility")."""
    return {"author": author, "authors": [author]}


def item(entry: Entry) -> dict[str, Any]:
    """One JSON Feed item; a related entry names its article in `_feedsvc.related_to`."""
    data: dict[str, Any] = {
        "id": entry.url,
        "url": entry.url,
        "title": entry.title,
        # JSON Feed requires content_html or content_text; the excerpt is plain text.
        "content_text": related_summary(entry) or entry.title,
        "date_published": entry.published.isoformat(),
        "date_modified": entry.published.isoformat(),
        "tags": list(entry.categories),
    }
    if entry.excerpt:
        data["summary"] = entry.excerpt
    if entry.provider:
        data.update(authorship({"name": entry.provider.name}))
    if entry.image:
        data["image"] = entry.image.url
    if has_body(entry):
        data["content_html"] = newsletter_html(entry)
    if entry.related_to:
        data["_feedsvc"] = {"related_to": {"url": entry.related_to.url, "title": entry.related_to.title}}
    if entry.copies:  # the same story at other URLs (dedupe=title), oldest first
        copies = [{"url": c.url, "title": c.title, "published_by": copy_label(c)} for c in entry.copies]
        data.setdefault("_feedsvc", {})["copies"] = copies
    return data


def render(info: FeedInfo, entries: Sequence[Entry]) -> bytes:
    """The feed as UTF-8 JSON bytes; same input, same bytes."""
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": info.title,
        "home_page_url": info.html_url,
        "feed_url": info.self_url,
        "description": info.subtitle,
        # The site is the feed author's: JSON Feed's author.url, "the URL of a site owned by the author".
        **authorship({"name": info.author, "url": info.html_url}),
        "items": [item(e) for e in entries],
    }
    if "next" in info.links:
        feed["next_url"] = info.links["next"]
    if "hub" in info.links:
        feed["hubs"] = [{"type": "WebSub", "url": info.links["hub"]}]
    return json.dumps(feed, ensure_ascii=False, indent=2).encode("utf-8")
