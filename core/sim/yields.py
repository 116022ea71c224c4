"""Yield injection: make an operation give up its turn where it otherwise would not
(Turso `core/mvcc/yield_points.rs` and `testing/concurrent-simulator/yield_injection.rs`).

Theory of operation:
- A *yield point* is a call to the `step()` of an operation wrapped in `InjectYields`. The
  wrapper asks its `YieldInjector` before forwarding; when told to yield it returns
  `IO(Completion.new_yield())` instead, and the wrapped operation is not called at all, so
  its re-entry is exactly as safe as it is after any other yield.
- Points are numbered in the order they are reached, across every wrapper sharing one
  injector: in a deterministic run, "point 3" names the same moment every time. An
  injector yields at chosen point numbers (`at`), or at random with `probability` from a
  seeded generator, never more than `max_yields` times (Turso's cap, so a run ends).
- Wrap sub-operations, not only the top one: a parent that mutated its state before a
  child yielded is caught when the child yields where, on a fast disk, it never did.
  `SimulatorIO.with_yields(op)` wraps with the simulator's own injector, which the
  explorer sets for each schedule.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Generic, TypeVar

from core.completion import Completion
from core.driver import Operation, abort_operation, as_step
from core.result import IO, Done
from core.sim.errors import SimConfigError

__all__ = ["InjectYields", "YieldInjector"]

T = TypeVar("T")


class YieldInjector:
    """Decides, at each yield point, whether to yield there.

    `at` names point numbers that always yield; `probability` makes any other point yield
    at random (drawn from `rng`, required then); at most `max_yields` yields in all.
    Raises `SimConfigError` for a probability outside [0, 1], a negative point number or a
    negative cap, or a probability without an `rng`.
    """

    __slots__ = ("_at", "_max_yields", "_probability", "_rng", "injected", "points")

    def __init__(
        self,
        *,
        at: Iterable[int] = (),
        probability: float = 0.0,
        rng: random.Random | None = None,
        max_yields: int = 20,
    ) -> None:
        chosen = frozenset(at)
        if any(p < 0 for p in chosen):
            raise SimConfigError(f"yield points must be >= 0, got {sorted(chosen)}")
        if not 0.0 <= probability <= 1.0:
            raise SimConfigError(f"yield probability must be between 0 and 1, got {probability}")
        if probability > 0.0 and rng is None:
            raise SimConfigError("a yield probability needs an rng to draw from")
        if max_yields < 0:
            raise SimConfigError(f"max_yields must be >= 0, got {max_yields}")
        self._at = chosen
        self._probability = probability
        self._rng = rng
        self._max_yields = max_yields
        self.points = 0
        """How many yield points have been reached."""
        self.injected: list[int] = []
        """The point numbers at which a yield was injected, in order."""

    def should_yield(self) -> bool:
        """Count one yield point and say whether to yield there."""
        point = self.points
        self.points += 1
        if len(self.injected) >= self._max_yields:
            return False
        if point in self._at or (
            self._probability > 0.0
            and self._rng is not None
            and self._rng.random() < self._probability
        ):
            self.injected.append(point)
            return True
        return False

    def wrap(self, op: Operation[T]) -> InjectYields[T]:
        """`op` wrapped so that each of its steps is a yield point of this injector."""
        return InjectYields(op, self)

    def __repr__(self) -> str:
        return (
            f"YieldInjector(at={sorted(self._at)}, probability={self._probability}, "
            f"points={self.points}, injected={self.injected})"
        )


class InjectYields(Generic[T]):
    """An operation that asks `injector` before each step of `op` whether to yield first.

    Raises whatever `op` raises; `abort` is forwarded to `op`.
    """

    __slots__ = ("_injector", "_step", "op")

    def __init__(self, op: Operation[T], injector: YieldInjector) -> None:
        self.op = op
        self._step = as_step(op)
        self._injector = injector

    def step(self) -> Done[T] | IO:
        """Yield (`IO(Completion.new_yield())`) if the injector says so, else step `op`."""
        if self._injector.should_yield():
            return IO(Completion.new_yield())
        return self._step()

    def abort(self, error: BaseException) -> None:
        """Forward a driver's abort to the wrapped operation."""
        abort_operation(self.op, error)

    def __repr__(self) -> str:
        return f"InjectYields({self.op!r})"
