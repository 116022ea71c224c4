"""Schema parsing: CREATE TABLE/INDEX text, affinities, collations, automatic indexes,
checked against what SQLite itself reports (PRAGMA table_info / index_xinfo)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core import block
from core.io import UnixIO
from core.storage import Affinity, CorruptDatabaseError
from core.storage.collation import affinity_of, real_to_text, text_to_numeric
from core.storage.ddl import dequote, parse_create_index, parse_create_table, tokenize
from tests.storage_helpers import make_db, open_db


def test_tokens_and_quoting() -> None:
    sql = (
        'CREATE TABLE "a ""b""" ([c d] INT, `e``f` TEXT, \'g\'\'h\', -- comment\n'
        "    /* block */ x'00ff' 1.5e3)"
    )
    tokens = tokenize(sql)
    names = [dequote(t) for t in tokens if t.kind in ("qid", "str")]
    assert names == ['a "b"', "c d", "e`f", "g'h"]
    assert [t.kind for t in tokens if t.kind in ("blob", "num")] == ["blob", "num"]
    with pytest.raises(CorruptDatabaseError, match="unterminated"):
        tokenize("CREATE TABLE t('open")


def test_columns_types_and_constraints() -> None:
    parsed = parse_create_table(
        """CREATE TABLE IF NOT EXISTS main."t" (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            "name" VARCHAR ( 10 ) NOT NULL COLLATE nocase DEFAULT 'x,y',
            [price] DOUBLE PRECISION CHECK (price > 0 AND price < 10) DEFAULT -1.5,
            ref INT REFERENCES other(id) ON DELETE SET NULL ON UPDATE SET DEFAULT
                DEFERRABLE INITIALLY DEFERRED,
            untyped,
            g AS (price * 2) STORED,
            h GENERATED ALWAYS AS (1),
            'quoted' UNSIGNED BIG INT UNIQUE ON CONFLICT REPLACE,
            CONSTRAINT pk2 UNIQUE (name COLLATE rtrim DESC, price),
            CHECK (untyped IS NOT NULL),
            FOREIGN KEY (ref) REFERENCES other(id)
        ) WITHOUT ROWID, STRICT"""
    )
    columns = {c.name: c for c in parsed.columns}
    assert list(columns) == ["id", "name", "price", "ref", "untyped", "g", "h", "quoted"]
    assert columns["name"].declared_type == "VARCHAR ( 10 )"
    assert columns["name"].collation == "nocase"
    assert columns["name"].default is not None and columns["name"].default.text == "x,y"
    assert columns["price"].declared_type == "DOUBLE PRECISION"
    assert columns["price"].default is not None and columns["price"].default.negative
    assert columns["ref"].default is None and columns["ref"].collation is None
    assert columns["untyped"].declared_type == ""
    assert (columns["g"].generated, columns["h"].generated) == ("stored", "virtual")
    assert columns["quoted"].declared_type == "UNSIGNED BIG INT"
    assert parsed.without_rowid and parsed.strict
    kinds = [(c.kind, [x.name for x in c.columns], c.column_level) for c in parsed.constraints]
    assert kinds == [
        ("primary", ["id"], True),
        ("unique", ["quoted"], True),
        ("unique", ["name", "price"], False),
    ]
    unique = parsed.constraints[2].columns[0]
    assert (unique.collation, unique.descending) == ("rtrim", True)


def test_create_index() -> None:
    parsed = parse_create_index(
        'CREATE UNIQUE INDEX IF NOT EXISTS "i" ON [t] (a COLLATE NOCASE DESC, lower(b), "c" ASC) '
        "WHERE a IS NOT NULL AND b > 'x'"
    )
    assert parsed.unique and parsed.table == "t"
    assert [(c.name, c.expression, c.collation, c.descending) for c in parsed.columns] == [
        ("a", "a", "NOCASE", True),
        (None, "lower(b)", None, False),
        ("c", '"c"', None, False),
    ]
    assert parsed.where == "a IS NOT NULL AND b > 'x'"
    with pytest.raises(CorruptDatabaseError, match="expected ON"):
        parse_create_index("CREATE INDEX i")


