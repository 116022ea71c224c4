"""Real files through blocking system calls, completed inline (Turso `core/io/unix.rs`).

Every call runs to the end before it returns: a read loops until the buffer is full or the
file ends (the short count is a success, as `pread(2)` gives), a write loops over partial
writes. `EINTR` needs no loop of ours: since PEP 475 the `os` functions retry it themselves.
An `OSError` becomes a `CompletionError` carrying the errno, path and offset. This backend
needs POSIX (`preadv`, `pwritev`); on Windows it refuses to start with a clear error.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.errors import CompletionError, ErrorKind, IOResultError
from core.io.backend import Buffer, OpenFlags, StrPath
from core.io.common import BackendBase, FileBase, read_buffer

__all__ = [
    "UnixFile",
    "UnixIO",
    "fstat_size",
    "ftruncate_now",
    "open_fd",
    "open_flags_to_os",
    "unlink_path",
]


def open_flags_to_os(flags: OpenFlags) -> int:
    """The `os.open` flags for `flags`: read-write unless `READ_ONLY`, `O_CREAT` for `CREATE`,
    `O_EXCL` for `EXCLUSIVE`, `O_APPEND` for `APPEND`."""
    os_flags = os.O_RDONLY if OpenFlags.READ_ONLY in flags else os.O_RDWR
    if OpenFlags.CREATE in flags:
        os_flags |= os.O_CREAT
    if OpenFlags.EXCLUSIVE in flags:
        os_flags |= os.O_EXCL
    if OpenFlags.APPEND in flags:
        os_flags |= os.O_APPEND
    return os_flags | getattr(os, "O_CLOEXEC", 0)


def open_fd(name: str, flags: OpenFlags) -> int:
    """`open(2)` `name` for `flags` and return the descriptor; a directory is refused.

    Raises `CompletionError` (kind `IO`) with the errno and path: `ENOENT`, `EACCES`,
    `EISDIR` (also for a directory opened read-only, which `open(2)` would allow), ...
    """
    try:
        fd = os.open(name, open_flags_to_os(flags), 0o644)
    except OSError as exc:
        raise CompletionError.from_os_error(exc, "open", path=name) from exc
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    except OSError as exc:
        os.close(fd)
        raise CompletionError.from_os_error(exc, "fstat", path=name) from exc
    if is_dir:
        os.close(fd)
        raise CompletionError(
            ErrorKind.IO, "open failed: is a directory", errno=errno.EISDIR, path=name
        )
    return fd


def ftruncate_now(fd: int, path: str, length: int, c: Completion) -> Completion:
    """`ftruncate(2)` `fd` to `length` and finish `c`: with 0, or with the error naming the
    errno, path and length."""
    try:
        os.ftruncate(fd, length)
    except OSError as exc:
        c.error(CompletionError.from_os_error(exc, "ftruncate", path=path, offset=length))
    else:
        c.complete(0)
    return c


def fstat_size(fd: int, path: str) -> int:
    """The size of the open file `fd`. Raises `CompletionError` with the errno and path."""
    try:
        return os.fstat(fd).st_size
    except OSError as exc:
        raise CompletionError.from_os_error(exc, "fstat", path=path) from exc


def unlink_path(name: str) -> None:
    """`unlink(2)` `name`. Raises `CompletionError` with the errno and path."""
    try:
        os.unlink(name)
    except OSError as exc:
        raise CompletionError.from_os_error(exc, "unlink", path=name) from exc


@mypyc_attr(allow_interpreted_subclasses=True)
class UnixFile(FileBase):
    """A file opened by `UnixIO`; each method makes its system calls before returning."""

    __slots__ = ("_backend", "fd")

    def __init__(self, backend: UnixIO, path: str, fd: int, read_only: bool) -> None:
        super().__init__(path, read_only)
        self._backend = backend
        self.fd = fd

    def pread(self, pos: int, c: Completion) -> Completion:
        if self._closed:
            self._check_open("pread")
        length = c.takes_bytes()
        try:
            if length >= 0:  # the read's buffer is ours to pick: the bytes `pread` returns
                data = pread_fully(self.fd, length, pos)
            else:
                count = read_fully(self.fd, read_buffer(c), pos)
        except OSError as exc:
            c.error(CompletionError.from_os_error(exc, "pread", path=self._path, offset=pos))
            return c
        if length >= 0:
            c.complete_with_bytes(data)
        else:
            c.complete(count)
        return c

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        return self.pwritev(pos, (buffer,), c)

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        self._check_writable("pwritev")
        try:
            count = write_fully(self.fd, buffers, pos)
        except OSError as exc:
            c.error(CompletionError.from_os_error(exc, "pwrite", path=self._path, offset=pos))
        else:
            c.complete(count)
        return c

    def sync(self, c: Completion) -> Completion:
        self._check_open("sync")
        try:
            os.fsync(self.fd)
        except OSError as exc:
            c.error(CompletionError.from_os_error(exc, "fsync", path=self._path))
        else:
            c.complete(0)
        return c

    def truncate(self, length: int, c: Completion) -> Completion:
        self._check_writable("truncate")
        return ftruncate_now(self.fd, self._path, length, c)

    def size(self) -> int:
        self._check_open("size")
        return fstat_size(self.fd, self._path)

    def _release(self) -> None:
        self._backend._open_files.discard(self)
        os.close(self.fd)


def read_fully(fd: int, buffer: bytearray | memoryview, pos: int) -> int:
    """`preadv` into `buffer` until it is full or the file ends; return the count.

    Raises `OSError` from the system call.
    """
    done = os.preadv(fd, [buffer], pos)
    total = len(buffer)
    if done in (total, 0):
        return done
    view = memoryview(buffer)  # rare: a short read before the end; read the rest
    while done < total:
        got = os.preadv(fd, [view[done:]], pos + done)
        if got == 0:
            break
        done += got
    return done


def pread_fully(fd: int, length: int, pos: int) -> bytes:
    """`pread` `length` bytes at `pos` until they are all read or the file ends.

    Raises `OSError` from the system call.
    """
    data = os.pread(fd, length, pos)
    done = len(data)
    if done in (length, 0):
        return data
    parts = [data]  # rare: a short read before the end; read the rest
    while done < length:
        more = os.pread(fd, length - done, pos + done)
        if not more:
            break
        parts.append(more)
        done += len(more)
    return b"".join(parts)


def write_fully(fd: int, buffers: Sequence[Buffer], pos: int) -> int:
    """`pwritev` all of `buffers` at `pos`, resubmitting the rest after a partial write.

    Raises `OSError` from the system call, or with `EIO` if the kernel accepts nothing.
    """
    views = [memoryview(b) for b in buffers if len(b)]
    written = 0
    while views:
        n = os.pwritev(fd, views, pos + written)
        if n == 0:
            raise OSError(errno.EIO, "pwritev wrote nothing")
        written += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    return written


@mypyc_attr(allow_interpreted_subclasses=True)
class UnixIO(BackendBase):
    """Real files with blocking system calls; every completion finishes inline.

    Raises `IOResultError` at construction on a system without POSIX file calls.
    """

    needs_stepping = False

    def __init__(self) -> None:
        if not hasattr(os, "preadv"):
            raise IOResultError(
                "UnixIO needs POSIX preadv/pwritev (Linux or macOS); this platform has none"
            )
        super().__init__()
        self._open_files: set[UnixFile] = set()

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> UnixFile:
        """Open `path`. Raises `CompletionError` with the errno and path (e.g. `ENOENT`,
        `EACCES`, `EISDIR`), or kind `CLOSED` if the backend is closed."""
        self._check_open("open_file")
        name = os.fspath(path)
        file = UnixFile(self, name, open_fd(name, flags), OpenFlags.READ_ONLY in flags)
        self._open_files.add(file)
        return file

    def remove_file(self, path: StrPath) -> None:
        """Unlink `path`. Raises `CompletionError` with errno and path."""
        self._check_open("remove_file")
        unlink_path(os.fspath(path))

    def close(self) -> None:
        """Close every file this backend opened; idempotent."""
        for file in list(self._open_files):
            file.close()
        super().close()
