"""`UringIO`: batching into one `io_uring_enter`, errors from completion entries, cancelling
what the kernel holds, draining on close, and refusing a fork child or a foreign thread.
The contract it shares with the other backends is in `tests/test_backends.py`."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import pathlib
import platform
import random
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import drive
from core import IO, Completion, CompletionError, CompletionGroup, Done, ErrorKind, block
from core.errors import IOResultError
from core.io import OpenFlags, UringFile, UringIO
from core.ops import ReadRange
from core.result import IOResult
from tests.conftest import new_asyncio_loop, new_uvloop_loop
from tests.helpers import NEEDS_URING, exit_code_of_fork_child

pytestmark = NEEDS_URING

PAGE = 4096


@pytest.fixture
def io() -> Iterator[UringIO]:
    with UringIO() as backend:
        yield backend


@pytest.fixture
def data_file(tmp_path: pathlib.Path) -> tuple[pathlib.Path, bytes]:
    path = tmp_path / "data"
    data = bytes((i * 31 + 7) % 251 for i in range(64 * PAGE))
    path.write_bytes(data)
    return path, data


class ReadPages:
    """An operation: `len(offsets)` page reads in one `CompletionGroup`, then their bytes."""

    def __init__(self, file: UringFile, offsets: list[int]) -> None:
        self.file, self.offsets = file, offsets
        self.buffers = [bytearray(PAGE) for _ in offsets]
        self.group: Completion | None = None

    def step(self) -> IOResult[list[bytes]]:
        if self.group is None:
            group = CompletionGroup()
            reads = [Completion.new_read(b) for b in self.buffers]
            for c in reads:
                group.add(c)
            self.group = group.build()
            for off, c in zip(self.offsets, reads, strict=True):
                self.file.pread(off, c)
            return IO(self.group)
        self.group.result()
        return Done([bytes(b) for b in self.buffers])


def fifo(tmp_path: pathlib.Path) -> pathlib.Path:
    """A FIFO nobody writes to: opened read-write, a read on it stays in flight."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def read_in_flight(io: UringIO, tmp_path: pathlib.Path, buffer: bytearray) -> Completion:
    """A read into `buffer` that the kernel holds and nothing will ever finish."""
    c = io.open_file(fifo(tmp_path)).pread(0, Completion.new_read(buffer))
    assert io.step() == 0 and not c.finished() and io.in_flight == 1
    return c


def test_available_where_the_kernel_allows_io_uring() -> None:
    disabled = pathlib.Path("/proc/sys/kernel/io_uring_disabled")
    allowed = not disabled.exists() or disabled.read_text().strip() == "0"
    if platform.machine() in ("x86_64", "aarch64") and allowed:
        assert UringIO.available()


def test_a_bad_ring_size_is_an_error_naming_the_errno() -> None:
    with pytest.raises(IOResultError, match="EINVAL"):
        UringIO(entries=0)


def test_32_reads_in_one_group_are_one_io_uring_enter(
    io: UringIO, data_file: tuple[pathlib.Path, bytes]
) -> None:
    path, data = data_file
    f = io.open_file(path, OpenFlags.READ_ONLY)
    offsets = [((i * 37) % 64) * PAGE for i in range(32)]
    before = io.enters
    pages = block(ReadPages(f, offsets), io)
    assert pages == [data[off : off + PAGE] for off in offsets]
    assert io.submissions == 1
    assert io.enters - before == 1  # page cache hot: the kernel finished them inside the call
    assert io.in_flight == 0


def test_more_entries_than_the_rings_hold_are_submitted_in_turns(
    data_file: tuple[pathlib.Path, bytes],
) -> None:
    path, data = data_file
    with UringIO(entries=4) as io:  # 4 submission entries, 8 completion entries
        f = io.open_file(path, OpenFlags.READ_ONLY)
        offsets = [(i % 64) * PAGE for i in range(50)]
        assert block(ReadPages(f, offsets), io) == [data[o : o + PAGE] for o in offsets]
        assert io.submissions >= 50 // 4
        assert io.in_flight == 0


