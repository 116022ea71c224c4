"""B-tree cursors on real databases: deep trees at every page size, overflow chains,
read-ahead batching, and re-entrancy with every read deferred."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import block
from core.io import MemoryYieldIO, UnixIO
from core.storage import Bound, Database
from core.storage.btree import BTreeCursor
from tests.storage_helpers import (
    PAGE_SIZES,
    copy_into,
    drive_checked,
    make_db,
    open_db,
    sqlite_rows,
)


def _deep_db(tmp_path: Path, page_size: int) -> tuple[Path, int]:
    """A table (and an index) whose rows are about a twelfth of a page: three levels for
    pages up to 4096 bytes, two above."""
    width = page_size // 12
    rows = 16 * (page_size // 8) if page_size <= 4096 else 40
    path = make_db(
        tmp_path / f"deep{page_size}.db",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL)",
            "CREATE INDEX t_v ON t(v)",
            (
                "INSERT INTO t(v, n) VALUES (?, ?)",
                [(f"{i * 7919 % rows:08d}".ljust(width, "x"), i / 3) for i in range(rows)],
                True,
            ),
        ],
        page_size=page_size,
    )
    return path, rows


def _depth(db: Database, io: UnixIO, root: int, table: bool) -> int:
    cursor = BTreeCursor(db.pager, root, table=table, codec=db.codec, scan=True)
    assert cursor.rewind() is None  # UnixIO completes inline
    return len(cursor.pages)


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_deep_trees_read_like_sqlite(tmp_path: Path, page_size: int) -> None:
    path, rows = _deep_db(tmp_path, page_size)
    io = UnixIO()
    db = open_db(io, path)
    table = db.schema.table("t")
    index = db.schema.index("t_v")
    want_depth = 3 if page_size <= 4096 else 2
    assert _depth(db, io, table.root_page, True) >= want_depth
    assert _depth(db, io, index.root_page, False) >= want_depth
    expected = sqlite_rows(path, "SELECT rowid, * FROM t")
    assert block(db.scan("t"), io) == expected
    assert block(db.count("t"), io) == rows
    for probe in (expected[0][2], expected[rows // 2][2], expected[-1][2]):
        assert block(db.index_scan("t_v", equal=[probe]), io) == [
            r for r in expected if r[2] == probe
        ]
    for rowid in (1, rows // 3, rows, rows + 1):
        want = sqlite_rows(path, "SELECT rowid, * FROM t WHERE rowid = ?", (rowid,))
        assert block(db.get("t", rowid), io) == (want[0] if want else None)
    db.close()


@pytest.mark.parametrize("page_size", [512, 4096])
def test_deep_trees_with_every_read_deferred(tmp_path: Path, page_size: int) -> None:
    path, rows = _deep_db(tmp_path, page_size)
    memory = MemoryYieldIO()
    copy_into(memory, path, "/db")
    db = drive_checked(Database.open(memory, "/db", cache_pages=32, readahead=8), memory)
    expected = sqlite_rows(path, "SELECT rowid, * FROM t")
    assert drive_checked(db.scan("t"), memory) == expected
    assert drive_checked(db.count("t"), memory) == rows
    middle = expected[rows // 2]
    assert drive_checked(db.get("t", middle[0]), memory) == middle
    ordered = sqlite_rows(path, "SELECT rowid, * FROM t ORDER BY v, rowid")
    lower, upper = ordered[10][2], ordered[60][2]
    got = drive_checked(db.index_scan("t_v", lower=Bound(lower), upper=Bound(upper, False)), memory)
    assert got == ordered[10:60]


def test_scans_read_ahead_in_batches(tmp_path: Path) -> None:
    path, _rows = _deep_db(tmp_path, 1024)
    yields = {}
    for readahead in (0, 8):
        memory = MemoryYieldIO()
        copy_into(memory, path, "/db")
        db = drive_checked(Database.open(memory, "/db", readahead=readahead), memory)
        reads_before = db.pager.reads
        drive_checked(db.scan("t"), memory)
        yields[readahead] = drive_checked.yields  # type: ignore[attr-defined]
        leaves = db.pager.reads - reads_before
    assert leaves > 100
    assert yields[0] >= leaves - 5  # one wait per page
    assert yields[8] * 4 < yields[0]  # a wait per batch of leaves


def test_overflow_chains_in_tables_and_indexes(tmp_path: Path) -> None:
    big_text = ["k" * 3000 + str(i) for i in range(30)]
    path = make_db(
        tmp_path / "ovf.db",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, key TEXT, blob BLOB)",
            "CREATE INDEX t_key ON t(key)",
            "CREATE TABLE w(key TEXT PRIMARY KEY, n) WITHOUT ROWID",
            (
                "INSERT INTO t(key, blob) VALUES (?, ?)",
                [(k, bytes([i]) * (i * 997)) for i, k in enumerate(big_text)],
                True,
            ),
            ("INSERT INTO w VALUES (?, ?)", [(k, i) for i, k in enumerate(big_text)], True),
        ],
        page_size=1024,
    )
    memory = MemoryYieldIO()
    copy_into(memory, path, "/db")
    db = drive_checked(Database.open(memory, "/db", cache_pages=8), memory)
    assert drive_checked(db.scan("t"), memory) == sqlite_rows(path, "SELECT rowid, * FROM t")
    assert drive_checked(db.scan("w"), memory) == sqlite_rows(path, "SELECT * FROM w")
    probe = big_text[17]
    assert drive_checked(db.index_scan("t_key", equal=[probe]), memory) == sqlite_rows(
        path, "SELECT rowid, * FROM t WHERE key = ?", (probe,)
    )
    assert drive_checked(db.get("w", probe), memory) == (probe, 17)
    assert drive_checked(db.count("w"), memory) == 30


def test_empty_tables(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "empty.db",
        [
            "CREATE TABLE t(a)",
            "CREATE INDEX ta ON t(a)",
            "CREATE TABLE w(a PRIMARY KEY) WITHOUT ROWID",
        ],
    )
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.scan("t"), io) == []
    assert block(db.scan("w"), io) == []
    assert block(db.count("t"), io) == 0
    assert block(db.get("t", 1), io) is None
    assert block(db.get("w", "x"), io) is None
    assert block(db.index_scan("ta", equal=[1]), io) == []
    db.close()
