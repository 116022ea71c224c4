"""The on-disk format written: varints, records, cells, overflow chains and B-tree pages
(Turso `sqlite3_ondisk.rs` `write_varint` and `btree.rs` `fill_cell_payload`; SQLite
`vdbe.c` `OP_MakeRecord`, `btree.c` `fillInCell` and `rebuildPage`; sqlite.org/fileformat2.html
1.6 and 2.1). Every function here is the inverse of a reader in `record.py` or `page.py`,
and the tests hold each one to its reader and to the bytes SQLite itself writes.

Theory of operation:
- Pure functions from values to bytes: no I/O, no page cache, no state. A writer chooses
  page numbers and where cells go; this module only lays out the bytes it is given.
- A value reaches a record in two steps, as in SQLite: `column_value` gives it the
  column's affinity (what INSERT and UPDATE store), then `encode_record` picks its serial
  type. `encode_record` never converts: it stores exactly the value it is handed.
  `column_value` gives the value SQLite reads back; where SQLite's bytes differ (it
  writes a whole REAL value as an integer and converts it on read) a double is written,
  which every reader returns the same way.
- Integers take the smallest serial type that holds them; 0 and 1 are the body-less serial
  types 8 and 9, which needs schema format 4 (the only format this engine writes). A NaN
  is stored as NULL, as SQLite binds it; -0.0 and the infinities are stored as they are.
- A record header counts its own length varint. 126 serial-type bytes still fit a 1-byte
  length (127); 127 need a 2-byte length, so such a header is 129 bytes: no header is 128.
- Cells follow `fillInCell`: the payload size varint, the rowid varint (table leaves), the
  local part of the payload, then the first overflow page when the payload spills. How
  much stays local is `PageLayout.local_size`. A cell shorter than 4 bytes is padded to 4,
  because SQLite reserves at least 4 bytes for every cell (`cellSizePtr`) and its
  integrity check counts a shorter one as overlapping its neighbour. The pad is zero here;
  SQLite leaves whatever its cell buffer held there, and never reads it.
- An overflow chain is the spilled bytes in pages of usable_size-4, each headed by the
  next page's number. Unless the local part fell back to min_local, `local_size` keeps
  exactly enough bytes local that every overflow page is full.
- `build_page` writes a compact page the way SQLite's `rebuildPage` does: cell 0 at the
  end of the usable area and each later cell just below the one before, the pointer array
  in cell order, no freeblocks, no fragmented bytes, and zeros in the gap and the reserved
  tail. A page filled that way by appending rows in rowid order is byte-identical to it.
- Bad arguments (a value that is not a storable type, an integer outside 64 bits, cells
  that do not fit, a chain of the wrong length) raise at once; nothing is truncated.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from importlib.machinery import EXTENSION_SUFFIXES
from itertools import accumulate
from typing import Final

from core.storage.collation import Affinity, apply_affinity
from core.storage.page import INDEX_INTERIOR, INDEX_LEAF, LEAF_FLAG, TABLE_INTERIOR, TABLE_LEAF
from core.storage.record import Value

__all__ = [
    "CELL_POINTER_SIZE",
    "INTERIOR_HEADER_SIZE",
    "LEAF_HEADER_SIZE",
    "MAX_CELL_COUNT",
    "MIN_CELL_SIZE",
    "append_to_page",
    "build_page",
    "cell_area",
    "cells_size",
    "column_value",
    "encode_record",
    "index_interior_cell",
    "index_leaf_cell",
    "overflow_page_count",
    "overflow_pages",
    "table_interior_cell",
    "table_leaf_cell",
    "varint_size",
    "write_varint",
]

LEAF_HEADER_SIZE: Final = 8
"""Bytes of a leaf page's B-tree header."""
INTERIOR_HEADER_SIZE: Final = 12
"""Bytes of an interior page's B-tree header (the leaf header plus the right child)."""
CELL_POINTER_SIZE: Final = 2
"""Bytes of one entry of the cell pointer array."""
MIN_CELL_SIZE: Final = 4
"""The fewest bytes a cell occupies on a page; shorter cells are padded to it."""
MAX_CELL_COUNT: Final = 0xFFFF
"""The most cells the 2-byte count of a page header can say (space runs out well before)."""

_COMPILED: Final = __file__.endswith(tuple(EXTENSION_SUFFIXES))
"""True when this module is a mypyc-compiled extension (see `cells_size`)."""

_U64: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
_I64_LIMIT: Final = 9.2233720368547758e18
"""2**63 as a float: a float strictly inside +-this converts to a 64-bit integer."""

