"""`AsyncFileIO`: real files for code running on an event loop (asyncio, uvloop or trio).

Two engines run what cannot complete inline: the worker pool described here (`"threads"`)
and one io_uring ring (`"uring"`, `bridge._uring_engine`, whose theory is there); both start
at `_stage` and share `bridge._fileio_common`. The rules below hold for both, except that
the ring has no workers: where a worker is named, read "the ring".

Theory of operation (Turso's `core/io/unix.rs` and `io_uring.rs` are the models: submit,
then complete on the thread that polls):
- Reads first try `preadv(..., RWF_NOWAIT)` inline, on the loop thread: a page-cache hit
  finishes the completion on the spot, never blocking the loop. A miss (`EAGAIN`), the rest
  of a partial hit, and every write, fsync and truncate go to a small pool of worker threads.
  Inline copies are bounded per loop pass (`inline_budget`): a read that does not fit in
  what is left waits for the next pass (a loop turn, much cheaper than a thread hop), and
  one larger than the whole budget goes to the pool; so a hundred tasks each reading a
  cached megabyte in the same pass cannot hold the loop for the time of twenty copies.
  A read larger than `inline_max` (by default 256 KiB) is never tried
  inline while a loop runs here: its copy is made by a worker, or by the kernel's own
  worker for the ring, not on the loop thread. Measured on two cores (bench_loop_lag),
  sending 256 KiB reads there cost the loop less CPU but lagged it more (the workers'
  hand-offs and copies compete with it for the cores), so the default keeps them inline,
  where the per-pass budget bounds them (about 50 us per cached 256 KiB).
  Whether RWF_NOWAIT exists is decided once per backend (`os.RWF_NOWAIT`, Linux); a file
  whose file system refuses it (`EOPNOTSUPP`) turns it off for that file on first use. A
  file that misses the cache 8 times in a row, or misses once after the backend's files
  together missed 8 times in a row (a cold workload with a handle per task), sends its
  next 32 reads straight to the engine (a miss costs a system call and an exception on
  the loop thread), then tries again. A hit starts both counts over. The pause does not
  grow: a longer one (doubling up to 1,024 reads) kept a file that turned hot on the
  engine for up to 1,024 reads, and in `bench_loop_lag.py`, where one file is read cold,
  then hot, the hot rounds' p99 lag went from 1.2-1.3 ms to 1.9-3.1 ms.
- Workers only make system calls. Everything is owned by the loop thread except the
  submission queue and the finished-batch queue: submissions are staged, and one loop
  callback per loop pass (`_flush`) cuts them into batches and puts each batch on the queue.
  A worker takes a whole batch, runs its calls in order, and posts it back with one wake-up
  of the loop (batches that finish while a wake-up is pending ride along with it), where
  `complete()` / `error()` run: completion callbacks always run on the loop thread, so
  nothing above needs a lock. One wake-up finishes at most `FINISH_PER_CALLBACK` (16)
  completions and leaves the rest for the next passes (`Finisher`): each finished
  completion wakes a task that steps in the next pass, and 200 of them in one callback
  would make one long callback and one long pass. Requests submitted by one task in one
  step (a group's children, a write and its sync) form a *unit*: a unit is never split
  across batches, which keeps it in order and lets its group finish in one wake-up;
  separate units are spread over the workers so independent cold reads run in parallel.
- At most `max_in_flight` requests are with the workers. Beyond that, submissions wait in a
  pending queue that is fed as results come back: `File.pread` and friends never block.
- A request whose completion finished before a worker reached it (aborted) is skipped. A
  driver that gives up on an operation asks `when_settled` to hear when every batch already
  with a worker has come back, so no worker still writes into the buffers of an operation
  that was cancelled.
- The loop is bound lazily, on the first submission that needs the workers, to the loop
  running on the calling thread; an idle backend rebinds to a new loop. A file's descriptor
  is closed only when no request holding it is left, so a number is never reused under a
  worker's feet. Workers are daemon threads started on first use: an unclosed backend never
  holds the process at exit. `close()`/`aclose()` abort what has not started, let what a
  worker holds finish (bounded by `settle_timeout`), join the threads and close the files.
- Dropped without closing: the workers and the ring's loop registration hold the backend
  only weakly (a worker holds it strongly only while it runs a batch), so an idle backend
  that nothing else references is collected. Its finalizer then warns (`ResourceWarning`
  naming `AsyncFileIO`), stops the workers, closes the ring and closes every descriptor it
  opened; `close()` detaches the finalizer.
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from time import monotonic as _monotonic
from types import TracebackType
from typing import Self

from bridge import _uring_engine
from bridge._async_file import HAVE_NOWAIT, AsyncFile, InlineReads
from bridge._drive_common import (
    DEFAULT_SETTLE_TIMEOUT,
    DEFAULT_TIME_SLICE,
    check_seconds,
    current_library,
)
from bridge._errors import EventLoopError, InvalidArgumentError
from bridge._fileio_common import (
    FINISH_PER_CALLBACK,
    AsyncioLoopHandle,
    Finisher,
    Kind,
    LoopHandle,
    Request,
    split_settle_waiters,
    translate_error,
)
from core.completion import Completion
from core.errors import CompletionError, ErrorKind, IOResultError
from core.io.backend import OpenFlags, StrPath
from core.io.common import BackendBase
from core.io.unix import open_fd, unlink_path
from core.unraisable import report_unraisable

__all__ = [
    "DEFAULT_INLINE_BUDGET",
    "DEFAULT_INLINE_MAX",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_WORKERS",
    "AsyncFile",
    "AsyncFileIO",
]

DEFAULT_WORKERS = 4
"""Worker threads in the pool."""

DEFAULT_MAX_IN_FLIGHT = 256
"""Requests that may be with the workers at once; more wait in the pending queue."""

AUTO_URING = True
"""Whether `engine="auto"` picks io_uring where a ring can be set up (see `AsyncFileIO`)."""

DEFAULT_SQPOLL = 0.0
"""The `sqpoll` of an `AsyncFileIO` made without one: 0, no kernel polling thread."""

MAX_SQPOLL = 10.0
"""The longest `sqpoll` accepted, in seconds."""

DEFAULT_INLINE_BUDGET = 1 << 20
"""Bytes that inline (page-cache hit) reads may copy on the loop thread per loop pass."""

DEFAULT_INLINE_MAX = 256 << 10
"""The largest read tried inline by an `AsyncFileIO` made without `inline_max` (or less,
if its `inline_budget` is smaller)."""


def _no_preadv(*args: object) -> int:
    raise OSError(errno.ENOSYS, "preadv is not available on this platform")


class _Batch:
    """Requests a worker runs in order and posts back with one wake-up."""

    __slots__ = ("delivered", "requests", "seq")

    def __init__(self, seq: int, requests: list[Request]) -> None:
        self.seq = seq
        self.requests = requests
        self.delivered = False


def _no_loop_here() -> bool:
    """Whether no event loop (asyncio, uvloop or trio) runs on this thread, found without
    raising: `AsyncFileIO._bind` refuses then, and its callers that only ask ask this
    first. Outside any loop every inline hit asks, and an exception raised and caught
    there added about 0.4 us to each read."""
    return asyncio._get_running_loop() is None and current_library() != "trio"


class AsyncFileIO(BackendBase):
    """Real files for operations driven by `bridge.drive` on asyncio, uvloop or trio.

    Arguments (all keyword-only):
    - `workers` (default 4): worker threads for what cannot complete inline.
    - `max_in_flight` (default 256): requests with the workers at once; more wait, in order,
      without blocking the loop.
    - `time_slice` (default 0.002 s): how long `drive` may run already-finished steps before
      it gives the loop a turn.
    - `settle_timeout` (default 1.0 s): how long a cancelled `drive`, or `aclose()`, waits for
      work already inside a worker's system call.
    - `nowait` (default None: use RWF_NOWAIT where the platform has it): False sends every
      read to the pool (the path platforms without RWF_NOWAIT take).
    - `inline_budget` (default 1 MiB): bytes that inline reads may copy on the loop
      thread in one loop pass; a read that does not fit in what is left waits for the next
      pass (one larger than the whole budget goes to the pool), so many operations reading
      at once cannot hold the loop for long. Against 256 KiB, 1 MiB kept the ticker's p99
      (`bench_loop_lag.py`: under 1.5 ms either way; its p50 on asyncio rose from about 0.4
      to 0.6 ms) and doubled what 128 tasks reading cached 4 KiB pages at once get done:
      256 KiB is 64 such reads per pass, and the others waited a pass each.
    - `inline_max` (default None: `inline_budget`, at most 256 KiB): the largest read
      tried inline. A larger one goes to the pool or the ring while an event loop runs on this
      thread, so that its copy is made off the loop thread (outside a loop, where nothing
      else could run, it is tried inline if it fits the budget). Worth lowering where
      spare cores can take the copies; on two busy cores it lagged the loop more
      (`bench_loop_lag.py`).
    - `engine` (default "auto"): what runs the I/O that does not complete inline: "threads"
      (the worker pool), "uring" (one io_uring ring, `bridge._uring_engine`; raises
      `IOResultError` naming why where no ring can be set up), or "auto": the ring where
      one can be set up, else the pool, never raising (a ring refused at the first
      submission after the probe passed also moves it to the pool). "auto" prefers the
      ring because it measured faster on cold reads (`benchmarks/bench_file_reads.py`,
      drive over AsyncFileIO, 32 at once: 1.6-2.7x on asyncio and uvloop) and the same on
      hot ones (both read inline). `io.engine` says which runs.
    - `sqpoll` (default None: `DEFAULT_SQPOLL`, 0): on the io_uring engine, seconds (at
      most 10) that a kernel thread polling the ring stays awake after the last submission
      (`IORING_SETUP_SQPOLL`); 0 for none. The thread takes the entries from the ring
      and does the kernel's share of starting and finishing each I/O, on another CPU,
      which the loop thread otherwise does (`bench_file_reads.py` measures both). The
      price: while I/O keeps coming, that thread keeps a CPU busy, and it spins for
      `sqpoll` after the last; a lone read waits a little longer (the thread's hop).
      Worth it where a spare core exists and reads miss the page cache. Where the kernel
      refuses the thread (before Linux 5.11 without CAP_SYS_ADMIN), the ring runs
      without it; `io.sqpoll` says whether one runs (once the ring is set up, at the
      first I/O it takes). Ignored when "auto" picks the pool.

    Use it with `async with AsyncFileIO() as io:` (or `await io.aclose()`); a plain `close()`
    also works. `block(op, AsyncFileIO())` is refused with `EventLoopError` (an
    `IOResultError`): its completions finish on the event loop, which `block` would stall.

    Raises `InvalidArgumentError` for an argument out of range, and `IOResultError` on a
    platform without POSIX `preadv`/`pwritev`.
    """

    needs_stepping = False
    # The inline read; a class attribute so that a subclass can stand in for the kernel.
    _preadv: Callable[..., int] = staticmethod(getattr(os, "preadv", _no_preadv))

    def __init__(
        self,
        *,
        workers: int = DEFAULT_WORKERS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        time_slice: float = DEFAULT_TIME_SLICE,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        nowait: bool | None = None,
        inline_budget: int = DEFAULT_INLINE_BUDGET,
        inline_max: int | None = None,
        engine: str = "auto",
        sqpoll: float | None = None,
    ) -> None:
        if engine not in ("auto", "uring", "threads"):
            raise InvalidArgumentError(
                f'engine must be "auto", "uring" or "threads", got {engine!r}'
            )
        if sqpoll is None:
            sqpoll = DEFAULT_SQPOLL if engine != "threads" else 0.0
        if (
            isinstance(sqpoll, bool)
            or not isinstance(sqpoll, int | float)
            or not 0 <= sqpoll <= MAX_SQPOLL
        ):
            raise InvalidArgumentError(
                f"sqpoll must be a number of seconds from 0 to {MAX_SQPOLL:g}, got {sqpoll!r}"
            )
        if sqpoll and engine == "threads":
            raise InvalidArgumentError(
                'sqpoll is a setting of the io_uring engine; engine="threads" has no ring'
            )
        if not hasattr(os, "preadv"):
            raise IOResultError(
                "AsyncFileIO needs POSIX preadv/pwritev (Linux or macOS); this platform has none"
            )
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidArgumentError(f"workers must be an int >= 1, got {workers!r}")
        if (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise InvalidArgumentError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        if (
            isinstance(inline_budget, bool)
            or not isinstance(inline_budget, int)
            or inline_budget < 0
        ):
            raise InvalidArgumentError(f"inline_budget must be an int >= 0, got {inline_budget!r}")
        if inline_max is None:
            inline_max = min(inline_budget, DEFAULT_INLINE_MAX)
        if isinstance(inline_max, bool) or not isinstance(inline_max, int) or inline_max < 0:
            raise InvalidArgumentError(
                f"inline_max must be None or an int >= 0, got {inline_max!r}"
            )
        super().__init__()
        self.workers = workers
        # The budget, the bytes still to copy in this loop pass, and the misses in a row,
        # shared with the files.
        self._inline_reads = InlineReads(inline_budget, inline_max)
        self._deferred: list[tuple[AsyncFile, int, Completion]] = []  # reads for next pass
        self.max_in_flight = max_in_flight
        self.time_slice = check_seconds(time_slice, "time_slice")
        self.settle_timeout = check_seconds(settle_timeout, "settle_timeout")
        self._nowait = HAVE_NOWAIT if nowait is None else (bool(nowait) and HAVE_NOWAIT)
        self._files: set[AsyncFile] = set()
        self._fds: set[int] = set()  # descriptors opened and not yet closed
        self._handle: LoopHandle | None = None
        # Loop-thread state.
        self._staged: list[Request] = []
        self._flush_scheduled = False
        self._pending: deque[Request] = deque()
        self._in_flight = 0
        self._outstanding: dict[int, _Batch] = {}  # seq -> batch, ascending seq
        self._seq = 0
        self._settle_waiters: list[tuple[int, Callable[[], object]]] = []
        self._pool_submissions = 0
        self._shut_down = False
        # Shared with workers.
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._done: deque[_Batch] = deque()  # finished by workers, not yet delivered
        self._wake_pending = False  # a `_deliver_done` is posted and has not run yet
        # Requests back from the workers whose completions are still to be finished.
        self._finisher = Finisher(self._finish_request, FINISH_PER_CALLBACK)
        reason = None if engine == "threads" else _uring_engine.unavailable_reason()
        if engine == "uring" and reason is not None:
            raise _uring_engine.refuse(reason)
        uring = engine == "uring" or (engine == "auto" and AUTO_URING and reason is None)
        self._auto = engine == "auto"
        self.engine = "uring" if uring else "threads"
        """Which engine runs: "uring" (one io_uring ring) or "threads" (the worker pool)."""
        # The kernel counts the idle time in whole milliseconds: at least one.
        idle = max(1, round(sqpoll * 1000)) if sqpoll else 0
        self._uring = _uring_engine.UringEngine(self, max_in_flight, idle) if uring else None
        self._finalizer = weakref.finalize(
            self, _release_dropped, self._queue, self._threads, self._fds, self._uring
        )

    # -- introspection ------------------------------------------------------------------

    @staticmethod
    def uring_available() -> bool:
        """True where the io_uring engine can run (a ring and its eventfd can be set up);
        probed once per process, never raises."""
        return _uring_engine.unavailable_reason() is None

    @staticmethod
    def sqpoll_available() -> bool:
        """True where the io_uring engine's ring can have a polling thread (`sqpoll`);
        probed once per process, never raises."""
        return _uring_engine.sqpoll_runs()

    @property
    def sqpoll(self) -> bool:
        """Whether a kernel thread polls the io_uring engine's ring (see the `sqpoll`
        argument); False on the pool, and before the ring is set up at its first I/O."""
        return self._uring is not None and self._uring.sqpoll

    @property
    def nowait(self) -> bool:
        """Whether reads try RWF_NOWAIT inline first (per file it may turn itself off)."""
        return self._nowait

    @property
    def in_flight(self) -> int:
        """Requests handed to the workers (or the ring) and not yet finished."""
        return self._in_flight if self._uring is None else self._uring.active

    @property
    def pending(self) -> int:
        """Requests submitted but not yet handed to the workers or the ring (staged or
        over the bound)."""
        waiting = 0 if self._uring is None else len(self._uring.pending)
        return len(self._staged) + len(self._pending) + len(self._deferred) + waiting

    @property
    def inline_budget(self) -> int:
        """Bytes that inline reads may copy on the loop thread per loop pass."""
        return self._inline_reads.budget

    @property
    def inline_max(self) -> int:
        """The largest read tried inline while a loop runs on this thread."""
        return self._inline_reads.max

    @property
    def pool_submissions(self) -> int:
        """How many requests went to the pool since construction (inline reads do not)."""
        return self._pool_submissions

    @property
    def worker_threads(self) -> int:
        """Worker threads alive now (0 until the pool is first needed, and after close)."""
        return sum(1 for t in self._threads if t.is_alive())

    # -- IOBackend ------------------------------------------------------------------------

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> AsyncFile:
        """Open `path` (a plain `open(2)`, inline). Raises `CompletionError` with the errno and
        path (`ENOENT`, `EACCES`, `EISDIR`, ...), or kind `CLOSED` if the backend is closed."""
        self._check_open("open_file")
        name = os.fspath(path)
        file = AsyncFile(self, name, open_fd(name, flags), OpenFlags.READ_ONLY in flags)
        self._files.add(file)
        self._fds.add(file.fd)
        return file

    def remove_file(self, path: StrPath) -> None:
        """Unlink `path` (inline). Raises `CompletionError` with errno and path, or `CLOSED`."""
        self._check_open("remove_file")
        unlink_path(os.fspath(path))

    def wait_for_completion(self, c: Completion) -> None:
        """Refuse to wait: completions here finish on the event loop, which a blocking wait
        would stall. A completion that already finished is returned from (or its error
        raised).

        Raises `EventLoopError` (an `IOResultError`) for an unfinished completion.
        """
        if not c.finished():
            raise EventLoopError(
                f"AsyncFileIO cannot wait for {c!r} by blocking: its completions finish on "
                "the event loop. Run the operation with `await bridge.drive(op, io)`."
            )
        error = c.get_error()
        if error is not None:
            raise error

    # -- settling (used by `drive` after a cancellation) ----------------------------------

    def when_settled(self, callback: Callable[[], object]) -> bool:
        """Arrange for `callback()` to run on the loop thread once every batch that is with
        a worker (or entry in the ring, cancelled if abandoned) now has come back; return
        False (and never call it) if none is."""
        if self._uring is not None:
            return self._uring.when_settled(callback)
        if not self._outstanding:
            return False
        self._settle_waiters.append((self._seq, callback))
        return True

    # -- the inline budget (loop thread) --------------------------------------------------

    def _schedule_inline_reset(self) -> None:
        """Refill the inline budget at the next loop pass. Without a loop here (a caller
        outside any event loop) there is no loop to protect: refill at once."""
        self._inline_reads.reset_due = True
        handle = self._handle
        if handle is None or not handle.is_current():
            if _no_loop_here():  # what `_bind` would refuse, without its exception
                self._reset_inline_budget()
                return
            try:
                handle = self._bind()
            except EventLoopError:
                self._reset_inline_budget()
                return
        handle.call_soon(self._reset_inline_budget, None)

    def _reset_inline_budget(self, _: object = None) -> None:
        """Loop callback, once per pass that read inline: refill, then run the reads that
        were deferred for want of budget (each may be deferred again, or go to the pool)."""
        inline = self._inline_reads
        inline.left = inline.budget
        inline.reset_due = False
        deferred = self._deferred
        if not deferred:
            return
        self._deferred = []
        for file, pos, c in deferred:
            try:
                if not c.finished():  # else: aborted while it waited
                    buffer = c.buffer
                    assert buffer is not None
                    file._read(pos, c, buffer)
            except IOResultError as exc:
                error = (
                    exc
                    if isinstance(exc, CompletionError)
                    else CompletionError(ErrorKind.IO, str(exc), path=file.path, offset=pos)
                )
                c.error(error)
            finally:
                file.drop_ref()

    # -- submission (loop thread) ---------------------------------------------------------

    def _stage(self, req: Request) -> None:
        if self._closed:
            raise CompletionError(ErrorKind.CLOSED, f"{req.kind.value} on a closed AsyncFileIO")
        handle = self._handle
        if handle is None or not handle.is_current():
            handle = self._bind()
        req.file._refs += 1
        self._pool_submissions += 1
        req.unit = handle.unit()
        if self._uring is not None:
            try:
                self._uring.submit(req, handle)
            except IOResultError:
                if not self._fall_back_to_threads():
                    self._pool_submissions -= 1
                    self._drop(req)
                    raise
            except BaseException:
                self._pool_submissions -= 1
                self._drop(req)
                raise
            else:
                return
        if req.buffers is None and req.kind is Kind.READ:
            req.read_view()  # staged without a buffer (the ring's pick): the pool uses `c.buffer`
        self._staged.append(req)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            handle.call_soon(self._flush, None)

    def _fall_back_to_threads(self) -> bool:
        """After the ring's lazy setup failed at a first submission (the probe's small ring
        passed, the real one did not: `RLIMIT_MEMLOCK` before Linux 5.12, memory), an
        `engine="auto"` backend moves to the pool for good; True if it did."""
        uring = self._uring
        if not self._auto or uring is None or not uring.never_started():
            return False
        self._uring = None
        self.engine = "threads"
        return True

    def _loop_here(self) -> bool:
        """Whether an event loop runs on this thread that the backend is (or can be) bound to."""
        handle = self._handle
        if handle is not None and handle.is_current():
            return True
        if _no_loop_here():
            return False
        try:
            self._bind()
        except EventLoopError:
            return False
        return True

    def _bind(self) -> LoopHandle:
        """Bind to the loop running on this thread (first use, or an idle backend moving on).

        Raises `EventLoopError` with no loop here, or when busy on another loop.
        """
        if _no_loop_here():
            raise EventLoopError(
                "AsyncFileIO needs a running event loop (asyncio, uvloop or trio) on this "
                "thread for I/O that cannot complete inline; run the operation with "
                "`await bridge.drive(op, io)`"
            )
        handle: LoopHandle
        loop = asyncio._get_running_loop()
        if loop is None:  # trio
            from bridge._trio import TrioLoopHandle

            handle = TrioLoopHandle()
        else:
            handle = AsyncioLoopHandle(loop)
        busy = self._staged or self._pending or self._outstanding
        if self._handle is not None and (busy or (self._uring and self._uring.busy())):
            raise EventLoopError(
                "AsyncFileIO is busy on another event loop (or thread); submit from the loop "
                "it is bound to, or let its I/O finish first"
            )
        self._handle = handle
        return handle

    def _flush(self, _: object = None) -> None:
        """Loop callback: move this pass's staged requests into the pending queue and feed."""
        self._flush_scheduled = False
        if self._staged:
            self._pending.extend(self._staged)
            self._staged = []
        self._feed()

    def _feed(self) -> None:
        """Hand pending requests to the workers, up to the in-flight bound."""
        pending = self._pending
        room = self.max_in_flight - self._in_flight
        if room <= 0 or not pending:
            return
        take: list[Request] = []
        while pending and len(take) < room:
            req = pending.popleft()
            if req.completion.finished():  # aborted while waiting: never started
                self._drop(req)
                continue
            take.append(req)
        if not take:
            return
        self._in_flight += len(take)
        for requests in self._split(take):
            self._seq += 1
            batch = _Batch(self._seq, requests)
            self._outstanding[batch.seq] = batch
            self._queue.put(batch)
        self._start_workers()

    def _split(self, take: list[Request]) -> list[list[Request]]:
        """Cut requests into at most `workers` batches without splitting a unit."""
        units: list[list[Request]] = []
        last: object = Request  # a key no request has
        for req in take:
            if req.unit is last and units:
                units[-1].append(req)
            else:
                units.append([req])
                last = req.unit
        count = min(self.workers, len(units))
        if count == 1:
            return [take]
        batches: list[list[Request]] = [[] for _ in range(count)]
        for unit in units:
            smallest = min(batches, key=len)
            smallest.extend(unit)
        return batches

    def _start_workers(self) -> None:
        threads = self._threads
        while len(threads) < self.workers:
            t = threading.Thread(
                target=_worker_main,
                args=(self._queue, weakref.ref(self)),
                name=f"ioresult-worker-{len(threads)}",
                daemon=True,
            )
            threads.append(t)
            t.start()

    # -- workers ----------------------------------------------------------------------------

    def _work(self, batch: _Batch) -> None:
        """Run one batch and post it back (worker thread; see `_worker_main`)."""
        try:
            self._run_batch(batch)
        except BaseException as exc:  # never let anything escape a worker
            for req in batch.requests:
                if req.error is None and not req.skipped:
                    req.error = exc
        # Coalesce wake-ups: a batch finished while an earlier wake-up is still pending
        # rides along with it. The loop clears the flag *before* it drains `_done`, so
        # a batch is either drained by a pending wake-up or posts one of its own (two
        # workers racing here can only cause a spare, empty wake-up, never a lost one).
        self._done.append(batch)
        if not self._wake_pending:
            self._wake_pending = True
            handle = self._handle
            if handle is not None:
                # False if the loop is gone: `close()` releases what `_done` holds.
                handle.post(self._deliver_done, None)

    def _run_batch(self, batch: _Batch) -> None:
        """Run a batch's system calls in order (worker thread)."""
        for req in batch.requests:
            if req.completion.finished():  # aborted before we got to it
                req.skipped = True
                continue
            try:
                req.result = req.run(req.file.fd)
            except Exception as exc:
                req.error = exc

    # -- results (loop thread) --------------------------------------------------------------

    def _deliver_done(self, _: object = None) -> None:
        """Loop callback (one wake-up): take back every batch the workers have finished,
        then finish their completions, at most `FINISH_PER_CALLBACK` in this callback (the
        rest in the next passes: `Finisher`)."""
        self._wake_pending = False
        done = self._done
        while done:
            self._deliver(done.popleft())
        try:
            self._finisher.run(self._handle)
        except Exception as exc:  # a bug here must not kill the loop (trio would crash)
            report_unraisable(exc, "Exception while delivering AsyncFileIO results", self)

    def _deliver(self, batch: _Batch) -> None:
        """Take a batch back (room in flight, settle waiters) and queue its completions to
        be finished, on the loop thread."""
        try:
            if batch.delivered:
                return
            batch.delivered = True
            del self._outstanding[batch.seq]
            self._in_flight -= len(batch.requests)
            self._feed()  # keep the workers busy before running callbacks
            finisher = self._finisher
            for req in batch.requests:
                if req.skipped:
                    self._drop(req)
                else:
                    finisher.add(req, req.result)
            if self._settle_waiters:
                self._fire_settle_waiters()
        except Exception as exc:  # a bug here must not kill the loop (trio would crash)
            report_unraisable(exc, "Exception while delivering AsyncFileIO results", self)

    def _finish_request(self, req: Request, result: int) -> None:
        """Finish the completion of a request a worker ran (loop thread)."""
        self._drop(req)
        error = req.error
        if error is None:
            req.completion.complete(result)
        else:
            req.completion.error(translate_error(error, req))

    def _drop(self, req: Request) -> None:
        """A request no longer holds its file; the last one closes a closed file's fd."""
        req.file.drop_ref()

    def _close_fd(self, fd: int) -> None:
        self._fds.discard(fd)
        os.close(fd)

    def _fire_settle_waiters(self) -> None:
        self._settle_waiters, fire = split_settle_waiters(
            self._settle_waiters, next(iter(self._outstanding), None)
        )
        for callback in fire:
            callback()

    # -- closing ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close: abort what has not reached a worker, wait (at most `settle_timeout`) for
        what has, then join the workers and close the files. Idempotent."""
        if self._shut_down:
            return
        self._closed = True
        self._abort_waiting()
        uring = self._uring
        if uring is not None:
            uring.abort_all()
        try:
            out = self._outstanding or (uring is not None and uring.table)
            if out and self._handle is not None and self._handle.is_current():
                await self._handle.wait_settled(self, self.settle_timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Close now: abort everything not yet delivered, stop and join the workers (at most
        `settle_timeout` for a system call in progress), close the files. Idempotent.

        Call it on the loop's thread or after the loop has stopped.
        """
        if self._shut_down:
            return
        self._finalizer.detach()
        self._closed = True
        self._shut_down = True
        self._finisher.drain()  # came back already: finished with their results
        self._abort_waiting()
        for batch in list(self._outstanding.values()):
            for req in batch.requests:
                req.completion.abort()
        for _ in self._threads:
            self._queue.put(None)
        deadline = _monotonic() + self.settle_timeout
        for t in self._threads:
            t.join(max(0.0, deadline - _monotonic()))
        stuck = any(t.is_alive() for t in self._threads)
        if not stuck:
            # Every worker has stopped, so every batch is back (delivered, posted, or left in
            # `_done` because its loop was gone): release what they hold.
            for batch in list(self._outstanding.values()):
                batch.delivered = True
                for req in batch.requests:
                    self._drop(req)
            self._outstanding.clear()
            self._done.clear()
            self._in_flight = 0
            self._threads.clear()
        for callback in [cb for _, cb in self._settle_waiters]:
            callback()
        self._settle_waiters = []
        if self._uring is not None:
            self._uring.close(self.settle_timeout)
        for file in list(self._files):
            file.close()
        super().close()

    def _abort_waiting(self) -> None:
        """Abort and release what never reached a worker (staged, pending, deferred)."""
        waiting = self._staged + list(self._pending)
        deferred = self._deferred
        self._staged = []
        self._pending.clear()
        self._deferred = []
        for req in waiting:
            req.completion.abort()
            self._drop(req)
        for file, _pos, c in deferred:
            c.abort()
            file.drop_ref()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<AsyncFileIO {state} engine={self.engine} in_flight={self.in_flight} "
            f"pending={self.pending}>"
        )


