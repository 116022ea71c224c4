"""The async face of the storage engine: `core.storage.Database` on an event loop.

Theory of operation:
- Every method is exactly one `await drive(op, io)` of the operation the `Database` method
  of the same name builds; nothing here reads a page itself. So everything `drive`
  promises holds: page-cache hits never leave the loop thread, a cancellation aborts the
  outstanding read and re-raises, and a failed read raises its `CompletionError`.
- Iterating (`pages`, `rows`) is keyset pagination: each page of rows is one `scan`
  operation that starts after the key of the last row of the page before, so no cursor or
  lock is held between pages. A consumer that stops iterating (a client that went away)
  stops the reading at the page boundary, with nothing left to clean up.
- `drives` counts the operations driven, so callers and tests can bound work by counting.
- How rows become JSON, NDJSON and CSV is `bridge.rows`; its names stay importable from
  here for code that imports them from this module (the example service does).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self, TypeVar

from bridge._drive import drive
from bridge.rows import TableShape, decode_cell, dumps, encode_cell, encode_row
from core.driver import Operation
from core.io.backend import IOBackend
from core.storage import (
    DEFAULT_CACHE_PAGES,
    DEFAULT_READAHEAD,
    Bound,
    Database,
    Row,
    Schema,
    Table,
)
from core.storage.check import DEFAULT_MAX_PROBLEMS, Problem, check_database

__all__ = [
    "DEFAULT_PAGE_ROWS",
    "AsyncDatabase",
    "TableShape",
    "decode_cell",
    "dumps",
    "encode_cell",
    "encode_row",
    "row_key",
]

T = TypeVar("T")

DEFAULT_PAGE_ROWS = 256
"""Rows per `scan` operation when iterating a table."""


def row_key(table: Table, row: Row) -> object:
    """The key to pass as `after` to continue a scan after `row`: the rowid for a rowid
    table, the tuple of primary-key values for a WITHOUT ROWID table."""
    if not table.without_rowid:
        return row[0]
    return tuple(row[c.column] for c in table.primary_key if c.column is not None)


class AsyncDatabase:
    """An open SQLite database read through `drive` on the running event loop.

    Build with `await AsyncDatabase.open(io, path)`; close with `close()` or `async with`.
    Every method raises what the operation of the same name on `core.storage.Database`
    raises (`SchemaError` for an unknown table or index, `CorruptDatabaseError` for a
    malformed page, `CompletionError` for a failed read, ...), plus the loop's
    cancellation and `drive`'s own errors.
    """

    __slots__ = ("db", "drives", "io")

    def __init__(self, db: Database, io: IOBackend) -> None:
        """Wrap a `Database` already open on `io` (use `AsyncDatabase.open`)."""
        self.db = db
        self.io = io
        self.drives = 0

    @classmethod
    async def open(
        cls,
        io: IOBackend,
        path: str | os.PathLike[str],
        *,
        immutable: bool = False,
        cache_pages: int = DEFAULT_CACHE_PAGES,
        readahead: int = DEFAULT_READAHEAD,
    ) -> AsyncDatabase:
        """Open `path` on `io` (an `AsyncFileIO`, usually) and read its schema.

        Raises `CompletionError` if the file cannot be opened or read,
        `CorruptDatabaseError` if it is not a valid database, `DatabaseBusyError` if a
        writer holds its lock, `HotJournalError` for a crashed writer's journal, and
        `ValueError` for a bad `cache_pages` or `readahead`.
        """
        db = await drive(
            Database.open(
                io, path, immutable=immutable, cache_pages=cache_pages, readahead=readahead
            ),
            io,
        )
        return cls(db, io)

    # -- what the last operation saw ------------------------------------------------

    @property
    def schema(self) -> Schema:
        """The schema as of the last operation."""
        return self.db.schema

    @property
    def path(self) -> str:
        """The database file's path."""
        return self.db.path

    @property
    def immutable(self) -> bool:
        """Whether it was opened immutable (no locks, nothing re-read)."""
        return self.db.immutable

    @property
    def page_count(self) -> int:
        """Pages in the database as of the last operation."""
        return self.db.page_count

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self.db.closed

    # -- one drive each ---------------------------------------------------------------

    async def _drive(self, op: Operation[T]) -> T:
        self.drives += 1
        return await drive(op, self.io)

    async def read_schema(self) -> Schema:
        """The current schema (re-read if the file changed)."""
        return await self._drive(self.db.read_schema())

    async def get(self, table: str, key: object) -> Row | None:
        """The row of `table` with rowid (or primary key) `key`, or None."""
        return await self._drive(self.db.get(table, key))

    async def scan(
        self, table: str, *, after: object = None, limit: int | None = None
    ) -> list[Row]:
        """Up to `limit` rows of `table` in key order, after key `after`."""
        return await self._drive(self.db.scan(table, after=after, limit=limit))

    async def index_scan(
        self,
        index: str,
        *,
        equal: Sequence[object] = (),
        lower: Bound | None = None,
        upper: Bound | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """The rows found through `index` (see `Database.index_scan`)."""
        return await self._drive(
            self.db.index_scan(index, equal=equal, lower=lower, upper=upper, limit=limit)
        )

    async def count(self, table: str) -> int:
        """The number of rows in `table`."""
        return await self._drive(self.db.count(table))

    async def check(self, *, max_problems: int = DEFAULT_MAX_PROBLEMS) -> list[Problem]:
        """Check every page of every B-tree (`core.storage.check`); the problems found,
        none when the database is sound. Raises `ValueError` for `max_problems` < 1."""
        return await self._drive(check_database(self.db, max_problems=max_problems))

    # -- iteration ----------------------------------------------------------------------

    async def pages(
        self, table: str, *, after: object = None, page_size: int = DEFAULT_PAGE_ROWS
    ) -> AsyncIterator[list[Row]]:
        """Every row of `table` after key `after`, in key order, a page (one `scan`
        operation, one `drive`) at a time. Raises `ValueError` if `page_size` < 1."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        info = self.db.schema.table(table)
        while True:
            rows = await self.scan(table, after=after, limit=page_size)
            if not rows:
                return
            yield rows
            if len(rows) < page_size:
                return
            after = row_key(info, rows[-1])

    async def rows(
        self, table: str, *, after: object = None, page_size: int = DEFAULT_PAGE_ROWS
    ) -> AsyncIterator[Row]:
        """Every row of `table` after key `after`, one at a time (read a page at a time)."""
        async for page in self.pages(table, after=after, page_size=page_size):
            for row in page:
                yield row

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the lock and close the file; idempotent."""
        self.db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<AsyncDatabase {self.path!r} {state}>"
