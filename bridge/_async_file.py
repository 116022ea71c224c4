"""`AsyncFile`: a file of an `AsyncFileIO`, and the inline read of a page-cache hit.

A read first tries `preadv(..., RWF_NOWAIT)` on the loop thread; what that cannot finish,
and every write, fsync and truncate, goes to the backend's engine (`AsyncFileIO._stage`).
The rules (the per-pass inline budget, `inline_max`, the miss streak) are in
`bridge._fileio`'s theory of operation. This module compiles, its backend does not
(`AsyncFileIO` hands itself to `weakref.finalize`): a file's read of a page-cache hit runs
without an interpreted frame.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

from bridge._fileio_common import Kind, Request
from core.completion import Completion
from core.errors import CompletionError, ErrorKind, IOResultError
from core.io.backend import Buffer
from core.io.common import FileBase

if TYPE_CHECKING:
    from bridge._fileio import AsyncFileIO

__all__ = ["HAVE_NOWAIT", "AsyncFile", "InlineReads"]

_RWF_NOWAIT: Final[int] = getattr(os, "RWF_NOWAIT", 0)
HAVE_NOWAIT: Final = _RWF_NOWAIT != 0 and hasattr(os, "preadv")
"""Whether this platform has RWF_NOWAIT reads (Linux)."""
# After this many RWF_NOWAIT misses in a row (of one file, or of all a backend's files),
# a file's next `_MISS_PAUSE` reads skip the inline attempt. The pause stays short: a file
# that turns hot (read once, or warmed by another process) is noticed within that many reads.
_MISS_STREAK: Final = 8
_MISS_PAUSE: Final = 32
# The largest read that lands in a file's scratch buffer (`AsyncFile.pread`): larger ones
# get a buffer of their own rather than keep that much memory per file.
_SCRATCH_MAX: Final = 64 << 10
# What a kernel or file system says when it does not support RWF_NOWAIT reads.
_NOWAIT_UNSUPPORTED: Final = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}
)


class InlineReads:
    """What the files of one backend share about their inline (RWF_NOWAIT) reads: this loop
    pass's byte budget, and the misses in a row.

    A file counts its own misses too, but a cold workload that opens a handle per task
    would probe `_MISS_STREAK` times per handle before any of them paused (a quarter of the
    reads with 128 handles of 32 reads each). After a run of misses here, a file pauses at
    its first miss. A compiled object of its own, so that a read reaches these fields
    without the backend's attribute dictionary.
    """

    __slots__ = ("budget", "left", "max", "misses", "reset_due")

    def __init__(self, budget: int, max: int) -> None:
        self.budget = budget  # bytes inline reads may copy per loop pass
        self.max = max  # the largest read tried inline while a loop runs here
        self.left = budget  # bytes still to copy in this pass; refilled once per pass
        self.reset_due = False  # a refill is scheduled for the next pass
        self.misses = 0  # RWF_NOWAIT misses in a row, all files together


# Tests stand in for a file's methods with interpreted subclasses. Compiled, a method's
# call of another of its own (`pwrite` calling `pwritev`) does not reach their override.
@mypyc_attr(allow_interpreted_subclasses=True)
class AsyncFile(FileBase):
    """A file of an `AsyncFileIO`. Submit from the loop thread; buffers must stay untouched
    until their completion finishes."""

    __slots__ = (
        "_backend",
        "_inline_reads",
        "_misses",
        "_nowait",
        "_pause",
        "_preadv",
        "_refs",
        "_scratch",
        "fd",
    )

    def __init__(self, backend: AsyncFileIO, path: str, fd: int, read_only: bool) -> None:
        super().__init__(path, read_only)
        self._backend = backend
        self.fd = fd
        self._nowait = backend._nowait
        self._preadv = backend._preadv
        self._refs = 0  # requests holding `fd`: staged, pending or with a worker
        self._misses = 0  # RWF_NOWAIT misses in a row
        self._pause = 0  # reads still to send straight to the pool after a run of misses
        self._inline_reads: InlineReads = backend._inline_reads
        # The buffer that inline reads of completions that take bytes land in (`pread`),
        # kept between reads. A read takes it with one atomic `pop()`: reads from two
        # threads (outside any loop) must not share it. Empty while one is in use.
        self._scratch: list[bytearray] = []

    def pread(self, pos: int, c: Completion) -> Completion:
        """Read into `c.buffer` at `pos`: inline on a page-cache hit, else in the pool.

        Raises `CompletionError` (kind `CLOSED`; kind `IO`/`EINVAL` for a negative `pos`),
        `IOResultError` for a completion without a buffer, and `EventLoopError` if the read
        needs the pool and no event loop runs on this thread.
        """
        if self._closed:
            self._check_open("pread")
        length = c.takes_bytes()
        if length < 0:
            buffer = c.buffer
            if buffer is None:
                raise IOResultError(f"pread needs a read completion with a buffer, got {c!r}")
            length = len(buffer)
        else:
            buffer = None  # the completion takes bytes: its buffer is made only if needed
        if pos < 0:
            raise _negative("pread", self._path, pos)
        # The page-cache hit, inline here (one Python call less than `_read`).
        if self._nowait:
            inline = self._inline_reads
            if length <= inline.left and length <= inline.max:
                target: Sequence[bytearray | memoryview]
                if buffer is None and length <= _SCRATCH_MAX:
                    # Read into the file's scratch buffer and hand over a copy: no new
                    # zeroed buffer per read, and the scratch stays in the CPU's cache.
                    try:
                        scratch = self._scratch.pop()
                    except IndexError:  # another thread's read holds it
                        scratch = bytearray(length)
                    if len(scratch) != length:
                        scratch = bytearray(length)
                    target = [scratch]
                else:
                    if buffer is None:
                        buffer = c.buffer
                        assert buffer is not None
                    scratch = None
                    target = [buffer]
                try:
                    n = self._preadv(self.fd, target, pos, _RWF_NOWAIT)
                except OSError as exc:
                    if scratch is not None:
                        self._keep_scratch(scratch)
                    return self._inline_failed(pos, c, buffer, exc)
                # What `_inline_read` does, without the call.
                if self._misses or inline.misses:
                    self._hit()
                inline.left -= n
                if not inline.reset_due:
                    self._backend._schedule_inline_reset()
                if scratch is not None:
                    if n == length:
                        data = bytes(scratch)
                        if not self._scratch and not self._closed:  # `_keep_scratch` inline
                            self._scratch.append(scratch)
                        c.complete_with_bytes(data)
                        return c
                    if n == 0:  # at the end of the file
                        self._keep_scratch(scratch)
                        c.complete_with_bytes(b"")
                        return c
                    buffer = c.buffer  # a partial hit: the rest goes the buffer's way
                    assert buffer is not None
                    buffer[:n] = memoryview(scratch)[:n]
                    self._keep_scratch(scratch)
                    return self._read_rest(pos, c, buffer, n)
                assert buffer is not None
                if n in (length, 0):
                    c.complete(n)
                    return c
                return self._read_rest(pos, c, buffer, n)
        return self._read(pos, c, buffer)

    def _hit(self) -> None:
        """An RWF_NOWAIT read after misses (here or in another file) found the page cache:
        the streaks start over."""
        self._misses = 0
        self._inline_reads.misses = 0

    def _keep_scratch(self, scratch: bytearray) -> None:
        """Give the scratch buffer back for the next read (unless closed meanwhile, or
        another thread's read gave one back first)."""
        if not self._scratch and not self._closed:
            self._scratch.append(scratch)

    def _read(self, pos: int, c: Completion, buffer: bytearray | memoryview | None) -> Completion:
        """Inline if the page cache has it and this loop pass's budget allows, at the next
        pass if only the budget is short, else in the pool. No `buffer`: `c` takes bytes,
        and nobody asked for its buffer yet."""
        backend = self._backend
        if self._nowait:
            inline = self._inline_reads
            size = c.takes_bytes() if buffer is None else len(buffer)
            if size > inline.max and backend._loop_here():
                # Too large to copy on the loop thread: the pool or the ring copies it.
                return self._stage_read(pos, c, buffer)
            if buffer is None:
                buffer = c.buffer
                assert buffer is not None
            # Outside any loop there is no loop to protect: inline whatever the budget (a loop
            # on another thread may have spent this pass's).
            if size <= inline.left or not backend._loop_here():
                try:
                    n = self._preadv(self.fd, [buffer], pos, _RWF_NOWAIT)
                except OSError as exc:
                    return self._inline_failed(pos, c, buffer, exc)
                return self._inline_read(pos, c, buffer, n, size)
            if size <= inline.budget and inline.reset_due:
                # Only this pass's budget is short: try again inline at the next pass,
                # which costs a loop turn instead of a thread hop.
                self._refs += 1
                backend._deferred.append((self, pos, c))
                return c
        elif self._pause:
            self._pause -= 1
            if not self._pause:
                self._nowait = True  # probe the page cache again with the next read
        return self._stage_read(pos, c, buffer)

    def _stage_read(
        self, pos: int, c: Completion, buffer: bytearray | memoryview | None
    ) -> Completion:
        """Hand a read to the engine. Without a buffer (`c` takes bytes) the ring reads into
        one of its own and hands over bytes; the pool reads into `c.buffer`."""
        view = None if buffer is None else memoryview(buffer)
        req = Request(Kind.READ, self, c, pos, view, None)
        backend = self._backend
        uring = backend._uring
        handle = backend._handle
        if (
            uring is not None
            and handle is not None
            and uring.watched_from(handle)
            and not backend._closed
            and handle.is_current()
        ):
            # What `AsyncFileIO._stage` does for a ring that this loop watches already, here
            # where it compiles: every read that misses the page cache comes this way. The
            # rest (binding to a loop, the fallback to the pool) is `_stage`'s.
            self._refs += 1
            backend._pool_submissions += 1
            req.unit = handle.unit()
            try:
                uring.submit(req, handle)
            except BaseException:
                backend._pool_submissions -= 1
                self.drop_ref()
                raise
            return c
        backend._stage(req)
        return c

    def _inline_read(
        self, pos: int, c: Completion, buffer: bytearray | memoryview, n: int, size: int
    ) -> Completion:
        """An RWF_NOWAIT read returned `n` of `size` bytes: charge the budget, finish."""
        inline = self._inline_reads
        if self._misses or inline.misses:
            self._hit()
        inline.left -= n
        if not inline.reset_due:
            self._backend._schedule_inline_reset()
        if n in (size, 0):
            c.complete(n)
            return c
        return self._read_rest(pos, c, buffer, n)

    def _inline_failed(
        self, pos: int, c: Completion, buffer: bytearray | memoryview | None, exc: OSError
    ) -> Completion:
        """An RWF_NOWAIT read raised: a miss or an unsupported file goes to the pool,
        anything else fails `c`."""
        if isinstance(exc, BlockingIOError):
            # Not (all) cached: the pool reads it. After a run of misses (a cold file, or a
            # cold region of it, or cold files) stop asking for a while: each miss costs a
            # system call and an exception on the loop thread, and with the ring it starts
            # the read-ahead there, which the ring's own read would start in the kernel.
            # Outside any loop the miss fails below (no engine to send it to): it must not
            # count, nor pause this file's reads that would hit.
            if self._backend._loop_here():
                self._misses += 1
                inline = self._inline_reads
                inline.misses += 1
                if self._misses >= _MISS_STREAK or inline.misses >= _MISS_STREAK:
                    self._nowait = False
                    self._pause = _MISS_PAUSE
        elif exc.errno in _NOWAIT_UNSUPPORTED:
            self._nowait = False
        else:
            c.error(CompletionError.from_os_error(exc, "pread", path=self._path, offset=pos))
            return c
        return self._stage_read(pos, c, buffer)

    def _read_rest(
        self, pos: int, c: Completion, buffer: bytearray | memoryview, done: int
    ) -> Completion:
        """Finish a partial RWF_NOWAIT read: inline while the cache has it, then the pool."""
        view = memoryview(buffer)
        total = len(view)
        while done < total:
            try:
                n = self._preadv(self.fd, [view[done:]], pos + done, _RWF_NOWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _NOWAIT_UNSUPPORTED:
                    self._nowait = False
                    break
                c.error(CompletionError.from_os_error(exc, "pread", path=self._path, offset=pos))
                return c
            if n == 0:  # end of file
                total = done
                break
            done += n
        if done >= total:
            c.complete(done)
            return c
        self._backend._stage(Request(Kind.READ, self, c, pos + done, view[done:], None, done))
        return c

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        """Write all of `buffer` at `pos` (in the pool). Raises as `pwritev` does."""
        return self.pwritev(pos, (buffer,), c)

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        """Write the buffers back to back from `pos` (in the pool).

        Raises `CompletionError` (kind `CLOSED`; `EBADF` on a read-only file; `EINVAL` for a
        negative `pos`) and `EventLoopError` without an event loop on this thread.
        """
        self._check_writable("pwritev")
        if pos < 0:
            raise _negative("pwritev", self._path, pos)
        self._backend._stage(Request(Kind.WRITE, self, c, pos, tuple(buffers), None))
        return c

    def sync(self, c: Completion) -> Completion:
        """fsync (in the pool). Raises `CompletionError` (`CLOSED`) or `EventLoopError`."""
        self._check_open("sync")
        self._backend._stage(Request(Kind.SYNC, self, c, 0, None, None))
        return c

    def truncate(self, length: int, c: Completion) -> Completion:
        """Set the size to `length` (in the pool). Raises as `pwritev` does."""
        self._check_writable("truncate")
        if length < 0:
            raise _negative("truncate", self._path, length)
        self._backend._stage(Request(Kind.TRUNCATE, self, c, length, None, None))
        return c

    def size(self) -> int:
        """The size in bytes (`fstat`, inline). Raises `CompletionError`."""
        self._check_open("size")
        try:
            return os.fstat(self.fd).st_size
        except OSError as exc:
            raise CompletionError.from_os_error(exc, "fstat", path=self._path) from exc

    def drop_ref(self) -> None:
        """A request (of either engine) no longer holds this file: the last one closes the
        descriptor of a file closed meanwhile."""
        self._refs -= 1
        if self._refs == 0 and self._closed:
            self._backend._close_fd(self.fd)

    def _release(self) -> None:
        self._scratch.clear()
        self._backend._files.discard(self)
        if self._refs == 0:
            self._backend._close_fd(self.fd)
        # else: the last request to come back closes it (`AsyncFileIO._drop`).


def _negative(what: str, path: str, pos: int) -> CompletionError:
    return CompletionError(
        ErrorKind.IO, f"{what} at a negative offset", errno=errno.EINVAL, path=path, offset=pos
    )
