"""Unbuffered binary files (`buffering=0`): CPython's `FileIO`, one I/O per call.

Theory of operation:
- `RawFile` keeps one number of state, the offset a file descriptor would have (`pos`; the
  end of the file at open in append mode, as `FileIO` seeks there). `read(n)` is one
  `File.pread` of `n` bytes, `write(b)` one `File.pwritev` of all of `b` (at the end in append
  mode), `truncate` one `File.truncate`; `seek`, `tell` and `flush` need no I/O.
- `readline` is `IOBase.readline`: CPython reads one byte at a time; we read a chunk and move
  the offset to just after the newline, which returns the same line and leaves the same
  offset on a regular file.
- Errors are `FileIO`'s: `ClosedFileError` ("I/O operation on closed file"),
  `UnsupportedFileOperation` ("File not open for reading/writing"), `FileOSError` (`EINVAL`)
  for a negative offset or an unknown whence. Rollback puts the offset back; an abandoned
  append is treated as in `BufferedFile` (the file is closed).
"""

from __future__ import annotations

import enum
import errno
import operator
import os
from collections.abc import Iterable
from typing import Final, TypeVar

from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.files.call import EachInTurn, FileCall, FileLock, LinesUntilHint
from core.files.errors import (
    FileOSError,
    UnsupportedFileOperation,
    closed_file,
    invalid_argument,
)
from core.files.support import READ_ALL_CHUNK, byte_view, wait
from core.io.backend import Buffer, File
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = ["RawFile"]

T = TypeVar("T")

_LINE_CHUNK: Final = 4096


