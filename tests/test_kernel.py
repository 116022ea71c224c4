"""The kernel (`core.state_machine.Machine`): re-entry, Continue, the two end errors, one
rollback and one finalize however an operation ends, and a start that waits its turn."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import pytest

from core import (
    IO,
    Completion,
    CompletionError,
    Continue,
    Done,
    ErrorKind,
    StateMachineError,
    block,
)
from core.io import MemoryIO, MemoryYieldIO, OpenFlags
from core.ops import WriteBuffers
from core.state_machine import Machine, TransitionResult


class _S(enum.Enum):
    START = 1
    MIDDLE = 2
    WAIT = 3


class Scripted(Machine[str]):
    """START -Continue-> MIDDLE -IO-> WAIT -> Done; records every hook call."""

    __slots__ = ("advanced", "completion", "fail_with", "finalized", "rollbacks", "state")

    def __init__(self, fail_with: BaseException | None = None) -> None:
        super().__init__()
        self.state = _S.START
        self.advanced = 0
        self.fail_with = fail_with
        self.completion = Completion.new_sync()
        self.rollbacks: list[tuple[BaseException, bool]] = []
        self.finalized = 0

    def _advance(self) -> TransitionResult[str]:
        self.advanced += 1
        match self.state:
            case _S.START:
                self.state = _S.MIDDLE
                return Continue
            case _S.MIDDLE:
                self.state = _S.WAIT
                return IO(self.completion)
            case _S.WAIT:
                if self.fail_with is not None:
                    raise self.fail_with
                self.completion.result()
                return Done("finished")

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        self.rollbacks.append((error, abandoned))

    def _finalize(self) -> None:
        self.finalized += 1


def test_continue_is_looped_and_early_reentry_returns_the_same_completion() -> None:
    op = Scripted()
    first = op.step()
    assert isinstance(first, IO) and op.advanced == 2
    again = op.step()
    assert isinstance(again, IO) and again.completion is first.completion
    assert op.advanced == 2  # nothing advanced while the I/O was pending
    first.completion.complete(0)
    assert op.step() == Done("finished")
    assert (op.advanced, op.finalized, op.rollbacks) == (3, 1, [])
    assert not op.is_running() and not op.is_failed()


def test_stepping_after_done_says_finished() -> None:
    op = Scripted()
    op.completion.complete(0)
    assert block(op, MemoryIO()) == "finished"
    with pytest.raises(StateMachineError, match="Scripted stepped after it finished"):
        op.step()
    assert op.finalized == 1


def test_a_logical_error_fails_without_rollback_and_says_failed() -> None:
    op = Scripted(fail_with=ValueError("bad argument"))
    assert isinstance(op.step(), IO)
    op.completion.complete(0)
    with pytest.raises(ValueError, match="bad argument"):
        op.step()
    assert op.is_failed() and op.rollbacks == [] and op.finalized == 1
    with pytest.raises(StateMachineError, match="stepped after it failed") as info:
        op.step()
    assert isinstance(info.value.__cause__, ValueError)


def test_a_failed_io_rolls_back_once_not_abandoned() -> None:
    op = Scripted()
    result = op.step()
    assert isinstance(result, IO)
    error = CompletionError(ErrorKind.IO, "disk on fire")
    result.completion.error(error)
    with pytest.raises(CompletionError, match="disk on fire"):
        op.step()
    assert op.rollbacks == [(error, False)] and op.finalized == 1
    op.abort(RuntimeError("late abort"))  # after the end: a no-op
    assert op.rollbacks == [(error, False)] and op.finalized == 1


def test_abort_rolls_back_once_abandoned_and_finalizes_once() -> None:
    op = Scripted()
    op.step()
    cancel = KeyboardInterrupt()
    op.abort(cancel)
    op.abort(cancel)
    assert op.rollbacks == [(cancel, True)] and op.finalized == 1
    with pytest.raises(StateMachineError, match="after it failed"):
        op.step()


class Turn(Machine[int]):
    """Waits on `gate` before its first transition, then finishes at once."""

    __slots__ = ("gate", "rollbacks", "starts_tried")

    def __init__(self, gate: Completion) -> None:
        super().__init__()
        self._start_first()
        self.gate = gate
        self.starts_tried = 0
        self.rollbacks = 0

    def _start(self) -> IO | None:
        self.starts_tried += 1
        return None if self.gate.finished() else IO(self.gate)

    def _advance(self) -> TransitionResult[int]:
        return Done(self.starts_tried)

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        self.rollbacks += 1


def test_a_start_waits_until_it_may_start() -> None:
    gate = Completion.new_sync()
    op = Turn(gate)
    assert op.step() == IO(gate)
    assert op.step() == IO(gate)  # early re-entry: the same wait, `_start` not asked again
    assert op.pending() is gate and op.starts_tried == 1
    gate.complete(0)
    assert op.step() == Done(2)


def test_abort_before_the_start_rolls_nothing_back() -> None:
    op = Turn(Completion.new_sync())
    op.step()
    op.abort(TimeoutError())
    assert op.is_failed() and op.rollbacks == 0


def test_a_start_that_raises_fails_the_operation() -> None:
    class Refused(Turn):
        __slots__ = ()

        def _start(self) -> IO | None:
            raise ValueError("file is closed")

    op = Refused(Completion.new_sync())
    with pytest.raises(ValueError, match="closed"):
        op.step()
    with pytest.raises(StateMachineError, match="after it failed"):
        op.step()


@pytest.mark.parametrize("backend", [MemoryIO, MemoryYieldIO])
def test_the_example_in_the_architecture_doc_runs(backend: type[MemoryIO]) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/architecture.md", "exec"), namespace)
    io = backend()
    f = io.open_file("frame", OpenFlags.CREATE)
    payload = (5).to_bytes(4, "big") + b"hello, and more"
    assert block(WriteBuffers(f, 0, [payload], sync=False), io) == len(payload)
    assert block(namespace["ReadFrame"](f), io) == b"hello"
