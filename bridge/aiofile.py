"""`bridge.open`: aiofiles-compatible file objects on the core's file calls.

Theory of operation:
- `open(...)` takes `open()`'s arguments (plus `io=`) and returns an object that is both
  awaitable and an async context manager, as `aiofiles.open` does. Nothing happens until it is
  awaited: then the arguments are checked as CPython checks them, and the core's `OpenFile`
  operation opens the file.
- Every method of the returned file object builds the core call (`core.files`), steps it once
  inline and, if it needs an I/O that did not complete on the spot, hands it to `drive`
  (`_AsyncFile._run`); a call complete when made, with no turn due, is answered by the one
  fast-path check (see `_AsyncFile`) without even that step. A read that hits the
  read-ahead buffer or the page cache (AsyncFileIO's RWF_NOWAIT read) therefore never
  leaves the loop thread and never creates a Future; a write lands in the buffer; only
  flushes (one `pwritev`), truncates, fsyncs and page-cache misses go to the backend's
  workers. So that a long run of such inline calls cannot hold the loop, a file object
  gives the loop one turn once its inline calls have run for the backend's `time_slice`
  (2 ms by default) without one, and before a read that would take the bytes it read
  inline since its last turn past the backend's `inline_budget` (past which the backend
  would send the read to a worker: a loop turn is far cheaper than that hop).
- The backend: `io=` if given (it stays the caller's to close), else one `AsyncFileIO` per
  running asyncio/uvloop loop, made on first use (`bridge._defaults`). It is closed when
  the loop shuts down (an async generator parked on the loop is closed by
  `loop.shutdown_asyncgens()`, which `asyncio.run` and `asyncio.Runner` call), when a later
  `open` finds its loop closed, or at interpreter exit. Under trio there is one per
  `trio.run`, closed by a system task when the run ends. Its workers are daemon threads, so
  nothing can hold the process.
- Errors: what CPython raises, with the same types. A `CompletionError` of the core becomes
  the `OSError` subclass Python raises for its errno (`to_os_error`), with the file name for
  `open` and without it for I/O on an open file, as Python reports them.
"""

from __future__ import annotations

import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
)
from time import perf_counter
from types import TracebackType
from typing import Any, Generic, TypeVar

from bridge._defaults import default_io
from bridge._drive import drive
from bridge._drive_common import DEFAULT_TIME_SLICE, current_library, one_turn
from core.errors import CompletionError
from core.files import (
    BufferedFile,
    FileCall,
    OpenFile,
    RawFile,
    TextFile,
    UnsupportedFileOperation,
    parse_open_arguments,
    to_os_error,
)
from core.files.call import Ready
from core.files.errors import closed_file
from core.io.backend import Buffer, IOBackend
from core.result import Done

__all__ = ["AsyncBufferedFile", "AsyncRawFile", "AsyncTextFile", "open"]

T = TypeVar("T")
F = TypeVar("F", bound="_AsyncFile")


# -- open ------------------------------------------------------------------------------------


class _Opening(Generic[F]):
    """What `open()` returns: await it for the file, or use it with `async with`."""

    __slots__ = ("_args", "_io", "_obj")

    def __init__(self, args: tuple[Any, ...], io: IOBackend | None) -> None:
        self._args = args
        self._io = io
        self._obj: F | None = None

    def __await__(self) -> Generator[Any, None, F]:
        if self._obj is None:
            self._obj = yield from _open(self._args, self._io).__await__()
        return self._obj

    async def __aenter__(self) -> F:
        return await self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = None
        if obj is not None:
            await obj.close()


def open(
    file: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
    *,
    io: IOBackend | None = None,
    loop: object = None,
    executor: object = None,
) -> _Opening[Any]:
    """Open a file as `aiofiles.open` does: `async with bridge.open(p) as f` or
    `f = await bridge.open(p)`.

    Returns `AsyncTextFile` in text mode, `AsyncBufferedFile` in binary mode, `AsyncRawFile`
    with `buffering=0`. `io` is the backend (default: the running loop's shared
    `AsyncFileIO`). `loop` and `executor` are accepted for aiofiles compatibility and ignored:
    nothing here runs in an executor.

    Raises, when awaited, what `open()` raises: `TypeError`/`ValueError` for bad arguments,
    `LookupError` for an unknown encoding, `FileNotFoundError`, `IsADirectoryError`,
    `FileExistsError`, `PermissionError`... (`OSError` subclasses with errno and file name);
    `UnsupportedFileOperation` for a file descriptor or a custom `opener`; `EventLoopError`
    without a running loop.
    """
    return _Opening((file, mode, buffering, encoding, errors, newline, closefd, opener), io)


