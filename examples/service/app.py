"""The FastAPI application: browse and query SQLite databases through the async core.

Theory of operation:
- One `AsyncFileIO` is opened in the lifespan and closed on shutdown; every read of every
  request is one `await drive(op, io)` on it (through `bridge.storage.AsyncDatabase`), so
  the event loop never blocks on a page: cache hits finish inline, misses go to the
  backend's small worker pool.
- Each request leases the database it reads (`Databases.acquire`/`release`), so a database
  replaced or deleted meanwhile closes only after its last reader is done.
- Pages of rows use keyset pagination: a page ends with the key of its last row
  (`next_after`), and the next page is a fresh `scan` after that key. Index lookups page
  the same way, continuing from the last index value they returned.
- An export streams: one `scan` of `export_page_rows` rows per chunk sent, so memory stays
  flat whatever the table's size, and a client that goes away stops the reading at once
  (the cancellation reaches the `drive` in progress, which aborts its read).
- Errors are HTTP errors a user can act on: 404 for an unknown database, table or row, 422
  for a bad parameter (the message names it), 413 for an upload past the limit, 500 naming
  the page for a corrupt database (and logged), 503 while a writer holds the sample's lock.
- Bodies with rows are encoded by `encoding.dumps` (blobs as base64 with a marker,
  infinities as marked strings) and returned directly; `models.py` describes them for the
  OpenAPI schema, and the tests hold them to it.
"""

import asyncio
import base64
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Send

from bridge import AsyncFileIO
from bridge.storage import row_key
from core import CompletionError
from core.storage import (
    Bound,
    CorruptDatabaseError,
    DatabaseBusyError,
    HotJournalError,
    Index,
    SchemaError,
    StorageError,
    Table,
    UnsupportedError,
    collation_key,
    fold_identifier,
)
from examples.service import models
from examples.service.databases import (
    NAME_PATTERN,
    DatabaseNameError,
    Databases,
    Entry,
    InvalidUploadError,
    UnknownDatabaseError,
    UploadTooLargeError,
)
from examples.service.encoding import TableShape, decode_cell, dumps, encode_cell
from examples.service.sample import create_sample_database
from examples.service.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("examples.service")

_JSON = "application/json"
_MAX_ROWID = (1 << 63) - 1
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": models.ErrorResponse, "description": "No such database, table or row."},
    422: {"model": models.ErrorResponse, "description": "A parameter is not valid."},
    500: {"model": models.ErrorResponse, "description": "The database is corrupt (page named)."},
    503: {"model": models.ErrorResponse, "description": "A writer holds the database's lock."},
}


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


