"""Row keys and page tokens, as they appear in requests and in bodies.

Rules:
- A row key in a request (`after` of a page of rows, `{key}` of one row) is a rowid (an
  integer), or for a WITHOUT ROWID table a JSON array of its primary-key values (one JSON
  value, or bare text, for a one-column key). In a body it is the same JSON
  (`encode_key`); in a URL, the JSON text (`key_param`).
- A lookup's `next_after` is opaque to clients: unpadded base64url of the JSON array of
  the index entry the page ended on (the index's columns, then the rowid or primary key),
  so the next page seeks straight past it; never a count of rows to skip. Only
  `decode_entry_token` reads one.
- The web pages' sorted pages continue from a cut, `[value, skip]` (`encode_token`,
  `decode_token`): the value to continue from and how many rows with it were shown.
- A parameter that does not parse is a `ServiceError` 422 that names the parameter; so is
  one longer than `MAX_KEY_TEXT` characters, or JSON nested too deep for the parser
  (thousands of `[`), which is refused, never a 500.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence

from core.storage import Table
from examples.service.encoding import decode_cell, encode_cell
from examples.service.errors import ServiceError

__all__ = [
    "MAX_KEY_TEXT",
    "decode_entry_token",
    "decode_token",
    "encode_entry_token",
    "encode_key",
    "encode_token",
    "key_param",
    "parse_key",
]

MAX_KEY_TEXT = 8192
"""The longest row key or page token a request may carry, in characters."""


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_KEY_TEXT:
        raise ServiceError(
            422, f"{what} is {len(text)} characters long; the limit is {MAX_KEY_TEXT}"
        )


def parse_key(table: Table, text: str, what: str) -> object:
    """A rowid (an integer) or a WITHOUT ROWID primary key (a JSON array, or one JSON value
    for a one-column key) from request parameter `what`."""
    _check_length(text, what)
    if not table.without_rowid:
        try:
            return int(text)
        except ValueError:
            raise ServiceError(
                422, f"{what} must be an integer rowid for table {table.name!r}, got {text!r}"
            ) from None
    n = len(table.primary_key)
    key_columns = ", ".join(str(c.name) for c in table.primary_key)
    try:
        value = json.loads(text)
    except RecursionError:
        raise ServiceError(422, f"{what} is JSON nested too deeply") from None
    except ValueError:
        if n != 1:
            raise ServiceError(
                422,
                f"{what} must be a JSON array of the {n} primary-key values of "
                f"{table.name!r} ({key_columns}), got {text!r}",
            ) from None
        value = text
    values = value if isinstance(value, list) else [value]
    if len(values) != n:
        raise ServiceError(
            422,
            f"{what} must hold {n} primary-key value(s) for {table.name!r} "
            f"({key_columns}), got {len(values)}",
        )
    try:
        return tuple(decode_cell(v) for v in values)
    except ValueError as exc:
        raise ServiceError(422, f"{what}: {exc}") from None


def encode_key(key: object) -> object:
    """A row key as JSON: a rowid as it is, a primary key as an array of encoded cells."""
    if isinstance(key, tuple):
        return [encode_cell(v) for v in key]
    return key


def key_param(key: object) -> str:
    """A row key as the text of a URL parameter, which `parse_key` reads back."""
    return key_text if isinstance(key_text := key, str) else json.dumps(encode_key(key))


def encode_entry_token(entry: Sequence[object]) -> str:
    """A lookup's `next_after`: the index entry (index columns, then rowid or primary key)
    of the last row returned, or `[rowid]` for a lookup by rowid."""
    raw = json.dumps([encode_cell(v) for v in entry], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_entry_token(after: str) -> tuple[object, ...]:
    """The index entry of a lookup's `next_after`; raises `ServiceError` 422."""
    _check_length(after, "after")
    try:
        raw = json.loads(base64.urlsafe_b64decode(after.encode() + b"=" * (-len(after) % 4)))
        if not isinstance(raw, list) or not raw:
            raise ValueError
        entry = tuple(decode_cell(v) for v in raw)
        for v in entry:
            # Only what a record holds: SQLite stores no NaN, and JSON's true is no value.
            if v is not None and type(v) not in (int, float, str, bytes):
                raise ValueError
            if type(v) is float and math.isnan(v):
                raise ValueError
        return entry
    except (ValueError, TypeError, RecursionError):
        raise ServiceError(
            422, f"after={after!r} is not a next_after value from a previous page"
        ) from None


def encode_token(value: object, skip: int) -> str:
    """A sorted page's cut (the web pages' `_next`): continue from `value`, past `skip`
    rows with it already shown."""
    raw = json.dumps([encode_cell(value), skip], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(after: str) -> tuple[object, int]:
    """The value and skip of a cut made by `encode_token`; raises `ServiceError` 422."""
    _check_length(after, "after")
    try:
        raw = json.loads(base64.urlsafe_b64decode(after.encode() + b"=" * (-len(after) % 4)))
        value, skip = raw
        if type(skip) is not int or skip < 0:
            raise ValueError
        return decode_cell(value), skip
    except (ValueError, TypeError, RecursionError):
        raise ServiceError(
            422, f"after={after!r} is not a next_after value from a previous page"
        ) from None
