"""The browsing pages through httpx's ASGI transport: HTML, JSON and CSV variants.

Every walk is checked against Python's sqlite3 running the equivalent ORDER BY and WHERE
on the same file: following `next` to the end gives exactly its rows, and following
`previous` back from the end gives them again.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from examples.service.app import create_app
from examples.service.encoding import decode_cell
from examples.service.queries.paging import encode_token
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from examples.service.web.pages import SCAN_BUDGET
from tests.service_helpers import asgi_client

pytestmark = pytest.mark.asyncio

ROWS = 2500
HOSTILE = "<script>alert('x')</script>"


def _make_odd(path: Path) -> Path:
    """A database with values that are easy to show wrong, and a view."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE odd (id INTEGER PRIMARY KEY, label TEXT, value, data BLOB);
            CREATE INDEX odd_label ON odd(label);
            CREATE VIEW odd_view AS SELECT id FROM odd;
            CREATE TABLE "x.json" (a INTEGER PRIMARY KEY, b TEXT);
            CREATE TABLE computed (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL);
            INSERT INTO "x.json" VALUES (1, 'suffix');
            """
        )
        conn.executemany(
            "INSERT INTO odd VALUES (?, ?, ?, ?)",
            [
                (1, HOSTILE, None, None),
                (2, "NULL", "NULL", b"\x00\x01\xfe\xff" * 10),
                (3, "real", 1.0, b""),
                (4, "int", 1, None),
                (5, None, -2.5, None),
            ],
        )
        conn.commit()
    finally:
        conn.close()
    return path


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_sample_database(tmp_path_factory.mktemp("web") / "sample.db", rows=ROWS)


@pytest.fixture
def data_dir(tmp_path: Path, sample_file: Path) -> Path:
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    shutil.copy(sample_file, data / "sample.db")
    _make_odd(data / "uploads" / "odd.db")
    return data


@pytest_asyncio.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env({}, data_dir=data_dir, create_sample=False)
    app = create_app(settings)
    async with asgi_client(app) as c:
        yield c


def _sql(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


async def _walk(client: httpx.AsyncClient, url: str) -> tuple[list[Any], dict[str, Any]]:
    """Every key met following `next` from `url`; and the last page's body."""
    keys: list[Any] = []
    body: dict[str, Any] = {}
    pages = 0
    while url:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        keys += [_key(k) for k in body["keys"]]
        url = body["next"]
        pages += 1
        assert pages < 500
    return keys, body


