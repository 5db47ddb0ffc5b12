"""The build manifest: what the last `feedsvc build` of an output folder was made from, so that a
build whose inputs all equal it exits after the stat scan, loading no renderer and no web stack.

The inputs are the source files' stamps (the scan the parse cache is keyed by: name, size,
mtime), every setting, the `--strict` flag, and the code: each file of the feedsvc package
(templates included) by inode, size and mtime, the Python version, and the names in every
site-packages folder on `sys.path` (a package installed, upgraded or removed changes its
`NAME-VERSION.dist-info` there). The
output tree is part of it too (each file's inode, size and mtime): a tree edited, removed or
swapped since is built again. The manifest lives in the cache folder, not in the published
tree (it names the settings' digest, and a static host would serve it).

A manifest that matches means the tree is byte for byte what the build would write: a build is
a function of these inputs (nothing in a feed depends on the clock; Last-Modified is the files'
newest mtime). A file rewritten with the same size and mtime (`cp -p`, `rsync -t`) is not seen,
exactly as the parse cache does not see it; `touch` it, or delete the manifest, to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from feedsvc.runtime.scan import Scan

FORMAT = 1  # bump when what a manifest holds changes
PACKAGE = Path(__file__).resolve().parent


def manifest_file(cache_dir: Path, outdir: Path) -> Path:
    """The manifest of one output folder."""
    digest = hashlib.sha256(str(outdir.absolute()).encode()).hexdigest()[:20]
    return cache_dir / f"build-{digest}.json"


def environment_digest(settings: Mapping[str, Any], strict: bool, code_root: Path = PACKAGE) -> str:
    """A digest of what a build's bytes depend on besides the source files: every setting, the
    `--strict` flag, the code and the installed packages (see the module's docstring)."""
    digest = hashlib.sha256()
    seeds = str(Path(settings["SEEDS_DIR"]).resolve())
    head = {"format": FORMAT, "python": sys.version, "prefix": sys.prefix, "strict": strict, "seeds": seeds,
            "settings": settings, "packages": installed(sys.path)}  # fmt: skip
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    digest.update(repr(sorted(tree_stamps(code_root, skip="__pycache__").items())).encode())
    return digest.hexdigest()


def inputs_digest(found: Scan, environment: str) -> str:
    """One digest of everything a build's bytes depend on: the environment's digest and the sources' stamps."""
    digest = hashlib.sha256(environment.encode())
    # A scan's names are sorted and its stamps plain ints: repr is stable, and 10x faster than JSON.
    digest.update(repr((found.files, found.newest_mtime_ns, found.unreadable)).encode())
    return digest.hexdigest()


def installed(paths: list[str]) -> dict[str, list[str]]:
    """The names in each site-packages folder of `paths`: each distribution's `NAME-VERSION.dist-info`
    (PEP 376/627) and the editable installs' finders. Not the folders' mtimes: one of `paths` can be
    the current folder, which a build in it changes."""
    found = {}
    for entry in paths:
        if os.path.basename(entry) in ("site-packages", "dist-packages"):
            try:
                found[entry] = sorted(os.listdir(entry))
            except OSError:
                found[entry] = []
    return found


def tree_stamps(root: Path, skip: str | None = None) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime_ns) of every file and folder below `root`, the root included (name "")."""
    info = os.stat(root)
    stamps = {"": (info.st_ino, info.st_size, info.st_mtime_ns)}
    pending = [(str(root), "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in os.scandir(folder):
            if entry.name == skip:
                continue
            info = entry.stat(follow_symlinks=False)
            stamps[prefix + entry.name] = (info.st_ino, info.st_size, info.st_mtime_ns)
            if entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, f"{prefix}{entry.name}/"))
    return stamps


def tree_digest(outdir: Path) -> str | None:
    """A digest of the output tree as it is on disk; None when there is none."""
    try:
        stamps = tree_stamps(outdir)
    except OSError:
        return None
    return hashlib.sha256(repr(sorted(stamps.items())).encode()).hexdigest()


def unchanged(path: Path, inputs: str, outdir: Path) -> dict[str, int] | None:
    """The last build's counts ("files", "skipped") when `path` says `outdir` was built from
    `inputs` and is untouched since; else None."""
    try:
        recorded = json.loads(path.read_bytes())
        if recorded["inputs"] != inputs or recorded["tree"] != tree_digest(outdir):
            return None
        return {"files": int(recorded["files"]), "skipped": int(recorded["skipped"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: build


def record(path: Path, inputs: str, outdir: Path, files: int, skipped: int) -> None:
    """Write the manifest of the tree just built at `outdir` (atomically, readable by its owner only)."""
    import tempfile  # here: a build that takes the shortcut writes nothing (4 ms of its 80 to import)

    tree = tree_digest(outdir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".build-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump({"format": FORMAT, "inputs": inputs, "tree": tree, "files": files, "skipped": skipped}, stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
