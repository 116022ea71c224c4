"""Scenarios: the operations core ships, each with random parameters and an oracle.

Theory of operation:
- A `Scenario` builds a `Case` from a random generator and the current contents of the
  files (`name -> bytes`). The case can build the operation on any simulator and says,
  independently of the simulator, what a correct run returns (`expected`, or that it must
  fail: `expect_error`), which files it may change and what they hold after a success
  (`after`), and which of them a success has made durable (`synced`).
- The soak (`core.sim.soak`) and the explorer tests run every registered scenario. To
  cover a new operation, write a builder and `register()` it (or pass it to the soak);
  nothing else needs to change.
- Oracles compute from plain bytes only, never from the simulator, so a simulator bug
  cannot hide an operation bug (or the other way round). The storage read scenarios'
  oracle is sqlite3 itself, on the very bytes loaded into the simulator; the write
  scenario's is a model of its tables (`core.sim.workload`).
- A case whose files the oracle cannot give byte for byte (a database: its WAL's salts
  come from the clock) gives `verify` instead: a check, run after the operation and
  after a crash, that reads the files back and says what is wrong with them.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from core.driver import Operation
from core.io.backend import OpenFlags
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers
from core.result import IO, Done
from core.sim.backend import SimulatorIO
from core.sim.chain import Chain
from core.sim.errors import SimConfigError
from core.sim.outcome import run_op
from core.sim.workload import Progress, ReadState, RunWorkload, make_workload
from core.storage import Bound, Database
from core.storage.schema import Schema

__all__ = ["DB_FILE", "SCENARIOS", "Case", "Scenario", "register"]


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """One operation with its oracle (see the module docstring)."""

    scenario: str
    params: str
    make_op: Callable[[SimulatorIO], Operation[Any]]
    expected: object = None
    expect_error: bool = False
    after: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    synced: frozenset[str] = frozenset()
    prefix_on_short_read: bool = False
    """True where a short read (`FaultConfig.short_read`) legitimately shortens the result
    to a prefix of `expected` (an operation that takes a short count for end of file)."""
    verify: Callable[[SimulatorIO, bool], str | None] | None = None
    """A check of files the case writes beyond `after` (a database), called by the soak
    once the operation ended, with faults off, and `crashed` True after a crash (the
    simulator rebooted): None if they hold what they may, else what is wrong."""
    exact_files: bool = True
    """False where the bytes written depend on when each I/O completed (a new WAL's salts
    come from the clock), so that `explore` compares outcomes, not files."""

    def __str__(self) -> str:
        return f"{self.scenario}({self.params})"


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A named builder: `build(rng, files) -> Case`."""

    name: str
    build: Callable[[random.Random, Mapping[str, bytes]], Case]


SCENARIOS: list[Scenario] = []
"""Every registered scenario; the soak picks among them."""


def register(scenario: Scenario) -> Scenario:
    """Add `scenario` to `SCENARIOS` and return it.

    Raises `SimConfigError` if a scenario of that name is already registered.
    """
    if any(s.name == scenario.name for s in SCENARIOS):
        raise SimConfigError(f"a scenario named {scenario.name!r} is already registered")
    SCENARIOS.append(scenario)
    return scenario


def apply_write(data: bytes, offset: int, payload: bytes) -> bytes:
    """`data` after writing `payload` at `offset` (zero-filling a gap), as a disk does."""
    if not payload:
        return data
    image = bytearray(data)
    end = offset + len(payload)
    if end > len(image):
        image.extend(bytes(end - len(image)))
    image[offset:end] = payload
    return bytes(image)


