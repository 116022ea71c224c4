"""The errors of Python-compatible file objects, and the translation of I/O errors to `OSError`.

Theory of operation:
- Code written against Python's file objects catches `ValueError` for a closed file,
  `io.UnsupportedOperation` for a call the mode does not allow and `OSError` for what the
  system refused. Our file objects must raise exceptions those clauses catch, and each is also
  an `IOResultError` so that one clause can catch everything this project raises: hence the
  two-parent classes below. Their messages are CPython's, word for word.
- A completion that failed carries a `CompletionError` with the errno and path. Where file
  objects meet callers that expect Python's exceptions (the `bridge.open` boundary), that error
  becomes the very `OSError` subclass Python would raise for the errno (`FileNotFoundError`
  for `ENOENT`, `IsADirectoryError` for `EISDIR`, ...), with errno, message and file name, and
  the `CompletionError` as its cause. `to_os_error` does that translation; nothing else does.
"""

from __future__ import annotations

import errno as errno_module
import io
import os

from core.errors import CompletionError, ErrorKind, IOResultError

__all__ = [
    "ClosedFileError",
    "FileOSError",
    "UnsupportedFileOperation",
    "closed_file",
    "invalid_argument",
    "to_os_error",
]


class ClosedFileError(IOResultError, ValueError):
    """An operation on a closed file (Python raises `ValueError` for it)."""


class UnsupportedFileOperation(IOResultError, io.UnsupportedOperation):
    """A call the file's mode does not allow, e.g. reading a file opened for writing only."""


class FileOSError(IOResultError, OSError):
    """An `OSError` we raise ourselves where the system call would have failed (e.g. `EINVAL`
    for a seek to a negative position). Construct as `OSError`: `FileOSError(errno, message)`."""


def closed_file(message: str = "I/O operation on closed file.") -> ClosedFileError:
    """The error for using a closed file, with CPython's message for the call."""
    return ClosedFileError(message)


def invalid_argument() -> FileOSError:
    """`[Errno 22] Invalid argument`, as `lseek` or `ftruncate` reports a negative offset."""
    return FileOSError(errno_module.EINVAL, os.strerror(errno_module.EINVAL))


def to_os_error(error: CompletionError, filename: object = None) -> OSError:
    """The `OSError` Python would raise for `error`, with `error` as its `__cause__`.

    An error with an errno becomes `OSError(errno, strerror, filename)`, which Python turns into
    the matching subclass (`FileNotFoundError` for `ENOENT`...). Pass the name for errors of
    `open()`; Python reports none for the reads and writes of an open file. An error without
    an errno (a short write, an abort) becomes a plain `OSError` whose message names its kind.
    """
    if error.errno is not None:
        if filename is None:
            exc = OSError(error.errno, os.strerror(error.errno))
        else:
            exc = OSError(error.errno, os.strerror(error.errno), filename)
    elif error.kind is ErrorKind.CLOSED:
        exc = OSError(errno_module.EBADF, os.strerror(errno_module.EBADF))
    else:
        exc = OSError(str(error))
    exc.__cause__ = error
    return exc
