"""What both engines of `AsyncFileIO` share: the loop handles and the request record.

Rules it keeps:
- A `Request` is one file operation as `AsyncFile` submits it, whichever engine runs it:
  the worker pool (`bridge._fileio`) runs `run(fd)` on a worker thread; the io_uring engine
  (`bridge._uring_engine`) turns it into ring entries. Either way the loop thread alone
  finishes its completion, and `translate_error` words its failure the same way.
- A `LoopHandle` is all an engine needs of the running loop: schedule a callback on it,
  post to it from another thread, and watch a descriptor for readability (the io_uring
  engine's eventfd). The asyncio handle is here; trio's is in `bridge._trio`, imported only
  under trio.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from threading import get_ident
from typing import TYPE_CHECKING, Any, Final, Protocol

from bridge._asyncio_wake import Resolver
from bridge._drive_common import when_settled_of
from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.io.backend import Buffer
from core.io.unix import read_fully, write_fully
from core.unraisable import report_unraisable

if TYPE_CHECKING:
    from bridge._async_file import AsyncFile

__all__ = [
    "FINISH_PER_CALLBACK",
    "AsyncioLoopHandle",
    "Finisher",
    "Kind",
    "LoopHandle",
    "Request",
    "split_settle_waiters",
    "translate_error",
]


class LoopHandle(Protocol):
    """The few things the backend needs from a running loop (asyncio or trio)."""

    thread_id: int

    def is_current(self) -> bool: ...
    def call_soon(self, fn: Callable[[Any], object], arg: object) -> None: ...
    def post(self, fn: Callable[[Any], object], arg: object) -> bool: ...
    def unit(self) -> object: ...
    async def wait_settled(self, io: object, settle_timeout: float) -> None: ...
    def watch_readable(self, fd: int, fn: Callable[[Any], object]) -> None: ...
    def unwatch(self, fd: int) -> None: ...


_get_running_loop: Final = asyncio.get_running_loop  # a C static when compiled

# Before Python 3.12 `asyncio.current_task` is a plain-Python function that reads this
# dict (loop -> its running task); a request asks it once per submission. From 3.12 on it
# is a C function, and the dict is not read.
_CURRENT_TASKS: Final[dict[object, object] | None] = (
    getattr(asyncio.tasks, "_current_tasks", None) if sys.version_info < (3, 12) else None
)


class AsyncioLoopHandle:
    """How the backend reaches an asyncio (or uvloop) loop."""

    __slots__ = ("loop", "thread_id")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread_id = get_ident()

    def is_current(self) -> bool:
        try:
            return _get_running_loop() is self.loop
        except RuntimeError:
            return False

    def call_soon(self, fn: Callable[[Any], object], arg: object) -> None:
        self.loop.call_soon(fn, arg)

    def post(self, fn: Callable[[Any], object], arg: object) -> bool:
        loop = self.loop
        if loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    def unit(self) -> object:
        tasks = _CURRENT_TASKS
        if tasks is not None:
            return tasks.get(self.loop)
        return asyncio.current_task(self.loop)

    async def wait_settled(self, io: object, settle_timeout: float) -> None:
        when_settled = when_settled_of(io)
        if when_settled is None:
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        if not when_settled(Resolver(fut)):
            return
        try:
            await asyncio.wait_for(asyncio.shield(fut), settle_timeout)
        except TimeoutError:
            pass

    def watch_readable(self, fd: int, fn: Callable[[Any], object]) -> None:
        """Call `fn(None)` on the loop whenever `fd` is readable (level-triggered)."""
        self.loop.add_reader(fd, fn, None)

    def unwatch(self, fd: int) -> None:
        """Stop watching `fd` (before it is closed); nothing to undo on a closed loop."""
        if self.loop.is_closed():
            return
        try:
            self.loop.remove_reader(fd)
        except RuntimeError:  # closed between the check and the call (uvloop raises)
            pass


FINISH_PER_CALLBACK: Final = 16
"""Completions one loop callback of an engine finishes; the rest wait for the next pass.

