"""The pager's write side: a transaction's page images and one statement's staged edits
(Turso `pager.rs` dirty pages and `allocate_page`/`free_page`; SQLite `pager.c` and
`btree.c` `allocateBtreePage`/`freePage2`).

Theory of operation:
- `TransactionPages` holds what a write transaction changed: the new image of every page it
  wrote (a `Node` for a B-tree page, raw bytes for an overflow or freelist trunk page), the
  database size and the freelist counters. Pages it did not write are read as committed,
  from the shared page cache. Committing writes exactly the dirty pages.
- `Changes` is one statement's edits, staged on top of the transaction: a statement plans
  all of its work against `Changes` synchronously and the transaction adopts them in one
  call (`TransactionPages.adopt`) only when the whole statement succeeded. A statement that
  fails (a constraint, a bad value) leaves nothing of itself behind, and the transaction
  stays usable: SQLite's statement-level atomicity.
- I/O: planning never waits. A page that is neither written by the transaction nor cached
  raises `NeedPage`; the statement (a machine on the kernel) reads it, keeps it pinned for
  its own lifetime, and plans again from the start with nothing staged. A mutation can
  therefore never be applied twice across a yield (the founding document's pitfall): there
  is no mutation before the last read.
- Allocation takes a page from the freelist first (a leaf of the first trunk, else the
  trunk itself), then grows the file, never using the lock-byte page (the page holding
  byte 0x40000000, which SQLite leaves unused). Freeing adds the page to the first trunk
  if it has room, else the page becomes the new first trunk. Freed pages are not written
  (only trunks are); their old content is never read again.
"""

from __future__ import annotations

import struct
from typing import Final

from core.storage.errors import CorruptDatabaseError
from core.storage.locking import PENDING_BYTE
from core.storage.node import Node
from core.storage.page import Page, PageLayout

__all__ = ["Changes", "NeedPage", "TransactionPages", "lock_byte_page"]

_u32: Final = struct.Struct(">I")
_trunk_head: Final = struct.Struct(">II")


class NeedPage(Exception):
    """Planning needs committed page `number`, which is not in memory: read it (and the
    pages in `ahead`, which it will need next), then plan again."""

    def __init__(self, number: int, ahead: tuple[int, ...] = ()) -> None:
        super().__init__(number)
        self.number = number
        self.ahead = ahead


def lock_byte_page(page_size: int) -> int:
    """The page that holds SQLite's lock bytes, which is never used."""
    return PENDING_BYTE // page_size + 1


class TransactionPages:
    """A write transaction's pages (see the module docstring)."""

    __slots__ = (
        "_committed",
        "_committed_count",
        "dirty",
        "freelist_count",
        "freelist_trunk",
        "layout",
        "nodes",
        "page_count",
        "raw",
    )

    def __init__(
        self,
        layout: PageLayout,
        page_count: int,
        freelist_trunk: int,
        freelist_count: int,
        committed: dict[int, Page],
    ) -> None:
        """`committed` is the shared page cache's map (committed pages, looked up without
        touching its LRU order)."""
        self.layout = layout
        self.page_count = page_count
        self.freelist_trunk = freelist_trunk
        self.freelist_count = freelist_count
        self.nodes: dict[int, Node] = {}
        """Every B-tree page seen so far: the transaction's own images and committed ones."""
        self.raw: dict[int, bytes] = {}
        """Written pages that are not B-tree pages (overflow, freelist trunks)."""
        self.dirty: set[int] = set()
        """Page numbers written by the transaction."""
        self._committed = committed
        self._committed_count = page_count

    def committed(self, number: int, pinned: dict[int, Page]) -> Page:
        """The committed page `number`. Raises `NeedPage` if it is not in memory, and
        `CorruptDatabaseError` for a number outside the database."""
        page = pinned.get(number)
        if page is None:
            page = self._committed.get(number)
            if page is None:
                if not 1 <= number <= self._committed_count:
                    raise CorruptDatabaseError(
                        f"page {number} is out of range (the database has "
                        f"{self._committed_count} pages)"
                    )
                raise NeedPage(number)
        return page

    def holds(self, number: int, pinned: dict[int, Page]) -> bool:
        """True if page `number` can be had without I/O: the transaction wrote or parsed it,
        the statement pinned it, or the page cache has it."""
        return (
            number in self.nodes
            or number in self.raw
            or number in pinned
            or number in self._committed
        )

    def adopt(self, changes: Changes) -> None:
        """Take a finished statement's edits."""
        nodes = self.nodes
        raw = self.raw
        dirty = self.dirty
        for number in changes.dropped:
            nodes.pop(number, None)
            raw.pop(number, None)
            dirty.discard(number)
        for number, node in changes.nodes.items():
            nodes[number] = node
            raw.pop(number, None)
            dirty.add(number)
        for number, data in changes.raw.items():
            raw[number] = data
            nodes.pop(number, None)
            dirty.add(number)
        self.page_count = changes.page_count
        self.freelist_trunk = changes.freelist_trunk
        self.freelist_count = changes.freelist_count

    def page_image(self, number: int, prefix: bytes = b"") -> bytes:
        """The bytes to write for dirty page `number`."""
        node = self.nodes.get(number)
        if node is not None:
            return node.to_bytes(self.layout, prefix)
        return self.raw[number]


