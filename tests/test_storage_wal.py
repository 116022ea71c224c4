"""WAL mode: committed frames are read from the log, checksums and salts are verified,
uncommitted frames are ignored, no -wal or -shm file is ever created, and a log that
changes during a read makes the read start over."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import IO, block
from core.io import MemoryYieldIO, UnixIO
from core.storage import CorruptDatabaseError, Database, DatabaseBusyError
from core.storage.queries import ROWS_PER_STEP
from core.storage.wal import WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE
from tests.storage_helpers import DeferredUnixIO, copy_into, drive_checked, open_db

PAGE = 4096
FRAME = WAL_FRAME_HEADER_SIZE + PAGE


def _writer(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, timeout=0)
    con.execute(f"PRAGMA page_size={PAGE}")
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA wal_autocheckpoint=0")
    return con


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A WAL database whose writer stays open, so nothing is checkpointed."""
    path = tmp_path / "live.db"
    con = _writer(path)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE INDEX t_v ON t(v)")
    for batch in range(3):
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO t(v) VALUES (?)", [(f"v{batch}-{i}" * 20,) for i in range(150)]
        )
        con.execute("COMMIT")
    yield path, con
    con.close()


def _wal(path: Path) -> Path:
    return Path(str(path) + "-wal")


def _rows(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT rowid, * FROM t ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_reads_frames_not_yet_checkpointed(live: tuple[Path, sqlite3.Connection]) -> None:
    path, con = live
    assert _wal(path).stat().st_size > 20 * FRAME
    assert path.stat().st_size <= 2 * PAGE  # the table is only in the log
    expected = con.execute("SELECT rowid, * FROM t").fetchall()
    io = UnixIO()
    db = open_db(io, path)
    assert db.wal is not None and db.wal.max_frame > 0
    assert block(db.scan("t"), io) == expected
    assert block(db.count("t"), io) == 450
    assert block(db.index_scan("t_v", equal=["v1-7" * 20]), io) == [
        r for r in expected if r[2] == "v1-7" * 20
    ]
    db.close()


def test_same_through_deferred_io(live: tuple[Path, sqlite3.Connection], tmp_path: Path) -> None:
    path, con = live
    expected = con.execute("SELECT rowid, * FROM t").fetchall()
    memory = MemoryYieldIO()
    copy_into(memory, path, "/db")
    db = drive_checked(Database.open(memory, "/db", cache_pages=16), memory)
    assert drive_checked(db.scan("t"), memory) == expected


def test_never_creates_wal_or_shm(tmp_path: Path) -> None:
    path = tmp_path / "clean.db"
    con = _writer(path)
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.close()  # the last connection checkpoints and deletes the log
    assert not _wal(path).exists()
    io = UnixIO()
    db = open_db(io, path)
    assert db.header is not None and db.header.wal_mode
    assert block(db.scan("t"), io) == [(1, 1)]
    db.close()
    assert not _wal(path).exists()
    assert not Path(str(path) + "-shm").exists()


def test_does_not_create_shm_next_to_a_log(live: tuple[Path, sqlite3.Connection]) -> None:
    path, _con = live
    shm = Path(str(path) + "-shm")
    copy = path.parent / "copy.db"
    shutil.copy(path, copy)
    shutil.copy(_wal(path), _wal(copy))
    io = UnixIO()
    db = open_db(io, copy)
    block(db.scan("t"), io)
    db.close()
    assert shm.exists()  # the writer's own
    assert not Path(str(copy) + "-shm").exists()


def _copy_pair(path: Path, name: str) -> Path:
    copy = path.parent / name
    shutil.copy(path, copy)
    shutil.copy(_wal(path), _wal(copy))
    return copy


def _frame_count(path: Path) -> int:
    return (_wal(path).stat().st_size - WAL_HEADER_SIZE) // FRAME


def _commit_frames(path: Path) -> list[int]:
    data = _wal(path).read_bytes()
    out = []
    for i in range(_frame_count(path)):
        _page, commit = struct.unpack_from(">II", data, WAL_HEADER_SIZE + i * FRAME)
        if commit:
            out.append(i + 1)
    return out


def test_frames_after_the_last_commit_are_ignored(live: tuple[Path, sqlite3.Connection]) -> None:
    path, _con = live
    commits = _commit_frames(path)
    assert len(commits) >= 3
    copy = _copy_pair(path, "partial.db")
    # Cut the log in the middle of the last transaction: its commit frame is gone.
    with open(_wal(copy), "r+b") as f:
        f.truncate(WAL_HEADER_SIZE + (commits[-1] - 1) * FRAME)
    io = UnixIO()
    db = open_db(io, copy)
    ours = block(db.scan("t"), io)
    db.close()
    assert len(ours) == 300
    assert ours == _rows(copy)  # sqlite3 agrees (it recovers the log on a copy)


def test_torn_last_frame_is_ignored(live: tuple[Path, sqlite3.Connection]) -> None:
    path, _con = live
    commits = _commit_frames(path)
    copy = _copy_pair(path, "torn.db")
    with open(_wal(copy), "r+b") as f:  # damage the page of the final commit frame
        f.seek(WAL_HEADER_SIZE + (commits[-1] - 1) * FRAME + WAL_FRAME_HEADER_SIZE + 100)
        f.write(b"\xee")
    io = UnixIO()
    db = open_db(io, copy)
    ours = block(db.scan("t"), io)
    db.close()
    assert len(ours) == 300
    assert ours == _rows(copy)


def test_a_bad_frame_before_later_commits_ends_the_log_as_in_sqlite(
    live: tuple[Path, sqlite3.Connection],
) -> None:
    # The frames after the bad one still chain on to later commits: what a power loss
    # leaves when the disk wrote some sectors of an unsynced append and not one of its
    # page. The log ends at the bad frame, as SQLite reads it.
    path, _con = live
    commits = _commit_frames(path)
    copy = _copy_pair(path, "damaged.db")
    bad = commits[0] + 2  # a frame of the second transaction
    with open(_wal(copy), "r+b") as f:
        f.seek(WAL_HEADER_SIZE + (bad - 1) * FRAME + WAL_FRAME_HEADER_SIZE + 10)
        f.write(b"\x99\x98")
    io = UnixIO()
    db = open_db(io, copy)
    assert db.wal is not None and db.wal.max_frame == commits[0]
    ours = block(db.scan("t"), io)
    db.close()
    assert len(ours) < 450  # the commits from the bad frame on are not there
    assert ours == _rows(copy)  # sqlite3 agrees (it recovers the log on a copy)


def test_bad_wal_header_is_corruption(live: tuple[Path, sqlite3.Connection]) -> None:
    path, _con = live
    copy = _copy_pair(path, "header.db")
    with open(_wal(copy), "r+b") as f:
        f.seek(16)
        f.write(b"\x01\x02\x03\x04")  # a salt: the header checksum no longer matches
    with pytest.raises(CorruptDatabaseError, match="WAL header checksum"):
        open_db(UnixIO(), copy)


def test_frames_of_an_older_generation_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "reuse.db"
    con = _writer(path)
    con.execute("CREATE TABLE t(x)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2000)])
    before = _wal(path).stat().st_size
    con.execute("PRAGMA wal_checkpoint(RESTART)")
    con.execute("INSERT INTO t VALUES (-1)")  # restarts the log with new salts
    assert _wal(path).stat().st_size == before  # the old frames are still in the file
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.count("t"), io) == 2001
    assert block(db.scan("t"), io) == con.execute("SELECT rowid, * FROM t").fetchall()
    db.close()
    con.close()


def test_sees_new_commits_between_operations(live: tuple[Path, sqlite3.Connection]) -> None:
    path, con = live
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.count("t"), io) == 450
    con.execute("INSERT INTO t(v) VALUES ('late')")
    con.execute("CREATE TABLE u(y)")
    con.execute("INSERT INTO u VALUES (42)")
    assert block(db.count("t"), io) == 451
    assert block(db.scan("u"), io) == [(1, 42)]
    assert block(db.get("t", 451), io) == (451, 451, "late")
    db.close()


