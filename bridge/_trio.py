"""The trio half of the bridge; imported only when something runs under trio.

Theory of operation (same rules as the asyncio half in `bridge._drive`, which imports this
module only when a drive runs under trio; what both share is in `bridge._drive_common`):
- A waiting drive parks its task with `trio.lowlevel.wait_task_rescheduled` and is woken by
  `reschedule` from the completion's done-callback: directly on the trio thread, through
  `TrioToken.run_sync_soon` from any other thread (it never blocks the caller, unlike
  anyio's `from_thread`). A `waiting` flag makes sure `reschedule` happens exactly once per
  park, as trio requires, even if a late wake-up and a cancellation race.
- A timeout is a `CancelScope` with a deadline, as `trio.fail_after` is; the Cancelled it
  delivers is turned into `DriveTimeoutError` once the operation was aborted.
- Settling after a cancellation waits under a shielded scope with its own deadline, since
  every checkpoint inside a cancelled scope would raise again at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any, TypeVar

import trio
from trio.lowlevel import (
    Abort,
    Task,
    checkpoint,
    current_task,
    current_trio_token,
    reschedule,
)
from trio.lowlevel import wait_task_rescheduled as _park

from bridge._drive_common import (
    DEFAULT_SETTLE_TIMEOUT,
    DEFAULT_TIME_SLICE,
    DRIVING,
    abort_quietly,
    when_settled_of,
)
from bridge._errors import DriveTimeoutError
from core.completion import Completion
from core.driver import after_finished
from core.result import IO, Done
from core.unraisable import report_unraisable

if TYPE_CHECKING:
    from core.io.backend import IOBackend

__all__ = ["TrioLoopHandle", "drive_trio", "wait_settled_trio"]

T = TypeVar("T")


class _TrioWaiter:
    """Wakes one parked drive call; the done-callback of the completion it waits on."""

    __slots__ = ("completion", "task", "thread_id", "token", "waiting")

    def __init__(self) -> None:
        self.task: Task = current_task()
        self.token = current_trio_token()
        self.thread_id = get_ident()
        self.completion: Completion | None = None
        self.waiting = False

    def __call__(self, completion: Completion) -> None:
        if completion is not self.completion:
            return
        if get_ident() == self.thread_id:
            self.wake()
            return
        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(self.wake)

    def wake(self) -> None:
        """Reschedule the parked task, once per park (trio thread only)."""
        if self.waiting:
            self.waiting = False
            reschedule(self.task)

    def abort(self, raise_cancel: Any) -> Abort:
        """trio's abort function: a cancellation is always accepted."""
        self.waiting = False
        return Abort.SUCCEEDED


async def drive_trio(
    op: object,
    step: Callable[[], Done[T] | IO],
    io: IOBackend | None,
    timeout: float | None,
) -> T:
    """`bridge.drive` under trio (see there for what it raises)."""
    key = id(op)
    DRIVING.add(key)  # the caller checked; no await since
    try:
        if timeout is None:
            return await _run(op, step, io, None)
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            return await _run(op, step, io, scope)
        # The scope caught its own Cancelled: the deadline passed and `op` was aborted.
        raise DriveTimeoutError(f"operation did not finish within {timeout} s")
    finally:
        DRIVING.discard(key)


