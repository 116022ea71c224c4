"""The error hierarchy: one base class, structured fields, messages that name them.

Every exception this project raises on purpose derives from `IOResultError`, so an
application can catch the whole family in one clause. `CompletionError` is the error an
I/O completion finishes with (Turso's `CompletionError`, `core/io/completions.rs`); its
fields are structured so that code can branch on them, and `str()` names each one known.
`InternalError` marks a broken invariant, the "cannot happen" of trio's `TrioInternalError`.
"""

from __future__ import annotations

import enum
import errno as errno_module
import os

__all__ = [
    "CompletionError",
    "ErrorKind",
    "IOResultError",
    "InternalError",
    "StateMachineError",
]


class IOResultError(Exception):
    """Base of every error this project raises."""


class InternalError(IOResultError):
    """An invariant of the library itself was broken: a bug here, not in the caller."""


class StateMachineError(IOResultError):
    """A state machine was stepped when it must not be: finished, or failed before."""


class ErrorKind(enum.Enum):
    """Why a completion failed."""

    IO = "I/O error"
    """The operating system (or a simulated disk) reported an error; see `errno`."""
    ABORTED = "aborted"
    """The completion was abandoned: cancelled, timed out, or its group was cancelled."""
    SHORT_READ = "short read"
    """Fewer bytes were read than the caller required."""
    SHORT_WRITE = "short write"
    """Fewer bytes were written than were submitted."""
    CHECKSUM_MISMATCH = "checksum mismatch"
    """Data read back does not match its checksum."""
    CALLBACK = "callback raised"
    """The completion's own callback raised; the exception is the `__cause__`."""
    CLOSED = "closed"
    """The file or backend was already closed."""


class CompletionError(IOResultError):
    """The outcome of a failed completion.

    Construct with the kind and an optional message, plus whatever is known of where it
    happened; `str()` names every field that is set, e.g.
    ``I/O error: pread failed (path='db.sqlite', offset=4096, errno=5 EIO)``.
    """

    kind: ErrorKind
    message: str
    errno: int | None
    path: str | None
    offset: int | None
    expected: int | None
    actual: int | None

    def __init__(
        self,
        kind: ErrorKind,
        message: str = "",
        *,
        errno: int | None = None,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
        expected: int | None = None,
        actual: int | None = None,
    ) -> None:
        self.kind = kind
        self.message = message
        self.errno = errno
        self.path = None if path is None else os.fspath(path)
        self.offset = offset
        self.expected = expected
        self.actual = actual
        super().__init__(str(self))

    @classmethod
    def from_os_error(
        cls, exc: OSError, what: str, *, path: str | None = None, offset: int | None = None
    ) -> CompletionError:
        """Translate an `OSError` at the system-call boundary, keeping errno and path."""
        err = cls(
            ErrorKind.IO,
            f"{what} failed: {exc.strerror or exc}",
            errno=exc.errno,
            path=path if path is not None else exc.filename,
            offset=offset,
        )
        err.__cause__ = exc
        return err

    def __str__(self) -> str:
        head = self.kind.value if not self.message else f"{self.kind.value}: {self.message}"
        details = []
        if self.path is not None:
            details.append(f"path={self.path!r}")
        if self.offset is not None:
            details.append(f"offset={self.offset}")
        if self.errno is not None:
            name = errno_module.errorcode.get(self.errno, "?")
            details.append(f"errno={self.errno} {name}")
        if self.expected is not None:
            details.append(f"expected={self.expected}")
        if self.actual is not None:
            details.append(f"actual={self.actual}")
        return f"{head} ({', '.join(details)})" if details else head

    def __repr__(self) -> str:
        return f"CompletionError({self.kind.name}, {str(self)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions pickle through their args; ours are keyword fields.
        return (
            _rebuild_completion_error,
            (
                self.kind,
                self.message,
                self.errno,
                self.path,
                self.offset,
                self.expected,
                self.actual,
            ),
        )


def _rebuild_completion_error(
    kind: ErrorKind,
    message: str,
    errno: int | None,
    path: str | None,
    offset: int | None,
    expected: int | None,
    actual: int | None,
) -> CompletionError:
    return CompletionError(
        kind,
        message,
        errno=errno,
        path=path,
        offset=offset,
        expected=expected,
        actual=actual,
    )
