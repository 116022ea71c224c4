"""Crash points: run an operation and lose power at a chosen moment, so a test can crash at
every single one in turn.

Theory of operation:
- A *tick* is one step of the operation or one I/O completion: `run_to_crash` drives the
  operation as `block` does, but steps the simulator one I/O at a time
  (`SimulatorIO.step(limit=1)`) and counts both. A crash at tick k strikes just before
  that tick's work: before the operation reacts to a completion, or before an I/O the
  operation submitted completes (it is in flight, and the crash may keep it or not, as
  the simulator's `FaultConfig` says). With every I/O deferred (`inline=0`), the ticks
  of a run are every point where a power loss can find it.
- The same seed and the same operation give the same ticks, so a run without a crash
  lists them (with a label for each, say the phase the operation was in) and runs with
  a crash at each chosen tick replay exactly up to it. A crashed operation is not
  stepped again: the process it ran in is gone.
- `reboot` is the machine after the power loss: a fresh simulator holding what survived,
  on which the files are opened anew.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from core.driver import Operation, after_finished, as_step
from core.result import Done
from core.sim.backend import SimulatorIO
from core.sim.errors import SimulationHang
from core.sim.outcome import Outcome

__all__ = ["CrashRun", "crash_points", "reboot", "run_to_crash"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class CrashRun(Generic[T]):
    """How a run ended: `outcome` (None if the crash struck first), whether it `crashed`,
    how many `ticks` it reached, and the label of each tick (`labels[k - 1]` for tick k)."""

    outcome: Outcome[T] | None
    crashed: bool
    ticks: int
    labels: tuple[str, ...]


def run_to_crash(
    op: Operation[T],
    io: SimulatorIO,
    crash_at: int | None = None,
    *,
    label: Callable[[], str] | None = None,
    max_ticks: int = 1_000_000,
) -> CrashRun[T]:
    """Drive `op` on `io` one tick at a time; call `io.crash()` at tick `crash_at` (1-based;
    None: never) and stop there. `label()`, if given, names each tick as it is reached.

    Never raises what the operation raises: that is the outcome's error, as in `run_op`
    (a run past `max_ticks`, or waiting on a completion nothing pending finishes, ends
    with `SimulationHang`).
    """
    step = as_step(op)
    labels: list[str] = []
    ticks = 0

    def tick() -> bool:
        nonlocal ticks
        ticks += 1
        if label is not None:
            labels.append(label())
        if ticks == crash_at:
            io.crash()
            return True
        return False

    def ended(outcome: Outcome[T] | None, crashed: bool = False) -> CrashRun[T]:
        return CrashRun(outcome, crashed, ticks, tuple(labels))

    try:
        while True:
            if ticks >= max_ticks:
                return ended(_hang(io, ticks, f"did not finish within {max_ticks} ticks"))
            if tick():
                return ended(None, True)
            result = step()
            if type(result) is Done:
                return ended(Outcome(result.value, None, ticks, io.pending()))
            completion = result.completion  # type: ignore[union-attr]
            while not completion.finished():
                if ticks >= max_ticks:
                    return ended(_hang(io, ticks, f"did not finish within {max_ticks} ticks"))
                if tick():
                    return ended(None, True)
                if io.step(limit=1) == 0 and not completion.finished():
                    return ended(
                        _hang(io, ticks, f"waits on {completion!r}, which nothing will finish")
                    )
            after_finished(op, completion)
    except Exception as exc:
        return ended(Outcome(None, exc, ticks, io.pending()))


def _hang(io: SimulatorIO, ticks: int, why: str) -> Outcome[T]:
    error = SimulationHang(f"operation {why} on {io.describe()}", seed=io.seed)
    return Outcome(None, error, ticks, io.pending())


def crash_points(labels: Iterable[str], wanted: Iterable[str]) -> list[int]:
    """The ticks (1-based) whose label is one of `wanted`."""
    chosen = set(wanted)
    return [k for k, name in enumerate(labels, 1) if name in chosen]


def reboot(io: SimulatorIO, seed: int | None = None, **settings: object) -> SimulatorIO:
    """A fresh simulator (seed `seed`, default `io.seed + 1`; `settings` as for
    `SimulatorIO`) holding every file of `io` as it is now, durable: after `io.crash()`,
    what the power loss left."""
    fresh = SimulatorIO(io.seed + 1 if seed is None else seed, **settings)  # type: ignore[arg-type]
    for name, data in io.snapshot().items():
        fresh.create_file(name, data)
    return fresh
