"""The explorer catches the founding document's re-entrancy bugs and passes their twins.

Each buggy machine mutates state before a sub-operation that may yield (Turso's
`vec.push(x); return_if_io!(...)`, `idx += 1; return_if_io!(...)`,
`map.insert(k, v); return_if_io!(...)`); each twin mutates after. On a disk where every
I/O completes inline they give the same answers: only a yield shows the difference.
"""

from __future__ import annotations

import enum
import random

import pytest

from core import IO, Completion, Done, IOResultError, block
from core.driver import Operation
from core.io import File, OpenFlags
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers
from core.sim import (
    Schedule,
    ScheduleMismatchError,
    SimConfigError,
    SimulationError,
    SimulationHang,
    SimulatorIO,
    explore,
    run_schedule,
)
from core.sim.scenarios import SCENARIOS

PAGE = 100
DATA = bytes(range(250)) * 2  # five pages


def _setup(io: SimulatorIO) -> None:
    io.create_file("db", DATA)


# -- push before a yield ---------------------------------------------------------------


class VisitPages:
    """Reads pages 0..n-1; returns the log of pages visited and their first bytes."""

    def __init__(self, io: SimulatorIO, file: File, pages: int, *, buggy: bool) -> None:
        self.io = io
        self.file = file
        self.pages = pages
        self.buggy = buggy
        self.idx = 0
        self.read: Operation[bytes] | None = None
        self.visited: list[int] = []
        self.firsts: list[int] = []

    def step(self) -> Done[tuple[list[int], list[int]]] | IO:
        while self.idx < self.pages:
            if self.read is None:
                self.read = self.io.with_yields(ReadRange(self.file, self.idx * PAGE, PAGE))
            if self.buggy:
                self.visited.append(self.idx)  # BUG: pushed again on every re-entry
            match self.read.step():
                case IO() as io:
                    return io
                case Done(data):
                    if not self.buggy:
                        self.visited.append(self.idx)
                    self.firsts.append(data[0])
                    self.idx += 1
                    self.read = None
        return Done((self.visited, self.firsts))


# -- index advanced before a yield -----------------------------------------------------


class WriteRecords:
    """Writes each record at its slot with its own `WriteBuffers`; returns the count."""

    def __init__(self, io: SimulatorIO, file: File, records: list[bytes], *, buggy: bool):
        self.io = io
        self.file = file
        self.records = records
        self.buggy = buggy
        self.idx = 0
        self.write: Operation[int] | None = None

    def step(self) -> Done[int] | IO:
        while self.idx < len(self.records):
            if self.write is None:
                record = self.records[self.idx]
                self.write = self.io.with_yields(
                    WriteBuffers(self.file, self.idx * PAGE, [record], sync=False)
                )
            if self.buggy:
                self.idx += 1  # BUG: advances again on every re-entry, skipping records
            match self.write.step():
                case IO() as io:
                    return io
                case Done(_):
                    if not self.buggy:
                        self.idx += 1
                    self.write = None
        return Done(self.idx)


# -- insert before a yield -------------------------------------------------------------


class LoadOrder:
    """Loads the wanted pages into a cache, noting the order in which each was loaded."""

    def __init__(self, io: SimulatorIO, file: File, wanted: list[int], *, buggy: bool):
        self.io = io
        self.file = file
        self.wanted = wanted
        self.buggy = buggy
        self.idx = 0
        self.read: Operation[bytes] | None = None
        self.order: dict[int, int] = {}
        self.cache: dict[int, bytes] = {}

    def step(self) -> Done[tuple[dict[int, int], dict[int, bytes]]] | IO:
        while self.idx < len(self.wanted):
            page = self.wanted[self.idx]
            if self.read is None:
                self.read = self.io.with_yields(ReadRange(self.file, page * PAGE, PAGE))
            if self.buggy:
                self.order[page] = len(self.order)  # BUG: overwritten on every re-entry
            match self.read.step():
                case IO() as io:
                    return io
                case Done(data):
                    if not self.buggy:
                        self.order[page] = len(self.order)
                    self.cache[page] = data
                    self.idx += 1
                    self.read = None
        return Done((self.order, self.cache))


def _visit(buggy: bool):  # type: ignore[no-untyped-def]
    return lambda io: VisitPages(io, io.open_file("db"), 5, buggy=buggy)


def _write(buggy: bool):  # type: ignore[no-untyped-def]
    recs = [bytes([65 + i]) * 10 for i in range(4)]
    return lambda io: WriteRecords(io, io.open_file("db"), recs, buggy=buggy)


def _load(buggy: bool):  # type: ignore[no-untyped-def]
    return lambda io: LoadOrder(io, io.open_file("db"), [3, 1, 4], buggy=buggy)


BUGS = {"push before a yield": _visit, "index before a yield": _write, "insert": _load}


