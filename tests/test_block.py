"""The synchronous driver `block`: steps, waits, raises, aborts."""

from __future__ import annotations

import pytest

from core import (
    IO,
    Completion,
    CompletionError,
    Done,
    ErrorKind,
    IOResult,
    IOResultError,
    block,
)
from core.driver import after_finished
from core.io import MemoryIO, MemoryYieldIO, OpenFlags
from tests.helpers import Counting, NullBackend, eio


class ReadTwice(Counting):
    def __init__(self, io: MemoryIO) -> None:
        super().__init__()
        self.file = io.open_file("f", OpenFlags.CREATE)
        self.file.pwrite(0, b"0123456789", Completion.new_write())
        io.step()
        self.completions: list[Completion] = []

    def step(self) -> IOResult[bytes]:
        if len(self.completions) < 2:
            pos = 5 * len(self.completions)
            c = Completion.new_read(bytearray(5))
            self.completions.append(c)
            self.file.pread(pos, c)
            if not c.finished():
                return IO(c)
            return self.step()
        if not self.completions[-1].finished():
            return IO(self.completions[-1])
        return Done(b"".join(bytes(c.buffer or b"") for c in self.completions))


@pytest.mark.parametrize("backend", [MemoryIO, MemoryYieldIO])
def test_block_runs_to_done(backend: type[MemoryIO]) -> None:
    io = backend()
    assert block(ReadTwice(io), io) == b"0123456789"


def test_block_accepts_a_callable() -> None:
    assert block(lambda: Done(5), MemoryIO()) == 5


def test_block_rejects_a_non_operation() -> None:
    with pytest.raises(TypeError, match="expected an operation"):
        block(42, MemoryIO())  # type: ignore[arg-type]


def test_block_raises_the_completion_error_after_abort() -> None:
    err = eio("f", 0)
    op = Counting()
    failed = Completion.new_write()
    failed.error(err)

    def step() -> IOResult[None]:
        return IO(failed)

    op.step = step  # type: ignore[attr-defined]
    with pytest.raises(CompletionError) as info:
        block(op, MemoryIO())  # type: ignore[arg-type]
    assert info.value is err
    assert op.aborts == [err]


class FailsOnStep(NullBackend):
    """Finishes the one completion it was given with an error when stepped."""

    needs_stepping = True

    def __init__(self, completion: Completion) -> None:
        super().__init__()
        self.completion = completion

    def step(self) -> int:
        self.completion.error(eio())
        return 1


def test_block_raises_a_deferred_error_after_abort() -> None:
    pending = Completion.new_write()
    op = Counting()

    def step() -> IOResult[None]:
        return IO(pending)

    op.step = step  # type: ignore[attr-defined]
    with pytest.raises(CompletionError) as info:
        block(op, FailsOnStep(pending))  # type: ignore[arg-type]
    assert info.value is pending.get_error()
    assert op.aborts == [info.value]


def test_block_on_an_unfinishable_completion_raises_and_aborts() -> None:
    pending = Completion.new_write()
    op = Counting()

    def step() -> IOResult[None]:
        return IO(pending)

    op.step = step  # type: ignore[attr-defined]
    with pytest.raises(IOResultError, match="can never finish"):
        block(op, NullBackend())  # type: ignore[arg-type]
    assert pending.get_error() is not None
    assert pending.get_error().kind is ErrorKind.ABORTED  # type: ignore[union-attr]
    assert len(op.aborts) == 1


def test_block_steps_again_on_an_explicit_yield() -> None:
    steps = []

    def step() -> IOResult[str]:
        steps.append(1)
        if len(steps) < 3:
            return IO(Completion.new_yield())
        return Done("after yields")

    assert block(step, MemoryIO()) == "after yields"
    assert len(steps) == 3


def test_logical_errors_propagate_without_abort() -> None:
    op = Counting()

    def step() -> IOResult[None]:
        raise ValueError("logic")

    op.step = step  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="logic"):
        block(op, MemoryIO())  # type: ignore[arg-type]
    assert op.aborts == []


def test_after_finished_is_the_one_rule_for_a_finished_completion() -> None:
    op = Counting()
    done = Completion.new_write()
    done.complete(3)
    assert after_finished(op, done) is False  # step again at once
    assert after_finished(op, Completion.new_yield()) is True  # a turn first
    assert op.aborts == []
    failed = Completion.new_read(bytearray(1))
    error = eio()
    failed.error(error)
    with pytest.raises(CompletionError) as raised:
        after_finished(op, failed)
    assert raised.value is error
    assert op.aborts == [error]
    assert after_finished(object(), done) is False  # an operation without `abort`
