"""A folder's article files as file states: each file's stamp, its last good Article and its
problems, parsing only the files whose stamp changed. One broken file never stops the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, compress
from operator import attrgetter
from pathlib import Path

from feedsvc.content.fields import Limits
from feedsvc.content.files import load_named
from feedsvc.content.model import Article, Problem
from feedsvc.errors import ArticleError
from feedsvc.runtime.scan import Scan, Stamp, scan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    """Everything one pass over a folder gave: the good articles and every problem."""

    articles: tuple[Article, ...]
    problems: tuple[Problem, ...]

    @property
    def skipped(self) -> tuple[Problem, ...]:
        """The problems that kept a file out of the feeds."""
        return tuple(p for p in self.problems if p.severity == "error")


@dataclass(frozen=True)
class FileState:
    """One file as last loaded: its stamp, its last good article, its current problems."""

    stamp: Stamp
    article: Article | None
    problems: tuple[Problem, ...]
    stale: bool = False  # its current bytes are broken; `article` is the last good version


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
    parsed = dict(parse_states(root, [(name, found.files[name], previous.get(name)) for name in changed], limits))
    if names is None:
        return {name: parsed.get(name) or previous[name] for name in found.files}
    removed = previous.keys() - found.files.keys()
    if not parsed and not removed:
        # Nothing changed: the same dict, untouched. A copy would write every state's refcount,
        # and in a forked worker each write copies a page the master shares (most of the catalog).
        return previous
    states = dict(previous)
    for name in removed:
        del states[name]
    added = parsed.keys() - previous.keys()
    states.update(parsed)
    return dict(sorted(states.items())) if added else states  # in name order, as scan() gives them


def parse_states(root: Path, jobs: list[tuple], limits: Limits) -> list[tuple[str, FileState]]:
    """Parse (name, stamp, previous state) jobs in this process. One process: with yaml-rs a file
    costs ~0.2 ms, and forking parsers to share the work made a 10,000-file load slower (2.9 s
    against 2.2 s: pickling every result back costs what the second core saves; BENCHMARKS.md)."""
    return [(name, load_state(root, name, stamp, old, limits)) for name, stamp, old in jobs]


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
