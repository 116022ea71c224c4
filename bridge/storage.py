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

Rows as JSON, NDJSON and CSV (used by the command-line tool and the example service):
- A cell is what sqlite3 returns: int, float, str, bytes or None. JSON has no bytes and no
  infinities, so a blob becomes `{"$base64": true, "encoded": "..."}` (the marker
  Datasette uses) and a non-finite float becomes `{"$float": "Infinity"}` (or
  `"-Infinity"`, `"NaN"`). Everything else is plain JSON. `decode_cell` undoes both.
- The columns a row shows (`TableShape`): a table's declared columns; a rowid table with
  no INTEGER PRIMARY KEY also shows its rowid first, as `rowid` (`_rowid_` if a column
  already has that name). The storage engine returns `(rowid, *columns)` for rowid tables,
  with the INTEGER PRIMARY KEY column already holding the rowid.
- Bodies are encoded with the standard `json` module in one call; non-finite floats are
  rare, so the fast path refuses them (`allow_nan=False`) and only then is the payload
  rebuilt cell by cell.
- CSV: a header line, then one line per row; NULL is an empty field, a blob is its base64
  text, a float is Python's shortest round-tripping `repr` (infinities as `inf`/`-inf`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from bridge._drive import drive
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


# -- rows as JSON, NDJSON and CSV --------------------------------------------------

_b64encode = base64.b64encode


def encode_cell(value: object) -> object:
    """A cell as a JSON-ready value (blobs and non-finite floats get their markers)."""
    kind = type(value)
    if kind is bytes:
        return {"$base64": True, "encoded": _b64encode(value).decode("ascii")}  # type: ignore[arg-type]
    if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        if math.isnan(value):  # type: ignore[arg-type]
            return {"$float": "NaN"}
        return {"$float": "Infinity" if value > 0 else "-Infinity"}  # type: ignore[operator]
    return value


def encode_row(row: Sequence[object]) -> list[object]:
    """Every cell of `row` through `encode_cell`."""
    return [encode_cell(v) for v in row]


def decode_cell(value: object) -> object:
    """The inverse of `encode_cell`. Raises `ValueError` for a malformed marker."""
    if isinstance(value, dict):
        if value.get("$base64") is True and isinstance(value.get("encoded"), str):
            return base64.b64decode(value["encoded"], validate=True)
        special = value.get("$float")
        if special in ("Infinity", "-Infinity", "NaN"):
            return float(special.replace("Infinity", "inf"))
        raise ValueError(f"not an encoded cell: {value!r}")
    return value


def _default(value: object) -> object:
    if type(value) is bytes:
        return {"$base64": True, "encoded": _b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _deep_encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_encode(v) for v in value]
    return encode_cell(value)


def dumps(payload: object) -> bytes:
    """`payload` as compact JSON bytes, blobs and non-finite floats encoded."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:  # a non-finite float somewhere: take the slow path
        text = json.dumps(_deep_encode(payload), separators=(",", ":"), allow_nan=False)
    return text.encode()


class TableShape:
    """The columns a table's rows show and how to cut a stored row down to them."""

    __slots__ = ("columns", "cut", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        names = list(table.column_names)
        self.cut: Callable[[Row], Sequence[object]]
        if table.without_rowid or table.rowid_alias is not None:
            # WITHOUT ROWID rows are the columns; an alias column already holds the rowid.
            self.cut = _identity if table.without_rowid else _drop_first
        else:
            lowered = {n.lower() for n in names}
            names.insert(0, "_rowid_" if "rowid" in lowered else "rowid")
            self.cut = _identity
        self.columns = names

    def rows(self, rows: Sequence[Row]) -> list[Sequence[object]]:
        """The shown part of each row."""
        cut = self.cut
        if cut is _identity:
            return list(rows)
        return [cut(r) for r in rows]

    def ndjson(self, rows: Sequence[Row]) -> bytes:
        """One JSON object per row, one per line."""
        columns = self.columns
        cut = self.cut
        return b"".join(dumps(dict(zip(columns, cut(r), strict=True))) + b"\n" for r in rows)

    def csv_header(self) -> bytes:
        """The CSV header line."""
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(self.columns)
        return out.getvalue().encode()

    def csv(self, rows: Sequence[Row]) -> bytes:
        """The CSV lines of `rows`."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        cut = self.cut
        writer.writerows([_csv_cell(v) for v in cut(r)] for r in rows)
        return out.getvalue().encode()


def _identity(row: Row) -> Sequence[object]:
    return row


def _drop_first(row: Row) -> Sequence[object]:
    return row[1:]


def _csv_cell(value: object) -> object:
    kind = type(value)
    if kind is bytes:
        return _b64encode(value).decode("ascii")  # type: ignore[arg-type]
    if kind is float:
        return repr(value)
    return "" if value is None else value
