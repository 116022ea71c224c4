"""Schema parsing: CREATE TABLE/INDEX text, affinities, collations, automatic indexes,
checked against what SQLite itself reports (PRAGMA table_info / index_xinfo)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from core import block
from core.io import UnixIO
from core.storage import Affinity, CorruptDatabaseError, Schema
from core.storage.collation import affinity_of, real_to_text, text_to_numeric
from core.storage.ddl import dequote, parse_create_index, parse_create_table, tokenize
from core.storage.schema import write_refusal
from tests.storage_helpers import make_db, open_db, sqlite_rows


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
    # Digit strings longer than Python converts to int by default (4300 digits).
    texts += ["9" * 5000, "0" * 5000 + "1", "-" + "0" * 30 + "42", "-" + "9" * 30]
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


# -- what a writer must enforce or refuse -------------------------------------------------

CONSTRAINED_TABLES = [
    "CREATE TABLE plain(a INTEGER PRIMARY KEY, b TEXT NOT NULL, c DEFAULT 7, d)",
    "CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, x NOT NULL ON CONFLICT IGNORE)",
    "CREATE TABLE auto2(id INTEGER, x CONSTRAINT nn NOT NULL, PRIMARY KEY(id AUTOINCREMENT))",
    "CREATE TABLE auto3(id INTEGER PRIMARY KEY ON CONFLICT REPLACE AUTOINCREMENT, x)",
    "CREATE TABLE colcheck(x INT CHECK (x IS NOT 13) NOT NULL DEFAULT (5), y)",
    "CREATE TABLE tabcheck(x, y, CONSTRAINT positive CHECK (x IS NOT 13))",
    "CREATE TABLE colfk(x, y REFERENCES plain(a) ON DELETE SET NULL NOT DEFERRABLE NOT NULL)",
    "CREATE TABLE tabfk(x, y, FOREIGN KEY (y) REFERENCES plain(a) ON UPDATE NO ACTION)",
    "CREATE TABLE wr(a TEXT, b INT NOT NULL, c, PRIMARY KEY(a, c)) WITHOUT ROWID",
    "CREATE TABLE wr2(a INTEGER PRIMARY KEY, b) WITHOUT ROWID",
    "CREATE TABLE nulls(a NULL, b NOT NULL DEFAULT CURRENT_TIMESTAMP, c TEXT PRIMARY KEY)",
    "CREATE TABLE strict(a INTEGER PRIMARY KEY, b TEXT NOT NULL DEFAULT 'x', c ANY) STRICT",
]


def test_parser_notes_not_null_check_references_and_autoincrement() -> None:
    parsed = parse_create_table(
        """CREATE TABLE t(
            id INTEGER CONSTRAINT k PRIMARY KEY ASC ON CONFLICT ABORT AUTOINCREMENT,
            a NOT NULL, b NULL, "not" TEXT DEFAULT (  ( -7 ) ) NOT NULL ON CONFLICT FAIL,
            c REFERENCES p(x) MATCH FULL NOT DEFERRABLE INITIALLY IMMEDIATE CHECK (c > 0),
            d DEFAULT ('it''s') CHECK(d <> '')
        )"""
    )
    flags = [(c.name, c.not_null, c.check, c.references) for c in parsed.columns]
    assert flags == [
        ("id", False, False, False),
        ("a", True, False, False),
        ("b", False, False, False),
        ("not", True, False, False),
        ("c", False, True, True),
        ("d", False, True, False),
    ]
    defaults = [(c.default.kind, c.default.source) for c in parsed.columns if c.default]
    assert defaults == [("number", "( -7 )"), ("string", "'it''s'")]
    assert parsed.autoincrement and parsed.has_check and parsed.has_foreign_keys
    table_level = parse_create_table(
        "CREATE TABLE u(a INTEGER, b, CONSTRAINT c CHECK (b), FOREIGN KEY(b) REFERENCES p, "
        "PRIMARY KEY(a DESC AUTOINCREMENT))"
    )
    assert table_level.table_check and table_level.table_foreign_key
    assert table_level.autoincrement and table_level.constraints[0].columns[0].name == "a"
    plain = parse_create_table("CREATE TABLE v(a INTEGER PRIMARY KEY, b UNIQUE NOT NULL)")
    assert not (plain.autoincrement or plain.has_check or plain.has_foreign_keys)


def _schema_of(path: Path) -> Schema:
    db = open_db(UnixIO(), path)
    try:
        return db.schema
    finally:
        db.close()


def test_not_null_defaults_and_keys_match_table_info(tmp_path: Path) -> None:
    path = make_db(tmp_path / "constraints.db", CONSTRAINED_TABLES)
    schema = _schema_of(path)
    con = sqlite3.connect(path)
    try:
        for table in schema.tables:
            info = con.execute(f'PRAGMA table_info("{table.name}")').fetchall()
            key = [c.column for c in table.primary_key]
            ours = [
                (
                    c.name,
                    c.not_null,
                    c.default_expression,
                    key.index(i) + 1 if i in key else 0,
                )
                for i, c in enumerate(table.columns)
            ]
            assert ours == [(r[1], bool(r[3]), r[4], r[5]) for r in info], table.name
    finally:
        con.close()
    # The key of a WITHOUT ROWID table is NOT NULL although not declared so; a rowid
    # table's key is not (SQLite keeps its old leniency there).
    assert [c.not_null for c in schema.table("wr").columns] == [True, True, True]
    assert not schema.table("nulls").columns[2].not_null


def test_autoincrement_check_and_foreign_keys_match_sqlite(tmp_path: Path) -> None:
    path = make_db(tmp_path / "constraints.db", CONSTRAINED_TABLES)
    schema = _schema_of(path)
    con = sqlite3.connect(path)
    try:
        for table in schema.tables:
            name = table.name
            fks = con.execute(f'PRAGMA foreign_key_list("{name}")').fetchall()
            assert table.has_foreign_keys is bool(fks), name
            # Every CHECK in these tables refuses x = 13: a row with it fails iff one exists.
            refused = False
            if "x" in table.column_names:
                try:
                    con.execute(f'INSERT INTO "{name}"(x) VALUES (13)')
                except sqlite3.IntegrityError as exc:
                    refused = "CHECK" in str(exc)
            assert table.has_check is refused, name
        # Only an AUTOINCREMENT table gets a row in sqlite_sequence (the rows above).
        sequenced = {r[0] for r in con.execute("SELECT name FROM sqlite_sequence")}
        con.rollback()
    finally:
        con.close()
    assert {t.name for t in schema.tables if t.autoincrement} == sequenced
    assert sequenced == {"auto", "auto2", "auto3"}


def test_table_level_autoincrement_key_is_the_rowid_alias(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "auto.db",
        [CONSTRAINED_TABLES[2], ("INSERT INTO auto2(x) VALUES (?)", [("a",), ("b",)], True)],
    )
    io = UnixIO()
    db = open_db(io, path)
    table = db.schema.table("auto2")
    assert table.rowid_alias == 0 and table.autoincrement
    assert block(db.scan("auto2"), io) == sqlite_rows(path, "SELECT rowid, * FROM auto2")
    db.close()


# DEFAULT literals, bare and in parentheses, and expressions that are not evaluated.
DEFAULTS = [
    "5", "(5)", "(-1)", "('x')", "((5))", "(+5)", "( 'a b' )", "abc", '"abc"', "(NULL)",
    "(TRUE)", "FALSE", "(x'00ff')", "(-1.5)", "(1e3)", "1e3", "(-0x10)", "0x80000000",
    "(0x7fffffffffffffff)", "0xffffffffffffffff", "(-9223372036854775808)",
    "9223372036854775808", "('5')", "(5.0)", "5.", "'  12 '", "(-0.0)", "99999999999",
]  # fmt: skip
EXPRESSION_DEFAULTS = ["CURRENT_TIME", "(CURRENT_DATE)", "CURRENT_TIMESTAMP", "(1+1)", "(-(5))"]
DEFAULT_TYPES = ["", "TEXT", "INTEGER", "REAL", "NUMERIC", "BLOB", "VARCHAR(3)"]


def _typed(value: object) -> tuple[type, object]:
    return type(value), value


@pytest.mark.parametrize("declared", DEFAULT_TYPES)
def test_insert_defaults_are_what_sqlite_stores(tmp_path: Path, declared: str) -> None:
    columns = [f"c{i} {declared} DEFAULT {d}" for i, d in enumerate(DEFAULTS + EXPRESSION_DEFAULTS)]
    path = make_db(
        tmp_path / "defaults.db",
        [f"CREATE TABLE t(a, {', '.join(columns)})", "INSERT INTO t(a) VALUES (1)"],
    )
    table = _schema_of(path).table("t")
    (row,) = sqlite_rows(path, "SELECT * FROM t")
    info = sqlite_rows(path, "PRAGMA table_info(t)")
    cases = zip(table.columns[1:], row[1:], info[1:], strict=True)
    for i, (column, stored, pragma) in enumerate(cases):
        assert column.default_expression == pragma[4]
        if i < len(DEFAULTS):
            assert column.default_supported, column
            assert _typed(column.insert_default) == _typed(stored), column
        else:  # CURRENT_TIME and the like: a writer cannot fill the column in
            assert not column.default_supported and column.insert_default is None, column


@pytest.mark.parametrize("declared", DEFAULT_TYPES)
def test_added_column_defaults_are_what_old_rows_read(tmp_path: Path, declared: str) -> None:
    # The other evaluation of the same literals: rows written before ALTER TABLE ADD COLUMN.
    script: list[str] = ["CREATE TABLE t(a)", "INSERT INTO t VALUES (1)"]
    script += [
        f"ALTER TABLE t ADD COLUMN c{i} {declared} DEFAULT {d}" for i, d in enumerate(DEFAULTS)
    ]
    path = make_db(tmp_path / "alter.db", script)
    io = UnixIO()
    db = open_db(io, path)
    got = block(db.scan("t"), io)
    db.close()
    want = sqlite_rows(path, "SELECT rowid, * FROM t")
    assert [_typed(v) for v in got[0]] == [_typed(v) for v in want[0]]


def test_index_flags_match_index_list(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "indexes.db",
        [
            "CREATE TABLE t(a, b UNIQUE, c, PRIMARY KEY(a, c))",
            "CREATE INDEX t_partial ON t(c) WHERE c > 0",
            "CREATE INDEX t_expr ON t(a, lower(b) COLLATE NOCASE)",
            "CREATE UNIQUE INDEX t_plain ON t(c DESC, b)",
        ],
    )
    schema = _schema_of(path)
    con = sqlite3.connect(path)
    try:
        listed = con.execute("PRAGMA index_list(t)").fetchall()
        assert {i.name for i in schema.indexes_of("t")} == {r[1] for r in listed}
        for _, name, unique, origin, partial in listed:
            index = schema.index(name)
            xinfo = con.execute(f'PRAGMA index_xinfo("{name}")').fetchall()
            assert index.unique is bool(unique), name
            assert index.automatic is (origin != "c"), name
            assert (index.where is not None) is bool(partial), name
            assert index.expression is any(r[1] == -2 for r in xinfo if r[5]), name
    finally:
        con.close()
    assert schema.index("t_expr").expression and not schema.index("t_plain").expression


def test_triggers_on_their_tables(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "triggers.db",
        [
            "CREATE TABLE t(a)",
            'CREATE TABLE "Other T"(b)',
            "CREATE VIEW v AS SELECT a FROM t",
            "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT 1; END",
            'CREATE TRIGGER "o del" BEFORE DELETE ON "other t" BEGIN SELECT 1; END',
            "CREATE TRIGGER t_upd AFTER UPDATE OF a ON T BEGIN SELECT 1; END",
            "CREATE TRIGGER v_ins INSTEAD OF INSERT ON v BEGIN SELECT 1; END",
        ],
    )
    schema = _schema_of(path)
    stored = sqlite_rows(path, "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'trigger'")
    for table in ["t", "Other T", "v", "nothing"]:
        want = tuple(name for name, on in stored if on.lower() == table.lower())
        assert schema.triggers_on(table) == want
        assert schema.triggers_on(table.upper()) == want
    assert schema.triggers_on("t") == ("t_ins", "t_upd")


REFUSED = [
    (["CREATE TABLE r(a TEXT PRIMARY KEY, b) WITHOUT ROWID"], "is WITHOUT ROWID"),
    (["CREATE VIRTUAL TABLE r USING fts5(body)"], "is a virtual table"),
    (["CREATE TABLE r(a, b AS (a * 2))"], "has a generated column 'b' (virtual)"),
    (["CREATE TABLE r(a, b AS (a * 2) STORED)"], "has a generated column 'b' (stored)"),
    (["CREATE TABLE r(a CHECK (a > 0), b)"], "has a CHECK constraint"),
    (["CREATE TABLE r(a, b, CHECK (a < b))"], "has a CHECK constraint"),
    (["CREATE TABLE r(a REFERENCES p(x), b)"], "has a foreign key (REFERENCES)"),
    (["CREATE TABLE r(a, b, FOREIGN KEY (a) REFERENCES p(x))"], "has a foreign key (REFERENCES)"),
    (
        ["CREATE TABLE r(a, b)", "CREATE INDEX r_part ON r(a) WHERE b"],
        "has a partial index 'r_part'",
    ),
    (
        ["CREATE TABLE r(a, b)", "CREATE INDEX r_expr ON r(a, b + 1)"],
        "has an index on an expression, 'r_expr'",
    ),
    (
        ["CREATE TABLE r(a, b)", "CREATE TRIGGER r_ins AFTER INSERT ON r BEGIN SELECT 1; END"],
        "has a trigger 'r_ins'",
    ),
]


@pytest.mark.parametrize(("ddl", "reason"), REFUSED)
def test_write_refusal_names_the_table_and_the_feature(
    tmp_path: Path, ddl: list[str], reason: str
) -> None:
    path = make_db(tmp_path / "refused.db", ddl)
    schema = _schema_of(path)
    assert write_refusal(schema, schema.table("r")) == (
        f"table 'r' {reason}: writing it is not supported"
    )


def test_write_refusal_allows_plain_strict_and_indexed_tables(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "allowed.db",
        [
            "CREATE TABLE p(id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT NOT NULL UNIQUE)",
            "CREATE TABLE s(a INTEGER PRIMARY KEY, b TEXT COLLATE NOCASE, c ANY) STRICT",
            "CREATE INDEX s_b ON s(b DESC, c COLLATE RTRIM)",
            "CREATE TABLE other(x)",
            "CREATE TRIGGER other_ins AFTER INSERT ON other BEGIN SELECT 1; END",
        ],
    )
    schema = _schema_of(path)
    assert write_refusal(schema, schema.table("p")) is None
    assert write_refusal(schema, schema.table("s")) is None
    assert write_refusal(schema, schema.table("other")) == (
        "table 'other' has a trigger 'other_ins': writing it is not supported"
    )


def test_write_refusal_of_an_unknown_collation(tmp_path: Path) -> None:
    path = tmp_path / "collate.db"
    con = sqlite3.connect(path)
    con.create_collation("backwards", lambda x, y: (x < y) - (x > y))
    con.execute("CREATE TABLE r(a, b)")
    con.execute("CREATE INDEX r_back ON r(b COLLATE backwards)")
    con.commit()
    con.close()
    schema = _schema_of(path)
    assert write_refusal(schema, schema.table("r")) == (
        "table 'r' has an index 'r_back' in collation 'BACKWARDS': writing it is not supported"
    )


def test_schema_limits_refuse_before_parsing(tmp_path: Path) -> None:
    from core import block
    from core.io import UnixIO
    from core.storage import Database, SchemaLimits, SchemaTooLargeError

    path = tmp_path / "limits.db"
    with closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE t(" + ", ".join(f"column_{i}" for i in range(300)) + ")")
        con.execute("CREATE INDEX t_0 ON t(column_0)")
    io = UnixIO()
    for limits, name in (
        (SchemaLimits(max_sql_bytes=1000), "max_sql_bytes"),
        (SchemaLimits(max_objects=1), "max_objects"),
        (SchemaLimits(max_columns=299), "max_columns"),
    ):
        with pytest.raises(SchemaTooLargeError, match=name) as info:
            block(Database.open(io, path, schema_limits=limits), io)
        assert info.value.limit == name and info.value.value > info.value.maximum
    db = block(Database.open(io, path, schema_limits=SchemaLimits()), io)
    assert len(db.schema.table("t").columns) == 300
    db.close()
