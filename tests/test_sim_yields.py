"""YieldInjector and InjectYields: yields at chosen or random points, never more than a cap."""

from __future__ import annotations

import random

import pytest

from core import IO, Completion, Done, block
from core.sim import InjectYields, SimConfigError, SimulatorIO, YieldInjector


class CountSteps:
    def __init__(self, steps_needed: int) -> None:
        self.calls = 0
        self.needed = steps_needed
        self.aborted: BaseException | None = None

    def step(self) -> Done[int] | IO:
        self.calls += 1
        if self.calls < self.needed:
            return IO(Completion.new_yield())
        return Done(self.calls)

    def abort(self, error: BaseException) -> None:
        self.aborted = error


def _drive(op: InjectYields[int]) -> list[str]:
    seen = []
    while True:
        result = op.step()
        if isinstance(result, Done):
            seen.append("done")
            return seen
        seen.append("yield")


def test_yields_at_chosen_points_without_calling_the_operation() -> None:
    inner = CountSteps(2)
    injector = YieldInjector(at={0, 2})
    op = injector.wrap(inner)
    assert _drive(op) == ["yield", "yield", "yield", "done"]
    assert inner.calls == 2  # the injected yields never reached it
    assert injector.points == 4 and injector.injected == [0, 2]


def test_random_yields_are_seeded_and_capped() -> None:
    def run(seed: int) -> list[int]:
        injector = YieldInjector(probability=0.5, rng=random.Random(seed), max_yields=3)
        _drive(injector.wrap(CountSteps(20)))
        return injector.injected

    assert run(1) == run(1)
    assert len(run(1)) == 3
    assert len({tuple(run(s)) for s in range(10)}) > 1
    never = YieldInjector(at={0, 1}, max_yields=0)
    assert _drive(never.wrap(CountSteps(1))) == ["done"]


def test_abort_is_forwarded_and_callables_are_wrapped() -> None:
    inner = CountSteps(1)
    op = InjectYields(inner, YieldInjector())
    error = RuntimeError("gave up")
    op.abort(error)
    assert inner.aborted is error
    assert "CountSteps" in repr(op)
    InjectYields(lambda: Done(1), YieldInjector()).abort(error)  # no abort: nothing to do


def test_block_and_the_simulator_drive_wrapped_operations() -> None:
    io = SimulatorIO(0, injector=YieldInjector(at={0}))
    assert block(io.with_yields(CountSteps(1)), io) == 1
    assert io.injector.injected == [0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"at": {-1}}, "yield points"),
        ({"probability": 1.5}, "probability"),
        ({"probability": 0.5}, "rng"),
        ({"max_yields": -1}, "max_yields"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SimConfigError, match=match):
        YieldInjector(**kwargs)  # type: ignore[arg-type]
