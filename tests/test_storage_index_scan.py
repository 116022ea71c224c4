"""A scan over a secondary index of a WITHOUT ROWID table fetches its rows in primary-key
order, so it reads each table page about once instead of once per row (counted in page
reads, on a table several times larger than the page cache)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core import block
from core.io import UnixIO
from core.storage import Database

ROWS = 4000
CACHE_PAGES = 64


def make(path: Path) -> None:
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA page_size = 512")
        c.execute(
            "CREATE TABLE t(k INTEGER, n INTEGER, v TEXT, w INTEGER, PRIMARY KEY(k DESC, n))"
            " WITHOUT ROWID"
        )
        c.execute("CREATE INDEX t_w ON t(w)")
        c.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(i % 97, i, f"value {i}", (i * 7919) % ROWS) for i in range(ROWS)],
        )
    c.close()


def reads(path: Path, scan: str) -> tuple[int, list[tuple[object, ...]]]:
    """Page reads of one scan on a cold cache, and its rows."""
    io = UnixIO()
    try:
        db = block(Database.open(io, path, cache_pages=CACHE_PAGES), io)
        try:
            block(db.read_schema(), io)
            before = db.pager.reads
            op = db.scan("t") if scan == "table" else db.index_scan("t_w")
            rows = block(op, io)
            return db.pager.reads - before, [tuple(r) for r in rows]
        finally:
            db.close()
    finally:
        io.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ix") / "db"
    make(path)
    return path


def test_index_scan_reads_the_table_about_once(database: Path) -> None:
    table_reads, table_rows = reads(database, "table")
    index_reads, index_rows = reads(database, "index")
    print(f"page reads: table scan {table_reads}, index scan {index_reads}")
    assert len(index_rows) == len(table_rows) == ROWS
    # The index scan reads the index and the table: within 3x of the table alone (a fetch
    # per row from the root read a page per row here, about 15x).
    assert index_reads <= 3 * table_reads


def test_index_scan_returns_what_sqlite_returns(database: Path) -> None:
    _, rows = reads(database, "index")
    c = sqlite3.connect(database)
    try:
        expected = c.execute("SELECT k, n, v, w FROM t INDEXED BY t_w ORDER BY w").fetchall()
    finally:
        c.close()
    assert rows == expected


def test_index_range_and_limit_keep_index_order(database: Path) -> None:
    io = UnixIO()
    try:
        db = block(Database.open(io, database, cache_pages=CACHE_PAGES), io)
        from core.storage.index_scan import Bound

        rows = block(db.index_scan("t_w", lower=Bound(100), upper=Bound(400, False), limit=50), io)
        db.close()
    finally:
        io.close()
    assert [r[3] for r in rows] == list(range(100, 150))


def test_a_range_smaller_than_the_file_is_looked_up_in_key_order(database: Path) -> None:
    """Fewer entries than the file has pages: the rows are looked up (in primary-key
    order) rather than picked out of a scan of the whole table."""
    from core.storage.index_scan import Bound

    io = UnixIO()
    try:
        db = block(Database.open(io, database, cache_pages=CACHE_PAGES), io)
        try:
            block(db.read_schema(), io)
            assert db.pager.page_count > 300
            before = db.pager.reads
            rows = block(db.index_scan("t_w", lower=Bound(1000), upper=Bound(1300, False)), io)
            reads = db.pager.reads - before
        finally:
            db.close()
    finally:
        io.close()
    c = sqlite3.connect(database)
    try:
        expected = c.execute(
            "SELECT k, n, v, w FROM t INDEXED BY t_w WHERE w >= 1000 AND w < 1300 ORDER BY w"
        ).fetchall()
    finally:
        c.close()
    assert [tuple(r) for r in rows] == expected
    print(f"page reads for 300 rows: {reads}")
    assert reads < len(expected)  # keys on the same leaf share its read
