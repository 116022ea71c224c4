"""Kernels and machines that refuse io_uring, or lack parts of it, forced here by standing
in for the system calls: `engine="auto"` falls back to the worker pool, `engine="uring"` and
`UringIO` say why, and an opcode a kernel lacks falls back to the plain system call.

What this cannot reach (the suite runs on one x86-64 kernel): a real arm64 machine and a
real kernel before 6.1; docs/bridge.md lists them.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge import AsyncFileIO, _uring_engine, drive
from core import IO, Completion, Done, IOResultError, block
from core.io import OpenFlags, UringIO, ring_syscalls
from core.io import ring as ring_module
from core.ops import ReadRange, WriteBuffers
from tests.helpers import NEEDS_URING

pytestmark = NEEDS_URING

SETUP = 425  # io_uring_setup on x86-64 and arm64


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    """The engine's availability is probed once per process: probe again around each test."""
    _uring_engine.unavailable_reason.cache_clear()
    yield
    _uring_engine.unavailable_reason.cache_clear()


def refuse_setup(
    monkeypatch: pytest.MonkeyPatch,
    when: Callable[[int], int | None],
    entries_above: int = 0,
) -> None:
    """Make `io_uring_setup` of more than `entries_above` entries fail with `-when(flags)`
    whenever that is not None."""
    real = ring_syscalls.syscall

    def syscall(number: int, *args: int) -> int:
        if number == SETUP and args[0] > entries_above:
            flags = ctypes.c_uint32.from_address(args[1] + 8).value  # io_uring_params.flags
            code = when(flags)
            if code is not None:
                return -code
        return real(number, *args)

    monkeypatch.setattr(ring_syscalls, "syscall", syscall)


def refuse_ops(monkeypatch: pytest.MonkeyPatch, ops: set[int]) -> None:
    """Make the kernel's probe leave out `ops`."""
    real = ring_syscalls.probe

    def probe(number: int, fd: int) -> frozenset[int] | int:
        found = real(number, fd)
        return found if isinstance(found, int) else found - ops

    monkeypatch.setattr(ring_syscalls, "probe", probe)


async def read_back(path: Path, io: AsyncFileIO) -> bytes:
    f = io.open_file(path, OpenFlags.CREATE)
    await drive(WriteBuffers(f, 0, [b"hello, ring"], sync=True), io)
    data = await drive(ReadRange(f, 0, 11), io)
    f.close()
    return data


REFUSALS = [
    pytest.param(errno.EPERM, "seccomp", id="EPERM-seccomp"),
    pytest.param(errno.ENOSYS, "without io_uring", id="ENOSYS"),
    pytest.param(errno.ENOMEM, "RLIMIT_MEMLOCK", id="ENOMEM-memlock"),
]


@pytest.mark.parametrize(("code", "hint"), REFUSALS)
def test_a_refused_ring_makes_auto_use_threads_and_uring_say_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int, hint: str
) -> None:
    monkeypatch.setattr(ring_syscalls, "IO_URING_DISABLED", str(tmp_path / "absent"))
    refuse_setup(monkeypatch, lambda flags: code)
    name = errno.errorcode[code]
    assert not AsyncFileIO.uring_available() and not UringIO.available()
    with pytest.raises(IOResultError, match=name) as info:
        AsyncFileIO(engine="uring")
    assert hint in str(info.value)
    with pytest.raises(IOResultError, match=name):
        UringIO()

    async def main() -> bytes:
        async with AsyncFileIO() as io:
            assert io.engine == "threads"
            return await read_back(tmp_path / "f", io)

    assert asyncio.run(main()) == b"hello, ring"


@pytest.mark.parametrize("setting", ["1", "2"])
def test_io_uring_disabled_by_sysctl_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str
) -> None:
    sysctl = tmp_path / "io_uring_disabled"
    sysctl.write_text(setting + "\n")
    monkeypatch.setattr(ring_syscalls, "IO_URING_DISABLED", str(sysctl))
    refuse_setup(monkeypatch, lambda flags: errno.EPERM)
    with AsyncFileIO() as io:
        assert io.engine == "threads"
    with pytest.raises(IOResultError, match=f"io_uring_disabled = {setting}"):
        AsyncFileIO(engine="uring")


def test_a_kernel_without_a_needed_opcode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before Linux 5.6 there is no IORING_OP_READ/WRITE: the probe says so.
    refuse_ops(monkeypatch, {ring_module.OP_READ})
    assert not AsyncFileIO.uring_available()
    with AsyncFileIO() as io:
        assert io.engine == "threads"
    with pytest.raises(IOResultError, match="lacks operations"):
        UringIO()


def test_auto_falls_back_when_the_real_ring_is_refused_after_the_probe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The probe's two-entry ring passes; the backend's own ring, set up at the first
    # submission, is refused (memory, RLIMIT_MEMLOCK before 5.12): "auto" moves to the
    # pool instead of failing the I/O; "uring" raises.
    assert AsyncFileIO.uring_available()
    refuse_setup(monkeypatch, lambda flags: errno.ENOMEM, entries_above=2)

    async def main() -> None:
        async with AsyncFileIO(nowait=False) as io:
            assert io.engine == "uring"
            assert await read_back(tmp_path / "a", io) == b"hello, ring"
            assert io.engine == "threads" and io.worker_threads > 0
        async with AsyncFileIO(engine="uring", nowait=False) as strict:
            f = strict.open_file(tmp_path / "a", OpenFlags.CREATE)
            with pytest.raises(IOResultError, match="Cannot allocate memory"):
                await drive(ReadRange(f, 0, 4), strict)
            f.close()

    asyncio.run(main())


