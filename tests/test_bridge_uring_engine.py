"""The io_uring engine of `AsyncFileIO`: choosing it, a storm of cancelled reads, errors.

The rest of what the engine promises runs in the file tests, parametrized over both engines
(`file_engine` in conftest). asyncio and uvloop through the loop factories in conftest.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
from contextlib import closing
from pathlib import Path

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
async def test_a_storm_of_reads_with_cancellations_and_timeouts(tmp_path: Path) -> None:
    rng = random.Random(2024)
    data = rng.randbytes(1 << 20)
    path = tmp_path / "storm.bin"
    path.write_bytes(data)
    io = AsyncFileIO(engine="uring", nowait=False, max_in_flight=64)
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
    await io.aclose()
    assert io.in_flight == 0 and io.pending == 0
    engine = io._uring
    assert engine is not None and not engine.table and not engine.busy()


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
async def test_an_fsync_drains_only_behind_its_own_task_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which entries carry IOSQE_IO_DRAIN, by opcode and task: a task's write then fsync
    # queued in one pass keep their order; another task's write never waits for that
    # fsync, and an fsync issued after its own writes completed drains nothing.
    from core.io import ring as ring_module

    flags_seen: list[tuple[str, int, int]] = []
    original = ring_module.Ring.queue

    def recording(self: ring_module.Ring, opcode: int, *args: int) -> None:
        task = asyncio.current_task()
        flags_seen.append((task.get_name() if task else "-", opcode, args[-1]))
        original(self, opcode, *args)

    monkeypatch.setattr(ring_module.Ring, "queue", recording)
    async with AsyncFileIO(engine="uring") as io:
        f = io.open_file(tmp_path / "log", OpenFlags.CREATE)

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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
        original = _uring_engine.UringEngine._queue

        def recording(
            engine: _uring_engine.UringEngine, entry: object, pos: int, flags: int
        ) -> None:
            drained.append(bool(flags & SQE_IO_DRAIN))
            original(engine, entry, pos, flags)  # type: ignore[arg-type]

        monkeypatch.setattr(_uring_engine.UringEngine, "_queue", recording)
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
