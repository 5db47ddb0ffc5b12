"""The article model: plain frozen values, free of YAML, Flask and feedgen."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from operator import attrgetter


def unpickled_by_calling(cls: type) -> type:
    """Make `cls` (a frozen slots dataclass) unpickle by calling it with its fields in order: the
    dataclass's own __setstate__ looks up its fields on every object (a warm start read its parse
    cache in 0.21 s, 0.12 s this way). Every field, so a new one can never be left out."""
    values = attrgetter(*(field.name for field in fields(cls)))
    cls.__reduce__ = lambda self: (cls, values(self))  # type: ignore[method-assign]
    return cls


@unpickled_by_calling
@dataclass(frozen=True, slots=True)
class Image:
    """A picture of an article, with its size when the file gives it."""

    url: str
    width: int | None = None
    height: int | None = None

    def fit(self, column: int) -> tuple[int, int | None]:
        """Width and height to show it in a column `column` pixels wide (height None if unknown)."""
        width = min(self.width or column, column)
        if self.width and self.height:
            return width, max(1, round(self.height * width / self.width))
        return width, None


@dataclass(frozen=True, slots=True)
class Provider:
    """Who published the article (a name for people, a domain for machines)."""

    name: str
    domain: str | None = None

    def __reduce__(self) -> tuple:
        """Unpickled (parse cache, parsing processes) as the one shared object, as when parsed."""
        return shared_provider, (self.name, self.domain)


@dataclass(frozen=True, slots=True)
class Related:
    """A link an article recommends; served as an entry of its own."""

    title: str
    url: str
    published: datetime
    excerpt: str = ""
    provider: Provider | None = None
    image: Image | None = None

    def __reduce__(self) -> tuple:
        """Unpickled (parse cache, parsing processes) as the one shared object, as when parsed."""
        return shared_related, (self.title, self.url, self.published, self.excerpt, self.provider, self.image)


@unpickled_by_calling
@dataclass(frozen=True, slots=True)
class Article:
    """One article file, validated; the `secured` blob is never part of it."""

    path: str
    title: str
    url: str
    published: datetime
    excerpt: str = ""
    provider: Provider | None = None
    topics: tuple[str, ...] = ()
    images: tuple[Image, ...] = ()
    is_published: bool = False
    related: tuple[Related, ...] = ()


@unpickled_by_calling
@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed: an article, or a related link of one (`related_to`); with `copies`
    when other entries of the same title were collapsed into it (feedsvc.feeds.filters)."""

    url: str
    title: str
    published: datetime
    excerpt: str
    provider: Provider | None
    image: Image | None
    categories: tuple[str, ...]
    related_to: Article | None = None
    copies: tuple[Entry, ...] = ()  # the same story at other URLs (dedupe=title), oldest first

    @classmethod
    def from_article(cls, article: Article) -> Entry:
        """The entry that stands for an article itself."""
        return cls(
            url=article.url,
            title=article.title,
            published=article.published,
            excerpt=article.excerpt,
            provider=article.provider,
            image=article.images[0] if article.images else None,
            categories=article.topics,
        )

    @classmethod
    def from_related(cls, link: Related, article: Article) -> Entry:
        """The entry for a related link, filed under its article's topics."""
        return cls(
            url=link.url,
            title=link.title,
            published=link.published,
            excerpt=link.excerpt,
            provider=link.provider,
            image=link.image,
            categories=article.topics,
            related_to=article,
        )


@unpickled_by_calling
@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one file: an error skips it, a warning only drops a part."""

    path: str
    message: str
    severity: str = "error"
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.severity}: {self.message}"


@lru_cache(maxsize=4096)
def shared_provider(name: str, domain: str | None) -> Provider:
    """One Provider object per (name, domain): 100,000 articles name a few dozen publishers."""
    return Provider(name, domain)


@lru_cache(maxsize=65536)
def shared_related(
    title: str, url: str, published: datetime, excerpt: str, provider: Provider | None, image: Image | None
) -> Related:
    """One Related object for each equal link: articles of one publisher recommend the same few
    links (10,000 generated articles: 4,046 distinct links in 14,878), and each copy cost memory
    in every process (see feedsvc.server.share_with_forks)."""
    return Related(title, url, published, excerpt, provider, image)
