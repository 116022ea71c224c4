"""`AsyncFileIO`: inline reads, the worker pool, backpressure, closing, refusals.

asyncio and uvloop through the loop factories in conftest; trio through anyio's plugin.
Worker timing is controlled with a gate (a subclass whose workers wait on an Event), never
by sleeping and measuring.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from bridge import AsyncFileIO, EventLoopError, InvalidArgumentError, drive
from bridge._drive_common import DRIVING
from bridge._fileio import _Batch
from bridge._fileio_common import FINISH_PER_CALLBACK
from core import IO, Completion, CompletionError, Done, ErrorKind, IOResultError, block
from core.io import OpenFlags
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers

# Every test here runs on both engines of AsyncFileIO (see `file_engine` in conftest).
pytestmark = pytest.mark.usefixtures("file_engine")

SIZE = 256 * 1024


def nowait_available() -> bool:
    """Whether this platform's AsyncFileIO tries RWF_NOWAIT (asked of a closed backend)."""
    io = AsyncFileIO()
    try:
        return io.nowait
    finally:
        io.close()


NEEDS_NOWAIT = pytest.mark.skipif(not nowait_available(), reason="this platform has no RWF_NOWAIT")


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def data() -> bytes:
    return random.Random(7).randbytes(SIZE)


@pytest.fixture
def data_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("ioresult-worker")]
    assert not alive, f"worker threads left running: {alive}"


@pytest.fixture(autouse=True)
def _whole_passes(whole_pass: None) -> None:
    """Tests here count what the drives started in one loop pass submit (`whole_pass`)."""


class GatedIO(AsyncFileIO):
    """Workers wait for `gate` before each batch and record how many requests run at once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(engine="threads", **kwargs)  # the gate is in the workers
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.batches = 0

    def _run_batch(self, batch: _Batch) -> None:
        self.gate.wait()
        with self.lock:
            self.active += len(batch.requests)
            self.max_active = max(self.max_active, self.active)
            self.batches += 1
        try:
            super()._run_batch(batch)
        finally:
            with self.lock:
                self.active -= len(batch.requests)


class Single:
    """An operation that submits one I/O with `submit(c)` and returns its result."""

    def __init__(self, make: Any, submit: Any) -> None:
        self.make = make
        self.submit = submit
        self.c: Completion | None = None
        self.aborted: list[BaseException] = []

    def step(self) -> Done[int] | IO:
        if self.c is None:
            self.c = self.make()
            self.submit(self.c)
            return IO(self.c)
        return Done(self.c.result())

    def abort(self, error: BaseException) -> None:
        self.aborted.append(error)


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- the operations -------------------------------------------------------------------------


async def run_core_ops(io: AsyncFileIO, tmp_path: Path, data: bytes) -> None:
    f = io.open_file(tmp_path / "new.bin", OpenFlags.CREATE)
    assert await drive(WriteBuffers(f, 0, [data[:1000], data[1000:]]), io) == len(data)
    assert (tmp_path / "new.bin").read_bytes() == data
    assert await drive(ReadRange(f, 4096, 100), io) == data[4096:4196]
    assert await drive(ReadRange(f, len(data) - 10, 100), io) == data[-10:]
    with pytest.raises(CompletionError) as info:
        await drive(ReadRange(f, len(data) - 10, 100, exact=True), io)
    assert info.value.kind is ErrorKind.SHORT_READ
    assert await drive(ReadWholeFile(f, chunk_size=10_000), io) == data
    g = io.open_file(tmp_path / "copy.bin", OpenFlags.CREATE)
    assert await drive(CopyFile(f, g, chunk_size=8192, batch=4), io) == len(data)
    assert (tmp_path / "copy.bin").read_bytes() == data


@pytest.mark.asyncio
@pytest.mark.parametrize("nowait", [None, False])
async def test_core_ops(tmp_path: Path, data: bytes, nowait: bool | None) -> None:
    async with AsyncFileIO(nowait=nowait) as io:
        await run_core_ops(io, tmp_path, data)
        assert io.in_flight == 0 and io.pending == 0
    assert io.worker_threads == 0


@pytest.mark.anyio
@pytest.mark.parametrize("nowait", [None, False])
async def test_core_ops_trio(tmp_path: Path, data: bytes, nowait: bool | None) -> None:
    async with AsyncFileIO(nowait=nowait) as io:
        await run_core_ops(io, tmp_path, data)
    assert io.worker_threads == 0


# -- inline reads and the RWF_NOWAIT fallback -----------------------------------------------


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_page_cache_hits_complete_inline_without_threads(
    data_file: Path, data: bytes
) -> None:
    async with AsyncFileIO() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        for off in range(0, SIZE, 4096):
            c = Completion.new_read(bytearray(4096))
            f.pread(off, c)
            if not f._nowait:
                pytest.skip("this file system refuses RWF_NOWAIT reads")
            if not c.finished():  # not cached after all (memory pressure): let it finish
                await drive(lambda c=c: Done(0) if c.finished() else IO(c), io)
            assert bytes(c.buffer) == data[off : off + 4096]  # type: ignore[arg-type]
        # The file was just written, so the reads were (nearly all) hits, done inline, and
        # without the pool no thread was started.
        assert io.pool_submissions <= 2
        if io.pool_submissions == 0:
            assert io.worker_threads == 0
        assert await drive(ReadRange(f, 10, 20), io) == data[10:30]


@pytest.mark.asyncio
async def test_nowait_off_sends_every_read_to_the_pool(data_file: Path, data: bytes) -> None:
    async with AsyncFileIO(nowait=False) as io:
        assert not io.nowait
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        results = [await drive(ReadRange(f, off, 512), io) for off in range(0, 8192, 512)]
        assert results == [data[off : off + 512] for off in range(0, 8192, 512)]
        assert io.pool_submissions == 16
        if io.engine == "threads":
            assert 1 <= io.worker_threads <= io.workers
        else:
            assert io.worker_threads == 0  # the ring read them


def _fake_preadv(fd: int, buffers: list[Any], pos: int, flags: int = 0) -> int:
    view = memoryview(buffers[0])
    FakeKernelIO.calls.append((pos, len(view)))
    action = FakeKernelIO.script.pop(0)
    if action == "unsupported":
        raise OSError(errno.EOPNOTSUPP, "not supported")
    if action == "miss":
        raise BlockingIOError(errno.EAGAIN, "would block")
    if action == "eof":
        return 0
    if action == "half":
        return os.preadv(fd, [view[: len(view) // 2]], pos)
    assert action == "all"
    return os.preadv(fd, [view], pos)


class FakeKernelIO(AsyncFileIO):
    """Stands in for the kernel's RWF_NOWAIT answers, per call, from a script."""

    script: list[str]
    calls: list[tuple[int, int]]
    _preadv = staticmethod(_fake_preadv)


