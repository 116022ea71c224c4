"""The io_uring engine of `AsyncFileIO`: choosing it, a storm of cancelled reads, errors.

The rest of what the engine promises runs in the file tests, parametrized over both engines
(`file_engine` in conftest). asyncio and uvloop through the loop factories in conftest.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import random
import threading
import weakref
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from bridge import AsyncFileIO, InvalidArgumentError, _uring_engine, drive
from bridge._fileio import AsyncFile
from core import (
    IO,
    Completion,
    CompletionError,
    CompletionGroup,
    Done,
    ErrorKind,
    IOResultError,
)
from core.io import OpenFlags
from core.io.ring import OP_FSYNC, OP_WRITE, SQE_IO_DRAIN
from core.ops import ReadRange, WriteBuffers
from tests.helpers import exit_code_of_fork_child

needs_uring = pytest.mark.skipif(
    not AsyncFileIO.uring_available(), reason="no io_uring ring can be set up here"
)


def test_auto_falls_back_to_threads_and_uring_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "io_uring is not available here: EPERM: [Errno 1] refused by seccomp"
    monkeypatch.setattr(_uring_engine, "unavailable_reason", lambda: reason)
    io = AsyncFileIO()  # never raises
    assert io.engine == "threads"
    io.close()
    with closing(AsyncFileIO(engine="threads")) as threads:
        assert threads.engine == "threads"
    with pytest.raises(IOResultError, match='engine="uring"') as info:
        AsyncFileIO(engine="uring")
    assert "EPERM" in str(info.value) and "seccomp" in str(info.value)
    assert not AsyncFileIO.uring_available()


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="engine"):
        AsyncFileIO(engine="fibers")


@needs_uring
def test_auto_picks_uring_where_a_ring_can_be_set_up() -> None:
    with AsyncFileIO() as io:
        assert io.engine == "uring"
        assert io.worker_threads == 0


@needs_uring
@pytest.mark.asyncio
@pytest.mark.parametrize("sqpoll", [0, 0.05], ids=["plain", "sqpoll"])
async def test_a_storm_of_reads_with_cancellations_and_timeouts(
    tmp_path: Path, sqpoll: float
) -> None:
    rng = random.Random(2024)
    data = rng.randbytes(1 << 20)
    path = tmp_path / "storm.bin"
    path.write_bytes(data)
    io = AsyncFileIO(engine="uring", nowait=False, max_in_flight=64, sqpoll=sqpoll)
    f = io.open_file(path, OpenFlags.READ_ONLY)
    plans = []
    for _ in range(3000):
        off = rng.randrange(len(data))
        plans.append((off, rng.randrange(1, 20_000), rng.random()))

    async def read(off: int, size: int, fate: float) -> tuple[int, int, bytes | None]:
        timeout = 0.0005 if fate < 0.1 else None
        try:
            return off, size, await drive(ReadRange(f, off, size), io, timeout=timeout)
        except TimeoutError:
            return off, size, None

    tasks = [asyncio.create_task(read(*plan)) for plan in plans]
    await asyncio.sleep(0)
    for task, (_, _, fate) in zip(tasks, plans, strict=True):
        if fate > 0.85:
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    finished = 0
    for result in results:
        if isinstance(result, asyncio.CancelledError) or (
            isinstance(result, tuple) and result[2] is None
        ):
            continue
        assert isinstance(result, tuple), result
        off, size, got = result
        assert got == data[off : off + size]
        finished += 1
    assert finished > 1000
    assert io.sqpoll == (sqpoll > 0 and AsyncFileIO.sqpoll_available())
    await io.aclose()
    assert io.in_flight == 0 and io.pending == 0
    engine = io._uring
    assert engine is not None and not engine.table and not engine.busy()


# -- a kernel thread polling the ring (sqpoll) ------------------------------------------------


def sqpoll_threads() -> set[str]:
    """The ids of this process's SQPOLL kernel threads (named iou-sqp-PID)."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="ascii") as f:
                if f.read().startswith("iou-sqp"):
                    found.add(tid)
        except FileNotFoundError:
            pass  # a thread that just ended
    return found


