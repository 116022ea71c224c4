"""One call on a file object as an operation: turn-taking, checkpoint and rollback.

Theory of operation:
- Each method call of a file object (`read`, `write`, `seek`...) that may need I/O is an
  operation, a `FileCall`, on the kernel (`core.state_machine.Machine`): its `_advance()` is
  the explicit state machine; the kernel loops on `Continue`, returns the same completion
  when stepped again before it finished, and refuses steps after the end.
- A file has one `FileLock`. A call holds it from its first step until it is done, failed or
  aborted, because a call's states span I/Os and another call must not see them half-made:
  a second call stepped meanwhile (another task using the same file) waits on a completion
  of its own that finishes with the holder's outstanding one, or, if that has finished but
  the holder has not been stepped yet, on an explicit yield. Cancelling the waiter never
  touches the holder's I/O. Calls on one file therefore run one at a time, in no promised
  order, as calls on one Python file object from several threads do.
- A call takes its turn (the kernel's `_start`) and a checkpoint of the file's state
  (`_begin`) when it starts. If an I/O of it fails or a driver gives up on it (`abort`:
  cancellation, timeout, a failed completion), `_rollback` puts the file back into a
  consistent state: for most calls, as if the call had not been made.
  The subclass says what that means; `abandoned` tells it that an I/O may still be running
  (a worker may still touch memory handed to it, so that memory must not be reused).
  A logical error raised midway (a bad argument, a decoding error) rolls nothing back: the
  state is then what the same sequence of steps leaves in CPython, and no I/O is outstanding.
- The turn is given back (the kernel's `_finalize`) exactly once, however the call ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult

__all__ = ["EachInTurn", "FileCall", "FileLock", "LinesUntilHint", "Ready"]

T = TypeVar("T")
Item = TypeVar("Item")
Line = TypeVar("Line", str, bytes)
Line_co = TypeVar("Line_co", str, bytes, covariant=True)


class FileLock:
    """Whose turn it is on one file: the call that holds it, if any."""

    __slots__ = ("holder",)

    def __init__(self) -> None:
        self.holder: FileCall[Any] | None = None

    def wait_turn(self) -> IO:
        """What a call that found the lock taken yields: a completion of its own, finished
        when the holder's pending I/O finishes (whatever its outcome), or an explicit yield
        when that I/O has finished but the holder has not been stepped yet.

        Never the holder's own completion: a driver that gives up on the waiting call aborts
        what it waits on, and the holder's failure is the holder's, not the waiter's.
        """
        holder = self.holder
        pending = holder.pending() if holder is not None else None
        if pending is None or pending.finished():
            return IO(Completion.new_yield())
        turn = Completion.new_sync()
        pending.add_done_callback(lambda _: turn.complete(0))
        return IO(turn)


@mypyc_attr(allow_interpreted_subclasses=True)
class FileCall(Machine[T]):
    """Base of every file call: subclasses implement `_begin`, `_advance` and `_rollback`.

    `step()` raises what the call raises (a closed file, an unsupported operation, a failed
    I/O's `CompletionError`), and `StateMachineError` if stepped after it finished or failed.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: FileLock) -> None:
        super().__init__()
        self._start_first()
        self._lock = lock

    def _start(self) -> IO | None:
        """Take the file's turn and the checkpoint, or wait for the call ahead."""
        lock = self._lock
        if lock.holder is not None:
            return lock.wait_turn()
        lock.holder = self
        self._begin()
        return None

    def _adopt(self, pending: Completion) -> None:
        """Take the turn now, for a call built around a read already submitted: its next
        step waits on `pending`. The lock must be free."""
        assert self._lock.holder is None
        self._lock.holder = self
        self._started_on(pending)

    def _finalize(self) -> None:
        """Let the next call have its turn."""
        if self._lock.holder is self:
            self._lock.holder = None

    def _begin(self) -> None:
        """Check the call may run now and take the checkpoint; may raise."""

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        """Undo what the call did to the file's state after it failed; must not raise."""


class Ready(FileCall[T]):
    """A call that was complete when it was made: it needed no I/O and no turn (a read served
    from the read-ahead buffer, a write that fits in the buffer). `step()` returns `Done`;
    drivers and the bridge may read `value` directly.

    The one file call that is not a machine: it has no states and never runs, so it skips
    the kernel's constructor (it is built once per buffered read or line, the hottest path
    of the files) and answers the kernel's questions itself.
    """

    __slots__ = ("value",)
    value: T

    def __init__(self, value: T) -> None:  # no lock, no kernel state: nothing to wait for
        self.value = value

    def step(self) -> Done[T]:
        """`Done(value)`, however often it is stepped."""
        return Done(self.value)

    def abort(self, error: BaseException) -> None:
        """Nothing to undo."""

    def pending(self) -> None:
        """Nothing is pending."""
        return None

    def is_running(self) -> bool:
        """False: it was complete when it was made."""
        return False

    def is_failed(self) -> bool:
        """False: it cannot fail."""
        return False


class _SubCall(Protocol):
    """What `EachInTurn` needs of the calls it runs: a check, then transitions."""

    def _check(self) -> None: ...

    def _advance(self) -> TransitionResult[object]: ...


class EachInTurn(Generic[Item]):
    """Runs one sub-call per item, each to `Done` before the next starts: the shape of
    `writelines` on every kind of file. The enclosing call holds the turn and the
    checkpoint; this only keeps which item is next and the sub-call in progress, so that
    re-entry resumes it instead of starting it again."""

    __slots__ = ("_current", "_items", "_make", "_next")

    def __init__(self, items: Sequence[Item], make: Callable[[Item], _SubCall]) -> None:
        self._items = items
        self._make = make
        self._next = 0
        self._current: _SubCall | None = None

    def advance(self) -> TransitionResult[None]:
        """One transition of the sub-call in progress (starting the next one if none is);
        `Done(None)` after the last item. Raises what a sub-call's `_check` raises."""
        if self._current is None:
            if self._next == len(self._items):
                return Done(None)
            self._current = self._make(self._items[self._next])
            self._current._check()
        result = self._current._advance()
        if not isinstance(result, Done):
            return result
        self._current = None
        self._next += 1
        return Continue


class _LineCall(Protocol[Line_co]):
    """What `LinesUntilHint` needs of a `readline(-1)` call."""

    def _check(self) -> None: ...

    def _advance(self) -> TransitionResult[Line_co]: ...


class LinesUntilHint(Generic[Line]):
    """`readlines(hint)`'s loop on every kind of file: `readline()` sub-calls until an empty
    line, or until a line takes the total past `hint` (if > 0). `at_end` tells whether it
    stopped at the end of the file."""

    __slots__ = ("_hint", "_line", "_lines", "_make", "_total", "at_end")

    def __init__(self, hint: int, make: Callable[[], _LineCall[Line]]) -> None:
        self._hint = hint
        self._make: Callable[[], _LineCall[Line]] = make
        self._lines: list[Line] = []
        self._total = 0
        self._line: _LineCall[Line] = make()
        self.at_end = False

    def check(self) -> None:
        """Raise if the first `readline` may not run."""
        self._line._check()

    def advance(self) -> TransitionResult[list[Line]]:
        """One transition of the `readline` in progress; `Done(lines)` when finished."""
        result = self._line._advance()
        if not isinstance(result, Done):
            return result  # IO or Continue
        line: Line = result.value
        if not line:
            self.at_end = True
            return Done(self._lines)
        self._lines.append(line)
        # IOBase.readlines stops once a line takes the total past the hint (not at it).
        if self._hint > 0 and len(line) > self._hint - self._total:
            return Done(self._lines)
        self._total += len(line)
        self._line = self._make()
        return Continue