@pytest.fixture
def fake_kernel() -> Iterator[type[FakeKernelIO]]:
    FakeKernelIO.script = []
    FakeKernelIO.calls = []
    yield FakeKernelIO


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("script", "pool", "inline_calls"),
    [
        (["all"], 0, 1),  # a hit
        (["miss"], 1, 1),  # a miss: all of it in the pool
        (["half", "all"], 0, 2),  # partial hit, then the rest inline
        (["half", "miss"], 1, 2),  # partial hit, the rest in the pool
        (["half", "half", "miss"], 1, 3),  # two partial hits, then the pool
        (["unsupported"], 1, 1),  # the file system refuses: this file stops trying
    ],
)
@NEEDS_NOWAIT
async def test_nowait_paths(
    fake_kernel: type[FakeKernelIO],
    data_file: Path,
    data: bytes,
    script: list[str],
    pool: int,
    inline_calls: int,
) -> None:
    fake_kernel.script = list(script)
    async with fake_kernel() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 1000, 8000), io) == data[1000:9000]
        assert io.pool_submissions == pool
        assert len(fake_kernel.calls) == inline_calls
        assert fake_kernel.script == []
        if script == ["unsupported"]:
            assert not f._nowait
            assert await drive(ReadRange(f, 0, 10), io) == data[:10]
            assert len(fake_kernel.calls) == 1  # never asked again for this file
            assert io.pool_submissions == 2


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_a_run_of_misses_pauses_inline_attempts(
    fake_kernel: type[FakeKernelIO], data_file: Path, data: bytes
) -> None:
    fake_kernel.script = ["miss"] * 8 + ["all"]
    async with fake_kernel() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        for i in range(8 + 32):
            assert await drive(ReadRange(f, i, 10), io) == data[i : i + 10]
        assert len(fake_kernel.calls) == 8  # the 32 reads after the 8th miss never asked
        assert io.pool_submissions == 40
        assert await drive(ReadRange(f, 100, 10), io) == data[100:110]
        assert len(fake_kernel.calls) == 9  # then it asks again, and this one hits
        assert io.pool_submissions == 40


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_a_pause_that_ends_in_a_miss_pauses_again_no_longer(
    fake_kernel: type[FakeKernelIO], data_file: Path, data: bytes
) -> None:
    """A file that stays cold probes once every 33 reads, and one that turns hot is noticed
    at the next probe: the pause never grows."""
    fake_kernel.script = ["miss"] * 8 + ["miss", "miss", "all", "miss"] + ["miss"] * 7
    async with fake_kernel() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        asked = []
        for i in range(8 + 3 * 33 + 8 + 1):
            assert await drive(ReadRange(f, i, 10), io) == data[i : i + 10]
            asked.append(len(fake_kernel.calls))
        # 8 misses, a pause of 32, a miss, 32, a miss, 32, a hit (it starts over), then
        # the next miss counts as the first of a new streak of 8.
        probes = [i for i in range(len(asked)) if asked[i] != (asked[i - 1] if i else 0)]
        assert probes == [*range(8), 40, 73, 106, *range(107, 115)]
        assert fake_kernel.script == []


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_a_file_pauses_at_its_first_miss_after_other_files_missed(
    fake_kernel: type[FakeKernelIO], data_file: Path, data: bytes
) -> None:
    """A cold workload with a handle per task: after 8 misses across the backend's files, a
    new handle's first miss pauses it, instead of each handle probing 8 times."""
    fake_kernel.script = ["miss"] * 8
    async with fake_kernel() as io:
        files = [io.open_file(data_file, OpenFlags.READ_ONLY) for _ in range(4)]
        for i in range(8):  # two misses each: none of them reaches its own streak
            assert await drive(ReadRange(files[i % 4], i, 10), io) == data[i : i + 10]
        assert all(f._nowait for f in files[:3]) and not files[3]._nowait
        late = io.open_file(data_file, OpenFlags.READ_ONLY)
        fake_kernel.script = ["miss"]
        assert await drive(ReadRange(late, 0, 10), io) == data[:10]
        assert not late._nowait  # paused at its first miss
        assert await drive(ReadRange(late, 1, 10), io) == data[1:11]
        assert len(fake_kernel.calls) == 9  # and the next read did not ask


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_a_hit_in_any_file_starts_the_backends_streak_over(
    fake_kernel: type[FakeKernelIO], data_file: Path, data: bytes
) -> None:
    fake_kernel.script = ["miss"] * 7 + ["all"] + ["miss"] * 7
    async with fake_kernel() as io:
        cold = io.open_file(data_file, OpenFlags.READ_ONLY)
        hot = io.open_file(data_file, OpenFlags.READ_ONLY)
        for i in range(7):
            assert await drive(ReadRange(cold, i, 10), io) == data[i : i + 10]
        assert await drive(ReadRange(hot, 0, 10), io) == data[:10]  # the hit
        others = [io.open_file(data_file, OpenFlags.READ_ONLY) for _ in range(7)]
        for i, f in enumerate(others):  # 7 misses after the hit: no streak of 8 yet
            assert await drive(ReadRange(f, i, 10), io) == data[i : i + 10]
        assert all(f._nowait for f in others)
        assert fake_kernel.script == []


