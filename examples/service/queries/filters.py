"""Row filters of the browsing pages: `column__op=value` query parameters.

Rules:
- A parameter `col__op=value` filters on column `col` (any case, as the rows name it,
  `rowid` included); a bare `col=value` means `col__eq=value`. The operators: `eq`,
  `gt`, `ge`, `lt`, `le` (comparison), `contains` (substring of the text; of the decimal
  text for a number, of the bytes of a blob), `isnull` and `notnull` (their value must be
  empty, `1` or `true`).
- A value compares as SQLite compares `WHERE col OP ?` with a text parameter: the
  column's affinity first (`year__gt=1990` is the integer 1990 on an INTEGER column), then
  the column's collation (a NOCASE column matches any case). NULL matches only `isnull`.
- Every filter is checked on every row a page shows (`matches`), whatever the walk: an
  index range (`sorting.IndexOrder`) or a rowid range only spares reading rows that could
  not match; it never decides alone.
- `index_for` says which index can serve a filter: a complete index (no WHERE) whose first
  column is the filter's column, ascending, under the column's collation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.storage import Affinity, Bound, Index, Row, Table, collation_key, fold_identifier
from examples.service.encoding import TableShape
from examples.service.errors import ServiceError

__all__ = [
    "COMPARISONS",
    "OPERATORS",
    "Filter",
    "FilterColumn",
    "filter_params",
    "index_for",
    "parse_filter",
    "resolve_column",
]

COMPARISONS = ("eq", "gt", "ge", "lt", "le")
OPERATORS = (*COMPARISONS, "contains", "isnull", "notnull")
"""Every operator, in the order the filter form lists them."""
SYMBOLS = {"eq": "=", "gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
_FLAG_VALUES = ("", "1", "true", "on", "yes")
_NUMERIC = (Affinity.INTEGER, Affinity.REAL, Affinity.NUMERIC)


@dataclass(frozen=True, slots=True)
class FilterColumn:
    """A column as rows show it: its name there, where its value is in a stored row, and
    how values compare with it."""

    name: str
    position: int
    table_column: int | None
    """The table's column number; None for a rowid that no column aliases."""
    affinity: Affinity
    collation: str
    key: Callable[[Any], Any]
    rowid: bool
    """The rowid, shown as its own column or aliased by an INTEGER PRIMARY KEY."""


def resolve_column(table: Table, shape: TableShape, codec: str, name: str) -> FilterColumn:
    """Column `name` (any case) of the rows of `table`; `ServiceError` 422 listing them."""
    folded = fold_identifier(name)
    shown = next((i for i, c in enumerate(shape.columns) if fold_identifier(c) == folded), None)
    if shown is None:
        raise ServiceError(
            422,
            f"table {table.name!r} has no column {name!r}; its columns are: "
            f"{', '.join(shape.columns)}",
        )
    column_name = shape.columns[shown]
    extra = 0 if table.without_rowid or table.rowid_alias is not None else 1
    position = shown if table.without_rowid else shown + (1 - extra)
    table_column = shown - extra if shown - extra >= 0 else None
    if table_column is None:
        binary = collation_key("BINARY", codec)
        return FilterColumn(column_name, 0, None, Affinity.INTEGER, "BINARY", binary, True)
    column = table.columns[table_column]
    collation = column.collation or "BINARY"
    return FilterColumn(
        column_name,
        position,
        table_column,
        column.affinity,
        collation,
        collation_key(collation, codec),
        table.rowid_alias == table_column,
    )


