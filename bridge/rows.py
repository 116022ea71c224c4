"""Rows as JSON, NDJSON and CSV: the one encoding the command-line tool (`ioresult export`)
and the example service share.

Rules it keeps:
- A cell is what sqlite3 returns: int, float, str, bytes or None. JSON has no bytes and no
  infinities, so a blob becomes `{"$base64": true, "encoded": "..."}` (the marker
  Datasette uses) and a non-finite float becomes `{"$float": "Infinity"}` (or
  `"-Infinity"`, `"NaN"`). Everything else is plain JSON. `decode_cell` undoes both.
- The columns a row shows (`TableShape`): a table's declared columns; a rowid table with
  no INTEGER PRIMARY KEY also shows its rowid first, as `rowid` (`_rowid_` if a column
  already has that name). The storage engine returns `(rowid, *columns)` for rowid tables,
  with the INTEGER PRIMARY KEY column already holding the rowid.
- Bodies are encoded with the standard `json` module in one call; non-finite floats are
  rare, so the fast path refuses them (`allow_nan=False`) and only then is the payload
  rebuilt cell by cell.
- CSV: a header line, then one line per row; NULL is an empty field, a blob is its base64
  text, a float is Python's shortest round-tripping `repr` (infinities as `inf`/`-inf`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from core.storage import Row, Table

__all__ = ["TableShape", "decode_cell", "dumps", "encode_cell", "encode_row"]

_b64encode = base64.b64encode


def encode_cell(value: object) -> object:
    """A cell as a JSON-ready value (blobs and non-finite floats get their markers)."""
    kind = type(value)
    if kind is bytes:
        return {"$base64": True, "encoded": _b64encode(value).decode("ascii")}  # type: ignore[arg-type]
    if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        if math.isnan(value):  # type: ignore[arg-type]
            return {"$float": "NaN"}
        return {"$float": "Infinity" if value > 0 else "-Infinity"}  # type: ignore[operator]
    return value


def encode_row(row: Sequence[object]) -> list[object]:
    """Every cell of `row` through `encode_cell`."""
    return [encode_cell(v) for v in row]


def decode_cell(value: object) -> object:
    """The inverse of `encode_cell`. Raises `ValueError` for a malformed marker."""
    if isinstance(value, dict):
        if value.get("$base64") is True and isinstance(value.get("encoded"), str):
            return base64.b64decode(value["encoded"], validate=True)
        special = value.get("$float")
        if special in ("Infinity", "-Infinity", "NaN"):
            return float(special.replace("Infinity", "inf"))
        raise ValueError(f"not an encoded cell: {value!r}")
    return value


def _default(value: object) -> object:
    if type(value) is bytes:
        return {"$base64": True, "encoded": _b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _deep_encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_encode(v) for v in value]
    return encode_cell(value)


def dumps(payload: object) -> bytes:
    """`payload` as compact JSON bytes, blobs and non-finite floats encoded."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:  # a non-finite float somewhere: take the slow path
        text = json.dumps(_deep_encode(payload), separators=(",", ":"), allow_nan=False)
    return text.encode()


class TableShape:
    """The columns a table's rows show and how to cut a stored row down to them."""

    __slots__ = ("columns", "cut", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        names = list(table.column_names)
        self.cut: Callable[[Row], Sequence[object]]
        if table.without_rowid or table.rowid_alias is not None:
            # WITHOUT ROWID rows are the columns; an alias column already holds the rowid.
            self.cut = _identity if table.without_rowid else _drop_first
        else:
            lowered = {n.lower() for n in names}
            names.insert(0, "_rowid_" if "rowid" in lowered else "rowid")
            self.cut = _identity
        self.columns = names

    def rows(self, rows: Sequence[Row]) -> list[Sequence[object]]:
        """The shown part of each row."""
        cut = self.cut
        if cut is _identity:
            return list(rows)
        return [cut(r) for r in rows]

    def ndjson(self, rows: Sequence[Row]) -> bytes:
        """One JSON object per row, one per line."""
        columns = self.columns
        cut = self.cut
        return b"".join(dumps(dict(zip(columns, cut(r), strict=True))) + b"\n" for r in rows)

    def csv_header(self) -> bytes:
        """The CSV header line."""
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(self.columns)
        return out.getvalue().encode()

    def csv(self, rows: Sequence[Row]) -> bytes:
        """The CSV lines of `rows`."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        cut = self.cut
        writer.writerows([_csv_cell(v) for v in cut(r)] for r in rows)
        return out.getvalue().encode()


def _identity(row: Row) -> Sequence[object]:
    return row


def _drop_first(row: Row) -> Sequence[object]:
    return row[1:]


def _csv_cell(value: object) -> object:
    kind = type(value)
    if kind is bytes:
        return _b64encode(value).decode("ascii")  # type: ignore[arg-type]
    if kind is float:
        return repr(value)
    return "" if value is None else value
