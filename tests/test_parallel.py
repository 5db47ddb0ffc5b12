"""map_batches: every batch done once, results in order, whoever did it and whatever went wrong."""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

import pytest

import feedsvc.runtime.parallel
from feedsvc.runtime.parallel import alongside, map_batches


def needs_fork() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    if threading.active_count() != 1:
        pytest.skip(f"other threads run ({threading.enumerate()}): map_batches must not fork")


class Recorder:
    """A batch's work (each number squared) that writes "pid first-number" to a shared log file,
    one O_APPEND write per batch, so the parent can see which process did which batch."""

    def __init__(self, log: Path, parent_delay: float, child_delay: float) -> None:
        self.log, self.parent, self.delays = log, os.getpid(), (child_delay, parent_delay)

    def __call__(self, batch: list[int]) -> list[int]:
        # Batches slow enough that every process gets some: forking a child takes milliseconds.
        threading.Event().wait(self.delays[os.getpid() == self.parent])
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{os.getpid()} {batch[0]}\n".encode())
        finally:
            os.close(fd)
        return [n * n for n in batch]

    def done_by(self) -> dict[int, list[int]]:
        """First number of each batch done, by process id."""
        by_pid: dict[int, list[int]] = {}
        for line in self.log.read_text().splitlines():
            pid, first = map(int, line.split())
            by_pid.setdefault(pid, []).append(first)
        return by_pid


def batches_of(count: int, size: int = 3) -> list[list[int]]:
    return [list(range(i, i + size)) for i in range(0, count * size, size)]


def squared(batches: list[list[int]]) -> list[list[int]]:
    return [[n * n for n in batch] for batch in batches]


@pytest.mark.parametrize("children", [1, 2, 3])
def test_forked_results_come_back_in_batch_order(tmp_path, children):
    needs_fork()
    work, batches = Recorder(tmp_path / "log", parent_delay=0.02, child_delay=0.005), batches_of(24)
    assert map_batches(work, batches, children) == squared(batches)
    done = work.done_by()
    assert sorted(first for firsts in done.values() for first in firsts) == [b[0] for b in batches]  # each once
    assert len(done) == children + 1, done  # every process took a share
    # This process took batches from the back, the children from the front: the ends met once.
    here = sorted(done.pop(os.getpid()))
    assert here == [b[0] for b in batches[len(batches) - len(here) :]]


def test_results_larger_than_a_pipe_buffer_pass(tmp_path):
    needs_fork()
    big = functools.partial(lambda size, batch: [b"x" * size] * len(batch), 300_000)
    result = map_batches(big, batches_of(8, 2), children=1)
    assert [len(items) for items in result] == [2] * 8 and all(item == b"x" * 300_000 for items in result for item in items)


def fail_in_child(parent: int, how: str, batch: list[int]) -> list[int]:
    """Square the batch; in a child, fail on the batch that starts at 6 (this process is slow,
    so that the child gets that far)."""
    if os.getpid() == parent:
        threading.Event().wait(0.02)
    elif batch[0] == 6:
        if how == "exit":
            os._exit(3)  # as a crash or a kill would: no exception, no clean-up
        raise RuntimeError("parser bug")
    return [n * n for n in batch]


def test_a_child_that_stops_early_loses_no_batch(caplog):
    needs_fork()
    batches = batches_of(12)
    work = functools.partial(fail_in_child, os.getpid(), "exit")
    with caplog.at_level(logging.WARNING, logger="feedsvc.runtime.parallel"):
        assert map_batches(work, batches, children=1) == squared(batches)
    assert "stopped early" in caplog.text


def test_an_error_in_a_child_is_raised_here_and_stops_the_run():
    needs_fork()
    with pytest.raises(RuntimeError, match="parser bug"):
        map_batches(functools.partial(fail_in_child, os.getpid(), "raise"), batches_of(12), children=1)


def test_alongside_runs_the_first_job_in_a_child():
    needs_fork()
    here = os.getpid()
    first, second = alongside(os.getpid, functools.partial(slow_pid, 0.3))
    assert second == here and first != here


def slow_pid(delay: float) -> int:
    threading.Event().wait(delay)  # long enough for the child to start and take its job
    return os.getpid()


def test_alongside_raises_the_childs_error_here(tmp_path):
    needs_fork()
    with pytest.raises(FileNotFoundError):
        alongside(functools.partial(os.stat, tmp_path / "missing"), functools.partial(slow_pid, 0.1))


def test_alongside_with_other_threads_runs_both_here(monkeypatch):
    monkeypatch.setattr(feedsvc.runtime.parallel, "ForkedRun", None)  # would fail if called
    release = threading.Event()
    other = threading.Thread(target=release.wait, args=(30,), name="test-other-thread")
    other.start()
    try:
        assert alongside(os.getpid, os.getpid) == (os.getpid(), os.getpid())
    finally:
        release.set()
        other.join(timeout=5)


def fail_here(parent: int, record: Path, batch: list[int]) -> list[int]:
    """In a child, write its pid to `record` and keep working slowly; here, once a child has
    started, fail."""
    if os.getpid() == parent:
        for _ in range(1000):
            if record.exists() and record.read_text():
                raise KeyError("parent failed")
            threading.Event().wait(0.01)
    record.write_text(str(os.getpid()))
    threading.Event().wait(0.05)
    return batch


def test_a_failure_here_stops_the_children_and_raises(tmp_path):
    needs_fork()
    record = tmp_path / "child"
    with pytest.raises(KeyError, match="parent failed"):
        map_batches(functools.partial(fail_here, os.getpid(), record), batches_of(200), children=1)
    with pytest.raises(ProcessLookupError):  # the child was killed and reaped, not left working
        os.kill(int(record.read_text()), 0)


def test_when_no_process_can_be_started_this_one_does_every_batch(monkeypatch, caplog):
    needs_fork()

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")  # fork(2) at RLIMIT_NPROC

    monkeypatch.setattr(feedsvc.runtime.parallel.os, "fork", no_fork)
    batches = batches_of(6)
    with caplog.at_level(logging.WARNING, logger="feedsvc.runtime.parallel"):
        assert map_batches(lambda batch: [n * n for n in batch], batches, children=2) == squared(batches)
    assert "cannot start a worker process" in caplog.text


def test_with_other_threads_a_forkserver_pool_does_it(monkeypatch):
    used = []
    monkeypatch.setattr(feedsvc.runtime.parallel, "ForkedRun", lambda *args: used.append("fork"))
    release = threading.Event()
    other = threading.Thread(target=release.wait, args=(30,), name="test-other-thread")
    other.start()
    try:
        batches = [[3, 1, 2], [9, 8], [5], [7, 6]]
        assert map_batches(sorted, batches, children=1) == [[1, 2, 3], [8, 9], [5], [6, 7]]
    finally:
        release.set()
        other.join(timeout=5)
    assert used == []


@pytest.mark.parametrize("children, batches", [(0, batches_of(5)), (2, batches_of(1)), (2, [])])
def test_no_children_or_one_batch_is_done_here(children, batches, monkeypatch):
    monkeypatch.setattr(feedsvc.runtime.parallel, "ForkedRun", None)  # would fail if called
    monkeypatch.setattr(feedsvc.runtime.parallel, "_run_in_pool", None)
    assert map_batches(lambda batch: [n * n for n in batch], batches, children) == squared(batches)
