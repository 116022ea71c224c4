"""Walks of the browsing pages (`queries/sorting.py`) against sqlite3's ORDER BY.

Tables of mixed values (integers, reals, texts under BINARY, NOCASE and RTRIM, blobs,
NULLs, long runs of one value) are walked a page at a time forward from the start and
backward from the end, with pages of several sizes: both must give exactly sqlite3's
order, which is the index's order.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridge import AsyncFileIO
from bridge.storage import AsyncDatabase
from core.storage import Bound, collation_key
from examples.service.databases import Entry
from examples.service.queries.midpoints import BOTTOM, below, between
from examples.service.queries.sorting import IndexOrder, KeyOrder, Order
from tests.service_helpers import walk_backward, walk_forward

ROWS = 400
WORDS = ["alpha", "Alpha", "beta ", "BETA", "été", "zeta", "", " ", "ω", "a\x00b", "yield"]


def _value(rng: random.Random) -> object:
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.randint(-3, 3)  # long runs of a few values
    if kind == 2:
        return rng.choice([rng.uniform(-1e6, 1e6), 0.5, -0.0, 2**62, -(2**63)])
    if kind == 3:
        return rng.randbytes(rng.randrange(4))
    return rng.choice(WORDS) + str(rng.randrange(50))


def _make(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, b, n TEXT COLLATE NOCASE, r TEXT COLLATE RTRIM);
            CREATE INDEX t_b ON t(b);
            CREATE INDEX t_n ON t(n);
            CREATE INDEX t_r ON t(r);
            CREATE TABLE w (k1 TEXT COLLATE NOCASE, k2 INTEGER, v, PRIMARY KEY (k1, k2))
                WITHOUT ROWID;
            """
        )
        for i in range(ROWS):
            rowid = rng.choice([i + 1, rng.randint(-(2**40), 2**40)])
            text = rng.choice(WORDS) + rng.choice(["", " ", "  ", str(rng.randrange(9))])
            conn.execute(
                "INSERT OR IGNORE INTO t VALUES (?, ?, ?, ?)",
                (rowid, _value(rng), None if i % 17 == 0 else text, text),
            )
            conn.execute(
                "INSERT OR IGNORE INTO w VALUES (?, ?, ?)",
                (rng.choice(WORDS), rng.randint(0, 30), i),
            )
        conn.commit()
    finally:
        conn.close()


@pytest_asyncio.fixture(params=[1, 2])
async def entry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Entry]:
    path = tmp_path / "walks.db"
    _make(path, request.param)
    async with AsyncFileIO() as io:
        db = await AsyncDatabase.open(io, path, immutable=True)
        try:
            yield Entry("walks", path, "upload", db)
        finally:
            db.close()


def _expected(entry: Entry, sql: str) -> list[Any]:
    conn = sqlite3.connect(entry.path)
    try:
        return [r[0] if len(r) == 1 else r for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def _index_order(entry: Entry, name: str, column: str, position: int, **bounds: Any) -> Order:
    table = entry.db.schema.table("t")
    index = next(i for i in entry.db.schema.indexes if i.name == name)
    collation = index.columns[0].collation or "BINARY"
    key = collation_key(collation, entry.db.db.codec)
    return IndexOrder(entry, table, index, column, position, key=key, **bounds)


CASES = [
    # A stored row of t is (rowid, id, b, n, r): the alias column holds the rowid too.
    ("t_b", "b", 2, "SELECT id FROM t ORDER BY b, id"),
    ("t_n", "n", 3, "SELECT id FROM t ORDER BY n COLLATE NOCASE, id"),
    ("t_r", "r", 4, "SELECT id FROM t ORDER BY r COLLATE RTRIM, id"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("n", [3, 64])
@pytest.mark.parametrize(("index", "column", "position", "sql"), CASES)
async def test_index_walks_both_ways(
    entry: Entry, index: str, column: str, position: int, sql: str, n: int
) -> None:
    expected = _expected(entry, sql)
    order = _index_order(entry, index, column, position)
    assert [r[0] for r in await walk_forward(order, n)] == expected
    assert [r[0] for r in await walk_backward(order, n)] == expected


@pytest.mark.asyncio
@pytest.mark.parametrize("n", [2, 50])
async def test_key_walks_both_ways(entry: Entry, n: int) -> None:
    table = entry.db.schema.table("t")
    order = KeyOrder(entry, table, "id")
    expected = _expected(entry, "SELECT id FROM t ORDER BY id")
    assert [r[0] for r in await walk_forward(order, n)] == expected
    assert [r[0] for r in await walk_backward(order, n)] == expected
    ranged = KeyOrder(entry, table, "id", Bound(-5, inclusive=False), Bound(2**39))
    expected = _expected(entry, f"SELECT id FROM t WHERE id > -5 AND id <= {2**39} ORDER BY id")
    assert [r[0] for r in await walk_forward(ranged, n)] == expected
    assert [r[0] for r in await walk_backward(ranged, n)] == expected
    w = entry.db.schema.table("w")
    keys = _expected(entry, "SELECT k1, k2 FROM w ORDER BY k1 COLLATE NOCASE, k2")
    order = KeyOrder(entry, w, "k1")
    assert [tuple(r[:2]) for r in await walk_forward(order, n)] == keys
    assert [tuple(r[:2]) for r in await walk_backward(order, n)] == keys


@pytest.mark.asyncio
async def test_ranges_of_an_index(entry: Entry) -> None:
    order = _index_order(
        entry, "t_n", "n", 3, lower=Bound("b", inclusive=True), upper=Bound("Z", inclusive=False)
    )
    expected = _expected(
        entry, "SELECT id FROM t WHERE n >= 'b' AND n < 'Z' ORDER BY n COLLATE NOCASE, id"
    )
    assert [r[0] for r in await walk_forward(order, 9)] == expected
    assert [r[0] for r in await walk_backward(order, 9)] == expected


def test_midpoints_are_strictly_between() -> None:
    binary = collation_key("BINARY", "utf-8")
    nocase = collation_key("NOCASE", "utf-8")
    pairs: list[tuple[Any, Any]] = [
        (1, 3),
        (-(2**63), 2**62),
        (0.5, 0.75),
        (float("-inf"), 3.5),
        (7, float("inf")),
        ("a", "b"),
        ("yiel", "yield wo"),
        ("", "\x7f"),
        ("abc", "abd"),
        (b"\x00", b"\x01"),
        (3, "a"),
        ("zz", b"\x00"),
    ]
    for key in (binary, nocase):
        for lo, hi in pairs:
            if not key(lo) < key(hi):
                continue
            mid: Any = between(lo, hi, key)
            if mid is not None:
                assert key(lo) < key(mid) < key(hi), (lo, hi, mid)
    assert between(1, 2, binary) is None
    # Under NOCASE the midpoint is taken among folded texts, never an upper-case letter.
    mid = between("Yiel", "Yield yi", nocase)
    assert isinstance(mid, str) and mid == mid.lower()
    assert below(100, 0, 10, binary) == 90
    assert below("abc", 0, 10, binary) == "ab"
    assert below("", 0, 10, binary) == float("inf")
    assert below(float("-inf"), 0, 10, binary) is BOTTOM
