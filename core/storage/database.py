"""The database and its read operations (Turso `core/lib.rs` `Database`/`Connection`,
`pager.rs` `begin_read_tx`, and the VDBE's table and index cursors in the small).

Theory of operation:
- `Database.open(io, path)` is itself an operation: it opens the file read-only, reads and
  checks the header, the WAL if there is one, and the schema, and finishes with
  `Done(Database)`. Every query is an operation too (`get`, `scan`, `index_scan`, `count`,
  `read_schema`), built by a method and run by `block` or `bridge.drive`.
- Each operation is a read transaction with a fixed outline (`_ReadOp`):
  BEGIN (take the SHARED lock if first reader) -> HEADER (re-read the 100-byte header; a
  changed change counter empties the page cache; a hot journal is refused) -> WAL (re-read
  the WAL header; if the log moved on, rescan it and drop the pages it rewrote) -> PAGE1
  (in WAL mode, the current header is page 1 as the WAL has it) -> SCHEMA (reload if the
  schema cookie changed) -> WORK (the query itself, on B-tree cursors) -> FINISH (in WAL
  mode, check that the log did not change during the read; if it did, start again, a few
  times, then `DatabaseBusyError`) -> DONE (release the lock if last reader).
- An immutable database skips all of that after opening: no locks, no re-reading, the
  cache is never invalidated. It is the right mode for files nothing writes.
- Re-entrancy: each phase keeps the completion it yielded (or the sub-machine that did)
  and re-checks it on re-entry; the lock is counted per operation (`_holds_read`), taken
  once in BEGIN and released exactly once in DONE, on an exception, or in `abort`.
- Concurrent operations on one `Database` (several `drive` calls on one event loop) share
  the lock through a reader count and the cache through the pager; a header check is
  skipped only while another reader has already validated the current transaction.
- In WAL mode a read that meets corruption first re-reads the WAL header (RECHECK): if the
  log moved on (a writer restarted it under the read, which the missing -shm protocol
  cannot prevent) the read starts over instead of reporting corruption.
- Work per step is bounded: scans, counts and index scans return an explicit yield every
  `ROWS_PER_STEP` rows (`PAGES_PER_STEP` leaves), so a driver can let its loop run.
- Hot paths: a point lookup or an index equality whose pages are all cached is answered
  by `_row_from_cache` / `_index_rows_from_cache` without cursors, completions or (on an
  immutable database) the transaction outline; on any doubt they answer MISS and the full
  operation runs. The tests run every query through both.
- Rows are returned as sqlite3 returns them (see `schema.RowBuilder`); index and key
  arguments get the column's affinity first, as SQLite gives it to a bound parameter.
"""

from __future__ import annotations

import enum
import os
from bisect import bisect_left
from collections.abc import Sequence
from typing import Generic, TypeVar

from core.completion import Completion
from core.errors import CompletionError, ErrorKind, InternalError, StateMachineError
from core.io.backend import File, IOBackend, OpenFlags, StrPath
from core.result import IO, Done
from core.storage.btree import MAX_DEPTH, BTreeCursor, Lookup, lookup_rowid_cached
from core.storage.collation import Affinity, KeyPlan, apply_affinity, field_key
from core.storage.errors import (
    CorruptDatabaseError,
    DatabaseBusyError,
    HotJournalError,
    SchemaError,
    UnsupportedError,
)
from core.storage.header import HEADER_SIZE, DatabaseHeader, parse_header
from core.storage.locking import FileLock
from core.storage.page import Page, PageLayout
from core.storage.pager import PageLoader, Pager
from core.storage.record import Value, decode_record
from core.storage.schema import (
    Index,
    RowBuilder,
    Schema,
    Table,
    build_schema,
    check_collations,
    fold_name,
    index_key_plan,
    pk_positions,
)
from core.storage.wal import (
    WAL_HEADER_SIZE,
    WalScan,
    WalSnapshot,
    parse_wal_header,
)

__all__ = [
    "DEFAULT_CACHE_PAGES",
    "DEFAULT_READAHEAD",
    "PAGES_PER_STEP",
    "ROWS_PER_STEP",
    "Bound",
    "CountRows",
    "Database",
    "GetRow",
    "IndexScan",
    "OpenDatabase",
    "ReadSchema",
    "Row",
    "ScanRows",
]

T = TypeVar("T")

Row = tuple[Value, ...]
"""A row: `(rowid, *columns)` for rowid tables, `(*columns)` for WITHOUT ROWID tables."""

DEFAULT_CACHE_PAGES = 2048
DEFAULT_READAHEAD = 16
ROWS_PER_STEP = 512
"""A scan yields to the driver (an explicit yield) after about this many rows in one step,
so a long scan over cached pages never holds an event loop for more than a millisecond or
two; under `block` a yield costs a microsecond or so."""
PAGES_PER_STEP = 256
"""The same bound for `count`, in leaf pages."""
MAX_RESTARTS = 8
"""How often a WAL-mode read starts over because the log changed before giving up."""

_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")
_MISS = Lookup.MISS
_TEXT_AS_IS = frozenset({Affinity.TEXT, Affinity.BLOB, None})