@pytest.mark.parametrize("value", [-0.1, 10.5, float("nan"), True, "1", float("inf")], ids=repr)
def test_sqpoll_must_be_seconds_from_0_to_10(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="sqpoll"):
        AsyncFileIO(sqpoll=value)  # type: ignore[arg-type]


def test_sqpoll_is_refused_for_the_pool_and_ignored_when_auto_picks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(InvalidArgumentError, match='engine="threads"'):
        AsyncFileIO(engine="threads", sqpoll=0.1)
    with closing(AsyncFileIO(engine="threads", sqpoll=0)) as io:
        assert not io.sqpoll
    monkeypatch.setattr(_uring_engine, "unavailable_reason", lambda: "no ring here")
    with closing(AsyncFileIO(sqpoll=0.1)) as io:
        assert io.engine == "threads" and not io.sqpoll


@needs_uring
@pytest.mark.asyncio
async def test_sqpoll_reads_exactly_and_its_thread_ends_with_the_ring(
    tmp_path: Path,
) -> None:
    if not AsyncFileIO.sqpoll_available():
        pytest.skip("the kernel refuses an SQPOLL thread to this process")
    rng = random.Random(11)
    data = rng.randbytes(4 << 20)
    path = tmp_path / "cold.bin"
    path.write_bytes(data)
    before = sqpoll_threads()
    io = AsyncFileIO(engine="uring", sqpoll=0.05)
    assert not io.sqpoll  # no ring until the first I/O that needs one
    f = io.open_file(path, OpenFlags.READ_ONLY)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # written back, so that dropping the page cache drops it
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    plans = [(rng.randrange(len(data) - 70_000), rng.choice([1, 4096, 65_536])) for _ in range(500)]

    async def read(off: int, size: int) -> bytes:
        return await drive(ReadRange(f, off, size), io)

    got = await asyncio.gather(*(read(off, size) for off, size in plans))
    assert got == [data[off : off + size] for off, size in plans]
    assert io.sqpoll
    assert sqpoll_threads() - before, "no SQPOLL thread while the ring is open"
    await io.aclose()
    # The kernel ends the thread once the ring is gone: a bounded wait, not a timing.
    for _ in range(500):
        if not sqpoll_threads() - before:
            break
        await asyncio.sleep(0.01)
    assert not sqpoll_threads() - before, "the SQPOLL thread outlived its ring"


@needs_uring
@pytest.mark.parametrize("sqpoll", [0, 0.05], ids=["plain", "sqpoll"])
def test_a_fork_child_gets_a_clear_error_and_leaves_the_parents_ring_alone(
    tmp_path: Path, sqpoll: float
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"parent")
    io = AsyncFileIO(engine="uring", nowait=False, sqpoll=sqpoll)
    f = io.open_file(path, OpenFlags.READ_ONLY)

    async def read() -> bytes:
        return await drive(ReadRange(f, 0, 6), io)

    assert asyncio.run(read()) == b"parent"  # the ring is set up, in this process

    def child() -> int:
        try:
            asyncio.run(read())
        except IOResultError as exc:
            io.close()  # lets go of its copies only: no cancel, no wait
            return 0 if "os.fork()" in str(exc) else 2
        return 1

    assert exit_code_of_fork_child(child) == 0
    assert asyncio.run(read()) == b"parent"  # the parent's ring goes on
    assert io.sqpoll == (sqpoll > 0 and AsyncFileIO.sqpoll_available())
    io.close()


