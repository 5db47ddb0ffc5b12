"""A parse cache, so a restart re-parses only the files that changed since the last run.

One file per seeds folder holds each file's stamp (size, mtime) and what parsing it gave, as
pickles signed with HMAC-SHA256 (RFC 2104) under a key only this user can read (`KEY_NAME` in
the cache folder, mode 0600). The signature is checked over the whole file before anything in
it is unpickled: a cache someone else wrote, or a corrupt one, fails that check and is ignored
(and rebuilt), never trusted, and never runs code (the pickle documentation's advice: "consider
signing data with hmac if you need to ensure that it has not been tampered with"). Pickle, not
JSON: a warm start spent 40% of its time decoding and type-checking JSON; reading signed pickles
takes half as long.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import stat
import struct
import tempfile
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from feedsvc.content.fields import Limits
from feedsvc.content.model import Article, Image, Problem, Provider, Related
from feedsvc.runtime.loader import FileState
from feedsvc.runtime.scan import Stamp

log = logging.getLogger(__name__)
FORMAT = 8  # bump when the parsing rules change (a model change is caught by MODEL): old caches are then ignored
# The classes pickled, by their fields: a cache written for other fields is another format.
MODEL = {cls.__name__: [f.name for f in fields(cls)] for cls in (FileState, Article, Related, Image, Provider, Problem)}
MODEL["Stamp"] = list(Stamp._fields)
KEY_NAME = "parse-key"
KEY_BYTES = 32  # HMAC-SHA256's block is 64 bytes; RFC 2104 section 3: at least the output length
_SIGNATURE = hashlib.sha256().digest_size
_LENGTH = struct.Struct("<Q")  # before each chunk of pickled states: its length


def cache_file(cache_dir: Path, seeds_dir: Path) -> Path:
    """The cache file of one seeds folder."""
    digest = hashlib.sha256(str(seeds_dir.resolve()).encode()).hexdigest()[:20]
    return cache_dir / f"parse-{digest}.bin"


def header(seeds_dir: Path, limits: Limits) -> dict[str, Any]:
    """What a cache must have been written for to be used."""
    return {"format": FORMAT, "seeds": str(seeds_dir.resolve()), "limits": asdict(limits), "model": MODEL}


def signing_key(cache_dir: Path, create: bool = False) -> bytes | None:
    """This user's key for signing caches in `cache_dir` (made, when `create`, if there is none);
    None, with a warning, when the key file is not a regular file of this user's alone."""
    path = cache_dir / KEY_NAME
    if create and not os.path.lexists(path):
        _create_key(path)
    try:  # O_NONBLOCK: a FIFO planted as the key must not hang the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symbolic link, unreadable
        log.warning("parse cache key %s cannot be used (%s): caches are not used; remove it and a new one "
                    "is made", path, exc.strerror)  # fmt: skip
        return None
    try:
        info = os.fstat(fd)
        key = os.read(fd, KEY_BYTES + 1) if stat.S_ISREG(info.st_mode) else b""
    finally:
        os.close(fd)
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077 or len(key) != KEY_BYTES:
        log.warning("parse cache key %s is not this user's alone (type, owner, mode or size): caches are "
                    "not used; remove it and a new one is made", path)  # fmt: skip
        return None
    return key


