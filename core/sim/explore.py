"""The explorer: run one operation under many schedules and demand the same answer.

Theory of operation:
- A correct operation's result, and the files it leaves, do not depend on *when* its I/O
  completes or whether it is re-entered after a yield. The founding document's bugs (a
  push, an index bump or an insert before a yield) only show when a yield happens where
  a fast disk never made one; the explorer makes one happen at every such place.
- The reference is the *inline* run: every I/O finishes during its own submission and
  nothing yields. It also counts the operation's I/O points (submissions) and yield
  points (steps of operations wrapped by `SimulatorIO.with_yields`; the top-level
  operation is always wrapped).
- Then, smallest first: each single I/O deferred in turn (``defer I/O #k``: everything else
  inline, that one queued, so the operation returns `IO` there and is re-entered); each
  single injected yield in turn (``yield at point #k``); every I/O deferred with random
  latencies (completions reorder); every I/O deferred in submission order; then random
  schedules from `seeds` (a mix of inline and deferred I/O, random latencies, random
  yields). The first schedule whose outcome, in-flight I/O or files differ raises
  `ScheduleMismatchError`, so the schedule it names is the smallest that was found.
- Every run is fresh: a new `SimulatorIO` (with the schedule's seed), `setup(io)`, then
  `make_op(io)`. `setup` runs with inline I/O before the schedule applies, so its I/O is
  neither perturbed nor counted.
- Some operations re-run part of their work for a reason other than a yield: a write
  statement plans again from the start each time it needs a page that is not in memory
  (`core.storage.statement`), so a mutation made while planning is repeated once per
  page read, whatever the schedule. `variants` names other setups that leave the same
  logical starting point (the same database with a cold or a warm page cache): the
  operation runs from each, inline and with every I/O deferred, and must give the same
  outcome and files. These runs come last, after the schedules of the main setup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from core.driver import Operation
from core.sim.backend import SimulatorIO
from core.sim.errors import ScheduleMismatchError, SimConfigError, SimulationHang
from core.sim.outcome import Outcome, run_op
from core.sim.yields import YieldInjector

__all__ = ["ExploreReport", "Schedule", "ScheduleRun", "explore", "run_schedule"]

T = TypeVar("T")

MakeOp = Callable[[SimulatorIO], Operation[T]]
Setup = Callable[[SimulatorIO], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """How one explorer run completes I/O and injects yields (see `SimulatorIO`):
    `inline` probability, `defer_at` submission numbers, `yield_at` yield points, a
    random `yield_probability`, latencies, and the `seed` of the run's simulator."""

    name: str
    seed: int = 0
    inline: float = 1.0
    defer_at: frozenset[int] = frozenset()
    yield_at: frozenset[int] = frozenset()
    yield_probability: float = 0.0
    min_latency_us: int = 1
    max_latency_us: int = 1_000

    def __str__(self) -> str:
        return f"{self.name} (seed {self.seed})"


