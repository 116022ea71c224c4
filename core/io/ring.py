"""A minimal io_uring ring: set up, map, queue entries, enter, reap.

Theory of operation:
- The ring is three shared mappings set up by `io_uring_setup` (syscall 425 on x86-64 and
  arm64, `io_uring_enter` 426, `io_uring_register` 427; other machines are refused): the
  submission ring (head, tail, index array), the submission entries (64 bytes each), and
  the completion ring (head, tail, 16-byte entries), the last two sharing one mapping where
  the kernel says `IORING_FEAT_SINGLE_MMAP`. The index array is filled once with the
  identity, so entry `i` always sits in slot `i`.
- This module knows nothing of completions: `queue()` writes one entry in our memory,
  `enter()` publishes the tail and makes the one system call, `reap()` returns the finished
  `(user_data, res)` pairs. Who owns buffers and how many entries may be in flight is the
  caller's business (`core.io.uring`). The system calls themselves, through `ctypes`, are
  `core.io.ring_syscalls`'s: this module compiles with mypyc, and reads `struct
  io_uring_params` and writes entries with `struct`, never through `ctypes` structures.
- Memory ordering. CPython reads and writes the ring through `memoryview`s over the
  mappings: plain loads and stores, never the acquire/release pairs liburing uses against
  the kernel's `smp_store_release`/`smp_load_acquire`. We make plain accesses enough:
  * Submission: without an SQPOLL thread, the kernel reads our tail and entries only
    inside our own `io_uring_enter`, on this thread, after our stores in program order (a
    thread that migrates between CPUs passes a full barrier in the scheduler).
  * Submission with an SQPOLL thread (`Ring(..., sqpoll_idle=ms)`, only on rings without
    DEFER_TASKRUN, so only on x86-64): the kernel's thread reads the tail and the entries
    while we write them. x86-64 makes stores visible in program order, so it never sees
    a tail before the entries under it. Every `enter()` passes `IORING_ENTER_SQ_WAKEUP`,
    which wakes the thread if it went to sleep, so no check of its `NEED_WAKEUP` flag
    (which would need a store-load barrier Python cannot make) decides whether entries
    are seen. The thread moves the head whenever it takes entries; `queued` is what it has
    not taken when `enter()` last looked, never less than what it really holds.
  * Completion: the ring is set up with `IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN`
    (Linux 6.1+). The kernel then posts every completion entry, including those of its
    io-wq workers, while running deferred work inside an `io_uring_enter` with
    `IORING_ENTER_GETEVENTS` made by this thread; we read the tail and the entries only
    after that call returned. No entry is ever written while we read, and the head we
    store is read by the kernel only in our next call. The price: one thread submits and
    reaps (the one that set the ring up); the kernel refuses others with `EEXIST`.
  * Where those flags are refused (before 6.1), x86-64 falls back to a plain ring: its
    total store order makes every plain load an acquire and every plain store a release,
    which is all the protocol needs. arm64 promises nothing of the kind, so there the ring
    reports itself unavailable instead.
  * `Ring(entries, defer_taskrun=False)` (for an event loop that waits on an eventfd, see
    `bridge._uring_engine`) asks for `SINGLE_ISSUER` alone: the kernel then posts entries
    from task work and io-wq while we may be reading, which only x86-64's ordering makes
    safe with plain accesses; elsewhere that ring is refused (`ENOSYS`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
from collections.abc import Callable
from typing import Final

from core.errors import IOResultError
from core.io import ring_syscalls
from core.io.ring_syscalls import os_error as _os_error

__all__ = [
    "OP_ASYNC_CANCEL",
    "OP_FSYNC",
    "OP_FTRUNCATE",
    "OP_READ",
    "OP_WRITE",
    "OP_WRITEV",
    "SQE_ASYNC",
    "SQE_IO_DRAIN",
    "QueueTap",
    "Ring",
    "iovec_array",
]

OP_FSYNC: Final = 3
OP_ASYNC_CANCEL: Final = 14
OP_READ: Final = 22
OP_WRITE: Final = 23
OP_WRITEV: Final = 2
OP_FTRUNCATE: Final = 55  # Linux 6.9+

_SETUP_SQPOLL: Final = 1 << 1  # a kernel thread takes the entries from the ring as they come
_SETUP_SUBMIT_ALL: Final = 1 << 7  # keep submitting past an entry that fails at submission
_SETUP_SINGLE_ISSUER: Final = 1 << 12
_SETUP_DEFER_TASKRUN: Final = 1 << 13
_FEAT_SINGLE_MMAP: Final = 1 << 0
_ENTER_GETEVENTS: Final = 1 << 0
_ENTER_SQ_WAKEUP: Final = 1 << 1
_ENTER_SQ_WAIT: Final = 1 << 2  # SQPOLL: return once the thread has taken entries (room to write)
_REGISTER_EVENTFD: Final = 4
SQE_IO_DRAIN: Final = 1 << 1  # start only after every earlier entry finished; later ones wait
SQE_ASYNC: Final = 1 << 4  # run in a kernel worker: no attempt inside the submitting enter
_OFF_SQ_RING: Final = 0
_OFF_CQ_RING: Final = 0x8000000
_OFF_SQES: Final = 0x10000000
_REQUIRED_OPS: Final = (OP_READ, OP_WRITE, OP_WRITEV, OP_FSYNC, OP_ASYNC_CANCEL)
_RETRIED: Final = frozenset({errno.EINTR, errno.EAGAIN, errno.EBUSY})
"""The errnos after which an `io_uring_enter` is simply made again (after a reap)."""

_SQE: Final = struct.Struct("<BBHiQQIIQHHiQQ")  # struct io_uring_sqe, 64 bytes
_CQE: Final = struct.Struct("<Qi4x")  # struct io_uring_cqe: user_data, res (flags unused)
# struct io_uring_params: sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle,
# features, wq_fd, resv[3]; then io_sqring_offsets (head, tail, ring_mask, ring_entries,
# flags, dropped, array, resv1, user_addr) and io_cqring_offsets (head, tail, ring_mask,
# ring_entries, overflow, cqes, flags, resv1, user_addr).
_PARAMS: Final = struct.Struct("<7I12x8IQ8IQ")
_IOVEC: Final = struct.Struct("<QQ")  # struct iovec on 64-bit Linux: base, length
_U64: Final = (1 << 64) - 1

QueueTap = Callable[[int, int, int], object]
"""What `Ring.tap` is called with for each entry queued: `(opcode, length, flags)`."""


def iovec_array(segments: list[tuple[int, int]]) -> tuple[object, int]:
    """A `struct iovec[]` for `(address, length)` segments, and its address; keep the first
    referenced while the kernel may read it."""
    array = bytearray(_IOVEC.size * len(segments))
    for i, (addr, length) in enumerate(segments):
        _IOVEC.pack_into(array, i * _IOVEC.size, addr, length)
    anchor = ctypes.c_char.from_buffer(array)
    return (array, anchor), ctypes.addressof(anchor)


class Ring:
    """One io_uring instance: `queue()` entries, `enter()` to submit and wait, `reap()`.

    With `sqpoll_idle` > 0 (on a ring without DEFER_TASKRUN), a kernel thread takes the
    entries (`IORING_SETUP_SQPOLL`) and sleeps after that many milliseconds without any;
    where the kernel refuses it, the ring is set up without one (`sqpoll` says which).

    Raises `OSError` at construction with the errno the kernel gave (`ENOSYS` also for a
    machine whose syscall numbers we do not know, `EPERM` where io_uring is disabled,
    `ENOMEM`, `EINVAL` on a kernel without the operations we need).
    """

    __slots__ = (
        "_cq",
        "_cq32",
        "_cq_head",
        "_cq_head_i",
        "_cq_mask",
        "_cq_tail_i",
        "_cqes",
        "_enter",
        "_enter_no",
        "_maps",
        "_register_no",
        "_sq32",
        "_sq_head_i",
        "_sq_mask",
        "_sq_tail",
        "_sq_tail_i",
        "_sqes",
        "_views",
        "cq_entries",
        "fd",
        "ops",
        "owner",
        "queued",
        "sq_entries",
        "sqpoll",
        "tap",
    )

    def __init__(
        self,
        entries: int,
        defer_taskrun: bool = True,
        *,
        owner: str = "ring",
        sqpoll_idle: int = 0,
    ) -> None:
        self.owner = owner
        """Who uses the ring, as the errors of `enter()` name it."""
        self.tap: QueueTap | None = None
        """Called with `(opcode, length, flags)` for each entry `queue()` writes, when set
        (tests and diagnostics watch what the engines queue)."""
        self.queued = 0
        """Entries written and not yet taken by the kernel, as far as `enter()` last saw
        (with an SQPOLL thread it may since have taken some: never fewer than are left)."""
        self._maps: list[tuple[int, int]] = []
        self._views: list[memoryview] = []
        machine = platform.machine()
        numbers = ring_syscalls.NUMBERS.get(machine)
        if numbers is None or not ring_syscalls.have_libc():
            where = f"{sys.platform}/{machine}"
            raise _os_error(
                errno.ENOSYS, f"io_uring is wired for Linux x86_64/aarch64, not {where}"
            )
        if not defer_taskrun and machine != "x86_64":
            raise _os_error(
                errno.ENOSYS,
                f"a ring without DEFER_TASKRUN needs x86-64's memory ordering, not {machine}",
            )
        setup_no, self._enter_no, self._register_no = numbers
        self._enter: Callable[..., int] = ring_syscalls.enter_function()
        flags = _SETUP_SUBMIT_ALL | _SETUP_SINGLE_ISSUER
        if defer_taskrun:
            flags |= _SETUP_DEFER_TASKRUN
        fd = -errno.EINVAL
        raw = b""
        if sqpoll_idle > 0 and not defer_taskrun:
            # A kernel thread that polls the ring, asleep after `sqpoll_idle` ms without
            # entries. Refused before 5.11 without CAP_SYS_ADMIN: then a ring without it.
            fd, raw = ring_syscalls.setup(setup_no, entries, flags | _SETUP_SQPOLL, sqpoll_idle)
            if fd == -errno.EINVAL and machine == "x86_64":
                # 5.11-5.19: the thread without SUBMIT_ALL / SINGLE_ISSUER (a plain ring).
                fd, raw = ring_syscalls.setup(setup_no, entries, _SETUP_SQPOLL, sqpoll_idle)
        self.sqpoll = fd >= 0
        """Whether a kernel thread takes the entries (`IORING_SETUP_SQPOLL`)."""
        if not self.sqpoll:
            fd, raw = ring_syscalls.setup(setup_no, entries, flags)
        if fd == -errno.EINVAL and machine == "x86_64":
            # Before 6.1: a plain ring is still ordered enough on x86-64.
            fd, raw = ring_syscalls.setup(setup_no, entries, 0)
        if fd < 0:
            raise _os_error(-fd, "io_uring_setup" + ring_syscalls.setup_refusal_hint(-fd))
        self.fd = fd
        params = _PARAMS.unpack_from(raw)
        self.sq_entries = int(params[0])
        self.cq_entries = int(params[1])
        try:
            self._map(params)
            ops = ring_syscalls.probe(self._register_no, fd)
            if isinstance(ops, int):
                raise _os_error(-ops, "io_uring_register(PROBE)")
            self.ops: frozenset[int] = ops
            missing = [op for op in _REQUIRED_OPS if op not in ops]
            if missing:
                raise _os_error(errno.EINVAL, f"io_uring lacks operations {missing}")
        except BaseException:
            self.close()
            raise

    def _map(self, params: tuple[int, ...]) -> None:
        sq_entries, cq_entries, features = params[0], params[1], params[5]
        sq_head, sq_tail, sq_mask, sq_array = params[7], params[8], params[9], params[13]
        cq_head, cq_tail, cq_mask, cqes = params[16], params[17], params[18], params[21]
        sq_size = sq_array + sq_entries * 4
        cq_size = cqes + cq_entries * _CQE.size
        single = bool(features & _FEAT_SINGLE_MMAP)
        if single:
            sq_size = cq_size = max(sq_size, cq_size)
        sq = self._mmap(sq_size, _OFF_SQ_RING)
        self._cq = sq if single else self._mmap(cq_size, _OFF_CQ_RING)
        self._sqes = self._mmap(sq_entries * _SQE.size, _OFF_SQES)
        self._sq32, self._cq32 = sq.cast("I"), self._cq.cast("I")
        self._views += [self._sq32, self._cq32]
        self._sq_head_i, self._sq_tail_i = sq_head // 4, sq_tail // 4
        self._cq_head_i, self._cq_tail_i = cq_head // 4, cq_tail // 4
        self._sq_mask = int(self._sq32[sq_mask // 4])
        self._cq_mask = int(self._cq32[cq_mask // 4])
        self._cqes = cqes
        array = sq_array // 4
        for i in range(sq_entries):
            self._sq32[array + i] = i
        self._sq_tail = int(self._sq32[self._sq_tail_i])
        self._cq_head = int(self._cq32[self._cq_head_i])

    def _mmap(self, size: int, offset: int) -> memoryview:
        mapped = ring_syscalls.map_shared(self.fd, size, offset)
        if isinstance(mapped, int):
            raise _os_error(-mapped, "mmap of the io_uring ring")
        addr, view = mapped
        self._maps.append((addr, size))
        self._views.append(view)
        return view

    def register_eventfd(self, efd: int) -> None:
        """Have the kernel signal the eventfd `efd` whenever it posts completion entries.

        Raises `OSError` with the kernel's errno."""
        ret = ring_syscalls.register(self._register_no, self.fd, _REGISTER_EVENTFD, efd, 1)
        if ret < 0:
            raise _os_error(-ret, "io_uring_register(EVENTFD)")

    def queue(
        self, opcode: int, fd: int, off: int, addr: int, length: int, key: int, flags: int = 0
    ) -> None:
        """Write one entry; the caller has checked `queued < sq_entries` (and entered to make
        room otherwise). Raises `IOResultError` on a full ring rather than write over an
        entry the kernel has not read."""
        if self.queued >= self.sq_entries:
            raise IOResultError(f"{self.owner}: io_uring submission ring full")
        tail = self._sq_tail
        _SQE.pack_into(
            self._sqes,
            (tail & self._sq_mask) << 6,
            opcode,
            flags,
            0,
            fd,
            off & _U64,
            addr,
            length,
            0,
            key,
            0,
            0,
            0,
            0,
            0,
        )
        self._sq_tail = (tail + 1) & 0xFFFFFFFF
        self.queued += 1
        tap = self.tap
        if tap is not None:
            tap(opcode, length, flags)

    def enter(self, min_complete: int, submit: bool = True) -> int:
        """Publish what is queued and make one `io_uring_enter` that submits it (unless
        `submit` is false; with an SQPOLL thread, the thread takes it in any case and this
        call wakes it) and waits for `min_complete` finished entries (0: only run the
        kernel's deferred work). Return how many entries the kernel took.

        Raises `IOResultError` for any other failure of the call, naming the errno (`EEXIST`:
        a thread other than the one that set the ring up); `EINTR`, `EAGAIN` and `EBUSY`
        return normally (the caller reaps and retries).
        """
        sq32 = self._sq32
        head: int = sq32[self._sq_head_i]
        sq32[self._sq_tail_i] = self._sq_tail  # a plain store suffices: see the module doc
        if self.sqpoll:
            # The kernel's thread takes what the tail now shows, `submit` or not; this call
            # wakes it if it slept, and waits if asked to.
            to_submit = 0
            flags = _ENTER_SQ_WAKEUP | (_ENTER_GETEVENTS if min_complete else 0)
        else:
            to_submit = self.queued if submit else 0
            flags = _ENTER_GETEVENTS
        # The foreign call itself: this is the one call per batch of I/O.
        ret = int(self._enter(self._enter_no, self.fd, to_submit, min_complete, flags, 0, 0))
        if ret < 0:
            ret = -ring_syscalls.get_errno()
        now: int = sq32[self._sq_head_i]
        self.queued = (self._sq_tail - now) & 0xFFFFFFFF
        while self.sqpoll and self.queued >= self.sq_entries and (ret >= 0 or -ret in _RETRIED):
            # Full, the thread not done taking: the caller is about to write another entry,
            # which must not land on one the thread has still to read. Wake it and wait.
            wait = _ENTER_SQ_WAKEUP | _ENTER_SQ_WAIT
            ret = int(self._enter(self._enter_no, self.fd, 0, 0, wait, 0, 0))
            if ret < 0:
                ret = -ring_syscalls.get_errno()
            now = sq32[self._sq_head_i]
            self.queued = (self._sq_tail - now) & 0xFFFFFFFF
        taken = (now - head) & 0xFFFFFFFF
        if ret < 0 and -ret not in _RETRIED:
            cause = _os_error(-ret, "io_uring_enter")
            if -ret == errno.EEXIST:
                raise IOResultError(
                    f"{self.owner} is used from a thread other than the one that set it up; "
                    "its ring accepts only that thread (IORING_SETUP_SINGLE_ISSUER)"
                ) from cause
            raise IOResultError(f"io_uring_enter failed: {cause}") from cause
        return taken

    def reap(self) -> list[tuple[int, int]]:
        """The finished entries as `(user_data, res)`, oldest first; frees their slots."""
        cq32 = self._cq32
        tail: int = cq32[self._cq_tail_i]
        head = self._cq_head
        if head == tail:
            return []
        cq, base, mask, unpack = self._cq, self._cqes, self._cq_mask, _CQE.unpack_from
        count = (tail - head) & 0xFFFFFFFF
        out: list[tuple[int, int]] = []
        for i in range(count):
            key, res = unpack(cq, base + (((head + i) & mask) << 4))
            out.append((key, res))
        self._cq_head = tail
        cq32[self._cq_head_i] = tail  # the slots are free; the kernel reads this in our next call
        return out

    def close(self) -> None:
        """Unmap and close the ring. Only once nothing is in flight: the caller drains."""
        for view in self._views:
            view.release()
        self._views.clear()
        while self._maps:
            addr, size = self._maps.pop()
            ring_syscalls.unmap(addr, size)
        os.close(self.fd)
