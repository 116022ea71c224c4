"""Lookups: rows by a column's value or range, through an index or the rowid, never a scan.

Rules:
- A lookup searches the rowid (a `get` for `eq`, a `scan` from the lower bound for a
  range) or the narrowest index whose first column is the column asked for; any other
  column is refused (422), because answering would mean reading the whole table.
- Values are compared as SQLite compares `WHERE column = ?` with a text parameter: the
  storage engine's `index_scan` applies the column's affinity, then the index's collation.
- A search names one column, or the first N columns of an index (or primary key) in
  order, with an `eq` value for each, or for all but the last and a range on the last.
- A WITHOUT ROWID table is searched by the leading columns of its primary key in its own
  B-tree (`strategy` "primary key"), like an index whose entries are the rows.
- Paging is by key: a page's token is the index entry (index columns, then rowid or
  primary key) of its last row, and the next page seeks straight past it, so page 1,000
  of a run of equal values costs what page 1 does (`paging.py`).
- A page also ends before a row that would take its JSON past `max_answer_bytes`
  (`answer_size.py`); its token is then the index entry of the last row it holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.storage import IndexPage
from core.storage import Bound, Index, IndexColumn, Row, Table, fold_identifier
from examples.service.databases import Entry
from examples.service.encoding import Encoded, TableShape
from examples.service.errors import ServiceError
from examples.service.queries.answer_size import AnswerBudget, check_row
from examples.service.queries.describe import find_table, lookup_columns, searchable_indexes
from examples.service.queries.paging import decode_entry_token, encode_entry_token

__all__ = ["Search", "lookup"]

_MAX_ROWID = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Search:
    """A lookup's parameters: the leading columns of an index (or primary key) searched,
    `eq` values for all of them, or for all but the last and a range of at most one lower
    and one upper bound on the last."""

    columns: tuple[str, ...]
    eq: tuple[str, ...]
    lower: Bound | None
    upper: Bound | None
    limit: int
    after: str | None
    max_bytes: int = 8 * 1024 * 1024
    """The most JSON the page's rows may take (`answer_size.py`)."""

    @property
    def column(self) -> str:
        """The first column searched."""
        return self.columns[0]

    @classmethod
    def of(
        cls,
        columns: Sequence[str],
        eq: Sequence[str],
        gt: str | None,
        ge: str | None,
        lt: str | None,
        le: str | None,
        limit: int,
        after: str | None,
        max_bytes: int = 8 * 1024 * 1024,
    ) -> Search:
        """The search the query parameters ask for; raises `ServiceError` 422 for a
        combination that asks for none, or for two, or whose `eq` values do not fit its
        columns."""
        ranged = any(v is not None for v in (gt, ge, lt, le))
        if not columns:
            raise ServiceError(422, "give the column to search")
        if len(columns) == 1:
            if eq and ranged:
                raise ServiceError(422, "give either eq or a range (gt/ge, lt/le), not both")
            if not eq and not ranged:
                raise ServiceError(422, "give eq, or a range with gt/ge and/or lt/le")
        want = len(columns) - 1 if ranged else len(columns)
        if len(eq) != want:
            named = ", ".join(columns)
            raise ServiceError(
                422,
                f"searching {len(columns)} column(s) ({named}) takes one eq per column, or one "
                f"fewer and a range (gt/ge, lt/le) on the last; got {len(eq)} eq value(s)"
                f"{' and a range' if ranged else ''}",
            )
        if gt is not None and ge is not None:
            raise ServiceError(422, "give at most one of gt and ge")
        if lt is not None and le is not None:
            raise ServiceError(422, "give at most one of lt and le")
        lower = Bound(gt, inclusive=False) if gt is not None else None
        lower = Bound(ge, inclusive=True) if ge is not None else lower
        upper = Bound(lt, inclusive=False) if lt is not None else None
        upper = Bound(le, inclusive=True) if le is not None else upper
        return cls(tuple(columns), tuple(eq), lower, upper, limit, after, max_bytes)


async def lookup(
    entry: Entry, table: str, search: Search, link: Callable[[str], str]
) -> dict[str, Any]:
    """A page of the rows of `table` that `search` finds, as `models.LookupPage`."""
    info = find_table(entry, table)
    shape = entry.shape(info.name)
    if _is_rowid_column(info, search.column):
        if len(search.columns) > 1:
            raise ServiceError(
                422, f"{search.column!r} is the rowid: a lookup by it searches that one column"
            )
        payload = await _rowid_lookup(entry, info, shape, search)
    elif _is_primary_key_prefix(info, search.columns):
        payload = await _index_lookup(entry, info, shape, None, search)
    else:
        # Which index follows from the schema alone: chosen once per schema.
        key = ("lookup index", info.name, tuple(fold_identifier(c) for c in search.columns))
        index = entry.derived(key, lambda: _choose_index(entry, info, search.columns))
        payload = await _index_lookup(entry, info, shape, index, search)
    payload["column"] = search.column
    payload["searched"] = list(search.columns)
    token = payload["next_after"]
    payload["next"] = None if token is None else link(token)
    return payload


def _page(
    entry: Entry,
    table: Table,
    shape: TableShape,
    strategy: str,
    index: Index | None,
    rows: Sequence[Any],
    token: str | None,
    encoded: Encoded | None = None,
) -> dict[str, Any]:
    """The body of a lookup's page, but for `column` and `next`, which `lookup` adds;
    `encoded` is the JSON of the shown `rows`, when their `AnswerBudget` has it."""
    if strategy == "primary key":
        index_columns = [str(c.name) for c in table.primary_key]
    else:
        index_columns = [] if index is None else [c.name or c.expression for c in index.columns]
    return {
        "database": entry.name,
        "table": table.name,
        "strategy": strategy,
        "index": None if index is None else index.name,
        "index_columns": index_columns,
        "columns": shape.columns,
        "rows": shape.rows(rows) if encoded is None else encoded,
        "next_after": token,
    }


