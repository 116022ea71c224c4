"""The soak: a quick run of every shipped operation under faults and crashes, and proof
that each of its invariants can fail."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from core import IO, Completion, CompletionError, Done, ErrorKind
from core.driver import Operation
from core.ops import ReadRange, WriteBuffers
from core.sim import FaultConfig, SimConfigError, SimulatorIO
from core.sim.scenarios import SCENARIOS, Case, Scenario, apply_write, register
from core.sim.soak import (
    FILES,
    SoakReport,
    _check_crash,
    _composed_of,
    _Seed,
    main,
    run_seed,
    run_soak,
)


def test_quick_soak_has_no_violations_and_covers_faults_and_crashes() -> None:
    report = run_soak(range(500))
    assert report.violations == [], report.format()
    assert report.seeds == 500
    assert set(report.operations) == {s.name for s in SCENARIOS}
    assert report.ok > 100
    assert sum(report.clean_errors.values()) > 50
    assert report.total_faults() > 100
    for kind in ("submit_errors", "read_errors", "write_errors", "sync_errors", "short_reads"):
        assert report.faults[kind] > 0, kind
    assert report.faults["torn_writes"] > 0 and report.faults["truncate_errors"] > 0
    assert report.crashes_mid_operation > 5 and report.crashes_at_rest > 50
    assert report.exact_durable_checks > 50 and report.composed_durable_checks > 50
    assert report.faults["kept_unsynced"] > 0 and report.faults["lost_unsynced"] > 0
    text = report.format()
    assert "seeds: 500" in text and "invariant violations: 0" in text


def test_a_seed_replays_exactly() -> None:
    first = run_seed(1234, SoakReport())
    second = run_seed(1234, SoakReport())
    assert first.trace.format() == second.trace.format()


# -- each invariant can fail ---------------------------------------------------------------


def _soak_with(build: object, seeds: int = 60) -> SoakReport:
    return run_soak(range(seeds), scenarios=[Scenario("planted", build)])  # type: ignore[arg-type]


def _pick(rng: random.Random, files: Mapping[str, bytes]) -> tuple[str, bytes]:
    path = rng.choice(sorted(files))
    return path, files[path]


def _wrong_value(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path, data = _pick(rng, files)

    def make_op(io: SimulatorIO) -> Operation[object]:
        read = ReadRange(io.open_file(path), 0, 10)
        return lambda: _map(read.step(), lambda v: v + b"!")

    return Case("planted", "wrong value", make_op, expected=data[:10])


def _map(result: Done[bytes] | IO, fn: object) -> Done[object] | IO:
    if isinstance(result, Done):
        return Done(fn(result.value))  # type: ignore[operator]
    return result


def _unclean(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    def make_op(io: SimulatorIO) -> Operation[object]:
        def step() -> Done[object]:
            raise KeyError("oops")

        return step

    return Case("planted", "unclean", make_op)


def _claims_sync(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path, data = _pick(rng, files)
    payload = b"not synced at all"

    def make_op(io: SimulatorIO) -> Operation[object]:
        return WriteBuffers(io.open_file(path), 0, [payload], sync=False)

    return Case(
        "planted",
        "claims a sync it never made",
        make_op,
        expected=len(payload),
        after={path: apply_write(data, 0, payload)},
        synced=frozenset({path}),
    )


class _FireAndForget:
    def __init__(self, io: SimulatorIO, path: str) -> None:
        self.file = io.open_file(path)

    def step(self) -> Done[int]:
        self.file.pread(0, Completion.new_read(bytearray(4)))
        return Done(0)


def _leaves_pending(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path, _ = _pick(rng, files)
    return Case("planted", "leaves I/O pending", lambda io: _FireAndForget(io, path), expected=0)


def _hangs(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    return Case("planted", "hangs", lambda io: lambda: IO(Completion.new_write()))


def _always_fails(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    def make_op(io: SimulatorIO) -> Operation[object]:
        def step() -> Done[object]:
            raise CompletionError(ErrorKind.CHECKSUM_MISMATCH, "planted")

        return step

    return Case("planted", "fails with no fault", make_op)


def _scribbles(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path, data = _pick(rng, files)
    other = next(name for name in sorted(files) if name != path)

    def make_op(io: SimulatorIO) -> Operation[object]:
        return WriteBuffers(io.open_file(other), 0, [b"scribble"], sync=False)

    return Case("planted", "writes the wrong file", make_op, expected=8, after={path: data})


@pytest.mark.parametrize(
    ("build", "symptom"),
    [
        (_wrong_value, "returned Done("),
        (_unclean, "raised an unclean KeyError"),
        (_claims_sync, "synced 'a' but the durable image differs"),
        (_leaves_pending, "completions still pending"),
        (_hangs, "waits on"),
        (_always_fails, "failed with no fault injected"),
        (_scribbles, "which it must not touch"),
    ],
    ids=["value", "unclean", "durability", "pending", "hang", "spurious", "scribble"],
)
def test_each_invariant_catches_its_planted_bug(build: object, symptom: str) -> None:
    report = _soak_with(build)
    assert report.violations, f"no violation found for {symptom!r}"
    assert any(symptom in v for v in report.violations), report.violations[:3]
    assert all("replay: python -m core.sim.soak --seed" in v for v in report.violations)


@pytest.mark.parametrize(("keep", "symptom"), [(0.0, "not its durable image"), (0.5, "never")])
def test_crash_check_catches_a_file_that_lost_durable_data(keep: float, symptom: str) -> None:
    # The oracle says b"synced" was made durable; the disk says otherwise.
    io = SimulatorIO(0, FaultConfig(crash_keep_unsynced=keep))
    report = SoakReport()
    state = _Seed(0, io, report, None)
    for name in FILES:
        io.create_file(name, b"")
        state.visible[name] = b""
        state.images[name] = [b""]
    io.create_file("a", b"stale!")
    state.images["a"] = [b"synced"]
    io.crash()
    _check_crash(state, None)
    assert any(symptom in v for v in report.violations), report.violations


def test_composed_of() -> None:
    assert _composed_of(b"abc", [b"abc"]) is None
    assert _composed_of(b"aXc", [b"abc", b"XXX"]) is None
    assert _composed_of(b"ab\x00\x00", [b"ab", b"abcd"]) is None  # a missing byte is zero
    assert "byte 1" in (_composed_of(b"aZc", [b"abc", b"XXX"]) or "")
    assert "size 5" in (_composed_of(b"abcde", [b"abc", b"abcd"]) or "")


def test_register_refuses_duplicates_and_the_soak_needs_scenarios() -> None:
    with pytest.raises(SimConfigError, match="already registered"):
        register(Scenario("ReadRange", SCENARIOS[0].build))
    with pytest.raises(SimConfigError, match="at least one scenario"):
        run_soak(range(1), scenarios=[])


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "25", "--start", "100"]) == 0
    out = capsys.readouterr().out
    assert "seeds: 25" in out and "invariant violations: 0" in out and "crashes:" in out
    assert main(["--seed", "7", "--trace"]) == 0
    out = capsys.readouterr().out
    assert "SimulatorIO(seed=7" in out and " #0 " in out
    with pytest.raises(SystemExit):
        main(["--seeds", "0"])
