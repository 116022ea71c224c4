"""Buffered binary files: CPython's buffered reader, writer and random-access file, with every
system call turned into a completion and every call into an explicit state machine.

Theory of operation:
- `BufferedFile` keeps the state of CPython's `_io.BufferedRandom` (Modules/_io/bufferedio.c)
  under the same names and rules, so that every call returns what CPython returns and leaves
  the same read-ahead behind (which `read1` and `peek` reveal): one buffer of `buffer_size`
  bytes; `pos` in it; `read_end` (-1: no valid read data); the dirty range
  `write_pos..write_end` (`write_end` -1: nothing to write); `raw_pos`, where the raw stream
  stands relative to the buffer. The raw stream is simulated: `fd_pos` is the offset a file
  descriptor would have (reads and writes advance it, an append-mode write leaves it at the
  new end), and `abs_pos` is CPython's cached copy of it, which it advances by the bytes moved
  rather than re-reading it, as CPython does.
- Every system call of the original is an I/O here: a raw read is one `File.pread` at
  `fd_pos`, a raw write one `File.pwritev`, plus `truncate` and `sync`. Seeks and tells of the
  raw stream are arithmetic on `fd_pos`; "seek end" asks `File.size()`.
- Each call is a `FileCall` whose `_advance()` matches on an `Enum` state. Whatever a state
  mutates happens either before it submits an I/O and leaves the state, or after the I/O has
  finished, in the next state: stepping again while an I/O is pending returns the same
  completion (the driver only steps again once it has finished). The pending dirty range is
  written with ONE `pwritev`; a large write that follows the dirty range directly goes out in
  the same `pwritev`.
- The hot calls first try, when no other call holds the file, the part of CPython's
  algorithm that needs no I/O (a read inside the read-ahead, a write that fits in the
  buffer, a seek inside it or with nothing to flush): it runs right away, the same code
  CPython runs, and the call is `Ready`. A read of whole blocks with nothing buffered submits
  its one raw read at once; if that does not finish inline, a `_Read` call adopts it, holding
  the file's turn from then on.
- Rollback (a failed I/O, a cancellation, a timeout): if dirty data is still unwritten, the
  state is put back exactly as the call found it, so the data is written by a later flush (a
  write at an offset is idempotent); otherwise the file is left clean (no read-ahead, nothing
  dirty) at the position the call started from. When an I/O is abandoned, a worker may still
  read or fill the old buffer, so the file moves to a copy of it. An append-mode write that is
  abandoned may or may not have landed, and a later flush could append it twice, so the file
  is closed instead: usable or clearly closed, never silently half-written.
- Deliberate differences from CPython 3.11: `read1` flushes pending writes first (CPython
  reads from the raw position and returns stale bytes); `seek` supports whence 0, 1 and 2
  (not SEEK_DATA/SEEK_HOLE).
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterable, Sequence
from typing import Literal, TypeVar

from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.files.call import EachInTurn, FileCall, FileLock, LinesUntilHint, Ready
from core.files.errors import (
    UnsupportedFileOperation,
    closed_file,
    invalid_argument,
)
from core.io.backend import Buffer, File
from core.result import IO, Done
from core.state_machine import Continue, ContinueType, TransitionResult

__all__ = ["BufferedFile"]

T = TypeVar("T")

_Saved = tuple[int, int, int, int, int, int, int, int]
"""A checkpoint: (logical position, pos, raw_pos, read_end, write_pos, write_end, fd_pos,
abs_pos)."""

_ALL_CHUNK = 64 * 1024


def _wait(c: Completion) -> IO | Literal[ContinueType.CONTINUE]:
    """Yield `c` if it is still running; otherwise continue at once (it finished inline)."""
    return IO(c) if not c.finished() else Continue


class BufferedFile:
    """The state of one open binary file, and its calls as operations.

    Each I/O method returns an operation (run it with `core.block` or `bridge.drive`); `tell()`
    needs no I/O and answers at once. Errors are CPython's: `ClosedFileError` (a `ValueError`)
    on a closed file, `UnsupportedFileOperation` (an `io.UnsupportedOperation`) for a call the
    mode forbids, `TypeError`/`ValueError` for bad arguments, `FileOSError` (an `OSError`) with
    `EINVAL` for a negative position; a failed I/O raises its `CompletionError`.
    """

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

    # -- what callers see ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or a rollback had to close the file)."""
        return self._closed

    def tell(self) -> int:
        """The current position. Raises `ClosedFileError` if closed."""
        if self._closed:
            raise closed_file("I/O operation on closed file")
        return self._raw_tell() - self._raw_offset()

    def read(self, size: int | None = -1) -> FileCall[bytes]:
        """Read up to `size` bytes (all to the end if negative or None)."""
        n = _size_arg(size, "read length must be non-negative or -1")
        if self.lock.holder is None and self.readable and not self._closed and n >= 0:
            pos = self._pos
            read_end = self._read_end
            if read_end != -1 and n <= read_end - pos:  # CPython's read_fast
                self._pos = pos + n
                return Ready(bytes(self._buf[pos : pos + n]))
            if (
                n > 0
                and n % self.buffer_size == 0
                and read_end in (-1, pos)
                and self._write_end == -1
                and self._raw_offset() == 0
            ):
                return self._read_blocks(n)
        return _Read(self, n)

    def _read_blocks(self, n: int) -> FileCall[bytes]:
        """`read(n)` of whole blocks with nothing buffered: one raw read straight into the
        result (CPython's `_read_generic` takes the same path). When it finishes inline and
        in full, the call is complete; otherwise a `_Read` call takes over, already holding
        the lock and waiting on that read."""
        if self.writable:
            self._abs_pos = self._fd_pos  # the (empty) flush-and-rewind re-reads the position
        out = bytearray(n)
        c = Completion.new_read(out)
        self.file.pread(self._fd_pos, c)
        if c.finished() and c.get_error() is None and c.result() == n:
            self._finish_read(c)
            self._pos = self._raw_pos = self._read_end = 0
            return Ready(bytes(out))
        return _Read.adopt(self, n, out, c)

    def read1(self, size: int | None = -1) -> FileCall[bytes]:
        """Read up to `size` bytes with at most one raw read (buffered bytes first)."""
        n = -1 if size is None else operator.index(size)
        if self.lock.holder is None and self.readable and not self._closed:
            have = self._readahead()
            if n == 0 or have > 0:
                n = min(have, self.buffer_size if n < 0 else n)
                pos = self._pos
                self._pos = pos + n
                return Ready(bytes(self._buf[pos : pos + n]))
        return _Read1(self, n)

    def readinto(self, buffer: Buffer) -> FileCall[int]:
        """Read into `buffer`; the result is the count."""
        return _ReadInto(self, buffer)

    def peek(self, size: int = 0) -> FileCall[bytes]:
        """The buffered bytes at the position (filling the buffer if empty), not consumed."""
        return _Peek(self)

    def readline(self, size: int | None = -1) -> FileCall[bytes]:
        """Read one line, up to `size` bytes if that is not negative."""
        limit = -1 if size is None else operator.index(size)
        if self.lock.holder is None and self.readable and not self._closed:
            # The first part of CPython's `_buffered_readline`: a line inside the read-ahead.
            pos = self._pos
            n = self._read_end - pos if self._read_end != -1 else 0
            if 0 <= limit < n:
                n = limit
            buf = self._buf
            end = buf.find(b"\n", pos, pos + n)
            if end >= 0:
                self._pos = end + 1
                return Ready(bytes(buf[pos : end + 1]))
            if n == limit:
                self._pos = pos + n
                return Ready(bytes(buf[pos : pos + n]))
        return _Readline(self, limit)

    def readlines(self, hint: int | None = -1) -> FileCall[list[bytes]]:
        """Read lines until the end, or until their total length reaches `hint` (if > 0)."""
        return _Readlines(self, -1 if hint is None else operator.index(hint))

    def write(self, data: Buffer) -> FileCall[int]:
        """Write `data` (buffered); the result is its length."""
        if (
            self.lock.holder is None
            and self.writable
            and not self._closed
            and (type(data) is bytes or type(data) is bytearray)
        ):
            # CPython's fast path: the data fits in the buffer.
            valid_read = self.readable and self._read_end != -1
            valid_write = self._write_end != -1
            pos = self._pos if valid_read or valid_write else 0
            size = len(data)
            if size <= self.buffer_size - pos:
                if not valid_read and not valid_write:
                    self._raw_pos = 0
                self._buf[pos : pos + size] = data
                if not valid_write or self._write_pos > pos:
                    self._write_pos = pos
                self._adjust_position(pos + size)
                self._write_end = max(self._write_end, self._pos)
                return Ready(size)
        return _Write(self, data)

    def writelines(self, lines: Iterable[Buffer]) -> FileCall[None]:
        """Write each of `lines`."""
        return _Writelines(self, lines)

    def flush(self) -> FileCall[None]:
        """Write pending data to the file (no fsync)."""
        return _Flush(self)

    def seek(self, offset: int, whence: int = 0) -> FileCall[int]:
        """Move the position; the result is the new absolute position."""
        if self.lock.holder is None and not self._closed and whence in (0, 1, 2):
            target = operator.index(offset)
            moved = self._seek_in_buffer(target, whence)
            if moved is not None:
                return Ready(moved)
            if not self._dirty():  # the flush would write nothing
                if self.writable:
                    self._reset_write()
                return Ready(self._seek_raw(target, whence))
        return _Seek(self, offset, whence)

    def truncate(self, size: int | None = None) -> FileCall[int]:
        """Flush, then set the file's size to `size` (the position if None); the result is
        the new size. The position does not move."""
        return _Truncate(self, size)

    def fsync(self) -> FileCall[None]:
        """Flush, then make everything written durable (`File.sync`)."""
        return _Fsync(self)

    def close(self) -> FileCall[None]:
        """Flush and close; closing a closed file does nothing. The file is closed even if
        the flush fails (its error is raised after closing)."""
        return _Close(self)

    def __repr__(self) -> str:
        return f"<BufferedFile name={self.name!r} mode={self.mode!r}>"

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

    def _save(self) -> _Saved:
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

    def _restore(self, saved: _Saved, abandoned: bool) -> None:
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


