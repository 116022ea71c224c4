"""Running one operation on a simulator with a step budget, and what came of it.

Theory of operation:
- `run_op` is `block` with two differences that a simulation needs: it never hangs (every
  `step()` of the operation and of the backend counts against a budget, and waiting on a
  completion that nothing pending can finish is reported at once), and it never raises
  what the operation raised: the result, or the exception, becomes an `Outcome`.
- Like `block`, it raises nothing for a failed completion but ends there, after calling
  the operation's `abort` with the error, which the `Outcome` carries.
- Two outcomes are the same when both values are equal, or both errors have the same
  type and the same message (our messages name kind, path and offset, never addresses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

from core.driver import Operation, after_finished, as_step
from core.result import Done
from core.sim.backend import SimulatorIO
from core.sim.errors import SimulationHang

__all__ = ["Outcome", "run_op"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """How a run ended: `value` if it finished, else `error`; `steps` counts the operation's
    steps and the backend's."""

    value: T | None
    error: BaseException | None
    steps: int
    in_flight: int = 0
    """I/Os still pending on the simulator when the operation returned or raised."""

    @property
    def ok(self) -> bool:
        """True if the operation finished with a value."""
        return self.error is None

    def describe(self) -> str:
        """`Done(value)` or `raised Type: message`, for failure reports."""
        if self.error is None:
            text = repr(self.value)
            if len(text) > 200:
                text = text[:200] + f"... ({len(text)} characters)"
            return f"Done({text})"
        return f"raised {type(self.error).__name__}: {self.error}"

    def same_as(self, other: Outcome[T], equal: Callable[[T, T], bool] | None = None) -> bool:
        """True if both finished with equal values, or both raised alike."""
        if self.error is None and other.error is None:
            a, b = self.value, other.value
            if equal is not None:
                return equal(a, b)  # type: ignore[arg-type]
            return bool(a == b)
        if self.error is None or other.error is None:
            return False
        return type(self.error) is type(other.error) and str(self.error) == str(other.error)


def run_op(op: Operation[T], io: SimulatorIO, *, max_steps: int = 1_000_000) -> Outcome[T]:
    """Drive `op` on `io` to its end, as `block` does, and report how it ended.

    Never raises what the operation (or a failed completion) raised: that is the
    outcome's `error`. A run that exceeds `max_steps`, or waits on a completion nothing
    pending can finish, ends with a `SimulationHang` as its error.
    """
    step = as_step(op)
    steps = 0
    try:
        while True:
            steps += 1
            if steps > max_steps:
                return _hang(io, steps, f"did not finish within {max_steps} steps")
            result = step()
            if type(result) is Done:
                return Outcome(result.value, None, steps, io.pending())
            completion = result.completion  # type: ignore[union-attr]
            while not completion.finished():
                steps += 1
                if steps > max_steps:
                    return _hang(io, steps, f"did not finish within {max_steps} steps")
                if io.step() == 0 and not completion.finished():
                    return _hang(
                        io, steps, f"waits on {completion!r}, which nothing pending will finish"
                    )
            # A failure raises (after `op.abort`) and becomes the outcome below; a yield
            # steps again at once, as in `block`: a single operation has no one to yield to.
            after_finished(op, completion)
    except Exception as exc:
        return Outcome(None, exc, steps, io.pending())


def _hang(io: SimulatorIO, steps: int, why: str) -> Outcome[T]:
    error = SimulationHang(f"operation {why} on {io.describe()}", seed=io.seed)
    return Outcome(None, error, steps, io.pending())
