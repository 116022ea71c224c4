"""The read transaction every read operation runs in (Turso `pager.rs` `begin_read_tx` and
`end_read_tx`), on the kernel (`core.state_machine.Machine`).

Theory of operation:
- A read is a transaction with a fixed outline: BEGIN (take the SHARED lock if first
  reader) -> HEADER (re-read the 100-byte header; a changed change counter empties the page
  cache; a hot journal is refused) -> WAL (re-read the WAL header; if the log moved on,
  rescan it and drop the pages it rewrote) -> PAGE1 (in WAL mode, the current header is
  page 1 as the WAL has it) -> SCHEMA (reload if the schema cookie changed) -> WORK (the
  query itself, on B-tree cursors: the subclass's `_resolve`, `_work` and `_value`) ->
  FINISH (in WAL mode, check that the log did not change during the read; if it did, start
  again, a few times, then `DatabaseBusyError`) -> DONE (the value is ready).
- An immutable database skips all of that after opening: no locks, no re-reading, the
  cache is never invalidated. It is the right mode for files nothing writes.
- Re-entrancy: each phase keeps the completion it yielded (or the sub-machine that did);
  the kernel returns that completion to an early re-entry. The lock is counted per
  transaction (`_holds_read`), taken once in BEGIN and released exactly once, in the
  kernel's `_finalize`, however the operation ends.
- Concurrent operations on one database (several `drive` calls on one event loop) share
  the lock through a reader count and the cache through the pager; a header check is
  skipped only while another reader has already validated the current transaction.
- In WAL mode a read that meets corruption first re-reads the WAL header (RECHECK): if the
  log moved on (a writer restarted it under the read, which the missing -shm protocol
  cannot prevent) the read starts over instead of reporting corruption.
- The outline is a hot path (it runs for every query), so it follows the kernel's rule for
  fast state comparison: module-level aliases compared with `is`.
"""

from __future__ import annotations

import enum
import os
from typing import Final, TypeVar

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.errors import CompletionError, InternalError
from core.io.backend import File, OpenFlags
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult
from core.storage.btree import BTreeCursor, ScanStep
from core.storage.errors import (
    CorruptDatabaseError,
    DatabaseBusyError,
    HotJournalError,
    StorageError,
)
from core.storage.header import HEADER_SIZE, parse_header
from core.storage.pager import PageLoader
from core.storage.record import Value
from core.storage.schema import build_schema
from core.storage.shared import SharedState
from core.storage.wal import (
    WAL_HEADER_SIZE,
    WalScan,
    WalSnapshot,
    parse_wal_header,
    wal_header_bytes,
)

__all__ = ["FIRST_PHASE", "MAX_RESTARTS", "ReadPhase", "ReadTransaction", "WriteLockedTransaction"]

T = TypeVar("T")

MAX_RESTARTS: Final = 8
"""How often a WAL-mode read starts over because the log changed before giving up."""

_JOURNAL_MAGIC: Final = bytes.fromhex("d9d505f920a163d7")
_NO_BUFFER: Final = bytearray()
"""A read's `_buffer` until `_read` makes one (never written: `_read` replaces it)."""


class ReadPhase(enum.Enum):
    """Where a read transaction is in its outline (see the module docstring)."""

    BEGIN = "begin"
    HEADER = "header"
    JOURNAL = "journal"
    WAL_HEADER = "wal header"
    WAL_SCAN = "wal scan"
    PAGE1 = "page 1"
    SCHEMA = "schema"
    WORK = "work"
    FINISH = "finish"
    FINISH_CHECK = "finish check"
    RECHECK = "recheck"
    RECHECK_WAIT = "recheck wait"
    DONE = "done"


_P_BEGIN: Final = ReadPhase.BEGIN
FIRST_PHASE: Final = _P_BEGIN
"""The phase a read transaction starts in: a query that answers from the cache alone does
so only there."""
_P_HEADER: Final = ReadPhase.HEADER
_P_JOURNAL: Final = ReadPhase.JOURNAL
_P_WAL_HEADER: Final = ReadPhase.WAL_HEADER
_P_WAL_SCAN: Final = ReadPhase.WAL_SCAN
_P_PAGE1: Final = ReadPhase.PAGE1
_P_SCHEMA: Final = ReadPhase.SCHEMA
_P_WORK: Final = ReadPhase.WORK
_P_FINISH: Final = ReadPhase.FINISH
_P_FINISH_CHECK: Final = ReadPhase.FINISH_CHECK
_P_RECHECK: Final = ReadPhase.RECHECK
_P_RECHECK_WAIT: Final = ReadPhase.RECHECK_WAIT
_P_DONE: Final = ReadPhase.DONE


