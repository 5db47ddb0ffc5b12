"""`feedsvc build`: write every public route as files, for a static host or an object store.

The files are the bytes the server answers for the same configuration (they are made by the
app itself, through its test client), every page of every feed and digest included: a page
lives at a path (/page/N/rss.xml, Site.feed_path), so the RFC 5005 paging links in the files
resolve on a static host too. The build is atomic (a complete new tree is swapped in)
and incremental (a file whose bytes did not change is carried over, hard-linked, with its
mtime, so `rsync`/`aws s3 sync` upload only what changed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import filecmp
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from feedsvc.errors import BuildRefused
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query, parse_query
from feedsvc.feeds.render import feed_entries
from feedsvc.feeds.site import FILE_NAMES, STYLESHEET_PATH, Site
from feedsvc.runtime.loader import usable_cores

log = logging.getLogger(__name__)
SITE_FILES = ("/", "/feeds.opml", STYLESHEET_PATH)
# A build of this many routes or more renders on every core (forking a worker costs ~10 ms; a route ~5 ms).
PARALLEL_MIN_PATHS = 200
_forked_app = None  # the app a forked worker renders with (set only while the pool runs)


@dataclass(frozen=True)
class BuildReport:
    """What a build did; `files` names a file of the tree for each body's entity tag (feedsvc.keptrenders)."""

    written: int
    unchanged: int
    skipped_sources: int
    files: dict[str, str] = field(default_factory=dict)


def public_paths(catalog: Catalog, query: Query) -> list[str]:
    """Every public route: the index, the OPML, the stylesheet, and every page of each topic page,
    feed and digest, site-wide and per topic, as many pages as `query` (the default flags) makes."""
    paths = list(SITE_FILES)
    for slug in [None, *(t.slug for t in catalog.topics(include_all=False))]:
        pages = feed_entries(catalog, slug, query)[1]
        paths += [Site.feed_path(slug, kind, page) for kind in ("html", *FILE_NAMES) for page in range(1, pages + 1)]
    return paths


def file_name(path: str) -> str:
    """Where a route's bytes go in the output tree: a page's path "/x/" as "x/index.html", as static hosts serve it."""
    return path.lstrip("/") + ("index.html" if path.endswith("/") else "")


def build(app, outdir: Path, strict: bool = False) -> BuildReport:
    """Render every public route of `app` into `outdir`, atomically; with `strict`, refuse on content errors."""
    catalog = app.extensions["feedsvc"].catalog
    if strict and catalog.skipped:
        raise BuildRefused(f"{len(catalog.skipped)} file(s) have errors; the old tree is kept (run feedsvc check)")
    outdir = outdir.absolute()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.new-", dir=outdir.parent))
    try:
        written, unchanged, files = fill(app, catalog, staging, outdir)
        swap_in(staging, outdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildReport(written, unchanged, len(catalog.skipped), files)


# What writing routes tells: files written, files carried over, and the file of each entity tag.
Filled = tuple[int, int, dict[str, str]]


def fill(app, catalog: Catalog, staging: Path, previous: Path) -> Filled:
    """Write each route's bytes under `staging`, hard-linking files `previous` already has byte for
    byte: on every core when there are enough routes, else in this process."""
    query = parse_query({}, app.config["DEFAULT_LIMIT"], app.config["MAX_LIMIT"])  # what a URL without flags gets
    paths = public_paths(catalog, query)
    cores = usable_cores()
    if len(paths) >= PARALLEL_MIN_PATHS and cores > 1 and hasattr(os, "fork"):
        app.extensions["feedsvc"].flush()  # the parse cache's writer: a lock a thread holds stays locked in a child
        if threading.active_count() == 1:
            try:
                return fill_on_every_core(app, paths, staging, previous, cores)
            except (OSError, BrokenProcessPool) as exc:  # no process to be had, or it died: this one does it all
                log.warning("building in %d processes failed (%s); building in this one", cores, exc)
                shutil.rmtree(staging)  # a half-filled tree: start again from nothing
                staging.mkdir()
    return fill_paths(app, paths, staging, previous)


def fill_on_every_core(app, paths: list[str], staging: Path, previous: Path, cores: int) -> Filled:
    """Every `cores`-th route written by each forked worker (the standard library's process pool),
    the rest here meanwhile. The bodies the workers rendered come back pickled into this process's
    render cache, where feedsvc.keptrenders keeps them for the next build.
    Only where nothing else runs: a lock another thread holds would stay locked in the child."""
    global _forked_app
    cache = app.extensions["feedsvc"].cache
    known = frozenset(id(rendered) for _key, _source, rendered in cache.records())
    _forked_app = app
    try:
        with ProcessPoolExecutor(cores - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_fill_in_worker, paths[i::cores], staging, previous, known) for i in range(1, cores)]
            written, unchanged, files = fill_paths(app, paths[0::cores], staging, previous)
            for future in futures:
                (theirs_written, theirs_unchanged, theirs_files), records = future.result()
                written, unchanged = written + theirs_written, unchanged + theirs_unchanged
                files.update(theirs_files)
                cache.preload(records)
    finally:
        _forked_app = None
    return written, unchanged, files


def _fill_in_worker(paths: list[str], staging: Path, previous: Path, known: frozenset[int]) -> tuple[Filled, list]:
    """A pool worker's share: its routes written, and the bodies it rendered that the parent had not."""
    filled = fill_paths(_forked_app, paths, staging, previous)
    records = [record for record in _forked_app.extensions["feedsvc"].cache.records() if id(record[2]) not in known]
    return filled, records


def fill_paths(app, paths: list[str], staging: Path, previous: Path) -> Filled:
    """Write the bytes of `paths` under `staging` through the app's test client; how many written
    and carried over, and the file of each entity tag."""
    client, written, unchanged, files = app.test_client(), 0, 0, {}
    for path in paths:
        response = client.get(path)
        if response.status_code != 200:
            raise BuildRefused(f"{path} answered {response.status_code}, not 200")
        name = file_name(path)
        etag, _weak = response.get_etag()
        if etag:
            files[etag] = name
        target, old = staging / name, previous / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(response.data)
        if old.is_file() and filecmp.cmp(old, target, shallow=False):
            target.unlink()
            os.link(old, target)  # same inode: same mtime, so a sync skips it
            unchanged += 1
        else:
            written += 1
    return written, unchanged, files


def swap_in(staging: Path, outdir: Path) -> None:
    """Make `staging` the tree at `outdir` in one step.

    The tree it replaces is kept (as `.OUTDIR.previous`) until the next build: a reader that is
    walking it right now (rsync, an S3 sync, a web server) still finds every file, instead of an
    emptied folder that `rsync --delete` would mirror.
    """
    staging.chmod(0o755)
    if not outdir.exists():
        staging.rename(outdir)
        return
    previous = outdir.with_name(f".{outdir.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if exchange(staging, outdir):  # Linux renameat2(RENAME_EXCHANGE): no moment without a tree
        staging.rename(previous)
        return
    outdir.rename(previous)
    staging.rename(outdir)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(2); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
