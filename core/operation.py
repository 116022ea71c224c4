"""The protocols an operation satisfies, `Steppable` and `Abortable` (re-exported by
`core.driver`). They live apart from the driver because a compiled module cannot hold a
`runtime_checkable` protocol, and this one is never compiled."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from core.result import IO, Done

__all__ = ["Abortable", "Steppable"]

T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Steppable(Protocol[T_co]):
    """An object operation: `step()` returns `Done` or `IO`."""

    def step(self) -> Done[T_co] | IO:
        """Advance; raises for a logical error."""
        ...


@runtime_checkable
class Abortable(Protocol):
    """An operation that wants to hear when a driver gives up on it."""

    def abort(self, error: BaseException) -> None:
        """Called once with the error about to be raised (a `CompletionError`, a
        cancellation or a timeout). Must not raise."""
        ...
