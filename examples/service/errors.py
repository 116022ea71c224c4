"""How the service answers an error: the exception-to-HTTP mapping and the error body.

Rules:
- Every error is an HTTP error a user can act on, with the body `{"detail": ...}` (and
  `"page"` when a page is to blame): 404 for an unknown database, table or row, 422 for a
  bad parameter (the message names it), 413 for an upload past the limit or a row larger
  than `max_answer_bytes`, 500 naming the page for a corrupt database, 503 while a
  writer holds a database's lock.
- Code that handles a request raises; it never builds an error response itself. Our own
  refusals are `ServiceError`s; the storage engine's, the served databases' and the
  framework's exceptions are translated here, at the boundary, and nowhere else.
- What a user cannot fix (a corrupt page, a failed read) is also logged; what they can
  (a bad parameter) is not.
- `ERROR_RESPONSES` is what the OpenAPI schema says the endpoints may answer.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from core import CompletionError
from core.storage import (
    ConstraintError,
    CorruptDatabaseError,
    DatabaseBusyError,
    HotJournalError,
    SchemaError,
    StorageError,
    UnsupportedError,
)
from examples.service import models
from examples.service.databases import (
    DatabaseNameError,
    InvalidUploadError,
    UnknownDatabaseError,
    UploadTooLargeError,
)

__all__ = [
    "ERROR_RESPONSES",
    "TOO_LARGE_RESPONSE",
    "ServiceError",
    "error_response",
    "install_error_handlers",
    "storage_error",
]

log = logging.getLogger("examples.service")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": models.ErrorResponse, "description": "No such database, table or row."},
    422: {"model": models.ErrorResponse, "description": "A parameter is not valid."},
    500: {"model": models.ErrorResponse, "description": "The database is corrupt (page named)."},
    503: {"model": models.ErrorResponse, "description": "A writer holds the database's lock."},
}
"""The error answers of an endpoint that reads a database, for the OpenAPI schema."""

TOO_LARGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    413: {
        "model": models.ErrorResponse,
        "description": "A row alone is larger than `max_answer_bytes` of JSON (key named).",
    },
}
"""The error answer of an endpoint that answers with rows, for the OpenAPI schema."""


class ServiceError(Exception):
    """An error to answer with `status` and `detail` (and the page, for corruption)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        page: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.page = page
        self.headers = headers


def error_response(
    status: int, detail: str, page: int | None = None, headers: Any = None
) -> Response:
    """The error body every error answers with."""
    body: dict[str, object] = {"detail": detail}
    if page is not None:
        body["page"] = page
    return JSONResponse(body, status_code=status, headers=headers)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, _without_paths(request, exc.detail), exc.page, exc.headers)


async def _unknown_database(request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc))


async def _bad_name(request: Request, exc: Exception) -> Response:
    return error_response(422, str(exc))


async def _too_large(request: Request, exc: Exception) -> Response:
    # The rest of the body is not read: the connection cannot carry another request.
    return error_response(413, str(exc), headers={"Connection": "close"})


async def _invalid_upload(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidUploadError)
    return error_response(422, str(exc), exc.page)


def _without_paths(request: Request, text: str) -> str:
    """`text` with the server's file paths replaced by the names they are served under: a
    client knows the database by its name, and the server's layout is none of its
    business."""
    databases = getattr(request.app.state, "databases", None)
    if databases is not None:
        for entry in databases.entries.values():
            text = text.replace(str(entry.path), entry.name)
        settings = databases.settings
        text = text.replace(str(settings.data_dir), "<data>")
    return text


async def _storage_error(request: Request, exc: Exception) -> Response:
    database = request.path_params.get("database", "?")
    response = storage_error(database, exc)
    return error_response(
        response.status,
        _without_paths(request, response.detail),
        response.page,
        response.headers,
    )


def storage_error(database: str, exc: Exception) -> ServiceError:
    """The HTTP error for storage error `exc` met while serving `database` (what it is
    answered with; logged here when a user cannot fix it)."""
    if isinstance(exc, CorruptDatabaseError):
        log.error("database %r is corrupt: %s", database, exc)
        where = f" (page {exc.page})" if exc.page is not None else ""
        detail = f"database {database!r} is corrupt{where}: {exc.detail}"
        return ServiceError(500, detail, page=exc.page)
    if isinstance(exc, DatabaseBusyError):
        detail = f"database {database!r} is busy: another connection holds its lock ({exc})"
        return ServiceError(503, detail, headers={"Retry-After": "1"})
    if isinstance(exc, HotJournalError):
        log.error("database %r: %s", database, exc)
        return ServiceError(503, f"database {database!r} needs recovery by SQLite first: {exc}")
    if isinstance(exc, ConstraintError):
        return ServiceError(409, f"{exc} (constraint: {exc.constraint}); nothing was changed")
    if isinstance(exc, SchemaError | UnsupportedError):
        return ServiceError(422, str(exc))
    log.error("database %r: %s", database, exc)
    return ServiceError(500, f"database {database!r}: {exc}")


async def _read_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: I/O error: %s", request.method, request.url.path, exc)
    return error_response(500, f"the database could not be read: {exc}")


async def _disconnected(request: Request, exc: Exception) -> Response:
    # Nobody is left to read it; the status is for the access log.
    return error_response(400, "the client went away before the request was complete")


async def _no_route(request: Request, exc: Exception) -> Response:
    # Routing's own answers (no endpoint at the path, or not for this method), raised
    # before any endpoint runs: they name the request instead of a bare status phrase.
    assert isinstance(exc, StarletteHTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        detail = f"no endpoint at {where}; the endpoints are listed at /docs"
    elif exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body that is not text (bytes that are not UTF-8): for
        # the caller it is a body that is not JSON, as malformed JSON is (422).
        return error_response(422, "the request body is not JSON (UTF-8 text)")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    else:
        detail = str(exc.detail)
    return error_response(exc.status_code, detail, headers=exc.headers)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path"))
        got = f" (got {error['input']!r})" if "input" in error else ""
        parts.append(f"{where}: {error.get('msg', 'invalid')}{got}")
    return error_response(422, "; ".join(parts) or "invalid request")


Handler = Callable[[Request, Exception], Awaitable[Response]]
"""An exception handler, as Starlette calls it."""

_HANDLERS: tuple[tuple[type[Exception], Handler], ...] = (
    (RequestValidationError, _bad_request),
    (StarletteHTTPException, _no_route),
    (ServiceError, _service_error),
    (UnknownDatabaseError, _unknown_database),
    (DatabaseNameError, _bad_name),
    (UploadTooLargeError, _too_large),
    (InvalidUploadError, _invalid_upload),
    (StorageError, _storage_error),
    (CompletionError, _read_error),
    (ClientDisconnect, _disconnected),
)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception this module knows with its error response."""
    for exc_class, handler in _HANDLERS:
        app.add_exception_handler(exc_class, handler)