_pack_i8: Final = struct.Struct(">b").pack
_pack_i16: Final = struct.Struct(">h").pack
_pack_i32: Final = struct.Struct(">i").pack
_pack_i64: Final = struct.Struct(">q").pack
_pack_double: Final = struct.Struct(">d").pack
_pack_u32: Final = struct.Struct(">I").pack
_pack_u32_into: Final = struct.Struct(">I").pack_into
_pack_u16_into: Final = struct.Struct(">H").pack_into
_pack_header_into: Final = struct.Struct(">BHHHB").pack_into

_ONE_BYTE_VARINTS: Final = tuple(bytes((i,)) for i in range(0x80))

_REAL: Final = Affinity.REAL
_TEXT: Final = Affinity.TEXT
_BLOB: Final = Affinity.BLOB
_NUMERIC: Final = Affinity.NUMERIC
_INTEGER: Final = Affinity.INTEGER
_KINDS: Final = (INDEX_INTERIOR, TABLE_INTERIOR, INDEX_LEAF, TABLE_LEAF)


def write_varint(value: int) -> bytes:
    """`value` as a SQLite varint (1 to 9 bytes). A negative value (a rowid) is written as
    its 64-bit two's complement, so it always takes 9 bytes.

    Raises `ValueError` for a value outside -2**63 .. 2**64-1.
    """
    if 0 <= value < 0x80:
        return _ONE_BYTE_VARINTS[value]
    if 0 < value < 0x4000:
        return bytes(((value >> 7) | 0x80, value & 0x7F))
    if value < 0:
        if value < _I64_MIN:
            raise ValueError(f"varint {value} does not fit in 64 bits")
        value &= _U64
    elif value > _U64:
        raise ValueError(f"varint {value} does not fit in 64 bits")
    if value >> 56:
        # The ninth byte carries eight bits, so the first eight carry the top 56.
        out = bytearray(9)
        out[8] = value & 0xFF
        value >>= 8
        for i in range(7, -1, -1):
            out[i] = (value & 0x7F) | 0x80
            value >>= 7
        return bytes(out)
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append((value & 0x7F) | 0x80)
        value >>= 7
    groups.reverse()
    return bytes(groups)


def varint_size(value: int) -> int:
    """How many bytes `write_varint(value)` takes.

    Raises `ValueError` for a value outside -2**63 .. 2**64-1.
    """
    if 0 <= value < 0x80:
        return 1
    if value < 0:
        if value < _I64_MIN:
            raise ValueError(f"varint {value} does not fit in 64 bits")
        return 9
    bits = value.bit_length()
    if bits > 64:
        raise ValueError(f"varint {value} does not fit in 64 bits")
    return 9 if bits > 56 else (bits + 6) // 7


def _header_size(types_size: int) -> int:
    """The size of a record header whose serial types take `types_size` bytes, counting
    the varint that holds the size itself (a byte more than it first seems at each varint
    boundary: 127 bytes of serial types make a 129-byte header)."""
    n = 1
    while varint_size(types_size + n) > n:
        n += 1
    return types_size + n


def encode_record(values: Sequence[Value], codec: str = "utf-8") -> bytes:
    """The record of `values`, text encoded with `codec` (the database's text encoding).
    Values are stored as given (a `bool` or other subclass as its base type): apply
    `column_value` first for a column's affinity.

    Raises `TypeError` naming the type of a value that is none of None, int, float, str
    and bytes; `ValueError` for an integer outside 64 bits; `UnicodeEncodeError` for text
    `codec` cannot encode (a lone surrogate).
    """
    header = bytearray(1)  # the length goes in byte 0 once it is known
    put = header.append
    body: list[bytes | bytearray] = [header]
    add = body.append
    for v in values:
        if isinstance(v, int):
            if -0x80 <= v <= 0x7F:
                if 0 <= v <= 1:
                    put(8 + v)
                else:
                    put(1)
                    add(_pack_i8(v))
            elif -0x8000 <= v <= 0x7FFF:
                put(2)
                add(_pack_i16(v))
            elif -0x800000 <= v <= 0x7FFFFF:
                put(3)
                add(v.to_bytes(3, "big", signed=True))
            elif -0x80000000 <= v <= 0x7FFFFFFF:
                put(4)
                add(_pack_i32(v))
            elif -0x800000000000 <= v <= 0x7FFFFFFFFFFF:
                put(5)
                add(v.to_bytes(6, "big", signed=True))
            elif _I64_MIN <= v <= _I64_MAX:
                put(6)
                add(_pack_i64(v))
            else:
                raise ValueError(f"integer {v} does not fit in 64 bits")
        elif isinstance(v, str):
            data = v.encode(codec)
            serial = 2 * len(data) + 13
            if serial < 0x80:
                put(serial)
            else:
                header += write_varint(serial)
            add(data)
        elif isinstance(v, float):
            if v != v:  # noqa: PLR0124 (NaN is stored as NULL)
                put(0)
            else:
                put(7)
                add(_pack_double(v))
        elif v is None:
            put(0)
        elif isinstance(v, bytes):
            serial = 2 * len(v) + 12
            if serial < 0x80:
                put(serial)
            else:
                header += write_varint(serial)
            add(v)
        else:
            raise TypeError(
                f"cannot store a {type(v).__name__} in a record "
                "(only None, int, float, str and bytes)"
            )
    size = len(header)
    if size < 0x80:
        header[0] = size
    else:
        body[0] = write_varint(_header_size(size - 1)) + header[1:]
    return b"".join(body)