def _worker_main(work: queue.SimpleQueue[_Batch | None], owner: weakref.ref[AsyncFileIO]) -> None:
    """A worker thread: run batches until the sentinel. It holds its backend only while it
    runs a batch (a queued batch holds it anyway, through its files), so a dropped idle
    backend can be collected and its finalizer stop the workers."""
    get = work.get
    while True:
        batch = get()
        if batch is None:
            return
        backend = owner()
        if backend is None:
            return
        backend._work(batch)
        del backend, batch


def _release_dropped(
    work: queue.SimpleQueue[_Batch | None],
    threads: list[threading.Thread],
    fds: set[int],
    uring: _uring_engine.UringEngine | None,
) -> None:
    """The finalizer of an `AsyncFileIO` collected without `close()`: say so, stop the
    workers, close the ring and the descriptors (without waiting: a worker in a system call
    finishes it on its own, and the ring's close waits for nothing)."""
    warnings.warn(
        "AsyncFileIO was dropped without being closed: its worker threads, ring and "
        f"{len(fds)} open file(s) are released now; close it (`async with AsyncFileIO() as io`"
        " or `await io.aclose()`)",
        ResourceWarning,
        stacklevel=2,
    )
    for _ in threads:
        work.put(None)
    if uring is not None:
        uring.close(0.0)
    for fd in list(fds):
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()
