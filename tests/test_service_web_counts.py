"""The row counts of the database and table pages: read once, then kept until the
database changes, whoever changes it (the service's own writes, or another process).

Counted in pages read from the file, with a page cache far smaller than the table, so a
count that reads the table shows up as reads on every view.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.service.app import create_app
from examples.service.settings import Settings
from tests.service_helpers import asgi_client

pytestmark = pytest.mark.asyncio

ROWS = 3000
TOKEN = "count-write-token"
TABLE_PAGES = 100
"""Fewer than the leaves of `t` (3,000 rows of over 200 bytes, 4 KiB pages)."""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    with closing(sqlite3.connect(data / "sample.db")) as conn:
        conn.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);"
            "CREATE TABLE small (id INTEGER PRIMARY KEY);"
            "INSERT INTO small VALUES (1);"
        )
        conn.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 200,)] * ROWS)
        conn.commit()
    return data


@asynccontextmanager
async def _serve(data_dir: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env(
        {}, data_dir=data_dir, create_sample=False, cache_pages=16, **overrides
    )
    app = create_app(settings)
    async with asgi_client(app) as c:
        yield c


def _reads(client: httpx.AsyncClient) -> int:
    entry = client.app.state.databases.entries["sample"]  # type: ignore[attr-defined]
    reads: int = entry.db.db.pager.reads
    return reads


async def _view(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, int]:
    before = _reads(client)
    r = await client.get(url)
    assert r.status_code == 200, r.text
    return r, _reads(client) - before


def _tables(r: httpx.Response) -> dict[str, int | None]:
    return {t["name"]: t["rows"] for t in r.json()["tables"]}


async def test_the_database_page_counts_once_until_a_change(data_dir: Path) -> None:
    async with _serve(data_dir) as c:
        first, reads = await _view(c, "/browse/sample.json")
        assert _tables(first) == {"t": ROWS, "small": 1}
        assert reads > TABLE_PAGES  # far larger than the cache: the table was read
        second, reads = await _view(c, "/browse/sample.json")
        assert _tables(second) == {"t": ROWS, "small": 1}
        assert reads == 0
        # Another process adds a row: the next view counts again, and sees it.
        with closing(sqlite3.connect(data_dir / "sample.db")) as conn:
            conn.execute("INSERT INTO t (body) VALUES ('new')")
            conn.commit()
        third, reads = await _view(c, "/browse/sample.json")
        assert _tables(third) == {"t": ROWS + 1, "small": 1}
        assert reads > TABLE_PAGES
        _, reads = await _view(c, "/browse/sample.json")
        assert reads == 0


async def test_the_table_page_counts_once_until_a_write(data_dir: Path) -> None:
    async with _serve(data_dir, write_token=TOKEN) as c:
        first, reads = await _view(c, "/browse/sample/t.json?_size=5")
        assert first.json()["total"] == ROWS
        assert reads > TABLE_PAGES
        # The page itself reads its rows (a leaf, and the next ones read ahead); the
        # count reads nothing.
        again, reads = await _view(c, "/browse/sample/t.json?_size=5")
        assert again.json()["total"] == ROWS
        assert reads <= 20
        # The service's own write (WAL mode: the log moves on) is seen.
        r = await c.post(
            "/databases/sample/tables/t/rows",
            json={"values": {"body": "mine"}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code == 201, r.text
        after, reads = await _view(c, "/browse/sample/t.json?_size=5")
        assert after.json()["total"] == ROWS + 1
        assert reads > TABLE_PAGES
        r = await c.delete(
            "/databases/sample/tables/t/rows/1", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert r.status_code == 204
        last, _ = await _view(c, "/browse/sample/t.json?_size=5")
        assert last.json()["total"] == ROWS
