"""Deterministic simulation: a simulated disk, an explorer of schedules, concurrent fibers.

- `SimulatorIO(seed, faults=FaultConfig(...))`: an `IOBackend` over in-memory files with a
  virtual clock, random latencies (completions reorder), injected faults, power loss
  (`crash()`) and a trace of every I/O. Same seed, same calls: same trace.
- `explore(make_op, setup=...)`: runs an operation under many schedules (inline, each
  I/O deferred in turn, each yield point in turn, everything deferred, random seeds) and
  raises `ScheduleMismatchError` when an outcome differs from the inline run.
- `FiberRunner`: many operations interleaved on one thread over one simulator, with
  invariants checked at every step (Turso's Whopper, in miniature).
- `Chain`: operations one after another as one operation (open, then query).
- `run_to_crash(op, io, k)`: a power loss at tick k (a step or one I/O completion), to
  crash at each in turn; `reboot(io)` is the machine after it. `core.sim.workload`: the
  storage engine's write transactions as such an operation, with their oracle.
- `python -m core.sim.soak`: the shipped operations under faults and crashes.
"""

from core.sim.backend import SimFile, SimStats, SimulatorIO
from core.sim.chain import Chain
from core.sim.crashes import CrashRun, crash_points, reboot, run_to_crash
from core.sim.errors import (
    InvariantViolation,
    ScheduleMismatchError,
    SimConfigError,
    SimulationError,
    SimulationHang,
)
from core.sim.explore import ExploreReport, Schedule, ScheduleRun, explore, run_schedule
from core.sim.faults import FaultConfig, TornWriteResult
from core.sim.fibers import Fiber, FiberRunner, FiberState
from core.sim.outcome import Outcome, run_op
from core.sim.trace import Trace, TraceEvent
from core.sim.yields import InjectYields, YieldInjector

__all__ = [
    "Chain",
    "CrashRun",
    "ExploreReport",
    "FaultConfig",
    "Fiber",
    "FiberRunner",
    "FiberState",
    "InjectYields",
    "InvariantViolation",
    "Outcome",
    "Schedule",
    "ScheduleMismatchError",
    "ScheduleRun",
    "SimConfigError",
    "SimFile",
    "SimStats",
    "SimulationError",
    "SimulationHang",
    "SimulatorIO",
    "TornWriteResult",
    "Trace",
    "TraceEvent",
    "YieldInjector",
    "crash_points",
    "explore",
    "reboot",
    "run_op",
    "run_schedule",
    "run_to_crash",
]
