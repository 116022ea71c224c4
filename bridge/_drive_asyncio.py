"""The part of an asyncio (or uvloop) drive that awaits; `bridge._drive.drive` takes the
first step (and the commonest wait, around `wait_woken`) and hands over here when the
operation has more to do.

Theory of operation:
- A finished completion is never turned into a Future: the driver steps again at once (a
  done Future costs ~0.25 us, a loop pass 2-4 us, a thread hop 50+ us). So that one busy
  operation cannot starve others, a run of finished steps still gives the loop one turn
  once it has lasted a time slice (`io.time_slice`, default 2 ms). An explicit yield
  (`completion.is_explicit_yield()`) gets exactly one turn.
- The drives on one loop also share a step budget per loop pass (`PassBudget`, 0.25 ms of
  stepping): a drive about to take its first step, or to step after a wait, in a pass whose
  drives have already stepped that long parks until a later pass. So 200 tasks started or
  woken in one pass spread over several short passes (timers and I/O callbacks run in
  between) instead of one long pass; they step in the order they parked; a drive's first
  step waits behind the drives parked already. Only the drives' own steps count, not what
  their tasks do around them (see `PassBudget`).
- An unfinished completion on a backend with `needs_stepping` is progressed by the driver:
  one loop turn, then `io.step()`, until it finishes. Everywhere else the driver waits on
  one Future that the completion's done-callback wakes: set directly when it fires on the
  loop thread, through `call_soon_threadsafe` from any other thread (never anyio's
  `from_thread`, which blocks the worker). Registration is undone in `finally`.
- A failed completion: `op.abort(error)`, then raise the `CompletionError`.
- Cancellation or timeout: abort the outstanding completion (a group's abort cancels its
  children), `op.abort(exc)`, wait a bounded time (`io.settle_timeout`, default 1 s) for work
  already inside a worker's system call to come back (`io.when_settled`), then re-raise.
  A cancellation is never swallowed; a timeout raises `DriveTimeoutError` (a `TimeoutError`).
- Late results are harmless by construction: the waiter only ever *sets a result* on a Future
  it checked is not done (no exception is stored, so nothing is "never retrieved"), and a
  wake-up aimed at a closed loop is dropped.
- Hot path: no locks of our own, no closures per call, one slotted waiter per drive (made
  on the first real wait), one Future per wait.
- This module stays interpreted in the compiled build: its cleanup is in `finally` blocks,
  which an interpreted coroutine runs when it is collected unfinished (its loop closed
  under it), and a compiled one does not (see `bridge._drive`).
"""

from __future__ import annotations

import asyncio
from asyncio import AbstractEventLoop, CancelledError, Future
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, TypeVar

from bridge._asyncio_wake import AsyncioWaiter, Resolver, resolve
from bridge._drive_common import (
    DEFAULT_SETTLE_TIMEOUT,
    DEFAULT_TIME_SLICE,
    DRIVING,
    abort_quietly,
    one_turn,
    when_settled_of,
)
from bridge._errors import DriveTimeoutError
from bridge._pass_budget import PassBudget
from core.completion import Completion
from core.driver import after_finished
from core.result import IO, Done

if TYPE_CHECKING:
    from core.io.backend import IOBackend

__all__ = ["drive_asyncio", "wait_woken"]

T = TypeVar("T")


