"""The browsing pages: HTML for people, the same page as JSON or CSV for programs.

Rules:
- Every page is built once as a `View` (the template's context, the JSON body and the CSV
  rows) by reading through the same queries the JSON API uses (`queries/`), and answered
  in the format asked for (`params.py`): HTML by default, `.json`/`.csv` on the path or
  `_format`.
- An error on an HTML page is an HTML page with the status and the message the JSON API
  would answer (the application's own exception handlers decide both); on a `.json` or
  `.csv` page it is the API's JSON error.
- Pages lease their database for as long as they read it, as the API's routes do.
- URLs are built here, from the page's parameters, so templates only show them.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from bridge.storage import row_key
from core.storage import SchemaError, Table, UnsupportedError
from examples.service.databases import Entry
from examples.service.encoding import TableShape, dumps, encode_cell
from examples.service.errors import ServiceError
from examples.service.queries.browse import Browse, BrowsePage, browse, sortable_columns
from examples.service.queries.counts import cached_count
from examples.service.queries.describe import database_detail, find_table, summaries
from examples.service.queries.filters import OPERATORS
from examples.service.queries.paging import encode_key, key_param
from examples.service.queries.rows import one_row
from examples.service.routes.params import databases_of
from examples.service.settings import Settings
from examples.service.web.cells import cell
from examples.service.web.params import (
    FORM_PARAMS,
    Format,
    check_known,
    format_of,
    parse_table_params,
    split_suffix,
)
from examples.service.web.session import session_csrf, writes_enabled

__all__ = ["SCAN_BUDGET", "router"]

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STYLESHEET = HERE / "static" / "web.css"
CSS_URL = "/browse/_static/web.css"
SCAN_BUDGET = 1000
"""Rows a table page examines at most when a filter has to be checked row by row."""
PAGE_SIZE = 50
"""Rows per table page unless `_size` says otherwise."""

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every value shown is data from a database: escape all of it
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_environment)


@dataclass(slots=True)
class View:
    """One page, ready to answer in any format."""

    template: str
    title: str
    context: dict[str, Any]
    data: dict[str, Any]
    csv_header: list[str] = field(default_factory=list)
    csv_rows: list[Sequence[object]] = field(default_factory=list)
    filename: str = "page"


# -- URLs -----------------------------------------------------------------------------


def _seg(name: str) -> str:
    return quote(name, safe="")


def _variant(path: str, fmt: str | None) -> str:
    """`path` in format `fmt` (None: the HTML page): the format as a suffix."""
    if fmt is not None:
        return f"{path}.{fmt}"
    return path


def _plain(name: str) -> bool:
    """Whether a path segment has no suffix that would be read as a format."""
    return split_suffix(name)[1] is None


def database_url(database: str, fmt: str | None = None) -> str:
    """The database page (or its `fmt` variant)."""
    return _variant(f"/browse/{_seg(database)}", fmt)


def table_url(
    database: str, table: str, params: Sequence[tuple[str, str]] = (), fmt: str | None = None
) -> str:
    """The table page with `params` (or its `fmt` variant)."""
    path = _variant(f"/browse/{_seg(database)}/{_seg(table)}", fmt)
    query = list(params)
    if fmt is None and not _plain(table):
        query.append(("_format", "html"))
    return path + ("?" + urlencode(query) if query else "")


def row_url(database: str, table: str, key: str, fmt: str | None = None) -> str:
    """The row page of the row whose key is `key` as URL text (or its `fmt` variant)."""
    path = _variant(f"/browse/{_seg(database)}/{_seg(table)}/row/{_seg(key)}", fmt)
    return path if fmt is not None or _plain(key) else path + "?_format=html"


def insert_form_url(database: str, table: str) -> str:
    """The form that inserts a row into the table."""
    return f"/browse/{_seg(database)}/{_seg(table)}/_insert"


def edit_form_url(database: str, table: str, key: str) -> str:
    """The form that edits the row whose rowid is `key`."""
    return f"/browse/{_seg(database)}/{_seg(table)}/_edit/{_seg(key)}"


def delete_form_url(database: str, table: str, key: str) -> str:
    """The page that asks to confirm the delete of the row whose rowid is `key`."""
    return f"/browse/{_seg(database)}/{_seg(table)}/_delete/{_seg(key)}"


def _write_actions(
    request: Request, database: str, info: Table, key: str | None = None
) -> dict[str, Any] | None:
    """The action bar's links: None while the service does not write (or cannot write
    this table); else the unlock form, or the insert, edit and delete links."""
    if not writes_enabled(request) or info.without_rowid or info.virtual:
        return None
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {
        "unlocked": session_csrf(request) is not None,
        "unlock_url": "/browse/_unlock",
        "next": here,
        "insert_url": insert_form_url(database, info.name),
        "edit_url": None if key is None else edit_form_url(database, info.name, key),
        "delete_url": None if key is None else delete_form_url(database, info.name, key),
    }


def _absolute(request: Request, url: str) -> str:
    return str(request.base_url).rstrip("/") + url


# -- answering --------------------------------------------------------------------------


def _csv_value(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def _respond(request: Request, fmt: Format, view: View) -> Response:
    if fmt == "json":
        return Response(dumps(view.data), media_type="application/json")
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(view.csv_header)
        writer.writerows([_csv_value(v) for v in row] for row in view.csv_rows)
        # A name from a database may hold anything: keep the header value plain.
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", view.filename)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="{filename}.csv"'},
        )
    context = {"title": view.title, "css_url": CSS_URL, **view.context}
    return templates.TemplateResponse(request, view.template, context)


async def api_refusal(request: Request, exc: Exception) -> tuple[int, Any, dict[str, str]]:
    """The status, `detail` and Retry-After header the API answers `exc` with (through the
    application's exception handlers); re-raises an exception none of them handles."""
    handlers = request.app.exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
    if handler is None:
        raise exc
    answer: Response = await handler(request, exc)
    try:
        detail = json.loads(bytes(answer.body)).get("detail", "")
    except ValueError:
        detail = ""
    headers = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
    return answer.status_code, detail, headers


async def error_page(request: Request, exc: Exception) -> Response:
    """`exc` as an HTML page, with the status and message the API would answer."""
    status, detail, headers = await api_refusal(request, exc)
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "title": f"Error {status}",
            "css_url": CSS_URL,
            "status": status,
            "detail": detail,
        },
        status_code=status,
        headers=headers,
    )


