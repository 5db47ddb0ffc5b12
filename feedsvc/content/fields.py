"""Validate and coerce the fields of one parsed front matter into an Article.

Required fields missing or wrong raise ArticleError; optional ones are coerced where the
intent is clear (`published: "true"`, `topics: AI`) and otherwise dropped with a warning.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from dateutil import parser as dateparser

from feedsvc.content.model import Article, Image, Problem, Provider, Related, shared_provider, shared_related
from feedsvc.content.text import plain_text
from feedsvc.content.urls import normalize_url
from feedsvc.errors import ArticleError

# RFC 822 section 5.1: the zone names a written date may carry (others are ambiguous).
RFC822_ZONES = {
    "UT": 0, "GMT": 0, "Z": 0, "EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600,
    "MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
}  # fmt: skip
_DEFAULT_A = datetime(2000, 1, 1)
_DEFAULT_B = datetime(2001, 2, 2)
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n", ""}


@dataclass(frozen=True)
class Limits:
    """How much of a file and its text is kept (config MAX_FILE_BYTES, MAX_*_CHARS)."""

    file_bytes: int = 1_000_000
    title_chars: int = 300
    excerpt_chars: int = 1_000


class Warnings:
    """Collects the warnings of one file, for `feedsvc check` and /healthz, under its limits."""

    def __init__(self, path: str, limits: Limits = Limits()) -> None:
        self.path = path
        self.limits = limits
        self.problems: list[Problem] = []

    def add(self, message: str) -> None:
        """Record one warning about this file."""
        self.problems.append(Problem(self.path, message, "warning"))


def parse_article(data: dict, path: str, warnings: Warnings) -> Article:
    """Build an Article from a front-matter mapping; `secured` and unknown keys are ignored."""
    published = to_utc(data.get("publishedDateTime"), path, "publishedDateTime")
    return Article(
        path=path,
        title=required_text(data.get("title"), path, "title", warnings.limits.title_chars),
        url=required_url(data.get("webUrl"), path, "webUrl"),
        published=published,
        excerpt=optional_text(data.get("excerpt"), warnings.limits.excerpt_chars),
        provider=to_provider(data.get("provider")),
        topics=to_topics(data.get("topics"), warnings),
        images=to_images(data.get("images"), warnings),
        is_published=to_bool(data.get("published"), warnings),
        related=to_related_list(data.get("related"), published, warnings),
    )


def clean_text(value: str, limit: int | None = None, markup: bool = True) -> str:
    """Plain text: mojibake fixed, HTML stripped (with `markup`), white space folded, cut at `limit`."""
    return plain_text(value, limit, markup)


def required_text(value: Any, path: str, field: str, limit: int | None = None) -> str:
    """A non-empty text field; anything else is an error naming the field."""
    if value is None:
        raise ArticleError(path, f"{field} is missing: add '{field}: \"...\"' to the front matter", field=field)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ArticleError(path, f"{field} must be text, not a {type(value).__name__}", field=field)
    text = clean_text(str(value), limit)
    if not text:
        raise ArticleError(path, f"{field} is empty: give the article a {field}", field=field)
    return text


def optional_text(value: Any, limit: int | None = None, markup: bool = True) -> str:
    """A text field that may be absent; numbers become their text, structures nothing."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return clean_text(str(value), limit, markup)
    return ""


def required_url(value: Any, path: str, field: str) -> str:
    """An absolute http(s) URL, normalised; anything else is an error."""
    if value is None:
        raise ArticleError(path, f"{field} is missing: add '{field}: \"https://...\"' to the front matter", field=field)
    try:
        return normalize_url(value)
    except ValueError as exc:
        raise ArticleError(path, f"{field} {exc}", field=field) from None


def to_utc(value: Any, path: str, field: str) -> datetime:
    """A datetime in UTC: a date means midnight UTC, a time without zone means UTC."""
    if value is None:
        raise ArticleError(path, f"{field} is missing: add '{field}: 2021-01-13T23:56:00Z'", field=field)
    if isinstance(value, str):
        value = _parse_date_text(value, path, field)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        try:
            return aware.astimezone(timezone.utc)
        except OverflowError:
            raise ArticleError(path, f"{field} {value.isoformat()} is out of range in UTC", field=field) from None
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    raise ArticleError(path, f"{field} must be a date such as 2021-01-13T23:56:00Z, not {describe(value)}", field=field)


