"""The soak: every registered scenario under random faults and crashes, seed after seed.

Run ``python -m core.sim.soak --seeds 10000`` (``make soak``); replay one seed with its
trace with ``python -m core.sim.soak --seed N --trace``.

Theory of operation, per seed (everything drawn from generators seeded by it):
- A fault mix (each knob 0 or a random probability; one seed in five has no faults at
  all), a schedule (inline share, latencies, maybe random yields), and three files with
  random durable contents.
- One to four operations in sequence, each a random scenario on the files as they are
  now. A crash may strike at a random tick (one step of the operation or of the
  simulator) in the middle of one; otherwise, at the end, a crash may strike at rest.
- Invariants, every one checked against the scenario's oracle, not the simulator:
  1. an operation returns the right value, or raises a clean error (an `IOResultError`;
     and only when a fault or a crash was injected, unless it must fail); never another
     exception, and never a hang (every run has a step budget);
  2. no completion is left pending when an operation has ended;
  3. files it may change hold the right bytes after a success; after a failure each byte
     is old or new (torn, not garbage); files it may not change are unchanged;
  4. after a crash, each file is made only of its last durable image and writes since
     then (each byte from one of them); with `crash_keep_unsynced = 0` it is exactly the
     durable image: what a completed sync covered survives exactly. The files can be
     opened and read again.
  5. a case that writes a database checks it by reading it back (`Case.verify`, with
     faults off), after the operation and after a crash: every commit promised durable
     is there, and nothing that was never committed.
- A violation is recorded with its seed and the replay command; the report counts seeds,
  operations, outcomes, faults by kind, crashes and durability checks.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import random
import sys
import time
from collections.abc import Iterable, Sequence

from core.driver import after_finished, as_step
from core.errors import CompletionError, IOResultError
from core.io.backend import OpenFlags
from core.ops import ReadWholeFile
from core.result import Done
from core.sim.backend import SimStats, SimulatorIO
from core.sim.errors import SimConfigError
from core.sim.faults import FaultConfig, TornWriteResult
from core.sim.outcome import Outcome, run_op
from core.sim.scenarios import SCENARIOS, Case, Scenario
from core.sim.yields import YieldInjector

__all__ = ["SoakReport", "main", "run_seed", "run_soak"]

FILES = ("a", "b", "c")
MAX_TICKS = 200_000


@dataclasses.dataclass(slots=True)
class SoakReport:
    """What a soak covered, and every invariant violation it found (with its seed)."""

    seeds: int = 0
    operations: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    ok: int = 0
    clean_errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    short_results: int = 0
    """Results legitimately shortened by an injected short read (see `FaultConfig.short_read`)."""
    crashes_mid_operation: int = 0
    crashes_at_rest: int = 0
    exact_durable_checks: int = 0
    composed_durable_checks: int = 0
    database_checks: int = 0
    """Databases read back and checked against their oracle (`Case.verify`)."""
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    violations: list[str] = dataclasses.field(default_factory=list)

    @property
    def crashes(self) -> int:
        """Every crash, mid-operation or at rest."""
        return self.crashes_mid_operation + self.crashes_at_rest

    def total_faults(self) -> int:
        """Every injected I/O fault, crashes aside."""
        return sum(v for k, v in self.faults.items() if k in _FAULT_KINDS)

    def format(self) -> str:
        """The report as text."""
        ops = ", ".join(f"{name} {n}" for name, n in sorted(self.operations.items()))
        errors = ", ".join(f"{kind} {n}" for kind, n in sorted(self.clean_errors.items()))
        faults = ", ".join(f"{k} {self.faults[k]}" for k in _FAULT_KINDS if self.faults[k])
        lines = [
            f"seeds: {self.seeds}",
            f"operations: {sum(self.operations.values())} ({ops})",
            f"outcomes: ok {self.ok}, clean errors {sum(self.clean_errors.values())}"
            + (f" ({errors})" if errors else "")
            + f", results shortened by a short read {self.short_results}",
            f"faults injected: {self.total_faults()} ({faults})",
            f"crashes: {self.crashes} ({self.crashes_mid_operation} mid-operation, "
            f"{self.crashes_at_rest} at rest); unsynced writes kept "
            f"{self.faults['kept_unsynced']}, lost {self.faults['lost_unsynced']}; "
            f"completions aborted {self.faults['aborted']}",
            f"durability checks: {self.exact_durable_checks} exact, "
            f"{self.composed_durable_checks} byte-by-byte, {self.database_checks} databases "
            "read back",
            f"invariant violations: {len(self.violations)}",
        ]
        lines.extend(f"  {v}" for v in self.violations[:20])
        if len(self.violations) > 20:
            lines.append(f"  ... and {len(self.violations) - 20} more")
        return "\n".join(lines)


_FAULT_KINDS = (
    "submit_errors",
    "read_errors",
    "write_errors",
    "sync_errors",
    "truncate_errors",
    "short_reads",
    "torn_writes",
)


def _random_faults(rng: random.Random) -> FaultConfig:
    if rng.random() < 0.2:
        return FaultConfig()

    def p() -> float:
        return rng.choice((0.0, 0.0, 0.02, 0.1, 0.3))

    return FaultConfig(
        submit_error=p(),
        read_error=p(),
        write_error=p(),
        sync_error=p(),
        truncate_error=p(),
        short_read=p(),
        torn_write=p(),
        torn_write_result=rng.choice(list(TornWriteResult)),
        crash_keep_unsynced=rng.choice((0.0, 0.0, 0.5, 1.0)),
        crash_sector=rng.choice((0, 0, 512)),
    )


class _Seed:
    """The state of one seed's run: its simulator, the files as the oracle knows them, and
    for each file the images it may hold after a crash (the last durable one first)."""

    __slots__ = ("crash_at", "images", "io", "report", "seed", "ticks", "visible")

    def __init__(self, seed: int, io: SimulatorIO, report: SoakReport, crash_at: int | None):
        self.seed = seed
        self.io = io
        self.report = report
        self.crash_at = crash_at
        self.ticks = 0
        self.visible: dict[str, bytes] = {}
        self.images: dict[str, list[bytes]] = {}

    def violation(self, what: str) -> None:
        self.report.violations.append(
            f"seed {self.seed}: {what} [replay: python -m core.sim.soak --seed {self.seed} --trace]"
        )

    def tick(self) -> bool:
        """Count a tick; crash the simulator if this is the chosen one. True if it crashed."""
        self.ticks += 1
        if self.crash_at is not None and self.ticks == self.crash_at:
            self.crash_at = None
            self.io.crash()
            return True
        return False


def _drive(state: _Seed, case: Case) -> tuple[Outcome[object], bool]:
    """Run the case's operation as `block` would, counting ticks, crashing when chosen;
    return the outcome and whether a crash struck during it."""
    io = state.io
    op = io.with_yields(case.make_op(io))
    step = as_step(op)
    crashed = False
    steps = 0
    try:
        while True:
            steps += 1
            if steps > MAX_TICKS:
                return Outcome(
                    None, TimeoutError(f"no end after {MAX_TICKS} ticks"), steps
                ), crashed
            crashed = state.tick() or crashed
            result = step()
            if type(result) is Done:
                return Outcome(result.value, None, steps, io.pending()), crashed
            completion = result.completion  # type: ignore[union-attr]
            while not completion.finished():
                steps += 1
                if steps > MAX_TICKS:
                    return (
                        Outcome(None, TimeoutError(f"no end after {MAX_TICKS} ticks"), steps),
                        crashed,
                    )
                if state.tick():
                    crashed = True
                    continue
                if io.step() == 0 and not completion.finished():
                    return (
                        Outcome(None, TimeoutError(f"waits on {completion!r} forever"), steps),
                        crashed,
                    )
            # A failure raises (after `op.abort`) and becomes the outcome below; a yield
            # steps again at once, as in `block`.
            after_finished(op, completion)
    except Exception as exc:
        return Outcome(None, exc, steps, io.pending()), crashed


def _composed_of(actual: bytes, candidates: Sequence[bytes]) -> str | None:
    """None if each byte of `actual` is, at its offset, the byte of some candidate (a
    missing byte counts as zero) and its size lies between theirs; else what is wrong."""
    if actual in candidates:
        return None
    lo = min(len(c) for c in candidates)
    hi = max(len(c) for c in candidates)
    if not lo <= len(actual) <= hi:
        return f"size {len(actual)} outside [{lo}, {hi}]"
    for i, byte in enumerate(actual):
        if all((c[i] if i < len(c) else 0) != byte for c in candidates):
            return f"byte {i} is {byte}, which no candidate image holds there"
    return None


def _check_outcome(state: _Seed, case: Case, outcome: Outcome[object], faults: int) -> None:
    report = state.report
    error = outcome.error
    if error is None:
        if case.expect_error:
            state.violation(f"{case} succeeded with {outcome.describe()} but must fail")
        elif outcome.value == case.expected:
            report.ok += 1
        elif (
            case.prefix_on_short_read
            and state.io.stats.short_reads
            and isinstance(outcome.value, bytes)
            and isinstance(case.expected, bytes)
            and case.expected.startswith(outcome.value)
        ):
            report.short_results += 1
        else:
            state.violation(
                f"{case} returned {outcome.describe()}, expected {case.expected!r:.200}"
            )
        return
    if not isinstance(error, IOResultError):
        state.violation(f"{case} raised an unclean {type(error).__name__}: {error}")
        return
    kind = error.kind.name if isinstance(error, CompletionError) else type(error).__name__
    report.clean_errors[kind] += 1
    if not case.expect_error and faults == 0:
        state.violation(f"{case} failed with no fault injected: {outcome.describe()}")


def _check_files(state: _Seed, case: Case, ok: bool) -> None:
    io = state.io
    for name in FILES:
        actual = io.file_contents(name)
        old = state.visible[name]
        if name in case.after:
            new = case.after[name]
            if ok and actual != new:
                state.violation(f"{case} succeeded but {name!r} does not hold the expected bytes")
            elif not ok:
                problem = _composed_of(actual, [old, new])
                if problem is not None:
                    state.violation(f"{case} failed and left {name!r} mangled: {problem}")
        elif actual != old:
            state.violation(f"{case} changed {name!r}, which it must not touch")
        if ok and name in case.synced:
            state.images[name] = [actual]
            if io.durable_contents(name) != actual:
                state.violation(f"{case} synced {name!r} but the durable image differs")
        elif actual != old:
            state.images[name].append(actual)
        state.visible[name] = actual


def _verify(state: _Seed, case: Case, crashed: bool) -> None:
    """Run the case's own check of what it wrote, with faults off (put back after)."""
    assert case.verify is not None
    io = state.io
    faults = io.faults
    io.faults = FaultConfig()
    try:
        problem = case.verify(io, crashed)
    except Exception as exc:
        problem = f"its check raised {exc!r}"
    finally:
        io.faults = faults
    state.report.database_checks += 1
    if problem is not None:
        state.violation(f"{case}{' (crashed)' if crashed else ''}: {problem}")


