"""The database handle: `Database` (Turso `core/lib.rs` `Database`/`Connection`, read side).

Theory of operation:
- `Database.open(io, path)` is itself an operation (`OpenDatabase`): it opens the file
  read-only, then runs a read transaction that reads and checks the header, the WAL if
  there is one, and the schema, and finishes with `Done(Database)`. Every query is an
  operation too (`get`, `scan`, `index_scan`, `count`, `read_schema`), built by a method
  and run by `block` or `bridge.drive`.
- The layers, one module each: the per-file state every operation shares (`shared.py`,
  which `Database` extends with this API), the read transaction's outline
  (`transaction.py`), and the query machines on it (`queries.py`, `index_scan.py`).
- Hot paths: a point lookup or an index equality whose pages are all cached is answered
  from the cache alone, without cursors, completions or (on an immutable database) the
  transaction outline; on any doubt the full operation runs. The tests run every query
  through both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from core.io.backend import IOBackend, OpenFlags, StrPath
from core.storage.checkpoint import CheckpointDatabase
from core.storage.commit import SyncLog
from core.storage.index_scan import Bound, IndexScan
from core.storage.journal_mode import ConvertToWal
from core.storage.limits import SchemaLimits
from core.storage.queries import CountRows, GetRow, ScanRows
from core.storage.schema import Schema
from core.storage.shared import Row, SharedState
from core.storage.transaction import ReadTransaction
from core.storage.write_transaction import Begin

__all__ = [
    "DEFAULT_CACHE_PAGES",
    "DEFAULT_READAHEAD",
    "Database",
    "OpenDatabase",
    "ReadSchema",
    "Row",
]

DEFAULT_CACHE_PAGES: Final = 2048
DEFAULT_READAHEAD: Final = 16


class Database(SharedState):
    """An open SQLite database file, read-only. Build with `Database.open(...)`.

    The attributes are a snapshot of what the last operation saw; the operations re-check
    the file (unless immutable) before they trust them.
    """

    __slots__ = ()

    # -- opening and closing --------------------------------------------------------

    @classmethod
    def open(
        cls,
        io: IOBackend,
        path: StrPath,
        *,
        immutable: bool = False,
        writable: bool = False,
        page_size: int = 4096,
        cache_pages: int = DEFAULT_CACHE_PAGES,
        readahead: int = DEFAULT_READAHEAD,
        schema_limits: SchemaLimits | None = None,
    ) -> OpenDatabase:
        """An operation that opens `path` and finishes with `Done(Database)`.

        `immutable=True` promises that nothing changes the file while it is open: no locks
        are taken and nothing is re-read. `writable=True` opens it for writing (`begin()`),
        creating the file if it is missing; a new database gets pages of `page_size`
        bytes, UTF-8 text and WAL mode. `cache_pages` bounds the page cache; `readahead`
        is how many leaf pages a scan reads ahead in one batch. `schema_limits` bounds the
        schema (checked before it is parsed, at every load): for files from strangers.

        The operation raises `CompletionError` if the file cannot be opened or read,
        `CorruptDatabaseError` for a malformed file, `DatabaseBusyError` if a writer holds
        the lock, `HotJournalError` if a crashed writer left a journal to roll back,
        `SchemaTooLargeError` for a schema over `schema_limits`.
        """
        if cache_pages < 1:
            raise ValueError(f"cache_pages must be at least 1, got {cache_pages}")
        if readahead < 0:
            raise ValueError(f"readahead must be >= 0, got {readahead}")
        if writable and immutable:
            raise ValueError("a database cannot be both writable and immutable")
        if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
            raise ValueError(f"page_size must be a power of two in 512..65536, got {page_size}")
        return OpenDatabase(
            io,
            os.fspath(path),
            immutable,
            cache_pages,
            readahead,
            writable=writable,
            page_size=page_size,
            schema_limits=schema_limits,
        )

    def close(self) -> None:
        """Release the lock and close the files; idempotent. Operations still running
        fail at their next step; an open write transaction is dropped (as a rollback)."""
        if self.closed:
            return
        self.writing = False
        self.closed = True
        if self.lock is not None and self._readers:
            self.lock.unlock()
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
        after: Sequence[object] | None = None,
    ) -> IndexScan:
        """An operation: the rows of the indexed table whose index entry has its leading
        columns equal to `equal` and, if given, the next column within `lower`/`upper`,
        in index order. `index` may also name a WITHOUT ROWID table: its primary key is
        searched, in its own B-tree.

        Values compare under the index's collations, after the column's affinity is
        applied, exactly as `WHERE a = ? AND b > ?` compares them in SQLite: a NULL in
        `equal` or as a bound matches nothing, and NULLs never fall in a range. A partial
        index only holds the rows its WHERE clause selects.

        Keyset paging: after it is done, the operation's `last_entry` is the index record
        of the last row returned and `more` says whether `limit` stopped it before another
        match; the same search with `after=` that record seeks straight past it.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return IndexScan(
            self, index, tuple(equal), lower, upper, limit, None if after is None else tuple(after)
        )

    def begin(self) -> Begin:
        """An operation: start a write transaction; `Done(WriteTransaction)`.

        The operation raises `DatabaseBusyError` at once if a write transaction is open on
        this database, another connection (ours or SQLite's) holds a lock on the file, or
        a SQLite connection has it open in WAL mode; `StorageError` if the database was
        opened read-only; `UnsupportedError` for a database in rollback-journal mode, with
        auto-vacuum, or not in UTF-8; and what every operation may raise.
        """
        return Begin(self, self.create_page_size)

    def convert_to_wal(self) -> ConvertToWal:
        """An operation: switch a rollback-journal database to WAL mode (what `PRAGMA
        journal_mode=WAL` does), so that it can be written; `Done(True)` if it converted,
        `Done(False)` if it already was in WAL mode. Raises as `begin` does."""
        return ConvertToWal(self)

    def sync_log(self) -> SyncLog:
        """An operation: sync the WAL so that every commit written so far (including those
        made with `commit(durable=False)`) is durable; `Done(None)`. Commits already
        synced cost nothing; one sync runs at a time, and callers arriving while it runs
        share it if it covers them, else share the next one (group commit). Raises the
        `CompletionError` of a failed sync it waited on."""
        return SyncLog(self)

    def checkpoint(self) -> CheckpointDatabase:
        """An operation: copy the WAL's committed pages into the database file, sync it,
        and empty the log; `Done(pages copied)`. Needs the write lock (raises as `begin`
        does)."""
        return CheckpointDatabase(self)

    def count(self, table: str) -> CountRows:
        """An operation: the number of rows in `table` (leaf pages' cell counts only; no
        record is decoded)."""
        return CountRows(self, table)


