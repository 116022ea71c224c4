"""Writing a list of buffers with one `pwritev`, then making it durable with `sync`."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from core.completion import Completion
from core.errors import CompletionError, ErrorKind, StateMachineError
from core.io.backend import Buffer, File
from core.result import IO, Done

__all__ = ["WriteBuffers"]


class _WriteState(enum.Enum):
    START = "start"
    WRITING = "writing"
    SYNCING = "syncing"
    DONE = "done"
    FAILED = "failed"


class WriteBuffers:
    """Write `buffers` back to back from `offset` with one `pwritev`, then `sync` unless
    `sync=False`; `Done(bytes_written)`.

    A write that lands fewer bytes than submitted fails with `ErrorKind.SHORT_WRITE`.
    """

    __slots__ = ("_buffers", "_completion", "_expected", "_state", "_sync", "file", "offset")

    def __init__(
        self, file: File, offset: int, buffers: Sequence[Buffer], *, sync: bool = True
    ) -> None:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self.file = file
        self.offset = offset
        self._buffers = list(buffers)
        self._expected = sum(len(b) for b in self._buffers)
        self._sync = sync
        self._state = _WriteState.START
        self._completion: Completion | None = None

    def step(self) -> Done[int] | IO:
        """Advance: write, then sync. Raises `StateMachineError` if stepped after it
        finished or failed, and the write's or sync's `CompletionError` if one failed."""
        pending = self._completion
        if pending is not None and not pending.finished():
            return IO(pending)  # re-entered before the I/O finished: wait on the same one
        while True:
            match self._state:
                case _WriteState.START:
                    c = Completion.new_write(self._check_count)
                    self._completion = c
                    self._state = _WriteState.WRITING
                    self.file.pwritev(self.offset, self._buffers, c)
                    if not c.finished():
                        return IO(c)
                case _WriteState.WRITING:
                    assert self._completion is not None
                    self._completion.result()
                    if not self._sync:
                        self._state = _WriteState.DONE
                        return Done(self._expected)
                    c = Completion.new_sync()
                    self._completion = c
                    self._state = _WriteState.SYNCING
                    self.file.sync(c)
                    if not c.finished():
                        return IO(c)
                case _WriteState.SYNCING:
                    assert self._completion is not None
                    self._completion.result()
                    self._state = _WriteState.DONE
                    return Done(self._expected)
                case _:
                    raise StateMachineError(f"WriteBuffers stepped in state {self._state.name}")

    def abort(self, error: BaseException) -> None:
        """Give up: further steps raise. Bytes already written stay written."""
        self._state = _WriteState.FAILED

    def _check_count(self, outcome: int | CompletionError) -> CompletionError | None:
        if isinstance(outcome, int) and outcome != self._expected:
            return CompletionError(
                ErrorKind.SHORT_WRITE,
                "pwritev wrote fewer bytes than submitted",
                path=self.file.path,
                offset=self.offset,
                expected=self._expected,
                actual=outcome,
            )
        return None
