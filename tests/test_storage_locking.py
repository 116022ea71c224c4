"""Locking: each read holds SQLite's SHARED lock (OFD byte-range locks on Linux), a
writer's lock makes a read busy, a hot journal is refused, immutable takes no locks."""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import struct
import sys
from pathlib import Path

import pytest

from core import IO, block
from core.io import UnixIO
from core.storage import DatabaseBusyError, HotJournalError, SchemaError
from core.storage.locking import PENDING_BYTE, SHARED_FIRST, SHARED_SIZE, FileLock
from tests.storage_helpers import DeferredUnixIO, make_db, open_db

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="asserts Linux OFD lock behaviour"
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return make_db(
        tmp_path / "lock.db",
        [
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
            ("INSERT INTO t(v) VALUES (?)", [(f"row{i}" * 30,) for i in range(300)], True),
        ],
        page_size=1024,
    )


def _lock_held(path: Path, start: int, length: int) -> int:
    """The type of lock someone holds on the range, seen from a fresh descriptor."""
    fd = os.open(path, os.O_RDWR)
    try:
        probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
        out = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
        return int(struct.unpack("hhqqi", out[:28])[0])
    finally:
        os.close(fd)


def _try_write(path: Path) -> bool:
    con = sqlite3.connect(path, timeout=0)
    try:
        con.execute("INSERT INTO t(v) VALUES ('w')")
        con.commit()
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        con.close()


def _pause(op: object, io: DeferredUnixIO, yields: int) -> None:
    for _ in range(yields):
        assert isinstance(op.step(), IO)  # type: ignore[attr-defined]
        io.step()


def test_a_read_holds_shared_and_blocks_writers(db_path: Path) -> None:
    io = DeferredUnixIO()
    db = open_db(io, db_path, cache_pages=4)
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
    op = db.scan("t")
    _pause(op, io, 3)
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_RDLCK
    assert _lock_held(db_path, PENDING_BYTE, 1) == fcntl.F_UNLCK  # taken and dropped
    assert not _try_write(db_path)  # the writer cannot get EXCLUSIVE
    rows = block(op, io)
    assert len(rows) == 300
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
    assert _try_write(db_path)
    assert block(db.count("t"), io) == 301  # the change counter moved: cache dropped
    db.close()


def test_lock_released_on_error_and_abort(db_path: Path) -> None:
    io = DeferredUnixIO()
    db = open_db(io, db_path, cache_pages=4)
    with pytest.raises(SchemaError, match="no such table: nope"):
        block(db.scan("nope"), io)
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
    op = db.scan("t")
    _pause(op, io, 3)
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_RDLCK
    op.abort(RuntimeError("cancelled"))
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
    assert _try_write(db_path)
    db.close()


def test_concurrent_reads_share_the_lock(db_path: Path) -> None:
    io = DeferredUnixIO()
    db = open_db(io, db_path, cache_pages=4)
    first, second = db.scan("t"), db.count("t")
    _pause(first, io, 2)
    _pause(second, io, 1)
    assert block(second, io) == 300
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_RDLCK  # first still reads
    assert len(block(first, io)) == 300
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
    db.close()


def test_writer_with_exclusive_makes_reads_busy(db_path: Path) -> None:
    io = UnixIO()
    db = open_db(io, db_path)
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    with pytest.raises(DatabaseBusyError, match="locked"):
        block(db.count("t"), io)
    writer.execute("ROLLBACK")
    assert block(db.count("t"), io) == 300
    writer.close()
    db.close()


def test_immutable_takes_no_lock(db_path: Path) -> None:
    io = DeferredUnixIO()
    db = open_db(io, db_path, immutable=True, cache_pages=4)
    op = db.scan("t")
    _pause(op, io, 2)
    assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
    assert _try_write(db_path)
    block(op, io)
    db.close()


def test_fake_hot_journal_is_refused(db_path: Path) -> None:
    journal = Path(str(db_path) + "-journal")
    journal.write_bytes(bytes.fromhex("d9d505f920a163d7") + bytes(504))
    with pytest.raises(HotJournalError, match="hot journal"):
        open_db(UnixIO(), db_path)
    journal.write_bytes(bytes(512))  # zeroed header (journal_mode=PERSIST): not hot
    db = open_db(UnixIO(), db_path)
    journal.write_bytes(b"")  # empty: not hot
    assert block(db.count("t"), UnixIO()) == 300
    db.close()


def test_real_hot_journal_left_by_a_crashed_writer(db_path: Path, tmp_path: Path) -> None:
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("PRAGMA cache_size=10")
    writer.execute("BEGIN")
    writer.execute("UPDATE t SET v = v || 'changed'")  # spills pages into the file
    crashed = tmp_path / "crashed.db"
    shutil.copy(db_path, crashed)
    shutil.copy(str(db_path) + "-journal", str(crashed) + "-journal")
    writer.execute("ROLLBACK")
    writer.close()
    with pytest.raises(HotJournalError):
        open_db(UnixIO(), crashed)
    # A read-write SQLite connection rolls it back; then the file reads as before.
    sqlite3.connect(crashed).execute("SELECT count(*) FROM t").fetchall()
    io = UnixIO()
    db = open_db(io, crashed)
    assert (
        block(db.scan("t"), io)
        == sqlite3.connect(crashed).execute("SELECT rowid, * FROM t").fetchall()
    )
    db.close()


def test_journal_of_a_live_writer_is_not_hot(db_path: Path) -> None:
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # RESERVED: a live writer, journal not yet hot
    writer.execute("INSERT INTO t(v) VALUES ('pending')")
    io = UnixIO()
    db = open_db(io, db_path)
    assert block(db.count("t"), io) == 300  # the committed state
    writer.execute("COMMIT")
    assert block(db.count("t"), io) == 301
    writer.close()
    db.close()


def test_file_lock_directly(db_path: Path) -> None:
    fd = os.open(db_path, os.O_RDONLY)
    try:
        lock = FileLock(fd, str(db_path))
        lock.lock_shared()
        assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_RDLCK
        assert not lock.reserved_elsewhere()
        lock.unlock()
        assert _lock_held(db_path, SHARED_FIRST, SHARED_SIZE) == fcntl.F_UNLCK
        lock.unlock()  # idempotent
    finally:
        os.close(fd)
