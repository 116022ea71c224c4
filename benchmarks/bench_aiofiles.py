"""`bridge.open` against aiofiles on the same files, side by side, asyncio and uvloop.

Workloads (page cache hot; each run opens, works and closes; GC paused while timed):
- sequential read of a large file in 64 KiB chunks (`await f.read(65536)` to the end);
- random 4 KiB reads (`await f.seek(off)` then `await f.read(4096)`);
- line iteration over a text file (`async for line in f`);
- many small writes, then one flush (`await f.write(...)` ... `await f.flush()`), "w" mode.

For each workload and loop the two contenders run alternated (aiofiles, ours, aiofiles,
ours ...) and the table shows the median time per operation of each and the speed-up
(aiofiles' time / ours). Our files use the loop's default backend (`AsyncFileIO`), kept
across rounds as an application would keep it.

Run: python benchmarks/bench_aiofiles.py [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
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
            await f.seek(offset)
            await f.read(PAGE)


async def iterate_lines(opener: Opener, path: str) -> int:
    count = 0
    async with opener(path, encoding="utf-8") as f:
        async for _line in f:
            count += 1
    return count


async def small_writes(opener: Opener, path: str, lines: list[str]) -> None:
    async with opener(path, "w", encoding="utf-8") as f:
        for line in lines:
            await f.write(line)
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
    rounds = args.rounds or (3 if quick else 7)
    big_mib = 16 if quick else 64
    line_count = 20_000 if quick else 100_000
    random_count = 1_000 if quick else 5_000
    write_count = 10_000 if quick else 50_000

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        big, text = make_files(tmp, big_mib, line_count)
        rng = random.Random(42)
        offsets = [rng.randrange((big_mib << 20) // PAGE) * PAGE for _ in range(random_count)]
        lines = [f"record {i}: {'x' * (i % 40)}\n" for i in range(write_count)]
        out = {"aiofiles": os.path.join(tmp, "out-a.txt"), "ours": os.path.join(tmp, "out-b.txt")}
        openers: dict[str, Opener] = {"aiofiles": aiofiles.open, "ours": bridge.open}
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
        with LoopRunners() as runners:
            for title, units, work in workloads:
                for loop in runners.names:
                    print(f"{title} on {loop}", file=sys.stderr, flush=True)
                    contenders = [
                        contender(
                            runners,
                            loop,
                            name,
                            lambda o=opener, k=name, w=work: w(o, k),  # type: ignore[misc]
                            units,
                        )
                        for name, opener in openers.items()
                    ]
                    results = alternate(contenders, rounds)
                    theirs = results["aiofiles"].median
                    ours = results["ours"].median
                    rows.append((title, loop, theirs * 1e6, ours * 1e6, f"{theirs / ours:.1f}x"))
    print_table(
        f"bridge.open vs aiofiles (median of {rounds} alternated rounds, page cache hot)",
        ["workload", "loop", "aiofiles us/op", "bridge.open us/op", "speed-up"],
        rows,
    )


if __name__ == "__main__":
    main()
