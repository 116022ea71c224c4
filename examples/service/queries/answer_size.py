"""The bound on the JSON a page of rows (or one row) answers with: `max_answer_bytes`.

Rules:
- A row's size is counted cell by cell as `encoding.dumps` writes it, without encoding
  it: a text's length (escapes and `\\uXXXX` included), a blob's base64 length plus its
  marker, a number's digits; plus the row's brackets and commas. The body around the rows
  (names, columns, links) is not counted, so the bound is approximate by that margin.
- A page takes rows while their sizes add up to at most the bound, and ends before the
  first row that would pass it; its token continues right after the last row it holds.
- A page holds at least one row: a row that alone is larger than the bound is refused
  (413), naming the setting and the row's key.
- Pages are read in chunks sized from the rows seen so far, so a page of large rows stops
  reading about where it stops answering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii

from bridge.storage import row_key
from core.storage import Row, Table
from examples.service.encoding import dumps
from examples.service.errors import ServiceError
from examples.service.queries.paging import key_param

__all__ = ["FIRST_CHUNK", "AnswerBudget", "cell_size", "check_row", "row_size", "too_large"]

FIRST_CHUNK = 64
"""The first read of a page: enough for the pages people ask for most (20-50 rows, and the
one after them) in one read, few enough that rows of a megabyte each are not read far
past the bound; later reads are sized from the rows seen."""

_BLOB_MARKER = len('{"$base64":true,"encoded":""}')
_NULL = len("null")


def cell_size(value: object) -> int:
    """The bytes `encoding.dumps` writes for one cell."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
            return len(text) + 2
        return len(encode_basestring_ascii(text))
    if kind is bytes:
        return _BLOB_MARKER + (len(value) + 2) // 3 * 4  # type: ignore[arg-type]
    if kind is int:
        return len(str(value))
    if kind is float:
        number: float = value  # type: ignore[assignment]
        return len(repr(number)) if math.isfinite(number) else len(dumps(number))
    if value is None:
        return _NULL
    return len(dumps(value))


def row_size(cells: Sequence[object]) -> int:
    """The bytes one shown row takes in a list of rows: its cells, brackets and commas."""
    return sum(map(cell_size, cells)) + len(cells) + 2


def too_large(table: Table, row: Row, size: int, max_bytes: int) -> ServiceError:
    """The 413 for a row that alone is larger than `max_answer_bytes`."""
    key = key_param(row_key(table, row))
    what = "rowid" if not table.without_rowid else "primary key"
    return ServiceError(
        413,
        f"the row with {what} {key} of table {table.name!r} takes about {size} bytes of "
        f"JSON, more than max_answer_bytes ({max_bytes}); raise IORESULT_MAX_ANSWER_BYTES "
        f"(--max-answer-bytes) to read it, or export the table",
    )


def check_row(table: Table, row: Row, cells: Sequence[object], max_bytes: int) -> None:
    """Raise the 413 of `too_large` if the shown row `cells` alone passes the bound."""
    size = row_size(cells)
    if size > max_bytes:
        raise too_large(table, row, size, max_bytes)


class AnswerBudget:
    """The bytes left for a page's rows."""

    __slots__ = ("max_bytes", "table", "taken", "used")

    def __init__(self, table: Table, max_bytes: int) -> None:
        self.table = table
        self.max_bytes = max_bytes
        self.used = 0
        self.taken = 0

    def take(self, row: Row, cells: Sequence[object]) -> bool:
        """Count the shown row `cells` in if it fits; False if it does not (the page ends
        before it). Raises the 413 for a first row that alone does not fit."""
        size = row_size(cells)
        if self.used + size > self.max_bytes:
            if self.taken == 0:
                raise too_large(self.table, row, size, self.max_bytes)
            return False
        self.used += size
        self.taken += 1
        return True

    def chunk(self, left: int) -> int:
        """How many rows to read next, of the `left` the page may still want: the first
        read is small, later ones as many as the rows seen so far say will fit (and one
        more, to find where the page ends)."""
        if self.taken == 0:
            return min(left, FIRST_CHUNK)
        average = max(1, self.used // self.taken)
        return max(1, min(left, (self.max_bytes - self.used) // average + 1))