def _check_crash(state: _Seed, case: Case | None) -> None:
    io = state.io
    keep = io.faults.crash_keep_unsynced
    if io.pending():
        state.violation(f"{io.pending()} completions still pending after a crash")
    for name in FILES:
        actual = io.file_contents(name)
        durable = [state.images[name][0]]
        candidates = list(state.images[name])
        if case is not None and name in case.after:
            candidates.append(case.after[name])
            if name in case.synced:  # its sync may have completed just before the crash
                durable.append(case.after[name])
        if keep == 0.0:
            state.report.exact_durable_checks += 1
            if actual not in durable:
                state.violation(
                    f"after a crash keeping nothing unsynced, {name!r} is not its durable image"
                    + (f" (during {case})" if case is not None else "")
                )
        else:
            state.report.composed_durable_checks += 1
            problem = _composed_of(actual, candidates)
            if problem is not None:
                state.violation(f"after a crash, {name!r} holds bytes never written: {problem}")
        reread = run_op(ReadWholeFile(io.open_file(name, OpenFlags.READ_ONLY)), io)
        if reread.ok and reread.value != actual:
            state.violation(f"after a crash, reading {name!r} again gives other bytes")
        elif reread.error is not None and not isinstance(reread.error, IOResultError):
            state.violation(f"after a crash, reading {name!r} raised {reread.error!r}")


