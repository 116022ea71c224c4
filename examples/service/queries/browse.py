"""A page of a table as the browsing pages show it: chosen columns, an order, filters,
keyset pages in both directions, and a bound on the rows a page may examine.

Rules:
- The walk (`sorting.py`): the sort column's (`_sort`, `_sort_desc`: the rowid, the first
  column of a WITHOUT ROWID key, or the first column of an index); without one, the first
  filter an index or the rowid can serve (rowid first, then equality, then ranges), so a
  filtered page reads only the rows in range; otherwise the table's key order.
- Every filter is checked on every row walked. Rows the walk reads but a filter refuses
  are examined in vain, so a page examines at most `budget` rows: when the budget runs
  out before the page is full, the page says so (`partial`) and `resume` continues the
  scan from the last row examined.
- A page also ends before a row that would take its JSON past `max_answer_bytes`
  (`answer_size.py`), as if it were full; a row larger than that alone is a 413.
- `after` continues in the page's own direction from a cut; `before` walks the other way
  from a cut (the previous page) and shows the rows in the page's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.storage import Bound, Row, Table, fold_identifier
from examples.service.databases import Entry
from examples.service.encoding import TableShape
from examples.service.errors import ServiceError
from examples.service.queries.answer_size import AnswerBudget
from examples.service.queries.describe import find_table
from examples.service.queries.filters import Filter, FilterColumn, index_for, resolve_column
from examples.service.queries.sorting import Cut, IndexOrder, KeyOrder, Order, Walked

__all__ = ["Browse", "BrowsePage", "browse", "plan_order", "sortable_columns"]

_PREFERENCE = {"eq": 0, "notnull": 2}


@dataclass(frozen=True, slots=True)
class Browse:
    """What a page asks for (parameters already parsed)."""

    filters: tuple[Filter, ...] = ()
    sort: str | None = None
    descending: bool = False
    size: int = 50
    after: str | None = None
    """A token: the page after this cut, in the page's order."""
    before: str | None = None
    """A token: the page before this cut, in the page's order."""
    budget: int = 1000
    max_bytes: int = 8 * 1024 * 1024
    """The most JSON the page's rows may take (`answer_size.py`)."""


@dataclass(slots=True)
class BrowsePage:
    """A page of rows and where it stands."""

    table: Table
    shape: TableShape
    order: Order
    descending: bool
    sort_chosen: bool
    """True when the order is the one `_sort`/`_sort_desc` asked for."""
    rows: list[Row] = field(default_factory=list)
    examined: int = 0
    partial: bool = False
    """The budget ran out before the page was full."""
    resume: str | None = None
    """With `partial`: the token that continues the scan (same direction as the request)."""
    next: str | None = None
    """The token of the page after this one (as `after`), or None at the end."""
    previous: str | None = None
    """The token of the page before this one (as `before`), or None at the start."""
    filters: tuple[Filter, ...] = ()
    scanned_filters: list[Filter] = field(default_factory=list)
    """Filters the walk's range does not serve: checked on rows examined in vain."""


def sortable_columns(entry: Entry, table: Table, shape: TableShape) -> list[str]:
    """The columns a page can be sorted by, as the rows name them."""
    codec = entry.db.db.codec
    indexes = entry.db.schema.indexes_of(table.name)
    out = []
    for name in shape.columns:
        column = resolve_column(table, shape, codec, name)
        if _key_column(table, column) or index_for(column, indexes) is not None:
            out.append(name)
    return out


def _key_column(table: Table, column: FilterColumn) -> bool:
    if table.without_rowid:
        first = table.primary_key[0].column if table.primary_key else None
        return first is not None and column.table_column == first
    return column.rowid


def _order_for(
    entry: Entry, table: Table, column: FilterColumn, filters: tuple[Filter, ...]
) -> Order | None:
    """The walk in `column`'s order, narrowed by the filters on it; None if none."""
    lower: Bound | None = None
    upper: Bound | None = None
    served = [
        f for f in filters if f.column.name == column.name and f.op not in ("contains", "isnull")
    ]
    numeric = all(isinstance(f.value, int | float) for f in served if f.op != "notnull")
    if table.without_rowid or not column.rowid or numeric:
        for f in served:
            lo, hi = f.bounds()
            lower = lower or lo
            upper = upper or hi
    if _key_column(table, column):
        if table.without_rowid:
            return KeyOrder(entry, table, column.name)
        if lower is not None and lower.value == float("-inf"):
            lower = None  # notnull: every rowid is
        return KeyOrder(entry, table, column.name, lower, upper)
    index = index_for(column, entry.db.schema.indexes_of(table.name))
    if index is None:
        return None
    return IndexOrder(
        entry, table, index, column.name, column.position, lower, upper, key=column.key
    )


