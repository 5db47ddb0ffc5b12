"""One article file: read without ever blocking, then parsed into an Article and its warnings.
Pure core: no Flask, no feedgen; one broken file raises ArticleError, never anything else."""

from __future__ import annotations

import os
import stat

from feedsvc.content.fields import Limits, Warnings, parse_article
from feedsvc.content.model import Article, Problem
from feedsvc.errors import ArticleError


def load_bytes(data: bytes, path: str, limits: Limits = Limits()) -> tuple[Article, list[Problem]]:
    """Turn one file's bytes into (Article, warnings); raise ArticleError when unusable."""
    # Imported at the first parse: a warm start takes every file from the parse cache and parses
    # none, and the YAML parsers (PyYAML, yaml-rs) were ~15 ms of its imports.
    from feedsvc.content.frontmatter import decode, line_of_key, parse_yaml, split_front_matter

    source, first_line = split_front_matter(decode(data, path), path)
    warnings = Warnings(path, limits)
    fields = parse_yaml(source, path, first_line)
    try:
        return parse_article(fields, path, warnings), warnings.problems
    except ArticleError as exc:
        if exc.line is None and exc.field:
            exc.line = line_of_key(source, exc.field, first_line)
        raise


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
        raise ArticleError(
            name, f"file is over the size limit of {limits.file_bytes} bytes (MAX_FILE_BYTES): split or trim it"
        )
    return load_bytes(data, name, limits)
