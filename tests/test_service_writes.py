"""Writes through the service: the token, inserts, updates, deletes and batches, and what
they answer when refused. Every write is checked by reading it back through the service
and, once the service is gone, with Python's sqlite3 (rows and `PRAGMA integrity_check`).
"""

from __future__ import annotations

import base64
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from examples.service import models
from examples.service.app import create_app
from examples.service.queries.changes import (
    ChangeSpec,
    apply_batch,
    delete_row,
    insert_row,
    update_row,
)
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from tests.service_helpers import asgi_client

pytestmark = pytest.mark.asyncio

TOKEN = "s3cret-write-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOTES = "/databases/sample/tables/notes/rows"


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample (rollback-journal mode, as sqlite3 writes it) and a table the engine
    writes: `notes`, with a UNIQUE and a NOT NULL column and a blob."""
    path = create_sample_database(tmp_path_factory.mktemp("sample") / "sample.db", rows=200)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE notes (
                id INTEGER PRIMARY KEY,
                title TEXT NOT NULL UNIQUE,
                body BLOB,
                score REAL DEFAULT 0.5
            );
            INSERT INTO notes (title, body) VALUES ('first', x'00ff'), ('second', NULL);
            """
        )
    return path


@pytest.fixture
def data_dir(tmp_path: Path, sample_file: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_file, data / "sample.db")
    return data


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings.from_env({}, data_dir=data_dir, create_sample=False, **overrides)


@asynccontextmanager
async def _serve(data_dir: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(data_dir, **overrides))
    async with asgi_client(app) as c:
        yield c


@pytest_asyncio.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _serve(data_dir, write_token=TOKEN, max_write_bytes=4096) as c:
        yield c


def _sqlite(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def _sound(path: Path) -> None:
    assert _sqlite(path, "PRAGMA integrity_check") == [("ok",)]


# -- the token ---------------------------------------------------------------------------


async def test_writes_are_off_without_a_token(data_dir: Path) -> None:
    async with _serve(data_dir) as c:
        for method, url, body in (
            ("POST", NOTES, {"values": {"title": "x"}}),
            ("PATCH", f"{NOTES}/1", {"values": {"title": "x"}}),
            ("DELETE", f"{NOTES}/1", None),
            (
                "POST",
                "/databases/sample/batch",
                {"changes": [{"op": "delete", "table": "notes", "key": 1}]},
            ),
        ):
            r = await c.request(method, url, json=body, headers=AUTH)
            assert r.status_code == 403, (method, url, r.text)
            assert "--write-token" in r.json()["detail"]
            assert "IORESULT_WRITE_TOKEN" in r.json()["detail"]
        # Not even opened for writing: the file is as it was, in rollback-journal mode.
        assert not c.app.state.databases.entries["sample"].db.writable  # type: ignore[attr-defined]
    assert _sqlite(data_dir / "sample.db", "PRAGMA journal_mode") == [("delete",)]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-here"}, {"Authorization": TOKEN}],
    ids=["none", "wrong", "not-bearer"],
)
async def test_a_write_without_the_token_is_a_401(
    client: httpx.AsyncClient, data_dir: Path, headers: dict[str, str]
) -> None:
    r = await client.post(NOTES, json={"values": {"title": "x"}}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in r.text
    r = await client.get("/databases/sample/tables/notes/count")
    assert r.json()["count"] == 2


async def test_the_token_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"IORESULT_WRITE_TOKEN": TOKEN}
    assert Settings.from_env(env, data_dir=tmp_path).write_token == TOKEN
    assert Settings.from_env({}, data_dir=tmp_path).writes_enabled is False


# -- rows ----------------------------------------------------------------------------------


async def test_insert_update_delete_and_read_back(data_dir: Path) -> None:
    async with _serve(data_dir, write_token=TOKEN) as client:
        await _insert_update_delete(client)
    path = data_dir / "sample.db"
    assert _sqlite(path, "SELECT id, title, body, score FROM notes ORDER BY id") == [
        (2, "second", None, 0.5),
        (3, "third", b"\x00\x01binary\xff", 2.0),
    ]
    _sound(path)
    assert _sqlite(path, "PRAGMA journal_mode") == [("wal",)]


