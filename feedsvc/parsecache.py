"""A parse cache, so a restart re-parses only the files that changed since the last run.

One JSON file per seeds folder holds each file's stamp (size, mtime) and what parsing it gave.
JSON, not pickle: a cache file that someone else wrote can at worst be wrong, never run code;
and a corrupt, foreign or outdated cache is ignored (and rebuilt), never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from .fields import Limits, shared_provider
from .loader import FileState, Stamp
from .model import Article, Image, Problem, Provider, Related

log = logging.getLogger(__name__)
FORMAT = 3  # bump when the model or the parsing rules change: old caches are then ignored


def default_cache_dir() -> Path:
    """The user's cache folder (XDG Base Directory spec): $XDG_CACHE_HOME/feedsvc or ~/.cache/feedsvc
    (a relative XDG_CACHE_HOME is invalid by the spec, and ignored)."""
    configured = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(configured) if os.path.isabs(configured) else Path.home() / ".cache") / "feedsvc"


def cache_file(cache_dir: Path, seeds_dir: Path) -> Path:
    """The cache file of one seeds folder."""
    digest = hashlib.sha256(str(seeds_dir.resolve()).encode()).hexdigest()[:20]
    return cache_dir / f"parse-{digest}.json"


def header(seeds_dir: Path, limits: Limits) -> dict[str, Any]:
    """What a cache must have been written for to be used."""
    return {"format": FORMAT, "seeds": str(seeds_dir.resolve()), "limits": asdict(limits)}


def encode_state(state: FileState) -> list:
    """One file state as a JSON-ready array: [size, mtime_ns, article, problems, stale].

    Arrays, not objects: the cache is read on every warm start, and positional values decode
    faster and take half the space. `decode_state` reverses it."""
    article = encode_article(state.article) if state.article else None
    problems = [[p.path, p.message, p.severity, p.line] for p in state.problems]
    return [state.stamp.size, state.stamp.mtime_ns, article, problems, state.stale]


def encode_article(a: Article) -> list:
    """An Article as a JSON-ready array (its path is the file's name, stored once as the key)."""
    images = [[i.url, i.width, i.height] for i in a.images]
    related = [encode_related(r) for r in a.related]
    published, provider = a.published.isoformat(), encode_provider(a.provider)
    return [a.title, a.url, published, a.excerpt, provider, list(a.topics), images, a.is_published, related]


def encode_related(r: Related) -> list:
    """A Related link as a JSON-ready array."""
    image = [r.image.url, r.image.width, r.image.height] if r.image else None
    return [r.title, r.url, r.published.isoformat(), r.excerpt, encode_provider(r.provider), image]


def encode_provider(p: Provider | None) -> list | None:
    """A Provider as [name, domain]."""
    return [p.name, p.domain] if p else None


def save(path: Path, seeds_dir: Path, limits: Limits, states: dict[str, FileState], pause: float = 0.0) -> None:
    """Write the cache atomically (a reader sees the old file or the new), readable by its owner only.

    Each file's state is encoded on its own with the C encoder (json.dumps) and streamed out:
    one json.dumps of the whole cache doubled peak memory at 100,000 articles. With `pause`, the
    writer sleeps that long after every PAUSE_EVERY states, so that on a thread it leaves the
    interpreter to requests (without it, one request waited 300 ms for a 10,000-file write).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".parse-", suffix=".tmp")
    try:
        # A file name that is not UTF-8 decodes to lone surrogates (PEP 383), which UTF-8 cannot
        # encode: backslashreplace writes them as \udcXX escapes, which JSON reads back as they were.
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as stream:
            stream.write(json.dumps(header(seeds_dir, limits))[:-1] + ',"files":{')
            for number, (name, state) in enumerate(states.items()):
                stream.write(("," if number else "") + json.dumps(name) + ":")
                stream.write(json.dumps(encode_state(state), ensure_ascii=False, separators=(",", ":")))
                if pause and number % PAUSE_EVERY == PAUSE_EVERY - 1:
                    time.sleep(pause)
            stream.write("}}")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# About a millisecond of encoding between pauses.
PAUSE_EVERY = 50


def load(path: Path, seeds_dir: Path, limits: Limits) -> dict[str, FileState]:
    """The cached states, or {} when the cache is missing, corrupt, or not ours."""
    try:
        with path.open("rb") as stream:
            data = json.loads(stream.read())
        if {k: data.get(k) for k in ("format", "seeds", "limits")} != header(seeds_dir, limits):
            log.info("parse cache %s is for other settings; rebuilding it", path)
            return {}
        decoder = Decoder()
        return {name: decoder.state(typed(name, str), value) for name, value in data["files"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError) as exc:
        log.warning("parse cache %s is unusable (%s); rebuilding it", path, exc)
        return {}


class Decoder:
    """Rebuilds file states from their arrays; any wrong shape raises (and the whole cache is
    dropped). Equal providers become one shared object, as when parsing."""

    def __init__(self) -> None:
        self.providers: dict[tuple, Provider] = {}  # (name, domain) as read -> its checked Provider

    def state(self, name: str, value: list) -> FileState:
        """One file state."""
        size, mtime_ns, article, problems, stale = array(value, 5)
        return FileState(
            Stamp(typed(size, int), typed(mtime_ns, int)),
            self.article(name, article) if article is not None else None,
            tuple(map(self.problem, array(problems))),
            typed(stale, bool),
        )

    @staticmethod
    def problem(value: list) -> Problem:
        """A Problem from [path, message, severity, line]."""
        path, message, severity, line = array(value, 4)
        return Problem(*strings(path, message, severity), count(line))

    def article(self, name: str, value: list) -> Article:
        """An Article, every nested value rebuilt as its dataclass."""
        title, url, published, excerpt, provider, topics, images, is_published, related = array(value, 9)
        strings(title, url, excerpt, *array(topics))
        return Article(
            path=name, title=title, url=url, published=utc(published), excerpt=excerpt,
            provider=self.provider(provider), topics=tuple(topics), images=tuple(map(image, array(images))),
            is_published=typed(is_published, bool), related=tuple(map(self.related, array(related))),
        )  # fmt: skip

    def related(self, value: list) -> Related:
        """A Related link."""
        title, url, published, excerpt, provider, picture = array(value, 6)
        strings(title, url, excerpt)
        return Related(
            title=title, url=url, published=utc(published), excerpt=excerpt,
            provider=self.provider(provider), image=image(picture) if picture is not None else None,
        )  # fmt: skip

    def provider(self, value: list | None) -> Provider | None:
        """The one shared Provider of a [name, domain] pair (fields.shared_provider), checked the
        first time the pair is seen (an unhashable item, a list, raises TypeError here too)."""
        if value is None:
            return None
        pair = tuple(array(value, 2))
        known = self.providers.get(pair)
        if known is None:
            name, domain = pair
            known = shared_provider(typed(name, str), None if domain is None else typed(domain, str))
            self.providers[pair] = known
        return known


def image(value: list) -> Image:
    """An Image from [url, width, height]."""
    url, width, height = array(value, 3)
    return Image(typed(url, str), count(width), count(height))


def array(value: object, length: int | None = None) -> list:
    """A JSON array (of `length` items), or TypeError: a string or an object unpacks too."""
    if type(value) is not list or (length is not None and len(value) != length):
        raise TypeError(f"expected an array of {length or 'any number of'} items")
    return value


def typed(value: object, kind: type) -> Any:
    """`value` when it is exactly a `kind` (a bool is no int), else TypeError: a foreign cache is
    never taken on trust."""
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, not {type(value).__name__}")
    return value


def strings(*values: object) -> tuple:
    """`values` when each is a str, else TypeError. str.join checks every item in C, several
    times faster than a loop over them (JSON gives exact strs, never a subclass)."""
    "".join(values)
    return values


def count(value: object) -> int | None:
    """A whole number (a pixel size, a line) or None from the cache, or TypeError."""
    return None if value is None else typed(value, int)


def utc(value: object) -> datetime:
    """A time zone-aware date from its ISO 8601 text, or an error (naive dates do not sort with aware ones)."""
    moment = datetime.fromisoformat(typed(value, str))
    if moment.tzinfo is None:
        raise ValueError(f"date {value} has no time zone")
    return moment
