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
from examples.service.query_check import QueryCheckedRoute
from examples.service.responses import json_response
from examples.service.routes.params import databases_of
from examples.service.settings import Settings

__all__ = ["router"]

_SLASHED_NAME_NOTE = "the name has a '/' in it, and a server decodes %2F"
_SLASHED_NAME: dict[int | str, dict[str, object]] = {
    404: {"model": models.ErrorResponse, "description": f"No such path: {_SLASHED_NAME_NOTE}."},
    405: {
        "model": models.ErrorResponse,
        "description": "The name has a '/' in it, which makes the path another "
        "endpoint's (a table's, say), one that only reads.",
    },
}
"""What routing answers before these endpoints are reached, for a name with a `/` in it."""
_UPLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": models.DatabaseSummary, "description": "Replaced an upload."},
    400: {
        "model": models.ErrorResponse,
        "description": "A Content-Length that is not a number, or a client that went away "
        "before the whole file was sent.",
    },
    **_SLASHED_NAME,
    413: {"model": models.ErrorResponse, "description": "Larger than the limit."},
    422: {"model": models.ErrorResponse, "description": "Not a valid database, or a bad name."},
}
_UPLOAD_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "description": "The SQLite database file itself, as the raw body.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""The raw body, documented by hand: the route reads it as a stream, not as a parameter."""
UploadName = Annotated[
    str, Path(description="1-64 letters, digits, '-' or '_'.", pattern=NAME_PATTERN)
]


def router(settings: Settings) -> APIRouter:
    """`PUT /databases/{name}` and `DELETE /databases/{name}`."""
    router = APIRouter(route_class=QueryCheckedRoute, tags=["databases"])

    @router.put(
        "/databases/{name}",
        response_model=models.DatabaseSummary,
        status_code=201,
        responses=_UPLOAD_RESPONSES,
        openapi_extra=_UPLOAD_BODY,
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
        responses={
            404: {
                "model": models.ErrorResponse,
                "description": "No such upload (or no such path: " + _SLASHED_NAME_NOTE + ").",
            },
            405: _SLASHED_NAME[405],
            422: ERROR_RESPONSES[422],
        },
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
