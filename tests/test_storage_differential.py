"""Differential tests: sqlite3 writes databases from generated schemas and data; the reader
must return exactly what sqlite3 returns, for every operation, on real files (`UnixIO`) and
with every I/O deferred (`MemoryYieldIO`, driven with a re-entrancy check)."""

from __future__ import annotations

import random
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core import block
from core.io import MemoryYieldIO, UnixIO
from core.storage import Bound, Database
from tests.storage_helpers import ENCODINGS, PAGE_SIZES, copy_into, drive_checked, open_db

# -- generated schemas ---------------------------------------------------------------------

_BASE_NAMES = ["a", "b", "c", "d", "e", "Name", "x y", 'q"t', "s'q", "b]k", "tick`", "ü", "Select"]
_TYPES = [
    "",
    "INTEGER",
    "INT",
    "TEXT",
    "REAL",
    "BLOB",
    "NUMERIC",
    "VARCHAR(10)",
    "DOUBLE PRECISION",
    "FLOAT",
    "BOOLEAN",
]
_COLLATIONS = [None, None, None, "NOCASE", "RTRIM", "BINARY"]


def quote(name: str, style: int) -> str:
    """`name` as an SQL identifier in one of SQLite's quoting styles."""
    if style == 1 and "]" not in name:
        return f"[{name}]"
    if style == 2:
        return "`" + name.replace("`", "``") + "`"
    if style == 3:
        return "'" + name.replace("'", "''") + "'"
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ColumnSpec:
    name: str
    type: str
    collation: str | None
    style: int
    unique: bool = False


@dataclass
class IndexSpec:
    name: str
    columns: list[tuple[int, str | None, bool]]  # (column, COLLATE, DESC)
    unique: bool


@dataclass
class TableSpec:
    name: str
    columns: list[ColumnSpec]
    without_rowid: bool
    ipk: bool
    pk: list[tuple[int, str | None, bool]]
    indexes: list[IndexSpec] = field(default_factory=list)

    def create_sql(self) -> str:
        parts = []
        for i, c in enumerate(self.columns):
            text = quote(c.name, c.style)
            if c.type:
                text += " " + c.type
            if self.ipk and i == 0:
                text += " PRIMARY KEY"
            if c.collation:
                text += f" COLLATE {c.collation}"
            if c.unique:
                text += " UNIQUE"
            parts.append(text)
        if self.pk and not self.ipk:
            cols = []
            for col, coll, desc in self.pk:
                term = quote(self.columns[col].name, 0)
                if coll:
                    term += f" COLLATE {coll}"
                if desc:
                    term += " DESC"
                cols.append(term)
            parts.append(f"PRIMARY KEY ({', '.join(cols)})")
        suffix = " WITHOUT ROWID" if self.without_rowid else ""
        return f"CREATE TABLE {quote(self.name, 0)} ({', '.join(parts)}){suffix}"

    def index_sql(self, index: IndexSpec) -> str:
        cols = []
        for col, coll, desc in index.columns:
            term = quote(self.columns[col].name, 0)
            if coll:
                term += f" COLLATE {coll}"
            if desc:
                term += " DESC"
            cols.append(term)
        unique = "UNIQUE " if index.unique else ""
        target = f"{quote(index.name, 0)} ON {quote(self.name, 0)}"
        return f"CREATE {unique}INDEX {target} ({', '.join(cols)})"