async def _run(
    op: object,
    step: Callable[[], Done[T] | IO],
    io: IOBackend | None,
    scope: trio.CancelScope | None,
) -> T:
    time_slice: float = DEFAULT_TIME_SLICE
    stepping = False
    if io is not None:
        stepping = io.needs_stepping
        time_slice = getattr(io, "time_slice", DEFAULT_TIME_SLICE)
    clock = trio.current_time  # monotonic, cheap
    waiter: _TrioWaiter | None = None
    c: Completion | None = None
    slice_end = clock() + time_slice
    while True:
        result = step()
        if type(result) is Done:
            return result.value
        c = result.completion  # type: ignore[union-attr]
        if c.finished():
            # Inline, the common case (succeeded, not a yield): step again within the slice.
            # `after_finished` settles the rest: a failure raises, a yield takes the turn.
            if c.get_error() is None and not c.is_explicit_yield():
                if clock() < slice_end:
                    continue
            else:
                after_finished(op, c)
            try:
                await checkpoint()
            except BaseException as exc:
                await _give_up(op, None, exc, io, scope)
                raise
            slice_end = clock() + time_slice
            continue
        if waiter is None:
            waiter = _TrioWaiter()
        try:
            if stepping:
                assert io is not None
                while True:  # a turn, then a step: see bridge._drive
                    await checkpoint()
                    if c.finished():
                        break
                    progressed = io.step()
                    if c.finished():
                        break
                    if not progressed:
                        await _park_until_finished(c, waiter)
                        break
            else:
                await _park_until_finished(c, waiter)
        except BaseException as exc:
            await _give_up(op, c, exc, io, scope)
            raise
        if c.get_error() is not None:
            after_finished(op, c)  # raises
        slice_end = clock() + time_slice


async def _park_until_finished(c: Completion, waiter: _TrioWaiter) -> None:
    waiter.completion = c
    c.add_done_callback(waiter)
    try:
        while not c.finished():
            waiter.waiting = True
            await _park(waiter.abort)
    finally:
        waiter.waiting = False
        waiter.completion = None
        if not c.finished():
            c.remove_done_callback(waiter)


async def _give_up(
    op: object,
    c: Completion | None,
    exc: BaseException,
    io: IOBackend | None,
    scope: trio.CancelScope | None,
) -> None:
    """Abort `c` and `op` and let in-flight work settle; the caller re-raises `exc`."""
    if c is not None and not c.finished():
        c.abort()
    reported: BaseException = exc
    if scope is not None and scope.cancel_called and isinstance(exc, trio.Cancelled):
        reported = DriveTimeoutError("operation timed out")
    abort_quietly(op, reported)
    if io is not None and not isinstance(exc, GeneratorExit):
        await wait_settled_trio(io, getattr(io, "settle_timeout", DEFAULT_SETTLE_TIMEOUT))


async def wait_settled_trio(io: object, settle_timeout: float) -> None:
    """Wait (shielded, at most `settle_timeout` s) until `io.when_settled` says the work
    handed to its workers has come back; return at once if it has none out."""
    when_settled = when_settled_of(io)
    if when_settled is None:
        return
    event = trio.Event()
    if not when_settled(event.set):
        return
    with trio.CancelScope(shield=True, deadline=trio.current_time() + settle_timeout):
        await event.wait()


