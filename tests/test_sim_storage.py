"""core.storage under the simulator: databases written by sqlite3 are loaded into a
`SimulatorIO`, and every storage operation (open, read_schema, get, scan, index_scan,
count) must

- give the same answer under every schedule `explore` tries as inline (and sqlite3's);
- under injected read faults (EIO, short reads, refused submissions) with latency, either
  give exactly sqlite3's answer or raise a clean error that matches the fault, and leave
  nothing poisoned: with the faults turned off, the same `Database` answers right, and no
  page in its cache differs from the file;
- give sqlite3's answer for each of several reads interleaved on one `Database`
  (`FiberRunner`), with the cache checked after every turn.

What a fault may surface as: an EIO (read error or refused submission) is a
`CompletionError` of kind `IO`; a short read is a `CorruptDatabaseError` ("file is
truncated", raised by the pager, which never caches the page) or, when the short read hit
the 100-byte header an operation re-reads, the header's own `CorruptDatabaseError`. Either
kind is accepted only if that fault was injected during the operation.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from core import CompletionError, ErrorKind, block
from core.driver import Operation
from core.errors import IOResultError
from core.sim import Chain, FaultConfig, FiberRunner, SimulatorIO, explore, run_op
from core.sim.scenarios import SCENARIOS, Case, Scenario
from core.sim.soak import run_soak
from core.storage import Bound, CorruptDatabaseError, Database

PAGE_SIZES = (512, 4096)


# -- the databases and what sqlite3 says about them -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Query:
    """One storage operation on an open database, and sqlite3's answer to it."""

    name: str
    build: Callable[[Database], Operation[Any]]
    expected: Any
    convert: Callable[[Any], Any] = lambda v: v


@dataclasses.dataclass(frozen=True)
class Sample:
    page_size: int
    data: bytes
    queries: dict[str, Query]


def _schema_names(schema: Any) -> tuple[list[str], list[str]]:
    return sorted(t.name for t in schema.tables), sorted(i.name for i in schema.indexes)


