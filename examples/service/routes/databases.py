"""The `/databases` collection: which databases, and what is in one. (The home page, `/`,
is the browsing pages' own: `web/`.)

Rules:
- Reading a database's description leases it, like any other read: a database replaced
  or deleted meanwhile closes only after the description is made.
- Uploading and deleting (`PUT`/`DELETE /databases/{name}`) are in `uploads.py`.
"""

from fastapi import APIRouter, Request

from examples.service import models
from examples.service.errors import ERROR_RESPONSES
from examples.service.queries.describe import database_detail, summaries
from examples.service.query_check import QueryCheckedRoute
from examples.service.routes.params import DatabaseName, databases_of

__all__ = ["router"]


def router() -> APIRouter:
    """`GET /databases` and `GET /databases/{database}`."""
    router = APIRouter(route_class=QueryCheckedRoute, tags=["databases"])

    @router.get(
        "/databases",
        response_model=list[models.DatabaseSummary],
        summary="List the databases served",
    )
    async def list_databases(request: Request) -> list[models.DatabaseSummary]:
        return summaries(databases_of(request))

    @router.get(
        "/databases/{database}",
        response_model=models.DatabaseDetail,
        responses=ERROR_RESPONSES,
        summary="A database's tables and indexes, with their columns",
    )
    async def describe_database(request: Request, database: DatabaseName) -> models.DatabaseDetail:
        with databases_of(request).lease(database) as entry:
            return await database_detail(entry)

    return router
