"""What every backend and file shares: closed-state checks, context managers, waiting by
stepping, and `pwritev` built from `pwrite`s whose errors reach the parent."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self

from mypy_extensions import mypyc_attr

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError, ErrorKind, IOResultError
from core.io.backend import Buffer, StrPath

__all__ = ["BackendBase", "FileBase", "pwritev_as_group", "read_buffer"]


@mypyc_attr(allow_interpreted_subclasses=True)
class FileBase:
    """Closed and read-only checks and context-manager use for a `File`."""

    __slots__ = ("_closed", "_path", "_read_only")

    def __init__(self, path: StrPath, read_only: bool) -> None:
        self._path = os.fspath(path)
        self._read_only = read_only
        self._closed = False

    @property
    def path(self) -> str:
        """The path the file was opened with."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once `close()` has run."""
        return self._closed

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise CompletionError(ErrorKind.CLOSED, f"{what} on a closed file", path=self._path)

    def _check_writable(self, what: str) -> None:
        self._check_open(what)
        if self._read_only:
            raise CompletionError(
                ErrorKind.IO,
                f"{what} on a file opened read-only",
                errno=errno.EBADF,
                path=self._path,
            )

    def close(self) -> None:
        """Close the file; idempotent."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Free what the file holds; called once by `close()`."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self._path!r} {state}>"


def read_buffer(c: Completion) -> bytearray | memoryview:
    """The buffer a read completion fills. Raises `IOResultError` for a completion
    without one (not made by `Completion.new_read`)."""
    buffer = c.buffer
    if buffer is None:
        raise IOResultError(f"pread needs a read completion with a buffer, got {c!r}")
    return buffer


@mypyc_attr(allow_interpreted_subclasses=True)
class BackendBase:
    """Closed checks, context-manager use and the waiting helpers of an `IOBackend`.

    `wait_for_completion` steps the backend until the completion finishes; a backend whose
    `step()` finishes nothing while the completion is still pending would wait forever, so
    it raises `IOResultError` instead of hanging.
    """

    needs_stepping: bool = False

    def __init__(self) -> None:
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close()` has run."""
        return self._closed

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise CompletionError(ErrorKind.CLOSED, f"{what} on a closed {type(self).__name__}")

    def step(self) -> int:
        """Make progress on pending I/O; return how many completions it finished."""
        return 0

    def wait_for_completion(self, c: Completion) -> None:
        """Step until `c` finishes; raise its error if it failed.

        Raises `IOResultError` if nothing pending here can finish it.
        """
        while not c.finished():
            if self.step() == 0 and not c.finished():
                raise IOResultError(
                    f"{c!r} can never finish on {type(self).__name__}: nothing pending here "
                    "would finish it (was it submitted to another backend?)"
                )
        error = c.get_error()
        if error is not None:
            raise error

    def drain_completions(self, cs: Iterable[Completion]) -> None:
        """Wait for every completion in `cs`, failed or not."""
        for c in cs:
            try:
                self.wait_for_completion(c)
            except CompletionError:
                pass

    def cancel(self, cs: Iterable[Completion]) -> None:
        """Abort every unfinished completion in `cs`."""
        for c in cs:
            if not c.finished():
                c.abort()

    def now(self) -> float:
        """Monotonic time in seconds."""
        return time.monotonic()

    def close(self) -> None:
        """Close the backend; idempotent."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _PwriteFile(Protocol):
    """The one method `pwritev_as_group` needs."""

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion: ...


def pwritev_as_group(
    file: _PwriteFile, pos: int, buffers: Sequence[Buffer], c: Completion
) -> Completion:
    """Implement `pwritev` as one `pwrite` per buffer, joined in a `CompletionGroup`.

    Unlike Turso's default `pwritev`, a failed part fails `c` with that part's error, and
    aborting `c` cancels the parts still pending. A part that raises at submission cancels
    the parts already submitted and propagates.
    """
    group = CompletionGroup()
    c._group = group  # aborting c cancels the parts
    offset = pos
    try:
        for buffer in buffers:
            part = Completion.new_write()
            group.add(part)
            file.pwrite(offset, buffer, part)
            offset += len(buffer)
    except BaseException:
        group.cancel()
        raise
    group.build().add_done_callback(lambda g: _relay(g, c))
    return c


def _relay(source: Completion, target: Completion) -> None:
    error = source.get_error()
    if error is not None:
        target.error(error)
    else:
        target.complete(source.result())