@pytest.mark.parametrize("name", list(BUGS))
def test_inline_runs_cannot_tell_the_twins_apart(name: str) -> None:
    results = []
    for buggy in (True, False):
        io = SimulatorIO(0, inline=1.0)
        _setup(io)
        results.append((block(BUGS[name](buggy)(io), io), io.snapshot()))
    assert results[0] == results[1]


@pytest.mark.parametrize("name", list(BUGS))
def test_explore_catches_the_bug_with_the_smallest_schedule(name: str) -> None:
    with pytest.raises(ScheduleMismatchError) as info:
        explore(BUGS[name](True), setup=_setup, seeds=4)
    err = info.value
    assert isinstance(err, SimulationError) and isinstance(err, IOResultError)
    schedule = err.schedule
    assert isinstance(schedule, Schedule)
    # One deferred I/O is the smallest schedule there is, and the very first one shows it.
    assert schedule.defer_at == frozenset({0}) and not schedule.yield_at
    assert err.seed == 0
    assert "defer I/O #0" in str(err) and "seed: 0" in str(err)
    assert "replay: core.sim.run_schedule(make_op, Schedule(" in str(err)
    assert err.expected != err.actual or "files differ" in err.difference
    # The schedule it names replays the failure.
    replayed = run_schedule(BUGS[name](True), schedule, setup=_setup)
    reference = run_schedule(BUGS[name](True), Schedule("inline"), setup=_setup)
    assert (replayed.outcome.value, replayed.files) != (reference.outcome.value, reference.files)


@pytest.mark.parametrize("name", list(BUGS))
def test_explore_passes_the_corrected_twin(name: str) -> None:
    report = explore(BUGS[name](False), setup=_setup, seeds=4)
    assert report.outcome.ok
    assert report.io_points >= 3
    # inline + one per I/O point + one per yield point + 2 fully deferred + 4 random
    assert report.schedules == 1 + report.io_points + report.yield_points + 2 + 4


class CachedCount:
    """Counts pages through a cache that never does I/O: only an injected yield (not a
    deferred completion) can show its bug."""

    def __init__(self, io: SimulatorIO, *, buggy: bool) -> None:
        self.io = io
        self.buggy = buggy
        self.lookup: Operation[int] | None = None
        self.hits = 0

    def step(self) -> Done[int] | IO:
        if self.lookup is None:
            self.lookup = self.io.with_yields(lambda: Done(1))
        if self.buggy:
            self.hits += 1
        match self.lookup.step():
            case IO() as io:
                return io
            case Done(n):
                if not self.buggy:
                    self.hits += n
                return Done(self.hits)


def test_injected_yields_reach_sub_operations_without_io() -> None:
    with pytest.raises(ScheduleMismatchError) as info:
        explore(lambda io: CachedCount(io, buggy=True), seeds=0)
    assert info.value.schedule.yield_at == frozenset({1})  # type: ignore[attr-defined]
    assert "yield at point #1" in str(info.value)
    report = explore(lambda io: CachedCount(io, buggy=False), seeds=4)
    assert report.io_points == 0 and report.yield_points == 2


class FireAndForget:
    """Submits a write and returns without waiting for it."""

    def __init__(self, file: File) -> None:
        self.file = file

    def step(self) -> Done[int]:
        self.file.pwrite(0, b"late", Completion.new_write())
        return Done(4)


def test_explore_flags_io_left_in_flight() -> None:
    with pytest.raises(ScheduleMismatchError, match="still in flight"):
        explore(lambda io: FireAndForget(io.open_file("db")), setup=_setup, seeds=0)


def test_errors_are_outcomes_compared_like_values() -> None:
    # An exact read past the end fails the same way under every schedule.
    report = explore(
        lambda io: ReadRange(io.open_file("db"), 450, 100, exact=True), setup=_setup, seeds=3
    )
    assert report.outcome.error is not None and not report.outcome.ok


class Flaky:
    """Fails only when re-entered: a different error under a deferred schedule."""

    def __init__(self, file: File) -> None:
        self.read = ReadRange(file, 0, 10)
        self.entered = 0

    def step(self) -> Done[bytes] | IO:
        self.entered += 1
        if self.entered > 1:
            raise ValueError("stepped twice")
        return self.read.step()


def test_a_different_exception_is_a_mismatch() -> None:
    with pytest.raises(ScheduleMismatchError) as info:
        explore(lambda io: Flaky(io.open_file("db")), setup=_setup, seeds=0)
    assert "ValueError" in info.value.actual and info.value.expected.startswith("Done(")


def test_custom_equality_and_file_checks_can_be_relaxed() -> None:
    def make_op(io: SimulatorIO) -> Operation[float]:
        return lambda: Done(io.now())  # the virtual time differs between schedules

    explore(make_op, seeds=2, equal=lambda a, b: True)
    with pytest.raises(ScheduleMismatchError):
        explore(
            lambda io: WriteRecords(io, io.open_file("db"), [b"x"] * 3, buggy=True),
            setup=_setup,
            seeds=0,
        )
    explore(
        lambda io: WriteRecords(io, io.open_file("db"), [b"x"] * 3, buggy=True),
        setup=_setup,
        seeds=0,
        check_files=False,
    )


