"""The loaded articles as an immutable snapshot: topics, selection, and the entries of each feed.

Pure core: no Flask, no feedgen. A Catalog never changes after it is built, so a request that
holds one sees one consistent set of articles.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from threading import Lock

from slugify import slugify

from .errors import TopicNotFound
from .model import Article, Entry, Problem
from .urls import shorten


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Topic:
    """A topic as feeds name it: URL slug, display name, number of entries."""

    slug: str
    name: str
    count: int


@lru_cache(maxsize=65536)
def topic_slug(name: str) -> str:
    """The URL slug of a topic name ("Computer Vision" -> "computer-vision")."""
    return slugify(name)


def newest_first(item: Article | Entry) -> tuple:
    """Sort key: newest first, equal dates by URL, so every order is deterministic."""
    return (-item.published.timestamp(), item.url)


def build_entries(articles: list[Article]) -> tuple[Entry, ...]:
    """One entry per URL: articles first, then each related link under its newest article."""
    ordered = sorted(articles, key=lambda a: (newest_first(a), a.path))
    entries: dict[str, Entry] = {}
    for article in ordered:
        entries.setdefault(article.url, Entry.from_article(article))
    for article in ordered:
        for link in article.related:
            entries.setdefault(link.url, Entry.from_related(link, article))
    return tuple(sorted(entries.values(), key=newest_first))


def duplicate_url_warnings(articles: tuple[Article, ...]) -> list[Problem]:
    """Warn about files that share a webUrl: only the newest (then first by path) is served."""
    by_url: dict[str, list[Article]] = {}
    for article in articles:
        by_url.setdefault(article.url, []).append(article)
    problems = []
    for same in by_url.values():
        winner, *losers = sorted(same, key=lambda a: (newest_first(a), a.path))
        problems.extend(
            Problem(a.path, f"webUrl {a.url} is also the webUrl of {winner.path}: one entry is served, from the newest selected file", "warning")
            for a in losers
        )
    return problems


class Catalog:
    """An immutable snapshot of the loaded articles, with per-feed entry lists computed once."""

    def __init__(
        self,
        articles: tuple[Article, ...],
        problems: tuple[Problem, ...] = (),
        stale: tuple[str, ...] = (),
        last_modified: datetime = EPOCH,
    ) -> None:
        self.articles = tuple(sorted(articles, key=lambda a: a.path))
        self.problems = tuple(problems) + tuple(duplicate_url_warnings(self.articles))
        self.stale = stale  # files whose last good version is served while their current one is broken
        self.last_modified = last_modified
        self._entries: dict[tuple[str | None, bool], tuple[Entry, ...]] = {}
        self._lock = Lock()

    @cached_property
    def topic_names(self) -> dict[str, str]:
        """Slug -> display name; spellings that slug alike are one topic, the commonest names it."""
        spellings: dict[str, Counter] = {}
        for article in self.articles:
            for name in article.topics:
                slug = topic_slug(name)
                if slug:
                    spellings.setdefault(slug, Counter())[name] += 1
        return {slug: min(c, key=lambda n: (-c[n], n)) for slug, c in sorted(spellings.items())}

    def selected(self, include_all: bool) -> list[Article]:
        """The published articles, or every article when `include_all`."""
        return [a for a in self.articles if include_all or a.is_published]

    def entries(self, slug: str | None, include_all: bool) -> tuple[Entry, ...]:
        """The entries of one topic's feed (or of every topic when slug is None), newest first."""
        key = (slug, include_all)
        if key not in self._entries:
            articles = self.selected(include_all)
            if slug is not None:
                articles = [a for a in articles if slug in {topic_slug(t) for t in a.topics}]
                if not articles:
                    raise TopicNotFound(f"no topic {shorten(slug, 60)}: see / for the list of topics")
            with self._lock:
                self._entries[key] = build_entries(articles)
        return self._entries[key]

    def topics(self, include_all: bool) -> list[Topic]:
        """Every topic with selected articles, by name, with its entry count."""
        found = []
        for slug, name in self.topic_names.items():
            try:
                found.append(Topic(slug, name, len(self.entries(slug, include_all))))
            except TopicNotFound:
                continue
        return sorted(found, key=lambda t: (t.name.lower(), t.slug))

    @property
    def skipped(self) -> tuple[Problem, ...]:
        """The files that are not served, with their reasons."""
        return tuple(p for p in self.problems if p.severity == "error" and p.path not in self.stale)
