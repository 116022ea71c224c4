"""What keeps the loop responsive under many operations: large reads never copy on the loop
thread, the engines finish a bounded number of completions per loop callback, and drive's
steps share a per-pass budget (`PassBudget`).

No timing is asserted: each mechanism is observed by counting loop passes (a callback that
schedules itself once per pass) and what ran in each.
"""

from __future__ import annotations

import asyncio
import math
import random
import types
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest
import trio

from bridge import AsyncFileIO, DriveTimeoutError, InvalidArgumentError, drive
from bridge._fileio import DEFAULT_INLINE_BUDGET, DEFAULT_INLINE_MAX
from bridge._fileio_common import FINISH_PER_CALLBACK, Finisher
from bridge._pass_budget import PassBudget, thread_budget
from core import Completion, Done
from core.io import OpenFlags
from core.io.ring import OP_READ, SQE_ASYNC
from core.ops import ReadRange

pytestmark = pytest.mark.usefixtures("file_engine")

SIZE = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture
def data() -> bytes:
    return random.Random(11).randbytes(SIZE)


@pytest.fixture
def data_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path


@pytest.fixture
def budget_seconds() -> Iterator[Callable[[float], None]]:
    """Set this thread's drive step budget per pass for the test; restored after."""
    budget = thread_budget()
    before = budget.seconds

    def set_seconds(seconds: float) -> None:
        budget.seconds = seconds

    yield set_seconds
    budget.seconds = before


class Passes:
    """Counts loop passes: a callback that schedules itself once per pass."""

    def __init__(self) -> None:
        self.count = 0
        self.running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if self.running:
            self.count += 1
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self.running = False


class RecordingIO(AsyncFileIO):
    """Records the size of every inline (RWF_NOWAIT) read the loop thread makes."""

    inline_sizes: list[int]

    def _preadv(self, fd: int, buffers: list[Any], pos: int, flags: int) -> int:  # type: ignore[override]
        type(self).inline_sizes.append(sum(len(b) for b in buffers))
        return AsyncFileIO._preadv(fd, buffers, pos, flags)


# -- large reads are copied off the loop thread ---------------------------------------------


@pytest.mark.asyncio
async def test_a_read_over_inline_max_never_goes_through_the_inline_path(
    data_file: Path, data: bytes
) -> None:
    RecordingIO.inline_sizes = []
    async with RecordingIO(inline_max=64 << 10) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        if not io.nowait:
            pytest.skip("this platform has no RWF_NOWAIT")
        small = await drive(ReadRange(f, 4096, 4096), io)  # hot: the test just wrote it
        before = io.pool_submissions
        large = await asyncio.gather(
            *(drive(ReadRange(f, off, 256 << 10), io) for off in range(0, SIZE, 256 << 10))
        )
        assert io.pool_submissions == before + 4  # each went to the pool or the ring
    assert small == data[4096:8192]
    assert b"".join(large) == data  # byte-exact
    assert RecordingIO.inline_sizes  # the small read was tried inline
    assert max(RecordingIO.inline_sizes) <= 64 << 10


@pytest.mark.asyncio
async def test_by_default_a_cached_read_within_the_budget_is_inline(
    data_file: Path, data: bytes
) -> None:
    async with AsyncFileIO() as io:
        assert io.inline_max == DEFAULT_INLINE_MAX == 256 << 10
        assert io.inline_budget == DEFAULT_INLINE_BUDGET == 1 << 20
        with AsyncFileIO(inline_budget=4096) as small:
            assert small.inline_max == 4096  # never over the budget
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        if not io.nowait:
            pytest.skip("this platform has no RWF_NOWAIT")
        assert await drive(ReadRange(f, 0, 4096), io) == data[:4096]
        if not f._nowait:
            pytest.skip("this file system refuses RWF_NOWAIT reads")
        await asyncio.sleep(0)  # a fresh pass: the whole budget
        assert await drive(ReadRange(f, 0, 256 << 10), io) == data[: 256 << 10]
        assert io.pool_submissions == 0


@pytest.mark.asyncio
async def test_inline_max_sets_the_largest_inline_read(data_file: Path, data: bytes) -> None:
    RecordingIO.inline_sizes = []
    async with RecordingIO(inline_max=0) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 100), io) == data[:100]
        assert io.pool_submissions == 1
    assert RecordingIO.inline_sizes == []


