"""Index lookups and ranges (`IndexScan`): the VDBE's index cursor in the small, with the
row fetched from the table for every entry.

Theory of operation:
- `_resolve` turns the equality values and the range bounds into probes in the index's key
  order (affinity first, then collation; a DESC column walks its value range backwards); a
  NULL in either matches nothing, as in SQL.
- `_work` seeks the first entry, then per entry: stop past the prefix or the upper bound,
  fetch the row by rowid, move on. It yields every `ROWS_PER_STEP` rows.
- A WITHOUT ROWID table is fetched in batch instead: the scan first collects every entry's
  primary key (in index order), then looks the rows up in primary-key order, so that keys
  on the same leaf are found on that leaf (one bisect) and the table's pages are visited
  once each, in order, rather than once per row from the root in random order (which, on a
  table larger than the cache, read a page per row). The rows go back in index order.
  When there are at least as many keys as the file has pages, one pass over the whole table
  costs less than that: the rows are picked out of a scan of the table by their primary-key
  values (the same stored values in the index entry and in the row).
- An equality lookup whose pages are all cached is answered from the cache alone first
  (`SharedState.index_rows_from_cache`); on a miss the cursors do the work.
- Keyset paging: `last_entry` is the index record of the last row returned and `more`
  says whether a matching entry follows it; a scan given `after=` that record seeks
  straight past it (never further back than the search's own start), so a deep page
  costs what the first does.
- A WITHOUT ROWID table's name searches its own B-tree by primary key: the entry is the
  row, nothing is fetched.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from typing import Final

from core.completion import Completion
from core.errors import InternalError
from core.result import Done
from core.state_machine import TransitionResult
from core.storage.btree import BTreeCursor
from core.storage.collation import KeyPlan, apply_affinity, field_key
from core.storage.errors import CorruptDatabaseError, SchemaError
from core.storage.page import LEAF_FLAG
from core.storage.queries import ROWS_PER_STEP
from core.storage.record import Value
from core.storage.schema import Index, RowBuilder, Schema, Table, pk_positions
from core.storage.shared import MISS, Row, SharedState
from core.storage.transaction import FIRST_PHASE, ReadTransaction

__all__ = ["Bound", "IndexScan"]


class Bound:
    """One end of an index range: `value`, and whether the range includes it."""

    __slots__ = ("inclusive", "value")

    def __init__(self, value: object, inclusive: bool = True) -> None:
        self.value = value
        self.inclusive = inclusive

    def __repr__(self) -> str:
        return f"Bound({self.value!r}, inclusive={self.inclusive})"


class _IndexState(enum.Enum):
    SEEK = "seek"
    ENTRY = "entry"
    FETCH = "fetch"
    RECORD = "record"
    NEXT = "next"
    SORT = "sort"
    LOOKUP = "lookup"
    JOIN = "join"
    DONE = "done"


_IX_SEEK: Final = _IndexState.SEEK
_IX_ENTRY: Final = _IndexState.ENTRY
_IX_FETCH: Final = _IndexState.FETCH
_IX_RECORD: Final = _IndexState.RECORD
_IX_NEXT: Final = _IndexState.NEXT
_IX_SORT: Final = _IndexState.SORT
_IX_LOOKUP: Final = _IndexState.LOOKUP
_IX_JOIN: Final = _IndexState.JOIN
_IX_DONE: Final = _IndexState.DONE


class IndexScan(ReadTransaction[list[Row]]):
    """The operation `Database.index_scan` returns; `Done(list of rows)`."""

    __slots__ = (
        "_after",
        "_builder",
        "_cursor",
        "_equal",
        "_fetch_rowid",
        "_fetched",
        "_hi",
        "_index",
        "_join_moving",
        "_join_started",
        "_limit",
        "_lookup_pos",
        "_lower",
        "_order",
        "_own_tree",
        "_pk_plan",
        "_pk_positions",
        "_pks",
        "_plan",
        "_prefix",
        "_probes",
        "_rows",
        "_seek",
        "_seeking",
        "_state",
        "_table",
        "_table_cursor",
        "_upper",
        "_wanted",
        "index",
        "last_entry",
        "more",
    )

    def __init__(
        self,
        db: SharedState,
        index: str,
        equal: tuple[object, ...],
        lower: Bound | None,
        upper: Bound | None,
        limit: int | None,
        after: tuple[object, ...] | None = None,
    ) -> None:
        super().__init__(db)
        self.index = index
        self._after = after
        self._own_tree = False
        self.last_entry: tuple[object, ...] | None = None
        """The index record (index columns, then rowid or primary key) of the last row
        returned; None when no row was, or the cache answered."""
        self.more = False
        """True when the scan stopped at `limit` with another matching entry next."""
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
        # WITHOUT ROWID: the primary keys in index order, the order to look them up in,
        # and the rows found so far (by index position).
        self._probes: list[tuple[object, ...]] = []
        self._order: list[int] = []
        self._fetched: list[Row | None] = []
        self._lookup_pos = 0
        self._seeking = False
        self._pks: list[tuple[Value, ...]] = []
        self._wanted: dict[tuple[Value, ...], int] = {}
        self._join_started = False
        self._join_moving = True

    def _advance(self) -> TransitionResult[list[Row]]:
        # An equality lookup answered from the cache on an immutable database finishes in
        # the first step without the transaction outline.
        if (
            self._phase is FIRST_PHASE
            and self._lower is None
            and self._upper is None
            and self._limit is None
            and self._after is None
        ):
            db = self.db
            if db is not None and db.immutable and not db.closed:
                rows = db.index_rows_from_cache(self.index, self._equal)
                if rows is not MISS:
                    return Done(rows)
        return ReadTransaction._advance(self)

    def _resolve(self) -> None:
        db = self._db()
        schema = db.schema
        index = _own_tree_of(schema, self.index)
        self._own_tree = index is not None
        if index is None:
            index = schema.index(self.index)
        table = schema.table(index.table)
        self._index = index
        self._table = table
        self._builder = db.row_builder(table)
        plan = db.key_plan(table, None if self._own_tree else index)
        self._rows = []
        self.last_entry = None
        self.more = False
        self._probes = []
        self._order = []
        self._fetched = []
        self._lookup_pos = 0
        self._seeking = False
        self._pks = []
        self._wanted = {}
        self._join_started = False
        self._join_moving = True
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
            self._pk_plan = db.key_plan(table, None)
            self._pk_positions = pk_positions(table, index)
        if any(v is None for v in values):
            self._state = _IX_DONE  # `= NULL` matches nothing
            return
        prefix = plan.probe(values)
        self._prefix = prefix
        self._hi = None
        if not ranged:
            self._seek = self._past_after(plan, (prefix, False))
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
        self._seek = self._past_after(
            plan, (prefix, False) if lo is None else (prefix + lo[0], not lo[1])
        )
        self._hi = hi

    def _past_after(
        self, plan: KeyPlan, seek: tuple[tuple[object, ...], bool]
    ) -> tuple[tuple[object, ...], bool]:
        """Where to seek: past the entry `after`, unless the search starts later anyway
        (a token from another search never reaches before the search's own start)."""
        if self._after is None:
            return seek
        values: list[Value] = []
        for v in self._after:
            if v is not None and type(v) not in (int, float, str, bytes):
                raise SchemaError(f"after must hold the values of an index entry, got {v!r}")
            values.append(v)  # type: ignore[arg-type]
        after = plan.key(values)
        probe, gt = seek
        head = after[: len(probe)]
        later = head > probe if gt else after >= probe
        return (after, True) if later else seek

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
            if (
                self._lower is None
                and self._upper is None
                and self._limit is None
                and self._after is None
            ):
                cached = self._db().index_rows_from_cache(self.index, self._equal)
                if cached is not MISS:
                    self._rows = cached
                    self._state = _IX_DONE
                    return None
            cursor, table_cursor = self._make_cursors()
        else:
            cursor, table_cursor = self._cursor, self._table_cursor
        rows = self._rows
        pks = self._pks
        limit = self._limit
        batched = builder.without_rowid and not self._own_tree
        done = 0  # entries or rows handled in this step
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
                if not cursor.valid:
                    self._state = _IX_SORT if batched else _IX_DONE
                    continue
                key = cursor.sort_key()
                prefix = self._prefix
                n = len(prefix)
                if key[:n] != prefix:
                    self._state = _IX_SORT if batched else _IX_DONE
                    continue
                hi = self._hi
                if hi is not None:
                    bound = hi[0]
                    field = key[n : n + len(bound)]
                    if field > bound or (not hi[1] and field == bound):
                        self._state = _IX_SORT if batched else _IX_DONE
                        continue
                if limit is not None and len(rows) + len(pks) >= limit:
                    self.more = True  # checked after the bounds: this entry matches
                    self._state = _IX_SORT if batched else _IX_DONE
                    continue
                record = cursor.record_values()
                if self._own_tree:
                    # The entry is the whole row; its key is the primary key alone.
                    self.last_entry = tuple(record[: len(self._pk_positions)])
                    rows.append(builder.build_without_rowid(record))
                    done += 1
                    self._state = _IX_NEXT
                    continue
                self.last_entry = tuple(record)
                if batched:
                    try:
                        pk = [record[p] for p in self._pk_positions]
                    except IndexError:
                        raise _bad_entry(cursor, "is shorter than the primary key") from None
                    pks.append(tuple(pk))
                    done += 1
                    self._state = _IX_NEXT
                else:
                    last = record[-1] if record else None
                    if type(last) is not int:
                        raise _bad_entry(cursor, f"ends in {last!r}, not a rowid")
                    self._fetch_rowid = last
                    self._state = _IX_FETCH
            elif state is _IX_FETCH:
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
                done += 1
                self._state = _IX_NEXT
            elif state is _IX_NEXT:
                if done >= ROWS_PER_STEP:
                    return Completion.new_yield()  # let the event loop run; resume here
                pending = cursor.next()
                if pending is not None:
                    return pending
                self._state = _IX_ENTRY
            elif state is _IX_SORT:
                self._fetched = [None] * len(pks)
                if len(pks) > ROWS_PER_STEP and len(pks) >= self._db().pager.page_count:
                    wanted = {pk: j for j, pk in enumerate(pks)}
                    if len(wanted) == len(pks):  # (a duplicate key: look rows up instead)
                        table_cursor = self._scan_cursor()
                        self._wanted = wanted
                        self._state = _IX_JOIN
                        continue
                # The keys as the table's sort keys. Sorting compares them (a DESC field
                # compares in Python): once per scan, far cheaper than a descent from the
                # root per row.
                plan = self._pk_plan
                assert plan is not None
                probes = self._probes = [plan.probe(pk) for pk in pks]
                self._order = sorted(range(len(probes)), key=probes.__getitem__)
                self._lookup_pos = 0
                self._state = _IX_LOOKUP
            elif state is _IX_LOOKUP or state is _IX_JOIN:
                if state is _IX_LOOKUP:
                    pending = self._lookup(cursor, table_cursor, builder, done)
                else:
                    pending = self._join(cursor, table_cursor, builder, done)
                if pending is not None:
                    return pending
                fetched = self._fetched
                self._rows = [row for row in fetched if row is not None]
                if len(self._rows) != len(fetched):
                    raise InternalError("a WITHOUT ROWID index scan lost a row")
                self._fetched = []
                self._state = _IX_DONE
            else:
                return None

    def _scan_cursor(self) -> BTreeCursor:
        """A cursor with read-ahead over the whole table, replacing the one for lookups."""
        db = self._db()
        table = self._table
        assert table is not None
        cursor = BTreeCursor(
            db.pager,
            table.root_page,
            table=False,
            codec=db.codec,
            key_plan=self._pk_plan,
            scan=True,
        )
        self._table_cursor = cursor
        return cursor

    def _join(
        self, cursor: BTreeCursor, table_cursor: BTreeCursor, builder: RowBuilder, done: int
    ) -> Completion | None:
        """Pick the rows out of one scan of the whole table by their primary-key values; a
        completion to wait for (a page read, or a yield every `ROWS_PER_STEP` rows), None
        when the table has been read. Raises `CorruptDatabaseError` if an entry's row is
        not in the table."""
        npk = len(self._pk_positions)
        wanted = self._wanted
        fetched = self._fetched
        while True:
            if self._join_moving:
                pending = table_cursor.next() if self._join_started else table_cursor.rewind()
                if pending is not None:
                    return pending
                self._join_started = True
                self._join_moving = False
            if not table_cursor.valid:
                break
            record = table_cursor.record_values()
            j = wanted.get(tuple(record[:npk]))
            if j is not None:
                fetched[j] = builder.build_without_rowid(record)
            self._join_moving = True
            done += 1
            if done >= ROWS_PER_STEP:
                return Completion.new_yield()
        for j, row in enumerate(fetched):
            if row is None:
                raise _missing_row(cursor, self._pks[j])
        self._wanted = {}
        return None

    def _lookup(
        self, cursor: BTreeCursor, table_cursor: BTreeCursor, builder: RowBuilder, done: int
    ) -> Completion | None:
        """Look the collected primary keys up in key order; a completion to wait for (a
        page read, or a yield every `ROWS_PER_STEP` rows), None when every row is found.
        A key on the leaf the cursor is on is found there with one bisect; only a key past
        that leaf seeks from the root."""
        probes = self._probes
        order = self._order
        fetched = self._fetched
        pos = self._lookup_pos
        end = len(order)
        try:
            while pos < end:
                if done >= ROWS_PER_STEP:
                    return Completion.new_yield()
                j = order[pos]
                probe = probes[j]
                found = False
                if not self._seeking and table_cursor.valid:
                    leaf = table_cursor.pages[-1]
                    # Only on a leaf: an interior page's keys have subtrees between them.
                    keys = table_cursor.page_keys(leaf) if leaf.kind & LEAF_FLAG else []
                    i = bisect_left(keys, probe, table_cursor.idxs[-1]) if keys else 0
                    if i < len(keys):
                        table_cursor.set_cell(i)
                        found = True
                if not found:
                    self._seeking = True
                    pending = table_cursor.seek_key(probe)
                    if pending is not None:
                        return pending
                    self._seeking = False
                if not table_cursor.valid or table_cursor.sort_key()[: len(probe)] != probe:
                    raise _missing_row(cursor, probe)
                fetched[j] = builder.build_without_rowid(table_cursor.record_values())
                pos += 1
                done += 1
            return None
        finally:
            self._lookup_pos = pos

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


def _own_tree_of(schema: Schema, name: str) -> Index | None:
    """For a WITHOUT ROWID table called `name`: its primary key as an index over its own
    B-tree; else None."""
    try:
        table = schema.table(name)
    except SchemaError:
        return None
    if not table.without_rowid or not table.primary_key:
        return None
    return Index(table.name, table.name, table.root_page, None, True, table.primary_key, None)