def test_checkpointed_and_deleted_log(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    con = _writer(path)
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (1)")
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.scan("t"), io) == [(1, 1)]
    con.execute("INSERT INTO t VALUES (2)")
    con.close()  # checkpoint, delete the log
    assert not _wal(path).exists()
    assert block(db.scan("t"), io) == [(1, 1), (2, 2)]
    db.close()


def test_immutable_reads_the_log_once(live: tuple[Path, sqlite3.Connection]) -> None:
    path, con = live
    io = UnixIO()
    db = open_db(io, path, immutable=True)
    assert block(db.count("t"), io) == 450
    con.execute("INSERT INTO t(v) VALUES ('unseen')")
    assert block(db.count("t"), io) == 450  # promised unchanging: never re-read
    db.close()


def test_log_changing_during_a_read_restarts_it(live: tuple[Path, sqlite3.Connection]) -> None:
    path, con = live
    io = DeferredUnixIO()
    db = open_db(io, path, cache_pages=8)
    op = db.scan("t")
    yields = 0
    while True:
        result = op.step()
        if not isinstance(result, IO):
            break
        yields += 1
        if yields == 6:  # mid-scan: a writer commits
            con.execute("INSERT INTO t(v) VALUES ('during')")
        io.step()
    assert op.restarts >= 1
    assert result.value == con.execute("SELECT rowid, * FROM t").fetchall()
    db.close()


