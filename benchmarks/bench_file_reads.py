"""Random 4 KiB reads of a 64 MiB file, page cache hot and cold, through every route.

Contenders (alternated, medians): a raw `os.pread` loop; `block(ReadRange)` over `UnixIO`;
`block` over `UringIO`, one `ReadRange` at a time and 32 preads in one `CompletionGroup`
(one `io_uring_enter` per group), and the same group over `UnixIO`;
`await drive(ReadRange)` over `AsyncFileIO`, one operation at a time and 32 at once;
aiofiles (`seek` + `read`, its usual one-call-per-read use); `anyio.to_thread.run_sync(
os.pread)`. The async ones run on asyncio and on uvloop. Cold runs evict the file with
`posix_fadvise(POSIX_FADV_DONTNEED)` before every single run.

The 10,000 random offsets are measured in slices of 1,000 reads: each measured run is one
slice by one contender, the contenders take turns on a slice, and each contender's median
is over all its runs.

Run: python benchmarks/bench_file_reads.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import aiofiles
import anyio.to_thread
from _common import Contender, LoopRunners, alternate, atimed, print_table, ratio, timed

from bridge import AsyncFileIO, drive
from core import IO, Completion, CompletionGroup, Done, IOResult, block
from core.io import File, OpenFlags, UnixIO, UringIO
from core.ops import ReadRange

FILE_SIZE = 64 << 20
READ = 4096
CONCURRENCY = 32
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


def make_file(directory: str) -> str:
    path = os.path.join(directory, "bench-64MiB.bin")
    chunk = random.Random(0).randbytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(FILE_SIZE >> 20):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return path


def evict(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


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
        path = make_file(tmp)
        rng = random.Random(42)
        all_offsets = [rng.randrange(FILE_SIZE // READ) * READ for _ in range(10_000)]
        fd = os.open(path, os.O_RDONLY)
        unix = UnixIO()
        unix_file = unix.open_file(path, OpenFlags.READ_ONLY)
        uring = UringIO() if UringIO.available() else None
        uring_file = uring.open_file(path, OpenFlags.READ_ONLY) if uring is not None else None

        with LoopRunners() as runners:
            # One backend per loop and engine: "drive1/asyncio" runs the worker pool,
            # "drive1u/asyncio" the io_uring ring (where one can be set up).
            engines = ["threads"] + (["uring"] if AsyncFileIO.uring_available() else [])
            backends = {
                f"{loop}{'' if engine == 'threads' else '+uring'}": AsyncFileIO(engine=engine)
                for loop in runners.names
                for engine in engines
            }
            files = {name: io.open_file(path, OpenFlags.READ_ONLY) for name, io in backends.items()}

            def contenders() -> list[Contender]:
                n = SLICE
                slices = [all_offsets[i : i + SLICE] for i in range(0, len(all_offsets), SLICE)]
                calls: dict[str, int] = {}

                class Offsets:
                    """Each contender's runs step through the same slices, in order."""

                    def __init__(self, name: str) -> None:
                        self.name = name

                    def __iter__(self) -> Iterator[int]:
                        k = calls.get(self.name, 0)
                        calls[self.name] = k + 1
                        return iter(slices[k % len(slices)])

                def raw() -> float:
                    offsets = Offsets("raw")

                    def work() -> None:
                        pread = os.pread
                        for off in offsets:
                            pread(fd, READ, off)

                    return timed(work, n)

                def block_one(name: str, io: UnixIO | UringIO, f: File) -> float:
                    offsets = Offsets(name)

                    def work() -> None:
                        for off in offsets:
                            block(ReadRange(f, off, READ), io)

                    return timed(work, n)

                def block_batched(name: str, io: UnixIO | UringIO, f: File) -> float:
                    offsets = list(Offsets(name))
                    batches = [
                        offsets[i : i + CONCURRENCY] for i in range(0, len(offsets), CONCURRENCY)
                    ]

                    def work() -> None:
                        for batch in batches:
                            block(ReadBatch(f, batch), io)

                    return timed(work, n)

                def drive_one(loop: str, engine: str = "") -> float:
                    io, f = backends[loop + engine], files[loop + engine]
                    offsets = Offsets(f"drive1{engine}/{loop}")

                    async def work() -> None:
                        for off in offsets:
                            await drive(ReadRange(f, off, READ), io)

                    return runners.run(loop, atimed(work, n))

                def drive_many(loop: str, engine: str = "") -> float:
                    io, f = backends[loop + engine], files[loop + engine]
                    offsets = list(Offsets(f"drive32{engine}/{loop}"))

                    async def lane(part: list[int]) -> None:
                        for off in part:
                            await drive(ReadRange(f, off, READ), io)

                    async def work() -> None:
                        parts = [offsets[i::CONCURRENCY] for i in range(CONCURRENCY)]
                        await asyncio.gather(*(lane(p) for p in parts))

                    return runners.run(loop, atimed(work, n))

                def aiofiles_reads(loop: str) -> float:
                    offsets = Offsets(f"aiofiles/{loop}")

                    async def work() -> None:
                        async with aiofiles.open(path, "rb") as f:
                            for off in offsets:
                                await f.seek(off)
                                await f.read(READ)

                    return runners.run(loop, atimed(work, n))

                def anyio_reads(loop: str) -> float:
                    offsets = Offsets(f"anyio/{loop}")

                    async def work() -> None:
                        run_sync = anyio.to_thread.run_sync
                        for off in offsets:
                            await run_sync(os.pread, fd, READ, off)

                    return runners.run(loop, atimed(work, n))

                out = [
                    Contender("raw", raw),
                    Contender("block", lambda: block_one("block", unix, unix_file)),
                    Contender("unix32", lambda: block_batched("unix32", unix, unix_file)),
                ]
                if uring is not None and uring_file is not None:
                    out += [
                        Contender("uring1", lambda: block_one("uring1", uring, uring_file)),
                        Contender("uring32", lambda: block_batched("uring32", uring, uring_file)),
                    ]
                per_loop: list[tuple[str, Callable[[str], float]]] = [
                    ("drive1", drive_one),
                    ("drive32", drive_many),
                    ("aiofiles", aiofiles_reads),
                    ("anyio", anyio_reads),
                ]

                def drive_one_uring(loop: str) -> float:
                    return drive_one(loop, "+uring")

                def drive_many_uring(loop: str) -> float:
                    return drive_many(loop, "+uring")

                if "uring" in engines:
                    per_loop += [("drive1u", drive_one_uring), ("drive32u", drive_many_uring)]
                for loop in runners.names:
                    for key, fn in per_loop:
                        out.append(Contender(f"{key}/{loop}", lambda fn=fn, loop=loop: fn(loop)))
                return out

            labels = {
                "raw": "raw os.pread loop",
                "block": "block(ReadRange) over UnixIO",
                "unix32": f"block, {CONCURRENCY} preads in one group, over UnixIO",
                "uring1": "block(ReadRange) over UringIO, 1 at a time",
                "uring32": f"block, {CONCURRENCY} preads in one group, over UringIO",
                "drive1": "drive(ReadRange) over AsyncFileIO threads, 1 at a time",
                "drive32": f"drive(ReadRange) over AsyncFileIO threads, {CONCURRENCY} at once",
                "drive1u": "drive(ReadRange) over AsyncFileIO uring, 1 at a time",
                "drive32u": f"drive(ReadRange) over AsyncFileIO uring, {CONCURRENCY} at once",
                "aiofiles": "aiofiles seek+read, 1 at a time",
                "anyio": "anyio.to_thread.run_sync(os.pread), 1 at a time",
            }

            def report(title: str, res: dict[str, object], rounds: int) -> dict[str, float]:
                med = {name: r.median for name, r in res.items()}  # type: ignore[attr-defined]
                rows = []
                for name, value in med.items():
                    key, _, loop = name.partition("/")
                    label = labels[key] + (f", {loop}" if loop else "")
                    rows.append(
                        [label, value * 1e6, ratio(value, med["raw"]), ratio(value, med["block"])]
                    )
                print_table(
                    f"{title}, {rounds} rounds, medians",
                    ["contender", "us per read", "vs raw pread", "vs block/UnixIO"],
                    rows,
                )
                return med

            print("hot page cache", file=sys.stderr)
            warm(path)
            hot = report(
                f"4 KiB random reads, hot page cache ({SLICE:,} reads per run)",
                alternate(contenders(), hot_rounds),
                hot_rounds,
            )
            print("cold page cache", file=sys.stderr)
            cold = report(
                f"4 KiB random reads, cold page cache ({SLICE:,} reads per run, "
                "file evicted before each run)",
                alternate(contenders(), cold_rounds, warmup=0, before_each=lambda: evict(path)),
                cold_rounds,
            )

            rows = []
            for loop in runners.names:
                rows += [
                    [
                        f"hot: drive 1 at a time / block over UnixIO, {loop}",
                        ratio(hot[f"drive1/{loop}"], hot["block"]),
                        "<= 1.30x",
                    ],
                    [
                        f"hot: aiofiles / drive 1 at a time, {loop}",
                        ratio(hot[f"aiofiles/{loop}"], hot[f"drive1/{loop}"]),
                        ">= 30x",
                    ],
                    [
                        f"cold: raw pread loop / drive {CONCURRENCY} at once, {loop}",
                        ratio(cold["raw"], cold[f"drive32/{loop}"]),
                        ">= 1.50x",
                    ],
                ]
            print_table("targets", ["ratio", "measured", "target"], rows)
            if uring is not None:
                print_table(
                    f"UringIO, {CONCURRENCY} preads per io_uring_enter, against the sync loop",
                    ["ratio", "measured"],
                    [
                        [f"{cache}: raw pread loop / {labels[key]}", ratio(m["raw"], m[key])]
                        for cache, m in (("hot", hot), ("cold", cold))
                        for key in ("uring32", "uring1")
                    ],
                )

            if "uring" in engines:
                print_table(
                    "AsyncFileIO engines: threads time / uring time (above 1: uring is faster)",
                    ["ratio", "measured"],
                    [
                        [
                            f"{cache}: {labels[key]} / uring, {loop}",
                            ratio(m[f"{key}/{loop}"], m[f"{key}u/{loop}"]),
                        ]
                        for cache, m in (("hot", hot), ("cold", cold))
                        for key in ("drive1", "drive32")
                        for loop in runners.names
                    ],
                )

            for name, io in backends.items():
                runners.run(name.partition("+")[0], io.aclose())
        unix.close()
        if uring is not None:
            uring.close()
        os.close(fd)


if __name__ == "__main__":
    main()