@functools.cache
def sample(page_size: int) -> Sample:
    """A database of `page_size` with a rowid table and an index on it, a table of rows
    that overflow, and a WITHOUT ROWID table; and sqlite3's answers to the queries."""
    con = sqlite3.connect(":memory:")
    con.execute(f"PRAGMA page_size={page_size}")
    con.executescript(
        """
        CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, tag BLOB);
        CREATE INDEX t_name ON t(name, score);
        CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB, note TEXT);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER, w TEXT) WITHOUT ROWID;
        """
    )
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [
            (i, f"name-{i % 37:03d}", i * 1.5 if i % 5 else None, bytes([i % 251]) * (i % 9))
            for i in range(1, 401)
        ],
    )
    con.executemany(
        "INSERT INTO big VALUES (?, ?, ?)",
        [
            (i, bytes((i * 7 + j) % 256 for j in range(i * page_size // 3)), "n" * i)
            for i in range(1, 13)
        ],
    )
    con.executemany(
        "INSERT INTO kv VALUES (?, ?, ?)",
        [(f"k{i:04d}", i * i, "w" * (i % 50)) for i in range(300)],
    )
    con.commit()
    data = con.serialize()

    def rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return con.execute(sql, params).fetchall()

    def one(sql: str, *params: Any) -> Any:
        found = rows(sql, *params)
        return found[0] if found else None

    tables = sorted(r[0] for r in rows("SELECT name FROM sqlite_master WHERE type='table'"))
    indexes = sorted(r[0] for r in rows("SELECT name FROM sqlite_master WHERE type='index'"))
    queries = [
        Query("read_schema", lambda db: db.read_schema(), (tables, indexes), _schema_names),
        Query("get t 1", lambda db: db.get("t", 1), one("SELECT rowid, * FROM t WHERE rowid=1")),
        Query(
            "get t 377", lambda db: db.get("t", 377), one("SELECT rowid, * FROM t WHERE rowid=377")
        ),
        Query("get t missing", lambda db: db.get("t", 9999), None),
        Query(
            "get big 11 (overflow)",
            lambda db: db.get("big", 11),
            one("SELECT rowid, * FROM big WHERE rowid=11"),
        ),
        Query(
            "get kv (without rowid)",
            lambda db: db.get("kv", "k0123"),
            one("SELECT * FROM kv WHERE k='k0123'"),
        ),
        Query(
            "scan t page",
            lambda db: db.scan("t", after=150, limit=60),
            rows("SELECT rowid, * FROM t WHERE rowid > 150 ORDER BY rowid LIMIT 60"),
        ),
        Query(
            "scan big", lambda db: db.scan("big"), rows("SELECT rowid, * FROM big ORDER BY rowid")
        ),
        Query(
            "scan kv page",
            lambda db: db.scan("kv", after=("k0100",), limit=40),
            rows("SELECT * FROM kv WHERE k > 'k0100' ORDER BY k LIMIT 40"),
        ),
        Query(
            "index_scan equal",
            lambda db: db.index_scan("t_name", equal=["name-007"]),
            rows(
                "SELECT rowid, * FROM t INDEXED BY t_name WHERE name = 'name-007' "
                "ORDER BY name, score, rowid"
            ),
        ),
        Query(
            "index_scan range",
            lambda db: db.index_scan(
                "t_name", lower=Bound("name-010"), upper=Bound("name-013", False), limit=50
            ),
            rows(
                "SELECT rowid, * FROM t INDEXED BY t_name WHERE name >= 'name-010' "
                "AND name < 'name-013' ORDER BY name, score, rowid LIMIT 50"
            ),
        ),
        Query("count t", lambda db: db.count("t"), one("SELECT count(*) FROM t")[0]),
        Query("count big", lambda db: db.count("big"), one("SELECT count(*) FROM big")[0]),
        Query("count kv", lambda db: db.count("kv"), one("SELECT count(*) FROM kv")[0]),
    ]
    con.close()
    return Sample(page_size, data, {q.name: q for q in queries})


QUERY_NAMES = sorted(sample(512).queries)


def test_the_samples_have_overflow_pages_and_many_pages() -> None:
    for page_size in PAGE_SIZES:
        s = sample(page_size)
        assert len(s.data) // page_size > 20
        assert len(s.queries["get big 11 (overflow)"].expected[2]) > 3 * page_size
        assert len(s.queries["index_scan equal"].expected) == 11
        assert len(s.queries["index_scan range"].expected) == 33
    io = SimulatorIO(seed=0, inline=1.0)
    io.create_file("db", sample(512).data)
    db = block(Database.open(io, "db", immutable=True), io)
    assert db.page_count == len(sample(512).data) // 512


def _setup_open(s: Sample, holder: dict[str, Database], immutable: bool, warm: str | None):
    def setup(io: SimulatorIO) -> None:
        io.create_file("db", s.data)
        holder["db"] = db = block(Database.open(io, "db", immutable=immutable), io)
        if warm is not None:  # some pages cached, others not
            block(s.queries[warm].build(db), io)

    return setup


# -- explore --------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("query", QUERY_NAMES)
def test_each_query_passes_explore_on_an_open_database(page_size: int, query: str) -> None:
    s = sample(page_size)
    q = s.queries[query]
    holder: dict[str, Database] = {}
    immutable = page_size == 512  # one of each; the open-and-query test covers both
    report = explore(
        lambda io: q.build(holder["db"]),
        setup=_setup_open(s, holder, immutable, "get t 1"),
        seeds=3,
        max_points=24,
    )
    assert report.outcome.error is None, report.outcome.describe()
    assert q.convert(report.outcome.value) == q.expected
    assert report.io_points > 0 or query in ("read_schema", "get t 1", "get t missing")


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("immutable", [True, False])
@pytest.mark.parametrize(
    "query", ["read_schema", "get big 11 (overflow)", "scan kv page", "index_scan range"]
)
def test_open_then_query_passes_explore(page_size: int, immutable: bool, query: str) -> None:
    s = sample(page_size)
    q = s.queries[query]

    def make_op(io: SimulatorIO) -> Operation[list[Any]]:
        return Chain(
            [
                lambda _: Database.open(io, "db", immutable=immutable, readahead=4),
                lambda values: q.build(values[0]),
                lambda values: values[0].count("t"),
            ],
            wrap=io.with_yields,
        )

    report = explore(
        make_op,
        setup=lambda io: io.create_file("db", s.data),
        seeds=3,
        max_points=24,
        equal=lambda a, b: a[1:] == b[1:],
    )
    assert report.outcome.error is None, report.outcome.describe()
    assert report.outcome.value is not None
    assert q.convert(report.outcome.value[1]) == q.expected
    assert report.outcome.value[2] == 400
    assert report.io_points >= 2 and report.yield_points >= 3


# -- faults ---------------------------------------------------------------------------------

FAULTS = FaultConfig(read_error=0.04, short_read=0.04, submit_error=0.02)


def _check_clean(error: BaseException, before: dict[str, int], io: SimulatorIO, what: str) -> str:
    """The kind of a clean error, or fail: it must be an `IOResultError` that matches a
    fault injected since `before`."""
    assert isinstance(error, IOResultError), f"{what}: unclean {error!r}"
    stats = io.stats
    eio = stats.read_errors + stats.submit_errors - before["eio"]
    short = stats.short_reads - before["short"]
    if isinstance(error, CompletionError):
        assert error.kind is ErrorKind.IO and error.errno == 5, f"{what}: {error!r}"
        assert eio > 0, f"{what}: EIO with no EIO injected: {error!r}"
        return "eio"
    assert isinstance(error, CorruptDatabaseError), f"{what}: {error!r}"
    assert short > 0, f"{what}: corrupt with no short read injected: {error!r}"
    return "short"


def _counts(io: SimulatorIO) -> dict[str, int]:
    return {"eio": io.stats.read_errors + io.stats.submit_errors, "short": io.stats.short_reads}


def _check_cache(db: Database, data: bytes) -> None:
    """Every cached page is the file's page, byte for byte (a short read never got in)."""
    size = db.pager.layout.page_size
    for number, page in db.pager.cache.pages.items():
        assert page.data == data[(number - 1) * size : number * size], f"page {number} cached wrong"


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("immutable", [True, False])
def test_a_fault_gives_a_clean_error_and_poisons_nothing(page_size: int, immutable: bool) -> None:
    s = sample(page_size)
    names = QUERY_NAMES
    tally = {"ok": 0, "eio": 0, "short": 0, "open failed": 0}
    for seed in range(150):
        io = SimulatorIO(seed, FAULTS, inline=0.3, max_latency_us=300)
        io.create_file("db", s.data)
        before = _counts(io)
        opened = run_op(Database.open(io, "db", immutable=immutable, readahead=4), io)
        if opened.error is not None:
            tally["open failed"] += 1
            _check_clean(opened.error, before, io, f"seed {seed} open")
            io.run_until_idle()
            io.faults = FaultConfig()
            db = block(Database.open(io, "db", immutable=immutable, readahead=4), io)
            io.faults = FAULTS
        else:
            db = opened.value
        assert db is not None
        for k in range(3):
            q = s.queries[names[(seed * 3 + k) % len(names)]]
            before = _counts(io)
            outcome = run_op(q.build(db), io)
            if outcome.error is None:
                assert q.convert(outcome.value) == q.expected, f"seed {seed} {q.name}"
                tally["ok"] += 1
            else:
                tally[_check_clean(outcome.error, before, io, f"seed {seed} {q.name}")] += 1
            _check_cache(db, s.data)
            assert db._readers == 0  # a failed read released its share of the lock
        # Faults off, same simulator, same Database, reads of the failed query maybe still
        # in flight: the same queries answer right at the first try.
        io.faults = FaultConfig()
        for k in range(3):
            q = s.queries[names[(seed * 3 + k) % len(names)]]
            again = run_op(q.build(db), io)
            assert again.error is None, f"seed {seed} {q.name} after faults: {again.describe()}"
            assert q.convert(again.value) == q.expected
        io.run_until_idle()
        every = block(db.scan("t"), io)  # every page of t read again, none poisoned
        assert len(every) == 400 and every[150:210] == s.queries["scan t page"].expected
        assert block(db.count("kv"), io) == 300
        _check_cache(db, s.data)
        db.close()
        io.close()
    assert tally["ok"] > 50 and tally["eio"] > 5 and tally["short"] > 5, tally


def test_a_short_page_read_is_not_cached_and_the_next_read_succeeds() -> None:
    s = sample(512)
    io = SimulatorIO(seed=0, inline=1.0)
    io.create_file("db", s.data)
    db = block(Database.open(io, "db", immutable=True, readahead=0), io)
    io.faults = FaultConfig(short_read=1.0)
    with pytest.raises(CorruptDatabaseError, match="truncated"):
        block(db.get("big", 11), io)
    assert io.stats.short_reads >= 1
    _check_cache(db, s.data)
    io.faults = FaultConfig()
    assert block(db.get("big", 11), io) == s.queries["get big 11 (overflow)"].expected


# -- concurrent fibers ----------------------------------------------------------------------


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("immutable", [True, False])
def test_interleaved_reads_on_one_database_give_sqlite_answers(
    page_size: int, immutable: bool
) -> None:
    s = sample(page_size)
    for seed in range(12):
        io = SimulatorIO(seed, inline=0.2, max_latency_us=200)
        io.create_file("db", s.data)
        db = block(Database.open(io, "db", immutable=immutable, readahead=3, cache_pages=64), io)
        picked = [QUERY_NAMES[(seed + 5 * k) % len(QUERY_NAMES)] for k in range(6)]

        def cache_is_right(db: Database = db) -> str | None:
            _check_cache(db, s.data)
            return None

        runner = FiberRunner(io, seed=seed, invariants=[cache_is_right])
        for name in picked:
            runner.spawn(io.with_yields(s.queries[name].build(db)), name)
        for fiber in runner.run():
            q = s.queries[fiber.name]
            assert fiber.error is None, f"seed {seed} {fiber.name}: {fiber.error!r}"
            assert q.convert(fiber.value) == q.expected, f"seed {seed} {fiber.name}"
        assert db._readers == 0  # every read transaction ended
        assert io.pending() == 0
        db.close()
        io.close()


# -- the soak's storage scenario --------------------------------------------------------------


def test_the_soak_runs_storage_cases_cleanly_and_their_oracle_can_fail() -> None:
    storage = [s for s in SCENARIOS if s.name == "Database"]
    assert len(storage) == 1
    report = run_soak(range(100), scenarios=storage)
    assert report.violations == [], report.format()
    assert report.operations["Database"] > 150 and report.ok > 70
    assert report.clean_errors["CorruptDatabaseError"] > 0  # short reads of a page
    assert report.clean_errors["IO"] > 0

    def wrong(rng: random.Random, files: Mapping[str, bytes]) -> Case:
        case = storage[0].build(rng, files)
        return dataclasses.replace(case, expected=("not", "this"))

    planted = run_soak(range(20), scenarios=[Scenario("Database", wrong)])
    assert any("expected ('not', 'this')" in v for v in planted.violations)
