"""One table of a database: its description and its row count.

Rules:
- A table is named in any case; an unknown one is a 404 that lists the tables there are.
- A table's rows are in `rows.py` and `lookups.py`; its export is in `exports.py`.
"""

from fastapi import APIRouter, Request

from examples.service import models
from examples.service.errors import ERROR_RESPONSES
from examples.service.queries.describe import table_detail
from examples.service.queries.rows import count_rows
from examples.service.query_check import QueryCheckedRoute
from examples.service.routes.params import DatabaseName, TableName, databases_of

__all__ = ["router"]


def router() -> APIRouter:
    """`GET /databases/{database}/tables/{table}` and `.../count`."""
    # Every endpoint here reads a table, so any may answer with these errors.
    router = APIRouter(route_class=QueryCheckedRoute, tags=["tables"], responses=ERROR_RESPONSES)

    @router.get(
        "/databases/{database}/tables/{table}",
        response_model=models.TableInfo,
        summary="One table: columns, key and indexes",
    )
    async def describe_table(
        request: Request, database: DatabaseName, table: TableName
    ) -> models.TableInfo:
        with databases_of(request).lease(database) as entry:
            return await table_detail(entry, table)

    @router.get(
        "/databases/{database}/tables/{table}/count",
        response_model=models.CountResponse,
        summary="A table's row count",
    )
    async def count(
        request: Request, database: DatabaseName, table: TableName
    ) -> models.CountResponse:
        with databases_of(request).lease(database) as entry:
            return await count_rows(entry, table)

    return router
