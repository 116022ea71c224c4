"""Point lookups (by rowid, by an indexed text) and a full scan: this reader against
sqlite3, side by side in one run.

    python benchmarks/bench_storage.py            # 1,000,000 rows
    python benchmarks/bench_storage.py --quick    # 50,000 rows, fewer rounds
    python benchmarks/bench_storage.py --profile  # also profile a full scan

Contenders run alternately (A B C ... A B C ...) for several rounds; each figure is the
median over rounds of the mean time per lookup, and ratios are to sqlite3 in the same run.
Caches are hot: every page the lookups touch is read once before timing.

The async comparison (`bridge.drive` over `AsyncFileIO` against aiosqlite) runs when the
`bridge` package provides `drive` and `AsyncFileIO`; otherwise only the synchronous part
runs and a line says so.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io as iolib
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import block
from core.io import UnixIO
from core.storage import Database

try:  # the async half needs the bridge (and aiosqlite, a dev extra)
    import aiosqlite

    from bridge import AsyncFileIO, drive  # type: ignore[attr-defined]

    HAVE_BRIDGE = True
except ImportError:
    HAVE_BRIDGE = False


def build(path: Path, rows: int) -> None:
    """The benchmark table: integer key, short text, a real; an index on the text."""
    if path.exists():
        con = sqlite3.connect(path)
        try:
            (count,) = con.execute("SELECT count(*) FROM t").fetchone()
            if count == rows:
                return
        except sqlite3.Error:
            pass
        finally:
            con.close()
        path.unlink()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    rng = random.Random(1)
    batch = 100_000
    for start in range(0, rows, batch):
        con.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [
                (i + 1, f"user-{(i * 2654435761) % (rows * 7):09d}", rng.random() * 1000)
                for i in range(start, min(rows, start + batch))
            ],
        )
    con.execute("CREATE INDEX t_name ON t(name)")
    con.commit()
    con.close()


def per_op(fn: Callable[[], None], n: int) -> float:
    """Seconds per operation for `fn`, which performs `n` operations."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n


