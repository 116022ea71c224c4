"""A minimal io_uring ring through `ctypes`: set up, map, queue entries, enter, reap.

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
  caller's business (`core.io.uring`).
- Memory ordering. CPython reads and writes the ring through `memoryview`s over `ctypes`
  memory: plain loads and stores, never the acquire/release pairs liburing uses against
  the kernel's `smp_store_release`/`smp_load_acquire`. We make plain accesses enough:
  * Submission: no SQPOLL thread. The kernel reads our tail and entries only inside our
    own `io_uring_enter`, on this thread, after our stores in program order (a thread that
    migrates between CPUs passes a full barrier in the scheduler).
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
import mmap
import os
import platform
import struct
import sys
from collections.abc import Callable

from core.errors import IOResultError

__all__ = [
    "IO_URING_DISABLED",
    "OP_ASYNC_CANCEL",
    "OP_FSYNC",
    "OP_FTRUNCATE",
    "OP_READ",
    "OP_WRITE",
    "OP_WRITEV",
    "SQE_ASYNC",
    "SQE_IO_DRAIN",
    "Ring",
    "iovec_array",
    "setup_refusal_hint",
]

_SYSCALLS = {"x86_64": (425, 426, 427), "aarch64": (425, 426, 427)}
"""(io_uring_setup, io_uring_enter, io_uring_register) for each machine we know."""

OP_FSYNC = 3
OP_ASYNC_CANCEL = 14
OP_READ = 22
OP_WRITE = 23
OP_WRITEV = 2
OP_FTRUNCATE = 55  # Linux 6.9+

_SETUP_SUBMIT_ALL = 1 << 7  # keep submitting past an entry that fails at submission
_SETUP_SINGLE_ISSUER = 1 << 12
_SETUP_DEFER_TASKRUN = 1 << 13
_FEAT_SINGLE_MMAP = 1 << 0
_ENTER_GETEVENTS = 1 << 0
_REGISTER_PROBE = 8
_REGISTER_EVENTFD = 4
SQE_IO_DRAIN = 1 << 1  # start only after every earlier entry finished; later ones wait
SQE_ASYNC = 1 << 4  # run in a kernel worker: no attempt inside the submitting enter
_PROBE_OPS = 256
_OP_SUPPORTED = 1
_OFF_SQ_RING = 0
_OFF_CQ_RING = 0x8000000
_OFF_SQES = 0x10000000
_REQUIRED_OPS = (OP_READ, OP_WRITE, OP_WRITEV, OP_FSYNC, OP_ASYNC_CANCEL)

_SQE = struct.Struct("<BBHiQQIIQHHiQQ")  # struct io_uring_sqe, 64 bytes
_CQE = struct.Struct("<Qi4x")  # struct io_uring_cqe: user_data, res (flags unused)
_U64 = (1 << 64) - 1


class _SQOffsets(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_uint32) for name in ("head", "tail", "ring_mask", "ring_entries")),
        *((name, ctypes.c_uint32) for name in ("flags", "dropped", "array", "resv1")),
        ("user_addr", ctypes.c_uint64),
    ]


class _CQOffsets(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_uint32) for name in ("head", "tail", "ring_mask", "ring_entries")),
        *((name, ctypes.c_uint32) for name in ("overflow", "cqes", "flags", "resv1")),
        ("user_addr", ctypes.c_uint64),
    ]


class _Params(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_uint32) for name in ("sq_entries", "cq_entries", "flags")),
        *((name, ctypes.c_uint32) for name in ("sq_thread_cpu", "sq_thread_idle", "features")),
        ("wq_fd", ctypes.c_uint32),
        ("resv", ctypes.c_uint32 * 3),
        ("sq_off", _SQOffsets),
        ("cq_off", _CQOffsets),
    ]


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # releases the GIL around every call
    # syscall(2) is variadic; its integer arguments travel in the same registers as those
    # of a fixed-argument call on x86-64 and arm64 Linux, so fixed argtypes (which convert
    # Python ints without building a ctypes object per argument) are sound there.
    libc.syscall.restype = ctypes.c_long
    libc.syscall.argtypes = [ctypes.c_long] * 7
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


_LIBC = _load_libc()


def _no_libc(*args: int) -> int:
    raise _os_error(errno.ENOSYS, "io_uring needs Linux")


_ENTER: Callable[..., int] = _LIBC.syscall if _LIBC is not None else _no_libc
"""`syscall(2)` itself, for `Ring.enter` (a `Ring` is never made where `_LIBC` is None)."""


IO_URING_DISABLED = "/proc/sys/kernel/io_uring_disabled"
"""The sysctl (Linux 6.6+) that refuses io_uring to everyone (2) or to processes outside
`kernel.io_uring_group` (1), with `EPERM`."""


def _os_error(code: int, what: str) -> OSError:
    return OSError(code, f"{what}: {os.strerror(code)}")


def setup_refusal_hint(code: int) -> str:
    """Why `io_uring_setup` most likely failed with `code`, for the error message ("" when
    there is nothing to add). Never raises."""
    if code == errno.EPERM:
        try:
            with open(IO_URING_DISABLED, encoding="ascii") as f:
                disabled = f.read().strip()
        except (OSError, ValueError):
            disabled = "0"
        if disabled not in ("", "0"):
            return f" (kernel.io_uring_disabled = {disabled})"
        return " (a seccomp filter, as container runtimes install, or a security module)"
    if code == errno.ENOSYS:
        return " (a kernel built without io_uring, or before Linux 5.1)"
    if code == errno.ENOMEM:
        return " (before Linux 5.12 ring memory counts against RLIMIT_MEMLOCK: see ulimit -l)"
    return ""


def iovec_array(segments: list[tuple[int, int]]) -> tuple[ctypes.Array[_IOVec], int]:
    """A `struct iovec[]` for `(address, length)` segments, and its address; keep the
    array referenced while the kernel may read it."""
    array = (_IOVec * len(segments))(*(_IOVec(addr, length) for addr, length in segments))
    return array, ctypes.addressof(array)


def _syscall(number: int, *args: int) -> int:
    """`syscall(number, *args)`: the result, or minus the errno."""
    assert _LIBC is not None
    padded = (*args, 0, 0, 0, 0, 0, 0)[:6]
    ret = int(_LIBC.syscall(number, *padded))
    return -ctypes.get_errno() if ret < 0 else ret


class Ring:
    """One io_uring instance: `queue()` entries, `enter()` to submit and wait, `reap()`.

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
    )

    def __init__(self, entries: int, defer_taskrun: bool = True, *, owner: str = "ring") -> None:
        self.owner = owner
        """Who uses the ring, as the errors of `enter()` name it."""
        machine = platform.machine()
        numbers = _SYSCALLS.get(machine)
        if _LIBC is None or numbers is None:
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
        register_no = self._register_no
        params = _Params()
        params.flags = _SETUP_SUBMIT_ALL | _SETUP_SINGLE_ISSUER
        if defer_taskrun:
            params.flags |= _SETUP_DEFER_TASKRUN
        fd = _syscall(setup_no, entries, ctypes.addressof(params))
        if fd == -errno.EINVAL and machine == "x86_64":
            params = _Params()  # before 6.1: a plain ring is still ordered enough on x86-64
            fd = _syscall(setup_no, entries, ctypes.addressof(params))
        if fd < 0:
            raise _os_error(-fd, "io_uring_setup" + setup_refusal_hint(-fd))
        self.fd = fd
        self._maps: list[tuple[int, int]] = []
        self._views: list[memoryview] = []
        try:
            self._map(params)
            self.ops = self._probe(register_no)
            missing = [op for op in _REQUIRED_OPS if op not in self.ops]
            if missing:
                raise _os_error(errno.EINVAL, f"io_uring lacks operations {missing}")
        except BaseException:
            self.close()
            raise
        self.sq_entries = int(params.sq_entries)
        self.cq_entries = int(params.cq_entries)
        self.queued = 0
        """Entries written since the last `enter()`: not yet seen by the kernel."""

    def _map(self, params: _Params) -> None:
        sq_off, cq_off = params.sq_off, params.cq_off
        sq_size = int(sq_off.array) + int(params.sq_entries) * 4
        cq_size = int(cq_off.cqes) + int(params.cq_entries) * _CQE.size
        single = bool(int(params.features) & _FEAT_SINGLE_MMAP)
        if single:
            sq_size = cq_size = max(sq_size, cq_size)
        sq = self._mmap(sq_size, _OFF_SQ_RING)
        self._cq = sq if single else self._mmap(cq_size, _OFF_CQ_RING)
        self._sqes = self._mmap(int(params.sq_entries) * _SQE.size, _OFF_SQES)
        self._sq32, self._cq32 = sq.cast("I"), self._cq.cast("I")
        self._views += [self._sq32, self._cq32]
        self._sq_head_i, self._sq_tail_i = int(sq_off.head) // 4, int(sq_off.tail) // 4
        self._cq_head_i, self._cq_tail_i = int(cq_off.head) // 4, int(cq_off.tail) // 4
        self._sq_mask = int(self._sq32[int(sq_off.ring_mask) // 4])
        self._cq_mask = int(self._cq32[int(cq_off.ring_mask) // 4])
        self._cqes = int(cq_off.cqes)
        array = int(sq_off.array) // 4
        for i in range(int(params.sq_entries)):
            self._sq32[array + i] = i
        self._sq_tail = int(self._sq32[self._sq_tail_i])
        self._cq_head = int(self._cq32[self._cq_head_i])

    def _mmap(self, size: int, offset: int) -> memoryview:
        assert _LIBC is not None
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        addr = _LIBC.mmap(None, size, prot, flags, self.fd, offset)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            raise _os_error(ctypes.get_errno(), "mmap of the io_uring ring")
        self._maps.append((int(addr), size))
        view = memoryview((ctypes.c_char * size).from_address(addr)).cast("B")
        self._views.append(view)
        return view

    def _probe(self, register_no: int) -> frozenset[int]:
        probe = ctypes.create_string_buffer(16 + 8 * _PROBE_OPS)
        ret = _syscall(register_no, self.fd, _REGISTER_PROBE, ctypes.addressof(probe), _PROBE_OPS)
        if ret < 0:
            raise _os_error(-ret, "io_uring_register(PROBE)")
        raw = probe.raw  # struct io_uring_probe: last_op, ops_len, ..., then 8-byte ops
        return frozenset(op for op in range(raw[1]) if raw[16 + 8 * op + 2] & _OP_SUPPORTED)

    def register_eventfd(self, efd: int) -> None:
        """Have the kernel signal the eventfd `efd` whenever it posts completion entries.

        Raises `OSError` with the kernel's errno."""
        arg = ctypes.c_int(efd)
        ret = _syscall(self._register_no, self.fd, _REGISTER_EVENTFD, ctypes.addressof(arg), 1)
        if ret < 0:
            raise _os_error(-ret, "io_uring_register(EVENTFD)")

    def queue(
        self, opcode: int, fd: int, off: int, addr: int, length: int, key: int, flags: int = 0
    ) -> None:
        """Write one entry; the caller has checked `queued < sq_entries`."""
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

    def enter(self, min_complete: int, submit: bool = True) -> int:
        """Publish what is queued and make one `io_uring_enter` that submits it (unless
        `submit` is false) and waits for `min_complete` finished entries (0: only run the
        kernel's deferred work). Return how many entries the kernel took.

        Raises `IOResultError` for any other failure of the call, naming the errno (`EEXIST`:
        a thread other than the one that set the ring up); `EINTR`, `EAGAIN` and `EBUSY`
        return normally (the caller reaps and retries).
        """
        sq32 = self._sq32
        head = sq32[self._sq_head_i]
        sq32[self._sq_tail_i] = self._sq_tail  # a plain store suffices: see the module doc
        to_submit = self.queued if submit else 0
        # The foreign call itself, not `_syscall`: this is the one call per batch of I/O.
        ret = _ENTER(self._enter_no, self.fd, to_submit, min_complete, _ENTER_GETEVENTS, 0, 0)
        if ret < 0:
            ret = -ctypes.get_errno()
        taken = (sq32[self._sq_head_i] - head) & 0xFFFFFFFF
        self.queued -= taken
        if ret < 0 and -ret not in (errno.EINTR, errno.EAGAIN, errno.EBUSY):
            cause = _os_error(-ret, "io_uring_enter")
            if -ret == errno.EEXIST:
                raise IOResultError(
                    f"{self.owner} is used from a thread other than the one that set it up; "
                    "its ring accepts only that thread (IORING_SETUP_SINGLE_ISSUER)"
                ) from cause
            raise IOResultError(f"io_uring_enter failed: {cause}") from cause
        return int(taken)

    def reap(self) -> list[tuple[int, int]]:
        """The finished entries as `(user_data, res)`, oldest first; frees their slots."""
        cq32 = self._cq32
        tail = int(cq32[self._cq_tail_i])
        head = self._cq_head
        if head == tail:
            return []
        cq, base, mask, unpack = self._cq, self._cqes, self._cq_mask, _CQE.unpack_from
        count = (tail - head) & 0xFFFFFFFF
        out = [unpack(cq, base + (((head + i) & mask) << 4)) for i in range(count)]
        self._cq_head = tail
        cq32[self._cq_head_i] = tail  # the slots are free; the kernel reads this in our next call
        return out

    def close(self) -> None:
        """Unmap and close the ring. Only once nothing is in flight: the caller drains."""
        for view in self._views:
            view.release()
        self._views.clear()
        assert _LIBC is not None
        while self._maps:
            addr, size = self._maps.pop()
            _LIBC.munmap(addr, size)
        os.close(self.fd)
