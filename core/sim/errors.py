"""Errors the simulator raises on purpose.

Every one derives from `IOResultError`. A failure found by simulation carries the seed (and,
where one exists, the schedule) that reproduces it, and its message says how to replay it:
a failure that cannot be replayed is only half a bug report.
"""

from __future__ import annotations

from core.errors import IOResultError

__all__ = [
    "InvariantViolation",
    "ScheduleMismatchError",
    "SimConfigError",
    "SimulationError",
    "SimulationHang",
]


class SimConfigError(IOResultError, ValueError):
    """A simulator setting is out of range (a probability outside [0, 1], a negative
    latency, ...); the message names the setting and the value."""


class SimulationError(IOResultError):
    """A simulation found a problem. `seed` is the seed that shows it (or `None` where
    no seed applies); `replay` says how to run it again."""

    seed: int | None
    replay: str

    def __init__(self, message: str, *, seed: int | None = None, replay: str = "") -> None:
        self.seed = seed
        self.replay = replay
        text = message
        if seed is not None:
            text += f"\n  seed: {seed}"
        if replay:
            text += f"\n  replay: {replay}"
        super().__init__(text)


class SimulationHang(SimulationError):
    """An operation did not finish within its step budget, or waited on a completion
    that nothing pending could finish."""


class ScheduleMismatchError(SimulationError):
    """`explore` found a schedule under which an operation's result, or the files it
    left behind, differ from the run where every I/O completed inline.

    `schedule` is the smallest such schedule found (fewest perturbations: one deferred
    I/O or one injected yield before everything deferred, before random seeds);
    `expected` and `actual` describe the two outcomes; `difference` says what differs.
    """

    schedule: object
    expected: str
    actual: str
    difference: str

    def __init__(
        self,
        message: str,
        *,
        schedule: object,
        expected: str,
        actual: str,
        difference: str,
        seed: int | None,
        replay: str,
    ) -> None:
        self.schedule = schedule
        self.expected = expected
        self.actual = actual
        self.difference = difference
        super().__init__(message, seed=seed, replay=replay)


class InvariantViolation(SimulationError):
    """An invariant a simulation checks was broken (a fiber runner's check, or one of the
    soak's: wrong result, unclean error, lost durable data, completion left pending)."""
