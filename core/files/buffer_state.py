"""The state of a buffered binary file, and what every call on it shares: its checkpoint, its
rollback, and the flush of pending writes that many calls make first.

Theory of operation:
- `BufferState` keeps the state of CPython's `_io.BufferedRandom` (Modules/_io/bufferedio.c)
  under the same names and rules, so that every call returns what CPython returns and leaves
  the same read-ahead behind (which `read1` and `peek` reveal): one buffer of `buffer_size`
  bytes; `pos` in it; `read_end` (-1: no valid read data); the dirty range
  `write_pos..write_end` (`write_end` -1: nothing to write); `raw_pos`, where the raw stream
  stands relative to the buffer. The fields keep CPython's names behind a leading underscore:
  they are the file's internals, touched only by its calls (the `buffered_*` modules); the
  text file over it reads `_closed` too, on paths where the `closed` property would cost a
  Python call.
- The raw stream is simulated: `fd_pos` is the offset a file descriptor would have (reads and
  writes advance it, an append-mode write leaves it at the new end), and `abs_pos` is
  CPython's cached copy of it, which it advances by the bytes moved rather than re-reading it,
  as CPython does. A raw read is one `File.pread` at `fd_pos`, a raw write one
  `File.pwritev`; seeks and tells of the raw stream are arithmetic on `fd_pos`, and "seek
  end" asks `File.size()`.
- A call takes a checkpoint (`_save`) when it starts. Rollback (`_restore`: a failed I/O, a
  cancellation, a timeout): if dirty data is still unwritten, the state is put back exactly
  as the call found it, so the data is written by a later flush (a write at an offset is
  idempotent); otherwise the file is left clean (no read-ahead, nothing dirty) at the
  position the call started from. When an I/O is abandoned, a worker may still read or fill
  the old buffer, so the file moves to a copy of it. An append-mode write that is abandoned
  may or may not have landed, and a later flush could append it twice, so the file is closed
  instead: usable or clearly closed, never silently half-written.
- Every call that writes the dirty range before its own work (`BufferedCall._flush_writes`)
  runs the same step, `FlushWrites`: the dirty range goes out with ONE `pwritev`; the call
  keeps the step while it runs, so re-entry resumes it and never submits twice.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Literal, TypeVar

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.files.call import FileCall, FileLock
from core.files.errors import UnsupportedFileOperation, closed_file, invalid_argument
from core.files.support import wait
from core.io.backend import Buffer, File
from core.result import IO
from core.state_machine import ContinueType

__all__ = ["BufferState", "BufferedCall", "Checkpoint", "FlushWrites", "check_readable"]

T = TypeVar("T")

Checkpoint = tuple[int, int, int, int, int, int, int, int]
"""A buffered file's state when a call started: (logical position, pos, raw_pos, read_end,
write_pos, write_end, fd_pos, abs_pos)."""


class BufferState:
    """The state of one open buffered binary file (see the module docstring); `BufferedFile`
    adds its calls."""

    __slots__ = (
        "_abs_pos",
        "_buf",
        "_closed",
        "_fd_pos",
        "_pos",
        "_raw_pos",
        "_read_end",
        "_write_end",
        "_write_pos",
        "_writing",
        "append",
        "buffer_size",
        "file",
        "lock",
        "mode",
        "name",
        "readable",
        "writable",
    )

    def __init__(
        self,
        file: File,
        *,
        name: str | bytes,
        mode: str,
        readable: bool,
        writable: bool,
        append: bool = False,
        buffer_size: int,
        position: int = 0,
    ) -> None:
        """Wrap an open core `File`. `position` is where the raw stream starts (the end of the
        file in append mode). Raises `ValueError` if `buffer_size` is not positive."""
        if buffer_size <= 0:
            raise ValueError("buffer size must be strictly positive")
        self.file = file
        self.name = name
        self.mode = mode
        self.readable = readable
        self.writable = writable
        self.append = append
        self.buffer_size = buffer_size
        self.lock = FileLock()
        self._buf = bytearray(buffer_size)
        self._closed = False
        self._pos = 0
        self._raw_pos = 0
        self._read_end = -1
        self._write_pos = 0
        self._write_end = -1
        self._fd_pos = position
        self._abs_pos = position
        self._writing = False

    # -- CPython's macros ----------------------------------------------------------------

    def _seek_in_buffer(self, target: int, whence: int) -> int | None:
        """CPython's seek fast path: a move inside the read-ahead; None if it is not one."""
        if whence != 2 and self.readable:
            current = self._raw_tell_cached()
            avail = self._readahead()
            if avail > 0:
                offset = target - (current - self._raw_offset()) if whence == 0 else target
                if -self._pos <= offset <= avail:
                    self._pos += offset
                    return current - avail + offset
        return None

    def _seek_raw(self, target: int, whence: int) -> int:
        """CPython's seek fallback after the flush: move the raw stream, drop the read-ahead.
        Raises `FileOSError` (`EINVAL`) for a negative position."""
        if whence == 1:
            target -= self._raw_offset()
        n = self._raw_seek(target, whence)
        self._raw_pos = -1
        if self.readable:
            self._reset_read()
        return n

    def _valid_read(self) -> bool:
        return self.readable and self._read_end != -1

    def _valid_write(self) -> bool:
        return self.writable and self._write_end != -1

    def _readahead(self) -> int:
        return self._read_end - self._pos if self.readable and self._read_end != -1 else 0

    def _dirty(self) -> bool:
        return self.writable and self._write_end != -1 and self._write_pos < self._write_end

    def _raw_offset(self) -> int:
        if (self._valid_read() or self._valid_write()) and self._raw_pos >= 0:
            return self._raw_pos - self._pos
        return 0

    def _adjust_position(self, new_pos: int) -> None:
        self._pos = new_pos
        if self._valid_read() and self._read_end < new_pos:
            self._read_end = new_pos

    def _minus_last_block(self, size: int) -> int:
        return self.buffer_size * (size // self.buffer_size)

    def _reset_read(self) -> None:
        self._read_end = -1

    def _reset_write(self) -> None:
        self._write_pos = 0
        self._write_end = -1

    # -- the simulated raw stream --------------------------------------------------------

    def _raw_tell(self) -> int:
        self._abs_pos = self._fd_pos
        return self._fd_pos

    def _raw_tell_cached(self) -> int:
        return self._abs_pos if self._abs_pos != -1 else self._raw_tell()

    def _raw_seek(self, target: int, whence: int) -> int:
        if whence == 1:
            target += self._fd_pos
        elif whence == 2:
            target += self.file.size()
        if target < 0:
            raise invalid_argument()
        self._fd_pos = self._abs_pos = target
        return target

    def _submit_read(self, view: bytearray | memoryview) -> Completion:
        c = Completion.new_read(view)
        self.file.pread(self._fd_pos, c)
        return c

    def _finish_read(self, c: Completion, *, cached: bool = True) -> int:
        n = c.result()
        self._fd_pos += n
        if cached and self._abs_pos != -1:
            self._abs_pos += n
        return n

    def _submit_write(self, buffers: Sequence[Buffer]) -> tuple[Completion, int]:
        offset = self.file.size() if self.append else self._fd_pos
        c = Completion.new_write()
        self.file.pwritev(offset, buffers, c)
        self._writing = True
        return c, offset

    def _finish_write(self, c: Completion, offset: int) -> int:
        self._writing = False
        n = c.result()
        if n == 0:
            raise CompletionError(
                ErrorKind.SHORT_WRITE, "pwritev wrote nothing", path=self.file.path, offset=offset
            )
        self._fd_pos = offset + n
        if self._abs_pos != -1:
            self._abs_pos += n
        return n

    # -- checkpoints ---------------------------------------------------------------------

    def _save(self) -> Checkpoint:
        logical = self._fd_pos - self._raw_offset()
        return (
            logical,
            self._pos,
            self._raw_pos,
            self._read_end,
            self._write_pos,
            self._write_end,
            self._fd_pos,
            self._abs_pos,
        )

    def _restore(self, saved: Checkpoint, abandoned: bool) -> None:
        if abandoned:
            if self.append and self._writing:
                self._close_now()
                return
            self._buf = bytearray(self._buf)  # a late worker may still use the old one
        self._writing = False
        if self._dirty():
            # The flush never completed: put everything back, the data will be written later.
            (
                _,
                self._pos,
                self._raw_pos,
                self._read_end,
                self._write_pos,
                self._write_end,
                self._fd_pos,
                self._abs_pos,
            ) = saved
            return
        logical = saved[0]
        self._pos = self._raw_pos = 0
        self._read_end = -1
        self._reset_write()
        self._fd_pos = self._abs_pos = logical

    def _close_now(self) -> None:
        self._closed = True
        self._read_end = 0
        self._pos = 0
        self._reset_write()
        self._writing = False
        self.file.close()


# -- the shared step: write the pending data -----------------------------------------------


class _FlushStep(enum.Enum):
    START = "start"
    WRITING = "writing"


class FlushWrites:
    """CPython's `_bufferedwriter_flush_unlocked` (and with `and_rewind`,
    `buffered_flush_and_rewind_unlocked`): write the dirty range with one `pwritev`, then
    forget the write buffer (and the read buffer, after moving the raw stream back to the
    logical position). A part of a call, stepped by it; it takes no turn of its own."""

    __slots__ = ("_and_rewind", "_bf", "_c", "_offset", "_state")

    def __init__(self, bf: BufferState, and_rewind: bool) -> None:
        self._bf = bf
        self._and_rewind = and_rewind
        self._state = _FlushStep.START
        self._c: Completion | None = None
        self._offset = 0

    def advance(self) -> IO | Literal[ContinueType.CONTINUE] | None:
        """One transition; None once the dirty range is written (the part is then spent)."""
        bf = self._bf
        match self._state:
            case _FlushStep.START:
                if not bf._valid_write() or bf._write_pos == bf._write_end:
                    self._end()
                    return None
                rewind = bf._raw_offset() + (bf._pos - bf._write_pos)
                if rewind != 0:
                    bf._raw_seek(-rewind, 1)
                    bf._raw_pos -= rewind
                return self._submit()
            case _FlushStep.WRITING:
                assert self._c is not None
                n = bf._finish_write(self._c, self._offset)
                bf._write_pos += n
                bf._raw_pos = bf._write_pos
                if bf._write_pos < bf._write_end:
                    return self._submit()
                self._end()
                return None

    def _submit(self) -> IO | Literal[ContinueType.CONTINUE]:
        bf = self._bf
        view = memoryview(bf._buf)[bf._write_pos : bf._write_end]
        self._c, self._offset = bf._submit_write((view,))
        self._state = _FlushStep.WRITING
        return wait(self._c)

    def _end(self) -> None:
        bf = self._bf
        bf._reset_write()
        if self._and_rewind and bf.readable:
            bf._raw_seek(-bf._raw_offset(), 1)
            bf._reset_read()


@mypyc_attr(allow_interpreted_subclasses=True)  # the text layer's calls (`TextCall`)
class BufferedCall(FileCall[T]):
    """A call on a buffered file: `_check` raises if it may not run, the checkpoint is the
    file's `_save()`, rollback is its `_restore()`, and `_flush_writes` is the first step of
    every call that writes the pending data before its own work."""

    __slots__ = ("_bf", "_flush", "_saved")

    def __init__(self, bf: BufferState) -> None:
        super().__init__(bf.lock)
        self._bf = bf
        self._saved: Checkpoint | None = None
        self._flush: FlushWrites | None = None

    def _check(self) -> None:
        """Raise if the call may not run now (closed, or not allowed by the mode)."""

    def _begin(self) -> None:
        self._check()
        self._saved = self._bf._save()

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if self._saved is not None and not self._bf._closed:
            self._bf._restore(self._saved, abandoned)

    def _flush_writes(self, and_rewind: bool) -> IO | Literal[ContinueType.CONTINUE] | None:
        """Write the dirty range (`FlushWrites`, rewinding the raw stream if `and_rewind`):
        `IO` or `Continue` while it runs (the call stays in the state that called this and
        calls it again, which resumes the same flush), None once it is done; a later call
        starts a new flush."""
        flush = self._flush
        if flush is None:
            flush = self._flush = FlushWrites(self._bf, and_rewind)
        result = flush.advance()
        if result is None:
            self._flush = None
        return result

    def _close_regardless(self) -> None:
        """A close whose flush failed or was abandoned closes the file all the same, as
        CPython's `buffered_close` does; the flush's error is what the call raises."""
        if not self._bf._closed:
            self._bf._close_now()


def check_readable(bf: BufferState, unsupported: str, closed: str) -> None:
    """Raise `UnsupportedFileOperation(unsupported)` if `bf` is not readable, else
    `ClosedFileError(closed)` if it is closed."""
    if not bf.readable:
        raise UnsupportedFileOperation(unsupported)
    if bf._closed:
        raise closed_file(closed)
