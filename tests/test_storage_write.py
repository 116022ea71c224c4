"""The storage engine's write path: transactions, rows, indexes, DDL, commit, checkpoint,
checked against sqlite3 reading the files we write."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from core import block
from core.io import IOBackend, MemoryYieldIO, UnixIO
from core.storage import (
    ConstraintError,
    Database,
    DatabaseBusyError,
    SchemaError,
    StorageError,
    UnsupportedError,
)
from tests.storage_helpers import DeferredUnixIO, drive_checked, make_db


def sqlite_check(path: Path, sql: str = "") -> tuple[str, list[tuple[Any, ...]]]:
    """sqlite3's integrity_check and the rows of `sql` on `path` (connection closed after,
    so our next transaction may begin)."""
    with closing(sqlite3.connect(path)) as con:
        check = con.execute("PRAGMA integrity_check").fetchall()
        rows = con.execute(sql).fetchall() if sql else []
    return check[0][0], rows


def open_writable(io: IOBackend, path: Path | str, **kwargs: Any) -> Database:
    return block(Database.open(io, os.fspath(path), writable=True, **kwargs), io)


@pytest.fixture
def users(tmp_path: Path) -> tuple[UnixIO, Database, Path]:
    io = UnixIO()
    path = tmp_path / "users.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(
        tx.execute_ddl("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT)"),
        io,
    )
    block(tx.execute_ddl("CREATE UNIQUE INDEX users_name ON users(name)"), io)
    block(tx.commit(), io)
    return io, db, path


def test_a_new_database_is_a_wal_database_sqlite_reads(tmp_path: Path) -> None:
    io = UnixIO()
    path = tmp_path / "new.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a, b TEXT)"), io)
    assert block(tx.insert("t", {"a": 1, "b": "x"}), io) == 1
    assert block(tx.insert("t", {"a": 2.5, "b": 7}), io) == 2
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT rowid, a, b, typeof(b) FROM t")
    assert check == "ok"
    assert rows == [(1, 1, "x", "text"), (2, 2.5, "7", "text")]
    with closing(sqlite3.connect(path)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert con.execute("PRAGMA encoding").fetchone() == ("UTF-8",)


def test_insert_update_delete_agree_with_sqlite(users: tuple[UnixIO, Database, Path]) -> None:
    io, db, path = users
    tx = block(db.begin(), io)
    ada = block(tx.insert("users", {"name": "Ada", "age": 36}), io)
    bob = block(tx.insert("users", {"name": "Bob", "age": "41"}), io)  # INTEGER affinity
    assert block(tx.update("users", ada, {"age": 37}), io) is True
    assert block(tx.delete("users", bob), io) is True
    assert block(tx.delete("users", bob), io) is False
    assert block(tx.update("users", 999, {"age": 1}), io) is False
    explicit = block(tx.insert("users", {"id": 100, "name": "Cy"}), io)
    assert explicit == 100
    assert block(tx.insert("users", {"name": "Di"}), io) == 101
    block(tx.commit(), io)
    assert block(db.get("users", ada), io) == (ada, ada, "Ada", 37)
    db.close()
    check, rows = sqlite_check(path, "SELECT id, name, age FROM users ORDER BY id")
    assert check == "ok"
    assert rows == [(1, "Ada", 37), (100, "Cy", None), (101, "Di", None)]


def test_constraints_leave_nothing_behind_and_the_transaction_usable(
    users: tuple[UnixIO, Database, Path],
) -> None:
    io, db, path = users
    tx = block(db.begin(), io)
    block(tx.insert("users", {"name": "Ada", "age": 1}), io)
    with pytest.raises(ConstraintError, match="users_name") as unique:
        block(tx.insert("users", {"name": "Ada", "age": 2}), io)
    assert unique.value.constraint == "users_name"
    with pytest.raises(ConstraintError, match=r"NOT NULL constraint failed: users\.name"):
        block(tx.insert("users", {"age": 3}), io)
    with pytest.raises(ConstraintError, match="rowid 1 is in use"):
        block(tx.insert("users", {"id": 1, "name": "Bo"}), io)
    with pytest.raises(SchemaError, match="datatype mismatch"):
        block(tx.insert("users", {"id": "x", "name": "Bo"}), io)
    with pytest.raises(SchemaError, match="no column named 'nope'"):
        block(tx.insert("users", {"nope": 1}), io)
    block(tx.insert("users", {"name": "Bo"}), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT id, name FROM users ORDER BY id")
    assert check == "ok"
    assert rows == [(1, "Ada"), (2, "Bo")]


def test_rollback_drops_everything(users: tuple[UnixIO, Database, Path]) -> None:
    io, db, _ = users
    tx = block(db.begin(), io)
    for i in range(500):
        block(tx.insert("users", {"name": f"n{i}"}), io)
    block(tx.rollback(), io)
    with pytest.raises(StorageError, match="rolled back"):
        block(tx.insert("users", {"name": "late"}), io)
    assert block(db.count("users"), io) == 0
    tx = block(db.begin(), io)  # the lock was given back
    block(tx.insert("users", {"name": "x"}), io)
    block(tx.commit(), io)
    with pytest.raises(StorageError, match="committed"):
        block(tx.commit(), io)
    assert block(db.count("users"), io) == 1


def test_readers_see_the_last_commit_until_commit_is_done(
    users: tuple[UnixIO, Database, Path],
) -> None:
    io, db, _ = users
    tx = block(db.begin(), io)
    block(tx.insert("users", {"name": "Ada"}), io)
    assert block(db.count("users"), io) == 0
    block(tx.commit(), io)
    assert block(db.count("users"), io) == 1


def test_one_writer_at_a_time(users: tuple[UnixIO, Database, Path]) -> None:
    io, db, path = users
    other = open_writable(io, path)
    tx = block(db.begin(), io)
    with pytest.raises(DatabaseBusyError, match="already open"):
        block(db.begin(), io)
    with pytest.raises(DatabaseBusyError):
        block(other.begin(), io)
    with pytest.raises(DatabaseBusyError):
        block(other.count("users"), io)  # nor does another connection read meanwhile
    tx.rollback()
    with closing(sqlite3.connect(path)) as con:
        con.execute("SELECT count(*) FROM users").fetchall()
        with pytest.raises(DatabaseBusyError):  # its locks, or its -shm in use
            block(db.begin(), io)
    other.close()


def test_sqlite_is_kept_out_while_we_write(users: tuple[UnixIO, Database, Path]) -> None:
    io, db, path = users
    tx = block(db.begin(), io)
    with (
        closing(sqlite3.connect(path, timeout=0)) as con,
        pytest.raises(sqlite3.OperationalError, match="locked"),
    ):
        con.execute("SELECT count(*) FROM users").fetchall()
    tx.rollback()


def test_ddl_create_and_drop(tmp_path: Path) -> None:
    io = UnixIO()
    path = tmp_path / "ddl.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(k TEXT PRIMARY KEY, v UNIQUE, w)"), io)
    for i in range(300):
        block(tx.insert("t", {"k": f"k{i}", "v": i, "w": "x" * (i % 7) * 300}), io)
    block(tx.execute_ddl("CREATE INDEX t_w ON t(w, v)"), io)
    block(tx.execute_ddl("CREATE TABLE IF NOT EXISTS t(x)"), io)
    with pytest.raises(SchemaError, match="already exists"):
        block(tx.execute_ddl("CREATE TABLE t(x)"), io)
    with pytest.raises(ConstraintError):
        block(tx.execute_ddl("CREATE UNIQUE INDEX t_dup ON t(w)"), io)
    block(tx.execute_ddl("CREATE TABLE gone(a, b)"), io)
    for i in range(200):
        block(tx.insert("gone", {"a": i, "b": os.urandom(3000)}), io)
    block(tx.commit(), io)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("DROP TABLE gone"), io)
    block(tx.execute_ddl("DROP INDEX t_w"), io)
    block(tx.execute_ddl("DROP INDEX IF EXISTS t_w"), io)
    with pytest.raises(UnsupportedError, match="constraint"):
        block(tx.execute_ddl("DROP INDEX sqlite_autoindex_t_1"), io)
    with pytest.raises(UnsupportedError):
        block(tx.execute_ddl("CREATE VIEW v AS SELECT 1"), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT name, sql FROM sqlite_schema ORDER BY name")
    assert check == "ok"
    assert rows == [
        ("sqlite_autoindex_t_1", None),
        ("sqlite_autoindex_t_2", None),
        ("t", "CREATE TABLE t(k TEXT PRIMARY KEY, v UNIQUE, w)"),
    ]
    with closing(sqlite3.connect(path)) as con:
        assert con.execute("SELECT count(*) FROM t WHERE v = 5").fetchone() == (1,)
        assert con.execute("PRAGMA freelist_count").fetchone()[0] > 0


def test_autoincrement_stays_above_every_rowid_used(tmp_path: Path) -> None:
    io = UnixIO()
    path = tmp_path / "auto.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)"), io)
    for _ in range(3):
        block(tx.insert("a", {"x": 1}), io)
    block(tx.delete("a", 3), io)
    assert block(tx.insert("a", {"x": 2}), io) == 4
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT name, seq FROM sqlite_sequence")
    assert check == "ok"
    assert rows == [("a", 4)]
    with closing(sqlite3.connect(path)) as con:
        con.execute("DELETE FROM a WHERE id = 4")
        con.execute("INSERT INTO a(x) VALUES (3)")
        assert con.execute("SELECT max(id) FROM a").fetchone() == (5,)
        con.commit()


def test_sqlite_writes_then_we_write(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "theirs.db",
        [
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b)",
            ("INSERT INTO t(b) VALUES (?)", [(i,) for i in range(2000)], True),
        ],
        journal_mode="wal",
    )
    io = UnixIO()
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    for rowid in range(1, 2001, 3):
        block(tx.delete("t", rowid), io)
    block(tx.insert("t", {"b": "new"}), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT count(*), max(a) FROM t")
    assert check == "ok"
    assert rows == [(1334, 2001)]
    with closing(sqlite3.connect(path)) as con:
        con.execute("VACUUM")
    db = open_writable(io, path)
    assert block(db.count("t"), io) == 1334


def test_refusals(tmp_path: Path) -> None:
    journal = make_db(tmp_path / "journal.db", ["CREATE TABLE t(a)"])
    io = UnixIO()
    db = open_writable(io, journal)
    with pytest.raises(UnsupportedError, match="rollback-journal"):
        block(db.begin(), io)
    assert block(db.convert_to_wal(), io) is True
    assert block(db.convert_to_wal(), io) is False
    tx = block(db.begin(), io)
    block(tx.insert("t", {"a": "after"}), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(journal, "SELECT a FROM t")
    assert (check, rows) == ("ok", [("after",)])
    with closing(sqlite3.connect(journal)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    wal = make_db(
        tmp_path / "features.db",
        [
            "CREATE TABLE c(a CHECK (a > 0))",
            "CREATE TABLE w(a PRIMARY KEY, b) WITHOUT ROWID",
            "CREATE TABLE p(a, b)",
            "CREATE INDEX p_part ON p(a) WHERE b > 0",
        ],
        journal_mode="wal",
    )
    db = open_writable(io, wal)
    tx = block(db.begin(), io)
    for table in ("c", "w", "p"):
        with pytest.raises(UnsupportedError, match=repr(table)):
            block(tx.insert(table, {"a": 1}), io)
    tx.rollback()
    readonly = block(Database.open(io, os.fspath(wal)), io)
    with pytest.raises(StorageError, match="read-only"):
        block(readonly.begin(), io)


def test_checkpoint_moves_the_log_into_the_database(users: tuple[UnixIO, Database, Path]) -> None:
    io, db, path = users
    tx = block(db.begin(), io)
    for i in range(1000):
        block(tx.insert("users", {"name": f"n{i}", "age": i}), io)
    block(tx.commit(), io)
    assert os.path.getsize(str(path) + "-wal") > 0
    assert db.wal is not None
    in_log = len(db.wal.frames)
    copied = block(db.checkpoint(), io)
    assert copied == in_log > 5
    assert os.path.getsize(str(path) + "-wal") == 0
    tx = block(db.begin(), io)
    block(tx.delete("users", 5), io)
    block(tx.commit(), io)
    assert block(db.count("users"), io) == 999
    db.close()
    check, rows = sqlite_check(path, "SELECT count(*), sum(age) FROM users")
    assert check == "ok"
    assert rows == [(999, sum(range(1000)) - 4)]


@pytest.mark.parametrize("backend", ["memory-yield", "deferred-unix"])
def test_every_read_deferred_and_reentry_checked(tmp_path: Path, backend: str) -> None:
    io: IOBackend = MemoryYieldIO() if backend == "memory-yield" else DeferredUnixIO()
    path = "/w.db" if backend == "memory-yield" else str(tmp_path / "w.db")
    db = drive_checked(Database.open(io, path, writable=True, page_size=512, cache_pages=8), io)
    tx = drive_checked(db.begin(), io)
    drive_checked(tx.execute_ddl("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)"), io)
    drive_checked(tx.execute_ddl("CREATE INDEX t_b ON t(b)"), io)
    for i in range(400):
        drive_checked(tx.insert("t", {"b": f"v{i % 37}" * (1 + i % 5)}), io)
    drive_checked(tx.commit(), io)
    tx = drive_checked(db.begin(), io)
    for i in range(1, 400, 2):
        assert drive_checked(tx.delete("t", i), io)
    drive_checked(tx.commit(), io)
    rows = drive_checked(db.scan("t"), io)
    assert [r[0] for r in rows] == list(range(2, 401, 2))
    entries = drive_checked(db.index_scan("t_b", equal=["v3"]), io)
    assert sorted(r[0] for r in entries) == [
        i + 1 for i in range(400) if i % 37 == 3 and i % 5 == 0 and (i + 1) % 2 == 0
    ]


def test_reads_inside_the_transaction_see_its_writes(
    users: tuple[UnixIO, Database, Path],
) -> None:
    io, db, _ = users
    tx = block(db.begin(), io)
    for i in range(300):
        block(tx.insert("users", {"name": f"n{i:03}", "age": i}), io)
    block(tx.delete("users", 5), io)
    block(tx.update("users", 7, {"age": 70}), io)
    assert block(tx.count("users"), io) == 299
    assert block(db.count("users"), io) == 0  # others still see the last commit
    assert block(tx.get("users", 7), io) == (7, 7, "n006", 70)
    assert block(tx.get("users", 5), io) is None
    page = block(tx.scan("users", after=3, limit=3), io)
    assert [row[0] for row in page] == [4, 6, 7]
    every = block(tx.scan("users"), io)
    assert [row[0] for row in every] == [i for i in range(1, 301) if i != 5]
    block(tx.commit(), io)
    assert block(db.scan("users"), io) == every


def test_omitted_columns_get_what_sqlite_stores_on_insert(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "defaults.db",
        [
            "CREATE TABLE d(k INTEGER PRIMARY KEY, a TEXT DEFAULT 1e3, b TEXT DEFAULT TRUE,"
            " c DEFAULT (-1))"
        ],
        journal_mode="wal",
    )
    with closing(sqlite3.connect(path)) as con:
        con.execute("INSERT INTO d(k) VALUES (1)")
        con.commit()
    io = UnixIO()
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.insert("d", {"k": 2}), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT a, typeof(a), b, typeof(b), c FROM d ORDER BY k")
    assert check == "ok"
    assert rows[0] == rows[1]


def test_freed_pages_are_reused_before_the_file_grows(tmp_path: Path) -> None:
    io = UnixIO()
    path = tmp_path / "reuse.db"
    db = open_writable(io, path, page_size=1024)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)"), io)
    for _ in range(200):
        block(tx.insert("t", {"b": b"x" * 3000}), io)  # overflow chains
    block(tx.commit(), io)
    grown = db.page_count
    tx = block(db.begin(), io)
    for rowid in range(1, 201):
        block(tx.delete("t", rowid), io)
    block(tx.commit(), io)
    assert db.header is not None and db.header.freelist_count > grown // 2
    tx = block(db.begin(), io)
    for _ in range(150):
        block(tx.insert("t", {"b": b"y" * 3000}), io)
    block(tx.commit(), io)
    assert db.page_count == grown
    db.close()
    check, rows = sqlite_check(path, "SELECT count(*), sum(length(b)) FROM t")
    assert (check, rows) == ("ok", [(150, 450_000)])


def test_allocation_skips_the_lock_byte_page() -> None:
    from core.storage.changes import Changes, TransactionPages, lock_byte_page
    from core.storage.page import PageLayout

    lock_page = lock_byte_page(512)
    pages = TransactionPages(PageLayout(512, 512), lock_page - 2, 0, 0, {})
    changes = Changes(pages, {})
    assert [changes.allocate(), changes.allocate()] == [lock_page - 1, lock_page + 1]


def test_begin_checkpoints_a_long_log(users: tuple[UnixIO, Database, Path]) -> None:
    io, db, path = users
    db.auto_checkpoint = 5
    longest = 0
    for i in range(12):
        tx = block(db.begin(), io)  # checkpoints first once the log holds 5 frames
        block(tx.insert("users", {"name": f"n{i}", "age": i}), io)
        block(tx.commit(), io)
        assert db.wal is not None
        longest = max(longest, db.wal.max_frame)
    assert db.wal is not None and db.wal.header is not None
    assert db.wal.header.checkpoint_seq >= 3  # the log was emptied several times
    assert longest < 5 + 3  # never more than the threshold plus one commit
    assert block(db.count("users"), io) == 12
    db.close()
    assert sqlite_check(path, "SELECT count(*) FROM users") == ("ok", [(12,)])


def test_check_counts_pages_that_live_only_in_the_wal(tmp_path: Path) -> None:
    from core.storage.check import check_database

    io = UnixIO()
    path = tmp_path / "grown.db"
    db = open_writable(io, path, page_size=512)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a)"), io)
    for i in range(50):
        block(tx.insert("t", {"a": "x" * 100 + str(i)}), io)
    block(tx.commit(), io)
    assert os.path.getsize(path) // 512 < db.page_count  # the new pages are in the log
    assert block(check_database(db), io) == []
    db.close()


def test_begin_after_a_checkpoint_in_begin_takes_the_header_from_the_log(tmp_path: Path) -> None:
    # A begin that checkpoints (the log is long) reads the file's header before its
    # checkpoint rewrites it. The next transaction found the file's header changed and took
    # it (older than page 1 in the log, which had not changed) for the current one: the
    # freelist it read was gone, and a freed page was handed out twice.
    io = UnixIO()
    path = tmp_path / "header.db"
    db = open_writable(io, path, page_size=512)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)"), io)
    block(tx.insert("t", {"b": bytes(2000)}), io)
    block(tx.commit(), io)
    tx = block(db.begin(), io)
    block(tx.update("t", 1, {"b": b"small"}), io)  # frees the overflow pages
    block(tx.commit(), io)
    db.auto_checkpoint = 1
    tx = block(db.begin(), io)  # checkpoints first
    block(tx.insert("t", {"b": bytes(range(200)) * 10}), io)  # takes the free pages back
    block(tx.commit(), io)
    db.auto_checkpoint = 1000
    tx = block(db.begin(), io)
    assert (tx.pages.freelist_trunk, tx.pages.freelist_count) == (0, 0)
    block(tx.insert("t", {"b": bytes(2000)}), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT id, length(b), substr(b, 1, 3) FROM t")
    assert check == "ok"
    assert rows == [(1, 5, b"sma"), (2, 2000, bytes(range(3))), (3, 2000, bytes(3))]


def test_pages_freed_by_the_transaction_that_added_them_are_in_the_log(tmp_path: Path) -> None:
    # The database grows by pages the same transaction frees again (an overflow chain
    # written and deleted). SQLite refuses to checkpoint a log that leaves pages below the
    # database size in neither the file nor the log ("database disk image is malformed").
    io = UnixIO()
    path = tmp_path / "grown.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a)"), io)
    rowid = block(tx.insert("t", {"a": b"x" * 200_000}), io)
    block(tx.delete("t", rowid), io)
    block(tx.insert("t", {"a": 1}), io)
    block(tx.commit(), io)
    with closing(sqlite3.connect(path)) as con:
        busy, logged, copied = con.execute("PRAGMA wal_checkpoint").fetchone()
        assert (busy, copied) == (0, logged)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA freelist_count").fetchone()[0] > 45  # the chain's pages
        pages = con.execute("PRAGMA page_count").fetchone()[0]
    assert pages == db.page_count
    assert os.path.getsize(path) == pages * 4096


def test_check_accepts_pages_that_only_the_log_holds(tmp_path: Path) -> None:
    from core.storage.check import check_database

    io = UnixIO()
    path = tmp_path / "log.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a)"), io)
    block(tx.insert("t", {"a": b"x" * 100_000}), io)
    block(tx.commit(), io)
    assert os.path.getsize(path) < db.page_count * 4096  # not checkpointed: in the log
    assert block(check_database(db), io) == []
    # Once the log is checkpointed, a file shorter than the database is found.
    block(db.checkpoint(), io)
    assert block(check_database(db), io) == []
    os.truncate(path, os.path.getsize(path) - 4096)
    problems = block(check_database(db), io)
    assert any("is truncated" in p.message for p in problems)


def test_setting_the_integer_primary_key_to_null_is_a_datatype_mismatch(
    users: tuple[UnixIO, Database, Path],
) -> None:
    io, db, _ = users
    tx = block(db.begin(), io)
    ada = block(tx.insert("users", {"name": "Ada"}), io)
    with pytest.raises(SchemaError, match="datatype mismatch"):  # as UPDATE ... SET id = NULL
        block(tx.update("users", ada, {"id": None, "name": "Bo"}), io)
    block(tx.commit(), io)
    assert block(db.get("users", ada), io) == (ada, ada, "Ada", None)


def test_an_update_of_the_rowid_leaves_sqlite_sequence_alone(tmp_path: Path) -> None:
    # As SQLite: only an INSERT records its rowid in sqlite_sequence.
    io = UnixIO()
    path = tmp_path / "auto.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)"), io)
    block(tx.insert("a", {"x": 1}), io)
    assert block(tx.update("a", 1, {"id": 1000}), io) is True
    block(tx.delete("a", 1000), io)
    assert block(tx.insert("a", {"x": 2}), io) == 2
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT name, seq FROM sqlite_sequence")
    assert check == "ok"
    assert rows == [("a", 2)]


def test_many_rows_after_the_largest_rowid_is_taken(tmp_path: Path) -> None:
    # Once 2**63-1 is in use, new rowids are drawn at random (SQLite tries 100 and fails
    # only if all of them are taken); every insert must get a fresh sequence of tries,
    # within one transaction and across transactions.
    io = UnixIO()
    path = tmp_path / "full.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(id INTEGER PRIMARY KEY, x)"), io)
    block(tx.insert("t", {"id": 2**63 - 1}), io)
    rowids = {block(tx.insert("t", {"x": i}), io) for i in range(150)}
    block(tx.commit(), io)
    for i in range(120):
        tx = block(db.begin(), io)
        rowids.add(block(tx.insert("t", {"x": i}), io))
        block(tx.commit(), io)
    assert len(rowids) == 270
    db.close()
    check, rows = sqlite_check(path, "SELECT count(*) FROM t")
    assert check == "ok"
    assert rows == [(271,)]


def test_an_insert_below_one_still_records_the_autoincrement_table(tmp_path: Path) -> None:
    # SQLite writes the table's sqlite_sequence row at the end of every INSERT, so a
    # first row with a rowid below 1 leaves ("a", 0) behind.
    io = UnixIO()
    path = tmp_path / "auto.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x)"), io)
    block(tx.insert("a", {"id": -5}), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT name, seq FROM sqlite_sequence")
    assert check == "ok"
    assert rows == [("a", 0)]


def test_sync_log_after_sqlite_checkpointed_and_deleted_the_log(
    users: tuple[UnixIO, Database, Path],
) -> None:
    # Commits made with durable=False, then sqlite3's last connection checkpoints the WAL
    # into the database and deletes it: nothing of ours is left to sync.
    io, db, path = users
    tx = block(db.begin(), io)
    block(tx.insert("users", {"name": "Ada"}), io)
    block(tx.commit(durable=False), io)
    check, rows = sqlite_check(path, "SELECT name FROM users")
    assert (check, rows) == ("ok", [("Ada",)])
    assert not os.path.exists(f"{path}-wal")
    assert block(db.count("users"), io) == 1  # this read finds the log gone
    block(db.sync_log(), io)
    tx = block(db.begin(), io)
    block(tx.insert("users", {"name": "Bo"}), io)
    block(tx.commit(durable=False), io)
    block(db.sync_log(), io)
    assert db.log_synced == db.log_end > 0
    db.close()
    check, rows = sqlite_check(path, "SELECT name FROM users ORDER BY name")
    assert (check, rows) == ("ok", [("Ada",), ("Bo",)])


def test_the_next_transaction_reuses_the_nodes_a_commit_wrote_and_never_edits_them(
    users: tuple[UnixIO, Database, Path],
) -> None:
    io, db, path = users
    tx = block(db.begin(), io)
    for i in range(200):
        block(tx.insert("users", {"name": f"u{i:03}", "age": i}), io)
    block(tx.commit(), io)
    root = db.schema.table("users").root_page
    cached = db.pager.cache.peek(root)
    assert cached is not None and cached.node is not None  # kept from the commit

    def nodes() -> dict[int, tuple[list[bytes], int]]:
        pages = db.pager.cache.pages.items()
        return {n: (list(p.node.cells), p.node.right) for n, p in pages if p.node}

    before = nodes()
    tx = block(db.begin(), io)
    # The row goes into the table's leaf before the index refuses it: only a copy changed.
    with pytest.raises(ConstraintError):
        block(tx.insert("users", {"name": "u007", "age": 1}), io)
    block(tx.insert("users", {"name": "new", "age": 1}), io)
    block(tx.rollback(), io)
    assert nodes() == before
    tx = block(db.begin(), io)
    block(tx.delete("users", 5), io)
    block(tx.commit(), io)
    db.close()
    check, rows = sqlite_check(path, "SELECT count(*), min(id), max(id) FROM users")
    assert check == "ok" and rows == [(199, 1, 200)]


def test_a_commit_that_leaves_page_1_alone_does_not_write_it(tmp_path: Path) -> None:
    io = UnixIO()
    path = tmp_path / "p1.db"
    db = open_writable(io, path)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)"), io)
    block(tx.commit(), io)
    wal = Path(str(path) + "-wal")
    frame = 4096 + 24

    def frames_of(commit: Any) -> list[int]:
        before = wal.stat().st_size
        commit()
        data = wal.read_bytes()[before:]
        assert len(data) % frame == 0
        return [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), frame)]

    def insert(count: int) -> None:
        tx = block(db.begin(), io)
        for _ in range(count):
            block(tx.insert("t", {"b": "x" * 100}), io)
        block(tx.commit(), io)

    root = db.schema.table("t").root_page
    assert frames_of(lambda: insert(1)) == [root]  # as SQLite in WAL mode: no page 1
    assert 1 in frames_of(lambda: insert(60))  # the table grew: the page count moved
    db.close()
    check, rows = sqlite_check(path, "SELECT count(*) FROM t")
    assert check == "ok" and rows == [(61,)]