def test_a_large_read_outside_any_loop_is_still_tried_inline(data_file: Path, data: bytes) -> None:
    # No loop runs here: nothing could run meanwhile, and no pool could be reached.
    with AsyncFileIO(inline_max=4096) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        if not io.nowait:
            pytest.skip("this platform has no RWF_NOWAIT")
        c = Completion.new_read(bytearray(256 << 10))
        f.pread(0, c)
        if not f._nowait:
            pytest.skip("this file system refuses RWF_NOWAIT reads")
        assert c.finished()
        assert bytes(c.buffer) == data[: 256 << 10]  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_the_ring_runs_large_reads_in_kernel_workers(data_file: Path, data: bytes) -> None:
    if not AsyncFileIO.uring_available():
        pytest.skip("no io_uring here")
    queued: list[tuple[int, int]] = []  # (length, flags) of each read entry

    def recording(opcode: int, length: int, flags: int) -> None:
        if opcode == OP_READ:
            queued.append((length, flags))

    async with AsyncFileIO(engine="uring", nowait=False) as io:
        assert io._uring is not None and io._uring.async_above == 64 << 10
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        await drive(ReadRange(f, 0, 1), io)  # sets the ring up
        assert io._uring._ring is not None
        io._uring._ring.tap = recording
        small, large = await asyncio.gather(
            drive(ReadRange(f, 0, 4096), io), drive(ReadRange(f, 0, 256 << 10), io)
        )
    assert small == data[:4096] and large == data[: 256 << 10]
    assert sorted(queued) == [(4096, 0), (256 << 10, SQE_ASYNC)]


@pytest.mark.parametrize("bad", [-1, True, 1.5, "64"])
def test_inline_max_must_be_a_non_negative_int(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="inline_max"):
        AsyncFileIO(inline_max=bad)


# -- completions finished per loop callback -------------------------------------------------


def _finisher(io: AsyncFileIO) -> Finisher:
    return io._uring._finisher if io._uring is not None else io._finisher


@pytest.mark.asyncio
async def test_the_engines_finish_at_most_their_limit_per_pass(
    data_file: Path, data: bytes
) -> None:
    async with AsyncFileIO(nowait=False, workers=1) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 1), io) == data[:1]  # sets the ring up
        finisher = _finisher(io)
        assert finisher.limit == FINISH_PER_CALLBACK
        finisher.limit = 4
        passes = Passes()
        finished_in: list[int] = []
        cs = [Completion.new_read(bytearray(4096)) for _ in range(20)]
        for i, c in enumerate(cs):  # one pass: one batch (one worker), or one enter
            c.add_done_callback(lambda _: finished_in.append(passes.count))
            f.pread(i * 4096, c)
        while not all(c.finished() for c in cs):
            await asyncio.sleep(0)
        passes.stop()
    assert (
        [bytes(c.buffer) for c in cs]
        == [  # type: ignore[arg-type]
            data[i * 4096 : (i + 1) * 4096] for i in range(20)
        ]
    )
    per_pass = [finished_in.count(n) for n in sorted(set(finished_in))]
    assert max(per_pass) <= 4
    assert len(per_pass) >= 5


@pytest.mark.asyncio
async def test_the_rest_finish_in_the_next_pass(data_file: Path, data: bytes) -> None:
    # The pool with one worker brings the 100 reads back as one batch: its wake-up finishes
    # the first FINISH_PER_CALLBACK, and the rest come one pass later.
    async with AsyncFileIO(nowait=False, workers=1, engine="threads") as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        seen: list[int] = []
        cs = [Completion.new_read(bytearray(512)) for _ in range(100)]

        def probe() -> None:
            seen.append(sum(c.finished() for c in cs))

        cs[0].add_done_callback(lambda _: asyncio.get_running_loop().call_soon(probe))
        for i, c in enumerate(cs):
            f.pread(i * 512, c)
        while not all(c.finished() for c in cs):
            await asyncio.sleep(0)
    assert seen == [FINISH_PER_CALLBACK]
    assert (
        [bytes(c.buffer) for c in cs]
        == [  # type: ignore[arg-type]
            data[i * 512 : (i + 1) * 512] for i in range(100)
        ]
    )


