"""Real files through io_uring, with no event loop: the ring of `core.io.ring` for `block`.

Theory of operation:
- A `File` method writes one submission entry in our memory and returns its completion; it
  raises at once for what cannot start (a closed file, a write to a read-only file) and,
  like `UnixIO`, fails the completion at once for a negative offset. Nothing reaches the
  kernel until `step()` or `wait_for_completion()`, which submit everything queued with ONE
  `io_uring_enter` (the wait rides the same call, `IORING_ENTER_GETEVENTS`), then finish
  the completions of every entry the kernel returned, on the calling thread. A full
  submission queue is submitted (and reaped) before the next entry is written; so is a
  file's queue before its descriptor is closed, since the kernel resolves descriptors only
  when it takes the entries.
- The completion queue never overflows: entries in flight plus entries about to be submitted
  stay within its size (twice the submission queue), waiting for completions first.
- Buffers: a read lands in the completion's own buffer; a write sends a private copy (the
  caller may reuse its buffer at once, as with `UnixIO`). Every buffer the kernel may touch,
  with the `ctypes` objects that give its address, stays in the table of entries keyed by
  `user_data` until that entry's completion arrives, even if its completion was aborted.
- Results match `UnixIO`: a short read or write is resubmitted for the rest (a read ends
  early only at the end of the file, a write that takes nothing is `EIO`); a negative
  result is `completion.error(CompletionError.from_os_error(...))` naming errno, path and
  offset.
- Cancellation: every submitted completion carries an abort hook (`Completion.on_abort`).
  Aborting it while its entry is in flight (`cancel(cs)`, a driver giving up, a group's
  `cancel()`, or a plain `abort()` with nothing stepping the operation any more) queues an
  `IORING_OP_ASYNC_CANCEL` for that entry's `user_data`; on the ring's own thread, outside
  a call into the ring, it goes to the kernel at once (submitted, not reaped), otherwise
  with the next `step()`/wait. Whatever the kernel returns for an abandoned entry later
  (`-ECANCELED`, `-EINTR`, or its real result when the cancel came too late: `-EALREADY`,
  `-ENOENT`) is dropped, and only then is its buffer let go. `cancel_results` counts what
  the cancels themselves returned.
- `close()` aborts and cancels everything in flight, waits for every last completion entry,
  and only then unmaps the ring and closes its descriptor. Dropped unclosed, the backend
  does the same from a finalizer. The ring belongs to the thread that set it up (see
  `core.io.ring`) and to its process: after `os.fork()` the child gets `IOResultError`.
- The files and the engine (ring, table, submission, reaping) are `core.io.uring_engine`'s,
  compiled with mypyc; this backend stays interpreted, since it hands itself to
  `weakref.finalize` and a compiled class takes no weak references.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections.abc import Iterable

from core.completion import Completion
from core.errors import IOResultError
from core.io.backend import OpenFlags, StrPath
from core.io.common import BackendBase
from core.io.ring import Ring
from core.io.unix import open_fd, unlink_path
from core.io.uring_engine import Engine, UringFile

__all__ = ["UringFile", "UringIO"]


class UringIO(BackendBase):
    """Real files through one io_uring ring of `entries` submission entries (twice as many
    completion entries); completions finish on the thread that steps or waits.

    Raises `IOResultError` at construction, naming the errno, where no ring can be set up
    (`UringIO.available()` says so without raising). The ring accepts only the thread that
    made it; after `os.fork()`, only the parent process.
    """

    needs_stepping = True  # completions progress only in step() or a wait: drivers step it

    def __init__(self, entries: int = 256) -> None:
        super().__init__()
        try:
            ring = Ring(entries, owner="UringIO")
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "?")
            raise IOResultError(f"io_uring is not available here: {name}: {exc}") from exc
        self._engine = Engine(ring)
        self._open_files: set[UringFile] = set()
        self._finalizer = weakref.finalize(self, self._engine.shutdown, False)

    @staticmethod
    def available() -> bool:
        """True where a ring can be set up (Linux x86_64/aarch64 with io_uring allowed)."""
        try:
            Ring(2).close()
        except OSError:
            return False
        return True

    @property
    def enters(self) -> int:
        """How many `io_uring_enter` calls this backend made."""
        return self._engine.enters

    @property
    def submissions(self) -> int:
        """How many of those calls handed entries to the kernel."""
        return self._engine.submissions

    @property
    def cancels(self) -> int:
        """How many `IORING_OP_ASYNC_CANCEL` entries this backend queued (one per entry whose
        completion was aborted while the kernel held it)."""
        return self._engine.cancels

    @property
    def cancel_results(self) -> dict[int, int]:
        """What those cancels returned, counted: 0 (found and cancelled), `-ENOENT` (it had
        finished), `-EALREADY` (running; it comes back when it ends)."""
        return dict(self._engine.cancel_results)

    @property
    def in_flight(self) -> int:
        """Entries queued or submitted whose completion entry has not arrived."""
        ring = self._engine.ring
        return self._engine.inflight + (ring.queued if ring is not None else 0)

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> UringFile:
        """Open `path`. Raises `CompletionError` with the errno and path (e.g. `ENOENT`,
        `EACCES`, `EISDIR`), kind `CLOSED` if the backend is closed, `IOResultError` in a
        fork child."""
        self._check_open("open_file")
        self._engine.usable("open_file")
        name = os.fspath(path)
        return UringFile(self, name, open_fd(name, flags), OpenFlags.READ_ONLY in flags)

    def remove_file(self, path: StrPath) -> None:
        """Unlink `path`. Raises `CompletionError` with errno and path."""
        self._check_open("remove_file")
        unlink_path(os.fspath(path))

    def step(self) -> int:
        """Submit what is queued and finish what has completed, without waiting."""
        engine = self._engine
        if not engine.busy():
            return 0
        return engine.flush(0)

    def wait_for_completion(self, c: Completion) -> None:
        """Submit, then wait in the kernel until `c` finishes; raise its error if it failed.

        Raises `IOResultError` if nothing in flight here could finish it, in a fork child,
        or from a thread the ring refuses.
        """
        engine = self._engine
        while not c.finished():
            if not engine.busy():
                raise IOResultError(
                    f"{c!r} can never finish on UringIO: nothing in flight here would "
                    "finish it (was it submitted to another backend?)"
                )
            engine.flush(1)
        error = c.get_error()
        if error is not None:
            raise error

    def cancel(self, cs: Iterable[Completion]) -> None:
        """Abort every unfinished completion in `cs` at once and ask the kernel to cancel
        the entries still in flight for them (their late results are dropped)."""
        engine = self._engine
        engine.abort_quietly(cs)
        if engine.busy():
            engine.cancel_abandoned()

    def close(self) -> None:
        """Cancel and drain everything in flight, unmap the ring, close every file;
        idempotent. Raises `IOResultError` from a thread the ring refuses."""
        if self._closed:
            return
        try:
            self._engine.shutdown(True)
        finally:
            self._finalizer.detach()
            for file in list(self._open_files):
                file.close()
            super().close()