def plan_order(entry: Entry, table: Table, shape: TableShape, query: Browse) -> tuple[Order, bool]:
    """The walk a page takes, and whether it is the sort asked for."""
    codec = entry.db.db.codec
    if query.sort is not None:
        column = resolve_column(table, shape, codec, query.sort)
        order = _order_for(entry, table, column, query.filters)
        if order is None:
            sortable = ", ".join(sortable_columns(entry, table, shape)) or "none"
            raise ServiceError(
                422,
                f"cannot sort by {column.name!r}: no index starts with it, so sorting would "
                f"read the whole table; columns that can: {sortable}",
            )
        return order, True
    candidates = sorted(
        (f for f in query.filters if f.op not in ("contains", "isnull")),
        key=lambda f: (not f.column.rowid, _PREFERENCE.get(f.op, 1)),
    )
    for f in candidates:
        if f.column.rowid and not isinstance(f.value, int | float) and f.op != "notnull":
            continue
        order = _order_for(entry, table, f.column, query.filters)
        if order is not None:
            return order, False
    key_name = shape.columns[0]
    if table.without_rowid and table.primary_key:
        first = table.primary_key[0].name
        key_name = first if first is not None else key_name
    elif table.rowid_alias is not None:
        key_name = table.columns[table.rowid_alias].name
    return KeyOrder(entry, table, key_name), False


def _served(order: Order, f: Filter) -> bool:
    """Whether the walk's range alone keeps exactly the rows `f` keeps."""
    if fold_identifier(f.column.name) != fold_identifier(order.column):
        return False
    if isinstance(order, KeyOrder) and order.table.without_rowid:
        return False
    return f.op in ("eq", "gt", "ge", "lt", "le", "notnull")


async def browse(entry: Entry, table: str, query: Browse) -> BrowsePage:
    """The page `query` asks for, of table `table` of `entry`."""
    info = find_table(entry, table)
    shape = entry.shape(info.name)
    if query.after is not None and query.before is not None:
        raise ServiceError(422, "give _next or _prev, not both")
    order, chosen = plan_order(entry, info, shape, query)
    page = BrowsePage(info, shape, order, query.descending and chosen, chosen)
    page.filters = query.filters
    page.scanned_filters = [f for f in query.filters if not _served(order, f)]
    # The direction the rows are walked in: the page's, or against it for `before`.
    backwards = page.descending != (query.before is not None)
    token = query.before if query.before is not None else query.after
    what = "_prev" if query.before is not None else "_next"
    cut = None if token is None else order.cut_of(token, what)
    walked, more = await _walk(order, cut, backwards, query, page)
    if query.before is not None:
        walked.reverse()
    page.rows = [w.row for w in walked]
    first_cut, last_cut = _edges(walked, page.descending)
    # Links: `more` is about the walk's own direction.
    if query.before is None:
        page.next = order.token(last_cut) if more and last_cut is not None else None
        if cut is not None:
            page.previous = order.token(first_cut if first_cut is not None else cut)
    else:
        page.previous = order.token(first_cut) if more and first_cut is not None else None
        page.next = order.token(last_cut if last_cut is not None else cut) if cut else None
    if page.resume is not None:
        # Continue the scan from the last row examined, not the last row shown.
        if query.before is None:
            page.next = page.resume
        else:
            page.previous = page.resume
    return page


def _edges(walked: list[Walked], descending: bool) -> tuple[Cut | None, Cut | None]:
    """The cut before the first row shown and the cut after the last, in page order."""
    if not walked:
        return None, None
    if descending:
        return walked[0].after, walked[-1].before
    return walked[0].before, walked[-1].after


def _counted(table: Table, cells: Sequence[object]) -> Sequence[object]:
    """The cells a page's JSON shows of a row: its own, and the key (`keys`) again for a
    WITHOUT ROWID table (a rowid is a few digits, not counted)."""
    if not table.without_rowid:
        return cells
    return [*cells, *(cells[c.column] for c in table.primary_key if c.column is not None)]


async def _walk(
    order: Order, cut: Cut | None, backwards: bool, query: Browse, page: BrowsePage
) -> tuple[list[Walked], bool]:
    """Up to `query.size` matching rows from `cut` in the walk's direction, examining at
    most the budget; whether there may be more in that direction."""
    n = query.size
    checks = page.scanned_filters
    found: list[Walked] = []
    budget = max(query.budget, n)
    size = AnswerBudget(page.table, query.max_bytes)
    cut_row = page.shape.cut
    while True:
        scan = min(max(n, 200), budget - page.examined)
        want = scan if checks else size.chunk(n - len(found))
        if want <= 0:
            break
        if backwards:
            chunk, ended = await order.backward(cut, want)
            chunk.reverse()
        else:
            chunk, ended = await order.forward(cut, want)
        for i, walked in enumerate(chunk):
            page.examined += 1
            cut = walked.before if backwards else walked.after
            if all(f.matches(walked.row) for f in query.filters):
                if not size.take(walked.row, _counted(page.table, cut_row(walked.row))):
                    # The page's JSON is full: it ends before this row, which is next.
                    page.examined -= 1
                    return found, True
                found.append(walked)
                if len(found) == n:
                    return found, not (ended and i == len(chunk) - 1)
        if ended or not chunk:
            return found, False
    # The budget ran out: the next request resumes the scan where this one stopped.
    page.partial = True
    if cut is not None:
        page.resume = order.token(cut)
    return found, True