def _json(payload: object, status: int = 200) -> Response:
    return Response(dumps(payload), status_code=status, media_type=_JSON)


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body iterator, so an export's reading
    and its lease end as soon as the response does, however it ends."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose: Callable[[], Awaitable[None]] | None = getattr(
                self.body_iterator, "aclose", None
            )
            if aclose is not None:
                await aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, configured by `settings` (default: `Settings.from_env()`)."""
    settings = settings if settings is not None else Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.create_sample and not settings.sample_path.exists():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            log.warning(
                "creating the sample database at %s (%d books; first run only)",
                settings.sample_path,
                settings.sample_rows,
            )
            await asyncio.to_thread(
                create_sample_database, settings.sample_path, rows=settings.sample_rows
            )
        async with AsyncFileIO(workers=settings.workers, nowait=settings.nowait) as io:
            databases = Databases(io, settings)
            await databases.start()
            app.state.databases = databases
            app.state.io = io
            try:
                yield
            finally:
                databases.close()

    app = FastAPI(
        title="ioresult SQLite browser",
        version="0.1.0",
        summary="Browse and query SQLite databases through ioresult's async core.",
        description=(
            "Every page of every database is read by the storage engine in `core.storage`, "
            "driven from the event loop with `await bridge.drive(op)`. Blobs appear in JSON "
            'as `{"$base64": true, "encoded": ...}`, infinities as `{"$float": "Infinity"}`.'
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    _install_error_handlers(app)
    _add_routes(app, settings)
    return app


# -- errors ------------------------------------------------------------------------------


def _error(status: int, detail: str, page: int | None = None, headers: Any = None) -> Response:
    body: dict[str, object] = {"detail": detail}
    if page is not None:
        body["page"] = page
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return _error(exc.status, exc.detail, exc.page, exc.headers)

    async def unknown_database(request: Request, exc: Exception) -> Response:
        return _error(404, str(exc))

    async def bad_name(request: Request, exc: Exception) -> Response:
        return _error(422, str(exc))

    async def too_large(request: Request, exc: Exception) -> Response:
        return _error(413, str(exc), headers={"Connection": "close"})

    async def invalid_upload(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidUploadError)
        return _error(422, str(exc), exc.page)

    async def storage_error(request: Request, exc: Exception) -> Response:
        return _storage_response(request, exc)

    async def read_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s: I/O error: %s", request.method, request.url.path, exc)
        return _error(500, f"the database could not be read: {exc}")

    async def disconnected(request: Request, exc: Exception) -> Response:
        # Nobody is left to read it; the status is for the access log.
        return _error(400, "the client went away before the request was complete")

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path"))
            got = f" (got {error['input']!r})" if "input" in error else ""
            parts.append(f"{where}: {error.get('msg', 'invalid')}{got}")
        return _error(422, "; ".join(parts) or "invalid request")

    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(UnknownDatabaseError, unknown_database)
    app.add_exception_handler(DatabaseNameError, bad_name)
    app.add_exception_handler(UploadTooLargeError, too_large)
    app.add_exception_handler(InvalidUploadError, invalid_upload)
    app.add_exception_handler(StorageError, storage_error)
    app.add_exception_handler(CompletionError, read_error)
    app.add_exception_handler(ClientDisconnect, disconnected)


def _storage_response(request: Request, exc: Exception) -> Response:
    database = request.path_params.get("database", "?")
    if isinstance(exc, CorruptDatabaseError):
        log.error("database %r is corrupt: %s", database, exc)
        where = f" (page {exc.page})" if exc.page is not None else ""
        return _error(500, f"database {database!r} is corrupt{where}: {exc.detail}", exc.page)
    if isinstance(exc, DatabaseBusyError):
        return _error(503, f"database {database!r} is busy: {exc}", headers={"Retry-After": "1"})
    if isinstance(exc, HotJournalError):
        log.error("database %r: %s", database, exc)
        return _error(503, f"database {database!r} needs recovery by SQLite first: {exc}")
    if isinstance(exc, SchemaError | UnsupportedError):
        return _error(422, str(exc))
    log.error("database %r: %s", database, exc)
    return _error(500, f"database {database!r}: {exc}")


# -- helpers -------------------------------------------------------------------------------


def _databases(request: Request) -> Databases:
    databases: Databases = request.app.state.databases
    return databases


@asynccontextmanager
async def _lease(request: Request, name: str) -> AsyncIterator[Entry]:
    databases = _databases(request)
    entry = databases.acquire(name)
    try:
        yield entry
    finally:
        databases.release(entry)


def _table(entry: Entry, name: str) -> Table:
    try:
        return entry.db.schema.table(name)
    except SchemaError:
        tables = ", ".join(t.name for t in entry.db.schema.tables) or "none"
        raise ServiceError(
            404, f"no table {name!r} in database {entry.name!r}; its tables are: {tables}"
        ) from None


def _parse_key(table: Table, text: str, what: str) -> object:
    """A rowid (an integer) or a WITHOUT ROWID primary key (a JSON array, or one JSON value
    for a one-column key) from a request parameter."""
    if not table.without_rowid:
        try:
            return int(text)
        except ValueError:
            raise ServiceError(
                422, f"{what} must be an integer rowid for table {table.name!r}, got {text!r}"
            ) from None
    n = len(table.primary_key)
    try:
        value = json.loads(text)
    except ValueError:
        if n == 1:
            value = text
        else:
            raise ServiceError(
                422,
                f"{what} must be a JSON array of the {n} primary-key values of "
                f"{table.name!r} ({', '.join(str(c.name) for c in table.primary_key)}), "
                f"got {text!r}",
            ) from None
    values = value if isinstance(value, list) else [value]
    if len(values) != n:
        raise ServiceError(
            422,
            f"{what} must hold {n} primary-key value(s) for {table.name!r} "
            f"({', '.join(str(c.name) for c in table.primary_key)}), got {len(values)}",
        )
    try:
        return tuple(decode_cell(v) for v in values)
    except ValueError as exc:
        raise ServiceError(422, f"{what}: {exc}") from None


def _encode_key(key: object) -> object:
    if isinstance(key, tuple):
        return [encode_cell(v) for v in key]
    return key


def _key_param(key: object) -> str:
    return key_text if isinstance(key_text := key, str) else json.dumps(_encode_key(key))


# -- routes ---------------------------------------------------------------------------------

DatabaseName = Annotated[str, Path(description="A database's name, from GET /databases.")]
TableName = Annotated[str, Path(description="A table's name (any case).")]


def _add_routes(app: FastAPI, settings: Settings) -> None:
    limit_doc = f"Rows per page, 1..{settings.max_limit}."
    Limit = Annotated[int, Query(ge=1, le=settings.max_limit, description=limit_doc)]

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return _json({"databases": "/databases", "docs": "/docs", "openapi": "/openapi.json"})

    @app.get(
        "/databases",
        response_model=list[models.DatabaseSummary],
        summary="List the databases served",
        tags=["databases"],
    )
    async def list_databases(request: Request) -> list[models.DatabaseSummary]:
        databases = _databases(request)
        out = []
        for name in databases.names():
            async with _lease(request, name) as entry:
                out.append(_summary(entry))
        return out

    @app.get(
        "/databases/{database}",
        response_model=models.DatabaseDetail,
        responses=_ERRORS,
        summary="A database's tables and indexes, with their columns",
        tags=["databases"],
    )
    async def describe_database(request: Request, database: DatabaseName) -> models.DatabaseDetail:
        async with _lease(request, database) as entry:
            schema = await entry.db.read_schema()
            header = entry.db.db.header
            return models.DatabaseDetail(
                name=entry.name,
                source=entry.source,
                immutable=entry.db.immutable,
                size_bytes=entry.size_bytes,
                page_size=header.page_size if header is not None else 0,
                page_count=entry.db.page_count,
                text_encoding=header.text_encoding.value if header is not None else "utf-8",
                tables=[_table_info(entry, t) for t in schema.tables],
                indexes=[_index_info(i) for i in schema.indexes],
                views=list(schema.views),
                triggers=list(schema.triggers),
            )

    @app.get(
        "/databases/{database}/tables/{table}",
        response_model=models.TableInfo,
        responses=_ERRORS,
        summary="One table: columns, key and indexes",
        tags=["tables"],
    )
    async def describe_table(
        request: Request, database: DatabaseName, table: TableName
    ) -> models.TableInfo:
        async with _lease(request, database) as entry:
            await entry.db.read_schema()
            return _table_info(entry, _table(entry, table))

    @app.get(
        "/databases/{database}/tables/{table}/rows",
        response_model=models.RowsPage,
        responses=_ERRORS,
        summary="A page of rows in key order",
        description=(
            "Keyset pagination: pass the previous page's `next_after` as `after` (or follow "
            "`next`). Each page is one read of the table from where the last one ended, "
            "however deep into the table it is."
        ),
        tags=["rows"],
    )
    async def rows(
        request: Request,
        database: DatabaseName,
        table: TableName,
        after: Annotated[
            str | None,
            Query(
                description="Start after this key: a rowid, or for a WITHOUT ROWID table a "
                "JSON array of primary-key values. Omit for the first page."
            ),
        ] = None,
        limit: Limit = settings.default_limit,
    ) -> Response:
        async with _lease(request, database) as entry:
            info = _table(entry, table)
            key = None if after is None else _parse_key(info, after, "after")
            found = await entry.db.scan(info.name, after=key, limit=limit + 1)
            shape = entry.shape(info.name)
            next_after: object = None
            next_url = None
            if len(found) > limit:
                del found[limit:]
                next_after = _encode_key(row_key(info, found[-1]))
                next_url = str(
                    request.url.include_query_params(after=_key_param(row_key(info, found[-1])))
                )
            return _json(
                {
                    "database": entry.name,
                    "table": info.name,
                    "columns": shape.columns,
                    "rows": shape.rows(found),
                    "next_after": next_after,
                    "next": next_url,
                }
            )

    @app.get(
        "/databases/{database}/tables/{table}/rows/{key}",
        response_model=models.RowResponse,
        responses=_ERRORS,
        summary="One row by rowid (or primary key)",
        description=(
            "`key` is the rowid; for a WITHOUT ROWID table, a JSON array of the primary-key "
            "values (or the value itself for a one-column key)."
        ),
        tags=["rows"],
    )
    async def row(
        request: Request,
        database: DatabaseName,
        table: TableName,
        key: Annotated[str, Path(description="The rowid, or the primary key.")],
    ) -> Response:
        async with _lease(request, database) as entry:
            info = _table(entry, table)
            parsed = _parse_key(info, key, "the row key")
            found = await entry.db.get(info.name, parsed)
            if found is None:
                what = "rowid" if not info.without_rowid else "primary key"
                raise ServiceError(404, f"no row with {what} {key} in table {info.name!r}")
            shape = entry.shape(info.name)
            return _json(
                {
                    "database": entry.name,
                    "table": info.name,
                    "columns": shape.columns,
                    "row": list(shape.cut(found)),
                }
            )

    @app.get(
        "/databases/{database}/tables/{table}/lookup",
        response_model=models.LookupPage,
        responses=_ERRORS,
        summary="Rows by an indexed column's value or range",
        description=(
            "Finds rows through an index whose first column is `column` (or through the "
            "rowid), never by reading the whole table; the response names the index. Give "
            "`eq`, or any of `gt`/`ge` and `lt`/`le`. Values are compared as SQLite compares "
            "`WHERE column = ?` with a text parameter: the column's affinity applies first, "
            "then the index's collation (so a NOCASE index matches any case). Page with "
            "`after` = the previous page's `next_after`."
        ),
        tags=["rows"],
    )
    async def lookup(
        request: Request,
        database: DatabaseName,
        table: TableName,
        column: Annotated[str, Query(description="An indexed column (see `lookup_columns`).")],
        eq: Annotated[str | None, Query(description="Rows whose value equals this.")] = None,
        gt: Annotated[str | None, Query(description="Lower bound, exclusive.")] = None,
        ge: Annotated[str | None, Query(description="Lower bound, inclusive.")] = None,
        lt: Annotated[str | None, Query(description="Upper bound, exclusive.")] = None,
        le: Annotated[str | None, Query(description="Upper bound, inclusive.")] = None,
        limit: Limit = settings.default_limit,
        after: Annotated[str | None, Query(description="The previous page's `next_after`.")] = None,
    ) -> Response:
        if eq is not None and any(v is not None for v in (gt, ge, lt, le)):
            raise ServiceError(422, "give either eq or a range (gt/ge, lt/le), not both")
        if eq is None and all(v is None for v in (gt, ge, lt, le)):
            raise ServiceError(422, "give eq, or a range with gt/ge and/or lt/le")
        if gt is not None and ge is not None:
            raise ServiceError(422, "give at most one of gt and ge")
        if lt is not None and le is not None:
            raise ServiceError(422, "give at most one of lt and le")
        lower = Bound(gt, inclusive=False) if gt is not None else None
        lower = Bound(ge, inclusive=True) if ge is not None else lower
        upper = Bound(lt, inclusive=False) if lt is not None else None
        upper = Bound(le, inclusive=True) if le is not None else upper
        async with _lease(request, database) as entry:
            info = _table(entry, table)
            shape = entry.shape(info.name)
            if _is_rowid_column(info, column):
                payload = await _rowid_lookup(entry, info, shape, eq, lower, upper, limit, after)
            else:
                index = _choose_index(entry, info, column)
                payload = await _index_lookup(
                    entry, info, shape, index, eq, lower, upper, limit, after
                )
            payload["column"] = column
            token = payload["next_after"]
            payload["next"] = (
                None if token is None else str(request.url.include_query_params(after=token))
            )
            return _json(payload)

    @app.get(
        "/databases/{database}/tables/{table}/count",
        response_model=models.CountResponse,
        responses=_ERRORS,
        summary="A table's row count",
        tags=["tables"],
    )
    async def count(
        request: Request, database: DatabaseName, table: TableName
    ) -> models.CountResponse:
        async with _lease(request, database) as entry:
            info = _table(entry, table)
            n = await entry.db.count(info.name)
            return models.CountResponse(database=entry.name, table=info.name, count=n)

    @app.get(
        "/databases/{database}/tables/{table}/export",
        responses={
            200: {
                "description": "The whole table, streamed as it is read.",
                "content": {"application/x-ndjson": {}, "text/csv": {}},
            },
            **_ERRORS,
        },
        response_class=StreamingResponse,
        summary="Export a whole table as NDJSON or CSV",
        description=(
            "Streams every row in key order, reading one page of rows per chunk sent, so "
            "memory stays flat on a table of any size. NDJSON: one JSON object per row. "
            "CSV: a header line, NULL as an empty field, blobs as base64. A read error "
            "after the first chunk ends the response early (the transfer is incomplete)."
        ),
        tags=["tables"],
    )
    async def export(
        request: Request,
        database: DatabaseName,
        table: TableName,
        format: Annotated[
            Literal["ndjson", "csv"], Query(description="ndjson (default) or csv.")
        ] = "ndjson",
    ) -> Response:
        databases = _databases(request)
        entry = databases.acquire(database)
        try:
            info = _table(entry, table)
            shape = entry.shape(info.name)
            # The first page is read before the response starts, so that an error found
            # there is still a proper HTTP error.
            pages = entry.db.pages(info.name, page_size=settings.export_page_rows)
            try:
                first = await anext(pages, None)
            except BaseException:
                await pages.aclose()
                raise
        except BaseException:
            databases.release(entry)
            raise
        body = _export_body(databases, entry, shape, format, first, pages)
        media_type = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
        return ClosingStreamingResponse(
            body,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{info.name}.{format}"'},
        )

    @app.put(
        "/databases/{name}",
        response_model=models.DatabaseSummary,
        status_code=201,
        responses={
            200: {"model": models.DatabaseSummary, "description": "Replaced an upload."},
            413: {"model": models.ErrorResponse, "description": "Larger than the limit."},
            422: {
                "model": models.ErrorResponse,
                "description": "Not a valid database, or a bad name.",
            },
        },
        summary="Upload a database (the file is the raw request body)",
        description=(
            "Send the SQLite file as the body, e.g. `curl -T my.db "
            "http://127.0.0.1:8000/databases/my`. The file is streamed to disk, opened and "
            "checked page by page through the core, and served under `name` only if it is "
            f"valid. At most {settings.max_upload_bytes} bytes. Uploads are served immutable."
        ),
        tags=["databases"],
    )
    async def upload(
        request: Request,
        name: Annotated[
            str,
            Path(description="1-64 letters, digits, '-' or '_'.", pattern=NAME_PATTERN),
        ],
    ) -> Response:
        declared = request.headers.get("content-length")
        try:
            length = int(declared) if declared is not None else None
        except ValueError:
            raise ServiceError(400, f"bad Content-Length: {declared!r}") from None
        databases = _databases(request)
        entry, created = await databases.upload(name, request.stream(), declared_length=length)
        databases.acquire(entry.name)
        try:
            summary = _summary(entry)
        finally:
            databases.release(entry)
        return _json(summary.model_dump(), 201 if created else 200)

    @app.delete(
        "/databases/{name}",
        status_code=204,
        responses={404: _ERRORS[404], 422: _ERRORS[422]},
        summary="Delete an uploaded database",
        tags=["databases"],
    )
    async def delete(request: Request, name: str) -> Response:
        _databases(request).delete(name)
        return Response(status_code=204)


# -- pieces of the routes --------------------------------------------------------------------


def _summary(entry: Entry) -> models.DatabaseSummary:
    db = entry.db
    header = db.db.header
    schema = db.schema
    return models.DatabaseSummary(
        name=entry.name,
        source=entry.source,
        immutable=db.immutable,
        size_bytes=entry.size_bytes,
        page_size=header.page_size if header is not None else 0,
        page_count=db.page_count,
        tables=len(schema.tables),
        indexes=len(schema.indexes),
        url=f"/databases/{entry.name}",
    )


def _lookup_columns(entry: Entry, table: Table) -> list[str]:
    names: list[str] = []
    if not table.without_rowid:
        names.append(
            table.columns[table.rowid_alias].name if table.rowid_alias is not None else "rowid"
        )
    for index in entry.db.schema.indexes_of(table.name):
        first = index.columns[0].name if index.columns else None
        if first is not None and fold_identifier(first) not in {fold_identifier(n) for n in names}:
            names.append(first)
    return names


def _table_info(entry: Entry, table: Table) -> models.TableInfo:
    pk = {c.column for c in table.primary_key}
    return models.TableInfo(
        name=table.name,
        without_rowid=table.without_rowid,
        strict=table.strict,
        virtual=table.virtual,
        columns=[
            models.ColumnInfo(
                name=c.name,
                declared_type=c.declared_type,
                affinity=c.affinity.value,
                collation=c.collation,
                primary_key=i in pk,
                rowid_alias=c.rowid_alias,
                generated=c.generated,
            )
            for i, c in enumerate(table.columns)
        ],
        row_columns=TableShape(table).columns,
        primary_key=[str(c.name) for c in table.primary_key],
        key="primary key" if table.without_rowid else "rowid",
        indexes=[i.name for i in entry.db.schema.indexes_of(table.name)],
        lookup_columns=_lookup_columns(entry, table),
        sql=table.sql,
    )


def _index_info(index: Index) -> models.IndexInfo:
    return models.IndexInfo(
        name=index.name,
        table=index.table,
        unique=index.unique,
        automatic=index.automatic,
        partial=index.where is not None,
        columns=[
            models.IndexColumnInfo(
                name=c.name, expression=c.expression, collation=c.collation, descending=c.descending
            )
            for c in index.columns
        ],
        sql=index.sql,
    )


def _is_rowid_column(table: Table, column: str) -> bool:
    if table.without_rowid:
        return False
    folded = fold_identifier(column)
    if table.rowid_alias is not None:
        return folded == fold_identifier(table.columns[table.rowid_alias].name)
    return folded in ("rowid", "_rowid_", "oid") and table.column_index(column) is None


def _choose_index(entry: Entry, table: Table, column: str) -> Index:
    """The index to search `column` with: the narrowest whose first column it is."""
    if table.column_index(column) is None:
        raise ServiceError(
            422,
            f"table {table.name!r} has no column {column!r}; its columns are: "
            f"{', '.join(table.column_names)}",
        )
    folded = fold_identifier(column)
    candidates = [
        i
        for i in entry.db.schema.indexes_of(table.name)
        if i.columns
        and i.columns[0].name is not None
        and fold_identifier(i.columns[0].name) == folded
    ]
    if not candidates:
        usable = ", ".join(_lookup_columns(entry, table)) or "none"
        raise ServiceError(
            422,
            f"no index of table {table.name!r} starts with column {column!r}, so it cannot be "
            f"searched without reading the whole table; columns that can: {usable}",
        )
    candidates.sort(key=lambda i: (i.where is not None, len(i.columns), i.name))
    return candidates[0]


def _decode_token(after: str) -> tuple[object, int]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(after.encode() + b"=" * (-len(after) % 4)))
        value, skip = raw
        if type(skip) is not int or skip < 0:
            raise ValueError
        return decode_cell(value), skip
    except (ValueError, TypeError):
        raise ServiceError(
            422, f"after={after!r} is not a next_after value from a previous page"
        ) from None


def _encode_token(value: object, skip: int) -> str:
    raw = json.dumps([encode_cell(value), skip], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def _index_lookup(
    entry: Entry,
    table: Table,
    shape: TableShape,
    index: Index,
    eq: str | None,
    lower: Bound | None,
    upper: Bound | None,
    limit: int,
    after: str | None,
) -> dict[str, Any]:
    """Search `index`. Paging pins the column after the equality (the first column for a
    range, the second for an `eq` on a multi-column index): the next page starts at the
    last page's value of it, skipping the rows with that value already returned. With
    nothing to pin (an `eq` on a one-column index) the skip counts from the start."""
    equal: tuple[object, ...] = () if eq is None else (eq,)
    pin = len(equal) if len(equal) < len(index.columns) else None
    skip = 0
    if after is not None:
        value, skip = _decode_token(after)
        if pin is not None and value is not None:
            bound = Bound(value, inclusive=True)
            if index.columns[pin].descending:
                upper = bound
            else:
                lower = bound
        elif pin is not None and eq is None:
            raise ServiceError(422, f"after={after!r} does not fit this search")
    rows = await entry.db.index_scan(
        index.name, equal=equal, lower=lower, upper=upper, limit=skip + limit + 1
    )
    more = len(rows) > skip + limit
    page = rows[skip : skip + limit]
    token = None
    if more and page:
        if pin is None:
            token = _encode_token(None, skip + len(page))
        else:
            column = index.columns[pin]
            position = _row_position(table, column.column)
            key = collation_key(column.collation, entry.db.db.codec)
            last = page[-1][position]
            if last is None:
                # NULLs sort first and cannot be a bound: count from the start instead.
                token = _encode_token(None, skip + len(page))
            else:
                run = 0
                # Rows already returned with the last value, on this page and before it.
                last_key = key(last)
                for r in reversed(rows[: skip + len(page)]):
                    if r[position] is None or key(r[position]) != last_key:
                        break
                    run += 1
                token = _encode_token(last, run)
    return {
        "database": entry.name,
        "table": table.name,
        "strategy": "index",
        "index": index.name,
        "index_columns": [c.name or c.expression for c in index.columns],
        "columns": shape.columns,
        "rows": shape.rows(page),
        "next_after": token,
    }


def _row_position(table: Table, column: int | None) -> int:
    """Where table column `column` is in a stored row."""
    assert column is not None
    return column if table.without_rowid else column + 1


async def _rowid_lookup(
    entry: Entry,
    table: Table,
    shape: TableShape,
    eq: str | None,
    lower: Bound | None,
    upper: Bound | None,
    limit: int,
    after: str | None,
) -> dict[str, Any]:
    """Search by rowid: a `get` for `eq`, a `scan` from the lower bound for a range."""

    def rowid_of(text: object, what: str) -> int | float:
        try:
            return int(str(text))
        except ValueError:
            pass
        try:
            value = float(str(text))
        except ValueError:
            raise ServiceError(
                422, f"{what} must be a number for the rowid, got {text!r}"
            ) from None
        if math.isnan(value):
            raise ServiceError(422, f"{what} must be a number for the rowid, got {text!r}")
        return value

    base: dict[str, Any] = {
        "database": entry.name,
        "table": table.name,
        "strategy": "rowid",
        "index": None,
        "index_columns": [],
        "columns": shape.columns,
    }
    if eq is not None:
        value = rowid_of(eq, "eq")
        found = None
        if isinstance(value, int) or (math.isfinite(value) and value.is_integer()):
            found = await entry.db.get(table.name, int(value))
        base["rows"] = shape.rows([found] if found is not None else [])
        base["next_after"] = None
        return base
    start: int | None = None  # scan after this rowid
    if lower is not None:
        lo = rowid_of(lower.value, "the lower bound")
        if math.isinf(lo):
            start = None if lo < 0 else _MAX_ROWID
        else:
            start = (
                math.floor(lo) - 1 if lower.inclusive and float(lo).is_integer() else math.floor(lo)
            )
    if after is not None:
        value, _ = _decode_token(after)
        if type(value) is not int:
            raise ServiceError(422, f"after={after!r} is not a next_after value of this search")
        start = value if start is None else max(start, value)
    stop: float | None = None
    stop_inclusive = True
    if upper is not None:
        stop = rowid_of(upper.value, "the upper bound")
        stop_inclusive = upper.inclusive
    rows = await entry.db.scan(table.name, after=start, limit=limit + 1)
    if stop is not None:
        rows = [r for r in rows if r[0] < stop or (stop_inclusive and r[0] == stop)]  # type: ignore[operator]
    more = len(rows) > limit
    page = rows[:limit]
    base["rows"] = shape.rows(page)
    base["next_after"] = _encode_token(page[-1][0], 0) if more and page else None
    return base


async def _export_body(
    databases: Databases,
    entry: Entry,
    shape: TableShape,
    format: str,
    first: list[Any] | None,
    pages: AsyncIterator[list[Any]],
) -> AsyncIterator[bytes]:
    """The export's chunks: one per page of rows; holds the lease until it ends."""
    encode = shape.csv if format == "csv" else shape.ndjson
    try:
        if format == "csv":
            yield shape.csv_header()
        if first is not None:
            yield encode(first)
            while True:
                # One loop turn per page. Reads that hit the page cache finish without
                # ever waiting, and a server may take chunks for a client that is gone
                # without waiting either: this turn is where the news of a disconnect
                # (and the cancellation it brings) gets in.
                await asyncio.sleep(0)
                page = await anext(pages, None)
                if page is None:
                    break
                yield encode(page)
    except StorageError as exc:
        log.error("export of %s from %r stopped: %s", shape.table.name, entry.name, exc)
        raise
    finally:
        await pages.aclose()  # type: ignore[attr-defined]
        databases.release(entry)
