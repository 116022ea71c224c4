"""Operations and the synchronous driver `block` (Turso's `io.block(|| op.step())`).

An *operation* is any object with `step() -> IOResult[T]`, or a zero-argument callable
returning `IOResult[T]`. It never blocks and never sleeps; it raises for a logical error.
It may have `abort(error)`, which a driver calls once when it gives up on it.

`block` is the whole synchronous world: step; on `IO`, let the backend wait for the
completion; raise its error if it failed; repeat. No event loop, no threads of its own.

`after_finished` is what every driver (`block`, `bridge.drive` on asyncio and on trio, the
simulator's runners) does with a completion that has finished, so that the rule lives in one
place: succeeded, step again at once; an explicit yield, give the loop (or the other fibers)
one turn, then step again; failed, `op.abort(error)`, then raise the error. A driver checks
the common case (succeeded, not a yield) inline and calls it only for the others: it is a
Python call, and the hot loops of `block` and `drive` add none per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from core.operation import Abortable, Steppable
from core.result import IO, Done

if TYPE_CHECKING:
    from core.completion import Completion
    from core.io.backend import IOBackend

__all__ = [
    "Abortable",
    "Operation",
    "Steppable",
    "abort_operation",
    "after_finished",
    "as_step",
    "block",
]

T = TypeVar("T")


Operation: TypeAlias = Steppable[T] | Callable[[], Done[T] | IO]
"""Anything a driver can run: an object with `step()` or a zero-argument callable."""


def as_step(op: Operation[T]) -> Callable[[], Done[T] | IO]:
    """The bound `step` of an operation (or the callable itself).

    Raises `TypeError` naming the object if it is neither.
    """
    step = getattr(op, "step", None)
    if step is not None and callable(step):
        return step  # type: ignore[no-any-return]
    if callable(op):
        return op
    raise TypeError(
        f"expected an operation (an object with step() or a zero-argument callable), "
        f"got {type(op).__name__}"
    )


def abort_operation(op: object, error: BaseException) -> None:
    """Call `op.abort(error)` if the operation has one."""
    abort = getattr(op, "abort", None)
    if abort is not None:
        abort(error)


def after_finished(op: object, c: Completion) -> bool:
    """What a driver does with `c`, a finished completion `op` returned: True to give the
    loop (or the other fibers) one turn before stepping again (an explicit yield), False to
    step again at once (it succeeded).

    Raises `c`'s `CompletionError` if it failed, after calling `op.abort(error)`.
    """
    error = c.get_error()
    if error is not None:
        abort_operation(op, error)
        raise error
    return c.is_explicit_yield()


def block(op: Operation[T], io: IOBackend) -> T:
    """Run `op` to completion on the calling thread and return its value.

    Raises the first failed completion's `CompletionError` (after calling `op.abort`),
    whatever `op` raises, and whatever `io.wait_for_completion` raises (a backend that needs
    an event loop refuses with `IOResultError`). On any other exception while waiting
    (`KeyboardInterrupt`, say) the outstanding completion is aborted and `op.abort` runs.
    """
    # `as_step` inline: one call fewer per operation.
    step: Callable[[], Done[T] | IO] | None = getattr(op, "step", None)
    if step is None or not callable(step):
        step = as_step(op)
    while True:
        result = step()
        if type(result) is Done:
            return result.value
        completion = result.completion  # type: ignore[union-attr]
        if not completion.finished():
            try:
                io.wait_for_completion(completion)
            except BaseException as exc:
                # A failed completion (whose error the backend raises) or an interruption:
                # either way the driver gives up. Aborting a finished completion does nothing.
                completion.abort()
                abort_operation(op, exc)
                raise
        elif completion.get_error() is not None:
            # Only a failure needs `after_finished` here (it raises): with no loop, a yield
            # has nobody to give a turn to and steps again at once, as a success does.
            after_finished(op, completion)
