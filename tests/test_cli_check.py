"""The integrity check behind `ioresult check` (`core.storage.check`), stepped with `block`
over real files that sqlite3 wrote and that the tests then damage byte by byte. Each case
is also run past sqlite3's own `PRAGMA integrity_check`, which must agree that something
is wrong."""

from __future__ import annotations

import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from core import block
from core.io import UnixIO
from core.storage import Database
from core.storage.check import Problem, check_database
from tests.storage_helpers import DeferredUnixIO, drive_checked, open_db

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


# -- index entries agree with rows --------------------------------------------------------


def _tree_pages(path: Path, root: int) -> dict[int, str]:
    """Every page of the B-tree at `root`: "interior", "leaf" or "overflow"."""
    from core.storage.page import (
        TABLE_INTERIOR,
        Page,
        PageLayout,
        cell_overflow,
        parse_btree,
        parse_cells,
    )

    layout = PageLayout(PAGE, PAGE)
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        number = stack.pop()
        page = Page(number, _read_page(path, number))
        parse_btree(page, layout)
        parse_cells(page, layout)
        found[page.number] = "leaf" if page.is_leaf else "interior"
        if not page.is_leaf:
            assert page.children is not None
            stack.extend(page.children)
        if page.kind == TABLE_INTERIOR:
            continue
        for i in range(page.cell_count):
            number = cell_overflow(page, i, layout)[2]
            while number:
                found[number] = "overflow"
                number = struct.unpack_from(">I", _read_page(path, number), 0)[0]
    return found


def _replace_in(path: Path, name: str, old: bytes, new: bytes, kind: str = "leaf") -> int:
    """Overwrite the one occurrence of `old` on the `kind` pages of B-tree `name` with
    `new` (same length, so every page stays parseable); the page it was on."""
    assert len(old) == len(new)
    hits = [
        (number, at)
        for number, what in _tree_pages(path, _root(path, name)).items()
        if what == kind
        for at in [_read_page(path, number).find(old)]
        if at >= 0
    ]
    assert len(hits) == 1, hits
    number, at = hits[0]
    _patch(path, number, at, new)
    return number