async def _insert_update_delete(client: httpx.AsyncClient) -> None:
    blob = base64.b64encode(b"\x00\x01binary\xff").decode()
    r = await client.post(
        NOTES,
        json={"values": {"title": "third", "body": {"$base64": True, "encoded": blob}}},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    written = models.WrittenRow.model_validate(r.json())
    assert written.key == 3
    assert r.json()["row"] == [3, "third", {"$base64": True, "encoded": blob}, 0.5]
    got = await client.get(f"{NOTES}/3")
    assert got.json()["row"] == r.json()["row"]

    r = await client.patch(f"{NOTES}/3", json={"values": {"score": 2}}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["row"] == [3, "third", {"$base64": True, "encoded": blob}, 2.0]
    r = await client.patch(f"{NOTES}/99", json={"values": {"score": 2}}, headers=AUTH)
    assert r.status_code == 404 and "no row with rowid 99" in r.json()["detail"]

    r = await client.delete(f"{NOTES}/1", headers=AUTH)
    assert r.status_code == 204 and r.content == b""
    r = await client.delete(f"{NOTES}/1", headers=AUTH)
    assert r.status_code == 404
    assert (await client.get(f"{NOTES}/1")).status_code == 404
    page = (await client.get(NOTES)).json()
    assert [row[0] for row in page["rows"]] == [2, 3]


@pytest.mark.parametrize(
    ("values", "constraint"),
    [({"title": "first"}, "notes_title"), ({"body": None}, "notes.title")],
)
async def test_a_broken_constraint_is_a_409_naming_it(
    client: httpx.AsyncClient, values: dict[str, Any], constraint: str
) -> None:
    r = await client.post(NOTES, json={"values": values}, headers=AUTH)
    assert r.status_code == 409, r.text
    assert constraint in r.json()["detail"] or "UNIQUE" in r.json()["detail"]
    assert (await client.get("/databases/sample/tables/notes/count")).json()["count"] == 2


@pytest.mark.parametrize(
    ("table", "why"),
    [("reviews", "WITHOUT ROWID"), ("books", "foreign key")],
)
async def test_a_table_the_engine_does_not_write_is_a_422_saying_why(
    client: httpx.AsyncClient, table: str, why: str
) -> None:
    r = await client.post(
        f"/databases/sample/tables/{table}/rows", json={"values": {"stars": 1}}, headers=AUTH
    )
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"values": {"title": True}},
        {"values": {"title": [1]}},
        {"values": {"nope": 1, "title": "t"}},
        {"values": {"title": "t", "body": {"$base64": True, "encoded": "!!"}}},
        {"values": {"title": "t", "score": {"$float": "NaN"}}},
        {"values": {"title": "t", "score": 2**70}},
        {"title": "t"},
        {"values": {}, "extra": 1},
    ],
)
async def test_a_bad_value_is_a_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post(NOTES, json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    assert (await client.get("/databases/sample/tables/notes/count")).json()["count"] == 2


async def test_a_body_past_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    r = await client.post(NOTES, json={"values": {"title": "x" * 5000}}, headers=AUTH)
    assert r.status_code == 413
    assert "IORESULT_MAX_WRITE_BYTES" in r.json()["detail"]


async def test_another_writer_is_a_503_with_retry_after(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    conn = sqlite3.connect(data_dir / "sample.db", isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        r = await client.post(NOTES, json={"values": {"title": "x"}}, headers=AUTH)
    finally:
        conn.close()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert str(data_dir) not in r.json()["detail"]
    r = await client.post(NOTES, json={"values": {"title": "x"}}, headers=AUTH)
    assert r.status_code == 201


# -- batches -------------------------------------------------------------------------------


async def test_a_batch_is_one_transaction(client: httpx.AsyncClient) -> None:
    changes = [
        {"op": "insert", "table": "notes", "values": {"title": "a"}},
        {"op": "update", "table": "notes", "key": 2, "values": {"title": "b"}},
        {"op": "delete", "table": "notes", "key": 1},
        {"op": "insert", "table": "authors", "values": {"name": "Ada", "born": 1815}},
    ]
    r = await client.post("/databases/sample/batch", json={"changes": changes}, headers=AUTH)
    assert r.status_code == 200, r.text
    body = models.BatchResponse.model_validate(r.json())
    assert [(c.op, c.table, c.key) for c in body.results] == [
        ("insert", "notes", 3),
        ("update", "notes", 2),
        ("delete", "notes", 1),
        ("insert", "authors", 5),
    ]
    assert r.json()["results"][1]["row"] == [2, "b", None, 0.5]
    assert r.json()["results"][2]["row"] is None
    page = (await client.get(NOTES)).json()
    assert page["rows"] == [[2, "b", None, 0.5], [3, "a", None, 0.5]]


@pytest.mark.parametrize(
    ("failing", "status", "says"),
    [
        ({"op": "insert", "table": "notes", "values": {"title": "first"}}, 409, "UNIQUE"),
        ({"op": "delete", "table": "notes", "key": 77}, 404, "no row with rowid 77"),
        ({"op": "update", "table": "notes", "values": {"title": "z"}}, 422, "needs the key"),
        ({"op": "insert", "table": "reviews", "values": {"stars": 1}}, 422, "WITHOUT ROWID"),
    ],
)
async def test_a_failing_change_keeps_nothing_of_the_batch(
    client: httpx.AsyncClient, failing: dict[str, Any], status: int, says: str
) -> None:
    before = (await client.get(NOTES)).json()["rows"]
    changes = [
        {"op": "insert", "table": "notes", "values": {"title": "kept?"}},
        {"op": "delete", "table": "notes", "key": 2},
        failing,
    ]
    r = await client.post("/databases/sample/batch", json={"changes": changes}, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith("change 3: ")
    assert says in r.json()["detail"]
    assert (await client.get(NOTES)).json()["rows"] == before


# -- the functions the HTML pages share -------------------------------------------------------


async def test_the_change_functions_work_on_an_entry(client: httpx.AsyncClient) -> None:
    databases = client.app.state.databases  # type: ignore[attr-defined]
    with databases.lease("sample") as entry:
        row = await insert_row(entry, "notes", {"title": "direct", "body": b"\x01"})
        assert row["row"] == [3, "direct", b"\x01", 0.5]
        updated = await update_row(entry, "notes", 3, {"score": 1.5})
        assert updated is not None and updated["row"][3] == 1.5
        assert await update_row(entry, "notes", 42, {"score": 1.5}) is None
        results = await apply_batch(
            entry,
            [
                ChangeSpec("delete", "notes", key=3),
                ChangeSpec("insert", "notes", values={"title": "z"}),
            ],
        )
        assert [r["op"] for r in results] == ["delete", "insert"]
        assert await delete_row(entry, "notes", 99) is False
    assert (await client.get("/databases/sample/tables/notes/count")).json()["count"] == 3


# -- uploads -------------------------------------------------------------------------------


async def test_an_upload_is_written_after_conversion_to_wal(
    client: httpx.AsyncClient, data_dir: Path, tmp_path: Path
) -> None:
    upload = tmp_path / "mine.db"
    with closing(sqlite3.connect(upload)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO t (name) VALUES ('one')")
        conn.commit()
    r = await client.put("/databases/mine", content=upload.read_bytes())
    assert r.status_code == 201, r.text
    assert r.json()["immutable"] is False
    r = await client.post(
        "/databases/mine/tables/t/rows", json={"values": {"name": "two"}}, headers=AUTH
    )
    assert r.status_code == 201, r.text
    rows = (await client.get("/databases/mine/tables/t/rows")).json()["rows"]
    assert rows == [[1, "one"], [2, "two"]]
    served = data_dir / "uploads" / "mine.db"
    assert served.read_bytes()[18:20] == b"\x02\x02"  # WAL mode
    assert (await client.delete("/databases/mine")).status_code == 204
    assert not served.exists() and not Path(f"{served}-wal").exists()


# -- the schema ---------------------------------------------------------------------------


async def test_every_write_status_is_in_the_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/databases/{database}/tables/{table}/rows", "post"),
        ("/databases/{database}/tables/{table}/rows/{key}", "patch"),
        ("/databases/{database}/tables/{table}/rows/{key}", "delete"),
        ("/databases/{database}/batch", "post"),
    ):
        responses = paths[path][method]["responses"]
        assert {"401", "403", "404", "409", "413", "422", "503"} <= set(responses), path


async def test_a_sample_a_reader_holds_at_startup_is_served_and_its_writes_refused(
    data_dir: Path,
) -> None:
    reader = sqlite3.connect(data_dir / "sample.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM notes").fetchall()  # a SHARED lock: no conversion
        async with _serve(data_dir, write_token=TOKEN) as c:
            reader.execute("COMMIT")
            assert (await c.get("/databases/sample/tables/notes/count")).json()["count"] == 2
            r = await c.post(NOTES, json={"values": {"title": "x"}}, headers=AUTH)
            assert r.status_code == 422, r.text
            assert "rollback-journal" in r.json()["detail"] or "WAL" in r.json()["detail"]
    finally:
        reader.close()
    # The next start converts it.
    async with _serve(data_dir, write_token=TOKEN) as c:
        r = await c.post(NOTES, json={"values": {"title": "x"}}, headers=AUTH)
        assert r.status_code == 201, r.text
