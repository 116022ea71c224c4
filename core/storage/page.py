"""B-tree pages: the page header, the cell pointer array and the four cell formats (Turso
`sqlite3_ondisk.rs`: `PageContent`, `read_btree_cell`; sqlite.org/fileformat2.html 1.6).

Theory of operation:
- A `Page` is the bytes of one page, as the pager read them, plus what has been parsed out
  of them so far. Parsing is lazy and cached on the page: the B-tree header on first use as
  a B-tree page, then the cells (rowids, child pointers, payload positions) on first use of
  the cells. A page's bytes never change while it is cached, so neither does what was
  parsed from them; parsed state is therefore shared by every cursor that meets the page.
- Index pages also cache their decoded records and the sort keys built from them (`keys`,
  tagged with the key plan that built them): seeks then bisect a list instead of decoding
  cells, the optimisation that makes hot point lookups cheap.
- The write path's view of a B-tree page (`node.Node`, its cells as a list) is cached on
  the page the same way (`node`), so a write transaction does not parse again a page an
  earlier one parsed or wrote.
- Every offset read from the page is checked against the usable size before it is trusted;
  a bad one is a `CorruptDatabaseError` naming the page and the cell. Stray `IndexError`s
  and `struct.error`s from a malformed page are translated at each entry point.
- Page 1 carries the 100-byte database header before its B-tree header; cell pointers are
  still relative to the start of the page.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from core.storage.errors import CorruptDatabaseError
from core.storage.record import Value, read_varint, to_signed64

if TYPE_CHECKING:
    from core.storage.node import Node

__all__ = [
    "INDEX_INTERIOR",
    "INDEX_LEAF",
    "LEAF_FLAG",
    "TABLE_FLAG",
    "TABLE_INTERIOR",
    "TABLE_LEAF",
    "Page",
    "PageLayout",
    "cell_overflow",
    "parse_btree",
    "parse_cells",
]

INDEX_INTERIOR: Final = 2
TABLE_INTERIOR: Final = 5
INDEX_LEAF: Final = 10
TABLE_LEAF: Final = 13
LEAF_FLAG: Final = 8
"""The bit of a page kind that marks a leaf (SQLite's PTF_LEAF)."""
TABLE_FLAG: Final = 1
"""The bit of a page kind that marks a table B-tree page (SQLite's PTF_INTKEY | PTF_LEAFDATA
read as one bit: 5 and 13 have it, 2 and 10 do not)."""

_KIND_NAMES: Final = {
    INDEX_INTERIOR: "index interior",
    TABLE_INTERIOR: "table interior",
    INDEX_LEAF: "index leaf",
    TABLE_LEAF: "table leaf",
}

_u32: Final = struct.Struct(">I").unpack_from


class PageLayout:
    """The geometry every page of one database shares: sizes and payload spill limits."""

    __slots__ = ("max_local_index", "max_local_table", "min_local", "page_size", "usable_size")

    def __init__(self, page_size: int, usable_size: int) -> None:
        self.page_size = page_size
        self.usable_size = usable_size
        self.max_local_table = usable_size - 35
        self.max_local_index = ((usable_size - 12) * 64 // 255) - 23
        self.min_local = ((usable_size - 12) * 32 // 255) - 23

    def local_size(self, payload_size: int, table_leaf: bool) -> int:
        """How many bytes of a payload of `payload_size` bytes stay on the B-tree page."""
        max_local = self.max_local_table if table_leaf else self.max_local_index
        if payload_size <= max_local:
            return payload_size
        min_local = self.min_local
        k = min_local + (payload_size - min_local) % (self.usable_size - 4)
        return k if k <= max_local else min_local


class Page:
    """One page's bytes and what has been parsed from them (all lazily, see the module)."""

    __slots__ = (
        "cell_count",
        "cell_ptrs",
        "children",
        "data",
        "key_plan",
        "keys",
        "kind",
        "node",
        "number",
        "payload_sizes",
        "payload_starts",
        "records",
        "rightmost",
        "rowids",
    )

    def __init__(self, number: int, data: bytes) -> None:
        self.number = number
        self.data = data
        self.kind = 0
        """The B-tree page type once parsed (2, 5, 10 or 13); 0 before."""
        self.cell_count = 0
        self.cell_ptrs: tuple[int, ...] = ()
        self.rightmost = 0
        self.rowids: list[int] | None = None
        """Table pages: the rowid of each cell (the divider keys on interior pages)."""
        self.children: list[int] | None = None
        """Interior pages: the left child of each cell, then the right-most pointer."""
        self.payload_sizes: list[int] | None = None
        self.payload_starts: list[int] | None = None
        self.records: list[list[Value]] | None = None
        """Index pages: each cell's decoded record, once a seek needed them."""
        self.keys: list[tuple[object, ...]] | None = None
        """Index pages: each cell's sort key under `key_plan`."""
        self.key_plan: object = None
        self.node: Node | None = None
        """The write path's `Node` of this page once parsed (`Node.of_page`) or written by a
        commit; shared, so never edited (a statement edits a copy)."""

    @property
    def is_leaf(self) -> bool:
        """True for leaf pages (after `parse_btree`)."""
        return bool(self.kind & LEAF_FLAG)

    @property
    def is_table(self) -> bool:
        """True for table B-tree pages (after `parse_btree`)."""
        return bool(self.kind & TABLE_FLAG)

    def kind_name(self) -> str:
        """A readable name of the page type."""
        return _KIND_NAMES.get(self.kind, f"type {self.kind}")

    def __repr__(self) -> str:
        return f"<Page {self.number} {self.kind_name() if self.kind else 'unparsed'}>"


def parse_btree(page: Page, layout: PageLayout) -> None:
    """Parse the B-tree page header and the cell pointer array into `page`.

    Raises `CorruptDatabaseError` naming the page for an unknown page type, a cell count
    that does not fit, or a cell pointer outside the cell content area.
    """
    data = page.data
    number = page.number
    off = 100 if number == 1 else 0
    usable = layout.usable_size
    try:
        kind = data[off]
        if kind not in _KIND_NAMES:
            raise CorruptDatabaseError(f"unknown B-tree page type {kind}", page=number)
        count = (data[off + 3] << 8) | data[off + 4]
        ptr_start = off + (8 if kind & LEAF_FLAG else 12)
        ptr_end = ptr_start + 2 * count
        if ptr_end > usable:
            raise CorruptDatabaseError(
                f"{count} cells do not fit a {usable}-byte usable page", page=number
            )
        ptrs: tuple[int, ...] = struct.unpack_from(f">{count}H", data, ptr_start)
        if count and (min(ptrs) < ptr_end or max(ptrs) > usable - 4):
            for i, ptr in enumerate(ptrs):
                if ptr < ptr_end or ptr > usable - 4:
                    raise CorruptDatabaseError(
                        f"cell pointer {i} is {ptr}, outside the cell area {ptr_end}..{usable - 4}",
                        page=number,
                    )
        rightmost = 0 if kind & LEAF_FLAG else _u32(data, off + 8)[0]
    except (IndexError, struct.error) as exc:
        raise CorruptDatabaseError(f"malformed B-tree page header ({exc})", page=number) from None
    page.cell_ptrs = ptrs
    page.cell_count = count
    page.rightmost = rightmost
    page.kind = kind


def parse_cells(page: Page, layout: PageLayout) -> None:
    """Parse every cell of a B-tree page (after `parse_btree`) into the page's lists.

    Table interior: `rowids` and `children`. Table leaf: `rowids`, `payload_sizes`,
    `payload_starts`. Index pages: `payload_sizes`, `payload_starts`, and `children` when
    interior. Raises `CorruptDatabaseError` naming the page and cell for a cell that runs
    past the usable page.
    """
    data = page.data
    kind = page.kind
    number = page.number
    usable = layout.usable_size
    i = 0
    try:
        if kind == TABLE_INTERIOR:
            children: list[int] = []
            rowids: list[int] = []
            for i, ptr in enumerate(page.cell_ptrs):  # noqa: B007 (i names the bad cell)
                children.append(_u32(data, ptr)[0])
                b = data[ptr + 4]
                if b < 0x80:
                    rowids.append(b)
                else:
                    rowids.append(to_signed64(read_varint(data, ptr + 4)[0]))
            children.append(page.rightmost)
            page.rowids = rowids
            page.children = children
            return
        sizes: list[int] = []
        starts: list[int] = []
        if kind == TABLE_LEAF:
            max_local = layout.max_local_table
            rowids = []
            for i, ptr in enumerate(page.cell_ptrs):
                b = data[ptr]
                if b < 0x80:
                    size = b
                    p = ptr + 1
                else:
                    size, p = read_varint(data, ptr)
                b = data[p]
                if b < 0x80:
                    rowids.append(b)
                    p += 1
                else:
                    rowid, p = read_varint(data, p)
                    rowids.append(to_signed64(rowid))
                if size <= max_local:
                    if p + size > usable:
                        raise _cell_overrun(page, i, size)
                elif p + layout.local_size(size, True) + 4 > usable:
                    raise _cell_overrun(page, i, size)
                sizes.append(size)
                starts.append(p)
            page.rowids = rowids
        else:
            max_local = layout.max_local_index
            interior = kind == INDEX_INTERIOR
            index_children: list[int] = []
            for i, ptr in enumerate(page.cell_ptrs):
                cell = ptr
                if interior:
                    index_children.append(_u32(data, ptr)[0])
                    cell = ptr + 4
                b = data[cell]
                if b < 0x80:
                    size = b
                    p = cell + 1
                else:
                    size, p = read_varint(data, cell)
                if size <= max_local:
                    if p + size > usable:
                        raise _cell_overrun(page, i, size)
                elif p + layout.local_size(size, False) + 4 > usable:
                    raise _cell_overrun(page, i, size)
                sizes.append(size)
                starts.append(p)
            if interior:
                index_children.append(page.rightmost)
                page.children = index_children
        page.payload_starts = starts
        page.payload_sizes = sizes
    except (IndexError, struct.error) as exc:
        raise CorruptDatabaseError(f"cell {i} is malformed ({exc})", page=number) from None


def _cell_overrun(page: Page, i: int, size: int) -> CorruptDatabaseError:
    return CorruptDatabaseError(
        f"cell {i} with a {size}-byte payload runs past the end of the page", page=page.number
    )


def cell_overflow(page: Page, i: int, layout: PageLayout) -> tuple[int, int, int]:
    """For cell `i` (after `parse_cells`): `(local_start, local_end, first_overflow_page)`,
    the last being 0 when the payload is all on the page."""
    assert page.payload_sizes is not None and page.payload_starts is not None
    size = page.payload_sizes[i]
    start = page.payload_starts[i]
    local = layout.local_size(size, page.kind == TABLE_LEAF)
    if local == size:
        return start, start + size, 0
    return start, start + local, _u32(page.data, start + local)[0]
