"""The I/O interfaces every backend implements (Turso `core/io/mod.rs`: `IO`, `File`).

Theory of operation:
- A `File` method takes a completion, submits the I/O and returns that same completion.
  Failures travel on two channels, as in Turso: a submission that cannot even start (a
  closed file, a read-only file written) raises `CompletionError` at once; a failure that
  arrives later finishes the completion with `completion.error(...)`.
- A read past the end of a file succeeds with the short count, as `pread(2)` does.
- `IOBackend.step()` makes progress on whatever is pending; a backend whose completions only
  progress there says so with `needs_stepping = True`, and drivers step it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self, TypeAlias, runtime_checkable

from core.completion import Completion

__all__ = ["Buffer", "File", "IOBackend", "OpenFlags", "StrPath"]

StrPath: TypeAlias = str | os.PathLike[str]
"""A file-system path."""

Buffer: TypeAlias = bytes | bytearray | memoryview
"""Bytes to write."""


class OpenFlags(enum.Flag):
    """How `IOBackend.open_file` opens a file."""

    NONE = 0
    """Open an existing file for reading and writing."""
    CREATE = enum.auto()
    """Create the file if it does not exist."""
    READ_ONLY = enum.auto()
    """Open for reading only; writes are refused at submission."""
    EXCLUSIVE = enum.auto()
    """With `CREATE`: fail with `EEXIST` if the file exists (`O_EXCL`, Python's "x" mode)."""
    APPEND = enum.auto()
    """Every write lands at the end of the file, whatever its offset (`O_APPEND`, Python's
    "a" mode); callers pass the end as the offset too, for backends that write at the offset."""


@runtime_checkable
class File(Protocol):
    """An open file. Every I/O method returns the completion it was given.

    Each I/O method raises `CompletionError` (kind `CLOSED`) if the file is closed, and
    `CompletionError` (kind `IO`, errno `EBADF`) for a write to a read-only file; later
    failures finish the completion with an error instead.
    """

    @property
    def path(self) -> str:
        """The path the file was opened with."""
        ...

    def pread(self, pos: int, c: Completion) -> Completion:
        """Read into `c.buffer` at offset `pos`; the result is the count (short at the end)."""
        ...

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        """Write all of `buffer` at `pos`; the result is the count written."""
        ...

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        """Write the buffers back to back from `pos`; the result is the total written.
        A failure of any part fails `c`."""
        ...

    def sync(self, c: Completion) -> Completion:
        """Make every completed write durable (fsync)."""
        ...

    def truncate(self, length: int, c: Completion) -> Completion:
        """Set the file's size to `length`."""
        ...

    def size(self) -> int:
        """The file's size in bytes. Raises `CompletionError` if closed or on an OS error."""
        ...

    def close(self) -> None:
        """Close the file; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class IOBackend(Protocol):
    """A source of files and the engine that finishes their completions."""

    needs_stepping: bool
    """True where completions only progress when `step()` is called."""

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> File:
        """Open `path`. Raises `CompletionError` (kind `IO` with errno and path, or `CLOSED`)."""
        ...

    def remove_file(self, path: StrPath) -> None:
        """Delete `path`. Raises `CompletionError` (kind `IO` with errno and path, or `CLOSED`)."""
        ...

    def step(self) -> int:
        """Make progress on pending I/O; return how many completions it finished."""
        ...

    def wait_for_completion(self, c: Completion) -> None:
        """Return once `c` has finished; raise its `CompletionError` if it failed.

        Raises `IOResultError` where waiting cannot work (a completion nothing will finish, or
        a backend that needs an event loop)."""
        ...

    def drain_completions(self, cs: Iterable[Completion]) -> None:
        """Wait for every completion in `cs` to finish, failed or not; raises nothing for
        failed ones."""
        ...

    def cancel(self, cs: Iterable[Completion]) -> None:
        """Abort every unfinished completion in `cs`."""
        ...

    def now(self) -> float:
        """Monotonic time in seconds (virtual in the simulator)."""
        ...

    def close(self) -> None:
        """Close the backend and every file it opened; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
