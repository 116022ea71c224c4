"""Orders a table can be walked in, forward and backward, with keyset positions.

Theory of operation:
- An `Order` is a walk over a table's rows: its key order (rowid, or the primary key of a
  WITHOUT ROWID table) or the order of an index's first column (`IndexOrder`), optionally
  narrowed to a range of that column by a filter. A `Cut` is a place between two rows:
  just before or just after a row's key (key orders) or its whole index entry (index
  orders: the index values, then the rowid or primary key). Cuts are what
  `_next`/`_prev` tokens carry (`token`/`cut_of`), never offsets or counts.
- `forward(cut, n)` reads the `n` rows after a cut: one storage read, seeking past the
  cut's key or entry.
- `backward(cut, n)` finds the `n` rows before a cut. The storage engine's cursors only
  move forward, so it looks for a lower bound `x` below the cut such that the rows from
  `x` up to the cut are at least `n` and at most `WINDOW` times `n`: galloping down, then
  bisecting between values (`midpoints.py`); each probe reads at most that many rows.
  An index order does this part by part of the entry (`_Level`): the rows sharing all of
  the cut's entry but its rowid first, bisected on rowids, then one part less, up to the
  order's value; a run no probe can split is walked into the same way, from its end.
  A key order of a WITHOUT ROWID table bisects its first key column only: there, a run
  of one value is read forward from the last bound with at most `BACKWARD_CAP` rows, and
  a walk that would need more is refused (422) rather than reading without bound.
- NULLs come first in an index (as in `ORDER BY`): an unbounded walk of an index starts
  with them; a range (a filter on the column) holds none.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.storage import Bound, Index, IndexColumn, Row, Table, collation_key
from examples.service.databases import Entry
from examples.service.encoding import decode_cell, encode_cell
from examples.service.errors import ServiceError
from examples.service.queries.midpoints import BOTTOM, below, between
from examples.service.queries.paging import (
    decode_entry_token,
    decode_token,
    encode_entry_token,
    encode_token,
)

__all__ = ["BACKWARD_CAP", "Cut", "IndexOrder", "KeyOrder", "Order", "Walked"]

WINDOW = 4
"""A backward probe reads at most WINDOW * n + 1 rows."""
BACKWARD_CAP = 10_000
"""The most rows one backward walk reads when no bisection can narrow its window."""
MAX_PROBES = 64
"""Probes of one backward walk before it reads forward from the best bound found."""
_UNSET = object()
"""No bound known yet (NULL is a value a bound may have)."""
_MIN_ROWID = -(1 << 63)
_MAX_ROWID = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Cut:
    """A place between rows. Key orders: `value` is a row's key, skip 0 is just before
    that row, 1 just after. Index orders: `entry` is a row's whole index entry (its
    index values, then its rowid or primary key) and `value` its first value; skip 0 is
    just before that entry, 1 just after."""

    value: object
    skip: int
    entry: tuple[object, ...] | None = None


@dataclass(frozen=True, slots=True)
class Walked:
    """A row met by a walk, and the cuts just before and just after it."""

    row: Row
    before: Cut
    after: Cut


class Order(ABC):
    """A walk over a table's rows in one order (see the module docstring)."""

    column: str
    """The column the rows are ordered by, as the table's rows name it."""
    index: str | None
    """The index walked, or None for the table's key order."""

    def __init__(self, entry: Entry, table: Table) -> None:
        self.entry = entry
        self.table = table
        self.reads = 0
        """Storage reads made (each one `drive`)."""

    # -- what each order knows ------------------------------------------------------

    @abstractmethod
    async def forward(self, cut: Cut | None, n: int) -> tuple[list[Walked], bool]:
        """Up to `n` rows after `cut` (None: from the start), and whether the walk ended."""

    @abstractmethod
    async def _tail(self, cut: Cut) -> list[Walked]:
        """The rows before `cut` that share its value (for a key order, its own row)."""

    @abstractmethod
    async def _window(self, low: object, high: object, limit: int) -> tuple[list[Walked], bool]:
        """Rows with values from `low` (inclusive; `BOTTOM`: from the start) to `high`
        (exclusive; None: to the end), at most `limit`, and whether that was all of them."""

    @abstractmethod
    def _key(self, value: object) -> Any:
        """The sort key of an order value."""

    @abstractmethod
    def _top(self) -> object:
        """A value above every value of the order, to gallop down from."""

    @abstractmethod
    def encode_value(self, value: object) -> object:
        """An order value as JSON."""

    @abstractmethod
    def decode_value(self, value: object) -> object:
        """The inverse of `encode_value`; raises `ValueError`."""

    # -- tokens ---------------------------------------------------------------------

    def token(self, cut: Cut) -> str:
        """`cut` as an opaque URL parameter."""
        return encode_token(self.encode_value(cut.value), cut.skip)

    def cut_of(self, token: str, what: str) -> Cut:
        """The cut a token names; `ServiceError` 422 naming parameter `what`."""
        try:
            value, skip = decode_token(token)
        except ServiceError:
            raise ServiceError(
                422, f"{what}={token!r} is not a position from a link of these pages"
            ) from None
        try:
            cut = Cut(self.decode_value(value), skip)
        except (ValueError, TypeError):
            raise ServiceError(422, f"{what}={token!r} is not a position in this order") from None
        if skip not in (0, 1):
            raise ServiceError(422, f"{what}={token!r} is not a position in this order")
        return cut

    # -- backward ----------------------------------------------------------------------

    async def backward(self, cut: Cut | None, n: int) -> tuple[list[Walked], bool]:
        """The last `n` rows before `cut` (None: the end), in order, and whether they are
        the first rows of the walk."""
        tail = [] if cut is None else await self._tail(cut)
        if len(tail) >= n:
            return tail[-n:], False
        high = None if cut is None else cut.value
        if cut is not None and cut.value is None:
            return tail, True  # the NULL run is where every index walk starts
        need = n - len(tail)
        rows, at_start = await self._last(high, need)
        return (rows + tail)[-n:], at_start

    def _below(self, value: object, attempt: int, step: int) -> object:
        return below(value, attempt, step, self._key)

    def _ordered(self, low: object, middle: object, high: object) -> bool:
        """Whether `low` < `middle` < `high` in the order's values (probes included)."""
        try:
            return bool(self._key(low) < self._key(middle) < self._key(high))
        except TypeError:
            return False

    def _between(self, lo: object, hi: object) -> object | None:
        return between(lo, hi, self._key)

    def _value_of(self, walked: Walked) -> object:
        """The value a probe of this level compares with: the order's value."""
        return walked.before.value

    async def _after_run(
        self, level: Any, value: object, high: object, n: int
    ) -> list[Walked] | None:
        """The last `n` rows below `high` when no probe separates the rows of one `value`
        from those above it: the end of that run, then what follows it. None when the
        order cannot walk into a run (then a capped read from its start is all it has)."""
        return None

    async def _last(self, high: object, n: int, level: Any = None) -> tuple[list[Walked], bool]:
        """The last `n` rows below `high` (None: the top); `level` walks a deeper part of
        an index entry (`IndexOrder`), else the order's own value."""
        lv = self if level is None else level
        most = WINDOW * n
        too_many: object = _UNSET  # a bound known to hold more than `most` rows below high
        too_few: object = lv._top() if high is None else high
        attempt = 0
        jump: object = None
        for _ in range(MAX_PROBES):
            jumped = jump is not None
            if jump is not None:
                # The last row a too-full window read is a real value above its bound: if
                # it has too few rows above it, the rows from the bound up to the cut are
                # fewer than a window and a page, and the read below is short.
                probe, jump = jump, None
            elif too_many is _UNSET:
                probe = lv._below(too_few, attempt, n)
                attempt += 1
            else:
                probe = lv._between(too_many, too_few)
                if probe is None:
                    break
            rows, complete = await lv._window(probe, high, most)
            if probe is BOTTOM:
                if complete:
                    return rows[-n:], len(rows) <= n and level is None
                too_many = BOTTOM
                if rows and (level is not None or isinstance(self, IndexOrder)):
                    # The lowest value there is: bisect up from it.
                    too_many = lv._value_of(rows[0])
                    continue
                break
            if complete and len(rows) >= n:
                return rows[-n:], False
            if complete:
                too_few = probe
                if jumped:
                    # From the last bound up to `high`: at most a window and a page.
                    rows, complete = await lv._window(too_many, high, most + n)
                    if complete:
                        return rows[-n:], False
                    break
            else:
                too_many = probe
                last = lv._value_of(rows[-1]) if rows else None
                if not jumped and last is not None and lv._ordered(probe, last, too_few):
                    jump = last
        if too_many is not _UNSET and too_many is not BOTTOM:
            found = await self._after_run(level, too_many, high, n)
            if found is not None:
                return found[-n:], False
        start = BOTTOM if too_many is _UNSET else too_many
        rows, complete = await lv._window(start, high, BACKWARD_CAP)
        if not complete:
            raise ServiceError(
                422,
                f"walking back from here would read more than {BACKWARD_CAP} rows of one "
                f"value of {self.column!r}; walk forward instead",
            )
        return rows[-n:], start is BOTTOM and len(rows) <= n and level is None