_SC_SEEK: Final = ScanStep.SEEK
_SC_ROW: Final = ScanStep.ROW
_SC_NEXT: Final = ScanStep.NEXT
_SC_DONE: Final = ScanStep.DONE


class _SchemaLoad:
    """Reads every row of `sqlite_schema` (a table walk over page 1)."""

    __slots__ = ("cursor", "rows", "state")

    def __init__(self, db: SharedState) -> None:
        self.cursor = BTreeCursor(db.pager, 1, table=True, codec=db.codec, scan=True)
        self.rows: list[tuple[int, list[Value]]] = []
        self.state = _SC_SEEK

    def advance(self) -> Completion | None:
        """Advance; None once `rows` holds every row."""
        cursor = self.cursor
        while True:
            state = self.state
            if state is _SC_ROW:
                if not cursor.valid:
                    self.state = _SC_DONE
                    return None
                pending = cursor.load_record()
                if pending is not None:
                    return pending
                self.rows.append((cursor.rowid(), cursor.record_values()))
                self.state = _SC_NEXT
            elif state is _SC_NEXT:
                pending = cursor.next()
                if pending is not None:
                    return pending
                self.state = _SC_ROW
            elif state is _SC_SEEK:
                pending = cursor.rewind()
                if pending is not None:
                    return pending
                self.state = _SC_ROW
            else:
                return None


