"""Writing rows: insert, update and delete on a rowid table and all of its indexes (Turso
`translate/insert.rs` and the `Insert`/`Delete` VDBE ops; SQLite `insert.c`, `update.c`,
`delete.c` in the small).

Theory of operation:
- Each is a `Statement` (see `statement.py`): it plans the whole change against staged
  pages, so a constraint that fails halfway leaves nothing behind.
- Values: columns are named in a mapping; each value gets its column's affinity as SQLite
  applies it on INSERT (`encode.column_value`); a missing column gets its DEFAULT (a
  literal; an expression this engine cannot evaluate is `UnsupportedError`) or NULL. The
  INTEGER PRIMARY KEY column is the rowid: stored as NULL in the record, as SQLite does.
- The rowid: the given INTEGER PRIMARY KEY value (an integer after affinity, else
  `SchemaError`, SQLite's "datatype mismatch"), else one more than the largest rowid in
  the table (1 for an empty one); AUTOINCREMENT tables also stay above every rowid ever
  inserted, recorded in `sqlite_sequence` (an UPDATE that moves a row to a larger rowid
  does not record it, as in SQLite). Once the largest rowid is 2**63-1, SQLite tries
  random ones; this engine tries a reproducible sequence, a new one for each such insert
  (drawn from the commit the transaction started from and the rowids it drew before);
  AUTOINCREMENT refuses.
- Constraints, checked before anything is kept: NOT NULL, the rowid's uniqueness, and each
  UNIQUE index (an entry whose indexed columns are all equal, under the index's
  collations, and none of them NULL). Each failure is a `ConstraintError` naming the
  constraint and the values.
- Indexes are kept in step: an insert adds one entry per index, a delete removes it, an
  update replaces the entries whose columns changed. Writes to tables SQLite would need a
  SQL engine for (triggers, CHECK, foreign keys, partial or expression indexes, generated
  columns, WITHOUT ROWID) are refused with `UnsupportedError` (`schema.write_refusal`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final, cast

from mypy_extensions import mypyc_attr

from core.storage.changes import Changes
from core.storage.encode import column_value, encode_record
from core.storage.errors import (
    ConstraintError,
    CorruptDatabaseError,
    SchemaError,
    UnsupportedError,
)
from core.storage.record import Value, decode_record
from core.storage.schema import Index, Table, fold_name, write_refusal
from core.storage.statement import Statement
from core.storage.tree_edit import (
    Position,
    delete_entry,
    delete_row,
    first_at_or_after,
    insert_entry,
    insert_row,
    last_rowid,
    payload_of,
    read_row,
    replace_row,
    scan_rows,
    seek_rowid,
)

if TYPE_CHECKING:
    from core.storage.write_transaction import WriteTransaction

__all__ = [
    "MAX_ROWID",
    "Delete",
    "Insert",
    "TablePlan",
    "Update",
    "check_rowid",
    "index_entry",
    "insert_index_entry",
]

MAX_ROWID: Final = (1 << 63) - 1
_MISSING: Final = object()


def check_rowid(value: object) -> None:
    """Raise `SchemaError` unless `value` is an integer rowid (a bool is not one)."""
    if type(value) is not int:
        raise SchemaError(f"a rowid is an integer, not {value!r}")


class TablePlan:
    """What writing rows of one table needs, worked out once per schema: the column
    positions by name, the indexes with their key plans (see `WriteTransaction.table_plan`).
    """

    __slots__ = (
        "affinities",
        "defaults",
        "indexes",
        "no_default",
        "not_null",
        "positions",
        "table",
    )

    def __init__(self, tx: WriteTransaction, name: str) -> None:
        table = tx.schema.table(name)
        if fold_name(table.name) in ("sqlite_schema", "sqlite_master"):
            raise UnsupportedError("sqlite_schema is written only through execute_ddl")
        reason = write_refusal(tx.schema, table)
        if reason is not None:
            raise UnsupportedError(reason)
        self.table = table
        columns = table.columns
        self.affinities = tuple(c.affinity for c in columns)
        self.defaults = tuple(c.insert_default for c in columns)
        self.no_default = tuple(i for i, c in enumerate(columns) if not c.default_supported)
        """Positions of the columns whose DEFAULT this engine cannot evaluate."""
        self.not_null = tuple(i for i, c in enumerate(columns) if c.not_null and not c.rowid_alias)
        positions: dict[str, int] = {}
        for i, column in enumerate(table.columns):
            positions.setdefault(column.name, i)
            positions.setdefault(fold_name(column.name), i)
        self.positions = positions
        self.indexes = tuple(
            (index, *tx.key_plan(table, index)) for index in tx.schema.indexes_of(table.name)
        )

    def row(self, values: Mapping[str, object], base: list[object]) -> list[Value]:
        """`base` (a row, or all `_MISSING`) with `values` applied and affinity, defaults
        and NOT NULL checked.

        Raises `SchemaError` for an unknown column or a value SQLite cannot store,
        `ConstraintError` for NULL in a NOT NULL column, `UnsupportedError` for a DEFAULT
        this engine cannot evaluate.
        """
        positions = self.positions
        affinities = self.affinities
        for name, value in values.items():
            position = positions.get(name)
            if position is None:
                position = positions.get(fold_name(name))
                if position is None:
                    raise SchemaError(f"table {self.table.name!r} has no column named {name!r}")
            base[position] = column_value(value, affinities[position])
        # The usual row needs no error: fill the defaults and check NOT NULL in a few C
        # calls, and leave a row with a problem to `_finish_row`, which raises the error
        # of its first column that has one.
        if _MISSING in base:
            for i in self.no_default:
                if base[i] is _MISSING:
                    return _finish_row(self.table, base)
            defaults = self.defaults
            base = [defaults[i] if v is _MISSING else v for i, v in enumerate(base)]
        for i in self.not_null:
            if base[i] is None:
                return _finish_row(self.table, base)
        return cast(list[Value], base)


def _finish_row(table: Table, row: list[object]) -> list[Value]:
    """Defaults for missing columns, then the NOT NULL check, column by column (raises
    the first column's error)."""
    out: list[Value] = []
    for i, column in enumerate(table.columns):
        value = row[i]
        if value is _MISSING:
            if not column.default_supported:
                raise UnsupportedError(
                    f"column {table.name}.{column.name} has a DEFAULT expression this engine "
                    "cannot evaluate: give the column a value"
                )
            value = column.insert_default  # not `default`: rows older than the column
        assert value is None or isinstance(value, (int, float, str, bytes))
        if value is None and column.not_null and not column.rowid_alias:
            raise ConstraintError(
                f"NOT NULL constraint failed: {table.name}.{column.name}",
                constraint=f"{table.name}.{column.name}",
            )
        out.append(value)
    return out


def _rowid_value(table: Table, value: Value) -> int:
    if isinstance(value, int):
        return value
    alias = table.rowid_alias
    assert alias is not None
    raise SchemaError(
        f"datatype mismatch: {table.name}.{table.columns[alias].name} is the rowid and "
        f"takes integers, not {value!r}"
    )


def _stored(table: Table, row: list[Value]) -> list[Value]:
    alias = table.rowid_alias
    if alias is None:
        return row
    stored = list(row)
    stored[alias] = None
    return stored


def index_entry(table: Table, index: Index, row: Sequence[Value], rowid: int) -> list[Value]:
    """The record of `index`'s entry for a row: its columns' values, then the rowid."""
    entry: list[Value] = []
    for column in index.columns:
        assert column.column is not None  # expression indexes are refused
        entry.append(rowid if column.column == table.rowid_alias else row[column.column])
    entry.append(rowid)
    return entry


def insert_index_entry(
    tx: WriteTransaction, ch: Changes, table: Table, index: Index, entry: list[Value]
) -> None:
    """Add one entry to `index`, enforcing UNIQUE.

    Raises `ConstraintError` for a duplicate, `SchemaError` for an unknown collation.
    """
    plan, key_of = tx.key_plan(table, index)
    columns = entry[: len(index.columns)]
    if index.unique and all(v is not None for v in columns):
        probe = plan.probe(columns)
        found = first_at_or_after(ch, index.root_page, probe, key_of)
        if found is not None:
            node, i = found
            payload = payload_of(ch, node, i)
            existing = decode_record(payload, 0, len(payload), tx.codec)
            if plan.probe(existing[: len(columns)]) == probe:
                names = ", ".join(f"{table.name}.{c.name}" for c in index.columns)
                raise ConstraintError(
                    f"UNIQUE constraint failed: {names} (index {index.name!r} already holds "
                    f"{tuple(columns)!r})",
                    constraint=index.name,
                )
    insert_entry(ch, index.root_page, plan.key(entry), encode_record(entry, tx.codec), key_of)


def _delete_index_entry(
    tx: WriteTransaction, ch: Changes, table: Table, index: Index, entry: list[Value]
) -> None:
    plan, key_of = tx.key_plan(table, index)
    if not delete_entry(ch, index.root_page, plan.key(entry), key_of):
        raise CorruptDatabaseError(
            f"index {index.name!r} has no entry {tuple(entry)!r} for its table's row"
        )


def _decode_row(tx: WriteTransaction, table: Table, record: bytes, rowid: int) -> list[Value]:
    """A stored record as a full row: missing trailing columns get their defaults (rows
    written before ALTER TABLE ADD COLUMN), the rowid alias gets the rowid."""
    values = decode_record(record, 0, len(record), tx.codec)
    columns = table.columns
    row: list[Value] = list(values[: len(columns)])
    for column in columns[len(row) :]:
        row.append(column.default)
    if table.rowid_alias is not None:
        row[table.rowid_alias] = rowid
    return row


class _Sequence:
    """The `sqlite_sequence` row of an AUTOINCREMENT table."""

    __slots__ = ("rowid", "seq", "table")

    def __init__(self, table: Table, rowid: int | None, seq: int) -> None:
        self.table = table
        self.rowid = rowid
        self.seq = seq


def _read_sequence(tx: WriteTransaction, ch: Changes, name: str) -> _Sequence:
    sequence = tx.schema.table("sqlite_sequence")
    folded = fold_name(name)
    for rowid, record in scan_rows(ch, sequence.root_page):
        values = decode_record(record, 0, len(record), tx.codec)
        if values and isinstance(values[0], str) and fold_name(values[0]) == folded:
            seq = values[1] if len(values) > 1 else 0
            return _Sequence(sequence, rowid, seq if isinstance(seq, int) else 0)
    return _Sequence(sequence, None, 0)


def _write_sequence(
    tx: WriteTransaction, ch: Changes, name: str, found: _Sequence, seq: int
) -> None:
    record = encode_record([name, seq], tx.codec)
    root = found.table.root_page
    if found.rowid is not None:
        replace_row(ch, seek_rowid(ch, root, found.rowid), found.rowid, record)
        return
    rowid = (last_rowid(ch, root) or 0) + 1
    insert_row(ch, root, seek_rowid(ch, root, rowid), rowid, record)


def _unused_rowid(changes: Changes, table: Table, salt: int) -> tuple[int, Position]:
    """A free rowid once the largest one is taken: SQLite tries random ones; this tries a
    sequence fixed by `salt` (see `Insert`) and the table, so that runs are reproducible.
    Each insert needs its own `salt`: a sequence that starts where an earlier insert's
    did finds its rowids taken."""
    chooser = random.Random(salt * 7919 + table.root_page)
    for _ in range(100):
        rowid = chooser.randrange(1, MAX_ROWID)
        position = seek_rowid(changes, table.root_page, rowid)
        if not position.found:
            return rowid, position
    raise ConstraintError(
        f"table {table.name!r}: no free rowid found (the largest is in use)",
        constraint=f"{table.name}.rowid",
    )


@mypyc_attr(allow_interpreted_subclasses=True)
class Insert(Statement[int]):
    """The operation `WriteTransaction.insert` returns; `Done(rowid)`."""

    __slots__ = ("_drew", "_table", "_values")

    def __init__(self, tx: WriteTransaction, table: str, values: Mapping[str, object]) -> None:
        super().__init__(tx)
        self._table = table
        self._values = dict(values)
        self._drew = False

    def _salt(self) -> int:
        """What the random rowids of this insert are drawn from: the commit the transaction
        started from (the header's change counter, and the log's generation and length,
        since a commit that leaves page 1 alone does not move the counter) and how many
        such rowids the transaction has drawn before."""
        tx = self.tx
        db = tx.db
        header = db.header
        counter = header.change_counter if header is not None else 0
        wal = db.wal
        log = (wal.header.salt1, wal.max_frame) if wal is not None and wal.header else (0, 0)
        return hash((counter, *log, tx.random_rowids)) & 0xFFFFFFFFFFFF

    def _applied(self, value: int) -> None:
        if self._drew:
            self.tx.random_rowids += 1

    def _plan(self, changes: Changes) -> int:
        tx = self.tx
        self._drew = False
        plan = tx.table_plan(self._table)
        table = plan.table
        row = plan.row(self._values, [_MISSING] * len(table.columns))
        root = table.root_page
        alias = table.rowid_alias
        given = row[alias] if alias is not None else None
        sequence = _read_sequence(tx, changes, table.name) if table.autoincrement else None
        if given is not None:
            rowid = _rowid_value(table, given)
            position = seek_rowid(changes, root, rowid)
            if position.found:
                name = table.columns[alias].name if alias is not None else "rowid"
                raise ConstraintError(
                    f"UNIQUE constraint failed: {table.name}.{name} (rowid {rowid} is in use)",
                    constraint=f"{table.name}.{name}",
                )
        else:
            largest = last_rowid(changes, root) or 0
            if sequence is not None:
                largest = max(largest, sequence.seq)
            if largest < MAX_ROWID:
                rowid = largest + 1
                position = seek_rowid(changes, root, rowid)
            elif sequence is None:
                rowid, position = _unused_rowid(changes, table, self._salt())
                self._drew = True
            else:
                raise ConstraintError(
                    f"AUTOINCREMENT table {table.name!r} has used the largest rowid",
                    constraint=f"{table.name}.rowid",
                )
        if alias is not None:
            row[alias] = rowid
        insert_row(changes, root, position, rowid, encode_record(_stored(table, row), tx.codec))
        for index, _, _ in plan.indexes:
            insert_index_entry(tx, changes, table, index, index_entry(table, index, row, rowid))
        if sequence is not None and (rowid > sequence.seq or sequence.rowid is None):
            # As SQLite, which writes the row after every INSERT: ("t", 0) for a rowid < 1.
            _write_sequence(tx, changes, table.name, sequence, max(rowid, sequence.seq))
        return rowid


class Update(Statement[bool]):
    """The operation `WriteTransaction.update` returns; `Done(True)` if the row existed."""

    __slots__ = ("_rowid", "_table", "_values")

    def __init__(
        self, tx: WriteTransaction, table: str, rowid: int, values: Mapping[str, object]
    ) -> None:
        super().__init__(tx)
        check_rowid(rowid)
        self._table = table
        self._rowid = rowid
        self._values = dict(values)

    def _plan(self, changes: Changes) -> bool:
        tx = self.tx
        plan = tx.table_plan(self._table)
        table = plan.table
        rowid = self._rowid
        root = table.root_page
        position = seek_rowid(changes, root, rowid)
        if not position.found:
            return False
        old = _decode_row(tx, table, read_row(changes, position), rowid)
        row = plan.row(self._values, list(old))
        alias = table.rowid_alias
        new_rowid = rowid
        if alias is not None:
            # NULL included: SQLite's UPDATE refuses it ("datatype mismatch"), unlike INSERT.
            new_rowid = _rowid_value(table, row[alias])
        record = encode_record(_stored(table, row), tx.codec)
        if new_rowid == rowid:
            replace_row(changes, position, rowid, record)
        else:
            target = seek_rowid(changes, root, new_rowid)
            if target.found:
                assert alias is not None
                name = table.columns[alias].name
                raise ConstraintError(
                    f"UNIQUE constraint failed: {table.name}.{name} (rowid {new_rowid} is in use)",
                    constraint=f"{table.name}.{name}",
                )
            delete_row(changes, position)
            insert_row(changes, root, seek_rowid(changes, root, new_rowid), new_rowid, record)
        for index, _, _ in plan.indexes:
            before = index_entry(table, index, old, rowid)
            after = index_entry(table, index, row, new_rowid)
            same_types = all(type(a) is type(b) for a, b in zip(before, after, strict=True))
            if before != after or not same_types:
                _delete_index_entry(tx, changes, table, index, before)
                insert_index_entry(tx, changes, table, index, after)
        # An AUTOINCREMENT table's sqlite_sequence is left alone: SQLite records only the
        # rowids of INSERTs there.
        return True


class Delete(Statement[bool]):
    """The operation `WriteTransaction.delete` returns; `Done(True)` if the row existed."""

    __slots__ = ("_rowid", "_table")

    def __init__(self, tx: WriteTransaction, table: str, rowid: int) -> None:
        super().__init__(tx)
        check_rowid(rowid)
        self._table = table
        self._rowid = rowid

    def _plan(self, changes: Changes) -> bool:
        tx = self.tx
        plan = tx.table_plan(self._table)
        table = plan.table
        position = seek_rowid(changes, table.root_page, self._rowid)
        if not position.found:
            return False
        old = _decode_row(tx, table, read_row(changes, position), self._rowid)
        delete_row(changes, position)
        for index, _, _ in plan.indexes:
            _delete_index_entry(
                tx, changes, table, index, index_entry(table, index, old, self._rowid)
            )
        return True
