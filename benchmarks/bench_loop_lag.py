"""How late a 1 ms ticker runs while 100 file operations go through `drive`.

A ticker task sleeps 1 ms at a time and records how late each wake-up was. Meanwhile 100
operations run concurrently, three times over: 40 random 4 KiB reads (`ReadRange`, half of
the file evicted from the page cache first), 20 whole-file reads of 1 MiB (`ReadWholeFile`),
20 writes of 256 KiB with fsync (`WriteBuffers`), 20 copies of 1 MiB (`CopyFile`).

Contenders (alternated, medians of each round's p50 and p99): the ticker alone; the
operations through `drive` over `AsyncFileIO`; and, for contrast, the same operations run
with the blocking `block` over `UnixIO` from inside the loop's tasks.

Run: python benchmarks/bench_loop_lag.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import LoopRunners, median, parse_args, percentile, print_table

from bridge import AsyncFileIO, drive
from core import block
from core.io import File, IOBackend, OpenFlags, UnixIO
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers

TICK = 0.001
BIG = 16 << 20  # the file the random reads hit
MIB = 1 << 20


class Fixture:
    """The files, created once; each backend opens its own handles."""

    def __init__(self, root: str) -> None:
        self.root = root
        rng = random.Random(5)
        self.big = os.path.join(root, "big.bin")
        with open(self.big, "wb") as f:
            f.write(rng.randbytes(BIG))
        self.small = []
        for i in range(20):
            path = os.path.join(root, f"small{i}.bin")
            with open(path, "wb") as f:
                f.write(rng.randbytes(MIB))
            self.small.append(path)
        self.payload = rng.randbytes(256 << 10)
        self.offsets = [rng.randrange(BIG // 4096) * 4096 for _ in range(40)]

    def evict_half(self) -> None:
        fd = os.open(self.big, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, BIG // 2, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    def operations(self, io: IOBackend, handles: dict[str, File]) -> list[Any]:
        def f(path: str) -> File:
            if path not in handles:
                handles[path] = io.open_file(path, OpenFlags.CREATE)
            return handles[path]

        ops: list[Any] = [ReadRange(f(self.big), off, 4096) for off in self.offsets]
        ops += [ReadWholeFile(f(path)) for path in self.small]
        ops += [
            WriteBuffers(f(os.path.join(self.root, f"out{i}.bin")), 0, [self.payload])
            for i in range(20)
        ]
        ops += [
            CopyFile(f(path), f(os.path.join(self.root, f"copy{i}.bin")))
            for i, path in enumerate(self.small)
        ]
        return ops


async def measure(work: Callable[[], Awaitable[object]] | None, ticks: int) -> list[float]:
    """Lags (seconds) of a 1 ms ticker while `work()` runs (or for `ticks` ticks alone)."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        # perf_counter, not loop.time(): uvloop's clock has a 1 ms resolution.
        while not done.is_set():
            due = perf_counter() + TICK
            await asyncio.sleep(TICK)
            lags.append(max(0.0, perf_counter() - due))

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    if work is None:
        while len(lags) < ticks:
            await asyncio.sleep(TICK)
    else:
        await work()
    done.set()
    await task
    return lags


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds = args.rounds or (3 if args.quick else 7)
    repeats = 1 if args.quick else 3

    with (
        tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp,
        LoopRunners() as runners,
    ):
        fx = Fixture(tmp)
        backends = {name: AsyncFileIO() for name in runners.names}
        async_handles: dict[str, dict[str, File]] = {name: {} for name in runners.names}
        unix = UnixIO()
        unix_handles: dict[str, File] = {}

        async def via_drive(loop: str) -> None:
            io = backends[loop]
            ops = fx.operations(io, async_handles[loop])
            await asyncio.gather(*(drive(op, io) for op in ops))

        async def via_block() -> None:
            async def one(op: Any) -> None:
                block(op, unix)

            ops = fx.operations(unix, unix_handles)
            await asyncio.gather(*(one(op) for op in ops))

        samples: dict[str, list[tuple[float, float, int]]] = {}

        def record(name: str, lags: list[float]) -> None:
            samples.setdefault(name, []).append(
                (percentile(lags, 50), percentile(lags, 99), len(lags))
            )

        def loaded(loop: str, work: Callable[[], Awaitable[object]]) -> list[float]:
            lags: list[float] = []
            for _ in range(repeats):
                fx.evict_half()  # outside the measurement: fsync and fadvise block
                lags += runners.run(loop, measure(work, 0))
            return lags

        for round_no in range(rounds + 1):  # round 0 warms up
            for loop in runners.names:
                idle = runners.run(loop, measure(None, 200))
                driven = loaded(loop, lambda loop=loop: via_drive(loop))
                blocking = loaded(loop, via_block)
                if round_no:
                    record(f"idle/{loop}", idle)
                    record(f"drive/{loop}", driven)
                    record(f"block/{loop}", blocking)
            print(f"  .. round {round_no}/{rounds} done", file=sys.stderr, flush=True)

        labels = {
            "idle": "ticker alone",
            "drive": "100 ops through drive over AsyncFileIO",
            "block": "same ops with block over UnixIO inside tasks (contrast)",
        }
        rows = []
        for name, values in samples.items():
            key, _, loop = name.partition("/")
            rows.append(
                [
                    f"{labels[key]}, {loop}",
                    median([v[0] for v in values]) * 1e3,
                    median([v[1] for v in values]) * 1e3,
                    int(median([v[2] for v in values])),
                ]
            )
        print_table(
            f"1 ms ticker lag (target: p99 < 5 ms with drive), {rounds} rounds x {repeats} "
            "batches of 100 ops, medians",
            ["contender", "p50 lag ms", "p99 lag ms", "ticks"],
            rows,
        )
        for loop, io in backends.items():
            runners.run(loop, io.aclose())
        unix.close()


if __name__ == "__main__":
    main()