class Database:
    """An open SQLite database file, read-only. Build with `Database.open(...)`.

    The attributes are a snapshot of what the last operation saw; the operations re-check
    the file (unless immutable) before they trust them.
    """

    __slots__ = (
        "_builders",
        "_change_counter",
        "_closed",
        "_lock",
        "_plans",
        "_raw_file_header",
        "_raw_page1_header",
        "_readers",
        "_resolved",
        "_schema",
        "_schema_cookie",
        "_validated",
        "_wal_identity",
        "cache_pages",
        "codec",
        "file",
        "header",
        "immutable",
        "io",
        "pager",
        "path",
        "readahead",
        "wal",
        "wal_file",
        "wal_path",
    )

    def __init__(
        self,
        io: IOBackend,
        path: str,
        file: File,
        *,
        immutable: bool,
        cache_pages: int,
        readahead: int,
    ) -> None:
        """Use `Database.open`; this only assembles an opened file."""
        self.io = io
        self.path = path
        self.file = file
        self.immutable = immutable
        self.cache_pages = cache_pages
        self.readahead = readahead
        self.header: DatabaseHeader | None = None
        """The header as of the last transaction; None for an empty (0-byte) file."""
        self.codec = "utf-8"
        self.pager = Pager(
            file, PageLayout(4096, 4096), cache_pages=cache_pages, readahead=readahead
        )
        self.wal_path = path + "-wal"
        self.wal_file: File | None = None
        self.wal: WalSnapshot | None = None
        """The WAL as of the last transaction (None when there is no log)."""
        self._wal_identity: tuple[int, int] | None = None
        fd = _fd_of(file)
        self._lock: FileLock | None = (
            FileLock(fd, path) if fd is not None and not immutable else None
        )
        self._readers = 0
        self._validated = False
        self._change_counter = -1
        self._raw_file_header = b""
        self._raw_page1_header = b""
        self._schema: Schema | None = None
        self._schema_cookie = -1
        self._builders: dict[str, RowBuilder] = {}
        self._plans: dict[tuple[str, str], KeyPlan] = {}
        self._resolved: dict[
            str, tuple[int, int, KeyPlan, RowBuilder, tuple[Affinity | None, ...]]
        ] = {}
        self._closed = False

    # -- opening and closing --------------------------------------------------------

    @classmethod
    def open(
        cls,
        io: IOBackend,
        path: StrPath,
        *,
        immutable: bool = False,
        cache_pages: int = DEFAULT_CACHE_PAGES,
        readahead: int = DEFAULT_READAHEAD,
    ) -> OpenDatabase:
        """An operation that opens `path` read-only and finishes with `Done(Database)`.

        `immutable=True` promises that nothing changes the file while it is open: no locks
        are taken and nothing is re-read. `cache_pages` bounds the page cache;
        `readahead` is how many leaf pages a scan reads ahead in one batch.

        The operation raises `CompletionError` if the file cannot be opened or read,
        `CorruptDatabaseError` for a malformed file, `DatabaseBusyError` if a writer holds
        the lock, `HotJournalError` if a crashed writer left a journal to roll back.
        """
        if cache_pages < 1:
            raise ValueError(f"cache_pages must be at least 1, got {cache_pages}")
        if readahead < 0:
            raise ValueError(f"readahead must be >= 0, got {readahead}")
        return OpenDatabase(io, os.fspath(path), immutable, cache_pages, readahead)

    def close(self) -> None:
        """Release the lock and close the files; idempotent. Operations still running
        fail at their next step."""
        if self._closed:
            return
        self._closed = True
        if self._lock is not None and self._readers:
            self._lock.unlock()
        self._readers = 0
        self.file.close()
        if self.wal_file is not None:
            self.wal_file.close()
        self.pager.invalidate()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self._closed

    @property
    def schema(self) -> Schema:
        """The schema as of the last operation (use `read_schema()` for a fresh one)."""
        assert self._schema is not None
        return self._schema

    @property
    def page_count(self) -> int:
        """Pages in the database as of the last operation."""
        return self.pager.page_count

    # -- operations -----------------------------------------------------------------

    def read_schema(self) -> ReadSchema:
        """An operation: the current `Schema`."""
        return ReadSchema(self)

    def get(self, table: str, key: object) -> GetRow:
        """An operation: the row of `table` with rowid `key` (for a WITHOUT ROWID table,
        the primary key: a tuple, or one value for a one-column key), or None.

        The operation raises `SchemaError` for an unknown table or a key of the wrong
        shape, plus the errors every operation may raise (see `Database.open`).
        """
        return GetRow(self, table, key)

    def scan(self, table: str, *, after: object = None, limit: int | None = None) -> ScanRows:
        """An operation: up to `limit` rows of `table` in key order (rowid order, primary
        key order for WITHOUT ROWID), starting after key `after` (None: from the start).

        Page through a table by passing the key of the last row returned (its rowid, or
        its primary key tuple) as the next `after`.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return ScanRows(self, table, after, limit)

    def index_scan(
        self,
        index: str,
        *,
        equal: Sequence[object] = (),
        lower: Bound | None = None,
        upper: Bound | None = None,
        limit: int | None = None,
    ) -> IndexScan:
        """An operation: the rows of the indexed table whose index entry has its leading
        columns equal to `equal` and, if given, the next column within `lower`/`upper`,
        in index order.

        Values compare under the index's collations, after the column's affinity is
        applied, exactly as `WHERE a = ? AND b > ?` compares them in SQLite: a NULL in
        `equal` or as a bound matches nothing, and NULLs never fall in a range. A partial
        index only holds the rows its WHERE clause selects.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return IndexScan(self, index, tuple(equal), lower, upper, limit)

    def count(self, table: str) -> CountRows:
        """An operation: the number of rows in `table` (leaf pages' cell counts only; no
        record is decoded)."""
        return CountRows(self, table)

    # -- used by the operations -----------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CompletionError(ErrorKind.CLOSED, "database is closed", path=self.path)

    def _builder(self, table: Table) -> RowBuilder:
        builder = self._builders.get(table.name)
        if builder is None or builder.table is not table:
            builder = self._builders[table.name] = RowBuilder(table)
        return builder

    def _plan(self, table: Table, index: Index | None) -> KeyPlan:
        key = (table.name, index.name if index is not None else "")
        plan = self._plans.get(key)
        if plan is None:
            if index is not None:
                check_collations(index.columns, f"index {index.name}")
            check_collations(table.primary_key, f"table {table.name}")
            plan = self._plans[key] = index_key_plan(table, index, self.codec)
        return plan

    # -- answers from the cache alone ---------------------------------------------------
    #
    # The hot-cache point lookups: everything they need is cached and parsed, so they run
    # as a handful of calls with no cursor, no state machine and no completion. Any doubt
    # (a page not cached, an overflowing payload, an unusual tree, a name not yet resolved
    # once by the full path) returns MISS and the full operation does the work, with all
    # of its checks and its exact errors. Both paths return the same rows (the tests run
    # every query through both).

    def _row_from_cache(self, name: str, key: object) -> Row | Lookup | None:
        table = self._schema._by_name.get(name) if self._schema is not None else None
        if type(table) is not Table or table.without_rowid or type(key) is not int:
            return _MISS
        builder = self._builders.get(table.name)
        if builder is None or builder.table is not table:
            return _MISS
        return self._table_row_from_cache(table.root_page, key, builder)

    def _table_row_from_cache(
        self, root: int, rowid: int, builder: RowBuilder
    ) -> Row | Lookup | None:
        pager = self.pager
        found = lookup_rowid_cached(pager, root, rowid)
        if found is None or found is _MISS:
            return found
        page, i = found
        sizes = page.payload_sizes
        starts = page.payload_starts
        assert sizes is not None and starts is not None
        size = sizes[i]
        if size > pager.layout.max_local_table:
            return _MISS
        start = starts[i]
        try:
            values = decode_record(page.data, start, start + size, self.codec)
        except CorruptDatabaseError:
            return _MISS
        return builder.build(rowid, values)

    def _index_rows_from_cache(self, name: str, equal: tuple[object, ...]) -> list[Row] | Lookup:
        resolved = self._resolved.get(name)
        if resolved is None:
            schema = self._schema
            if schema is None:
                return _MISS
            index = schema._by_name.get(name)
            if type(index) is not Index:
                return _MISS
            table = schema._by_name.get(fold_name(index.table))
            if type(table) is not Table or table.without_rowid:
                return _MISS
            plan = self._plans.get((table.name, index.name))
            builder = self._builders.get(table.name)
            if plan is None or builder is None or builder.table is not table:
                return _MISS  # the full path has not prepared them yet
            affinities = tuple(c.affinity for c in index.columns)
            resolved = self._resolved[name] = (
                index.root_page,
                table.root_page,
                plan,
                builder,
                affinities,
            )
        index_root, table_root, plan, builder, affinities = resolved
        if not equal or len(equal) > len(affinities):
            return _MISS
        values: list[Value] = []
        for v, affinity in zip(equal, affinities, strict=False):
            if type(v) is str and affinity in _TEXT_AS_IS:
                values.append(v)
                continue
            try:
                converted = apply_affinity(v, affinity)
            except SchemaError:
                return _MISS
            if converted is None:
                return _MISS
            values.append(converted)
        probe = plan.probe(values)
        n = len(probe)
        pages = self.pager.cache.pages
        number = index_root
        path: list[int] = []
        for _ in range(MAX_DEPTH):
            page = pages.get(number)
            if page is None or page.key_plan is not plan or page.kind & 1:
                return _MISS
            keys = page.keys
            records = page.records
            assert keys is not None and records is not None
            path.append(number)
            i = bisect_left(keys, probe)
            if page.kind & 8:
                count = len(keys)
                j = i
                while j < count and keys[j][:n] == probe:
                    j += 1
                if j == count and (len(path) > 1 or count == 0):
                    return _MISS  # the matches may go on past this leaf
                self.pager.cache.touch(path)
                rows: list[Row] = []
                root = table_root
                for k in range(i, j):
                    rowid = records[k][-1] if records[k] else None
                    if type(rowid) is not int:
                        return _MISS
                    row = self._table_row_from_cache(root, rowid, builder)
                    if row is None or row is _MISS:
                        return _MISS
                    rows.append(row)
                return rows
            children = page.children
            assert children is not None
            number = children[i]
        return _MISS

    def _acquire(self) -> None:
        if self._readers == 0 and self._lock is not None:
            self._lock.lock_shared()
        self._readers += 1

    def _release(self) -> None:
        self._readers -= 1
        if self._readers <= 0:
            self._readers = 0
            self._validated = False
            if self._lock is not None and not self._closed:
                self._lock.unlock()

    def _apply_header(self, header: DatabaseHeader, file_pages: int) -> None:
        """Adopt a freshly read header: re-lay the pager if the geometry changed, and drop
        the cache if the change counter moved."""
        old = self.header
        if (
            old is None
            or old.page_size != header.page_size
            or old.usable_size != header.usable_size
            or old.text_encoding is not header.text_encoding
        ):
            self.pager.layout = PageLayout(header.page_size, header.usable_size)
            self.pager.invalidate()
            self._schema_cookie = -1
            self._plans.clear()
            self._resolved.clear()
        elif header.change_counter != self._change_counter and not header.wal_mode:
            self.pager.invalidate()
        self.header = header
        self.codec = header.text_encoding.value
        self._change_counter = header.change_counter
        self.pager.page_count = header.page_count or file_pages

    def _set_empty(self) -> None:
        self.header = None
        self._raw_file_header = b""
        self._raw_page1_header = b""
        self.pager.page_count = 0
        self.pager.invalidate()
        self._schema = Schema((), (), (), (), None)
        self._schema_cookie = -1

    def _apply_wal(self, snapshot: WalSnapshot) -> None:
        old = self.wal
        pager = self.pager
        if (
            old is None
            or old.header is None
            or snapshot.header is None
            or (old.header.salt1, old.header.salt2)
            != (snapshot.header.salt1, snapshot.header.salt2)
        ):
            pager.invalidate()
        else:
            changed = [p for p, f in snapshot.frames.items() if old.frames.get(p) != f]
            if changed:
                pager.invalidate(changed)
        self.wal = snapshot
        pager.wal_frames = snapshot.frames
        pager.wal_file = self.wal_file

    def _refresh_wal_file(self) -> bool:
        """(Re)open the -wal file if it appeared or was replaced; True if it exists."""
        fd = _fd_of(self.file)
        if fd is not None:
            try:
                st = os.stat(self.wal_path)
            except FileNotFoundError:
                self._drop_wal_file()
                return False
            identity = (st.st_dev, st.st_ino)
            if self.wal_file is not None and identity == self._wal_identity:
                return True
            self._drop_wal_file()
            self._wal_identity = identity
        elif self.wal_file is not None:
            return True
        try:
            self.wal_file = self.io.open_file(self.wal_path, OpenFlags.READ_ONLY)
        except CompletionError as exc:
            if exc.errno == 2:  # ENOENT: no log (yet)
                self._wal_identity = None
                return False
            raise
        return True

    def _drop_wal_file(self) -> None:
        if self.wal_file is not None:
            self.wal_file.close()
            self.wal_file = None
            self._wal_identity = None
            if self.wal is not None and self.wal.frames:
                self.pager.invalidate()
            self.wal = None
            self.pager.wal_frames = {}
            self.pager.wal_file = None


