"""The io_uring engine of `AsyncFileIO`: one ring per backend, watched by the event loop.

Theory of operation (`core.io.uring` is the same ring without a loop; Turso's
`core/io/io_uring.rs` is the model):
- `AsyncFile` decides what runs inline (a page-cache hit through RWF_NOWAIT, cheaper than
  any round trip) and hands everything else to `submit` as a `Request`, on the loop thread.
  The engine writes one ring entry for it in our memory and schedules one `_flush` per loop
  pass (`call_soon`): every entry queued during that pass goes to the kernel with one
  `io_uring_enter`; a full submission queue goes at once.
- The ring is set up lazily, on the loop thread, at the first submission: the ring accepts
  only the thread that set it up (`SINGLE_ISSUER`). An eventfd registered with the ring
  (`IORING_REGISTER_EVENTFD`) is what the loop watches (`loop.add_reader`; a trio system
  task in `wait_readable`). On readiness: drain the eventfd, then `io_uring_enter(GETEVENTS,
  min_complete=0)` and reap; completions finish here, on the loop thread, so nothing above
  needs a lock: at most `FINISH_PER_CALLBACK` per callback, the rest in the next passes
  (`Finisher`, as the pool does). The eventfd is drained *before* reaping, so an entry
  posted after the reap signals again and is never missed.
- Reads larger than 64 KiB (`ASYNC_ABOVE`) carry `IOSQE_ASYNC`: the kernel
  runs them in its io-wq workers instead of first trying them inside our `io_uring_enter`,
  where a page-cache hit would copy, and a miss start its read-ahead, on the loop thread
  (measured: one enter of 200 cold reads of 4 and 256 KiB held the loop 6-18 ms; with the
  flag on the large ones, under 1 ms, and the reads ran faster since the copies ran on the
  other core). Smaller reads keep the attempt inside the enter: it costs little, and a hit
  finishes without a hand-off to a kernel worker.
- Why no `DEFER_TASKRUN` (measured on Linux 6.18): with it, the eventfd does fire, but
  each `io_uring_enter(min_complete=0)` runs at most 20 pieces of deferred work, so 100
  finished reads took five wake-ups of the loop instead of one. Without it, the kernel posts
  completion entries itself (from task work and io-wq), possibly while we read the ring: on
  x86-64 plain loads and stores are acquire and release (total store order), which is all
  the ring protocol needs (see `core.io.ring`); elsewhere the engine is unavailable.
- Bounded in flight: at most `max_in_flight` requests (and never more than the submission
  queue holds) are in the ring; more wait in a FIFO fed as completions come back, so
  `File.pread` and friends never block. The completion queue is twice the submission queue:
  one entry per request in flight plus one per cancel always fits.
- Buffers: a read lands in the completion's own buffer, a write sends a private copy. A read
  whose completion takes bytes (`Completion.takes_bytes`, up to 64 KiB) lands in a spare
  buffer of the engine's instead, and `_finish` hands over a copy with `complete_with_bytes`
  (that saves the completion's zeroed buffer, the `ctypes` object for its address and the
  copy out of it); the spare goes back for the next read once the copy is made, and the
  engine keeps at most 1 MiB of them. Every buffer the kernel may touch, with the `ctypes`
  object that gives its address, stays in the table of entries (keyed by `user_data`)
  until that entry's completion arrives, even when its completion was aborted. A short
  transfer is resubmitted for the rest, as a worker's loop of system calls would; a read
  ends early only at the end of the file.
- Order: the kernel runs entries in parallel. The pool keeps in order the requests one task
  (`Request.unit`) makes in one loop pass (they travel in one batch), and so does the
  ring: an fsync or truncate that follows an entry of its own task queued in the same
  pass, any entry that follows such a barrier, and a read or write over the bytes of an
  earlier read or write of its task on the same file in that pass (one of them a write)
  are queued with `IOSQE_IO_DRAIN` (it starts after every earlier entry finished, later
  ones after it). Anything else starts at
  once: an fsync a task issues after its writes completed (what the storage engine's
  commits do) does not hold up another task's writes, so commits of many tasks overlap one
  WAL sync (group commit).
  Before Linux 6.9 (no `FTRUNCATE` opcode) truncate is a plain system call on the loop thread.
- Cancellation: every completion that reaches the ring carries an abort hook
  (`Completion.on_abort`). Aborting it while its entry is in the ring (a driver giving up,
  a group's `cancel()`, or a plain `abort()` with no driver stepping the operation any
  more) schedules a flush that queues an `IORING_OP_ASYNC_CANCEL` for every such entry, in
  the same loop pass (from another thread, through the loop's thread-safe call); a driver's
  `when_settled` does the same at once. Whatever arrives later for a cancelled entry
  (`-ECANCELED`, `-EINTR`, or its real result when the cancel came too late: `-EALREADY`,
  `-ENOENT`) is dropped, and only then does its buffer go. `cancel_results` counts what
  the cancels themselves returned. A request aborted while it waited for room never
  reaches the kernel.
- Closing: abort everything, cancel what is in the ring, and wait for every last completion
  entry (polling the eventfd, bounded by `settle_timeout` per quiet spell); only an empty
  ring is unmapped. A ring that cannot drain (a thread the ring refuses, a device that never
  answers) is kept with every buffer for the life of the process, never unmapped.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import select
import threading
import weakref
from collections import deque
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any, Final

from bridge._fileio_common import (
    FINISH_PER_CALLBACK,
    Finisher,
    Kind,
    LoopHandle,
    Request,
    split_settle_waiters,
    translate_error,
)
from core.errors import IOResultError
from core.io.ring import (
    OP_ASYNC_CANCEL,
    OP_FSYNC,
    OP_FTRUNCATE,
    OP_READ,
    OP_WRITE,
    SQE_ASYNC,
    SQE_IO_DRAIN,
    Ring,
)
from core.io.uring_engine import FORKS
from core.unraisable import report_unraisable

if TYPE_CHECKING:
    from bridge._fileio import AsyncFileIO

__all__ = ["ASYNC_ABOVE", "UringEngine", "refuse", "unavailable_reason"]

_CANCEL_KEY: Final = 0
"""The `user_data` of our own cancel entries, whose results nobody waits for."""

ASYNC_ABOVE: Final = 64 << 10
"""Reads larger than this run in the kernel's workers (`IOSQE_ASYNC`), not inside our enter."""

