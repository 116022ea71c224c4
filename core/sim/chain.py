"""`Chain`: several operations run one after another as one operation, so the explorer and
the soak can treat a sequence (open a database, then query it; open a file, then read,
seek and write) as a single unit with a single outcome.

Theory of operation:
- A chain holds builders, not operations: builder `k` is called with the values of the
  operations before it only when its turn comes, because building some operations does
  work at once (a file call the buffers can answer completes when made).
- Each built operation is wrapped by `wrap` (typically `SimulatorIO.with_yields`), so
  every step of every link is a yield point of its own: a link that finishes without I/O
  (a cache hit, a buffered call) still gives the explorer a place to re-enter the chain.
- Re-entrancy: the chain is a machine on the kernel, which returns the same completion to
  an early re-entry; the chain keeps the link it is stepping until that link returns `Done`,
  so nothing is built or recorded twice.
- The first link that raises (or whose completion fails, reported through `abort`) ends
  the chain: `abort` is forwarded to that link and later links are never built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.driver import Operation, abort_operation, as_step
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult

__all__ = ["Chain"]

Builder = Callable[[list[Any]], Operation[Any]]
"""Builds the next link from the values of the links before it."""


class Chain(Machine[list[Any]]):
    """Run `builders` in order; `Done(list of each link's value)`.

    Raises what a link raises, and `StateMachineError` if stepped after it finished or
    failed.
    """

    __slots__ = ("_builders", "_current", "_op", "_wrap", "values")

    def __init__(
        self,
        builders: Sequence[Builder],
        *,
        wrap: Callable[[Operation[Any]], Operation[Any]] | None = None,
    ) -> None:
        super().__init__()
        self._builders = tuple(builders)
        self._wrap = wrap
        self._op: Operation[Any] | None = None
        self._current: Callable[[], Done[Any] | IO] | None = None
        self.values: list[Any] = []
        """The values of the links finished so far."""

    def _advance(self) -> TransitionResult[list[Any]]:
        """Step the current link; build the next one when it is done."""
        if len(self.values) == len(self._builders):
            return Done(list(self.values))
        current = self._current
        if current is None:
            op = self._builders[len(self.values)](list(self.values))
            if self._wrap is not None:
                op = self._wrap(op)
            self._op = op
            current = self._current = as_step(op)
        result = current()
        if type(result) is not Done:
            return result
        self.values.append(result.value)
        self._op = None
        self._current = None
        return Continue

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        """Forward a driver's abort to the link in progress."""
        if abandoned and self._op is not None:
            abort_operation(self._op, error)
