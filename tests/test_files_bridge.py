"""`bridge.open` beyond call-for-call results: its shape, its errors, the default backend's
life, where the I/O runs, cancellation in the middle of a read or a flush, several tasks on
one file, turns for the loop, and trio."""

from __future__ import annotations

import asyncio
import errno
import gc
import io as io_module
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiofiles
import pytest
import trio

import bridge
from bridge import AsyncFileIO, EventLoopError
from bridge._defaults import _DEFAULTS, default_io
from bridge.aiofile import AsyncBufferedFile, AsyncRawFile, AsyncTextFile
from core import Completion, CompletionError, ErrorKind
from core.files import OpenFile, parse_open_arguments
from core.io import MemoryIO, MemoryYieldIO, OpenFlags
from tests.conftest import new_asyncio_loop, new_uvloop_loop

# Every test here runs on both engines of AsyncFileIO (see `file_engine` in conftest).
pytestmark = pytest.mark.usefixtures("file_engine")


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    """Every backend a test made, default or not, was closed and joined its workers."""
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("ioresult-worker")]
    assert not alive, f"worker threads left running: {alive}"


def lines_file(tmp_path: Path, count: int = 1000) -> Path:
    path = tmp_path / "lines.txt"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(count)))
    return path


# -- shape -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_is_awaitable_and_an_async_context_manager(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 3)
    f = await bridge.open(path)
    assert isinstance(f, AsyncTextFile)
    assert await f.readline() == "line 0\n"
    await f.close()
    assert f.closed
    async with bridge.open(path, "rb") as g:
        assert isinstance(g, AsyncBufferedFile)
        assert [line async for line in g] == [b"line 0\n", b"line 1\n", b"line 2\n"]
    assert g.closed
    async with bridge.open(path, "rb", buffering=0) as h:
        assert isinstance(h, AsyncRawFile)
        assert await h.readall() == path.read_bytes()
    opening = bridge.open(path)  # nothing happens until awaited
    del opening


@pytest.mark.asyncio
async def test_attributes_match_aiofiles(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 3)
    for mode, kw in [
        ("r", {}),
        ("rb", {}),
        ("r+b", {}),
        ("a", {"encoding": "latin-1"}),
        ("w+", {"newline": ""}),
        ("rb", {"buffering": 0}),
    ]:
        async with aiofiles.open(path, mode, **kw) as theirs, bridge.open(path, mode, **kw) as ours:
            assert (ours.name, ours.mode, ours.closed) == (theirs.name, theirs.mode, False)
            if "b" not in mode:
                assert (ours.encoding, ours.errors, ours.line_buffering, ours.newlines) == (
                    theirs.encoding,
                    theirs.errors,
                    theirs.line_buffering,
                    theirs.newlines,
                )
                assert await ours.readable() == await theirs.readable()
            else:
                assert ours.readable() == theirs.readable()
            assert await ours.writable() == await theirs.writable()
            assert await ours.seekable() == await theirs.seekable()
            assert await ours.isatty() == await theirs.isatty()
            assert ours.fileno() >= 0
            assert repr(ours).startswith("<Async")


@pytest.mark.asyncio
async def test_text_buffer_shares_the_position(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 3)
    async with bridge.open(path, "r+") as f:
        assert f.buffer is f.buffer
        await f.seek(0, 2)
        await f.write("tail\n")
        await f.flush()
        assert await f.buffer.tell() == len(path.read_bytes())
        await f.buffer.seek(0)
        assert await f.buffer.read(7) == b"line 0\n"
    assert path.read_bytes().endswith(b"tail\n")


# -- errors --------------------------------------------------------------------------------


async def outcome(coro: Any) -> tuple[type[BaseException], str] | Any:
    try:
        return await coro
    except Exception as exc:
        return type(exc), str(exc)


@pytest.mark.asyncio
async def test_open_errors_are_aiofiles_errors(tmp_path: Path) -> None:
    existing = lines_file(tmp_path, 1)
    cases: list[tuple[Any, ...]] = [
        (tmp_path / "missing" / "f", "r"),
        (tmp_path, "r"),
        (tmp_path, "wb"),
        (existing, "rw"),
        (existing, "rbt"),
        (existing, "x"),
        (existing, "r", -1, "no-such-codec"),
        (existing, "r", 0),
    ]
    for case in cases:
        theirs = await outcome(aiofiles.open(*case))
        ours = await outcome(bridge.open(*case))
        assert isinstance(theirs, tuple), case
        assert ours == theirs, case
    with pytest.raises(FileNotFoundError) as caught:
        await bridge.open(tmp_path / "missing" / "f")
    assert caught.value.errno == errno.ENOENT
    assert caught.value.filename == str(tmp_path / "missing" / "f")
    assert isinstance(caught.value.__cause__, CompletionError)


