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

Writing (`async with adb.transaction() as tx:`, `AsyncTransaction`):
- The core allows one write transaction per `Database` and refuses a second at once
  (`DatabaseBusyError`); here tasks take turns instead. An `anyio.Lock` (FIFO, parks the
  task: no polling, no blocked loop) is held from `begin` to the end of the commit's
  write, so `begin` only ever meets another process's lock, and that
  `DatabaseBusyError` reaches the caller as it is.
- Leaving the block normally commits with `commit(durable=False)` under the lock; the
  lock goes to the next task; then the caller waits for `Database.sync_log()`, which
  shares the sync under way or the next one (group commit: the commits made while one
  sync runs share the next). `__aexit__` returns only after a sync covering this commit
  finished, so the next writer's commit does not wait for our sync and many committers
  pay for few syncs (on both engines of `AsyncFileIO`: a sync issued after its write
  completed holds back no other task's write). A failed sync raises its `CompletionError` in every
  caller waiting on it; the commit is then visible but not known to be durable.
- Leaving it with an exception, a cancellation included, rolls back (no I/O, so nothing
  to await under a cancelled scope) and lets the exception through; nothing is swallowed.
  A cancellation that lands during the commit's write ends the transaction as failed:
  `drive` aborts the write and the core's `Commit` gives its own lock back, but ours is
  released only once the write already in a worker (or the ring) came back, at most the
  backend's `settle_timeout` (`_release_when_settled`), so the next writer never races
  a late frame. The frames may or may not be in the log, as with SQLite; the next
  transaction reads the log as it is.
- A cancellation during the wait for the sync leaves the commit in place (it is visible
  already) and is re-raised; it aborts only this caller's wait, never the shared sync.
- Reads inside the block (`tx.get`, `tx.scan`, `tx.count`) see the transaction's own
  writes; reads through the `AsyncDatabase`, from any task, see the last commit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import NamedTuple, Self, TypeVar

import anyio
import sniffio

from bridge._asyncio_wake import Resolver
from bridge._drive import drive
from bridge._drive_common import DEFAULT_SETTLE_TIMEOUT, when_settled_of
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
    SchemaLimits,
    StorageError,
    Table,
    TransactionState,
    WriteTransaction,
)
from core.storage.check import DEFAULT_MAX_PROBLEMS, Problem, check_database

