"""A table's export: the whole table streamed as NDJSON or CSV.

Rules:
- The response streams as the table is read, one page of rows per chunk, and holds its
  database's lease until the stream ends, however it ends (`queries/export.py`,
  `responses.ClosingStreamingResponse`).
- An error found on the first page is an ordinary HTTP error; a later one ends the
  response early.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from examples.service.errors import ERROR_RESPONSES
from examples.service.queries.export import ExportFormat, export_chunks, start_export
from examples.service.query_check import QueryCheckedRoute
from examples.service.responses import ClosingStreamingResponse
from examples.service.routes.params import DatabaseName, TableName, databases_of
from examples.service.settings import Settings

__all__ = ["router"]

_EXPORT_DOC = (
    "Streams every row in key order, reading one page of rows per chunk sent, so "
    "memory stays flat on a table of any size. NDJSON: one JSON object per row. "
    "CSV: a header line, NULL as an empty field, blobs as base64. A read error "
    "after the first chunk ends the response early (the transfer is incomplete)."
)
_STREAMED = {
    "description": "The whole table, streamed as it is read.",
    "content": {"application/x-ndjson": {}, "text/csv": {}},
}
_MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def router(settings: Settings) -> APIRouter:
    """`GET /databases/{database}/tables/{table}/export`."""
    router = APIRouter(route_class=QueryCheckedRoute, tags=["tables"])

    @router.get(
        "/databases/{database}/tables/{table}/export",
        responses={200: _STREAMED, **ERROR_RESPONSES},
        response_class=StreamingResponse,
        summary="Export a whole table as NDJSON or CSV",
        description=_EXPORT_DOC,
    )
    async def export(
        request: Request,
        database: DatabaseName,
        table: TableName,
        format: Annotated[ExportFormat, Query(description="ndjson (default) or csv.")] = "ndjson",
    ) -> Response:
        started = await start_export(
            databases_of(request), database, table, settings.export_page_rows
        )
        filename = f"{started.table.name}.{format}"
        return ClosingStreamingResponse(
            export_chunks(started, format),
            on_close=started.close,
            media_type=_MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    return router
