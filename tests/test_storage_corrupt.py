"""Bad input: every malformed file gives `CorruptDatabaseError` naming the page and the
problem, never a stray exception, a hang or unbounded work."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest

from core import block
from core.io import MemoryIO, OpenFlags
from core.ops import WriteBuffers
from core.storage import CorruptDatabaseError, Database, StorageError
from core.storage.page import Page, PageLayout, parse_btree, parse_cells
from tests.storage_helpers import make_db, open_db


def _memory_db(data: bytes, **kwargs: Any) -> tuple[MemoryIO, Database]:
    io = MemoryIO()
    f = io.open_file("/db", OpenFlags.CREATE)
    block(WriteBuffers(f, 0, [data], sync=False), io)
    f.close()
    return io, open_db(io, "/db", **kwargs)


def _sample_db(tmp_path: Path, page_size: int = 1024) -> bytes:
    rows = [
        (i, f"name{i:05d}" * 3, i * 0.5, bytes(range(i % 7)) * (1 + (i % 300))) for i in range(400)
    ]
    path = make_db(
        tmp_path / f"sample{page_size}.db",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, x REAL, b BLOB)",
            "CREATE INDEX t_name ON t(name COLLATE NOCASE)",
            "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
            ("INSERT INTO t VALUES (?, ?, ?, ?)", rows, True),
            ("INSERT INTO w VALUES (?, ?)", [(f"k{i}" * 20, i) for i in range(200)], True),
        ],
        page_size=page_size,
    )
    return path.read_bytes()


def _page_of(data: bytes, number: int, page_size: int) -> Page:
    return Page(number, data[(number - 1) * page_size : number * page_size])


def _find_pages(data: bytes, page_size: int, kind: int) -> list[int]:
    found = []
    for number in range(2, len(data) // page_size + 1):
        if data[(number - 1) * page_size] == kind:
            found.append(number)
    return found


def _everything(db: Database, io: MemoryIO) -> None:
    """Run every operation over every table and index."""
    schema = block(db.read_schema(), io)
    for table in schema.tables:
        block(db.scan(table.name), io)
        block(db.count(table.name), io)
        key = (("x",) * len(table.primary_key)) if table.without_rowid else 1
        block(db.get(table.name, key), io)
    for index in schema.indexes:
        block(db.index_scan(index.name, equal=["name00010name00010name00010"]), io)
        block(db.index_scan(index.name, lower=None, upper=None), io)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _sample_db(tmp_path_factory.mktemp("corrupt"))


def test_sample_is_fine(sample: bytes) -> None:
    io, db = _memory_db(sample)
    _everything(db, io)
    assert block(db.count("t"), io) == 400


def test_truncated_file_names_the_page(sample: bytes) -> None:
    io, db = _memory_db(sample[: len(sample) // 2])
    with pytest.raises(CorruptDatabaseError, match=r"truncated|outside the database") as info:
        block(db.scan("t"), io)
    assert info.value.page is not None


def test_file_shorter_than_a_header() -> None:
    io = MemoryIO()
    f = io.open_file("/db", OpenFlags.CREATE)
    block(WriteBuffers(f, 0, [b"SQLite format 3\x00" + b"\x00" * 20], sync=False), io)
    with pytest.raises(CorruptDatabaseError, match="too short") as info:
        open_db(io, "/db")
    assert info.value.page == 1


def test_wrong_magic(sample: bytes) -> None:
    with pytest.raises(CorruptDatabaseError, match="not a database"):
        _memory_db(b"SQLite format 2\x00" + sample[16:])


def test_unknown_page_type(sample: bytes) -> None:
    data = bytearray(sample)
    leaf = _find_pages(sample, 1024, 13)[3]
    data[(leaf - 1) * 1024] = 7
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match="unknown B-tree page type 7") as info:
        block(db.scan("t"), io)
    assert info.value.page == leaf


def test_cell_pointer_out_of_range(sample: bytes) -> None:
    data = bytearray(sample)
    leaf = _find_pages(sample, 1024, 13)[2]
    struct.pack_into(">H", data, (leaf - 1) * 1024 + 8, 1023)
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match="cell pointer 0 is 1023") as info:
        block(db.scan("t"), io)
    assert info.value.page == leaf


def _interior_root(data: bytes, page_size: int) -> int:
    """The table interior page with the most cells."""
    layout = PageLayout(page_size, page_size)
    best = (0, 0)
    for number in _find_pages(data, page_size, 5):
        page = _page_of(data, number, page_size)
        parse_btree(page, layout)
        best = max(best, (page.cell_count, number))
    assert best[0] >= 2, "no interior table page with two cells"
    return best[1]


def test_cycle_in_the_tree(sample: bytes) -> None:
    data = bytearray(sample)
    root = _interior_root(sample, 1024)
    # Point the interior page's right-most child back at itself.
    struct.pack_into(">I", data, (root - 1) * 1024 + 8, root)
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match=r"cycle|reached twice"):
        block(db.scan("t"), io)
    with pytest.raises(CorruptDatabaseError, match="cycle"):
        block(db.get("t", 10**9), io)


def test_page_referenced_twice(sample: bytes) -> None:
    data = bytearray(sample)
    root = _interior_root(sample, 1024)
    page = _page_of(sample, root, 1024)
    layout = PageLayout(1024, 1024)
    parse_btree(page, layout)
    parse_cells(page, layout)
    assert page.children is not None
    # Second cell's left child := the first cell's left child.
    struct.pack_into(">I", data, (root - 1) * 1024 + page.cell_ptrs[1], page.children[0])
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match=r"reached twice|out of order"):
        block(db.scan("t"), io)


def test_child_pointer_outside_the_file(sample: bytes) -> None:
    data = bytearray(sample)
    root = _interior_root(sample, 1024)
    struct.pack_into(">I", data, (root - 1) * 1024 + 8, 10**6)
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match="outside the database") as info:
        block(db.scan("t"), io)
    assert info.value.page == root


def _overflow_pages(db: Database, io: MemoryIO, data: bytes) -> list[int]:
    """Pages that are neither B-tree pages nor page 1: overflow (or free) pages."""
    return [
        n for n in range(2, len(data) // 1024 + 1) if data[(n - 1) * 1024] not in (2, 5, 10, 13)
    ]


def test_overflow_chain_cycle(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "ovf.db",
        ["CREATE TABLE t(b)", ("INSERT INTO t VALUES (?)", [b"\xab" * 5000])],
        page_size=1024,
    )
    data = bytearray(path.read_bytes())
    # Page 3 is the first overflow page (page 2 the table's leaf); loop it onto itself.
    assert data[2 * 1024] != 13
    struct.pack_into(">I", data, 2 * 1024, 3)
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match="cycles back to page 3") as info:
        block(db.scan("t"), io)
    assert info.value.page == 2


def test_overflow_chain_ends_early(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "ovf2.db",
        ["CREATE TABLE t(b)", ("INSERT INTO t VALUES (?)", [b"\xab" * 5000])],
        page_size=1024,
    )
    data = bytearray(path.read_bytes())
    struct.pack_into(">I", data, 2 * 1024, 0)
    io, db = _memory_db(bytes(data))
    with pytest.raises(CorruptDatabaseError, match="overflow chain"):
        block(db.scan("t"), io)


def test_malformed_schema_sql(tmp_path: Path) -> None:
    path = make_db(tmp_path / "s.db", ["CREATE TABLE t(a DEFAULT x'abc0')"], page_size=1024)
    data = bytearray(path.read_bytes())
    at = data.index(b"x'abc0'")
    data[at : at + 7] = b"x'abc'("  # odd hex digits and an unbalanced parenthesis
    with pytest.raises(CorruptDatabaseError, match="table 't' in sqlite_schema"):
        _memory_db(bytes(data))


# -- fuzzing -----------------------------------------------------------------------------


def _mutations(data: bytes, rng: random.Random, page_size: int) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # flip a few random bytes anywhere
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == 1:  # damage B-tree page headers and cell pointers
        for _ in range(rng.randint(1, 4)):
            page = rng.randrange(len(out) // page_size)
            base = page * page_size + (100 if page == 0 else 0)
            offset = base + rng.randrange(16)
            out[offset] = rng.randrange(256)
    elif kind == 2:  # truncate
        del out[rng.randrange(100, len(out)) :]
    else:  # overwrite a 4-byte field with a page number (child or overflow pointer)
        offset = rng.randrange(len(out) - 4)
        struct.pack_into(">I", out, offset, rng.randrange(len(out) // page_size + 3))
    return bytes(out)


@pytest.mark.parametrize("page_size", [512, 1024, 4096])
def test_fuzzed_files_give_corrupt_or_answers(tmp_path: Path, page_size: int) -> None:
    original = _sample_db(tmp_path, page_size)
    page_count = len(original) // page_size
    rng = random.Random(page_size)
    outcomes = {"answer": 0, "corrupt": 0, "other storage error": 0}
    for _ in range(60):
        data = _mutations(original, rng, page_size)
        io = MemoryIO()
        f = io.open_file("/db", OpenFlags.CREATE)
        block(WriteBuffers(f, 0, [data], sync=False), io)
        f.close()
        try:
            db = open_db(io, "/db", cache_pages=page_count + 10)
            _everything(db, io)
            outcomes["answer"] += 1
        except CorruptDatabaseError as exc:
            assert "corrupt" in str(exc)
            outcomes["corrupt"] += 1
            db = None  # type: ignore[assignment]
        except StorageError:
            # A damaged schema can describe another (well-formed) database: a table that
            # is now missing or of an unsupported kind. Those are deliberate answers too.
            outcomes["other storage error"] += 1
            db = None  # type: ignore[assignment]
        if db is not None:
            # Each page is read at most once when the cache holds the whole file.
            assert db.pager.reads <= page_count + 5
    assert outcomes["corrupt"] > 0 and outcomes["answer"] > 0, outcomes


def test_fuzzed_reads_stay_bounded_with_a_small_cache(tmp_path: Path) -> None:
    original = _sample_db(tmp_path, 1024)
    page_count = len(original) // 1024
    rng = random.Random(7)
    for _ in range(25):
        data = _mutations(original, rng, 1024)
        io = MemoryIO()
        f = io.open_file("/db", OpenFlags.CREATE)
        block(WriteBuffers(f, 0, [data], sync=False), io)
        f.close()
        try:
            db = open_db(io, "/db", cache_pages=4)
        except StorageError:
            continue
        for table in ("t", "w"):
            before = db.pager.reads
            try:
                block(db.scan(table), io)
            except StorageError:
                pass
            # A walk visits each page once; overflow chains are bounded by the file.
            assert db.pager.reads - before <= 3 * page_count + 10


@pytest.mark.slow
@pytest.mark.skipif(
    "not config.getoption('--run-slow', False)", reason="slow: pass --run-slow to run it"
)
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("page_size", [512, 1024, 2048, 4096, 65536])
def test_fuzz_long(tmp_path: Path, page_size: int) -> None:
    original = _sample_db(tmp_path, page_size)
    page_count = len(original) // page_size
    rng = random.Random(1000 + page_size)
    for _ in range(1500):
        data = _mutations(original, rng, page_size)
        io = MemoryIO()
        f = io.open_file("/db", OpenFlags.CREATE)
        block(WriteBuffers(f, 0, [data], sync=False), io)
        f.close()
        try:
            db = open_db(io, "/db", cache_pages=page_count + 10)
            _everything(db, io)
        except StorageError:
            continue
        assert db.pager.reads <= page_count + 5
