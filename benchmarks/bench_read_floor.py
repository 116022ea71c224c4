"""Where a hot 4 KiB read through `drive` spends its time, layer by layer.

Random 4 KiB reads of a 64 MiB file in the page cache, one at a time, on asyncio, each
contender on the same offsets (alternated, medians):
1. the raw `os.pread` loop (the baseline of `bench_file_reads.py`);
2. `os.preadv(fd, [buf], pos, RWF_NOWAIT)` into a kept buffer, then `bytes(buf)`: the
   system call and copy that an inline hit of `AsyncFileIO` cannot do without;
3. `AsyncFile.pread` of a `Completion.new_read_bytes`, then `read_bytes()`: the backend's
   inline path (called from a coroutine on the loop, as `drive` calls it);
4. `ReadRange(...).step()` to `Done`: the operation around it (likewise);
5. the same step inside a bare coroutine that is awaited (no loop check, no pass budget);
6. `await drive(ReadRange(...), io)`.
Each row's ratio is the raw loop's time over its own (reads/s against the raw loop), as in
`bench_file_reads.py`. Linux (RWF_NOWAIT); the inline budget is unbounded here so that
every read is a hit, as `drive` would otherwise step past its budget only by parking.

Run: python benchmarks/bench_read_floor.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (
    Contender,
    alternate,
    atimed,
    make_file,
    parse_args,
    print_table,
    ratio,
    timed,
    warm,
)

from bridge import AsyncFileIO, drive
from core import Completion, Done
from core.io import OpenFlags
from core.ops import ReadRange

FILE_SIZE = 64 << 20
READ = 4096
READS = 20_000


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0])
    rounds = args.rounds or (5 if args.quick else 15)
    nowait = getattr(os, "RWF_NOWAIT", 0)
    if not nowait:
        raise SystemExit("this benchmark needs RWF_NOWAIT (Linux)")
    rng = random.Random(3)
    offsets = [rng.randrange(FILE_SIZE // READ) * READ for _ in range(READS)]
    with tempfile.TemporaryDirectory() as tmp:
        path = make_file(tmp, FILE_SIZE)
        warm(path)
        fd = os.open(path, os.O_RDONLY)
        runner = asyncio.Runner()
        io = AsyncFileIO(inline_budget=1 << 40)
        file = io.open_file(path, OpenFlags.READ_ONLY)
        buf = bytearray(READ)
        target = [buf]

        def raw() -> None:
            for off in offsets:
                os.pread(fd, READ, off)

        def preadv_bytes() -> None:
            for off in offsets:
                os.preadv(fd, target, off, nowait)
                bytes(buf)

        # On the loop, as `drive` runs them: outside any loop, each inline hit would look
        # for a loop to refill the budget at, and find none.
        async def backend_pread() -> None:
            for off in offsets:
                file.pread(off, Completion.new_read_bytes(READ)).read_bytes()

        async def step() -> None:
            for off in offsets:
                ReadRange(file, off, READ).step()

        async def bare(op: ReadRange) -> bytes:
            result = op.step()
            assert type(result) is Done, "a miss: the file left the page cache"
            return result.value

        async def bare_loop() -> None:
            for off in offsets:
                await bare(ReadRange(file, off, READ))

        async def drive_loop() -> None:
            for off in offsets:
                await drive(ReadRange(file, off, READ), io)

        def in_loop(work: Callable[[], object]) -> Callable[[], float]:
            return lambda: runner.run(atimed(work, READS))  # type: ignore[arg-type]

        contenders = [
            Contender("raw os.pread loop", lambda: timed(raw, READS)),
            Contender("os.preadv RWF_NOWAIT + bytes()", lambda: timed(preadv_bytes, READS)),
            Contender("AsyncFile.pread (inline hit)", in_loop(backend_pread)),
            Contender("ReadRange.step() to Done", in_loop(step)),
            Contender("the step in a bare coroutine, awaited", in_loop(bare_loop)),
            Contender("await drive(ReadRange)", in_loop(drive_loop)),
        ]
        try:
            results = alternate(contenders, rounds)
        finally:
            file.close()
            runner.run(io.aclose())
            runner.close()
            os.close(fd)
    base = results["raw os.pread loop"].median
    print_table(
        f"hot 4 KiB reads, one at a time, asyncio ({READS:,} per run), {rounds} rounds, medians",
        ["contender", "us per read", "reads/s vs raw pread loop"],
        [[name, r.median * 1e6, ratio(base, r.median)] for name, r in results.items()],
    )


if __name__ == "__main__":
    main()
