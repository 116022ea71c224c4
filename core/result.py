"""What a step returns: `Done(value)` or `IO(completion)` (Turso `core/types.rs`).

Rules:
- An operation's `step()` returns `Done(value)` when it has finished, or `IO(completion)`
  when it cannot go on until that completion finishes; the caller waits and steps again.
- Return `IO(c)` only for an unfinished completion or an explicit yield
  (`io_yield_one(Completion.new_yield())`); a driver that gets a finished one steps again
  at once, which is allowed but wasteful.
- Both are immutable. They are slotted classes rather than `NamedTuple`s because they are
  built once per step on the hottest path, and a slotted `__init__` costs less.

Turso's `return_if_io!` becomes a `match` on the sub-result::

    match self.child.step():
        case IO() as io:
            return io
        case Done(value):
            ...

and `return_and_restore_if_io!` becomes `restore_on_io`, which puts a saved value back when
the sub-step yields *or* raises, so re-entry starts from the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeAlias, TypeVar

from mypy_extensions import mypyc_attr

if TYPE_CHECKING:
    from core.completion import Completion

__all__ = ["IO", "Done", "IOResult", "io_yield_one", "restore_on_io"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _Frozen:
    """Refuses attribute assignment; the subclasses write their one slot through its
    descriptor (a compiled class cannot define `__setattr__` next to `Generic`)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")


# Compiled, each class keeps its last freed instance for the next one: a step's result is
# usually dropped before the next step makes another.
@mypyc_attr(free_list_len=1)
class Done(_Frozen, Generic[T_co]):
    """The operation finished with `value`."""

    __slots__ = ("value",)
    # A ClassVar tuple, so `case Done(v):` also matches the compiled class.
    __match_args__: ClassVar[tuple[str]] = ("value",)
    value: T_co

    def __init__(self, value: T_co) -> None:
        _set_done_value(self, value)

    def __eq__(self, other: object) -> bool:
        return type(other) is Done and bool(other.value == self.value)

    def __hash__(self) -> int:
        return hash((Done, self.value))

    def __repr__(self) -> str:
        return f"Done({self.value!r})"


@mypyc_attr(free_list_len=1)
class IO(_Frozen):
    """The operation is waiting for `completion`; step it again once that has finished."""

    __slots__ = ("completion",)
    __match_args__: ClassVar[tuple[str]] = ("completion",)
    completion: Completion

    def __init__(self, completion: Completion) -> None:
        _set_io_completion(self, completion)

    def __eq__(self, other: object) -> bool:
        return type(other) is IO and other.completion is self.completion

    def __hash__(self) -> int:
        return hash((IO, id(self.completion)))

    def __repr__(self) -> str:
        return f"IO({self.completion!r})"


# Writing through the slot descriptors keeps construction cheap while `__setattr__` refuses
# (`Final`: compiled, a constant rather than a lookup in the module's dictionary).
_set_done_value: Final[Callable[[Any, Any], None]] = vars(Done)["value"].__set__
_set_io_completion: Final[Callable[[Any, Any], None]] = vars(IO)["completion"].__set__

IOResult: TypeAlias = Done[T] | IO
"""What `step()` returns: `Done[T]` when finished, `IO` when waiting for a completion."""


def io_yield_one(completion: Completion) -> IO:
    """Yield one completion to the driver (Turso's `io_yield_one!`)."""
    return IO(completion)


def restore_on_io(step: Callable[[], IOResult[T]], restore: Callable[[], None]) -> IOResult[T]:
    """Run `step()`; if it yields or raises, call `restore()` first (`return_and_restore_if_io!`).

    Use it when a field was moved out for the sub-step and must be back in place for the
    re-entry::

        saved = self.pending
        match restore_on_io(self.child.step, lambda: self._put_back(saved)):
            case IO() as io:
                return io
            case Done(value):
                ...

    Raises whatever `step()` raises, after `restore()` ran.
    """
    try:
        result = step()
    except BaseException:
        restore()
        raise
    if type(result) is IO:
        restore()
    return result