def column_value(value: object, affinity: Affinity | None) -> Value:
    """`value` as SQLite stores it on INSERT or UPDATE into a column of `affinity` (None:
    an expression, no affinity), read back as SQLite reads it (datatype3.html 3.4):
    TEXT turns numbers into text; NUMERIC and INTEGER turn numeric-looking text into a
    number and a float with an exact 64-bit integer value into that integer; REAL does the
    same and then makes the number a float; BLOB changes nothing. Everywhere bool becomes
    int, bytearray and memoryview become bytes, and NaN becomes None.

    SQLite writes a whole value of a REAL column to disk as an integer (and converts it on
    read); this returns the float it reads back, which stores as a double and reads the same.

    Raises `SchemaError` naming the type of a value SQLite cannot store, and for an integer
    outside 64 bits.
    """
    # Values apply_affinity would return unchanged (the common case) skip it. Affinities
    # compare by identity (enum members): a set would hash them, in Python.
    if type(value) is int:
        if affinity is not _TEXT and affinity is not _REAL and _I64_MIN <= value <= _I64_MAX:
            return value  # NUMERIC, INTEGER, BLOB or none store it unchanged
    elif type(value) is str:
        if affinity is _TEXT or affinity is _BLOB or affinity is None:
            return value
    elif type(value) is float:
        # Not NaN and not whole (infinities included): only TEXT changes it.
        if affinity is not _TEXT and value == value and not value.is_integer():  # noqa: PLR0124
            return value
    elif type(value) is bytes or value is None:
        return value
    stored = apply_affinity(value, affinity)
    if type(stored) is float:
        if affinity is _NUMERIC or affinity is _INTEGER:
            if stored.is_integer() and -_I64_LIMIT < stored < _I64_LIMIT:
                return int(stored)
        elif affinity is _REAL and stored == 0.0:
            return 0.0  # -0.0 goes through the integer 0, so it reads back as +0.0
    elif type(stored) is int and affinity is _REAL:
        return float(stored)
    return stored


def _spill(cell: bytes, payload: bytes, local: int, first_overflow: int) -> bytes:
    """`cell` (the cell's varints) with the local part of `payload` and, when it spills,
    the first overflow page.

    Raises `ValueError` for a `local` outside 0..len(payload) or an overflow page number
    outside 1..2**32-1 when one is needed.
    """
    size = len(payload)
    if local == size:
        return cell + payload
    if not 0 <= local < size:
        raise ValueError(f"{local} local bytes of a {size}-byte payload")
    if not 0 < first_overflow <= 0xFFFFFFFF:
        raise ValueError(f"overflow page number {first_overflow} is not a page number")
    return b"".join((cell, payload[:local], _pack_u32(first_overflow)))


def table_leaf_cell(rowid: int, payload: bytes, local: int, first_overflow: int) -> bytes:
    """A table leaf cell: the payload size and rowid varints, the first `local` bytes of
    `payload` (`layout.local_size(len(payload), True)`), and `first_overflow` if the
    payload spills (it is ignored otherwise). Padded with zeros to `MIN_CELL_SIZE`.

    Raises `ValueError` for a rowid outside 64 bits, a `local` outside 0..len(payload), or
    a spilling payload without a valid first overflow page.
    """
    if not _I64_MIN <= rowid <= _I64_MAX:
        raise ValueError(f"rowid {rowid} does not fit in 64 bits")
    cell = _spill(write_varint(len(payload)) + write_varint(rowid), payload, local, first_overflow)
    if len(cell) < MIN_CELL_SIZE:
        return cell + bytes(MIN_CELL_SIZE - len(cell))
    return cell