@st.composite
def table_specs(draw: st.DrawFn, number: int) -> TableSpec:
    count = draw(st.integers(1, 4))
    names = draw(
        st.lists(st.sampled_from(_BASE_NAMES), min_size=count, max_size=count, unique_by=str.lower)
    )
    columns = [
        ColumnSpec(
            n,
            draw(st.sampled_from(_TYPES)),
            draw(st.sampled_from(_COLLATIONS)),
            draw(st.integers(0, 3)),
            draw(st.integers(0, 5)) == 0,
        )
        for n in names
    ]
    without_rowid = draw(st.integers(0, 3)) == 0
    ipk = False
    pk: list[tuple[int, str | None, bool]] = []
    if without_rowid:
        width = draw(st.integers(1, min(2, count)))
        chosen = draw(st.permutations(range(count)))[:width]
        pk = [
            (c, draw(st.sampled_from([None, None, "NOCASE"])), draw(st.booleans())) for c in chosen
        ]
    elif draw(st.integers(0, 2)) == 0:
        ipk = True
        columns[0].type = "INTEGER"
        pk = [(0, None, False)]
    table = TableSpec(f"t{number}", columns, without_rowid, ipk, pk)
    for k in range(draw(st.integers(0, 2))):
        width = draw(st.integers(1, min(2, count)))
        chosen = draw(st.permutations(range(count)))[:width]
        cols = [
            (c, draw(st.sampled_from(_COLLATIONS)), draw(st.integers(0, 3)) == 0) for c in chosen
        ]
        table.indexes.append(IndexSpec(f"i{number}_{k}", cols, draw(st.integers(0, 4)) == 0))
    return table


def values(page_size: int) -> st.SearchStrategy[Any]:
    big_blob = st.builds(
        lambda n, seed: random.Random(seed).randbytes(n),
        st.integers(0, 3 * page_size),
        st.integers(0, 1 << 30),
    )
    big_text = st.builds(
        lambda n, c: c * n,
        st.integers(0, 2 * page_size),
        st.sampled_from(["a", "é", "\U0001f600", " "]),
    )
    return st.one_of(
        st.none(),
        st.integers(-(1 << 63), (1 << 63) - 1),
        st.sampled_from(
            [
                0,
                1,
                -1,
                127,
                128,
                -129,
                32767,
                -32769,
                1 << 23,
                1 << 31,
                1 << 47,
                (1 << 63) - 1,
                -(1 << 63),
            ]
        ),
        st.floats(allow_nan=False),
        st.sampled_from([-0.0, float("inf"), float("-inf"), 0.5, 1.0, 3.0]),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
        st.sampled_from(["", "a", "A", "a ", "A  ", "b", "ab\x00c", "ab\x00d", "AB", "ä"]),
        st.binary(max_size=20),
        big_blob,
        big_text,
    )


@dataclass
class DbSpec:
    page_size: int
    encoding: str
    auto_vacuum: bool
    tables: list[TableSpec]
    rows: list[list[list[Any]]]
    deletes: list[list[int]]
    added: list[tuple[str, str] | None]  # ALTER TABLE ADD COLUMN (definition, default literal)
    more_rows: list[list[list[Any]]]
    vacuum: bool


_DEFAULTS = [
    "NULL",
    "5",
    "-7",
    "1.5",
    "-2.50",
    "'txt'",
    "x'00ff'",
    "TRUE",
    "9999999999",
    "1e3",
    "-0x10",
    "ident",
]
_ADD_TYPES = ["", "INTEGER", "TEXT", "REAL", "NUMERIC", "BLOB"]


