"""Read article files (YAML front matter between `---` lines) into validated Articles.

Pure core: no Flask, no feedgen. Every problem becomes a `Problem`; one broken file never
stops the others loading.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, compress
from operator import attrgetter
from pathlib import Path
from stat import S_ISDIR
from typing import NamedTuple

import yaml

from .errors import ArticleError, FeedsvcError
from .fields import Limits, Warnings, parse_article
from .model import Article, Problem
from .parallel import map_batches
from .text import prepare_for_yaml
from .yamlsubset import UnsafeYaml, load_subset

log = logging.getLogger(__name__)

# Files per batch handed out to the parsing processes (about 30 ms of work each), and how many
# files it takes to pay for starting them (a fork is ~10 ms; fewer are parsed in this process).
PARALLEL_BATCH = 100
PARALLEL_MIN_FILES = 500
# A real article has a few hundred values; far more means a pathological or hostile file.
MAX_NODES = 20_000
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


def split_front_matter(text: str, path: str) -> tuple[str, int]:
    """Return the YAML between the opening and closing `---` lines, and its first line number."""
    first_end = text.find("\n")
    if (text if first_end < 0 else text[:first_end]).rstrip() != "---":
        raise ArticleError(path, "no front matter: the first line must be '---'", line=1)
    at = first_end
    while at >= 0:  # each line that starts with "---" (str.find: no split of the whole file)
        at = text.find("\n---", at)
        if at < 0:
            break
        line_end = text.find("\n", at + 1)
        if text[at + 1 : None if line_end < 0 else line_end].rstrip() == "---":
            return text[first_end + 1 : max(at, first_end + 1)], 2
        at += 1
    raise ArticleError(path, "front matter is not closed: add a '---' line after the last field", line=1)


def decode(data: bytes, path: str) -> str:
    """Decode UTF-8 (a BOM is allowed) and fold CRLF/CR line ends to LF."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(path, f"not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return prepare_for_yaml(text)


_IMAGE = {"url": None, "width": None, "height": None}
_PROVIDER = {"name": None, "domain": None}
_LINK = {"title": None, "excerpt": None, "publishedDateTime": None, "webUrl": None, "provider": _PROVIDER, "images": _IMAGE}
# The front-matter keys feedsvc reads; everything else (`secured` first) is never built.
ARTICLE_SPEC = {**_LINK, "topics": None, "published": None, "related": _LINK}


def parse_yaml(source: str, path: str, first_line: int) -> dict:
    """Parse the front matter with the safe loader; the root must be a mapping."""
    try:
        data = load_subset(source, ARTICLE_SPEC, MAX_NODES)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + first_line if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ArticleError(path, f"invalid YAML: {reason}", line=line) from None
    except UnsafeYaml as exc:
        raise ArticleError(path, str(exc), line=None if exc.line is None else exc.line + first_line) from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for values it cannot build: "2021-02-30", "!!int abc".
        raise ArticleError(path, f"invalid YAML value: {exc}; quote the value or correct it") from None
    if not isinstance(data, dict):
        raise ArticleError(path, "front matter must be a mapping of fields (title: ..., webUrl: ...)")
    return data


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
    """The file line of a top-level `key:` in the front matter, for `PATH:LINE` messages (the
    last one when the key is repeated: that is the value YAML keeps)."""
    matches = list(re.finditer(rf"^{re.escape(key)}\s*:", source, re.MULTILINE))
    return source.count("\n", 0, matches[-1].start()) + first_line if matches else None