def table_interior_cell(left_child: int, rowid: int) -> bytes:
    """A table interior cell: the 4-byte left child page number and the rowid varint (the
    largest rowid in the left child's subtree).

    Raises `ValueError` for a child outside 1..2**32-1 or a rowid outside 64 bits.
    """
    if not 0 < left_child <= 0xFFFFFFFF:
        raise ValueError(f"left child {left_child} is not a page number")
    if not _I64_MIN <= rowid <= _I64_MAX:
        raise ValueError(f"rowid {rowid} does not fit in 64 bits")
    return _pack_u32(left_child) + write_varint(rowid)


def index_leaf_cell(payload: bytes, local: int, first_overflow: int) -> bytes:
    """An index leaf cell: the payload size varint, the first `local` bytes of `payload`
    (`layout.local_size(len(payload), False)`), and `first_overflow` if it spills.
    Padded with zeros to `MIN_CELL_SIZE`.

    Raises `ValueError` for a `local` outside 0..len(payload) or a spilling payload
    without a valid first overflow page.
    """
    cell = _spill(write_varint(len(payload)), payload, local, first_overflow)
    if len(cell) < MIN_CELL_SIZE:
        return cell + bytes(MIN_CELL_SIZE - len(cell))
    return cell


def index_interior_cell(left_child: int, payload: bytes, local: int, first_overflow: int) -> bytes:
    """An index interior cell: the 4-byte left child page number, then the index leaf
    cell of `payload` (never shorter than `MIN_CELL_SIZE`, so never padded).

    Raises `ValueError` for a child outside 1..2**32-1, a `local` outside
    0..len(payload), or a spilling payload without a valid first overflow page.
    """
    if not 0 < left_child <= 0xFFFFFFFF:
        raise ValueError(f"left child {left_child} is not a page number")
    return _pack_u32(left_child) + _spill(
        write_varint(len(payload)), payload, local, first_overflow
    )


