"""Write forms: insert, edit and delete a row from the browser, and unlock writes.

Rules:
- The forms write through the same functions as the JSON API (`queries/changes.py`), so
  the rules and the errors are the same; they exist only while the service has a write
  token, and each POST must come from an unlocked browser with its CSRF token
  (`session.py`), else 403.
- Success answers with a redirect (303) to a page that shows the result (POST, then
  GET); a refusal shows the form again with the status (409 names the constraint, 422
  the bad value, 503 carries Retry-After) and the values as they were entered.
- A value is typed in as text with its kind chosen next to it: text, integer, real, or
  a blob written in hex; NULL is a checkbox of its own, so the empty text and NULL stay
  different; an insert may also leave a column to its DEFAULT.
- Bodies are `application/x-www-form-urlencoded`, parsed here (the service's body limit
  applies), so no multipart parser is needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from core.storage import Affinity, Column, Table
from examples.service.databases import Entry
from examples.service.errors import ServiceError
from examples.service.queries.changes import delete_row, insert_row, parse_row_key, update_row
from examples.service.queries.describe import find_table
from examples.service.queries.rows import one_row
from examples.service.routes.params import databases_of
from examples.service.settings import Settings
from examples.service.web import session
from examples.service.web.cells import cell
from examples.service.web.pages import (
    CSS_URL,
    api_refusal,
    database_url,
    delete_form_url,
    edit_form_url,
    error_page,
    insert_form_url,
    row_url,
    table_url,
    templates,
)

__all__ = ["UNLOCK_URL", "router"]

UNLOCK_URL = "/browse/_unlock"
KINDS = ("text", "integer", "real", "hex")
"""How a typed value is read: as text, an integer, a real, or a blob in hex."""
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


@dataclass(slots=True)
class Field:
    """One column of a form, as the template shows it."""

    index: int
    name: str
    declared: str
    affinity: str
    text: str
    null: bool
    kind: str
    """One of `KINDS`, or "default" (an insert leaves the column out)."""


def _kind_for(column: Column) -> str:
    if column.affinity in (Affinity.INTEGER, Affinity.NUMERIC):
        return "integer"
    if column.affinity is Affinity.REAL:
        return "real"
    if "BLOB" in column.declared_type.upper():
        return "hex"
    return "text"


def _writable_columns(info: Table) -> list[tuple[int, Column]]:
    # A generated column is computed, never written.
    return [(i, c) for i, c in enumerate(info.columns) if c.generated is None]


def _blank_fields(info: Table) -> list[Field]:
    """An insert's fields: the rowid and columns with a DEFAULT left to it."""
    fields = []
    for i, c in _writable_columns(info):
        default = c.rowid_alias or c.default_expression is not None
        kind = "default" if default else _kind_for(c)
        fields.append(Field(i, c.name, c.declared_type, c.affinity.value, "", False, kind))
    return fields


def _shown(value: object) -> tuple[str, str | None]:
    """A stored value as the text of an input and the kind it is read back as."""
    if isinstance(value, bytes):
        return value.hex(), "hex"
    if isinstance(value, bool | int):
        return str(int(value)), "integer"
    if isinstance(value, float):
        return repr(value), "real"
    if value is None:
        return "", None
    return str(value), "text"


def _row_fields(info: Table, columns: list[str], row: list[object]) -> list[Field]:
    values = dict(zip(columns, row, strict=True))
    fields = []
    for i, c in _writable_columns(info):
        value = values.get(c.name)
        text, kind = _shown(value)
        fields.append(
            Field(
                i,
                c.name,
                c.declared_type,
                c.affinity.value,
                text,
                value is None,
                kind or _kind_for(c),
            )
        )
    return fields


def _entered_fields(info: Table, form: dict[str, str], insert: bool) -> list[Field]:
    """The fields as the form sent them, to show again."""
    allowed = (*KINDS, "default") if insert else KINDS
    fields = []
    for i, c in _writable_columns(info):
        kind = form.get(f"as{i}", "text")
        fields.append(
            Field(
                i,
                c.name,
                c.declared_type,
                c.affinity.value,
                form.get(f"v{i}", ""),
                f"null{i}" in form,
                kind if kind in allowed else "text",
            )
        )
    return fields


def _value(name: str, text: str, kind: str) -> object:
    """The value typed as `text`, read as `kind`; raises `ServiceError` 422."""
    if kind == "text":
        return text
    if kind == "integer":
        if not _INTEGER.fullmatch(text):
            raise ServiceError(422, f"column {name!r}: {text!r} is not an integer")
        return int(text)
    if kind == "real":
        try:
            return float(text)
        except ValueError:
            raise ServiceError(422, f"column {name!r}: {text!r} is not a real number") from None
    if kind == "hex":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ServiceError(
                422, f"column {name!r}: a blob is written in hex (two digits a byte), got {text!r}"
            ) from None
    raise ServiceError(422, f"column {name!r}: unknown kind of value {kind!r}")


