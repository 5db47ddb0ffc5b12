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
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from feedsvc.errors import BuildRefused
from feedsvc.feeds.catalog import Catalog
from feedsvc.feeds.query import Query, parse_query
from feedsvc.feeds.render import feed_entries
from feedsvc.feeds.site import FILE_NAMES, STYLESHEET_PATH, Site

log = logging.getLogger(__name__)
SITE_FILES = ("/", "/feeds.opml", STYLESHEET_PATH)


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    written: int
    unchanged: int
    skipped_sources: int


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
        written, unchanged = fill(app, catalog, staging, outdir)
        swap_in(staging, outdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildReport(written, unchanged, len(catalog.skipped))


def fill(app, catalog: Catalog, staging: Path, previous: Path) -> tuple[int, int]:
    """Write each route's bytes under `staging`, hard-linking files `previous` already has byte for byte."""
    client, written, unchanged = app.test_client(), 0, 0
    query = parse_query({}, app.config["DEFAULT_LIMIT"], app.config["MAX_LIMIT"])  # what a URL without flags gets
    for path in public_paths(catalog, query):
        response = client.get(path)
        if response.status_code != 200:
            raise BuildRefused(f"{path} answered {response.status_code}, not 200")
        name = file_name(path)
        target, old = staging / name, previous / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(response.data)
        if old.is_file() and filecmp.cmp(old, target, shallow=False):
            target.unlink()
            os.link(old, target)  # same inode: same mtime, so a sync skips it
            unchanged += 1
        else:
            written += 1
    return written, unchanged


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