__all__ = [
    "DEFAULT_PAGE_ROWS",
    "AsyncDatabase",
    "AsyncTransaction",
    "IndexPage",
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


class IndexPage(NamedTuple):
    """A page of `AsyncDatabase.index_page`."""

    rows: list[Row]
    next_after: tuple[object, ...] | None
    """The index entry to pass as `after` for the next page; None on the last page."""


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
    cancellation and `drive`'s own errors. Opened with `writable=True`, it writes through
    `transaction()` (see the module docstring).
    """

    __slots__ = ("_write_lock", "commits", "db", "drives", "io")

    def __init__(self, db: Database, io: IOBackend) -> None:
        """Wrap a `Database` already open on `io` (use `AsyncDatabase.open`)."""
        self.db = db
        self.io = io
        self.drives = 0
        self.commits = 0
        """Transactions committed through `transaction()`."""
        # Made outside a loop it binds to the first one that uses it (asyncio or trio).
        self._write_lock = anyio.Lock(fast_acquire=True)

    @classmethod
    async def open(
        cls,
        io: IOBackend,
        path: str | os.PathLike[str],
        *,
        immutable: bool = False,
        writable: bool = False,
        page_size: int = 4096,
        cache_pages: int = DEFAULT_CACHE_PAGES,
        readahead: int = DEFAULT_READAHEAD,
        schema_limits: SchemaLimits | None = None,
    ) -> AsyncDatabase:
        """Open `path` on `io` (an `AsyncFileIO`, usually) and read its schema.

        `writable=True` opens it for `transaction()`, creating the file if it is missing
        (a new database gets pages of `page_size` bytes); see `Database.open`.

        Raises `CompletionError` if the file cannot be opened or read,
        `CorruptDatabaseError` if it is not a valid database, `DatabaseBusyError` if a
        writer holds its lock, `HotJournalError` for a crashed writer's journal,
        `SchemaTooLargeError` for a schema over `schema_limits` (checked before it is
        parsed), and
        `ValueError` for a bad `cache_pages`, `readahead` or `page_size`, or for
        `writable` with `immutable`.
        """
        db = await drive(
            Database.open(
                io,
                path,
                immutable=immutable,
                writable=writable,
                page_size=page_size,
                cache_pages=cache_pages,
                readahead=readahead,
                schema_limits=schema_limits,
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

    @property
    def writable(self) -> bool:
        """Whether it was opened with `writable=True`."""
        return self.db.writable

    @property
    def log_syncs(self) -> int:
        """Syncs of the WAL started so far (`Database.log_syncs`); with group commit,
        fewer than `commits` when transactions commit concurrently."""
        return self.db.log_syncs

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

    async def index_page(
        self,
        index: str,
        *,
        equal: Sequence[object] = (),
        lower: Bound | None = None,
        upper: Bound | None = None,
        limit: int,
        after: Sequence[object] | None = None,
    ) -> IndexPage:
        """Up to `limit` rows found through `index` after the index entry `after` (the
        `last_entry` of the page before; None for the first page), with what continues
        them: one seek, however deep the page (see `Database.index_scan`)."""
        op = self.db.index_scan(
            index, equal=equal, lower=lower, upper=upper, limit=limit, after=after
        )
        rows = await self._drive(op)
        return IndexPage(rows, op.last_entry if op.more else None)

    async def count(self, table: str) -> int:
        """The number of rows in `table`."""
        return await self._drive(self.db.count(table))

    async def check(self, *, max_problems: int = DEFAULT_MAX_PROBLEMS) -> list[Problem]:
        """Check every page of every B-tree (`core.storage.check`); the problems found,
        none when the database is sound. Raises `ValueError` for `max_problems` < 1."""
        return await self._drive(check_database(self.db, max_problems=max_problems))

    # -- writing ----------------------------------------------------------------------

    def transaction(self) -> AsyncTransaction:
        """A write transaction, to enter with `async with`: it waits its turn behind the
        other tasks' transactions, commits when the block ends normally (returning once
        the commit is durable) and rolls back on an exception or a cancellation.

        Entering raises what `Database.begin()` raises: `DatabaseBusyError` when another
        connection or process holds the lock, `StorageError` if the database was opened
        read-only, `UnsupportedError` for a database this engine does not write.
        """
        return AsyncTransaction(self)

    async def checkpoint(self) -> int:
        """Copy the WAL's committed pages into the database file and empty the log (see
        `Database.checkpoint`), in turn with the transactions; the pages copied."""
        lock = self._write_lock
        await lock.acquire()
        try:
            copied = await self._drive(self.db.checkpoint())
        except BaseException as error:
            await _release_when_settled(lock, self.io, error)
            raise
        lock.release()
        return copied

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


class AsyncTransaction:
    """One write transaction of an `AsyncDatabase` (build with `adb.transaction()`), an
    async context manager; inside the block, its statements are awaitable methods.

    Each statement (and each read: `get`, `scan`, `count`, which see the transaction's
    own writes) raises what the `WriteTransaction` method of the same name raises
    (`SchemaError`, `ConstraintError` for a NOT NULL or UNIQUE violation, which keeps
    nothing of the statement, `UnsupportedError`, `StorageError` once the transaction
    ended), plus the loop's cancellation and `drive`'s own errors. Use it from one task at
    a time. Leaving the block commits or rolls back (see the module docstring); leaving
    it normally raises the commit's `CompletionError` if the write or the sync failed.
    """

    __slots__ = ("_adb", "_entered", "_tx")

    def __init__(self, adb: AsyncDatabase) -> None:
        """Use `AsyncDatabase.transaction()`."""
        self._adb = adb
        self._entered = False
        self._tx: WriteTransaction | None = None

    async def __aenter__(self) -> Self:
        if self._entered:
            raise StorageError("a transaction is entered once; ask for a new one")
        self._entered = True
        adb = self._adb
        lock = adb._write_lock
        await lock.acquire()
        try:
            self._tx = await adb._drive(adb.db.begin())
        except BaseException as error:
            await _release_when_settled(lock, adb.io, error)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        adb = self._adb
        tx = self._tx
        assert tx is not None
        lock = adb._write_lock
        if exc_type is not None:
            tx.rollback()  # no I/O: nothing to await under a cancelled scope
            lock.release()
            return
        try:
            await adb._drive(tx.commit(durable=False))
        except BaseException as error:
            tx.rollback()  # a no-op once the failed commit ended the transaction
            await _release_when_settled(lock, adb.io, error)
            raise
        durable = adb.db.sync_log()  # covers this commit: nothing ran since
        lock.release()
        adb.commits += 1
        await adb._drive(durable)

    def _open(self) -> WriteTransaction:
        tx = self._tx
        if tx is None:
            raise StorageError("enter the transaction with `async with` first")
        return tx

    @property
    def state(self) -> TransactionState:
        """Where the transaction is (`TransactionState.OPEN` inside the block)."""
        return self._open().state

    async def insert(self, table: str, values: Mapping[str, object]) -> int:
        """Insert a row; its rowid (see `WriteTransaction.insert`)."""
        return await self._adb._drive(self._open().insert(table, values))

    async def update(self, table: str, rowid: int, values: Mapping[str, object]) -> bool:
        """Change the named columns of row `rowid`; False if there is no such row."""
        return await self._adb._drive(self._open().update(table, rowid, values))

    async def delete(self, table: str, rowid: int) -> bool:
        """Delete row `rowid` and its index entries; False if there is no such row."""
        return await self._adb._drive(self._open().delete(table, rowid))

    async def get(self, table: str, rowid: int) -> Row | None:
        """The row `(rowid, *columns)` as this transaction sees it, or None (rowid tables
        only; see `WriteTransaction.get`)."""
        return await self._adb._drive(self._open().get(table, rowid))

    async def scan(
        self, table: str, *, after: int | None = None, limit: int | None = None
    ) -> list[Row]:
        """Up to `limit` rows of `table` in rowid order after rowid `after`, as this
        transaction sees them."""
        return await self._adb._drive(self._open().scan(table, after=after, limit=limit))

    async def count(self, table: str) -> int:
        """The number of rows of `table` as this transaction sees them."""
        return await self._adb._drive(self._open().count(table))

    async def execute_ddl(self, sql: str) -> Schema:
        """Run one CREATE/DROP TABLE/INDEX statement; the schema the transaction now sees
        (see `WriteTransaction.execute_ddl`)."""
        return await self._adb._drive(self._open().execute_ddl(sql))

    def __repr__(self) -> str:
        state = self._tx.state.value if self._tx is not None else "not entered"
        return f"<AsyncTransaction {self._adb.path!r} {state}>"


async def _release_when_settled(lock: anyio.Lock, io: IOBackend, error: BaseException) -> None:
    """Release the write lock after an operation that held it raised `error` (the caller
    re-raises it). After a cancellation, only once the I/O the backend has in flight came
    back (at most its `settle_timeout`), so the next writer never races a late write of
    the abandoned operation: `drive` waits for that too, but on asyncio a second
    cancellation (anyio's cancel scopes deliver one on every loop pass) ends its wait
    early, while this wait lets further cancellations pass; they change nothing, the
    cancellation is already on its way out.
    """
    try:
        if not isinstance(error, Exception | GeneratorExit):  # GeneratorExit: must not await
            await _settled(io)
    finally:
        lock.release()


async def _settled(io: IOBackend) -> None:
    when_settled = when_settled_of(io)
    if when_settled is None:
        return
    timeout = getattr(io, "settle_timeout", DEFAULT_SETTLE_TIMEOUT)
    if sniffio.current_async_library() == "trio":
        from bridge import _trio

        await _trio.wait_settled_trio(io, timeout)  # shielded
        return
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    if not when_settled(Resolver(fut)):
        return
    handle = loop.call_later(timeout, Resolver(fut))
    try:
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                pass  # see `_release_when_settled`
    finally:
        handle.cancel()
