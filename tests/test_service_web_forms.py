"""The write forms of the browsing pages through httpx: unlocking with the write token,
the session cookie and CSRF token every POST needs, and inserts, edits and deletes that
sqlite3 sees once the service is gone.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from examples.service.app import create_app
from examples.service.settings import Settings
from examples.service.web.session import COOKIE
from tests.service_helpers import asgi_client

pytestmark = pytest.mark.asyncio

TOKEN = "s3cret-write-token"
NOTES = "/browse/db/notes"
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A database with a table the engine writes: a UNIQUE and a NOT NULL column, a blob."""
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    with closing(sqlite3.connect(data / "uploads" / "db.db")) as conn:
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
        conn.commit()
    return data


@asynccontextmanager
async def _serve(data_dir: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env({}, data_dir=data_dir, create_sample=False, **overrides)
    app = create_app(settings)
    async with asgi_client(app) as c:
        yield c


@pytest_asyncio.fixture
async def client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _serve(data_dir, write_token=TOKEN) as c:
        yield c


def _rows(data_dir: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(data_dir / "uploads" / "db.db")) as conn:
        return conn.execute("SELECT id, title, body, score FROM notes ORDER BY id").fetchall()


async def _unlock(c: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await c.post("/browse/_unlock", data={"token": token, "next": NOTES})


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


async def _form_csrf(c: httpx.AsyncClient, url: str) -> str:
    r = await c.get(url)
    assert r.status_code == 200, r.text
    return _csrf(r.text)


def _fields(**columns: tuple[str, str] | None) -> dict[str, str]:
    """Form fields for notes' columns (id, title, body, score): (text, kind) or None for
    NULL; a column not named is left to its default."""
    names = ["id", "title", "body", "score"]
    form = {}
    for i, name in enumerate(names):
        if name not in columns:
            form[f"as{i}"] = "default"
            continue
        value = columns[name]
        if value is None:
            form[f"null{i}"] = "1"
            form[f"as{i}"] = "text"
            form[f"v{i}"] = ""
        else:
            form[f"v{i}"], form[f"as{i}"] = value
    return form


async def test_no_forms_without_a_write_token(data_dir: Path) -> None:
    async with _serve(data_dir) as c:
        page = (await c.get(NOTES)).text
        assert 'id="table-actions"></div>' in page
        assert "unlock" not in page.lower()
        assert 'id="row-actions"></div>' in (await c.get(f"{NOTES}/row/1")).text
        r = await c.post(f"{NOTES}/_insert", data={"_csrf": "x", **_fields(title=("t", "text"))})
        assert r.status_code == 403
        assert "--write-token" in r.text
        r = await _unlock(c)
        assert r.status_code == 403
        assert COOKIE not in r.headers.get("set-cookie", "")
    assert len(_rows(data_dir)) == 2


async def test_unlock_sets_a_strict_httponly_cookie_that_is_not_the_token(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get(NOTES)).text
    assert 'id="unlock-form"' in page
    assert 'id="insert-link"' not in page
    r = await _unlock(client)
    assert r.status_code == 303
    assert r.headers["location"] == NOTES
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert TOKEN not in cookie
    page = (await client.get(NOTES)).text
    assert 'id="insert-link"' in page
    assert 'id="unlock-form"' not in page
    row = (await client.get(f"{NOTES}/row/1")).text
    assert 'id="edit-link"' in row
    assert 'id="delete-link"' in row


async def test_a_wrong_token_is_refused(client: httpx.AsyncClient) -> None:
    r = await _unlock(client, "not-the-token")
    assert r.status_code == 403
    assert "not the service&#39;s write token" in r.text
    assert "set-cookie" not in r.headers
    # Still locked: the form pages send the browser to unlock.
    r = await client.get(f"{NOTES}/_insert")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/browse/_unlock?next=")


async def test_unlock_never_redirects_off_the_site(client: httpx.AsyncClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x"):
        r = await client.post("/browse/_unlock", data={"token": TOKEN, "next": target})
        assert r.status_code == 303
        assert r.headers["location"] == "/"


async def test_a_post_without_the_cookie_is_refused(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    await _unlock(client)
    csrf = await _form_csrf(client, f"{NOTES}/_insert")
    client.cookies.clear()
    r = await client.post(f"{NOTES}/_insert", data={"_csrf": csrf, **_fields(title=("x", "text"))})
    assert r.status_code == 403
    assert "unlock them with the write token" in r.text
    assert len(_rows(data_dir)) == 2


@pytest.mark.parametrize("csrf", [None, "", "wrong"], ids=["missing", "empty", "wrong"])
async def test_a_post_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, data_dir: Path, csrf: str | None
) -> None:
    await _unlock(client)
    good = await _form_csrf(client, f"{NOTES}/_insert")
    extra = {} if csrf is None else {"_csrf": csrf}
    for url, form in (
        (f"{NOTES}/_insert", _fields(title=("x", "text"))),
        (f"{NOTES}/_edit/1", _fields(title=("x", "text"))),
        (f"{NOTES}/_delete/1", {"confirm": "yes"}),
    ):
        r = await client.post(url, data={**extra, **form})
        assert r.status_code == 403, (url, r.text)
        assert "CSRF token" in r.text
    # Another session's token is no good either.
    async with _serve(data_dir, write_token=TOKEN) as other:
        await _unlock(other)
        theirs = await _form_csrf(other, f"{NOTES}/_insert")
    assert theirs != good
    r = await client.post(
        f"{NOTES}/_insert", data={"_csrf": theirs, **_fields(title=("x", "text"))}
    )
    assert r.status_code == 403
    assert _rows(data_dir) == [(1, "first", b"\x00\xff", 0.5), (2, "second", None, 0.5)]


async def test_insert_edit_and_delete(client: httpx.AsyncClient, data_dir: Path) -> None:
    await _unlock(client)
    csrf = await _form_csrf(client, f"{NOTES}/_insert")
    r = await client.post(
        f"{NOTES}/_insert",
        data={"_csrf": csrf, **_fields(title=("", "text"), body=("de ad", "hex"))},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{NOTES}/row/3"
    page = (await client.get(r.headers["location"])).text
    assert "2 bytes: de ad" in page
    assert _rows(data_dir)[-1] == (3, "", b"\xde\xad", 0.5)

    # The edit form shows the row: NULL ticked, the blob in hex, the real as a real.
    form = (await client.get(f"{NOTES}/_edit/2")).text
    assert re.search(r'name="null2" value="1" checked', form)
    assert 'value="0.5"' in form
    form1 = (await client.get(f"{NOTES}/_edit/1")).text
    assert 'value="00ff"' in form1
    r = await client.post(
        f"{NOTES}/_edit/2",
        data={
            "_csrf": csrf,
            **_fields(id=("2", "integer"), title=("NULL", "text"), body=None, score=("7", "real")),
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{NOTES}/row/2"
    # The text 'NULL' is text, and NULL is NULL.
    assert _rows(data_dir)[1] == (2, "NULL", None, 7.0)

    confirm = (await client.get(f"{NOTES}/_delete/2")).text
    assert 'name="confirm"' in confirm
    r = await client.post(f"{NOTES}/_delete/2", data={"_csrf": csrf})
    assert r.status_code == 422
    assert "confirm" in r.text
    assert len(_rows(data_dir)) == 3
    r = await client.post(f"{NOTES}/_delete/2", data={"_csrf": csrf, "confirm": "yes"})
    assert r.status_code == 303
    assert r.headers["location"] == NOTES
    assert (await client.get(f"{NOTES}/row/2")).status_code == 404
    assert [row[0] for row in _rows(data_dir)] == [1, 3]


async def test_a_constraint_is_named_and_the_values_kept(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    await _unlock(client)
    csrf = await _form_csrf(client, f"{NOTES}/_insert")
    r = await client.post(
        f"{NOTES}/_insert", data={"_csrf": csrf, **_fields(title=("first", "text"))}
    )
    assert r.status_code == 409
    assert "UNIQUE" in r.text
    assert "notes.title" in r.text
    assert 'value="first"' in r.text
    # The form comes back ready to send again, with the session's token.
    assert _csrf(r.text) == csrf
    r = await client.post(f"{NOTES}/_insert", data={"_csrf": csrf, **_fields(title=None)})
    assert r.status_code == 409
    assert "NOT NULL" in r.text
    assert len(_rows(data_dir)) == 2


async def test_a_bad_value_is_a_422_with_the_values_escaped(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    await _unlock(client)
    csrf = await _form_csrf(client, f"{NOTES}/_insert")
    r = await client.post(
        f"{NOTES}/_insert",
        data={"_csrf": csrf, **_fields(title=(HOSTILE, "text"), score=(HOSTILE, "real"))},
    )
    assert r.status_code == 422
    assert "is not a real number" in r.text
    assert HOSTILE not in r.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in r.text
    r = await client.post(
        f"{NOTES}/_insert",
        data={"_csrf": csrf, **_fields(title=("t", "text"), body=("xyz", "hex"))},
    )
    assert r.status_code == 422
    assert "hex" in r.text
    # Stored, the same text is shown escaped too.
    r = await client.post(
        f"{NOTES}/_insert", data={"_csrf": csrf, **_fields(title=(HOSTILE, "text"))}
    )
    assert r.status_code == 303
    page = (await client.get(r.headers["location"])).text
    assert HOSTILE not in page
    edit = (await client.get(f"{NOTES}/_edit/3")).text
    assert HOSTILE not in edit
    assert _rows(data_dir)[-1][1] == HOSTILE