class RawFile:
    """The state of one open unbuffered binary file, and its calls as operations."""

    __slots__ = (
        "_closed",
        "_pos",
        "_writing",
        "append",
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
        position: int = 0,
    ) -> None:
        self.file = file
        self.name = name
        self.mode = mode
        self.readable = readable
        self.writable = writable
        self.append = append
        self.lock = FileLock()
        self._pos = position
        self._closed = False
        self._writing = False

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise closed_file("I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_open()
        if not self.readable:
            raise UnsupportedFileOperation("File not open for reading")

    def _check_writable(self) -> None:
        self._check_open()
        if not self.writable:
            raise UnsupportedFileOperation("File not open for writing")

    def tell(self) -> int:
        """The offset. Raises `ClosedFileError`."""
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the offset (`lseek`); return it. Raises `ClosedFileError`, `TypeError`, and
        `FileOSError` (`EINVAL`) for a negative result or an unknown whence."""
        self._check_open()
        target = operator.index(offset)
        whence = operator.index(whence)
        if whence == 1:
            target += self._pos
        elif whence == 2:
            target += self.file.size()
        elif whence != 0:
            raise invalid_argument()
        if target < 0:
            raise invalid_argument()
        self._pos = target
        return target

    def flush(self) -> None:
        """Nothing to write; raises `ClosedFileError` if closed."""
        if self._closed:
            raise closed_file()

    def read(self, size: int | None = -1) -> FileCall[bytes]:
        """One read of up to `size` bytes (to the end if negative or None)."""
        return _RawRead(self, -1 if size is None else operator.index(size))

    def readall(self) -> FileCall[bytes]:
        """Read to the end. Unlike `read()`, a write-only file fails as the system call does
        (`FileOSError`, `EBADF`), as in CPython."""
        return _RawRead(self, -1, readall=True)

    def readinto(self, buffer: Buffer) -> FileCall[int]:
        """One read into `buffer`; the count."""
        return _RawReadInto(self, buffer)

    def readline(self, size: int | None = -1) -> FileCall[bytes]:
        """One line (up to `size` bytes if not negative)."""
        return _RawReadline(self, -1 if size is None else operator.index(size))

    def readlines(self, hint: int | None = -1) -> FileCall[list[bytes]]:
        """Lines to the end, or until a line takes the total past `hint` (if > 0)."""
        return _RawReadlines(self, -1 if hint is None else operator.index(hint))

    def write(self, data: Buffer) -> FileCall[int]:
        """One write of all of `data`; its length."""
        return _RawWrite(self, data)

    def writelines(self, lines: Iterable[Buffer]) -> FileCall[None]:
        """Write each of `lines`."""
        return _RawWritelines(self, lines)

    def truncate(self, size: int | None = None) -> FileCall[int]:
        """Set the size (to the offset if None); the new size. The offset stays."""
        return _RawTruncate(self, size)

    def fsync(self) -> FileCall[None]:
        """Make what was written durable."""
        return _RawFsync(self)

    def close(self) -> FileCall[None]:
        """Close; closing a closed file does nothing."""
        return _RawClose(self)

    def _close_now(self) -> None:
        self._closed = True
        self._writing = False
        self.file.close()

    def __repr__(self) -> str:
        return f"<RawFile name={self.name!r} mode={self.mode!r}>"


class _Step(enum.Enum):
    START = "start"
    WAIT = "wait"


class _RawCall(FileCall[T]):
    """A call on a `RawFile`; the checkpoint is the offset."""

    __slots__ = ("_c", "_rf", "_saved", "_state")

    def __init__(self, rf: RawFile) -> None:
        super().__init__(rf.lock)
        self._rf = rf
        self._saved = 0
        self._state = _Step.START
        self._c: Completion | None = None

    def _check(self) -> None:
        self._rf._check_open()

    def _begin(self) -> None:
        self._check()
        self._saved = self._rf._pos

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        rf = self._rf
        if rf._closed:
            return
        if abandoned and rf.append and rf._writing:
            rf._close_now()
            return
        rf._writing = False
        rf._pos = self._saved

    def _read_at(self, view: memoryview) -> TransitionResult[T]:
        self._c = Completion.new_read(view)
        self._rf.file.pread(self._rf._pos, self._c)
        self._state = _Step.WAIT
        return wait(self._c)

    def _got(self) -> int:
        assert self._c is not None
        n = self._c.result()
        self._rf._pos += n
        return n


class _RawRead(_RawCall[bytes]):
    __slots__ = ("_chunks", "_n", "_out", "_readall")

    def __init__(self, rf: RawFile, n: int, *, readall: bool = False) -> None:
        super().__init__(rf)
        self._n = n
        self._readall = readall
        self._out = bytearray()
        self._chunks: list[bytes] = []

    def _check(self) -> None:
        if self._readall and not self._rf.readable:
            self._rf._check_open()
            raise FileOSError(errno.EBADF, os.strerror(errno.EBADF))
        self._rf._check_readable()

    def _advance(self) -> TransitionResult[bytes]:
        match self._state:
            case _Step.START:
                if self._n >= 0:
                    self._out = bytearray(self._n)
                else:
                    first = not self._chunks and not self._out
                    size = self._rf.file.size() - self._rf._pos + 1 if first else READ_ALL_CHUNK
                    self._out = bytearray(max(size, 1))
                return self._read_at(memoryview(self._out))
            case _Step.WAIT:
                n = self._got()
                data = bytes(memoryview(self._out)[:n])
                if self._n >= 0:
                    return Done(data)
                if data:
                    self._chunks.append(data)
                if n < len(self._out):
                    return Done(b"".join(self._chunks))
                self._state = _Step.START
                return Continue


class _RawReadInto(_RawCall[int]):
    __slots__ = ("_dest", "_temp")

    def __init__(self, rf: RawFile, buffer: Buffer) -> None:
        super().__init__(rf)
        self._dest = byte_view(buffer, "readinto", writable=True)
        self._temp = bytearray()

    def _check(self) -> None:
        self._rf._check_readable()

    def _advance(self) -> TransitionResult[int]:
        match self._state:
            case _Step.START:
                self._temp = bytearray(len(self._dest))
                return self._read_at(memoryview(self._temp))
            case _Step.WAIT:
                n = self._got()
                self._dest[:n] = memoryview(self._temp)[:n]
                return Done(n)


class _RawReadline(_RawCall[bytes]):
    __slots__ = ("_chunks", "_limit", "_out")

    def __init__(self, rf: RawFile, limit: int) -> None:
        super().__init__(rf)
        self._limit = limit
        self._chunks: list[bytes] = []
        self._out = bytearray()

    def _check(self) -> None:
        if self._limit != 0:
            self._rf._check_readable()

    def _advance(self) -> TransitionResult[bytes]:
        match self._state:
            case _Step.START:
                if self._limit == 0:
                    return Done(b"")
                size = _LINE_CHUNK if self._limit < 0 else min(self._limit, _LINE_CHUNK)
                self._out = bytearray(size)
                return self._read_at(memoryview(self._out))
            case _Step.WAIT:
                assert self._c is not None
                n = self._c.result()
                out = self._out
                end = out.find(b"\n", 0, n)
                take = n if end < 0 else end + 1
                self._rf._pos += take
                self._chunks.append(bytes(out[:take]))
                if self._limit > 0:
                    self._limit -= take
                if end >= 0 or n < len(out) or self._limit == 0:
                    return Done(b"".join(self._chunks))
                self._state = _Step.START
                return Continue


class _RawReadlines(_RawCall[list[bytes]]):
    __slots__ = ("_lines",)

    def __init__(self, rf: RawFile, hint: int) -> None:
        super().__init__(rf)
        self._lines = LinesUntilHint(hint, lambda: _RawReadline(rf, -1))

    def _check(self) -> None:
        if self._rf._closed:
            raise closed_file()
        self._rf._check_readable()

    def _advance(self) -> TransitionResult[list[bytes]]:
        return self._lines.advance()


class _RawWrite(_RawCall[int]):
    __slots__ = ("_data", "_offset")

    def __init__(self, rf: RawFile, data: Buffer) -> None:
        super().__init__(rf)
        self._data = byte_view(data, "write", writable=False)
        self._offset = 0

    def _check(self) -> None:
        self._rf._check_writable()

    def _advance(self) -> TransitionResult[int]:
        rf = self._rf
        match self._state:
            case _Step.START:
                if not self._data:  # write(2) of nothing moves nothing, even with O_APPEND
                    return Done(0)
                self._offset = rf.file.size() if rf.append else rf._pos
                self._c = Completion.new_write()
                rf.file.pwritev(self._offset, (self._data,), self._c)
                rf._writing = True
                self._state = _Step.WAIT
                return wait(self._c)
            case _Step.WAIT:
                assert self._c is not None
                rf._writing = False
                n = self._c.result()
                if n != len(self._data):
                    raise CompletionError(
                        ErrorKind.SHORT_WRITE,
                        "pwritev wrote fewer bytes than submitted",
                        path=rf.file.path,
                        offset=self._offset,
                        expected=len(self._data),
                        actual=n,
                    )
                rf._pos = self._offset + n
                return Done(n)


class _RawWritelines(_RawCall[None]):
    __slots__ = ("_each",)

    def __init__(self, rf: RawFile, lines: Iterable[Buffer]) -> None:
        super().__init__(rf)
        self._each = EachInTurn(list(lines), lambda line: _RawWrite(rf, line))

    def _check(self) -> None:
        if self._rf._closed:
            raise closed_file()

    def _advance(self) -> TransitionResult[None]:
        return self._each.advance()


class _RawTruncate(_RawCall[int]):
    __slots__ = ("_size", "_size_arg")

    def __init__(self, rf: RawFile, size: int | None) -> None:
        super().__init__(rf)
        self._size_arg = size
        self._size = 0

    def _check(self) -> None:
        self._rf._check_writable()
        self._size = self._rf._pos if self._size_arg is None else operator.index(self._size_arg)

    def _advance(self) -> TransitionResult[int]:
        match self._state:
            case _Step.START:
                if self._size < 0:
                    raise invalid_argument()
                self._c = Completion.new_trunc()
                self._rf.file.truncate(self._size, self._c)
                self._state = _Step.WAIT
                return wait(self._c)
            case _Step.WAIT:
                assert self._c is not None
                self._c.result()
                return Done(self._size)


class _RawFsync(_RawCall[None]):
    __slots__ = ()

    def _advance(self) -> TransitionResult[None]:
        match self._state:
            case _Step.START:
                self._c = Completion.new_sync()
                self._rf.file.sync(self._c)
                self._state = _Step.WAIT
                return wait(self._c)
            case _Step.WAIT:
                assert self._c is not None
                self._c.result()
                return Done(None)


class _RawClose(_RawCall[None]):
    __slots__ = ()

    def _check(self) -> None:
        pass

    def _advance(self) -> TransitionResult[None]:
        if not self._rf._closed:
            self._rf._close_now()
        return Done(None)
