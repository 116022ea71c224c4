"""What `drive` costs on top of the work it drives.

1. An operation with 1,000 I/O points on `MemoryIO` (every completion already finished,
   returned as `IO(c)` anyway): `await drive(op, io)` on asyncio and uvloop against
   `block(op, io)`. Also a one-step operation (`ReadRange`), to show the fixed cost per call.
2. Per yield on a deferred backend (every completion finished by a loop callback, one
   `call_soon` each): `drive` against a bare asyncio Future resolved with `call_soon`, on
   each loop. Also the floor (the leanest loop that waits on the same completions: what the
   completions themselves cost) and `MemoryYieldIO` (the driver steps it, one turn per I/O).

Run: python benchmarks/bench_drive.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import (
    Contender,
    LoopRunners,
    alternate,
    atimed,
    parse_args,
    print_table,
    ratio,
    timed,
)

from bridge import drive
from core import IO, Completion, Done, block
from core.io import MemoryFile, MemoryIO, MemoryYieldIO, OpenFlags
from core.ops import ReadRange

POINTS = 1000


class Points:
    """`count` reads of 64 bytes, one per step; each step returns `IO(c)` even though the
    completion already finished (the non-idiomatic path the driver must still make cheap)."""

    __slots__ = ("buffer", "count", "current", "file", "index")

    def __init__(self, file: MemoryFile, count: int) -> None:
        self.file = file
        self.count = count
        self.index = 0
        self.buffer = bytearray(64)
        self.current: Completion | None = None

    def step(self) -> Done[int] | IO:
        if self.current is not None:
            self.current.result()
        if self.index == self.count:
            return Done(self.index)
        c = Completion.new_read(self.buffer)
        self.current = c
        self.file.pread((self.index * 64) % 4096, c)
        self.index += 1
        return IO(c)


class Deferred:
    """`count` yields whose completions are finished by a loop callback (`call_soon`)."""

    __slots__ = ("call_soon", "count", "current", "index")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.call_soon = loop.call_soon
        self.count = count
        self.index = 0
        self.current: Completion | None = None

    def step(self) -> Done[int] | IO:
        if self.current is not None:
            self.current.result()
        if self.index == self.count:
            return Done(self.index)
        c = Completion.new_write()
        self.current = c
        self.call_soon(c.complete, 0)
        self.index += 1
        return IO(c)


class _Wake:
    """The leanest done-callback: resolve the Future of the current wait."""

    __slots__ = ("fut",)

    def __init__(self) -> None:
        self.fut: asyncio.Future[None] | None = None

    def __call__(self, completion: Completion) -> None:
        fut = self.fut
        if fut is not None and not fut.done():
            fut.set_result(None)


async def floor_driver(op: Deferred) -> None:
    """The least a driver can do per deferred yield: step, one Future, a done-callback.
    No time slice, no thread check, no cancellation handling; a floor, not a driver."""
    loop = asyncio.get_running_loop()
    step = op.step
    wake = _Wake()
    while True:
        result = step()
        if type(result) is Done:
            return
        c = result.completion  # type: ignore[union-attr]
        if c.finished():
            continue
        wake.fut = fut = loop.create_future()
        c.add_done_callback(wake)
        await fut


class YieldPoints:
    """`count` single-byte reads on a `MemoryYieldIO` file, one I/O point per step."""

    __slots__ = ("buffer", "count", "current", "file", "index")

    def __init__(self, file: MemoryFile, count: int) -> None:
        self.file = file
        self.count = count
        self.index = 0
        self.buffer = bytearray(1)
        self.current: Completion | None = None

    def step(self) -> Done[int] | IO:
        if self.current is not None:
            self.current.result()
        if self.index == self.count:
            return Done(self.index)
        c = Completion.new_read(self.buffer)
        self.current = c
        self.file.pread(self.index % 4096, c)
        self.index += 1
        return IO(c)


def main() -> None:
    args = parse_args(__doc__ or "")
    # Many short runs rather than a few long ones: on a shared machine a burst of other
    # work then spoils a few samples, which the median ignores.
    rounds = args.rounds or (5 if args.quick else 31)
    ops = 20  # operations of 1,000 points per run
    calls = 5_000  # one-step operations per run
    yields = 5_000  # deferred yields per run

    io = MemoryIO()
    f = io.open_file("bench", OpenFlags.CREATE)
    f.pwrite(0, bytes(range(256)) * 16, Completion.new_write())
    yio = MemoryYieldIO()
    yf = yio.open_file("bench", OpenFlags.CREATE)
    yf.pwrite(0, bytes(4096), Completion.new_write())
    yio.step()

    with LoopRunners() as runners:
        # -- 1. drive vs block on MemoryIO ----------------------------------------------------
        def block_points() -> float:
            def work() -> None:
                for _ in range(ops):
                    block(Points(f, POINTS), io)

            return timed(work, ops * POINTS)

        def drive_points(loop: str) -> float:
            async def work() -> None:
                for _ in range(ops):
                    await drive(Points(f, POINTS), io)

            return runners.run(loop, atimed(work, ops * POINTS))

        def block_calls() -> float:
            def work() -> None:
                for i in range(calls):
                    block(ReadRange(f, i % 4000, 64), io)

            return timed(work, calls)

        def drive_calls(loop: str) -> float:
            async def work() -> None:
                for i in range(calls):
                    await drive(ReadRange(f, i % 4000, 64), io)

            return runners.run(loop, atimed(work, calls))

        contenders = [Contender("block", block_points)]
        contenders += [
            Contender(f"drive/{loop}", lambda loop=loop: drive_points(loop))
            for loop in runners.names
        ]
        contenders += [Contender("block 1-step", block_calls)]
        contenders += [
            Contender(f"drive/{loop} 1-step", lambda loop=loop: drive_calls(loop))
            for loop in runners.names
        ]
        print("drive vs block on MemoryIO", file=sys.stderr)
        res = alternate(contenders, rounds)
        base = res["block"].median
        base1 = res["block 1-step"].median
        rows = [
            ["block, 1,000-point op, per point", res["block"].median * 1e6, "1.00x"],
            *[
                [
                    f"drive on {loop}, 1,000-point op, per point",
                    res[f"drive/{loop}"].median * 1e6,
                    ratio(res[f"drive/{loop}"].median, base),
                ]
                for loop in runners.names
            ],
            ["block, ReadRange (one step), per call", base1 * 1e6, "1.00x"],
            *[
                [
                    f"drive on {loop}, ReadRange (one step), per call",
                    res[f"drive/{loop} 1-step"].median * 1e6,
                    ratio(res[f"drive/{loop} 1-step"].median, base1),
                ]
                for loop in runners.names
            ],
        ]
        print_table(
            f"drive vs block on MemoryIO (target: within 1.3x), {rounds} rounds, medians",
            ["contender", "us", "vs block"],
            rows,
        )

        # -- 2. per yield: deferred backend vs bare Future ----------------------------------
        def bare_future(loop_name: str) -> float:
            async def work() -> None:
                loop = asyncio.get_running_loop()
                create_future = loop.create_future
                call_soon = loop.call_soon
                for _ in range(yields):
                    fut = create_future()
                    call_soon(fut.set_result, None)
                    await fut

            return runners.run(loop_name, atimed(work, yields))

        def drive_deferred(loop_name: str) -> float:
            async def work() -> None:
                await drive(Deferred(asyncio.get_running_loop(), yields))

            return runners.run(loop_name, atimed(work, yields))

        def floor_deferred(loop_name: str) -> float:
            async def work() -> None:
                await floor_driver(Deferred(asyncio.get_running_loop(), yields))

            return runners.run(loop_name, atimed(work, yields))

        def drive_memory_yield(loop_name: str) -> float:
            async def work() -> None:
                await drive(YieldPoints(yf, yields), yio)

            return runners.run(loop_name, atimed(work, yields))

        contenders = []
        for loop in runners.names:
            contenders += [
                Contender(f"future/{loop}", lambda loop=loop: bare_future(loop)),
                Contender(f"drive/{loop}", lambda loop=loop: drive_deferred(loop)),
                Contender(f"floor/{loop}", lambda loop=loop: floor_deferred(loop)),
                Contender(f"yieldio/{loop}", lambda loop=loop: drive_memory_yield(loop)),
            ]
        print("per yield on a deferred backend", file=sys.stderr)
        res = alternate(contenders, rounds)
        rows = []
        for loop in runners.names:
            base = res[f"future/{loop}"].median
            rows += [
                [f"bare Future + call_soon, {loop}", base * 1e6, "1.00x"],
                [
                    f"drive, completion finished by call_soon, {loop}",
                    res[f"drive/{loop}"].median * 1e6,
                    ratio(res[f"drive/{loop}"].median, base),
                ],
                [
                    f"floor: leanest loop over the same completions, {loop}",
                    res[f"floor/{loop}"].median * 1e6,
                    ratio(res[f"floor/{loop}"].median, base),
                ],
                [
                    f"drive over MemoryYieldIO (stepped), {loop}",
                    res[f"yieldio/{loop}"].median * 1e6,
                    ratio(res[f"yieldio/{loop}"].median, base),
                ],
            ]
        print_table(
            f"per yield vs a bare Future (target: within 1.3x), {rounds} rounds, medians",
            ["contender", "us per yield", "vs bare Future"],
            rows,
        )


if __name__ == "__main__":
    main()
