"""Copying a file in batches: each batch reads `batch` chunks as one group, then writes
them back with one `pwritev`; the copy ends with a `sync` of the destination. An operation
on the kernel (`core.state_machine.Machine`)."""

from __future__ import annotations

import enum

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError, ErrorKind
from core.io.backend import File
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult

__all__ = ["CopyFile"]


class CopyState(enum.Enum):
    """The states of a copy: truncate, then read and write batch by batch, then sync."""

    START = "start"
    READING = "reading"
    WRITING = "writing"
    SYNCING = "syncing"


class CopyFile(Machine[int]):
    """Copy `src` into `dst` (from offset 0, truncating `dst` to `src`'s size first);
    `Done(bytes_copied)`.

    Progress (`copied`) only advances after a batch's write has finished, so re-entering
    a step never skips or repeats a batch. Raises the `CompletionError` of a failed read,
    write, truncate or sync (the destination may then hold a partial copy), and
    `StateMachineError` if stepped after it finished or failed.
    """

    __slots__ = (
        "_buffers",
        "_completion",
        "_size",
        "_state",
        "batch",
        "chunk_size",
        "copied",
        "dst",
        "src",
    )

    def __init__(
        self, src: File, dst: File, *, chunk_size: int = 64 * 1024, batch: int = 8
    ) -> None:
        if chunk_size <= 0 or batch <= 0:
            raise ValueError(f"chunk_size and batch must be > 0, got {chunk_size} and {batch}")
        super().__init__()
        self.src = src
        self.dst = dst
        self.chunk_size = chunk_size
        self.batch = batch
        self.copied = 0
        self._size = 0
        self._state = CopyState.START
        self._buffers: list[bytearray] = []
        self._completion: Completion | None = None

    def _advance(self) -> TransitionResult[int]:
        match self._state:
            case CopyState.START:
                self._size = self.src.size()
                c = Completion.new_trunc()
                self._completion = c
                self._state = CopyState.WRITING  # the truncate is "batch -1"
                self._buffers = []
                self.dst.truncate(self._size, c)
                return Continue if c.finished() else IO(c)
            case CopyState.READING:
                assert self._completion is not None
                total = self._completion.result()
                expected = sum(len(b) for b in self._buffers)
                if total != expected:
                    raise CompletionError(
                        ErrorKind.SHORT_READ,
                        "source shrank while being copied",
                        path=self.src.path,
                        offset=self.copied,
                        expected=expected,
                        actual=total,
                    )
                c = Completion.new_write()
                self._completion = c
                self._state = CopyState.WRITING
                self.dst.pwritev(self.copied, self._buffers, c)
                return Continue if c.finished() else IO(c)
            case CopyState.WRITING:
                assert self._completion is not None
                written = self._completion.result()
                expected = sum(len(b) for b in self._buffers)
                if written != expected:  # a short count would leave a hole in dst
                    raise CompletionError(
                        ErrorKind.SHORT_WRITE,
                        "pwritev wrote fewer bytes than submitted",
                        path=self.dst.path,
                        offset=self.copied,
                        expected=expected,
                        actual=written,
                    )
                self.copied += expected
                if self.copied >= self._size:
                    c = Completion.new_sync()
                    self._completion = c
                    self._state = CopyState.SYNCING
                    self.dst.sync(c)
                    return Continue if c.finished() else IO(c)
                c = self._submit_reads()
                return Continue if c.finished() else IO(c)
            case CopyState.SYNCING:
                assert self._completion is not None
                self._completion.result()
                return Done(self.copied)

    def _submit_reads(self) -> Completion:
        end = min(self._size, self.copied + self.chunk_size * self.batch)
        self._buffers = [
            bytearray(min(self.chunk_size, end - pos))
            for pos in range(self.copied, end, self.chunk_size)
        ]
        group = CompletionGroup()
        parts = [Completion.new_read(buffer) for buffer in self._buffers]
        for part in parts:
            group.add(part)
        c = group.build()
        self._completion = c
        self._state = CopyState.READING
        try:
            for pos, part in zip(range(self.copied, end, self.chunk_size), parts, strict=True):
                self.src.pread(pos, part)
        except BaseException:
            group.cancel()
            raise
        return c
