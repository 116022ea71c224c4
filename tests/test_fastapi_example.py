"""`examples/fastapi_app.py`, the FastAPI recipe of docs/fastapi.md, run in-process (httpx's
ASGITransport, asgi-lifespan for the lifespan) on asyncio, uvloop and trio: its answers match
sqlite3's, a file opened per request is closed again, and after shutdown no descriptor and no
thread of the backend is left."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from core import CompletionError
from examples.fastapi_app import app


def _make(path: Path, rows: int) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
    conn.executemany(
        "INSERT INTO items VALUES (?, ?, ?)",
        ((i, f"item {i}", bytes([i % 256])) for i in range(1, rows + 1)),
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two small databases, `shop` (300 rows) and `tiny` (2 rows), for the lifespan to open."""
    paths = [_make(tmp_path / "shop.db", 300), _make(tmp_path / "tiny.db", 2)]
    monkeypatch.setenv("IORESULT_DATABASES", os.pathsep.join(map(str, paths)))
    yield


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


async def _exercise() -> None:
    fds, threads = _fds(), _threads()
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        assert (await client.get("/shop/tables/items/count")).json() == 300
        assert (await client.get("/tiny/tables/items/count")).json() == 2
        got = await client.get("/shop/tables/items/rows/7")
        assert got.status_code == 200
        assert got.json() == [7, 7, "item 7", {"$base64": True, "encoded": "Bw=="}]
        missing = await client.get("/shop/tables/items/rows/301")
        assert missing.status_code == 404
        assert "no row 301" in missing.json()["detail"]
        assert (await client.get("/nope/tables/items/count")).status_code == 404
        unknown = await client.get("/shop/tables/nope/count")
        assert unknown.status_code == 404
        assert "nope" in unknown.json()["detail"]

        header = await client.get("/shop/header")
        assert header.json() == {"magic": "SQLite format 3", "page_size": 4096}
        # Every request opens the file and closes it again: the count of open descriptors
        # stays where it was after the first one.
        assert (await client.get("/shop/magic")).json() == "SQLite format 3"
        serving = _fds()
        for _ in range(20):
            assert (await client.get("/tiny/header")).status_code == 200
            assert (await client.get("/tiny/magic")).status_code == 200
        assert _fds() == serving
    leaked = [t.name for t in _threads() - threads if t.is_alive()]
    assert leaked == []
    assert _fds() == fds


@pytest.mark.asyncio
async def test_fastapi_example_on_asyncio(databases: None, file_engine: str) -> None:
    """On asyncio and uvloop, with each engine of `AsyncFileIO` (its threads or its ring)."""
    await _exercise()


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.mark.anyio
async def test_fastapi_example_on_trio(databases: None) -> None:
    """Starlette runs on anyio, so an ASGI server that runs the application on trio (such
    as hypercorn's trio worker) runs the same code: `drive` finds trio through sniffio."""
    await _exercise()


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_startup_fails_cleanly_on_a_missing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that cannot be opened stops the startup, and what was opened before it
    (the backend, the first database) is closed again."""
    fds, threads = _fds(), _threads()
    good = _make(tmp_path / "good.db", 1)
    monkeypatch.setenv("IORESULT_DATABASES", os.pathsep.join([str(good), str(tmp_path / "x.db")]))
    with pytest.raises(CompletionError, match=r"x\.db"):
        async with LifespanManager(app):
            pass
    assert [t.name for t in _threads() - threads if t.is_alive()] == []
    assert _fds() == fds
