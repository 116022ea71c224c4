"""Random 4 KiB reads of a 64 MiB file, page cache hot and cold, through every route.

Contenders (alternated, medians), each with the engine that runs its I/O:
- a raw `os.pread` loop (the synchronous baseline); `block(ReadRange)` over `UnixIO`;
- `block` over `UringIO`: one `ReadRange` at a time, and 32 or 128 preads in one
  `CompletionGroup` (one `io_uring_enter` per group); the same groups over `UnixIO`;
- `await drive(ReadRange)` over `AsyncFileIO`, on each engine ("threads": the worker pool;
  "uring": our ring; where the kernel allows it, the ring with a kernel thread polling it,
  `sqpoll=0.1`), one operation at a time and 32 or 128 at once (as many tasks), on
  asyncio, uvloop and trio;
- `bridge.open` (`seek` + `read` on a handle of its own per task, as the peers below), on
  each engine, one at a time and 32 or 128 tasks at once, on asyncio and uvloop;
- aiofiles (`seek` + `read` on a handle of its own per task: its thread hops through the
  loop's default executor), one at a time and 32 or 128 tasks at once;
- py-asyncfiles (Cython over liburing, `seek` + `read`, a handle per task), likewise,
  where it is installed (asyncio and uvloop only: it has no trio face);
- `anyio.to_thread.run_sync(os.pread)`, one at a time.
Cold runs evict the file with `posix_fadvise(POSIX_FADV_DONTNEED)` before every single run.
With many reads in flight, a cold read's cost is mostly the loop thread's CPU: the cold runs
also report that thread's CPU time per read (`time.thread_time`, user and system together),
for the routes over the ring and the peers.

The 10,000 random offsets are measured in slices of 1,000 reads: each measured run is one
slice by one contender, the contenders take turns on a slice, and each contender's median
is over all its runs. Handles of the peers are opened before the clock starts.

Run: python benchmarks/bench_file_reads.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import aiofiles
import anyio.to_thread
import trio
from _common import (
    Contender,
    LoopRunners,
    alternate,
    atimed,
    last_cpu_per_unit,
    make_file,
    median,
    print_table,
    ratio,
    record_cpu,
    timed,
    warm,
)

import bridge
from bridge import AsyncFileIO, drive
from core import IO, Completion, CompletionGroup, Done, IOResult, block
from core.io import File, OpenFlags, UnixIO, UringIO
from core.ops import ReadRange

try:
    import asyncfiles
except ImportError:  # pragma: no cover - an optional peer
    asyncfiles = None

SQPOLL = 0.1
"""The `sqpoll` (seconds) of the third engine measured: the ring with a polling thread."""
ENGINE_LABELS = {
    "threads": "threads (4 workers)",
    "uring": "io_uring (ours)",
    "sqpoll": f"io_uring + SQPOLL thread (ours, sqpoll={SQPOLL:g})",
}
ENGINE_SUFFIXES = {"threads": "", "uring": "u", "sqpoll": "s"}

FILE_SIZE = 64 << 20
READ = 4096
CONCURRENCY = 32
WIDTHS = (32, 128)  # reads in flight for the concurrent contenders
SLICE = 1_000  # reads per measured run; 10 slices make the 10,000 random offsets


class ReadBatch:
    """One operation: a 4 KiB pread at each offset, all in one `CompletionGroup`;
    `Done(bytes read)`."""

    __slots__ = ("file", "group", "offsets")

    def __init__(self, file: File, offsets: list[int]) -> None:
        self.file, self.offsets = file, offsets
        self.group: Completion | None = None

    def step(self) -> IOResult[int]:
        if self.group is None:
            group = CompletionGroup()
            reads = [Completion.new_read(bytearray(READ)) for _ in self.offsets]
            for c in reads:
                group.add(c)
            self.group = group.build()
            for off, c in zip(self.offsets, reads, strict=True):
                self.file.pread(off, c)
            if not self.group.finished():
                return IO(self.group)
        return Done(self.group.result())


def evict(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@dataclass
class Row:
    """What a contender measures, for the tables."""

    key: str
    what: str
    loop: str
    engine: str
    in_flight: int


def metered(contenders: list[Contender], cpu: dict[str, list[float]]) -> list[Contender]:
    """The same contenders, each run also recording in `cpu` the CPU time per read that
    this thread (where every loop here runs) spent in the measured part."""

    def wrap(c: Contender) -> Contender:
        def run() -> float:
            per_read = c.run()
            cpu.setdefault(c.name, []).append(last_cpu_per_unit())
            return per_read

        return Contender(c.name, run)

    return [wrap(c) for c in contenders]


def _backend(engine: str) -> AsyncFileIO:
    if engine == "sqpoll":
        return AsyncFileIO(engine="uring", sqpoll=SQPOLL)
    return AsyncFileIO(engine=engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--hot-rounds", type=int, default=None)
    parser.add_argument("--cold-rounds", type=int, default=None)
    args = parser.parse_args()
    # The 10,000 reads are measured in slices of 1,000, each slice by every contender in
    # turn (A B C ..., then the next slice): on a shared machine a burst of other work
    # spoils a few short samples, which the medians ignore, rather than one long run.
    hot_rounds = args.hot_rounds or (10 if args.quick else 30)
    cold_rounds = args.cold_rounds or (3 if args.quick else 10)

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        path = make_file(tmp, FILE_SIZE)
        rng = random.Random(42)
        all_offsets = [rng.randrange(FILE_SIZE // READ) * READ for _ in range(10_000)]
        slices = [all_offsets[i : i + SLICE] for i in range(0, len(all_offsets), SLICE)]
        fd = os.open(path, os.O_RDONLY)
        unix = UnixIO()
        unix_file = unix.open_file(path, OpenFlags.READ_ONLY)
        uring = UringIO() if UringIO.available() else None
        uring_file = uring.open_file(path, OpenFlags.READ_ONLY) if uring is not None else None
        engines = ["threads"] + (["uring"] if AsyncFileIO.uring_available() else [])
        if "uring" in engines and AsyncFileIO.sqpoll_available():
            engines.append("sqpoll")

        with LoopRunners() as runners:
            loops = [*runners.names, "trio"]
            # One backend per loop and engine, kept across rounds as an application would.
            backends = {(loop, engine): _backend(engine) for loop in loops for engine in engines}
            files = {key: io.open_file(path, OpenFlags.READ_ONLY) for key, io in backends.items()}
            calls: dict[str, int] = {}
            rows: dict[str, Row] = {}

            def offsets_of(name: str) -> list[int]:
                """Each contender's runs step through the same slices, in order."""
                k = calls.get(name, 0)
                calls[name] = k + 1
                return slices[k % len(slices)]

            def lanes(offsets: list[int], width: int) -> list[list[int]]:
                return [offsets[i::width] for i in range(width)]

            def run_async(loop: str, work: Callable[[], Awaitable[float]]) -> float:
                if loop == "trio":
                    return trio.run(work)
                return runners.run(loop, work())

            async def gather(loop: str, coros: list[Awaitable[None]]) -> None:
                if loop != "trio":
                    await asyncio.gather(*coros)
                    return

                async def one(coro: Awaitable[None]) -> None:
                    await coro

                async with trio.open_nursery() as nursery:
                    for coro in coros:
                        nursery.start_soon(one, coro)

            def raw(name: str) -> float:
                offsets = offsets_of(name)

                def work() -> None:
                    pread = os.pread
                    for off in offsets:
                        pread(fd, READ, off)

                return timed(work, len(offsets))

            def block_one(name: str, io: UnixIO | UringIO, f: File) -> float:
                offsets = offsets_of(name)

                def work() -> None:
                    for off in offsets:
                        block(ReadRange(f, off, READ), io)

                return timed(work, len(offsets))

            def block_batched(name: str, io: UnixIO | UringIO, f: File, width: int) -> float:
                offsets = offsets_of(name)
                batches = [offsets[i : i + width] for i in range(0, len(offsets), width)]

                def work() -> None:
                    for batch in batches:
                        block(ReadBatch(f, batch), io)

                return timed(work, len(offsets))

            def drive_reads(name: str, loop: str, engine: str, width: int) -> float:
                io, f = backends[loop, engine], files[loop, engine]
                offsets = offsets_of(name)

                async def lane(part: list[int]) -> None:
                    for off in part:
                        await drive(ReadRange(f, off, READ), io)

                async def work() -> None:
                    await gather(loop, [lane(p) for p in lanes(offsets, width)])

                took = run_async(loop, lambda: atimed(work, len(offsets)))
                if engine == "sqpoll":
                    # Its kernel thread polls on for SQPOLL seconds: not into the next run.
                    time.sleep(SQPOLL * 1.5)
                return took

            def peer_reads(
                name: str, loop: str, opener: Callable[..., Any], width: int, settle: float = 0.0
            ) -> float:
                """`seek` + `read` on a handle per task; `settle`: seconds to sleep after."""
                offsets = offsets_of(name)

                async def lane(f: Any, part: list[int]) -> None:
                    for off in part:
                        s = f.seek(off)
                        if s is not None and hasattr(s, "__await__"):
                            await s
                        await f.read(READ)

                async def work() -> float:
                    parts = lanes(offsets, width)
                    async with contextlib.AsyncExitStack() as stack:
                        handles = [
                            await stack.enter_async_context(opener(path, "rb")) for _ in parts
                        ]
                        cpu = time.thread_time()
                        start = time.perf_counter()
                        await asyncio.gather(
                            *(lane(f, p) for f, p in zip(handles, parts, strict=True))
                        )
                        elapsed = time.perf_counter() - start
                        record_cpu((time.thread_time() - cpu) / len(offsets))
                    return elapsed / len(offsets)

                took = run_async(loop, work)
                time.sleep(settle)
                return took

            def anyio_reads(name: str, loop: str) -> float:
                offsets = offsets_of(name)

                async def work() -> None:
                    run_sync = anyio.to_thread.run_sync
                    for off in offsets:
                        await run_sync(os.pread, fd, READ, off)

                return run_async(loop, lambda: atimed(work, len(offsets)))

            out: list[Contender] = []

            def add(
                key: str, what: str, loop: str, engine: str, width: int, fn: Callable[[str], float]
            ) -> None:
                name = key if not loop else f"{key}/{loop}"
                rows[name] = Row(key, what, loop, engine, width)
                out.append(Contender(name, lambda: fn(name)))

            sync = "sync syscalls"
            add("raw", "raw os.pread loop", "", sync, 1, raw)
            add(
                "block",
                "block(ReadRange) over UnixIO",
                "",
                sync,
                1,
                lambda n: block_one(n, unix, unix_file),
            )
            for width in WIDTHS:
                add(
                    f"unix{width}",
                    "block, preads in one group, over UnixIO",
                    "",
                    sync,
                    width,
                    lambda n, w=width: block_batched(n, unix, unix_file, w),
                )
            if uring is not None and uring_file is not None:
                ring = "io_uring (UringIO)"
                add(
                    "uring1",
                    "block(ReadRange) over UringIO",
                    "",
                    ring,
                    1,
                    lambda n: block_one(n, uring, uring_file),
                )
                for width in WIDTHS:
                    add(
                        f"uring{width}",
                        "block, preads in one group, over UringIO",
                        "",
                        ring,
                        width,
                        lambda n, w=width: block_batched(n, uring, uring_file, w),
                    )
            for loop in loops:
                for engine in engines:
                    label = ENGINE_LABELS[engine]
                    suffix = ENGINE_SUFFIXES[engine]
                    for width in (1, *WIDTHS):
                        add(
                            f"drive{width}{suffix}",
                            "drive(ReadRange) over AsyncFileIO",
                            loop,
                            label,
                            width,
                            lambda n, lp=loop, e=engine, w=width: drive_reads(n, lp, e, w),
                        )
                if loop == "trio":
                    continue  # the peers below are asyncio libraries
                for engine in engines:
                    for width in (1, *WIDTHS):
                        add(
                            f"open{width}{ENGINE_SUFFIXES[engine]}",
                            "bridge.open seek+read",
                            loop,
                            ENGINE_LABELS[engine],
                            width,
                            lambda n, lp=loop, e=engine, w=width: peer_reads(
                                n,
                                lp,
                                functools.partial(bridge.open, io=backends[lp, e]),
                                w,
                                # Its kernel thread polls on for SQPOLL seconds: not into
                                # the next run.
                                SQPOLL * 1.5 if e == "sqpoll" else 0.0,
                            ),
                        )
                for width in (1, *WIDTHS):
                    add(
                        f"aiofiles{width}",
                        "aiofiles seek+read",
                        loop,
                        "threads (default executor)",
                        width,
                        lambda n, lp=loop, w=width: peer_reads(n, lp, aiofiles.open, w),
                    )
                    if asyncfiles is not None:
                        add(
                            f"asyncfiles{width}",
                            "py-asyncfiles seek+read",
                            loop,
                            "io_uring (liburing, Cython)",
                            width,
                            lambda n, lp=loop, w=width: peer_reads(n, lp, asyncfiles.open, w),
                        )
                add(
                    "anyio",
                    "anyio.to_thread.run_sync(os.pread)",
                    loop,
                    "threads (default executor)",
                    1,
                    lambda n, lp=loop: anyio_reads(n, lp),
                )

            def report(title: str, res: dict[str, Any], rounds: int) -> dict[str, float]:
                med = {name: r.median for name, r in res.items()}
                table = []
                for name, value in med.items():
                    row = rows[name]
                    table.append(
                        [
                            row.what,
                            row.loop or "-",
                            row.engine,
                            row.in_flight,
                            value * 1e6,
                            ratio(med["raw"], value),
                        ]
                    )
                print_table(
                    f"{title}, {rounds} rounds, medians",
                    [
                        "contender",
                        "loop",
                        "engine",
                        "in flight",
                        "us per read",
                        "reads/s vs raw pread loop",
                    ],
                    table,
                )
                return med

            print("hot page cache", file=sys.stderr)
            warm(path)
            hot = report(
                f"4 KiB random reads, hot page cache ({SLICE:,} reads per run)",
                alternate(out, hot_rounds),
                hot_rounds,
            )
            print("cold page cache", file=sys.stderr)
            cold_cpu: dict[str, list[float]] = {}
            cold = report(
                f"4 KiB random reads, cold page cache ({SLICE:,} reads per run, "
                "file evicted before each run)",
                # No warm-up round: `metered` keeps every run's CPU time, as `alternate`
                # keeps every measured run's time.
                alternate(
                    metered(out, cold_cpu), cold_rounds, warmup=0, before_each=lambda: evict(path)
                ),
                cold_rounds,
            )
            cpu_rows = []
            for name, samples in cold_cpu.items():
                row = rows[name]
                ring = row.engine == ENGINE_LABELS["uring"]
                peer = row.key.startswith(("aiofiles", "asyncfiles"))
                if row.in_flight in WIDTHS and row.loop != "trio" and (ring or peer):
                    cpu_rows.append(
                        [row.what, row.loop, row.engine, row.in_flight, median(samples) * 1e6]
                    )
            print_table(
                f"cold: the loop thread's CPU time per read, {cold_rounds} rounds, medians",
                ["contender", "loop", "engine", "in flight", "CPU us per read"],
                cpu_rows,
            )

            summary = []
            for loop in runners.names:
                summary += [
                    [
                        f"hot: drive 1 at a time / block over UnixIO, {loop}",
                        ratio(hot[f"drive1/{loop}"], hot["block"]),
                        "<= 1.30x",
                    ],
                    [
                        f"hot: aiofiles / drive 1 at a time, {loop}",
                        ratio(hot[f"aiofiles1/{loop}"], hot[f"drive1/{loop}"]),
                        ">= 30x",
                    ],
                    [
                        f"cold: raw pread loop / drive {CONCURRENCY} at once, {loop}",
                        ratio(cold["raw"], cold[f"drive{CONCURRENCY}/{loop}"]),
                        ">= 1.50x",
                    ],
                ]
            print_table("targets", ["ratio", "measured", "target"], summary)

            peers = []
            ring_engines = [e for e in ("uring", "sqpoll") if e in engines]
            for cache, m in (("hot", hot), ("cold", cold)):
                for width in (1, *WIDTHS):
                    for loop in runners.names:
                        for engine in ring_engines or ["threads"]:
                            for route in ("drive", "open"):
                                ours = f"{route}{width}{ENGINE_SUFFIXES[engine]}/{loop}"
                                for peer in ("aiofiles", "asyncfiles"):
                                    if f"{peer}{width}/{loop}" in m:
                                        peers.append(
                                            [
                                                f"{cache}: {rows[f'{peer}{width}/{loop}'].what}"
                                                f" / {rows[ours].what} ({rows[ours].engine}), "
                                                f"{width} in flight, {loop}",
                                                ratio(m[f"{peer}{width}/{loop}"], m[ours]),
                                            ]
                                        )
            print_table(
                "peers: their time per read / ours (above 1: ours is faster)",
                ["ratio", "measured"],
                peers,
            )

            if "uring" in engines:
                print_table(
                    "AsyncFileIO engines: threads time / uring time (above 1: uring is faster)",
                    ["ratio", "measured"],
                    [
                        [
                            f"{cache}: {width} in flight, {loop}",
                            ratio(m[f"drive{width}/{loop}"], m[f"drive{width}u/{loop}"]),
                        ]
                        for cache, m in (("hot", hot), ("cold", cold))
                        for width in (1, *WIDTHS)
                        for loop in loops
                    ],
                )

            for (loop, _), io in backends.items():
                if loop == "trio":
                    io.close()
                else:
                    runners.run(loop, io.aclose())
        unix.close()
        if uring is not None:
            uring.close()
        os.close(fd)


if __name__ == "__main__":
    main()