@pytest.mark.asyncio
async def test_inline_hits_of_any_size_return_bytes_of_their_own(
    data_file: Path, data: bytes
) -> None:
    """Inline hits that take bytes share the file's scratch buffer: what each returned must
    stay what it read after the next read lands there, whatever the sizes."""
    async with AsyncFileIO() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        ranges = [(0, 100), (5000, 100), (7, 4096), (1, 0), (9000, 70000), (3, 100), (8, 5)]
        got = [await drive(ReadRange(f, off, size), io) for off, size in ranges]
        assert got == [data[off : off + size] for off, size in ranges]
        assert all(type(g) is bytes for g in got)
        assert io.pool_submissions == 0 or not io.nowait


@NEEDS_NOWAIT
def test_an_inline_hit_outside_any_loop_does_not_look_for_one_the_slow_way(
    data_file: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside any event loop a hit refills the budget at once, without `_bind` (which
    finds no loop by raising and catching an exception, each read)."""
    io = AsyncFileIO()
    try:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)

        def no_bind() -> None:
            raise AssertionError("_bind called outside any loop")

        monkeypatch.setattr(io, "_bind", no_bind)
        for pos in (0, 4096, 8192):
            c = f.pread(pos, Completion.new_read_bytes(4096))
            assert c.finished() and c.read_bytes() == data[pos : pos + 4096]
        assert io.pool_submissions == 0
    finally:
        io.close()


@NEEDS_NOWAIT
def test_misses_outside_any_loop_never_pause_a_files_hits(
    fake_kernel: type[FakeKernelIO], data_file: Path, data: bytes
) -> None:
    """Outside any loop a miss fails (there is no engine to send it to); it must not count
    toward a pause, or a file's next reads, hits, would fail too."""
    io = fake_kernel()
    try:
        cold = io.open_file(data_file, OpenFlags.READ_ONLY)
        fake_kernel.script = ["miss"] * 9
        for i in range(9):
            with pytest.raises(EventLoopError):
                cold.pread(i, Completion.new_read_bytes(10))
        hot = io.open_file(data_file, OpenFlags.READ_ONLY)
        fake_kernel.script = ["miss", "all", "all"]
        with pytest.raises(EventLoopError):
            hot.pread(0, Completion.new_read_bytes(10))
        for f in (hot, cold):
            c = f.pread(100, Completion.new_read_bytes(10))
            assert c.finished() and c.read_bytes() == data[100:110]
        assert fake_kernel.script == []
    finally:
        io.close()


@NEEDS_NOWAIT
def test_a_read_outside_any_loop_is_never_deferred_to_a_loop_pass(
    data_file: Path, data: bytes
) -> None:
    """A loop on another thread may have spent this pass's inline budget: a caller outside
    any loop reads inline anyway, rather than wait for a pass of a loop it is not on."""
    io = AsyncFileIO(inline_budget=8192)
    try:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        inline = io._inline_reads
        inline.left, inline.reset_due = 0, True  # what a loop's reads leave until its refill
        buffer = bytearray(4096)
        c = f.pread(4096, Completion.new_read(buffer))
        assert c.finished() and bytes(buffer) == data[4096:8192]
        assert io.pending == 0 and io.pool_submissions == 0
    finally:
        io.close()


@NEEDS_NOWAIT
def test_inline_hits_from_two_threads_never_share_the_scratch_buffer(
    data_file: Path, data: bytes
) -> None:
    """Outside any loop a hit is read inline on the calling thread; `preadv` lets go of the
    GIL, so two threads reading one file must each read into a buffer of their own."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter lets it
    io = AsyncFileIO(inline_budget=1 << 40)
    f = io.open_file(data_file, OpenFlags.READ_ONLY)
    wrong = [0, 0]

    def reader(k: int) -> None:
        for i in range(4000):
            pos = ((k * 100 + i * 7) % 60) * 4096
            c = f.pread(pos, Completion.new_read_bytes(4096))
            if c.finished() and c.read_bytes() != data[pos : pos + 4096]:
                wrong[k] += 1

    try:
        threads = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch_interval)
        io.close()
    assert wrong == [0, 0]


def test_a_read_completion_without_a_buffer_is_refused(data_file: Path) -> None:
    with (
        AsyncFileIO() as io,
        io.open_file(data_file, OpenFlags.READ_ONLY) as f,
        pytest.raises(IOResultError, match="needs a read completion with a buffer"),
    ):
        f.pread(0, Completion.new_read(None))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length must be >= 0"):
        Completion.new_read_bytes(-1)


def test_completions_queued_when_a_loop_closed_finish_on_the_next(
    data_file: Path, data: bytes
) -> None:
    """Results that came back while the first loop's finisher was scheduled, and that loop
    closed before it ran: the backend moves to a new loop, and its reads still finish."""
    io = AsyncFileIO(nowait=False, engine="threads")
    f = io.open_file(data_file, OpenFlags.READ_ONLY)
    count = FINISH_PER_CALLBACK * 3

    async def first() -> None:
        reads = [
            asyncio.ensure_future(drive(ReadRange(f, (i % 32) * 4096, 4096), io))
            for i in range(count)
        ]
        while io.pool_submissions < count or io._staged or io._pending:
            await asyncio.sleep(0)
        time.sleep(0.3)  # every read comes back meanwhile
        while io._outstanding:
            await asyncio.sleep(0)  # one wake-up delivers them: one share finishes now
        assert not all(r.done() for r in reads)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(first())
        assert io._finisher.scheduled  # the next share's callback is on the loop
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()

    async def second() -> bytes:
        return await asyncio.wait_for(drive(ReadRange(f, 0, 4096), io), 5)

    try:
        assert asyncio.run(second()) == data[:4096]
    finally:
        io.close()


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_partial_hit_then_end_of_file(
    fake_kernel: type[FakeKernelIO], data_file: Path, data: bytes
) -> None:
    fake_kernel.script = ["half", "eof"]
    async with fake_kernel() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 100), io) == data[:50]
        assert io.pool_submissions == 0


@pytest.mark.asyncio
async def test_partial_page_cache_hit_on_a_real_file(tmp_path: Path) -> None:
    """Evict the second half of a range, then read all of it: whatever mix of inline and
    pool the kernel gives, the bytes must be right."""
    if not hasattr(os, "posix_fadvise"):
        pytest.skip("no posix_fadvise here")
    payload = random.Random(3).randbytes(1 << 20)
    path = tmp_path / "partial.bin"
    path.write_bytes(payload)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 1 << 19, 1 << 19, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    async with AsyncFileIO() as io:
        f = io.open_file(path, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 1 << 20), io) == payload


# -- worker errors ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_error_from_a_worker_thread() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    async with AsyncFileIO() as io:
        f = io.open_file("/dev/full")
        op = WriteBuffers(f, 0, [b"x" * 100], sync=False)
        with pytest.raises(CompletionError) as info:
            await drive(op, io)
        assert info.value.kind is ErrorKind.IO
        assert info.value.errno == errno.ENOSPC
        assert info.value.path == "/dev/full"
        assert "ENOSPC" in str(info.value)
        # The worker survived and the backend still serves.
        with pytest.raises(CompletionError):
            await drive(WriteBuffers(f, 0, [b"y"], sync=False), io)


class ExplodingIO(AsyncFileIO):
    def _run_batch(self, batch: _Batch) -> None:
        raise RuntimeError("a bug in a worker")


@pytest.mark.asyncio
async def test_a_non_os_error_in_a_worker_becomes_the_completions_error(
    data_file: Path,
) -> None:
    async with ExplodingIO(nowait=False, engine="threads") as io:
        f = io.open_file(data_file)
        with pytest.raises(CompletionError, match="a bug in a worker") as info:
            await drive(ReadRange(f, 0, 10), io)
        assert isinstance(info.value.__cause__, RuntimeError)
        with pytest.raises(CompletionError):
            await drive(ReadRange(f, 0, 10), io)


# -- submission errors ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_submission_errors(data_file: Path, tmp_path: Path) -> None:
    async with AsyncFileIO() as io:
        ro = io.open_file(data_file, OpenFlags.READ_ONLY)
        with pytest.raises(CompletionError) as info:
            ro.pwrite(0, b"x", Completion.new_write())
        assert info.value.errno == errno.EBADF
        for call in (
            lambda: ro.pread(-1, Completion.new_read(bytearray(1))),
            lambda: ro.truncate(-1, Completion.new_trunc()),
        ):
            with pytest.raises(CompletionError) as info:
                call()
            assert info.value.errno in (errno.EINVAL, errno.EBADF)
        rw = io.open_file(data_file)
        with pytest.raises(CompletionError) as info:
            rw.pwritev(-5, [b"x"], Completion.new_write())
        assert info.value.errno == errno.EINVAL and info.value.offset == -5
        with pytest.raises(IOResultError, match="buffer"):
            rw.pread(0, Completion.new_write())
        with pytest.raises(CompletionError) as info:
            io.open_file(tmp_path / "missing")
        assert info.value.errno == errno.ENOENT
        with pytest.raises(CompletionError) as info:
            io.open_file(tmp_path, OpenFlags.READ_ONLY)
        assert info.value.errno == errno.EISDIR
        with pytest.raises(CompletionError) as info:
            io.remove_file(tmp_path / "missing")
        assert info.value.errno == errno.ENOENT
        io.remove_file(data_file)
        assert not data_file.exists()
        assert rw.size() == SIZE  # an unlinked file stays readable through its handle


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": 0},
        {"workers": 1.5},
        {"max_in_flight": 0},
        {"max_in_flight": True},
        {"time_slice": -1},
        {"settle_timeout": float("nan")},
    ],
)
def test_invalid_constructor_arguments(kwargs: dict[str, Any]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(InvalidArgumentError, match=name):
        AsyncFileIO(**kwargs)


# -- backpressure ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_backpressure_at_the_in_flight_bound(data_file: Path, data: bytes) -> None:
    io = GatedIO(nowait=False, max_in_flight=8, workers=2)
    async with io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        tasks = [asyncio.create_task(drive(ReadRange(f, i * 100, 100), io)) for i in range(100)]
        await turns(3)  # every task submitted; the flush ran
        assert io.in_flight == 8
        assert io.pending == 92  # waiting, and the loop is not blocked: we are running
        io.gate.set()
        results = await asyncio.gather(*tasks)
        assert results == [data[i * 100 : i * 100 + 100] for i in range(100)]
        assert io.max_active <= 8
        assert io.in_flight == 0 and io.pending == 0


@pytest.mark.asyncio
async def test_ten_thousand_concurrent_drives_share_one_backend(
    data_file: Path, data: bytes
) -> None:
    io = GatedIO(nowait=False)
    io.gate.set()
    async with io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        offsets = [(i * 4099) % (SIZE - 64) for i in range(10_000)]
        results = await asyncio.gather(*(drive(ReadRange(f, off, 64), io) for off in offsets))
        assert results == [data[off : off + 64] for off in offsets]
        assert io.max_active <= io.max_in_flight
        assert io.pool_submissions == 10_000
        # Batching: far fewer wake-ups than requests.
        assert io.batches < 10_000


@pytest.mark.anyio
async def test_ten_thousand_concurrent_drives_under_trio(data_file: Path, data: bytes) -> None:
    io = GatedIO(nowait=False)
    io.gate.set()
    results: dict[int, bytes] = {}
    offsets = [(i * 4099) % (SIZE - 64) for i in range(10_000)]

    async def one(i: int, f: Any) -> None:
        results[i] = await drive(ReadRange(f, offsets[i], 64), io)

    async with io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        async with trio.open_nursery() as nursery:
            for i in range(10_000):
                nursery.start_soon(one, i, f)
        assert [results[i] for i in range(10_000)] == [data[off : off + 64] for off in offsets]
        assert io.max_active <= io.max_in_flight


@pytest.mark.asyncio
async def test_independent_cold_reads_spread_over_workers(data_file: Path) -> None:
    io = GatedIO(nowait=False, workers=4)
    async with io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        tasks = [asyncio.create_task(drive(ReadRange(f, i * 4096, 4096), io)) for i in range(32)]
        await turns(3)
        # 32 units (one task each) cut into one batch per worker.
        assert len(io._outstanding) == 4
        io.gate.set()
        await asyncio.gather(*tasks)


@pytest.mark.asyncio
async def test_a_groups_children_travel_together(data_file: Path, data: bytes) -> None:
    io = GatedIO(nowait=False, workers=4)
    async with io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        task = asyncio.create_task(drive(ReadWholeFile(f, chunk_size=4096), io))
        await turns(3)
        assert io.in_flight == SIZE // 4096
        assert len(io._outstanding) == 1  # one unit: one batch, one wake-up
        io.gate.set()
        assert await task == data


# -- refusing block -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_block_inside_a_running_loop_is_refused_not_deadlocked(data_file: Path) -> None:
    async with AsyncFileIO() as io:
        f = io.open_file(data_file)
        op = WriteBuffers(f, 0, [b"x"])
        with pytest.raises(EventLoopError, match="drive"):
            block(op, io)
        assert isinstance(EventLoopError("x"), IOResultError)
        await turns(2)
        assert io.pending == 0  # block aborted the write it could not wait for
        assert await drive(WriteBuffers(f, 0, [b"y"]), io) == 1


def test_block_outside_any_loop_is_refused(data_file: Path) -> None:
    with AsyncFileIO() as io:
        f = io.open_file(data_file)
        with pytest.raises(EventLoopError, match="event loop"):
            block(WriteBuffers(f, 0, [b"x"]), io)
    with AsyncFileIO(nowait=False) as io:
        f = io.open_file(data_file)
        with pytest.raises(EventLoopError, match="event loop"):
            block(ReadRange(f, 0, 10), io)
        c = Completion.new_write()
        c.complete(1)
        io.wait_for_completion(c)  # a finished completion is no reason to refuse


# -- closing --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_closed_backend_errors(data_file: Path) -> None:
    io = AsyncFileIO()
    f = io.open_file(data_file)
    assert await drive(ReadRange(f, 0, 4), io)
    await io.aclose()
    await io.aclose()  # idempotent
    io.close()
    for call in (
        lambda: io.open_file(data_file),
        lambda: io.remove_file(data_file),
        lambda: f.pread(0, Completion.new_read(bytearray(1))),
        lambda: f.pwrite(0, b"x", Completion.new_write()),
        lambda: f.sync(Completion.new_sync()),
        lambda: f.truncate(0, Completion.new_trunc()),
        f.size,
    ):
        with pytest.raises(CompletionError) as info:
            call()
        assert info.value.kind is ErrorKind.CLOSED
    with pytest.raises(CompletionError) as info:
        await drive(ReadRange(f, 0, 4), io)
    assert info.value.kind is ErrorKind.CLOSED


@pytest.mark.asyncio
async def test_aclose_drains_what_workers_hold_and_aborts_what_waits(data_file: Path) -> None:
    io = GatedIO(nowait=False, max_in_flight=1, workers=1)
    f = io.open_file(data_file)
    first = asyncio.create_task(drive(WriteBuffers(f, 0, [b"AB"], sync=False), io))
    second = asyncio.create_task(drive(WriteBuffers(f, 2, [b"CD"], sync=False), io))
    await turns(3)
    assert io.in_flight == 1 and io.pending == 1
    asyncio.get_running_loop().call_later(0.01, io.gate.set)
    await io.aclose()
    assert await first == 2  # drained
    with pytest.raises(CompletionError) as info:
        await second  # aborted before a worker saw it
    assert info.value.kind is ErrorKind.ABORTED
    assert data_file.read_bytes()[:4] != b"ABCD"
    assert data_file.read_bytes()[:2] == b"AB"
    assert io.worker_threads == 0


@pytest.mark.asyncio
async def test_closing_a_file_with_io_in_flight_defers_closing_its_descriptor(
    data_file: Path,
) -> None:
    io = GatedIO(nowait=False)
    async with io:
        f = io.open_file(data_file)
        task = asyncio.create_task(drive(WriteBuffers(f, 0, [b"Z"], sync=False), io))
        await turns(3)
        f.close()
        os.fstat(f.fd)  # still open: a worker holds it
        io.gate.set()
        assert await task == 1
        with pytest.raises(OSError) as info:
            os.fstat(f.fd)
        assert info.value.errno == errno.EBADF
    assert data_file.read_bytes()[:1] == b"Z"


def test_loop_closing_with_io_in_flight(data_file: Path) -> None:
    io = GatedIO(nowait=False, settle_timeout=0.02)
    f = io.open_file(data_file)
    op = WriteBuffers(f, 0, [b"Q"], sync=False)
    holder: dict[str, asyncio.Task[int]] = {}

    async def main() -> None:
        holder["task"] = asyncio.create_task(drive(op, io))
        await turns(3)
        assert io.in_flight == 1
        # return with the drive still waiting: the runner cancels it while closing

    with asyncio.Runner() as runner:
        runner.run(main())
    assert holder["task"].cancelled()
    assert op.is_failed()  # op.abort ran
    io.gate.set()  # the worker finishes and posts to a closed loop: dropped quietly
    io.close()
    assert io.worker_threads == 0
    assert f.closed


def test_closing_after_the_loop_closed_with_drives_waiting(
    data_file: Path, file_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    io = AsyncFileIO(nowait=False, workers=1, max_in_flight=1)
    f = io.open_file(data_file, OpenFlags.READ_ONLY)
    loop = asyncio.new_event_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))

    ops = [ReadRange(f, i, 1) for i in range(50)]

    async def start() -> list[asyncio.Future[bytes]]:
        tasks = [asyncio.ensure_future(drive(op, io)) for op in ops]
        await asyncio.sleep(0)
        return tasks

    tasks = loop.run_until_complete(start())
    loop.close()  # the drives are still waiting (on the pool or the ring)
    io.close()  # their wake-ups are dropped: nothing raises, nothing is reported
    assert unraisable == []
    assert not any(t.done() for t in tasks)
    assert all(id(op) in DRIVING for op in ops)
    del tasks
    gc.collect()  # the abandoned drives go: the loop only says they never finished
    assert set(reported) <= {"Task was destroyed but it is pending!"}
    # Nothing of the closed backend keeps a task alive: each drive was collected and
    # cleaned up as it went (its operation aborted, and no longer being driven: a new
    # drive of it is not refused).
    assert not any(id(op) in DRIVING for op in ops)
    assert all(op.is_failed() for op in ops)


def test_same_backend_on_consecutive_loops(data_file: Path, data: bytes) -> None:
    io = AsyncFileIO(nowait=False)
    f = io.open_file(data_file, OpenFlags.READ_ONLY)
    for _ in range(2):
        assert asyncio.run(drive(ReadRange(f, 5, 5), io)) == data[5:10]
    assert trio.run(drive, ReadRange(f, 7, 5), io) == data[7:12]
    io.close()


@pytest.mark.asyncio
async def test_submitting_from_another_thread_is_refused(data_file: Path) -> None:
    async with AsyncFileIO() as io:
        f = io.open_file(data_file)
        assert await drive(WriteBuffers(f, 0, [b"k"]), io) == 1
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                f.sync(Completion.new_sync())
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], EventLoopError)


@pytest.mark.asyncio
async def test_when_settled_is_false_when_nothing_is_out() -> None:
    async with AsyncFileIO() as io:
        assert io.when_settled(lambda: None) is False


# -- the inline budget ----------------------------------------------------------------------


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_inline_budget_defers_what_does_not_fit_to_the_next_pass(
    data_file: Path, data: bytes
) -> None:
    async with AsyncFileIO(inline_budget=8192) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 16), io) == data[:16]  # warm; file checked
        if not f._nowait:
            pytest.skip("this file system refuses RWF_NOWAIT reads")
        await asyncio.sleep(0)  # a new loop pass: the budget is full again
        before = io.pool_submissions
        # Six 4 KiB reads in one pass: two fit the budget, the rest wait for later passes.
        cs = [Completion.new_read(bytearray(4096)) for _ in range(6)]
        for i, c in enumerate(cs):
            f.pread(i * 4096, c)
        assert [c.finished() for c in cs] == [True, True, False, False, False, False]
        assert io.pending == 4
        # A read larger than the whole budget goes to the pool.
        big = Completion.new_read(bytearray(16384))
        f.pread(0, big)
        assert not big.finished()
        assert io.pool_submissions == before + 1
        await asyncio.sleep(0)  # next pass: two more, inline
        assert [c.finished() for c in cs] == [True] * 4 + [False] * 2
        await asyncio.sleep(0)
        assert all(c.finished() for c in cs)
        assert io.pool_submissions == before + 1
        assert (
            [bytes(c.buffer) for c in cs]
            == [  # type: ignore[arg-type]
                data[i * 4096 : (i + 1) * 4096] for i in range(6)
            ]
        )
        while not big.finished():
            await asyncio.sleep(0.001)
        assert bytes(big.buffer) == data[:16384]  # type: ignore[arg-type]


@NEEDS_NOWAIT
@pytest.mark.asyncio
async def test_deferred_reads_are_aborted_by_cancel_and_close(data_file: Path) -> None:
    io = AsyncFileIO(inline_budget=4096)
    f = io.open_file(data_file, OpenFlags.READ_ONLY)
    assert await drive(ReadRange(f, 0, 16), io)
    if not f._nowait:
        pytest.skip("this file system refuses RWF_NOWAIT reads")
    await asyncio.sleep(0)
    first = Completion.new_read(bytearray(4096))
    # In the next pass: first spend the budget, then the task's read is deferred.
    asyncio.get_running_loop().call_soon(f.pread, 0, first)
    op = ReadRange(f, 4096, 4096)
    task = asyncio.create_task(drive(op, io))
    await asyncio.sleep(0)
    assert first.finished()
    assert io.pending == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the next pass skips the aborted read
    assert io.pending == 0
    late = Completion.new_read(bytearray(4096))
    f.pread(0, late)  # fits the new pass: inline
    spare = Completion.new_read(bytearray(4096))
    f.pread(4096, spare)  # deferred
    await io.aclose()
    assert spare.get_error().kind is ErrorKind.ABORTED  # type: ignore[union-attr]
    assert io.pending == 0


def test_inline_reads_outside_a_loop_are_not_limited(data_file: Path, data: bytes) -> None:
    # No loop to protect (and none to refill the budget later): refill at once.
    with AsyncFileIO(inline_budget=4096) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        for off in range(0, 64 * 1024, 4096):
            c = Completion.new_read(bytearray(4096))
            try:
                f.pread(off, c)
            except EventLoopError:
                pytest.skip("the page cache did not hold the file")
            if not f._nowait:
                pytest.skip("no RWF_NOWAIT reads here")
            assert bytes(c.buffer) == data[off : off + 4096]  # type: ignore[arg-type]
        assert io.pool_submissions == 0


def test_inline_budget_must_be_a_non_negative_int() -> None:
    with pytest.raises(InvalidArgumentError, match="inline_budget"):
        AsyncFileIO(inline_budget=-1)


def test_an_unclosed_backend_does_not_hold_the_process_at_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = f"""
import asyncio
from bridge import AsyncFileIO, drive
from core.io import OpenFlags
from core.ops import WriteBuffers

async def main():
    io = AsyncFileIO(engine="threads")  # never closed: its workers are alive when the process ends
    f = io.open_file({str(tmp_path / "x.bin")!r}, OpenFlags.CREATE)
    await drive(WriteBuffers(f, 0, [b"bye"]), io)
    assert io.worker_threads == io.workers
    print("ok")

asyncio.run(main())
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert (tmp_path / "x.bin").read_bytes() == b"bye"


def test_a_dropped_backend_warns_and_releases_its_threads_ring_and_files(
    data_file: Path, file_engine: str
) -> None:
    def workers() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("ioresult-worker"))

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = (workers(), open_fds())

    async def use_and_drop() -> None:
        for _ in range(5):
            io = AsyncFileIO(nowait=False)  # the pool or the ring: the fixture chooses
            f = io.open_file(data_file, OpenFlags.READ_ONLY)
            assert await drive(ReadRange(f, 0, 3), io) == data_file.read_bytes()[:3]
            del io, f  # never closed

    with pytest.warns(ResourceWarning, match="AsyncFileIO was dropped without being closed"):
        asyncio.run(use_and_drop())
        gc.collect()
    for _ in range(100):  # the workers were told to stop; let them
        if workers() <= before[0]:
            break
        time.sleep(0.01)
    assert (workers(), open_fds()) == before