@needs_uring
@pytest.mark.asyncio
async def test_sqpoll_refused_by_the_kernel_leaves_a_ring_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.io import ring_syscalls

    real = ring_syscalls.setup
    asked = []

    def refuse_sqpoll(number: int, entries: int, flags: int, idle_ms: int = 0) -> object:
        asked.append(idle_ms)
        if idle_ms:  # as Linux before 5.11 refuses it without CAP_SYS_ADMIN
            return -errno.EPERM, b""
        return real(number, entries, flags, idle_ms)

    monkeypatch.setattr(ring_syscalls, "setup", refuse_sqpoll)
    path = tmp_path / "f.bin"
    path.write_bytes(b"abcdef" * 1000)
    async with AsyncFileIO(engine="uring", nowait=False, sqpoll=0.02) as io:
        f = io.open_file(path, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 6, 6), io) == b"abcdef"
        assert io.engine == "uring" and not io.sqpoll
    assert 20 in asked  # it was asked for, in whole milliseconds


@needs_uring
@pytest.mark.asyncio
async def test_a_ring_read_error_names_errno_path_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * 8192)
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        f = AsyncFile(io, str(path), os.open(path, os.O_WRONLY), read_only=False)
        with pytest.raises(CompletionError) as info:
            await drive(ReadRange(f, 4096, 100), io)
        err = info.value
        assert err.kind is ErrorKind.IO
        assert err.errno == errno.EBADF
        assert err.path == str(path) and err.offset == 4096
        assert str(path) in str(err) and "4096" in str(err) and "EBADF" in str(err)
        f.close()


@needs_uring
@pytest.mark.asyncio
async def test_an_fsync_drains_only_behind_its_own_task_in_one_pass(tmp_path: Path) -> None:
    # Which entries carry IOSQE_IO_DRAIN, by opcode and task: a task's write then fsync
    # queued in one pass keep their order; another task's write never waits for that
    # fsync, and an fsync issued after its own writes completed drains nothing.
    flags_seen: list[tuple[str, int, int]] = []

    def recording(opcode: int, length: int, flags: int) -> None:
        task = asyncio.current_task()
        flags_seen.append((task.get_name() if task else "-", opcode, flags))

    async with AsyncFileIO(engine="uring") as io:
        f = io.open_file(tmp_path / "log", OpenFlags.CREATE)
        await drive(WriteBuffers(f, 32768, [b"x"], sync=False), io)  # sets the ring up
        assert io._uring is not None and io._uring._ring is not None
        io._uring._ring.tap = recording

        async def write_then_sync() -> None:  # both in one pass: ordered
            w = Completion.new_write()
            s = Completion.new_sync()
            f.pwrite(0, b"a" * 4096, w)
            f.sync(s)
            await drive(lambda: IO(s) if not s.finished() else Done(w.result()), io)

        async def sync_after_write() -> None:  # the commit's pattern: write, wait, sync
            await drive(WriteBuffers(f, 8192, [b"b" * 4096], sync=False), io)
            s = Completion.new_sync()
            f.sync(s)
            await drive(lambda: IO(s) if not s.finished() else Done(None), io)

        async def other_write() -> None:
            await asyncio.sleep(0)
            await drive(WriteBuffers(f, 16384, [b"c" * 4096], sync=False), io)

        await asyncio.gather(
            asyncio.create_task(write_then_sync(), name="ordered"),
            asyncio.create_task(sync_after_write(), name="commit"),
            asyncio.create_task(other_write(), name="other"),
        )
    drain = SQE_IO_DRAIN
    by_task: dict[str, list[tuple[int, bool]]] = {}
    for task, opcode, flags in flags_seen:
        by_task.setdefault(task, []).append((opcode, bool(flags & drain)))
    write, fsync = OP_WRITE, OP_FSYNC
    assert by_task["ordered"] == [(write, False), (fsync, True)]
    assert by_task["commit"] == [(write, False), (fsync, False)]
    assert by_task["other"] == [(write, False)]