def run_seed(
    seed: int, report: SoakReport, scenarios: Sequence[Scenario] | None = None
) -> SimulatorIO:
    """Run one seed (see the module docstring), adding to `report`; return its simulator
    (for its trace). Raises `SimConfigError` if there are no scenarios."""
    pool = list(SCENARIOS if scenarios is None else scenarios)
    if not pool:
        raise SimConfigError("the soak needs at least one scenario")
    rng = random.Random(seed * 1_000_003 + 17)  # the soak's choices; the simulator has its own
    faults = _random_faults(rng)
    io = SimulatorIO(
        seed,
        faults,
        inline=rng.choice((0.0, 0.0, 0.3, 1.0)),
        max_latency_us=rng.choice((1, 50, 1_000)),
        trace_limit=20_000,
    )
    if rng.random() < 0.3:
        io.configure(injector=YieldInjector(probability=0.2, rng=io.rng))
    crash_at = rng.randint(1, 30) if rng.random() < 0.5 else None
    state = _Seed(seed, io, report, crash_at)
    for name in FILES:
        data = rng.randbytes(rng.randint(0, 5_000))
        io.create_file(name, data)
        state.visible[name] = data
        state.images[name] = [data]
    report.seeds += 1
    crashed = False
    for _ in range(rng.randint(1, 4)):
        case = rng.choice(pool).build(rng, dict(state.visible))
        report.operations[case.scenario] += 1
        faults_before = io.stats.faults()
        outcome, crashed = _drive(state, case)
        _check_outcome(state, case, outcome, io.stats.faults() - faults_before + int(crashed))
        if io.pending():
            state.violation(f"{case} ended with {io.pending()} completions still pending")
            io.run_until_idle()
        if case.verify is not None:
            _verify(state, case, crashed)
        if crashed:
            report.crashes_mid_operation += 1
            _check_crash(state, case)
            break
        _check_files(state, case, outcome.ok)
    if not crashed and rng.random() < 0.5:
        io.crash()
        report.crashes_at_rest += 1
        _check_crash(state, None)
    _add_stats(report, io.stats)
    io.close()
    return io


