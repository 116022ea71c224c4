"""The writing calls of a buffered binary file: `write`, `writelines`, `flush` (CPython's
`_io_BufferedWriter_write_impl` and `buffered_flush`).

Theory of operation:
- Data that fits in the buffer is copied in and marked dirty; nothing is written until the
  buffer would overflow, a flush, or a call that must read or move first flushes it. The hot
  case (the file is free and the data fits) never gets here: `BufferedFile.write` answers it
  with `Ready`.
- Otherwise the dirty range goes out first (the shared `_flush_writes` step, without a rewind:
  the position stays), then whole buffers of the data are written straight from it, and the
  tail is kept in the buffer as dirty data, as CPython does.
- A write too large for the buffer that starts where the dirty range ends sends both in ONE
  `pwritev`; if the kernel takes only part of it, the call accounts for what landed and goes
  on as CPython would have.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from core.completion import Completion
from core.files.buffer_state import BufferedCall, BufferState
from core.files.call import EachInTurn
from core.files.errors import UnsupportedFileOperation, closed_file
from core.files.support import byte_view, wait
from core.io.backend import Buffer
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = ["BufferedFlush", "BufferedWrite", "BufferedWritelines"]


class _WriteStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    DIRECT = "direct"
    DIRECT_WAIT = "direct wait"
    TOGETHER_WAIT = "together wait"


class BufferedWrite(BufferedCall[int]):
    """`write(b)`: CPython's `_io_BufferedWriter_write_impl`. When a write too large for the
    buffer starts where the dirty range ends, the dirty range and the data go out in one
    `pwritev` (CPython makes two writes; the file and the state end up the same)."""

    __slots__ = ("_c", "_data", "_offset", "_remaining", "_state", "_written")

    def __init__(self, bf: BufferState, data: Buffer) -> None:
        super().__init__(bf)
        self._data = byte_view(data, "write", writable=False)
        self._state = _WriteStep.START
        self._written = 0
        self._remaining = 0
        self._offset = 0
        self._c: Completion | None = None

    def _check(self) -> None:
        bf = self._bf
        if not bf.writable:
            raise UnsupportedFileOperation("write")
        if bf._closed:
            raise closed_file("write to closed file")

    def _advance(self) -> TransitionResult[int]:
        bf = self._bf
        data = self._data
        size = len(data)
        match self._state:
            case _WriteStep.START:
                if not bf._valid_read() and not bf._valid_write():
                    bf._pos = bf._raw_pos = 0
                pos = bf._pos
                if size <= bf.buffer_size - pos:
                    bf._buf[pos : pos + size] = data
                    if not bf._valid_write() or bf._write_pos > pos:
                        bf._write_pos = pos
                    bf._adjust_position(pos + size)
                    bf._write_end = max(bf._write_end, bf._pos)
                    return Done(size)
                if size > bf.buffer_size and bf._dirty() and bf._pos == bf._write_end:
                    return self._submit_together()
                self._state = _WriteStep.FLUSH
                return Continue
            case _WriteStep.FLUSH:
                r = self._flush_writes(False)
                if r is not None:
                    return r
                offset = bf._raw_offset()
                if offset != 0:
                    bf._raw_seek(-offset, 1)
                    bf._raw_pos -= offset
                self._remaining = size
                self._state = _WriteStep.DIRECT
                return Continue
            case _WriteStep.DIRECT:
                if self._remaining > bf.buffer_size:
                    self._c, self._offset = bf._submit_write((data[self._written :],))
                    self._state = _WriteStep.DIRECT_WAIT
                    return wait(self._c)
                return self._tail()
            case _WriteStep.DIRECT_WAIT:
                assert self._c is not None
                n = bf._finish_write(self._c, self._offset)
                self._written += n
                self._remaining -= n
                self._state = _WriteStep.DIRECT
                return Continue
            case _WriteStep.TOGETHER_WAIT:
                assert self._c is not None
                n = bf._finish_write(self._c, self._offset)
                dirty = bf._write_end - bf._write_pos
                if n < dirty + size:  # a short write: finish the old way
                    return self._restart_after_short(n)
                bf._raw_pos = bf._write_end
                bf._reset_write()
                self._written = size
                self._remaining = 0
                return self._tail()

    def _submit_together(self) -> TransitionResult[int]:
        bf = self._bf
        rewind = bf._raw_offset() + (bf._pos - bf._write_pos)
        if rewind != 0:
            bf._raw_seek(-rewind, 1)
            bf._raw_pos -= rewind
        dirty = memoryview(bf._buf)[bf._write_pos : bf._write_end]
        self._c, self._offset = bf._submit_write((dirty, self._data))
        self._state = _WriteStep.TOGETHER_WAIT
        return wait(self._c)

    def _restart_after_short(self, n: int) -> TransitionResult[int]:
        # The kernel took only part of the vector: account for what landed and go on as
        # CPython does (flush the rest of the dirty range, then write the data).
        bf = self._bf
        dirty = bf._write_end - bf._write_pos
        if n < dirty:
            bf._write_pos += n
            bf._raw_pos = bf._write_pos
            self._state = _WriteStep.FLUSH
            return Continue
        bf._raw_pos = bf._write_end
        bf._reset_write()
        self._written = n - dirty
        self._remaining = len(self._data) - self._written
        self._state = _WriteStep.DIRECT
        return Continue

    def _tail(self) -> Done[int]:
        bf = self._bf
        remaining = self._remaining
        if bf.readable:
            bf._reset_read()
        if remaining > 0:
            bf._buf[:remaining] = self._data[self._written :]
        bf._write_pos = 0
        bf._write_end = remaining
        bf._adjust_position(remaining)
        bf._raw_pos = 0
        return Done(len(self._data))


class BufferedWritelines(BufferedCall[None]):
    """`writelines(lines)`: `write()` each line in turn."""

    __slots__ = ("_each",)

    def __init__(self, bf: BufferState, lines: Iterable[Buffer]) -> None:
        super().__init__(bf)
        self._each = EachInTurn(list(lines), lambda line: BufferedWrite(bf, line))

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()

    def _advance(self) -> TransitionResult[None]:
        return self._each.advance()


class BufferedFlush(BufferedCall[None]):
    """`flush()`: write the dirty range and drop the read-ahead (CPython's `buffered_flush`;
    a read-only file only checks it is open)."""

    __slots__ = ()

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file(
                "flush of closed file" if self._bf.writable else "I/O operation on closed file."
            )

    def _advance(self) -> TransitionResult[None]:
        if self._bf.writable:
            r = self._flush_writes(True)
            if r is not None:
                return r
        return Done(None)