def _fd_of(file: File) -> int | None:
    fd = getattr(file, "fd", None)
    return fd if isinstance(fd, int) else None


class Bound:
    """One end of an index range: `value`, and whether the range includes it."""

    __slots__ = ("inclusive", "value")

    def __init__(self, value: object, inclusive: bool = True) -> None:
        self.value = value
        self.inclusive = inclusive

    def __repr__(self) -> str:
        return f"Bound({self.value!r}, inclusive={self.inclusive})"


class _Phase(enum.Enum):
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
    FAILED = "failed"


# Hot paths compare against module-level aliases of the enum members: looking a member up
# on its class goes through the enum metaclass and costs about ten times a global lookup.
_P_BEGIN = _Phase.BEGIN
_P_HEADER = _Phase.HEADER
_P_JOURNAL = _Phase.JOURNAL
_P_WAL_HEADER = _Phase.WAL_HEADER
_P_WAL_SCAN = _Phase.WAL_SCAN
_P_PAGE1 = _Phase.PAGE1
_P_SCHEMA = _Phase.SCHEMA
_P_WORK = _Phase.WORK
_P_FINISH = _Phase.FINISH
_P_FINISH_CHECK = _Phase.FINISH_CHECK
_P_RECHECK = _Phase.RECHECK
_P_RECHECK_WAIT = _Phase.RECHECK_WAIT
_P_DONE = _Phase.DONE
_P_FAILED = _Phase.FAILED


