"""Done / IO results and the `return_if_io!` / `return_and_restore_if_io!` idioms."""

from __future__ import annotations

import pytest

from core import IO, Completion, Done, IOResult, io_yield_one, restore_on_io


def test_done_and_io_are_immutable_and_compare_by_content() -> None:
    d = Done(3)
    with pytest.raises(AttributeError, match="immutable"):
        d.value = 4  # type: ignore[misc]
    assert d == Done(3) and d != Done(4)
    assert hash(d) == hash(Done(3))
    c = Completion.new_write()
    io = IO(c)
    with pytest.raises(AttributeError, match="immutable"):
        io.completion = Completion.new_write()  # type: ignore[misc]
    assert io == IO(c) and io != IO(Completion.new_write())
    assert Done(c) != IO(c)  # a result is never mistaken for a wait
    assert repr(Done(1)) == "Done(1)"


def test_io_yield_one_wraps_the_completion() -> None:
    c = Completion.new_yield()
    assert io_yield_one(c).completion is c


class Child:
    """Yields `waits` times on fresh completions, then finishes with `value`."""

    def __init__(self, waits: int, value: int) -> None:
        self.waits = waits
        self.value = value
        self.pending: list[Completion] = []

    def step(self) -> IOResult[int]:
        if self.waits:
            self.waits -= 1
            c = Completion.new_read(bytearray(1))
            self.pending.append(c)
            return IO(c)
        return Done(self.value)


class Parent:
    """Uses the `match` idiom for `return_if_io!`."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.after = 0

    def step(self) -> IOResult[int]:
        match self.child.step():
            case IO() as io:
                return io
            case Done(value):
                self.after += 1  # after the yield point: runs once
                return Done(value * 2)
        raise AssertionError("unreachable")


def test_return_if_io_idiom_propagates_io_and_mutates_once() -> None:
    child = Child(waits=3, value=21)
    parent = Parent(child)
    for _ in range(3):
        result = parent.step()
        assert isinstance(result, IO)
        result.completion.complete(1)
    assert parent.step() == Done(42)
    assert parent.after == 1


class Restoring:
    """Moves `items` out for the sub-step and must find it back on re-entry."""

    def __init__(self, child: Child | None, fail: bool = False) -> None:
        self.items: list[int] | None = [1, 2, 3]
        self.child = child
        self.fail = fail

    def _sub(self) -> IOResult[int]:
        if self.fail:
            raise ValueError("sub-step failed")
        assert self.child is not None
        return self.child.step()

    def step(self) -> IOResult[int]:
        saved = self.items
        self.items = None  # taken for the duration of the sub-step

        def put_back() -> None:
            self.items = saved

        match restore_on_io(self._sub, put_back):
            case IO() as io:
                return io
            case Done(value):
                assert saved is not None
                return Done(value + sum(saved))
        raise AssertionError("unreachable")


def test_restore_on_io_restores_on_io() -> None:
    op = Restoring(Child(waits=1, value=10))
    result = op.step()
    assert isinstance(result, IO)
    assert op.items == [1, 2, 3]
    result.completion.complete(1)
    assert op.step() == Done(16)
    assert op.items is None  # on Done the caller owns what it took


def test_restore_on_io_restores_on_exception_and_reraises() -> None:
    op = Restoring(None, fail=True)
    with pytest.raises(ValueError, match="sub-step failed"):
        op.step()
    assert op.items == [1, 2, 3]
