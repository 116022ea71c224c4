"""Rows by key: a page of a table in key order, one row, and the row count.

Rules:
- A page is one `scan` of `limit + 1` rows after the previous page's last key: the extra
  row only says whether there is a next page, and is never shown.
- Rows are shown cut to the table's columns (`Entry.shape`), and the bodies with rows are
  dicts for `responses.json_response`, in the order `models.RowsPage` and
  `models.RowResponse` list their fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.storage import row_key
from examples.service import models
from examples.service.databases import Entry
from examples.service.errors import ServiceError
from examples.service.queries.describe import find_table
from examples.service.queries.paging import encode_key, key_param, parse_key

__all__ = ["count_rows", "one_row", "rows_page"]


async def rows_page(
    entry: Entry, table: str, after: str | None, limit: int, link: Callable[[str], str]
) -> dict[str, Any]:
    """Up to `limit` rows of `table` after the key `after` (the first page if None)."""
    info = find_table(entry, table)
    key = None if after is None else parse_key(info, after, "after")
    found = await entry.db.scan(info.name, after=key, limit=limit + 1)
    shape = entry.shape(info.name)
    next_after: object = None
    next_url = None
    if len(found) > limit:
        del found[limit:]
        last = row_key(info, found[-1])
        next_after = encode_key(last)
        next_url = link(key_param(last))
    return {
        "database": entry.name,
        "table": info.name,
        "columns": shape.columns,
        "rows": shape.rows(found),
        "next_after": next_after,
        "next": next_url,
    }


async def one_row(entry: Entry, table: str, key: str) -> dict[str, Any]:
    """The row of `table` with rowid (or primary key) `key`; `ServiceError` 404 if none."""
    info = find_table(entry, table)
    found = await entry.db.get(info.name, parse_key(info, key, "the row key"))
    if found is None:
        what = "rowid" if not info.without_rowid else "primary key"
        raise ServiceError(404, f"no row with {what} {key} in table {info.name!r}")
    shape = entry.shape(info.name)
    return {
        "database": entry.name,
        "table": info.name,
        "columns": shape.columns,
        "row": list(shape.cut(found)),
    }


async def count_rows(entry: Entry, table: str) -> models.CountResponse:
    """How many rows `table` holds."""
    info = find_table(entry, table)
    n = await entry.db.count(info.name)
    return models.CountResponse(database=entry.name, table=info.name, count=n)
