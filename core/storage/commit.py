"""Committing a write transaction to the WAL (Turso `pager.rs` `commit_dirty_pages`,
`wal.rs` `append_frame`; SQLite `pagerWalFrames`).

Theory of operation:
- PREPARE builds the image of every dirty page (page 1 too when the header's counters
  moved: the page count, the freelist, the schema cookie; a written page 1 also takes
  the change counter one more, and version-valid-for with it) and the frames that carry
  them (`WalAppender.prepare`), without changing anything.
- APPEND writes them (`AppendCommit`: the header first and synced when the log is new
  or was reset, then the frames, then a sync of the log). Only when that sync finished is
  the commit published: the `Database` takes the new WAL snapshot, caches the written pages
  as the latest committed versions, adopts the header and the schema, and the EXCLUSIVE lock
  is given back. Readers of the same `Database` see the commit from their next operation.
- `durable=False` skips the final sync and publishes at once: the commit is then in the
  log but not yet safe from a power loss. `SyncLog` makes every such commit durable with
  one sync, however many there were; this is how `bridge.storage` commits many
  transactions with one sync (group commit), telling each caller "done" only after it.
  One sync of the log runs at a time: commits written while it runs wait for it, then
  share the next one.
- Failure: a commit whose write or sync failed (or that a driver abandoned) is over; its
  frames may or may not be in the log, as with SQLite. The lock is given back only once
  no write of it is in flight any more, so the next writer never races a late frame.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from core.completion import Completion
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult
from core.storage.shared import SharedState
from core.storage.wal_write import AppendCommit, WalAppender

if TYPE_CHECKING:
    from core.storage.write_transaction import WriteTransaction

__all__ = ["Commit", "SyncLog"]


class _Step(enum.Enum):
    PREPARE = "prepare"
    APPEND = "append"


class Commit(Machine[None]):
    """The operation `WriteTransaction.commit` returns; `Done(None)` once durable (see the
    module docstring)."""

    __slots__ = ("_append", "_appender", "_durable", "_pages", "_state", "tx")

    def __init__(self, tx: WriteTransaction, *, durable: bool = True) -> None:
        Machine.__init__(self)
        self.tx = tx
        self._durable = durable
        self._state = _Step.PREPARE
        self._append: AppendCommit | None = None
        self._appender: WalAppender | None = None
        self._pages: list[tuple[int, bytes]] = []

    def _advance(self) -> TransitionResult[None]:
        tx = self.tx
        match self._state:
            case _Step.PREPARE:
                tx.check_usable()
                db = tx.db
                pages = tx.page_images()
                if not pages:
                    tx.finish_commit()
                    return Done(None)
                tx.begin_commit()
                wal_file = db.open_wal_for_writing()
                appender = db.wal_appender()
                prepared = appender.prepare(pages, tx.pages.page_count)
                self._pages = pages
                self._appender = appender
                self._append = AppendCommit(wal_file, prepared, sync=self._durable)
                self._state = _Step.APPEND
                return Continue
            case _Step.APPEND:
                append = self._append
                assert append is not None
                result = append.step()
                if type(result) is IO:
                    return result
                done_appender = self._appender
                done = append.prepared
                assert done_appender is not None
                done_appender.commit(done)
                db = tx.db
                db.adopt_commit(done.snapshot, self._pages, tx.pages.page_count, tx.pages.nodes)
                db.adopt_appender(done_appender)
                db.log_written(done.end, durable=self._durable)
                tx.finish_commit()
                return Done(None)

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        append = self._append
        in_flight = append.pending() if append is not None else None
        if append is not None:
            append.abort(error)
        self.tx.fail_commit(in_flight if abandoned else None)


class SyncLog(Machine[None]):
    """Make every commit written so far durable with one sync of the WAL; `Done(None)`.

    Commits already synced cost nothing. A sync already under way is waited for: if it
    covers them, that is all; if not, the next one (started by the first of its waiters to
    step again, shared by the rest) covers every commit written meanwhile (see
    `SharedState.start_log_sync`). A checkpoint that emptied the log meanwhile made them
    durable too. Raises the `CompletionError` of a failed sync it waited on, covering or
    not: a commit later in the log than frames whose sync failed is not durable either.

    What the operation returns to wait on is a completion of its own that finishes with
    the shared sync, so a driver that gives up on one caller (aborting what it waits on)
    never fails the sync the others wait for.
    """

    __slots__ = ("_generation", "_relay", "_sync", "_target", "db")

    def __init__(self, db: SharedState) -> None:
        Machine.__init__(self)
        self.db = db
        self._target = db.log_end
        self._generation = db.log_generation
        self._sync: Completion | None = None
        self._relay: _Relay | None = None

    def _advance(self) -> TransitionResult[None]:
        db = self.db
        sync = self._sync
        if sync is not None:
            self._sync = self._relay = None
            sync.result()  # raises the sync's error
        if db.log_synced >= self._target or db.log_generation != self._generation:
            return Done(None)
        db.check_open()
        sync = db.start_log_sync()
        self._sync = sync
        if sync.finished():
            return Continue
        relay = self._relay = _Relay(Completion.new_sync())
        sync.add_done_callback(relay)
        return IO(relay.follower)

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        sync = self._sync
        relay = self._relay
        if sync is not None and relay is not None:
            sync.remove_done_callback(relay)


class _Relay:
    """A done-callback that finishes `follower` as the completion it is called with
    finished (a no-op if `follower` was aborted first)."""

    __slots__ = ("follower",)

    def __init__(self, follower: Completion) -> None:
        self.follower = follower

    def __call__(self, sync: Completion) -> None:
        error = sync.get_error()
        if error is None:
            self.follower.complete(sync.result())
        else:
            self.follower.error(error)
