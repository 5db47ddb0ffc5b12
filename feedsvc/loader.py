"""Read article files (YAML front matter between `---` lines) into validated Articles.

Pure core: no Flask, no feedgen. Every problem becomes a `Problem`; one broken file never
stops the others loading.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ArticleError, FeedsvcError
from .fields import Warnings, parse_article
from .model import Article, Problem

log = logging.getLogger(__name__)

# PyYAML's libyaml binding is ten times faster than the pure-Python parser; both are "safe"
# (they construct only plain scalars, lists and mappings, never Python objects).
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Editors' swap, backup and lock files (vim, emacs) sit beside the articles while they are edited.
_LEFTOVER_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig")


@dataclass(frozen=True)
class LoadResult:
    """Everything one pass over a folder gave: the good articles and every problem."""

    articles: tuple[Article, ...]
    problems: tuple[Problem, ...]

    @property
    def skipped(self) -> tuple[Problem, ...]:
        """The problems that kept a file out of the feeds."""
        return tuple(p for p in self.problems if p.severity == "error")


def is_candidate(name: str) -> bool:
    """Whether a file name can be an article: not hidden, not an editor's leftover."""
    return not (name.startswith((".", "#")) or name.endswith(_LEFTOVER_SUFFIXES))


def article_paths(root: Path) -> list[Path]:
    """Every candidate file below `root`, hidden folders left out, in a stable order."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder, f) for f in sorted(files) if is_candidate(f))
    return [p for p in found if p.is_file()]


def split_front_matter(text: str, path: str) -> tuple[str, int]:
    """Return the YAML between the opening and closing `---` lines, and its first line number."""
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        raise ArticleError(path, "no front matter: the first line must be '---'", line=1)
    for number, line in enumerate(lines[1:], start=2):
        if line.rstrip() == "---":
            return "\n".join(lines[1 : number - 1]), 2
    raise ArticleError(path, "front matter is not closed: add a '---' line after the last field", line=1)


def decode(data: bytes, path: str) -> str:
    """Decode UTF-8 (a BOM is allowed) and fold CRLF/CR line ends to LF."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(path, f"not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_yaml(source: str, path: str, first_line: int) -> dict:
    """Parse the front matter with the safe loader; the root must be a mapping."""
    try:
        data = yaml.load(source, Loader=SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + first_line if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ArticleError(path, f"invalid YAML: {reason}", line=line) from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for values it cannot build: "2021-02-30", "!!int abc".
        raise ArticleError(path, f"invalid YAML value: {exc}; quote the value or correct it") from None
    if not isinstance(data, dict):
        raise ArticleError(path, "front matter must be a mapping of fields (title: ..., webUrl: ...)")
    return data


def load_bytes(data: bytes, path: str) -> tuple[Article, list[Problem]]:
    """Turn one file's bytes into (Article, warnings); raise ArticleError when unusable."""
    source, first_line = split_front_matter(decode(data, path), path)
    warnings = Warnings(path)
    return parse_article(parse_yaml(source, path, first_line), path, warnings), warnings.problems


def load_file(path: Path, root: Path) -> tuple[Article, list[Problem]]:
    """Load one file, named relative to `root` in every message."""
    name = path.relative_to(root).as_posix()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArticleError(name, f"cannot be read ({exc.strerror})") from None
    return load_bytes(data, name)


@dataclass(frozen=True)
class Stamp:
    """What identifies one version of a file without reading it."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FileState:
    """One file as last loaded: its stamp, its last good article, its current problems."""

    stamp: Stamp
    article: Article | None
    problems: tuple[Problem, ...]
    stale: bool = False  # its current bytes are broken; `article` is the last good version


@dataclass(frozen=True)
class Scan:
    """A folder's candidate files with their stamps, and the newest mtime in the tree."""

    files: dict[str, Stamp]
    newest_mtime_ns: int


def scan(root: Path) -> Scan:
    """Stat every candidate file below `root` (names relative to it); read nothing."""
    if not root.is_dir():
        raise FeedsvcError(f"seeds folder {root} does not exist: create it or set FEEDSVC_SEEDS_DIR")
    files: dict[str, Stamp] = {}
    # A folder's mtime moves when a file in it is added, removed or renamed (POSIX).
    newest = root.stat().st_mtime_ns
    for path in article_paths(root):
        try:
            info = path.stat()
        except OSError:
            continue  # removed between listing and stat: it is simply gone
        files[path.relative_to(root).as_posix()] = Stamp(info.st_size, info.st_mtime_ns)
        newest = max(newest, info.st_mtime_ns, path.parent.stat().st_mtime_ns)
    return Scan(files, newest)


def load_state(root: Path, name: str, stamp: Stamp, previous: FileState | None) -> FileState:
    """Parse one file; when an edit broke it, keep serving its last good version (stale)."""
    try:
        article, warnings = load_file(root / name, root)
        return FileState(stamp, article, tuple(warnings))
    except ArticleError as exc:
        problem = Problem(exc.path, exc.reason, "error", exc.line)
        if previous is not None and previous.article is not None:
            log.warning("stale %s (serving its last good version until it is fixed or removed)", exc)
            return FileState(stamp, previous.article, (problem,), stale=True)
        log.warning("skipped %s", exc)
        return FileState(stamp, None, (problem,))


def refresh(root: Path, previous: dict[str, FileState], found: Scan) -> dict[str, FileState]:
    """The new state of every file in `found`, parsing only those whose stamp changed."""
    states = {}
    for name, stamp in found.files.items():
        old = previous.get(name)
        states[name] = old if old is not None and old.stamp == stamp else load_state(root, name, stamp, old)
    return states


def result_of(states: dict[str, FileState]) -> LoadResult:
    """The articles and problems of a set of file states."""
    articles = tuple(s.article for s in states.values() if s.article is not None)
    problems = tuple(p for s in states.values() for p in s.problems)
    return LoadResult(articles, problems)


def load_folder(root: Path | str) -> LoadResult:
    """Load every article below `root`; report, never raise, what is wrong with a file."""
    root = Path(root)
    return result_of(refresh(root, {}, scan(root)))