class TrioLoopHandle:
    """How `AsyncFileIO` reaches a trio run: schedule on it, post to it from workers."""

    __slots__ = (
        "_runner",
        "_runner_ended",
        "_runner_parked",
        "_soon",
        "thread_id",
        "token",
        "watched",
    )

    def __init__(self) -> None:
        self.token = current_trio_token()
        self.thread_id = get_ident()
        self.watched: set[int] = set()  # descriptors with a watcher task
        self._soon: list[tuple[Callable[[Any], object], object]] = []  # for `call_soon`
        self._runner: Task | None = None  # the system task that runs `_soon`
        self._runner_parked = False
        self._runner_ended = False

    def is_current(self) -> bool:
        """True on the thread and in the run this handle was made in."""
        try:
            return current_trio_token() is self.token
        except RuntimeError:
            return False

    def call_soon(self, fn: Callable[[Any], object], arg: object) -> None:
        """Run `fn(arg)` on the run's thread soon (called from that thread), in order.

        A system task runs them, woken with `reschedule`: it runs in the run's next batch
        of tasks, and waking it makes no system call (`TrioToken.run_sync_soon` writes to
        trio's wake-up socket every time, and its queue runs only after the next poll).
        Once that task has ended (the run is finishing) this falls back to `run_sync_soon`.
        """
        if self._runner_ended:
            self.token.run_sync_soon(fn, arg)
            return
        self._soon.append((fn, arg))
        runner = self._runner
        if runner is None:
            try:
                self._runner = trio.lowlevel.spawn_system_task(
                    _run_soon, self, name="ioresult-call-soon"
                )
            except RuntimeError:  # the run no longer starts system tasks
                self._soon.pop()
                self._runner_ended = True
                self.token.run_sync_soon(fn, arg)
        elif self._runner_parked:
            self._runner_parked = False
            reschedule(runner)

    def _runner_cancelled(self, raise_cancel: object) -> Abort:
        """The runner is ending (trio's abort function of its park, or its `finally`):
        from now on `call_soon` goes through `run_sync_soon`, and so does what is queued,
        in order. Never reschedule the runner again: trio already has."""
        self._runner_parked = False
        self._runner_ended = True
        left, self._soon = self._soon, []
        with contextlib.suppress(trio.RunFinishedError):
            for fn, arg in left:
                self.token.run_sync_soon(fn, arg)
        return Abort.SUCCEEDED

    def post(self, fn: Callable[[Any], object], arg: object) -> bool:
        """Run `fn(arg)` on the run's thread (called from a worker); False if the run ended."""
        try:
            self.token.run_sync_soon(fn, arg)
        except trio.RunFinishedError:
            return False
        return True

    def unit(self) -> object:
        """The current task (requests of one task's step travel together), or None."""
        try:
            return current_task()
        except RuntimeError:
            return None

    async def wait_settled(self, io: object, settle_timeout: float) -> None:
        """See `wait_settled_trio`."""
        await wait_settled_trio(io, settle_timeout)

    def watch_readable(self, fd: int, fn: Callable[[Any], object]) -> None:
        """Call `fn(None)` on the run's thread whenever `fd` is readable: a system task
        waits with `wait_readable` (it lives as long as the run, or until `unwatch`)."""
        self.watched.add(fd)
        trio.lowlevel.spawn_system_task(
            _watch_readable, fd, fn, self.watched, name=f"ioresult-watch-{fd}"
        )

    def unwatch(self, fd: int) -> None:
        """Stop the watcher of `fd` before it is closed (trio requires `notify_closing`)."""
        self.watched.discard(fd)
        if self.is_current():
            trio.lowlevel.notify_closing(fd)


async def _run_soon(handle: TrioLoopHandle) -> None:
    """A system task: run what `call_soon` queued, one turn per batch of tasks, then park
    until more is queued. It ends when the run cancels its system tasks, and hands what is
    still queued to the run."""
    try:
        while True:
            soon = handle._soon
            # Only what was queued before this turn; what these callbacks queue runs in the
            # next batch of tasks, as a callback's `call_soon` runs in the next pass on
            # asyncio (the inline read budget's refill relies on it: refilled at once, it
            # would bound nothing). Popped one by one: if one raises a BaseException, the
            # rest stay queued, and the `finally` hands them to the run.
            for _ in range(len(soon)):
                fn, arg = soon.pop(0)
                try:
                    fn(arg)
                except Exception as exc:  # one callback must not end the run
                    report_unraisable(exc, "Exception in a callback of AsyncFileIO", fn)
            if soon:
                await checkpoint()  # the next batch; cancelled once the run ends
                continue
            handle._runner_parked = True
            await _park(handle._runner_cancelled)
    finally:
        handle._runner_cancelled(None)


async def _watch_readable(fd: int, fn: Callable[[Any], object], watched: set[int]) -> None:
    """A system task: `fn` must not raise (an exception here would crash the run). It
    stops once `fd` is no longer watched, so it never waits on a number reused since."""
    while fd in watched:
        try:
            await trio.lowlevel.wait_readable(fd)
        except (trio.ClosedResourceError, OSError, ValueError):  # `unwatch`, or closed
            return
        if fd in watched:
            fn(None)