async def _open(args: tuple[Any, ...], io: IOBackend | None) -> Any:
    options = parse_open_arguments(*args)
    backend = io if io is not None else default_io()
    op = OpenFile(backend, options)
    try:
        result = op.step()
        obj = result.value if type(result) is Done else await drive(op, backend)
    except CompletionError as exc:
        raise to_os_error(exc, options.name) from exc
    if isinstance(obj, TextFile):
        return AsyncTextFile(obj, backend)
    if isinstance(obj, RawFile):
        return AsyncRawFile(obj, backend)
    return AsyncBufferedFile(obj, backend)


# -- file objects ----------------------------------------------------------------------------


class _AsyncFile:
    """What every async file object shares: running calls, the turn-taking, iteration.

    The fast path of the hot methods (`read`, `readline`, `write`, `seek`, iteration) is
    one check written out in each: the call was complete when made (`Ready`: a read from
    the read-ahead buffer or the page cache, a write into the buffer) and the loop is owed
    no turn, so its `value` is the answer, with no step and no `drive`. Written out rather
    than a helper or a branch of `_run`: a helper costs a Python call and the coroutine
    `_run` about three times that, which `async for line in f` would pay on every line.
    """

    __slots__ = ("_budget", "_copied", "_f", "_io", "_slice", "_turn_at", "_yield")

    def __init__(self, f: BufferedFile | TextFile | RawFile, io: IOBackend) -> None:
        self._f = f
        self._io = io
        self._slice: float = getattr(io, "time_slice", DEFAULT_TIME_SLICE)
        self._budget: int = getattr(io, "inline_budget", 1 << 62) or 1 << 62
        self._copied = 0
        self._turn_at = perf_counter() + self._slice
        self._yield: Callable[[], Awaitable[None]] = one_turn
        if current_library() == "trio":
            import trio

            self._yield = trio.lowlevel.checkpoint

    async def _run(self, op: FileCall[T]) -> T:
        """Run one file call: its value if it finishes in its first step (a `Ready` call
        does), else through `drive`; then the loop's turn if one is due. Raises a failed
        I/O's `CompletionError` as the `OSError` Python raises."""
        try:
            result = op.step()
            if type(result) is not Done:
                if result.completion.finished():  # type: ignore[union-attr]
                    return await drive(op, self._io)
                # `drive` waits for this completion, and the loop has its turns meanwhile
                # (every backend here finishes completions on the loop thread, or when the
                # driver steps it between turns): the slice starts again after it, instead
                # of a turn of our own at the next inline call, which costs a loop pass. A
                # backend that finishes them on another thread before `drive` awaits would
                # not give that turn; `drive`'s per-pass step budget bounds its steps then.
                value = await drive(op, self._io)
                self._start_slice()
                return value
        except CompletionError as exc:
            raise to_os_error(exc) from exc
        if perf_counter() >= self._turn_at:
            await self._turn()
        return result.value

    async def _turn(self) -> None:
        await self._yield()
        self._start_slice()

    def _start_slice(self) -> None:
        """The loop just had its turn: a new time slice and copy count begin."""
        self._turn_at = perf_counter() + self._slice
        self._copied = 0

    async def _copying(self, size: int) -> None:
        """Account for a read of up to `size` bytes. The backend copies at most its
        `inline_budget` per loop pass inline and sends the rest to its workers; a loop turn
        before the read that would overflow it costs far less than that hop."""
        copied = self._copied + size
        if copied > self._budget:
            await self._turn()
            copied = size
        self._copied = copied

    @property
    def name(self) -> str | bytes:
        """The path as given to `open`."""
        return self._f.name

    @property
    def mode(self) -> str:
        """The mode, as Python's file objects report it."""
        return self._f.mode

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._f.closed

    @property
    def io(self) -> IOBackend:
        """The backend this file's I/O goes to."""
        return self._io

    def fileno(self) -> int:
        """The file descriptor, if the backend's file has one. Raises `ClosedFileError` if
        closed and `UnsupportedFileOperation` for a backend without descriptors."""
        if self._f.closed:
            raise closed_file("I/O operation on closed file")
        f = self._f
        fd = getattr(f.buffer.file if isinstance(f, TextFile) else f.file, "fd", None)
        if not isinstance(fd, int):
            raise UnsupportedFileOperation("fileno")
        return fd

    async def isatty(self) -> bool:
        """Whether the file is a terminal."""
        try:
            return os.isatty(self.fileno())
        except UnsupportedFileOperation:
            return False

    async def seekable(self) -> bool:
        """True (every file here is seekable); raises `ClosedFileError` if closed."""
        if self._f.closed:
            raise closed_file("I/O operation on closed file")
        return True

    async def writable(self) -> bool:
        """Whether writes are allowed; raises `ClosedFileError` if closed."""
        if self._f.closed:
            raise closed_file("I/O operation on closed file")
        return self._writable()

    def _writable(self) -> bool:
        f = self._f
        return f.buffer.writable if isinstance(f, TextFile) else f.writable

    def _readable(self) -> bool:
        if self._f.closed:
            raise closed_file("I/O operation on closed file")
        f = self._f
        return f.buffer.readable if isinstance(f, TextFile) else f.readable

    def __aiter__(self) -> AsyncIterator[Any]:
        return self  # type: ignore[return-value]

    async def __aenter__(self: F) -> F:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush and close; closing twice does nothing."""
        await self._run(self._f.close())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} mode={self.mode!r}>"


class AsyncBufferedFile(_AsyncFile):
    """A binary file (aiofiles' `AsyncBufferedIOBase`/`AsyncBufferedReader`), on a core
    `BufferedFile`. Every method raises what Python's buffered file objects raise."""

    __slots__ = ("_file",)

    def __init__(self, f: BufferedFile, io: IOBackend) -> None:
        super().__init__(f, io)
        self._file = f  # `_f`, typed: a compiled method call, not a generic one

    async def read(self, size: int | None = -1) -> bytes:
        """Read up to `size` bytes (all if negative or None)."""
        if size is not None and size > 0:
            # `_copying(size)` inline: the hottest call of the files saves a coroutine.
            copied = self._copied + size
            if copied > self._budget:
                await self._turn()
                copied = size
            self._copied = copied
        op = self._file.read(size)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: bytes = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def read1(self, size: int = -1) -> bytes:
        """Read up to `size` bytes with at most one raw read."""
        op = self._file.read1(size)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: bytes = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def readinto(self, buffer: Buffer) -> int:
        """Read into `buffer`; the count."""
        return await self._run(self._file.readinto(buffer))

    async def peek(self, size: int = 0) -> bytes:
        """The buffered bytes at the position, without consuming them."""
        return await self._run(self._file.peek(size))

    async def readline(self, size: int | None = -1) -> bytes:
        """One line (up to `size` bytes)."""
        op = self._file.readline(size)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: bytes = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def readlines(self, hint: int | None = -1) -> list[bytes]:
        """All lines, or lines until their total passes `hint`."""
        return await self._run(self._file.readlines(hint))

    async def write(self, data: Buffer) -> int:
        """Write `data` (buffered); its length."""
        op = self._file.write(data)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: int = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def writelines(self, lines: Iterable[Buffer]) -> None:
        """Write each line."""
        await self._run(self._file.writelines(lines))

    async def flush(self) -> None:
        """Write what is buffered (no fsync; see `fsync`)."""
        await self._run(self._file.flush())

    async def fsync(self) -> None:
        """Flush, then make the file's data durable."""
        await self._run(self._file.fsync())

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position; the new position."""
        op = self._file.seek(offset, whence)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: int = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def tell(self) -> int:
        """The position."""
        return self._file.tell()

    async def truncate(self, size: int | None = None) -> int:
        """Resize to `size` (the position if None); the new size."""
        return await self._run(self._file.truncate(size))

    def readable(self) -> bool:
        """Whether reads are allowed (synchronous, as in aiofiles' binary files)."""
        return self._readable()

    async def __anext__(self) -> bytes:
        op = self._file.readline(-1)
        line: bytes
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            line = op.value
        else:
            line = await self._run(op)
        if line:
            return line
        raise StopAsyncIteration


class AsyncTextFile(_AsyncFile):
    """A text file (aiofiles' `AsyncTextIOWrapper`), on a core `TextFile`. Every method
    raises what Python's text files raise; `tell()` returns CPython's cookies."""

    __slots__ = ("_buffer", "_file")

    def __init__(self, f: TextFile, io: IOBackend) -> None:
        super().__init__(f, io)
        self._file = f  # `_f`, typed: a compiled method call, not a generic one
        self._buffer: AsyncBufferedFile | None = None

    @property
    def encoding(self) -> str:
        """The encoding."""
        return self._file.encoding

    @property
    def errors(self) -> str:
        """The error handler name."""
        return self._file.errors

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        """The newlines seen (universal-newlines mode)."""
        return self._file.newlines

    @property
    def line_buffering(self) -> bool:
        """Whether a newline written flushes."""
        return self._file.line_buffering

    @property
    def buffer(self) -> AsyncBufferedFile:
        """The binary file under the text (sharing its position and its turn)."""
        if self._buffer is None:
            self._buffer = AsyncBufferedFile(self._file.buffer, self._io)
        return self._buffer

    async def read(self, size: int | None = -1) -> str:
        """Read up to `size` characters (all if negative or None)."""
        op = self._file.read(size)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: str = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def readline(self, size: int = -1) -> str:
        """One line (up to `size` characters)."""
        op = self._file.readline(size)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: str = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def readlines(self, hint: int | None = -1) -> list[str]:
        """All lines, or lines until their total passes `hint`."""
        return await self._run(self._file.readlines(hint))

    async def write(self, text: str) -> int:
        """Write `text`; its length."""
        op = self._file.write(text)
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            value: int = op.value  # mypy narrows `op` to `Ready[Any]`
            return value
        return await self._run(op)

    async def writelines(self, lines: Iterable[str]) -> None:
        """Write each line."""
        await self._run(self._file.writelines(lines))

    async def flush(self) -> None:
        """Write what is buffered (no fsync; see `fsync`)."""
        await self._run(self._file.flush())

    async def fsync(self) -> None:
        """Flush, then make the file's data durable."""
        await self._run(self._file.fsync())

    async def seek(self, cookie: int, whence: int = 0) -> int:
        """Go to a `tell()` cookie, or to the start/end."""
        return await self._run(self._file.seek(cookie, whence))

    async def tell(self) -> int:
        """The position as CPython's opaque cookie."""
        return await self._run(self._file.tell())

    async def truncate(self, size: int | None = None) -> int:
        """Flush and resize (at the buffer's position if None)."""
        return await self._run(self._file.truncate(size))

    async def readable(self) -> bool:
        """Whether reads are allowed (a coroutine, as in aiofiles' text files)."""
        return self._readable()

    async def __anext__(self) -> str:
        op = self._file.readline(-1)
        line: str
        if isinstance(op, Ready) and perf_counter() < self._turn_at:
            line = op.value
        else:
            line = await self._run(op)
        if line:
            return line
        raise StopAsyncIteration


class AsyncRawFile(_AsyncFile):
    """An unbuffered binary file (`buffering=0`; aiofiles' `AsyncFileIO`), on a core
    `RawFile`: one I/O per call, as Python's `FileIO`."""

    __slots__ = ("_file",)

    def __init__(self, f: RawFile, io: IOBackend) -> None:
        super().__init__(f, io)
        self._file = f  # `_f`, typed: a compiled method call, not a generic one

    async def read(self, size: int | None = -1) -> bytes:
        """One read of up to `size` bytes (all if negative or None)."""
        return await self._run(self._file.read(size))

    async def readall(self) -> bytes:
        """Read to the end."""
        return await self._run(self._file.readall())

    async def readinto(self, buffer: Buffer) -> int:
        """One read into `buffer`; the count."""
        return await self._run(self._file.readinto(buffer))

    async def readline(self, size: int | None = -1) -> bytes:
        """One line (up to `size` bytes)."""
        return await self._run(self._file.readline(size))

    async def readlines(self, hint: int | None = -1) -> list[bytes]:
        """All lines, or lines until their total passes `hint`."""
        return await self._run(self._file.readlines(hint))

    async def write(self, data: Buffer) -> int:
        """One write of all of `data`; its length."""
        return await self._run(self._file.write(data))

    async def writelines(self, lines: Iterable[Buffer]) -> None:
        """Write each line."""
        await self._run(self._file.writelines(lines))

    async def flush(self) -> None:
        """Nothing is buffered; checks the file is open."""
        self._file.flush()

    async def fsync(self) -> None:
        """Make the file's data durable."""
        await self._run(self._file.fsync())

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move the offset; the new offset."""
        return self._file.seek(offset, whence)

    async def tell(self) -> int:
        """The offset."""
        return self._file.tell()

    async def truncate(self, size: int | None = None) -> int:
        """Resize to `size` (the offset if None); the new size."""
        return await self._run(self._file.truncate(size))

    def readable(self) -> bool:
        """Whether reads are allowed (synchronous, as in aiofiles)."""
        return self._readable()

    async def __anext__(self) -> bytes:
        line = await self._run(self._file.readline(-1))
        if line:
            return line
        raise StopAsyncIteration