def race(contenders: dict[str, Callable[[], None]], n: int, rounds: int) -> dict[str, float]:
    """Run the contenders alternately; median seconds per operation of each."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(per_op(fn, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, results: dict[str, float], baseline: str) -> None:
    print(f"\n{title}")
    print(f"| contender | us per op | vs {baseline} |")
    print("| --- | ---: | ---: |")
    base = results[baseline]
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1e6:.2f} | {seconds / base:.2f}x |")


def sync_lookups(path: Path, keys: list[int], names: list[str], rounds: int) -> None:
    io = UnixIO()
    pages = path.stat().st_size // 4096 + 16
    frozen = block(Database.open(io, path, immutable=True, cache_pages=pages), io)
    locked = block(Database.open(io, path, cache_pages=pages), io)
    con = sqlite3.connect(path)
    con.execute("PRAGMA cache_size=-1000000")
    ro = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    ro.execute("PRAGMA cache_size=-1000000")

    def sqlite_rowid(c: sqlite3.Connection) -> Callable[[], None]:
        def run() -> None:
            execute = c.execute
            for k in keys:
                execute("SELECT rowid, * FROM t WHERE rowid = ?", (k,)).fetchone()

        return run

    def ours_rowid(db: Database) -> Callable[[], None]:
        def run() -> None:
            get = db.get
            for k in keys:
                block(get("t", k), io)

        return run

    def cached_rowid(db: Database) -> Callable[[], None]:
        # The lookup alone, answered from cached pages: no operation object, no driver.
        def run() -> None:
            lookup = db._row_from_cache
            for k in keys:
                lookup("t", k)

        return run

    def sqlite_name(c: sqlite3.Connection) -> Callable[[], None]:
        def run() -> None:
            execute = c.execute
            for name in names:
                execute("SELECT rowid, * FROM t WHERE name = ?", (name,)).fetchall()

        return run

    def ours_name(db: Database) -> Callable[[], None]:
        def run() -> None:
            scan = db.index_scan
            for name in names:
                block(scan("t_name", equal=(name,)), io)

        return run

    # Same answers, and every page the lookups need is now cached.
    for k in keys:
        want = con.execute("SELECT rowid, * FROM t WHERE rowid = ?", (k,)).fetchone()
        assert block(frozen.get("t", k), io) == want == block(locked.get("t", k), io)
    for name in names:
        want_all = con.execute("SELECT rowid, * FROM t WHERE name = ?", (name,)).fetchall()
        assert block(frozen.index_scan("t_name", equal=(name,)), io) == want_all
        assert block(locked.index_scan("t_name", equal=(name,)), io) == want_all
    contenders = {
        "sqlite3": sqlite_rowid(con),
        "sqlite3 immutable=1": sqlite_rowid(ro),
        "block(db.get) immutable": ours_rowid(frozen),
        "block(db.get) locked": ours_rowid(locked),
        "lookup from cached pages, no operation": cached_rowid(frozen),
    }
    report(
        f"Point lookup by rowid, hot cache, {len(keys)} keys per round, median of {rounds}",
        race(contenders, len(keys), rounds),
        "sqlite3",
    )
    contenders = {
        "sqlite3": sqlite_name(con),
        "sqlite3 immutable=1": sqlite_name(ro),
        "block(db.index_scan) immutable": ours_name(frozen),
        "block(db.index_scan) locked": ours_name(locked),
    }
    report(
        f"Point lookup by indexed text, hot cache, {len(names)} keys per round, median of {rounds}",
        race(contenders, len(names), rounds),
        "sqlite3",
    )
    frozen.close()
    locked.close()
    con.close()
    ro.close()


def full_scan(path: Path, rows: int, rounds: int, profile: bool) -> None:
    io = UnixIO()
    pages = path.stat().st_size // 4096 + 16
    db = block(Database.open(io, path, immutable=True, cache_pages=pages), io)
    con = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    con.execute("PRAGMA cache_size=-1000000")
    assert len(block(db.scan("t"), io)) == rows  # warm the cache

    def ours() -> None:
        block(db.scan("t"), io)

    def theirs() -> None:
        con.execute("SELECT rowid, * FROM t").fetchall()

    report(
        f"Full scan of {rows} rows into a list, hot cache, median of {rounds} (per row)",
        race({"sqlite3 fetchall": theirs, "block(db.scan)": ours}, rows, rounds),
        "sqlite3 fetchall",
    )
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        block(db.scan("t"), io)
        profiler.disable()
        out = iolib.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print("\nWhere a full scan spends its time (cProfile, sorted by own time):")
        print(out.getvalue())
    db.close()
    con.close()


def async_lookups(path: Path, keys: list[int], rounds: int) -> None:
    """`await drive(db.get(...))` over `AsyncFileIO` against aiosqlite, on asyncio."""

    async def main() -> None:
        aio = AsyncFileIO()
        pages = path.stat().st_size // 4096 + 16
        db = await drive(Database.open(aio, path, immutable=True, cache_pages=pages), aio)
        async with aiosqlite.connect(path) as conn:
            for k in keys:
                await drive(db.get("t", k), aio)
                await (
                    await conn.execute("SELECT rowid, * FROM t WHERE rowid = ?", (k,))
                ).fetchone()
            samples: dict[str, list[float]] = {"aiosqlite": [], "drive(db.get)": []}
            for _ in range(rounds):
                start = time.perf_counter()
                for k in keys:
                    cursor = await conn.execute("SELECT rowid, * FROM t WHERE rowid = ?", (k,))
                    await cursor.fetchone()
                samples["aiosqlite"].append((time.perf_counter() - start) / len(keys))
                start = time.perf_counter()
                for k in keys:
                    await drive(db.get("t", k), aio)
                samples["drive(db.get)"].append((time.perf_counter() - start) / len(keys))
        db.close()
        aio.close()
        results = {name: statistics.median(v) for name, v in samples.items()}
        report(
            f"asyncio: point lookup by rowid, hot cache, median of {rounds}", results, "aiosqlite"
        )

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 rows, fewer rounds")
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--db", type=Path, default=None, help="where to keep the database")
    parser.add_argument("--profile", action="store_true", help="profile a full scan")
    args = parser.parse_args()
    if args.quick:
        args.rows = min(args.rows, 50_000)
        args.lookups = min(args.lookups, 5_000)
        args.rounds = min(args.rounds, 5)
    path = args.db or Path(tempfile.gettempdir()) / f"ioresult-bench-{args.rows}.db"
    started = time.perf_counter()
    build(path, args.rows)
    print(
        f"database: {path} ({args.rows} rows, {path.stat().st_size / 1e6:.1f} MB, built or "
        f"checked in {time.perf_counter() - started:.1f} s); Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    rng = random.Random(2)
    keys = [rng.randrange(1, args.rows + 1) for _ in range(args.lookups)]
    con = sqlite3.connect(path)
    names = [
        con.execute("SELECT name FROM t WHERE rowid = ?", (k,)).fetchone()[0]
        for k in keys[: max(1, args.lookups // 2)]
    ]
    con.close()
    sync_lookups(path, keys, names, args.rounds)
    full_scan(path, args.rows, max(3, args.rounds // 2), args.profile)
    if HAVE_BRIDGE:
        async_lookups(path, keys, args.rounds)
    else:
        print("\n(bridge.drive / AsyncFileIO not available: async comparison skipped)")


if __name__ == "__main__":
    main()