async def _answer(
    request: Request,
    items: Sequence[tuple[str, str]],
    segment: str | None,
    build: Callable[[], Awaitable[View | Response]],
) -> Response:
    """Build the page and answer in the format asked for; on HTML, errors as pages."""
    try:
        fmt = _format(items, segment or "")[1]
    except ServiceError as exc:
        if split_suffix(segment or "")[1] is not None:
            raise  # a .json or .csv page: the API's error
        return await error_page(request, exc)
    if fmt != "html":
        view = await build()
        return view if isinstance(view, Response) else _respond(request, fmt, view)
    try:
        view = await build()
    except Exception as exc:
        return await error_page(request, exc)
    return view if isinstance(view, Response) else _respond(request, fmt, view)


def _format(items: Sequence[tuple[str, str]], name: str) -> tuple[str, Format]:
    """The name a path segment means and the format asked for (`_format` wins, and then
    the segment is taken as it is)."""
    asked = format_of(items)
    if asked is not None:
        return name, asked
    bare, suffix = split_suffix(name)
    return bare, suffix or "html"


# -- the pages ------------------------------------------------------------------------


async def _home_view(request: Request) -> View:
    listed = summaries(databases_of(request))
    databases = [
        {
            "name": s.name,
            "source": s.source,
            "size_bytes": s.size_bytes,
            "tables": s.tables,
            "indexes": s.indexes,
            "url": database_url(s.name),
        }
        for s in listed
    ]
    data = {
        "databases": [
            {**d, "url": _absolute(request, str(d["url"])), "api": _absolute(request, s.url)}
            for d, s in zip(databases, listed, strict=True)
        ],
        "api": "/databases",
        "docs": "/docs",
        "openapi": "/openapi.json",
    }
    return View(
        "home.html",
        "Databases",
        {"databases": databases},
        data,
        ["name", "source", "size_bytes", "tables", "indexes"],
        [[d[k] for k in ("name", "source", "size_bytes", "tables", "indexes")] for d in databases],
        "databases",
    )