def test_before_6_1_the_setup_flags_are_dropped_on_x86_64(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Kernels before 6.1 refuse DEFER_TASKRUN (before 6.0 SINGLE_ISSUER, before 5.18
    # SUBMIT_ALL) with EINVAL: x86-64 retries with a plain ring, on both faces.
    flags_seen: list[int] = []

    def old_kernel(flags: int) -> int | None:
        flags_seen.append(flags)
        return errno.EINVAL if flags else None

    refuse_setup(monkeypatch, old_kernel)
    monkeypatch.setattr(ring_module.platform, "machine", lambda: "x86_64")
    with UringIO() as io:
        f = io.open_file(tmp_path / "u", OpenFlags.CREATE)
        block(WriteBuffers(f, 0, [b"plain ring"], sync=True), io)
        assert block(ReadRange(f, 0, 10), io) == b"plain ring"
    assert flags_seen[:2] == [flags_seen[0], 0] and flags_seen[0] != 0

    async def main() -> bytes:
        async with AsyncFileIO(engine="uring", nowait=False) as aio:
            return await read_back(tmp_path / "a", aio)

    assert asyncio.run(main()) == b"hello, ring"


def test_on_arm64_a_kernel_without_defer_taskrun_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without DEFER_TASKRUN the kernel posts completions while we read them, which plain
    # loads and stores make safe only under x86-64's memory ordering.
    refuse_setup(monkeypatch, lambda flags: errno.EINVAL if flags else None)
    monkeypatch.setattr(ring_module.platform, "machine", lambda: "aarch64")
    with pytest.raises(IOResultError, match="EINVAL"):
        UringIO()
    with pytest.raises(OSError) as info:
        ring_module.Ring(4, defer_taskrun=False)
    assert info.value.errno == errno.ENOSYS


def test_truncate_before_6_9_is_the_plain_call_on_the_loop_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    refuse_ops(monkeypatch, {ring_module.OP_FTRUNCATE})
    queued: list[int] = []

    async def main() -> int:
        async with AsyncFileIO(engine="uring") as io:
            f = io.open_file(tmp_path / "t", OpenFlags.CREATE)
            await drive(WriteBuffers(f, 0, [b"0"], sync=False), io)  # sets the ring up
            assert io._uring is not None and io._uring._ring is not None
            io._uring._ring.tap = lambda opcode, length, flags: queued.append(opcode)
            await drive(WriteBuffers(f, 0, [b"0123456789"], sync=False), io)
            c = f.truncate(4, Completion.new_trunc())
            await drive(lambda: Done(c.result()) if c.finished() else IO(c), io)
            size = f.size()
            f.close()
            return size

    assert asyncio.run(main()) == 4
    assert ring_module.OP_WRITE in queued and ring_module.OP_FTRUNCATE not in queued


def test_the_setup_hint_reads_the_sysctl_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ring_syscalls, "IO_URING_DISABLED", str(tmp_path))  # a directory
    assert "seccomp" in ring_syscalls.setup_refusal_hint(errno.EPERM)
    assert ring_syscalls.setup_refusal_hint(errno.EINVAL) == ""


SQPOLL = 1 << 1  # IORING_SETUP_SQPOLL
NEEDS_SQPOLL = pytest.mark.skipif(
    not AsyncFileIO.sqpoll_available(), reason="the kernel refuses an SQPOLL thread here"
)


@NEEDS_SQPOLL
def test_from_5_11_to_5_19_the_sqpoll_thread_comes_without_the_other_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Before 6.0 (no SINGLE_ISSUER) the SQPOLL setup with our flags is EINVAL; x86-64 asks
    # again for the thread alone, and gets it.
    flags_seen: list[int] = []

    def kernel_5_15(flags: int) -> int | None:
        flags_seen.append(flags)
        return errno.EINVAL if flags not in (0, SQPOLL) else None

    refuse_setup(monkeypatch, kernel_5_15)
    monkeypatch.setattr(ring_module.platform, "machine", lambda: "x86_64")

    async def main() -> tuple[bytes, bool]:
        async with AsyncFileIO(engine="uring", nowait=False, sqpoll=0.01) as aio:
            return await read_back(tmp_path / "a", aio), aio.sqpoll

    assert asyncio.run(main()) == (b"hello, ring", True)
    assert SQPOLL in flags_seen and flags_seen[flags_seen.index(SQPOLL) - 1] & SQPOLL


def test_before_5_11_without_privilege_the_ring_runs_without_the_thread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    refuse_setup(monkeypatch, lambda flags: errno.EPERM if flags & SQPOLL else None)

    async def main() -> tuple[bytes, bool]:
        async with AsyncFileIO(engine="uring", nowait=False, sqpoll=0.01) as aio:
            return await read_back(tmp_path / "a", aio), aio.sqpoll

    assert asyncio.run(main()) == (b"hello, ring", False)


@NEEDS_SQPOLL
def test_a_full_sqpoll_ring_makes_room_before_its_next_entry() -> None:
    # The thread takes entries on its own time: after `enter()` a full ring must have room
    # again (it waits with SQ_WAIT), and `queue()` refuses to write over an untaken entry.
    ring = ring_module.Ring(4, defer_taskrun=False, sqpoll_idle=1)
    try:
        assert ring.sqpoll
        for round_no in range(50):
            while ring.queued < ring.sq_entries:
                ring.queue(0, -1, 0, 0, 0, round_no)  # IORING_OP_NOP
            ring.enter(0)
            assert ring.queued < ring.sq_entries, round_no
            ring.reap()
        ring.queued = ring.sq_entries
        with pytest.raises(IOResultError, match="full"):
            ring.queue(0, -1, 0, 0, 0, 0)
        ring.queued = 0
    finally:
        ring.close()