class KeyOrder(Order):
    """The table's key order: rowid, or primary key for a WITHOUT ROWID table. A rowid
    range (a filter on the rowid) narrows it."""

    def __init__(
        self,
        entry: Entry,
        table: Table,
        column: str,
        lower: Bound | None = None,
        upper: Bound | None = None,
    ) -> None:
        super().__init__(entry, table)
        self.column = column
        self.index = None
        self.lower = lower
        self.upper = upper
        self._pk = [c.column for c in table.primary_key if c.column is not None]
        codec = entry.db.db.codec
        self._keys = [
            collation_key(table.columns[i].collation or "BINARY", codec) for i in self._pk
        ]

    def _row_key(self, row: Row) -> object:
        if not self.table.without_rowid:
            return row[0]
        return tuple(row[i] for i in self._pk)

    def _key(self, value: object) -> Any:
        if not self.table.without_rowid:
            return value
        assert isinstance(value, tuple)
        return tuple(
            (0,) if v is None else (1, key(v)) for key, v in zip(self._keys, value, strict=True)
        )

    def _top(self) -> object:
        return _MAX_ROWID if not self.table.without_rowid else b"\xff" * 8

    # A WITHOUT ROWID key is bisected on its first column; a run of one first value is
    # read forward from its start (with the cap).
    def _first(self, value: object) -> object:
        return value[0] if isinstance(value, tuple) else value

    def _first_key(self, value: Any) -> Any:
        return self._keys[0](value)

    def _ordered(self, low: object, middle: object, high: object) -> bool:
        if not self.table.without_rowid:
            return super()._ordered(low, middle, high)
        key, first = self._first_key, self._first
        try:
            return bool(key(first(low)) < key(first(middle)) < key(first(high)))
        except TypeError:
            return False

    def _below(self, value: object, attempt: int, step: int) -> object:
        if not self.table.without_rowid:
            return super()._below(value, attempt, step)
        return below(self._first(value), attempt, step, self._first_key)

    def _between(self, lo: object, hi: object) -> object | None:
        if not self.table.without_rowid:
            return super()._between(lo, hi)
        return between(self._first(lo), self._first(hi), self._first_key)

    def encode_value(self, value: object) -> object:
        if isinstance(value, tuple):
            return [encode_cell(v) for v in value]
        return value

    def decode_value(self, value: object) -> object:
        if not self.table.without_rowid:
            if type(value) is not int:
                raise ValueError("a rowid is an integer")
            return value
        if not isinstance(value, list) or len(value) != len(self._pk):
            raise ValueError("not a primary key")
        return tuple(decode_cell(v) for v in value)

    def _walked(self, rows: Sequence[Row]) -> list[Walked]:
        out = []
        for row in rows:
            key = self._row_key(row)
            out.append(Walked(row, Cut(key, 0), Cut(key, 1)))
        return out

    def _in_range(self, row: Row) -> tuple[bool, bool]:
        """(at or above the lower bound, at or below the upper bound) for a rowid range."""
        rowid = row[0]
        assert isinstance(rowid, int)
        return _within(rowid, self.lower, self.upper)

    async def _scan(self, after: object, limit: int) -> list[Row]:
        self.reads += 1
        return await self.entry.db.scan(self.table.name, after=after, limit=limit)

    async def _get(self, key: object) -> Row | None:
        self.reads += 1
        return await self.entry.db.get(self.table.name, key)

    def _lower_after(self) -> int | None:
        """The rowid to scan after for the lower bound (None: from the start)."""
        if self.lower is None:
            return None
        lo = self.lower.value
        assert isinstance(lo, int | float)
        if math.isinf(lo):
            return None if lo < 0 else _MAX_ROWID
        if self.lower.inclusive and float(lo).is_integer():
            return max(_MIN_ROWID, math.floor(lo) - 1)
        return math.floor(lo)

    async def _rows_from(self, start: object, limit: int) -> tuple[list[Row], bool]:
        """Rows with key >= `start` (BOTTOM: from the start, narrowed by the range), up to
        `limit`, stopped at the range's upper bound; and whether the walk ended."""
        first: list[Row] = []
        after: object
        if start is BOTTOM:
            after = self._lower_after() if not self.table.without_rowid else None
        elif self.table.without_rowid:
            assert isinstance(start, tuple)
            if None not in start:
                row = await self._get(start)
                first = [row] if row is not None else []
            after = start
        else:
            assert isinstance(start, int)
            after = start - 1 if start > _MIN_ROWID else None
            floor = self._lower_after()
            if floor is not None and (after is None or after < floor):
                after = floor
        rows = first + await self._scan(after, limit + 1 - len(first))
        ended = len(rows) <= limit
        if self.upper is not None and not self.table.without_rowid:
            kept = [r for r in rows if self._in_range(r)[1]]
            ended = ended or len(kept) < len(rows)
            rows = kept
        return rows[:limit], ended

    async def forward(self, cut: Cut | None, n: int) -> tuple[list[Walked], bool]:
        if cut is None:
            start: object = BOTTOM
        elif self.table.without_rowid:
            if cut.skip == 0:
                start = cut.value
            else:
                rows = await self._scan(cut.value, n + 1)
                return self._walked(rows[:n]), len(rows) <= n
        else:
            assert isinstance(cut.value, int)
            start = cut.value + (1 if cut.skip else 0)
            if start > _MAX_ROWID:
                return [], True
        rows, ended = await self._rows_from(start, n)
        return self._walked(rows), ended

    async def _tail(self, cut: Cut) -> list[Walked]:
        if cut.skip == 0:
            return []
        row = await self._get(cut.value)
        return self._walked([row]) if row is not None else []

    async def _window(self, low: object, high: object, limit: int) -> tuple[list[Walked], bool]:
        start = low
        if not self.table.without_rowid and isinstance(low, float):
            start = _MIN_ROWID if low < _MIN_ROWID else math.ceil(low)
            if low > _MAX_ROWID:
                return [], True
        if self.table.without_rowid and low is not BOTTOM:
            start = _pad(low, len(self._pk))
        rows, ended = await self._rows_from(start, limit)
        if high is not None:
            top = self._key(high)
            kept = [r for r in rows if self._key(self._row_key(r)) < top]
            if len(kept) < len(rows):
                return self._walked(kept), True
        return self._walked(rows), ended