def test_log_that_never_settles_is_busy(live: tuple[Path, sqlite3.Connection]) -> None:
    path, con = live
    io = DeferredUnixIO()
    db = open_db(io, path, cache_pages=8)
    op = db.count("t")
    with pytest.raises(DatabaseBusyError, match="changed during each"):
        while isinstance(op.step(), IO):
            con.execute("INSERT INTO t(v) VALUES ('again')")
            io.step()
    db.close()


def test_wal_file_with_a_different_page_size(live: tuple[Path, sqlite3.Connection]) -> None:
    path, _con = live
    copy = _copy_pair(path, "pagesize.db")
    data = bytearray(_wal(copy).read_bytes())
    struct.pack_into(">I", data, 8, 1024)
    _wal(copy).write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError, match="WAL"):
        open_db(UnixIO(), copy)


def test_empty_or_short_log_is_no_log(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    con = _writer(path)
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (5)")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _wal(path).stat().st_size == 0
    io = UnixIO()
    db = open_db(io, path)
    assert block(db.scan("t"), io) == [(1, 5)]
    db.close()
    con.close()
    os.sync()


def test_log_restarted_under_a_read_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "restart.db"
    con = _writer(path)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t(v) VALUES (?)", [(f"{i:05d}" * 40,) for i in range(1500)])
    io = DeferredUnixIO()
    db = open_db(io, path, cache_pages=4, readahead=0)
    op = db.scan("t")
    yields = 0
    while True:
        result = op.step()
        if not isinstance(result, IO):
            break
        yields += 1
        if yields == 5:
            # Without -shm this writer cannot see our read: it checkpoints, restarts the
            # log with new salts and overwrites the frames our snapshot points at.
            con.execute("PRAGMA wal_checkpoint(RESTART)")
            con.execute("UPDATE t SET v = 'rewritten' WHERE id % 2 = 0")
        io.step()
    assert op.restarts >= 1
    assert result.value == con.execute("SELECT rowid, * FROM t").fetchall()
    db.close()
    con.close()


def test_scans_yield_to_the_driver(live: tuple[Path, sqlite3.Connection]) -> None:
    path, con = live
    con.executemany("INSERT INTO t(v) VALUES (?)", [("x",)] * 3000)
    io = UnixIO()
    db = open_db(io, path, immutable=True)
    op = db.scan("t")
    explicit = 0
    while True:
        result = op.step()
        if not isinstance(result, IO):
            break
        assert result.completion.is_explicit_yield()
        explicit += 1
    assert len(result.value) == 3450
    assert explicit >= 3450 // ROWS_PER_STEP - 1
    db.close()
