"""`bridge.open` against aiofiles and py-asyncfiles on the same files, side by side, asyncio
and uvloop.

Workloads (page cache hot; each run opens, works and closes; GC paused while timed):
- sequential read of a large file in 64 KiB chunks (`await f.read(65536)` to the end);
- random 4 KiB reads (`seek(off)` then `await f.read(4096)`);
- line iteration over a text file (`async for line in f`);
- many small writes, then one flush (`await f.write(...)` ... `await f.flush()`), "w" mode
  (py-asyncfiles has no `flush`: its writes go out as they are made, and its close ends it).

For each workload and loop the contenders run alternated and the table shows the median
time per operation of each, with the engine that runs its I/O, and each peer's time over
ours. Ours is `bridge.open` on an `AsyncFileIO` of each engine ("threads": the worker pool;
"uring": our ring), one per loop and engine, kept across rounds as an application would.
py-asyncfiles (Cython over liburing) runs where it is installed; it has no `encoding`
argument, so its text workloads use its default (UTF-8).

Run: python benchmarks/bench_aiofiles.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import aiofiles
from _common import Contender, LoopRunners, alternate, atimed, print_table

import bridge
from bridge import AsyncFileIO

try:
    import asyncfiles
except ImportError:  # pragma: no cover - an optional peer
    asyncfiles = None

CHUNK = 64 * 1024
PAGE = 4096

Opener = Callable[..., Any]


def make_files(directory: str, big_mib: int, lines: int) -> tuple[str, str]:
    big = os.path.join(directory, "big.bin")
    block = random.Random(0).randbytes(1 << 20)
    with open(big, "wb") as f:
        for _ in range(big_mib):
            f.write(block)
    text = os.path.join(directory, "lines.txt")
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    with open(text, "w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(f"{i} " + " ".join(rng.choice(words) for _ in range(rng.randrange(3, 12))))
            f.write("\n")
    for path in (big, text):  # into the page cache
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    return big, text


async def sequential(opener: Opener, path: str) -> int:
    reads = 0
    async with opener(path, "rb") as f:
        while await f.read(CHUNK):
            reads += 1
    return reads


async def random_reads(opener: Opener, path: str, offsets: list[int]) -> None:
    async with opener(path, "rb") as f:
        for offset in offsets:
            moved = f.seek(offset)  # a coroutine in aiofiles and ours, plain in py-asyncfiles
            if not isinstance(moved, int):
                await moved
            await f.read(PAGE)


async def iterate_lines(opener: Opener, path: str) -> int:
    count = 0
    async with opener(path, "r") as f:
        async for _line in f:
            count += 1
    return count


async def small_writes(opener: Opener, path: str, lines: list[str]) -> None:
    async with opener(path, "w") as f:
        for line in lines:
            await f.write(line)
        if hasattr(f, "flush"):
            await f.flush()


def contender(
    runners: LoopRunners, loop: str, name: str, work: Callable[[], Awaitable[Any]], units: int
) -> Contender:
    return Contender(name, lambda: runners.run(loop, atimed(work, units)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds")
    args = parser.parse_args()
    quick = args.quick
    # Quick runs are short, so they take more rounds: with 3, one ratio swung 0.5x-1.05x.
    rounds = args.rounds or (15 if quick else 7)
    big_mib = 16 if quick else 64
    line_count = 20_000 if quick else 100_000
    random_count = 1_000 if quick else 5_000
    write_count = 10_000 if quick else 50_000

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        big, text = make_files(tmp, big_mib, line_count)
        rng = random.Random(42)
        offsets = [rng.randrange((big_mib << 20) // PAGE) * PAGE for _ in range(random_count)]
        lines = [f"record {i}: {'x' * (i % 40)}\n" for i in range(write_count)]
        engines = ["threads"] + (["uring"] if AsyncFileIO.uring_available() else [])
        names = ["aiofiles", *(["asyncfiles"] if asyncfiles is not None else [])]
        names += [f"ours-{engine}" for engine in engines]
        out = {name: os.path.join(tmp, f"out-{name}.txt") for name in names}
        labels = {
            "aiofiles": ("aiofiles", "threads (default executor)"),
            "asyncfiles": ("py-asyncfiles", "io_uring (liburing, Cython)"),
            "ours-threads": ("bridge.open", "threads (4 workers)"),
            "ours-uring": ("bridge.open", "io_uring (ours)"),
        }
        workloads: list[tuple[str, int, Callable[[Opener, str], Awaitable[Any]]]] = [
            (
                f"sequential read, 64 KiB chunks ({big_mib} MiB)",
                (big_mib << 20) // CHUNK,
                lambda o, _k: sequential(o, big),
            ),
            (
                f"random 4 KiB reads ({random_count})",
                random_count,
                lambda o, _k: random_reads(o, big, offsets),
            ),
            (
                f"line iteration ({line_count} lines)",
                line_count,
                lambda o, _k: iterate_lines(o, text),
            ),
            (
                f"small writes + flush ({write_count})",
                write_count,
                lambda o, k: small_writes(o, out[k], lines),
            ),
        ]
        rows = []
        ratios = []
        with LoopRunners() as runners:
            backends = {
                (loop, engine): AsyncFileIO(engine=engine)
                for loop in runners.names
                for engine in engines
            }

            def opener_of(loop: str, name: str) -> Opener:
                if name == "aiofiles":
                    return aiofiles.open
                if name == "asyncfiles":
                    assert asyncfiles is not None
                    return asyncfiles.open
                io = backends[loop, name.removeprefix("ours-")]
                return functools.partial(bridge.open, io=io)

            for title, units, work in workloads:
                for loop in runners.names:
                    print(f"{title} on {loop}", file=sys.stderr, flush=True)
                    openers = {name: opener_of(loop, name) for name in names}
                    contenders = [
                        contender(
                            runners,
                            loop,
                            name,
                            lambda o=openers[name], k=name, w=work: w(o, k),  # type: ignore[misc]
                            units,
                        )
                        for name in names
                    ]
                    results = alternate(contenders, rounds)
                    ours = results[f"ours-{engines[-1]}"].median
                    for name in names:
                        what, engine = labels[name]
                        value = results[name].median
                        rows.append((title, loop, what, engine, value * 1e6))
                        if not name.startswith("ours"):
                            ratios.append((title, loop, what, f"{value / ours:.2f}x"))
            for (loop, _), io in backends.items():
                runners.run(loop, io.aclose())
    print_table(
        f"bridge.open vs aiofiles and py-asyncfiles (median of {rounds} alternated rounds, "
        "page cache hot)",
        ["workload", "loop", "library", "engine", "us/op"],
        rows,
    )
    print_table(
        f"their time / ours (bridge.open, {labels[f'ours-{engines[-1]}'][1]}; above 1: ours "
        "is faster)",
        ["workload", "loop", "peer", "their time / ours"],
        ratios,
    )


if __name__ == "__main__":
    main()
