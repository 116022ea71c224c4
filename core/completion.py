"""Completions: one I/O each, and groups that wait for many (Turso `core/io/completions.rs`).

Theory of operation:
- A completion's outcome is set once. The first of `complete`, `error` or `abort` claims it
  and every later call is a no-op, because an abort may race a real result from a worker.
- The completion's own callback runs before the outcome is published, so whoever sees
  `finished()` also sees a filled page. Done-callbacks (`add_done_callback`) run after.
- A completion may be finished on a worker thread while another thread polls it or registers
  a done-callback; that must neither lose a callback nor run one twice. No lock is taken
  (an uncontended lock costs more than the rest of a completion's life): the claim is one
  atomic `list.pop()` of a one-item token list, and done-callbacks live in a list that both
  sides drain with atomic pops after publishing or registering, so each runs exactly once
  (only the creation of that list, on the first registration, takes a lock).
- Unlike Turso, a completion keeps its result value (bytes read or written).
- A group (Turso PRs 8542 and 8547) links its children in `build()`, holding one extra count
  of its own while it does, so a child that finishes during `build()` cannot finish the group
  early. Its count is a list of tokens popped atomically; whoever pops the last token finishes
  the group, exactly once, after every child. Its error is the first child error it observes:
  children finished before `build()` in the order added, then the rest as they finish.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Final

from core.errors import CompletionError, ErrorKind, IOResultError
from core.unraisable import report_unraisable

__all__ = ["AbortHook", "Completion", "CompletionCallback", "CompletionGroup", "DoneCallback"]

CompletionCallback = Callable[[int | CompletionError], CompletionError | None]
"""Called once with the result (`int`) or the error; may return an error to replace success."""

DoneCallback = Callable[["Completion"], object]
"""Called once with the finished completion, on the thread that finished it."""

AbortHook = Callable[["Completion"], object]
"""Called once with a completion that `abort()` finished, on the thread that aborted it."""


_REGISTRATION_LOCK: Final = threading.Lock()
# The class every outcome check tests for, as a `Final` name: compiled, a C static rather
# than a dictionary lookup of the module global at each check.
_Failed: Final = CompletionError


class _Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    SYNC = "sync"
    TRUNCATE = "truncate"
    GROUP = "group"
    YIELD = "yield"


# Module-level aliases: on CPython 3.11 an Enum member lookup through its class costs more
# than the rest of a constructor, and these are built once per I/O. `Final`, so that
# compiled they are constants rather than a lookup in the module's dictionary.
_READ: Final = _Kind.READ
_WRITE: Final = _Kind.WRITE
_SYNC: Final = _Kind.SYNC
_TRUNCATE: Final = _Kind.TRUNCATE
_GROUP: Final = _Kind.GROUP
_YIELD: Final = _Kind.YIELD


class Completion:
    """Tracks one I/O operation. Build with the `new_*` constructors, not directly."""

    __slots__ = (
        "_buffer",
        "_callback",
        "_claim",
        "_data",
        "_group",
        "_kind",
        "_length",
        "_on_abort",
        "_outcome",
        "_waiters",
    )

    def __init__(
        self,
        kind: _Kind,
        callback: CompletionCallback | None = None,
        buffer: bytearray | memoryview | None = None,
    ) -> None:
        self._kind = kind
        self._callback = callback
        self._buffer = buffer
        self._length = -1  # for `new_read_bytes`: the bytes wanted (>= 0)
        self._data: bytes | None = None  # for `new_read_bytes`: the backend's own bytes
        self._claim: list[None] = [None]  # popped once, atomically, by the first finisher
        # The result (int) or the error; None until published, so it doubles as "finished".
        self._outcome: int | CompletionError | None = None
        self._waiters: list[DoneCallback] | None = None  # created by the first registration
        self._group: CompletionGroup | None = None
        self._on_abort: AbortHook | None = None  # set by a backend that holds the I/O elsewhere

    # -- constructors -------------------------------------------------------------------

    @classmethod
    def new_read(
        cls, buffer: bytearray | memoryview, callback: CompletionCallback | None = None
    ) -> Completion:
        """A read into `buffer`; the result is the number of bytes read."""
        # Compiled, naming the class builds it directly; `cls(...)` is a generic call.
        if cls is Completion:
            return Completion(_READ, callback, buffer)
        return cls(_READ, callback, buffer)

    @classmethod
    def new_read_bytes(cls, length: int, callback: CompletionCallback | None = None) -> Completion:
        """A read of `length` bytes into a buffer the backend picks; the result is the number
        of bytes read, and `read_bytes()` returns them.

        A backend whose system call returns a new `bytes` (`UnixIO`'s `pread`) hands it over
        with `complete_with_bytes`, which saves the buffer and the copy out of it; any other
        backend reads into `buffer`, a zeroed `bytearray` made on first use. After
        `complete_with_bytes`, `buffer` is a read-only view of those bytes (or, if it was
        made while the read was in flight, that buffer, filled with them).

        Raises `ValueError` for a negative `length`.
        """
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        c = Completion(_READ, callback, None) if cls is Completion else cls(_READ, callback, None)
        c._length = length
        return c

    @classmethod
    def new_write(cls, callback: CompletionCallback | None = None) -> Completion:
        """A write; the result is the number of bytes written."""
        return cls(_WRITE, callback)

    @classmethod
    def new_sync(cls, callback: CompletionCallback | None = None) -> Completion:
        """An fsync; the result is 0."""
        return cls(_SYNC, callback)

    @classmethod
    def new_trunc(cls, callback: CompletionCallback | None = None) -> Completion:
        """A truncate; the result is 0."""
        return cls(_TRUNCATE, callback)

    @classmethod
    def new_yield(cls) -> Completion:
        """An explicit yield: finished and succeeded at once, but a driver gives its event
        loop (or other fibers) one turn before stepping again, and never spins on it."""
        c = cls(_YIELD)
        c._claim.clear()
        c._outcome = 0
        return c

    # -- the read's buffer ----------------------------------------------------------------

    @property
    def buffer(self) -> bytearray | memoryview | None:
        """For a read, the buffer the data lands in; `None` for other kinds."""
        buffer = self._buffer
        if buffer is None and self._length >= 0:  # a `new_read_bytes` read
            data = self._data
            # Before the read: a buffer to read into. After `complete_with_bytes`: a view of
            # the bytes it was given.
            buffer = bytearray(self._length) if data is None else memoryview(data)
            self._buffer = buffer
        return buffer

    def takes_bytes(self) -> int:
        """For a `new_read_bytes` read nobody has asked the `buffer` of: the length wanted,
        which a backend may read into a `bytes` of its own and hand over with
        `complete_with_bytes`. -1 for every other completion."""
        if self._buffer is None and self._data is None:
            return self._length  # -1 unless made by `new_read_bytes`
        return -1

    def complete_with_bytes(self, data: bytes) -> None:
        """Finish a read (see `takes_bytes`) successfully with `data`, the bytes it read;
        the result is `len(data)`. A no-op if already finished. If `buffer` was asked for
        after the backend took the read, `data` is copied into it too: it is where the
        read's bytes are."""
        if self._outcome is None:
            buffer = self._buffer
            if buffer is not None:
                buffer[: len(data)] = data
            self._data = data
        self.complete(len(data))

    def read_bytes(self) -> bytes:
        """The bytes a finished read returned: those handed to `complete_with_bytes`, or the
        first `result()` bytes of its buffer (a copy).

        Raises as `result()` does, and `IOResultError` for a completion that is not a read.
        """
        count = self._outcome
        if count is None or isinstance(count, _Failed):
            count = self.result()  # raises: unfinished, or failed
        data = self._data
        if data is not None:
            return data
        buffer = self._buffer
        if buffer is None:
            buffer = self.buffer  # a `new_read_bytes` read nobody asked the buffer of
            if buffer is None:
                raise IOResultError(f"read_bytes() needs a read completion, got {self!r}")
        if count == len(buffer):
            return bytes(buffer)
        return bytes(memoryview(buffer)[:count])

    # -- finishing ----------------------------------------------------------------------

    def complete(self, result: int) -> None:
        """Finish successfully with `result`; a no-op if already finished."""
        # `_finish(result)` inline: one Python call less for every I/O that succeeds.
        try:
            self._claim.pop()
        except IndexError:
            return  # someone else finished it first
        if self._callback is not None:
            self._publish(result)
            return
        self._outcome = result  # published last: readers check it first
        if self._waiters:
            self._run_waiters()

    def error(self, err: CompletionError) -> None:
        """Finish with `err`; a no-op if already finished."""
        self._finish(err)

    def abort(self) -> None:
        """Abandon: finish with an `ABORTED` error; a no-op if already finished.

        Aborting a group's completion cancels the group's unfinished children first.
        """
        if self._outcome is not None:
            return
        group = self._group
        if group is not None:
            group.cancel()
        self._finish(CompletionError(ErrorKind.ABORTED, f"{self._kind.value} aborted"))
        hook = self._on_abort
        if hook is not None:
            self._on_abort = None
            _run_done_callback(hook, self)

    def on_abort(self, hook: AbortHook | None) -> None:
        """Have `hook(self)` called once if `abort()` is called before this completion
        finished, after the outcome is set (on the thread that aborts; an exception from it
        goes to `sys.unraisablehook`). For a backend whose I/O stays in flight elsewhere
        when its completion is given up (an io_uring entry), so that it can cancel that
        I/O. One hook per completion: a later call replaces it; `None` removes it."""
        self._on_abort = hook

    def _finish(self, outcome: int | CompletionError) -> None:
        try:
            self._claim.pop()
        except IndexError:
            return  # someone else finished it first
        self._publish(outcome)

    def _publish(self, outcome: int | CompletionError) -> None:
        """Run the completion's callback, then publish the outcome and run the waiters.
        The caller has claimed the completion."""
        callback = self._callback
        if callback is not None:
            self._callback = None  # release what the closure holds
            try:
                replacement = callback(outcome)
            except Exception as exc:
                outcome = CompletionError(
                    ErrorKind.CALLBACK, f"{self._kind.value} callback raised {exc!r}"
                )
                outcome.__cause__ = exc
            else:
                if replacement is not None:
                    outcome = replacement
        self._outcome = outcome  # published last: readers check it first
        if self._waiters:
            self._run_waiters()

    def _run_waiters(self) -> None:
        waiters = self._waiters
        assert waiters is not None
        # Checked before popping: a raised IndexError costs ~1 us compiled, more than
        # the rest of a completion's finish.
        while waiters:
            try:
                waiter = waiters.pop(0)  # atomic: each waiter runs exactly once
            except IndexError:  # another thread took the last one since the check
                return
            _run_done_callback(waiter, self)

    # -- reading ------------------------------------------------------------------------

    def finished(self) -> bool:
        """True once the outcome is set and the completion's callback has run."""
        return self._outcome is not None

    def succeeded(self) -> bool:
        """True if finished without an error."""
        outcome = self._outcome
        return outcome is not None and not isinstance(outcome, _Failed)

    def failed(self) -> bool:
        """True if finished with an error."""
        return isinstance(self._outcome, _Failed)

    def get_error(self) -> CompletionError | None:
        """The error, if finished with one; otherwise `None`."""
        outcome = self._outcome
        return outcome if isinstance(outcome, _Failed) else None

    def result(self) -> int:
        """The result value.

        Raises `IOResultError` if not finished yet, or the `CompletionError` it failed with.
        """
        outcome = self._outcome
        if outcome is None:
            raise IOResultError(f"{self!r} has not finished; its result is not available yet")
        if isinstance(outcome, _Failed):
            raise outcome
        return outcome

    def is_explicit_yield(self) -> bool:
        """True for `new_yield()` completions."""
        return self._kind is _YIELD

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call `fn(self)` once when finished: at once (on this thread) if already finished,
        otherwise on the thread that finishes it. An exception from `fn` is reported through
        `sys.unraisablehook`, never raised into the finishing thread."""
        if self._outcome is not None:
            _run_done_callback(fn, self)
            return
        waiters = self._waiters
        if waiters is None:
            with _REGISTRATION_LOCK:  # only two first registrations can race here
                if self._waiters is None:
                    self._waiters = []
                waiters = self._waiters
        waiters.append(fn)
        if self._outcome is not None:  # finished while we registered: drain it ourselves
            self._run_waiters()

    def remove_done_callback(self, fn: DoneCallback) -> bool:
        """Forget `fn` if it has not run yet; return whether it was registered."""
        try:
            if self._waiters is not None:
                self._waiters.remove(fn)
                return True
        except ValueError:
            pass
        return False

    def __repr__(self) -> str:
        outcome = self._outcome
        if outcome is None:
            state = "pending"
        elif isinstance(outcome, _Failed):
            state = f"failed: {outcome}"
        else:
            state = f"done: {outcome}"
        return f"<Completion {self._kind.value} {state}>"


def _run_done_callback(fn: DoneCallback, completion: Completion) -> None:
    try:
        fn(completion)
    except Exception as exc:
        report_unraisable(exc, f"Exception in done-callback {fn!r} of {completion!r}", completion)


class CompletionGroup:
    """Waits for many completions as one: `add()` children, then `build()` one completion.

    The built completion finishes once, after every child has finished, with the first
    child error (or, on success, the sum of the children's results). An empty group
    finishes at once. Groups nest: add a built group's completion to another group.
    """

    __slots__ = ("_callback", "_children", "_completion", "_errors", "_tokens")

    def __init__(self, callback: CompletionCallback | None = None) -> None:
        self._callback = callback
        self._children: list[Completion] = []
        self._completion: Completion | None = None
        self._errors: list[CompletionError] = []  # in the order observed; appends are atomic
        self._tokens: list[int] = []

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
        completion = Completion(_GROUP, self._callback)
        completion._group = self
        self._callback = None
        self._completion = completion
        # One token per child plus build's own hold, released last: a child finishing on
        # another thread while we link cannot take the last token early. Tokens are popped
        # from the end, so whoever pops token 0 is the last.
        self._tokens = list(range(len(self._children) + 1))
        for child in self._children:
            child.add_done_callback(self._child_done)
        self._release_one(None)
        return completion

    def _child_done(self, child: Completion) -> None:
        self._release_one(child)

    def _release_one(self, child: Completion | None) -> None:
        if child is not None and isinstance(child._outcome, _Failed):
            self._errors.append(child._outcome)
        if self._tokens.pop() != 0:
            return
        completion = self._completion
        assert completion is not None
        if self._errors:
            completion.error(self._errors[0])
        else:
            completion.complete(sum(child.result() for child in self._children))