@pytest.mark.asyncio
async def test_unsupported_and_closed_errors_are_aiofiles_errors(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 1)
    for mode in ("w", "wb", "r", "rb"):
        async with aiofiles.open(path, mode) as theirs, bridge.open(path, mode) as ours:
            data = b"x" if "b" in mode else "x"
            for name, args in [("read", ()), ("readline", ()), ("write", (data,))]:
                expected = await outcome(getattr(theirs, name)(*args))
                got = await outcome(getattr(ours, name)(*args))
                assert type(got) is type(expected)
                if isinstance(expected, tuple):
                    assert issubclass(got[0], io_module.UnsupportedOperation)
                    assert got[1] == expected[1]
        for name in ("read", "readline", "tell", "flush", "seek", "truncate"):
            args = (0,) if name == "seek" else ()
            expected = await outcome(getattr(theirs, name)(*args))
            got = await outcome(getattr(ours, name)(*args))
            assert issubclass(got[0], ValueError) and got[1] == expected[1], (mode, name)
        await ours.close()  # closing twice is fine


@pytest.mark.asyncio
async def test_io_errors_become_oserrors() -> None:
    io = FailingIO()
    f = await bridge.open("f", "w", io=io)
    await f.write("data")
    io.failing = True
    with pytest.raises(OSError) as caught:
        await f.flush()
    assert type(caught.value) is OSError and caught.value.errno == errno.EIO
    assert caught.value.filename is None  # as Python reports a failed write
    assert isinstance(caught.value.__cause__, CompletionError)
    io.failing = False
    await f.close()
    assert io.file_contents("f") == b"data"


class FailingIO(MemoryIO):
    """Fails every write with EIO while `failing` is set."""

    failing = False

    def _submit(self, c: Completion, action: Any, *args: object) -> Completion:
        if self.failing and c.buffer is None:
            c.error(CompletionError(ErrorKind.IO, "injected", errno=errno.EIO, path="f"))
            return c
        return super()._submit(c, action, *args)


# -- the backend -----------------------------------------------------------------------------


def test_the_default_backend_lives_and_dies_with_its_loop(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 10)
    seen: list[AsyncFileIO] = []

    async def main() -> None:
        async with bridge.open(path) as f, bridge.open(path, "rb") as g:
            assert f.io is g.io is default_io()
            seen.append(f.io)  # type: ignore[arg-type]
            await f.readline()
        async with bridge.open(path, "a") as h:  # the flush needs the workers
            await h.write("more\n")

    for factory in (new_asyncio_loop, new_uvloop_loop):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(main())
            gc.collect()
    assert len(seen) == 2 and seen[0] is not seen[1]
    for io in seen:
        assert io.closed and io.worker_threads == 0
    assert not _DEFAULTS


def test_a_loop_closed_without_shutdown_is_cleaned_up_later(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 2)

    async def use() -> AsyncFileIO:
        async with bridge.open(path, "w") as f:
            await f.write("x\n")
        return default_io()

    loop = new_asyncio_loop()
    stale = loop.run_until_complete(use())
    loop.close()  # no shutdown_asyncgens: the backend outlives it
    assert not stale.closed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = asyncio.run(use())  # the next default backend closes the stale one
        gc.collect()
    assert stale.closed and stale.worker_threads == 0
    assert fresh is not stale and fresh.closed


@pytest.mark.asyncio
async def test_an_explicit_backend_is_used_and_left_open(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 5)
    async with AsyncFileIO() as io:
        async with bridge.open(path, "rb", io=io) as f:
            assert f.io is io
            assert await f.readline() == b"line 0\n"
        assert not io.closed
    memory = MemoryIO()
    async with bridge.open("m", "w", io=memory) as m:
        await m.write("in memory")
        with pytest.raises(io_module.UnsupportedOperation):
            m.fileno()
        assert not await m.isatty()
    assert memory.file_contents("m") == b"in memory"


def test_default_backend_needs_a_loop() -> None:
    with pytest.raises(EventLoopError):
        default_io()


@pytest.mark.asyncio
async def test_cached_reads_never_leave_the_loop_thread(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 1024)  # 256 KiB, in the page cache now
    path.read_bytes()
    async with AsyncFileIO() as io:
        if not io.nowait:  # pragma: no cover - only where the kernel lacks RWF_NOWAIT
            pytest.fail("RWF_NOWAIT is not available here; the inline path cannot be shown")
        async with bridge.open(path, "rb", io=io) as f:
            chunks = [await f.read(65536) for _ in range(4)]
            await f.seek(4096 * 3)
            assert await f.read(4096) == path.read_bytes()[4096 * 3 : 4096 * 4]
        async with bridge.open(lines_file(tmp_path, 500), io=io) as t:
            assert len([line async for line in t]) == 500
        assert b"".join(chunks) == path.read_bytes()
        assert io.pool_submissions == 0
        async with bridge.open(tmp_path / "out", "w", io=io) as w:
            for i in range(1000):
                await w.write(f"{i}\n")
            assert io.pool_submissions == 0  # buffered
            await w.flush()
            assert io.pool_submissions == 1  # one pwritev
        assert io.pool_submissions == 1  # nothing left to write at close


