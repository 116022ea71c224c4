"""The query parameters of the browsing pages, parsed and checked.

Rules:
- A page takes only the parameters it documents (`docs/web.md`); any other is refused
  with a 422 that names every unknown parameter, so a mistyped filter never silently
  shows all the rows.
- Control parameters start with `_` (`_col`, `_sort`, `_sort_desc`, `_size`, `_next`,
  `_prev`, `_format`); on a table page every other parameter is a filter
  (`queries/filters.py`).
- The forms send `_filter_column`/`_filter_op`/`_filter_value` (add a filter) and
  `_lookup_column`/`_lookup_value` (an equality lookup); the page answers with a redirect
  to the canonical URL that has the filter as `column__op=value`.
- The format: a `.json` or `.csv` suffix on the page's path, or `_format`
  (`html`, `json`, `csv`), which, when given, makes the path count as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.storage import Table
from examples.service.encoding import TableShape
from examples.service.errors import ServiceError
from examples.service.queries.filters import Filter, parse_filter, resolve_column

__all__ = [
    "FORM_PARAMS",
    "Format",
    "TableParams",
    "check_known",
    "format_of",
    "parse_table_params",
    "split_suffix",
]

Format = Literal["html", "json", "csv"]
FORMATS: tuple[Format, ...] = ("html", "json", "csv")
TABLE_CONTROLS = ("_col", "_sort", "_sort_desc", "_size", "_next", "_prev", "_format")
FORM_PARAMS = (
    "_filter_column",
    "_filter_op",
    "_filter_value",
    "_lookup_column",
    "_lookup_value",
)


def check_known(items: Sequence[tuple[str, str]], known: Sequence[str]) -> None:
    """Refuse (422) any parameter not in `known`, naming them all."""
    unknown = sorted({name for name, _ in items if name not in known})
    if unknown:
        raise ServiceError(
            422,
            f"unknown query parameter(s): {', '.join(unknown)}; "
            f"this page takes: {', '.join(known) or 'none'}",
        )


def split_suffix(name: str) -> tuple[str, Format | None]:
    """`name` without a `.json`/`.csv` suffix, and the format the suffix asks for."""
    for fmt in ("json", "csv"):
        if name.endswith("." + fmt) and len(name) > len(fmt) + 1:
            return name[: -len(fmt) - 1], fmt
    return name, None


def format_of(items: Sequence[tuple[str, str]]) -> Format | None:
    """The `_format` parameter, if given; 422 for an unknown format."""
    given = [v for k, v in items if k == "_format"]
    if not given:
        return None
    if given[-1] not in FORMATS:
        raise ServiceError(422, f"_format must be one of {', '.join(FORMATS)}, got {given[-1]!r}")
    return given[-1]


@dataclass(frozen=True, slots=True)
class TableParams:
    """A table page's parameters."""

    columns: tuple[str, ...] | None
    """Columns to show, as the rows name them (None: all)."""
    sort: str | None
    descending: bool
    size: int
    after: str | None
    before: str | None
    filters: tuple[Filter, ...]


def _one(items: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in items if k == name]
    if len(values) > 1:
        raise ServiceError(422, f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def parse_table_params(
    items: Sequence[tuple[str, str]],
    table: Table,
    shape: TableShape,
    codec: str,
    *,
    default_size: int,
    max_size: int,
) -> TableParams:
    """Parse a table page's query; `ServiceError` 422 naming what is wrong."""
    filters: list[Filter] = []
    unknown: list[str] = []
    for name, value in items:
        if name in TABLE_CONTROLS or name in FORM_PARAMS:
            continue
        found = parse_filter(table, shape, codec, name, value)
        if found is None:
            unknown.append(name)
        else:
            filters.append(found)
    if unknown:
        raise ServiceError(
            422,
            f"unknown query parameter(s): {', '.join(sorted(set(unknown)))}; a filter is "
            f"column__op=value (op: eq, gt, ge, lt, le, contains, isnull, notnull) on one of "
            f"the columns {', '.join(shape.columns)}; controls: {', '.join(TABLE_CONTROLS)}",
        )
    chosen = [v for k, v in items if k == "_col"]
    columns = None
    if chosen:
        columns = tuple(resolve_column(table, shape, codec, c).name for c in chosen)
    sort = _one(items, "_sort")
    sort_desc = _one(items, "_sort_desc")
    if sort is not None and sort_desc is not None:
        raise ServiceError(422, "give _sort or _sort_desc, not both")
    size_text = _one(items, "_size")
    size = default_size
    if size_text is not None:
        try:
            size = int(size_text)
        except ValueError:
            raise ServiceError(422, f"_size must be an integer, got {size_text!r}") from None
        if not 1 <= size <= max_size:
            raise ServiceError(422, f"_size must be 1..{max_size}, got {size}")
    after, before = _one(items, "_next"), _one(items, "_prev")
    if after is not None and before is not None:
        raise ServiceError(422, "give _next or _prev, not both")
    return TableParams(
        columns,
        sort if sort is not None else sort_desc,
        sort_desc is not None,
        size,
        after,
        before,
        tuple(filters),
    )
