"""Lookups page by key: a deep page reads what the first one does, and a WITHOUT ROWID
table is searched by its primary key. Work is bounded by the pager's page-read counter
(a page cache too small to hold the table), never by time."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from examples.service import models
from examples.service.app import create_app
from examples.service.encoding import decode_cell
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from tests.service_helpers import asgi_client

pytestmark = pytest.mark.asyncio

RUN = 1500
"""Rows sharing one value of the indexed column."""


def _make_runs(path: Path) -> Path:
    """`t(id, v, w, pad)`: RUN rows with v = 1 (and w = 7), then a few others; one-column
    index on v, two-column index on w, v. The pad spreads the rows over many pages."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, w INTEGER, pad TEXT);
            CREATE INDEX t_v ON t(v);
            CREATE INDEX t_wv ON t(w, v);
            """
        )
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            (
                (i, 1 if i <= RUN else 2, 7 if i <= RUN else 8, f"{i:06d}" * 40)
                for i in range(1, RUN + 50)
            ),
        )
        conn.commit()
    return path


@pytest_asyncio.fixture
async def runs(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    data = tmp_path / "data"
    data.mkdir()
    _make_runs(data / "sample.db")
    settings = Settings.from_env({}, data_dir=data, create_sample=False, cache_pages=8)
    app = create_app(settings)
    async with asgi_client(app) as c:
        yield c


def _page_reads(client: httpx.AsyncClient) -> int:
    entry = client.app.state.databases.entries["sample"]  # type: ignore[attr-defined]
    reads: int = entry.db.db.pager.reads
    return reads


async def _pages_with_reads(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> tuple[list[list[Any]], list[int]]:
    """Every row the lookup finds, and the pages read for each page of them."""
    rows: list[list[Any]] = []
    reads: list[int] = []
    query = dict(params)
    for _ in range(1000):
        before = _page_reads(client)
        r = await client.get("/databases/sample/tables/t/lookup", params=query)
        reads.append(_page_reads(client) - before)
        assert r.status_code == 200, r.text
        body = r.json()
        rows.extend(body["rows"])
        if body["next_after"] is None:
            return rows, reads
        query = {**params, "after": body["next_after"]}
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize(
    "params",
    [
        {"column": "v", "eq": "1"},  # an equality on a one-column index
        {"column": "v", "ge": "1", "lt": "2"},  # a range inside one run of equal values
        {"column": "w", "eq": "7"},  # the run continues over the second column too
    ],
    ids=["eq-one-column", "range-in-a-run", "eq-two-columns"],
)
async def test_a_deep_page_reads_no_more_than_the_first(
    runs: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    rows, reads = await _pages_with_reads(runs, {**params, "limit": 50})
    assert [r[0] for r in rows] == list(range(1, RUN + 1))
    assert len(reads) == RUN // 50
    # Each page is one seek past the last entry: page 30 reads what page 2 does (the
    # first may read a little more, the index's upper levels not yet cached).
    assert max(reads[1:]) <= reads[0], reads


async def test_a_token_of_another_search_never_reaches_before_its_start(
    runs: httpx.AsyncClient,
) -> None:
    first = await runs.get("/databases/sample/tables/t/lookup", params={"column": "v", "eq": "1"})
    token = first.json()["next_after"]
    r = await runs.get(
        "/databases/sample/tables/t/lookup", params={"column": "v", "eq": "2", "after": token}
    )
    assert r.status_code == 200
    assert {row[1] for row in r.json()["rows"]} == {2}
    assert len(r.json()["rows"]) == 49


# -- WITHOUT ROWID tables by primary key ------------------------------------------------


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_sample_database(tmp_path_factory.mktemp("sample") / "sample.db", rows=500)


@pytest_asyncio.fixture
async def sample(tmp_path: Path, sample_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_file, data / "sample.db")
    app = create_app(Settings.from_env({}, data_dir=data, create_sample=False))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as c,
    ):
        yield c


async def _all(client: httpx.AsyncClient, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    query = dict(params)
    while True:
        r = await client.get("/databases/sample/tables/reviews/lookup", params=query)
        assert r.status_code == 200, r.text
        body = models.LookupPage.model_validate(r.json())
        assert body.strategy == "primary key" and body.index is None
        assert body.index_columns == ["book_id", "reviewer"]
        rows.extend(tuple(decode_cell(v) for v in row) for row in r.json()["rows"])
        if body.next_after is None:
            return rows
        query = {**params, "after": body.next_after}


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"eq": "11"}, "book_id = 11"),
        ({"gt": "490"}, "book_id > 490"),
        ({"ge": "490"}, "book_id >= 490"),
        ({"lt": "5"}, "book_id < 5"),
        ({"le": "5"}, "book_id <= 5"),
        ({"gt": "20", "le": "31"}, "book_id > 20 AND book_id <= 31"),
    ],
)
async def test_without_rowid_lookup_by_primary_key(
    sample: httpx.AsyncClient, sample_file: Path, params: dict[str, str], where: str
) -> None:
    found = await _all(sample, {"column": "book_id", "limit": 2, **params})
    with closing(sqlite3.connect(sample_file)) as conn:
        expected = conn.execute(
            f"SELECT * FROM reviews WHERE {where} ORDER BY book_id, reviewer"
        ).fetchall()
    assert expected and found == expected


async def test_without_rowid_table_lists_its_key_as_a_lookup_column(
    sample: httpx.AsyncClient,
) -> None:
    r = await sample.get("/databases/sample/tables/reviews")
    assert r.json()["lookup_columns"] == ["book_id", "stars"]


# -- several leading columns -------------------------------------------------------------


async def _search(
    client: httpx.AsyncClient, table: str, params: list[tuple[str, str]]
) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Every row of a lookup whose parameters repeat, paged two at a time."""
    rows: list[tuple[Any, ...]] = []
    query = [*params, ("limit", "2")]
    first: dict[str, Any] | None = None
    while True:
        r = await client.get(f"/databases/sample/tables/{table}/lookup", params=tuple(query))
        assert r.status_code == 200, r.text
        body = r.json()
        first = first or body
        rows.extend(tuple(decode_cell(v) for v in row) for row in body["rows"])
        if body["next_after"] is None:
            return rows, first
        query = [*params, ("limit", "2"), ("after", body["next_after"])]


