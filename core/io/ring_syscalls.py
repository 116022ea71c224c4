"""The io_uring system calls through `ctypes`: setup, enter, register, mmap, munmap.

Theory of operation:
- This is the only module that loads libc and makes io_uring's system calls (`core.io.ring`
  keeps the ring protocol, compiled with mypyc; `ctypes` stays here, interpreted, except
  where a buffer's raw address is taken). Every call returns the kernel's result or minus
  its errno; nothing here raises for a refusal, the ring words the errors.
- `syscall(2)` is variadic; its integer arguments travel in the same registers as those of
  a fixed-argument call on x86-64 and arm64 Linux, so fixed argtypes (which convert Python
  ints without building a ctypes object per argument) are sound there.
- The functions are looked up on this module at each call, so a test can stand in for the
  kernel (`monkeypatch.setattr(ring_syscalls, "syscall", ...)`).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
from collections.abc import Callable

__all__ = [
    "IO_URING_DISABLED",
    "NUMBERS",
    "PARAMS_SIZE",
    "enter_function",
    "get_errno",
    "have_libc",
    "map_shared",
    "os_error",
    "probe",
    "register",
    "setup",
    "setup_refusal_hint",
    "syscall",
    "unmap",
]

NUMBERS = {"x86_64": (425, 426, 427), "aarch64": (425, 426, 427)}
"""(io_uring_setup, io_uring_enter, io_uring_register) for each machine we know."""

PARAMS_SIZE = 120
"""sizeof(struct io_uring_params)."""

IO_URING_DISABLED = "/proc/sys/kernel/io_uring_disabled"
"""The sysctl (Linux 6.6+) that refuses io_uring to everyone (2) or to processes outside
`kernel.io_uring_group` (1), with `EPERM`."""

_REGISTER_PROBE = 8
_PROBE_OPS = 256
_OP_SUPPORTED = 1


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # releases the GIL around every call
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
    raise OSError(errno.ENOSYS, "io_uring needs Linux")


def have_libc() -> bool:
    """Whether the system calls can be made here (Linux)."""
    return _LIBC is not None


def get_errno() -> int:
    """The errno the last foreign call of this thread left."""
    return ctypes.get_errno()


def enter_function() -> Callable[..., int]:
    """`syscall(2)` itself, the raw foreign function: `io_uring_enter` is the one call per
    batch of I/O, made without a Python wrapper (read `get_errno()` after a negative
    result). Raises `OSError` (`ENOSYS`) when called where there is no libc."""
    return _LIBC.syscall if _LIBC is not None else _no_libc


def syscall(number: int, *args: int) -> int:
    """`syscall(number, *args)`: the result, or minus the errno."""
    assert _LIBC is not None
    padded = (*args, 0, 0, 0, 0, 0, 0)[:6]
    ret = int(_LIBC.syscall(number, *padded))
    return -ctypes.get_errno() if ret < 0 else ret


def setup(number: int, entries: int, flags: int, idle_ms: int = 0) -> tuple[int, bytes]:
    """`io_uring_setup(entries, params)` with `params.flags = flags` (and `sq_thread_idle =
    idle_ms`): the ring's descriptor (or minus the errno) and the `struct io_uring_params`
    the kernel filled in."""
    params = ctypes.create_string_buffer(PARAMS_SIZE)
    ctypes.c_uint32.from_buffer(params, 8).value = flags
    ctypes.c_uint32.from_buffer(params, 16).value = idle_ms
    fd = syscall(number, entries, ctypes.addressof(params))
    return fd, params.raw


def register(number: int, fd: int, opcode: int, arg: int, nr_args: int) -> int:
    """`io_uring_register(fd, opcode, &arg as int, nr_args)` for one `int` argument (an
    eventfd): the result, or minus the errno."""
    value = ctypes.c_int(arg)
    return syscall(number, fd, opcode, ctypes.addressof(value), nr_args)


def probe(number: int, fd: int) -> frozenset[int] | int:
    """The opcodes the kernel supports (`IORING_REGISTER_PROBE`), or minus the errno."""
    buffer = ctypes.create_string_buffer(16 + 8 * _PROBE_OPS)
    ret = syscall(number, fd, _REGISTER_PROBE, ctypes.addressof(buffer), _PROBE_OPS)
    if ret < 0:
        return ret
    raw = buffer.raw  # struct io_uring_probe: last_op, ops_len, ..., then 8-byte ops
    return frozenset(op for op in range(raw[1]) if raw[16 + 8 * op + 2] & _OP_SUPPORTED)


def map_shared(fd: int, size: int, offset: int) -> tuple[int, memoryview] | int:
    """`mmap` `size` bytes of the ring `fd` at `offset`, shared and populated: the address
    and a byte view of it, or minus the errno."""
    assert _LIBC is not None
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
    addr = _LIBC.mmap(None, size, prot, flags, fd, offset)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return -ctypes.get_errno()
    view = memoryview((ctypes.c_char * size).from_address(addr)).cast("B")
    return int(addr), view


def unmap(addr: int, size: int) -> None:
    """`munmap` a mapping of `map_shared` (every view of it released first)."""
    assert _LIBC is not None
    _LIBC.munmap(addr, size)


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


def os_error(code: int, what: str) -> OSError:
    """`OSError(code)` whose message names `what` and the errno's text."""
    return OSError(code, f"{what}: {os.strerror(code)}")
