"""The service's endpoints through httpx's ASGI transport, lifespan run by asgi-lifespan.

Every answer is checked against Python's sqlite3 reading the same file, and every JSON
body against the response model the OpenAPI schema advertises.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import math
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from examples.service import models
from examples.service.app import create_app
from examples.service.encoding import decode_cell
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from tests.service_helpers import asgi_client, http_scope

pytestmark = pytest.mark.asyncio

ROWS = 2000


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample database, made once per module (2000 books)."""
    return create_sample_database(tmp_path_factory.mktemp("sample") / "sample.db", rows=ROWS)


@pytest.fixture
def data_dir(tmp_path: Path, sample_file: Path) -> Path:
    """A fresh data directory holding a copy of the sample."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_file, data / "sample.db")
    return data


def _settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings.from_env({}, data_dir=data_dir, create_sample=False, **overrides)


@pytest_asyncio.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(data_dir, max_upload_bytes=4 * 1024 * 1024))
    async with asgi_client(app) as c:
        yield c


def _sqlite_rows(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _decoded(rows: list[list[Any]]) -> list[tuple[Any, ...]]:
    return [tuple(decode_cell(v) for v in r) for r in rows]


def _leases(client: httpx.AsyncClient) -> int:
    return client.app.state.databases.leases()  # type: ignore[attr-defined,no-any-return]


# -- listing and schema --------------------------------------------------------------------


async def test_list_databases(client: httpx.AsyncClient, data_dir: Path) -> None:
    r = await client.get("/databases")
    assert r.status_code == 200
    [summary] = [models.DatabaseSummary.model_validate(d) for d in r.json()]
    assert summary.name == "sample"
    assert summary.source == "sample"
    assert summary.immutable is False
    assert summary.tables == 3 and summary.indexes == 3
    assert summary.size_bytes == (data_dir / "sample.db").stat().st_size
    assert summary.page_count * summary.page_size == summary.size_bytes


async def test_describe_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/databases/sample")
    assert r.status_code == 200
    detail = models.DatabaseDetail.model_validate(r.json())
    tables = {t.name: t for t in detail.tables}
    assert set(tables) == {"authors", "books", "reviews"}
    books = tables["books"]
    assert [c.name for c in books.columns] == [
        "id",
        "author_id",
        "title",
        "year",
        "price",
        "summary",
    ]
    assert books.columns[0].rowid_alias and books.columns[0].primary_key
    assert books.columns[2].collation == "NOCASE"
    assert books.key == "rowid"
    assert books.row_columns == [c.name for c in books.columns]
    assert sorted(books.indexes) == ["books_title", "books_year"]
    assert books.lookup_columns == ["id", "title", "year"]
    reviews = tables["reviews"]
    assert reviews.without_rowid and reviews.key == "primary key"
    assert reviews.primary_key == ["book_id", "reviewer"]
    indexes = {i.name: i for i in detail.indexes}
    assert [c.name for c in indexes["books_year"].columns] == ["year", "price"]
    assert indexes["books_title"].columns[0].collation == "NOCASE"


async def test_describe_table_and_unknown_names(client: httpx.AsyncClient) -> None:
    r = await client.get("/databases/sample/tables/BOOKS")
    assert r.status_code == 200
    assert models.TableInfo.model_validate(r.json()).name == "books"

    r = await client.get("/databases/nope/tables/books")
    assert r.status_code == 404
    assert r.json()["detail"] == "no database named 'nope'; the databases served are: sample"

    r = await client.get("/databases/sample/tables/nope/rows")
    assert r.status_code == 404
    assert "no table 'nope' in database 'sample'" in r.json()["detail"]
    assert "authors, books, reviews" in r.json()["detail"]
    assert _leases(client) == 0


async def test_openapi_schema_and_docs(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    paths = schema["paths"]
    for path in (
        "/databases",
        "/databases/{database}",
        "/databases/{database}/tables/{table}",
        "/databases/{database}/tables/{table}/rows",
        "/databases/{database}/tables/{table}/rows/{key}",
        "/databases/{database}/tables/{table}/lookup",
        "/databases/{database}/tables/{table}/count",
        "/databases/{database}/tables/{table}/export",
        "/databases/{name}",
    ):
        assert path in paths, path
    rows = paths["/databases/{database}/tables/{table}/rows"]["get"]
    ok = rows["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/RowsPage"}
    assert "404" in rows["responses"] and "422" in rows["responses"]
    limit = next(p for p in rows["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000
    blob = schema["components"]["schemas"]["Blob"]
    assert set(blob["properties"]) == {"$base64", "encoded"}
    export = paths["/databases/{database}/tables/{table}/export"]["get"]
    assert set(export["responses"]["200"]["content"]) >= {"application/x-ndjson", "text/csv"}
    assert set(paths["/databases/{name}"]) == {"put", "delete"}
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# -- rows ----------------------------------------------------------------------------------


async def _all_pages(
    client: httpx.AsyncClient, url: str, limit: int
) -> tuple[list[list[Any]], int]:
    rows: list[list[Any]] = []
    pages = 0
    params: dict[str, Any] = {"limit": limit}
    while True:
        r = await client.get(url, params=params)
        assert r.status_code == 200, r.text
        page = models.RowsPage.model_validate(r.json())
        body = r.json()
        assert len(body["rows"]) <= limit
        rows.extend(body["rows"])
        pages += 1
        if page.next_after is None:
            assert page.next is None
            return rows, pages
        assert page.next is not None
        after = body["next_after"]
        params = {"limit": limit, "after": after if isinstance(after, int) else json.dumps(after)}


async def test_pagination_visits_every_row_once(client: httpx.AsyncClient, data_dir: Path) -> None:
    db = data_dir / "sample.db"
    rows, pages = await _all_pages(client, "/databases/sample/tables/books/rows", 333)
    assert pages == math.ceil(ROWS / 333)
    assert _decoded(rows) == _sqlite_rows(db, "SELECT * FROM books ORDER BY rowid")

    rows, _ = await _all_pages(client, "/databases/sample/tables/reviews/rows", 37)
    expected = _sqlite_rows(db, "SELECT * FROM reviews ORDER BY book_id, reviewer")
    assert _decoded(rows) == expected
    assert len({(r[0], r[1]) for r in rows}) == len(expected)
    assert any(isinstance(r[4], dict) and r[4]["$base64"] for r in rows)

    rows, _ = await _all_pages(client, "/databases/sample/tables/authors/rows", 1000)
    assert _decoded(rows) == _sqlite_rows(db, "SELECT * FROM authors ORDER BY rowid")


async def test_rows_next_link_and_limits(client: httpx.AsyncClient) -> None:
    r = await client.get("/databases/sample/tables/books/rows", params={"limit": 2})
    body = r.json()
    assert [row[0] for row in body["rows"]] == [1, 2]
    assert body["next_after"] == 2
    nxt = await client.get(body["next"])
    assert [row[0] for row in nxt.json()["rows"]] == [3, 4]
    last = await client.get("/databases/sample/tables/books/rows", params={"after": ROWS - 1})
    assert [row[0] for row in last.json()["rows"]] == [ROWS]
    assert last.json()["next_after"] is None

    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}):
        r = await client.get("/databases/sample/tables/books/rows", params=bad)
        assert r.status_code == 422
        assert r.json()["detail"].startswith("limit: ")
    r = await client.get("/databases/sample/tables/books/rows", params={"after": "x"})
    assert r.status_code == 422
    assert r.json() == {"detail": "after must be an integer rowid for table 'books', got 'x'"}
    r = await client.get("/databases/sample/tables/reviews/rows", params={"after": "[1]"})
    assert r.status_code == 422
    assert "2 primary-key value(s)" in r.json()["detail"]
    assert _leases(client) == 0


async def test_one_row(client: httpx.AsyncClient, data_dir: Path) -> None:
    db = data_dir / "sample.db"
    r = await client.get("/databases/sample/tables/books/rows/500")
    assert r.status_code == 200
    body = models.RowResponse.model_validate(r.json())
    assert body.columns[0] == "id"
    assert _decoded([r.json()["row"]]) == _sqlite_rows(db, "SELECT * FROM books WHERE id = 500")
    # Book 500 has a summary long enough to live on overflow pages.
    assert len(r.json()["row"][5]) > 4096

    r = await client.get('/databases/sample/tables/reviews/rows/[1, "ana"]')
    assert r.status_code == 200
    expected = _sqlite_rows(db, "SELECT * FROM reviews WHERE book_id = 1 AND reviewer = 'ana'")
    assert _decoded([r.json()["row"]]) == expected

    r = await client.get(f"/databases/sample/tables/books/rows/{ROWS + 1}")
    assert r.status_code == 404
    assert r.json()["detail"] == f"no row with rowid {ROWS + 1} in table 'books'"
    r = await client.get("/databases/sample/tables/books/rows/abc")
    assert r.status_code == 422
    r = await client.get('/databases/sample/tables/reviews/rows/[1, "nobody"]')
    assert r.status_code == 404


async def test_count(client: httpx.AsyncClient) -> None:
    for table, n in (("books", ROWS), ("authors", ROWS // 50), ("reviews", ROWS // 10 * 2)):
        r = await client.get(f"/databases/sample/tables/{table}/count")
        assert r.status_code == 200
        assert models.CountResponse.model_validate(r.json()).count == n


# -- lookups -------------------------------------------------------------------------------


async def _lookup_all(
    client: httpx.AsyncClient, table: str, params: dict[str, Any]
) -> tuple[list[list[Any]], dict[str, Any]]:
    rows: list[list[Any]] = []
    query = dict(params)
    first: dict[str, Any] | None = None
    for _ in range(10_000):
        r = await client.get(f"/databases/sample/tables/{table}/lookup", params=query)
        assert r.status_code == 200, r.text
        models.LookupPage.model_validate(r.json())
        body = r.json()
        first = first or body
        rows.extend(body["rows"])
        if body["next_after"] is None:
            assert first is not None
            return rows, first
        query = {**params, "after": body["next_after"]}
    raise AssertionError("lookup pages never ended")


async def test_lookup_equal_on_multi_column_index(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    db = data_dir / "sample.db"
    (year,) = _sqlite_rows(db, "SELECT year FROM books GROUP BY year ORDER BY count(*) DESC")[0]
    rows, first = await _lookup_all(
        client, "books", {"column": "year", "eq": str(year), "limit": 3}
    )
    assert first["strategy"] == "index" and first["index"] == "books_year"
    assert first["index_columns"] == ["year", "price"]
    expected = _sqlite_rows(
        db, "SELECT * FROM books WHERE year = ? ORDER BY year, price, rowid", year
    )
    assert len(expected) > 3
    assert _decoded(rows) == expected


async def test_lookup_with_a_5000_digit_number_finds_nothing(client: httpx.AsyncClient) -> None:
    for eq in ("9" * 5000, "-" + "9" * 5000, "0" * 5000 + "1"):
        r = await client.get(
            "/databases/sample/tables/books/lookup", params={"column": "year", "eq": eq}
        )
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == []  # +-inf as REAL, or the year 1: no book


async def test_lookup_equal_on_one_column_index_with_many_equal(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    rows, first = await _lookup_all(client, "reviews", {"column": "stars", "eq": "5", "limit": 7})
    assert first["index"] == "reviews_stars"
    expected = _sqlite_rows(
        data_dir / "sample.db",
        "SELECT * FROM reviews WHERE stars = 5 ORDER BY stars, book_id, reviewer",
    )
    assert _decoded(rows) == expected


async def test_lookup_nocase_and_ranges(client: httpx.AsyncClient, data_dir: Path) -> None:
    db = data_dir / "sample.db"
    (title,) = _sqlite_rows(db, "SELECT title FROM books WHERE id = 77")[0]
    rows, first = await _lookup_all(client, "books", {"column": "TITLE", "eq": title.upper()})
    assert first["index"] == "books_title"
    assert [r[0] for r in rows] == [77]

    rows, _ = await _lookup_all(
        client, "books", {"column": "title", "ge": "b", "lt": "d", "limit": 50}
    )
    expected = _sqlite_rows(
        db,
        "SELECT * FROM books WHERE title >= 'b' AND title < 'd' ORDER BY title, rowid",
    )
    assert len(expected) > 100
    assert _decoded(rows) == expected

    rows, _ = await _lookup_all(
        client, "books", {"column": "year", "gt": "2000", "le": "2003", "limit": 40}
    )
    expected = _sqlite_rows(
        db,
        "SELECT * FROM books WHERE year > 2000 AND year <= 2003 ORDER BY year, price, rowid",
    )
    assert _decoded(rows) == expected


async def test_lookup_by_rowid(client: httpx.AsyncClient, data_dir: Path) -> None:
    rows, first = await _lookup_all(
        client, "books", {"column": "id", "ge": "10", "lt": "30", "limit": 6}
    )
    assert first["strategy"] == "rowid" and first["index"] is None
    assert [r[0] for r in rows] == list(range(10, 30))
    rows, _ = await _lookup_all(client, "books", {"column": "id", "eq": "42"})
    assert [r[0] for r in rows] == [42]
    rows, _ = await _lookup_all(client, "authors", {"column": "id", "gt": "39.5"})
    assert [r[0] for r in rows] == [40]


async def test_lookup_errors(client: httpx.AsyncClient) -> None:
    cases = [
        ({"column": "summary", "eq": "x"}, "no index of table 'books' starts with column"),
        ({"column": "nope", "eq": "x"}, "has no column 'nope'"),
        ({"column": "year"}, "give eq, or a range"),
        ({"column": "year", "eq": "1", "gt": "0"}, "either eq or a range"),
        ({"column": "year", "gt": "1", "ge": "0"}, "at most one of gt and ge"),
        ({"column": "year", "eq": "1", "after": "!!"}, "not a next_after value"),
        ({"column": "id", "eq": "abc"}, "must be a number for the rowid"),
    ]
    for params, message in cases:
        r = await client.get("/databases/sample/tables/books/lookup", params=params)
        assert r.status_code == 422, params
        assert message in r.json()["detail"], (params, r.json())
    assert _leases(client) == 0


async def test_lookup_equal_pages_an_index_whose_second_column_is_an_expression(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # The page token pins the column after the equality; an expression has no value in
    # the row to continue from, which used to fail an assertion (a 500).
    path = tmp_path / "expr.db"
    with closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE p (x INTEGER, y INTEGER)")
        con.execute("CREATE INDEX p_x ON p (x, abs(y))")
        con.executemany("INSERT INTO p VALUES (?, ?)", [(i % 3, 5 - i) for i in range(10)])
        con.commit()
    assert (await client.put("/databases/expr", content=path.read_bytes())).status_code == 201
    rows: list[list[Any]] = []
    params: dict[str, Any] = {"column": "x", "eq": "1", "limit": 1}
    for _ in range(10):
        r = await client.get("/databases/expr/tables/p/lookup", params=params)
        assert r.status_code == 200, r.text
        page = models.LookupPage.model_validate(r.json())
        assert page.index == "p_x" and page.index_columns == ["x", "abs(y)"]
        rows.extend(r.json()["rows"])
        if page.next_after is None:
            break
        params["after"] = page.next_after
    expected = _sqlite_rows(path, "SELECT rowid, * FROM p WHERE x = 1 ORDER BY x, abs(y), rowid")
    assert [tuple(r) for r in rows] == expected
    assert _leases(client) == 0


async def test_an_index_in_a_collation_the_engine_lacks_is_not_offered_for_lookups(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # A file may declare an index in any collation (here the name is changed in the file
    # after sqlite3 wrote it). Such an index cannot be walked in its order: the table
    # must not offer its column for lookups, and a lookup on it says which columns can.
    path = tmp_path / "odd.db"
    with closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        con.execute("CREATE INDEX t_b ON t (b COLLATE NOCASE)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(5)])
        con.commit()
    body = path.read_bytes()
    assert body.count(b"NOCASE") == 1
    body = body.replace(b"NOCASE", b"NOCASX")
    assert (await client.put("/databases/odd", content=body)).status_code == 201
    table = (await client.get("/databases/odd/tables/t")).json()
    assert table["lookup_columns"] == ["rowid"]
    r = await client.get("/databases/odd/tables/t/lookup", params={"column": "b", "eq": "v1"})
    assert r.status_code == 422, r.text
    assert "columns that can: rowid" in r.json()["detail"]
    assert _leases(client) == 0


# -- export --------------------------------------------------------------------------------


async def test_export_ndjson_matches_sqlite(client: httpx.AsyncClient, data_dir: Path) -> None:
    db = data_dir / "sample.db"
    for table, order in (("books", "rowid"), ("reviews", "book_id, reviewer")):
        r = await client.get(f"/databases/sample/tables/{table}/export")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["content-disposition"] == f'attachment; filename="{table}.ndjson"'
        lines = r.text.splitlines()
        objects = [json.loads(line) for line in lines]
        columns = [c[1] for c in _sqlite_rows(db, f"PRAGMA table_info({table})")]
        got = [tuple(decode_cell(o[c]) for c in columns) for o in objects]
        assert got == _sqlite_rows(db, f"SELECT * FROM {table} ORDER BY {order}")
    assert _leases(client) == 0


async def test_export_csv_matches_sqlite(client: httpx.AsyncClient, data_dir: Path) -> None:
    db = data_dir / "sample.db"
    r = await client.get("/databases/sample/tables/reviews/export", params={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    reader = csv.reader(io.StringIO(r.text))
    header = next(reader)
    assert header == ["book_id", "reviewer", "stars", "body", "cover"]

    def as_csv(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, float):
            return repr(value)
        return str(value)

    expected = [
        [as_csv(v) for v in row]
        for row in _sqlite_rows(db, "SELECT * FROM reviews ORDER BY book_id, reviewer")
    ]
    assert list(reader) == expected


async def test_export_bad_format_and_unknown_table(client: httpx.AsyncClient) -> None:
    r = await client.get("/databases/sample/tables/books/export", params={"format": "xml"})
    assert r.status_code == 422
    assert "format" in r.json()["detail"]
    r = await client.get("/databases/sample/tables/nope/export")
    assert r.status_code == 404
    assert _leases(client) == 0


# -- upload --------------------------------------------------------------------------------


def _special_database(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a REAL, b BLOB, c TEXT)")
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [
            (float("inf"), b"\x00\x01\xff", "x"),
            (float("-inf"), None, None),
            (1.5, b"", "\u00e9"),
        ],
    )
    conn.commit()
    conn.close()
    return path.read_bytes()


def _upload_dir_entries(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "uploads").iterdir())


async def test_upload_serves_a_valid_database(
    client: httpx.AsyncClient, data_dir: Path, tmp_path: Path
) -> None:
    body = _special_database(tmp_path / "special.db")
    r = await client.put("/databases/special", content=body)
    assert r.status_code == 201, r.text
    summary = models.DatabaseSummary.model_validate(r.json())
    assert summary.source == "upload" and summary.immutable
    assert summary.size_bytes == len(body)
    assert _upload_dir_entries(data_dir) == ["special.db"]

    names = [d["name"] for d in (await client.get("/databases")).json()]
    assert names == ["sample", "special"]
    r = await client.get("/databases/special/tables/t/rows")
    assert r.status_code == 200
    rows = r.json()["rows"]
    assert r.json()["columns"] == ["rowid", "a", "b", "c"]
    assert rows[0] == [1, {"$float": "Infinity"}, {"$base64": True, "encoded": "AAH/"}, "x"]
    assert rows[1] == [2, {"$float": "-Infinity"}, None, None]
    assert rows[2] == [3, 1.5, {"$base64": True, "encoded": ""}, "\u00e9"]
    models.RowsPage.model_validate(r.json())
    assert _decoded(rows) == _sqlite_rows(tmp_path / "special.db", "SELECT rowid, * FROM t")

    # Replacing it: 200, and the new content is served.
    conn = sqlite3.connect(tmp_path / "special.db")
    conn.execute("INSERT INTO t VALUES (2.5, NULL, 'new')")
    conn.commit()
    conn.close()
    r = await client.put("/databases/special", content=(tmp_path / "special.db").read_bytes())
    assert r.status_code == 200
    count = await client.get("/databases/special/tables/t/count")
    assert count.json()["count"] == 4

    r = await client.delete("/databases/special")
    assert r.status_code == 204
    assert (await client.get("/databases/special")).status_code == 404
    assert _upload_dir_entries(data_dir) == []
    assert _leases(client) == 0


async def test_upload_streamed_in_chunks(
    client: httpx.AsyncClient, data_dir: Path, tmp_path: Path
) -> None:
    body = (data_dir / "sample.db").read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    r = await client.put("/databases/copy", content=chunks())
    assert r.status_code == 201, r.text
    rows, _ = await _all_pages(client, "/databases/copy/tables/authors/rows", 1000)
    assert len(rows) == ROWS // 50


async def test_upload_of_a_corrupt_file_is_refused(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    good = (data_dir / "sample.db").read_bytes()
    cases = [
        (b"", "the upload is empty"),
        (b"this is not a database at all" * 10, "not a valid SQLite database"),
        (good[:8192], "the database is damaged: file: is truncated: it holds 2 pages"),
    ]
    # A damaged B-tree page deep in the file: the header and schema are fine.
    damaged = bytearray(good)
    damaged[4096 * 20 : 4096 * 20 + 4096] = bytes(4096)
    cases.append((bytes(damaged), "the database is damaged: "))
    for body, message in cases:
        r = await client.put("/databases/bad", content=body)
        assert r.status_code == 422, (message, r.text)
        assert message in r.json()["detail"], r.json()
        assert ".part" not in r.json()["detail"]
        assert _upload_dir_entries(data_dir) == []
    r = await client.put("/databases/bad", content=bytes(damaged))
    assert r.json()["page"] == 21
    assert (await client.get("/databases/bad")).status_code == 404


async def test_upload_with_an_oversized_schema_is_refused_before_it_is_parsed(
    client: httpx.AsyncClient, tmp_path: Path, data_dir: Path
) -> None:
    long_names = tmp_path / "long_names.db"  # 2000 columns of 150-character names
    columns = ", ".join(f"c{i:04}_" + "x" * 144 for i in range(2000))
    with closing(sqlite3.connect(long_names)) as con:
        con.execute(f"CREATE TABLE t({columns})")
    many = tmp_path / "many.db"
    with closing(sqlite3.connect(many)) as con:
        con.execute("PRAGMA page_size=512")  # 2001 root pages stay under the upload limit
        for i in range(2001):
            con.execute(f"CREATE TABLE t{i}(x)")
    wide = tmp_path / "wide.db"  # a schema that declares more columns than SQLite allows
    with closing(sqlite3.connect(wide)) as con:
        con.execute("CREATE TABLE t(x)")
        con.execute("PRAGMA writable_schema=ON")
        wide_sql = "CREATE TABLE t(" + ", ".join(f"c{i}" for i in range(2500)) + ")"
        con.execute("UPDATE sqlite_schema SET sql = ? WHERE name = 't'", (wide_sql,))
        con.commit()
    cases = (
        (long_names, "IORESULT_MAX_SCHEMA_BYTES"),
        (many, "IORESULT_MAX_SCHEMA_OBJECTS"),
        (wide, "IORESULT_MAX_TABLE_COLUMNS"),
    )
    for path, limit in cases:
        r = await client.put("/databases/big", content=path.read_bytes())
        assert r.status_code == 422, r.text
        assert "schema is too large" in r.json()["detail"] and limit in r.json()["detail"]
        assert _upload_dir_entries(data_dir) == []


async def test_upload_too_large(data_dir: Path) -> None:
    app = create_app(_settings(data_dir, max_upload_bytes=10_000))
    body = (data_dir / "sample.db").read_bytes()
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as c,
    ):
        # Declared too large: refused before reading.
        r = await c.put("/databases/big", content=body)
        assert r.status_code == 413
        assert "larger than the limit of 10000 bytes" in r.json()["detail"]

        # Streamed with no length: refused as soon as the limit is passed.
        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            for i in range(0, len(body), 4096):
                sent += 1
                yield body[i : i + 4096]

        r = await c.put("/databases/big", content=chunks())
        assert r.status_code == 413
        assert sent <= 4  # 10,000 bytes passed within the third chunk
        assert _upload_dir_entries(data_dir) == []
        assert (await c.get("/databases/big")).status_code == 404


async def test_upload_names(client: httpx.AsyncClient) -> None:
    for name in ("sample", "..", ".hidden", "a" * 65, "x y"):
        r = await client.put(f"/databases/{name}", content=b"x")
        assert r.status_code in (404, 405, 422), name
        if r.status_code == 422:
            assert "detail" in r.json()
    r = await client.put("/databases/sample", content=b"x")
    assert r.status_code == 422
    assert "cannot be replaced" in r.json()["detail"]
    r = await client.delete("/databases/sample")
    assert r.status_code == 422
    r = await client.delete("/databases/nothing")
    assert r.status_code == 404


async def test_a_name_with_a_slash_is_answered_as_the_schema_documents(
    client: httpx.AsyncClient,
) -> None:
    # A server decodes %2F: the path is then no endpoint's (404), or a reading endpoint's
    # (405). Both say what was asked, and both are in the schema for PUT and DELETE.
    r = await client.put("/databases/a%2Fb", content=b"x")
    assert r.status_code == 404
    assert r.json() == {
        "detail": "no endpoint at PUT /databases/a/b; the endpoints are listed at /docs"
    }
    r = await client.delete("/databases/a%2Ftables%2Fb")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json() == {"detail": "DELETE is not allowed on /databases/a/tables/b; allowed: GET"}
    paths = (await client.get("/openapi.json")).json()["paths"]
    put, delete = paths["/databases/{name}"]["put"], paths["/databases/{name}"]["delete"]
    assert {"400", "404", "405", "413", "422"} <= set(put["responses"])
    assert {"404", "405", "422"} <= set(delete["responses"])
    assert set(put["requestBody"]["content"]) == {"application/octet-stream"}


async def test_a_trailing_slash_is_not_redirected_to_another_name(
    client: httpx.AsyncClient,
) -> None:
    # Redirecting "/databases/sample%2F" to "/databases/sample" answered for a name (or a
    # row key, or a table) that was not asked for, with a status the schema did not list.
    for url in ("/databases/", "/databases/sample%2F", "/databases/sample/tables/books%2F"):
        r = await client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert r.json()["detail"].startswith("no endpoint at GET /databases/"), r.json()
    r = await client.put("/databases/new%2F", content=b"x")
    assert r.status_code == 404
    r = await client.get("/databases/sample/tables/books/rows/1%2F")
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "the row key must be an integer rowid for table 'books', got '1/'"
    )


async def test_a_key_with_a_slash_in_it_finds_its_row(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # A text key, or a blob's base64, may hold a "/", which a server decodes from %2F: the
    # key is the rest of the path, not one segment of it.
    path = tmp_path / "paths.db"
    with closing(sqlite3.connect(path)) as con:
        con.execute("CREATE TABLE f (k PRIMARY KEY, n) WITHOUT ROWID")
        con.executemany("INSERT INTO f VALUES (?, ?)", [("a/b", 1), ("/", 2), (b"\xff\xff", 3)])
        con.commit()
    assert (await client.put("/databases/paths", content=path.read_bytes())).status_code == 201
    blob = json.dumps([{"$base64": True, "encoded": base64.b64encode(b"\xff\xff").decode()}])
    assert "/" in blob
    for key, n in (('["a/b"]', 1), ("a/b", 1), ('["/"]', 2), (blob, 3)):
        r = await client.get(f"/databases/paths/tables/f/rows/{quote(key, safe='')}")
        assert r.status_code == 200, (key, r.text)
        assert r.json()["row"][1] == n
    r = await client.get(f"/databases/paths/tables/f/rows/{quote('a/c', safe='')}")
    assert r.status_code == 404
    assert r.json()["detail"] == "no row with primary key a/c in table 'f'"


async def test_lookup_columns_name_the_rowid_as_rows_show_it(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # A column named rowid hides the rowid's name: rows show the rowid as _rowid_, and
    # lookup_columns used to say "rowid", which then searched the other column (a 422).
    path = tmp_path / "rowid.db"
    with closing(sqlite3.connect(path)) as con:
        # INTEGER PRIMARY KEY DESC is not a rowid alias (an SQLite quirk).
        con.execute('CREATE TABLE d (a INTEGER PRIMARY KEY DESC, "rowid" TEXT)')
        con.executemany("INSERT INTO d VALUES (?, ?)", [(5, "five"), (7, "seven")])
        con.commit()
    assert (await client.put("/databases/rowid", content=path.read_bytes())).status_code == 201
    info = (await client.get("/databases/rowid/tables/d")).json()
    assert info["row_columns"] == ["_rowid_", "a", "rowid"]
    assert info["lookup_columns"] == ["_rowid_", "a"]
    for column in info["lookup_columns"]:
        r = await client.get(
            "/databases/rowid/tables/d/lookup", params={"column": column, "ge": "1"}
        )
        assert r.status_code == 200, (column, r.text)
        assert sorted(row[2] for row in r.json()["rows"]) == ["five", "seven"]  # index order


async def test_upload_client_disconnect_leaves_nothing(data_dir: Path) -> None:
    """The body stream ends with http.disconnect halfway: no file is left, nothing served."""
    app = create_app(_settings(data_dir))
    body = (data_dir / "sample.db").read_bytes()[:20000]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:10000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with LifespanManager(app) as manager:
        scope = http_scope("PUT", "/databases/halfway", b"", manager._state)
        await app(scope, receive, send)
        assert _upload_dir_entries(data_dir) == []
        assert "halfway" not in app.state.databases.entries
        assert app.state.databases.leases() == 0


# -- errors while reading ----------------------------------------------------------------------


async def test_corrupt_page_while_reading_is_a_500_naming_it(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = data_dir / "sample.db"
    (root,) = _sqlite_rows(db, "SELECT rootpage FROM sqlite_schema WHERE name = 'authors'")[0]
    raw = bytearray(db.read_bytes())
    # Page `root` of authors (a leaf of 40 rows) gets an unknown page type.
    raw[(root - 1) * 4096] = 0x07
    db.write_bytes(bytes(raw))
    app = create_app(_settings(data_dir))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as c,
    ):
        with caplog.at_level(logging.ERROR, logger="examples.service"):
            for url in (
                "/databases/sample/tables/authors/rows",
                "/databases/sample/tables/authors/count",
                "/databases/sample/tables/authors/export",
            ):
                r = await c.get(url)
                assert r.status_code == 500, url
                body = models.ErrorResponse.model_validate(r.json())
                assert body.page == root
                assert f"database 'sample' is corrupt (page {root})" in body.detail
                assert "unknown B-tree page type 7" in body.detail
        assert any("corrupt" in rec.getMessage() for rec in caplog.records)
        # The rest of the database is still served.
        r = await c.get("/databases/sample/tables/books/rows/1")
        assert r.status_code == 200
        assert app.state.databases.leases() == 0


async def test_deeply_nested_or_overlong_keys_are_refused_with_422(
    client: httpx.AsyncClient,
) -> None:
    nested = "[" * 3000
    for url, params in (
        ("/databases/sample/tables/reviews/rows", {"after": nested}),
        (f"/databases/sample/tables/reviews/rows/{nested}", {}),
        ("/databases/sample/tables/books/lookup", {"column": "year", "eq": "1", "after": nested}),
        ("/databases/sample/tables/reviews/rows", {"after": "x" * 9000}),
    ):
        r = await client.get(url, params=params)
        assert r.status_code == 422, (url, r.status_code, r.text[:200])
        detail = r.json()["detail"]
        assert "nested" in detail or "limit" in detail or "next_after" in detail, detail