_SPARE_MAX_SIZE: Final = 64 << 10
"""Reads that take bytes up to this size land in the engine's spare buffers (see `_start`)."""
_SPARE_BYTES: Final = 1 << 20
"""The spare buffers an engine keeps between reads, in bytes, all sizes together."""

_MAX_ENTRIES: Final = 4096
_STRANDED: Final[list[tuple[Ring, dict[int, _Entry]]]] = []
"""Rings that could not drain: their buffers stay referenced for the life of the process,
since the kernel may still write to them."""


def _setup(entries: int, sqpoll_idle: int = 0) -> tuple[Ring, int]:
    """A ring without DEFER_TASKRUN (with an SQPOLL thread idling after `sqpoll_idle` ms,
    if > 0 and the kernel allows it) and an eventfd registered with it. Raises `OSError`."""
    ring = Ring(entries, defer_taskrun=False, owner="AsyncFileIO", sqpoll_idle=sqpoll_idle)
    try:
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    except BaseException:
        ring.close()
        raise
    try:
        ring.register_eventfd(efd)
    except BaseException:
        ring.close()
        os.close(efd)
        raise
    return ring, efd


@functools.cache
def unavailable_reason() -> str | None:
    """Why the io_uring engine cannot run in this process (None: it can). Never raises;
    probed once, by setting up and closing a small ring with its eventfd."""
    if platform.machine() != "x86_64" or not hasattr(os, "eventfd"):
        return (
            "the io_uring engine of AsyncFileIO needs Linux on x86-64 "
            f"(this is {platform.system()}/{platform.machine()})"
        )
    try:
        ring, efd = _setup(2)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "?")
        return f"io_uring is not available here: {name}: {exc}"
    except Exception as exc:  # a probe never raises: anything odd means "not here"
        return f"io_uring is not available here: {exc!r}"
    ring.close()
    os.close(efd)
    return None


