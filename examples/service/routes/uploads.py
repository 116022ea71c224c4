"""Uploads: adding, replacing and deleting a database (`PUT`/`DELETE /databases/{name}`).

Rules:
- The file is the raw request body, streamed to disk, checked page by page through the
  core, and served only if it is valid (`Databases.upload`); uploads are served immutable.
- A body past the limit is refused with 413 as soon as the limit is passed, or at once if
  its Content-Length says so.
- The sample cannot be replaced or deleted; a name is 1-64 letters, digits, '-' or '_'.
"""

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from examples.service import models
from examples.service.databases import NAME_PATTERN
from examples.service.errors import ERROR_RESPONSES, ServiceError
from examples.service.queries.describe import summary
from examples.service.responses import json_response
from examples.service.routes.params import databases_of
from examples.service.settings import Settings

__all__ = ["router"]

_UPLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": models.DatabaseSummary, "description": "Replaced an upload."},
    413: {"model": models.ErrorResponse, "description": "Larger than the limit."},
    422: {"model": models.ErrorResponse, "description": "Not a valid database, or a bad name."},
}
UploadName = Annotated[
    str, Path(description="1-64 letters, digits, '-' or '_'.", pattern=NAME_PATTERN)
]


def router(settings: Settings) -> APIRouter:
    """`PUT /databases/{name}` and `DELETE /databases/{name}`."""
    router = APIRouter(tags=["databases"])

    @router.put(
        "/databases/{name}",
        response_model=models.DatabaseSummary,
        status_code=201,
        responses=_UPLOAD_RESPONSES,
        summary="Upload a database (the file is the raw request body)",
        description=(
            "Send the SQLite file as the body, e.g. `curl -T my.db "
            "http://127.0.0.1:8000/databases/my`. The file is streamed to disk, opened and "
            "checked page by page through the core, and served under `name` only if it is "
            f"valid. At most {settings.max_upload_bytes} bytes. Uploads are served immutable."
        ),
    )
    async def upload(request: Request, name: UploadName) -> Response:
        databases = databases_of(request)
        entry, created = await databases.upload(
            name, request.stream(), declared_length=_declared_length(request)
        )
        with databases.lease(entry.name):
            body = summary(entry)
        return json_response(body.model_dump(), 201 if created else 200)

    @router.delete(
        "/databases/{name}",
        status_code=204,
        responses={404: ERROR_RESPONSES[404], 422: ERROR_RESPONSES[422]},
        summary="Delete an uploaded database",
    )
    async def delete(request: Request, name: str) -> Response:
        databases_of(request).delete(name)
        return Response(status_code=204)

    return router


def _declared_length(request: Request) -> int | None:
    """The body's Content-Length, if it says one; raises `ServiceError` 400 if it is bad."""
    declared = request.headers.get("content-length")
    try:
        return int(declared) if declared is not None else None
    except ValueError:
        raise ServiceError(400, f"bad Content-Length: {declared!r}") from None
