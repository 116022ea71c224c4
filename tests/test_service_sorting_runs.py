"""Sorted walks through long runs of one value (`queries/sorting.py`): a page continues
from an index entry, so a page deep in a run of 5,000 equal values reads no more than
the run's first page, forward and backward; and walks of indexes of several columns
and of WITHOUT ROWID tables still give exactly sqlite3's ORDER BY.

What a page reads is counted twice: the rows the storage engine hands back (entries
visited) and the pages it reads from the file, with the page cache emptied first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridge import AsyncFileIO
from bridge.storage import AsyncDatabase, IndexPage
from core.storage import Bound, Row, collation_key
from examples.service.databases import Entry
from examples.service.queries.sorting import Cut, IndexOrder
from tests.service_helpers import walk_backward, walk_forward

pytestmark = pytest.mark.asyncio

RUN = 5000
BEFORE, AFTER = 300, 300
PAGE = 20


class CountingDatabase(AsyncDatabase):
    """Counts the rows the storage engine returns."""

    __slots__ = ("returned",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.returned = 0

    async def index_scan(self, index: str, **kwargs: Any) -> list[Row]:
        rows = await super().index_scan(index, **kwargs)
        self.returned += len(rows)
        return rows

    async def index_page(self, index: str, **kwargs: Any) -> IndexPage:
        page = await super().index_page(index, **kwargs)
        self.returned += len(page.rows)
        return page

    async def get(self, table: str, key: object) -> Row | None:
        row = await super().get(table, key)
        self.returned += row is not None
        return row


def _make(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, year INTEGER, tag TEXT, pad TEXT);
            CREATE INDEX t_year ON t(year);
            CREATE INDEX t_year_tag ON t(year, tag COLLATE NOCASE);
            CREATE TABLE w (k TEXT PRIMARY KEY, year INTEGER, pad TEXT) WITHOUT ROWID;
            CREATE INDEX w_year ON w(year);
            """
        )
        # A run of RUN rows of 2000 between smaller and larger years; rowids not in
        # the order of the run, and tags in runs of their own inside it.
        rows: list[tuple[int | None, int]] = [(1000 + i % 7, i) for i in range(BEFORE)]
        rows += [(2000, i) for i in range(RUN)]
        rows += [(3000 + i % 5, i) for i in range(AFTER)]
        rows += [(None, i) for i in range(40)]
        for n, (year, i) in enumerate(rows):
            rowid = (n * 7919) % 100_003 + 1
            tag = ["a", "B", "c"][i % 3] if i % 11 else None
            conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (rowid, year, tag, "x" * 40))
            conn.execute("INSERT INTO w VALUES (?, ?, ?)", (f"k{rowid:06d}", year, "y" * 40))
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "runs.db"
    _make(path)
    return path


@pytest_asyncio.fixture
async def entry(db_file: Path) -> AsyncIterator[Entry]:
    async with AsyncFileIO() as io:
        db = await CountingDatabase.open(io, db_file, immutable=True, cache_pages=4096)
        try:
            yield Entry("runs", db_file, "upload", db)
        finally:
            db.close()


def _order(entry: Entry, table: str, index: str, position: int, **bounds: Any) -> IndexOrder:
    info = entry.db.schema.table(table)
    found = next(i for i in entry.db.schema.indexes if i.name == index)
    key = collation_key("BINARY", entry.db.db.codec)
    return IndexOrder(entry, info, found, "year", position, key=key, **bounds)