def _values(fields: list[Field]) -> dict[str, object]:
    """The values to write: NULL where checked, the rest read by their kind."""
    values: dict[str, object] = {}
    for f in fields:
        if f.null:
            values[f.name] = None
        elif f.kind != "default":
            values[f.name] = _value(f.name, f.text, f.kind)
    return values


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, the last value of each name."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ServiceError(415, "a form is sent as application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _safe_next(url: str | None) -> str:
    """A page of this service to go back to; anything else (another site) is home."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/"


def _page(
    request: Request,
    template: str,
    title: str,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {"title": title, "css_url": CSS_URL, **context},
        status_code=status,
        headers=headers,
    )


async def _form_refused(
    request: Request,
    exc: Exception,
    template: str,
    title: str,
    context_of: Callable[[str, str], dict[str, Any]],
) -> Response:
    """The form again, with the status, message and Retry-After header the API answers
    `exc` with; `context_of(csrf, message)` makes the form's context."""
    status, detail, headers = await api_refusal(request, exc)
    csrf = session.session_csrf(request) or ""
    return _page(request, template, title, context_of(csrf, str(detail)), status, headers)


def _locked(request: Request) -> Response | None:
    """Where to send a browser whose writes are locked (None when they are not); a 403
    page when the service does not write at all."""
    if not session.writes_enabled(request):
        raise ServiceError(403, "writes are disabled: start the service with --write-token TOKEN")
    if session.session_csrf(request) is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{UNLOCK_URL}?{_next_query(back)}", status_code=303)
    return None


def _next_query(url: str) -> str:
    return urlencode({"next": url})


async def _stored_row(
    request: Request, entry: Entry, table: str, key: str
) -> tuple[Table, int, dict[str, Any]]:
    """The table, rowid and stored row an edit or delete form shows for row `key`; raises
    `ServiceError` (404 for an unknown table or row, 413 for a row past the answer bound)."""
    info = find_table(entry, table)
    rowid = parse_row_key(entry, info.name, key)
    limit = databases_of(request).settings.max_answer_bytes
    return info, rowid, await one_row(entry, info.name, str(rowid), limit)


def _crumbs(entry: Entry, info: Table) -> dict[str, Any]:
    return {
        "database": entry.name,
        "table": info.name,
        "database_url": database_url(entry.name),
        "table_url": table_url(entry.name, info.name),
    }


