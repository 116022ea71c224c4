"""`drive` runs an operation under one driver at a time: a second `drive` of the same
object is refused at once and leaves the first undisturbed (asyncio, uvloop, trio)."""

from __future__ import annotations

import asyncio

import pytest
import trio
import trio.testing

from bridge import ConcurrentDriveError, InvalidArgumentError, drive
from core import IO, Completion, Done, IOResult


class Gate:
    """An operation that waits on a completion the test finishes, then returns 42. It
    counts its steps and aborts, so a test sees whether a second driver touched it."""

    def __init__(self) -> None:
        self.completion = Completion.new_read(bytearray(1))
        self.steps = 0
        self.aborts = 0

    def step(self) -> IOResult[int]:
        self.steps += 1
        if self.completion.finished():
            return Done(42)
        return IO(self.completion)

    def abort(self, error: BaseException) -> None:
        self.aborts += 1


@pytest.mark.asyncio
async def test_a_second_driver_is_refused_and_the_first_finishes() -> None:
    op = Gate()
    first = asyncio.ensure_future(drive(op))
    await asyncio.sleep(0)
    assert op.steps == 1
    with pytest.raises(ConcurrentDriveError, match="already being driven"):
        await drive(op)
    with pytest.raises(ConcurrentDriveError):
        await drive(op, timeout=5)
    assert (op.steps, op.aborts) == (1, 0)  # untouched by the refused calls
    op.completion.complete(1)
    assert await first == 42


@pytest.mark.asyncio
async def test_cancelling_the_refused_caller_does_not_abort_the_first() -> None:
    op = Gate()
    first = asyncio.ensure_future(drive(op))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(drive(op))
    await asyncio.sleep(0)
    second.cancel()
    with pytest.raises(ConcurrentDriveError):
        await second  # it failed at once, before the cancel could reach it
    assert op.aborts == 0 and not op.completion.finished()
    op.completion.complete(1)
    assert await first == 42


@pytest.mark.asyncio
async def test_the_same_operation_may_be_driven_again_after_the_first_drive() -> None:
    op = Gate()
    op.completion.complete(1)
    assert await drive(op) == 42
    assert await drive(op) == 42  # no driver holds it any more
    waiting = Gate()
    task = asyncio.ensure_future(drive(waiting))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    waiting.completion.complete(1)
    assert await drive(waiting) == 42  # a cancelled drive let go of it too


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", [10**400, float("inf"), -0.5])
async def test_timeouts_that_are_not_finite_seconds_are_refused(bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match=r"finite|>= 0"):
        await drive(lambda: Done(1), timeout=bad)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_trio_refuses_a_second_driver() -> None:
    op = Gate()
    results: list[int] = []
    async with trio.open_nursery() as nursery:

        async def first() -> None:
            results.append(await drive(op))

        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ConcurrentDriveError):
            await drive(op)
        assert op.aborts == 0
        op.completion.complete(1)
    assert results == [42]
