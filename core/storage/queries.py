"""The query machines on a read transaction: a row by key (`GetRow`), rows in key order
(`ScanRows`) and a count (`CountRows`); the VDBE's table cursors in the small.

Theory of operation:
- Each query is a `ReadTransaction`: the outline re-validates the file, then `_resolve`
  builds the cursors and `_work` walks them, returning the completion a cursor waits on.
- Work per step is bounded: scans and counts return an explicit yield every
  `ROWS_PER_STEP` rows (`PAGES_PER_STEP` leaves), so a driver can let its loop run.
- Keys get the column's affinity first, as SQLite gives it to a bound parameter; rows come
  back as sqlite3 returns them (see `schema.RowBuilder`).
- These are hot paths: states are compared with `is` against module-level aliases (the
  kernel's rule), and a leaf is consumed in one synchronous loop.
"""

from __future__ import annotations

import enum
from typing import Final

from core.completion import Completion
from core.result import Done
from core.state_machine import TransitionResult
from core.storage.btree import BTreeCursor, ScanStep
from core.storage.collation import apply_affinity
from core.storage.errors import CorruptDatabaseError, SchemaError, UnsupportedError
from core.storage.page import LEAF_FLAG, Page
from core.storage.record import Value, decode_record
from core.storage.schema import RowBuilder, Table
from core.storage.shared import MISS, Row, SharedState
from core.storage.transaction import FIRST_PHASE, ReadTransaction

__all__ = [
    "PAGES_PER_STEP",
    "ROWS_PER_STEP",
    "CountRows",
    "GetRow",
    "ScanRows",
    "key_values",
    "rowid_arg",
]

ROWS_PER_STEP: Final = 512
"""A scan yields to the driver (an explicit yield) after about this many rows in one step,
so a long scan over cached pages never holds an event loop for more than a millisecond or
two; under `block` a yield costs a microsecond or so."""
PAGES_PER_STEP: Final = 256
"""The same bound for `count`, in leaf pages."""


class _GetState(enum.Enum):
    SEEK = "seek"
    RECORD = "record"
    DONE = "done"


_G_SEEK: Final = _GetState.SEEK
_G_RECORD: Final = _GetState.RECORD
_G_DONE: Final = _GetState.DONE


class GetRow(ReadTransaction["Row | None"]):
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

    def __init__(self, db: SharedState, table: str, key: object) -> None:
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

    def _advance(self) -> TransitionResult[Row | None]:
        # A hot-cache lookup on an immutable database finishes in the first step without
        # the transaction outline.
        if self._phase is FIRST_PHASE:
            db = self.db
            if db is not None and db.immutable and not db.closed:
                row = db.row_from_cache(self.table, self._key)
                if row is not MISS:
                    return Done(row)
        return ReadTransaction._advance(self)

    def _resolve(self) -> None:
        db = self._db()
        table = db.schema.table(self.table)
        builder = db.row_builder(table)
        self._builder = builder
        self._state = _G_SEEK
        self._result = None
        if table.without_rowid:
            plan = db.key_plan(table, None)
            values = key_values(self._key, table)
            self._probe = plan.probe(values)
            self._cursor = BTreeCursor(
                db.pager, table.root_page, table=False, codec=db.codec, key_plan=plan
            )
        else:
            self._rowid = rowid_arg(self._key)
            self._cursor = None
            self._root = table.root_page

    def _work(self) -> Completion | None:
        builder = self._builder
        assert builder is not None
        cursor = self._cursor
        if cursor is None:
            db = self._db()
            row = db.table_row_from_cache(self._root, self._rowid, builder)
            if row is not MISS:
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


def rowid_arg(key: object) -> int:
    """`key` as a rowid (an int, or a 1-tuple of one); raises `SchemaError` otherwise."""
    if type(key) is int:
        return key
    if isinstance(key, tuple) and len(key) == 1:
        key = key[0]
    if isinstance(key, bool) or not isinstance(key, int):
        raise SchemaError(f"a rowid is an integer, got {key!r}")
    return key


def key_values(key: object, table: Table) -> list[Value]:
    """The primary-key values of `key` for a WITHOUT ROWID `table`, with their columns'
    affinity; raises `SchemaError` for a key of the wrong shape."""
    values = list(key) if isinstance(key, (tuple, list)) else [key]
    if len(values) != len(table.primary_key):
        raise SchemaError(
            f"table {table.name} has a {len(table.primary_key)}-column primary key, "
            f"got {len(values)} value(s)"
        )
    return [apply_affinity(v, c.affinity) for v, c in zip(values, table.primary_key, strict=True)]


_SC_SEEK: Final = ScanStep.SEEK
_SC_ROW: Final = ScanStep.ROW
_SC_NEXT: Final = ScanStep.NEXT
_SC_DONE: Final = ScanStep.DONE


class ScanRows(ReadTransaction[list[Row]]):
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

    def __init__(self, db: SharedState, table: str, after: object, limit: int | None) -> None:
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

    def _resolve(self) -> None:
        db = self._db()
        table = db.schema.table(self.table)
        self._builder = db.row_builder(table)
        self._rows = []
        self._state = _SC_SEEK
        self._last = None
        if table.without_rowid:
            plan = db.key_plan(table, None)
            self._probe = (
                None if self._after is None else plan.probe(key_values(self._after, table))
            )
            self._cursor = BTreeCursor(
                db.pager, table.root_page, table=False, codec=db.codec, key_plan=plan, scan=True
            )
        else:
            if self._after is not None:
                self._probe = (rowid_arg(self._after),)
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
                if page.kind & LEAF_FLAG:
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


_C_START: Final = _CountState.START
_C_WALK: Final = _CountState.WALK
_C_NEXT: Final = _CountState.NEXT
_C_DONE: Final = _CountState.DONE


class CountRows(ReadTransaction[int]):
    """The operation `Database.count` returns; `Done(number of rows)`."""

    __slots__ = ("_count", "_cursor", "_state", "table")

    def __init__(self, db: SharedState, table: str) -> None:
        super().__init__(db)
        self.table = table
        self._count = 0
        self._cursor: BTreeCursor | None = None
        self._state = _C_START

    def _resolve(self) -> None:
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
                if page.kind & LEAF_FLAG:  # a leaf: count all its cells, then leave it
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
