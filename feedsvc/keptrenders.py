"""Rendered bodies kept from one `feedsvc build` of a folder to the next, so that a build after a
change renders again only the feeds whose entries changed.

The app's render cache (feedsvc.runtime.bodycache) already reuses a body made from equal entries
within one process; here its records (key, entries, body) are pickled into the cache folder after
a build and handed to the next build's cache before it renders. They are signed with the parse
cache's key (HMAC-SHA256, feedsvc.runtime.parsecache: a pickle is only safe from a trusted
writer) and kept only for the same settings, code and packages (feedsvc.manifest's environment
digest): a template or a setting changed renders everything again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
import tempfile
from pathlib import Path

from feedsvc.runtime import parsecache
from feedsvc.runtime.bodycache import RenderCache

log = logging.getLogger(__name__)
_SIGNATURE = hashlib.sha256().digest_size


def renders_file(cache_dir: Path, outdir: Path) -> Path:
    """Where the bodies of one output folder's builds are kept."""
    digest = hashlib.sha256(str(outdir.absolute()).encode()).hexdigest()[:20]
    return cache_dir / f"renders-{digest}.bin"


def keep(path: Path, environment: str, cache: RenderCache) -> None:
    """Write the cache's records, signed, for builds made with the same `environment` digest."""
    key = parsecache.signing_key(path.parent, create=True)
    if key is None:
        return
    data = environment.encode() + b"\n" + pickle.dumps(cache.records(), pickle.HIGHEST_PROTOCOL)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".renders-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data + hmac.digest(key, data, "sha256"))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def restore(path: Path, environment: str, cache: RenderCache) -> int:
    """Hand the kept records to `cache` when they are ours and were made with the same
    `environment` digest; how many (0 when none can be used)."""
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
    cache.preload(loaded)
    return len(loaded)
