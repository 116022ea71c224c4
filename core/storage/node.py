"""A B-tree page as the write path edits it: a list of cells (Turso `btree.rs`, the cell
arrays of `balance_non_root`; SQLite `btree.c` `CellArray`).

Theory of operation:
- A `Node` is one page's content, decoded only as far as editing needs: the page kind,
  each cell's exact bytes as stored, each cell's key, and the right child of an interior
  page. Editing a node is list surgery; its bytes are built again, compactly (no free
  blocks, no fragments), only when the page is written (`to_bytes`).
- Keys: a table page keeps each cell's rowid (the divider on an interior page). An index
  page keeps each cell's sort key once something needed it (`None` until then): building
  it decodes the whole payload, overflow pages included, which the caller does.
- A node read from a committed page is shared by every statement of the transaction, and
  kept on the cached `Page` for the transactions after it (`of_page`; a commit leaves the
  nodes it wrote there); a statement that edits one edits a `copy()` and hands it back to
  its staged changes, so a statement that fails leaves the shared node untouched.
- A node parsed from a page, and the copies edited from it, remember that page's bytes
  and cells (`origin`, `origin_cells`): when an edit only added cells after the ones it
  had (rows appended in rowid order, a divider appended to a parent), `to_bytes` writes
  the new cells into the old image's free gap instead of building the page again
  (`append_to_page`). Every other edit builds it again, compactly.
- Sizes follow SQLite's accounting: the page header (8 bytes on a leaf, 12 on an interior
  page, plus the 100-byte database header on page 1), two bytes of cell pointer per cell,
  and the cells themselves.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from core.storage.encode import append_to_page, build_page, cells_size
from core.storage.errors import CorruptDatabaseError
from core.storage.page import (
    INDEX_INTERIOR,
    INDEX_LEAF,
    LEAF_FLAG,
    TABLE_FLAG,
    TABLE_INTERIOR,
    TABLE_LEAF,
    Page,
    PageLayout,
    parse_btree,
    parse_cells,
)
from core.storage.record import read_varint

__all__ = ["Node", "interior_kind", "leaf_kind", "with_child"]

_u32: Final = struct.Struct(">I")


def leaf_kind(table: bool) -> int:
    """The leaf page kind of a table (13) or index (10) B-tree."""
    return TABLE_LEAF if table else INDEX_LEAF


def interior_kind(table: bool) -> int:
    """The interior page kind of a table (5) or index (2) B-tree."""
    return TABLE_INTERIOR if table else INDEX_INTERIOR


def with_child(cell: bytes, child: int) -> bytes:
    """An interior cell with its left-child pointer replaced."""
    return _u32.pack(child) + cell[4:]


class Node:
    """One B-tree page's cells, keys and right child (see the module docstring)."""

    __slots__ = ("cells", "keys", "kind", "number", "origin", "origin_cells", "right")

    def __init__(
        self,
        number: int,
        kind: int,
        cells: list[bytes],
        keys: list[Any],
        right: int = 0,
    ) -> None:
        self.number = number
        self.kind = kind
        self.cells = cells
        self.keys = keys
        """Table pages: the rowid of each cell. Index pages: each cell's sort key, or None
        until it is needed."""
        self.right = right
        """The right-most child of an interior page (0 on a leaf)."""
        self.origin: bytes | None = None
        """The bytes of the page this node was parsed from (or last written as), if any."""
        self.origin_cells: list[bytes] = []
        """The cells `origin` holds: a list no one edits (the parsed node's own)."""

    @classmethod
    def from_page(cls, page: Page, layout: PageLayout) -> Node:
        """The node of a page as read from the file.

        Raises `CorruptDatabaseError` naming the page if it is not a well-formed B-tree page.
        """
        if not page.kind:
            parse_btree(page, layout)
        if page.payload_starts is None and page.rowids is None:
            parse_cells(page, layout)
        data = page.data
        kind = page.kind
        ptrs = page.cell_ptrs
        cells: list[bytes] = []
        try:
            if kind == TABLE_INTERIOR:
                for ptr in ptrs:
                    _, end = read_varint(data, ptr + 4)
                    cells.append(data[ptr:end])
            else:
                sizes = page.payload_sizes
                starts = page.payload_starts
                assert sizes is not None and starts is not None
                table_leaf = kind == TABLE_LEAF
                for i, ptr in enumerate(ptrs):
                    size = sizes[i]
                    local = layout.local_size(size, table_leaf)
                    end = starts[i] + local + (4 if local < size else 0)
                    cells.append(data[ptr:end])
        except IndexError:
            raise CorruptDatabaseError("a cell runs past the page", page=page.number) from None
        keys: list[Any]
        if kind & TABLE_FLAG:
            assert page.rowids is not None
            keys = list(page.rowids)
        else:
            keys = [None] * len(cells)
        node = cls(page.number, kind, cells, keys, page.rightmost)
        node.origin = data
        node.origin_cells = cells
        return node

    @classmethod
    def of_page(cls, page: Page, layout: PageLayout) -> Node:
        """The node of a committed page, parsed once and kept on the page (`Page.node`):
        shared by every transaction that reads the page, so never edited (use `copy`).

        Raises `CorruptDatabaseError` as `from_page` does.
        """
        node = page.node
        if node is None:
            node = page.node = cls.from_page(page, layout)
        return node

    @classmethod
    def empty(cls, number: int, table: bool) -> Node:
        """An empty leaf of a table or index B-tree."""
        return cls(number, leaf_kind(table), [], [])

    @property
    def is_leaf(self) -> bool:
        """True for a leaf page."""
        return bool(self.kind & LEAF_FLAG)

    @property
    def is_table(self) -> bool:
        """True for a page of a table B-tree."""
        return bool(self.kind & TABLE_FLAG)

    def copy(self, number: int | None = None) -> Node:
        """A copy to edit (optionally for another page number)."""
        node = Node(
            self.number if number is None else number,
            self.kind,
            list(self.cells),
            list(self.keys),
            self.right,
        )
        if number is None or number == self.number:
            node.origin = self.origin
            node.origin_cells = self.origin_cells
        return node

    def written_as(self, data: bytes) -> None:
        """This node is committed now, as the page image `data` (its `to_bytes`): later
        edits of its copies start from those bytes. Only for a node no one edits any more."""
        self.origin = data
        self.origin_cells = self.cells

    def child(self, i: int) -> int:
        """The `i`-th child of an interior page (`len(cells)` is the right-most)."""
        if i < len(self.cells):
            return int(_u32.unpack_from(self.cells[i])[0])
        return self.right

    def children(self) -> list[int]:
        """Every child of an interior page, left to right."""
        unpack = _u32.unpack_from
        out = [int(unpack(cell)[0]) for cell in self.cells]
        out.append(self.right)
        return out

    def used(self) -> int:
        """Bytes the page needs: headers, cell pointers and cells."""
        header = 8 if self.kind & LEAF_FLAG else 12
        if self.number == 1:
            header += 100
        return header + 2 * len(self.cells) + cells_size(self.cells)

    def to_bytes(self, layout: PageLayout, prefix: bytes = b"") -> bytes:
        """The page image: compact, `prefix` (page 1's database header) first.

        Raises `ValueError` if the cells do not fit (a bug: nodes are balanced first).
        """
        origin = self.origin
        if origin is not None and len(origin) == layout.page_size:
            image = self._appended(origin, layout, prefix)
            if image is not None:
                return image
        return build_page(
            self.kind,
            self.cells,
            self.right,
            page_size=layout.page_size,
            usable_size=layout.usable_size,
            prefix=prefix,
        )

    def _appended(self, origin: bytes, layout: PageLayout, prefix: bytes) -> bytes | None:
        """The image as `origin` with the cells added since, if that is all that changed."""
        offset = 100 if self.number == 1 else 0
        if len(prefix) != offset:
            return None
        kept = self.origin_cells
        cells = self.cells
        n = len(kept)
        if len(cells) < n:
            return None
        for i in range(n):
            if cells[i] is not kept[i]:
                return None
        return append_to_page(
            origin, offset, self.kind, n, cells, self.right, layout.usable_size, prefix
        )

    def __repr__(self) -> str:
        return f"<Node {self.number} kind {self.kind} cells {len(self.cells)}>"