@functools.cache
def sqpoll_runs() -> bool:
    """Whether the kernel gives this process's rings a polling thread (`sqpoll`). Never
    raises; probed once, by setting up and closing a small ring with one."""
    if unavailable_reason() is not None:
        return False
    try:
        ring = Ring(2, defer_taskrun=False, owner="AsyncFileIO", sqpoll_idle=1)
    except Exception:  # a probe never raises: anything odd means "not here"
        return False
    polled = ring.sqpoll
    ring.close()
    return polled


Spare = tuple[Any, int, int]
"""A spare read buffer: the `c_char` array, its address, its size."""


def _new_spare(size: int) -> Spare:
    """A new read buffer of `size` bytes (no spare one of that size is left)."""
    buffer = (ctypes.c_char * size)()
    return buffer, ctypes.addressof(buffer), size


def _overlaps(span: tuple[int, int, int], spans: list[tuple[int, int, int]]) -> bool:
    """Whether `span` (fd, start, end) shares a byte with any of `spans` on the same fd."""
    fd, start, end = span
    for other_fd, other_start, other_end in spans:
        if other_fd == fd and start < other_end and other_start < end:
            return True
    return False


class _Entry:
    """One request in the ring: what the kernel may touch and how far it got."""

    __slots__ = ("addr", "cancelled", "done", "keep", "opcode", "req", "spare", "total")

    def __init__(
        self,
        req: Request,
        opcode: int,
        addr: int,
        total: int,
        keep: object,
        spare: Spare | None = None,
    ) -> None:
        self.req = req
        self.opcode = opcode
        self.addr = addr  # for a read or write, the address of byte 0 of the transfer
        self.total = total
        self.done = 0
        self.keep = keep  # the buffer and the ctypes object over it, until the CQE
        self.spare = spare  # the engine's spare read buffer it reads into, if any
        self.cancelled = False  # an ASYNC_CANCEL has been queued for it


class _AbortHook:
    """The abort hook of every completion in the ring: tells the engine that an entry may
    need cancelling. The engine empties it when it closes, so a completion kept by its
    caller never keeps a closed engine alive (a compiled engine takes no weak reference;
    before it closes, the backend's finalizer holds it anyway)."""

    __slots__ = ("engine",)

    def __init__(self, engine: UringEngine) -> None:
        self.engine: UringEngine | None = engine

    def __call__(self, _: object) -> None:
        engine = self.engine
        if engine is not None:
            engine.aborted()


