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
from core.errors import StateMachineError
from core.files.buffered import BufferedFile
from core.files.mode import OpenOptions
from core.files.raw import RawFile
from core.files.text import TextFile
from core.io.backend import File, IOBackend
from core.result import IO, Done

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


class _OpenState(enum.Enum):
    START = "start"
    TRUNCATING = "truncating"
    DONE = "done"
    FAILED = "failed"


class OpenFile:
    """Open `options.path` on `io`; `Done(BufferedFile | TextFile | RawFile)` (a `RawFile`
    for `buffering=0`).

    Raises the backend's `CompletionError` (missing file, a directory, permissions, an
    existing file with "x"), a failed truncate's `CompletionError`, and `StateMachineError`
    if stepped after it finished or failed.
    """

    __slots__ = ("_c", "_file", "_state", "io", "options")

    def __init__(self, io: IOBackend, options: OpenOptions) -> None:
        self.io = io
        self.options = options
        self._state = _OpenState.START
        self._file: File | None = None
        self._c: Completion | None = None

    def step(self) -> Done[BufferedFile | TextFile | RawFile] | IO:
        """Open, truncate if asked, and build the file object."""
        pending = self._c
        if pending is not None and not pending.finished():
            return IO(pending)  # stepped again before the truncate finished
        try:
            match self._state:
                case _OpenState.START:
                    options = self.options
                    self._state = _OpenState.FAILED
                    file = self._file = self.io.open_file(options.path, options.flags)
                    if options.truncate and file.size() > 0:
                        c = self._c = Completion.new_trunc()
                        self._state = _OpenState.TRUNCATING
                        file.truncate(0, c)
                        if not c.finished():
                            return IO(c)
                    return self._build()
                case _OpenState.TRUNCATING:
                    return self._build()
                case _:
                    raise StateMachineError(f"OpenFile stepped in state {self._state.name}")
        except BaseException:
            self._fail()
            raise

    def abort(self, error: BaseException) -> None:
        """Give up: close the core file if it was opened."""
        self._fail()

    def _fail(self) -> None:
        if self._state is not _OpenState.DONE:
            self._state = _OpenState.FAILED
            if self._file is not None:
                self._file.close()
                self._file = None

    def _build(self) -> Done[BufferedFile | TextFile | RawFile]:
        file = self._file
        assert file is not None
        if self._c is not None:
            self._c.result()
        options = self.options
        position = file.size() if options.appending else 0
        self._state = _OpenState.DONE
        if options.buffering == 0:
            return Done(
                RawFile(
                    file,
                    name=options.name,
                    mode=options.raw_mode,
                    readable=options.readable,
                    writable=options.writable,
                    append=options.appending,
                    position=position,
                )
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
            return Done(buffered)
        assert options.encoding is not None
        return Done(
            TextFile(
                buffered,
                encoding=options.encoding,
                errors=options.errors or "strict",
                newline=options.newline,
                line_buffering=options.line_buffering,
                mode=options.mode,
            )
        )
