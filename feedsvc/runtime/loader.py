"""A folder's article files as file states: each file's stamp, its last good Article and its
problems, parsing only the files whose stamp changed. One broken file never stops the others.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from itertools import chain, compress
from operator import attrgetter
from pathlib import Path

from feedsvc.content.fields import Limits
from feedsvc.content.files import load_named
from feedsvc.content.model import Article, Problem
from feedsvc.errors import ArticleError
from feedsvc.runtime.scan import Scan, Stamp, scan

log = logging.getLogger(__name__)
# A cold load of this many files or more is parsed on every core (a worker costs ~10 ms to fork),
# in batches of PARALLEL_BATCH (~25 ms of work each).
PARALLEL_MIN_FILES = 500
PARALLEL_BATCH = 250


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

    def __reduce__(self) -> tuple:
        """Unpickled by calling the class (see feedsvc.content.model.Image.__reduce__)."""
        return FileState, (self.stamp, self.article, self.problems, self.stale)


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
    """Parse (name, stamp, previous state) jobs, in order: on every core when there are enough of
    them (a cold start), else in this process."""
    cores = usable_cores()
    if len(jobs) >= PARALLEL_MIN_FILES and cores > 1 and hasattr(os, "fork") and threading.active_count() == 1:
        try:
            return parse_on_every_core(root, jobs, limits, cores)
        except (OSError, BrokenProcessPool) as exc:  # no process to be had, or it died: this one does it all
            log.warning("parsing in %d processes failed (%s); parsing in this one", cores, exc)
    return _parse_batch(root, limits, jobs)


def parse_on_every_core(root: Path, jobs: list[tuple], limits: Limits, cores: int) -> list[tuple[str, FileState]]:
    """The first (cores - 1)/cores of the jobs parsed by forked workers (the standard library's
    process pool), the rest here meanwhile. 10,000 files on 2 cores: 1.31 s against 1.84 s in one
    process (BENCHMARKS.md); the results come back pickled (Provider and Related shared again).
    Only where nothing else runs: a lock another thread holds would stay locked in the child."""
    batches = [jobs[i : i + PARALLEL_BATCH] for i in range(0, len(jobs), PARALLEL_BATCH)]
    theirs = len(batches) * (cores - 1) // cores
    parse = partial(_parse_batch, root, limits)
    with ProcessPoolExecutor(cores - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(parse, batch) for batch in batches[:theirs]]
        mine = [parse(batch) for batch in batches[theirs:]]
        return [state for part in [f.result() for f in futures] + mine for state in part]


def _parse_batch(root: Path, limits: Limits, jobs: list[tuple]) -> list[tuple[str, FileState]]:
    """One batch of jobs parsed in this process (a pool worker's task)."""
    return [(name, load_state(root, name, stamp, old, limits)) for name, stamp, old in jobs]


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's core count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def result_of(states: dict[str, FileState]) -> LoadResult:
    """The articles and problems of a set of file states (map/filter: this runs on every reload)."""
    values = states.values()
    articles = tuple(filter(None, map(attrgetter("article"), values)))
    problems = tuple(chain.from_iterable(map(attrgetter("problems"), values)))
    return LoadResult(articles, problems)


def stale_names(states: dict[str, FileState]) -> tuple[str, ...]:
    """The files whose last good version is served while their current one is broken."""
    return tuple(sorted(compress(states.keys(), map(attrgetter("stale"), states.values()))))


def unlisted_problems(unreadable: dict[str, str]) -> tuple[Problem, ...]:
    """One problem for each folder that could not be listed (name -> why)."""
    fix = "its files are not read; give the service read and search (r-x) permission on it"
    return tuple(Problem(folder, f"folder cannot be listed ({why}): {fix}") for folder, why in unreadable.items())


def load_folder(root: Path | str, limits: Limits = Limits()) -> LoadResult:
    """Load every article below `root`; report, never raise, what is wrong with a file or a folder."""
    root = Path(root)
    found = scan(root)
    result = result_of(refresh(root, {}, found, limits))
    return (
        LoadResult(result.articles, result.problems + unlisted_problems(found.unreadable))
        if found.unreadable
        else result
    )