class UringEngine:
    """The ring of one `AsyncFileIO`, driven from its loop thread."""

    __slots__ = (
        "_backend",
        "_cancel_due",
        "_efd",
        "_finisher",
        "_flush_scheduled",
        "_forks",
        "_handle",
        "_hook",
        "_loop_thread",
        "_next_key",
        "_pass_barriers",
        "_pass_reads",
        "_pass_units",
        "_pass_writes",
        "_ring",
        "_settle_waiters",
        "_spare_bytes",
        "_spares",
        "_sqpoll_idle",
        "active",
        "async_above",
        "cancel_results",
        "cancels",
        "enters",
        "limit",
        "pending",
        "table",
    )

    def __init__(self, backend: AsyncFileIO, max_in_flight: int, sqpoll_idle: int = 0) -> None:
        # Weak: the loop's reader registration holds this engine, and must not keep a
        # dropped backend alive (its finalizer closes the engine).
        self._backend = weakref.ref(backend)
        self._ring: Ring | None = None
        self._sqpoll_idle = sqpoll_idle  # ms; 0: no SQPOLL thread
        self._forks = FORKS[0]  # the fork generation the ring was set up in
        self._efd = -1
        self._handle: LoopHandle | None = None  # the loop watching the eventfd
        self._loop_thread = 0  # the thread that set the ring up
        self._flush_scheduled = False
        self._pass_units: set[object] = set()  # tasks with entries queued in this pass
        self._pass_barriers: set[object] = set()  # ...with an fsync or truncate among them
        # ...and the bytes their reads and their writes cover: (fd, start, end). Apart, so
        # that a read checks only the writes before it (a group of reads stays linear).
        self._pass_reads: dict[object, list[tuple[int, int, int]]] = {}
        self._pass_writes: dict[object, list[tuple[int, int, int]]] = {}
        self._next_key = _CANCEL_KEY + 1
        self._settle_waiters: list[tuple[int, Callable[[], object]]] = []
        # Read buffers that no entry uses, by size: (buffer, address, size). A read that
        # takes bytes lands in one; `_finish` copies its bytes out and gives it back.
        self._spares: dict[int, list[Spare]] = {}
        self._spare_bytes = 0  # what `_spares` holds
        self.limit = max_in_flight
        self.async_above = ASYNC_ABOVE
        self.active = 0  # requests in the ring (queued or submitted), not yet finished
        self.pending: deque[Request] = deque()  # waiting for room
        self.table: dict[int, _Entry] = {}  # user_data -> entry, ascending keys
        self.enters = 0
        self._hook = _AbortHook(self)
        self._cancel_due = False  # a completion in the ring was aborted since the last scan
        self.cancels = 0  # ASYNC_CANCEL entries queued
        self.cancel_results: dict[int, int] = {}  # what they returned -> how many times
        # Reaped requests whose completions are still to be finished.
        self._finisher = Finisher(self._finish_reaped, FINISH_PER_CALLBACK)

    @property
    def sqpoll(self) -> bool:
        """Whether a kernel thread takes this engine's entries (its ring is set up with
        `IORING_SETUP_SQPOLL`); False before the ring is set up."""
        return self._ring is not None and self._ring.sqpoll

    def _parents_ring(self) -> bool:
        """Whether the ring was set up before an `os.fork()` that made this process."""
        return self._ring is not None and self._forks != FORKS[0]

    def never_started(self) -> bool:
        """True until a ring has been set up for this engine."""
        return self._ring is None and self._loop_thread == 0 and not self.busy()

    def watched_from(self, handle: LoopHandle) -> bool:
        """Whether `handle`'s loop watches this engine's ring already (`submit` then needs
        no setup, and cannot fall back)."""
        return handle is self._handle

    def busy(self) -> bool:
        return bool(self.active or self.pending or self.table)

    # -- submission (loop thread) -------------------------------------------------------

    def submit(self, req: Request, handle: LoopHandle) -> None:
        """Queue `req` (or let it wait for room). Raises `IOResultError` if no ring can be
        set up, or from a thread the ring refuses."""
        if handle is not self._handle or self._forks != FORKS[0]:
            self._attach(handle)
        if self.active >= self.limit or self.pending:
            self.pending.append(req)
            return
        self._start(req)
        self._schedule_flush()

    def _attach(self, handle: LoopHandle) -> None:
        """Watch the eventfd from `handle`'s loop, setting the ring up on first use (or
        again on a new thread, which only an idle backend reaches: `AsyncFileIO._bind`)."""
        if self._parents_ring():
            # The parent's ring: with an SQPOLL thread the kernel would not even refuse this
            # process (SINGLE_ISSUER), and the parent's thread would run our entries.
            raise IOResultError(
                "this AsyncFileIO's io_uring ring was set up by the parent of process "
                f"{os.getpid()}, a child made by os.fork(): use an AsyncFileIO made in the "
                "child"
            )
        if self._ring is not None and handle.thread_id != self._loop_thread and not self.busy():
            self._release_ring()
        if self._ring is None:
            entries = 1 << max(1, (min(self.limit, _MAX_ENTRIES) - 1).bit_length())
            try:
                self._ring, self._efd = _setup(entries, self._sqpoll_idle)
            except OSError as exc:
                raise IOResultError(f"io_uring ring setup failed: {exc}") from exc
            self.limit = min(self.limit, self._ring.sq_entries)
            self._loop_thread = handle.thread_id
            self._forks = FORKS[0]
        elif self._handle is not None:
            self._handle.unwatch(self._efd)
        self._handle = None
        handle.watch_readable(self._efd, self._on_ready)
        self._handle = handle

    def _start(self, req: Request) -> None:
        """Write the ring entry of a request that has room."""
        self.active += 1
        match req.kind:
            case Kind.READ:
                view = req.buffers
                if view is None:
                    # A read that takes bytes (`Completion.takes_bytes`): into a spare buffer
                    # of ours, whose bytes `_finish` copies out. That saves the completion's
                    # zeroed buffer, the ctypes object for its address and a copy out of it.
                    size = req.completion.takes_bytes()
                    if 0 < size <= _SPARE_MAX_SIZE:
                        spares = self._spares.get(size)
                        if spares:
                            spare = spares.pop()
                            self._spare_bytes -= size
                        else:
                            spare = _new_spare(size)
                        flags = self._order(req, False, size)
                        entry = _Entry(req, OP_READ, spare[1], size, None, spare)
                        self._queue(entry, req.pos, flags)
                        return
                # Its own buffer; or the completion's, for a read that takes bytes but is
                # empty, larger than a spare (no copy then), or whose buffer was asked for.
                view = req.read_view()
                size = view.nbytes
                if size == 0:
                    self._finish(req, req.base)
                    return
                anchor = ctypes.c_char.from_buffer(view)  # also pins a bytearray's size
                addr = ctypes.addressof(anchor)
                # In a kernel worker: an attempt inside our enter would copy a page-cache
                # hit, or start the read-ahead of a miss, on the loop thread.
                flags = self._order(req, False, size)
                if size > self.async_above:
                    flags |= SQE_ASYNC
                self._queue(_Entry(req, OP_READ, addr, size, (view, anchor)), req.pos, flags)
            case Kind.WRITE:
                buffers = req.buffers
                assert isinstance(buffers, list | tuple)
                data = b"".join(buffers) if len(buffers) != 1 else buffers[0]
                size = len(data)
                if size == 0:
                    self._finish(req, 0)
                    return
                # A private copy: an aborted caller may reuse its buffer while we write.
                copy = (ctypes.c_char * size).from_buffer_copy(data)
                flags = self._order(req, False, size)
                self._queue(
                    _Entry(req, OP_WRITE, ctypes.addressof(copy), size, copy), req.pos, flags
                )
            case Kind.SYNC:
                self._queue(_Entry(req, OP_FSYNC, 0, 0, None), 0, self._order(req, True))
            case Kind.TRUNCATE:
                ring = self._ring
                assert ring is not None
                if OP_FTRUNCATE in ring.ops:
                    flags = self._order(req, True)
                    self._queue(_Entry(req, OP_FTRUNCATE, 0, 0, None), req.pos, flags)
                    return
                try:  # before Linux 6.9: the plain call, which a truncate rarely waits in
                    os.ftruncate(req.file.fd, req.pos)
                except OSError as exc:
                    req.error = exc
                self._finish(req, 0)

    def _order(self, req: Request, barrier: bool, size: int = 0) -> int:
        """The flags that keep `req` in order with what its task queued in this pass: a
        barrier (fsync, truncate) after an entry of its task, anything after a barrier of
        its task, and a read or write of `size` bytes over the bytes of an earlier entry
        of its task on the same file, one of the two a write, drains; everything else
        runs in parallel."""
        unit = req.unit
        units = self._pass_units
        if barrier:
            drain = unit in self._pass_barriers or unit in units
            units.add(unit)
            self._pass_barriers.add(unit)
            return SQE_IO_DRAIN if drain else 0
        units.add(unit)
        write = req.kind is Kind.WRITE
        span = (req.file.fd, req.pos, req.pos + size)
        drain = unit in self._pass_barriers
        if not drain:
            writes = self._pass_writes.get(unit)
            drain = writes is not None and _overlaps(span, writes)
            if not drain and write:
                reads = self._pass_reads.get(unit)
                drain = reads is not None and _overlaps(span, reads)
        spans_of = self._pass_writes if write else self._pass_reads
        spans = spans_of.get(unit)
        if spans is None:
            spans_of[unit] = [span]
        else:
            spans.append(span)
        return SQE_IO_DRAIN if drain else 0

    def _queue(self, entry: _Entry, pos: int, flags: int) -> None:
        ring = self._ring
        assert ring is not None
        if ring.queued >= ring.sq_entries:
            self._enter(0, submit=True)
        key = self._next_key
        self._next_key = key + 1
        self.table[key] = entry
        entry.req.completion.on_abort(self._hook)
        done = entry.done
        length = entry.total - done
        ring.queue(
            entry.opcode, entry.req.file.fd, pos + done, entry.addr + done, length, key, flags
        )

    def _give_back(self, spare: Spare) -> None:
        """Keep a spare buffer nothing uses any more (its entry came back, its bytes were
        copied out), unless the engine keeps enough already."""
        size = spare[2]
        if self._spare_bytes + size > _SPARE_BYTES:
            return
        self._spare_bytes += size
        spares = self._spares.get(size)
        if spares is None:
            self._spares[size] = [spare]
        else:
            spares.append(spare)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            handle = self._handle
            assert handle is not None
            try:
                handle.call_soon(self._flush, None)
            except RuntimeError:  # its loop is closed: `close()` submits what is queued
                self._flush_scheduled = False

    def _flush(self, _: object = None) -> None:
        """Loop callback, once per pass with something queued: one enter for all of it,
        then finish what the kernel completed inside it (page-cache reads often are)."""
        self._flush_scheduled = False
        self._end_pass()
        ring = self._ring
        if ring is None:
            return
        try:
            if self._cancel_due:
                self._queue_cancels()
            if not ring.queued:
                return
            self._enter(0, submit=True)
            self._reap()
        except Exception as exc:  # a bug here must not kill the loop (trio would crash)
            report_unraisable(exc, "Exception while submitting to the io_uring ring", self)

    def _end_pass(self) -> None:
        """Forget what the tasks queued in this pass (and the tasks: a closed engine must not
        keep a task, and with it its coroutine, alive)."""
        self._pass_units.clear()
        self._pass_barriers.clear()
        self._pass_reads.clear()
        self._pass_writes.clear()

    def _enter(self, min_complete: int, submit: bool) -> None:
        ring = self._ring
        assert ring is not None
        ring.enter(min_complete, submit)
        self.enters += 1

    # -- completion (loop thread) -------------------------------------------------------

    def _on_ready(self, _: object = None) -> None:
        """The eventfd is readable: drain it, let the kernel post what finished, reap."""
        try:
            ring = self._ring
            if ring is None:
                return  # a wake-up that was on its way when the ring closed
            self._drain_eventfd()
            if ring.queued:
                self._flush_scheduled = False  # this enter submits what is queued, too
                self._enter(0, submit=True)
            # Nothing to submit, no enter: without DEFER_TASKRUN the kernel posts entries
            # before it signals the eventfd, and the completion queue never overflows.
            self._reap()
        except Exception as exc:  # never out of a loop callback or a trio system task
            report_unraisable(exc, "Exception while reaping the io_uring ring", self)

    def _drain_eventfd(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except (BlockingIOError, OSError):
            pass  # already drained: a spare wake-up

    def _reap(self) -> None:
        """Finish the completions of every entry the kernel returned. The batch is taken
        off the ring before any callback runs: a callback may submit (and so reap) again."""
        ring = self._ring
        assert ring is not None
        batch = ring.reap()
        if not batch:
            return
        table = self.table
        finished: list[tuple[Request, int]] = []
        for key, res in batch:
            if key == _CANCEL_KEY:
                # 0: found and cancelled; -ENOENT: already done; -EALREADY: running, it
                # comes back when it ends. Either way the entry's own result follows.
                self.cancel_results[res] = self.cancel_results.get(res, 0) + 1
                continue
            entry = table.pop(key, None)
            if entry is None:
                continue
            req = entry.req
            if req.completion.finished():
                self._release(req)  # aborted: its buffer goes now, with the entry
                if entry.spare is not None:
                    self._give_back(entry.spare)
                continue
            if res < 0:
                req.error = OSError(-res, os.strerror(-res))
                self.active -= 1
                finished.append((req, 0))
                if entry.spare is not None:
                    self._give_back(entry.spare)
                continue
            done = entry.done + res
            if res and done < entry.total and entry.opcode in (OP_READ, OP_WRITE):
                entry.done = done  # a short transfer: the rest, as a worker's loop would
                flags = (
                    SQE_ASYNC if entry.opcode == OP_READ and entry.total > self.async_above else 0
                )
                self._queue(entry, req.pos, flags)
                self._schedule_flush()
                continue
            if res == 0 and done < entry.total and entry.opcode == OP_WRITE:
                req.error = OSError(errno.EIO, "pwrite wrote nothing")
            self.active -= 1
            if entry.spare is not None:
                # The kernel is done with it: the request holds it until `_finish` copies
                # the bytes out (a copy per finished read, so within the finisher's share).
                req.spare = entry.spare
            finished.append((req, req.base + done if entry.opcode == OP_READ else done))
        self._feed()  # fill the room before callbacks run: FIFO order for waiters
        if self._settle_waiters:
            self._fire_settle_waiters()
        finisher = self._finisher
        if not finisher.queue and not finisher.scheduled and len(finished) <= finisher.limit:
            for req, result in finished:  # all of them now, without queueing them
                self._finish(req, result, counted=False)
            return
        for req, result in finished:
            finisher.add(req, result)
        # At most FINISH_PER_CALLBACK completions now, the rest in the next passes.
        finisher.run(self._handle)

    def _finish_reaped(self, req: Request, result: int) -> None:
        """Finish a request whose completion entry was reaped (`Finisher`)."""
        self._finish(req, result, counted=False)

    def _finish(self, req: Request, result: int, counted: bool = True) -> None:
        """Finish a request's completion; `counted`: its room is still to give back."""
        if counted:
            self._release(req)
        else:
            req.file.drop_ref()
        error = req.error
        if error is not None:
            req.completion.error(translate_error(error, req))
            return
        spare = req.spare
        if spare is None:
            req.completion.complete(result)
            return
        req.spare = None
        buffer: Any = spare[0]  # a `c_char` array: its slice is a copy, as `bytes`
        data: bytes = buffer[:result]
        self._give_back(spare)
        req.completion.complete_with_bytes(data)

    def _release(self, req: Request) -> None:
        self.active -= 1
        req.file.drop_ref()

    def _feed(self) -> None:
        """Start waiting requests while there is room (aborted ones never start)."""
        pending = self.pending
        started = False
        while pending and self.active < self.limit:
            req = pending.popleft()
            if req.completion.finished():
                req.file.drop_ref()
                continue
            self._start(req)
            started = True
        if started:
            self._schedule_flush()

    # -- settling and cancelling ----------------------------------------------------------

    def aborted(self) -> None:
        """The abort hook: a completion in the ring was aborted. Its cancel goes with the
        flush of this loop pass (posted to the loop from any other thread)."""
        handle = self._handle
        if self._ring is None or handle is None or not self.table:
            return
        self._cancel_due = True
        if threading.get_ident() == self._loop_thread and handle.is_current():
            self._schedule_flush()
        else:  # another thread, or the loop is not running: `post` copes with a closed loop
            handle.post(self._flush, None)

    def _queue_cancels(self) -> bool:
        """Queue an ASYNC_CANCEL for every entry whose completion finished (was aborted)
        while in the ring; return whether any was queued."""
        self._cancel_due = False
        ring = self._ring
        if ring is None:
            return False
        queued = False
        for key, entry in list(self.table.items()):
            if not entry.cancelled and entry.req.completion.finished():
                entry.cancelled = True
                if ring.queued >= ring.sq_entries:
                    self._enter(0, submit=True)
                ring.queue(OP_ASYNC_CANCEL, -1, 0, key, 0, _CANCEL_KEY)
                self.cancels += 1
                queued = True
        return queued

    def cancel_abandoned(self) -> None:
        """Queue an ASYNC_CANCEL for every entry whose completion finished (was aborted)
        while in the ring; the next flush submits them."""
        if self._queue_cancels() and self._handle is not None:
            self._schedule_flush()

    def when_settled(self, callback: Callable[[], object]) -> bool:
        """Cancel abandoned entries, and call `callback()` on the loop once every entry in
        the ring now has come back; False (never called) if none is."""
        if not self.table:
            return False
        self.cancel_abandoned()
        self._settle_waiters.append((self._next_key - 1, callback))  # the last key out
        return True

    def _fire_settle_waiters(self) -> None:
        self._settle_waiters, fire = split_settle_waiters(
            self._settle_waiters, next(iter(self.table), None)
        )
        for callback in fire:
            callback()

    def abort_all(self) -> None:
        """Abort what waits for room (released at once) and what is in the ring (cancelled;
        released when its completion entry arrives)."""
        pending = list(self.pending)
        self.pending.clear()
        for req in pending:
            req.completion.abort()
            req.file.drop_ref()
        for entry in list(self.table.values()):
            entry.req.completion.abort()
        try:
            self.cancel_abandoned()
        except IOResultError:
            pass  # a ring this thread may not use: `close` strands it

    def close(self, settle_timeout: float) -> None:
        """Abort, cancel, wait for every completion entry, then unmap the ring and close
        the eventfd. Each quiet spell waits at most `settle_timeout`; a ring that does not
        drain (or refuses this thread) is stranded, never unmapped. Idempotent."""
        try:
            self._close(settle_timeout)
        finally:
            self._hook.engine = None  # completions kept by their callers keep nothing

    def _close(self, settle_timeout: float) -> None:
        if self._parents_ring():
            self._let_go_in_child()
            return
        self._end_pass()
        self._finisher.drain()  # reaped already: finished with their results
        self.abort_all()
        ring = self._ring
        if ring is None:
            self._fire_all_settle_waiters()
            return
        try:
            self._enter(0, submit=True)
            self._reap()
            poller = select.poll()
            poller.register(self._efd, select.POLLIN)
            while self.table:
                # The eventfd bounds the wait (an enter that waits for an entry could not).
                deadline = _monotonic() + settle_timeout
                if not poller.poll(max(0, int((deadline - _monotonic()) * 1000))):
                    self._enter(0, submit=False)
                    self._reap()
                    if self.table:
                        raise IOResultError("io_uring entries did not come back in time")
                self._drain_eventfd()
                self._enter(0, submit=False)
                self._reap()
        except IOResultError:
            _STRANDED.append((ring, self.table))  # the kernel may still write there
            self._ring, self.table = None, {}
            self._unwatch()
            self._fire_all_settle_waiters()
            return
        self._unwatch()
        self._release_ring()
        self._fire_all_settle_waiters()

    def _let_go_in_child(self) -> None:
        """In a fork child: the ring, its entries and their buffers are the parent's. Only
        this process's copies of the mappings and descriptors go; nothing is cancelled,
        entered or waited for."""
        self._handle = None  # the parent's loop: nothing to unwatch here
        self._release_ring()
        self._end_pass()
        self.table = {}
        self.pending.clear()
        self.active = 0
        self._fire_all_settle_waiters()

    def _unwatch(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and self._efd >= 0:
            try:
                handle.unwatch(self._efd)
            except Exception as exc:
                report_unraisable(exc, "Exception while unwatching the io_uring eventfd", self)

    def _release_ring(self) -> None:
        """Unmap an idle ring and close its eventfd (nothing of it is in the kernel)."""
        self._unwatch()
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()
        self._spares.clear()
        self._spare_bytes = 0
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

    def _fire_all_settle_waiters(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, []
        for _, callback in waiters:
            callback()


def refuse(reason: str) -> IOResultError:
    """The error of `AsyncFileIO(engine="uring")` where the engine cannot run."""
    return IOResultError(f'AsyncFileIO(engine="uring") cannot run here: {reason}')