@pytest.mark.asyncio
async def test_closing_finishes_what_came_back(data_file: Path, data: bytes) -> None:
    io = AsyncFileIO(nowait=False, workers=1, engine="threads")
    f = io.open_file(data_file, OpenFlags.READ_ONLY)
    cs = [Completion.new_read(bytearray(64)) for _ in range(FINISH_PER_CALLBACK + 10)]
    closed_with: list[int] = []

    def close_now() -> None:  # the pass after the first share: the rest still wait
        closed_with.append(sum(c.finished() for c in cs))
        io.close()

    cs[0].add_done_callback(lambda _: asyncio.get_running_loop().call_soon(close_now))
    for i, c in enumerate(cs):
        f.pread(i * 64, c)
    while not closed_with:
        await asyncio.sleep(0.001)
    assert closed_with == [FINISH_PER_CALLBACK]
    assert all(c.succeeded() for c in cs)  # closing finished them with their results
    assert (
        [bytes(c.buffer) for c in cs]
        == [  # type: ignore[arg-type]
            data[i * 64 : (i + 1) * 64] for i in range(len(cs))
        ]
    )


# -- drive's step budget per loop pass ------------------------------------------------------


def _first_steps(count: int, passes: Passes, log: list[tuple[int, int]]) -> list[Any]:
    def op(i: int) -> Callable[[], Done[int]]:
        def step() -> Done[int]:
            log.append((i, passes.count))
            return Done(i)

        return step

    return [op(i) for i in range(count)]


@pytest.mark.asyncio
async def test_first_steps_over_the_budget_wait_for_later_passes_in_order(
    budget_seconds: Callable[[float], None],
) -> None:
    budget_seconds(-1.0)  # always spent: one first step per pass
    passes = Passes()
    log: list[tuple[int, int]] = []
    results = await asyncio.gather(*(drive(op) for op in _first_steps(10, passes, log)))
    passes.stop()
    assert results == list(range(10))
    assert [i for i, _ in log] == list(range(10))  # in the order they started
    assert len({n for _, n in log}) == 10  # each in a pass of its own


def test_parked_drives_wait_without_spinning_through_passes(
    budget_seconds: Callable[[float], None],
) -> None:
    """A drive woken into a pass that is spent parks again instead of taking one loop turn
    after another: loop callbacks stay proportional to the drives, not to drives x passes."""
    budget_seconds(-1.0)  # always spent: one step per pass, every other drive parks
    count = 60
    scheduled = 0

    async def main() -> list[int]:
        nonlocal scheduled
        loop = asyncio.get_running_loop()
        call_soon = loop.call_soon

        def counting(*args: Any, **kwargs: Any) -> Any:  # the C tasks call it by name too
            nonlocal scheduled
            scheduled += 1
            return call_soon(*args, **kwargs)

        loop.call_soon = counting  # type: ignore[method-assign]
        passes = Passes()
        log: list[tuple[int, int]] = []
        results = await asyncio.gather(*(drive(op) for op in _first_steps(count, passes, log)))
        passes.stop()
        assert [i for i, _ in log] == list(range(count))  # in the order they started
        return results

    assert asyncio.run(main()) == list(range(count))
    # Each pass: the ticker, the refill, a few woken drives (about 550 callbacks in all).
    # Spinning, each woken drive took a turn in every pass until it stepped: about 1,660.
    assert scheduled < 12 * count


@pytest.mark.asyncio
async def test_first_steps_within_the_budget_share_one_pass(
    budget_seconds: Callable[[float], None],
) -> None:
    budget_seconds(math.inf)
    passes = Passes()
    log: list[tuple[int, int]] = []
    results = await asyncio.gather(*(drive(op) for op in _first_steps(50, passes, log)))
    passes.stop()
    assert results == list(range(50))
    assert len({n for _, n in log}) == 1


@pytest.mark.asyncio
async def test_wake_ups_over_the_budget_step_in_later_passes(
    data_file: Path, data: bytes, budget_seconds: Callable[[float], None]
) -> None:
    async with AsyncFileIO(nowait=False) as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        assert await drive(ReadRange(f, 0, 1), io) == data[:1]
        budget_seconds(-1.0)
        results = await asyncio.gather(*(drive(ReadRange(f, i * 100, 100), io) for i in range(30)))
    assert results == [data[i * 100 : (i + 1) * 100] for i in range(30)]