def _expected(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


async def _cost(entry: Entry, read: Any) -> tuple[int, int, list[Row]]:
    """The rows the engine returned and the pages it read for `read()`, from an empty
    page cache; and the rows `read()` walked."""
    db = entry.db
    assert isinstance(db, CountingDatabase)
    db.db.pager.invalidate()
    rows_before, pages_before = db.returned, db.db.pager.reads
    walked, _ = await read()
    return db.returned - rows_before, db.db.pager.reads - pages_before, [w.row for w in walked]


def _cut(order: IndexOrder, row: Row, skip: int) -> Cut:
    """The cut before (0) or after (1) a row, as a page's token carries it."""
    return order.cut_of(order.token(Cut(None, skip, order.entry_of(row))), "_next")


async def test_a_deep_page_reads_no_more_than_the_first(entry: Entry, db_file: Path) -> None:
    order = _order(entry, "t", "t_year", 2)
    run = _expected(db_file, "SELECT id FROM t WHERE year = 2000 ORDER BY year, id")
    assert len(run) == RUN
    rows = {r[0]: r for r in await walk_forward(order, 500)}

    # Forward: the first page of the run starts after the last row before it; a deep
    # page after a row 4,000 rows into it.
    (last_before,) = _expected(
        db_file, "SELECT id FROM t WHERE year < 2000 ORDER BY year DESC, id DESC LIMIT 1"
    )
    first_rows, first_pages, first = await _cost(
        entry, lambda: order.forward(_cut(order, rows[last_before], 1), PAGE)
    )
    assert [r[0] for r in first] == run[:PAGE]
    deep_rows, deep_pages, deep = await _cost(
        entry, lambda: order.forward(_cut(order, rows[run[3999]], 1), PAGE)
    )
    assert [r[0] for r in deep] == run[4000 : 4000 + PAGE]
    assert deep_rows <= first_rows
    assert deep_pages <= first_pages

    # Backward: the page before a row 4,000 rows into the run, against the page before
    # the first row after the run (the run's last page, read backward).
    (first_after,) = _expected(
        db_file, "SELECT id FROM t WHERE year > 2000 ORDER BY year, id LIMIT 1"
    )
    end_rows, end_pages, end = await _cost(
        entry, lambda: order.backward(_cut(order, rows[first_after], 0), PAGE)
    )
    assert [r[0] for r in end] == run[-PAGE:]
    back_rows, back_pages, back = await _cost(
        entry, lambda: order.backward(_cut(order, rows[run[4000]], 0), PAGE)
    )
    assert [r[0] for r in back] == run[4000 - PAGE : 4000]
    assert back_rows <= end_rows
    assert back_pages <= end_pages
    # A window of rows for each probe of the bisection, never the run up to the row.
    assert back_rows < RUN // 4


async def test_walking_back_across_the_whole_run(entry: Entry, db_file: Path) -> None:
    # More than BACKWARD_CAP once refused; now each page is bounded by its entry.
    order = _order(entry, "t", "t_year", 2, lower=Bound(1500), upper=Bound(2500))
    expected = _expected(
        db_file, "SELECT id FROM t WHERE year >= 1500 AND year <= 2500 ORDER BY year, id"
    )
    assert [r[0] for r in await walk_backward(order, 250)] == expected


@pytest.mark.parametrize("n", [25, 400])
async def test_walks_match_sqlite(entry: Entry, db_file: Path, n: int) -> None:
    cases: Sequence[tuple[str, str, int, str]] = [
        ("t", "t_year", 2, "SELECT id FROM t ORDER BY year, id"),
        ("t", "t_year_tag", 2, "SELECT id FROM t ORDER BY year, tag COLLATE NOCASE, id"),
        ("w", "w_year", 1, "SELECT k FROM w ORDER BY year, k"),
    ]
    for table, index, position, sql in cases:
        # A stored row starts with its key: the rowid of t, k of w.
        order = _order(entry, table, index, position)
        expected = _expected(db_file, sql)
        assert [r[0] for r in await walk_forward(order, n)] == expected, index
        assert [r[0] for r in await walk_backward(order, n)] == expected, index


async def test_a_cut_before_or_after_a_row_keeps_the_row_on_its_side(entry: Entry) -> None:
    for table, index, position in (("t", "t_year_tag", 2), ("w", "w_year", 1)):
        order = _order(entry, table, index, position)
        rows = await walk_forward(order, 500)
        for middle in (rows[10], rows[BEFORE + 2500], rows[-5]):
            ahead, _ = await order.forward(_cut(order, middle, 0), 3)
            assert ahead[0].row == middle, index
            behind, _ = await order.backward(_cut(order, middle, 1), 3)
            assert behind[-1].row == middle, index
            behind, _ = await order.backward(_cut(order, middle, 0), 3)
            assert [w.row for w in behind] == rows[rows.index(middle) - 3 : rows.index(middle)]