def test_a_read_on_a_write_only_descriptor_fails_with_ebadf_path_and_offset(
    io: UringIO, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "w"
    path.write_bytes(b"x" * 100)
    f = UringFile(io, str(path), os.open(path, os.O_WRONLY), read_only=False)
    c = f.pread(8, Completion.new_read(bytearray(4)))
    assert not c.finished()  # it fails in the kernel, not at submission
    with pytest.raises(CompletionError) as info:
        io.wait_for_completion(c)
    err = info.value
    assert err.kind is ErrorKind.IO and err.errno == errno.EBADF
    assert err.path == str(path) and err.offset == 8
    assert str(path) in str(err) and "EBADF" in str(err)


def test_cancel_aborts_an_in_flight_read_and_close_drains(tmp_path: pathlib.Path) -> None:
    io = UringIO()
    buffer = bytearray(16)
    c = read_in_flight(io, tmp_path, buffer)
    io.cancel([c])
    error = c.get_error()
    assert error is not None and error.kind is ErrorKind.ABORTED  # at once
    io.close()
    assert io.in_flight == 0
    assert buffer == bytes(16)


class Buffer(bytearray):
    """A bytearray that can be watched with a weak reference."""


def test_an_aborted_read_is_cancelled_in_the_kernel_with_no_driver_left(
    tmp_path: pathlib.Path,
) -> None:
    # The completion alone is aborted (no `cancel()`, no driver), then the operation and
    # its buffer are dropped: the abort itself sends the ASYNC_CANCEL, and the buffer
    # stays alive until the read's own completion entry is back.
    with UringIO() as io:
        buffer = Buffer(16)
        alive = weakref.ref(buffer)
        c = read_in_flight(io, tmp_path, buffer)
        c.abort()
        assert io.cancels == 1  # queued and submitted by the abort, on this thread
        del c, buffer
        gc.collect()
        assert alive() is not None and io.in_flight >= 1  # the kernel may still write there
        while io.in_flight:
            io.step()
        gc.collect()
        assert alive() is None
        assert io.cancel_results == {0: 1}  # found and cancelled


def test_a_read_aborted_inside_a_callback_is_cancelled_by_the_next_step(
    tmp_path: pathlib.Path, data_file: tuple[pathlib.Path, bytes]
) -> None:
    # An abort from a completion callback (inside a call into the ring) only flags; the
    # next step sends the cancel.
    path, data = data_file
    with UringIO() as io:
        blocked = read_in_flight(io, tmp_path, bytearray(8))

        def give_up(outcome: object) -> None:
            blocked.abort()

        f = io.open_file(path, OpenFlags.READ_ONLY)
        buf = bytearray(PAGE)
        io.wait_for_completion(f.pread(0, Completion.new_read(buf, give_up)))
        assert bytes(buf) == data[:PAGE] and blocked.failed()
        while io.in_flight:
            io.step()
        assert io.cancels == 1 and io.cancel_results == {0: 1}


def test_a_storm_of_random_aborts_keeps_every_other_read_exact(
    data_file: tuple[pathlib.Path, bytes], tmp_path: pathlib.Path
) -> None:
    path, data = data_file
    rng = random.Random(7)
    with UringIO(entries=32) as io:
        f = io.open_file(path, OpenFlags.READ_ONLY)
        pipe = io.open_file(fifo(tmp_path))
        reads: list[tuple[int, int, bytearray, Completion]] = []
        for _ in range(40):
            for _ in range(rng.randrange(1, 24)):
                off, size = rng.randrange(len(data)), rng.randrange(1, 3 * PAGE)
                buf = bytearray(size)
                reads.append((off, size, buf, f.pread(off, Completion.new_read(buf))))
            stuck = pipe.pread(0, Completion.new_read(bytearray(4)))  # never finishes
            stuck_group = CompletionGroup()
            stuck_group.add(stuck)
            built = stuck_group.build()
            if rng.random() < 0.5:
                io.step()
            for _, _, _, c in rng.sample(reads, k=min(len(reads), rng.randrange(4))):
                c.abort()
            built.abort()  # the group's abort cancels its child in the kernel
        while io.in_flight:
            io.step()
        exact = 0
        for off, size, buf, c in reads:
            assert c.finished()
            if c.succeeded():
                got = c.result()
                assert bytes(buf[:got]) == data[off : off + size]
                exact += 1
        assert exact > len(reads) // 2
        assert io.cancels >= 40  # at least every stuck pipe read
    assert io.in_flight == 0


def test_a_cancelled_group_cancels_its_reads_in_the_kernel(tmp_path: pathlib.Path) -> None:
    with UringIO() as io:
        f = io.open_file(fifo(tmp_path))
        group = CompletionGroup()
        reads = [Completion.new_read(bytearray(8)) for _ in range(3)]
        for c in reads:
            group.add(c)
        built = group.build()
        for c in reads:
            f.pread(0, c)
        io.step()
        io.cancel([built])
        assert all(c.failed() for c in [*reads, built])
        while io.in_flight:  # the cancels and the cancelled reads come back
            io.step()


def test_close_is_idempotent_and_closes_files(io: UringIO, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    io.close()
    io.close()
    assert f.closed
    with pytest.raises(CompletionError) as info:
        f.pread(0, Completion.new_read(bytearray(1)))
    assert info.value.kind is ErrorKind.CLOSED
    assert io.step() == 0


def test_dropped_unclosed_it_aborts_and_drains_what_is_in_flight(
    tmp_path: pathlib.Path,
) -> None:
    io = UringIO()
    c = read_in_flight(io, tmp_path, bytearray(8))
    del io
    gc.collect()
    error = c.get_error()
    assert error is not None and error.kind is ErrorKind.ABORTED


def test_a_fork_child_gets_a_clear_error(io: UringIO, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)

    def child() -> int:
        try:
            f.pwrite(0, b"child", Completion.new_write())
        except IOResultError as exc:
            return 0 if "os.fork()" in str(exc) and str(os.getppid()) in str(exc) else 2
        return 1

    assert exit_code_of_fork_child(child) == 0
    c = f.pwrite(0, b"parent", Completion.new_write())
    io.wait_for_completion(c)  # the parent's ring is untouched
    assert c.result() == 6


def test_another_thread_is_refused_and_the_owner_still_finishes(
    io: UringIO, tmp_path: pathlib.Path
) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    c = f.pwrite(0, b"abc", Completion.new_write())
    errors: list[BaseException] = []

    def wait_elsewhere() -> None:
        try:
            io.wait_for_completion(c)
        except IOResultError as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait_elsewhere)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "thread" in str(errors[0])
    io.wait_for_completion(c)
    assert c.result() == 3 and f.size() == 3


def test_truncate_without_the_kernels_ftruncate_runs_at_once(
    io: UringIO, tmp_path: pathlib.Path
) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    io.wait_for_completion(f.pwrite(0, b"0123456789", Completion.new_write()))
    f._engine.has_ftruncate = False  # as before Linux 6.9
    c = f.truncate(4, Completion.new_trunc())
    assert c.succeeded() and f.size() == 4
    bad = f.truncate(-1, Completion.new_trunc())
    error = bad.get_error()
    assert error is not None and error.errno == errno.EINVAL and error.offset == -1


def test_vectored_writes_and_reads_across_the_end(io: UringIO, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    parts = [b"ab", bytearray(b""), memoryview(b"cdef"), bytearray(b"g")]
    c = f.pwritev(3, parts, Completion.new_write())
    parts[3][0] = ord("z")  # a private copy went to the kernel
    io.wait_for_completion(c)
    assert c.result() == 7
    buf = bytearray(20)
    r = f.pread(0, Completion.new_read(buf))
    io.wait_for_completion(r)
    assert r.result() == 10 and buf[:10] == b"\0\0\0abcdefg"


@pytest.mark.parametrize("factory", [new_asyncio_loop, new_uvloop_loop])
def test_drive_steps_the_ring_on_an_event_loop(tmp_path: Path, factory: Any) -> None:
    # The ring's completions progress only when it is stepped, so `drive` steps it (a loop
    # turn between steps) instead of waiting for a wake-up that would never come.
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 64)
    with UringIO() as io:
        assert io.needs_stepping
        f = io.open_file(str(path), OpenFlags.READ_ONLY)

        async def main() -> bytes:
            return await drive(ReadRange(f, 100, 4000), io, timeout=10)

        with asyncio.Runner(loop_factory=factory) as runner:
            assert runner.run(main()) == path.read_bytes()[100:4100]
        f.close()