def overflow_page_count(rest_size: int, usable_size: int) -> int:
    """How many overflow pages hold `rest_size` payload bytes (each holds usable_size-4)."""
    return -(-rest_size // (usable_size - 4))


def overflow_pages(
    rest: bytes, numbers: Sequence[int], usable_size: int, page_size: int
) -> list[bytes]:
    """The overflow chain holding `rest` (the payload bytes that did not stay local) on
    pages `numbers`, in chain order: each page is the next page's number (0 on the last),
    then up to usable_size-4 bytes of `rest`, zero-padded to `page_size`.

    Raises `ValueError` if `numbers` is not `overflow_page_count(len(rest), usable_size)`
    long, holds a number outside 1..2**32-1, or `usable_size` exceeds `page_size`.
    """
    if usable_size > page_size:
        raise ValueError(f"usable size {usable_size} exceeds the {page_size}-byte page")
    chunk = usable_size - 4
    count = overflow_page_count(len(rest), usable_size)
    if len(numbers) != count:
        raise ValueError(
            f"{len(rest)} overflow bytes need {count} pages of {usable_size} usable bytes, "
            f"not {len(numbers)}"
        )
    pages = []
    for i, number in enumerate(numbers):
        if not 0 < number <= 0xFFFFFFFF:
            raise ValueError(f"overflow page number {number} is not a page number")
        page = bytearray(page_size)
        _pack_u32_into(page, 0, numbers[i + 1] if i + 1 < count else 0)
        part = rest[i * chunk : (i + 1) * chunk]
        page[4 : 4 + len(part)] = part
        pages.append(bytes(page))
    return pages


def cells_size(cells: list[bytes]) -> int:
    """The bytes `cells` take together. Compiled, a loop (a tenth of `sum(map(len, ...))`,
    which goes through Python's generic calls there); interpreted, the builtins, which are
    the faster there."""
    if _COMPILED:
        total = 0
        for cell in cells:
            total += len(cell)
        return total
    return sum(map(len, cells))


def cell_area(cells: Sequence[bytes], leaf: bool, header_offset: int) -> int:
    """The bytes a compact page holding `cells` needs: `header_offset` (100 on page 1,
    else 0), the B-tree header, the cell pointer array and the cells themselves. The
    cells fit a page exactly when this is at most its usable size."""
    header = LEAF_HEADER_SIZE if leaf else INTERIOR_HEADER_SIZE
    return header_offset + header + CELL_POINTER_SIZE * len(cells) + sum(map(len, cells))


def append_to_page(
    origin: bytes,
    offset: int,
    kind: int,
    kept: int,
    cells: Sequence[bytes],
    right_child: int,
    usable_size: int,
    prefix: bytes = b"",
) -> bytes | None:
    """Page image `origin` (a B-tree page of `kind` whose header starts at `offset`, 100
    on page 1, else 0) with `cells[kept:]` added after its first `kept` cells, which must
    be exactly the cells it holds, the right child set to `right_child` (interior pages)
    and `prefix` over its first bytes; None when that does not apply (another kind or
    cell count, or not enough room between the cell pointers and the content).

    The new cells are laid down in the gap just below the content area, each below the
    one before, and their pointers appended to the array, as SQLite's `insertCell` does
    when the gap has room: on a compact page (`build_page`'s) the result is byte for byte
    what `build_page` makes of all the cells, and it costs only the new cells.
    """
    if len(origin) < offset + LEAF_HEADER_SIZE or origin[offset] != kind:
        return None
    header = LEAF_HEADER_SIZE if kind & LEAF_FLAG else INTERIOR_HEADER_SIZE
    if (origin[offset + 3] << 8) | origin[offset + 4] != kept:
        return None
    start = (origin[offset + 5] << 8) | origin[offset + 6]
    if start == 0:
        start = 65536
    count = len(cells)
    added = cells[kept:]
    content = added[0] if len(added) == 1 else b"".join(reversed(added))
    end = start - len(content)
    pointers_end = offset + header + CELL_POINTER_SIZE * count
    if end < pointers_end or start > usable_size or count > MAX_CELL_COUNT:
        return None
    page = bytearray(origin)
    if prefix:
        page[: len(prefix)] = prefix
    page[end:start] = content
    reach = start
    pointers = []
    for cell in added:
        reach -= len(cell)
        pointers.append(reach)
    at = offset + header + CELL_POINTER_SIZE * kept
    if len(pointers) == 1:  # the usual case (a row appended) without a format to build
        _pack_u16_into(page, at, pointers[0])
    else:
        struct.pack_into(f">{len(pointers)}H", page, at, *pointers)
    _pack_header_into(
        page,
        offset,
        kind,
        (origin[offset + 1] << 8) | origin[offset + 2],
        count,
        end & 0xFFFF,
        origin[offset + 7],
    )
    if header == INTERIOR_HEADER_SIZE:
        _pack_u32_into(page, offset + LEAF_HEADER_SIZE, right_child)
    return bytes(page)


def build_page(
    kind: int,
    cells: Sequence[bytes],
    right_child: int,
    *,
    page_size: int,
    usable_size: int,
    prefix: bytes = b"",
) -> bytes:
    """One compact B-tree page of `kind` (`TABLE_LEAF`, `TABLE_INTERIOR`, `INDEX_LEAF`,
    `INDEX_INTERIOR`) holding `cells` in order, exactly `page_size` bytes: `prefix` (the
    100-byte database header on page 1, else empty), the B-tree header, the cell pointer
    array, zeros, then the cells packed at the end of the usable area with cell 0 last,
    and zeroed reserved bytes. `right_child` is the right-most child of an interior page
    and must be 0 for a leaf.

    Raises `ValueError` for an unknown kind, a right child that does not suit the kind,
    `usable_size` larger than `page_size`, or cells that do not fit (`cell_area` above
    `usable_size`).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown B-tree page type {kind}")
    leaf = bool(kind & LEAF_FLAG)
    if leaf:
        if right_child:
            raise ValueError(f"a leaf page has no right child (got {right_child})")
    elif not 0 < right_child <= 0xFFFFFFFF:
        raise ValueError(f"right child {right_child} is not a page number")
    if usable_size > page_size:
        raise ValueError(f"usable size {usable_size} exceeds the {page_size}-byte page")
    offset = len(prefix)
    count = len(cells)
    area = cell_area(cells, leaf, offset)
    if area > usable_size or count > MAX_CELL_COUNT:
        raise ValueError(
            f"{count} cells need {area} bytes and do not fit {usable_size} usable bytes"
        )
    page = bytearray(page_size)
    page[:offset] = prefix
    # Cell 0 ends at the end of the usable area, each next cell just below it: the content
    # is the cells reversed, laid down in one copy; cell i starts where the first i + 1
    # cells' lengths, summed, reach below the end.
    content = b"".join(reversed(cells))
    end = usable_size - len(content)
    page[end:usable_size] = content
    pointers = [usable_size - reach for reach in accumulate(map(len, cells))]
    # The content start is a 2-byte field: an empty 65536-byte page stores 65536 as 0.
    _pack_header_into(page, offset, kind, 0, count, end & 0xFFFF, 0)
    if not leaf:
        _pack_u32_into(page, offset + LEAF_HEADER_SIZE, right_child)
    struct.pack_into(
        f">{count}H", page, offset + (LEAF_HEADER_SIZE if leaf else INTERIOR_HEADER_SIZE), *pointers
    )
    return bytes(page)
