"""The generic state-machine wrapper (Turso `core/state_machine.rs`).

A *transition* object holds the states of one operation and moves one transition per
`step()`: it returns `Done(value)` when finished, `IO(completion)` to wait, or `Continue`
to be called again at once. `StateMachine` owns what every operation would otherwise
re-implement: the loop on `Continue`, calling `finalize()` exactly once when done, and
refusing to be stepped after it finished or failed.
"""

from __future__ import annotations

import enum
from typing import Final, Generic, Literal, Protocol, TypeAlias, TypeVar

from core.errors import StateMachineError
from core.result import IO, Done

__all__ = ["Continue", "ContinueType", "StateMachine", "Transition", "TransitionResult"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ContinueType(enum.Enum):
    """The type of the `Continue` sentinel."""

    CONTINUE = "Continue"

    def __repr__(self) -> str:
        return "Continue"


Continue: Final = ContinueType.CONTINUE
"""Returned by a transition's `step()` to be called again at once, without I/O."""

TransitionResult: TypeAlias = Done[T] | IO | Literal[ContinueType.CONTINUE]
"""What a transition's `step()` returns."""


class Transition(Protocol[T_co]):
    """One operation's states, advanced by `step()`."""

    def step(self) -> Done[T_co] | IO | Literal[ContinueType.CONTINUE]:
        """Make one transition. Raises whatever the operation raises for a logical error."""
        ...

    def finalize(self) -> None:
        """Release what the operation holds; called once, when it is done."""
        ...

    def is_finalized(self) -> bool:
        """True once `finalize()` has run."""
        ...


class _Phase(enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class StateMachine(Generic[T]):
    """Wraps a `Transition` into an operation: `step()` returns `Done` or `IO`, never `Continue`.

    Stepping after `Done` raises `StateMachineError`; so does stepping after `step()` raised,
    with the original exception as the cause.
    """

    __slots__ = ("_failure", "_phase", "transition")

    def __init__(self, transition: Transition[T]) -> None:
        self.transition = transition
        self._phase = _Phase.RUNNING
        self._failure: BaseException | None = None

    def step(self) -> Done[T] | IO:
        """Advance until `Done` or `IO`.

        Raises `StateMachineError` if already finished or failed, and whatever the transition
        raises (after which the machine is failed).
        """
        if self._phase is not _Phase.RUNNING:
            self._raise_not_running()
        transition = self.transition
        try:
            while True:
                result = transition.step()
                if result is Continue:
                    continue
                if type(result) is Done:
                    if not transition.is_finalized():
                        transition.finalize()
                    self._phase = _Phase.FINISHED
                return result
        except BaseException as exc:
            self._phase = _Phase.FAILED
            self._failure = exc
            raise

    def abort(self, error: BaseException) -> None:
        """Forward a driver's abort to the transition, if it has an `abort` of its own."""
        abort = getattr(self.transition, "abort", None)
        if abort is not None:
            abort(error)

    def finalize(self) -> None:
        """Finalize the transition now (e.g. when giving up on it); idempotent."""
        if not self.transition.is_finalized():
            self.transition.finalize()

    def is_finalized(self) -> bool:
        """True once the transition has been finalized."""
        return self.transition.is_finalized()

    def is_failed(self) -> bool:
        """True once `step()` has raised."""
        return self._phase is _Phase.FAILED

    def _raise_not_running(self) -> None:
        if self._phase is _Phase.FINISHED:
            raise StateMachineError(
                f"state machine {type(self.transition).__name__} stepped after it finished"
            )
        raise StateMachineError(
            f"state machine {type(self.transition).__name__} stepped after it failed "
            f"with {self._failure!r}"
        ) from self._failure
