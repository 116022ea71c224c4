"""Shared timing helpers for the benchmark scripts.

Rules every script follows (absolute times drift on shared machines, ratios measured side
by side do not):
- contenders run alternated, A B C, B C A, C A B, ..., for a number of rounds (the order
  rotates so that none always runs first or after the same neighbour);
- each contender's figure is the median over its rounds;
- results are printed as one table, with ratios to a named baseline, in one run.

A contender is a zero-argument function that runs its workload once and returns the
seconds per unit it measured itself (so an async contender can start and stop its own
loop outside the timed part). `LoopRunners` keeps one long-lived runner per event loop so
async contenders do not pay loop creation in every round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "Contender",
    "LoopRunners",
    "Result",
    "alternate",
    "atimed",
    "format_table",
    "last_cpu_per_unit",
    "loop_factories",
    "make_file",
    "median",
    "parse_args",
    "percentile",
    "print_table",
    "ratio",
    "record_cpu",
    "timed",
    "warm",
]


@dataclass
class Contender:
    """A named workload: `run()` returns seconds per unit."""

    name: str
    run: Callable[[], float]


@dataclass
class Result:
    """All rounds of one contender."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.samples)


def median(values: Sequence[float]) -> float:
    """The median; raises `ValueError` on an empty sequence."""
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0..100), nearest-rank."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# The calling thread's CPU seconds per unit in the last `timed` or `atimed` measurement.
_last_cpu = [0.0]


def last_cpu_per_unit() -> float:
    """The CPU time per unit that the thread which ran the last `timed` or `atimed`
    measurement (or `record_cpu`) spent inside it (user and system: `time.thread_time`).
    With an event loop, that is the loop thread's, the workers' not included."""
    return _last_cpu[0]


def make_file(directory: str, size: int) -> str:
    """A file of `size` bytes (a whole number of MiB) of one random MiB repeated, written
    and synced; its path."""
    path = os.path.join(directory, f"bench-{size >> 20}MiB.bin")
    chunk = random.Random(0).randbytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return path


def warm(path: str) -> None:
    """Read the whole file, so that it is in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def record_cpu(seconds_per_unit: float) -> None:
    """Set what `last_cpu_per_unit` returns, for a measurement timed by hand."""
    _last_cpu[0] = seconds_per_unit


def timed(fn: Callable[[], object], units: int) -> float:
    """Run `fn()` once with the garbage collector paused; return seconds per unit (and keep
    this thread's CPU time per unit for `last_cpu_per_unit`)."""
    gc.collect()
    gc.disable()
    try:
        cpu = time.thread_time()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        _last_cpu[0] = (time.thread_time() - cpu) / units
    finally:
        gc.enable()
    return elapsed / units


def alternate(
    contenders: Sequence[Contender],
    rounds: int,
    *,
    warmup: int = 1,
    before_each: Callable[[], object] | None = None,
    progress: bool = True,
) -> dict[str, Result]:
    """Run the contenders alternated, A B C, B C A, ..., for `rounds` rounds (after `warmup`
    unmeasured rounds); `before_each()` runs before every single run (e.g. to evict the page
    cache).
    Returns each contender's samples by name."""
    results = {c.name: Result(c.name) for c in contenders}
    for round_no in range(warmup + rounds):
        # Rotate who goes first, so that no contender always runs first (after a cache
        # eviction, say). The cyclic order stays: a contender that leaves work running
        # behind it must let it settle before it returns.
        shift = round_no % len(contenders)
        for contender in [*contenders[shift:], *contenders[:shift]]:
            if before_each is not None:
                before_each()
            sample = contender.run()
            if round_no >= warmup:
                results[contender.name].samples.append(sample)
        if progress:
            state = "warm-up" if round_no < warmup else f"round {round_no - warmup + 1}/{rounds}"
            print(f"  .. {state} done", file=sys.stderr, flush=True)
    return results


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; floats are printed with 3 significant digits (2 decimals for
    ratios ending in 'x')."""
    rendered = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rendered:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rendered:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a titled Markdown table to stdout."""
    print(f"\n### {title}\n")
    print(format_table(headers, rows))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def ratio(value: float, baseline: float) -> str:
    """`value / baseline` as e.g. '1.23x'."""
    return f"{value / baseline:.2f}x"


def loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops the benchmarks compare: asyncio, and uvloop when installed."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


class LoopRunners:
    """One `asyncio.Runner` per loop name, kept open across rounds; close with `close()`."""

    def __init__(self) -> None:
        self._runners = {
            name: asyncio.Runner(loop_factory=factory) for name, factory in loop_factories().items()
        }

    @property
    def names(self) -> list[str]:
        return list(self._runners)

    def run(self, name: str, coro: Awaitable[T]) -> T:
        """Run `coro` to completion on loop `name`."""
        return self._runners[name].run(coro)  # type: ignore[arg-type]

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()

    def __enter__(self) -> LoopRunners:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def atimed(fn: Callable[[], Awaitable[object]], units: int) -> float:
    """The async twin of `timed`: await `fn()` once, GC paused; seconds per unit (and this
    thread's CPU time per unit for `last_cpu_per_unit`)."""
    gc.collect()
    gc.disable()
    try:
        cpu = time.thread_time()
        start = time.perf_counter()
        await fn()
        elapsed = time.perf_counter() - start
        _last_cpu[0] = (time.thread_time() - cpu) / units
    finally:
        gc.enable()
    return elapsed / units


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The common command line: `--quick` for a short run, `--rounds N` to override."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (fewer rounds/ops)")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds")
    return parser.parse_args(argv)
