"""Writes: insert, update and delete rows, and batches of changes in one transaction.

Rules:
- Every route here depends on `write_access.require_write_token` (403 while writes are
  disabled, 401 without the token) and runs one function of `queries/changes.py`,
  which the HTML pages share; each request is one transaction, committed and durable
  before the answer is sent, so every later read sees it.
- A row is addressed as in reads: `/rows/{key}`, the key a rowid. Bodies carry values as
  the read API shows them (blobs as `{"$base64": true, "encoded": ...}`).
- Every status a write can answer is declared here for the OpenAPI schema.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from examples.service import models
from examples.service.errors import ERROR_RESPONSES, ServiceError
from examples.service.queries.changes import (
    ChangeSpec,
    apply_batch,
    delete_row,
    insert_row,
    parse_row_key,
    update_row,
)
from examples.service.query_check import QueryCheckedRoute
from examples.service.responses import json_response
from examples.service.routes.params import DatabaseName, TableName, databases_of
from examples.service.settings import Settings
from examples.service.write_access import require_write_token

__all__ = ["WRITE_RESPONSES", "router"]


def _error(description: str) -> dict[str, Any]:
    return {"model": models.ErrorResponse, "description": description}


WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("No write token, or a wrong one: send 'Authorization: Bearer TOKEN'."),
    403: _error("Writes are disabled: the service was started without a write token."),
    404: ERROR_RESPONSES[404],
    405: _error(
        "The path is another endpoint's, one that does not take this method: a name that "
        "is empty or has a '/' in it (servers decode %2F) moves the path's segments."
    ),
    409: _error("The change breaks a constraint (named); nothing was changed."),
    413: _error("The request body is larger than the limit."),
    422: _error(
        "A bad value, column, key or body; or a table this engine does not write "
        "(WITHOUT ROWID, virtual, with triggers, CHECK or foreign keys)."
    ),
    500: ERROR_RESPONSES[500],
    503: _error("Another connection holds the database's write lock; retry after Retry-After."),
}
"""The error answers of a write, for the OpenAPI schema."""

RowKey = Annotated[str, Path(description="The rowid of the row.")]


def router(settings: Settings) -> APIRouter:
    """`POST .../rows`, `PATCH`/`DELETE .../rows/{key}` and `POST /databases/{db}/batch`."""
    router = APIRouter(
        route_class=QueryCheckedRoute,
        tags=["writes"],
        responses=WRITE_RESPONSES,
        dependencies=[Depends(require_write_token)],
    )
    limit = f"At most {settings.max_write_bytes} bytes of JSON."

    @router.post(
        "/databases/{database}/tables/{table}/rows",
        response_model=models.WrittenRow,
        status_code=201,
        summary="Insert a row",
        description="`values` maps column names to values; columns not named take their "
        "DEFAULT (or NULL), and the rowid is the INTEGER PRIMARY KEY's value if given, "
        f"else the next one. Answers with the row as written and its key. {limit}",
    )
    async def insert(
        request: Request, database: DatabaseName, table: TableName, body: models.RowValues
    ) -> Response:
        with databases_of(request).lease(database) as entry:
            return json_response(await insert_row(entry, table, body.values), 201)

    @router.patch(
        "/databases/{database}/tables/{table}/rows/{key:path}",
        response_model=models.WrittenRow,
        summary="Change some columns of a row",
        description=f"Only the columns named in `values` change. {limit}",
    )
    async def update(
        request: Request,
        database: DatabaseName,
        table: TableName,
        key: RowKey,
        body: models.RowValues,
    ) -> Response:
        with databases_of(request).lease(database) as entry:
            rowid = parse_row_key(entry, table, key)
            written = await update_row(entry, table, rowid, body.values)
            if written is None:
                raise _missing(table, rowid)
            return json_response(written)

    @router.delete(
        "/databases/{database}/tables/{table}/rows/{key:path}",
        status_code=204,
        summary="Delete a row",
    )
    async def delete(
        request: Request, database: DatabaseName, table: TableName, key: RowKey
    ) -> Response:
        with databases_of(request).lease(database) as entry:
            rowid = parse_row_key(entry, table, key)
            if not await delete_row(entry, table, rowid):
                raise _missing(table, rowid)
        return Response(status_code=204)

    @router.post(
        "/databases/{database}/batch",
        response_model=models.BatchResponse,
        summary="Make several changes in one transaction",
        description="Inserts, updates and deletes on any tables of the database, in order, "
        "in one transaction: all of them are kept, or none (an error names the change "
        "that failed, and a missing row fails the batch with 404). "
        f"At most {settings.max_batch_changes} changes. {limit}",
    )
    async def batch(
        request: Request, database: DatabaseName, body: models.BatchRequest
    ) -> Response:
        if len(body.changes) > settings.max_batch_changes:
            raise ServiceError(
                422,
                f"a batch holds at most {settings.max_batch_changes} changes, got "
                f"{len(body.changes)}; send several",
            )
        changes = [ChangeSpec(c.op, c.table, c.key, c.values) for c in body.changes]
        with databases_of(request).lease(database) as entry:
            results = await apply_batch(entry, changes)
            return json_response({"database": entry.name, "results": results})

    return router


def _missing(table: str, rowid: int) -> ServiceError:
    return ServiceError(404, f"no row with rowid {rowid} in table {table!r}")
