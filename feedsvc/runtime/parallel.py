"""Run batches of work on every core: forked children and this process share one queue.

Children take batches from the front of the queue and this process from the back, so they meet
in the middle however fast each core is (the two vCPUs of one VM can differ by half). A child
writes its results to an unnamed temporary file, not a pipe, so it never waits for this process
to read; this process reads them between its own batches. There is no manager thread:
concurrent.futures runs one, and its hand-offs of the GIL left the worker idle a quarter of the
time at start-up. Pure core: no Flask.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import struct
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

Batch = list[Any]
Work = Callable[[Batch], list[Any]]
A = TypeVar("A")
B = TypeVar("B")
_LENGTH = struct.Struct("<q")  # each result in a child's file: its length, then its pickle


def alongside(background: Callable[[], A], foreground: Callable[[], B]) -> tuple[A, B]:
    """(background(), foreground()), the first run in a forked child while this process runs
    the second; both here when forking is unsafe or the child fails (an error is then raised here)."""
    if not (hasattr(os, "fork") and threading.active_count() == 1):
        return background(), foreground()
    [[first], [second]] = ForkedRun(call_each, [[background], [foreground]]).run(children=1)
    return first, second


def call_each(jobs: Batch) -> list[Any]:
    """The result of calling each job of a batch."""
    return [job() for job in jobs]


def map_batches(work: Work, batches: list[Batch], children: int) -> list[list[Any]]:
    """[work(batch) for batch in batches], shared between this process and `children` others."""
    if children < 1 or len(batches) < 2:
        return [work(batch) for batch in batches]
    # fork is cheapest (no re-import, `work` need not pickle) but unsafe once other threads run:
    # a lock one of them holds stays locked in the child. Then a forkserver pool.
    if hasattr(os, "fork") and threading.active_count() == 1:
        return ForkedRun(work, batches).run(children)
    return _run_in_pool(work, batches, children)


class ForkedRun:
    """One map_batches over forked children; what each child finished is read back from its file."""

    def __init__(self, work: Work, batches: list[Batch]) -> None:
        context = multiprocessing.get_context("fork")
        self.work, self.batches = work, batches
        self.ends = context.RawArray("q", [0, len(batches)])  # next batch from the front; one past the last
        self.lock = context.Lock()
        self.results: dict[int, list[Any]] = {}

    def take(self, from_front: bool) -> int | None:
        """Claim the next batch from one end of the queue, or None when the ends have met."""
        with self.lock:
            front, back = self.ends
            if front >= back:
                return None
            if from_front:
                self.ends[0] = front + 1
                return front
            self.ends[1] = back - 1
            return back - 1

    def run(self, children: int) -> list[list[Any]]:
        """Fork the children, work from the back here, then gather every batch's result in order."""
        started: list[Child] = []
        try:
            for _ in range(children):
                try:
                    started.append(Child(self))  # a child never returns from this
                except OSError as exc:  # no process or temporary file to be had: fewer hands
                    log.warning("cannot start a worker process (%s): this process does its share", exc)
                    break
            while (index := self.take(from_front=False)) is not None:
                self.results[index] = self.work(self.batches[index])
                for child in started:
                    self.results.update(child.read_finished())
            for child in started:
                self.results.update(child.finish())
        finally:
            for child in started:
                child.stop()
        # Batches a child took and never finished (it failed, or a signal killed it) are done here.
        missing = [index for index in range(len(self.batches)) if index not in self.results]
        self.results.update((index, self.work(self.batches[index])) for index in missing)
        return [self.results[index] for index in range(len(self.batches))]


class Child:
    """One forked process of a ForkedRun and the file its results go to."""

    def __init__(self, run: ForkedRun) -> None:
        self.file = tempfile.TemporaryFile()
        self.lock = run.lock
        self.written = multiprocessing.get_context("fork").RawValue("q", 0)  # bytes of whole results
        self.read_to = 0
        try:
            self.pid = os.fork()
        except OSError:
            self.file.close()
            raise
        if self.pid == 0:
            self._work_then_exit(run)

    def _work_then_exit(self, run: ForkedRun) -> None:
        """In the child: take batches from the front until none are left, then leave at once
        (os._exit: the parent's atexit handlers and buffered output are not the child's)."""
        status = 1
        try:
            while (index := run.take(from_front=True)) is not None:
                try:
                    result = run.work(run.batches[index])
                except Exception as exc:  # noqa: BLE001 - raised again in the parent, as concurrent.futures does
                    result = Raised(exc)
                data = pickle.dumps((index, result), pickle.HIGHEST_PROTOCOL)
                _write_all(self.file.fileno(), _LENGTH.pack(len(data)) + data)
                with self.lock:
                    self.written.value += _LENGTH.size + len(data)
            status = 0
        except BaseException:  # killed, or an error that does not pickle: the parent redoes the batch
            log.debug("a worker process failed", exc_info=True)
        finally:
            os._exit(status)

    def read_finished(self) -> dict[int, list[Any]]:
        """The results this child has written whole since the last call."""
        with self.lock:
            end = self.written.value
        finished, fd = {}, self.file.fileno()
        while self.read_to < end:
            (size,) = _LENGTH.unpack(_read_all(fd, _LENGTH.size, self.read_to))
            index, result = pickle.loads(_read_all(fd, size, self.read_to + _LENGTH.size))
            if isinstance(result, Raised):
                raise result.error
            finished[index] = result
            self.read_to += _LENGTH.size + size
        return finished

    def finish(self) -> dict[int, list[Any]]:
        """Wait for the child to exit, then read the rest of its results."""
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        if status:
            log.warning("a worker process stopped early (wait status %d): its batches are done here", status)
        return self.read_finished()

    def stop(self) -> None:
        """Kill the child if it still runs (this process is failing), and close its file."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0
        self.file.close()


@dataclass(frozen=True)
class Raised:
    """What a child's work raised, sent back to be raised in the parent."""

    error: Exception


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may be short, POSIX write(2))."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int, size: int, offset: int) -> bytes:
    """`size` bytes at `offset` (a read may be short, POSIX pread(2))."""
    chunks, got = [], 0
    while got < size:
        chunk = os.pread(fd, size - got, offset + got)
        if not chunk:
            raise EOFError(f"a parsing process's results end early at byte {offset + got}")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _run_in_pool(work: Work, batches: list[Batch], children: int) -> list[list[Any]]:
    """map_batches with a forkserver pool (`work` must pickle); this process works from the back
    on each batch no worker has started (a cancelled future was never sent)."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(children, mp_context=context) as pool:
        futures = [pool.submit(work, batch) for batch in batches]
        here: dict[int, list[Any]] = {}
        for index in reversed(range(len(batches))):
            if not futures[index].cancel():
                break
            here[index] = work(batches[index])
        return [here[index] if index in here else future.result() for index, future in enumerate(futures)]
