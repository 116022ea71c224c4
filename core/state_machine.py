"""The state-machine kernel: one way to write an operation (Turso `core/state_machine.rs`).

Theory of operation:
- An operation is a subclass of `Machine[T]` that writes one method, `_advance()`: a
  `match` over an `enum.Enum` of its own states whose every arm sets the next state and
  returns `Done(value)`, `IO(completion)` to wait, or `Continue` to be advanced again at once.
  `Machine.step()` is the operation's `step()`; it owns everything else of the lifecycle,
  so no operation re-implements it:
  - Re-entry: the completion of the last `IO` is kept; stepped again before it finished,
    the machine returns `IO` of that same completion and advances nothing (nothing is
    submitted twice, no state moves).
  - `Continue` is looped here, never returned to a driver.
  - The end: after `Done`, a step raises `StateMachineError` "stepped after it finished";
    after `_advance()` raised or a driver aborted, a step raises `StateMachineError`
    "stepped after it failed", chained to what failed.
  - Undo: `_rollback(error, abandoned)` runs exactly once, when an I/O failed (a
    `CompletionError` raised by `_advance`; `abandoned` is False: nothing is in flight) or
    when a driver gave up (`abort(error)`; `abandoned` is True: an I/O may still be running,
    so memory handed to it must not be reused). A logical error (a bad argument found
    midway, a decoding error) rolls nothing back: the state is what the same steps leave.
  - Cleanup: `_finalize()` runs exactly once, at the end, however it ends (done, failed or
    aborted), after any rollback.
  - A start: a machine whose constructor calls `_start_first()` has `_start()` called
    before its first transition, until it returns None (it may return `IO` to wait for
    its turn: a file call waits for the call ahead of it). Only then does the machine
    count as started; an abort before that rolls nothing back.
- `StateMachine(transition)` is the public adapter for a transition object written apart
  (`step()` -> `Done | IO | Continue`, `finalize()`, `is_finalized()`).

The one rule for comparing states fast (CPython 3.11): looking a member up on its Enum
class (`State.READING`) goes through the enum metaclass's `__getattr__` hook and costs about
60 ns, several times a global lookup. So states are `enum.Enum` members and `_advance` is a
`match self._state:` with `case State.X:` arms, except on a hot path: code that runs once
per I/O, per page or per row on a path a benchmark measures (completions, the kernel itself,
the read operations in `core/ops/read.py`, B-tree cursors, the storage read transaction and
its query machines).
There the module binds each member once to a module-level alias right under the Enum
(`_READING = ReadState.READING`) and compares with `is` against the alias, the most
frequent state first. Plain ints and strings are never states.
"""

from __future__ import annotations

import enum
from typing import Final, Generic, Literal, Protocol, TypeAlias, TypeVar

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.errors import CompletionError, StateMachineError
from core.result import IO, Done

