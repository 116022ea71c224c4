"""Writes: this engine against sqlite3 in WAL mode with `PRAGMA synchronous=FULL`, and
`bridge.drive` on asyncio against aiosqlite, side by side in one run.

    python benchmarks/bench_writes.py            # 100,000-row bulk inserts, 7 rounds
    python benchmarks/bench_writes.py --quick    # 20,000 rows, fewer commits, 5 rounds
    python benchmarks/bench_writes.py --profile  # also profile a bulk insert and commits

Every database has the same table, `t(id INTEGER PRIMARY KEY, name TEXT, n INT, x REAL,
b BLOB)`, and lives in its own file on the disk the temporary directory is on (`--dir` to
choose another: a tmpfs would make every sync free). sqlite3 uses its defaults apart from
`journal_mode=WAL` and `synchronous=FULL`.

What is measured (each contender's figure is the median over rounds; contenders alternate,
A B C, B C A, ...; ratios are to the first row of each table, in the same run):
- bulk insert: one transaction (begin, the inserts, a durable commit) into an empty table,
  without an index and with an index on `n` (random values); us per row. sqlite3 runs
  `executemany` and, to show what a per-row call costs it, `execute` in a loop; this
  engine runs `block(tx.insert(...))` per row over `UnixIO`.
- single-row transactions, each committed durably (begin, one insert, commit); us per
  commit. These databases live for the whole run, so their logs fill up, checkpoint and
  start again, as they would in service. The same without any sync (sqlite3
  `synchronous=OFF`, `commit(durable=False)`) shows the cost apart from the disk.
- updates (`n` and `x` of a row) and deletes by rowid, in random rowid order, in one
  transaction on a copy of the same table of rows, built once by sqlite3; us per row.
- asyncio, one task: single-row durable transactions, `await drive(...)` of begin,
  insert and `commit()` over `AsyncFileIO` (each engine the machine runs: the io_uring
  ring and the thread pool), and `async with AsyncDatabase.transaction()`, against
  aiosqlite (`execute` then `await commit()`); us per commit.
- asyncio, group commit: 64 tasks, each committing single-row transactions; commits per
  second. This engine: `async with adb.transaction() as tx: await tx.insert(...)`, which
  commits with `commit(durable=False)` under its lock and returns once a sync covering
  the commit finished (`Database.sync_log()`: one sync at a time, shared by every commit
  written while the one before ran); the table says how many commits each sync covered.
  For reference, the same tasks through `drive` with every commit durable (an
  `asyncio.Lock` around begin..commit). aiosqlite: one connection, each task's
  transaction its own (an `asyncio.Lock` around insert + `await commit()`); for
  reference also without the lock, where the tasks' inserts share whatever transaction
  is open and one `commit()` commits them all.

Timing keeps the garbage collector on (it is part of what inserting 100,000 rows costs in
Python); it is collected before each timed run. After the races every file this engine
wrote is checked with sqlite3's `PRAGMA integrity_check` and its row count.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io as iolib
import os
import pstats
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import aiosqlite
from _common import Contender, Result, alternate, print_table

from bridge import AsyncFileIO, drive
from bridge.storage import AsyncDatabase
from core import block
from core.io import UnixIO
from core.storage import Database

SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INT, x REAL, b BLOB)"
INDEX = "CREATE INDEX t_n ON t(n)"
INSERT = "INSERT INTO t(name, n, x, b) VALUES (?, ?, ?, ?)"
UPDATE = "UPDATE t SET n = ?, x = ? WHERE id = ?"
DELETE = "DELETE FROM t WHERE id = ?"
TASKS = 64

Row = tuple[str, int, float, bytes]


def make_rows(count: int, seed: int) -> list[Row]:
    rng = random.Random(seed)
    return [
        (f"user-{i:08d}", rng.randrange(1 << 30), rng.random() * 1000, rng.randbytes(16))
        for i in range(count)
    ]


def as_dicts(rows: list[Row]) -> list[dict[str, object]]:
    return [{"name": r[0], "n": r[1], "x": r[2], "b": r[3]} for r in rows]


class Files:
    """Fresh database paths in one directory; `remove` deletes a database and its log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def fresh(self, tag: str) -> Path:
        self._count += 1
        return self.root / f"{tag}-{self._count}.db"

    @staticmethod
    def remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    return con


