"""Read article files (YAML front matter between `---` lines) into validated Articles.

Pure core: no Flask, no feedgen. Every problem becomes a `Problem`; one broken file never
stops the others loading.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import ArticleError, FeedsvcError
from .fields import Limits, Warnings, parse_article
from .model import Article, Problem
from .text import prepare_for_yaml

log = logging.getLogger(__name__)

# PyYAML's libyaml binding is ten times faster than the pure-Python parser; both are "safe"
# (they construct only plain scalars, lists and mappings, never Python objects).
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Editors' swap, backup and lock files (vim, emacs) sit beside the articles while they are edited.
# A real article has a few hundred values; far more means a pathological or hostile file.
MAX_NODES = 20_000
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
    return prepare_for_yaml(text.replace("\r\n", "\n").replace("\r", "\n"))


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
    if expanded_size(data, MAX_NODES) > MAX_NODES:
        raise ArticleError(path, f"front matter expands to over {MAX_NODES} values (YAML aliases?): simplify it")
    return data


def expanded_size(data: object, limit: int) -> int:
    """How many values `data` holds once aliases are expanded, counting no further than `limit`.

    libyaml shares an aliased node instead of copying it, so a "billion laughs" document is
    small in memory, but anything that walks it (or repr()s it) would take exponential time.
    """
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_bytes(data: bytes, path: str, limits: Limits = Limits()) -> tuple[Article, list[Problem]]:
    """Turn one file's bytes into (Article, warnings); raise ArticleError when unusable."""
    source, first_line = split_front_matter(decode(data, path), path)
    warnings = Warnings(path, limits)
    fields = parse_yaml(source, path, first_line)
    try:
        return parse_article(fields, path, warnings), warnings.problems
    except ArticleError as exc:
        if exc.line is None and exc.field:
            exc.line = line_of_key(source, exc.field, first_line)
        raise


def line_of_key(source: str, key: str, first_line: int) -> int | None:
    """The file line of a top-level `key:` in the front matter, for `PATH:LINE` messages."""
    match = re.search(rf"^{re.escape(key)}\s*:", source, re.MULTILINE)
    return source.count("\n", 0, match.start()) + first_line if match else None


def load_file(path: Path, root: Path, limits: Limits = Limits()) -> tuple[Article, list[Problem]]:
    """Load one file, named relative to `root` in every message; refuse one over the size limit."""
    name = path.relative_to(root).as_posix()
    try:
        with path.open("rb") as stream:
            data = stream.read(limits.file_bytes + 1)
    except OSError as exc:
        raise ArticleError(name, f"cannot be read ({exc.strerror})") from None
    if len(data) > limits.file_bytes:
        raise ArticleError(name, f"file is over the size limit of {limits.file_bytes} bytes (MAX_FILE_BYTES): split or trim it")
    return load_bytes(data, name, limits)


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


def load_state(root: Path, name: str, stamp: Stamp, previous: FileState | None, limits: Limits) -> FileState:
    """Parse one file; when an edit broke it, keep serving its last good version (stale)."""
    try:
        article, warnings = load_file(root / name, root, limits)
        return FileState(stamp, article, tuple(warnings))
    except ArticleError as exc:
        problem = Problem(exc.path, exc.reason, "error", exc.line)
        if previous is not None and previous.article is not None:
            log.warning("stale %s (serving its last good version until it is fixed or removed)", exc)
            return FileState(stamp, previous.article, (problem,), stale=True)
        log.warning("skipped %s", exc)
        return FileState(stamp, None, (problem,))


def refresh(root: Path, previous: dict[str, FileState], found: Scan, limits: Limits = Limits()) -> dict[str, FileState]:
    """The new state of every file in `found`, parsing only those whose stamp changed."""
    states = {}
    for name, stamp in found.files.items():
        old = previous.get(name)
        states[name] = old if old is not None and old.stamp == stamp else load_state(root, name, stamp, old, limits)
    return states


def result_of(states: dict[str, FileState]) -> LoadResult:
    """The articles and problems of a set of file states."""
    articles = tuple(s.article for s in states.values() if s.article is not None)
    problems = tuple(p for s in states.values() for p in s.problems)
    return LoadResult(articles, problems)


def load_folder(root: Path | str, limits: Limits = Limits()) -> LoadResult:
    """Load every article below `root`; report, never raise, what is wrong with a file."""
    root = Path(root)
    return result_of(refresh(root, {}, scan(root), limits))