class NotRegularFile(OSError):
    """A path that is a FIFO, a socket or a device where an article file was expected."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind}, not a regular file")
        self.kind = kind


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = [(stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")]  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "special file")


def read_at_most(filename: str, limit: int) -> bytes:
    """The file's bytes, or its first `limit` + 1 (enough to tell it is too large); NotRegularFile
    for a FIFO, socket or device.

    Opened with O_NONBLOCK: opening a FIFO for reading blocks until a writer opens it (fifo(7)),
    and a path swapped to a FIFO after the scan held the reload thread in open() for ever. With
    the flag open() returns at once, and fstat() of the descriptor (not a stat() of the path
    before it, which would race with the swap) tells what was opened. open(2): O_NONBLOCK "has
    no effect for regular files and block devices", so regular files read as before.
    The first read asks for the size fstat gives (plus one byte, to see the end): one read of
    limit + 1 bytes, as io does, has the allocator map and free a megabyte for each file."""
    fd = os.open(filename, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(kind_of(info.st_mode))
        want = min(info.st_size, limit) + 1
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, want)):
            chunks.append(chunk)
            size += len(chunk)
            want = min(READ_CHUNK, limit + 1 - size)  # the file grew since: read on to its end
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


READ_CHUNK = 65536


def special_kind(filename: str) -> str | None:
    """What `filename` is when it is there and not a regular file, else None."""
    try:
        mode = os.stat(filename).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else kind_of(mode)


def load_named(filename: str, name: str, limits: Limits) -> tuple[Article, list[Problem]]:
    """Load the file at `filename`, called `name` in every message."""
    try:
        data = read_at_most(filename, limits.file_bytes)
    except OSError as exc:
        # A socket cannot even be opened (ENXIO): it is named for what it is, as a FIFO or a device is.
        kind = exc.kind if isinstance(exc, NotRegularFile) else special_kind(filename)
        reason = f"is a {kind}, not a regular file: remove it, or put the article in a regular file" if kind else None
        raise ArticleError(name, reason or f"cannot be read ({exc.strerror})") from None
    if len(data) > limits.file_bytes:
        raise ArticleError(name, f"file is over the size limit of {limits.file_bytes} bytes (MAX_FILE_BYTES): split or trim it")
    return load_bytes(data, name, limits)


class Stamp(NamedTuple):
    """What identifies one version of a file without reading it (a tuple: 10,000 of them are
    made and compared on every reload, and tuples do both in C)."""

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
    """A folder's candidate files with their stamps, the newest mtime in the tree, and the folders
    that could not be listed (name, "." for the root -> why), whose files are not in `files`."""

    files: dict[str, Stamp]
    newest_mtime_ns: int
    unreadable: dict[str, str] = field(default_factory=dict)


def scan(root: Path) -> Scan:
    """Stat every candidate file below `root` (names relative to it, hidden folders left out); read nothing."""
    if not root.is_dir():
        raise FeedsvcError(f"seeds folder {root} does not exist: create it or set FEEDSVC_SEEDS_DIR")
    files: dict[str, Stamp] = {}
    unreadable: dict[str, str] = {}
    newest, pending = 0, [(str(root), "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            # A folder's mtime moves when a file in it is added, removed or renamed (POSIX).
            newest = max(newest, os.stat(folder).st_mtime_ns)
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while we looked: it is simply gone
        except OSError as exc:  # no permission, an I/O error: its files are unknown, not gone
            unreadable[prefix.rstrip("/") or "."] = exc.strerror or str(exc)
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, f"{prefix}{name}/"))
            elif is_candidate(name):
                try:  # a link counts as what it points to (a link to a folder is not followed)
                    info = entry.stat()
                except FileNotFoundError:
                    continue  # removed since the listing, or a dangling link
                except OSError as exc:  # a folder without search (x) permission lists names only
                    unreadable[prefix.rstrip("/") or "."] = exc.strerror or str(exc)
                    continue
                # Not only regular files: a FIFO, socket or device where an article should be is
                # reported as skipped when it is loaded (read_at_most refuses it), not left out unsaid.
                if not S_ISDIR(info.st_mode):
                    files[prefix + name] = _new_stamp(Stamp, (info.st_size, info.st_mtime_ns))
    newest = max(newest, max((stamp.mtime_ns for stamp in files.values()), default=0))
    return Scan(dict(sorted(files.items())), newest, unreadable)


def with_unlisted(found: Scan, known: dict[str, FileState]) -> Scan:
    """`found` plus the `known` files below the folders it could not list, with their known
    stamps: their last states are kept (served as before) until the folder can be listed again,
    rather than dropped as if deleted."""
    if not found.unreadable:
        return found
    prefixes = tuple("" if folder == "." else folder + "/" for folder in found.unreadable)
    kept = {name: state.stamp for name, state in known.items() if name.startswith(prefixes) and name not in found.files}
    if not kept:
        return found
    return Scan(dict(sorted({**found.files, **kept}.items())), found.newest_mtime_ns, found.unreadable)


# Stamp(size, mtime) through tuple.__new__, as namedtuple's _make does: a scan makes one per file,
# and the generated __new__ is Python code.
_new_stamp = tuple.__new__


def rescan(root: Path, previous: Scan, touched: Iterable[str]) -> Scan | None:
    """`previous` brought up to date for the `touched` paths only (file events named them), or
    None when a folder was among them (a full `scan` is then needed)."""
    files, newest = dict(previous.files), previous.newest_mtime_ns
    for path in touched:
        name = name_in(root, path)
        if name in (".", "..") or name.startswith("../"):
            return None  # the folder itself moved or vanished
        if not looked_at_by_scan(root, name):
            continue
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                return None
            info: os.stat_result | None = os.stat(path)  # a link to a file counts as the file, as in scan()
        except FileNotFoundError:
            if name not in files and any(known.startswith(name + "/") for known in files):
                return None  # a removed folder of known files
            info = None
        except OSError:
            return None
        newest = max(newest, _folder_mtime(os.path.dirname(path)))
        if info is not None and not S_ISDIR(info.st_mode) and is_candidate(os.path.basename(name)):
            files[name] = Stamp(info.st_size, info.st_mtime_ns)
            newest = max(newest, info.st_mtime_ns)
        else:
            files.pop(name, None)
    ordered = files if files.keys() == previous.files.keys() else dict(sorted(files.items()))
    return Scan(ordered, newest, previous.unreadable)  # a change of a folder's mode is an event on the folder


def name_in(root: Path, path: str) -> str:
    """A path's name below `root`, its parts joined by "/", as scan() names files."""
    return os.path.relpath(path, root).replace(os.sep, "/")


