"""The JSON of one answer is bounded by `max_answer_bytes`: a page of large rows stops
short of `limit` and continues where it stopped, and a row larger than the bound alone is
a 413 that names the setting and the row's key."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from examples.service.app import create_app
from examples.service.encoding import decode_cell, dumps
from examples.service.queries.answer_size import cell_size, row_size
from examples.service.settings import Settings, SettingsError

pytestmark = pytest.mark.asyncio

MAX = 1024 * 1024
"""The tests' `max_answer_bytes`."""
ROWS = 200
CELL = 100_000
"""Bytes (or characters) of each large cell."""
HUGE = 2 * MAX
"""A cell larger than the bound alone."""
MARGIN = 1024
"""Bytes a page's body may take beyond its rows: names, columns, links."""


def _make(path: Path) -> Path:
    """`big`: ROWS rows of CELL-sized blobs and texts, indexed on `kind`; `keyed`: the same
    as a WITHOUT ROWID table; `mixed`: small rows around one larger than the bound."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE big (id INTEGER PRIMARY KEY, kind INTEGER, body);
            CREATE INDEX big_kind ON big(kind);
            CREATE TABLE keyed (k TEXT PRIMARY KEY, body) WITHOUT ROWID;
            CREATE TABLE mixed (id INTEGER PRIMARY KEY, kind INTEGER, body TEXT);
            CREATE INDEX mixed_kind ON mixed(kind);
            """
        )
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            (
                (i, i % 3, bytes([i % 251]) * CELL if i % 2 else chr(97 + i % 26) * CELL)
                for i in range(1, ROWS + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO keyed VALUES (?, ?)",
            ((f"k{i:04d}", f"{i}" * (CELL // len(str(i)))) for i in range(ROWS)),
        )
        conn.executemany(
            "INSERT INTO mixed VALUES (?, ?, ?)",
            [(1, 5, "small"), (2, 5, "x" * HUGE), (3, 5, "small too")],
        )
        conn.commit()
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    return _make(data / "sample.db")


@pytest_asyncio.fixture
async def client(db_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env(
        {}, data_dir=db_path.parent, create_sample=False, max_answer_bytes=MAX
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as c,
    ):
        yield c


def _expected(db_path: Path, sql: str, *args: object) -> list[list[Any]]:
    with closing(sqlite3.connect(db_path)) as conn:
        return [list(r) for r in conn.execute(sql, args)]


def _decoded(rows: list[list[Any]]) -> list[list[Any]]:
    return [[decode_cell(v) for v in row] for row in rows]


def _rows_bytes(rows: list[list[Any]]) -> int:
    return len(json.dumps(rows, separators=(",", ":")))


async def _follow(
    client: httpx.AsyncClient, url: str, *, web: bool = False
) -> tuple[list[list[Any]], int]:
    """Every row the pages from `url` hold, following `next`, and how many pages; `web`:
    the table pages' `.json`, whose rows' `keys` count against the bound too."""
    rows: list[list[Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        answer = await client.get(next_url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        assert body["rows"], "a page holds at least one row"
        keys = _rows_bytes(body["keys"]) if web else 0
        assert _rows_bytes(body["rows"]) + keys <= MAX
        assert len(answer.content) <= MAX + MARGIN
        rows += _decoded(body["rows"])
        next_url = body["next"]
        assert pages <= ROWS, "the pages do not end"
    return rows, pages


async def test_a_page_of_large_rows_stops_at_the_bound(client: httpx.AsyncClient) -> None:
    answer = await client.get("/databases/sample/tables/big/rows", params={"limit": 1000})
    assert answer.status_code == 200
    body = answer.json()
    n = len(body["rows"])
    assert 1 < n < ROWS
    assert _rows_bytes(body["rows"]) <= MAX
    assert len(answer.content) <= MAX + MARGIN
    # Full: the next row would not have fitted.
    after = await client.get(
        "/databases/sample/tables/big/rows", params={"limit": 1, "after": body["next_after"]}
    )
    following = after.json()["rows"][0]
    assert _rows_bytes([*body["rows"], following]) > MAX
    assert body["next_after"] == body["rows"][-1][0]


async def test_following_next_reads_every_row_once(
    client: httpx.AsyncClient, db_path: Path
) -> None:
    rows, pages = await _follow(client, "/databases/sample/tables/big/rows?limit=1000")
    assert rows == _expected(db_path, "SELECT id, kind, body FROM big ORDER BY id")
    assert pages > 1


async def test_without_rowid_pages_follow_the_bound(
    client: httpx.AsyncClient, db_path: Path
) -> None:
    rows, pages = await _follow(client, "/databases/sample/tables/keyed/rows?limit=1000")
    assert rows == _expected(db_path, "SELECT k, body FROM keyed ORDER BY k")
    assert pages > 1


async def test_a_row_limit_smaller_than_the_bound_still_rules(client: httpx.AsyncClient) -> None:
    body = (await client.get("/databases/sample/tables/big/rows", params={"limit": 3})).json()
    assert [r[0] for r in body["rows"]] == [1, 2, 3]
    assert body["next_after"] == 3


async def test_lookups_through_an_index_follow_the_bound(
    client: httpx.AsyncClient, db_path: Path
) -> None:
    url = "/databases/sample/tables/big/lookup?column=kind&eq=1&limit=1000"
    rows, pages = await _follow(client, url)
    assert rows == _expected(db_path, "SELECT id, kind, body FROM big WHERE kind = 1 ORDER BY id")
    assert pages > 1
    url = "/databases/sample/tables/big/lookup?column=kind&ge=1&limit=1000"
    rows, pages = await _follow(client, url)
    expected = "SELECT id, kind, body FROM big WHERE kind >= 1 ORDER BY kind, id"
    assert rows == _expected(db_path, expected)
    assert pages > 1


async def test_lookups_by_rowid_and_primary_key_follow_the_bound(
    client: httpx.AsyncClient, db_path: Path
) -> None:
    url = "/databases/sample/tables/big/lookup?column=id&ge=10&lt=150&limit=1000"
    rows, pages = await _follow(client, url)
    expected = "SELECT id, kind, body FROM big WHERE id >= 10 AND id < 150 ORDER BY id"
    assert rows == _expected(db_path, expected)
    assert pages > 1
    url = "/databases/sample/tables/keyed/lookup?column=k&ge=k0050&limit=1000"
    rows, pages = await _follow(client, url)
    assert rows == _expected(db_path, "SELECT k, body FROM keyed WHERE k >= 'k0050' ORDER BY k")
    assert pages > 1


def _names_the_row(answer: httpx.Response, key: str) -> None:
    assert answer.status_code == 413, answer.text
    detail = answer.json()["detail"]
    assert "max_answer_bytes" in detail
    assert "IORESULT_MAX_ANSWER_BYTES" in detail
    assert key in detail
    assert "'mixed'" in detail


async def test_a_row_larger_than_the_bound_is_refused(client: httpx.AsyncClient) -> None:
    base = "/databases/sample/tables/mixed"
    first = (await client.get(f"{base}/rows", params={"limit": 10})).json()
    assert [r[0] for r in first["rows"]] == [1]
    assert first["next_after"] == 1
    _names_the_row(await client.get(first["next"]), "rowid 2")
    _names_the_row(await client.get(f"{base}/rows/2"), "rowid 2")
    assert (await client.get(f"{base}/rows/3")).json()["row"] == [3, 5, "small too"]
    after = await client.get(f"{base}/rows", params={"after": 2})
    assert [r[0] for r in after.json()["rows"]] == [3]


async def test_a_lookup_of_a_row_larger_than_the_bound_is_refused(
    client: httpx.AsyncClient,
) -> None:
    base = "/databases/sample/tables/mixed"
    first = (await client.get(f"{base}/lookup", params={"column": "kind", "eq": 5})).json()
    assert [r[0] for r in first["rows"]] == [1]
    _names_the_row(await client.get(first["next"]), "rowid 2")
    _names_the_row(await client.get(f"{base}/lookup", params={"column": "id", "eq": 2}), "rowid 2")
    ranged = (await client.get(f"{base}/lookup", params={"column": "id", "ge": 1})).json()
    assert [r[0] for r in ranged["rows"]] == [1]
    _names_the_row(await client.get(ranged["next"]), "rowid 2")


async def test_the_row_page_json_is_refused_too(client: httpx.AsyncClient) -> None:
    _names_the_row(await client.get("/browse/sample/mixed/row/2.json"), "rowid 2")


async def test_the_openapi_schema_declares_413(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/databases/{database}/tables/{table}/rows",
        "/databases/{database}/tables/{table}/rows/{key}",
        "/databases/{database}/tables/{table}/lookup",
    ):
        assert "413" in paths[path]["get"]["responses"], path


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -7,
        12345678901234567890,
        1.5,
        -0.0,
        1e300,
        float("inf"),
        float("nan"),
        "",
        "plain text",
        'quotes " and \\ backslash',
        "control\x01\n\x7f",
        "non-ascii é ✓ 😀",
        b"",
        b"\x00\x01\x02",
        b"x" * 1000,
    ],
)
async def test_cell_sizes_are_the_encoded_sizes(value: object) -> None:
    assert cell_size(value) == len(dumps(value))
    row = [value, value, 1]
    assert row_size(row) - 1 == len(dumps(row))


async def test_the_setting_is_read_and_checked() -> None:
    assert Settings().max_answer_bytes == 8 * 1024 * 1024
    assert Settings.from_env({"IORESULT_MAX_ANSWER_BYTES": "4096"}).max_answer_bytes == 4096
    with pytest.raises(SettingsError, match="IORESULT_MAX_ANSWER_BYTES"):
        Settings.from_env({"IORESULT_MAX_ANSWER_BYTES": "lots"})
    with pytest.raises(SettingsError, match="max_answer_bytes"):
        Settings.from_env({"IORESULT_MAX_ANSWER_BYTES": "0"})


async def test_table_pages_json_follow_the_bound(client: httpx.AsyncClient, db_path: Path) -> None:
    rows, pages = await _follow(client, "/browse/sample/big.json?_size=1000", web=True)
    assert rows == _expected(db_path, "SELECT id, kind, body FROM big ORDER BY id")
    assert pages > 1
    rows, pages = await _follow(client, "/browse/sample/keyed.json?_size=1000", web=True)
    assert rows == _expected(db_path, "SELECT k, body FROM keyed ORDER BY k")
    assert pages > 1
    rows, pages = await _follow(client, "/browse/sample/big.json?_size=1000&_sort=kind", web=True)
    assert rows == _expected(db_path, "SELECT id, kind, body FROM big ORDER BY kind, id")
    assert pages > 1


async def test_a_table_page_of_a_row_larger_than_the_bound_is_refused(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.get("/browse/sample/mixed.json")).json()
    assert [r[0] for r in first["rows"]] == [1]
    _names_the_row(await client.get(first["next"]), "rowid 2")
    csv = await client.get("/browse/sample/mixed.csv")
    assert csv.status_code == 200
    assert len(csv.text.splitlines()) == 2


async def test_a_previous_table_page_ends_right_before_the_page(
    client: httpx.AsyncClient,
) -> None:
    url: str = "/browse/sample/big.json?_size=1000"
    for _ in range(3):
        body = (await client.get(url)).json()
        url = body["next"]
    first_id = body["rows"][0][0]
    back = (await client.get(body["previous"])).json()
    ids = [r[0] for r in back["rows"]]
    assert ids == list(range(first_id - len(ids), first_id))
    assert 1 < len(ids) < first_id
    assert _rows_bytes(back["rows"]) <= MAX
