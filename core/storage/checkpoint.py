"""Checkpointing the WAL of a `Database` (Turso `wal.rs` `checkpoint`; SQLite
`sqlite3WalCheckpoint` in TRUNCATE mode).

Theory of operation:
- A checkpoint runs under the write lock, like a write transaction: `CheckpointDatabase`
  takes it, refreshes the header and the log (the read outline), then runs `Checkpoint`
  (`wal_write.py`: sync the log, copy the newest committed frame of every page into the
  database file, sync it, empty the log), and publishes the result (`publish_checkpoint`).
- The page cache stays: a checkpoint moves pages, it does not change them.
- The next commit starts a new log generation: checkpoint sequence and first salt one more
  than the old header's, so no frame of the old log can be mistaken for a new one.
- `Begin` runs the same checkpoint first when the log has grown past
  `SharedState.auto_checkpoint` frames (SQLite's default 1000), so a checkpoint that fails
  fails a `begin`, never a commit that was already durable.
"""

from __future__ import annotations

from core.completion import Completion
from core.result import IO
from core.storage.shared import SharedState
from core.storage.transaction import WriteLockedTransaction
from core.storage.wal import WalSnapshot
from core.storage.wal_write import Checkpoint, WalAppender

__all__ = ["CheckpointDatabase", "CheckpointRun"]


class CheckpointRun:
    """One checkpoint of a locked database, stepped by an operation: `advance()` returns a
    completion to wait for, or None once `copied` holds the number of pages copied."""

    __slots__ = ("_machine", "copied", "db")

    def __init__(self, db: SharedState) -> None:
        self.db = db
        self.copied = 0
        self._machine: Checkpoint | None = None

    def advance(self) -> Completion | None:
        """Advance; None when done. Raises the I/O's `CompletionError`."""
        db = self.db
        machine = self._machine
        if machine is None:
            snapshot = db.wal
            if db.wal_file is None or snapshot is None:
                return None
            machine = self._machine = Checkpoint(
                db.file, db.wal_file, snapshot, db.pager.layout.page_size
            )
        result = machine.step()
        if isinstance(result, IO):
            return result.completion
        self.copied = result.value
        publish_checkpoint(db)
        return None

    def abort(self, error: BaseException) -> None:
        """Give up (the operation running it was abandoned)."""
        if self._machine is not None:
            self._machine.abort(error)


def publish_checkpoint(db: SharedState) -> None:
    """Adopt an emptied log: no frames, and the next commit starts a new generation."""
    old = db.wal
    previous = old.header if old is not None else None
    db.wal = WalSnapshot(None, {}, 0, 0, (0, 0), 0)
    db.pager.wal_frames = {}
    db.log_reset()
    if previous is not None:
        db.adopt_appender(
            WalAppender.new_log(
                db.pager.layout.page_size, previous=previous, big_endian=previous.big_endian
            )
        )


class CheckpointDatabase(WriteLockedTransaction[int]):
    """The operation `Database.checkpoint` returns; `Done(pages copied)`."""

    __slots__ = ("_run",)

    def __init__(self, db: SharedState) -> None:
        super().__init__(db)
        self._run: CheckpointRun | None = None

    def _resolve(self) -> None:
        assert self.db is not None
        self._run = CheckpointRun(self.db)

    def _work(self) -> Completion | None:
        run = self._run
        assert run is not None
        return run.advance()

    def _value(self) -> int:
        run = self._run
        assert run is not None
        return run.copied

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if abandoned and self._run is not None:
            self._run.abort(error)