def _with_affinity(text: str, affinity: Affinity) -> object:
    """`text` as SQLite converts a text operand compared with a column of `affinity`."""
    if affinity not in _NUMERIC:
        return text
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        return text
    if math.isnan(number) or stripped.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        return text  # SQLite reads no infinity or NaN from text
    if affinity is not Affinity.REAL and number.is_integer() and abs(number) < 2**63:
        return int(number)
    return number


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter: `column op text`, `value` being `text` after the column's affinity."""

    column: FilterColumn
    op: str
    text: str
    value: object

    @property
    def param(self) -> tuple[str, str]:
        """The query parameter that asks for this filter."""
        return f"{self.column.name}__{self.op}", self.text

    def describe(self) -> str:
        """The filter in words, for the page."""
        name = self.column.name
        if self.op == "isnull":
            return f"{name} is null"
        if self.op == "notnull":
            return f"{name} is not null"
        if self.op == "contains":
            return f"{name} contains {self.text!r}"
        return f"{name} {SYMBOLS[self.op]} {self.value!r}"

    def matches(self, row: Row) -> bool:
        """Whether stored row `row` passes."""
        cell = row[self.column.position]
        op = self.op
        if op == "isnull":
            return cell is None
        if cell is None:
            return False
        if op == "notnull":
            return True
        if op == "contains":
            return _contains(cell, self.text, self.column.collation)
        key = self.column.key
        mine, theirs = key(cell), key(self.value)
        if op == "eq":
            return bool(mine == theirs)
        if op == "gt":
            return bool(mine > theirs)
        if op == "ge":
            return bool(mine >= theirs)
        if op == "lt":
            return bool(mine < theirs)
        return bool(mine <= theirs)

    def bounds(self) -> tuple[Bound | None, Bound | None]:
        """The range of the column this filter keeps, for an index or rowid walk."""
        value = self.value
        if self.op == "eq":
            return Bound(value, inclusive=True), Bound(value, inclusive=True)
        if self.op in ("gt", "ge"):
            return Bound(value, inclusive=self.op == "ge"), None
        if self.op in ("lt", "le"):
            return None, Bound(value, inclusive=self.op == "le")
        if self.op == "notnull":
            return Bound(float("-inf"), inclusive=True), None
        return None, None


def _contains(cell: object, text: str, collation: str) -> bool:
    if isinstance(cell, bytes):
        return text.encode() in cell
    if isinstance(cell, str):
        if collation == "NOCASE":
            return text.lower() in cell.lower()
        return text in cell
    return text in (repr(cell) if isinstance(cell, float) else str(cell))


def parse_filter(
    table: Table, shape: TableShape, codec: str, name: str, text: str
) -> Filter | None:
    """The filter parameter `name=text` asks for, or None if `name` names no column and
    no `column__op`. A name that is a column's whole name is that column's equality,
    even if it ends like an operator (`a__gt` of a column named so)."""
    column_name, op = name, "eq"
    head, sep, tail = name.rpartition("__")
    is_column = any(fold_identifier(c) == fold_identifier(name) for c in shape.columns)
    if sep and tail in OPERATORS and head and not is_column:
        column_name, op = head, tail
    try:
        column = resolve_column(table, shape, codec, column_name)
    except ServiceError:
        if op != "eq" or (sep and tail in OPERATORS):
            raise
        return None
    if op in ("isnull", "notnull"):
        if text.strip().lower() not in _FLAG_VALUES:
            raise ServiceError(422, f"{name} takes no value (give {name}=1), got {text!r}")
        return Filter(column, op, "1", None)
    value = text if op == "contains" else _with_affinity(text, column.affinity)
    return Filter(column, op, text, value)


def index_for(
    column: FilterColumn, indexes: Sequence[Index], partial_ok: bool = False
) -> Index | None:
    """The index that walks `column` in its own order: the narrowest complete index whose
    first column it is, ascending and under the column's collation, of table columns
    only; None if none."""
    if column.table_column is None:
        return None
    found = [
        index
        for index in indexes
        if index.columns
        and index.columns[0].column == column.table_column
        and not index.columns[0].descending
        and (index.columns[0].collation or "BINARY").upper() == column.collation.upper()
        and (partial_ok or index.where is None)
        # A walk's positions are index entries made from rows: no expressions.
        and all(c.column is not None for c in index.columns)
    ]
    found.sort(key=lambda i: (len(i.columns), i.name))
    return found[0] if found else None


def filter_params(filters: Sequence[Filter]) -> list[tuple[str, str]]:
    """The query parameters of `filters`, in order."""
    return [f.param for f in filters]
