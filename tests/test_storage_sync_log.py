"""`commit(durable=False)` and `Database.sync_log()`: one sync of the WAL at a time, shared
by every commit written while the one before ran (group commit); a caller given up on never
fails the sync others wait for; a checkpoint in between ends the wait. Stepped by hand,
with the WAL's syncs held until the test lets them run."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from core import IO, Completion, CompletionError, Done, ErrorKind, block
from core.io import MemoryFile, MemoryIO, OpenFlags, UnixIO
from core.io.backend import StrPath
from core.storage import Database, SyncLog


class HeldSyncFile(MemoryFile):
    """A `MemoryFile` whose syncs of a WAL wait in its backend's `held` list while `hold`
    is set."""

    __slots__ = ()

    def sync(self, c: Completion) -> Completion:
        io = self._io
        assert isinstance(io, HeldSyncIO)
        if io.hold and self._path.endswith("-wal"):
            io.held.append((self, c))
            return c
        return super().sync(c)


class HeldSyncIO(MemoryIO):
    """`MemoryIO` whose WAL syncs wait until `release()` (or `fail()`)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = True
        self.held: list[tuple[MemoryFile, Completion]] = []

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> MemoryFile:
        file = super().open_file(path, flags)
        file.__class__ = HeldSyncFile  # same slots: only `sync` differs
        return file

    def release(self) -> int:
        """Run every held sync; how many there were."""
        held, self.held = self.held, []
        for file, c in held:
            MemoryFile.sync(file, c)
        return len(held)

    def fail(self) -> None:
        """Fail every held sync with EIO."""
        held, self.held = self.held, []
        for _, c in held:
            c.error(CompletionError(ErrorKind.IO, "fsync failed", errno=5))


def setup(io: MemoryIO) -> Database:
    db = block(Database.open(io, "/g.db", writable=True), io)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a)"), io)
    io.hold = False  # type: ignore[attr-defined]
    block(tx.commit(), io)
    io.hold = True  # type: ignore[attr-defined]
    return db


def commit_one(db: Database, io: MemoryIO, value: int) -> None:
    tx = block(db.begin(), io)
    block(tx.insert("t", {"a": value}), io)
    block(tx.commit(durable=False), io)


def test_commits_made_while_a_sync_runs_share_the_next_one() -> None:
    io = HeldSyncIO()
    db = setup(io)
    base = db.log_syncs
    commit_one(db, io, 1)
    first = db.sync_log()
    r1 = first.step()
    assert type(r1) is IO and db.log_syncs == base + 1
    # Three more commits while that sync runs: it does not cover them, so they wait for
    # it instead of starting syncs of their own.
    waiters = []
    for value in (2, 3, 4):
        commit_one(db, io, value)
        op = db.sync_log()
        result = op.step()
        assert type(result) is IO and result.completion is not r1.completion
        waiters.append((op, result.completion))
    assert db.log_syncs == base + 1 and len(io.held) == 1
    assert io.release() == 1
    assert first.step() == Done(None)
    assert all(c.finished() for _, c in waiters)
    # The first waiter to step starts the next sync, covering all three; the others share it.
    again = [op.step() for op, _ in waiters]
    assert all(type(r) is IO for r in again)
    assert db.log_syncs == base + 2 and len(io.held) == 1
    io.release()
    assert [op.step() for op, _ in waiters] == [Done(None)] * 3
    assert db.log_synced == db.log_end
    # Nothing left to sync: free.
    assert db.sync_log().step() == Done(None)
    assert db.log_syncs == base + 2


def test_a_caller_given_up_on_does_not_fail_the_shared_sync() -> None:
    io = HeldSyncIO()
    db = setup(io)
    commit_one(db, io, 1)
    ops = [db.sync_log() for _ in range(3)]
    waits = [op.step() for op in ops]
    assert all(type(r) is IO for r in waits)
    assert len({r.completion for r in waits if type(r) is IO}) == 3  # one each
    assert len(io.held) == 1
    # A driver gives up on the first caller: it aborts what that caller waits on.
    gone = waits[0]
    assert type(gone) is IO
    gone.completion.abort()
    ops[0].abort(RuntimeError("cancelled"))
    io.release()
    assert [op.step() for op in ops[1:]] == [Done(None)] * 2
    assert db.log_synced == db.log_end


def test_a_failed_sync_raises_in_every_caller_waiting_on_it() -> None:
    io = HeldSyncIO()
    db = setup(io)
    commit_one(db, io, 1)
    covered = db.sync_log()
    assert type(covered.step()) is IO
    commit_one(db, io, 2)
    behind = db.sync_log()  # not covered, waits for it all the same
    assert type(behind.step()) is IO
    io.fail()
    for op in (covered, behind):
        with pytest.raises(CompletionError) as info:
            op.step()
        assert info.value.errno == 5
    assert db.log_synced < db.log_end
    # The next caller starts a fresh sync.
    retry = db.sync_log()
    assert type(retry.step()) is IO
    io.release()
    assert retry.step() == Done(None)
    assert db.log_synced == db.log_end


def test_a_checkpoint_ends_the_wait_and_a_late_sync_counts_for_nothing() -> None:
    io = HeldSyncIO()
    db = setup(io)
    for value in range(5):
        commit_one(db, io, value)
    waiting = db.sync_log()
    assert type(waiting.step()) is IO
    held = list(io.held)
    io.held.clear()  # the log's sync stays in flight, past the checkpoint
    io.hold = False
    block(db.checkpoint(), io)  # syncs the log itself, copies, empties it
    assert db.log_end == db.log_synced == 0
    commit_one(db, io, 99)  # a new log: its header is written and synced first
    io.hold = True
    end = db.log_end
    assert end > 0
    for file, c in held:  # the old sync finishes late: it covers nothing of the new log
        MemoryFile.sync(file, c)
    assert db.log_synced == 0
    assert waiting.step() == Done(None)  # its commits are in the database file now
    later = db.sync_log()
    assert type(later.step()) is IO  # the new commit still needs its sync
    io.release()
    assert later.step() == Done(None)
    assert db.log_synced == end


def test_sync_log_is_an_ordinary_operation_on_real_files(tmp_path: Path) -> None:
    io = UnixIO()
    path = tmp_path / "u.db"
    db = block(Database.open(io, os.fspath(path), writable=True), io)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(a)"), io)
    block(tx.commit(), io)
    base = db.log_syncs
    for value in range(10):
        tx = block(db.begin(), io)
        block(tx.insert("t", {"a": value}), io)
        block(tx.commit(durable=False), io)
    op = db.sync_log()
    assert isinstance(op, SyncLog)
    block(op, io)
    assert db.log_syncs == base + 1 and db.log_synced == db.log_end
    db.close()
    with closing(sqlite3.connect(path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM t").fetchone() == (10,)