async def _count(entry: Entry, table: Table) -> int | None:
    """The table's row count, or None if the storage engine cannot read its rows; kept
    until the database changes (`queries/counts.py`)."""
    if table.virtual:
        return None

    async def count() -> int | None:
        try:
            # Reading a row is what a table with a virtual generated column refuses.
            await entry.db.scan(table.name, limit=1)
            return await entry.db.count(table.name)
        except (SchemaError, UnsupportedError):
            return None

    return await cached_count(entry, table, count)


async def _database_view(entry: Entry) -> View:
    detail = await database_detail(entry)
    schema = entry.db.schema
    counts: dict[str, int | None] = {}
    tables = []
    for info in schema.tables:
        n = await _count(entry, info)
        counts[info.name] = n
        tables.append(
            {
                "name": info.name,
                "rows": n,
                "readable": n is not None,
                "linkable": n is not None and "/" not in info.name,
                "without_rowid": info.without_rowid,
                "url": table_url(entry.name, info.name),
                "columns": len(info.columns),
            }
        )
    indexes = [
        {
            "name": i.name,
            "table": i.table,
            "columns": ", ".join(c.name or c.expression or "?" for c in i.columns),
            "unique": i.unique,
            "partial": i.partial,
            # A complete index has one entry per row; a partial one is not counted.
            "rows": None if i.partial else counts.get(_table_name(entry, i.table)),
        }
        for i in detail.indexes
    ]
    views = [{"name": v} for v in detail.views]
    data = {
        "database": entry.name,
        "source": entry.source,
        "tables": [{k: t[k] for k in ("name", "rows", "readable")} for t in tables],
        "indexes": [
            {k: i[k] for k in ("name", "table", "columns", "partial", "rows")} for i in indexes
        ],
        "views": [{"name": v["name"], "readable": False} for v in views],
    }
    csv_rows: list[Sequence[object]] = [["table", t["name"], t["name"], t["rows"]] for t in tables]
    csv_rows += [["index", i["name"], i["table"], i["rows"]] for i in indexes]
    csv_rows += [["view", v["name"], "", None] for v in views]
    return View(
        "database.html",
        entry.name,
        {
            "database": entry.name,
            "source": entry.source,
            "size_bytes": entry.size_bytes,
            "tables": tables,
            "indexes": indexes,
            "views": views,
            "json_url": database_url(entry.name, "json"),
            "csv_url": database_url(entry.name, "csv"),
        },
        data,
        ["kind", "name", "table", "rows"],
        csv_rows,
        entry.name,
    )


def _table_name(entry: Entry, name: str) -> str:
    try:
        return entry.db.schema.table(name).name
    except SchemaError:
        return name