def _is_rowid_column(table: Table, column: str) -> bool:
    if table.without_rowid:
        return False
    folded = fold_identifier(column)
    if table.rowid_alias is not None:
        return folded == fold_identifier(table.columns[table.rowid_alias].name)
    return folded in ("rowid", "_rowid_", "oid") and table.column_index(column) is None


def _is_primary_key_prefix(table: Table, columns: Sequence[str]) -> bool:
    """Whether `columns` lead a WITHOUT ROWID table's primary key: its own B-tree is
    keyed by them."""
    if not table.without_rowid or len(columns) > len(table.primary_key):
        return False
    return _leads(table.primary_key, columns)


def _leads(key: Sequence[IndexColumn], columns: Sequence[str]) -> bool:
    """Whether the first columns of `key` are the table columns `columns`, in order."""
    for part, column in zip(key, columns, strict=False):
        if part.name is None or fold_identifier(part.name) != fold_identifier(column):
            return False
    return len(key) >= len(columns)


def _choose_index(entry: Entry, table: Table, columns: Sequence[str]) -> Index:
    """The index to search `columns` with: the narrowest they lead."""
    for column in columns:
        if table.column_index(column) is None:
            raise ServiceError(
                422,
                f"table {table.name!r} has no column {column!r}; its columns are: "
                f"{', '.join(table.column_names)}",
            )
    candidates = [i for i in searchable_indexes(entry, table) if _leads(i.columns, columns)]
    if not candidates:
        usable = ", ".join(lookup_columns(entry, table)) or "none"
        if len(columns) == 1:
            raise ServiceError(
                422,
                f"no index of table {table.name!r} starts with column {columns[0]!r}, so it "
                f"cannot be searched without reading the whole table; columns that can: "
                f"{usable}",
            )
        raise ServiceError(
            422,
            f"no index (nor primary key) of table {table.name!r} starts with the columns "
            f"{', '.join(columns)} in that order, so they cannot be searched without reading "
            f"the whole table; the first column of a search can be: {usable}",
        )
    candidates.sort(key=lambda i: (i.where is not None, len(i.columns), i.name))
    return candidates[0]


async def _index_lookup(
    entry: Entry, table: Table, shape: TableShape, index: Index | None, search: Search
) -> dict[str, Any]:
    """Search `index`, or with None a WITHOUT ROWID table's own B-tree by primary key.

    A page is one seek: to the start of the search, or straight past the index entry the
    previous page ended on (its token), never a count of rows to skip."""
    name = table.name if index is None else index.name
    after = None if search.after is None else decode_entry_token(search.after)
    budget = AnswerBudget(table, search.max_bytes)
    rows: list[Row] = []
    token_entry: tuple[object, ...] | None = None
    while True:
        want = budget.chunk(search.limit - len(rows))
        page = await _index_page(entry, name, search, want, after)
        kept = budget.take_rows(page.rows, shape.rows(page.rows))
        rows += page.rows[:kept]
        if kept < len(page.rows):
            # The page ends inside this read: continue after the last row it holds.
            token_entry = after
            if kept:
                token_entry = (await _index_page(entry, name, search, kept, after)).next_after
            break
        token_entry = page.next_after
        if token_entry is None or len(rows) == search.limit:
            break
        after = token_entry
    token = None if token_entry is None else encode_entry_token(token_entry)
    strategy = "primary key" if index is None else "index"
    return _page(entry, table, shape, strategy, index, rows, token, budget.encoded())


async def _index_page(
    entry: Entry, name: str, search: Search, limit: int, after: Sequence[object] | None
) -> IndexPage:
    return await entry.db.index_page(
        name,
        equal=search.eq,
        lower=search.lower,
        upper=search.upper,
        limit=limit,
        after=after,
    )


async def _rowid_lookup(
    entry: Entry, table: Table, shape: TableShape, search: Search
) -> dict[str, Any]:
    if search.eq:
        value = _rowid_of(search.eq[0], "eq")
        found = None
        if isinstance(value, int) or (math.isfinite(value) and value.is_integer()):
            found = await entry.db.get(table.name, int(value))
        if found is not None:
            check_row(table, found, shape.cut(found), search.max_bytes)
        return _page(entry, table, shape, "rowid", None, [found] if found is not None else [], None)
    start = _scan_start(search.lower, search.after)
    upper = search.upper
    stop = None if upper is None else _rowid_of(upper.value, "the upper bound")
    budget = AnswerBudget(table, search.max_bytes)
    page: list[Row] = []
    more = False
    while not more:
        want = budget.chunk(search.limit + 1 - len(page))
        rows = await entry.db.scan(table.name, after=start, limit=want)
        for row in rows:
            rowid: int = row[0]  # type: ignore[assignment]
            if (
                upper is not None
                and stop is not None
                and (rowid > stop or (rowid == stop and not upper.inclusive))
            ):
                return _page(entry, table, shape, "rowid", None, page, None)
            if len(page) == search.limit or not budget.take(row, shape.cut(row)):
                more = True
                break
            page.append(row)
        if len(rows) < want:
            break
        start = rows[-1][0]  # type: ignore[assignment]
    token = encode_entry_token([page[-1][0]]) if more and page else None
    return _page(entry, table, shape, "rowid", None, page, token)


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
        entry = decode_entry_token(after)
        value = entry[0]
        if len(entry) != 1 or type(value) is not int:
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