@needs_uring
@pytest.mark.asyncio
async def test_overlapping_reads_and_writes_of_one_task_in_one_pass_keep_their_order(
    tmp_path: Path,
) -> None:
    # Queued in one pass without waiting: write A, read it back, write B over it, read
    # again, and a read elsewhere. The ring may run entries in parallel; overlapping ones
    # of one task must still run in order (as the pool runs a task's batch), others not.
    path = tmp_path / "data"
    path.write_bytes(bytes(8192))
    # nowait=False: every read goes to the ring (an inline page-cache read would not wait
    # for a write the task has not awaited, on either engine).
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        f = io.open_file(path)
        drained: list[bool] = []
        await drive(ReadRange(f, 0, 1), io)  # sets the ring up

        def recording(opcode: int, length: int, flags: int) -> None:
            drained.append(bool(flags & SQE_IO_DRAIN))

        assert io._uring is not None and io._uring._ring is not None
        io._uring._ring.tap = recording
        first, second, elsewhere = bytearray(4), bytearray(4), bytearray(4)
        group = CompletionGroup()
        writes = {0: b"AAAA", 2: b"BB"}
        steps: list[tuple[int, bytearray | None]] = [
            (0, None),
            (0, first),
            (2, None),
            (0, second),
            (4096, elsewhere),
        ]
        for pos, buffer in steps:
            c = Completion.new_write() if buffer is None else Completion.new_read(buffer)
            group.add(c)  # linked before it is submitted
            if buffer is None:
                f.pwrite(pos, writes[pos], c)
            else:
                f.pread(pos, c)
        done = group.build()
        await drive(lambda: Done(None) if done.finished() else IO(done), io)
    assert bytes(first) == b"AAAA" and bytes(second) == b"AABB"
    assert drained == [False, True, True, True, False]


class Buffer(bytearray):
    """A bytearray that can be watched with a weak reference."""


def fifo(tmp_path: Path) -> Path:
    """A FIFO nobody writes to: opened read-write, a read on it stays in the ring."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Give the loop turns until `predicate()` holds (a hang guard, not a timing)."""
    for _ in range(20_000):
        if predicate():
            return
        await anyio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


async def an_abandoned_read_is_cancelled(tmp_path: Path) -> None:
    io = AsyncFileIO(engine="uring", nowait=False)
    engine = io._uring
    assert engine is not None
    f = io.open_file(fifo(tmp_path))
    buffer = Buffer(16)
    alive = weakref.ref(buffer)
    c = f.pread(0, Completion.new_read(buffer))
    await until(lambda: engine.enters > 0 and len(engine.table) == 1, "the read in the ring")
    # No driver steps this read: the completion alone is aborted, then everything that
    # referenced the buffer from outside is dropped.
    c.abort()
    del c, buffer
    gc.collect()
    assert alive() is not None  # the kernel may still write there
    await until(lambda: not engine.table, "the cancelled read came back")
    gc.collect()
    assert alive() is None
    assert engine.cancels == 1 and engine.cancel_results == {0: 1}
    assert io.in_flight == 0 and not engine.busy()
    await io.aclose()
    f.close()


@needs_uring
@pytest.mark.asyncio
async def test_an_aborted_ring_read_is_cancelled_with_no_driver_left(tmp_path: Path) -> None:
    await an_abandoned_read_is_cancelled(tmp_path)


@needs_uring
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_an_aborted_ring_read_is_cancelled_with_no_driver_left_on_trio(
    tmp_path: Path, anyio_backend: str
) -> None:
    await an_abandoned_read_is_cancelled(tmp_path)


@needs_uring
@pytest.mark.asyncio
async def test_an_abort_from_another_thread_cancels_through_the_loop(tmp_path: Path) -> None:
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        engine = io._uring
        assert engine is not None
        f = io.open_file(fifo(tmp_path))
        c = f.pread(0, Completion.new_read(bytearray(8)))
        await until(lambda: len(engine.table) == 1 and engine.enters > 0, "in the ring")
        thread = threading.Thread(target=c.abort)
        thread.start()
        thread.join()
        await until(lambda: not engine.table, "the cancelled read came back")
        assert engine.cancel_results == {0: 1}


