"""Streaming exports and clients that go away: against a real uvicorn on 127.0.0.1, and
against the ASGI application driven by hand with an `http.disconnect`.

Work is bounded by counting: `AsyncDatabase.drives` counts the page-of-rows reads an
export made; a complete export of the wide table takes `PAGES` of them.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import struct
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from examples.service.app import create_app
from examples.service.databases import Databases
from examples.service.settings import Settings
from examples.service.testing import make_wide_database, serve_in_thread
from tests.service_helpers import http_scope

ROWS = 4000
PAGE_ROWS = 50
PAGES = ROWS // PAGE_ROWS  # drives of a complete export (the last one comes back short)


@pytest.fixture(scope="module")
def wide_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 MB: far more than socket buffers hold."""
    return make_wide_database(tmp_path_factory.mktemp("wide") / "wide.db", rows=ROWS)


@pytest.fixture
def data_dir(tmp_path: Path, wide_file: Path) -> Path:
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    (data / "uploads" / "wide.db").write_bytes(wide_file.read_bytes())
    return data


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings.from_env(
        {}, data_dir=data_dir, create_sample=False, export_page_rows=PAGE_ROWS, **overrides
    )


def _wait_until(predicate: Any, what: str, attempts: int = 2000) -> None:
    """Poll `predicate` (a guard against hangs, not a timing assertion)."""
    pause = threading.Event()
    for _ in range(attempts):
        if predicate():
            return
        pause.wait(0.005)
    raise AssertionError(f"gave up waiting for {what}")


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()


def test_export_streams_and_a_disconnect_stops_the_reading(data_dir: Path) -> None:
    app = create_app(_settings(data_dir))
    with serve_in_thread(app) as running:
        databases: Databases = app.state.databases
        wide = databases.entries["wide"].db
        sock = socket.socket()
        # A small receive window, and we stop reading: the server must wait for us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect((running.host, running.port))
        sock.sendall(_request("/databases/wide/tables/wide/export?format=ndjson"))
        received = b""
        while len(received) < 100_000:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection early"
            received += chunk
        head = received.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 200")
        assert "transfer-encoding: chunked" in head.lower()
        assert "application/x-ndjson" in head
        assert databases.leases() == 1
        # Go away with the export unfinished (unread data makes the close a reset).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        _wait_until(lambda: databases.leases() == 0, "the export to end")
        stopped_at = wide.drives
        assert 0 < stopped_at < PAGES // 2, stopped_at
        io = app.state.io
        assert io.in_flight == 0 and io.pending == 0
        # The backend still serves, and the export did not go on reading.
        with httpx.Client(base_url=running.url) as client:
            r = client.get("/databases/wide/tables/wide/count")
            assert r.json()["count"] == ROWS
            r = client.get("/databases/wide/tables/wide/rows/4000")
            assert r.status_code == 200
        assert wide.drives == stopped_at + 2


def test_full_export_over_http_streams_every_row(data_dir: Path, wide_file: Path) -> None:
    app = create_app(_settings(data_dir))
    with serve_in_thread(app) as running, httpx.Client(base_url=running.url) as client:
        chunks = 0
        lines = 0
        with client.stream("GET", "/databases/wide/tables/wide/export?format=csv") as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if lines == 0:
                    assert line == "id,body"
                else:
                    rowid, body = line.split(",")
                    assert int(rowid) == lines
                    assert body == f"{lines:08d}" * 625
                lines += 1
            chunks = app.state.databases.entries["wide"].db.drives
        assert lines == ROWS + 1
        assert chunks == PAGES + 1  # every page, then the short (empty) one that ends it
        assert app.state.databases.leases() == 0


def test_corrupt_page_mid_export_cuts_the_response(data_dir: Path) -> None:
    path = data_dir / "uploads" / "wide.db"
    conn = sqlite3.connect(path)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'wide'").fetchone()
    conn.close()
    raw = bytearray(path.read_bytes())
    page = raw[(root - 1) * 4096 : root * 4096]
    assert page[0] == 5  # an interior table page
    # The root's right-most child: the export reaches it after its left part.
    child = struct.unpack_from(">I", page, 8)[0]
    raw[(child - 1) * 4096] = 0x07
    path.write_bytes(bytes(raw))
    app = create_app(_settings(data_dir))
    with serve_in_thread(app) as running, httpx.Client(base_url=running.url) as client:
        with client.stream("GET", "/databases/wide/tables/wide/export") as r:
            assert r.status_code == 200  # the first page was fine
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in r.iter_bytes():
                    pass
        assert app.state.databases.leases() == 0
        assert client.get("/databases/wide/tables/wide/rows/1").status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("nowait", [None, False], ids=["inline-reads", "pool-reads"])
async def test_asgi_disconnect_cancels_the_export(data_dir: Path, nowait: bool | None) -> None:
    """Starlette cancels the streaming task when `http.disconnect` arrives (ASGI spec
    before 2.4); the cancellation reaches the export wherever it waits: with every read
    sent to the worker pool, inside a `drive` waiting for one."""
    app = create_app(_settings(data_dir, nowait=nowait))
    disconnect = asyncio.Event()
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if sum(1 for m in sent if m["type"] == "http.response.body") >= 3:
            disconnect.set()
        await asyncio.sleep(0)

    async with LifespanManager(app) as manager:
        scope = http_scope(
            "GET", "/databases/wide/tables/wide/export", b"format=ndjson", manager._state
        )
        await asyncio.wait_for(app(scope, receive, send), 60)
        databases: Databases = app.state.databases
        wide = databases.entries["wide"].db
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
        bodies = [m for m in sent if m["type"] == "http.response.body"]
        assert all(m["more_body"] for m in bodies)  # never finished
        assert wide.drives < 10
        assert databases.leases() == 0
        io = app.state.io
        assert io.in_flight == 0 and io.pending == 0
        if nowait is False:
            assert io.pool_submissions > 0
        drives = wide.drives
        # Still serving, from the same AsyncFileIO.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client:
            r = await client.get("/databases/wide/tables/wide/count")
            assert r.json()["count"] == ROWS
        assert wide.drives == drives + 1
