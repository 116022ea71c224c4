"""Reading operations: a byte range, and a whole file in chunks submitted as one group.

Each is an explicit state machine: `step()` matches on an `Enum` state, submits I/O only
in a state that is left before the yield, and keeps the completion it yields in the object
so that re-entry waits on the same I/O instead of submitting it again.
"""

from __future__ import annotations

import enum

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError, ErrorKind, StateMachineError
from core.io.backend import File
from core.result import IO, Done

__all__ = ["DEFAULT_CHUNK_SIZE", "ReadRange", "ReadWholeFile"]

DEFAULT_CHUNK_SIZE = 64 * 1024


class _ReadState(enum.Enum):
    START = "start"
    READING = "reading"
    DONE = "done"
    FAILED = "failed"


_START = _ReadState.START  # aliases: Enum lookups are slow on the hot path (CPython 3.11)
_READING = _ReadState.READING
_DONE = _ReadState.DONE


class ReadRange:
    """Read `length` bytes at `offset`; `Done(bytes)`.

    The result is shorter at the end of the file, unless `exact` is set: then a short read
    fails the completion with `ErrorKind.SHORT_READ` (the read's callback replaces success).
    """

    __slots__ = ("_buffer", "_completion", "_exact", "_state", "file", "length", "offset")

    def __init__(self, file: File, offset: int, length: int, *, exact: bool = False) -> None:
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        self.file = file
        self.offset = offset
        self.length = length
        self._exact = exact
        self._state = _START
        self._buffer = bytearray(length)
        self._completion: Completion | None = None

    def step(self) -> Done[bytes] | IO:
        """Submit the read, then return its bytes once finished.

        Raises `StateMachineError` if stepped after it finished or failed.
        """
        pending = self._completion
        if pending is not None and not pending.finished():
            return IO(pending)  # re-entered before the I/O finished: wait on the same one
        state = self._state
        if state is _START:
            c = Completion.new_read(self._buffer, self._check_count if self._exact else None)
            self._completion = c
            self._state = _READING
            self.file.pread(self.offset, c)
            if not c.finished():
                return IO(c)
            return self._finish(c)
        if state is _READING:
            assert self._completion is not None
            return self._finish(self._completion)
        raise StateMachineError(f"ReadRange stepped in state {state.name}")

    def abort(self, error: BaseException) -> None:
        """Give up: the buffer is dropped and further steps raise."""
        self._state = _ReadState.FAILED

    def _finish(self, c: Completion) -> Done[bytes]:
        count = c.result()  # raises the completion's error, if any
        self._state = _DONE
        if count == len(self._buffer):
            return Done(bytes(self._buffer))
        return Done(bytes(memoryview(self._buffer)[:count]))

    def _check_count(self, outcome: int | CompletionError) -> CompletionError | None:
        if isinstance(outcome, int) and outcome < self.length:
            return CompletionError(
                ErrorKind.SHORT_READ,
                "file ended before the requested range",
                path=self.file.path,
                offset=self.offset,
                expected=self.length,
                actual=outcome,
            )
        return None


class ReadWholeFile:
    """Read a whole file as `chunk_size` preads submitted together in one `CompletionGroup`;
    `Done(bytes)`.

    The size is taken when the operation starts; if the file turns out shorter (it shrank
    meanwhile), the read fails with `ErrorKind.SHORT_READ`.
    """

    __slots__ = ("_buffer", "_completion", "_state", "chunk_size", "file")

    def __init__(self, file: File, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        self.file = file
        self.chunk_size = chunk_size
        self._state = _ReadState.START
        self._buffer = bytearray()
        self._completion: Completion | None = None

    def step(self) -> Done[bytes] | IO:
        """Submit every chunk read as one group, then return the file's bytes.

        Raises `StateMachineError` if stepped after it finished or failed.
        """
        pending = self._completion
        if pending is not None and not pending.finished():
            return IO(pending)  # re-entered before the I/O finished: wait on the same one
        match self._state:
            case _ReadState.START:
                size = self.file.size()
                self._buffer = bytearray(size)
                view = memoryview(self._buffer)
                group = CompletionGroup(self._check_total)
                # Link every child before submitting any: the group must know them all.
                parts = []
                for pos in range(0, size, self.chunk_size):
                    part = Completion.new_read(view[pos : pos + self.chunk_size])
                    group.add(part)
                    parts.append((pos, part))
                c = group.build()
                self._completion = c
                self._state = _ReadState.READING
                try:
                    for pos, part in parts:
                        self.file.pread(pos, part)
                except BaseException:
                    group.cancel()
                    raise
                if not c.finished():
                    return IO(c)
                return self._finish(c)
            case _ReadState.READING:
                assert self._completion is not None
                return self._finish(self._completion)
            case _:
                raise StateMachineError(f"ReadWholeFile stepped in state {self._state.name}")

    def abort(self, error: BaseException) -> None:
        """Give up: further steps raise."""
        self._state = _ReadState.FAILED

    def _finish(self, c: Completion) -> Done[bytes]:
        c.result()
        self._state = _ReadState.DONE
        return Done(bytes(self._buffer))

    def _check_total(self, outcome: int | CompletionError) -> CompletionError | None:
        if isinstance(outcome, int) and outcome < len(self._buffer):
            return CompletionError(
                ErrorKind.SHORT_READ,
                "file shrank while being read",
                path=self.file.path,
                expected=len(self._buffer),
                actual=outcome,
            )
        return None