def _read_range(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path = rng.choice(sorted(files))
    data = files[path]
    offset = rng.randint(0, len(data) + 64)
    length = rng.randint(0, 2048)
    exact = rng.random() < 0.5
    expected = data[offset : offset + length]

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return ReadRange(io.open_file(path, OpenFlags.READ_ONLY), offset, length, exact=exact)

    return Case(
        "ReadRange",
        f"{path!r}, offset={offset}, length={length}, exact={exact}",
        make_op,
        expected=expected,
        expect_error=exact and len(expected) < length,
        prefix_on_short_read=not exact,
    )


def _read_whole(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path = rng.choice(sorted(files))
    chunk = rng.choice([64, 500, 1024, 4096, 65536])

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return ReadWholeFile(io.open_file(path, OpenFlags.READ_ONLY), chunk_size=chunk)

    return Case("ReadWholeFile", f"{path!r}, chunk_size={chunk}", make_op, expected=files[path])


def _write_buffers(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path = rng.choice(sorted(files))
    data = files[path]
    offset = rng.randint(0, len(data) + 256)
    buffers = [rng.randbytes(rng.randint(0, 1500)) for _ in range(rng.randint(1, 4))]
    sync = rng.random() < 0.7
    payload = b"".join(buffers)

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return WriteBuffers(io.open_file(path), offset, buffers, sync=sync)

    return Case(
        "WriteBuffers",
        f"{path!r}, offset={offset}, {len(buffers)} buffers of {len(payload)} bytes, sync={sync}",
        make_op,
        expected=len(payload),
        after={path: apply_write(data, offset, payload)},
        synced=frozenset({path}) if sync else frozenset(),
    )


def _copy_file(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    src, dst = rng.sample(sorted(files), 2)
    chunk = rng.choice([256, 700, 1024, 4096])
    batch = rng.randint(1, 3)

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return CopyFile(
            io.open_file(src, OpenFlags.READ_ONLY), io.open_file(dst), chunk_size=chunk, batch=batch
        )

    return Case(
        "CopyFile",
        f"{src!r} -> {dst!r}, chunk_size={chunk}, batch={batch}",
        make_op,
        expected=len(files[src]),
        after={dst: files[src]},
        synced=frozenset({dst}),
    )


register(Scenario("ReadRange", _read_range))
register(Scenario("ReadWholeFile", _read_whole))
register(Scenario("WriteBuffers", _write_buffers))
register(Scenario("CopyFile", _copy_file))


# -- storage ------------------------------------------------------------------------------
# Each storage case loads a database written by sqlite3 into the simulator (`DB_FILE`, no
# I/O), opens it (immutable or not) and runs one query; the oracle is sqlite3's answer on
# the same bytes. Reads never change a file, so `after` is empty.

DB_FILE = "db"
"""The simulated file the storage scenarios put their database in (not one of the soak's
own files, which they therefore must leave unchanged)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Sample:
    data: bytes
    con: sqlite3.Connection


@functools.cache
def _sample(page_size: int) -> _Sample:
    """A database with a rowid table and its index, rows that overflow, and a WITHOUT
    ROWID table, written by sqlite3; kept with an open connection for the oracle."""
    con = sqlite3.connect(":memory:")
    con.execute(f"PRAGMA page_size={page_size}")
    con.executescript(
        """
        CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, tag BLOB);
        CREATE INDEX t_name ON t(name, score);
        CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
        """
    )
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, f"name-{i % 23:02d}", i / 4 if i % 3 else None, bytes(i % 7)) for i in range(1, 301)],
    )
    con.executemany(
        "INSERT INTO big VALUES (?, ?)",
        [(i, bytes((i + j) % 256 for j in range(i * page_size // 2))) for i in range(1, 9)],
    )
    con.executemany("INSERT INTO kv VALUES (?, ?)", [(f"k{i:03d}", i * 3) for i in range(200)])
    con.commit()
    return _Sample(con.serialize(), con)


class _Finish:
    """The last link of a storage case: close the database, return the query's value."""

    __slots__ = ("convert", "values")

    def __init__(self, values: list[Any], convert: Callable[[Any], object]) -> None:
        self.values = values
        self.convert = convert

    def step(self) -> Done[object]:
        db = self.values[0]
        assert isinstance(db, Database)
        db.close()
        return Done(self.convert(self.values[1]))


class _LastOf:
    """A chain whose value is that of its last link."""

    __slots__ = ("chain",)

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def step(self) -> Done[object] | IO:
        result = self.chain.step()
        if type(result) is Done:
            return Done(result.value[-1])
        return result

    def abort(self, error: BaseException) -> None:
        self.chain.abort(error)


def _schema_names(schema: Any) -> object:
    assert isinstance(schema, Schema)
    return (sorted(t.name for t in schema.tables), sorted(i.name for i in schema.indexes))


def _same(value: Any) -> object:
    return value


def _storage(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    what = rng.choice(("read_schema", "get", "scan", "index_scan", "count"))
    page_size = rng.choice((512, 4096))
    immutable = rng.random() < 0.5
    readahead = rng.choice((0, 2, 16))
    sample = _sample(page_size)
    con = sample.con
    convert: Callable[[Any], object] = _same
    query: Callable[[Database], Operation[Any]]
    if what == "read_schema":
        names = con.execute("SELECT type, name FROM sqlite_master").fetchall()
        expected: object = (
            sorted(n for t, n in names if t == "table"),
            sorted(n for t, n in names if t == "index"),
        )
        params = ""
        convert = _schema_names
        query = Database.read_schema
    elif what == "get":
        table = rng.choice(("t", "big", "kv"))
        if table == "kv":
            key: object = f"k{rng.randint(0, 220):03d}"
            expected = con.execute("SELECT * FROM kv WHERE k = ?", (key,)).fetchone()
        else:
            key = rng.randint(0, 320)
            sql = f"SELECT rowid, * FROM {table} WHERE rowid = ?"
            expected = con.execute(sql, (key,)).fetchone()
        params = f"{table!r}, {key!r}"
        query = functools.partial(Database.get, table=table, key=key)
    elif what == "scan":
        table = rng.choice(("t", "big", "kv"))
        limit = rng.choice((None, 1, 25, 120))
        sql_limit = -1 if limit is None else limit
        if table == "kv":
            after: object = (f"k{rng.randint(0, 210):03d}",) if rng.random() < 0.7 else None
            expected = con.execute(
                "SELECT * FROM kv WHERE k > ? ORDER BY k LIMIT ?",
                ("" if after is None else after[0], sql_limit),  # type: ignore[index]
            ).fetchall()
        else:
            after = rng.randint(0, 310) if rng.random() < 0.7 else None
            expected = con.execute(
                f"SELECT rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (-1 if after is None else after, sql_limit),
            ).fetchall()
        params = f"{table!r}, after={after!r}, limit={limit}"
        query = functools.partial(Database.scan, table=table, after=after, limit=limit)
    elif what == "index_scan":
        name = f"name-{rng.randint(0, 25):02d}"
        order = "ORDER BY name, score, rowid"
        if rng.random() < 0.5:
            expected = con.execute(
                f"SELECT rowid, * FROM t INDEXED BY t_name WHERE name = ? {order}", (name,)
            ).fetchall()
            params = f"equal={name!r}"
            query = functools.partial(Database.index_scan, index="t_name", equal=[name])
        else:
            high = f"name-{rng.randint(0, 25):02d}"
            expected = con.execute(
                f"SELECT rowid, * FROM t INDEXED BY t_name WHERE name >= ? AND name < ? {order}",
                (name, high),
            ).fetchall()
            params = f"{name!r} <= name < {high!r}"
            query = functools.partial(
                Database.index_scan,
                index="t_name",
                lower=Bound(name),
                upper=Bound(high, inclusive=False),
            )
    else:
        table = rng.choice(("t", "big", "kv"))
        expected = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        params = repr(table)
        query = functools.partial(Database.count, table=table)

    def make_op(io: SimulatorIO) -> Operation[Any]:
        io.create_file(DB_FILE, sample.data)
        return _LastOf(
            Chain(
                [
                    lambda _: Database.open(io, DB_FILE, immutable=immutable, readahead=readahead),
                    lambda values: query(values[0]),
                    lambda values: _Finish(values, convert),
                ]
            )
        )

    return Case(
        "Database",
        f"{what}: page_size={page_size}, immutable={immutable}, readahead={readahead}, {params}",
        make_op,
        expected=expected,
    )


register(Scenario("Database", _storage))  # one of five operations: the others keep their share


# -- writing --------------------------------------------------------------------------------
# A write case runs a random workload of write transactions (`core.sim.workload`) on a new
# database in `DB_FILE`; its oracle is the workload's model. What the database holds
# afterwards is checked by reading it back (`verify`): after a crash, the state after one of
# the commits from the last promised durable up to the last started; otherwise the last
# commit's (or, if a commit failed, maybe the one it was making).


@functools.cache
def _first_page(page_size: int) -> bytes:
    """The file of a new, empty database this engine made (its first `begin`)."""
    scratch = SimulatorIO(0, inline=1.0)
    db = _block(Database.open(scratch, DB_FILE, writable=True, page_size=page_size), scratch)
    _block(db.begin(), scratch).rollback()
    db.close()
    return scratch.file_contents(DB_FILE)


def _block(op: Operation[Any], io: SimulatorIO) -> Any:
    outcome = run_op(op, io)
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _write_transactions(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    page_size = rng.choice((512, 1024, 4096))
    workload = make_workload(
        rng,
        transactions=rng.randint(1, 4),
        statements=5,
        page_size=page_size,
        cache_pages=rng.choice((2048, 8)),
        group_commit=rng.random() < 0.4,
        auto_checkpoint=rng.choice((1000, 6)),
        verify=0.3,
        final_checkpoint=rng.random() < 0.5,
        path=DB_FILE,
    )
    runs: list[Progress] = []

    def make_op(io: SimulatorIO) -> Operation[Any]:
        for name in (DB_FILE, DB_FILE + "-wal"):
            if name in io.files():
                io.remove_file(name)
        if io.faults.crash_sector or io.faults.torn_write:
            # A write of the first page of a new database that lands in part (torn by a
            # crash or a fault) leaves a file neither this engine nor SQLite opens (a
            # known limit of creating a database): start from one made durably.
            io.create_file(DB_FILE, _first_page(page_size))
        progress = Progress()
        runs.append(progress)
        return RunWorkload(io, workload, progress, wrap=io.with_yields)

    def verify(io: SimulatorIO, crashed: bool) -> str | None:
        opened = run_op(Database.open(io, DB_FILE), io)
        if opened.error is not None:
            return f"the database does not open again: {opened.describe()}"
        db = opened.value
        assert db is not None
        read = run_op(ReadState(db), io)
        db.close()
        if read.error is not None:
            return f"the database cannot be read back: {read.describe()}"
        assert read.value is not None
        return runs[-1].check(workload, read.value, crashed=crashed)

    commits = workload.commits
    return Case(
        "WriteTransactions",
        f"page_size={page_size}, {len(workload.actions)} actions, {commits} commits",
        make_op,
        expected=commits,
        verify=verify,
        exact_files=False,
    )


register(Scenario("WriteTransactions", _write_transactions))