# -- cancellation ------------------------------------------------------------------------------


class GatedIO(AsyncFileIO):
    """Every read goes to the workers, and workers wait for `gate` before each batch."""

    def __init__(self) -> None:
        super().__init__(nowait=False, settle_timeout=5, engine="threads")  # gated workers
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def _run_batch(self, batch: Any) -> None:
        self.entered.set()
        self.gate.wait()
        super()._run_batch(batch)


async def cancel_while_held(io: GatedIO, coro: Any) -> None:
    """Run `coro` until a worker holds its I/O, cancel it, release the worker."""
    io.gate.clear()
    io.entered.clear()
    task = asyncio.ensure_future(coro)
    while not io.entered.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    asyncio.get_running_loop().call_later(0.01, io.gate.set)
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_a_cancelled_read_leaves_the_file_usable(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 100)
    async with GatedIO() as io:
        for mode in ("rb", "r", "r+b"):
            async with bridge.open(path, mode, io=io) as f:
                assert await f.readline() in (b"line 0\n", "line 0\n")
                await f.read(3)
                position = await f.tell()
                await cancel_while_held(io, f.read(5000))
                assert await f.tell() == position
                rest = await f.read()
                assert (rest if isinstance(rest, bytes) else rest.encode()) == (
                    path.read_bytes()[position:]
                )


@pytest.mark.asyncio
async def test_whole_block_reads_that_wait_are_whole_short_or_empty(tmp_path: Path) -> None:
    """A read of whole blocks with nothing buffered is one raw read that becomes the result:
    whole, short at the end of the file, empty past it; cancelled while a worker holds it,
    the position stays and the bytes come with the next read."""
    data = bytes(range(256)) * 100  # 25,600 bytes: three 8 KiB blocks and a tail
    path = tmp_path / "blocks.bin"
    path.write_bytes(data)
    # Inline (RWF_NOWAIT, the file's scratch buffer), then through this test's engine (the
    # ring reads into spare buffers of its own, the pool into the completion's buffer).
    for nowait in (True, False):
        async with AsyncFileIO(nowait=nowait) as io, bridge.open(path, "rb", io=io) as f:
            assert await f.read(8192) == data[:8192]
            assert await f.read(16384) == data[8192:24576]
            assert await f.read(8192) == data[24576:]
            assert await f.read(8192) == b""
            assert await f.seek(4096) == 4096
            assert await f.read(8192) == data[4096:12288]
            assert await f.read(5) == data[12288:12293]  # the position after a block read
    async with GatedIO() as io:  # every read waits for a worker
        for mode in ("rb", "r+b"):
            async with bridge.open(path, mode, io=io) as f:
                assert await f.read(8192) == data[:8192]
                assert await f.read(16384) == data[8192:24576]
                assert await f.read(8192) == data[24576:]  # short: the file ends
                assert await f.read(8192) == b""  # past the end
                assert await f.seek(8192) == 8192
                await cancel_while_held(io, f.read(8192))
                assert await f.tell() == 8192
                assert await f.read(8192) == data[8192:16384]


@pytest.mark.asyncio
async def test_a_cancelled_flush_keeps_the_data_and_a_later_close_writes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.txt"
    async with GatedIO() as io:
        f = await bridge.open(path, "w", io=io)
        await f.write("hello\n" * 100)
        await cancel_while_held(io, f.flush())
        assert not f.closed
        await f.write("world\n")
        await f.close()
    assert path.read_text() == "hello\n" * 100 + "world\n"


@pytest.mark.asyncio
async def test_a_cancelled_append_flush_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("start\n")
    async with GatedIO() as io:
        f = await bridge.open(path, "a", io=io)
        await f.write("entry\n")
        await cancel_while_held(io, f.flush())
        assert f.closed  # it may or may not have landed: the file says so by being closed
        with pytest.raises(ValueError):
            await f.write("more\n")
    assert path.read_text() in ("start\n", "start\nentry\n")


@pytest.mark.asyncio
async def test_a_cancelled_close_still_closes(tmp_path: Path) -> None:
    async with GatedIO() as io:
        f = await bridge.open(tmp_path / "c", "wb", io=io)
        await f.write(b"x")
        await cancel_while_held(io, f.close())
        assert f.closed


