"""The calls that move or settle a buffered binary file as a whole: `seek`, `truncate`,
`fsync`, `close` (CPython's `_io__Buffered_seek_impl`, `_io__Buffered_truncate_impl`,
`buffered_close`).

Theory of operation:
- A seek inside the read-ahead moves `pos` and nothing else. Any other seek writes the dirty
  range first (the shared `_flush_writes` step, no rewind), then moves the simulated raw
  stream and drops the read-ahead. The hot cases (inside the buffer, or nothing to flush)
  never get here: `BufferedFile.seek` answers them with `Ready`.
- `truncate` and `fsync` write the dirty range and rewind (so the raw stream stands at the
  logical position), then make ONE I/O, `File.truncate` or `File.sync`: one shape,
  `_FlushThenOneIO`. The position does not move.
- `close` closes the file even if its flush fails or is abandoned, and raises the flush's
  error after closing, as CPython does.
"""

from __future__ import annotations

import enum
import operator
from typing import TypeVar

from core.completion import Completion
from core.files.buffer_state import BufferedCall, BufferState
from core.files.errors import UnsupportedFileOperation, closed_file, invalid_argument
from core.files.support import wait
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = ["BufferedClose", "BufferedFsync", "BufferedSeek", "BufferedTruncate"]

T = TypeVar("T")


class _SeekStep(enum.Enum):
    START = "start"
    FLUSH = "flush"


class BufferedSeek(BufferedCall[int]):
    """`seek(offset, whence)`: inside the read-ahead if possible, else flush and move."""

    __slots__ = ("_state", "_target", "_target_arg", "_whence")

    def __init__(self, bf: BufferState, target: int, whence: int) -> None:
        super().__init__(bf)
        self._target_arg = target
        self._target = 0
        self._whence = operator.index(whence)
        self._state = _SeekStep.START

    def _check(self) -> None:
        if self._whence not in (0, 1, 2):
            raise ValueError(f"whence value {self._whence} unsupported")
        if self._bf._closed:
            raise closed_file("seek of closed file")
        self._target = operator.index(self._target_arg)

    def _advance(self) -> TransitionResult[int]:
        bf = self._bf
        whence = self._whence
        match self._state:
            case _SeekStep.START:
                moved = bf._seek_in_buffer(self._target, whence)
                if moved is not None:
                    return Done(moved)
                if bf.writable:
                    self._state = _SeekStep.FLUSH
                    return Continue
                return self._move()
            case _SeekStep.FLUSH:
                r = self._flush_writes(False)
                if r is not None:
                    return r
                return self._move()

    def _move(self) -> Done[int]:
        return Done(self._bf._seek_raw(self._target, self._whence))


class _OneIOStep(enum.Enum):
    START = "start"
    WAIT = "wait"


class _FlushThenOneIO(BufferedCall[T]):
    """Flush and rewind (in a file that can write), then one I/O (`_submit`), then the result
    (`_finished`, once the I/O succeeded)."""

    __slots__ = ("_c", "_state")

    def __init__(self, bf: BufferState) -> None:
        super().__init__(bf)
        self._state = _OneIOStep.START
        self._c: Completion | None = None

    def _advance(self) -> TransitionResult[T]:
        match self._state:
            case _OneIOStep.START:
                if self._bf.writable:
                    r = self._flush_writes(True)
                    if r is not None:
                        return r
                self._c = self._submit()
                self._state = _OneIOStep.WAIT
                return wait(self._c)
            case _OneIOStep.WAIT:
                assert self._c is not None
                self._c.result()
                return Done(self._finished())

    def _submit(self) -> Completion:
        """Submit the call's I/O; may raise for a bad argument."""
        raise NotImplementedError

    def _finished(self) -> T:
        """The call's result once its I/O succeeded."""
        raise NotImplementedError


class BufferedTruncate(_FlushThenOneIO[int]):
    """`truncate(size)`: flush (dropping the read-ahead), then one `File.truncate`."""

    __slots__ = ("_size", "_size_arg")

    def __init__(self, bf: BufferState, size: int | None) -> None:
        super().__init__(bf)
        self._size_arg = size
        self._size = 0

    def _check(self) -> None:
        bf = self._bf
        if bf._closed:
            raise closed_file("truncate of closed file")
        if not bf.writable:
            raise UnsupportedFileOperation("truncate")
        if self._size_arg is not None:
            self._size = operator.index(self._size_arg)

    def _submit(self) -> Completion:
        bf = self._bf
        size = bf._fd_pos if self._size_arg is None else self._size
        if size < 0:
            raise invalid_argument()
        self._size = size
        c = Completion.new_trunc()
        bf.file.truncate(size, c)
        return c

    def _finished(self) -> int:
        self._bf._raw_tell()
        return self._size


class BufferedFsync(_FlushThenOneIO[None]):
    """`fsync()`: flush, then `File.sync`."""

    __slots__ = ()

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()

    def _submit(self) -> Completion:
        c = Completion.new_sync()
        self._bf.file.sync(c)
        return c

    def _finished(self) -> None:
        return None


class BufferedClose(BufferedCall[None]):
    """`close()`: flush, then close the core file. If the flush fails or is abandoned, the
    file is closed all the same and the error propagates (CPython's `buffered_close`)."""

    __slots__ = ()

    def _advance(self) -> TransitionResult[None]:
        bf = self._bf
        if bf._closed:
            return Done(None)
        if bf.writable:
            r = self._flush_writes(True)
            if r is not None:
                return r
        bf._close_now()
        return Done(None)

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        self._close_regardless()