@needs_uring
@pytest.mark.asyncio
async def test_a_cancelled_drive_over_a_blocked_read_settles_and_close_is_prompt(
    tmp_path: Path,
) -> None:
    io = AsyncFileIO(engine="uring", nowait=False, settle_timeout=30)
    engine = io._uring
    assert engine is not None
    f = io.open_file(fifo(tmp_path))
    task = asyncio.create_task(drive(ReadRange(f, 0, 64), io))
    await until(lambda: len(engine.table) == 1 and engine.enters > 0, "in the ring")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The drive waited for the kernel to give the entry back (its settle timeout is far
    # longer than this test may take), so nothing is left in the ring.
    assert not engine.table and engine.cancel_results == {0: 1}
    blocked = [f.pread(0, Completion.new_read(bytearray(8))) for _ in range(3)]
    await until(lambda: len(engine.table) == 3, "three more in the ring")
    await io.aclose()  # aborts, cancels and drains them; unmaps an empty ring
    assert all(c.failed() for c in blocked)
    assert not engine.table and engine._ring is None
    assert not _uring_engine._STRANDED
    assert engine.cancel_results == {0: 4}


@needs_uring
@pytest.mark.asyncio
async def test_a_storm_of_aborted_groups_and_blocked_reads_stays_byte_exact(
    tmp_path: Path,
) -> None:
    rng = random.Random(99)
    data = rng.randbytes(1 << 20)
    path = tmp_path / "storm.bin"
    path.write_bytes(data)
    io = AsyncFileIO(engine="uring", nowait=False, max_in_flight=48)
    engine = io._uring
    assert engine is not None
    f = io.open_file(path, OpenFlags.READ_ONLY)
    pipe = io.open_file(fifo(tmp_path))

    async def batch(seed: int) -> int:
        r = random.Random(seed)
        group = CompletionGroup()
        reads = []
        for _ in range(r.randrange(1, 12)):
            off, size = r.randrange(len(data)), r.randrange(1, 9000)
            buf = bytearray(size)
            c = Completion.new_read(buf)
            group.add(c)
            reads.append((off, size, buf, c))
        stuck = Completion.new_read(bytearray(4))
        group.add(stuck)
        built = group.build()
        for off, _, _, c in reads:
            f.pread(off, c)
        pipe.pread(0, stuck)
        for _ in range(r.randrange(3)):
            await asyncio.sleep(0)
        if r.random() < 0.3:
            r.choice(reads)[3].abort()  # one child given up on its own
        # Then nobody waits for the pipe: the group is aborted, no driver involved.
        for _ in range(r.randrange(8)):
            await asyncio.sleep(0)
        built.abort()
        exact = 0
        for off, size, buf, c in reads:
            if c.succeeded():
                got = c.result()
                assert bytes(buf[:got]) == data[off : off + size]
                exact += 1
        return exact

    try:
        results = await asyncio.gather(*(batch(seed) for seed in range(150)))
        await until(lambda: not engine.table and not engine.busy(), "every entry came back")
    finally:
        await io.aclose()
    # Enough reads finished before their group was aborted for the check above to bite:
    # 88-89 here, at most `FINISH_PER_CALLBACK` finishing per loop pass (387-399 at 64).
    assert sum(results) > 40
    # Every pipe read that reached the ring was cancelled there (one waiting for room
    # never reaches it); each cancel came back with one of the answers we handle.
    assert engine.cancels > 0
    assert sum(engine.cancel_results.values()) == engine.cancels
    assert set(engine.cancel_results) <= {0, -errno.ENOENT, -errno.EALREADY}
    assert io.in_flight == 0 and io.pending == 0


@needs_uring
@pytest.mark.asyncio
async def test_reads_that_take_bytes_land_in_spare_buffers_the_engine_reuses(
    tmp_path: Path,
) -> None:
    data = random.Random(7).randbytes(3 * 4096 + 1000)
    path = tmp_path / "spare.bin"
    path.write_bytes(data)
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        engine = io._uring
        assert engine is not None
        f = io.open_file(path, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 4096), io) == data[:4096]
        (spare,) = engine._spares[4096]
        for pos in (4096, 100, 2 * 4096):
            assert await drive(ReadRange(f, pos, 4096), io) == data[pos : pos + 4096]
            assert engine._spares[4096] == [spare]  # the same buffer, read into again
        # A short read at the end of the file, a read past it, an empty read.
        assert await drive(ReadRange(f, 3 * 4096, 4096), io) == data[3 * 4096 :]
        assert await drive(ReadRange(f, len(data) + 10, 4096), io) == b""
        assert await drive(ReadRange(f, 0, 0), io) == b""
        # Reads in flight together each get a buffer; all come back as spares.
        got = await asyncio.gather(
            *(drive(ReadRange(f, pos, 4096), io) for pos in range(0, 3 * 4096, 512))
        )
        assert got == [data[pos : pos + 4096] for pos in range(0, 3 * 4096, 512)]
        spares = engine._spares[4096]
        assert len(spares) == len({address for _, address, _ in spares}) > 1
        # A completion whose buffer was asked for reads into that buffer instead.
        c = Completion.new_read_bytes(4096)
        buffer = c.buffer
        f.pread(4096, c)
        await drive(lambda: Done(None) if c.finished() else IO(c), io)
        assert c.read_bytes() == bytes(buffer) == data[4096 : 2 * 4096]
        f.close()


