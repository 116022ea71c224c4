"""The integrity check on damaged files: problems or a clean error, never another
exception, and bounded work (as the reader's own fuzz holds the reader to)."""

from __future__ import annotations

import random
import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import pytest

from core import block
from core.errors import IOResultError
from core.io import UnixIO
from core.storage import Database
from core.storage.check import check_database

PAGE = 1024


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A deterministic database: a table with overflowing rows and two indexes deep
    enough to have interior pages."""
    path = tmp_path_factory.mktemp("check_fuzz") / "base.db"
    with closing(sqlite3.connect(path)) as con:
        con.execute(f"PRAGMA page_size={PAGE}")
        con.execute("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB)")
        con.execute("CREATE INDEX t_b ON t(b)")
        con.execute("CREATE INDEX t_cb ON t(c, b)")
        rng = random.Random(7)
        rows = [(f"name {i:06} " * (1 + i % 7), rng.randbytes(i % 900)) for i in range(2000)]
        con.executemany("INSERT INTO t(b, c) VALUES (?, ?)", rows)
        con.commit()
    return path.read_bytes()


def check(path: Path) -> int:
    """Problems found, or -1 for a clean error; anything else escapes (and fails)."""
    io = UnixIO()
    try:
        db = block(Database.open(io, path, immutable=True), io)
    except IOResultError:
        return -1
    try:
        return len(block(check_database(db), io))
    except IOResultError:
        return -1
    finally:
        db.close()


def test_a_moved_cell_pointer_on_an_index_interior_page_is_a_problem(
    source: bytes, tmp_path: Path
) -> None:
    data = bytearray(source)
    for number in range(2, len(data) // PAGE + 1):
        base = (number - 1) * PAGE
        count = struct.unpack_from(">H", data, base + 3)[0]
        if data[base] == 2 and count >= 1:  # an index interior page
            break
    else:
        pytest.fail("the fixture has no index interior page")
    pointer = base + 12  # cell 0's pointer, high byte: the cell moves 256 bytes down
    data[pointer] = (data[pointer] - 1) % 256
    path = tmp_path / "shifted.db"
    path.write_bytes(data)
    assert check(path) > 0


def mutations(source: bytes, seed: int, count: int) -> list[bytearray]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(source)
        for _ in range(rng.choice([1, 1, 2, 8])):
            page = rng.randrange(1, len(data) // PAGE)
            # Page headers and cell pointer arrays, where one byte changes the most.
            data[page * PAGE + rng.randrange(0, 40)] = rng.randrange(256)
        out.append(data)
    return out


@pytest.mark.parametrize("seed", range(2))
def test_mutated_databases_give_problems_or_a_clean_error(
    source: bytes, tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "mutated.db"
    outcomes = []
    for data in mutations(source, seed, 25):
        path.write_bytes(data)
        outcomes.append(check(path))
    assert any(o != 0 for o in outcomes)  # the mutations do damage


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 13))
def test_many_mutated_databases(source: bytes, tmp_path: Path, seed: int) -> None:
    path = tmp_path / "mutated.db"
    for data in mutations(source, seed, 300):
        path.write_bytes(data)
        check(path)
