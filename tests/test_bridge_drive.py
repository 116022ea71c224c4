"""`bridge.drive`: stepping, waiting, turns given to the loop, errors, cancellation, timeouts.

asyncio and uvloop through the loop factories in conftest; trio through anyio's plugin.
Work is bounded by counting steps and loop turns, never by measuring time.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from time import perf_counter
from typing import Any

import pytest
import sniffio
import trio

from bridge import AsyncFileIO, DriveTimeoutError, EventLoopError, InvalidArgumentError, drive
from core import IO, Completion, CompletionError, CompletionGroup, Done, ErrorKind, IOResultError
from core.io import MemoryIO, MemoryYieldIO, OpenFlags
from core.ops import ReadRange, ReadWholeFile, WriteBuffers

# Every test here runs on both engines of AsyncFileIO (see `file_engine` in conftest).
pytestmark = pytest.mark.usefixtures("file_engine")


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


class Steps:
    """Yields one completion per step (from `makers`), then `Done(number of steps)`.

    Records the error of `abort` and, per step, whatever `probe()` returns.
    """

    def __init__(
        self,
        makers: list[Callable[[], Completion]],
        probe: Callable[[], Any] | None = None,
    ) -> None:
        self.makers = makers
        self.probe = probe
        self.samples: list[Any] = []
        self.index = 0
        self.current: Completion | None = None
        self.completions: list[Completion] = []
        self.aborted: list[BaseException] = []

    def step(self) -> Done[int] | IO:
        if self.probe is not None:
            self.samples.append(self.probe())
        if self.current is not None:
            self.current.result()
        if self.index == len(self.makers):
            return Done(self.index)
        c = self.makers[self.index]()
        self.index += 1
        self.current = c
        self.completions.append(c)
        return IO(c)

    def abort(self, error: BaseException) -> None:
        self.aborted.append(error)


def finished_write() -> Completion:
    c = Completion.new_write()
    c.complete(1)
    return c


class Ticker:
    """Counts loop turns: one increment per pass of the loop."""

    def __init__(self) -> None:
        self.count = 0

    async def run_asyncio(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def run_trio(self) -> None:
        while True:
            self.count += 1
            await trio.lowlevel.checkpoint()


async def with_ticker(coro_fn: Callable[[Ticker], Any]) -> Any:
    ticker = Ticker()
    task = asyncio.create_task(ticker.run_asyncio())
    await asyncio.sleep(0)
    try:
        return await coro_fn(ticker)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def diffs(samples: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(samples)]


# -- results --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_callable_operation_returns_its_value() -> None:
    assert await drive(lambda: Done(42)) == 42


@pytest.mark.asyncio
async def test_core_ops_on_memory_io() -> None:
    io = MemoryIO()
    f = io.open_file("a", OpenFlags.CREATE)
    assert await drive(WriteBuffers(f, 0, [b"abc", b"defg"]), io) == 7
    assert await drive(ReadRange(f, 2, 3), io) == b"cde"
    assert await drive(ReadWholeFile(f, chunk_size=2), io) == b"abcdefg"


@pytest.mark.asyncio
async def test_stepping_backend_is_stepped_by_the_driver() -> None:
    io = MemoryYieldIO()
    f = io.open_file("a", OpenFlags.CREATE)
    assert await drive(WriteBuffers(f, 0, [b"hello"]), io) == 5
    assert await drive(ReadWholeFile(f, chunk_size=2), io) == b"hello"
    assert io.pending() == 0


@pytest.mark.asyncio
async def test_finished_completions_are_stepped_through_without_turns() -> None:
    async def body(ticker: Ticker) -> None:
        op = Steps([finished_write] * 200, probe=lambda: ticker.count)
        with closing(AsyncFileIO(time_slice=3600)) as io:
            assert await drive(op, io) == 200
        assert op.samples[-1] == op.samples[0]

    await with_ticker(body)


def test_not_an_operation_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        asyncio.run(drive(5))  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", [-1, float("nan"), "1", 10**400, float("inf"), True])
async def test_invalid_timeout(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="timeout"):
        await drive(lambda: Done(1), timeout=bad)


@pytest.mark.asyncio
async def test_unknown_async_library_is_refused() -> None:
    token = sniffio.current_async_library_cvar.set("curio")
    try:
        with pytest.raises(EventLoopError, match="curio"):
            await drive(lambda: Done(1))
    finally:
        sniffio.current_async_library_cvar.reset(token)


def test_outside_any_loop_is_refused() -> None:
    coro = drive(lambda: Done(1))
    with pytest.raises(EventLoopError, match="no running event loop"):
        coro.send(None)


# -- turns given to the loop ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_explicit_yield_gives_exactly_one_turn() -> None:
    async def body(ticker: Ticker) -> None:
        op = Steps([Completion.new_yield] * 20, probe=lambda: ticker.count)
        assert await drive(op) == 20
        assert diffs(op.samples) == [1] * 20

    await with_ticker(body)


@pytest.mark.asyncio
async def test_time_slice_zero_gives_a_turn_after_every_finished_step() -> None:
    async def body(ticker: Ticker) -> None:
        op = Steps([finished_write] * 30, probe=lambda: ticker.count)
        with closing(AsyncFileIO(time_slice=0)) as io:
            assert await drive(op, io) == 30
        assert diffs(op.samples) == [1] * 30

    await with_ticker(body)


@pytest.mark.asyncio
async def test_time_slice_turn_comes_when_a_slice_is_used_up() -> None:
    slice_ = 0.001

    def slow_step() -> Completion:
        start = perf_counter()
        while perf_counter() - start <= slice_ * 1.2:
            pass
        return finished_write()

    async def body(ticker: Ticker) -> None:
        op = Steps([slow_step] * 10, probe=lambda: ticker.count)
        with closing(AsyncFileIO(time_slice=slice_)) as io:
            assert await drive(op, io) == 10
        # Each step outlasts the slice, so the loop gets a turn after each of them.
        assert diffs(op.samples) == [1] * 10

    await with_ticker(body)


@pytest.mark.anyio
async def test_trio_explicit_yields_and_slices_give_turns() -> None:
    ticker = Ticker()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker.run_trio)
        await trio.lowlevel.checkpoint()
        op = Steps([Completion.new_yield] * 20, probe=lambda: ticker.count)
        assert await drive(op) == 20
        # trio runs every runnable task once per batch, in a random order.
        assert 19 <= op.samples[-1] - op.samples[0] <= 21
        op = Steps([finished_write] * 20, probe=lambda: ticker.count)
        with closing(AsyncFileIO(time_slice=0)) as io:
            assert await drive(op, io) == 20
        assert 19 <= op.samples[-1] - op.samples[0] <= 21
        op = Steps([finished_write] * 20, probe=lambda: ticker.count)
        with closing(AsyncFileIO(time_slice=3600)) as io:
            assert await drive(op, io) == 20
        assert op.samples[-1] == op.samples[0]
        nursery.cancel_scope.cancel()


# -- waiting --------------------------------------------------------------------------------


def completed_later_by_thread(result: int = 3) -> Completion:
    c = Completion.new_write()
    threading.Thread(target=c.complete, args=(result,)).start()
    return c


@pytest.mark.asyncio
async def test_completion_finished_on_another_thread_wakes_the_task() -> None:
    op = Steps([completed_later_by_thread] * 50)
    assert await drive(op) == 50
    assert all(c.result() == 3 for c in op.completions)


@pytest.mark.asyncio
async def test_completion_finished_by_another_task_on_the_loop() -> None:
    loop = asyncio.get_running_loop()

    def later() -> Completion:
        c = Completion.new_write()
        loop.call_soon(c.complete, 9)
        return c

    op = Steps([later] * 50)
    assert await drive(op) == 50


@pytest.mark.asyncio
async def test_stepping_backend_waits_for_a_completion_it_cannot_finish() -> None:
    loop = asyncio.get_running_loop()

    def foreign() -> Completion:
        c = Completion.new_write()
        loop.call_later(0.001, c.complete, 1)
        return c

    assert await drive(Steps([foreign] * 3), MemoryYieldIO()) == 3


@pytest.mark.anyio
async def test_trio_waits_for_threads_and_stepping_backends() -> None:
    assert sniffio.current_async_library() == "trio"
    assert await drive(Steps([completed_later_by_thread] * 30)) == 30
    io = MemoryYieldIO()
    f = io.open_file("a", OpenFlags.CREATE)
    assert await drive(WriteBuffers(f, 0, [b"xyz"]), io) == 3
    assert await drive(ReadWholeFile(f, chunk_size=1), io) == b"xyz"
    token = trio.lowlevel.current_trio_token()

    def foreign() -> Completion:
        c = Completion.new_write()
        token.run_sync_soon(c.complete, 1)
        return c

    assert await drive(Steps([foreign] * 3), io) == 3


# -- errors ---------------------------------------------------------------------------------


def failing_later() -> Completion:
    c = Completion.new_read(bytearray(4))
    threading.Thread(
        target=c.error, args=(CompletionError(ErrorKind.IO, "disk on fire", errno=5),)
    ).start()
    return c


@pytest.mark.asyncio
@pytest.mark.parametrize("when", ["later", "already"])
async def test_failed_completion_raises_after_abort(when: str) -> None:
    def already() -> Completion:
        c = Completion.new_read(bytearray(4))
        c.error(CompletionError(ErrorKind.IO, "disk on fire", errno=5))
        return c

    op = Steps([finished_write, failing_later if when == "later" else already])
    with pytest.raises(CompletionError, match="disk on fire") as info:
        await drive(op)
    assert op.aborted == [info.value]
    assert info.value.errno == 5


@pytest.mark.anyio
async def test_trio_failed_completion_raises_after_abort() -> None:
    op = Steps([failing_later])
    with pytest.raises(CompletionError, match="disk on fire") as info:
        await drive(op)
    assert op.aborted == [info.value]


@pytest.mark.asyncio
async def test_error_from_step_propagates_without_abort() -> None:
    class Boom:
        aborted = False

        def step(self) -> Done[int] | IO:
            raise IOResultError("logical error")

        def abort(self, error: BaseException) -> None:
            self.aborted = True

    op = Boom()
    with pytest.raises(IOResultError, match="logical error"):
        await drive(op)
    assert not op.aborted


# -- cancellation ---------------------------------------------------------------------------


def never() -> Completion:
    return Completion.new_write()


@pytest.mark.asyncio
async def test_cancel_while_waiting_aborts_completion_and_op() -> None:
    op = Steps([finished_write, never])
    task = asyncio.create_task(drive(op))
    while len(op.completions) < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(op.aborted) == 1 and isinstance(op.aborted[0], asyncio.CancelledError)
    error = op.completions[1].get_error()
    assert error is not None and error.kind is ErrorKind.ABORTED


@pytest.mark.asyncio
async def test_cancel_at_an_explicit_yield() -> None:
    op = Steps([Completion.new_yield] * 1000)
    task = asyncio.create_task(drive(op))
    while len(op.completions) < 3:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(op.aborted) == 1 and isinstance(op.aborted[0], asyncio.CancelledError)
    assert len(op.completions) < 1000


@pytest.mark.asyncio
async def test_cancel_aborts_a_groups_children() -> None:
    children = [Completion.new_write() for _ in range(3)]

    def group() -> Completion:
        g = CompletionGroup()
        for child in children:
            g.add(child)
        return g.build()

    op = Steps([group])
    task = asyncio.create_task(drive(op))
    while not op.completions:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(c.get_error() is not None for c in children)
    assert all(c.get_error().kind is ErrorKind.ABORTED for c in children)  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_abort_that_raises_never_replaces_the_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    class BadAbort(Steps):
        def abort(self, error: BaseException) -> None:
            raise RuntimeError("abort must not raise")

    op = BadAbort([never])
    task = asyncio.create_task(drive(op))
    while not op.completions:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(reported) == 1 and isinstance(reported[0].exc_value, RuntimeError)


@pytest.mark.asyncio
async def test_completion_finished_after_cancellation_raises_nowhere() -> None:
    op = Steps([never])
    task = asyncio.create_task(drive(op))
    while not op.completions:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    c = op.completions[0]
    t = threading.Thread(target=c.complete, args=(1,))
    t.start()
    t.join()
    assert c.get_error() is not None  # the abort won; the late result was dropped
    await asyncio.sleep(0)


@pytest.mark.anyio
async def test_trio_cancellation_aborts_and_reraises() -> None:
    op = Steps([finished_write, never])
    with trio.CancelScope() as scope:
        token = trio.lowlevel.current_trio_token()
        token.run_sync_soon(scope.cancel)
        await drive(op)
    assert scope.cancelled_caught
    assert len(op.aborted) == 1 and isinstance(op.aborted[0], trio.Cancelled)
    assert op.completions[1].get_error() is not None


def test_loop_closed_while_waiting_then_completed_from_a_thread() -> None:
    loop = asyncio.new_event_loop()
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: contexts.append(ctx))
    op = Steps([never])
    task = loop.create_task(drive(op))
    loop.run_until_complete(asyncio.sleep(0))
    assert op.completions
    loop.close()
    c = op.completions[0]
    t = threading.Thread(target=c.complete, args=(1,))  # the waiter sees a closed loop
    t.start()
    t.join()
    task.get_coro().close()  # what garbage collection would do: GeneratorExit, no await
    assert len(op.aborted) == 1 and isinstance(op.aborted[0], GeneratorExit)
    del task
    gc.collect()
    assert all("destroyed but it is pending" in ctx["message"] for ctx in contexts)


# -- timeouts -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_timeout_while_waiting() -> None:
    op = Steps([finished_write, never])
    with pytest.raises(DriveTimeoutError) as info:
        await drive(op, timeout=0.02)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, IOResultError)
    assert op.aborted == [info.value]
    assert op.completions[1].get_error().kind is ErrorKind.ABORTED  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_timeout_during_a_run_of_yields() -> None:
    op = Steps([Completion.new_yield] * 10_000_000)
    with pytest.raises(DriveTimeoutError):
        await drive(op, timeout=0.02)
    assert len(op.aborted) == 1


@pytest.mark.asyncio
async def test_timeout_on_a_stepping_backend() -> None:
    io = MemoryYieldIO()
    f = io.open_file("a", OpenFlags.CREATE)

    def chained() -> Completion:
        # A completion whose callback always submits another: each step finishes one and
        # queues the next, so the backend never runs dry and the op never finishes.
        c = Completion.new_write()

        def resubmit(outcome: int | CompletionError) -> None:
            f.pwrite(0, b"x", Completion.new_write(resubmit))

        f.pwrite(0, b"x", Completion.new_write(resubmit))
        return c

    op = Steps([chained])
    with pytest.raises(DriveTimeoutError):
        await drive(op, io, timeout=0.02)
    assert op.completions[0].get_error().kind is ErrorKind.ABORTED  # type: ignore[union-attr]
    io.close()


@pytest.mark.asyncio
async def test_no_timeout_when_the_op_finishes_in_time() -> None:
    assert await drive(Steps([completed_later_by_thread] * 3), timeout=30) == 3


@pytest.mark.anyio
async def test_trio_timeout() -> None:
    op = Steps([finished_write, never])
    with pytest.raises(DriveTimeoutError):
        await drive(op, timeout=0.02)
    assert len(op.aborted) == 1 and isinstance(op.aborted[0], DriveTimeoutError)
    assert op.completions[1].get_error() is not None
    assert await drive(Steps([completed_later_by_thread]), timeout=30) == 1


# -- many at once ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ten_thousand_drives_share_a_stepping_backend() -> None:
    io = MemoryYieldIO()
    f = io.open_file("a", OpenFlags.CREATE)
    await drive(WriteBuffers(f, 0, [bytes(range(256)) * 40]), io)
    offsets = [(i * 7) % 10_000 for i in range(10_000)]
    results = await asyncio.gather(*(drive(ReadRange(f, off, 8), io) for off in offsets))
    data = bytes(range(256)) * 40
    assert results == [data[off : off + 8] for off in offsets]
    assert io.pending() == 0


@pytest.mark.asyncio
async def test_timeout_holds_even_when_every_wait_succeeds() -> None:
    # The zero timeout fires in the same loop pass that finishes the first completion (its
    # Future is already resolved by then): the next wait must notice the deadline passed.
    loop = asyncio.get_running_loop()

    def soon() -> Completion:
        c = Completion.new_write()
        loop.call_soon(c.complete, 1)
        return c

    op = Steps([soon] * 50)
    with pytest.raises(DriveTimeoutError):
        await drive(op, timeout=0)
    assert len(op.aborted) == 1
    assert len(op.completions) < 50


def test_importing_the_bridge_does_not_import_trio() -> None:
    import subprocess

    code = "import bridge, sys; print('trio' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