def ours_open(io: UnixIO, path: Path) -> Database:
    return block(Database.open(io, path, writable=True), io)


def ours_create(io: UnixIO, path: Path, index: bool) -> Database:
    db = ours_open(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl(SCHEMA), io)
    if index:
        block(tx.execute_ddl(INDEX), io)
    block(tx.commit(), io)
    return db


def sqlite_create(path: Path, index: bool) -> sqlite3.Connection:
    con = sqlite_connect(path)
    con.execute(SCHEMA)
    if index:
        con.execute(INDEX)
    return con


def clock(fn: Callable[[], object], units: int) -> float:
    """Seconds per unit of one run of `fn` (garbage collected before, left on during)."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / units


# -- synchronous races ---------------------------------------------------------------


class Checked:
    """Databases this engine wrote, with the rows each must hold, for the final check."""

    def __init__(self) -> None:
        self.expected: dict[Path, int] = {}

    def keep(self, path: Path, rows: int) -> None:
        self.expected[path] = rows

    def verify(self) -> None:
        for path, rows in self.expected.items():
            with closing(sqlite3.connect(path)) as con:
                (check,) = con.execute("PRAGMA integrity_check").fetchone()
                (count,) = con.execute("SELECT count(*) FROM t").fetchone()
            if check != "ok" or count != rows:
                raise SystemExit(f"{path}: integrity_check {check!r}, {count} rows, want {rows}")
        print(f"\nAll {len(self.expected)} databases this engine wrote pass integrity_check.")


def bulk_contenders(
    files: Files, rows: list[Row], index: bool, checked: Checked
) -> list[Contender]:
    io = UnixIO()
    dicts = as_dicts(rows)
    n = len(rows)
    last: dict[str, Path] = {}

    def sqlite_run(many: bool) -> Callable[[], float]:
        def run() -> float:
            path = files.fresh("bulk-sqlite")
            con = sqlite_create(path, index)

            def work() -> None:
                con.execute("BEGIN")
                if many:
                    con.executemany(INSERT, rows)
                else:
                    execute = con.execute
                    for row in rows:
                        execute(INSERT, row)
                con.execute("COMMIT")

            seconds = clock(work, n)
            con.close()
            files.remove(path)
            return seconds

        return run

    def ours() -> float:
        path = files.fresh("bulk-ours")
        db = ours_create(io, path, index)

        def work() -> None:
            tx = block(db.begin(), io)
            insert = tx.insert
            for values in dicts:
                block(insert("t", values), io)
            block(tx.commit(), io)

        seconds = clock(work, n)
        db.close()
        previous = last.get("ours")
        if previous is not None:  # keep only the last one, for the final check
            files.remove(previous)
            checked.expected.pop(previous, None)
        last["ours"] = path
        checked.keep(path, n)
        return seconds

    return [
        Contender("sqlite3 executemany", sqlite_run(True)),
        Contender("sqlite3 execute per row", sqlite_run(False)),
        Contender("block(tx.insert) per row", ours),
    ]


def commit_contenders(
    files: Files, rows: list[Row], commits: int, checked: Checked, *, durable: bool = True
) -> list[Contender]:
    """Single-row transactions; with `durable=False` neither side syncs (sqlite3
    `synchronous=OFF`, this engine `commit(durable=False)`): what a transaction costs
    apart from the disk."""
    io = UnixIO()
    dicts = as_dicts(rows)
    tag = "durable" if durable else "nosync"
    sqlite_path = files.fresh(f"commits-{tag}-sqlite")
    con = sqlite_create(sqlite_path, False)
    if not durable:
        con.execute("PRAGMA synchronous=OFF")
    ours_path = files.fresh(f"commits-{tag}-ours")
    db = ours_create(io, ours_path, False)
    done = [0]

    def sqlite_run() -> float:
        def work() -> None:
            execute = con.execute
            for row in rows[:commits]:
                execute("BEGIN")
                execute(INSERT, row)
                execute("COMMIT")

        return clock(work, commits)

    def ours() -> float:
        def work() -> None:
            for values in dicts[:commits]:
                tx = block(db.begin(), io)
                block(tx.insert("t", values), io)
                block(tx.commit(durable=durable), io)

        seconds = clock(work, commits)
        done[0] += commits
        checked.keep(ours_path, done[0])
        return seconds

    if durable:
        return [
            Contender("sqlite3 BEGIN; INSERT; COMMIT", sqlite_run),
            Contender("block: begin, insert, commit", ours),
        ]
    return [
        Contender("sqlite3 synchronous=OFF", sqlite_run),
        Contender("block: begin, insert, commit(durable=False)", ours),
    ]


def build_template(path: Path, count: int) -> None:
    """The table of `count` rows that updates and deletes start from (no log beside it)."""
    con = sqlite_create(path, False)
    con.execute("BEGIN")
    con.executemany(INSERT, make_rows(count, 3))
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def change_contenders(
    files: Files, template: Path, rowids: list[int], delete: bool, table_rows: int, checked: Checked
) -> list[Contender]:
    io = UnixIO()
    rng = random.Random(4)
    new_values = [(rng.randrange(1 << 30), rng.random()) for _ in rowids]
    n = len(rowids)
    kept: dict[str, Path] = {}

    def copy(tag: str) -> Path:
        path = files.fresh(tag)
        shutil.copyfile(template, path)
        return path

    def sqlite_run() -> float:
        path = copy("change-sqlite")
        con = sqlite_connect(path)
        params: list[tuple[Any, ...]]
        if delete:
            params = [(r,) for r in rowids]
        else:
            params = [(v[0], v[1], r) for r, v in zip(rowids, new_values, strict=True)]

        def work() -> None:
            con.execute("BEGIN")
            con.executemany(DELETE if delete else UPDATE, params)
            con.execute("COMMIT")

        seconds = clock(work, n)
        con.close()
        files.remove(path)
        return seconds

    def ours() -> float:
        path = copy("change-ours")
        db = ours_open(io, path)

        def work() -> None:
            tx = block(db.begin(), io)
            if delete:
                remove = tx.delete
                for r in rowids:
                    block(remove("t", r), io)
            else:
                update = tx.update
                for r, (v, x) in zip(rowids, new_values, strict=True):
                    block(update("t", r, {"n": v, "x": x}), io)
            block(tx.commit(), io)

        seconds = clock(work, n)
        db.close()
        previous = kept.get("ours")
        if previous is not None:  # keep only the last one, for the final check
            files.remove(previous)
            checked.expected.pop(previous, None)
        kept["ours"] = path
        checked.keep(path, table_rows - (n if delete else 0))
        return seconds

    verb = "DELETE" if delete else "UPDATE"
    method = "delete" if delete else "update"
    return [
        Contender(f"sqlite3 executemany {verb} by rowid", sqlite_run),
        Contender(f"block(tx.{method}) per row", ours),
    ]


def table(title: str, results: dict[str, Result], unit: str) -> None:
    names = list(results)
    base = results[names[0]].median
    rows = [
        (name, results[name].median * 1e6, f"{results[name].median / base:.2f}x") for name in names
    ]
    print_table(title, ["contender", unit, f"vs {names[0]}"], rows)


# -- asyncio races -------------------------------------------------------------------

AsyncRun = Callable[[], Coroutine[Any, Any, float]]


class AsyncSide:
    """Databases kept open on one asyncio runner for the async races."""

    def __init__(self, runner: asyncio.Runner, files: Files, checked: Checked) -> None:
        self.runner = runner
        self.files = files
        self.checked = checked
        self.aios: dict[str, AsyncFileIO] = {}
        """One `AsyncFileIO` per engine this machine runs ("uring" where the kernel allows
        it, and "threads")."""
        self.closers: list[Callable[[], Coroutine[Any, Any, None]]] = []

    async def setup(self) -> None:
        default = AsyncFileIO()
        self.aios[default.engine] = default
        if default.engine != "threads":
            self.aios["threads"] = AsyncFileIO(engine="threads")

    async def ours_db(self, tag: str, aio: AsyncFileIO) -> tuple[AsyncDatabase, Path]:
        path = self.files.fresh(tag)
        adb = await AsyncDatabase.open(aio, path, writable=True)
        async with adb.transaction() as tx:
            await tx.execute_ddl(SCHEMA)

        async def close() -> None:
            adb.close()

        self.closers.append(close)
        return adb, path

    async def aiosqlite_db(self, tag: str) -> aiosqlite.Connection:
        path = self.files.fresh(tag)
        conn = await aiosqlite.connect(path)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute(SCHEMA)
        await conn.commit()
        self.closers.append(conn.close)
        return conn

    def contender(self, name: str, make: AsyncRun) -> Contender:
        return Contender(name, lambda: self.runner.run(make()))

    async def teardown(self) -> None:
        for close in self.closers:
            await close()
        for aio in self.aios.values():
            await aio.aclose()


async def aclock(fn: Callable[[], Coroutine[Any, Any, object]], units: int) -> float:
    gc.collect()
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) / units


class Ours:
    """One of this engine's async contenders: its database, opened on first use, and the
    rows it must hold."""

    def __init__(self, side: AsyncSide, tag: str, engine: str) -> None:
        self.side = side
        self.tag = tag
        self.aio = side.aios[engine]
        self.adb: AsyncDatabase | None = None
        self.path: Path | None = None
        self.rows = 0
        self.syncs = 0

    async def open(self) -> AsyncDatabase:
        if self.adb is None:
            self.adb, self.path = await self.side.ours_db(self.tag, self.aio)
        return self.adb

    def wrote(self, rows: int) -> None:
        assert self.path is not None
        self.rows += rows
        self.side.checked.keep(self.path, self.rows)


def async_single_contenders(side: AsyncSide, rows: list[Row], commits: int) -> list[Contender]:
    dicts = as_dicts(rows)[:commits]
    params = rows[:commits]
    state: dict[str, Any] = {}

    async def aiosqlite_run() -> float:
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = await side.aiosqlite_db("async-aiosqlite")

        async def work() -> None:
            for row in params:
                await conn.execute(INSERT, row)
                await conn.commit()

        return await aclock(work, commits)

    def drive_run(engine: str) -> AsyncRun:
        ours = Ours(side, f"async-drive-{engine}", engine)
        aio = ours.aio

        async def run() -> float:
            db = (await ours.open()).db

            async def work() -> None:
                for values in dicts:
                    tx = await drive(db.begin(), aio)
                    await drive(tx.insert("t", values), aio)
                    await drive(tx.commit(), aio)

            seconds = await aclock(work, commits)
            ours.wrote(commits)
            return seconds

        return run

    def transaction_run(engine: str) -> AsyncRun:
        ours = Ours(side, f"async-transaction-{engine}", engine)

        async def run() -> float:
            adb = await ours.open()

            async def work() -> None:
                for values in dicts:
                    async with adb.transaction() as tx:
                        await tx.insert("t", values)

            seconds = await aclock(work, commits)
            ours.wrote(commits)
            return seconds

        return run

    return [
        side.contender("aiosqlite execute + commit", aiosqlite_run),
        *(
            side.contender(
                f"drive over AsyncFileIO {engine}: begin, insert, commit", drive_run(engine)
            )
            for engine in side.aios
        ),
        side.contender(
            "AsyncDatabase.transaction() over AsyncFileIO threads", transaction_run("threads")
        ),
    ]


def group_contenders(
    side: AsyncSide, rows: list[Row], per_task: int, syncs: dict[str, float]
) -> list[Contender]:
    """64 tasks; `syncs` receives each of this engine's contenders' commits per sync."""
    total = TASKS * per_task
    dicts = as_dicts(rows)[:total]
    params = rows[:total]
    state: dict[str, Any] = {}

    async def in_tasks(one: Callable[[int], Coroutine[Any, Any, None]]) -> None:
        async def worker(k: int) -> None:
            for i in range(k, total, TASKS):
                await one(i)

        await asyncio.gather(*(worker(k) for k in range(TASKS)))

    def aiosqlite_run(locked: bool) -> AsyncRun:
        key = f"aiosqlite-{locked}"

        async def run() -> float:
            conn = state.get(key)
            if conn is None:
                conn = state[key] = await side.aiosqlite_db(f"group-aiosqlite-{int(locked)}")
            lock = asyncio.Lock()

            async def one(i: int) -> None:
                if locked:
                    async with lock:
                        await conn.execute(INSERT, params[i])
                        await conn.commit()
                else:
                    await conn.execute(INSERT, params[i])
                    await conn.commit()

            return await aclock(lambda: in_tasks(one), total)

        return run

    def transaction_run(name: str, engine: str) -> AsyncRun:
        ours = Ours(side, f"group-transaction-{engine}", engine)

        async def run() -> float:
            adb = await ours.open()
            before = adb.db.log_syncs

            async def one(i: int) -> None:
                # Returns once a sync covering this commit finished (group commit).
                async with adb.transaction() as tx:
                    await tx.insert("t", dicts[i])

            seconds = await aclock(lambda: in_tasks(one), total)
            ours.wrote(total)
            syncs[name] = total / max(1, adb.db.log_syncs - before)
            return seconds

        return run

    def durable_run(name: str, engine: str) -> AsyncRun:
        ours = Ours(side, f"group-durable-{engine}", engine)
        aio = ours.aio

        async def run() -> float:
            db = (await ours.open()).db
            lock = asyncio.Lock()  # one write transaction at a time; begin() does not wait

            async def one(i: int) -> None:
                async with lock:
                    tx = await drive(db.begin(), aio)
                    await drive(tx.insert("t", dicts[i]), aio)
                    await drive(tx.commit(), aio)

            seconds = await aclock(lambda: in_tasks(one), total)
            ours.wrote(total)
            syncs[name] = 1.0
            return seconds

        return run

    contenders = [
        side.contender("aiosqlite, one connection, a lock per transaction", aiosqlite_run(True)),
        side.contender("aiosqlite, one connection, no lock (shared txns)", aiosqlite_run(False)),
    ]
    for engine in side.aios:
        name = f"AsyncDatabase.transaction() over AsyncFileIO {engine}"
        contenders.append(side.contender(name, transaction_run(name, engine)))
    name = "drive over AsyncFileIO threads, every commit durable, a lock"
    contenders.append(side.contender(name, durable_run(name, "threads")))
    return contenders


def throughput_table(title: str, results: dict[str, Result], syncs: dict[str, float]) -> None:
    names = list(results)
    base = results[names[0]].median
    rows = [
        (
            name,
            results[name].median * 1e6,
            f"{1 / results[name].median:.0f}",
            f"{base / results[name].median:.2f}x",
            f"{syncs[name]:.1f}" if name in syncs else "",
        )
        for name in names
    ]
    print_table(
        title,
        ["contender", "us per commit", "commits/s", f"vs {names[0]}", "commits per sync"],
        rows,
    )


# -- profiles --------------------------------------------------------------------------


def python_calls(fn: Callable[[], object]) -> int:
    """How many Python-level function calls `fn()` makes (C calls not counted)."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(tracer)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count - 1  # the tracer sees fn's own call


