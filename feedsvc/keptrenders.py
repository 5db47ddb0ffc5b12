"""Rendered bodies kept from one `feedsvc build` of a folder to the next, so that a build after a
change renders again only the feeds whose entries changed.

The app's render cache (feedsvc.runtime.bodycache) already reuses a body made from equal entries
within one process; here its records (key, entries, entity tag) are pickled into the cache
folder after a build and handed to the next build's cache before it renders. The bodies
themselves are not copied there: each is a file of the tree the build wrote, named by its entity
tag (a hash of the body), and read back from that tree only if it still hashes to the tag (a
file edited or removed since is rendered again). The records are signed with the parse cache's
key (HMAC-SHA256, feedsvc.runtime.parsecache: a pickle is only safe from a trusted writer) and
kept only for the same settings, code and packages (feedsvc.manifest's environment digest): a
template or a setting changed renders everything again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path

from feedsvc.content.files import read_at_most
from feedsvc.runtime import parsecache
from feedsvc.runtime.bodycache import RenderCache, Rendered

log = logging.getLogger(__name__)
_SIGNATURE = hashlib.sha256().digest_size
MAX_BODY = 1 << 30  # bytes read of a file of the tree at most: a feed is kilobytes, never a gigabyte


def renders_file(cache_dir: Path, outdir: Path) -> Path:
    """Where the bodies of one output folder's builds are kept."""
    digest = hashlib.sha256(str(outdir.absolute()).encode()).hexdigest()[:20]
    return cache_dir / f"renders-{digest}.bin"


def keep(path: Path, environment: str, cache: RenderCache, files: Mapping[str, str]) -> None:
    """Write the cache's records, signed, for builds made with the same `environment` digest:
    those whose body is a file of the tree (`files`: the file of each entity tag)."""
    key = parsecache.signing_key(path.parent, create=True)
    if key is None:
        return
    records = [(cache_key, source, rendered.etag, files[rendered.etag]) for cache_key, source, rendered
               in cache.records() if rendered.etag in files]  # fmt: skip
    data = environment.encode() + b"\n" + pickle.dumps(records, pickle.HIGHEST_PROTOCOL)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".renders-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data + hmac.digest(key, data, "sha256"))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def body_of(outdir: Path, name: str) -> Rendered | None:
    """The body of the tree's file `name`, tagged; None when it is not a regular file (or not there)."""
    try:
        return Rendered.of(read_at_most(str(outdir / name), MAX_BODY))
    except OSError:
        return None


def restore(path: Path, environment: str, cache: RenderCache, outdir: Path) -> int:
    """Hand the kept records to `cache` when they are ours and were made with the same
    `environment` digest, each with its body from the tree at `outdir` when the file still hashes
    to the body's entity tag; how many (0 when none can be used)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    key = parsecache.signing_key(path.parent)
    body, signature = data[:-_SIGNATURE], data[-_SIGNATURE:]
    if key is None or len(data) < _SIGNATURE or not hmac.compare_digest(signature, hmac.digest(key, body, "sha256")):
        log.warning("kept renders %s are not signed with this user's key: ignored (and replaced)", path)
        return 0
    head, _, records = body.partition(b"\n")
    if head != environment.encode():
        return 0  # other settings, code or packages: every feed is rendered again
    try:
        loaded = pickle.loads(records)
    except (pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError, EOFError) as exc:
        log.warning("kept renders %s are unusable (%s): ignored (and replaced)", path, exc)
        return 0
    bodies = {name: body_of(outdir, name) for name in {name for *_, name in loaded}}
    # A file changed since the build that wrote it hashes to another tag than the record's.
    usable = [(cache_key, source, bodies[name]) for cache_key, source, etag, name in loaded
              if bodies[name] is not None and bodies[name].etag == etag]  # fmt: skip
    cache.preload(usable)
    return len(usable)