class Changes:
    """One statement's staged edits over a `TransactionPages` (see the module docstring)."""

    __slots__ = (
        "base",
        "dropped",
        "freelist_count",
        "freelist_trunk",
        "nodes",
        "page_count",
        "pinned",
        "raw",
    )

    def __init__(self, base: TransactionPages, pinned: dict[int, Page]) -> None:
        self.base = base
        self.pinned = pinned
        self.nodes: dict[int, Node] = {}
        self.raw: dict[int, bytes] = {}
        self.dropped: set[int] = set()
        self.page_count = base.page_count
        self.freelist_trunk = base.freelist_trunk
        self.freelist_count = base.freelist_count

    @property
    def layout(self) -> PageLayout:
        """The page geometry."""
        return self.base.layout

    # -- reading -------------------------------------------------------------------

    def in_memory(self, number: int) -> bool:
        """True if page `number` can be had without I/O."""
        return number in self.nodes or number in self.raw or self.base.holds(number, self.pinned)

    def node(self, number: int) -> Node:
        """B-tree page `number` as this statement sees it; do not edit it (use `edit`).

        Raises `NeedPage`, and `CorruptDatabaseError` for a page that is not a B-tree page.
        """
        node = self.nodes.get(number)
        if node is not None:
            return node
        if number in self.dropped:
            raise CorruptDatabaseError(f"page {number} is used after it was freed")
        base = self.base
        node = base.nodes.get(number)
        if node is None:
            if number in base.raw:
                raise CorruptDatabaseError(f"page {number} is not a B-tree page", page=number)
            node = Node.of_page(base.committed(number, self.pinned), base.layout)
            base.nodes[number] = node  # a parse of committed bytes: shared, never edited
        return node

    def edit(self, number: int) -> Node:
        """B-tree page `number`, to be edited: this statement's own copy."""
        node = self.nodes.get(number)
        if node is None:
            node = self.node(number).copy()
            self.nodes[number] = node
        return node

    def raw_page(self, number: int) -> bytes:
        """The bytes of a page that is not edited as a node (overflow, freelist trunk)."""
        data = self.raw.get(number)
        if data is not None:
            return data
        base = self.base
        data = base.raw.get(number)
        if data is not None:
            return data
        if number in self.dropped or (number in base.nodes and number in base.dirty):
            raise CorruptDatabaseError(f"page {number} is not an overflow or freelist page")
        return base.committed(number, self.pinned).data

    # -- writing -------------------------------------------------------------------

    def put(self, node: Node) -> None:
        """Stage `node` as the new image of its page."""
        self.nodes[node.number] = node
        self.raw.pop(node.number, None)
        self.dropped.discard(node.number)

    def put_raw(self, number: int, data: bytes) -> None:
        """Stage raw bytes (exactly one page) as the new image of page `number`."""
        self.raw[number] = data
        self.nodes.pop(number, None)
        self.dropped.discard(number)

    def allocate(self) -> int:
        """A page number for a new page: from the freelist, else a new page at the end.

        Raises `NeedPage` (the freelist trunk) and `CorruptDatabaseError` for a malformed
        freelist.
        """
        if self.freelist_count > 0 and self.freelist_trunk:
            trunk = self.freelist_trunk
            data = self.raw_page(trunk)
            next_trunk, leaves = _trunk_head.unpack_from(data)
            if leaves > (self.layout.usable_size - 8) // 4:
                raise CorruptDatabaseError(f"freelist trunk claims {leaves} leaves", page=trunk)
            self.freelist_count -= 1
            if leaves:
                (leaf,) = _u32.unpack_from(data, 8 + 4 * (leaves - 1))
                new = bytearray(data)
                new[4:8] = _u32.pack(leaves - 1)
                new[8 + 4 * (leaves - 1) : 12 + 4 * (leaves - 1)] = b"\0\0\0\0"
                self.put_raw(trunk, bytes(new))
                self._check_free_number(leaf, trunk)
                return int(leaf)
            self.freelist_trunk = next_trunk
            self.raw.pop(trunk, None)
            return trunk
        self.page_count += 1
        if self.page_count == lock_byte_page(self.layout.page_size):
            self.page_count += 1
        return self.page_count

    def free(self, number: int) -> None:
        """Give page `number` back to the freelist.

        Raises `NeedPage` (the first trunk) and `CorruptDatabaseError` for a malformed
        freelist.
        """
        self.nodes.pop(number, None)
        self.raw.pop(number, None)
        self.dropped.add(number)
        page_size = self.layout.page_size
        trunk = self.freelist_trunk
        if trunk:
            data = self.raw_page(trunk)
            _, leaves = _trunk_head.unpack_from(data)
            # SQLite writes at most usable/4 - 8 leaves per trunk, for older readers.
            if leaves < self.layout.usable_size // 4 - 8:
                new = bytearray(data)
                new[4:8] = _u32.pack(leaves + 1)
                new[8 + 4 * leaves : 12 + 4 * leaves] = _u32.pack(number)
                self.put_raw(trunk, bytes(new))
                self.freelist_count += 1
                return
        self.put_raw(number, _trunk_head.pack(trunk, 0) + bytes(page_size - 8))
        self.freelist_trunk = number
        self.freelist_count += 1

    def _check_free_number(self, number: int, trunk: int) -> None:
        if not 2 <= number <= self.page_count:
            raise CorruptDatabaseError(
                f"freelist leaf {number} is outside the database", page=trunk
            )