INLINE = Schedule("inline")
"""The reference schedule: every I/O inline, no yields."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleRun(Generic[T]):
    """One run: its schedule, outcome, the files afterwards, the simulator (for its trace
    and stats), how many I/O and yield points it reached, and a line per submission."""

    schedule: Schedule
    outcome: Outcome[T]
    files: dict[str, bytes]
    io: SimulatorIO
    io_points: int
    yield_points: int
    submissions: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ExploreReport(Generic[T]):
    """What `explore` covered: the reference `outcome`, how many `schedules` ran (the
    reference included), the `io_points` and `yield_points` of the reference run, and
    whether single-point schedules were capped by `max_points` (`capped`)."""

    outcome: Outcome[T]
    schedules: int
    io_points: int
    yield_points: int
    capped: bool


def run_schedule(
    make_op: MakeOp[T],
    schedule: Schedule,
    *,
    setup: Setup | None = None,
    max_steps: int = 100_000,
) -> ScheduleRun[T]:
    """Run a fresh operation once under `schedule` (what `explore` does per schedule; use it
    to replay the schedule a `ScheduleMismatchError` names, then read `run.io.trace`).

    Raises what `setup` or `make_op` raise; what the operation raises is the outcome's error.
    """
    io = SimulatorIO(
        schedule.seed,
        inline=1.0,
        min_latency_us=schedule.min_latency_us,
        max_latency_us=schedule.max_latency_us,
    )
    if setup is not None:
        setup(io)
        io.run_until_idle()
    start = io.submissions
    injector = YieldInjector(
        at=schedule.yield_at,
        probability=schedule.yield_probability,
        rng=io.rng if schedule.yield_probability > 0.0 else None,
    )
    io.configure(inline=schedule.inline, defer_at=schedule.defer_at, injector=injector)
    op = make_op(io)
    outcome = run_op(io.with_yields(op), io, max_steps=max_steps)
    io_points = io.submissions
    yield_points = injector.points
    submissions = tuple(
        f"{e.op} {e.path!r} off={e.offset} len={e.length}"
        for e in io.trace
        if e.io >= start and e.event in ("submit", "refuse")
    )
    try:
        io.run_until_idle()
    except Exception:  # a callback that keeps submitting; the files are what they are
        pass
    return ScheduleRun(schedule, outcome, io.snapshot(), io, io_points, yield_points, submissions)


def explore(
    make_op: MakeOp[T],
    *,
    setup: Setup | None = None,
    seeds: int | Iterable[int] = 16,
    max_points: int = 256,
    max_steps: int = 100_000,
    equal: Callable[[T, T], bool] | None = None,
    check_files: bool = True,
    variants: Mapping[str, Setup] | None = None,
) -> ExploreReport[T]:
    """Run `make_op(io)` under many schedules; every outcome must equal the inline run's.

    `make_op(io)` builds a fresh operation on a fresh `SimulatorIO` (it may open files and
    wrap sub-operations with `io.with_yields`); it must build the same operation every
    time (never draw its parameters from `io.rng`, whose seed differs between schedules).
    `setup(io)`, if given, first creates the
    files (`io.create_file`) or runs operations with `block`. `seeds` is a count of random
    schedules (seeds 1..n) or the seeds themselves; `max_points` caps the single-point
    schedules of each kind; `max_steps` bounds each run; `equal` compares values (default
    `==`); `check_files=False` skips comparing file contents; `variants` maps names to
    other setups the operation must give the same outcome and files from (see the module
    docstring).

    Returns an `ExploreReport`. Raises `ScheduleMismatchError` naming the smallest schedule
    whose result, in-flight I/O or files differ from the inline run, with its seed and how
    to replay it; `SimulationHang` if the inline run itself does not finish;
    `SimConfigError` for a negative `max_points` or `max_steps` below 1; and whatever
    `make_op` or `setup` raise.
    """
    if max_points < 0 or max_steps < 1:
        raise SimConfigError(
            f"max_points must be >= 0 and max_steps >= 1, got {max_points} and {max_steps}"
        )
    seed_list = list(range(1, seeds + 1)) if isinstance(seeds, int) else list(seeds)
    reference = run_schedule(make_op, INLINE, setup=setup, max_steps=max_steps)
    if isinstance(reference.outcome.error, SimulationHang):
        raise reference.outcome.error
    schedules: list[tuple[Schedule, Setup | None, str | None]] = []
    for k in range(min(reference.io_points, max_points)):
        what = reference.submissions[k] if k < len(reference.submissions) else "?"
        schedule = Schedule(f"defer I/O #{k} ({what})", defer_at=frozenset({k}))
        schedules.append((schedule, setup, None))
    for k in range(min(reference.yield_points, max_points)):
        schedules.append((Schedule(f"yield at point #{k}", yield_at=frozenset({k})), setup, None))
    schedules.append((Schedule("every I/O deferred, random latencies", inline=0.0), setup, None))
    schedules.append(
        (
            Schedule(
                "every I/O deferred, in submission order",
                inline=0.0,
                min_latency_us=1,
                max_latency_us=1,
            ),
            setup,
            None,
        )
    )
    for seed in seed_list:
        schedules.append(
            (
                Schedule(
                    "random: some I/O deferred, random latencies and yields",
                    seed=seed,
                    inline=0.25,
                    yield_probability=0.15,
                ),
                setup,
                None,
            )
        )
    for name, other in (variants or {}).items():
        schedules.append((Schedule(f"inline, from setup variant {name!r}"), other, name))
        schedules.append(
            (Schedule(f"every I/O deferred, from setup variant {name!r}", inline=0.0), other, name)
        )
    for tried, (schedule, start, variant) in enumerate(schedules):
        run = run_schedule(make_op, schedule, setup=start, max_steps=max_steps)
        difference = _difference(reference, run, equal, check_files)
        if difference is not None:
            raise _mismatch(reference, run, difference, tried, variant)
    capped = reference.io_points > max_points or reference.yield_points > max_points
    return ExploreReport(
        reference.outcome,
        len(schedules) + 1,
        reference.io_points,
        reference.yield_points,
        capped,
    )


def _difference(
    reference: ScheduleRun[T],
    run: ScheduleRun[T],
    equal: Callable[[T, T], bool] | None,
    check_files: bool,
) -> str | None:
    if not run.outcome.same_as(reference.outcome, equal):
        return "the operation's outcome differs"
    if run.outcome.ok and run.outcome.in_flight:
        return (
            f"the operation returned with {run.outcome.in_flight} I/O(s) still in flight "
            "(it did not wait for everything it submitted)"
        )
    if check_files and run.files != reference.files:
        lines = []
        for name in sorted(set(run.files) | set(reference.files)):
            a = reference.files.get(name)
            b = run.files.get(name)
            if a == b:
                continue
            if a is None or b is None:
                lines.append(f"{name!r} exists in only one run")
                continue
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            where = f"first differs at offset {at}" if at is not None else "differs in size"
            lines.append(f"{name!r}: {len(a)} bytes inline, {len(b)} here, {where}")
        return "the files differ: " + "; ".join(lines)
    return None


def _mismatch(
    reference: ScheduleRun[T],
    run: ScheduleRun[T],
    difference: str,
    tried: int,
    variant: str | None,
) -> ScheduleMismatchError:
    schedule = run.schedule
    message = (
        f"explore: under schedule '{schedule}' {difference}\n"
        f"  inline run: {reference.outcome.describe()}\n"
        f"  this run:   {run.outcome.describe()}\n"
        f"  (schedule {tried + 1} of those tried after the inline run; "
        f"{reference.io_points} I/O points, {reference.yield_points} yield points)\n"
        f"  last events of this run:\n    " + run.io.trace.format(last=12).replace("\n", "\n    ")
    )
    which = "setup" if variant is None else f"variants[{variant!r}]"
    replay = f"core.sim.run_schedule(make_op, {schedule!r}, setup={which}).io.trace.format()"
    return ScheduleMismatchError(
        message,
        schedule=schedule,
        expected=reference.outcome.describe(),
        actual=run.outcome.describe(),
        difference=difference,
        seed=schedule.seed,
        replay=replay,
    )
