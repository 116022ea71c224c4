"""Copying a file in batches: each batch reads `batch` chunks as one group, then writes
them back with one `pwritev`; the copy ends with a `sync` of the destination."""

from __future__ import annotations

import enum

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError, ErrorKind, StateMachineError
from core.io.backend import File
from core.result import IO, Done

__all__ = ["CopyFile"]


class _CopyState(enum.Enum):
    START = "start"
    READING = "reading"
    WRITING = "writing"
    SYNCING = "syncing"
    DONE = "done"
    FAILED = "failed"


class CopyFile:
    """Copy `src` into `dst` (from offset 0, truncating `dst` to `src`'s size first);
    `Done(bytes_copied)`.

    Progress (`copied`) only advances after a batch's write has finished, so re-entering
    a step never skips or repeats a batch.
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
        self.src = src
        self.dst = dst
        self.chunk_size = chunk_size
        self.batch = batch
        self.copied = 0
        self._size = 0
        self._state = _CopyState.START
        self._buffers: list[bytearray] = []
        self._completion: Completion | None = None

    def step(self) -> Done[int] | IO:
        """Advance one transition at a time until `Done` or `IO`.

        Raises `StateMachineError` if stepped after it finished or failed, and the
        `CompletionError` of a failed read, write, truncate or sync.
        """
        pending = self._completion
        if pending is not None and not pending.finished():
            return IO(pending)  # re-entered before the I/O finished: wait on the same one
        while True:
            match self._state:
                case _CopyState.START:
                    self._size = self.src.size()
                    c = Completion.new_trunc()
                    self._completion = c
                    self._state = _CopyState.WRITING  # the truncate is "batch -1"
                    self._buffers = []
                    self.dst.truncate(self._size, c)
                    if not c.finished():
                        return IO(c)
                case _CopyState.READING:
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
                    self._state = _CopyState.WRITING
                    self.dst.pwritev(self.copied, self._buffers, c)
                    if not c.finished():
                        return IO(c)
                case _CopyState.WRITING:
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
                        self._state = _CopyState.SYNCING
                        self.dst.sync(c)
                        if not c.finished():
                            return IO(c)
                        continue
                    c = self._submit_reads()
                    if not c.finished():
                        return IO(c)
                case _CopyState.SYNCING:
                    assert self._completion is not None
                    self._completion.result()
                    self._state = _CopyState.DONE
                    return Done(self.copied)
                case _:
                    raise StateMachineError(f"CopyFile stepped in state {self._state.name}")

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
        self._state = _CopyState.READING
        try:
            for pos, part in zip(range(self.copied, end, self.chunk_size), parts, strict=True):
                self.src.pread(pos, part)
        except BaseException:
            group.cancel()
            raise
        return c

    def abort(self, error: BaseException) -> None:
        """Give up: further steps raise. The destination may hold a partial copy."""
        self._state = _CopyState.FAILED
