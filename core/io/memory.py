"""In-memory backends (Turso `core/io/memory.rs` and `core/io/memory_yield.rs`).

`MemoryIO` completes every I/O inline, during the call that submits it. `MemoryYieldIO`
defers every I/O to the next `step()` of the backend, first in, first out, so that every
I/O point of an operation really yields: the cheapest way to shake out re-entrancy bugs.
Both keep files as `bytearray`s in a dict; a removed file stays readable through the
handles already open, as an unlinked inode does.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeAlias

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.io.backend import Buffer, OpenFlags, StrPath
from core.io.common import BackendBase, FileBase, pwritev_as_group

__all__ = ["MemoryFile", "MemoryIO", "MemoryYieldIO"]

_Action: TypeAlias = Callable[..., int]


@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryFile(FileBase):
    """A file of a `MemoryIO` or `MemoryYieldIO`."""

    __slots__ = ("_data", "_io")

    def __init__(self, io: MemoryIO, path: str, data: bytearray, read_only: bool) -> None:
        super().__init__(path, read_only)
        self._io = io
        self._data = data

    def pread(self, pos: int, c: Completion) -> Completion:
        self._check_open("pread")
        _check_offset(pos, "pread", self._path)
        return self._io._submit(c, self._do_read, pos, c)

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        self._check_writable("pwrite")
        _check_offset(pos, "pwrite", self._path)
        return self._io._submit(c, self._do_write, pos, bytes(buffer))

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        self._check_writable("pwritev")
        _check_offset(pos, "pwritev", self._path)
        return pwritev_as_group(self, pos, buffers, c)

    def sync(self, c: Completion) -> Completion:
        self._check_open("sync")
        return self._io._submit(c, _zero)

    def truncate(self, length: int, c: Completion) -> Completion:
        self._check_writable("truncate")
        _check_offset(length, "truncate", self._path)
        return self._io._submit(c, self._do_truncate, length)

    def size(self) -> int:
        self._check_open("size")
        return len(self._data)

    def _do_read(self, pos: int, c: Completion) -> int:
        chunk = self._data[pos : pos + len(c.buffer)]  # type: ignore[arg-type]
        c.buffer[: len(chunk)] = chunk  # type: ignore[index]
        return len(chunk)

    def _do_write(self, pos: int, data: bytes) -> int:
        end = pos + len(data)
        if end > len(self._data):
            self._data.extend(bytes(end - len(self._data)))
        self._data[pos:end] = data
        return len(data)

    def _do_truncate(self, length: int) -> int:
        if length < len(self._data):
            del self._data[length:]
        else:
            self._data.extend(bytes(length - len(self._data)))
        return 0

    def _release(self) -> None:
        self._io._open_files.discard(self)


def _zero() -> int:
    return 0


def _check_offset(pos: int, what: str, path: str) -> None:
    if pos < 0:
        raise CompletionError(
            ErrorKind.IO, f"{what} at a negative offset", errno=errno.EINVAL, path=path, offset=pos
        )


@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryIO(BackendBase):
    """Files in memory; every completion finishes inline, during its submission."""

    needs_stepping = False

    def __init__(self) -> None:
        super().__init__()
        self._files: dict[str, bytearray] = {}
        self._open_files: set[MemoryFile] = set()

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> MemoryFile:
        """Open (or with `OpenFlags.CREATE`, create) an in-memory file.

        Raises `CompletionError`: kind `IO` with `ENOENT` for a missing file without
        `CREATE`, with `EEXIST` for an existing one with `EXCLUSIVE`; kind `CLOSED` if the
        backend is closed. `APPEND` changes nothing here: writes land at the offset given.
        """
        self._check_open("open_file")
        name = os.fspath(path)
        data = self._files.get(name)
        if data is not None and OpenFlags.EXCLUSIVE in flags:
            raise CompletionError(
                ErrorKind.IO, "open failed: file exists", errno=errno.EEXIST, path=name
            )
        if data is None:
            if OpenFlags.CREATE not in flags:
                raise CompletionError(
                    ErrorKind.IO, "open failed: no such file", errno=errno.ENOENT, path=name
                )
            data = self._files[name] = bytearray()
        file = MemoryFile(self, name, data, OpenFlags.READ_ONLY in flags)
        self._open_files.add(file)
        return file

    def remove_file(self, path: StrPath) -> None:
        """Remove `path`; open handles keep their data.

        Raises `CompletionError` (`ENOENT`) if missing, or kind `CLOSED`.
        """
        self._check_open("remove_file")
        name = os.fspath(path)
        if self._files.pop(name, None) is None:
            raise CompletionError(
                ErrorKind.IO, "remove failed: no such file", errno=errno.ENOENT, path=name
            )

    def file_contents(self, path: StrPath) -> bytes:
        """The bytes of `path` now (for tests). Raises `KeyError` if there is no such file."""
        return bytes(self._files[os.fspath(path)])

    def close(self) -> None:
        """Close every open file and the backend; idempotent."""
        for file in list(self._open_files):
            file.close()
        super().close()

    def _submit(self, c: Completion, action: _Action, *args: object) -> Completion:
        _run(c, action, args)
        return c


def _run(c: Completion, action: _Action, args: tuple[object, ...]) -> None:
    if c.finished():  # aborted while queued: drop it, as a late result is dropped
        return
    try:
        result = action(*args)
    except CompletionError as exc:
        c.error(exc)
    else:
        c.complete(result)


class MemoryYieldIO(MemoryIO):
    """Like `MemoryIO`, but every I/O waits for the next `step()` (first in, first out).

    `step()` takes a snapshot of the queue before running anything, so I/O submitted by a
    completion's callback waits for the step after.
    """

    needs_stepping = True

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[tuple[Completion, _Action, tuple[object, ...]]] = deque()

    def pending(self) -> int:
        """How many I/Os wait for the next `step()`."""
        return len(self._queue)

    def step(self) -> int:
        """Run every I/O queued before this call; return how many it ran."""
        batch = list(self._queue)
        self._queue.clear()
        for c, action, args in batch:
            _run(c, action, args)
        return len(batch)

    def close(self) -> None:
        """Abort what is queued, then close as `MemoryIO` does."""
        batch = list(self._queue)
        self._queue.clear()
        for c, _action, _args in batch:
            c.abort()
        super().close()

    def _submit(self, c: Completion, action: _Action, *args: object) -> Completion:
        self._queue.append((c, action, args))
        return c
