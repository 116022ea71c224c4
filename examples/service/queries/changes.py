"""Writes: insert, update and delete rows, one at a time or as a batch in one transaction.

Rules:
- Each function takes a leased `Entry` (opened writable: the service has writes enabled)
  and plain values, runs one write transaction (`async with entry.db.transaction()`:
  committed and durable when it returns, rolled back if anything raises) and returns
  the body: the row as written, with its key. The HTML pages call the same functions.
- Values are SQLite's: None, int (64-bit), float (not NaN), str, bytes. The JSON forms
  the read API shows (`{"$base64": true, ...}`, `{"$float": "Infinity"}`, or the
  `models.Blob`/`models.SpecialFloat` they parse into) are accepted and decoded.
- Only rowid tables are written (the engine's rule); a WITHOUT ROWID table is a 422
  before anything starts. What the engine refuses passes through to `errors.py`:
  `ConstraintError` (409, named), `UnsupportedError`/`SchemaError` (422),
  `DatabaseBusyError` (503). Inside a batch, an error names the change it came from.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bridge.storage import AsyncTransaction
from core.storage import StorageError, Table
from examples.service import models
from examples.service.databases import Entry
from examples.service.encoding import decode_cell
from examples.service.errors import ServiceError, storage_error
from examples.service.queries.describe import find_table
from examples.service.queries.paging import parse_key

__all__ = [
    "ChangeSpec",
    "apply_batch",
    "delete_row",
    "insert_row",
    "parse_row_key",
    "to_values",
    "update_row",
]

_MIN_INT, _MAX_INT = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class ChangeSpec:
    """One change of a batch: `key` for an update or a delete, `values` for an insert or
    an update."""

    op: Literal["insert", "update", "delete"]
    table: str
    key: int | None = None
    values: Mapping[str, object] | None = None


def to_value(value: object, column: str) -> object:
    """`value` as SQLite holds it; raises `ServiceError` 422 naming `column`."""
    if isinstance(value, models.Blob):
        value = {"$base64": True, "encoded": value.encoded}
    elif isinstance(value, models.SpecialFloat):
        value = {"$float": value.float_}
    if isinstance(value, dict):
        if value.get("$base64") is True:
            try:
                # Strict: a value that is not base64 is refused, not half-decoded.
                return base64.b64decode(str(value.get("encoded")), validate=True)
            except (ValueError, binascii.Error):
                why = "a blob's `encoded` must be standard base64"
                raise ServiceError(422, f"column {column!r}: {why}") from None
        try:
            value = decode_cell(value)
        except ValueError as exc:
            raise ServiceError(422, f"column {column!r}: {exc}") from None
    kind = type(value)
    if kind is int:
        if not _MIN_INT <= value <= _MAX_INT:  # type: ignore[operator]
            raise ServiceError(422, f"column {column!r}: integers must fit in 64 bits")
        return value
    if kind is float:
        if math.isnan(value):  # type: ignore[arg-type]
            raise ServiceError(422, f"column {column!r}: NaN cannot be stored (SQLite has none)")
        return value
    if value is None or kind is str or kind is bytes:
        return value
    raise ServiceError(
        422, f"column {column!r}: {value!r} is not a value (null, number, string or blob)"
    )


def to_values(values: Mapping[str, object]) -> dict[str, object]:
    """Every value of `values` through `to_value`."""
    return {str(column): to_value(v, str(column)) for column, v in values.items()}


def _writable_table(entry: Entry, table: str) -> Table:
    info = find_table(entry, table)
    if info.without_rowid:
        raise ServiceError(
            422,
            f"table {info.name!r} is a WITHOUT ROWID table: this storage engine writes rowid "
            "tables only; its rows can be read",
        )
    return info


async def _written(
    entry: Entry, tx: AsyncTransaction, info: Table, rowid: int
) -> dict[str, Any] | None:
    found = await tx.get(info.name, rowid)
    if found is None:
        return None
    shape = entry.shape(info.name)
    return {
        "database": entry.name,
        "table": info.name,
        "key": rowid,
        "columns": shape.columns,
        "row": list(shape.cut(found)),
    }


def parse_row_key(entry: Entry, table: str, text: str) -> int:
    """The rowid of a row of `table` to write, from the text of a path; raises
    `ServiceError` 422 (404 for an unknown table)."""
    key = parse_key(_writable_table(entry, table), text, "the row key")
    assert isinstance(key, int)
    return key


def _no_row(info: Table, key: int) -> ServiceError:
    return ServiceError(404, f"no row with rowid {key} in table {info.name!r}")


async def insert_row(entry: Entry, table: str, values: Mapping[str, object]) -> dict[str, Any]:
    """Insert a row into `table`; the row as written (`models.WrittenRow`)."""
    info = _writable_table(entry, table)
    row = to_values(values)
    async with entry.db.transaction() as tx:
        rowid = await tx.insert(info.name, row)
        written = await _written(entry, tx, info, rowid)
    assert written is not None
    return written


async def update_row(
    entry: Entry, table: str, key: int, values: Mapping[str, object]
) -> dict[str, Any] | None:
    """Change the named columns of row `key` of `table`; the row as written, or None if
    there is no such row (nothing is written then). Raises `ServiceError` 422 for an
    update that names no column."""
    info = _writable_table(entry, table)
    if not values:
        raise ServiceError(422, "an update needs at least one column to change")
    row = to_values(values)
    async with entry.db.transaction() as tx:
        if not await tx.update(info.name, key, row):
            return None
        return await _written(entry, tx, info, key)


async def delete_row(entry: Entry, table: str, key: int) -> bool:
    """Delete row `key` of `table`; False if there was none."""
    info = _writable_table(entry, table)
    async with entry.db.transaction() as tx:
        return await tx.delete(info.name, key)


async def apply_batch(entry: Entry, changes: Sequence[ChangeSpec]) -> list[dict[str, Any]]:
    """Make every change in one transaction, in order, and return what each did
    (`models.ChangeResult`); if one fails, none is kept, and the error names it
    (`ServiceError`, with the status its error alone would have)."""
    checked = [_checked(entry, n, change) for n, change in enumerate(changes, 1)]
    results: list[dict[str, Any]] = []
    async with entry.db.transaction() as tx:
        for n, (change, info, values) in enumerate(checked, 1):
            try:
                results.append(await _apply(entry, tx, change, info, values))
            except ServiceError as exc:
                raise ServiceError(exc.status, f"change {n}: {exc.detail}") from None
            except StorageError as exc:
                error = storage_error(entry.name, exc)
                raise ServiceError(
                    error.status, f"change {n}: {error.detail}", headers=error.headers
                ) from None
    return results


def _checked(
    entry: Entry, n: int, change: ChangeSpec
) -> tuple[ChangeSpec, Table, dict[str, object]]:
    """The change with its table and values, checked before the transaction starts."""
    try:
        info = _writable_table(entry, change.table)
        if change.op == "insert" and change.key is not None:
            raise ServiceError(422, "an insert takes no key (the rowid is a value to give)")
        if change.op != "insert" and change.key is None:
            raise ServiceError(422, f"an {change.op} needs the key of its row")
        if change.op == "delete" and change.values is not None:
            raise ServiceError(422, "a delete takes no values")
        if change.op != "delete" and change.values is None:
            raise ServiceError(422, f"an {change.op} needs values")
        if change.op == "update" and not change.values:
            raise ServiceError(422, "an update needs at least one column to change")
        return change, info, to_values(change.values or {})
    except ServiceError as exc:
        raise ServiceError(exc.status, f"change {n}: {exc.detail}") from None


async def _apply(
    entry: Entry,
    tx: AsyncTransaction,
    change: ChangeSpec,
    info: Table,
    values: dict[str, object],
) -> dict[str, Any]:
    if change.op == "insert":
        key = await tx.insert(info.name, values)
    else:
        assert change.key is not None
        key = change.key
        done = (
            await tx.update(info.name, key, values)
            if change.op == "update"
            else await tx.delete(info.name, key)
        )
        if not done:
            raise _no_row(info, key)
    row = None
    if change.op != "delete":
        written = await _written(entry, tx, info, key)
        row = None if written is None else written["row"]
    return {"op": change.op, "table": info.name, "key": key, "row": row}