def _add_stats(report: SoakReport, stats: SimStats) -> None:
    for key, value in stats.as_dict().items():
        report.faults[key] += value


def run_soak(
    seeds: Iterable[int],
    *,
    scenarios: Sequence[Scenario] | None = None,
    progress: bool = False,
) -> SoakReport:
    """Run every seed in `seeds`; return the report (check `report.violations`).

    Raises `SimConfigError` if there are no scenarios.
    """
    report = SoakReport()
    for n, seed in enumerate(seeds, 1):
        run_seed(seed, report, scenarios)
        if progress and n % 1_000 == 0:
            print(f"  {n} seeds, {len(report.violations)} violations", file=sys.stderr)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (1 if any invariant was violated)."""
    parser = argparse.ArgumentParser(
        prog="python -m core.sim.soak",
        description="Run the shipped operations under simulated faults and crashes.",
    )
    parser.add_argument("--seeds", type=int, default=10_000, help="how many seeds (default 10000)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, default=None, help="run only this seed")
    parser.add_argument("--trace", action="store_true", help="print the simulator's trace")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.seed is not None:
        report = SoakReport()
        io = run_seed(args.seed, report)
        print(io.describe())
        if args.trace:
            print(io.trace.format())
    else:
        if args.seeds < 1:
            parser.error(f"--seeds must be >= 1, got {args.seeds}")
        report = run_soak(range(args.start, args.start + args.seeds), progress=True)
    elapsed = time.perf_counter() - started
    print(report.format())
    print(f"({elapsed:.1f} s)")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