@mypyc_attr(allow_interpreted_subclasses=True)
class ReadTransaction(Machine[T]):
    """The outline every read operation follows (see the module docstring). A subclass
    writes `_resolve` (names and cursors, once the schema is current), `_work` (the query:
    a completion to wait for, or None when finished) and `_value`.

    `step()` raises `StateMachineError` if stepped after it finished or failed, and what the
    `Database` method that built the operation lists.
    """

    __slots__ = (
        "_buffer",
        "_completion",
        "_holds_read",
        "_journal",
        "_loader",
        "_phase",
        "_restarts",
        "_schema_load",
        "_suspect",
        "_wal_scan",
        "_wal_token",
        "db",
    )

    def __init__(self, db: SharedState | None) -> None:
        Machine.__init__(self)
        self.db = db
        self._phase = _P_BEGIN
        self._holds_read = False
        self._completion: Completion | None = None
        self._buffer = _NO_BUFFER  # until `_read`: most reads never make one
        self._journal: File | None = None
        self._wal_scan: WalScan | None = None
        self._schema_load: _SchemaLoad | None = None
        self._loader: PageLoader | None = None
        self._wal_token: tuple[int, int, int] | None = None
        self._suspect: CorruptDatabaseError | None = None
        self._restarts = 0

    @property
    def restarts(self) -> int:
        """How often this read started over because the WAL changed under it."""
        return self._restarts

    # Subclasses implement these three.
    def _resolve(self) -> None:
        """Resolve names and build cursors (the schema is current)."""

    def _work(self) -> Completion | None:
        """Advance the query; None when finished."""
        return None

    def _value(self) -> T:
        raise NotImplementedError

    def _advance(self) -> TransitionResult[T]:
        phase = self._phase
        if phase is _P_BEGIN:
            db = self.db
            if db is not None and db.immutable and db.loaded_schema is not None and not db.closed:
                # Nothing to lock or re-check: straight to the work.
                self._resolve()
                phase = self._phase = _P_WORK
        try:
            if phase is _P_WORK:
                pending = self._work()
                if pending is not None:
                    return IO(pending)
                phase = self._phase = self._after_work()
            elif phase is not _P_DONE:
                pending = self._transaction_step(phase)
                if pending is not None:
                    return IO(pending)
                phase = self._phase
        except CorruptDatabaseError as exc:
            if not self._may_be_a_moving_log(exc):
                raise
            # Without the -shm protocol a writer may restart the WAL under this read, so
            # what looked corrupt may be a frame that was overwritten meanwhile: look at
            # the log again before believing it.
            self._suspect = exc
            self._phase = _P_RECHECK
            return Continue
        if phase is _P_DONE:
            return Done(self._value())
        return Continue

    def _may_be_a_moving_log(self, exc: CorruptDatabaseError) -> bool:
        db = self.db
        return (
            db is not None
            and not db.immutable
            and not db.closed
            and self._suspect is None
            and self._wal_token is not None
            and self._phase in (_P_WORK, _P_PAGE1, _P_SCHEMA)
        )

    def _finalize(self) -> None:
        """Close a journal being checked and give back this transaction's share of the
        lock."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._holds_read:
            self._holds_read = False
            assert self.db is not None
            self.db.release_read()

    def _prepare(self) -> SharedState:
        """The database to work on (`OpenDatabase` opens it here)."""
        assert self.db is not None
        return self.db

    def _after_work(self) -> ReadPhase:
        db = self.db
        assert db is not None
        if not db.immutable and db.header is not None and db.header.wal_mode:
            return _P_FINISH
        return _P_DONE

    def _read(self, file: File, offset: int, length: int) -> Completion:
        self._buffer = bytearray(length)
        c = Completion.new_read(self._buffer)
        self._completion = c
        file.pread(offset, c)
        return c

    def _read_result(self) -> bytes:
        c = self._completion
        assert c is not None
        count = c.result()
        buffer = self._buffer
        return bytes(buffer) if count == len(buffer) else bytes(buffer[:count])

    def _transaction_step(self, phase: ReadPhase) -> Completion | None:
        """One transition of the transaction outline; a completion to wait for, or None."""
        match phase:
            case ReadPhase.BEGIN:
                db = self._prepare()
                if db.closed:
                    db.check_open()
                if db.immutable and db.loaded_schema is not None:
                    self._begin_work()
                    return None
                if not db.immutable:
                    db.acquire_read()
                    self._holds_read = True
                if db.validated and db.loaded_schema is not None and not _wal_mode(db):
                    self._begin_work()
                    return None
                self._phase = _P_HEADER
                c = self._read(db.file, 0, HEADER_SIZE)
                return None if c.finished() else c
            case ReadPhase.HEADER:
                db = self._db()
                data = self._read_result()
                if data and data == db.raw_file_header and db.header is not None:
                    header = db.header  # unchanged since the last transaction
                else:
                    file_size = db.file.size()
                    if file_size == 0 and not data:
                        db.set_empty()
                        db.validated = True
                        self._begin_work()
                        return None
                    header = parse_header(data, path=db.path)
                    db.apply_header(header, file_size // header.page_size)
                    db.raw_file_header = data
                    if header.wal_mode:
                        # In WAL mode page 1 as the log has it is the current header, and
                        # it may be newer than the file's (a checkpoint copied an older
                        # one): PAGE1 applies it again even if it did not change.
                        db.raw_page1_header = b""
                if header.wal_mode:
                    self._phase = _P_WAL_HEADER
                    return self._start_wal_header(db)
                if self._holds_read and self._check_journal(db):
                    self._phase = _P_JOURNAL
                    journal_read = self._completion
                    assert journal_read is not None
                    return None if journal_read.finished() else journal_read
                return self._after_header(db)
            case ReadPhase.JOURNAL:
                db = self._db()
                data = self._read_result()
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                if data[:1] not in (b"", b"\x00") and not _reserved_elsewhere(db):
                    raise HotJournalError(
                        f"database {db.path!r} has a hot journal ({db.path}-journal): a "
                        "writer crashed mid-transaction; open it once with a read-write "
                        "SQLite connection to roll the journal back"
                    )
                return self._after_header(db)
            case ReadPhase.WAL_HEADER:
                db = self._db()
                data = self._read_result()
                size = self._log_size(db)
                if self._wal_unchanged(db, data, size):
                    self._wal_token = _token(db.wal)
                    return self._start_page1(db)
                assert db.wal_file is not None
                self._wal_scan = WalScan(db.wal_file, db.pager.layout.page_size, db.wal)
                self._phase = _P_WAL_SCAN
                return None
            case ReadPhase.WAL_SCAN:
                db = self._db()
                scan = self._wal_scan
                assert scan is not None
                pending = scan.advance()
                if pending is not None:
                    return pending
                self._wal_scan = None
                db.apply_wal(scan.snapshot)
                self._wal_token = _token(scan.snapshot)
                return self._start_page1(db)
            case ReadPhase.PAGE1:
                db = self._db()
                loader = self._loader
                assert loader is not None
                page = loader.load(1)
                if page is None:
                    return loader.wait
                self._loader = None
                raw = page.data[:HEADER_SIZE]
                wal = db.wal
                committed = wal.db_size if wal is not None and wal.max_frame else 0
                if raw != db.raw_page1_header or db.header is None:
                    header = parse_header(raw, path=db.path)
                    file_pages = db.file.size() // header.page_size
                    db.apply_header(header, committed or header.page_count or file_pages)
                    db.raw_page1_header = raw
                if committed:
                    db.pager.page_count = committed
                return self._after_header(db)
            case ReadPhase.SCHEMA:
                db = self._db()
                load = self._schema_load
                assert load is not None
                pending = load.advance()
                if pending is not None:
                    return pending
                self._schema_load = None
                assert db.header is not None
                limits = db.schema_limits
                if limits is not None:
                    limits.check_rows(load.rows)
                schema = build_schema(load.rows, db.header.schema_format)
                if limits is not None:
                    limits.check_schema(schema)
                db.adopt_schema(schema)
                self._begin_work()
                return None
            case ReadPhase.FINISH:
                db = self._db()
                if not db.refresh_wal_file():
                    if self._wal_token is None or self._wal_token[2] == 0:
                        self._phase = _P_DONE
                        return None
                    return self._restart(db)
                assert db.wal_file is not None
                self._phase = _P_FINISH_CHECK
                c = self._read(db.wal_file, 0, WAL_HEADER_SIZE)
                return None if c.finished() else c
            case ReadPhase.RECHECK:
                db = self._db()
                if not db.refresh_wal_file():
                    return self._restart(db)  # the log went away: read again
                assert db.wal_file is not None
                self._phase = ReadPhase.RECHECK_WAIT
                c = self._read(db.wal_file, 0, WAL_HEADER_SIZE)
                return None if c.finished() else c
            case ReadPhase.RECHECK_WAIT:
                db = self._db()
                data = self._read_result()
                self._completion = None
                assert db.wal_file is not None
                suspect = self._suspect
                assert suspect is not None
                if _token_of(data, db.wal_file.size()) == self._wal_token:
                    raise suspect  # the log did not move: the file really is corrupt
                self._suspect = None
                return self._restart(db)
            case ReadPhase.FINISH_CHECK:
                db = self._db()
                data = self._read_result()
                self._completion = None
                assert db.wal_file is not None
                if _token_of(data, db.wal_file.size()) == self._wal_token:
                    self._phase = _P_DONE
                    return None
                return self._restart(db)
            case _:
                raise InternalError(f"{type(self).__name__} stepped in phase {phase.name}")

    def _db(self) -> SharedState:
        db = self.db
        assert db is not None
        if db.closed:  # `check_open` inline: this runs once per phase of every read
            db.check_open()
        return db

    def _begin_work(self) -> None:
        self._completion = None
        self._resolve()
        self._phase = _P_WORK

    def _after_header(self, db: SharedState) -> Completion | None:
        assert db.header is not None
        if db.loaded_schema is None or db.schema_cookie != db.header.schema_cookie:
            self._schema_load = _SchemaLoad(db)
            self._phase = _P_SCHEMA
            return None
        db.validated = not db.immutable
        self._begin_work()
        return None

    def _start_wal_header(self, db: SharedState) -> Completion | None:
        if not db.refresh_wal_file():
            if db.wal is not None:
                db.drop_wal_file()
            self._wal_token = (0, 0, 0)
            return self._start_page1(db)
        assert db.wal_file is not None
        c = self._read(db.wal_file, 0, WAL_HEADER_SIZE)
        return None if c.finished() else c

    def _wal_unchanged(self, db: SharedState, data: bytes, size: int) -> bool:
        wal = db.wal
        if wal is None:
            return False
        header = wal.header
        if header is not None:
            # The header known, byte for byte, and the size known: the log did not move
            # (which costs less than parsing and verifying the header again).
            return size == wal.file_size and data == wal_header_bytes(header)
        return _token_of(data, size) == _token(wal)

    def _log_size(self, db: SharedState) -> int:
        """The -wal file's size, read after its header (a writer may append meanwhile)."""
        assert db.wal_file is not None
        return db.wal_file.size()

    def _start_page1(self, db: SharedState) -> Completion | None:
        self._completion = None
        if db.pager.page_count == 0 and not (db.wal is not None and db.wal.max_frame):
            return self._after_header(db)
        if db.wal is not None and db.wal.max_frame:
            db.pager.page_count = max(db.pager.page_count, db.wal.db_size)
        self._loader = PageLoader(db.pager)
        self._phase = _P_PAGE1
        return None

    def _check_journal(self, db: SharedState) -> bool:
        """Start checking for a hot journal; True if its first bytes are being read."""
        if db.lock is None or not os.access(db.path + "-journal", os.F_OK):
            return False
        try:
            journal = db.io.open_file(db.path + "-journal", OpenFlags.READ_ONLY)
        except CompletionError:
            return False  # gone again: a writer finished
        if journal.size() == 0:
            journal.close()
            return False
        self._journal = journal
        self._read(journal, 0, len(_JOURNAL_MAGIC))
        return True

    def _restart(self, db: SharedState) -> Completion | None:
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            raise DatabaseBusyError(
                f"the WAL of {db.path!r} changed during each of {MAX_RESTARTS} attempts to read"
            )
        self._completion = None
        self._phase = _P_WAL_HEADER
        return self._start_wal_header(db)