Each finished completion wakes a drive that steps in the next pass, and the drives share a
step budget per pass (`bridge._pass_budget`, 0.25 ms: 15-25 steps of a cold read). A
larger share wakes drives that find the pass spent and park again, each paying a Future
and one more wake-up. Measured on cold 4 KiB reads through the ring (compiled, medians of
alternated runs): 32 in flight took 22.4 us a read with 16 against 28.1 with 64 on
asyncio, 25.3 against 29.1 on uvloop, 24.3 against 29.2 on trio; 128 in flight 20.9
against 22.1 on asyncio."""


class Finisher:
    """Finishes the completions of requests that came back (from the workers or the ring)
    on the loop thread, at most `limit` per loop callback.

    Finishing a completion wakes the drive waiting on it, whose next step then runs in the
    next loop pass: a wake-up of 200 requests at once would make one long callback followed
    by a long pass. So an engine hands what came back to `add` and calls `run`, which
    finishes the first `limit` and schedules itself (`call_soon`) for the rest; requests
    that come back meanwhile queue behind them, so completions finish in the order they
    came back. The bookkeeping (room in flight, settle waiters) is the engine's, done when
    the request came back; only `finish(req, result)` waits here.
    """

    __slots__ = ("_finish", "_handle", "limit", "queue", "scheduled")

    def __init__(self, finish: Callable[[Request, int], object], limit: int) -> None:
        self._finish = finish
        self._handle: LoopHandle | None = None
        self.limit = limit
        self.queue: deque[tuple[Request, int]] = deque()
        self.scheduled = False  # a `_again` is on the loop

    def add(self, req: Request, result: int) -> None:
        self.queue.append((req, result))

    def run(self, handle: LoopHandle | None) -> None:
        """Finish up to `limit` queued completions (on the loop thread); schedule the rest
        on `handle`'s loop, or finish them all now without a loop to come back on."""
        if self.scheduled:
            if handle is self._handle:
                return  # the scheduled callback finishes them, in order
            # Scheduled on a loop the backend has left (closed with the callback queued):
            # that callback never runs, or finds itself stale (`_again`). Take over here.
            self.scheduled = False
        queue = self.queue
        finish = self._finish
        count = self.limit
        while queue and count:
            req, result = queue.popleft()
            finish(req, result)
            count -= 1
        if queue:
            if handle is None:
                self.drain()
                return
            try:
                handle.call_soon(self._again, handle)
            except RuntimeError:  # its loop is closed: nobody is left to wait a turn for
                self.drain()
                return
            self._handle = handle
            self.scheduled = True

    def _again(self, handle: object = None) -> None:
        """Loop callback: the next share (nothing, if scheduled on a loop since left)."""
        if not self.scheduled or handle is not self._handle:
            return
        self.scheduled = False
        try:
            self.run(self._handle)
        except Exception as exc:  # a bug here must not kill the loop (trio would crash)
            report_unraisable(exc, "Exception while finishing AsyncFileIO completions", self)

    def drain(self) -> None:
        """Finish everything queued now (closing)."""
        queue = self.queue
        finish = self._finish
        while queue:
            req, result = queue.popleft()
            finish(req, result)


class Kind(enum.Enum):
    READ = "pread"
    WRITE = "pwrite"
    SYNC = "fsync"
    TRUNCATE = "ftruncate"


class Request:
    """One system call (or a loop of them) for a worker. Workers write only `result`,
    `error` and `skipped`; the loop reads them after the batch is posted back."""

    __slots__ = (
        "base",
        "buffers",
        "completion",
        "error",
        "file",
        "kind",
        "pos",
        "result",
        "skipped",
        "spare",
        "unit",
    )

    def __init__(
        self,
        kind: Kind,
        file: AsyncFile,
        completion: Completion,
        pos: int,
        buffers: Sequence[Buffer] | memoryview | None,
        unit: object,
        base: int = 0,
    ) -> None:
        self.kind = kind
        self.file = file
        self.completion = completion
        self.pos = pos
        self.buffers = buffers
        self.unit = unit
        self.base = base
        self.result = 0
        self.error: BaseException | None = None
        self.skipped = False
        # For a read without a buffer (`buffers` None): the ring's spare buffer it landed
        # in, from its reap until its completion finishes.
        self.spare: tuple[Any, int, int] | None = None

    def read_view(self) -> memoryview:
        """A read's buffer: the one it was staged with, or (staged without one, for a
        completion that takes bytes) a view of the completion's, made now."""
        view = self.buffers
        if view is None:
            buffer = self.completion.buffer
            assert buffer is not None
            view = self.buffers = memoryview(buffer)
        assert isinstance(view, memoryview)
        return view

    def run(self, fd: int) -> int:
        """Make the system call(s); raises `OSError` (worker thread)."""
        match self.kind:
            case Kind.READ:
                view = self.buffers
                assert isinstance(view, memoryview)
                return self.base + read_fully(fd, view, self.pos)
            case Kind.WRITE:
                buffers = self.buffers
                assert isinstance(buffers, list | tuple)
                return write_fully(fd, buffers, self.pos)
            case Kind.SYNC:
                os.fsync(fd)
                return 0
            case Kind.TRUNCATE:
                os.ftruncate(fd, self.pos)
                return 0


def translate_error(error: BaseException, req: Request) -> CompletionError:
    """A worker's exception as the completion's error."""
    path = req.file.path
    offset = req.pos if req.kind in (Kind.READ, Kind.WRITE, Kind.TRUNCATE) else None
    if isinstance(error, OSError):
        return CompletionError.from_os_error(error, req.kind.value, path=path, offset=offset)
    err = CompletionError(
        ErrorKind.IO, f"{req.kind.value} raised {error!r}", path=path, offset=offset
    )
    err.__cause__ = error
    return err


def split_settle_waiters(
    waiters: list[tuple[int, Callable[[], object]]], lowest: int | None
) -> tuple[list[tuple[int, Callable[[], object]]], list[Callable[[], object]]]:
    """Split the waiters into those still waiting (first) and the callbacks due (second):
    due where the target (the last sequence number out when it registered) is below
    `lowest`, the lowest still out (None: nothing is). The caller stores the first before
    calling any of the second: a callback may register a new waiter."""
    keep: list[tuple[int, Callable[[], object]]] = []
    fire: list[Callable[[], object]] = []
    for target, callback in waiters:
        if lowest is None or target < lowest:
            fire.append(callback)
        else:
            keep.append((target, callback))
    return keep, fire
