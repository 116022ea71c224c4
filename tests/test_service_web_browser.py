"""The browsing pages in a real browser: Debian's Chromium, driven by Playwright.

One browser and one server for the module. The walk is what a person does: home, a
database, a table, the next page, a filter, a sort, a lookup, a row; and on a server
that writes, unlock, insert, edit and delete a row. Without Chromium the
tests skip (saying how to install it), except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from examples.service.app import create_app
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from examples.service.testing import RunningServer, serve_in_thread
from examples.service.web.browser import chromium_context, find_chromium
from examples.service.web.pages import SCAN_BUDGET

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

ROWS = 1200
PAGE = 50


def _require_browser() -> None:
    if find_chromium() is not None:
        return
    message = (
        "browser tests need Chromium and Playwright: apt-get install chromium "
        "(and pip install playwright, in the dev extra)"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("browser-data")
    create_sample_database(data / "sample.db", rows=ROWS)
    return data


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[RunningServer]:
    settings = Settings.from_env({}, data_dir=data_dir, create_sample=False)
    with serve_in_thread(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    _require_browser()
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        tab.close()


def _sql(data_dir: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(data_dir / "sample.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _keys(page: Page) -> list[str]:
    return page.locator("#rows tbody td.key").all_inner_texts()


def _column(page: Page, name: str) -> list[str]:
    return page.locator(f'#rows tbody td[data-column="{name}"]').all_inner_texts()


def test_browse_from_home_to_a_row(server: RunningServer, page: Page, data_dir: Path) -> None:
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "Databases"
    page.get_by_role("link", name="sample", exact=True).click()

    # The database page: tables with their row counts, indexes.
    page.wait_for_url("**/browse/sample")
    tables = page.locator("#tables tbody tr").all_inner_texts()
    assert any(t.startswith("books") and f"{ROWS:,}" in t for t in tables)
    assert "books_title" in page.locator("#indexes").inner_text()
    page.get_by_role("link", name="books", exact=True).click()

    # The table page, in key order.
    page.wait_for_url("**/browse/sample/books")
    assert page.locator("#total").inner_text() == f"{ROWS:,}"
    assert _keys(page) == [str(i) for i in range(1, PAGE + 1)]
    page.locator("#next").click()
    page.wait_for_url("**_next=*")
    assert _keys(page) == [str(i) for i in range(PAGE + 1, 2 * PAGE + 1)]
    page.locator("#previous").click()
    page.wait_for_url("**_prev=*")
    assert _keys(page) == [str(i) for i in range(1, PAGE + 1)]

    # A filter through the form: year >= 2020, which the books_year index serves.
    page.locator("#filter-panel summary").click()
    form = page.locator("#filter-form")
    form.locator("select[name=_filter_column]").select_option("year")
    form.locator("select[name=_filter_op]").select_option("ge")
    form.locator("input[name=_filter_value]").fill("2020")
    form.get_by_role("button", name="Add filter").click()
    page.wait_for_url("**year__ge=2020*")
    assert page.locator("#filters").inner_text().startswith("year ≥ 2020")
    years = [int(y) for y in _column(page, "year")]
    expected = int(str(_sql(data_dir, "SELECT count(*) FROM books WHERE year >= 2020")[0][0]))
    assert years and all(y >= 2020 for y in years)
    assert len(years) == min(PAGE, expected)
    assert "books_year" in page.locator("#order").inner_text()

    # Sort the filtered rows by title, descending (the books_title index walked back).
    page.get_by_role("link", name="sort by title descending").click()
    page.wait_for_url("**_sort_desc=title*")
    titles = _column(page, "title")
    want = _sql(
        data_dir,
        "SELECT title FROM books WHERE year >= 2020 ORDER BY title DESC, id DESC LIMIT ?",
        PAGE,
    )
    assert titles == [t for (t,) in want]
    assert _column(page, "year") and all(int(y) >= 2020 for y in _column(page, "year"))

    # A lookup through an index: one title, any case (the column is NOCASE).
    page.goto(server.url + "/browse/sample/books")
    (title,) = _sql(data_dir, "SELECT title FROM books WHERE id = 123")[0]
    page.locator("#lookup-panel summary").click()
    lookup = page.locator("#lookup-form")
    lookup.locator("select[name=_lookup_column]").select_option("title")
    lookup.locator("input[name=_lookup_value]").fill(str(title).upper())
    lookup.get_by_role("button", name="Look up").click()
    page.wait_for_url("**title__eq=*")
    assert _keys(page) == ["123"]

    # The row page: every column of that row.
    page.get_by_role("link", name="123", exact=True).click()
    page.wait_for_url("**/browse/sample/books/row/123")
    fields = dict(
        zip(
            page.locator("#row th").all_inner_texts(),
            page.locator("#row td.value").all_inner_texts(),
            strict=True,
        )
    )
    (row,) = _sql(
        data_dir, "SELECT id, author_id, title, year, price, summary FROM books WHERE id = 123"
    )
    assert fields["title"] == title
    assert fields["id"] == "123"
    assert float(fields["price"]) == row[4]
    assert fields["summary"] == row[5]


def test_a_scan_says_so_and_continues(server: RunningServer, page: Page) -> None:
    page.goto(server.url + "/browse/sample/books?summary__contains=no-such-word&_size=10")
    assert page.locator("#scan-note").is_visible()
    assert page.locator("#examined").inner_text() == f"{SCAN_BUDGET:,}"
    assert page.locator("#no-rows").is_visible()
    page.locator("#continue").click()
    page.wait_for_url("**_next=*")
    assert page.locator("#examined").inner_text() == f"{ROWS - SCAN_BUDGET:,}"
    assert not page.locator("#partial").is_visible()
    assert not page.locator("#next").is_visible()
    page.goto(server.url + "/browse/sample/reviews?body__contains=loop&_size=5")
    assert len(_keys(page)) == 5
    assert all("loop" in b for b in _column(page, "body"))


def test_the_page_fits_a_phone(server: RunningServer, context: BrowserContext) -> None:
    phone = context.new_page()
    try:
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(server.url + "/browse/sample/books")
        # The page itself does not scroll sideways; the table scrolls in its box.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        box = phone.locator(".scroll").first
        assert box.evaluate("e => e.scrollWidth > e.clientWidth")
    finally:
        phone.close()


WRITE_TOKEN = "browser-write-token"


@pytest.fixture(scope="module")
def write_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway database with a plain table to write, served with a write token."""
    data = tmp_path_factory.mktemp("browser-writes")
    (data / "uploads").mkdir()
    conn = sqlite3.connect(data / "uploads" / "shop.db")
    try:
        conn.executescript(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER);"
            "INSERT INTO items (name, qty) VALUES ('apple', 3), ('pear', NULL);"
        )
        conn.commit()
    finally:
        conn.close()
    return data


