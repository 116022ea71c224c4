"""Completions: one I/O each, and groups that wait for many (Turso `core/io/completions.rs`).

Theory of operation:
- A completion's outcome is set once. The first of `complete`, `error` or `abort` claims it
  and every later call is a no-op, because an abort may race a real result from a worker.
- The completion's own callback runs before the outcome is published, so whoever sees
  `finished()` also sees a filled page. Done-callbacks (`add_done_callback`) run after.
- Claim and publish are each one tiny critical section under a module-wide lock: a
  completion may be finished on a worker thread while another thread polls or registers a
  done-callback, and that must neither lose the callback nor run it twice. Callbacks
  themselves always run outside the lock, so they may finish other completions.
- Unlike Turso, a completion keeps its result value (bytes read or written).
- A group (Turso PRs 8542 and 8547) links its children in `build()`, holding one extra count
  of its own while it does, so a child that finishes during `build()` cannot finish the group
  early; it finishes exactly once, after every child, with the first child error (in time).
"""

from __future__ import annotations

import builtins
import enum
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from core.errors import CompletionError, ErrorKind, IOResultError

__all__ = ["Completion", "CompletionCallback", "CompletionGroup", "DoneCallback"]

CompletionCallback = Callable[[int | CompletionError], CompletionError | None]
"""Called once with the result (`int`) or the error; may return an error to replace success."""

DoneCallback = Callable[["Completion"], object]
"""Called once with the finished completion, on the thread that finished it."""

_LOCK = threading.Lock()


class _Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    SYNC = "sync"
    TRUNCATE = "truncate"
    GROUP = "group"
    YIELD = "yield"


