"""Reading operations: a byte range, and a whole file in chunks submitted as one group.

Both stand on the kernel (`core.state_machine.Machine`): `_advance` submits I/O only in a
state that is left before the yield, and the kernel returns the same completion on an early
re-entry. `ReadRange` is a hot path: it compares states with `is` against module-level
aliases (the kernel's rule for fast state comparison).
"""

from __future__ import annotations

import enum
from typing import Final

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError, ErrorKind
from core.io.backend import File
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult

__all__ = ["DEFAULT_CHUNK_SIZE", "ReadRange", "ReadWholeFile"]

DEFAULT_CHUNK_SIZE: Final = 64 * 1024


class ReadState(enum.Enum):
    """The states of a read: submit it, then collect its bytes."""

    START = "start"
    READING = "reading"


_START: Final = ReadState.START
_READING: Final = ReadState.READING


class ReadRange(Machine[bytes]):
    """Read `length` bytes at `offset`; `Done(bytes)`.

    The result is shorter at the end of the file, unless `exact` is set: then a short read
    fails the completion with `ErrorKind.SHORT_READ` (the read's callback replaces success).
    Raises the read's `CompletionError` if it failed, and `StateMachineError` if stepped
    after it finished or failed.
    """

    __slots__ = ("_completion", "_exact", "_state", "file", "length", "offset")

    def __init__(self, file: File, offset: int, length: int, *, exact: bool = False) -> None:
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        Machine.__init__(self)
        self.file = file
        self.offset = offset
        self.length = length
        self._exact = exact
        self._state = _START
        self._completion: Completion | None = None

    def _advance(self) -> TransitionResult[bytes]:
        if self._state is _START:
            # The backend picks the buffer: `UnixIO` hands over the bytes `pread` made.
            c = Completion.new_read_bytes(self.length, self._check_count if self._exact else None)
            self._completion = c
            self._state = _READING
            self.file.pread(self.offset, c)
            if not c.finished():
                return IO(c)
        else:
            c = self._completion  # type: ignore[assignment]
        return Done(c.read_bytes())  # raises the completion's error, if any

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


class ReadWholeFile(Machine[bytes]):
    """Read a whole file as `chunk_size` preads submitted together in one `CompletionGroup`;
    `Done(bytes)`.

    The size is taken when the operation starts; if the file turns out shorter (it shrank
    meanwhile), the read fails with `ErrorKind.SHORT_READ`. Raises a read's
    `CompletionError`, and `StateMachineError` if stepped after it finished or failed.
    """

    __slots__ = ("_buffer", "_completion", "_state", "chunk_size", "file")

    def __init__(self, file: File, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        super().__init__()
        self.file = file
        self.chunk_size = chunk_size
        self._state = ReadState.START
        self._buffer = bytearray()
        self._completion: Completion | None = None

    def _advance(self) -> TransitionResult[bytes]:
        match self._state:
            case ReadState.START:
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
                self._state = ReadState.READING
                try:
                    for pos, part in parts:
                        self.file.pread(pos, part)
                except BaseException:
                    group.cancel()
                    raise
                return Continue if c.finished() else IO(c)
            case ReadState.READING:
                assert self._completion is not None
                self._completion.result()
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