def router(settings: Settings) -> APIRouter:
    """The unlock form and the insert, edit and delete forms (GET shows, POST writes)."""
    router = APIRouter(include_in_schema=False)

    def unlock_page(
        request: Request, status: int = 200, error: str = "", back: str | None = None
    ) -> Response:
        return _page(
            request,
            "unlock.html",
            "Unlock writes",
            {
                "unlock_url": UNLOCK_URL,
                "next": _safe_next(back or request.query_params.get("next")),
                "error": error,
                "enabled": session.writes_enabled(request),
            },
            status,
        )

    @router.get(UNLOCK_URL)
    async def unlock_form(request: Request) -> Response:
        return unlock_page(request)

    @router.post(UNLOCK_URL)
    async def unlock(request: Request) -> Response:
        try:
            form = await _form(request)
        except ServiceError as exc:
            return await error_page(request, exc)
        if not session.writes_enabled(request):
            error = "writes are disabled: the service has no write token"
            return unlock_page(request, 403, error, form.get("next"))
        if not session.check_token(request, form.get("token", "")):
            error = "that is not the service's write token"
            return unlock_page(request, 403, error, form.get("next"))
        answer = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        session.unlock(request, answer)
        return answer

    def insert_context(
        entry: Entry, info: Table, fields: list[Field], csrf: str, error: str = ""
    ) -> dict[str, Any]:
        return {
            **_crumbs(entry, info),
            "heading": f"Insert a row into {info.name}",
            "action": insert_form_url(entry.name, info.name),
            "fields": fields,
            "insert": True,
            "kinds": KINDS,
            "csrf": csrf,
            "csrf_field": session.CSRF_FIELD,
            "error": error,
            "key": None,
        }

    @router.get("/browse/{database}/{table}/_insert")
    async def insert_form(request: Request, database: str, table: str) -> Response:
        try:
            moved = _locked(request)
            if moved is not None:
                return moved
            with databases_of(request).lease(database) as entry:
                info = find_table(entry, table)
                csrf = session.session_csrf(request) or ""
                context = insert_context(entry, info, _blank_fields(info), csrf)
                return _page(request, "row_form.html", f"Insert · {info.name}", context)
        except Exception as exc:
            return await error_page(request, exc)

    @router.post("/browse/{database}/{table}/_insert")
    async def insert(request: Request, database: str, table: str) -> Response:
        try:
            form = await _form(request)
            session.require_csrf(request, form)
            with databases_of(request).lease(database) as entry:
                info = find_table(entry, table)
                fields = _entered_fields(info, form, insert=True)
                try:
                    written = await insert_row(entry, info.name, _values(fields))
                except Exception as exc:
                    return await _form_refused(
                        request,
                        exc,
                        "row_form.html",
                        f"Insert · {info.name}",
                        lambda csrf, error: insert_context(entry, info, fields, csrf, error),
                    )
                url = row_url(entry.name, info.name, str(written["key"]))
                return RedirectResponse(url, status_code=303)
        except Exception as exc:
            return await error_page(request, exc)

    def edit_context(
        entry: Entry, info: Table, key: int, fields: list[Field], csrf: str, error: str = ""
    ) -> dict[str, Any]:
        return {
            **_crumbs(entry, info),
            "heading": f"Edit row {key} of {info.name}",
            "action": edit_form_url(entry.name, info.name, str(key)),
            "fields": fields,
            "insert": False,
            "kinds": KINDS,
            "csrf": csrf,
            "csrf_field": session.CSRF_FIELD,
            "error": error,
            "key": key,
            "row_url": row_url(entry.name, info.name, str(key)),
        }

    @router.get("/browse/{database}/{table}/_edit/{key}")
    async def edit_form(request: Request, database: str, table: str, key: str) -> Response:
        try:
            moved = _locked(request)
            if moved is not None:
                return moved
            with databases_of(request).lease(database) as entry:
                info, rowid, body = await _stored_row(request, entry, table, key)
                fields = _row_fields(info, body["columns"], body["row"])
                csrf = session.session_csrf(request) or ""
                context = edit_context(entry, info, rowid, fields, csrf)
                return _page(request, "row_form.html", f"Edit {rowid} · {info.name}", context)
        except Exception as exc:
            return await error_page(request, exc)

    @router.post("/browse/{database}/{table}/_edit/{key}")
    async def edit(request: Request, database: str, table: str, key: str) -> Response:
        try:
            form = await _form(request)
            session.require_csrf(request, form)
            with databases_of(request).lease(database) as entry:
                info = find_table(entry, table)
                rowid = parse_row_key(entry, info.name, key)
                fields = _entered_fields(info, form, insert=False)
                try:
                    written = await update_row(entry, info.name, rowid, _values(fields))
                    if written is None:
                        raise ServiceError(404, f"no row with rowid {rowid} in table {info.name!r}")
                except Exception as exc:
                    return await _form_refused(
                        request,
                        exc,
                        "row_form.html",
                        f"Edit {rowid} · {info.name}",
                        lambda csrf, error: edit_context(entry, info, rowid, fields, csrf, error),
                    )
                url = row_url(entry.name, info.name, str(written["key"]))
                return RedirectResponse(url, status_code=303)
        except Exception as exc:
            return await error_page(request, exc)

    def delete_context(
        entry: Entry,
        info: Table,
        key: int,
        body: dict[str, Any] | None,
        csrf: str,
        error: str = "",
    ) -> dict[str, Any]:
        shown = []
        if body is not None:
            shown = [
                {"name": c, "cell": cell(v)}
                for c, v in zip(body["columns"], body["row"], strict=True)
            ]
        return {
            **_crumbs(entry, info),
            "key": key,
            "action": delete_form_url(entry.name, info.name, str(key)),
            "row_url": row_url(entry.name, info.name, str(key)),
            "shown": shown,
            "csrf": csrf,
            "csrf_field": session.CSRF_FIELD,
            "error": error,
        }

    @router.get("/browse/{database}/{table}/_delete/{key}")
    async def delete_form(request: Request, database: str, table: str, key: str) -> Response:
        try:
            moved = _locked(request)
            if moved is not None:
                return moved
            with databases_of(request).lease(database) as entry:
                info, rowid, body = await _stored_row(request, entry, table, key)
                csrf = session.session_csrf(request) or ""
                context = delete_context(entry, info, rowid, body, csrf)
                return _page(request, "delete.html", f"Delete {rowid} · {info.name}", context)
        except Exception as exc:
            return await error_page(request, exc)

    @router.post("/browse/{database}/{table}/_delete/{key}")
    async def delete(request: Request, database: str, table: str, key: str) -> Response:
        try:
            form = await _form(request)
            session.require_csrf(request, form)
            with databases_of(request).lease(database) as entry:
                info = find_table(entry, table)
                rowid = parse_row_key(entry, info.name, key)
                try:
                    if form.get("confirm") != "yes":
                        raise ServiceError(422, "tick the box to confirm the delete")
                    if not await delete_row(entry, info.name, rowid):
                        raise ServiceError(404, f"no row with rowid {rowid} in table {info.name!r}")
                except Exception as exc:
                    return await _form_refused(
                        request,
                        exc,
                        "delete.html",
                        f"Delete {rowid} · {info.name}",
                        lambda csrf, error: delete_context(entry, info, rowid, None, csrf, error),
                    )
                return RedirectResponse(table_url(entry.name, info.name), status_code=303)
        except Exception as exc:
            return await error_page(request, exc)

    del settings  # the forms' limits are the API's, read from the application
    return router
