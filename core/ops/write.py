"""Writing a list of buffers with one `pwritev`, then making it durable with `sync`; an
operation on the kernel (`core.state_machine.Machine`)."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.io.backend import Buffer, File
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult

__all__ = ["WriteBuffers"]


class WriteState(enum.Enum):
    """The states of a write: submit the write, then the sync, then report."""

    START = "start"
    WRITING = "writing"
    SYNCING = "syncing"


class WriteBuffers(Machine[int]):
    """Write `buffers` back to back from `offset` with one `pwritev`, then `sync` unless
    `sync=False`; `Done(bytes_written)`.

    A write that lands fewer bytes than submitted fails with `ErrorKind.SHORT_WRITE`.
    Raises the write's or sync's `CompletionError` if one failed, and `StateMachineError`
    if stepped after it finished or failed. Bytes already written stay written.
    """

    __slots__ = ("_buffers", "_completion", "_expected", "_state", "_sync", "file", "offset")

    def __init__(
        self, file: File, offset: int, buffers: Sequence[Buffer], *, sync: bool = True
    ) -> None:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        super().__init__()
        self.file = file
        self.offset = offset
        self._buffers = list(buffers)
        self._expected = sum(len(b) for b in self._buffers)
        self._sync = sync
        self._state = WriteState.START
        self._completion: Completion | None = None

    def _advance(self) -> TransitionResult[int]:
        match self._state:
            case WriteState.START:
                c = Completion.new_write(self._check_count)
                self._completion = c
                self._state = WriteState.WRITING
                self.file.pwritev(self.offset, self._buffers, c)
                return Continue if c.finished() else IO(c)
            case WriteState.WRITING:
                assert self._completion is not None
                self._completion.result()
                if not self._sync:
                    return Done(self._expected)
                c = Completion.new_sync()
                self._completion = c
                self._state = WriteState.SYNCING
                self.file.sync(c)
                return Continue if c.finished() else IO(c)
            case WriteState.SYNCING:
                assert self._completion is not None
                self._completion.result()
                return Done(self._expected)

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