def _paging_free(items: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The page's parameters without its position and the forms' fields."""
    drop = {"_next", "_prev", "_format", *FORM_PARAMS}
    return [(k, v) for k, v in items if k not in drop]


def _form_redirect(entry: Entry, table: Table, items: Sequence[tuple[str, str]]) -> Response | None:
    """A form's submission, as a redirect to the canonical URL with its filter."""
    form = dict((k, v) for k, v in items if k in FORM_PARAMS)
    if not form:
        return None
    params = _paging_free(items)
    column = form.get("_filter_column") or form.get("_lookup_column")
    if column:
        op = form.get("_filter_op", "eq") if "_filter_column" in form else "eq"
        value = form.get("_filter_value", form.get("_lookup_value", ""))
        params.append((f"{column}__{op}", value))
    return RedirectResponse(table_url(entry.name, table.name, params), status_code=303)


async def _table_view(
    request: Request, entry: Entry, name: str, items: list[tuple[str, str]], settings: Settings
) -> View | Response:
    info = find_table(entry, name)
    shape = entry.shape(info.name)
    codec = entry.db.db.codec
    redirect = _form_redirect(entry, info, items)
    if redirect is not None:
        return redirect
    params = parse_table_params(
        items,
        info,
        shape,
        codec,
        default_size=min(PAGE_SIZE, settings.max_limit),
        max_size=settings.max_limit,
    )
    query = Browse(
        params.filters,
        params.sort,
        params.descending,
        params.size,
        params.after,
        params.before,
        SCAN_BUDGET,
        settings.max_answer_bytes,
    )
    page = await browse(entry, info.name, query)
    total = await _count(entry, info)
    if total is None:  # a table the engine cannot count: its error, as before
        total = await entry.db.count(info.name)
    return _table_page(request, entry, info, items, params.columns, page, total)


def _table_page(
    request: Request,
    entry: Entry,
    info: Table,
    items: list[tuple[str, str]],
    chosen: Sequence[str] | None,
    page: BrowsePage,
    total: int,
) -> View:
    shape = page.shape
    all_columns = shape.columns
    shown = list(chosen) if chosen else list(all_columns)
    positions = [all_columns.index(c) for c in shown]
    base = _paging_free(items)
    db, table = entry.name, info.name
    # The forms of a table whose name ends in .json or .csv must ask for HTML themselves.
    literal = [] if _plain(table) else [("_format", "html")]

    def with_position(name: str, token: str | None) -> str | None:
        if token is None:
            return None
        return table_url(db, table, [*base, (name, token)])

    def json_link(name: str, token: str) -> str:
        return table_url(db, table, [*base, (name, token)], "json")

    next_url = with_position("_next", page.next)
    previous_url = with_position("_prev", page.previous)
    resume_url = None
    if page.partial:
        resume_url = previous_url if any(k == "_prev" for k, _ in items) else next_url
    rows = []
    keys = []
    for stored in page.rows:
        values = shape.cut(stored)
        key = row_key(info, stored)
        keys.append(key)
        rows.append(
            {
                "key": key_param(key),
                "url": row_url(db, table, key_param(key)),
                "cells": [cell(values[p]) for p in positions],
            }
        )
    sortable = set(sortable_columns(entry, info, shape))
    unsorted = [(k, v) for k, v in base if k not in ("_sort", "_sort_desc")]
    headers = [
        {
            "name": c,
            "sortable": c in sortable,
            "asc_url": table_url(db, table, [*unsorted, ("_sort", c)]),
            "desc_url": table_url(db, table, [*unsorted, ("_sort_desc", c)]),
            "sorted": page.sort_chosen and c == page.order.column,
        }
        for c in shown
    ]
    filters = [
        {
            "text": f.describe(),
            "remove_url": table_url(db, table, [p for p in base if p != f.param]),
            "scanned": f in page.scanned_filters,
        }
        for f in page.filters
    ]
    order = page.order
    hidden = [(k, v) for k, v in base if k != "_col"]
    context = {
        "database": db,
        "table": table,
        "database_url": database_url(db),
        "total": total,
        "without_rowid": info.without_rowid,
        "columns": all_columns,
        "shown": shown,
        "headers": headers,
        "rows": rows,
        "key_column": _key_column(info, shape, shown),
        "actions": _write_actions(request, db, info),
        "filters": filters,
        "operators": OPERATORS,
        "lookup_columns": _lookup_columns(info, sortable, shape.columns),
        "order_column": order.column,
        "order_index": order.index,
        "descending": page.descending,
        "sort_chosen": page.sort_chosen,
        "examined": page.examined,
        "partial": page.partial,
        "budget": SCAN_BUDGET,
        "scanning": bool(page.scanned_filters),
        "next_url": next_url,
        "previous_url": previous_url,
        "resume_url": resume_url,
        "hidden": hidden + literal,
        "form_hidden": base + literal,
        "first_url": table_url(db, table, base) if previous_url else None,
        "json_url": table_url(db, table, _without_format(items), "json"),
        "csv_url": table_url(db, table, _without_format(items), "csv"),
        "export_csv": f"/databases/{_seg(db)}/tables/{_seg(table)}/export?format=csv",
        "export_ndjson": f"/databases/{_seg(db)}/tables/{_seg(table)}/export?format=ndjson",
    }
    data = {
        "database": db,
        "table": table,
        "total": total,
        "columns": shown,
        "rows": [[encode_cell(shape.cut(r)[p]) for p in positions] for r in page.rows],
        "keys": [encode_key(k) for k in keys],
        "order": {
            "column": order.column,
            "index": order.index,
            "descending": page.descending,
            "sorted": page.sort_chosen,
        },
        "filters": [
            {
                "column": f.column.name,
                "op": f.op,
                "value": f.text,
                "scanned": f in page.scanned_filters,
            }
            for f in page.filters
        ],
        "examined": page.examined,
        "partial": page.partial,
        "next": None if page.next is None else _absolute(request, json_link("_next", page.next)),
        "previous": (
            None if page.previous is None else _absolute(request, json_link("_prev", page.previous))
        ),
    }
    return View(
        "table.html",
        f"{table} · {db}",
        context,
        data,
        shown,
        [[shape.cut(r)[p] for p in positions] for r in page.rows],
        table,
    )


def _key_column(info: Table, shape: TableShape, shown: Sequence[str]) -> int | None:
    """Where the rowid is among the columns shown (its cells link to the row page), or
    None: then a column of its own shows each row's key."""
    if info.without_rowid:
        return None
    name = shape.columns[0] if info.rowid_alias is None else info.columns[info.rowid_alias].name
    return shown.index(name) if name in shown else None


def _lookup_columns(info: Table, sortable: set[str], columns: Sequence[str]) -> list[str]:
    """The columns an equality reads through an index (or the rowid): the sortable ones
    but the first key column of a WITHOUT ROWID table, which is walked, not sought."""
    first = info.primary_key[0].name if info.without_rowid and info.primary_key else None
    return [c for c in columns if c in sortable and c != first]


def _without_format(items: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in items if k != "_format"]


async def _row_view(request: Request, entry: Entry, table: str, key: str) -> View:
    max_bytes = databases_of(request).settings.max_answer_bytes
    body = await one_row(entry, table, key, max_bytes)
    info = find_table(entry, table)
    columns: list[str] = body["columns"]
    values: list[object] = body["row"]
    fields = [{"name": c, "cell": cell(v, cut=None)} for c, v in zip(columns, values, strict=True)]
    data = {**body, "row": [encode_cell(v) for v in values]}
    return View(
        "row.html",
        f"{key} · {info.name} · {entry.name}",
        {
            "database": entry.name,
            "table": info.name,
            "key": key,
            "database_url": database_url(entry.name),
            "table_url": table_url(entry.name, info.name),
            "fields": fields,
            "actions": _write_actions(request, entry.name, info, key),
            "json_url": row_url(entry.name, info.name, key, "json"),
            "csv_url": row_url(entry.name, info.name, key, "csv"),
        },
        data,
        columns,
        [values],
        f"{info.name}-row",
    )


# -- the router -----------------------------------------------------------------------


def router(settings: Settings) -> APIRouter:
    """The pages: `/`, `/index.json`, `/browse/{database}`, `/browse/{database}/{table}`,
    `/browse/{database}/{table}/row/{key}` and the stylesheet. Not in the OpenAPI schema:
    they are for people (their JSON variants are documented in `docs/web.md`)."""
    router = APIRouter(include_in_schema=False)
    stylesheet = STYLESHEET.read_bytes()

    @router.get(CSS_URL)
    async def css() -> Response:
        return Response(
            stylesheet,
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @router.get("/")
    async def home(request: Request) -> Response:
        items = request.query_params.multi_items()

        async def build() -> View:
            check_known(items, ["_format"])
            return await _home_view(request)

        return await _answer(request, items, None, build)

    @router.get("/index.json")
    async def home_json(request: Request) -> Response:
        check_known(request.query_params.multi_items(), [])
        return _respond(request, "json", await _home_view(request))

    @router.get("/browse/{database}")
    async def database_page(request: Request, database: str) -> Response:
        items = request.query_params.multi_items()

        async def build() -> View:
            check_known(items, ["_format"])
            with databases_of(request).lease(_format(items, database)[0]) as entry:
                return await _database_view(entry)

        return await _answer(request, items, database, build)

    @router.get("/browse/{database}/{table}")
    async def table_page(request: Request, database: str, table: str) -> Response:
        items = request.query_params.multi_items()

        async def build() -> View | Response:
            with databases_of(request).lease(database) as entry:
                return await _table_view(request, entry, _format(items, table)[0], items, settings)

        return await _answer(request, items, table, build)

    @router.get("/browse/{database}/{table}/row/{key:path}")
    async def row_page(request: Request, database: str, table: str, key: str) -> Response:
        items = request.query_params.multi_items()

        async def build() -> View:
            check_known(items, ["_format"])
            with databases_of(request).lease(database) as entry:
                return await _row_view(request, entry, table, _format(items, key)[0])

        return await _answer(request, items, key, build)

    return router