def _sqlite_problems(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def _rich(path: Path, encoding: str = "UTF-8") -> Path:
    """Indexes of every shape the comparison handles, and some it skips."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute(f"PRAGMA encoding = '{encoding}'")
    conn.executescript(
        """
        CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE, score REAL, tag,
                       body TEXT UNIQUE);
        CREATE INDEX t_name ON t(name DESC, score);
        CREATE INDEX t_tag ON t(tag COLLATE RTRIM, id);
        CREATE TABLE w(a TEXT COLLATE NOCASE, b INT, c, d, PRIMARY KEY(b DESC, a)) WITHOUT ROWID;
        CREATE INDEX w_c ON w(c, a);
        CREATE INDEX w_d ON w(d DESC);
        CREATE TABLE g(a, v AS (a * 2) VIRTUAL, s AS (a || 'x') STORED, e);
        CREATE INDEX g_s ON g(s, e);
        CREATE INDEX g_v ON g(v);
        CREATE INDEX g_part ON g(e) WHERE e > 3;
        CREATE INDEX g_expr ON g(a + 1);
        CREATE TABLE k(x TEXT PRIMARY KEY, y) WITHOUT ROWID;
        CREATE INDEX k_x ON k(x);
        CREATE INDEX k_xn ON k(x COLLATE NOCASE, y);
        """
    )
    values = [None, 1, 2.0, 2.5, "A", "a", "a  ", b"\x00", -0.0, "long " * 1000]
    n = len(values)
    conn.executemany(
        "INSERT INTO t(name, score, tag, body) VALUES (?, ?, ?, ?)",
        (
            (values[i % n], [None, 1, 1.0, 3.5][i % 4], values[i * 7 % n], f"{i} " * (i % 900))
            for i in range(600)
        ),
    )
    conn.executemany(
        "INSERT INTO w VALUES (?, ?, ?, ?)",
        (
            (f"k{i}" + "z" * (i % 3 * 1500), i % 13, values[i % n], values[i * 3 % n])
            for i in range(300)
        ),
    )
    conn.executemany("INSERT INTO g(a, e) VALUES (?, ?)", ((values[i % n], i) for i in range(100)))
    conn.executemany("INSERT INTO k VALUES (?, ?)", ((f"x{i}", values[i % n]) for i in range(200)))
    # Rows older than a column hold fewer fields; the index has the column's default.
    conn.execute("ALTER TABLE t ADD COLUMN late TEXT DEFAULT 7")
    conn.execute("CREATE INDEX t_late ON t(late, tag)")
    conn.execute("INSERT INTO t(name, late) VALUES ('new', 'other')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16le"])
def test_index_entries_of_sound_databases_agree_with_rows(tmp_path: Path, encoding: str) -> None:
    path = _rich(tmp_path / "rich.db", encoding)
    assert _sqlite_says_ok(path)
    assert _check(path) == []
    # The index of the WITHOUT ROWID table holds (c, a, b): change a, keeping the order.
    codec = "utf-8" if encoding == "UTF-8" else "utf-16-le"
    _replace_in(path, "w_c", "k123".encode(codec), "k124".encode(codec))
    assert any("w_c" in line for line in _sqlite_problems(path))
    (problem,) = _check(path)
    assert problem.where == "index w_c" and problem.message == (
        "lacks 1 entry that rows of table w need (e.g. (2.5, 'k123', 6)); "
        "holds 1 entry that no row of table w makes (e.g. (2.5, 'k124', 6))"
    )


def test_an_index_entry_changed_in_place(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    page = _replace_in(path, "t_name", b"name 00042", b"name 00041")
    assert _sqlite_problems(path) == ["row 42 missing from index t_name"]
    assert [p.describe() for p in _check(path)] == [
        f"index t_name page {page}: lacks 1 entry that rows of table t need "
        "(e.g. ('name 00042', 42)); holds 1 entry that no row of table t makes "
        "(e.g. ('name 00041', 42))"
    ]


def test_a_row_changed_under_its_index(tmp_path: Path) -> None:
    path = _make(tmp_path / "bad.db")
    _replace_in(path, "t", b"name 00042", b"name 0004X")
    assert _sqlite_problems(path) == ["row 42 missing from index t_name"]
    (problem,) = _check(path)
    assert problem.where == "index t_name"
    assert problem.page in _tree_pages(path, _root(path, "t_name"))  # where the entry is
    assert problem.message == (
        "lacks 1 entry that rows of table t need (e.g. ('name 0004X', 42)); holds 1 entry "
        "that no row of table t makes (e.g. ('name 00042', 42))"
    )


def test_a_without_rowid_index_entry_changed(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE w(k TEXT PRIMARY KEY, v TEXT COLLATE NOCASE) WITHOUT ROWID")
    conn.execute("CREATE INDEX w_v ON w(v DESC)")
    conn.executemany(
        "INSERT INTO w VALUES (?, ?)", ((f"key {i:04d}", f"Value {i:04d}") for i in range(500))
    )
    conn.commit()
    conn.close()
    assert _sqlite_says_ok(path) and _check(path) == []
    # The entry is (v, k): change the key part, the primary key suffix.
    page = _replace_in(path, "w_v", b"key 0042", b"key 0043")
    sqlite_says = _sqlite_problems(path)
    assert any("w_v" in line for line in sqlite_says), sqlite_says
    assert [p.describe() for p in _check(path)] == [
        f"index w_v page {page}: lacks 1 entry that rows of table w need "
        "(e.g. ('Value 0042', 'key 0042')); holds 1 entry that no row of table w makes "
        "(e.g. ('Value 0042', 'key 0043'))"
    ]


def test_an_overflowing_index_key_changed_on_its_overflow_page(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, doc TEXT)")
    conn.execute("CREATE INDEX t_doc ON t(doc)")
    conn.executemany(
        "INSERT INTO t(doc) VALUES (?)",
        ((f"{i:04d}" + "-" * 6000 + f"end {i:04d}",) for i in range(40)),
    )
    conn.commit()
    conn.close()
    assert _sqlite_says_ok(path) and _check(path) == []
    _replace_in(path, "t_doc", b"end 0017", b"end 0071", kind="overflow")
    sqlite_says = _sqlite_problems(path)
    assert any("t_doc" in line for line in sqlite_says), sqlite_says
    (problem,) = _check(path)
    assert problem.where == "index t_doc"
    start, end = "'0017" + "-" * 16 + "'", "'" + "-" * 12 + "end 00"
    assert problem.message == (
        f"lacks 1 entry that rows of table t need (e.g. ({start}...{end}17' (6012 chars), 18)); "
        f"holds 1 entry that no row of table t makes (e.g. ({start}...{end}71' (6012 chars), 18))"
    )


def test_header_page_count_against_the_walk(tmp_path: Path) -> None:
    path = _make(tmp_path / "ok.db")
    pages = path.stat().st_size // PAGE
    for claimed, expected in [
        (pages - 1, f"points at page {pages}, outside the database (1..{pages - 1})"),
        (pages + 2, f"is truncated: it holds {pages} pages, the header says {pages + 2}"),
    ]:
        _patch(path, 1, 28, struct.pack(">I", claimed))
        assert not _sqlite_says_ok(path)
        problems = _check(path)
        assert any(expected in p.message for p in problems), problems
        # The table's walk was cut short, so its index is not compared with it.
        assert not any("no row of table" in p.message for p in problems), problems
    _patch(path, 1, 28, struct.pack(">I", pages))
    assert _sqlite_says_ok(path) and _check(path) == []


def test_index_comparison_with_deferred_reads_and_a_small_cache(tmp_path: Path) -> None:
    # Every read waits and the cache holds 4 pages: each wait is re-entered once before
    # it completes (drive_checked), and nothing is predicted or matched twice.
    path = _rich(tmp_path / "rich.db")
    _replace_in(path, "w_c", b"k123", b"k124")
    io = DeferredUnixIO()
    db = open_db(io, path, cache_pages=4)
    try:
        problems = drive_checked(check_database(db), io)
        assert drive_checked.yields > 100  # type: ignore[attr-defined]
    finally:
        db.close()
    assert problems == _check(path)
    assert [p.where for p in problems] == ["index w_c"]


@pytest.mark.parametrize("immutable", [False, True])
def test_cli_agrees_with_sqlite_on_an_empty_file(tmp_path: Path, immutable: bool) -> None:
    """A 0-byte file is a valid empty database: sqlite3 opens it and says `ok`, and so must
    `ioresult check`, rather than report a missing page 1."""
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    assert _sqlite_says_ok(path)
    flags = ["--immutable"] if immutable else []
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", *flags, "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"ok: {path}: 0 pages (an empty database), no problems found\n"
    assert result.stderr == ""
    assert path.read_bytes() == b""  # checking wrote nothing