@needs_uring
@pytest.mark.asyncio
async def test_an_aborted_read_keeps_its_spare_buffer_until_the_kernel_is_done(
    tmp_path: Path,
) -> None:
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        engine = io._uring
        assert engine is not None
        f = io.open_file(fifo(tmp_path))
        c = Completion.new_read_bytes(16)
        f.pread(0, c)
        await until(lambda: len(engine.table) == 1 and engine.enters > 0, "in the ring")
        (entry,) = engine.table.values()
        assert entry.spare is not None
        c.abort()
        assert 16 not in engine._spares  # the kernel may still write there
        await until(lambda: not engine.table, "the cancelled read came back")
        assert engine._spares[16] == [entry.spare]
        assert engine.cancel_results == {0: 1}
        with pytest.raises(CompletionError) as info:
            c.read_bytes()
        assert info.value.kind is ErrorKind.ABORTED
        f.close()


@needs_uring
@pytest.mark.asyncio
async def test_a_buffer_asked_for_while_its_read_is_in_the_ring_gets_the_bytes(
    tmp_path: Path,
) -> None:
    data = random.Random(8).randbytes(8192)
    path = tmp_path / "asked.bin"
    path.write_bytes(data)
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        f = io.open_file(path, OpenFlags.READ_ONLY)
        c = Completion.new_read_bytes(4096)
        f.pread(4096, c)  # staged without a buffer: the ring reads into a spare one
        buffer = c.buffer  # asked for while in flight
        assert buffer is not None and not c.finished()
        await drive(lambda: Done(None) if c.finished() else IO(c), io)
        assert c.read_bytes() == bytes(buffer) == data[4096:]
        assert c.buffer is buffer
        f.close()


@needs_uring
@pytest.mark.asyncio
async def test_the_spare_buffers_are_bounded_and_go_with_the_ring(tmp_path: Path) -> None:
    data = random.Random(9).randbytes(200_000)
    path = tmp_path / "sizes.bin"
    path.write_bytes(data)
    io = AsyncFileIO(engine="uring", nowait=False)
    engine = io._uring
    assert engine is not None
    f = io.open_file(path, OpenFlags.READ_ONLY)
    sizes = [1, 100, 4096, 65536, 65537, 150_000, *range(30_000, 65_536, 1_000)]
    for size in sizes:
        assert await drive(ReadRange(f, 7, size), io) == data[7 : 7 + size]
    kept = [size for spares in engine._spares.values() for _, _, size in spares]
    assert sum(kept) == engine._spare_bytes <= 1 << 20
    assert max(kept) <= 65536  # larger reads land in a buffer of their own
    assert 1 in kept and 4096 in kept  # the first ones fit
    f.close()
    await io.aclose()
    assert engine._spares == {} and engine._spare_bytes == 0
