"""The integrity check behind `ioresult check` (`core.storage.check`), stepped with `block`
over real files that sqlite3 wrote and that the tests then damage byte by byte. Each case
is also run past sqlite3's own `PRAGMA integrity_check`, which must agree that something
is wrong."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import pytest

from core import block
from core.io import UnixIO
from core.storage import Database
from core.storage.check import Problem, check_database

PAGE = 4096


def _make(path: Path, *, freelist: bool = False, overflow: bool = False) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body TEXT)")
    conn.execute("CREATE INDEX t_name ON t(name)")
    body = "x" * (9000 if overflow else 20)
    conn.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", ((i, f"name {i:05d}", body) for i in range(1, 1201))
    )
    if freelist:
        conn.execute("CREATE TABLE scratch (x)")
        conn.executemany("INSERT INTO scratch VALUES (?)", ((("y" * 1000),) for _ in range(50)))
        conn.commit()
        conn.execute("DROP TABLE scratch")
    conn.commit()
    conn.close()
    return path


def _check(path: Path, **kwargs: int) -> list[Problem]:
    with UnixIO() as io:
        db = block(Database.open(io, path), io)
        try:
            return block(check_database(db, **kwargs), io)
        finally:
            db.close()


def _sqlite_says_ok(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def _root(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(
            conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (name,)).fetchone()[0]
        )
    finally:
        conn.close()


def _patch(path: Path, page: int, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek((page - 1) * PAGE + offset)
        f.write(data)


def _read_page(path: Path, page: int) -> bytes:
    with path.open("rb") as f:
        f.seek((page - 1) * PAGE)
        return f.read(PAGE)


def _children(path: Path, page: int) -> list[int]:
    data = _read_page(path, page)
    assert data[0] in (2, 5), "not an interior page"
    count = struct.unpack_from(">H", data, 3)[0]
    pointers = struct.unpack_from(f">{count}H", data, 12)
    prefix = [struct.unpack_from(">I", data, p)[0] for p in pointers]
    return [*prefix, struct.unpack_from(">I", data, 8)[0]]


@pytest.mark.parametrize("freelist", [False, True])
@pytest.mark.parametrize("overflow", [False, True])
def test_sound_databases_have_no_problems(tmp_path: Path, freelist: bool, overflow: bool) -> None:
    path = _make(tmp_path / "ok.db", freelist=freelist, overflow=overflow)
    assert _sqlite_says_ok(path)
    assert _check(path) == []


def test_every_page_is_read_once(tmp_path: Path) -> None:
    path = _make(tmp_path / "ok.db", overflow=True, freelist=True)
    with UnixIO() as io:
        db = block(Database.open(io, path, cache_pages=4), io)
        before = db.pager.reads
        assert block(check_database(db), io) == []
        pages = path.stat().st_size // PAGE
        # The header re-read at the start of the operation is not a page read; the
        # freelist leaves are claimed without being read.
        assert db.pager.reads - before <= pages
        db.close()


def test_child_pointer_out_of_range(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    root = _root(path, "t")
    data = _read_page(path, root)
    _patch(path, root, 8, struct.pack(">I", 99_999))  # the right-most child pointer
    assert not _sqlite_says_ok(path)
    problems = _check(path)
    descriptions = [p.describe() for p in problems]
    assert f"table t page {root}: points at page 99999, outside the database" in descriptions[0]
    # The subtree that pointer used to reach is now unclaimed.
    assert any("page is never used" in d for d in descriptions)
    assert data[0] == 5


def test_page_used_twice(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    root = _root(path, "t")
    children = _children(path, root)
    # Make the right-most pointer repeat the first child.
    _patch(path, root, 8, struct.pack(">I", children[0]))
    assert not _sqlite_says_ok(path)
    problems = _check(path)
    assert any(
        f"page {children[0]} is used twice" in p.message and p.where == "table t" for p in problems
    ), problems


def test_rowids_out_of_order(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    root = _root(path, "t")
    leaf = _children(path, root)[1]
    data = _read_page(path, leaf)
    assert data[0] == 13
    first_cell = struct.unpack_from(">H", data, 8)[0]
    # A cell is payload-size varint (1 byte here) then the rowid varint: make it 1.
    _patch(path, leaf, first_cell + 1, b"\x01")
    assert not _sqlite_says_ok(path)
    problems = _check(path)
    assert any(
        p.page == leaf and "not above the parent's divider" in p.message for p in problems
    ), problems


def test_broken_overflow_chain(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db", overflow=True)
    root = _root(path, "t")
    leaf = _children(path, root)[0]
    with UnixIO() as io:
        db = block(Database.open(io, path), io)
        block(db.get("t", 1), io)  # bring the leaf into the cache, parsed
        db.close()
    data = _read_page(path, leaf)
    first_cell = struct.unpack_from(">H", data, 8)[0]
    # Find the overflow pointer of the first cell: after the local part of the payload.
    from core.storage.page import Page, PageLayout, cell_overflow, parse_btree, parse_cells

    page = Page(leaf, data)
    layout = PageLayout(PAGE, PAGE)
    parse_btree(page, layout)
    parse_cells(page, layout)
    _, end, first = cell_overflow(page, 0, layout)
    assert first > 0 and end > first_cell
    _patch(path, first, 0, struct.pack(">I", 0))  # cut the chain after its first page
    assert not _sqlite_says_ok(path)
    problems = _check(path)
    assert any("overflow chain ends" in p.message and p.page == leaf for p in problems), problems
    assert any("page is never used" in p.message for p in problems)


def test_index_entry_count_differs(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema = ON")
    # Point the index at a tree of another shape: an empty index of the same name.
    conn.execute("CREATE TABLE other (name TEXT)")
    conn.execute("CREATE INDEX other_name ON other(name)")
    (other_root,) = conn.execute(
        "SELECT rootpage FROM sqlite_schema WHERE name = 'other_name'"
    ).fetchone()
    (index_root,) = conn.execute(
        "SELECT rootpage FROM sqlite_schema WHERE name = 't_name'"
    ).fetchone()
    conn.execute("UPDATE sqlite_schema SET rootpage = ? WHERE name = 't_name'", (other_root,))
    conn.execute("UPDATE sqlite_schema SET rootpage = ? WHERE name = 'other_name'", (index_root,))
    conn.commit()
    conn.close()
    assert not _sqlite_says_ok(path)
    problems = _check(path)
    assert any(
        p.where == "index t_name" and "has 0 entries but table t has 1200 rows" in p.message
        for p in problems
    ), problems


def test_freelist_count_mismatch(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db", freelist=True)
    with path.open("r+b") as f:
        f.seek(36)
        (count,) = struct.unpack(">I", f.read(4))
        assert count > 0
        f.seek(36)
        f.write(struct.pack(">I", count + 5))
    assert not _sqlite_says_ok(path)
    problems = _check(path)
    assert any(
        p.where == "freelist"
        and f"holds {count} pages but the header says {count + 5}" in p.message
        for p in problems
    ), problems


def test_max_problems_stops_the_walk(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    pages = path.stat().st_size // PAGE
    for page in range(3, pages + 1):
        _patch(path, page, 0, b"\x07")
    problems = _check(path, max_problems=3)
    assert len(problems) == 3
    with pytest.raises(ValueError, match="max_problems must be at least 1"):
        check_database(None, max_problems=0)  # type: ignore[arg-type]