@st.composite
def db_specs(draw: st.DrawFn, max_rows: int = 60) -> DbSpec:
    page_size = draw(st.sampled_from(PAGE_SIZES[:4]) | st.sampled_from(PAGE_SIZES))
    tables = [draw(table_specs(i)) for i in range(draw(st.integers(1, 2)))]
    vals = values(page_size)
    rows = []
    deletes = []
    added: list[tuple[str, str] | None] = []
    more = []
    for t in tables:
        n = draw(st.integers(0, max_rows))
        rows.append([[draw(vals) for _ in t.columns] for _ in range(n)])
        deletes.append(draw(st.lists(st.integers(0, max(0, n - 1)), max_size=n // 2)) if n else [])
        if draw(st.booleans()):
            added.append((draw(st.sampled_from(_ADD_TYPES)), draw(st.sampled_from(_DEFAULTS))))
            width = len(t.columns) + 1
        else:
            added.append(None)
            width = len(t.columns)
        more.append([[draw(vals) for _ in range(width)] for _ in range(draw(st.integers(0, 5)))])
    return DbSpec(
        page_size=page_size,
        encoding=draw(st.sampled_from(ENCODINGS)),
        auto_vacuum=draw(st.integers(0, 4)) == 0,
        tables=tables,
        rows=rows,
        deletes=deletes,
        added=added,
        more_rows=more,
        vacuum=draw(st.booleans()),
    )


def build(spec: DbSpec, path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA page_size={spec.page_size}")
    con.execute(f"PRAGMA encoding='{spec.encoding}'")
    if spec.auto_vacuum:
        con.execute("PRAGMA auto_vacuum=FULL")
    for t, rows, deletes, added, more in zip(
        spec.tables, spec.rows, spec.deletes, spec.added, spec.more_rows, strict=True
    ):
        con.execute(t.create_sql())
        for index in t.indexes:
            con.execute(t.index_sql(index))
        table = quote(t.name, 0)
        marks = ", ".join("?" for _ in t.columns)
        con.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)
        if deletes:
            keys = [r for r in con.execute(f"SELECT {key_columns(t)} FROM {table}")]
            doomed = {keys[i] for i in deletes if i < len(keys)}
            if t.without_rowid:
                where = " AND ".join(f"{quote(t.columns[c].name, 0)} IS ?" for c, _, _ in t.pk)
            else:
                where = "rowid = ?"
            con.executemany(f"DELETE FROM {table} WHERE {where}", sorted(doomed, key=repr))
        width = len(t.columns)
        if added is not None:
            type_, default = added
            con.execute(f"ALTER TABLE {table} ADD COLUMN added {type_} DEFAULT {default}")
            width += 1
        marks = ", ".join("?" for _ in range(width))
        con.executemany(
            f"INSERT OR IGNORE INTO {table} VALUES ({marks})", [r[:width] for r in more]
        )
    con.commit()
    if spec.vacuum:
        con.execute("VACUUM")
    con.close()


def key_columns(t: TableSpec) -> str:
    if not t.without_rowid:
        return "rowid"
    return ", ".join(quote(t.columns[c].name, 0) for c, _, _ in t.pk)


def first_column(t: TableSpec, index: IndexSpec) -> str:
    return quote(t.columns[index.columns[0][0]].name, 0)


# -- comparing -----------------------------------------------------------------------------


def norm(rows: Any) -> Any:
    """Rows with every value tagged by its type, so 1 != 1.0 and 0.0 != -0.0."""
    if rows is None:
        return None
    if isinstance(rows, tuple):
        return tuple((type(v).__name__, repr(v)) for v in rows)
    return [norm(r) for r in rows]


def pk_terms(con: sqlite3.Connection, t: TableSpec) -> list[tuple[str, str, bool]]:
    """(quoted column, collation, descending) of a WITHOUT ROWID table's key, as SQLite
    made it (a PRIMARY KEY that repeats an earlier UNIQUE takes that index's order)."""
    table = quote(t.name, 0)
    (name,) = [r[1] for r in con.execute(f"PRAGMA index_list({table})") if r[3] == "pk"]
    rows = con.execute(f"PRAGMA index_xinfo({quote(name, 0)})").fetchall()
    return [(quote(r[2], 0), r[4], bool(r[3])) for r in rows if r[5]]


def select_all(con: sqlite3.Connection, t: TableSpec) -> str:
    """All rows in B-tree order (SQLite may answer an unordered query from a covering
    index, even with NOT INDEXED on a WITHOUT ROWID table, so the order is explicit)."""
    if not t.without_rowid:
        return f"SELECT rowid, * FROM {quote(t.name, 0)} ORDER BY rowid"
    order = [
        f"{col} COLLATE {coll}{' DESC' if desc else ''}" for col, coll, desc in pk_terms(con, t)
    ]
    return f"SELECT * FROM {quote(t.name, 0)} ORDER BY {', '.join(order)}"


def check_database(spec: DbSpec, path: Path, rng: random.Random) -> None:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    io = UnixIO()
    db = open_db(io, path)
    frozen = open_db(io, path, immutable=True)
    try:
        # The locked path and the immutable path (which answers hot lookups without the
        # transaction machinery) must both agree with sqlite3.
        for t in spec.tables:
            seed = rng.randrange(1 << 30)
            check_table(spec, t, con, db, io, random.Random(seed))
            check_table(spec, t, con, frozen, io, random.Random(seed))
        memory = MemoryYieldIO()
        copy_into(memory, path, "/db")
        mdb = drive_checked(Database.open(memory, "/db", cache_pages=8, readahead=4), memory)
        for t in spec.tables:
            expected = norm(con.execute(select_all(con, t)).fetchall())
            assert norm(drive_checked(mdb.scan(t.name), memory)) == expected
            for index in t.indexes:
                first = con.execute(
                    f"SELECT {first_column(t, index)} FROM {quote(t.name, 0)} LIMIT 1"
                ).fetchone()
                if first is not None:
                    check_index_eq(t, index, [first[0]], con, mdb, memory, checked=True)
    finally:
        db.close()
        frozen.close()
        con.close()


def check_table(
    spec: DbSpec,
    t: TableSpec,
    con: sqlite3.Connection,
    db: Database,
    io: UnixIO,
    rng: random.Random,
) -> None:
    expected_rows = con.execute(select_all(con, t)).fetchall()
    got = block(db.scan(t.name), io)
    assert norm(got) == norm(expected_rows)
    assert (
        block(db.count(t.name), io)
        == con.execute(f"SELECT count(*) FROM {quote(t.name, 0)}").fetchone()[0]
    )
    # schema
    table = db.schema.table(t.name)
    info = con.execute(f"PRAGMA table_info({quote(t.name, 0)})").fetchall()
    assert [c.name for c in table.columns] == [r[1] for r in info]
    assert [c.declared_type for c in table.columns] == [r[2] for r in info]
    for index in db.schema.indexes_of(t.name):
        xinfo = con.execute(f"PRAGMA index_xinfo({quote(index.name, 0)})").fetchall()
        keys = [r for r in xinfo if r[5]]
        assert [c.name for c in index.columns] == [r[2] for r in keys], index
        assert [c.collation for c in index.columns] == [r[4].upper() for r in keys], index
        assert [c.descending for c in index.columns] == [bool(r[3]) for r in keys], index
    # point lookups and keyset pages
    if t.without_rowid:
        terms = pk_terms(con, t)
        pk_names = [col for col, _, _ in terms]
        keys = con.execute(f"SELECT {', '.join(pk_names)} FROM {quote(t.name, 0)}").fetchall()
        for key in rng.sample(keys, min(len(keys), 5)):
            where = " AND ".join(f"{col} = ? COLLATE {coll}" for col, coll, _ in terms)
            want = con.execute(f"SELECT * FROM {quote(t.name, 0)} WHERE {where}", key).fetchall()
            assert norm(block(db.get(t.name, key), io)) == norm(want[0] if want else None)
    else:
        rowids = [r[0] for r in expected_rows]
        probes = [
            *rng.sample(rowids, min(len(rowids), 5)),
            0,
            -1,
            # One past the largest rowid, unless that is the largest there is (sqlite3
            # refuses a parameter past 64 bits).
            (max(rowids) + 1) if rowids and max(rowids) < (1 << 63) - 1 else 1,
        ]
        for rowid in probes:
            want = con.execute(
                f"SELECT rowid, * FROM {quote(t.name, 0)} WHERE rowid = ?", (rowid,)
            ).fetchone()
            assert norm(block(db.get(t.name, rowid), io)) == norm(want)
    limit = rng.randint(1, 7)
    pages: list[Any] = []
    after = None
    for _ in range(len(expected_rows) + 2):
        batch = block(db.scan(t.name, after=after, limit=limit), io)
        pages.extend(batch)
        if len(batch) < limit:
            break
        last = batch[-1]
        after = tuple(last[c] for c, _, _ in t.pk) if t.without_rowid else last[0]
    assert norm(pages) == norm(expected_rows)
    for index in t.indexes:
        col_name = quote(t.columns[index.columns[0][0]].name, 0)
        present = [r[0] for r in con.execute(f"SELECT {col_name} FROM {quote(t.name, 0)}")]
        probes = [*rng.sample(present, min(len(present), 3)), None, 5, "a", b"\x00"]
        for probe in probes:
            check_index_eq(t, index, [probe], con, db, io)
        if len(present) >= 2:
            lo, hi = sorted(rng.sample(present, 2), key=repr)
            check_index_range(t, index, lo, hi, con, db, io, rng)


def _index_collation(t: TableSpec, index: IndexSpec, k: int) -> str:
    col, coll, _ = index.columns[k]
    return coll or t.columns[col].collation or "BINARY"


def check_index_eq(
    t: TableSpec,
    index: IndexSpec,
    equal: list[Any],
    con: sqlite3.Connection,
    db: Database,
    io: Any,
    checked: bool = False,
) -> None:
    terms = []
    for k in range(len(equal)):
        col = quote(t.columns[index.columns[k][0]].name, 0)
        terms.append(f"{col} = ? COLLATE {_index_collation(t, index, k)}")
    cols = "*" if t.without_rowid else "rowid, *"
    source = f"{quote(t.name, 0)} INDEXED BY {quote(index.name, 0)}"
    sql = f"SELECT {cols} FROM {source} WHERE {' AND '.join(terms)}"
    want = con.execute(sql, equal).fetchall()
    op = db.index_scan(index.name, equal=equal)
    got = drive_checked(op, io) if checked else block(op, io)
    assert sorted(norm(got), key=repr) == sorted(norm(want), key=repr), (sql, equal)


def check_index_range(
    t: TableSpec,
    index: IndexSpec,
    lo: Any,
    hi: Any,
    con: sqlite3.Connection,
    db: Database,
    io: Any,
    rng: random.Random,
) -> None:
    col = quote(t.columns[index.columns[0][0]].name, 0)
    coll = _index_collation(t, index, 0)
    lo_inc = rng.random() < 0.5
    hi_inc = rng.random() < 0.5
    cases = [
        (Bound(lo, lo_inc), Bound(hi, hi_inc)),
        (Bound(lo, lo_inc), None),
        (None, Bound(hi, hi_inc)),
    ]
    cols = "*" if t.without_rowid else "rowid, *"
    for lower, upper in cases:
        terms = []
        params = []
        if lower is not None:
            terms.append(f"{col} {'>=' if lower.inclusive else '>'} ? COLLATE {coll}")
            params.append(lower.value)
        if upper is not None:
            terms.append(f"{col} {'<=' if upper.inclusive else '<'} ? COLLATE {coll}")
            params.append(upper.value)
        source = f"{quote(t.name, 0)} INDEXED BY {quote(index.name, 0)}"
        sql = f"SELECT {cols} FROM {source} WHERE {' AND '.join(terms)}"
        want = con.execute(sql, params).fetchall()
        got = block(db.index_scan(index.name, lower=lower, upper=upper), io)
        assert sorted(norm(got), key=repr) == sorted(norm(want), key=repr), (sql, params)


_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SETTINGS
@given(db_specs(), st.integers(0, 1 << 30))
def test_reader_matches_sqlite(spec: DbSpec, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.db"
        try:
            build(spec, path)
        except sqlite3.Error as exc:  # a generated statement SQLite refuses: not our case
            assume(False)
            raise AssertionError from exc
        check_database(spec, path, random.Random(seed))


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(
    "not config.getoption('--run-slow', False)", reason="slow: pass --run-slow to run it"
)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(db_specs(max_rows=300), st.integers(0, 1 << 30))
def test_reader_matches_sqlite_long(spec: DbSpec, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.db"
        try:
            build(spec, path)
        except sqlite3.Error:
            assume(False)
        check_database(spec, path, random.Random(seed))