def looked_at_by_scan(root: Path, name: str) -> bool:
    """Whether scan() would look at `name`: no hidden part, and no link to a folder on the way
    (scan() does not follow them; file events do)."""
    parts = name.split("/")
    if any(part.startswith(".") for part in parts):
        return False
    folder = str(root)
    for part in parts[:-1]:
        folder = os.path.join(folder, part)
        if os.path.islink(folder):
            return False
    return True


def _folder_mtime(folder: str) -> int:
    """A folder's mtime (it moves when a file in it is added, removed or renamed), 0 if gone."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return 0


def load_state(root: Path, name: str, stamp: Stamp, previous: FileState | None, limits: Limits) -> FileState:
    """Parse one file; when an edit broke it, keep serving its last good version (stale)."""
    try:
        article, warnings = load_named(os.path.join(root, name), name, limits)
        return FileState(stamp, article, tuple(warnings))
    except ArticleError as exc:
        problem = Problem(exc.path, exc.reason, "error", exc.line)
        if previous is not None and previous.article is not None:
            state = FileState(stamp, previous.article, (problem,), stale=True)
        else:
            state = FileState(stamp, None, (problem,))
        log_unusable(state)
        return state


def log_unusable(state: FileState) -> None:
    """Log why a file is skipped, or served stale, as `PATH[:LINE]: reason` (a warm start that
    takes the state from the parse cache logs the same line as the parse that made it)."""
    for problem in state.problems:
        if problem.severity == "error":
            where = f"{problem.path}:{problem.line}" if problem.line else problem.path
            if state.stale:
                log.warning("stale %s: %s (serving its last good version until it is fixed or removed)",
                            where, problem.message)  # fmt: skip
            else:
                log.warning("skipped %s: %s", where, problem.message)


def refresh(
    root: Path,
    previous: dict[str, FileState],
    found: Scan,
    limits: Limits = Limits(),
    names: Iterable[str] | None = None,
) -> dict[str, FileState]:
    """The new state of every file in `found`, parsing only those whose stamp changed; only the
    `names` given are looked at, when the caller knows which files can have changed."""
    candidates = found.files if names is None else [name for name in names if name in found.files]
    changed = [name for name in candidates if getattr(previous.get(name), "stamp", None) != found.files[name]]
    parsed = dict(parse_many(root, [(name, found.files[name], previous.get(name)) for name in changed], limits))
    if names is None:
        return {name: parsed.get(name) or previous[name] for name in found.files}
    states = dict(previous)
    for name in previous.keys() - found.files.keys():
        del states[name]
    added = parsed.keys() - previous.keys()
    states.update(parsed)
    return dict(sorted(states.items())) if added else states  # in name order, as scan() gives them


def parse_states(root: Path, jobs: list[tuple], limits: Limits) -> list[tuple[str, FileState]]:
    """Parse a batch of (name, stamp, previous state) jobs in this process."""
    return [(name, load_state(root, name, stamp, old, limits)) for name, stamp, old in jobs]


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's core count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_many(root: Path, jobs: list[tuple], limits: Limits) -> list[tuple[str, FileState]]:
    """Parse many files on every core, this process included, when there are enough to pay for
    the worker processes."""
    cores = usable_cores()
    if cores < 2 or len(jobs) < PARALLEL_MIN_FILES:
        return parse_states(root, jobs, limits)
    batches = [jobs[i : i + PARALLEL_BATCH] for i in range(0, len(jobs), PARALLEL_BATCH)]
    parsed = map_batches(partial(parse_states, root, limits=limits), batches, children=cores - 1)
    return list(chain.from_iterable(parsed))


def result_of(states: dict[str, FileState]) -> LoadResult:
    """The articles and problems of a set of file states (map/filter: this runs on every reload)."""
    values = states.values()
    articles = tuple(filter(None, map(attrgetter("article"), values)))
    problems = tuple(chain.from_iterable(map(attrgetter("problems"), values)))
    return LoadResult(articles, problems)


def stale_names(states: dict[str, FileState]) -> tuple[str, ...]:
    """The files whose last good version is served while their current one is broken."""
    return tuple(sorted(compress(states.keys(), map(attrgetter("stale"), states.values()))))


def unlisted_problems(found: Scan) -> tuple[Problem, ...]:
    """One problem for each folder `found` could not list."""
    fix = "its files are not read; give the service read and search (r-x) permission on it"
    return tuple(Problem(folder, f"folder cannot be listed ({why}): {fix}") for folder, why in found.unreadable.items())


def load_folder(root: Path | str, limits: Limits = Limits()) -> LoadResult:
    """Load every article below `root`; report, never raise, what is wrong with a file or a folder."""
    root = Path(root)
    found = scan(root)
    result = result_of(refresh(root, {}, found, limits))
    return LoadResult(result.articles, result.problems + unlisted_problems(found)) if found.unreadable else result
