"""Rows by key: a page of a table in key order, one row, and the row count.

Rules:
- A page reads `limit + 1` rows after the previous page's last key, in `scan`s sized by
  `answer_size.AnswerBudget`: the extra row only says whether there is a next page, and is
  never shown. A page also ends before a row that would take its JSON past
  `max_answer_bytes`; its `next_after` is then the key of the last row it holds.
- Rows are shown cut to the table's columns (`Entry.shape`), and the bodies with rows are
  dicts for `responses.json_response`, in the order `models.RowsPage` and
  `models.RowResponse` list their fields; a page's rows are the JSON its `AnswerBudget`
  encoded while counting them, when it has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.storage import row_key
from core.storage import Row
from examples.service import models
from examples.service.databases import Entry
from examples.service.errors import ServiceError
from examples.service.queries.answer_size import AnswerBudget, check_row
from examples.service.queries.describe import find_table
from examples.service.queries.paging import encode_key, key_param, parse_key

__all__ = ["count_rows", "one_row", "rows_page"]


async def rows_page(
    entry: Entry,
    table: str,
    after: str | None,
    limit: int,
    link: Callable[[str], str],
    max_bytes: int,
) -> dict[str, Any]:
    """Up to `limit` rows of `table` after the key `after` (the first page if None), as
    many as fit in `max_bytes` of JSON (`answer_size.py`)."""
    info = find_table(entry, table)
    key = None if after is None else parse_key(info, after, "after")
    shape = entry.shape(info.name)
    budget = AnswerBudget(info, max_bytes)
    shown: list[Sequence[object]] = []
    last: Row | None = None
    more = False
    while not more:
        want = budget.chunk(limit + 1 - len(shown))
        found = await entry.db.scan(info.name, after=key, limit=want)
        cells = shape.rows(found[: limit - len(shown)])
        taken = budget.take_rows(found, cells)
        shown += cells[:taken]
        if taken:
            last = found[taken - 1]
        more = taken < len(found)  # a row that did not fit, or the one past the limit
        if len(found) < want:
            break
        key = row_key(info, found[-1])
    next_after: object = None
    next_url = None
    if more and last is not None:
        last_key = row_key(info, last)
        next_after = encode_key(last_key)
        next_url = link(key_param(last_key))
    encoded = budget.encoded()
    return {
        "database": entry.name,
        "table": info.name,
        "columns": shape.columns,
        "rows": shown if encoded is None else encoded,
        "next_after": next_after,
        "next": next_url,
    }


async def one_row(entry: Entry, table: str, key: str, max_bytes: int) -> dict[str, Any]:
    """The row of `table` with rowid (or primary key) `key`; `ServiceError` 404 if none,
    413 if it alone is larger than `max_bytes` of JSON."""
    info = find_table(entry, table)
    found = await entry.db.get(info.name, parse_key(info, key, "the row key"))
    if found is None:
        what = "rowid" if not info.without_rowid else "primary key"
        raise ServiceError(404, f"no row with {what} {key} in table {info.name!r}")
    shape = entry.shape(info.name)
    cells = list(shape.cut(found))
    check_row(info, found, cells, max_bytes)
    return {
        "database": entry.name,
        "table": info.name,
        "columns": shape.columns,
        "row": cells,
    }


async def count_rows(entry: Entry, table: str) -> models.CountResponse:
    """How many rows `table` holds."""
    info = find_table(entry, table)
    n = await entry.db.count(info.name)
    return models.CountResponse(database=entry.name, table=info.name, count=n)
