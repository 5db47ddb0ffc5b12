"""Which article files a folder holds, with the stamp (size, mtime) of each: a full scan, or the
last scan brought up to date for the paths file events named. Reads no file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from stat import S_ISDIR
from typing import NamedTuple

from feedsvc.errors import FeedsvcError

# Editors' swap, backup and lock files (vim, emacs) sit beside the articles while they are edited.
_LEFTOVER_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig")


def is_candidate(name: str) -> bool:
    """Whether a file name can be an article: not hidden, not an editor's leftover."""
    return not (name.startswith((".", "#")) or name.endswith(_LEFTOVER_SUFFIXES))


class Stamp(NamedTuple):
    """What identifies one version of a file without reading it (a tuple: 10,000 of them are
    made and compared on every reload, and tuples do both in C)."""

    size: int
    mtime_ns: int


class Scan(NamedTuple):
    """A folder's candidate files with their stamps, the newest mtime in the tree, and the folders
    that could not be listed (name, "." for the root -> why), whose files are not in `files`.
    A named tuple, as Stamp: `feedsvc build` over unchanged files reads one and imports no
    dataclasses (7 ms of its ~65, `python -X importtime`)."""

    files: dict[str, Stamp]
    newest_mtime_ns: int
    unreadable: dict[str, str]


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
