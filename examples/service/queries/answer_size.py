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
- A chunk of rows is first counted whole (`take_rows`): `dumps` encodes its shown rows in
  one C call, and that JSON list is one byte longer than the sum of their sizes (a size
  counts a row's comma; the list has one fewer comma, and two brackets). If they all fit,
  that JSON is kept for the page's body (`encoded`), so its rows are encoded once; if
  not, the chunk is counted row by row, which finds where the page ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii

from bridge.storage import row_key
from core.storage import Row, Table
from examples.service.encoding import Encoded, dumps
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

    __slots__ = ("_pieces", "max_bytes", "table", "taken", "used")

    def __init__(self, table: Table, max_bytes: int) -> None:
        self.table = table
        self.max_bytes = max_bytes
        self.used = 0
        self.taken = 0
        # The JSON lists of the chunks counted whole; None once a row was counted alone.
        self._pieces: list[bytes] | None = []

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
        self._pieces = None
        return True

    def take_rows(self, rows: Sequence[Row], cells: Sequence[Sequence[object]]) -> int:
        """Count in the shown rows `cells` (of the first `rows`, in order) while they fit;
        how many fit. All at once if together they do (see `encoded`), else one by one
        (`take`, which raises the 413 for a page's first row)."""
        if not cells:
            return 0
        encoded = dumps(cells)
        size = len(encoded) - 1  # the sum of their `row_size`s
        if self.used + size <= self.max_bytes:
            self.used += size
            self.taken += len(cells)
            if self._pieces is not None:
                self._pieces.append(encoded)
            return len(cells)
        for n, (row, shown) in enumerate(zip(rows, cells, strict=False)):
            if not self.take(row, shown):
                return n
        return len(cells)

    def encoded(self) -> Encoded | None:
        """The JSON list of the rows counted in, if `take_rows` counted them all whole
        (None if a row was counted alone): what `dumps` writes for them."""
        pieces = self._pieces
        if pieces is None:
            return None
        if len(pieces) == 1:
            return Encoded(pieces[0])
        return Encoded(b"[" + b",".join(p[1:-1] for p in pieces) + b"]")

    def chunk(self, left: int) -> int:
        """How many rows to read next, of the `left` the page may still want: the first
        read is small, later ones as many as the rows seen so far say will fit (and one
        more, to find where the page ends)."""
        if self.taken == 0:
            return min(left, FIRST_CHUNK)
        average = max(1, self.used // self.taken)
        return max(1, min(left, (self.max_bytes - self.used) // average + 1))
