"""A table's rows: a page in key order, one row by key, and rows by an indexed column.

Rules:
- Keyset pagination: a page ends with `next_after`, the key of its last row (for a lookup,
  an opaque token), and `next`, the URL of the page after it; that page is a fresh read
  from there, so page 1,000 costs what page 1 costs (`queries/rows.py`).
- A key is a rowid, or for a WITHOUT ROWID table a JSON array of the primary-key values
  (`queries/paging.py`). In `/rows/{key}` it is the rest of the path, so that a `/` in
  it (a text value's, or a blob's base64) does not end it.
- A lookup's search is checked before the database is leased: a request that asks for
  nothing, or for two things, is refused (422) whatever database it names. It goes
  through an index whose first column is `column`, or through the rowid, never through
  the whole table, and its body names the index (`queries/lookup.py`).
"""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from examples.service import models
from examples.service.errors import ERROR_RESPONSES, TOO_LARGE_RESPONSE
from examples.service.queries.lookup import Search
from examples.service.queries.lookup import lookup as run_lookup
from examples.service.queries.rows import one_row, rows_page
from examples.service.query_check import QueryCheckedRoute
from examples.service.responses import json_response
from examples.service.routes.params import (
    DatabaseName,
    TableName,
    databases_of,
    limit_param,
    next_page_link,
)
from examples.service.settings import Settings

__all__ = ["router"]

_ROWS_DOC = (
    "Keyset pagination: pass the previous page's `next_after` as `after` (or follow "
    "`next`). Each page is one read of the table from where the last one ended, "
    "however deep into the table it is. A page also ends early, before a row that would "
    "take its JSON past `max_answer_bytes`; a single row larger than that is a 413."
)
_ROW_DOC = (
    "`key` is the rowid; for a WITHOUT ROWID table, a JSON array of the primary-key "
    "values (or the value itself for a one-column key)."
)
_LOOKUP_DOC = (
    "Finds rows through an index whose first column is `column` (or through the "
    "rowid), never by reading the whole table; the response names the index. Give "
    "`eq`, or any of `gt`/`ge` and `lt`/`le`. Values are compared as SQLite compares "
    "`WHERE column = ?` with a text parameter: the column's affinity applies first, "
    "then the index's collation (so a NOCASE index matches any case). Repeat `column` "
    "(and `eq`) to search the leading columns of an index or of a WITHOUT ROWID table's "
    "primary key: `column=book_id&column=reviewer&eq=11&ge=c`. Page with `after` = the "
    "previous page's `next_after`, a key: each page is one seek, however deep."
)
Column = Annotated[
    list[str],
    Query(
        description="An indexed column (see `lookup_columns`). Repeat it to search the "
        "first columns of an index or primary key, in order."
    ),
]
Equal = Annotated[
    list[str],
    Query(
        description="Rows whose value equals this; one per column, or one fewer with a "
        "range on the last column."
    ),
]
Above = Annotated[str | None, Query(description="Lower bound, exclusive.")]
AtLeast = Annotated[str | None, Query(description="Lower bound, inclusive.")]
Below = Annotated[str | None, Query(description="Upper bound, exclusive.")]
AtMost = Annotated[str | None, Query(description="Upper bound, inclusive.")]
AfterKey = Annotated[
    str | None,
    Query(
        description="Start after this key: a rowid, or for a WITHOUT ROWID table a "
        "JSON array of primary-key values. Omit for the first page."
    ),
]
AfterToken = Annotated[str | None, Query(description="The previous page's `next_after`.")]


def router(settings: Settings) -> APIRouter:
    """`GET /databases/{database}/tables/{table}/rows`, `.../rows/{key}` and `.../lookup`."""
    # Every endpoint here reads a table, so any may answer with these errors, and with 413
    # for a row too large to answer (`max_answer_bytes`).
    router = APIRouter(
        route_class=QueryCheckedRoute,
        tags=["rows"],
        responses={**ERROR_RESPONSES, **TOO_LARGE_RESPONSE},
    )
    Limit = limit_param(settings)

    @router.get(
        "/databases/{database}/tables/{table}/rows",
        response_model=models.RowsPage,
        summary="A page of rows in key order",
        description=_ROWS_DOC,
    )
    async def rows(
        request: Request,
        database: DatabaseName,
        table: TableName,
        after: AfterKey = None,
        limit: Limit = settings.default_limit,  # type: ignore[valid-type]
    ) -> Response:
        with databases_of(request).lease(database) as entry:
            page = await rows_page(
                entry, table, after, limit, next_page_link(request), settings.max_answer_bytes
            )
            return json_response(page)

    @router.get(
        # `:path`: the key is the rest of the path, `/`s and all. A text key, or a blob's
        # base64, may hold a `/`, which a client sends as %2F and a server decodes.
        "/databases/{database}/tables/{table}/rows/{key:path}",
        response_model=models.RowResponse,
        summary="One row by rowid (or primary key)",
        description=_ROW_DOC,
    )
    async def row(
        request: Request,
        database: DatabaseName,
        table: TableName,
        key: Annotated[str, Path(description="The rowid, or the primary key.")],
    ) -> Response:
        with databases_of(request).lease(database) as entry:
            return json_response(await one_row(entry, table, key, settings.max_answer_bytes))

    @router.get(
        "/databases/{database}/tables/{table}/lookup",
        response_model=models.LookupPage,
        summary="Rows by an indexed column's value or range",
        description=_LOOKUP_DOC,
    )
    async def lookup(
        request: Request,
        database: DatabaseName,
        table: TableName,
        column: Column,
        eq: Equal = [],  # noqa: B006 (FastAPI copies a parameter's default)
        gt: Above = None,
        ge: AtLeast = None,
        lt: Below = None,
        le: AtMost = None,
        limit: Limit = settings.default_limit,  # type: ignore[valid-type]
        after: AfterToken = None,
    ) -> Response:
        search = Search.of(column, eq, gt, ge, lt, le, limit, after, settings.max_answer_bytes)
        with databases_of(request).lease(database) as entry:
            page = await run_lookup(entry, table, search, next_page_link(request))
            return json_response(page)

    return router
