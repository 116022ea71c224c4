"""Lookups: rows by a column's value or range, through an index or the rowid, never a scan.

Rules:
- A lookup searches the rowid (a `get` for `eq`, a `scan` from the lower bound for a
  range) or the narrowest index whose first column is the column asked for; any other
  column is refused (422), because answering would mean reading the whole table.
- Values are compared as SQLite compares `WHERE column = ?` with a text parameter: the
  storage engine's `index_scan` applies the column's affinity, then the index's collation.
- Paging an index pins the column after the equality (the first column for a range, the
  second for an `eq` on a multi-column index): the next page starts at the last page's
  value of it, skipping the rows with that value already returned. With nothing to pin
  (an `eq` on a one-column index, or on one whose second column is an expression, whose
  value a row does not hold), or when the last value is NULL (which cannot be a bound),
  the skip counts from the start instead. The token says both (`paging.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.storage import Bound, Index, Table, collation_key, fold_identifier
from examples.service.databases import Entry
from examples.service.encoding import TableShape
from examples.service.errors import ServiceError
from examples.service.queries.describe import find_table, lookup_columns
from examples.service.queries.paging import decode_token, encode_token

__all__ = ["Search", "lookup"]

_MAX_ROWID = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Search:
    """A lookup's parameters: `eq`, or a range of at most one lower and one upper bound."""

    column: str
    eq: str | None
    lower: Bound | None
    upper: Bound | None
    limit: int
    after: str | None

    @classmethod
    def of(
        cls,
        column: str,
        eq: str | None,
        gt: str | None,
        ge: str | None,
        lt: str | None,
        le: str | None,
        limit: int,
        after: str | None,
    ) -> Search:
        """The search the query parameters ask for; raises `ServiceError` 422 for a
        combination that asks for none, or for two."""
        if eq is not None and any(v is not None for v in (gt, ge, lt, le)):
            raise ServiceError(422, "give either eq or a range (gt/ge, lt/le), not both")
        if eq is None and all(v is None for v in (gt, ge, lt, le)):
            raise ServiceError(422, "give eq, or a range with gt/ge and/or lt/le")
        if gt is not None and ge is not None:
            raise ServiceError(422, "give at most one of gt and ge")
        if lt is not None and le is not None:
            raise ServiceError(422, "give at most one of lt and le")
        lower = Bound(gt, inclusive=False) if gt is not None else None
        lower = Bound(ge, inclusive=True) if ge is not None else lower
        upper = Bound(lt, inclusive=False) if lt is not None else None
        upper = Bound(le, inclusive=True) if le is not None else upper
        return cls(column, eq, lower, upper, limit, after)


async def lookup(
    entry: Entry, table: str, search: Search, link: Callable[[str], str]
) -> dict[str, Any]:
    """A page of the rows of `table` that `search` finds, as `models.LookupPage`."""
    info = find_table(entry, table)
    shape = entry.shape(info.name)
    if _is_rowid_column(info, search.column):
        payload = await _rowid_lookup(entry, info, shape, search)
    else:
        index = _choose_index(entry, info, search.column)
        payload = await _index_lookup(entry, info, shape, index, search)
    payload["column"] = search.column
    token = payload["next_after"]
    payload["next"] = None if token is None else link(token)
    return payload


def _page(
    entry: Entry,
    table: Table,
    shape: TableShape,
    index: Index | None,
    rows: Sequence[Any],
    token: str | None,
) -> dict[str, Any]:
    """The body of a lookup's page, but for `column` and `next`, which `lookup` adds."""
    return {
        "database": entry.name,
        "table": table.name,
        "strategy": "rowid" if index is None else "index",
        "index": None if index is None else index.name,
        "index_columns": [] if index is None else [c.name or c.expression for c in index.columns],
        "columns": shape.columns,
        "rows": shape.rows(rows),
        "next_after": token,
    }


def _is_rowid_column(table: Table, column: str) -> bool:
    if table.without_rowid:
        return False
    folded = fold_identifier(column)
    if table.rowid_alias is not None:
        return folded == fold_identifier(table.columns[table.rowid_alias].name)
    return folded in ("rowid", "_rowid_", "oid") and table.column_index(column) is None


def _choose_index(entry: Entry, table: Table, column: str) -> Index:
    """The index to search `column` with: the narrowest whose first column it is."""
    if table.column_index(column) is None:
        raise ServiceError(
            422,
            f"table {table.name!r} has no column {column!r}; its columns are: "
            f"{', '.join(table.column_names)}",
        )
    folded = fold_identifier(column)
    candidates = [
        i
        for i in entry.db.schema.indexes_of(table.name)
        if i.columns
        and i.columns[0].name is not None
        and fold_identifier(i.columns[0].name) == folded
    ]
    if not candidates:
        usable = ", ".join(lookup_columns(entry, table)) or "none"
        raise ServiceError(
            422,
            f"no index of table {table.name!r} starts with column {column!r}, so it cannot be "
            f"searched without reading the whole table; columns that can: {usable}",
        )
    candidates.sort(key=lambda i: (i.where is not None, len(i.columns), i.name))
    return candidates[0]


