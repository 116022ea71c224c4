"""Trace formatting and comparison; Outcome and run_op."""

from __future__ import annotations

from core import IO, Completion, Done
from core.ops import ReadRange
from core.sim import Outcome, SimulationHang, SimulatorIO, Trace, TraceEvent, run_op


def _event(i: int, outcome: str = "ok 1") -> TraceEvent:
    return TraceEvent(i * 1_500_000, i, "complete", "pread", "f", 4096 * i, 1, outcome)


def test_event_format() -> None:
    assert str(_event(1)) == "1.500000 #1 complete pread 'f' off=4096 len=1 -> ok 1"
    assert str(TraceEvent(0, -1, "crash", "", "", None, None, "")) == "0.000000 - crash"


def test_compare_digest_and_difference() -> None:
    a, b = Trace(), Trace()
    for i in range(3):
        a.record(_event(i))
        b.record(_event(i))
    assert a == b and a.digest() == b.digest() and a.first_difference(b) is None
    b.record(_event(3))
    assert a.first_difference(b) == "lengths differ: 3 != 4 events"
    c = Trace()
    c.record(_event(0, "EIO"))
    assert (c.first_difference(a) or "").startswith("event 0:")
    assert a != c
    assert a != "not a trace"
    assert len(a) == 3 and [e.io for e in a] == [0, 1, 2] and len(a.events) == 3
    assert "3 events" in repr(a)


def test_limit_drops_the_oldest_and_says_so() -> None:
    t = Trace(limit=10)
    for i in range(25):
        t.record(_event(i))
    assert len(t) <= 10 and t.dropped == 25 - len(t)
    assert t.format().startswith(f"... {t.dropped} earlier events dropped")
    assert "earlier events not shown" in t.format(last=2)
    assert t.lines()[-1] == str(_event(24))


def test_run_op_outcomes() -> None:
    io = SimulatorIO(0)
    io.create_file("f", b"abc")
    ok = run_op(ReadRange(io.open_file("f"), 0, 3), io)
    assert ok.ok and ok.value == b"abc" and ok.describe() == "Done(b'abc')"
    failed = run_op(ReadRange(io.open_file("f"), 0, 9, exact=True), io)
    assert not failed.ok and "SHORT" in failed.describe().upper()
    assert failed.same_as(run_op(ReadRange(io.open_file("f"), 0, 9, exact=True), io))
    assert not failed.same_as(ok) and not ok.same_as(failed)
    hang = run_op(lambda: IO(Completion.new_yield()), io, max_steps=10)
    assert isinstance(hang.error, SimulationHang)
    big = Outcome(b"x" * 1000, None, 1)
    assert big.describe().endswith("characters))")
    assert Outcome(1, None, 1).same_as(Outcome(2, None, 1), equal=lambda a, b: True)
    raised = run_op(lambda: (_ for _ in ()).throw(KeyError("k")), io)  # type: ignore[arg-type, return-value]
    assert isinstance(raised.error, KeyError)
    assert run_op(lambda: Done(5), io).value == 5