def _parse_date_text(text: str, path: str, field: str) -> datetime:
    """Parse a quoted date: ISO 8601 first, then complete written forms (RFC 2822 and so on)."""
    try:
        return dateparser.isoparse(text.strip())
    except (ValueError, OverflowError):
        pass
    try:
        return _parse_written_date(text)
    except (ValueError, OverflowError, dateparser.UnknownTimezoneWarning):
        raise ArticleError(
            path, f"{field} {describe(text)} is not a date: use ISO 8601, e.g. 2021-01-13T23:56:00Z", field=field
        ) from None


def _parse_written_date(text: str) -> datetime:
    """A written date with year, month, day (and a known zone): parsed against two different
    defaults, a part the text leaves out shows as a difference and is refused, so a date never
    depends on the day it was loaded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", dateparser.UnknownTimezoneWarning)
        first = dateparser.parse(text, default=_DEFAULT_A, tzinfos=RFC822_ZONES)
        second = dateparser.parse(text, default=_DEFAULT_B, tzinfos=RFC822_ZONES)
    if first.date() != second.date():
        raise ValueError("incomplete date")
    return first


def to_bool(value: Any, warnings: Warnings) -> bool:
    """The `published` flag: only an explicit yes publishes; an unclear value does not."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    warnings.add(f"published: {describe(value)} is neither true nor false; the article is not published")
    return False


def describe(value: Any) -> str:
    """A short, safe description of a value for a message (never the repr of a huge structure)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(value).__name__}"


def as_list(value: Any) -> list:
    """A YAML scalar where a list is expected is a list of one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def to_topics(value: Any, warnings: Warnings) -> tuple[str, ...]:
    """Topic names, blank and duplicate ones dropped, in the file's order."""
    topics: list[str] = []
    for item in as_list(value):
        name = optional_text(item, markup=False)
        if not name:
            warnings.add(f"topic {describe(item)} is not a name; it is ignored")
        elif name not in topics:
            topics.append(name)
    return tuple(map(sys.intern, topics))  # thousands of articles name the same few topics: one string each


def to_provider(value: Any) -> Provider | None:
    """A provider mapping (name, domain) or a bare name."""
    if isinstance(value, dict):
        name = optional_text(value.get("name"), markup=False) or optional_text(value.get("domain"), markup=False)
        domain = optional_text(value.get("domain"), markup=False) or None
        return shared_provider(name, domain) if name else None
    name = optional_text(value, markup=False)
    return shared_provider(name, None) if name else None


def to_image(value: Any) -> Image:
    """One image: a mapping with url (and width/height) or a bare URL."""
    raw = value.get("url") if isinstance(value, dict) else value
    url = normalize_url(raw)
    size = value if isinstance(value, dict) else {}
    return Image(url, _dimension(size.get("width")), _dimension(size.get("height")))


def _dimension(value: Any) -> int | None:
    """A positive pixel size, or None when absent or nonsense."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None


def to_images(value: Any, warnings: Warnings) -> tuple[Image, ...]:
    """Every usable image; a bad one is dropped with a warning."""
    images = []
    for item in as_list(value):
        try:
            images.append(to_image(item))
        except ValueError as exc:
            warnings.add(f"image dropped: url {exc}")
    return tuple(images)


def to_related(value: Any, default_date: datetime, limits: Limits = Limits()) -> Related:
    """One related link; raise ValueError saying why it cannot be used."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping with title and webUrl")  # noqa: TRY004 - a reason for the file's author, caught as ValueError
    title = optional_text(value.get("title"), limits.title_chars)
    if not title:
        raise ValueError("has no title")
    url = normalize_url(value.get("webUrl"))
    published = value.get("publishedDateTime")
    images = [image for image in map(_usable_image, as_list(value.get("images"))) if image]
    return shared_related(
        title,
        url,
        to_utc(published, "", "publishedDateTime") if published is not None else default_date,
        optional_text(value.get("excerpt"), limits.excerpt_chars),
        to_provider(value.get("provider")),
        images[0] if images else None,
    )


def _usable_image(value: Any) -> Image | None:
    """The image of an entry with a valid URL, else None."""
    try:
        return to_image(value)
    except ValueError:
        return None


def to_related_list(value: Any, default_date: datetime, warnings: Warnings) -> tuple[Related, ...]:
    """Every usable related link; a bad one is dropped with a warning, never its article."""
    links = []
    for number, item in enumerate(as_list(value), start=1):
        try:
            links.append(to_related(item, default_date, warnings.limits))
        except (ValueError, ArticleError) as exc:
            reason = exc.reason if isinstance(exc, ArticleError) else str(exc)
            warnings.add(f"related link {number} dropped: {reason}")
    return tuple(links)
