"""The engine of `UringIO`: its ring, the entries in flight, submission, reaping, and its
files (`UringFile`); compiled with mypyc (`core.io.uring` holds the backend and its theory
of operation).

Rules it keeps (the rest is in `core.io.uring`):
- Every buffer the kernel may touch stays in the table of entries, keyed by `user_data`,
  until that entry's completion entry arrives, even if its completion was aborted.
- A completion holds the engine only through its abort hook, which `shutdown()` empties:
  after it, a completion kept by its caller keeps nothing of the ring.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from core.completion import Completion
from core.errors import CompletionError, ErrorKind, IOResultError
from core.io.backend import Buffer
from core.io.common import FileBase, read_buffer
from core.io.ring import (
    OP_ASYNC_CANCEL,
    OP_FSYNC,
    OP_FTRUNCATE,
    OP_READ,
    OP_WRITE,
    OP_WRITEV,
    Ring,
    iovec_array,
)
from core.io.unix import fstat_size, ftruncate_now

if TYPE_CHECKING:
    from core.io.uring import UringIO

__all__ = ["FORKS", "Engine", "UringFile"]

FORKS: Final = [0]
"""How many times this process is a fork child of the one that imported us (bumped in the
child by `os.register_at_fork`): a ring set up under another count is not ours."""


def _count_fork() -> None:
    FORKS[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_count_fork)

_STRANDED: Final[list[tuple[Ring, dict[int, _Entry]]]] = []
"""Rings that could not drain (closed from a thread the ring refuses): their buffers stay
referenced for the life of the process, since the kernel may still write to them."""

_CANCEL_KEY: Final = 0
"""The `user_data` of our own cancel entries, whose results nobody waits for."""


class _Entry:
    """One submitted I/O: its completion, where it goes, and what the kernel may touch."""

    __slots__ = (
        "addr",
        "cancelled",
        "completion",
        "done",
        "error_offset",
        "file",
        "keep",
        "opcode",
        "pos",
        "total",
        "what",
    )

    def __init__(
        self,
        completion: Completion,
        file: UringFile,
        what: str,
        opcode: int,
        pos: int,
        addr: int,
        total: int,
        keep: object,
    ) -> None:
        self.completion = completion
        self.file = file
        self.what = what  # the system call's name in error messages, as `UnixIO` words them
        self.opcode = opcode
        self.pos = pos
        self.error_offset: int | None = None if opcode == OP_FSYNC else pos
        self.addr = addr  # for a read or write, the address of byte 0 of the transfer
        self.total = total
        self.done = 0
        self.keep = keep  # buffers and ctypes objects the kernel may touch
        self.cancelled = False  # an ASYNC_CANCEL has been queued for it


class _AbortHook:
    """The abort hook of every completion an engine submits: tells the engine that an entry
    of its may need cancelling. The engine empties it when it shuts down, so a completion
    kept by its caller never keeps a shut-down engine alive (a compiled engine takes no
    weak reference; before shutdown the backend's finalizer holds it anyway)."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine: Engine | None = engine

    def __call__(self, _: Completion) -> None:
        engine = self.engine
        if engine is not None:
            engine.aborted()


class Engine:
    """The ring, the table of entries in flight, submission and reaping.

    Held by the backend, its files and its finalizer; never by a completion.
    """

    __slots__ = (
        "cancel_due",
        "cancel_results",
        "cancels",
        "depth",
        "enters",
        "forks",
        "has_ftruncate",
        "hook",
        "inflight",
        "next_key",
        "pid",
        "ring",
        "submissions",
        "table",
        "thread",
    )

    def __init__(self, ring: Ring) -> None:
        self.ring: Ring | None = ring
        self.table: dict[int, _Entry] = {}
        self.inflight = 0  # submitted entries whose completion entry has not been reaped
        self.next_key = _CANCEL_KEY + 1
        self.pid = os.getpid()
        self.forks = FORKS[0]
        self.thread = threading.get_ident()  # the only thread the ring accepts
        self.has_ftruncate = OP_FTRUNCATE in ring.ops
        self.enters = 0
        self.submissions = 0
        self.hook = _AbortHook(self)
        self.cancel_due = False  # a completion in the table was aborted since the last scan
        self.depth = 0  # inside a call into the ring (flush, close): the hook only flags
        self.cancels = 0  # ASYNC_CANCEL entries queued
        self.cancel_results: dict[int, int] = {}  # what they returned -> how many times

    def usable(self, what: str) -> Ring:
        """The ring. Raises `CompletionError` (`CLOSED`) after `close()`, `IOResultError` in
        a fork child."""
        ring = self.ring
        if ring is None:
            raise CompletionError(ErrorKind.CLOSED, f"{what} on a closed UringIO")
        if self.forks != FORKS[0]:
            raise IOResultError(
                f"{what}: this UringIO's io_uring ring was set up by process {self.pid}; "
                f"process {os.getpid()} is a child made by os.fork() and must set up its own"
            )
        return ring

    def busy(self) -> bool:
        ring = self.ring
        return ring is not None and bool(ring.queued or self.inflight)

    def submit(self, entry: _Entry, opcode: int, off: int, addr: int, length: int) -> None:
        """Queue `entry`; a full submission queue goes to the kernel first."""
        ring = self.usable(entry.what)
        while ring.queued >= ring.sq_entries:
            self.flush(0)
        key = self.next_key
        self.next_key = key + 1
        self.table[key] = entry
        entry.completion.on_abort(self.hook)
        ring.queue(opcode, entry.file.fd, off, addr, length, key)

    def _resubmit(self, entry: _Entry) -> None:
        done = entry.done
        self.submit(entry, entry.opcode, entry.pos + done, entry.addr + done, entry.total - done)

    def flush(self, min_complete: int) -> int:
        """Make room in the completion queue, submit everything queued with one enter that
        waits for `min_complete` completions, and finish what came back. Returns how many
        completions finished."""
        ring = self.usable("io_uring_enter")
        finished = 0
        self.depth += 1
        try:
            if self.cancel_due:
                self._queue_cancels(ring, True)
            while (excess := self.inflight + ring.queued - ring.cq_entries) > 0:
                self._enter(ring, excess, submit=False)
                finished += self._finish_reaped(ring)
            self._enter(ring, min_complete, submit=True)
            return finished + self._finish_reaped(ring)
        finally:
            self.depth -= 1

    def _enter(self, ring: Ring, min_complete: int, submit: bool) -> None:
        taken = ring.enter(min_complete, submit)
        self.enters += 1
        if taken:
            self.submissions += 1
            self.inflight += taken

    def _finish_reaped(self, ring: Ring) -> int:
        # The batch is taken off the ring before any callback runs: a callback may submit
        # (and so reap) again.
        batch = ring.reap()
        self.inflight -= len(batch)
        finished = 0
        table = self.table
        for key, res in batch:
            if key == _CANCEL_KEY:
                # 0: found and cancelled; -ENOENT: already done; -EALREADY: running, it
                # comes back when it ends. Either way the entry's own result follows.
                self.cancel_results[res] = self.cancel_results.get(res, 0) + 1
                continue
            entry = table.pop(key, None)
            if entry is None or entry.completion.finished():
                continue  # an abandoned entry (-ECANCELED, -EINTR, ...): its buffer goes now
            if self._settle(entry, res):
                finished += 1
        return finished

    def _settle(self, entry: _Entry, res: int) -> bool:
        """Finish `entry`'s completion with `res`, or resubmit the rest of a short transfer
        (returns False then)."""
        c = entry.completion
        if res < 0:
            c.error(_os_failure(-res, entry.what, entry.file.path, entry.error_offset))
            return True
        if entry.opcode in (OP_FSYNC, OP_FTRUNCATE):
            c.complete(0)
            return True
        done = entry.done + res
        if res and done < entry.total:
            entry.done = done
            if entry.file.closed:  # its descriptor may belong to another file by now
                message = f"{entry.what} on a closed file"
                c.error(CompletionError(ErrorKind.CLOSED, message, path=entry.file.path))
                return True
            if entry.opcode == OP_WRITEV:
                _as_one_write(entry)
            self._resubmit(entry)
            return False
        if res == 0 and done < entry.total and entry.opcode != OP_READ:
            c.error(_os_failure(errno.EIO, entry.what, entry.file.path, entry.pos, "wrote nothing"))
        else:
            c.complete(done)
        return True

    def aborted(self) -> None:
        """The abort hook: an entry's completion was aborted. On the ring's thread, outside
        any call into the ring, its cancel goes to the kernel now (submitted only: reaping
        would run other completions' callbacks inside `abort()`); otherwise the next flush
        sends it."""
        self.cancel_due = True
        ring = self.ring
        if (
            ring is None
            or self.depth
            or self.forks != FORKS[0]
            or threading.get_ident() != self.thread
        ):
            return
        self.depth += 1
        try:
            self._queue_cancels(ring, False)
            # Submit only while every entry's completion entry still fits in the CQ ring.
            if ring.queued and self.inflight + ring.queued <= ring.cq_entries:
                self._enter(ring, 0, submit=True)
        finally:
            self.depth -= 1

    def _queue_cancels(self, ring: Ring, may_flush: bool) -> None:
        """Queue an ASYNC_CANCEL for every entry whose completion finished (was aborted)
        while in flight. A full submission queue is flushed first if `may_flush`, else the
        rest waits for the next flush."""
        self.cancel_due = False
        table = self.table
        for key, entry in list(table.items()):
            if entry.cancelled or not entry.completion.finished() or key not in table:
                continue
            if ring.queued >= ring.sq_entries:
                if not may_flush:
                    self.cancel_due = True
                    return
                self.flush(0)
                if key not in table:
                    continue  # it came back meanwhile
            entry.cancelled = True
            ring.queue(OP_ASYNC_CANCEL, -1, 0, key, 0, _CANCEL_KEY)
            self.cancels += 1

    def cancel_abandoned(self) -> None:
        """Queue an ASYNC_CANCEL for every entry whose completion finished (was aborted)
        while in flight, and submit them."""
        self.usable("cancel")
        self.cancel_due = True
        self.flush(0)

    def abort_quietly(self, cs: Iterable[Completion]) -> None:
        """Abort `cs` with their hooks only flagging: the caller sends the cancels at once."""
        self.depth += 1
        try:
            for c in cs:
                c.abort()
        finally:
            self.depth -= 1

    def shutdown(self, strict: bool) -> None:
        """Abort and cancel everything in flight, wait for every completion entry, then
        unmap and close the ring. Idempotent. A fork child only lets go of its copies of
        the mappings and the descriptor; the parent's entries are not its to drain.

        Raises `IOResultError` (if `strict`) when the ring refuses this thread: the
        engine is then kept, with every buffer, for the life of the process.
        """
        ring = self.ring
        if ring is None:
            return
        if self.forks == FORKS[0]:
            try:
                self.abort_quietly([entry.completion for entry in self.table.values()])
                self.cancel_abandoned()
                while self.busy():
                    self.flush(1)
            except IOResultError:
                _STRANDED.append((ring, self.table))  # never unmapped, never freed
                self.ring, self.table = None, {}
                self.hook.engine = None
                if strict:
                    raise
                return
        self.ring = None
        self.table.clear()
        self.hook.engine = None
        ring.close()


def _os_failure(
    code: int, what: str, path: str, offset: int | None, detail: str | None = None
) -> CompletionError:
    return CompletionError.from_os_error(
        OSError(code, detail or os.strerror(code)), what, path=path, offset=offset
    )


def _as_one_write(entry: _Entry) -> None:
    """Turn a vectored write cut short into one plain write of what is left (a rare path)."""
    arrays = entry.keep
    assert isinstance(arrays, tuple)
    rest = b"".join(bytes(a) for a in arrays[0])[entry.done :]
    copy = (ctypes.c_char * len(rest)).from_buffer_copy(rest)
    entry.opcode = OP_WRITE
    entry.keep = copy
    entry.addr = ctypes.addressof(copy) - entry.done  # byte `done` is the copy's first


class UringFile(FileBase):
    """A file whose I/O goes through its `UringIO`'s ring. Made by `UringIO.open_file`, or
    directly around a descriptor opened elsewhere (the file then owns it)."""

    __slots__ = ("_engine", "_open_files", "fd")

    def __init__(self, backend: UringIO, path: str, fd: int, read_only: bool) -> None:
        super().__init__(path, read_only)
        # Not the backend itself: entries in flight hold their file, and the backend must
        # stay collectable (its finalizer drains the ring) while the kernel holds entries.
        self._engine = backend._engine
        self._open_files = backend._open_files
        self.fd = fd
        backend._open_files.add(self)

    def pread(self, pos: int, c: Completion) -> Completion:
        if self._closed:
            self._check_open("pread")
        buffer = read_buffer(c)
        if pos < 0:
            return _refuse_offset(c, "pread", self._path, pos)
        size = buffer.nbytes if isinstance(buffer, memoryview) else len(buffer)
        if size == 0:
            c.complete(0)
            return c
        anchor = ctypes.c_char.from_buffer(buffer)  # also pins a bytearray's size
        addr = ctypes.addressof(anchor)
        entry = _Entry(c, self, "pread", OP_READ, pos, addr, size, anchor)
        self._engine.submit(entry, OP_READ, pos, addr, size)
        return c

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        return self.pwritev(pos, (buffer,), c)

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        self._check_writable("pwritev")
        if pos < 0:
            return _refuse_offset(c, "pwrite", self._path, pos)
        copies = [(ctypes.c_char * len(b)).from_buffer_copy(b) for b in buffers if len(b)]
        if not copies:
            c.complete(0)
            return c
        total = sum(len(a) for a in copies)
        if len(copies) == 1:
            addr = ctypes.addressof(copies[0])
            entry = _Entry(c, self, "pwrite", OP_WRITE, pos, addr, total, copies[0])
            self._engine.submit(entry, OP_WRITE, pos, addr, total)
        else:
            iov, iov_addr = iovec_array([(ctypes.addressof(a), len(a)) for a in copies])
            entry = _Entry(c, self, "pwrite", OP_WRITEV, pos, 0, total, (copies, iov))
            self._engine.submit(entry, OP_WRITEV, pos, iov_addr, len(copies))
        return c

    def sync(self, c: Completion) -> Completion:
        self._check_open("sync")
        self._engine.submit(_Entry(c, self, "fsync", OP_FSYNC, 0, 0, 0, None), OP_FSYNC, 0, 0, 0)
        return c

    def truncate(self, length: int, c: Completion) -> Completion:
        self._check_writable("truncate")
        engine = self._engine
        if engine.has_ftruncate:
            entry = _Entry(c, self, "ftruncate", OP_FTRUNCATE, length, 0, 0, None)
            engine.submit(entry, OP_FTRUNCATE, length, 0, 0)
            return c
        engine.usable("truncate")  # before Linux 6.9: the plain call, finished at once
        return ftruncate_now(self.fd, self._path, length, c)

    def size(self) -> int:
        self._check_open("size")
        return fstat_size(self.fd, self._path)

    def _release(self) -> None:
        engine = self._engine
        if engine.ring is not None and engine.ring.queued and engine.forks == FORKS[0]:
            engine.flush(0)  # the kernel resolves our descriptor when it takes the entries
        self._open_files.discard(self)
        os.close(self.fd)


def _refuse_offset(c: Completion, what: str, path: str, pos: int) -> Completion:
    """Fail `c` at once for a negative offset, as `UnixIO`'s system call does (the kernel
    would read `-1` as "the current position")."""
    c.error(_os_failure(errno.EINVAL, what, path, pos))
    return c