class Spin:
    def step(self) -> IO:
        return IO(Completion.new_yield())


class Stuck:
    def step(self) -> IO:
        return IO(Completion.new_write())  # nothing will ever finish it


def test_setup_variants_must_give_the_same_outcome() -> None:
    def other(io: SimulatorIO) -> None:
        io.create_file("db", DATA[:PAGE] + bytes(len(DATA) - PAGE))

    def same(io: SimulatorIO) -> None:
        _setup(io)

    def read(io: SimulatorIO) -> ReadRange:
        return ReadRange(io.open_file("db"), PAGE, 10)

    report = explore(read, setup=_setup, variants={"same": same}, seeds=1)
    assert report.schedules == report.io_points + report.yield_points + 2 + 1 + 2 + 1
    with pytest.raises(ScheduleMismatchError, match="from setup variant 'zeros'") as found:
        explore(read, setup=_setup, variants={"same": same, "zeros": other}, seeds=1)
    assert "setup=variants['zeros']" in found.value.replay


def test_a_run_that_never_ends_is_reported_not_hung() -> None:
    with pytest.raises(SimulationHang, match="within 50 steps"):
        explore(lambda io: Spin(), max_steps=50)
    with pytest.raises(SimulationHang, match="nothing pending will finish"):
        explore(lambda io: Stuck())


def test_bad_arguments() -> None:
    with pytest.raises(SimConfigError, match="max_points"):
        explore(lambda io: Spin(), max_points=-1)
    with pytest.raises(SimConfigError, match="max_steps"):
        explore(lambda io: Spin(), max_steps=0)


def test_setup_may_run_operations_and_explicit_seeds_are_used() -> None:
    def setup(io: SimulatorIO) -> None:
        f = io.open_file("made", OpenFlags.CREATE)
        block(WriteBuffers(f, 0, [b"by setup"]), io)

    report = explore(
        lambda io: ReadWholeFile(io.open_file("made")), setup=setup, seeds=[7, 99], max_points=1
    )
    assert report.outcome.value == b"by setup"
    assert report.io_points == 1
    assert report.schedules == 1 + 1 + 1 + 2 + 2


# -- every operation core ships --------------------------------------------------------


def _world(seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {name: rng.randbytes(rng.randint(0, 3000)) for name in ("a", "b", "c")}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("seed", range(3))
def test_explore_passes_every_shipped_operation(scenario: object, seed: int) -> None:
    files = _world(seed)
    case = scenario.build(random.Random(seed), files)  # type: ignore[attr-defined]

    def setup(io: SimulatorIO) -> None:
        for name, data in files.items():
            io.create_file(name, data)

    report = explore(
        case.make_op, setup=setup, seeds=4, max_points=40, check_files=case.exact_files
    )
    if case.expect_error:
        assert not report.outcome.ok
    else:
        assert report.outcome.value == case.expected


def test_explore_shipped_operations_with_explicit_parameters() -> None:
    def setup(io: SimulatorIO) -> None:
        io.create_file("src", bytes(range(256)) * 17)
        io.create_file("dst", b"old contents, longer than nothing" * 200)

    explore(
        lambda io: CopyFile(io.open_file("src"), io.open_file("dst"), chunk_size=300, batch=3),
        setup=setup,
    )
    explore(lambda io: ReadWholeFile(io.open_file("src"), chunk_size=512), setup=setup)
    explore(
        lambda io: WriteBuffers(io.open_file("dst"), 5000, [b"a" * 10, b"", b"b" * 700]),
        setup=setup,
    )
    explore(lambda io: ReadRange(io.open_file("src"), 4000, 800), setup=setup)


class _Phase(enum.Enum):
    READ = 1
    WRITE = 2


class ReadThenAppend:
    """A composed machine over shipped operations, written correctly."""

    def __init__(self, io: SimulatorIO) -> None:
        self.io = io
        self.src = io.open_file("db")
        self.phase = _Phase.READ
        self.sub: Operation[object] = io.with_yields(ReadRange(self.src, 0, 10))

    def step(self) -> Done[int] | IO:
        while True:
            match self.phase, self.sub.step():
                case _, IO() as io:
                    return io
                case _Phase.READ, Done(data):
                    self.phase = _Phase.WRITE
                    self.sub = self.io.with_yields(
                        WriteBuffers(self.src, len(DATA), [data])  # type: ignore[list-item]
                    )
                case _Phase.WRITE, Done(n):
                    return Done(n)  # type: ignore[arg-type]


def test_composed_machine_passes() -> None:
    report = explore(ReadThenAppend, setup=_setup, seeds=6)
    assert report.outcome.value == 10
    assert report.yield_points >= 3
