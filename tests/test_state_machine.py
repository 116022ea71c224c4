"""StateMachine: loops on Continue, finalizes once, refuses to step when finished or failed."""

from __future__ import annotations

import enum

import pytest

from core import IO, Completion, Continue, Done, StateMachine, StateMachineError, block
from core.io import MemoryIO
from core.state_machine import TransitionResult


class _S(enum.Enum):
    START = 1
    MIDDLE = 2
    WAIT = 3
    END = 4


class Counter:
    """START -Continue-> MIDDLE -IO-> WAIT -> END (Done)."""

    def __init__(self, fail_in: _S | None = None) -> None:
        self.state = _S.START
        self.steps = 0
        self.finalized = 0
        self.fail_in = fail_in
        self.completion: Completion | None = None
        self.aborted: list[BaseException] = []

    def step(self) -> TransitionResult[str]:
        self.steps += 1
        if self.state is self.fail_in:
            raise ValueError(f"failed in {self.state.name}")
        match self.state:
            case _S.START:
                self.state = _S.MIDDLE
                return Continue
            case _S.MIDDLE:
                self.completion = Completion.new_sync()
                self.state = _S.WAIT
                return IO(self.completion)
            case _S.WAIT:
                self.state = _S.END
                return Done("finished")
            case _:
                raise AssertionError("stepped at END")

    def finalize(self) -> None:
        self.finalized += 1

    def is_finalized(self) -> bool:
        return self.finalized > 0

    def abort(self, error: BaseException) -> None:
        self.aborted.append(error)


def test_continue_is_looped_and_io_returned() -> None:
    t = Counter()
    sm = StateMachine(t)
    result = sm.step()
    assert isinstance(result, IO) and t.steps == 2
    assert repr(Continue) == "Continue"
    assert t.completion is not None
    t.completion.complete(0)
    assert sm.step() == Done("finished")
    assert t.finalized == 1 and sm.is_finalized()


def test_stepping_a_finished_machine_raises() -> None:
    t = Counter()
    sm = StateMachine(t)
    first = sm.step()
    assert isinstance(first, IO)
    first.completion.complete(0)
    sm.step()
    with pytest.raises(StateMachineError, match="after it finished"):
        sm.step()
    assert t.finalized == 1


def test_a_machine_that_raised_is_failed_and_says_so() -> None:
    sm = StateMachine(Counter(fail_in=_S.MIDDLE))
    with pytest.raises(ValueError, match="failed in MIDDLE"):
        sm.step()
    assert sm.is_failed()
    with pytest.raises(StateMachineError, match="after it failed") as info:
        sm.step()
    assert isinstance(info.value.__cause__, ValueError)


def test_finalize_is_idempotent_and_abort_is_forwarded() -> None:
    t = Counter()
    sm = StateMachine(t)
    sm.finalize()
    sm.finalize()
    assert t.finalized == 1
    err = RuntimeError("gave up")
    sm.abort(err)
    assert t.aborted == [err]


def test_state_machine_runs_under_block() -> None:
    class Immediate(Counter):
        def step(self) -> TransitionResult[str]:
            result = super().step()
            if isinstance(result, IO):
                result.completion.complete(0)
            return result

    assert block(StateMachine(Immediate()), MemoryIO()) == "finished"
