"""Many operations on one thread, interleaved by a seed (Turso's Whopper,
`testing/concurrent-simulator`, in miniature).

Theory of operation:
- A *fiber* is one operation and where it stands: runnable (never stepped, or its last
  completion has finished), waiting (its last `IO` completion is still pending), or done
  (with a value or an error).
- Each turn the runner picks one runnable fiber at random and steps it once, then, with
  probability `io_step_probability`, steps the shared `SimulatorIO` once; when no fiber
  is runnable it steps the simulator. Explicit yields leave a fiber runnable, so another
  fiber may well go first. So the seed chooses the interleaving, and the simulator's own
  seed chooses the completion order: both are printed when something fails.
- A fiber ends like `block` ends an operation: `Done(value)`, or the first failed
  completion's error (after its `abort`), or what its `step()` raised. Errors derived from
  `IOResultError` are outcomes; anything else is a bug and raises `InvariantViolation`.
- After every turn the runner calls each `invariant()`; it raises (e.g. `AssertionError`)
  or returns a string to report a violation. `at_end(fibers)` runs once at the end.
  A run that exceeds `max_turns`, or where every fiber waits on completions nothing
  pending can finish, raises `SimulationHang`.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from typing import Any

from core.completion import Completion
from core.driver import Operation, after_finished, as_step
from core.errors import CompletionError, IOResultError
from core.result import IO, Done
from core.sim.backend import SimulatorIO
from core.sim.errors import InvariantViolation, SimConfigError, SimulationHang

__all__ = ["Fiber", "FiberRunner", "FiberState"]

Invariant = Callable[[], str | None]
"""A check run after every turn: raise, or return a description of the violation."""


class FiberState(enum.Enum):
    """Where a fiber stands."""

    RUNNABLE = "runnable"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


class Fiber:
    """One operation in a `FiberRunner`: `name`, `state`, `value` or `error`, `steps`."""

    __slots__ = ("_step", "error", "name", "op", "state", "steps", "value", "waiting_on")

    def __init__(self, name: str, op: Operation[Any]) -> None:
        self.name = name
        self.op = op
        self._step = as_step(op)
        self.state = FiberState.RUNNABLE
        self.value: object = None
        self.error: BaseException | None = None
        self.steps = 0
        self.waiting_on: Completion | None = None

    @property
    def finished(self) -> bool:
        """True once done or failed."""
        return self.state in (FiberState.DONE, FiberState.FAILED)

    def __repr__(self) -> str:
        return f"<Fiber {self.name} {self.state.value} steps={self.steps}>"


class FiberRunner:
    """Interleave fibers over one `SimulatorIO` in an order chosen by `seed`.

    Raises `SimConfigError` for `io_step_probability` outside [0, 1] or `max_turns` < 1.
    """

    __slots__ = (
        "_at_end",
        "_invariants",
        "_io_p",
        "_max_turns",
        "fibers",
        "io",
        "rng",
        "seed",
        "turns",
    )

    def __init__(
        self,
        io: SimulatorIO,
        *,
        seed: int = 0,
        io_step_probability: float = 0.5,
        max_turns: int = 1_000_000,
        invariants: Sequence[Invariant] = (),
        at_end: Callable[[list[Fiber]], str | None] | None = None,
    ) -> None:
        if not 0.0 <= io_step_probability <= 1.0:
            raise SimConfigError(
                f"io_step_probability must be between 0 and 1, got {io_step_probability}"
            )
        if max_turns < 1:
            raise SimConfigError(f"max_turns must be >= 1, got {max_turns}")
        self.io = io
        self.seed = seed
        self.rng = random.Random(seed)
        self._io_p = io_step_probability
        self._max_turns = max_turns
        self._invariants = list(invariants)
        self._at_end = at_end
        self.fibers: list[Fiber] = []
        self.turns = 0

    def spawn(self, op: Operation[Any], name: str | None = None) -> Fiber:
        """Add `op` as a new fiber (runnable at once) and return it."""
        fiber = Fiber(name if name is not None else f"fiber-{len(self.fibers)}", op)
        self.fibers.append(fiber)
        return fiber

    def add_invariant(self, check: Invariant) -> None:
        """Check `check()` after every turn from now on."""
        self._invariants.append(check)

    def run(self) -> list[Fiber]:
        """Run every fiber to its end; return the fibers (check `value`/`error`).

        Raises `InvariantViolation` when an invariant fails, `at_end` reports a problem, or
        a fiber raises something that is not an `IOResultError`; `SimulationHang` when
        the run does not end. Each message names both seeds and the turn.
        """
        io = self.io
        while True:
            for fiber in self.fibers:
                if fiber.state is FiberState.WAITING:
                    waiting = fiber.waiting_on
                    if waiting is None or waiting.finished():
                        self._resume(fiber)
            live = [f for f in self.fibers if not f.finished]
            if not live:
                break
            self.turns += 1
            if self.turns > self._max_turns:
                raise self._hang(f"did not end within {self._max_turns} turns")
            runnable = [f for f in live if f.state is FiberState.RUNNABLE]
            if not runnable:
                if io.step() == 0:
                    raise self._hang("every fiber waits on I/O that nothing pending will finish")
                self._check(None)
                continue
            fiber = runnable[self.rng.randrange(len(runnable))]
            self._step_fiber(fiber)
            self._check(fiber)
            if self._io_p and self.rng.random() < self._io_p:
                io.step()
                self._check(None)
        at_end = self._at_end
        if at_end is not None:
            fibers = list(self.fibers)
            problem = self._call(lambda: at_end(fibers))
            if problem is not None:
                raise self._violation(f"final check failed: {problem}", None)
        return list(self.fibers)

    def _resume(self, fiber: Fiber) -> None:
        completion = fiber.waiting_on
        fiber.waiting_on = None
        if completion is not None:
            # A success and a yield alike leave the fiber runnable: the seed picks who goes
            # next, so a yield needs no turn of its own here.
            try:
                after_finished(fiber.op, completion)
            except CompletionError as error:
                fiber.error = error
                fiber.state = FiberState.FAILED
                return
        fiber.state = FiberState.RUNNABLE

    def _step_fiber(self, fiber: Fiber) -> None:
        fiber.steps += 1
        try:
            result = fiber._step()
        except IOResultError as exc:
            fiber.error = exc
            fiber.state = FiberState.FAILED
            return
        except Exception as exc:
            fiber.error = exc
            fiber.state = FiberState.FAILED
            raise self._violation(f"fiber {fiber.name} raised {exc!r}", fiber) from exc
        if type(result) is Done:
            fiber.value = result.value
            fiber.state = FiberState.DONE
            return
        assert type(result) is IO
        fiber.waiting_on = result.completion
        fiber.state = FiberState.WAITING  # resumed (or failed) once the completion finishes

    def _check(self, fiber: Fiber | None) -> None:
        for check in self._invariants:
            problem = self._call(check)
            if problem is not None:
                raise self._violation(f"invariant {_name(check)} failed: {problem}", fiber)

    def _call(self, check: Callable[[], str | None]) -> str | None:
        try:
            return check()
        except AssertionError as exc:
            return str(exc) or "assertion failed"

    def _violation(self, what: str, fiber: Fiber | None) -> InvariantViolation:
        after = f" after a step of {fiber.name}" if fiber is not None else ""
        states = ", ".join(f"{f.name}={f.state.value}" for f in self.fibers)
        return InvariantViolation(
            f"{what}\n  at turn {self.turns}{after}; fibers: {states}\n"
            f"  runner seed {self.seed} on {self.io.describe()}\n"
            f"  last events:\n    " + self.io.trace.format(last=10).replace("\n", "\n    "),
            seed=self.seed,
            replay=f"FiberRunner(SimulatorIO({self.io.seed}, ...), seed={self.seed})",
        )

    def _hang(self, why: str) -> SimulationHang:
        states = ", ".join(f"{f.name}={f.state.value}" for f in self.fibers)
        return SimulationHang(
            f"fibers {why} (turn {self.turns}; {states}) on {self.io.describe()}",
            seed=self.seed,
            replay=f"FiberRunner(SimulatorIO({self.io.seed}, ...), seed={self.seed})",
        )


def _name(check: Callable[..., object]) -> str:
    return getattr(check, "__qualname__", None) or repr(check)