class OpenDatabase(ReadTransaction[Database]):
    """The operation `Database.open` returns; `Done(Database)`."""

    __slots__ = ("_args", "_database", "page_size", "schema_limits", "writable")

    def __init__(
        self,
        io: IOBackend,
        path: str,
        immutable: bool,
        cache_pages: int,
        readahead: int,
        *,
        writable: bool = False,
        page_size: int = 4096,
        schema_limits: SchemaLimits | None = None,
    ) -> None:
        super().__init__(None)
        self._args = (io, path, immutable, cache_pages, readahead)
        self._database: Database | None = None
        self.writable = writable
        self.page_size = page_size
        self.schema_limits = schema_limits

    def _prepare(self) -> Database:
        if self._database is None:
            io, path, immutable, cache_pages, readahead = self._args
            file = io.open_file(path, OpenFlags.CREATE if self.writable else OpenFlags.READ_ONLY)
            database = Database(
                io,
                path,
                file,
                immutable=immutable,
                cache_pages=cache_pages,
                readahead=readahead,
            )
            database.writable = self.writable
            database.schema_limits = self.schema_limits
            database.create_page_size = self.page_size
            self._database = self.db = database
        return self._database

    def _value(self) -> Database:
        assert self._database is not None
        return self._database

    def _finalize(self) -> None:
        super()._finalize()
        if self.is_failed() and self._database is not None:
            self._database.close()  # an open that failed leaves nothing open


class ReadSchema(ReadTransaction[Schema]):
    """The operation `Database.read_schema` returns; `Done(Schema)`."""

    __slots__ = ()

    def _value(self) -> Schema:
        assert self.db is not None
        return self.db.schema