async def _walk_back(client: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    """Every key met following `previous` from the page `body` (its own rows included)."""
    keys = [_key(k) for k in body["keys"]]
    url = body["previous"]
    pages = 0
    while url:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        keys = [_key(k) for k in page["keys"]] + keys
        url = page["previous"]
        pages += 1
        assert pages < 500
    return keys


WALKS = [
    ("", "SELECT id FROM books ORDER BY id"),
    ("_sort_desc=id", "SELECT id FROM books ORDER BY id DESC"),
    ("_sort=title", "SELECT id FROM books ORDER BY title, id"),
    ("_sort_desc=title", "SELECT id FROM books ORDER BY title DESC, id DESC"),
    ("_sort_desc=year", "SELECT id FROM books ORDER BY year DESC, price DESC, id DESC"),
    (
        "year__ge=2000&year__lt=2004",
        "SELECT id FROM books WHERE year >= 2000 AND year < 2004 ORDER BY year, price, id",
    ),
    (
        "_sort_desc=title&title__lt=m&summary__contains=loop",
        "SELECT id FROM books WHERE title < 'm' AND instr(summary, 'loop') > 0 "
        "ORDER BY title DESC, id DESC",
    ),
    ("id__gt=2400&_sort_desc=id", "SELECT id FROM books WHERE id > 2400 ORDER BY id DESC"),
    ("title=yield%20worker%205", "SELECT id FROM books WHERE title = 'yield worker 5'"),
]


@pytest.mark.parametrize(("query", "sql"), WALKS)
async def test_walks_match_sqlite_both_ways(
    client: httpx.AsyncClient, data_dir: Path, query: str, sql: str
) -> None:
    expected = [r[0] for r in _sql(data_dir / "sample.db", sql)]
    keys, last = await _walk(client, f"/browse/sample/books.json?_size=97&{query}")
    assert keys == expected
    assert await _walk_back(client, last) == expected


async def test_without_rowid_table_walks(client: httpx.AsyncClient, data_dir: Path) -> None:
    db = data_dir / "sample.db"
    expected = [(b, r) for b, r in _sql(db, "SELECT book_id, reviewer FROM reviews ORDER BY 1, 2")]
    keys, last = await _walk(client, "/browse/sample/reviews.json?_size=61")
    assert keys == expected
    assert await _walk_back(client, last) == expected
    keys, _ = await _walk(client, "/browse/sample/reviews.json?_size=61&_sort_desc=book_id")
    assert keys == expected[::-1]
    by_stars = _sql(db, "SELECT book_id, reviewer FROM reviews WHERE stars = 5 ORDER BY 1, 2")
    keys, body = await _walk(client, "/browse/sample/reviews.json?stars=5&_size=40")
    assert body["order"]["index"] == "reviews_stars"
    assert keys == [tuple(r) for r in by_stars]


async def test_a_scan_is_bounded_per_page_and_continues(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    # No summary holds "zzz": every row is examined in vain, a budget at a time.
    response = await client.get("/browse/sample/books.json?summary__contains=zzz")
    body = response.json()
    assert body["rows"] == []
    assert body["partial"] is True
    assert body["examined"] == SCAN_BUDGET
    assert body["filters"] == [
        {"column": "summary", "op": "contains", "value": "zzz", "scanned": True}
    ]
    examined = 0
    url = "/browse/sample/books.json?summary__contains=zzz"
    while url:
        body = (await client.get(url)).json()
        examined += body["examined"]
        url = body["next"]
    assert examined == ROWS
    html = (await client.get("/browse/sample/books?summary__contains=zzz")).text
    assert "Continue scanning" in html
    assert re.search(rf'examined <span id="examined">{SCAN_BUDGET:,}</span>', html)


async def test_an_indexed_filter_reads_only_its_range(client: httpx.AsyncClient) -> None:
    body = (await client.get("/browse/sample/books.json?year=1990&_size=5")).json()
    assert body["order"] == {
        "column": "year",
        "index": "books_year",
        "descending": False,
        "sorted": False,
    }
    assert body["examined"] == 5
    assert all(row[3] == 1990 for row in body["rows"])
    assert body["filters"][0]["scanned"] is False


async def test_columns_are_chosen_and_csv_matches(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    url = "/browse/sample/books.csv?_col=title&_col=YEAR&year__le=1951&_size=1000"
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["title", "year"]
    expected = _sql(
        data_dir / "sample.db",
        "SELECT title, year FROM books WHERE year <= 1951 ORDER BY year, price, id",
    )
    assert [(t, int(y)) for t, y in rows[1:]] == expected
    html = (await client.get(url.replace(".csv", ""))).text
    assert '<span class="name">title</span>' in html
    assert '<span class="name">summary</span>' not in html
    # The rowid is not shown: a column of its own links each row.
    assert '<th class="key">key</th>' in html
    full = (await client.get("/browse/sample/books")).text
    assert '<th class="key">key</th>' not in full
    assert (
        '<td class="integer key" data-column="id"><a href="/browse/sample/books/row/1">1</a>'
        in (full)
    )


async def test_values_keep_their_types_and_text_is_escaped(client: httpx.AsyncClient) -> None:
    html = (await client.get("/browse/odd/odd")).text
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    cells = re.findall(r'<td class="(\w+)"[^>]*>([^<]*)</td>', html)
    # The NULL of row 1 and the text 'NULL' of row 2 read alike but are marked apart.
    assert ("null", "NULL") in cells
    assert ("text", "NULL") in cells
    assert ("real", "1.0") in cells
    assert ("integer", "1") in cells
    assert ("blob", "40 bytes: 00 01 fe ff 00 01 fe ff 00 01 fe ff 00 01 fe ff…") in cells
    assert ("blob", "0 bytes: ") in cells
    body = (await client.get("/browse/odd/odd.json")).json()
    assert body["rows"][0] == [1, HOSTILE, None, None]
    assert body["rows"][1][1:3] == ["NULL", "NULL"]
    assert decode_cell(body["rows"][1][3]) == b"\x00\x01\xfe\xff" * 10
    row = (await client.get("/browse/odd/odd/row/1")).text
    assert HOSTILE not in row and "&lt;script&gt;" in row
    assert 'class="value null"' in row


async def test_row_page_and_its_variants(client: httpx.AsyncClient, data_dir: Path) -> None:
    (expected,) = _sql(data_dir / "sample.db", "SELECT * FROM books WHERE id = 500")
    html = (await client.get("/browse/sample/books/row/500")).text
    for value in expected:
        assert str(value) in html
    body = (await client.get("/browse/sample/books/row/500.json")).json()
    assert tuple(body["row"]) == expected
    rows = list(
        csv.reader(io.StringIO((await client.get("/browse/sample/books/row/500.csv")).text))
    )
    assert rows[0] == ["id", "author_id", "title", "year", "price", "summary"]
    assert rows[1][2] == expected[2]
    body = (await client.get('/browse/sample/reviews/row/[11,"chen"].json')).json()
    assert body["row"][:2] == [11, "chen"]
    missing = await client.get("/browse/sample/books/row/999999")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "no row with rowid 999999" in missing.text


async def test_home_and_database_pages(client: httpx.AsyncClient, data_dir: Path) -> None:
    home = await client.get("/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    assert 'href="/browse/sample"' in home.text and 'href="/browse/odd"' in home.text
    index = (await client.get("/index.json")).json()
    assert [d["name"] for d in index["databases"]] == ["sample", "odd"]
    assert index["api"] == "/databases"
    page = (await client.get("/browse/sample.json")).json()
    counts = {t["name"]: t["rows"] for t in page["tables"]}
    for table in ("authors", "books", "reviews"):
        (n,) = _sql(data_dir / "sample.db", f"SELECT count(*) FROM {table}")[0]
        assert counts[table] == n
    assert {i["name"]: i["rows"] for i in page["indexes"]}["books_year"] == ROWS
    odd = await client.get("/browse/odd")
    assert "odd_view" in odd.text and "not readable" in odd.text
    odd_json = (await client.get("/browse/odd.json")).json()
    assert odd_json["views"] == [{"name": "odd_view", "readable": False}]
    # Rows the storage engine does not hold (a virtual generated column): listed, unread.
    assert {"name": "computed", "rows": None, "readable": False} in odd_json["tables"]
    assert 'href="/browse/odd/computed"' not in odd.text
    # A table whose name ends in .json: the suffix is the format; _format takes it as it is.
    assert 'href="/browse/odd/x.json?_format=html"' in odd.text
    named = await client.get("/browse/odd/x.json?_format=html")
    assert named.status_code == 200 and "suffix" in named.text
    assert (await client.get("/browse/odd/x.json.json")).json()["rows"] == [[1, "suffix"]]


async def test_unknown_parameters_are_named(client: httpx.AsyncClient) -> None:
    for url in (
        "/?page=2",
        "/browse/sample?x=1",
        "/browse/sample/books?colour=red&_x=1",
        "/browse/sample/books/row/1?y=2",
    ):
        response = await client.get(url)
        assert response.status_code == 422, url
        assert "text/html" in response.headers["content-type"]
        assert "unknown query parameter" in response.text
    body = (await client.get("/browse/sample/books.json?colour=red&_x=1")).json()
    assert "_x" in body["detail"] and "colour" in body["detail"]
    assert (await client.get("/index.json?a=1")).status_code == 422


async def test_bad_requests_say_what_is_wrong(client: httpx.AsyncClient) -> None:
    cases = {
        "/browse/sample/books.json?_sort=price": "columns that can: id, title, year",
        "/browse/sample/books.json?nope__gt=1": "no column 'nope'",
        "/browse/sample/books.json?_next=garbage": "_next='garbage'",
        "/browse/sample/books.json?_size=0": "_size must be",
        "/browse/sample/books.json?year__isnull=maybe": "year__isnull takes no value",
        "/browse/sample/books.json?_format=xml": "_format must be one of",
        "/browse/sample/nope.json": "no table 'nope'",
        # A position of the old kind (a value and a count to skip) is not an entry.
        f"/browse/sample/books.json?_sort=year&_next={encode_token(2000, 60_000)}": (
            "is not a position in this order"
        ),
    }
    for url, message in cases.items():
        response = await client.get(url)
        assert response.status_code in (404, 422), url
        assert message in response.json()["detail"], url
    assert (await client.get("/browse/nope")).status_code == 404


async def test_forms_redirect_to_filter_urls(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/browse/sample/books?_sort=title&_filter_column=year&_filter_op=ge&_filter_value=2000"
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/browse/sample/books?_sort=title&year__ge=2000"
    response = await client.get("/browse/sample/books?_lookup_column=title&_lookup_value=x%20y")
    assert response.headers["location"] == "/browse/sample/books?title__eq=x+y"


async def test_null_filters(client: httpx.AsyncClient, data_dir: Path) -> None:
    body = (await client.get("/browse/odd/odd.json?value__isnull=1")).json()
    expected = [
        r[0]
        for r in _sql(data_dir / "uploads" / "odd.db", "SELECT id FROM odd WHERE value IS NULL")
    ]
    assert body["keys"] == expected
    body = (await client.get("/browse/odd/odd.json?label__notnull=1&_sort_desc=label")).json()
    expected = [
        r[0]
        for r in _sql(
            data_dir / "uploads" / "odd.db",
            "SELECT id FROM odd WHERE label IS NOT NULL ORDER BY label DESC, id DESC",
        )
    ]
    assert body["keys"] == expected
    keys, _ = await _walk(client, "/browse/odd/odd.json?_sort_desc=label&_size=2")
    assert keys == [
        r[0]
        for r in _sql(
            data_dir / "uploads" / "odd.db", "SELECT id FROM odd ORDER BY label DESC, id DESC"
        )
    ]


async def test_stylesheet_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/browse/_static/web.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "overflow-x: auto" in response.text
    home = (await client.get("/")).text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in home