def _size_arg(size: int | None, message: str) -> int:
    n = -1 if size is None else operator.index(size)
    if n < -1:
        raise ValueError(message)
    return n


def _unsupported(what: str) -> UnsupportedFileOperation:
    return UnsupportedFileOperation(what)


def _byte_view(data: Buffer, what: str, *, writable: bool) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        kind = "read-write bytes-like object" if writable else "bytes-like object"
        if writable:
            raise TypeError(
                f"{what}() argument must be {kind}, not {type(data).__name__}"
            ) from None
        raise TypeError(f"a {kind} is required, not '{type(data).__name__}'") from None
    if writable and view.readonly:
        raise TypeError(f"{what}() argument must be read-write bytes-like object, not bytes")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


# -- the shared pieces of the calls --------------------------------------------------------


class _FlushStep(enum.Enum):
    START = "start"
    WRITING = "writing"


class _FlushWrites:
    """CPython's `_bufferedwriter_flush_unlocked` (and with `and_rewind`,
    `buffered_flush_and_rewind_unlocked`): write the dirty range with one `pwritev`, then
    forget the write buffer (and the read buffer, after moving the raw stream back to the
    logical position). A part of a call, stepped by it; it takes no turn of its own."""

    __slots__ = ("_and_rewind", "_bf", "_c", "_offset", "_state")

    def __init__(self, bf: BufferedFile, and_rewind: bool) -> None:
        self._bf = bf
        self._and_rewind = and_rewind
        self._state = _FlushStep.START
        self._c: Completion | None = None
        self._offset = 0

    def advance(self) -> TransitionResult[None]:
        bf = self._bf
        match self._state:
            case _FlushStep.START:
                if not bf._valid_write() or bf._write_pos == bf._write_end:
                    return self._end()
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
                return self._end()

    def _submit(self) -> TransitionResult[None]:
        bf = self._bf
        view = memoryview(bf._buf)[bf._write_pos : bf._write_end]
        self._c, self._offset = bf._submit_write((view,))
        self._state = _FlushStep.WRITING
        return _wait(self._c)

    def _end(self) -> Done[None]:
        bf = self._bf
        bf._reset_write()
        if self._and_rewind and bf.readable:
            bf._raw_seek(-bf._raw_offset(), 1)
            bf._reset_read()
        return Done(None)


