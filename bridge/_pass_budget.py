"""The step budget the drives on one asyncio (or uvloop) loop share per loop pass.

Compiled in the compiled build: `drive` reads and updates it on every run of steps.
"""

from __future__ import annotations

import threading
from collections import deque
from time import perf_counter
from typing import Any, ClassVar, Final

__all__ = ["DEFAULT_PASS_BUDGET", "THREAD_STATE", "PassBudget", "thread_budget"]

_perf_counter: Final = perf_counter  # a C static when compiled, not a global lookup
DEFAULT_PASS_BUDGET: Final = 0.00025
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

    MIN_RELEASE: ClassVar[int] = 4

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

    def charge(self, since: float) -> None:
        """A drive's run of steps that began at `since` (`perf_counter`) ends now."""
        self.spent += _perf_counter() - since

    def after_wait(self, loop: Any) -> bool:
        """A drive woken from a wait on `loop` is about to step: True if this pass has
        stepped long enough and it must park (`waiting`, `again`) until a later one."""
        if not self.armed or self.loop is not loop:
            self.arm(loop)
            return False
        if self.spent > self.seconds:
            return True
        self.stepped += 1
        return False

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


THREAD_STATE: Final = threading.local()
"""Per-thread state of the drivers: `budget`, the `PassBudget` of the loop on the thread
(read directly by `drive`, which saves a call on its fast path)."""


def thread_budget() -> PassBudget:
    """The `PassBudget` of the loop running on this thread."""
    try:
        budget: PassBudget = THREAD_STATE.budget
    except AttributeError:
        budget = THREAD_STATE.budget = PassBudget()
    return budget
