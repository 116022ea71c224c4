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
from core import CompletionError, ErrorKind, IOResultError
from core.io import OpenFlags
from core.ops import ReadRange

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