@pytest.mark.parametrize(
    ("declared", "affinity"),
    [
        ("INTEGER", "INTEGER"),
        ("BIGINT", "INTEGER"),
        ("FLOATING POINT", "INTEGER"),  # contains INT: the documented quirk
        ("VARCHAR(20)", "TEXT"),
        ("CLOB", "TEXT"),
        ("CHARINT", "INTEGER"),
        ("BLOB", "BLOB"),
        ("", "BLOB"),
        ("REAL", "REAL"),
        ("DOUBLE", "REAL"),
        ("FLOAT", "REAL"),
        ("BLOBREAL", "BLOB"),
        ("NUMERIC", "NUMERIC"),
        ("DECIMAL(10,5)", "NUMERIC"),
        ("BOOLEAN", "NUMERIC"),
        ("ANY", "NUMERIC"),
    ],
)
def test_affinity_rules(declared: str, affinity: str) -> None:
    assert affinity_of(declared) is Affinity[affinity]


def test_strict_any_has_no_affinity() -> None:
    assert affinity_of("ANY", strict=True) is Affinity.BLOB


def test_numeric_text_and_real_text_follow_sqlite() -> None:
    con = sqlite3.connect(":memory:")
    texts = ["12", " 12 ", "-3", "1.0", "1e3", ".5", "5.", "1e", "abc", "", "0x10", "\u0661\u0662"]
    texts.append("9223372036854775808")
    for text in texts:
        # A NUMERIC column keeps text that is not a number and converts the rest.
        got = text_to_numeric(text)
        con.execute("CREATE TEMP TABLE IF NOT EXISTS num(n NUMERIC)")
        con.execute("DELETE FROM num")
        con.execute("INSERT INTO num VALUES (?)", (text,))
        (affinity_kind, affinity_value) = con.execute("SELECT typeof(n), n FROM num").fetchone()
        if affinity_kind == "text":
            assert got is None, text
        else:
            assert got == affinity_value, text
            assert type(got) is {"integer": int, "real": float}[affinity_kind], text
    for x in [-1.5, 1e300, 100.0, 0.1, 1.0 / 3, float("inf"), float("-inf"), 1e15, 2.5e-7, -0.0]:
        assert real_to_text(x) == con.execute("SELECT CAST(? AS TEXT)", (x,)).fetchone()[0], x


TRICKY_TABLES = [
    "CREATE TABLE t1(a PRIMARY KEY, b UNIQUE, c, UNIQUE(c), UNIQUE(b)) WITHOUT ROWID",
    "CREATE TABLE t2(a UNIQUE, b PRIMARY KEY, c UNIQUE, UNIQUE(a, c))",
    "CREATE TABLE t3(a INTEGER PRIMARY KEY, b UNIQUE, c UNIQUE) WITHOUT ROWID",
    "CREATE TABLE t4(a INTEGER, b UNIQUE, PRIMARY KEY(a DESC)) WITHOUT ROWID",
    "CREATE TABLE t5(a INTEGER PRIMARY KEY DESC, b UNIQUE) WITHOUT ROWID",
    "CREATE TABLE t6(b INTEGER, c, PRIMARY KEY(b COLLATE NOCASE)) WITHOUT ROWID",
    "CREATE TABLE t7(a TEXT COLLATE NOCASE UNIQUE, b, UNIQUE(a COLLATE BINARY), UNIQUE(a))",
    "CREATE TABLE t8(a INT PRIMARY KEY DESC, b)",
    "CREATE TABLE t9(a, b, c, PRIMARY KEY(c, a)) WITHOUT ROWID",
    'CREATE TABLE "t 10"("x y" TEXT PRIMARY KEY, [z] UNIQUE)',
    "CREATE TABLE t11(a UNIQUE, b, PRIMARY KEY(a DESC)) WITHOUT ROWID",
    "CREATE TABLE t12(a, b, UNIQUE(b DESC, a), PRIMARY KEY(b, a))",
]


