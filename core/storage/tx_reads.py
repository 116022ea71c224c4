"""Reads inside a write transaction: they see the transaction's own writes (Turso's
connection reading through its dirty pages).

Theory of operation:
- A read inside the transaction is a `Statement` whose plan stages nothing: it walks the
  transaction's pages (its own images first, then the committed ones) with the same
  B-tree functions the writes use, and returns rows shaped exactly as `Database.get` and
  `Database.scan` return them (`(rowid, *columns)`, affinity applied as on read).
- Like every statement it restarts after each page it had to read, so a scan reads
  `limit` rows at a time: page through a large table with `after=` the last rowid.
- Only rowid tables: the transaction cannot change a WITHOUT ROWID table (it refuses to
  write one), so read those through the `Database`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.storage.changes import Changes
from core.storage.errors import UnsupportedError
from core.storage.record import decode_record
from core.storage.row_write import check_rowid
from core.storage.schema import RowBuilder, Table
from core.storage.shared import Row
from core.storage.statement import Statement
from core.storage.tree_edit import read_row, scan_rows, seek_rowid

if TYPE_CHECKING:
    from core.storage.write_transaction import WriteTransaction

__all__ = ["TxCount", "TxGet", "TxScan"]


def _rowid_table(tx: WriteTransaction, name: str) -> tuple[Table, RowBuilder]:
    table = tx.schema.table(name)
    if table.without_rowid:
        raise UnsupportedError(
            f"table {table.name!r} is WITHOUT ROWID: read it through the Database (this "
            "transaction cannot change it)"
        )
    return table, RowBuilder(table)


class TxGet(Statement["Row | None"]):
    """The operation `WriteTransaction.get` returns; `Done(row or None)`."""

    __slots__ = ("_rowid", "_table")

    def __init__(self, tx: WriteTransaction, table: str, rowid: int) -> None:
        super().__init__(tx)
        check_rowid(rowid)
        self._table = table
        self._rowid = rowid

    def _plan(self, changes: Changes) -> Row | None:
        table, builder = _rowid_table(self.tx, self._table)
        position = seek_rowid(changes, table.root_page, self._rowid)
        if not position.found:
            return None
        record = read_row(changes, position)
        values = decode_record(record, 0, len(record), self.tx.codec)
        return builder.build(self._rowid, values)


class TxScan(Statement[list[Row]]):
    """The operation `WriteTransaction.scan` returns; `Done(rows)`."""

    __slots__ = ("_after", "_limit", "_table")

    def __init__(
        self, tx: WriteTransaction, table: str, after: int | None, limit: int | None
    ) -> None:
        super().__init__(tx)
        if after is not None:
            check_rowid(after)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self._table = table
        self._after = after
        self._limit = limit

    def _plan(self, changes: Changes) -> list[Row]:
        table, builder = _rowid_table(self.tx, self._table)
        codec = self.tx.codec
        limit = self._limit
        rows: list[Row] = []
        if limit == 0:
            return rows
        for rowid, record in scan_rows(changes, table.root_page, self._after):
            rows.append(builder.build(rowid, decode_record(record, 0, len(record), codec)))
            if limit is not None and len(rows) >= limit:
                break
        return rows


class TxCount(Statement[int]):
    """The operation `WriteTransaction.count` returns; `Done(number of rows)`."""

    __slots__ = ("_table",)

    def __init__(self, tx: WriteTransaction, table: str) -> None:
        super().__init__(tx)
        self._table = table

    def _plan(self, changes: Changes) -> int:
        table, _ = _rowid_table(self.tx, self._table)
        return sum(1 for _ in scan_rows(changes, table.root_page))