def show_profile(title: str, fn: Callable[[], object], units: int, unit: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    calls = stats.total_calls  # type: ignore[attr-defined]
    print(f"\n### Profile: {title}\n")
    print(
        f"{calls / units:.0f} function calls per {unit} (cProfile, C functions included); "
        f"{total / units * 1e6:.1f} us per {unit} under the profiler\n"
    )
    entries = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )
    print("| function | calls per " + unit + " | own time | share | with callees |")
    print("|---|---:|---:|---:|---:|")
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in entries[:15]:
        where = f"{Path(filename).name}:{line} {name}" if line else name
        print(
            f"| `{where}` | {ncalls / units:.1f} | {tottime / units * 1e6:.2f} us | "
            f"{tottime / total:.0%} | {cumtime / total:.0%} |"
        )
    out = iolib.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print("\n<details><summary>cumulative</summary>\n\n```")
    print(out.getvalue().strip())
    print("```\n</details>")


def profile_bulk(files: Files, dicts: list[dict[str, object]], index: bool) -> None:
    io = UnixIO()
    path = files.fresh("profile-bulk")
    db = ours_create(io, path, index)
    tx = block(db.begin(), io)

    def inserts(part: list[dict[str, object]]) -> None:
        for values in part:
            block(tx.insert("t", values), io)

    half = len(dicts) // 2
    show_profile(
        f"bulk insert of {half} rows {'with' if index else 'without'} an index on n",
        lambda: inserts(dicts[:half]),
        half,
        "row",
    )
    calls = python_calls(lambda: inserts(dicts[half : half + 1000]))
    print(f"\nPython function calls per insert (sys.setprofile): {calls / 1000:.0f}")
    block(tx.commit(), io)
    db.close()
    files.remove(path)


