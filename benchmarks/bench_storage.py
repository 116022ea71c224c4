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
import functools
import io as iolib
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

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
            lookup = db.row_from_cache
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


ROWID_SQL = "SELECT rowid, * FROM t WHERE rowid = ?"
NAME_SQL = "SELECT rowid, * FROM t WHERE name = ?"
AsyncRun = Callable[[], Coroutine[Any, Any, None]]


async def _in_tasks(work: list[Any], tasks: int, one: Callable[[Any], Awaitable[object]]) -> None:
    """Run `one(item)` for every item, `tasks` at a time (each task takes a slice)."""

    async def worker(part: list[Any]) -> None:
        for item in part:
            await one(item)

    await asyncio.gather(*(worker(work[i::tasks]) for i in range(tasks)))


async def _race_async(contenders: dict[str, AsyncRun], n: int, rounds: int) -> dict[str, float]:
    """The async twin of `race`: contenders alternated every round, medians per operation."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            await run()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(values) for name, values in samples.items()}


def async_lookups(path: Path, keys: list[int], names: list[str], rounds: int, loop: str) -> None:
    """`await drive(...)` over `AsyncFileIO` against aiosqlite: one shared connection
    (`execute_fetchall`, and a cursor with `fetchone`) and a pool of four connections; point
    lookups by rowid and by the indexed text with 1 and 64 tasks, and a full scan."""

    async def run_all() -> None:
        aio = AsyncFileIO()
        pages = path.stat().st_size // 4096 + 16
        db = await drive(Database.open(aio, path, immutable=True, cache_pages=pages), aio)
        conn = await aiosqlite.connect(path)
        pool = [await aiosqlite.connect(path) for _ in range(4)]
        for c in [conn, *pool]:
            await c.execute("PRAGMA cache_size=-1000000")
        # Same answers, and warm caches on every side.
        for k in keys:
            want = list(await conn.execute_fetchall(ROWID_SQL, (k,)))
            assert [await drive(db.get("t", k), aio)] == want
        for name in names:
            want = list(await conn.execute_fetchall(NAME_SQL, (name,)))
            assert await drive(db.index_scan("t_name", equal=(name,)), aio) == want
        for c in pool:
            for k in keys:
                await c.execute_fetchall(ROWID_SQL, (k,))

        def plan(sql: str, ours: Callable[[Any], Any]) -> dict[str, Callable[[Any], Any]]:
            async def fetchall(item: Any) -> None:
                await conn.execute_fetchall(sql, (item,))

            async def fetchone(item: Any) -> None:
                cursor = await conn.execute(sql, (item,))
                await cursor.fetchone()
                await cursor.close()

            turn = iter(range(1 << 62))

            async def pooled(item: Any) -> None:
                await pool[next(turn) % len(pool)].execute_fetchall(sql, (item,))

            async def drive_ours(item: Any) -> None:
                await drive(ours(item), aio)

            return {
                "aiosqlite execute_fetchall": fetchall,
                "aiosqlite cursor + fetchone": fetchone,
                "aiosqlite pool of 4": pooled,
                "drive over AsyncFileIO": drive_ours,
            }

        lookups: list[tuple[str, str, list[Any], Callable[[Any], Any]]] = [
            ("point lookup by rowid", ROWID_SQL, list(keys), lambda k: db.get("t", k)),
            (
                "point lookup by indexed text",
                NAME_SQL,
                list(names),
                lambda n: db.index_scan("t_name", equal=(n,)),
            ),
        ]
        for title, sql, work, ours in lookups:
            for tasks in (1, 64):
                contenders: dict[str, AsyncRun] = {
                    name: functools.partial(_in_tasks, work, tasks, one)
                    for name, one in plan(sql, ours).items()
                }
                report(
                    f"{loop}: {title}, hot cache, {tasks} task(s), {len(work)} per round, "
                    f"median of {rounds}",
                    await _race_async(contenders, len(work), rounds),
                    "aiosqlite execute_fetchall",
                )

        rows = await drive(db.count("t"), aio)

        async def scan_theirs() -> None:
            assert len(await conn.execute_fetchall("SELECT rowid, * FROM t")) == rows

        async def scan_ours() -> None:
            after = None
            seen = 0
            while True:  # keyset pages of 10,000 rows, each one drive
                page = await drive(db.scan("t", after=after, limit=10_000), aio)
                if not page:
                    break
                seen += len(page)
                after = page[-1][0]
            assert seen == rows

        scan_rounds = max(3, rounds // 2)
        report(
            f"{loop}: full scan of {rows} rows, hot cache, median of {scan_rounds} (per row)",
            await _race_async(
                {"aiosqlite execute_fetchall": scan_theirs, "drive(db.scan), pages": scan_ours},
                rows,
                scan_rounds,
            ),
            "aiosqlite execute_fetchall",
        )
        for c in [conn, *pool]:
            await c.close()
        db.close()
        await aio.aclose()

    if loop == "uvloop":
        import uvloop

        uvloop.run(run_all())
    else:
        asyncio.run(run_all())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 rows, fewer rounds")
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--async-lookups", type=int, default=5_000, help="keys per round in the async half"
    )
    parser.add_argument("--db", type=Path, default=None, help="where to keep the database")
    parser.add_argument("--profile", action="store_true", help="profile a full scan")
    args = parser.parse_args()
    if args.quick:
        args.rows = min(args.rows, 50_000)
        args.lookups = min(args.lookups, 5_000)
        args.rounds = min(args.rounds, 5)
        args.async_lookups = min(args.async_lookups, 1_000)
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
        for loop in ("asyncio", "uvloop"):
            async_lookups(
                path, keys[: args.async_lookups], names[: args.async_lookups], args.rounds, loop
            )
    else:
        print("\n(bridge.drive / AsyncFileIO not available: async comparison skipped)")


if __name__ == "__main__":
    main()
