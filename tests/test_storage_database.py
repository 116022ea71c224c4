"""The `Database` operations: what they return (exactly what sqlite3 returns) and how they
fail, on real files and with every read deferred."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from core import IO, CompletionError, ErrorKind, IOResultError, StateMachineError, block
from core.io import MemoryIO, MemoryYieldIO, OpenFlags, UnixIO
from core.ops import WriteBuffers
from core.storage import (
    Bound,
    CorruptDatabaseError,
    Database,
    SchemaError,
    UnsupportedError,
)
from tests.storage_helpers import (
    PAGE_SIZES,
    backends_for,
    copy_into,
    drive_checked,
    make_db,
    open_db,
    sqlite_rows,
)


@pytest.fixture
def people(tmp_path: Path) -> Path:
    return make_db(
        tmp_path / "people.db",
        [
            "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE, "
            "height REAL, photo BLOB, note)",
            "CREATE INDEX people_name ON people(name)",
            "CREATE INDEX people_height_desc ON people(height DESC, name)",
            "CREATE TABLE pairs(a TEXT, b INT, c, PRIMARY KEY (b, a)) WITHOUT ROWID",
            (
                "INSERT INTO people(name, height, photo, note) VALUES (?, ?, ?, ?)",
                [
                    ("Ada", 1.70, b"\x00\x01", None),
                    ("ada", 2, None, -0.0),
                    ("Bob", 1.80, b"", math.inf),
                    ("carol", None, b"x" * 3000, "text"),
                    ("Dave", 1.80, None, 12345678901234),
                    ("eve", -1.5, None, -(1 << 63)),
                ],
                True,
            ),
            (
                "INSERT INTO pairs VALUES (?, ?, ?)",
                [(f"k{i}", i % 4, i) for i in range(40)],
                True,
            ),
        ],
    )


def test_open_is_an_operation(people: Path) -> None:
    memory = MemoryYieldIO()
    copy_into(memory, people, "/db")
    op = Database.open(memory, "/db")
    first = op.step()
    assert isinstance(first, IO) and not first.completion.finished()
    db = block(op, memory)
    assert isinstance(db, Database)
    assert [t.name for t in db.schema.tables] == ["people", "pairs"]
    with pytest.raises(StateMachineError, match="after it finished"):
        op.step()


def test_rows_match_sqlite_on_both_backends(people: Path, tmp_path: Path) -> None:
    expected = sqlite_rows(people, "SELECT rowid, * FROM people")
    assert expected[1][2:] == ("ada", 2.0, None, 0.0)  # REAL affinity; -0.0 stored as 0
    for _name, io, path in backends_for(tmp_path, people):
        db = drive_checked(Database.open(io, path), io)
        assert drive_checked(db.scan("people"), io) == expected
        assert drive_checked(db.get("people", 4), io) == expected[3]
        assert drive_checked(db.get("people", 99), io) is None
        assert drive_checked(db.count("people"), io) == 6
        assert drive_checked(db.scan("pairs"), io) == sqlite_rows(people, "SELECT * FROM pairs")
        assert drive_checked(db.get("pairs", (2, "k10")), io) == ("k10", 2, 10)
        db.close()


def test_types_come_back_exactly(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    rows = block(db.scan("people"), io)
    height = rows[1][3]
    assert type(height) is float and height == 2.0  # an int stored in a REAL column
    note = rows[1][5]  # no affinity: -0.0 stays a float with its sign
    assert type(note) is float and math.copysign(1.0, note) == -1.0
    assert rows[2][5] == math.inf and rows[4][5] == 12345678901234
    assert rows[5][5] == -(1 << 63)
    assert rows[0][4] == b"\x00\x01" and rows[2][4] == b""
    db.close()


def test_index_equality_uses_the_index_collation(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    got = block(db.index_scan("people_name", equal=["ADA"]), io)
    assert [r[0] for r in got] == [1, 2]
    assert got == sqlite_rows(
        people, "SELECT rowid, * FROM people INDEXED BY people_name WHERE name = 'ADA'"
    )
    assert block(db.index_scan("people_name", equal=[None]), io) == []
    assert block(db.index_scan("people_name", equal=["zed"]), io) == []
    assert block(db.index_scan("people_name", equal=["ada"], limit=1), io) == got[:1]
    db.close()


def test_index_ranges_and_descending_columns(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)

    def ours(**kwargs: object) -> list[int]:
        return [r[0] for r in block(db.index_scan("people_height_desc", **kwargs), io)]

    def theirs(where: str) -> list[int]:
        return [
            r[0]
            for r in sqlite_rows(
                people,
                f"SELECT rowid FROM people INDEXED BY people_height_desc WHERE {where}",
            )
        ]

    assert ours(lower=Bound(1.7)) == theirs("height >= 1.7")
    assert ours(lower=Bound(1.7, False)) == theirs("height > 1.7")
    assert ours(upper=Bound(1.8, False)) == theirs("height < 1.8")
    assert ours(lower=Bound(-2), upper=Bound(1.8)) == theirs("height BETWEEN -2 AND 1.8")
    assert ours(equal=[1.8], lower=Bound("C")) == theirs("height = 1.8 AND name >= 'C'")
    assert ours(upper=Bound(None)) == []
    assert ours() == theirs("1")  # every entry, NULL heights included, in index order
    db.close()


def test_keys_get_the_column_affinity(people: Path, tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "aff.db",
        [
            "CREATE TABLE t(i INTEGER, s TEXT, r REAL, n)",
            "CREATE INDEX ti ON t(i)",
            "CREATE INDEX ts ON t(s)",
            "CREATE INDEX tr ON t(r)",
            "CREATE INDEX tn ON t(n)",
            ("INSERT INTO t VALUES (?, ?, ?, ?)", [(5, 5, 5, 5), ("7", "x", 1.5, "5")], True),
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert [r[0] for r in block(db.index_scan("ti", equal=["5"]), io)] == [1]
    assert [r[0] for r in block(db.index_scan("ti", equal=[" 7 "]), io)] == [2]
    assert [r[0] for r in block(db.index_scan("ts", equal=[5]), io)] == [1]
    assert [r[0] for r in block(db.index_scan("tr", equal=["1.5"]), io)] == [2]
    assert [r[0] for r in block(db.index_scan("tn", equal=[5]), io)] == [1]  # no affinity
    assert [r[0] for r in block(db.index_scan("tn", equal=["5"]), io)] == [2]
    assert [r[0] for r in block(db.index_scan("ti", equal=[True]), io)] == []
    with pytest.raises(SchemaError, match="64 bits"):
        block(db.index_scan("ti", equal=[1 << 70]), io)
    with pytest.raises(SchemaError, match="a list is not a value SQLite can hold"):
        block(db.index_scan("ti", equal=[[1]]), io)
    db.close()


def test_comparison_order_across_types(tmp_path: Path) -> None:
    values = [None, -1, 0.5, 1, 2**53 + 1, float(2**53), math.inf, "", "a", "b", b"", b"\x00"]
    path = make_db(
        tmp_path / "order.db",
        [
            "CREATE TABLE t(v)",
            "CREATE INDEX tv ON t(v)",
            ("INSERT INTO t VALUES (?)", [(v,) for v in reversed(values)], True),
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    ordered = block(db.index_scan("tv"), io)
    assert [r[1] for r in ordered] == [
        r[1] for r in sqlite_rows(path, "SELECT rowid, v FROM t ORDER BY v")
    ]
    for lo, hi in [(0, "a"), (1, b""), ("", None), (math.inf, "b")]:
        got = block(db.index_scan("tv", lower=Bound(lo), upper=Bound(hi)), io)
        want = sqlite_rows(
            path, "SELECT rowid, * FROM t INDEXED BY tv WHERE v >= ? AND v <= ?", (lo, hi)
        )
        assert got == want
    db.close()


@pytest.mark.parametrize("encoding", ["UTF-16le", "UTF-16be", "UTF-8"])
def test_binary_order_is_the_encodings_byte_order(tmp_path: Path, encoding: str) -> None:
    # In UTF-16le, memcmp puts U+0100 ("\x00\x01") before U+0061 ("a\x00"); in UTF-16be
    # a surrogate pair (D83D...) sorts before U+E000; in UTF-8 code-point order rules.
    words = ["a", "\u0100", "\ue000", "\U0001f600", "b", "\u00ff", "\uff21", "ab"]
    path = make_db(
        tmp_path / "enc.db",
        [
            "CREATE TABLE t(w TEXT)",
            "CREATE INDEX tw ON t(w)",
            "CREATE INDEX twn ON t(w COLLATE NOCASE)",
            ("INSERT INTO t VALUES (?)", [(w,) for w in words], True),
        ],
        encoding=encoding,
    )
    io = UnixIO()
    db = open_db(io, path)
    for index in ("tw", "twn"):
        ordered = [r[1] for r in block(db.index_scan(index), io)]
        coll = "BINARY" if index == "tw" else "NOCASE"
        assert ordered == [
            r[0] for r in sqlite_rows(path, f"SELECT w FROM t ORDER BY w COLLATE {coll}, rowid")
        ]
        for lo in words:
            got = [r[1] for r in block(db.index_scan(index, lower=Bound(lo, False)), io)]
            want = sqlite_rows(
                path, f"SELECT w FROM t INDEXED BY {index} WHERE w > ? COLLATE {coll}", (lo,)
            )
            assert got == [r[0] for r in want]
    db.close()


def test_nocase_and_rtrim_edge_cases(tmp_path: Path) -> None:
    words = ["ab\x00c", "AB\x00d", "ab\x00", "ab", "Ab ", "ab  ", "a\x00b\x00", "é", "É"]
    path = make_db(
        tmp_path / "coll.db",
        [
            "CREATE TABLE t(w TEXT)",
            "CREATE INDEX tn ON t(w COLLATE NOCASE)",
            "CREATE INDEX tr ON t(w COLLATE RTRIM)",
            ("INSERT INTO t VALUES (?)", [(w,) for w in words], True),
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    for index, coll in (("tn", "NOCASE"), ("tr", "RTRIM")):
        for probe in [*words, "AB", "ab\x00x", "ab\x00cc"]:
            got = sorted(r[0] for r in block(db.index_scan(index, equal=[probe]), io))
            want = sorted(
                r[0]
                for r in sqlite_rows(
                    path,
                    f"SELECT rowid FROM t INDEXED BY {index} WHERE w = ? COLLATE {coll}",
                    (probe,),
                )
            )
            assert got == want, (index, probe)
    db.close()


def test_keyset_pages(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    assert block(db.scan("people", limit=2), io) == block(db.scan("people"), io)[:2]
    assert [r[0] for r in block(db.scan("people", after=2, limit=2), io)] == [3, 4]
    assert block(db.scan("people", after=6), io) == []
    assert block(db.scan("people", limit=0), io) == []
    page = block(db.scan("pairs", after=(1, "k5"), limit=3), io)
    assert page == sqlite_rows(
        people, "SELECT * FROM pairs WHERE (b, a) > (1, 'k5') ORDER BY b, a LIMIT 3"
    )
    with pytest.raises(ValueError, match="limit"):
        db.scan("people", limit=-1)
    db.close()


def test_schema_table_is_readable(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    assert block(db.scan("sqlite_schema"), io) == sqlite_rows(
        people, "SELECT rowid, * FROM sqlite_schema"
    )
    assert block(db.count("sqlite_master"), io) == 4
    db.close()


def test_request_errors(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    with pytest.raises(SchemaError, match="no such table: nope"):
        block(db.scan("nope"), io)
    with pytest.raises(SchemaError, match="no such index: nope"):
        block(db.index_scan("nope"), io)
    with pytest.raises(SchemaError, match="a rowid is an integer"):
        block(db.get("people", "1"), io)
    with pytest.raises(SchemaError, match="2-column primary key, got 1"):
        block(db.get("pairs", 1), io)
    with pytest.raises(SchemaError, match="has 1 column"):
        block(db.index_scan("people_name", equal=["a"], lower=Bound("b")), io)
    assert isinstance(SchemaError("x"), IOResultError)
    db.close()


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    io = UnixIO()
    with pytest.raises(CompletionError) as info:
        open_db(io, tmp_path / "missing.db")
    assert info.value.errno == 2
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    db = open_db(io, empty)
    assert db.schema.tables == () and db.header is None
    with pytest.raises(SchemaError):
        block(db.scan("t"), io)
    db.close()
    text = tmp_path / "text.db"
    text.write_text("hello world, this is not a database at all " * 5)
    with pytest.raises(CorruptDatabaseError, match="not a database"):
        open_db(io, text)
    with pytest.raises(ValueError, match="cache_pages"):
        Database.open(io, empty, cache_pages=0)


def test_closed_database(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    db.close()
    db.close()
    with pytest.raises(CompletionError) as info:
        block(db.count("people"), io)
    assert info.value.kind is ErrorKind.CLOSED


def test_sees_changes_unless_immutable(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    frozen = open_db(io, people, immutable=True)
    assert block(db.count("people"), io) == block(frozen.count("people"), io) == 6
    con = sqlite3.connect(people)
    con.execute("INSERT INTO people(name) VALUES ('zed')")
    con.execute("CREATE TABLE later(x)")
    con.commit()
    con.close()
    assert block(db.count("people"), io) == 7
    assert block(db.scan("later"), io) == []
    reads = frozen.pager.reads
    assert block(frozen.count("people"), io) == 6  # promised unchanging: not re-read
    assert frozen.pager.reads == reads
    with pytest.raises(SchemaError):
        block(frozen.scan("later"), io)
    db.close()
    frozen.close()


def test_added_columns_take_their_defaults(tmp_path: Path) -> None:
    defaults = [
        ("TEXT", "5"),
        ("TEXT", "-1.50"),
        ("TEXT", "1.0e3"),
        ("INTEGER", "'12'"),
        ("INTEGER", "1.0"),
        ("REAL", "3"),
        ("", "1.0"),
        ("", "-2.0"),
        ("NUMERIC", "'0x10'"),
        ("", "x'00ff'"),
        ("", "TRUE"),
        ("TEXT", "FALSE"),
        ("", "NULL"),
        ("", "hello"),
        ("", '"quoted"'),
        ("TEXT", "9999999999"),
        ("", "(-7)"),
        ("BLOB", "'text'"),
    ]
    script: list[str | tuple[str, list[object]]] = [
        "CREATE TABLE t(a)",
        ("INSERT INTO t VALUES (?)", [1]),
    ]
    for i, (kind, default) in enumerate(defaults):
        script.append(f"ALTER TABLE t ADD COLUMN c{i} {kind} DEFAULT {default}")
    path = make_db(tmp_path / "alter.db", script)  # type: ignore[arg-type]
    io = UnixIO()
    db = open_db(io, path)
    got = block(db.scan("t"), io)
    want = sqlite_rows(path, "SELECT rowid, * FROM t")
    assert [(type(v), v) for v in got[0]] == [(type(v), v) for v in want[0]]
    db.close()


def test_rowid_alias_rules(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "alias.db",
        [
            "CREATE TABLE a(x INTEGER PRIMARY KEY, y)",
            "CREATE TABLE b(x INTEGER PRIMARY KEY DESC, y)",  # not an alias
            "CREATE TABLE c(x INTEGER, y, PRIMARY KEY(x DESC))",  # an alias
            "CREATE TABLE d(x INT PRIMARY KEY, y)",  # not an alias
            *[(f"INSERT INTO {t} VALUES (?, ?)", [10, "v"]) for t in "abcd"],
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    for table, alias in zip("abcd", [True, False, True, False], strict=True):
        assert (db.schema.table(table).rowid_alias is not None) is alias
        assert block(db.scan(table), io) == sqlite_rows(path, f"SELECT rowid, * FROM {table}")
    db.close()


def test_generated_and_virtual_tables(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "gen.db",
        [
            "CREATE TABLE g(a, b AS (a * 2) STORED, c TEXT)",
            "CREATE TABLE h(a, b AS (a + 1))",
            "CREATE VIRTUAL TABLE f USING fts5(body)",
            ("INSERT INTO g(a, c) VALUES (?, ?)", [3, "x"]),
            ("INSERT INTO h(a) VALUES (?)", [3]),
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.scan("g"), io) == sqlite_rows(path, "SELECT rowid, * FROM g")
    with pytest.raises(UnsupportedError, match="column b of h is a virtual generated column"):
        block(db.scan("h"), io)
    assert db.schema.table("f").virtual
    with pytest.raises(UnsupportedError, match="virtual table"):
        block(db.scan("f"), io)
    with pytest.raises(UnsupportedError, match="virtual table"):
        block(db.count("f"), io)
    assert block(db.count("f_content"), io) == 0  # its shadow tables are ordinary
    db.close()


def test_unknown_collation(tmp_path: Path) -> None:
    path = tmp_path / "custom.db"
    con = sqlite3.connect(path)
    con.create_collation("reverse", lambda a, b: (a < b) - (a > b))
    con.execute("CREATE TABLE t(w TEXT COLLATE reverse)")
    con.execute("CREATE INDEX tw ON t(w)")
    con.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",)])
    con.commit()
    con.close()
    io = UnixIO()
    db = open_db(io, path)
    assert db.schema.index("tw").columns[0].collation == "REVERSE"
    assert [r[1] for r in block(db.scan("t"), io)] == ["a", "b"]
    with pytest.raises(SchemaError, match="collation 'REVERSE'"):
        block(db.index_scan("tw", equal=["a"]), io)
    db.close()


def test_expression_and_partial_indexes(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "expr.db",
        [
            "CREATE TABLE t(a TEXT, b INT)",
            "CREATE INDEX te ON t(lower(a))",
            "CREATE INDEX tp ON t(b) WHERE b > 10",
            ("INSERT INTO t VALUES (?, ?)", [("Hi", 5), ("HI", 20), ("no", 30)], True),
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert db.schema.index("te").columns[0].name is None
    assert db.schema.index("te").columns[0].expression == "lower(a)"
    assert [r[0] for r in block(db.index_scan("te", equal=["hi"]), io)] == [1, 2]
    assert db.schema.index("tp").where == "b > 10"
    assert [r[0] for r in block(db.index_scan("tp", lower=Bound(0)), io)] == [2, 3]
    db.close()


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_every_page_size(tmp_path: Path, page_size: int) -> None:
    path = make_db(
        tmp_path / "sizes.db",
        [
            "CREATE TABLE t(a, b)",
            (
                "INSERT INTO t VALUES (?, ?)",
                [(i, b"z" * (i * 37 % (2 * page_size))) for i in range(60)],
                True,
            ),
        ],
        page_size=page_size,
    )
    io = MemoryIO()
    f = io.open_file("/db", OpenFlags.CREATE)
    block(WriteBuffers(f, 0, [path.read_bytes()], sync=False), io)
    db = open_db(io, "/db")
    assert db.header is not None and db.header.page_size == page_size
    assert block(db.scan("t"), io) == sqlite_rows(path, "SELECT rowid, * FROM t")


def test_reserved_bytes(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "reserved.db",
        [
            "CREATE TABLE t(a, b)",
            "CREATE INDEX ta ON t(a)",
            (
                "INSERT INTO t VALUES (?, ?)",
                [(f"{i:04}" * 30, b"q" * i * 7) for i in range(300)],
                True,
            ),
        ],
        page_size=1024,
        reserved=48,
    )
    io = UnixIO()
    db = open_db(io, path)
    assert db.header is not None and db.header.reserved_bytes == 48
    assert db.header.usable_size == 1024 - 48
    assert block(db.scan("t"), io) == sqlite_rows(path, "SELECT rowid, * FROM t")
    probe = f"{77:04}" * 30
    assert [r[0] for r in block(db.index_scan("ta", equal=[probe]), io)] == [78]
    db.close()


def test_vacuumed_and_freed_pages(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "freed.db",
        [
            "CREATE TABLE t(a, b)",
            ("INSERT INTO t VALUES (?, ?)", [(i, "w" * 900) for i in range(500)], True),
            "DELETE FROM t WHERE a % 3 = 0",
            "DELETE FROM t WHERE a BETWEEN 100 AND 300",
        ],
        page_size=1024,
    )
    io = UnixIO()
    db = open_db(io, path)
    assert db.header is not None and db.header.freelist_count > 0
    assert block(db.scan("t"), io) == sqlite_rows(path, "SELECT rowid, * FROM t")
    db.close()
    con = sqlite3.connect(path)
    con.execute("VACUUM")
    con.close()
    db = open_db(io, path)
    assert db.header is not None and db.header.freelist_count == 0
    assert block(db.scan("t"), io) == sqlite_rows(path, "SELECT rowid, * FROM t")
    db.close()


def test_stepping_after_done_or_abort(people: Path) -> None:
    io = UnixIO()
    frozen = open_db(io, people, immutable=True)
    op = frozen.get("people", 1)
    block(op, io)
    with pytest.raises(StateMachineError, match="after it finished"):
        op.step()
    memory = MemoryYieldIO()
    copy_into(memory, people, "/db")
    db = block(Database.open(memory, "/db", cache_pages=2), memory)
    scan = db.scan("people")
    assert isinstance(scan.step(), IO)
    scan.abort(RuntimeError("cancelled"))
    with pytest.raises(StateMachineError, match="after it failed"):
        scan.step()
    assert block(db.count("people"), memory) == 6  # the database is still usable


def _index_pages(
    db: Database, io: UnixIO, index: str, limit: int, **search: object
) -> list[list[object]]:
    """Every row the search finds, a page of `limit` at a time, each page continuing after
    the `last_entry` of the one before while `more` says there is one."""
    pages: list[list[object]] = []
    after = None
    while True:
        op = db.index_scan(index, limit=limit, after=after, **search)  # type: ignore[arg-type]
        rows = block(op, io)
        pages.append(rows)
        if not op.more:
            assert len(rows) <= limit
            return pages
        assert len(rows) == limit and op.last_entry is not None
        after = op.last_entry


def test_index_scan_pages_by_entry(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    every = block(db.index_scan("people_height_desc"), io)
    for limit in (1, 2, 5):
        pages = _index_pages(db, io, "people_height_desc", limit)
        assert [r for page in pages for r in page] == every
    # Equal values of the first column: the rowid in the entry tells them apart.
    ada = block(db.index_scan("people_name", equal=["ada"]), io)
    pages = _index_pages(db, io, "people_name", 1, equal=["ADA"])
    assert [r for page in pages for r in page] == ada and len(pages) == 2
    ranged = _index_pages(db, io, "people_height_desc", 1, lower=Bound(1.7), upper=Bound(1.8))
    assert [r[0] for page in ranged for r in page] == [
        r[0]
        for r in block(db.index_scan("people_height_desc", lower=Bound(1.7), upper=Bound(1.8)), io)
    ]
    # An entry from before the search's start does not take it further back.
    op = db.index_scan("people_name", equal=["dave"], after=("Ada", 1))
    assert [r[0] for r in block(op, io)] == [5]
    db.close()


def test_index_scan_searches_a_without_rowid_table_by_primary_key(people: Path) -> None:
    io = UnixIO()
    db = open_db(io, people)
    expected = sqlite_rows(people, "SELECT * FROM pairs WHERE b = 2 ORDER BY b, a")
    assert block(db.index_scan("pairs", equal=[2]), io) == expected
    assert block(db.index_scan("pairs", lower=Bound(3)), io) == sqlite_rows(
        people, "SELECT * FROM pairs WHERE b >= 3 ORDER BY b, a"
    )
    pages = _index_pages(db, io, "pairs", 3, equal=["2"])  # affinity: '2' is the integer 2
    assert [r for page in pages for r in page] == expected
    op = db.index_scan("pairs", equal=[2], limit=1)
    block(op, io)
    assert op.last_entry == (2, expected[0][0])  # the primary key (b, a), not the whole row
    db.close()