__all__ = [
    "Continue",
    "ContinueType",
    "Machine",
    "StateMachine",
    "Transition",
    "TransitionResult",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ContinueType(enum.Enum):
    """The type of the `Continue` sentinel."""

    CONTINUE = "Continue"

    def __repr__(self) -> str:
        return "Continue"


Continue: Final = ContinueType.CONTINUE
"""Returned by `_advance()` (or a transition's `step()`) to be advanced again at once."""

TransitionResult: TypeAlias = Done[T] | IO | Literal[ContinueType.CONTINUE]
"""What one transition returns: `Done(value)`, `IO(completion)` or `Continue`."""


class Phase(enum.Enum):
    """Where a machine is in its lifecycle."""

    NEW = "new"
    """`_start()` has not yet let it start (see `_start_first`)."""
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


_NEW: Final = Phase.NEW
_RUNNING: Final = Phase.RUNNING
_FINISHED: Final = Phase.FINISHED
_FAILED: Final = Phase.FAILED


@mypyc_attr(allow_interpreted_subclasses=True)
class Machine(Generic[T]):
    """Base of every operation: subclasses implement `_advance`, and may override
    `_start`, `_rollback` and `_finalize` (see the module docstring)."""

    __slots__ = ("_awaiting", "_failure", "_lifecycle")
    _failure: BaseException  # set when the operation fails, read only after

    def __init__(self) -> None:
        # Runs once per operation, so it does the least: a subclass on a hot path calls it
        # as `Machine.__init__(self)` (a zero-argument `super()` costs another object).
        self._awaiting: Completion | None = None
        self._lifecycle = _RUNNING

    def step(self) -> Done[T] | IO:
        """Advance until `Done` or `IO`.

        Raises what the operation raises (a failed I/O's `CompletionError`, a logical
        error), and `StateMachineError` if stepped after it finished or failed.
        """
        pending = self._awaiting
        if pending is not None:
            if not pending.finished():
                return IO(pending)  # stepped again before its I/O finished: same one
            self._awaiting = None
        if self._lifecycle is not _RUNNING:
            wait = self._enter()
            if wait is not None:
                self._awaiting = wait.completion
                return wait
        try:
            result = self._advance()
            while result is Continue:
                result = self._advance()
        except CompletionError as exc:
            self._fail(exc, True, False)
            raise
        except BaseException as exc:
            self._fail(exc, False, False)
            raise
        if type(result) is IO:
            self._awaiting = result.completion
            return result
        self._lifecycle = _FINISHED
        self._finalize()
        return result

    def abort(self, error: BaseException) -> None:
        """A driver gave up on this operation (`error` is about to be raised): roll back if it
        had started, finalize, and refuse further steps; a no-op once the operation has
        ended. Raises only what a `_rollback` or `_finalize` that breaks its contract
        raises."""
        phase = self._lifecycle
        if phase is _RUNNING or phase is _NEW:
            self._fail(error, phase is _RUNNING, True)

    def pending(self) -> Completion | None:
        """The completion of the last `IO` this operation returned, while it is running
        (it may have finished since); None before its first I/O and after it ended."""
        return self._awaiting

    def is_running(self) -> bool:
        """True until the operation finished, failed or was aborted."""
        phase = self._lifecycle
        return phase is _RUNNING or phase is _NEW

    def is_failed(self) -> bool:
        """True once `step()` raised or a driver aborted the operation."""
        return self._lifecycle is _FAILED

    # What subclasses write.

    def _advance(self) -> TransitionResult[T]:
        """Make one transition: a `match` over the operation's states."""
        raise NotImplementedError

    def _start(self) -> IO | None:
        """(After `_start_first()`) Take what the operation needs before its first transition;
        `IO` to wait and be called again, None when it may start. May raise."""
        return None

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        """Undo what the operation did after an I/O failed or a driver gave up; must not
        raise."""

    def _finalize(self) -> None:
        """Release what the operation holds; runs exactly once, however it ends. Must not
        raise."""

    # The lifecycle.

    def _start_first(self) -> None:
        """Have `_start()` run before the first transition, until it lets the operation
        start (call it from the constructor)."""
        self._lifecycle = _NEW

    def _started_on(self, pending: Completion) -> None:
        """Count the operation as started and waiting on `pending`: for an operation built
        around an I/O submitted before it existed. Its next step waits on `pending`."""
        self._lifecycle = _RUNNING
        self._awaiting = pending

    def _enter(self) -> IO | None:
        if self._lifecycle is _NEW:
            try:
                wait = self._start()
            except BaseException as exc:
                self._fail(exc, False, False)
                raise
            if wait is None:
                self._lifecycle = _RUNNING
            return wait
        name = type(self).__name__
        if self._lifecycle is _FINISHED:
            raise StateMachineError(f"{name} stepped after it finished")
        error = StateMachineError(f"{name} stepped after it failed with {self._failure!r}")
        # Chained by hand: compiled by mypyc, `raise ... from` drops the cause.
        error.__cause__ = self._failure
        raise error

    def _fail(self, error: BaseException, rollback: bool, abandoned: bool) -> None:
        self._lifecycle = _FAILED
        self._failure = error
        self._awaiting = None
        try:
            if rollback:
                self._rollback(error, abandoned)
        finally:
            self._finalize()


class Transition(Protocol[T_co]):
    """One operation's states written apart from the kernel, advanced by `step()`."""

    def step(self) -> Done[T_co] | IO | Literal[ContinueType.CONTINUE]:
        """Make one transition. Raises whatever the operation raises for a logical error."""
        ...

    def finalize(self) -> None:
        """Release what the operation holds; called once, when it is done."""
        ...

    def is_finalized(self) -> bool:
        """True once `finalize()` has run."""
        ...


@mypyc_attr(allow_interpreted_subclasses=True)
class StateMachine(Machine[T]):
    """Wraps a `Transition` into an operation on the kernel: `step()` returns `Done` or
    `IO`, never `Continue`.

    Stepping after `Done` raises `StateMachineError`; so does stepping after `step()` raised,
    with the original exception as the cause. A driver's `abort` is forwarded to the
    transition if it has an `abort(error)` of its own.
    """

    __slots__ = ("transition",)

    def __init__(self, transition: Transition[T]) -> None:
        super().__init__()
        self.transition = transition

    def _advance(self) -> TransitionResult[T]:
        return self.transition.step()

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if abandoned:
            abort = getattr(self.transition, "abort", None)
            if abort is not None:
                abort(error)

    def _finalize(self) -> None:
        self.finalize()

    def finalize(self) -> None:
        """Finalize the transition now (e.g. when giving up on it); idempotent."""
        if not self.transition.is_finalized():
            self.transition.finalize()

    def is_finalized(self) -> bool:
        """True once the transition has been finalized."""
        return self.transition.is_finalized()
