"""feedsvc: publish news-article files as per-topic RSS 2.0, Atom 1.0 and JSON Feed 1.1 feeds.

Layers, each importing only those below it: `content` (one article file to an Article: model,
front matter, fields, text, URLs), `feeds` (the catalog, query flags and paging, URLs, the
renderers), `runtime` (scans, reloads, caches, WebSub), `web` (the Flask app); on top, `cli`,
`server` and `build`. `import feedsvc` loads none of them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    """`from feedsvc import create_app` loads the web layer only when asked for (PEP 562)."""
    if name == "create_app":
        from feedsvc.web import create_app

        return create_app
    raise AttributeError(f"module 'feedsvc' has no attribute {name!r}")
