"""How late a 1 ms ticker runs while 200 reads go through `drive`, and how fast they go.

A ticker task sleeps 1 ms at a time and records how late each wake-up was (its lag: what
any other task on the loop would wait). Meanwhile a batch of 200 `ReadRange` operations runs
concurrently through `drive` over one `AsyncFileIO`: 100 reads of 4 KiB and 100 of 256 KiB,
interleaved, at random aligned offsets of a 64 MiB file, with the page cache hot (the file
read once before) or cold (dropped with `POSIX_FADV_DONTNEED` before each batch).

Setups: event loop (asyncio, uvloop, trio) x engine (`"threads"`, `"uring"` where a ring can
be set up) x cache (hot, cold), plus the ticker alone per loop. Each round runs every setup
once, in an order rotated round by round; each setup's figures are the medians over the
rounds of its per-round p50, p99 and max lag, of its throughput (MB/s and ops/s over the
batches' wall time, the ticker running) and of the loop thread's CPU time per read. What
the benchmark itself does on the loop outside the reads (filling or dropping the cache,
making the operations, freeing the last batch's buffers) is left out of the lags.

A second table (asyncio only, where every callback is a Python `Handle`) times the CPU
each loop callback takes (`time.thread_time` around `Handle._run`): the bridge's callbacks
and the tasks' steps it runs. Its figures carry the instrument's own cost.

Run: python benchmarks/bench_loop_lag.py [--quick] [--rounds N]
(`--quick`: 5 rounds of 8 batches, about a minute; `LAG_DETAIL=1` also prints each round's
p99/max and the slowest callbacks by name.)
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import LoopRunners, median, parse_args, percentile, print_table

from bridge import AsyncFileIO, drive
from core.io import File, OpenFlags
from core.ops import ReadRange

TICK = 0.001
FILE_SIZE = 64 << 20
SMALL = 4 << 10
LARGE = 256 << 10
OPS = 200  # half of each size, interleaved
MIB = 1 << 20


class Fixture:
    """The file, created once; each backend opens its own handle."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, "data.bin")
        rng = random.Random(5)
        with open(self.path, "wb") as f:
            for _ in range(FILE_SIZE // MIB):
                f.write(rng.randbytes(MIB))
        self.rng = random.Random(7)

    def plan(self) -> list[tuple[int, int]]:
        """A fresh batch: (offset, length) pairs, 4 KiB and 256 KiB alternating."""
        plan = []
        for i in range(OPS):
            length = LARGE if i % 2 else SMALL
            plan.append((self.rng.randrange((FILE_SIZE - length) // SMALL) * SMALL, length))
        return plan

    def drop(self) -> None:
        """Drop the file from the page cache (outside the measurement: it blocks)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    def warm(self) -> None:
        """Read the whole file, so that it is in the page cache."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            pos = 0
            while chunk := os.pread(fd, 4 * MIB, pos):
                pos += len(chunk)
        finally:
            os.close(fd)


class Sample:
    """One setup's figures for one round."""

    def __init__(
        self, lags: list[float], seconds: float, cpu: float, ops: int, nbytes: int
    ) -> None:
        self.p50 = percentile(lags, 50)
        self.p99 = percentile(lags, 99)
        self.max = max(lags)
        self.ticks = len(lags)
        self.mbps = nbytes / seconds / 1e6 if seconds else 0.0
        self.opsps = ops / seconds if seconds else 0.0
        self.cpu_per_op = cpu / ops if ops else 0.0  # the loop thread's CPU seconds per op


# -- asyncio and uvloop ---------------------------------------------------------------------


async def measure_asyncio(
    work: Callable[[], Awaitable[object]] | None, batches: int, before: Callable[[], object]
) -> tuple[list[float], float, float]:
    """Ticker lags while `work()` runs `batches` times (or alone for as many ticks as
    about 50 ms per batch gives); returns (lags, seconds spent in `work`, CPU seconds the
    loop thread spent meanwhile)."""
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        # perf_counter, not loop.time(): uvloop's clock has a 1 ms resolution.
        while not done:
            due = perf_counter() + TICK
            await asyncio.sleep(TICK)
            lags.append(max(0.0, perf_counter() - due))

    spent = cpu = 0.0
    kept: object = None
    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0.005)
    for _ in range(batches):
        if work is None:
            await asyncio.sleep(0.05)
            continue
        before()  # blocks the loop: its ticks are dropped below
        # The last batch's operations and results are freed here, not in the measured
        # part: 50 MB of buffers given back to the allocator take milliseconds.
        kept = None
        pending = work()  # makes the operations and their buffers
        mark = len(lags)
        await asyncio.sleep(0.002)
        del lags[mark:]
        start = perf_counter()
        cpu_start = time.thread_time()
        kept = await pending
        spent += perf_counter() - start
        cpu += time.thread_time() - cpu_start
    done = True
    await task
    del kept
    return lags, spent, cpu


# -- trio -----------------------------------------------------------------------------------


def run_trio(
    io: AsyncFileIO | None,
    file: File | None,
    plans: list[list[tuple[int, int]]],
    before: Callable[[], object],
) -> tuple[list[float], float, float]:
    import trio

    lags: list[float] = []
    spent = cpu = 0.0

    async def main() -> None:
        nonlocal spent, cpu
        done = False

        async def ticker() -> None:
            while not done:
                due = perf_counter() + TICK
                await trio.sleep(TICK)
                lags.append(max(0.0, perf_counter() - due))

        results: list[bytes] = []  # freed outside the clock, as on asyncio

        async def one(op: ReadRange) -> None:
            results.append(await drive(op, io))

        async with trio.open_nursery() as outer:
            outer.start_soon(ticker)
            await trio.sleep(0.005)
            for plan in plans:
                if file is None:
                    await trio.sleep(0.05)
                    continue
                before()
                results.clear()
                ops = [ReadRange(file, off, length) for off, length in plan]
                mark = len(lags)
                await trio.sleep(0.002)
                del lags[mark:]
                start = perf_counter()
                cpu_start = time.thread_time()
                async with trio.open_nursery() as nursery:
                    for op in ops:
                        nursery.start_soon(one, op)
                spent += perf_counter() - start
                cpu += time.thread_time() - cpu_start
            done = True
        results.clear()

    trio.run(main)
    return lags, spent, cpu


# -- per-callback CPU time (asyncio) --------------------------------------------------------


class CallbackTimes:
    """CPU seconds of every loop callback run while `active` (asyncio `Handle`s only)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.worst: list[tuple[float, str]] = []
        self.walls: list[float] = []
        self.worst_wall: list[tuple[float, float, str]] = []
        self.active = False
        self.skip: object = None  # the bench's own task (it starts the 200 tasks)

    @contextmanager
    def installed(self) -> Iterator[None]:
        handle_cls = asyncio.events.Handle
        original = handle_cls._run
        thread_time = time.thread_time
        me = self

        def timed_run(handle: Any) -> None:
            if not me.active or getattr(handle._callback, "__self__", None) is me.skip:
                original(handle)
                return
            wall = perf_counter()
            start = thread_time()
            original(handle)
            spent = thread_time() - start
            wall = perf_counter() - wall
            me.times.append(spent)
            me.walls.append(wall)
            if spent > 0.002:
                me.worst.append((spent, _describe(handle)))
            if wall > 0.002:
                me.worst_wall.append((wall, spent, _describe(handle)))

        handle_cls._run = timed_run  # type: ignore[method-assign]
        try:
            yield
        finally:
            handle_cls._run = original  # type: ignore[method-assign]


def _describe(handle: Any) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task step ({getattr(coro, '__qualname__', coro)})"
    return getattr(callback, "__qualname__", repr(callback))


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds = args.rounds or (5 if args.quick else 9)
    batches = 8 if args.quick else 12
    engines = ["threads"] + (["uring"] if AsyncFileIO.uring_available() else [])
    try:
        import trio  # noqa: F401

        have_trio = True
    except ImportError:  # pragma: no cover
        have_trio = False

    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp,
        LoopRunners() as runners,
    ):
        fx = Fixture(tmp)
        loops = runners.names + (["trio"] if have_trio else [])
        backends: dict[tuple[str, str], AsyncFileIO] = {}
        files: dict[tuple[str, str], File] = {}
        for loop in loops:
            for engine in engines:
                io = AsyncFileIO(engine=engine)
                backends[loop, engine] = io
                files[loop, engine] = io.open_file(fx.path, OpenFlags.READ_ONLY)

        def setups() -> list[tuple[str, str, str]]:
            out = [(loop, "-", "idle") for loop in loops]
            for cache in ("hot", "cold"):
                for loop in loops:
                    out += [(loop, engine, cache) for engine in engines]
            return out

        def run_setup(
            loop: str, engine: str, cache: str, times: CallbackTimes | None = None
        ) -> Sample:
            plans = [fx.plan() for _ in range(batches)]
            before = fx.drop if cache == "cold" else fx.warm
            nbytes = sum(length for plan in plans for _, length in plan)
            if cache == "idle":
                before = fx.warm
            gc.collect()
            if loop == "trio":
                if cache == "idle":
                    lags, spent, cpu = run_trio(None, None, plans, before)
                else:
                    key = (loop, engine)
                    lags, spent, cpu = run_trio(backends[key], files[key], plans, before)
            else:
                work: Callable[[], Awaitable[object]] | None = None
                if cache != "idle":
                    io = backends[loop, engine]
                    file = files[loop, engine]
                    queue = list(plans)

                    async def batch(ops: list[ReadRange]) -> object:
                        if times is not None:
                            times.active = True
                            times.skip = asyncio.current_task()
                        try:
                            # Returned, so that the caller frees them outside the clock.
                            return ops, await asyncio.gather(*(drive(op, io) for op in ops))
                        finally:
                            if times is not None:
                                times.active = False

                    def work() -> Awaitable[object]:
                        # The operations (and their buffers) are made before the clock starts.
                        return batch([ReadRange(file, off, n) for off, n in queue.pop(0)])

                lags, spent, cpu = runners.run(loop, measure_asyncio(work, batches, before))
            ops = 0 if cache == "idle" else OPS * batches
            return Sample(lags, spent, cpu, ops, 0 if cache == "idle" else nbytes)

        order = setups()
        samples: dict[tuple[str, str, str], list[Sample]] = {s: [] for s in order}
        for round_no in range(rounds + 1):  # round 0 warms up
            shift = round_no % len(order)
            for setup in order[shift:] + order[:shift]:
                sample = run_setup(*setup)
                if round_no:
                    samples[setup].append(sample)
            state = "warm-up" if not round_no else f"round {round_no}/{rounds}"
            print(f"  .. {state} done", file=sys.stderr, flush=True)

        rows = []
        for (loop, engine, cache), values in samples.items():
            cpu_us = f"{median([v.cpu_per_op for v in values]) * 1e6:.0f}"
            rows.append(
                [
                    loop,
                    engine,
                    "ticker alone" if cache == "idle" else cache,
                    median([v.p50 for v in values]) * 1e3,
                    median([v.p99 for v in values]) * 1e3,
                    median([v.max for v in values]) * 1e3,
                    "-" if cache == "idle" else f"{median([v.mbps for v in values]):.0f}",
                    "-" if cache == "idle" else f"{median([v.opsps for v in values]):.0f}",
                    "-" if cache == "idle" else cpu_us,
                    int(median([v.ticks for v in values])),
                ]
            )
        if os.environ.get("LAG_DETAIL"):
            for setup, values in samples.items():
                print(setup, [f"{v.p99 * 1e3:.1f}/{v.max * 1e3:.1f}" for v in values])
        print_table(
            f"1 ms ticker lag while {OPS} concurrent reads (4 KiB and 256 KiB) run through "
            f"drive (target: p99 < 2 ms); medians of {rounds} rounds x {batches} batches",
            [
                "loop",
                "engine",
                "cache",
                "p50 ms",
                "p99 ms",
                "max ms",
                "MB/s",
                "ops/s",
                "loop CPU us/op",
                "ticks",
            ],
            rows,
        )

        # Per-callback CPU time, asyncio only.
        cb_rows = []
        cb_rounds = 2 if args.quick else 3
        for engine in engines:
            for cache in ("hot", "cold"):
                times = CallbackTimes()
                with times.installed():
                    for _ in range(cb_rounds):
                        run_setup("asyncio", engine, cache, times)
                spent = sorted(times.times)
                worst = sorted(times.worst, reverse=True)
                if os.environ.get("LAG_DETAIL"):
                    print(engine, cache, [f"{t * 1e3:.1f} {name}" for t, name in worst[:12]])
                    ww = sorted(times.worst_wall, reverse=True)
                    print(" wall", [f"{w * 1e3:.1f}/{t * 1e3:.1f} {n}" for w, t, n in ww[:12]])
                cb_rows.append(
                    [
                        engine,
                        cache,
                        len(spent),
                        percentile(spent, 99) * 1e3,
                        spent[-1] * 1e3,
                        len(worst),
                        worst[0][1] if worst else "-",
                    ]
                )
        print_table(
            f"CPU time per loop callback on asyncio while the batches run ({cb_rounds} x "
            f"{batches} batches; target: none over 2 ms)",
            ["engine", "cache", "callbacks", "p99 ms", "max ms", "over 2 ms", "worst"],
            cb_rows,
        )

        for (loop, _engine), io in backends.items():
            if loop == "trio":
                io.close()
            else:
                runners.run(loop, io.aclose())


if __name__ == "__main__":
    main()