class Completion:
    """Tracks one I/O operation. Build with the `new_*` constructors, not directly."""

    __slots__ = (
        "_callback",
        "_claimed",
        "_error",
        "_finished",
        "_group",
        "_kind",
        "_result",
        "_waiters",
        "buffer",
    )

    buffer: bytearray | memoryview | None
    """For a read, the buffer the data lands in; `None` for other kinds."""

    def __init__(
        self,
        kind: _Kind,
        callback: CompletionCallback | None = None,
        buffer: bytearray | memoryview | None = None,
    ) -> None:
        self._kind = kind
        self._callback = callback
        self.buffer = buffer
        self._claimed = False
        self._finished = False
        self._result: int | None = None
        self._error: CompletionError | None = None
        self._waiters: list[DoneCallback] | None = None
        self._group: CompletionGroup | None = None

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def new_read(
        cls, buffer: bytearray | memoryview, callback: CompletionCallback | None = None
    ) -> Completion:
        """A read into `buffer`; the result is the number of bytes read."""
        return cls(_Kind.READ, callback, buffer)

    @classmethod
    def new_write(cls, callback: CompletionCallback | None = None) -> Completion:
        """A write; the result is the number of bytes written."""
        return cls(_Kind.WRITE, callback)

    @classmethod
    def new_sync(cls, callback: CompletionCallback | None = None) -> Completion:
        """An fsync; the result is 0."""
        return cls(_Kind.SYNC, callback)

    @classmethod
    def new_trunc(cls, callback: CompletionCallback | None = None) -> Completion:
        """A truncate; the result is 0."""
        return cls(_Kind.TRUNCATE, callback)

    @classmethod
    def new_yield(cls) -> Completion:
        """An explicit yield: finished and succeeded at once, but a driver gives its event
        loop (or other fibers) one turn before stepping again, and never spins on it."""
        c = cls(_Kind.YIELD)
        c._claimed = True
        c._result = 0
        c._finished = True
        return c

    # -- finishing ----------------------------------------------------------------------

    def complete(self, result: int) -> None:
        """Finish successfully with `result`; a no-op if already finished."""
        self._finish(result, None)

    def error(self, err: CompletionError) -> None:
        """Finish with `err`; a no-op if already finished."""
        self._finish(None, err)

    def abort(self) -> None:
        """Abandon: finish with an `ABORTED` error; a no-op if already finished.

        Aborting a group's completion cancels the group's unfinished children first.
        """
        group = self._group
        if group is not None:
            group.cancel()
        self._finish(None, CompletionError(ErrorKind.ABORTED, f"{self._kind.value} aborted"))

    def _finish(self, result: int | None, error: CompletionError | None) -> None:
        with _LOCK:
            if self._claimed:
                return
            self._claimed = True
        callback = self._callback
        if callback is not None:
            self._callback = None  # release what the closure holds
            try:
                replacement = callback(error if error is not None else result)  # type: ignore[arg-type]
            except Exception as exc:
                error = CompletionError(
                    ErrorKind.CALLBACK, f"{self._kind.value} callback raised {exc!r}"
                )
                error.__cause__ = exc
            else:
                if replacement is not None:
                    error = replacement
        with _LOCK:
            self._result = result
            self._error = error
            self._finished = True
            waiters = self._waiters
            self._waiters = None
        if waiters is not None:
            for waiter in waiters:
                _run_done_callback(waiter, self)

    # -- reading ------------------------------------------------------------------------

    def finished(self) -> bool:
        """True once the outcome is set and the completion's callback has run."""
        return self._finished

    def succeeded(self) -> bool:
        """True if finished without an error."""
        return self._finished and self._error is None

    def failed(self) -> bool:
        """True if finished with an error."""
        return self._finished and self._error is not None

    def get_error(self) -> CompletionError | None:
        """The error, if finished with one; otherwise `None`."""
        return self._error if self._finished else None

    def result(self) -> int:
        """The result value.

        Raises `IOResultError` if not finished yet, or the `CompletionError` it failed with.
        """
        if not self._finished:
            raise IOResultError(f"{self!r} has not finished; its result is not available yet")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def is_explicit_yield(self) -> bool:
        """True for `new_yield()` completions."""
        return self._kind is _Kind.YIELD

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call `fn(self)` once when finished: at once (on this thread) if already finished,
        otherwise on the thread that finishes it. An exception from `fn` is reported through
        `sys.unraisablehook`, never raised into the finishing thread."""
        with _LOCK:
            if not self._finished:
                if self._waiters is None:
                    self._waiters = [fn]
                else:
                    self._waiters.append(fn)
                return
        _run_done_callback(fn, self)

    def remove_done_callback(self, fn: DoneCallback) -> bool:
        """Forget `fn` if it has not run yet; return whether it was registered."""
        with _LOCK:
            if self._waiters is not None and fn in self._waiters:
                self._waiters.remove(fn)
                return True
        return False

    def __repr__(self) -> str:
        if not self._finished:
            state = "pending"
        elif self._error is not None:
            state = f"failed: {self._error}"
        else:
            state = f"done: {self._result}"
        return f"<Completion {self._kind.value} {state}>"


def _run_done_callback(fn: DoneCallback, completion: Completion) -> None:
    try:
        fn(completion)
    except Exception as exc:
        sys.unraisablehook(
            _Unraisable(exc, f"Exception in done-callback {fn!r} of {completion!r}", completion)
        )


class _Unraisable:
    """The argument shape `sys.unraisablehook` expects."""

    __slots__ = ("err_msg", "exc_traceback", "exc_type", "exc_value", "object")

    exc_type: type[BaseException]
    exc_value: BaseException | None
    exc_traceback: TracebackType | None
    err_msg: str | None
    object: builtins.object

    def __init__(self, exc: BaseException, msg: str, obj: builtins.object) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = msg
        self.object = obj


class CompletionGroup:
    """Waits for many completions as one: `add()` children, then `build()` one completion.

    The built completion finishes once, after every child has finished, with the first
    child error (or, on success, the sum of the children's results). An empty group
    finishes at once. Groups nest: add a built group's completion to another group.
    """

    __slots__ = ("_callback", "_children", "_completion", "_first_error", "_outstanding", "_total")

    def __init__(self, callback: CompletionCallback | None = None) -> None:
        self._callback = callback
        self._children: list[Completion] = []
        self._completion: Completion | None = None
        self._first_error: CompletionError | None = None
        self._outstanding = 0
        self._total = 0

    def add(self, completion: Completion) -> None:
        """Add a child; it may already have finished (it then counts as done).

        Raises `IOResultError` after `build()`.
        """
        if self._completion is not None:
            raise IOResultError("cannot add a completion to a group that was already built")
        self._children.append(completion)

    def completions(self) -> list[Completion]:
        """The children, in the order they were added."""
        return list(self._children)

    def cancel(self) -> None:
        """Abort every unfinished child (recursively for nested groups)."""
        for child in self._children:
            if not child.finished():
                child.abort()

    def build(self) -> Completion:
        """Link the children and return the group's completion.

        Raises `IOResultError` if called twice.
        """
        if self._completion is not None:
            raise IOResultError("CompletionGroup.build() called twice")
        completion = Completion(_Kind.GROUP, self._callback)
        completion._group = self
        self._callback = None
        self._completion = completion
        # One count per child plus build's own hold, released last: a child finishing on
        # another thread while we link cannot bring the count to zero early.
        self._outstanding = len(self._children) + 1
        for child in self._children:
            child.add_done_callback(self._child_done)
        self._release_one(None)
        return completion

    def _child_done(self, child: Completion) -> None:
        self._release_one(child)

    def _release_one(self, child: Completion | None) -> None:
        with _LOCK:
            if child is not None:
                error = child._error
                if error is not None:
                    if self._first_error is None:
                        self._first_error = error
                else:
                    self._total += child._result or 0
            self._outstanding -= 1
            last = self._outstanding == 0
        if not last:
            return
        completion = self._completion
        assert completion is not None
        if self._first_error is not None:
            completion.error(self._first_error)
        else:
            completion.complete(self._total)
