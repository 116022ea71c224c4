"""The service as an HTTP citizen: unknown query parameters, HEAD, views, error messages
that keep the server's paths to themselves, an export cut by a bad page, and `/docs`
with no network."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sqlite3
import struct
from collections.abc import AsyncIterator, MutableMapping
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from examples.service.app import create_app
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from examples.service.testing import make_wide_database
from tests.service_helpers import asgi_client, http_scope

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = create_sample_database(tmp_path_factory.mktemp("sample") / "sample.db", rows=300)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE VIEW recent AS SELECT * FROM books WHERE year > 2000")
        conn.commit()
    return path


@pytest.fixture
def data_dir(tmp_path: Path, sample_file: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_file, data / "sample.db")
    return data


@pytest_asyncio.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    async with asgi_client(app) as c:
        yield c


# -- unknown query parameters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "unknown"),
    [
        ("/databases/sample/tables/books/rows?_sort=title", ["_sort"]),
        ("/databases/sample/tables/books/rows?limit=2&title=foo", ["title"]),
        ("/databases/sample/tables/books/lookup?column=year&eq=1990&ge=1&sort=1", ["sort"]),
        ("/databases?verbose=1", ["verbose"]),
        ("/databases/sample/tables/books/export?format=csv&header=0", ["header"]),
        ("/databases/sample/tables/books/rows/1?x=1&y=2", ["x", "y"]),
    ],
)
async def test_an_unknown_query_parameter_is_a_422_naming_it(
    client: httpx.AsyncClient, url: str, unknown: list[str]
) -> None:
    r = await client.get(url)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("unknown query parameter(s) ")
    for name in unknown:
        assert repr(name) in detail


async def test_each_route_checks_its_own_parameters(client: httpx.AsyncClient) -> None:
    # Each route's names are its own: `lookup` takes `column`, which `rows` does not.
    rows = "/databases/sample/tables/books/rows"
    assert (await client.get(rows, params={"limit": 2})).status_code == 200
    lookup = "/databases/sample/tables/books/lookup"
    r = await client.get(lookup, params={"column": "year", "eq": 1990})
    assert r.status_code == 200, r.text
    r = await client.get(rows, params={"column": "year"})
    assert r.status_code == 422, r.text
    assert "'column'" in r.json()["detail"]


async def test_every_operation_refuses_an_unknown_query_parameter(
    client: httpx.AsyncClient,
) -> None:
    # Every operation in the schema, whatever its method: the check comes before the body,
    # the write token and the route's own parameters.
    paths = (await client.get("/openapi.json")).json()["paths"]
    values = {"database": "sample", "name": "sample", "table": "books", "key": "1"}
    checked = 0
    for template, operations in paths.items():
        path = template
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, template
        for method in operations:
            r = await client.request(method.upper(), path, params={"zz_unknown": "1"})
            assert r.status_code == 422, (method, template, r.text)
            assert "'zz_unknown'" in r.json()["detail"], (method, template)
            checked += 1
    assert checked >= 12


async def test_next_links_carry_only_declared_parameters(client: httpx.AsyncClient) -> None:
    r = await client.get("/databases/sample/tables/books/rows", params={"limit": 2})
    nxt = r.json()["next"]
    assert (await client.get(nxt)).status_code == 200


async def test_every_endpoint_documents_its_422(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "422" in operation["responses"], (method, path)


# -- HEAD ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/databases",
        "/databases/sample",
        "/databases/sample/tables/books",
        "/databases/sample/tables/books/rows?limit=3",
        "/databases/sample/tables/books/rows/5",
        "/databases/sample/tables/books/count",
        "/databases/sample/tables/books/lookup?column=year&eq=1990",
        "/databases/sample/tables/books/export?format=csv",
        "/databases/sample/tables/nope",
    ],
)
async def test_head_answers_as_get_without_a_body(client: httpx.AsyncClient, url: str) -> None:
    got = await client.get(url)
    head = await client.head(url)
    assert head.status_code == got.status_code
    assert head.content == b""
    for name in ("content-type", "content-length", "content-disposition"):
        assert head.headers.get(name) == got.headers.get(name), name


async def test_head_of_an_export_reads_nothing(client: httpx.AsyncClient) -> None:
    databases = client.app.state.databases  # type: ignore[attr-defined]
    db = databases.entries["sample"].db
    before = db.drives
    r = await client.head("/databases/sample/tables/books/export")
    assert r.status_code == 200 and r.content == b""
    assert db.drives - before <= 1  # the first page, read before the response starts
    assert databases.leases() == 0


# -- views ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/databases/sample/tables/recent",
        "/databases/sample/tables/RECENT/rows",
        "/databases/sample/tables/recent/rows/1",
        "/databases/sample/tables/recent/count",
        "/databases/sample/tables/recent/export",
        "/databases/sample/tables/recent/lookup?column=year&eq=2001",
    ],
)
async def test_a_view_is_listed_but_reading_it_says_why_not(
    client: httpx.AsyncClient, url: str
) -> None:
    listed = (await client.get("/databases/sample")).json()
    assert listed["views"] == ["recent"]
    r = await client.get(url)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "'recent' in database 'sample' is a view" in detail
    assert "SQL engine" in detail


# -- error messages name the database, not the server's file ---------------------------------


async def test_busy_names_the_database_not_its_path(data_dir: Path) -> None:
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as c,
    ):
        # A sqlite3 writer in the middle of a transaction: every read is refused meanwhile.
        conn = sqlite3.connect(data_dir / "sample.db", isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            r = await c.get("/databases/sample/tables/books/count")
        finally:
            conn.close()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    detail = r.json()["detail"]
    assert detail.startswith("database 'sample' is busy")
    assert str(data_dir) not in detail and "/" not in detail, detail


# -- an export cut by a corrupt page -----------------------------------------------------------


def _corrupt_wide(data_dir: Path) -> None:
    path = data_dir / "uploads" / "wide.db"
    with closing(sqlite3.connect(path)) as conn:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'wide'").fetchone()
    raw = bytearray(path.read_bytes())
    page = raw[(root - 1) * 4096 : root * 4096]
    assert page[0] == 5  # an interior table page
    child = struct.unpack_from(">I", page, 8)[0]  # the right-most child: reached last
    raw[(child - 1) * 4096] = 0x07
    path.write_bytes(bytes(raw))


async def test_a_corrupt_page_mid_export_logs_one_line_and_ends_the_response(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    make_wide_database(data / "uploads" / "wide.db", rows=600, width=3000)
    _corrupt_wide(data)
    app = create_app(Settings.from_env({}, data_dir=data, create_sample=False, export_page_rows=50))
    sent: list[MutableMapping[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async with LifespanManager(app) as manager:
        scope = http_scope(
            "GET",
            "/databases/wide/tables/wide/export",
            b"format=csv",
            manager._state,
            spec_version="2.4",
        )
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            # It returns (no exception escapes the application) with the response unfinished.
            await asyncio.wait_for(app(scope, receive, send), 60)
        assert app.state.databases.leases() == 0
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(bodies) > 1 and all(m.get("more_body") for m in bodies)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert re.match(r"export of wide from 'wide' stopped: corrupt", errors[0].getMessage())
    assert errors[0].exc_info is None
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out


# -- /docs offline ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_local_assets(client: httpx.AsyncClient, page: str) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", r.text)
    assert urls, r.text
    assert not [u for u in urls if "//" in u], urls
    assert any(u.endswith(".js") for u in urls)
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
