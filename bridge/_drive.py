"""`await drive(op, io)`: run a core operation from an event loop.

Theory of operation (the async twin of `core.block`; psycopg's `waiting.py` is the model):
- Step the operation. `Done` ends the run. The commonest run is one step to `Done` (a
  cache hit): this module takes that step itself and returns, with no more than the checks
  every call needs. The next commonest is one wait on one completion and then one step to
  `Done` (a read that missed the cache): this module takes that too, and only the await
  itself runs in the interpreted `bridge._drive_asyncio.wait_woken`. Everything else that
  awaits (more waits, a loop turn, a park for the pass's step budget, a timeout, a backend
  the driver steps) runs in `bridge._drive_asyncio.drive_asyncio` (asyncio and uvloop) or
  `bridge._trio`, which this module hands the run over to where it stands.
- The split is what lets this module compile (setup.py) while the part that awaits stays
  interpreted: that part cleans up in `finally` (the operation's registration in
  `DRIVING`, the timeout's timer, the waiter on a completion) and aborts the operation
  when its coroutine is closed, and a coroutine compiled by mypyc that is dropped
  unfinished (its loop closed under it) never runs its `finally` blocks, where an
  interpreted one is closed when it is collected. This front keeps nothing to clean up
  of its own: across its one await it holds no registration that `wait_woken` does not
  undo (the operation in `DRIVING`, the waiter on the completion), and the interpreted
  coroutine it awaits is collected (and so closed) with it.
- The first step is taken here only if the pass's step budget (`PassBudget`) has room and
  no drive is parked on it, and never with a timeout (its timer is armed before the first
  step, so that the deadline counts from the call).
- `bridge._trio` is imported inside `drive`, never at module level: trio is imported only
  when running under it. Which library runs us is read from sniffio's cheap
  thread-local/context variable first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Final, SupportsFloat, TypeVar

import sniffio

from bridge._asyncio_wake import AsyncioWaiter
from bridge._drive_asyncio import drive_asyncio, wait_woken
from bridge._drive_common import DRIVING, check_seconds, refuse_second_driver
from bridge._errors import EventLoopError
from bridge._pass_budget import THREAD_STATE, PassBudget, thread_budget
from core.driver import Operation, after_finished, as_step
from core.result import IO, Done

if TYPE_CHECKING:
    from core.io.backend import IOBackend

__all__ = ["drive"]

T = TypeVar("T")

# What every call uses, as `Final` names: compiled, those are C statics, where a plain
# module global (an imported name too) costs a dictionary lookup at each use.
_sniffio_thread: Final = sniffio.thread_local
_sniffio_cvar: Final = sniffio.current_async_library_cvar
_get_running_loop: Final = asyncio.get_running_loop
_perf_counter: Final = perf_counter
_DRIVING: Final = DRIVING
_wait_woken: Final = wait_woken
_callable: Final = callable  # a builtin's name is looked up in `builtins` at each use


async def drive(
    op: Operation[T], io: IOBackend | None = None, *, timeout: SupportsFloat | None = None
) -> T:
    """Run `op` to `Done` on the running event loop (asyncio, uvloop or trio); return its value.

    `io` is the backend the operation's I/O goes to: the driver steps it when it
    `needs_stepping`, takes its `time_slice` and `settle_timeout` when it has them, and asks
    it (`when_settled`) for in-flight work to come back after a cancellation. Without `io`
    the driver only waits on completions' done-callbacks.

    Raises: the first failed completion's `CompletionError` (after `op.abort(error)`);
    whatever `op.step()` raises; `DriveTimeoutError` (a `TimeoutError`) when `timeout`
    seconds pass first, and the loop's cancellation (`asyncio.CancelledError`, trio
    `Cancelled`) when cancelled, both after aborting the outstanding completion and calling
    `op.abort`; `EventLoopError` outside asyncio/uvloop/trio; `InvalidArgumentError` for a
    `timeout` that is not a finite number of seconds >= 0; `ConcurrentDriveError` at once,
    before touching `op`, if another `drive` is running the same operation object;
    `TypeError` if `op` is not an operation.
    """
    # `timeout` is declared `SupportsFloat` rather than `float` so that the compiled build
    # checks it here (`InvalidArgumentError`) instead of at the call (a bare `TypeError`).
    # `as_step` inline: one call fewer per operation.
    step: Callable[[], Done[T] | IO] | None = getattr(op, "step", None)
    if step is None or not _callable(step):
        step = as_step(op)
    seconds: float | None = None if timeout is None else check_seconds(timeout, "timeout")
    if id(op) in _DRIVING:
        refuse_second_driver(op)
    library = _sniffio_thread.name or _sniffio_cvar.get()
    if library is None or library == "asyncio":
        try:
            loop = _get_running_loop()
        except RuntimeError:
            raise EventLoopError(
                "drive() must be awaited under asyncio, uvloop or trio; no running event loop"
            ) from None
    elif library == "trio":
        from bridge import _trio

        return await _trio.drive_trio(op, step, io, seconds)
    else:
        raise EventLoopError(f"drive() runs under asyncio, uvloop or trio, not {library!r}")

    started = _perf_counter()
    budget: PassBudget = getattr(THREAD_STATE, "budget", None) or thread_budget()
    if not budget.armed or budget.loop is not loop:
        budget.arm(loop)
    # A first step waits behind the drives already parked (`PassBudget.parked`, inline).
    if (
        seconds is None
        and budget.spent <= budget.seconds
        and not budget.waiting
        and not budget.again
    ):
        budget.stepped += 1
        result = step()
        if type(result) is Done:
            budget.spent += _perf_counter() - started
            return result.value
        c = result.completion  # type: ignore[union-attr]
        if c.finished() or (io is not None and io.needs_stepping):
            return await drive_asyncio(op, step, io, loop, None, budget, started, result)
        # One wait on one completion, then (commonly) one step to `Done`: the wait is the
        # interpreted `wait_woken`, which cleans up if this coroutine is dropped unfinished;
        # everything around it runs here, compiled.
        waiter = AsyncioWaiter(loop)
        fut = waiter.wait_on(c)
        budget.charge(started)
        await _wait_woken(op, c, waiter, fut, io, loop)
        if not c.finished():  # a stale wake-up: wait again, there
            waiter.forget(c)
            return await drive_asyncio(op, step, io, loop, None, budget, _perf_counter(), result)
        if c.get_error() is not None:
            after_finished(op, c)  # raises it
        if budget.after_wait(loop):  # this pass has stepped long enough: park first, there
            return await drive_asyncio(op, step, io, loop, None, budget, _perf_counter(), None)
        since = _perf_counter()
        result = step()
        if type(result) is Done:
            budget.charge(since)
            return result.value
        return await drive_asyncio(op, step, io, loop, None, budget, since, result)
    return await drive_asyncio(op, step, io, loop, seconds, budget, started, None)