async def drive_asyncio(
    op: object,
    step: Callable[[], Done[T] | IO],
    io: IOBackend | None,
    loop: AbstractEventLoop,
    timeout: float | None,
    budget: PassBudget,
    started: float,
    result: Done[T] | IO | None,
) -> T:
    """Run `op` to `Done` on `loop`, from `result` (its first step's, or None if that step
    is still to take). `started`: when the drive began (the first time slice and the
    first run of steps count from it). Raises what `bridge._drive.drive` documents."""
    time_slice: float = DEFAULT_TIME_SLICE
    stepping = False
    if io is not None:
        stepping = io.needs_stepping
        time_slice = getattr(io, "time_slice", DEFAULT_TIME_SLICE)
    waiter: AsyncioWaiter | None = None
    timer: asyncio.TimerHandle | None = None
    if timeout is not None:
        waiter = AsyncioWaiter(loop)
        timer = loop.call_later(timeout, waiter.expire)
    c: Completion | None = None
    slice_end = started + time_slice
    since = started  # this run of steps began: its time counts against the pass's budget
    key = id(op)
    DRIVING.add(key)  # before the first await: from here on a second driver is refused
    try:
        if result is None and (budget.spent > budget.seconds or budget.parked()):
            # This pass has stepped long enough, or drives wait their turn already: take
            # the first step in a later pass, after them.
            await _pass_turn(op, io, loop, waiter, timeout, budget)
            since = perf_counter()
            slice_end = since + time_slice
        while True:
            if result is None:
                result = step()
                if type(result) is Done:
                    budget.charge(since)
                    return result.value
            c = result.completion  # type: ignore[union-attr]
            result = None
            if c.finished():
                # Inline, the common case (succeeded, not a yield): step again within the
                # slice. `after_finished` settles the rest: a failure raises, a yield falls
                # through to the turn below.
                if c.get_error() is None and not c.is_explicit_yield():
                    if perf_counter() < slice_end:
                        continue
                else:
                    after_finished(op, c)
                budget.charge(since)
                try:
                    await one_turn()
                except BaseException as exc:
                    await _give_up_asyncio(op, None, exc, io, loop)
                    raise
                if waiter is not None and waiter.expired:
                    await _time_out_asyncio(op, None, io, loop, timeout)
                if not budget.armed or budget.loop is not loop:
                    budget.arm(loop)
                since = perf_counter()
                slice_end = since + time_slice
                continue
            # An unfinished completion: wait for it.
            budget.charge(since)
            if waiter is None:
                waiter = AsyncioWaiter(loop)
            elif waiter.expired:  # the deadline passed while earlier waits kept succeeding
                await _time_out_asyncio(op, c, io, loop, timeout)
            if stepping:
                assert io is not None
                await _step_until_finished(op, c, io, loop, waiter, timeout)
            else:
                # The first wait is inline (no coroutine per wait); `_wait_asyncio` takes
                # over for the rare rest: a timeout, or a stale wake-up.
                fut = waiter.wait_on(c)
                try:
                    await fut
                except BaseException as exc:
                    waiter.forget(c)
                    await _give_up_asyncio(op, c, exc, io, loop)
                    raise
                if not c.finished():
                    await _wait_asyncio(op, c, io, loop, waiter, timeout, registered=True)
            if c.get_error() is not None:
                after_finished(op, c)  # raises
            if budget.after_wait(loop):
                # Woken in a pass that has stepped long enough: step in a later one.
                await _pass_turn(op, io, loop, waiter, timeout, budget)
            since = perf_counter()
            slice_end = since + time_slice
    finally:
        DRIVING.discard(key)
        if timer is not None:
            timer.cancel()


async def wait_woken(
    op: object,
    c: Completion,
    waiter: AsyncioWaiter,
    fut: Future[None],
    io: IOBackend | None,
    loop: AbstractEventLoop,
) -> None:
    """Await `fut`, which `waiter` (`c`'s done-callback) resolves when `c` finishes: the
    one await of `bridge._drive`'s commonest drive, which compiles. Here, interpreted, it
    can clean up: registered in `DRIVING` while it waits; a cancellation (or this coroutine
    closed unfinished, its loop gone) unregisters the waiter, gives up on `c` and `op` as
    any wait does, and re-raises. (`drive_asyncio`'s own waits do the same inline: a
    coroutine per wait there would cost every further wait of a longer operation.)"""
    key = id(op)
    DRIVING.add(key)  # before the await: from here on a second driver is refused
    try:
        await fut
    except BaseException as exc:
        waiter.forget(c)
        await _give_up_asyncio(op, c, exc, io, loop)
        raise
    finally:
        DRIVING.discard(key)