class _BufferedCall(FileCall[T]):
    """A call on a `BufferedFile`: `_check` raises if it may not run, the checkpoint is the
    file's `_save()`, and rollback is the file's `_restore()`."""

    __slots__ = ("_bf", "_saved")

    def __init__(self, bf: BufferedFile) -> None:
        super().__init__(bf.lock)
        self._bf = bf
        self._saved: _Saved | None = None

    def _check(self) -> None:
        """Raise if the call may not run now (closed, or not allowed by the mode)."""

    def _begin(self) -> None:
        self._check()
        self._saved = self._bf._save()

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if self._saved is not None and not self._bf._closed:
            self._bf._restore(self._saved, abandoned)


def _check_readable(bf: BufferedFile, unsupported: str, closed: str) -> None:
    if not bf.readable:
        raise _unsupported(unsupported)
    if bf._closed:
        raise closed_file(closed)


# -- reads ---------------------------------------------------------------------------------


class _ReadStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    DIRECT_WAIT = "direct wait"
    FILL_WAIT = "fill wait"
    ALL_WAIT = "all wait"


class _Read(_BufferedCall[bytes]):
    """`read(n)`: CPython's `_bufferedreader_read_fast`, `_read_generic` and `_read_all`.
    Raw reads that finish inline are consumed in the same step (a loop, not a state per
    read), so a cached read costs one pass through the state machine."""

    __slots__ = (
        "_c",
        "_chunks",
        "_fill_start",
        "_flush",
        "_n",
        "_out",
        "_remaining",
        "_state",
        "_want",
        "_written",
    )

    def __init__(self, bf: BufferedFile, n: int) -> None:
        super().__init__(bf)
        self._n = n
        self._state = _ReadStep.START
        self._out = bytearray()
        self._written = 0
        self._remaining = 0
        self._fill_start = 0
        self._want = 0
        self._chunks: list[bytes] = []
        self._flush: _FlushWrites | None = None
        self._c: Completion | None = None

    @classmethod
    def adopt(cls, bf: BufferedFile, n: int, out: bytearray, c: Completion) -> _Read:
        """A call that takes over a direct read `BufferedFile.read` already submitted: it
        holds the lock from now on and its next step consumes `c`."""
        op = cls(bf, n)
        op._adopt(c)
        op._saved = bf._save()
        bf._reset_read()
        op._out = out
        op._remaining = n
        op._c = c
        op._state = _ReadStep.DIRECT_WAIT
        return op

    def _check(self) -> None:
        _check_readable(self._bf, "read", "read of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _ReadStep.START:
                n = self._n
                current = bf._readahead()
                if n != -1 and n <= current:
                    pos = bf._pos
                    bf._pos = pos + n
                    return Done(bytes(bf._buf[pos : pos + n]))
                if current > 0:
                    if n == -1:
                        self._chunks.append(bytes(bf._buf[bf._pos : bf._pos + current]))
                    else:
                        self._out = bytearray(n)
                        self._out[:current] = bf._buf[bf._pos : bf._pos + current]
                    bf._pos += current
                elif n != -1:
                    self._out = bytearray(n)
                self._written = current
                self._remaining = n - current
                if bf.writable:
                    self._flush = _FlushWrites(bf, True)
                    self._state = _ReadStep.FLUSH
                    return Continue
                return self._after_flush()
            case _ReadStep.DIRECT_WAIT:
                assert self._c is not None
                if self._direct_done(self._c):
                    return self._result()
                return self._direct()
            case _ReadStep.FILL_WAIT:
                assert self._c is not None
                if self._fill_done(self._c):
                    return self._result()
                return self._fill()
            case _ReadStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                return self._after_flush()
            case _ReadStep.ALL_WAIT:
                assert self._c is not None
                if self._all_done(self._c):
                    return self._all_result()
                return self._all()

    def _after_flush(self) -> TransitionResult[bytes]:
        self._bf._reset_read()
        return self._all() if self._n == -1 else self._direct()

    # The loop of whole blocks read straight into the result.
    def _direct(self) -> TransitionResult[bytes]:
        bf = self._bf
        while True:
            r_len = bf._minus_last_block(self._remaining) if self._remaining > 0 else 0
            if r_len == 0:
                bf._pos = bf._raw_pos = bf._read_end = 0
                return self._fill()
            out = self._out
            if self._written == 0 and r_len == len(out):
                c = bf._submit_read(out)
            else:
                c = bf._submit_read(memoryview(out)[self._written : self._written + r_len])
            if not c.finished():
                self._c = c
                self._state = _ReadStep.DIRECT_WAIT
                return IO(c)
            if self._direct_done(c):
                return self._result()

    def _direct_done(self, c: Completion) -> bool:
        """Account for a direct read; True at the end of the file."""
        got = self._bf._finish_read(c)
        if got == 0:
            return True
        self._remaining -= got
        self._written += got
        return False

    # The loop that fills the buffer for the last partial block.
    def _fill(self) -> TransitionResult[bytes]:
        bf = self._bf
        while self._remaining > 0 and bf._read_end < bf.buffer_size:
            start = bf._read_end if bf._valid_read() else 0
            self._fill_start = start
            c = bf._submit_read(memoryview(bf._buf)[start:])
            if not c.finished():
                self._c = c
                self._state = _ReadStep.FILL_WAIT
                return IO(c)
            if self._fill_done(c):
                break
        return self._result()

    def _fill_done(self, c: Completion) -> bool:
        """Copy what a fill brought; True at the end of the file."""
        bf = self._bf
        got = bf._finish_read(c)
        if got == 0:
            return True
        bf._read_end = bf._raw_pos = self._fill_start + got
        take = min(self._remaining, got)
        pos = bf._pos
        self._out[self._written : self._written + take] = bf._buf[pos : pos + take]
        self._written += take
        bf._pos = pos + take
        self._remaining -= take
        return False

    # read(): everything to the end.
    def _all(self) -> TransitionResult[bytes]:
        bf = self._bf
        while True:
            # First one read of everything the size promises, plus one byte to see the end;
            # if the file grew meanwhile, go on in chunks until a short read.
            first = self._want == 0
            self._want = max(bf.file.size() - bf._fd_pos, 0) + 1 if first else _ALL_CHUNK
            self._out = bytearray(self._want)
            c = bf._submit_read(memoryview(self._out))
            if not c.finished():
                self._c = c
                self._state = _ReadStep.ALL_WAIT
                return IO(c)
            if self._all_done(c):
                return self._all_result()

    def _all_done(self, c: Completion) -> bool:
        got = self._bf._finish_read(c, cached=False)
        if got:
            self._chunks.append(bytes(memoryview(self._out)[:got]))
        return got < self._want

    def _all_result(self) -> Done[bytes]:
        chunks = self._chunks
        return Done(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _result(self) -> Done[bytes]:
        out, written = self._out, self._written
        return Done(bytes(out) if written == len(out) else bytes(memoryview(out)[:written]))


class _SimpleStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    SUBMIT = "submit"
    WAIT = "wait"


class _Read1(_BufferedCall[bytes]):
    """`read1(n)`: buffered bytes if there are any, else one raw read of `n` bytes."""

    __slots__ = ("_c", "_flush", "_n", "_out", "_state")

    def __init__(self, bf: BufferedFile, n: int) -> None:
        super().__init__(bf)
        self._n = n
        self._state = _SimpleStep.START
        self._flush: _FlushWrites | None = None
        self._c: Completion | None = None
        self._out = bytearray()

    def _check(self) -> None:
        _check_readable(self._bf, "read1", "read of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _SimpleStep.START:
                n = self._n if self._n >= 0 else bf.buffer_size
                self._n = n
                if n == 0:
                    return Done(b"")
                have = bf._readahead()
                if have > 0:
                    n = min(have, n)
                    pos = bf._pos
                    bf._pos = pos + n
                    return Done(bytes(bf._buf[pos : pos + n]))
                if bf._dirty():  # CPython would read stale bytes at the raw position here
                    self._flush = _FlushWrites(bf, True)
                    self._state = _SimpleStep.FLUSH
                    return Continue
                self._state = _SimpleStep.SUBMIT
                return Continue
            case _SimpleStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                self._state = _SimpleStep.SUBMIT
                return Continue
            case _SimpleStep.SUBMIT:
                bf._reset_read()
                self._out = bytearray(self._n)
                self._c = bf._submit_read(memoryview(self._out))
                self._state = _SimpleStep.WAIT
                return _wait(self._c)
            case _SimpleStep.WAIT:
                assert self._c is not None
                got = bf._finish_read(self._c)
                out = self._out
                return Done(bytes(out) if got == len(out) else bytes(memoryview(out)[:got]))


class _ReadIntoStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    LOOP = "loop"
    DIRECT_WAIT = "direct wait"
    FILL_WAIT = "fill wait"


class _ReadInto(_BufferedCall[int]):
    """`readinto(b)`: CPython's `_buffered_readinto_generic`. Raw reads go into memory of
    ours and are copied over, so an abandoned read never writes into the caller's buffer."""

    __slots__ = ("_c", "_dest", "_fill_start", "_flush", "_state", "_temp", "_written")

    def __init__(self, bf: BufferedFile, buffer: Buffer) -> None:
        super().__init__(bf)
        self._dest = _byte_view(buffer, "readinto", writable=True)
        self._state = _ReadIntoStep.START
        self._written = 0
        self._fill_start = 0
        self._temp = bytearray()
        self._flush: _FlushWrites | None = None
        self._c: Completion | None = None

    def _check(self) -> None:
        _check_readable(self._bf, "read", "readinto of closed file")

    def _advance(self) -> TransitionResult[int]:
        bf = self._bf
        dest = self._dest
        match self._state:
            case _ReadIntoStep.START:
                n = bf._readahead()
                pos = bf._pos
                if n > 0:
                    if n >= len(dest):
                        dest[:] = bf._buf[pos : pos + len(dest)]
                        bf._pos = pos + len(dest)
                        return Done(len(dest))
                    dest[:n] = bf._buf[pos : pos + n]
                    bf._pos = pos + n
                    self._written = n
                if bf.writable:
                    self._flush = _FlushWrites(bf, True)
                    self._state = _ReadIntoStep.FLUSH
                    return Continue
                bf._reset_read()
                bf._pos = 0
                self._state = _ReadIntoStep.LOOP
                return Continue
            case _ReadIntoStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                bf._reset_read()
                bf._pos = 0
                self._state = _ReadIntoStep.LOOP
                return Continue
            case _ReadIntoStep.LOOP:
                remaining = len(dest) - self._written
                if remaining <= 0:
                    return self._result()
                if remaining > bf.buffer_size:
                    self._temp = bytearray(remaining)
                    self._c = bf._submit_read(memoryview(self._temp))
                    self._state = _ReadIntoStep.DIRECT_WAIT
                else:
                    start = bf._read_end if bf._valid_read() else 0
                    self._fill_start = start
                    self._c = bf._submit_read(memoryview(bf._buf)[start:])
                    self._state = _ReadIntoStep.FILL_WAIT
                return _wait(self._c)
            case _ReadIntoStep.DIRECT_WAIT:
                assert self._c is not None
                n = bf._finish_read(self._c)
                if n == 0:
                    return self._result()
                dest[self._written : self._written + n] = memoryview(self._temp)[:n]
                self._written += n
                self._state = _ReadIntoStep.LOOP
                return Continue
            case _ReadIntoStep.FILL_WAIT:
                assert self._c is not None
                n = bf._finish_read(self._c)
                if n <= 0:
                    return self._result()
                bf._read_end = bf._raw_pos = self._fill_start + n
                n = min(n, len(dest) - self._written)
                pos = bf._pos
                dest[self._written : self._written + n] = bf._buf[pos : pos + n]
                bf._pos = pos + n
                self._written += n
                self._state = _ReadIntoStep.LOOP
                return Continue

    def _result(self) -> Done[int]:
        return Done(self._written)


class _Peek(_BufferedCall[bytes]):
    """`peek()`: the read-ahead bytes, or a freshly filled buffer; the position stays."""

    __slots__ = ("_c", "_flush", "_state")

    def __init__(self, bf: BufferedFile) -> None:
        super().__init__(bf)
        self._state = _SimpleStep.START
        self._flush: _FlushWrites | None = None
        self._c: Completion | None = None

    def _check(self) -> None:
        _check_readable(self._bf, "peek", "peek of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _SimpleStep.START:
                if bf.writable:
                    self._flush = _FlushWrites(bf, True)
                    self._state = _SimpleStep.FLUSH
                else:
                    self._state = _SimpleStep.SUBMIT
                return Continue
            case _SimpleStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                self._state = _SimpleStep.SUBMIT
                return Continue
            case _SimpleStep.SUBMIT:
                have = bf._readahead()
                if have > 0:
                    return Done(bytes(bf._buf[bf._pos : bf._read_end]))
                bf._reset_read()
                self._c = bf._submit_read(memoryview(bf._buf))
                self._state = _SimpleStep.WAIT
                return _wait(self._c)
            case _SimpleStep.WAIT:
                assert self._c is not None
                got = bf._finish_read(self._c)
                if got > 0:
                    bf._read_end = bf._raw_pos = got
                bf._pos = 0
                return Done(bytes(bf._buf[:got]))


class _ReadlineStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    FILL = "fill"
    FILL_WAIT = "fill wait"


class _Readline(_BufferedCall[bytes]):
    """`readline(limit)`: CPython's `_buffered_readline`."""

    __slots__ = ("_c", "_chunks", "_flush", "_limit", "_state")

    def __init__(self, bf: BufferedFile, limit: int) -> None:
        super().__init__(bf)
        self._limit = limit
        self._state = _ReadlineStep.START
        self._chunks: list[bytes] = []
        self._flush: _FlushWrites | None = None
        self._c: Completion | None = None

    def _check(self) -> None:
        if self._limit == 0 and not self._bf.readable:
            return  # IOBase.readline(0) returns b"" before it would read
        _check_readable(self._bf, "read", "readline of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _ReadlineStep.START:
                limit = self._limit
                if limit == 0:
                    return Done(b"")
                n = bf._readahead()
                if 0 <= limit < n:
                    n = limit
                buf = bf._buf
                pos = bf._pos
                end = buf.find(b"\n", pos, pos + n)
                if end >= 0:
                    bf._pos = end + 1
                    return Done(bytes(buf[pos : end + 1]))
                if n == limit:
                    bf._pos = pos + n
                    return Done(bytes(buf[pos : pos + n]))
                if n > 0:
                    self._chunks.append(bytes(buf[pos : pos + n]))
                    bf._pos = pos + n
                    if limit >= 0:
                        self._limit = limit - n
                if bf.writable:
                    self._flush = _FlushWrites(bf, True)
                    self._state = _ReadlineStep.FLUSH
                else:
                    self._state = _ReadlineStep.FILL
                return Continue
            case _ReadlineStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                self._state = _ReadlineStep.FILL
                return Continue
            case _ReadlineStep.FILL:
                bf._reset_read()
                self._c = bf._submit_read(memoryview(bf._buf))
                self._state = _ReadlineStep.FILL_WAIT
                return _wait(self._c)
            case _ReadlineStep.FILL_WAIT:
                assert self._c is not None
                n = bf._finish_read(self._c)
                if n <= 0:
                    return self._result()
                bf._read_end = bf._raw_pos = n
                limit = self._limit
                if 0 <= limit < n:
                    n = limit
                buf = bf._buf
                end = buf.find(b"\n", 0, n)
                if end >= 0:
                    self._chunks.append(bytes(buf[: end + 1]))
                    bf._pos = end + 1
                    return self._result()
                self._chunks.append(bytes(buf[:n]))
                if n == limit:
                    bf._pos = n
                    return self._result()
                if limit >= 0:
                    self._limit = limit - n
                self._state = _ReadlineStep.FILL
                return Continue

    def _result(self) -> Done[bytes]:
        chunks = self._chunks
        return Done(chunks[0] if len(chunks) == 1 else b"".join(chunks))


class _Readlines(_BufferedCall[list[bytes]]):
    """`readlines(hint)`: `readline()` until an empty line, or until `hint` bytes (if > 0)."""

    __slots__ = ("_lines",)

    def __init__(self, bf: BufferedFile, hint: int) -> None:
        super().__init__(bf)
        self._lines = LinesUntilHint(hint, lambda: _Readline(bf, -1))

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()
        self._lines.check()

    def _advance(self) -> TransitionResult[list[bytes]]:
        return self._lines.advance()


class _WriteStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    DIRECT = "direct"
    DIRECT_WAIT = "direct wait"
    TOGETHER_WAIT = "together wait"


class _Write(_BufferedCall[int]):
    """`write(b)`: CPython's `_io_BufferedWriter_write_impl`. When a write too large for the
    buffer starts where the dirty range ends, the dirty range and the data go out in one
    `pwritev` (CPython makes two writes; the file and the state end up the same)."""

    __slots__ = ("_c", "_data", "_flush", "_offset", "_remaining", "_state", "_written")

    def __init__(self, bf: BufferedFile, data: Buffer) -> None:
        super().__init__(bf)
        self._data = _byte_view(data, "write", writable=False)
        self._state = _WriteStep.START
        self._written = 0
        self._remaining = 0
        self._offset = 0
        self._flush: _FlushWrites | None = None
        self._c: Completion | None = None

    def _check(self) -> None:
        bf = self._bf
        if not bf.writable:
            raise _unsupported("write")
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
                self._flush = _FlushWrites(bf, False)
                self._state = _WriteStep.FLUSH
                return Continue
            case _WriteStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
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
                    return _wait(self._c)
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
        return _wait(self._c)

    def _restart_after_short(self, n: int) -> TransitionResult[int]:
        # The kernel took only part of the vector: account for what landed and go on as
        # CPython does (flush the rest of the dirty range, then write the data).
        bf = self._bf
        dirty = bf._write_end - bf._write_pos
        if n < dirty:
            bf._write_pos += n
            bf._raw_pos = bf._write_pos
            self._flush = _FlushWrites(bf, False)
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


class _Writelines(_BufferedCall[None]):
    """`writelines(lines)`: `write()` each line in turn."""

    __slots__ = ("_each",)

    def __init__(self, bf: BufferedFile, lines: Iterable[Buffer]) -> None:
        super().__init__(bf)
        self._each = EachInTurn(list(lines), lambda line: _Write(bf, line))

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()

    def _advance(self) -> TransitionResult[None]:
        return self._each.advance()


# -- flush, seek, truncate, sync, close ----------------------------------------------------


class _Flush(_BufferedCall[None]):
    """`flush()`: write the dirty range and drop the read-ahead (CPython's `buffered_flush`;
    a read-only file only checks it is open)."""

    __slots__ = ("_flush",)

    def __init__(self, bf: BufferedFile) -> None:
        super().__init__(bf)
        self._flush = _FlushWrites(bf, True)

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file(
                "flush of closed file" if self._bf.writable else "I/O operation on closed file."
            )

    def _advance(self) -> TransitionResult[None]:
        if not self._bf.writable:
            return Done(None)
        return self._flush.advance()


class _SeekStep(enum.Enum):
    START = "start"
    FLUSH = "flush"


class _Seek(_BufferedCall[int]):
    """`seek(offset, whence)`: inside the read-ahead if possible, else flush and move."""

    __slots__ = ("_flush", "_state", "_target", "_target_arg", "_whence")

    def __init__(self, bf: BufferedFile, target: int, whence: int) -> None:
        super().__init__(bf)
        self._target_arg = target
        self._target = 0
        self._whence = operator.index(whence)
        self._state = _SeekStep.START
        self._flush: _FlushWrites | None = None

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
                    self._flush = _FlushWrites(bf, False)
                    self._state = _SeekStep.FLUSH
                    return Continue
                return self._move()
            case _SeekStep.FLUSH:
                assert self._flush is not None
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                return self._move()

    def _move(self) -> Done[int]:
        return Done(self._bf._seek_raw(self._target, self._whence))


class _TruncateStep(enum.Enum):
    START = "start"
    WAIT = "wait"


class _Truncate(_BufferedCall[int]):
    """`truncate(size)`: flush (dropping the read-ahead), then one `File.truncate`."""

    __slots__ = ("_c", "_flush", "_size", "_size_arg", "_state")

    def __init__(self, bf: BufferedFile, size: int | None) -> None:
        super().__init__(bf)
        self._size_arg = size
        self._size = 0
        self._state = _TruncateStep.START
        self._flush = _FlushWrites(bf, True)
        self._c: Completion | None = None

    def _check(self) -> None:
        bf = self._bf
        if bf._closed:
            raise closed_file("truncate of closed file")
        if not bf.writable:
            raise _unsupported("truncate")
        if self._size_arg is not None:
            self._size = operator.index(self._size_arg)

    def _advance(self) -> TransitionResult[int]:
        bf = self._bf
        match self._state:
            case _TruncateStep.START:
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                size = bf._fd_pos if self._size_arg is None else self._size
                if size < 0:
                    raise invalid_argument()
                self._size = size
                self._c = Completion.new_trunc()
                bf.file.truncate(size, self._c)
                self._state = _TruncateStep.WAIT
                return _wait(self._c)
            case _TruncateStep.WAIT:
                assert self._c is not None
                self._c.result()
                bf._raw_tell()
                return Done(self._size)


class _Fsync(_BufferedCall[None]):
    """`fsync()`: flush, then `File.sync`."""

    __slots__ = ("_c", "_flush", "_state")

    def __init__(self, bf: BufferedFile) -> None:
        super().__init__(bf)
        self._state = _TruncateStep.START
        self._flush = _FlushWrites(bf, True)
        self._c: Completion | None = None

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()

    def _advance(self) -> TransitionResult[None]:
        bf = self._bf
        match self._state:
            case _TruncateStep.START:
                if bf.writable:
                    r = self._flush.advance()
                    if not isinstance(r, Done):
                        return r
                self._c = Completion.new_sync()
                bf.file.sync(self._c)
                self._state = _TruncateStep.WAIT
                return _wait(self._c)
            case _TruncateStep.WAIT:
                assert self._c is not None
                self._c.result()
                return Done(None)


class _Close(_BufferedCall[None]):
    """`close()`: flush, then close the core file. If the flush fails or is abandoned, the
    file is closed all the same and the error propagates (CPython's `buffered_close`)."""

    __slots__ = ("_flush",)

    def __init__(self, bf: BufferedFile) -> None:
        super().__init__(bf)
        self._flush = _FlushWrites(bf, True)

    def _advance(self) -> TransitionResult[None]:
        bf = self._bf
        if bf._closed:
            return Done(None)
        if bf.writable:
            r = self._flush.advance()
            if not isinstance(r, Done):
                return r
        bf._close_now()
        return Done(None)

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if not self._bf._closed:
            self._bf._close_now()
