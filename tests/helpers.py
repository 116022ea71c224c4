"""Scripted fakes for stepping the core by hand (in the spirit of h11's tests/helpers.py)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from core import IO, Completion, CompletionError, Done
from core.io import Buffer, UringIO
from core.io.common import BackendBase, FileBase

NEEDS_URING = pytest.mark.skipif(not UringIO.available(), reason="io_uring is refused here")
"""Skip a test of `UringIO` where the kernel (or a container's seccomp) refuses io_uring."""

URING = pytest.param(UringIO, marks=NEEDS_URING, id="UringIO")
"""`UringIO` as one more parameter of a test over backend classes."""


def exit_code_of_fork_child(child: Callable[[], int]) -> int:
    """Fork, run `child()` in the child and end it with the code it returns (3 if it
    raised: the child never returns into pytest); the child's exit code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = child()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@dataclass
class Submitted:
    """One I/O a `ScriptedFile` received and left pending for the test to finish."""

    op: str
    pos: int
    completion: Completion
    data: bytes = b""


class ScriptedFile(FileBase):
    """A file whose I/O never finishes by itself: the test finishes each completion."""

    def __init__(self, path: str = "scripted", size: int = 0) -> None:
        super().__init__(path, read_only=False)
        self.submitted: list[Submitted] = []
        self._size = size

    def pread(self, pos: int, c: Completion) -> Completion:
        self._check_open("pread")
        self.submitted.append(Submitted("pread", pos, c))
        return c

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        self._check_writable("pwrite")
        self.submitted.append(Submitted("pwrite", pos, c, bytes(buffer)))
        return c

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        self._check_writable("pwritev")
        self.submitted.append(Submitted("pwritev", pos, c, b"".join(bytes(b) for b in buffers)))
        return c

    def sync(self, c: Completion) -> Completion:
        self._check_open("sync")
        self.submitted.append(Submitted("sync", 0, c))
        return c

    def truncate(self, length: int, c: Completion) -> Completion:
        self._check_writable("truncate")
        self.submitted.append(Submitted("truncate", length, c))
        return c

    def size(self) -> int:
        self._check_open("size")
        return self._size

    def pending(self) -> list[Submitted]:
        return [s for s in self.submitted if not s.completion.finished()]


class NullBackend(BackendBase):
    """A backend that finishes nothing: waiting on it must fail loudly, not hang."""


@dataclass
class Counting:
    """Counts how often an operation's `abort` ran and with what."""

    aborts: list[BaseException] = field(default_factory=list)

    def abort(self, error: BaseException) -> None:
        self.aborts.append(error)


def step_to_done(op: object, *, finish: object = None, limit: int = 10_000) -> object:
    """Step `op` by hand, finishing each yielded completion with `finish(c)` (or as-is if
    already finished); return the final value. Fails the test after `limit` steps."""
    step = op.step  # type: ignore[attr-defined]
    for _ in range(limit):
        result = step()
        if isinstance(result, Done):
            return result.value
        assert isinstance(result, IO)
        if not result.completion.finished():
            assert finish is not None, f"{op!r} yielded an unfinished {result.completion!r}"
            finish(result.completion)  # type: ignore[operator]
    raise AssertionError(f"{op!r} did not finish within {limit} steps")


def eio(path: str = "scripted", offset: int | None = None) -> CompletionError:
    from errno import EIO

    from core import ErrorKind

    return CompletionError(ErrorKind.IO, "injected", errno=EIO, path=path, offset=offset)