# -- several tasks, turns ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_tasks_sharing_a_file_take_whole_turns(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 2000)
    async with AsyncFileIO(nowait=False) as io, bridge.open(path, "rb", io=io) as f:

        async def reader() -> list[bytes]:
            got = []
            while line := await f.readline():
                got.append(line)
            return got

        results = await asyncio.gather(*(reader() for _ in range(4)))
    every = sorted(line for result in results for line in result)
    assert every == sorted(path.read_bytes().splitlines(keepends=True))


class PassCounter:
    """While entered, a task that counts the loop's passes (`passes`): it runs once a pass."""

    def __init__(self) -> None:
        self.passes = 0
        self._stop = False
        self._task: asyncio.Future[None] | None = None

    async def _count(self) -> None:
        while not self._stop:
            self.passes += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> PassCounter:
        self._task = asyncio.ensure_future(self._count())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        assert self._task is not None
        await self._task


@pytest.mark.asyncio
async def test_inline_calls_give_the_loop_turns(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 300)
    async with (
        AsyncFileIO(time_slice=0) as io,
        bridge.open(path, "rb", io=io) as f,
        PassCounter() as ticker,
    ):
        await asyncio.sleep(0)
        start = ticker.passes
        lines = [line async for line in f]
    assert len(lines) == 300
    assert ticker.passes - start >= 300  # a turn after every inline call with a zero slice


@pytest.mark.asyncio
async def test_a_call_that_waited_for_its_io_owes_the_loop_no_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that waited for its I/O let the loop run while it waited: the inline call after
    it (a seek) starts a new time slice instead of taking one more loop turn."""
    data = bytes(range(256)) * 256
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    ticker = PassCounter()
    # The files' clock reads one second per loop pass: a slice (2 ms) never outlasts a pass.
    monkeypatch.setattr(bridge.aiofile, "perf_counter", lambda: float(ticker.passes))
    own_turns = 0
    async with AsyncFileIO(nowait=False) as io, bridge.open(path, "rb", io=io) as f:
        loop_turn = f._yield

        async def counted_turn() -> None:
            nonlocal own_turns
            own_turns += 1
            await loop_turn()

        f._yield = counted_turn
        async with ticker:
            for offset in range(0, len(data), 4096 * 3):  # every read waits: nowait=False
                assert await f.seek(offset) == offset
                assert await f.read(4096) == data[offset : offset + 4096]
    assert ticker.passes > 0
    assert own_turns == 0  # without the reset: one per seek


# -- trio ------------------------------------------------------------------------------------


def test_trio_gets_a_default_backend_per_run(tmp_path: Path) -> None:
    path = lines_file(tmp_path, 50)
    seen: list[Any] = []

    async def main() -> None:
        async with bridge.open(path) as f:
            seen.append(f.io)
            assert len([line async for line in f]) == 50
        async with bridge.open(tmp_path / "t", "w") as g:
            await g.write("trio\n")
        async with AsyncFileIO(time_slice=0) as io, bridge.open(path, "rb", io=io) as h:
            assert len(await h.readlines()) == 50

    trio.run(main)
    assert seen[0].closed and seen[0].worker_threads == 0
    assert (tmp_path / "t").read_text() == "trio\n"


def test_backends_left_at_exit_are_closed(tmp_path: Path) -> None:
    from bridge._defaults import _close_all_defaults

    async def use() -> AsyncFileIO:
        async with bridge.open(tmp_path / "f", "w") as f:
            await f.write("x")
        return default_io()

    loop = new_asyncio_loop()
    left = loop.run_until_complete(use())
    loop.close()
    assert not left.closed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _close_all_defaults()  # what the interpreter runs at exit
        gc.collect()
    assert left.closed and left.worker_threads == 0
    assert not _DEFAULTS


@pytest.mark.asyncio
async def test_cancelling_a_call_waiting_for_its_turn_spares_the_holder() -> None:
    # Two tasks on one file: the second waits for the first's read. Cancelling the waiter
    # must not abort the holder's I/O (it waits on a completion of its own).
    io = MemoryYieldIO()
    seed = io.open_file("/f", OpenFlags.CREATE)
    seed.pwrite(0, b"x" * 100_000, Completion.new_write())
    io.step()
    f = await bridge.drive(OpenFile(io, parse_open_arguments("/f", "rb")), io)
    holder = f.read(50_000)
    held = holder.step()
    waiter = asyncio.ensure_future(bridge.drive(f.read(10), io))
    await asyncio.sleep(0)  # the waiter steps once and waits for its turn
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert held.completion.get_error() is None  # not aborted
    assert await bridge.drive(holder, io) == b"x" * 50_000