@types.coroutine
def _resumed(awaitable: Any, counts: list[int], i: int) -> Generator[Any, Any, Any]:
    """Await `awaitable`, counting in `counts[i]` how often its task resumes it."""
    it = awaitable.__await__()
    sent: Any = None
    while True:
        counts[i] += 1
        try:
            yielded = it.send(sent)
        except StopIteration as done:
            return done.value
        sent = yield yielded


@pytest.mark.asyncio
async def test_a_woken_drive_over_the_budget_parks_again_instead_of_spinning(
    budget_seconds: Callable[[float], None],
) -> None:
    # One first step per pass: the last of 40 waits some 40 passes. Parked, a drive is
    # resumed only when a refill wakes it, at most a few times (it is among the few woken
    # per pass, all but one of which park again), never once per pass while it waits: each
    # resumption runs through every coroutine above the drive (a web framework's dozen).
    budget_seconds(-1.0)
    passes = Passes()
    log: list[tuple[int, int]] = []
    counts = [0] * 40
    results = await asyncio.gather(
        *(_resumed(drive(op), counts, i) for i, op in enumerate(_first_steps(40, passes, log)))
    )
    passes.stop()
    assert results == list(range(40))
    assert [i for i, _ in log] == list(range(40))  # still in the order they started
    assert len({n for _, n in log}) == 40
    assert max(counts) <= PassBudget.MIN_RELEASE + 2


@pytest.mark.asyncio
async def test_what_a_task_does_between_drives_does_not_spend_the_budget(
    budget_seconds: Callable[[float], None],
) -> None:
    # The first task's drive arms the pass's budget, then the task works far longer than
    # the budget (a web framework's handling around its read); the other tasks' drives
    # still step in the same pass: only the drives' own steps count.
    budget_seconds(0.02)
    passes = Passes()
    log: list[tuple[int, int]] = []
    ops = _first_steps(20, passes, log)

    async def first() -> int:
        value = await drive(ops[0])
        until = perf_counter() + 0.05
        while perf_counter() < until:
            pass
        return value

    results = await asyncio.gather(first(), *(drive(op) for op in ops[1:]))
    passes.stop()
    assert results == list(range(20))
    assert len({n for _, n in log}) == 1


@pytest.mark.asyncio
async def test_a_parked_drive_can_be_cancelled_and_timed_out(
    budget_seconds: Callable[[float], None],
) -> None:
    budget_seconds(-1.0)
    stepped: list[str] = []

    def op(name: str) -> Callable[[], Done[str]]:
        def step() -> Done[str]:
            stepped.append(name)
            return Done(name)

        return step

    first = asyncio.ensure_future(drive(op("first")))
    parked = asyncio.ensure_future(drive(op("parked")))
    timed = asyncio.ensure_future(drive(op("timed"), timeout=0))
    later = asyncio.ensure_future(drive(op("later")))
    await asyncio.sleep(0)  # all four started; the first stepped, the others parked
    parked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parked
    with pytest.raises(DriveTimeoutError):
        await timed
    assert await first == "first"
    assert await later == "later"
    assert stepped == ["first", "later"]


def test_the_budget_refills_in_the_next_pass() -> None:
    async def main() -> None:
        budget = PassBudget(seconds=math.inf)
        loop = asyncio.get_running_loop()
        budget.arm(loop)
        assert budget.armed and budget.stepped == 1
        fut: asyncio.Future[None] = loop.create_future()
        budget.waiting.append(fut)
        await asyncio.sleep(0)
        assert not budget.armed
        assert fut.done()

    asyncio.run(main())


@pytest.mark.anyio
async def test_trio_drives_are_unaffected(data_file: Path, data: bytes) -> None:
    async with AsyncFileIO() as io:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        results: dict[int, bytes] = {}

        async def one(i: int, length: int) -> None:
            results[i] = await drive(ReadRange(f, i * 4096, length), io)

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(one, i, 256 << 10 if i % 2 else 4096)
    for i in range(40):
        length = 256 << 10 if i % 2 else 4096
        assert results[i] == data[i * 4096 : i * 4096 + length]