def _pad(value: object, width: int) -> tuple[object, ...]:
    """A probe of a WITHOUT ROWID key: its leading values, then NULLs (which sort first),
    so that a scan after it starts at the first key with those leading values."""
    values = value if isinstance(value, tuple) else (value,)
    return (*values, *([None] * (width - len(values))))


class IndexOrder(Order):
    """The order of an index's first column (ascending), optionally within a range.

    Positions are index entries: a page continues with one seek past the entry of its
    last row (`index_scan(after=...)`), however deep it is in a run of equal values. A
    page backwards looks below the entry level by level: first the rows sharing all but
    its last part (rowid or primary key), bisected on that part; then those sharing one
    part less, and so on up to the order's own value (`_Level`). Each probe reads at most
    a window of rows, so a page deep in a long run costs what a page at its start does.
    """

    def __init__(
        self,
        entry: Entry,
        table: Table,
        index: Index,
        column: str,
        position: int,
        lower: Bound | None = None,
        upper: Bound | None = None,
        key: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(entry, table)
        self.column = column
        self.index = index.name
        self.position = position
        """Where the column's value is in a stored row."""
        self.lower = lower
        self.upper = upper
        assert key is not None
        self._value_key = key
        codec = entry.db.db.codec
        parts = list(index.columns)
        if table.without_rowid:
            parts += _pk_suffix(table, index)
        shift = 0 if table.without_rowid else 1
        alias = table.rowid_alias
        # Where each part of an entry is in a stored row (the rowid is at 0); every
        # column of an index that sorts a page is a table column (`filters.index_for`).
        self._parts = [0 if c.column == alias else (c.column or 0) + shift for c in parts]
        self._part_keys: list[Callable[[Any], Any]] = [
            collation_key(c.collation or "BINARY", codec) for c in parts
        ]
        if not table.without_rowid:
            self._parts.append(0)
            self._part_keys.append(_same)
        # Where each primary key column is in an entry, to find an entry's row.
        self._pk_parts = [
            next(j for j, c in enumerate(parts) if _same_column(c, pk))
            for pk in (table.primary_key if table.without_rowid else ())
        ]

    def _key(self, value: object) -> Any:
        return (0,) if value is None else (1, self._value_key(value))

    def _top(self) -> object:
        return b"\xff" * 8 if self.upper is None else self.upper.value

    def encode_value(self, value: object) -> object:
        return encode_cell(value)

    def decode_value(self, value: object) -> object:
        return decode_cell(value)

    # -- entries ----------------------------------------------------------------------

    def entry_of(self, row: Row) -> tuple[object, ...]:
        """The index entry of a stored row."""
        return tuple(row[p] for p in self._parts)

    def part_key(self, j: int, value: object) -> Any:
        """The sort key of part `j` of an entry (NULL first)."""
        return (0,) if value is None else (1, self._part_keys[j](value))

    def _entry_key(self, entry: Sequence[object]) -> tuple[Any, ...]:
        return tuple(self.part_key(j, v) for j, v in enumerate(entry))

    def token(self, cut: Cut) -> str:
        assert cut.entry is not None
        return encode_entry_token([cut.skip, *cut.entry])

    def cut_of(self, token: str, what: str) -> Cut:
        try:
            skip, *entry = decode_entry_token(token)
        except ServiceError:
            raise ServiceError(
                422, f"{what}={token!r} is not a position from a link of these pages"
            ) from None
        if skip not in (0, 1) or type(skip) is not int or len(entry) != len(self._parts):
            raise ServiceError(422, f"{what}={token!r} is not a position in this order")
        return Cut(entry[0], skip, tuple(entry))

    def _walked(self, rows: Sequence[Row]) -> list[Walked]:
        out = []
        for row in rows:
            entry = self.entry_of(row)
            value = row[self.position]
            out.append(Walked(row, Cut(value, 0, entry), Cut(value, 1, entry)))
        return out

    # -- reads ------------------------------------------------------------------------

    async def _index_scan(
        self,
        lower: Bound | None,
        upper: Bound | None,
        limit: int,
        after: Sequence[object] | None = None,
    ) -> list[Row]:
        self.reads += 1
        if after is None:
            return await self.entry.db.index_scan(
                self.index or "", lower=lower, upper=upper, limit=limit
            )
        page = await self.entry.db.index_page(
            self.index or "", lower=lower, upper=upper, limit=limit, after=tuple(after)
        )
        return page.rows

    async def _row_at(self, entry: tuple[object, ...]) -> list[Walked]:
        """The row whose index entry is `entry`, if it is still there and in range."""
        if self.table.without_rowid:
            key: object = tuple(entry[p] for p in self._pk_parts)
        else:
            key = entry[-1]
            if type(key) is not int:
                return []
        self.reads += 1
        row = await self.entry.db.get(self.table.name, key)
        if row is None or self._entry_key(self.entry_of(row)) != self._entry_key(entry):
            return []
        if not self._in_range(row[self.position]):
            return []
        return self._walked([row])

    def _in_range(self, value: object) -> bool:
        k = self._key(value)
        if self.lower is not None:
            lo = self._key(self.lower.value)
            if value is None or k < lo or (k == lo and not self.lower.inclusive):
                return False
        if self.upper is not None:
            hi = self._key(self.upper.value)
            if value is None or k > hi or (k == hi and not self.upper.inclusive):
                return False
        return True

    def _floor(self, value: object) -> Bound | None:
        """The lower bound for a read from `value` (BOTTOM: the range's own)."""
        if value is BOTTOM:
            return self.lower
        bound = Bound(value, inclusive=True)
        if self.lower is not None:
            mine, theirs = self._key(value), self._key(self.lower.value)
            if mine < theirs or (mine == theirs and not self.lower.inclusive):
                return self.lower
        return bound

    # -- walking ----------------------------------------------------------------------

    async def forward(self, cut: Cut | None, n: int) -> tuple[list[Walked], bool]:
        if cut is None:
            rows = await self._index_scan(self.lower, self.upper, n + 1)
            return self._walked(rows[:n]), len(rows) <= n
        assert cut.entry is not None
        # Just before an entry: its own row comes first, if it is still there.
        walked = await self._row_at(cut.entry) if cut.skip == 0 else []
        rows = await self._index_scan(self.lower, self.upper, n + 1 - len(walked), cut.entry)
        walked += self._walked(rows)
        return walked[:n], len(walked) <= n

    async def backward(self, cut: Cut | None, n: int) -> tuple[list[Walked], bool]:
        if cut is None:
            return await self._last(None, n)
        assert cut.entry is not None
        entry = cut.entry
        own = await self._row_at(entry) if cut.skip == 1 else []
        found: list[Walked] = []
        need = n - len(own)
        # Deepest first: rows sharing all of the entry but its last parts, whose next
        # part is below the entry's.
        for j in range(len(entry) - 1, 0, -1):
            if len(found) >= need:
                return (found + own)[-n:], False
            if entry[j] is None:
                continue  # nothing sorts below NULL
            level = _Level(self, entry[:j])
            more, _ = await self._last(entry[j], need - len(found), level)
            found = more + found
        if len(found) >= need:
            return (found + own)[-n:], False
        if entry[0] is None:
            return found + own, True  # the NULL run is where every index walk starts
        more, at_start = await self._last(entry[0], need - len(found))
        return (more + found + own)[-n:], at_start

    async def _tail(self, cut: Cut) -> list[Walked]:
        raise NotImplementedError  # `backward` is by entry

    async def _after_run(
        self, level: Any, value: object, high: object, n: int
    ) -> list[Walked] | None:
        prefix = () if level is None else level.prefix
        if len(prefix) + 1 >= len(self._parts):
            return None  # the last part: one entry, no run to walk into
        run_level = _Level(self, (*prefix, value))
        run, _ = await self._last(None, n, run_level)
        if not run:
            return None
        # What follows the run up to `high`: read from the run's last entry, so that a
        # value no probe could name is not skipped.
        last = run[-1].before.entry
        assert last is not None
        limit = WINDOW * n
        region = _Level(self, prefix)
        lower, upper = region.bounds(high)
        rows = await self._index_scan(lower, upper, limit + 1, last)
        after: list[Walked] = []
        for w in self._walked(rows):
            if not region.holds(w, high):
                return run + after
            after.append(w)
        if len(rows) <= limit:
            return run + after
        return None

    async def _window(self, low: object, high: object, limit: int) -> tuple[list[Walked], bool]:
        upper = self.upper if high is None else Bound(high, inclusive=False)
        if low is BOTTOM and self.lower is None and self.upper is None:
            # From the very start: the NULL run first, which no range holds.
            rows = await self._index_scan(None, None, limit + 1)
            walked = self._walked(rows)
            if high is not None:
                top = self._key(high)
                kept = [w for w in walked if self._key(w.before.value) < top]
                if len(kept) < len(walked):
                    return kept[:limit], len(kept) <= limit
            return walked[:limit], len(walked) <= limit
        if low is None:
            # The NULL run (an unbounded walk only): from the start, up to `high`.
            return await self._window(BOTTOM, high, limit)
        rows = await self._index_scan(self._floor(low), upper, limit + 1)
        return self._walked(rows[:limit]), len(rows) <= limit


class _Level:
    """A deeper part of an index entry, as a backward walk bisects it: the rows whose
    entry starts with `prefix`, ordered by the entry's next part."""

    def __init__(self, order: IndexOrder, prefix: tuple[object, ...]) -> None:
        self.order = order
        self.prefix = prefix
        self.part = len(prefix)
        self._prefix_key = tuple(order.part_key(j, v) for j, v in enumerate(prefix))

    def _key(self, value: object) -> Any:
        return self.order.part_key(self.part, value)

    def _value_of(self, walked: Walked) -> object:
        entry = walked.before.entry
        assert entry is not None
        return entry[self.part]

    def holds(self, walked: Walked, high: object) -> bool:
        """Whether a row has the prefix, and its next part below `high` (None: any)."""
        entry = walked.before.entry
        assert entry is not None
        order = self.order
        head = tuple(order.part_key(j, v) for j, v in enumerate(entry[: self.part]))
        if head != self._prefix_key:
            return False
        return high is None or self._key(entry[self.part]) < self._key(high)

    def bounds(self, high: object) -> tuple[Bound | None, Bound | None]:
        """The range of the order's value a read of this level needs: the prefix's own
        value (so that the storage engine stops at the end of its run), or below `high`
        for the order's value itself."""
        order = self.order
        if not self.prefix:
            upper = order.upper if high is None else Bound(high, inclusive=False)
            return order.lower, upper
        if self.prefix[0] is None:
            return order.lower, order.upper  # no bound holds NULL: the walk's own range
        return Bound(self.prefix[0]), Bound(self.prefix[0])

    def _top(self) -> object:
        last = self.part == len(self.order._parts) - 1
        if last and not self.order.table.without_rowid:
            return _MAX_ROWID
        return b"\xff" * 8

    def _below(self, value: object, attempt: int, step: int) -> object:
        return below(value, attempt, step, self.order._part_keys[self.part])

    def _between(self, lo: object, hi: object) -> object | None:
        if lo is None or hi is None:
            return None  # NULL has no neighbours to bisect: its run is walked instead
        return between(lo, hi, self.order._part_keys[self.part])

    def _ordered(self, low: object, middle: object, high: object) -> bool:
        try:
            return bool(self._key(low) < self._key(middle) < self._key(high))
        except TypeError:
            return False

    async def _window(self, low: object, high: object, limit: int) -> tuple[list[Walked], bool]:
        """Rows with the prefix and the next part from `low` (BOTTOM: any) up to `high`
        (exclusive; None: any), at most `limit`; and whether that was all of them."""
        order = self.order
        # `after` seeks past an entry; padded with NULLs (which sort first, and which no
        # rowid or primary key holds) it seeks to the first entry from `low` on. A rowid
        # is made one lower instead.
        width = len(order._parts)
        rowid = self.part == width - 1 and not order.table.without_rowid
        after: tuple[object, ...]
        if low is BOTTOM or (rowid and low == float("-inf")):
            after = (*self.prefix, *([None] * (width - self.part)))
        elif rowid and isinstance(low, int | float):
            after = (*self.prefix, max(_MIN_ROWID, math.ceil(low)) - 1)
        else:
            after = (*self.prefix, low, *([None] * (width - self.part - 1)))
        lower, upper = self.bounds(high)
        rows = await order._index_scan(lower, upper, limit + 1, after)
        kept: list[Walked] = []
        for w in order._walked(rows):
            if not self.holds(w, high):
                return kept[:limit], len(kept) <= limit
            kept.append(w)
        return kept[:limit], len(kept) <= limit


def _same_column(a: IndexColumn, b: IndexColumn) -> bool:
    return a.column == b.column and a.collation == b.collation


def _pk_suffix(table: Table, index: Index) -> list[IndexColumn]:
    """The primary key columns SQLite appends to the entries of an index of a WITHOUT
    ROWID table: those the index does not already hold (with the same collation)."""
    return [pk for pk in table.primary_key if not any(_same_column(c, pk) for c in index.columns)]


def _same(value: Any) -> Any:
    return value


def _within(value: float, lower: Bound | None, upper: Bound | None) -> tuple[bool, bool]:
    above = True
    if lower is not None:
        lo = lower.value
        assert isinstance(lo, int | float)
        above = value > lo or (lower.inclusive and value == lo)
    under = True
    if upper is not None:
        hi = upper.value
        assert isinstance(hi, int | float)
        under = value < hi or (upper.inclusive and value == hi)
    return above, under