async def _index_lookup(
    entry: Entry, table: Table, shape: TableShape, index: Index, search: Search
) -> dict[str, Any]:
    equal: tuple[object, ...] = () if search.eq is None else (search.eq,)
    pin = len(equal) if len(equal) < len(index.columns) else None
    if pin is not None and index.columns[pin].column is None:
        pin = None  # an expression: the rows do not hold its value to continue from
    lower, upper, skip = search.lower, search.upper, 0
    if search.after is not None:
        value, skip = decode_token(search.after)
        if pin is not None and value is not None:
            bound = Bound(value, inclusive=True)
            if index.columns[pin].descending:
                upper = bound
            else:
                lower = bound
        elif pin is not None and search.eq is None:
            raise ServiceError(422, f"after={search.after!r} does not fit this search")
    rows = await entry.db.index_scan(
        index.name, equal=equal, lower=lower, upper=upper, limit=skip + search.limit + 1
    )
    more = len(rows) > skip + search.limit
    page = rows[skip : skip + search.limit]
    token = None
    if more and page:
        token = _index_token(entry, table, index, pin, rows[: skip + len(page)])
    return _page(entry, table, shape, index, page, token)


def _index_token(
    entry: Entry, table: Table, index: Index, pin: int | None, returned: Sequence[Any]
) -> str:
    """The `next_after` of a page of an index lookup; `returned` ends with that page."""
    if pin is None:
        return encode_token(None, len(returned))
    column = index.columns[pin]
    position = _row_position(table, column.column)
    key = collation_key(column.collation, entry.db.db.codec)
    last = returned[-1][position]
    if last is None:
        # NULLs sort first and cannot be a bound: count from the start instead.
        return encode_token(None, len(returned))
    run = 0
    # Rows already returned with the last value, on this page and before it.
    last_key = key(last)
    for r in reversed(returned):
        if r[position] is None or key(r[position]) != last_key:
            break
        run += 1
    return encode_token(last, run)


def _row_position(table: Table, column: int | None) -> int:
    """Where table column `column` is in a stored row."""
    assert column is not None
    return column if table.without_rowid else column + 1


async def _rowid_lookup(
    entry: Entry, table: Table, shape: TableShape, search: Search
) -> dict[str, Any]:
    if search.eq is not None:
        value = _rowid_of(search.eq, "eq")
        found = None
        if isinstance(value, int) or (math.isfinite(value) and value.is_integer()):
            found = await entry.db.get(table.name, int(value))
        return _page(entry, table, shape, None, [found] if found is not None else [], None)
    start = _scan_start(search.lower, search.after)
    upper = search.upper
    stop = None if upper is None else _rowid_of(upper.value, "the upper bound")
    rows = await entry.db.scan(table.name, after=start, limit=search.limit + 1)
    if upper is not None and stop is not None:
        rows = [r for r in rows if r[0] < stop or (upper.inclusive and r[0] == stop)]  # type: ignore[operator]
    page = rows[: search.limit]
    more = len(rows) > search.limit
    token = encode_token(page[-1][0], 0) if more and page else None
    return _page(entry, table, shape, None, page, token)


def _scan_start(lower: Bound | None, after: str | None) -> int | None:
    """The rowid to scan after (None: from the start) for a range's lower bound and the
    previous page's token."""
    start: int | None = None
    if lower is not None:
        lo = _rowid_of(lower.value, "the lower bound")
        if math.isinf(lo):
            start = None if lo < 0 else _MAX_ROWID
        elif lower.inclusive and float(lo).is_integer():
            start = math.floor(lo) - 1
        else:
            start = math.floor(lo)
    if after is not None:
        value, _ = decode_token(after)
        if type(value) is not int:
            raise ServiceError(422, f"after={after!r} is not a next_after value of this search")
        start = value if start is None else max(start, value)
    return start


def _rowid_of(text: object, what: str) -> int | float:
    """A rowid bound as a number: an integer, or a float (a bound between rowids)."""
    try:
        return int(str(text))
    except ValueError:
        pass
    try:
        value = float(str(text))
    except ValueError:
        raise ServiceError(422, f"{what} must be a number for the rowid, got {text!r}") from None
    if math.isnan(value):
        raise ServiceError(422, f"{what} must be a number for the rowid, got {text!r}")
    return value