@pytest.mark.parametrize(
    ("table", "params", "sql"),
    [
        (
            "reviews",
            [("column", "book_id"), ("column", "reviewer"), ("eq", "11"), ("ge", "c")],
            "SELECT * FROM reviews WHERE book_id = 11 AND reviewer >= 'c' "
            "ORDER BY book_id, reviewer",
        ),
        (
            "reviews",
            [("column", "book_id"), ("column", "REVIEWER"), ("eq", "11"), ("eq", "eve")],
            "SELECT * FROM reviews WHERE book_id = 11 AND reviewer = 'eve'",
        ),
        (
            "books",
            [("column", "year"), ("column", "price"), ("eq", "1955"), ("lt", "80")],
            "SELECT * FROM books WHERE year = 1955 AND price < 80 ORDER BY year, price, id",
        ),
    ],
)
async def test_a_search_on_leading_columns(
    sample: httpx.AsyncClient,
    sample_file: Path,
    table: str,
    params: list[tuple[str, str]],
    sql: str,
) -> None:
    found, first = await _search(sample, table, params)
    with closing(sqlite3.connect(sample_file)) as conn:
        expected = conn.execute(sql).fetchall()
    assert expected and found == expected
    assert first["searched"] == [v for k, v in params if k == "column"]


@pytest.mark.parametrize(
    ("table", "params", "says"),
    [
        ("books", [("column", "title"), ("column", "year"), ("eq", "a"), ("eq", "1")], "no index"),
        ("books", [("column", "year"), ("column", "price"), ("eq", "1990")], "one eq per column"),
        ("books", [("column", "id"), ("column", "year"), ("eq", "1"), ("eq", "2")], "the rowid"),
        ("reviews", [("column", "reviewer"), ("eq", "chen")], "no index"),
    ],
)
async def test_a_search_its_index_cannot_answer_is_a_422(
    sample: httpx.AsyncClient, table: str, params: list[tuple[str, str]], says: str
) -> None:
    r = await sample.get(f"/databases/sample/tables/{table}/lookup", params=tuple(params))
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]