class _ScanState(enum.Enum):
    SEEK = "seek"
    ROW = "row"
    NEXT = "next"
    DONE = "done"


_SC_SEEK = _ScanState.SEEK
_SC_ROW = _ScanState.ROW
_SC_NEXT = _ScanState.NEXT
_SC_DONE = _ScanState.DONE


class _SchemaLoad:
    """Reads every row of `sqlite_schema` (a table walk over page 1)."""

    __slots__ = ("cursor", "rows", "state")

    def __init__(self, db: Database) -> None:
        self.cursor = BTreeCursor(db.pager, 1, table=True, codec=db.codec, scan=True)
        self.rows: list[tuple[int, list[Value]]] = []
        self.state = _SC_SEEK

    def step(self) -> Completion | None:
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


class _ReadOp(Generic[T]):
    """The outline every read operation follows (see the module docstring)."""

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
        "_waiting",
        "_wal_scan",
        "_wal_token",
        "db",
    )

    def __init__(self, db: Database | None) -> None:
        self.db = db
        self._waiting: Completion | None = None
        self._phase = _P_BEGIN
        self._holds_read = False
        self._completion: Completion | None = None
        self._buffer = bytearray()
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
    def _start(self) -> None:
        """Resolve names and build cursors (the schema is current)."""

    def _work(self) -> Completion | None:
        """Advance the query; None when finished."""
        return None

    def _value(self) -> T:
        raise NotImplementedError

    def step(self) -> Done[T] | IO:
        """Advance the operation.

        Raises `StateMachineError` if stepped after it finished or failed, and the errors
        listed on the `Database` method that built it.
        """
        waiting = self._waiting
        if waiting is not None:
            # Stepped again before what it waits for finished: yield the same completion,
            # touching nothing (only a driver's mistake or a spurious wake-up gets here).
            if not waiting.finished():
                return IO(waiting)
            self._waiting = None
        elif self._phase is _P_BEGIN:
            db = self.db
            if db is not None and db.immutable and db._schema is not None and not db._closed:
                # Nothing to lock or re-check: straight to the work.
                try:
                    self._start()
                except BaseException:
                    self._fail()
                    raise
                self._phase = _P_WORK
        try:
            while True:
                phase = self._phase
                if phase is _P_WORK:
                    pending = self._work()
                    if pending is not None:
                        self._waiting = pending
                        return IO(pending)
                    self._phase = self._after_work()
                elif phase is _P_DONE:
                    raise StateMachineError(f"{type(self).__name__} stepped after it finished")
                elif phase is _P_FAILED:
                    raise StateMachineError(f"{type(self).__name__} stepped after it failed")
                else:
                    pending = self._transaction_step(phase)
                    if pending is not None:
                        self._waiting = pending
                        return IO(pending)
                if self._phase is _P_DONE:
                    value = self._value()
                    self._finish()
                    return Done(value)
        except StateMachineError:
            raise
        except CorruptDatabaseError as exc:
            if self._may_be_a_moving_log(exc):
                # Without the -shm protocol a writer may restart the WAL under this read,
                # so what looked corrupt may be a frame that was overwritten meanwhile:
                # look at the log again before believing it.
                self._suspect = exc
                self._waiting = None
                self._phase = _P_RECHECK
                return self.step()
            self._fail()
            raise
        except BaseException:
            self._fail()
            raise

    def _may_be_a_moving_log(self, exc: CorruptDatabaseError) -> bool:
        db = self.db
        return (
            db is not None
            and not db.immutable
            and not db._closed
            and self._suspect is None
            and self._wal_token is not None
            and self._phase in (_P_WORK, _P_PAGE1, _P_SCHEMA)
        )

    def abort(self, error: BaseException) -> None:
        """Give up: release the lock; further steps raise."""
        if self._phase is not _P_DONE:
            self._fail()

    def _fail(self) -> None:
        self._phase = _P_FAILED
        self._waiting = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._holds_read:
            self._holds_read = False
            assert self.db is not None
            self.db._release()

    def _finish(self) -> None:
        if self._holds_read:
            self._holds_read = False
            assert self.db is not None
            self.db._release()

    def _prepare(self) -> Database:
        """The database to work on (`OpenDatabase` opens it here)."""
        assert self.db is not None
        return self.db

    def _after_work(self) -> _Phase:
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
        return bytes(self._buffer[:count])

    def _transaction_step(self, phase: _Phase) -> Completion | None:
        """One transition of the transaction outline; a completion to wait for, or None."""
        match phase:
            case _Phase.BEGIN:
                db = self._prepare()
                db._check_open()
                if db.immutable and db._schema is not None:
                    self._begin_work()
                    return None
                if not db.immutable:
                    db._acquire()
                    self._holds_read = True
                if db._validated and db._schema is not None and not _wal_mode(db):
                    self._begin_work()
                    return None
                self._phase = _P_HEADER
                c = self._read(db.file, 0, HEADER_SIZE)
                return None if c.finished() else c
            case _Phase.HEADER:
                db = self._db()
                data = self._read_result()
                if data and data == db._raw_file_header and db.header is not None:
                    header = db.header  # unchanged since the last transaction
                else:
                    file_size = db.file.size()
                    if file_size == 0 and not data:
                        db._set_empty()
                        db._validated = True
                        self._begin_work()
                        return None
                    header = parse_header(data, path=db.path)
                    db._apply_header(header, file_size // header.page_size)
                    db._raw_file_header = data
                if header.wal_mode:
                    self._phase = _P_WAL_HEADER
                    return self._start_wal_header(db)
                if self._holds_read and self._check_journal(db):
                    self._phase = _P_JOURNAL
                    journal_read = self._completion
                    assert journal_read is not None
                    return None if journal_read.finished() else journal_read
                return self._after_header(db)
            case _Phase.JOURNAL:
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
            case _Phase.WAL_HEADER:
                db = self._db()
                data = self._read_result()
                assert db.wal_file is not None
                size = db.wal_file.size()
                if self._wal_unchanged(db, data, size):
                    self._wal_token = _token(db.wal)
                    return self._start_page1(db)
                self._wal_scan = WalScan(db.wal_file, db.pager.layout.page_size, db.wal)
                self._phase = _P_WAL_SCAN
                return None
            case _Phase.WAL_SCAN:
                db = self._db()
                scan = self._wal_scan
                assert scan is not None
                pending = scan.step()
                if pending is not None:
                    return pending
                self._wal_scan = None
                db._apply_wal(scan.snapshot)
                self._wal_token = _token(scan.snapshot)
                return self._start_page1(db)
            case _Phase.PAGE1:
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
                if raw != db._raw_page1_header or db.header is None:
                    header = parse_header(raw, path=db.path)
                    file_pages = db.file.size() // header.page_size
                    db._apply_header(header, committed or header.page_count or file_pages)
                    db._raw_page1_header = raw
                if committed:
                    db.pager.page_count = committed
                return self._after_header(db)
            case _Phase.SCHEMA:
                db = self._db()
                load = self._schema_load
                assert load is not None
                pending = load.step()
                if pending is not None:
                    return pending
                self._schema_load = None
                assert db.header is not None
                db._schema = build_schema(load.rows, db.header.schema_format)
                db._schema_cookie = db.header.schema_cookie
                db._builders.clear()
                db._plans.clear()
                db._resolved.clear()
                db._validated = not db.immutable
                self._begin_work()
                return None
            case _Phase.FINISH:
                db = self._db()
                if not db._refresh_wal_file():
                    if self._wal_token is None or self._wal_token[2] == 0:
                        self._phase = _P_DONE
                        return None
                    return self._restart(db)
                assert db.wal_file is not None
                self._phase = _P_FINISH_CHECK
                c = self._read(db.wal_file, 0, WAL_HEADER_SIZE)
                return None if c.finished() else c
            case _Phase.RECHECK:
                db = self._db()
                if not db._refresh_wal_file():
                    return self._restart(db)  # the log went away: read again
                assert db.wal_file is not None
                self._phase = _Phase.RECHECK_WAIT
                c = self._read(db.wal_file, 0, WAL_HEADER_SIZE)
                return None if c.finished() else c
            case _Phase.RECHECK_WAIT:
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
            case _Phase.FINISH_CHECK:
                db = self._db()
                data = self._read_result()
                self._completion = None
                assert db.wal_file is not None
                if _token_of(data, db.wal_file.size()) == self._wal_token:
                    self._phase = _P_DONE
                    return None
                return self._restart(db)
            case _:
                raise InternalError(f"{type(self).__name__} in phase {phase.name}")

    def _db(self) -> Database:
        db = self.db
        assert db is not None
        db._check_open()
        return db

    def _begin_work(self) -> None:
        self._completion = None
        self._start()
        self._phase = _P_WORK

    def _after_header(self, db: Database) -> Completion | None:
        assert db.header is not None
        if db._schema is None or db._schema_cookie != db.header.schema_cookie:
            self._schema_load = _SchemaLoad(db)
            self._phase = _P_SCHEMA
            return None
        db._validated = not db.immutable
        self._begin_work()
        return None

    def _start_wal_header(self, db: Database) -> Completion | None:
        if not db._refresh_wal_file():
            if db.wal is not None:
                db._drop_wal_file()
            self._wal_token = (0, 0, 0)
            return self._start_page1(db)
        assert db.wal_file is not None
        c = self._read(db.wal_file, 0, WAL_HEADER_SIZE)
        return None if c.finished() else c

    def _wal_unchanged(self, db: Database, data: bytes, size: int) -> bool:
        wal = db.wal
        if wal is None:
            return False
        return _token_of(data, size) == _token(wal)

    def _start_page1(self, db: Database) -> Completion | None:
        self._completion = None
        if db.pager.page_count == 0 and not (db.wal is not None and db.wal.max_frame):
            return self._after_header(db)
        if db.wal is not None and db.wal.max_frame:
            db.pager.page_count = max(db.pager.page_count, db.wal.db_size)
        self._loader = PageLoader(db.pager)
        self._phase = _P_PAGE1
        return None

    def _check_journal(self, db: Database) -> bool:
        """Start checking for a hot journal; True if its first bytes are being read."""
        if db._lock is None or not os.access(db.path + "-journal", os.F_OK):
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

    def _restart(self, db: Database) -> Completion | None:
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            raise DatabaseBusyError(
                f"the WAL of {db.path!r} changed during each of {MAX_RESTARTS} attempts to read"
            )
        self._completion = None
        self._phase = _P_WAL_HEADER
        return self._start_wal_header(db)


def _wal_mode(db: Database) -> bool:
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


def _reserved_elsewhere(db: Database) -> bool:
    return db._lock is not None and db._lock.reserved_elsewhere()


class OpenDatabase(_ReadOp[Database]):
    """The operation `Database.open` returns; `Done(Database)`."""

    __slots__ = ("_args",)

    def __init__(
        self, io: IOBackend, path: str, immutable: bool, cache_pages: int, readahead: int
    ) -> None:
        super().__init__(None)
        self._args = (io, path, immutable, cache_pages, readahead)

    def _prepare(self) -> Database:
        if self.db is None:
            io, path, immutable, cache_pages, readahead = self._args
            file = io.open_file(path, OpenFlags.READ_ONLY)
            self.db = Database(
                io,
                path,
                file,
                immutable=immutable,
                cache_pages=cache_pages,
                readahead=readahead,
            )
        return self.db

    def _value(self) -> Database:
        assert self.db is not None
        return self.db

    def _fail(self) -> None:
        super()._fail()
        if self.db is not None:
            self.db.close()


class ReadSchema(_ReadOp[Schema]):
    """The operation `Database.read_schema` returns; `Done(Schema)`."""

    __slots__ = ()

    def _value(self) -> Schema:
        assert self.db is not None
        return self.db.schema


class _GetState(enum.Enum):
    SEEK = "seek"
    RECORD = "record"
    DONE = "done"


_G_SEEK = _GetState.SEEK
_G_RECORD = _GetState.RECORD
_G_DONE = _GetState.DONE


class GetRow(_ReadOp["Row | None"]):
    """The operation `Database.get` returns; `Done(row or None)`."""

    __slots__ = (
        "_builder",
        "_cursor",
        "_key",
        "_probe",
        "_result",
        "_root",
        "_rowid",
        "_state",
        "table",
    )

    def __init__(self, db: Database, table: str, key: object) -> None:
        super().__init__(db)
        self.table = table
        self._key = key
        self._rowid = 0
        self._root = 0
        self._probe: tuple[object, ...] = ()
        self._cursor: BTreeCursor | None = None
        self._builder: RowBuilder | None = None
        self._state = _G_SEEK
        self._result: Row | None = None

    def step(self) -> Done[Row | None] | IO:
        """Advance the operation (see `_ReadOp.step`); a hot-cache lookup on an immutable
        database finishes in the first step without the transaction machinery."""
        if self._phase is _P_BEGIN and self._waiting is None:
            db = self.db
            if db is not None and db.immutable and not db._closed:
                row = db._row_from_cache(self.table, self._key)
                if row is not _MISS:
                    self._phase = _P_DONE
                    return Done(row)
        return _ReadOp.step(self)

    def _start(self) -> None:
        db = self._db()
        table = db.schema.table(self.table)
        builder = db._builder(table)
        self._builder = builder
        self._state = _G_SEEK
        self._result = None
        if table.without_rowid:
            plan = db._plan(table, None)
            values = _key_values(self._key, table)
            self._probe = plan.probe(values)
            self._cursor = BTreeCursor(
                db.pager, table.root_page, table=False, codec=db.codec, key_plan=plan
            )
        else:
            self._rowid = _rowid_arg(self._key)
            self._cursor = None
            self._root = table.root_page

    def _work(self) -> Completion | None:
        builder = self._builder
        assert builder is not None
        cursor = self._cursor
        if cursor is None:
            db = self._db()
            row = db._table_row_from_cache(self._root, self._rowid, builder)
            if row is not _MISS:
                self._result = row
                self._state = _G_DONE
                return None
            cursor = self._cursor = BTreeCursor(db.pager, self._root, table=True, codec=db.codec)
        if self._state is _G_SEEK:
            if builder.without_rowid:
                pending = cursor.seek_key(self._probe)
                if pending is not None:
                    return pending
                self._state = _G_DONE
                if cursor.valid and cursor.sort_key()[: len(self._probe)] == self._probe:
                    self._result = builder.build_without_rowid(cursor.record_values())
                return None
            pending = cursor.seek_rowid(self._rowid)
            if pending is not None:
                return pending
            if not cursor.valid or cursor.rowid() != self._rowid:
                self._state = _G_DONE
                return None
            self._state = _G_RECORD
        if self._state is _G_RECORD:
            pending = cursor.load_record()
            if pending is not None:
                return pending
            self._result = builder.build(self._rowid, cursor.record_values())
            self._state = _G_DONE
        return None

    def _value(self) -> Row | None:
        return self._result


def _rowid_arg(key: object) -> int:
    if type(key) is int:
        return key
    if isinstance(key, tuple) and len(key) == 1:
        key = key[0]
    if isinstance(key, bool) or not isinstance(key, int):
        raise SchemaError(f"a rowid is an integer, got {key!r}")
    return key


def _key_values(key: object, table: Table) -> list[Value]:
    values = list(key) if isinstance(key, (tuple, list)) else [key]
    if len(values) != len(table.primary_key):
        raise SchemaError(
            f"table {table.name} has a {len(table.primary_key)}-column primary key, "
            f"got {len(values)} value(s)"
        )
    return [apply_affinity(v, c.affinity) for v, c in zip(values, table.primary_key, strict=True)]


class ScanRows(_ReadOp[list[Row]]):
    """The operation `Database.scan` returns; `Done(list of rows)`."""

    __slots__ = (
        "_after",
        "_builder",
        "_cursor",
        "_last",
        "_limit",
        "_probe",
        "_rows",
        "_state",
        "table",
    )

    def __init__(self, db: Database, table: str, after: object, limit: int | None) -> None:
        super().__init__(db)
        self.table = table
        self._after = after
        self._limit = limit
        self._rows: list[Row] = []
        self._cursor: BTreeCursor | None = None
        self._builder: RowBuilder | None = None
        self._state = _SC_SEEK
        self._probe: tuple[object, ...] | None = None
        self._last: object = None

    def _start(self) -> None:
        db = self._db()
        table = db.schema.table(self.table)
        self._builder = db._builder(table)
        self._rows = []
        self._state = _SC_SEEK
        self._last = None
        if table.without_rowid:
            plan = db._plan(table, None)
            self._probe = (
                None if self._after is None else plan.probe(_key_values(self._after, table))
            )
            self._cursor = BTreeCursor(
                db.pager, table.root_page, table=False, codec=db.codec, key_plan=plan, scan=True
            )
        else:
            if self._after is not None:
                self._probe = (_rowid_arg(self._after),)
            self._cursor = BTreeCursor(
                db.pager, table.root_page, table=True, codec=db.codec, scan=True
            )

    def _work(self) -> Completion | None:
        cursor = self._cursor
        builder = self._builder
        assert cursor is not None and builder is not None
        limit = self._limit
        rows = self._rows
        first = len(rows)
        while True:
            state = self._state
            if state is _SC_ROW:
                if not cursor.valid or (limit is not None and len(rows) >= limit):
                    self._state = _SC_DONE
                    return None
                budget = ROWS_PER_STEP - (len(rows) - first)
                if budget <= 0:
                    return Completion.new_yield()  # let the event loop run; resume here
                page = cursor.pages[-1]
                if page.kind & 8:
                    # On a leaf: take every row up to the first overflowing one in one loop.
                    # It is synchronous, so the cursor moves within the leaf as it goes.
                    start = cursor.idxs[-1]
                    stop = self._take_leaf(cursor, page, start, budget)
                    if stop > start:
                        if limit is not None and len(rows) >= limit:
                            self._state = _SC_DONE
                            return None
                        if stop < page.cell_count:
                            cursor.set_cell(stop)  # an overflowing row: the general path
                            continue
                        cursor.set_cell(stop - 1)
                        self._state = _SC_NEXT
                        continue
                if builder.without_rowid:
                    key = cursor.sort_key()
                    if self._last is not None and not self._last < key:  # type: ignore[operator]
                        raise _out_of_order(cursor, "primary keys")
                    self._last = key
                    rows.append(builder.build_without_rowid(cursor.record_values()))
                else:
                    pending = cursor.load_record()
                    if pending is not None:
                        return pending
                    rowid = cursor.rowid()
                    last = self._last
                    if last is not None and rowid <= last:  # type: ignore[operator]
                        raise _out_of_order(cursor, "rowids")
                    self._last = rowid
                    rows.append(builder.build(rowid, cursor.record_values()))
                self._state = _SC_NEXT
            elif state is _SC_NEXT:
                pending = cursor.next()
                if pending is not None:
                    return pending
                self._state = _SC_ROW
            elif state is _SC_SEEK:
                probe = self._probe
                if probe is None:
                    pending = cursor.rewind()
                elif builder.without_rowid:
                    pending = cursor.seek_key(probe, gt=True)
                else:
                    pending = cursor.seek_rowid(probe[0], gt=True)  # type: ignore[arg-type]
                if pending is not None:
                    return pending
                self._state = _SC_ROW
            else:
                return None

    def _take_leaf(self, cursor: BTreeCursor, page: Page, start: int, budget: int) -> int:
        """Append the rows of `page` from cell `start` on, up to the limit, `budget` rows,
        or the first row whose payload overflows; return the index of the first cell not
        taken."""
        builder = self._builder
        assert builder is not None
        rows = self._rows
        room = budget if self._limit is None else min(budget, self._limit - len(rows))
        end = min(page.cell_count, start + max(room, 0))
        if builder.without_rowid:
            records = page.records
            if records is None:
                return start
            keys = cursor.page_keys(page)
            last = self._last
            build_pk = builder.build_without_rowid
            for i in range(start, end):
                key = keys[i]
                if last is not None and not last < key:  # type: ignore[operator]
                    raise _out_of_order(cursor, "primary keys")
                last = key
                rows.append(build_pk(records[i]))
            self._last = last
            return end
        rowids = page.rowids
        sizes = page.payload_sizes
        starts = page.payload_starts
        assert rowids is not None and sizes is not None and starts is not None
        max_local = cursor.layout.max_local_table
        data = page.data
        codec = cursor.codec
        build = builder.build
        last_rowid = self._last
        i = start
        try:
            while i < end:
                size = sizes[i]
                if size > max_local:
                    break
                rowid = rowids[i]
                if last_rowid is not None and rowid <= last_rowid:  # type: ignore[operator]
                    raise _out_of_order(cursor, "rowids")
                last_rowid = rowid
                offset = starts[i]
                rows.append(build(rowid, decode_record(data, offset, offset + size, codec)))
                i += 1
        except CorruptDatabaseError as exc:
            if exc.page is not None:
                raise
            raise CorruptDatabaseError(
                f"row {rowids[i]}: {exc.detail}", page=page.number, path=cursor.pager.path
            ) from None
        finally:
            self._last = last_rowid
        return i

    def _value(self) -> list[Row]:
        return self._rows


def _out_of_order(cursor: BTreeCursor, what: str) -> CorruptDatabaseError:
    return CorruptDatabaseError(
        f"{what} out of order in the B-tree rooted at page {cursor.root}",
        page=cursor.pages[-1].number if cursor.pages else None,
        path=cursor.pager.path,
    )


class _CountState(enum.Enum):
    START = "start"
    WALK = "walk"
    NEXT = "next"
    DONE = "done"


_C_START = _CountState.START
_C_WALK = _CountState.WALK
_C_NEXT = _CountState.NEXT
_C_DONE = _CountState.DONE


class CountRows(_ReadOp[int]):
    """The operation `Database.count` returns; `Done(number of rows)`."""

    __slots__ = ("_count", "_cursor", "_state", "table")

    def __init__(self, db: Database, table: str) -> None:
        super().__init__(db)
        self.table = table
        self._count = 0
        self._cursor: BTreeCursor | None = None
        self._state = _C_START

    def _start(self) -> None:
        db = self._db()
        table = db.schema.table(self.table)
        if table.virtual:
            raise UnsupportedError(f"{table.name} is a virtual table; it has no rows on disk")
        self._count = 0
        self._state = _C_START
        self._cursor = BTreeCursor(
            db.pager,
            table.root_page,
            table=not table.without_rowid,
            codec=db.codec,
            scan=True,
            records=False,
        )

    def _work(self) -> Completion | None:
        cursor = self._cursor
        assert cursor is not None
        walked = 0
        while True:
            state = self._state
            if state is _C_WALK:
                if not cursor.valid:
                    self._state = _C_DONE
                    return None
                if walked >= PAGES_PER_STEP:
                    return Completion.new_yield()  # let the event loop run; resume here
                walked += 1
                page = cursor.pages[-1]
                if page.kind & 8:  # a leaf: count all its cells, then leave it
                    self._count += page.cell_count
                    cursor.skip_leaf()
                else:  # a divider of an index-organised (WITHOUT ROWID) tree
                    self._count += 1
                self._state = _C_NEXT
            elif state is _C_NEXT:
                pending = cursor.next()
                if pending is not None:
                    return pending
                self._state = _C_WALK
            elif state is _C_START:
                pending = cursor.rewind()
                if pending is not None:
                    return pending
                self._state = _C_WALK
            else:
                return None

    def _value(self) -> int:
        return self._count


class _IndexState(enum.Enum):
    SEEK = "seek"
    ENTRY = "entry"
    FETCH = "fetch"
    RECORD = "record"
    NEXT = "next"
    DONE = "done"


_IX_SEEK = _IndexState.SEEK
_IX_ENTRY = _IndexState.ENTRY
_IX_FETCH = _IndexState.FETCH
_IX_RECORD = _IndexState.RECORD
_IX_NEXT = _IndexState.NEXT
_IX_DONE = _IndexState.DONE


class IndexScan(_ReadOp[list[Row]]):
    """The operation `Database.index_scan` returns; `Done(list of rows)`."""

    __slots__ = (
        "_builder",
        "_cursor",
        "_equal",
        "_fetch_probe",
        "_fetch_rowid",
        "_hi",
        "_index",
        "_limit",
        "_lower",
        "_pk_plan",
        "_pk_positions",
        "_plan",
        "_prefix",
        "_rows",
        "_seek",
        "_state",
        "_table",
        "_table_cursor",
        "_upper",
        "index",
    )

    def __init__(
        self,
        db: Database,
        index: str,
        equal: tuple[object, ...],
        lower: Bound | None,
        upper: Bound | None,
        limit: int | None,
    ) -> None:
        super().__init__(db)
        self.index = index
        self._equal = equal
        self._lower = lower
        self._upper = upper
        self._limit = limit
        self._rows: list[Row] = []
        self._state = _IX_SEEK
        self._cursor: BTreeCursor | None = None
        self._table_cursor: BTreeCursor | None = None
        self._builder: RowBuilder | None = None
        self._index: Index | None = None
        self._table: Table | None = None
        self._prefix: tuple[object, ...] = ()
        self._seek: tuple[tuple[object, ...], bool] | None = None
        self._hi: tuple[tuple[object, ...], bool] | None = None
        self._pk_plan: KeyPlan | None = None
        self._plan: KeyPlan | None = None
        self._pk_positions: list[int] = []
        self._fetch_rowid = 0
        self._fetch_probe: tuple[object, ...] = ()

    def step(self) -> Done[list[Row]] | IO:
        """Advance the operation (see `_ReadOp.step`); an equality lookup answered from the
        cache on an immutable database finishes in the first step."""
        if (
            self._phase is _P_BEGIN
            and self._waiting is None
            and self._lower is None
            and self._upper is None
            and self._limit is None
        ):
            db = self.db
            if db is not None and db.immutable and not db._closed:
                rows = db._index_rows_from_cache(self.index, self._equal)
                if rows is not _MISS:
                    self._phase = _P_DONE
                    return Done(rows)
        return _ReadOp.step(self)

    def _start(self) -> None:
        db = self._db()
        schema = db.schema
        index = schema.index(self.index)
        table = schema.table(index.table)
        self._index = index
        self._table = table
        self._builder = db._builder(table)
        plan = db._plan(table, index)
        self._rows = []
        self._state = _IX_SEEK
        columns = index.columns
        equal = self._equal
        ranged = self._lower is not None or self._upper is not None
        if len(equal) + (1 if ranged else 0) > len(columns):
            raise SchemaError(
                f"index {index.name} has {len(columns)} column(s); got {len(equal)} equality "
                f"value(s){' and a range' if ranged else ''}"
            )
        values = [apply_affinity(v, c.affinity) for v, c in zip(equal, columns, strict=False)]
        self._plan = plan
        self._cursor = self._table_cursor = None  # made when the cache cannot answer
        if table.without_rowid:
            self._pk_plan = db._plan(table, None)
            self._pk_positions = pk_positions(table, index)
        if any(v is None for v in values):
            self._state = _IX_DONE  # `= NULL` matches nothing
            return
        prefix = plan.probe(values)
        self._prefix = prefix
        self._hi = None
        if not ranged:
            self._seek = (prefix, False)
            return
        column = columns[len(equal)]
        key = field_key(column.collation, db.codec, column.descending)
        lower = self._lower
        upper = self._upper
        lo_value = None if lower is None else apply_affinity(lower.value, column.affinity)
        hi_value = None if upper is None else apply_affinity(upper.value, column.affinity)
        if (lower is not None and lo_value is None) or (upper is not None and hi_value is None):
            self._state = _IX_DONE  # a comparison with NULL is never true
            return
        # Work in key order: for a DESC column the value range is walked backwards.
        lo: tuple[tuple[object, ...], bool] | None
        hi: tuple[tuple[object, ...], bool] | None
        if column.descending:
            lo = None if upper is None else (key(hi_value), upper.inclusive)
            hi = (key(lo_value), lower.inclusive) if lower is not None else (key(None), False)
        else:
            lo = (key(lo_value), lower.inclusive) if lower is not None else (key(None), False)
            hi = None if upper is None else (key(hi_value), upper.inclusive)
        self._seek = (prefix, False) if lo is None else (prefix + lo[0], not lo[1])
        self._hi = hi

    def _make_cursors(self) -> tuple[BTreeCursor, BTreeCursor]:
        db = self._db()
        index, table = self._index, self._table
        assert index is not None and table is not None and self._plan is not None
        cursor = BTreeCursor(
            db.pager, index.root_page, table=False, codec=db.codec, key_plan=self._plan, scan=True
        )
        if table.without_rowid:
            table_cursor = BTreeCursor(
                db.pager, table.root_page, table=False, codec=db.codec, key_plan=self._pk_plan
            )
        else:
            table_cursor = BTreeCursor(db.pager, table.root_page, table=True, codec=db.codec)
        self._cursor, self._table_cursor = cursor, table_cursor
        return cursor, table_cursor

    def _work(self) -> Completion | None:
        if self._state is _IX_DONE:
            return None
        builder = self._builder
        assert builder is not None
        if self._cursor is None or self._table_cursor is None:
            if self._lower is None and self._upper is None and self._limit is None:
                cached = self._db()._index_rows_from_cache(self.index, self._equal)
                if cached is not _MISS:
                    self._rows = cached
                    self._state = _IX_DONE
                    return None
            cursor, table_cursor = self._make_cursors()
        else:
            cursor, table_cursor = self._cursor, self._table_cursor
        rows = self._rows
        limit = self._limit
        first = len(rows)
        while True:
            state = self._state
            if state is _IX_SEEK:
                assert self._seek is not None
                probe, gt = self._seek
                pending = cursor.seek_key(probe, gt=gt)
                if pending is not None:
                    return pending
                self._state = _IX_ENTRY
            elif state is _IX_ENTRY:
                if not cursor.valid or (limit is not None and len(rows) >= limit):
                    self._state = _IX_DONE
                    return None
                key = cursor.sort_key()
                prefix = self._prefix
                n = len(prefix)
                if key[:n] != prefix:
                    self._state = _IX_DONE
                    return None
                hi = self._hi
                if hi is not None:
                    bound = hi[0]
                    field = key[n : n + len(bound)]
                    if field > bound or (not hi[1] and field == bound):
                        self._state = _IX_DONE
                        return None
                record = cursor.record_values()
                if builder.without_rowid:
                    try:
                        pk = [record[p] for p in self._pk_positions]
                    except IndexError:
                        raise _bad_entry(cursor, "is shorter than the primary key") from None
                    assert self._pk_plan is not None
                    self._fetch_probe = self._pk_plan.probe(pk)
                else:
                    last = record[-1] if record else None
                    if type(last) is not int:
                        raise _bad_entry(cursor, f"ends in {last!r}, not a rowid")
                    self._fetch_rowid = last
                self._state = _IX_FETCH
            elif state is _IX_FETCH:
                if builder.without_rowid:
                    probe = self._fetch_probe
                    pending = table_cursor.seek_key(probe)
                    if pending is not None:
                        return pending
                    if not table_cursor.valid or table_cursor.sort_key()[: len(probe)] != probe:
                        raise _missing_row(cursor, probe)
                    rows.append(builder.build_without_rowid(table_cursor.record_values()))
                    self._state = _IX_NEXT
                else:
                    rowid = self._fetch_rowid
                    pending = table_cursor.seek_rowid(rowid)
                    if pending is not None:
                        return pending
                    if not table_cursor.valid or table_cursor.rowid() != rowid:
                        raise _missing_row(cursor, rowid)
                    self._state = _IX_RECORD
            elif state is _IX_RECORD:
                pending = table_cursor.load_record()
                if pending is not None:
                    return pending
                rows.append(builder.build(self._fetch_rowid, table_cursor.record_values()))
                self._state = _IX_NEXT
            elif state is _IX_NEXT:
                if len(rows) - first >= ROWS_PER_STEP:
                    return Completion.new_yield()  # let the event loop run; resume here
                pending = cursor.next()
                if pending is not None:
                    return pending
                self._state = _IX_ENTRY
            else:
                return None

    def _value(self) -> list[Row]:
        return self._rows


def _bad_entry(cursor: BTreeCursor, what: str) -> CorruptDatabaseError:
    return CorruptDatabaseError(
        f"an entry of the index rooted at page {cursor.root} {what}",
        page=cursor.pages[-1].number if cursor.pages else None,
        path=cursor.pager.path,
    )


def _missing_row(cursor: BTreeCursor, key: object) -> CorruptDatabaseError:
    return CorruptDatabaseError(
        f"an entry of the index rooted at page {cursor.root} points at a row ({key!r}) "
        "that is not in the table",
        page=cursor.pages[-1].number if cursor.pages else None,
        path=cursor.pager.path,
    )