async def _pass_turn(
    op: object,
    io: IOBackend | None,
    loop: AbstractEventLoop,
    waiter: AsyncioWaiter | None,
    timeout: float | None,
    budget: PassBudget,
) -> None:
    """Wait until a pass has step budget left (`PassBudget`), arming it if it is fresh:
    parked until a refill wakes this drive; if that pass is spent already, parked again
    ahead of the drives never woken (`PassBudget.again`), so the drives woken together
    keep their order. A cancellation or an expired timeout meanwhile gives up on `op`, as
    any turn does."""
    fut: Future[None] = loop.create_future()
    budget.waiting.append(fut)
    while True:
        if waiter is not None:
            waiter.fut = fut  # so that the timeout's timer wakes it too
        try:
            await fut
        except BaseException as exc:  # a cancelled Future is done: the refill skips it
            await _give_up_asyncio(op, None, exc, io, loop)
            raise
        if waiter is not None and waiter.expired:
            await _time_out_asyncio(op, None, io, loop, timeout)
        if not budget.armed or budget.loop is not loop:
            budget.arm(loop)
            return
        if budget.spent <= budget.seconds:
            budget.stepped += 1
            return
        fut = loop.create_future()
        budget.again.append(fut)


async def _wait_asyncio(
    op: object,
    c: Completion,
    io: IOBackend | None,
    loop: AbstractEventLoop,
    waiter: AsyncioWaiter,
    timeout: float | None,
    *,
    registered: bool = False,
) -> None:
    """Wait on one Future at a time until `c` finishes (or the timeout expires). With
    `registered`, the waiter is already `c`'s done-callback and its Future was awaited."""
    if not registered:
        fut = waiter.wait_on(c)
    try:
        while True:
            if registered:
                registered = False
            else:
                await fut
            if c.finished():
                return
            if waiter.expired:
                break
            # A stale wake-up aimed at an earlier completion: wait again.
            waiter.fut = fut = loop.create_future()
    except BaseException as exc:
        waiter.forget(c)
        await _give_up_asyncio(op, c, exc, io, loop)
        raise
    waiter.forget(c)
    await _time_out_asyncio(op, c, io, loop, timeout)


async def _step_until_finished(
    op: object,
    c: Completion,
    io: IOBackend,
    loop: AbstractEventLoop,
    waiter: AsyncioWaiter,
    timeout: float | None,
) -> None:
    """Progress a `needs_stepping` backend until `c` finishes: one loop turn, then
    `io.step()`, and again. The turn comes first, so that every I/O point really yields
    (and is a cancellation point), and so that the other tasks' I/O queued meanwhile is
    served by the same step.

    A `step()` that finishes nothing while `c` is pending means nothing queued there can
    finish it (the contract `BackendBase.wait_for_completion` relies on too); then another
    party must, so the driver waits on the done-callback instead of spinning.
    """
    while True:
        try:
            await one_turn()
        except BaseException as exc:
            await _give_up_asyncio(op, c, exc, io, loop)
            raise
        if waiter.expired:
            await _time_out_asyncio(op, c, io, loop, timeout)
        if c.finished():
            return  # another task's step finished it
        progressed = io.step()
        if c.finished():
            return
        if not progressed:
            await _wait_asyncio(op, c, io, loop, waiter, timeout)
            return


async def _time_out_asyncio(
    op: object,
    c: Completion | None,
    io: IOBackend | None,
    loop: AbstractEventLoop,
    timeout: float | None,
) -> None:
    """Give up on `op` because its timeout expired; always raises `DriveTimeoutError`."""
    error = DriveTimeoutError(f"operation did not finish within {timeout} s")
    await _give_up_asyncio(op, c, error, io, loop)
    raise error


async def _give_up_asyncio(
    op: object,
    c: Completion | None,
    exc: BaseException,
    io: IOBackend | None,
    loop: AbstractEventLoop,
) -> None:
    """Abort `c` and `op`, then let in-flight work settle. The caller re-raises `exc`.

    A further cancellation while settling ends the wait; it propagates unless `exc` is a
    cancellation itself (which the caller re-raises anyway).
    """
    if c is not None and not c.finished():
        c.abort()
    abort_quietly(op, exc)
    if isinstance(exc, GeneratorExit):
        return  # the coroutine is being closed (its loop is gone): it must not await
    when_settled = when_settled_of(io)
    if when_settled is None:
        return
    fut: Future[None] = loop.create_future()
    if not when_settled(Resolver(fut)):
        return
    assert io is not None
    handle = loop.call_later(getattr(io, "settle_timeout", DEFAULT_SETTLE_TIMEOUT), resolve, fut)
    try:
        await fut
    except CancelledError:
        if not isinstance(exc, CancelledError):
            raise
    finally:
        handle.cancel()