@mypyc_attr(allow_interpreted_subclasses=True)
class WriteLockedTransaction(ReadTransaction[T]):
    """The outline run under SQLite's EXCLUSIVE lock, for the operations that change the
    file (`Begin`, `CheckpointDatabase`, `ConvertToWal`).

    The lock is taken in BEGIN, before the header is read, so what the outline reads is the
    committed state and stays so; the end check on the log is skipped (no other writer can
    have moved it); the lock is given back in `_finalize` however the operation ends,
    unless the subclass handed it on (`_hand_over_lock`, a `Begin` to its transaction).
    `_write`/`_sync` submit the file changes a subclass's `_work` makes, `_io_done` raises
    a failed one's `CompletionError`. Raises `StorageError` for a database opened
    read-only, and what `SharedState.acquire_write` raises.
    """

    __slots__ = ("_holds_write",)

    def __init__(self, db: SharedState) -> None:
        super().__init__(db)
        self._holds_write = False

    def _prepare(self) -> SharedState:
        db = super()._prepare()
        db.check_open()
        if not db.writable:
            raise StorageError(
                f"database {db.path!r} was opened read-only; open it with writable=True"
            )
        if not self._holds_write:
            db.acquire_write()
            self._holds_write = True
        return db

    def _write(self, file: File, pos: int, data: bytes) -> Completion | None:
        """Submit a write; the completion to wait for, or None if it finished at once."""
        c = self._completion = Completion.new_write()
        file.pwrite(pos, data, c)
        return None if c.finished() else c

    def _sync(self, file: File) -> Completion | None:
        """Submit a sync; the completion to wait for, or None if it finished at once."""
        c = self._completion = Completion.new_sync()
        file.sync(c)
        return None if c.finished() else c

    def _io_done(self) -> None:
        """Raise the `CompletionError` of the write or sync just waited for, if it failed."""
        c = self._completion
        assert c is not None
        c.result()

    def _hand_over_lock(self) -> None:
        """The lock now belongs to what this operation returns: do not release it."""
        self._holds_write = False

    def _after_work(self) -> ReadPhase:
        return _P_DONE

    def _log_size(self, db: SharedState) -> int:
        # The size the check of the -wal file saw (`refresh_wal_file`, under this lock:
        # no one else can change the log), without asking again.
        size = db.wal_stat_size
        return size if size >= 0 else super()._log_size(db)

    def _finalize(self) -> None:
        super()._finalize()
        if self._holds_write:
            self._holds_write = False
            assert self.db is not None
            self.db.release_write()


def _wal_mode(db: SharedState) -> bool:
    return db.header is not None and db.header.wal_mode


def _token(snapshot: WalSnapshot | None) -> tuple[int, int, int] | None:
    if snapshot is None or snapshot.header is None:
        return (0, 0, snapshot.file_size if snapshot is not None else 0)
    return (snapshot.header.salt1, snapshot.header.salt2, snapshot.file_size)


def _token_of(data: bytes, size: int) -> tuple[int, int, int]:
    if len(data) < WAL_HEADER_SIZE:
        return (0, 0, size)
    try:
        header = parse_wal_header(data)
    except CorruptDatabaseError:
        return (0, 0, size)
    return (header.salt1, header.salt2, size)


def _reserved_elsewhere(db: SharedState) -> bool:
    return db.lock is not None and db.lock.reserved_elsewhere()
