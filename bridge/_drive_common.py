"""What the asyncio driver (`bridge._drive`) and the trio driver (`bridge._trio`) share.

Rules it keeps:
- It imports neither driver, so both (and the file backend) can import it at module level
  without an import circle: `bridge._drive` imports `bridge._trio` only lazily, when a drive
  runs under trio, and `bridge._trio` needs nothing of `bridge._drive`.
- Nothing here is on the per-step path of a drive; these run once per call or when a drive
  gives up (a cancellation, a timeout).
"""

from __future__ import annotations

import math
import threading
import types
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

from bridge._errors import ConcurrentDriveError, InvalidArgumentError
from core.driver import abort_operation
from core.unraisable import report_unraisable

__all__ = [
    "DEFAULT_PASS_BUDGET",
    "DEFAULT_SETTLE_TIMEOUT",
    "DEFAULT_TIME_SLICE",
    "DRIVING",
    "THREAD_STATE",
    "PassBudget",
    "abort_quietly",
    "check_seconds",
    "one_turn",
    "refuse_second_driver",
    "thread_budget",
    "when_settled_of",
]


@types.coroutine
def one_turn() -> Generator[None, None, None]:
    """Give the asyncio loop exactly one turn (what `asyncio.sleep(0)` does, minus a call)."""
    yield


DEFAULT_TIME_SLICE = 0.002
"""Seconds a run of already-finished steps may hold the loop before it gets a turn."""

DEFAULT_SETTLE_TIMEOUT = 1.0
"""Seconds a cancelled drive waits for work already in a worker to come back."""

DEFAULT_PASS_BUDGET = 0.00025
"""Seconds the drives on one asyncio loop may step in one loop pass, all together."""


class PassBudget:
    """How long the drives on one asyncio (or uvloop) loop have stepped in this loop pass.

    A drive that is about to step (its first step, or after a wait) first looks here: once
    the drives' steps in this pass have taken `seconds` together (`spent`), the drive
    parks on a Future in `waiting` instead of stepping. So 200 tasks started (or woken) in
    one pass take several short passes, with timers and I/O callbacks served in between,
    instead of one long one.

    Only the time drives spend stepping counts, from the moment a drive may step until it
    awaits or returns: what their tasks do between drives is theirs to bound. (Counting
    the pass's wall time did not: a server's tasks spend most of a request around its one
    read, so every drive after the first request of a pass parked, paying a Future, a
    wake-up and more passes for work that ran anyway, which capped the requests a loop
    served per second.)

    The budget refills in the next pass (`refill`, a `call_soon` made when it is armed),
    which wakes, oldest first, as many parked drives as stepped within the budget in the
    pass before (at least `MIN_RELEASE`): a parked drive costs nothing per pass while it
    waits. A woken drive that finds the pass spent again parks again, in `again`, which
    the next refill wakes first and in order: so the drives woken together keep their
    order without spinning one turn per pass each (a turn resumes the whole stack of
    coroutines above the drive: a web framework's dozen frames, per drive per pass).

    One instance per thread (`thread_budget`), since a thread runs one loop at a time.
    """

    __slots__ = ("again", "armed", "loop", "seconds", "spent", "stepped", "waiting")

    MIN_RELEASE = 4

    def __init__(self, seconds: float = DEFAULT_PASS_BUDGET) -> None:
        self.seconds = seconds
        self.loop: object = None
        self.armed = False
        self.spent = 0.0  # seconds the drives have stepped since it was armed
        self.stepped = 0  # steps taken within the budget since it was armed
        self.waiting: deque[Any] = deque()  # Futures of parked drives, oldest first
        self.again: list[Any] = []  # Futures of woken drives that parked again, in order

    def arm(self, loop: Any) -> None:
        """The first step of a pass on `loop`: nothing of the budget is spent yet."""
        if loop is not self.loop:
            self.waiting.clear()  # Futures of a loop that no longer runs on this thread
            self.again.clear()
            self.loop = loop
        self.armed = True
        self.spent = 0.0
        self.stepped = 1
        loop.call_soon(self.refill, None)

    def parked(self) -> bool:
        """Whether drives wait for a refill: a drive's first step then waits behind them,
        else the tasks that start in every pass (a busy server's new requests) would take
        each pass's budget before the parked drives, which would wait without bound."""
        return bool(self.waiting or self.again)

    def refill(self, _: object = None) -> None:
        """Loop callback, the pass after arming: the next step arms a fresh budget; wake
        as many parked drives as the last pass stepped."""
        self.armed = False
        waiting = self.waiting
        again = self.again
        if again:
            waiting.extendleft(reversed(again))
            again.clear()
        release = max(self.MIN_RELEASE, self.stepped)
        while waiting and release:
            fut = waiting.popleft()
            if not fut.done():  # else: cancelled while parked
                fut.set_result(None)
                release -= 1


THREAD_STATE = threading.local()
"""Per-thread state of the drivers: `budget`, the `PassBudget` of the loop on the thread
(read directly by `drive`, which saves a call on its fast path)."""


def thread_budget() -> PassBudget:
    """The `PassBudget` of the loop running on this thread."""
    try:
        budget: PassBudget = THREAD_STATE.budget
    except AttributeError:
        budget = THREAD_STATE.budget = PassBudget()
    return budget


DRIVING: set[int] = set()
"""The identities (`id`) of the operations some `drive` is running right now, in any thread:
an operation object is stepped by one driver at a time. A drive adds its operation before
its first await and removes it in `finally`; while it is there the object is alive (the
drive holds it), so its `id` names it alone."""


def refuse_second_driver(op: object) -> None:
    """Raise `ConcurrentDriveError` if another drive is running `op` now."""
    if id(op) in DRIVING:
        raise ConcurrentDriveError(
            f"{op!r} is already being driven by another drive() call; an operation runs "
            "under one driver at a time (await that call, or build a new operation)"
        )


def abort_quietly(op: object, exc: BaseException) -> None:
    """`op.abort(exc)` while a cancellation or timeout is on its way out: an abort that
    raises (it must not) is reported, never allowed to replace the cancellation."""
    try:
        abort_operation(op, exc)
    except Exception as abort_exc:
        report_unraisable(abort_exc, f"Exception in abort() of {op!r}", op)


def when_settled_of(io: object) -> Callable[[Callable[[], object]], bool] | None:
    """The backend's `when_settled(callback) -> bool` (False: nothing is out, the callback
    will not be called), or None for a backend that hands no work to workers."""
    when_settled: Any = getattr(io, "when_settled", None)
    return when_settled if callable(when_settled) else None


def check_seconds(value: float, name: str) -> float:
    """Validate a finite, non-negative number of seconds (an `int` too large for a float,
    infinity and NaN are refused, never read as "no limit": that is None where a limit is
    optional). Raises `InvalidArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{name} must be a number of seconds >= 0, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds >= 0, got an integer too large "
            f"for a float ({int(value).bit_length()} bits)"
        ) from None
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return seconds
