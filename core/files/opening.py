"""Opening a file: the operation behind `open()`.

Theory of operation:
- `OpenFile` is an operation: it opens the core `File` through the backend (synchronous, as
  `IOBackend.open_file` is), empties it for the "w" modes with one `File.truncate` I/O (only
  when it is not already empty, so creating a file costs no I/O), and wraps it in a
  `BufferedFile`, plus a `TextFile` in text mode (or a `RawFile` when unbuffered).
- A failure after the core file was opened closes it before the error propagates, and so
  does `abort`: an open that did not finish leaves nothing open behind.
- The default buffer size is CPython's: the file system's block size (`st_blksize`) when the
  core file exposes a descriptor (`fd`), else `io.DEFAULT_BUFFER_SIZE`.
- Errors from the backend are `CompletionError`s with errno and path; `core.files.to_os_error`
  turns them into the `OSError` subclass Python raises (`FileNotFoundError`...).
"""

from __future__ import annotations

import enum
import io
import os

from core.completion import Completion
from core.files.buffered import BufferedFile
from core.files.mode import OpenOptions
from core.files.raw import RawFile
from core.files.text import TextFile
from core.io.backend import File, IOBackend
from core.result import IO, Done
from core.state_machine import Machine, TransitionResult

__all__ = ["OpenFile", "default_buffer_size"]


def default_buffer_size(file: File) -> int:
    """CPython's choice for `buffering=-1`: the block size of the file's file system if the
    core file has a descriptor and it is more than 1, else `io.DEFAULT_BUFFER_SIZE`."""
    fd = getattr(file, "fd", None)
    if isinstance(fd, int):
        try:
            size = os.fstat(fd).st_blksize
        except OSError:
            return io.DEFAULT_BUFFER_SIZE
        if size > 1:
            return size
    return io.DEFAULT_BUFFER_SIZE


class OpenState(enum.Enum):
    """The states of an open: open the core file (and truncate it), then build the object."""

    START = "start"
    TRUNCATING = "truncating"


class OpenFile(Machine["BufferedFile | TextFile | RawFile"]):
    """Open `options.path` on `io`; `Done(BufferedFile | TextFile | RawFile)` (a `RawFile`
    for `buffering=0`).

    Raises the backend's `CompletionError` (missing file, a directory, permissions, an
    existing file with "x"), a failed truncate's `CompletionError`, and `StateMachineError`
    if stepped after it finished or failed. The core file is closed again if the open does
    not finish (an error, a cancellation).
    """

    __slots__ = ("_c", "_file", "_state", "io", "options")

    def __init__(self, io: IOBackend, options: OpenOptions) -> None:
        super().__init__()
        self.io = io
        self.options = options
        self._state = OpenState.START
        self._file: File | None = None
        self._c: Completion | None = None

    def _advance(self) -> TransitionResult[BufferedFile | TextFile | RawFile]:
        match self._state:
            case OpenState.START:
                options = self.options
                file = self._file = self.io.open_file(options.path, options.flags)
                if options.truncate and file.size() > 0:
                    c = self._c = Completion.new_trunc()
                    self._state = OpenState.TRUNCATING
                    file.truncate(0, c)
                    if not c.finished():
                        return IO(c)
                return self._build()
            case OpenState.TRUNCATING:
                return self._build()

    def _finalize(self) -> None:
        """Close the core file unless it went into the file object (an open that failed)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _build(self) -> Done[BufferedFile | TextFile | RawFile]:
        file = self._file
        assert file is not None
        if self._c is not None:
            self._c.result()
        built = self._wrap(file)
        self._file = None  # the file object owns it from here
        return Done(built)

    def _wrap(self, file: File) -> BufferedFile | TextFile | RawFile:
        options = self.options
        position = file.size() if options.appending else 0
        if options.buffering == 0:
            return RawFile(
                file,
                name=options.name,
                mode=options.raw_mode,
                readable=options.readable,
                writable=options.writable,
                append=options.appending,
                position=position,
            )
        buffer_size = options.buffering if options.buffering > 1 else default_buffer_size(file)
        buffered = BufferedFile(
            file,
            name=options.name,
            mode=options.raw_mode,
            readable=options.readable,
            writable=options.writable,
            append=options.appending,
            buffer_size=buffer_size,
            position=position,
        )
        if options.binary:
            return buffered
        assert options.encoding is not None
        return TextFile(
            buffered,
            encoding=options.encoding,
            errors=options.errors or "strict",
            newline=options.newline,
            line_buffering=options.line_buffering,
            mode=options.mode,
        )
