"""FiberRunner: many operations interleaved on one thread over one simulator."""

from __future__ import annotations

import enum

import pytest

from core import IO, Completion, CompletionError, Done
from core.driver import Operation
from core.io import File
from core.ops import ReadRange, ReadWholeFile, WriteBuffers
from core.sim import (
    FaultConfig,
    InvariantViolation,
    SimConfigError,
    SimulationHang,
    SimulatorIO,
)
from core.sim.fibers import Fiber, FiberRunner, FiberState

RECORD = 64


def _writers_and_readers(seed: int, faults: FaultConfig | None = None) -> FiberRunner:
    io = SimulatorIO(seed, faults, inline=0.2)
    io.create_file("log", b"")
    runner = FiberRunner(io, seed=seed)
    for i in range(6):
        record = bytes([65 + i]) * RECORD
        runner.spawn(WriteBuffers(io.open_file("log"), i * RECORD, [record]), f"writer-{i}")
    for i in range(3):
        runner.spawn(ReadWholeFile(io.open_file("log"), chunk_size=100), f"reader-{i}")

    def records_whole_or_absent() -> str | None:
        data = io.file_contents("log")
        if len(data) > 6 * RECORD:
            return f"file grew to {len(data)} bytes"
        for i in range(0, len(data), RECORD):
            chunk = data[i : i + RECORD]
            if chunk not in (bytes(len(chunk)), bytes([65 + i // RECORD]) * len(chunk)):
                return f"record at {i} is mixed: {chunk[:8]!r}..."
        return None

    runner.add_invariant(records_whole_or_absent)
    return runner


@pytest.mark.parametrize("seed", range(10))
def test_writers_and_readers_interleave_and_invariants_hold(seed: int) -> None:
    runner = _writers_and_readers(seed)
    fibers = runner.run()
    assert all(f.state is FiberState.DONE for f in fibers)
    expected = b"".join(bytes([65 + i]) * RECORD for i in range(6))
    assert runner.io.file_contents("log") == expected
    assert runner.io.durable_contents("log") == expected
    for reader in fibers[6:]:
        data = reader.value
        assert isinstance(data, bytes) and len(data) <= len(expected)
    assert runner.io.pending() == 0
    assert runner.turns > 9


def test_interleaving_is_deterministic_and_depends_on_the_seed() -> None:
    def run(seed: int) -> tuple[str, list[int]]:
        runner = _writers_and_readers(seed)
        fibers = runner.run()
        return runner.io.trace.digest(), [f.steps for f in fibers]

    assert run(3) == run(3)
    assert len({run(seed)[0] for seed in range(6)}) > 1


def test_faults_end_fibers_with_clean_errors() -> None:
    errors = 0
    for seed in range(10):
        runner = _writers_and_readers(seed, FaultConfig(write_error=0.3, read_error=0.3))
        for fiber in runner.run():
            assert fiber.finished
            if fiber.error is not None:
                assert isinstance(fiber.error, CompletionError)
                errors += 1
    assert errors > 0


# -- a lost update, planted, and its locked twin -----------------------------------------


class Lock:
    """A cooperative lock: a fiber that finds it held yields and tries again."""

    def __init__(self) -> None:
        self.held = False


class _Inc(enum.Enum):
    LOCK = 1
    READ = 2
    WRITE = 3
    DONE = 4


class Increment:
    """Reads an 8-byte counter, writes it back plus one. Without a lock, two fibers can
    both read the old value, and one increment is lost."""

    def __init__(self, file: File, lock: Lock | None) -> None:
        self.file = file
        self.lock = lock
        self.state = _Inc.LOCK
        self.sub: Operation[object] | None = None

    def step(self) -> Done[None] | IO:
        while True:
            match self.state:
                case _Inc.LOCK:
                    if self.lock is not None:
                        if self.lock.held:
                            return IO(Completion.new_yield())
                        self.lock.held = True
                    self.sub = ReadRange(self.file, 0, 8, exact=True)
                    self.state = _Inc.READ
                case _Inc.READ:
                    assert self.sub is not None
                    match self.sub.step():
                        case IO() as io:
                            return io
                        case Done(data):
                            value = int.from_bytes(data, "big") + 1  # type: ignore[arg-type]
                            self.sub = WriteBuffers(self.file, 0, [value.to_bytes(8, "big")])
                            self.state = _Inc.WRITE
                case _Inc.WRITE:
                    assert self.sub is not None
                    match self.sub.step():
                        case IO() as io:
                            return io
                        case Done(_):
                            if self.lock is not None:
                                self.lock.held = False
                            self.state = _Inc.DONE
                            return Done(None)
                case _Inc.DONE:
                    raise AssertionError("stepped after done")


def _counter_run(seed: int, locked: bool, *, watch: bool = True) -> None:
    io = SimulatorIO(seed)
    io.create_file("counter", bytes(8))
    lock = Lock() if locked else None

    def counter_is_three(fibers: list[Fiber]) -> str | None:
        value = int.from_bytes(io.file_contents("counter"), "big")
        return None if value == 3 else f"counter is {value}, expected 3"

    seen = [0]

    def never_decreases() -> None:
        value = int.from_bytes(io.file_contents("counter"), "big")
        assert value >= seen[0], f"counter went back from {seen[0]} to {value}"
        seen[0] = value

    runner = FiberRunner(
        io, seed=seed, invariants=[never_decreases] if watch else [], at_end=counter_is_three
    )
    for _ in range(3):
        runner.spawn(Increment(io.open_file("counter"), lock))
    runner.run()


@pytest.mark.parametrize(
    ("watch", "symptom"),
    [
        (True, "never_decreases failed: counter went back"),
        (False, "final check failed: counter is"),
    ],
)
def test_runner_catches_a_lost_update_and_names_the_seed(watch: bool, symptom: str) -> None:
    caught = []
    for seed in range(10):
        try:
            _counter_run(seed, locked=False, watch=watch)
        except InvariantViolation as exc:
            caught.append(exc)
    assert caught, "no interleaving in 10 seeds lost an update"
    err = caught[0]
    assert err.seed is not None and f"runner seed {err.seed}" in str(err)
    assert symptom in str(err)
    assert "replay: FiberRunner(" in str(err)


def test_locked_twin_passes_every_seed() -> None:
    for seed in range(20):
        _counter_run(seed, locked=True)


# -- failures of the runner itself -------------------------------------------------------


def test_an_invariant_failing_mid_run_names_turn_and_fiber() -> None:
    io = SimulatorIO(1)
    io.create_file("f", b"")
    runner = FiberRunner(io, seed=5)
    runner.spawn(WriteBuffers(io.open_file("f"), 0, [b"x" * 10]), "w")

    def file_stays_empty() -> str | None:
        return None if io.file_contents("f") == b"" else "the file is not empty"

    runner.add_invariant(file_stays_empty)
    with pytest.raises(InvariantViolation) as info:
        runner.run()
    message = str(info.value)
    assert "file_stays_empty" in message and "the file is not empty" in message
    assert "at turn" in message and "seed: 5" in message


class Boom:
    def step(self) -> Done[None]:
        raise KeyError("not an IOResultError")


class Stuck:
    def step(self) -> IO:
        return IO(Completion.new_write())


class Spin:
    def step(self) -> IO:
        return IO(Completion.new_yield())


def test_an_unclean_exception_is_a_violation() -> None:
    runner = FiberRunner(SimulatorIO(0))
    runner.spawn(Boom(), "boom")
    with pytest.raises(InvariantViolation, match="fiber boom raised KeyError"):
        runner.run()


def test_hangs_are_reported() -> None:
    runner = FiberRunner(SimulatorIO(0))
    runner.spawn(Stuck(), "stuck")
    with pytest.raises(SimulationHang, match="nothing pending will finish"):
        runner.run()
    runner = FiberRunner(SimulatorIO(0), max_turns=100)
    runner.spawn(Spin(), "spin")
    with pytest.raises(SimulationHang, match="within 100 turns"):
        runner.run()


def test_callable_operations_and_an_empty_runner() -> None:
    runner = FiberRunner(SimulatorIO(0))
    assert runner.run() == []
    fiber = runner.spawn(lambda: Done(42))
    assert fiber.name == "fiber-0" and "runnable" in repr(fiber)
    runner.run()
    assert fiber.value == 42 and fiber.state is FiberState.DONE


def test_bad_settings() -> None:
    with pytest.raises(SimConfigError, match="io_step_probability"):
        FiberRunner(SimulatorIO(0), io_step_probability=2.0)
    with pytest.raises(SimConfigError, match="max_turns"):
        FiberRunner(SimulatorIO(0), max_turns=0)