@pytest.fixture(scope="module")
def write_server(write_dir: Path) -> Iterator[RunningServer]:
    settings = Settings.from_env(
        {}, data_dir=write_dir, create_sample=False, write_token=WRITE_TOKEN
    )
    with serve_in_thread(create_app(settings)) as running:
        yield running


def _fields(page: Page) -> dict[str, str]:
    return dict(
        zip(
            page.locator("#row th").all_inner_texts(),
            page.locator("#row td.value").all_inner_texts(),
            strict=True,
        )
    )


def test_unlock_insert_edit_and_delete(
    write_server: RunningServer, page: Page, write_dir: Path
) -> None:
    table = write_server.url + "/browse/shop/items"
    page.goto(table)
    # Locked: the action bar offers only the unlock form; a wrong token is refused.
    assert page.locator("#insert-link").count() == 0
    bar = page.locator("#table-actions")
    bar.locator("input[name=token]").fill("not-the-token")
    bar.get_by_role("button", name="Unlock writes").click()
    assert "not the service's write token" in page.locator("#detail").inner_text()
    page.locator("#unlock-form input[name=token]").fill(WRITE_TOKEN)
    page.locator("#unlock-form").get_by_role("button", name="Unlock writes").click()
    page.wait_for_url("**/browse/shop/items")

    # Insert: the id is left to its default, qty is NULL.
    page.locator("#insert-link").click()
    page.wait_for_url("**/_insert")
    page.locator('input[data-column="name"]').fill("plum <b>ripe</b>")
    page.get_by_label("qty is NULL").check()
    page.get_by_role("button", name="Insert").click()
    page.wait_for_url("**/browse/shop/items/row/3")
    fields = _fields(page)
    assert fields["name"] == "plum <b>ripe</b>"
    assert fields["qty"] == "NULL"
    assert page.locator("#row td.value.null").count() == 1

    # Edit: qty becomes 12.
    page.locator("#edit-link").click()
    page.wait_for_url("**/_edit/3")
    page.get_by_label("qty is NULL").uncheck()
    page.locator('input[data-column="qty"]').fill("12")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/browse/shop/items/row/3")
    assert _fields(page)["qty"] == "12"

    # Delete, after ticking the confirmation.
    page.locator("#delete-link").click()
    page.wait_for_url("**/_delete/3")
    page.get_by_label("Yes, delete this row").check()
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/browse/shop/items")
    assert page.locator("#total").inner_text() == "2"
    assert _keys(page) == ["1", "2"]
    page.goto(table + "/row/3")
    assert page.locator("h1").inner_text() == "Error 404"
    conn = sqlite3.connect(write_dir / "uploads" / "shop.db")
    try:
        assert conn.execute("SELECT id, name, qty FROM items").fetchall() == [
            (1, "apple", 3),
            (2, "pear", None),
        ]
    finally:
        conn.close()


def test_without_a_browser_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IORESULT_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        _require_browser()