def test_automatic_indexes_match_sqlite(tmp_path: Path) -> None:
    script: list[str] = list(TRICKY_TABLES)
    script += [
        "CREATE INDEX i6 ON t6(b)",
        "CREATE INDEX i9 ON t9(b, a COLLATE NOCASE)",
        "CREATE INDEX i3 ON t3(c DESC)",
    ]
    path = make_db(tmp_path / "auto.db", script)
    con = sqlite3.connect(path)
    db = open_db(UnixIO(), path)
    for table in db.schema.tables:
        info = con.execute(f'PRAGMA table_info("{table.name}")').fetchall()
        assert [c.name for c in table.columns] == [r[1] for r in info]
        for index in db.schema.indexes_of(table.name):
            xinfo = con.execute(f'PRAGMA index_xinfo("{index.name}")').fetchall()
            keys = [r for r in xinfo if r[5]]
            got = [(c.name, c.collation, c.descending) for c in index.columns]
            assert got == [(r[2], r[4].upper(), bool(r[3])) for r in keys], index.name
        listed = {r[1] for r in con.execute(f'PRAGMA index_list("{table.name}")')}
        ours = {i.name for i in db.schema.indexes_of(table.name)}
        stored = {r[0] for r in con.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert ours == listed & stored
    db.close()
    con.close()


def test_primary_key_merged_into_an_earlier_unique(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "merged.db",
        [TRICKY_TABLES[10], ("INSERT INTO t11 VALUES (?, ?)", [(0, 1), ("", 2), (b"", 3)], True)],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert not db.schema.table("t11").primary_key[0].descending  # the UNIQUE order rules
    assert block(db.scan("t11"), io) == sqlite_rows_ordered(path)
    db.close()


@pytest.mark.parametrize(
    ("ddl", "descending"),
    [
        # An INTEGER key of a WITHOUT ROWID table gets its index last, so any UNIQUE on the
        # same column (declared before or after the key) becomes the key, in its order.
        ("CREATE TABLE w(a INTEGER UNIQUE, b, PRIMARY KEY(a DESC)) WITHOUT ROWID", False),
        ("CREATE TABLE w(a INTEGER, b, PRIMARY KEY(a DESC), UNIQUE(a)) WITHOUT ROWID", False),
        ("CREATE TABLE w(a INTEGER, b, PRIMARY KEY(a DESC)) WITHOUT ROWID", True),
        ("CREATE TABLE w(a INTEGER PRIMARY KEY DESC UNIQUE, b) WITHOUT ROWID", True),
    ],
)
def test_integer_key_of_without_rowid_merged_into_a_unique(
    tmp_path: Path, ddl: str, descending: bool
) -> None:
    path = make_db(
        tmp_path / "w.db",
        [ddl, ("INSERT INTO w VALUES (?, ?)", [(0, None), (1, None), ("", None)], True)],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert db.schema.table("w").primary_key[0].descending is descending
    con = sqlite3.connect(path)
    try:
        stored = con.execute("SELECT * FROM w").fetchall()  # the table's own order
    finally:
        con.close()
    assert block(db.scan("w"), io) == stored
    db.close()


def sqlite_rows_ordered(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT * FROM t11 ORDER BY a").fetchall()
    finally:
        con.close()


def test_without_rowid_record_order(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "order.db",
        [
            TRICKY_TABLES[8],
            "CREATE INDEX i9 ON t9(b, a COLLATE NOCASE)",
            ("INSERT INTO t9 VALUES (?, ?, ?)", [("A", 1, 3), ("b", 2, 1), ("c", 2, 3)], True),
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.scan("t9"), io) == [("b", 2, 1), ("A", 1, 3), ("c", 2, 3)]
    assert block(db.get("t9", (3, "A")), io) == ("A", 1, 3)
    assert block(db.index_scan("i9", equal=[2]), io) == [("b", 2, 1), ("c", 2, 3)]
    db.close()
