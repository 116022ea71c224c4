"""Cancellation at each yield point of a multi-step operation, on every loop and backend.

The operation cancels its own task (asyncio) or scope (trio) right after submitting the I/O
of yield point k, so the cancellation lands exactly while the driver waits on that point.
Afterwards: the operation's abort ran once, with the cancellation; every completion it made
(a group's children too) has finished; nothing is left queued or with a worker; no worker
thread outlives the backend; the backend still serves the next operation.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from bridge import AsyncFileIO, drive
from core import IO, Completion, CompletionGroup, Done
from core.io import File, MemoryYieldIO, OpenFlags

# Every test here runs on both engines of AsyncFileIO (see `file_engine` in conftest).
pytestmark = pytest.mark.usefixtures("file_engine")

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
POINTS = 5


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("ioresult-worker")]
    assert not alive, f"worker threads left running: {alive}"


class _State(enum.Enum):
    WRITE = 0
    SYNC = 1
    READ_GROUP = 2
    TRUNCATE = 3
    READ_BACK = 4
    DONE = 5
    FAILED = 6


class MultiStep:
    """Write, sync, read three chunks as a group, truncate to half, read the start back:
    five yield points. `on_yield(k)` is called right after point k's I/O is submitted."""

    def __init__(self, file: File, on_yield: Callable[[int], None] = lambda k: None) -> None:
        self.file = file
        self.on_yield = on_yield
        self.state = _State.WRITE
        self.current: Completion | None = None
        self.completions: list[Completion] = []
        self.chunks = [bytearray(1024) for _ in range(3)]
        self.head = bytearray(64)
        self.aborted: list[BaseException] = []

    def _yield(self, point: int, c: Completion, next_state: _State) -> IO:
        self.current = c
        self.state = next_state
        self.on_yield(point)
        return IO(c)

    def step(self) -> Done[bytes] | IO:
        if self.current is not None:
            self.current.result()
        match self.state:
            case _State.WRITE:
                c = self.file.pwrite(0, PAYLOAD, self._track(Completion.new_write()))
                return self._yield(0, c, _State.SYNC)
            case _State.SYNC:
                c = self.file.sync(self._track(Completion.new_sync()))
                return self._yield(1, c, _State.READ_GROUP)
            case _State.READ_GROUP:
                group = CompletionGroup()
                parts = [self._track(Completion.new_read(chunk)) for chunk in self.chunks]
                for part in parts:
                    group.add(part)
                c = group.build()
                for i, part in enumerate(parts):
                    self.file.pread(i * 4096, part)
                return self._yield(2, c, _State.TRUNCATE)
            case _State.TRUNCATE:
                c = self.file.truncate(len(PAYLOAD) // 2, self._track(Completion.new_trunc()))
                return self._yield(3, c, _State.READ_BACK)
            case _State.READ_BACK:
                c = self.file.pread(0, self._track(Completion.new_read(self.head)))
                return self._yield(4, c, _State.DONE)
            case _State.DONE:
                assert [bytes(b) for b in self.chunks] == [
                    PAYLOAD[i * 4096 : i * 4096 + 1024] for i in range(3)
                ]
                return Done(bytes(self.head))
            case _:
                raise AssertionError(f"stepped in {self.state}")

    def _track(self, c: Completion) -> Completion:
        self.completions.append(c)
        return c

    def abort(self, error: BaseException) -> None:
        self.aborted.append(error)
        self.state = _State.FAILED


def make_backend(kind: str) -> AsyncFileIO | MemoryYieldIO:
    # nowait=False: reads go to the pool too, so every point really waits.
    return AsyncFileIO(nowait=False) if kind == "async" else MemoryYieldIO()


def open_target(io: AsyncFileIO | MemoryYieldIO, tmp_path: Path) -> File:
    return io.open_file(tmp_path / "target.bin", OpenFlags.CREATE)


def check_after_cancel(op: MultiStep, io: AsyncFileIO | MemoryYieldIO, k: int) -> None:
    assert len(op.aborted) == 1
    assert len(op.completions) >= k + 1
    assert all(c.finished() for c in op.completions), op.completions
    if isinstance(io, AsyncFileIO):
        assert io.in_flight == 0 and io.pending == 0
        assert io.worker_threads <= io.workers


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["async", "memory-yield"])
@pytest.mark.parametrize("point", range(POINTS))
async def test_cancel_at_each_point(tmp_path: Path, backend: str, point: int) -> None:
    io = make_backend(backend)
    f = open_target(io, tmp_path)

    def on_yield(k: int) -> None:
        if k == point:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()

    op = MultiStep(f, on_yield)
    task = asyncio.create_task(drive(op, io))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(op.aborted[0], asyncio.CancelledError)
    for _ in range(3):  # a flush scheduled with the cancelled I/O may still be due
        await asyncio.sleep(0)
    check_after_cancel(op, io, point)
    assert await drive(MultiStep(f), io) == PAYLOAD[:64]
    if isinstance(io, AsyncFileIO):
        await io.aclose()
        assert io.worker_threads == 0
    else:
        io.close()


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["async", "memory-yield"])
@pytest.mark.parametrize("point", range(POINTS))
async def test_cancel_at_each_point_trio(tmp_path: Path, backend: str, point: int) -> None:
    io = make_backend(backend)
    f = open_target(io, tmp_path)
    with trio.CancelScope() as scope:

        def on_yield(k: int) -> None:
            if k == point:
                scope.cancel()

        op = MultiStep(f, on_yield)
        await drive(op, io)
    assert scope.cancelled_caught
    assert isinstance(op.aborted[0], trio.Cancelled)
    for _ in range(3):
        await trio.lowlevel.checkpoint()
    check_after_cancel(op, io, point)
    assert await drive(MultiStep(f), io) == PAYLOAD[:64]
    if isinstance(io, AsyncFileIO):
        await io.aclose()
        assert io.worker_threads == 0
    else:
        io.close()


class Held(AsyncFileIO):
    """Workers wait for `gate` before each batch."""

    def __init__(self) -> None:
        super().__init__(nowait=False, settle_timeout=5, engine="threads")  # gated workers
        self.gate = threading.Event()
        self.gate.set()

    def _run_batch(self, batch: Any) -> None:
        self.gate.wait()
        super()._run_batch(batch)


@pytest.mark.asyncio
@pytest.mark.parametrize("point", [0, 2, 4])
async def test_timeout_at_a_point(tmp_path: Path, point: int) -> None:
    """A gate holds point k's batch in a worker until the timeout fired and the operation
    was aborted; the drive must then wait for that batch before raising."""
    io = Held()
    f = open_target(io, tmp_path)
    loop = asyncio.get_running_loop()

    class Op(MultiStep):
        def abort(self, error: BaseException) -> None:
            super().abort(error)
            loop.call_later(0.01, io.gate.set)  # released while the drive settles

    def on_yield(k: int) -> None:
        if k == point:
            io.gate.clear()

    op = Op(f, on_yield)
    # Generous: the points before k must not run out of time even on a loaded machine.
    with pytest.raises(TimeoutError):
        await drive(op, io, timeout=0.5)
    assert isinstance(op.aborted[0], TimeoutError)
    assert len(op.completions) >= point + 1
    # The drive waited for the held batch to come back before raising.
    assert io.in_flight == 0
    for _ in range(3):
        await asyncio.sleep(0)
    check_after_cancel(op, io, point)
    assert await drive(MultiStep(f), io) == PAYLOAD[:64]
    await io.aclose()