def profile_commits(files: Files, dicts: list[dict[str, object]], commits: int) -> None:
    io = UnixIO()
    path = files.fresh("profile-commits")
    db = ours_create(io, path, False)

    def single(part: list[dict[str, object]]) -> None:
        for values in part:
            tx = block(db.begin(), io)
            block(tx.insert("t", values), io)
            block(tx.commit(), io)

    # A table of the size the race's grows to, then a round of commits to warm up.
    prefill = 8 * commits
    tx = block(db.begin(), io)
    for values in dicts[:prefill]:
        block(tx.insert("t", values), io)
    block(tx.commit(), io)
    single(dicts[prefill : prefill + commits])
    show_profile(
        f"{commits} single-row durable commits",
        lambda: single(dicts[prefill : prefill + commits]),
        commits,
        "commit",
    )
    calls = python_calls(lambda: single(dicts[prefill : prefill + 50]))
    print(f"\nPython function calls per single-row commit (sys.setprofile): {calls / 50:.0f}")
    db.close()
    files.remove(path)


def profiles(files: Files, rows: list[Row], commits: int) -> None:
    dicts = as_dicts(rows)
    profile_bulk(files, dicts, False)
    profile_bulk(files, dicts, True)
    profile_commits(files, dicts, commits)


# -- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 rows, fewer commits")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None, help="rows per bulk insert")
    parser.add_argument("--commits", type=int, default=None, help="commits per round")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    parser.add_argument("--profile", action="store_true", help="profile ours, then exit")
    parser.add_argument(
        "--only",
        default="",
        help="comma list: bulk,index,commits,nosync,update,delete,async,group",
    )
    args = parser.parse_args()
    rows_n = args.rows or (20_000 if args.quick else 100_000)
    commits = args.commits or (100 if args.quick else 300)
    rounds = args.rounds or (5 if args.quick else 7)
    changes = rows_n // 10
    per_task = 5 if args.quick else 20
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    root = Path(tempfile.mkdtemp(prefix="ioresult-bench-writes-", dir=args.dir))
    files = Files(root)
    checked = Checked()
    print(
        f"{rows_n} rows per bulk insert, {commits} commits per round, {changes} updates or "
        f"deletes per round, {rounds} rounds; files in {root}; Python "
        f"{sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    rows = make_rows(max(rows_n, commits * (rounds + 1), TASKS * per_task * 3), 1)
    try:
        if args.profile:
            profiles(files, rows[:rows_n], commits)
            return
        for index in (False, True):
            if wanted("index" if index else "bulk"):
                results = alternate(bulk_contenders(files, rows[:rows_n], index, checked), rounds)
                table(
                    f"Bulk insert of {rows_n} rows in one transaction, "
                    f"{'with an index on n' if index else 'no index'} (median of {rounds})",
                    results,
                    "us per row",
                )
        if wanted("commits"):
            results = alternate(commit_contenders(files, rows, commits, checked), rounds)
            table(
                f"Single-row transactions, each committed durably, {commits} per round "
                f"(median of {rounds})",
                results,
                "us per commit",
            )
        if wanted("nosync"):
            results = alternate(
                commit_contenders(files, rows, commits, checked, durable=False), rounds
            )
            table(
                f"Single-row transactions, no sync on either side, {commits} per round "
                f"(median of {rounds})",
                results,
                "us per commit",
            )
        if wanted("update") or wanted("delete"):
            template = files.fresh("template")
            build_template(template, rows_n)
            rng = random.Random(5)
            rowids = rng.sample(range(1, rows_n + 1), changes)
            for delete in (False, True):
                if not wanted("delete" if delete else "update"):
                    continue
                results = alternate(
                    change_contenders(files, template, rowids, delete, rows_n, checked), rounds
                )
                table(
                    f"{'Deletes' if delete else 'Updates'} by rowid, {changes} in one "
                    f"transaction on a table of {rows_n} rows (median of {rounds})",
                    results,
                    "us per row",
                )
        if wanted("async") or wanted("group"):
            with asyncio.Runner() as runner:
                side = AsyncSide(runner, files, checked)
                runner.run(side.setup())
                try:
                    if wanted("async"):
                        results = alternate(async_single_contenders(side, rows, commits), rounds)
                        table(
                            f"asyncio, one task: single-row durable transactions, {commits} "
                            f"per round (median of {rounds})",
                            results,
                            "us per commit",
                        )
                    if wanted("group"):
                        syncs: dict[str, float] = {}
                        results = alternate(group_contenders(side, rows, per_task, syncs), rounds)
                        throughput_table(
                            f"asyncio, {TASKS} tasks: single-row transactions, "
                            f"{TASKS * per_task} per round (median of {rounds})",
                            results,
                            syncs,
                        )
                finally:
                    runner.run(side.teardown())
        checked.verify()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