def _create_key(path: Path) -> None:
    """Write a new random key where none is, atomically: a link of a finished file, so a process
    racing to make one too reads a whole key, whichever wins."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".parse-key-")  # mode 0600
    try:
        try:
            os.write(fd, os.urandom(KEY_BYTES))
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made one first: use theirs
    finally:
        os.unlink(temp)


# A writer's temporary file (save's `.parse-*.tmp`, the key's `.parse-key-*`) older than this is
# one a killed process left. A live writer's is younger: save() writes it without a stop (a pause
# of half a millisecond per chunk, then the rename), so its mtime is never more than milliseconds old.
STALE_TEMP_AGE = 60.0


def remove_stale_temps(cache_dir: Path, max_age: float = STALE_TEMP_AGE) -> int:
    """Remove this user's temporary files that writers killed mid-write left in `cache_dir`, and
    not those a live writer is writing (younger than `max_age` s); how many were removed.

    Were a writer stopped (SIGSTOP) for longer than that, its temporary file goes, and its rename
    then fails: that write is logged and made again later, as any failed cache write is."""
    removed, limit = 0, time.time() - max_age
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return 0  # no cache folder yet: nothing was left in it
    for entry in entries:
        name = entry.name
        if not (name.startswith(".parse-") and (name.endswith(".tmp") or name.startswith(".parse-key-"))):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mtime < limit:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue  # renamed into place, or removed by another process, meanwhile
    if removed:
        log.info("removed %d temporary file(s) that stopped cache writers left in %s", removed, cache_dir)
    return removed


def encode_chunk(items: list[tuple[str, FileState]]) -> bytes:
    """One chunk of (name, state) pairs, pickled."""
    buffer = io.BytesIO()
    pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(items)  # Provider, Related: shared when loaded
    return buffer.getvalue()


def save(
    path: Path,
    seeds_dir: Path,
    limits: Limits,
    states: dict[str, FileState],
    pause: float = 0.0,
    hurry: threading.Event | None = None,
) -> None:
    """Write the cache atomically (a reader sees the old file or the new), readable by its owner only.

    The states are pickled in chunks of PAUSE_EVERY and streamed out (one pickle of the whole
    folder doubled peak memory at 100,000 articles). With `pause`, the writer sleeps that long
    after each chunk, so that on a thread it leaves the interpreter to requests (pickling runs
    in C and holds the GIL; the JSON writer before it, without pauses, held one request 300 ms);
    once `hurry` is set (someone waits for the write) it no longer pauses.
    """
    key = signing_key(path.parent, create=True)
    if key is None:
        return
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".parse-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            signer = hmac.new(key, digestmod=hashlib.sha256)
            for data in _blocks(seeds_dir, limits, states, pause, hurry):
                stream.write(data)
                signer.update(data)
            stream.write(signer.digest())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    path.with_suffix(".json").unlink(missing_ok=True)  # FORMAT 3 and before were JSON


def _blocks(seeds_dir: Path, limits: Limits, states: dict[str, FileState], pause: float,
            hurry: threading.Event | None):  # fmt: skip
    """The header line, then each chunk of states with its length (pausing between chunks until `hurry`)."""
    yield json.dumps(header(seeds_dir, limits)).encode() + b"\n"
    items = list(states.items())
    for start in range(0, len(items), PAUSE_EVERY):
        chunk = encode_chunk(items[start : start + PAUSE_EVERY])
        yield _LENGTH.pack(len(chunk)) + chunk
        if pause and hurry is None:
            time.sleep(pause)
        elif pause:
            hurry.wait(pause)  # at once when set, and then never again


# About half a millisecond of pickling between pauses (10,000 states: 0.12 s in all).
PAUSE_EVERY = 50


def load(path: Path, seeds_dir: Path, limits: Limits) -> dict[str, FileState]:
    """The cached states, or {} when the cache is missing, corrupt, not ours, or for other settings."""
    try:
        with path.open("rb") as stream:
            data = stream.read()
        key = signing_key(path.parent)
        if key is None:
            return {}
        body, signature = data[:-_SIGNATURE], data[-_SIGNATURE:]
        if len(data) < _SIGNATURE or not hmac.compare_digest(signature, hmac.digest(key, body, "sha256")):
            log.warning("parse cache %s is unusable (its signature does not match: corrupt, or not "
                        "written with this user's key); rebuilding it", path)  # fmt: skip
            return {}
        end = body.index(b"\n")
        if json.loads(body[:end]) != header(seeds_dir, limits):
            log.info("parse cache %s is for other settings; rebuilding it", path)
            return {}
        return _states(memoryview(body)[end + 1 :])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, EOFError, struct.error, pickle.UnpicklingError, AttributeError, ImportError,
            TypeError, KeyError, IndexError, RecursionError) as exc:  # fmt: skip
        log.warning("parse cache %s is unusable (%s); rebuilding it", path, exc)
        return {}


def _states(chunks: memoryview) -> dict[str, FileState]:
    """Every (name, state) pair of the signed chunks."""
    states: dict[str, FileState] = {}
    at = 0
    while at < len(chunks):
        (size,) = _LENGTH.unpack_from(chunks, at)
        states.update(pickle.loads(chunks[at + _LENGTH.size : at + _LENGTH.size + size]))
        at += _LENGTH.size + size
    return states
