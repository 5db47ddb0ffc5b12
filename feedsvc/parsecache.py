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
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from .fields import Limits
from .loader import FileState, Stamp
from .model import Article, Image, Problem, Provider, Related

log = logging.getLogger(__name__)
FORMAT = 1  # bump when the model or the parsing rules change: old caches are then ignored


def default_cache_dir() -> Path:
    """The user's cache folder (XDG Base Directory spec): $XDG_CACHE_HOME/feedsvc or ~/.cache/feedsvc."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "feedsvc"


def cache_file(cache_dir: Path, seeds_dir: Path) -> Path:
    """The cache file of one seeds folder."""
    digest = hashlib.sha256(str(seeds_dir.resolve()).encode()).hexdigest()[:20]
    return cache_dir / f"parse-{digest}.json"


def header(seeds_dir: Path, limits: Limits) -> dict[str, Any]:
    """What a cache must have been written for to be used."""
    return {"format": FORMAT, "seeds": str(seeds_dir.resolve()), "limits": asdict(limits)}


def encode_state(state: FileState) -> dict[str, Any]:
    """One file state as JSON-ready values (dates as ISO 8601), built field by field: asdict()
    deep-copies every value and was half the cost of writing the cache."""
    return {
        "stamp": [state.stamp.size, state.stamp.mtime_ns],
        "article": encode_article(state.article) if state.article else None,
        "problems": [vars(p) for p in state.problems],
        "stale": state.stale,
    }


def encode_article(a: Article) -> dict[str, Any]:
    """An Article as JSON-ready values; `decode_article` reverses it."""
    return {
        "path": a.path, "title": a.title, "url": a.url, "published": a.published.isoformat(),
        "excerpt": a.excerpt, "provider": vars(a.provider) if a.provider else None, "topics": a.topics,
        "images": [vars(i) for i in a.images], "is_published": a.is_published,
        "related": [encode_related(r) for r in a.related],
    }  # fmt: skip


def encode_related(r: Related) -> dict[str, Any]:
    """A Related link as JSON-ready values."""
    return {
        "title": r.title, "url": r.url, "published": r.published.isoformat(), "excerpt": r.excerpt,
        "provider": vars(r.provider) if r.provider else None, "image": vars(r.image) if r.image else None,
    }  # fmt: skip


def save(path: Path, seeds_dir: Path, limits: Limits, states: dict[str, FileState]) -> None:
    """Write the cache atomically (a reader sees the old file or the new), readable by its owner only.

    Each file's state is encoded on its own with the C encoder (json.dumps) and streamed out:
    one json.dumps of the whole cache doubled peak memory at 100,000 articles.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".parse-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(header(seeds_dir, limits))[:-1] + ',"files":{')
            for number, (name, state) in enumerate(states.items()):
                stream.write(("," if number else "") + json.dumps(name) + ":")
                stream.write(json.dumps(encode_state(state), ensure_ascii=False, separators=(",", ":")))
            stream.write("}}")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load(path: Path, seeds_dir: Path, limits: Limits) -> dict[str, FileState]:
    """The cached states, or {} when the cache is missing, corrupt, or not ours."""
    try:
        with path.open(encoding="utf-8") as stream:
            data = json.load(stream)
        if {k: data.get(k) for k in ("format", "seeds", "limits")} != header(seeds_dir, limits):
            log.info("parse cache %s is for other settings; rebuilding it", path)
            return {}
        return {str(name): decode_state(value) for name, value in data["files"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("parse cache %s is unusable (%s); rebuilding it", path, exc)
        return {}


def decode_state(value: dict[str, Any]) -> FileState:
    """One file state from JSON; any wrong shape raises (and the whole cache is dropped)."""
    size, mtime_ns = value["stamp"]
    article = decode_article(value["article"]) if value["article"] is not None else None
    problems = tuple(Problem(**p) for p in value["problems"])
    return FileState(Stamp(int(size), int(mtime_ns)), article, problems, bool(value["stale"]))


def decode_article(a: dict[str, Any]) -> Article:
    """An Article from its JSON form, every nested value rebuilt as its dataclass."""
    return Article(
        path=str(a["path"]),
        title=str(a["title"]),
        url=str(a["url"]),
        published=datetime.fromisoformat(a["published"]),
        excerpt=str(a["excerpt"]),
        provider=Provider(**a["provider"]) if a["provider"] else None,
        topics=tuple(str(t) for t in a["topics"]),
        images=tuple(Image(**i) for i in a["images"]),
        is_published=bool(a["is_published"]),
        related=tuple(decode_related(r) for r in a["related"]),
    )


def decode_related(r: dict[str, Any]) -> Related:
    """A Related link from its JSON form."""
    return Related(
        title=str(r["title"]),
        url=str(r["url"]),
        published=datetime.fromisoformat(r["published"]),
        excerpt=str(r["excerpt"]),
        provider=Provider(**r["provider"]) if r["provider"] else None,
        image=Image(**r["image"]) if r["image"] else None,
    )
