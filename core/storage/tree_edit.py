"""Edits of one B-tree: find, insert, replace and delete a cell, with overflow chains
(Turso `btree.rs` `insert_into_page`, `clear_overflow_pages`, `drop_cell`; SQLite
`btree.c` `sqlite3BtreeInsert`, `sqlite3BtreeDelete`, `fillInCell`, `clearCell`).

Theory of operation:
- Every function plans against a statement's `Changes` and is synchronous: a page that is
  not in memory raises `NeedPage` (see `changes.py`), so a caller never sees half an edit.
- A table B-tree is keyed by rowid; an index B-tree by the sort key of its whole record
  (`KeyOf`, built from the index's key plan), which is unique because the record ends with
  the rowid (or the primary key). Index interior cells are entries too: finding a key may
  end on an interior page, and deleting it there moves the largest entry of its left
  subtree up in its place (SQLite does the same).
- A payload larger than a page may hold keeps its first bytes in the cell
  (`PageLayout.local_size`, SQLite's rule) and the rest in a chain of overflow pages,
  allocated when the cell is made and freed when the cell is deleted or replaced. A cell
  that moves between pages or levels keeps its chain.
- After each edit the path is balanced (`balance.rebalance`).
"""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import Any, Final

from core.storage.balance import rebalance
from core.storage.changes import Changes, NeedPage
from core.storage.encode import (
    index_leaf_cell,
    overflow_page_count,
    overflow_pages,
    table_leaf_cell,
)
from core.storage.errors import CorruptDatabaseError
from core.storage.node import Node
from core.storage.page import TABLE_INTERIOR, TABLE_LEAF
from core.storage.record import read_varint

__all__ = [
    "MAX_DEPTH",
    "KeyOf",
    "Position",
    "delete_entry",
    "delete_row",
    "first_at_or_after",
    "free_tree",
    "index_keys",
    "insert_entry",
    "insert_row",
    "last_rowid",
    "make_index_cell",
    "payload_of",
    "read_row",
    "replace_row",
    "scan_rows",
    "seek_entry",
    "seek_rowid",
]

_u32: Final = struct.Struct(">I")

MAX_DEPTH: Final = 40
"""A deeper tree is corrupt (child pointers that loop)."""

KeyOf = Callable[[bytes], object]
"""The sort key of an index record, from its payload bytes."""


class Position:
    """Where a search ended: the path of page numbers from the root, the child taken at each
    interior page (`slots`), the cell index on the last page, and whether the key is there."""

    __slots__ = ("found", "index", "path", "slots")

    def __init__(self, path: list[int], slots: list[int], index: int, found: bool) -> None:
        self.path = path
        self.slots = slots
        self.index = index
        self.found = found


# -- payloads and overflow chains -----------------------------------------------------


def _payload_bounds(ch: Changes, node: Node, cell: bytes) -> tuple[int, int, int, int]:
    """(start of the payload in the cell, payload size, local size, first overflow page)."""
    kind = node.kind
    pos = 4 if kind == 2 else 0
    size, pos = read_varint(cell, pos)
    if kind == TABLE_LEAF:
        _, pos = read_varint(cell, pos)
    local = ch.layout.local_size(size, kind == TABLE_LEAF)
    first = 0 if local == size else int(_u32.unpack_from(cell, pos + local)[0])
    return pos, size, local, first


def payload_of(ch: Changes, node: Node, i: int) -> bytes:
    """The whole payload of cell `i` (a table leaf or index cell), overflow included.

    Raises `NeedPage` and `CorruptDatabaseError` for a broken chain.
    """
    cell = node.cells[i]
    try:
        start, size, local, page = _payload_bounds(ch, node, cell)
    except (IndexError, struct.error):
        raise CorruptDatabaseError(f"cell {i} is malformed", page=node.number) from None
    if not page:
        return cell[start : start + size]
    parts = [cell[start : start + local]]
    remaining = size - local
    room = ch.layout.usable_size - 4
    hops = 0
    while remaining > 0:
        if not page or hops > ch.page_count:
            raise CorruptDatabaseError(
                f"overflow chain of cell {i} ends early or loops", page=node.number
            )
        data = ch.raw_page(page)
        take = min(room, remaining)
        parts.append(data[4 : 4 + take])
        remaining -= take
        page = int(_u32.unpack_from(data)[0])
        hops += 1
    return b"".join(parts)


def _free_overflow(ch: Changes, node: Node, cell: bytes) -> None:
    _, size, local, page = _payload_bounds(ch, node, cell)
    count = overflow_page_count(size - local, ch.layout.usable_size) if page else 0
    for _ in range(count):
        if not page:
            raise CorruptDatabaseError("an overflow chain ends early", page=node.number)
        data = ch.raw_page(page)
        following = int(_u32.unpack_from(data)[0])
        ch.free(page)
        page = following


def _spill(ch: Changes, payload: bytes, local: int) -> int:
    """Write the overflow chain of `payload[local:]`; its first page (0 if none)."""
    if local == len(payload):
        return 0
    layout = ch.layout
    rest = payload[local:]
    numbers = [ch.allocate() for _ in range(overflow_page_count(len(rest), layout.usable_size))]
    for number, data in zip(
        numbers,
        overflow_pages(rest, numbers, layout.usable_size, layout.page_size),
        strict=True,
    ):
        ch.put_raw(number, data)
    return numbers[0]


def _table_cell(ch: Changes, rowid: int, payload: bytes) -> bytes:
    local = ch.layout.local_size(len(payload), True)
    return table_leaf_cell(rowid, payload, local, _spill(ch, payload, local))


def make_index_cell(ch: Changes, payload: bytes) -> bytes:
    """An index leaf cell for `payload`, its overflow chain written."""
    local = ch.layout.local_size(len(payload), False)
    return index_leaf_cell(payload, local, _spill(ch, payload, local))


# -- tables -------------------------------------------------------------------------


def seek_rowid(ch: Changes, root: int, rowid: int) -> Position:
    """Find `rowid` in the table B-tree at `root` (or where it would go)."""
    path = [root]
    slots: list[int] = []
    node = ch.node(root)
    while not node.is_leaf:
        if node.kind != TABLE_INTERIOR or len(path) > MAX_DEPTH:
            raise CorruptDatabaseError("not a table B-tree page", page=node.number)
        i = bisect_left(node.keys, rowid)
        slots.append(i)
        child = node.child(i)
        path.append(child)
        node = ch.node(child)
    if node.kind != TABLE_LEAF:
        raise CorruptDatabaseError("not a table B-tree leaf", page=node.number)
    i = bisect_left(node.keys, rowid)
    return Position(path, slots, i, i < len(node.keys) and node.keys[i] == rowid)


def last_rowid(ch: Changes, root: int) -> int | None:
    """The largest rowid in the table B-tree at `root`, or None when it is empty."""
    node = ch.node(root)
    depth = 0
    while not node.is_leaf:
        depth += 1
        if depth > MAX_DEPTH:
            raise CorruptDatabaseError("the table B-tree is too deep", page=root)
        node = ch.node(node.right)
    if not node.keys:
        return None
    key = node.keys[-1]
    assert isinstance(key, int)
    return key


def scan_rows(ch: Changes, root: int, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Every `(rowid, record)` of the table B-tree at `root` in rowid order (only rowids
    greater than `after`, if given; subtrees wholly at or below it are not entered). Before
    entering an interior page's children it asks for all the missing ones at once
    (`NeedPage` with `ahead`), so a cold scan restarts once per interior page, not per
    leaf."""
    stack = [(root, 0)]
    while stack:
        number, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CorruptDatabaseError("the table B-tree is too deep", page=root)
        node = ch.node(number)
        if node.is_leaf:
            if node.kind != TABLE_LEAF:
                raise CorruptDatabaseError("not a table B-tree leaf", page=number)
            keys = node.keys
            start = 0 if after is None else bisect_right(keys, after)
            for i in range(start, len(node.cells)):
                yield keys[i], payload_of(ch, node, i)
            continue
        if node.kind != TABLE_INTERIOR:
            raise CorruptDatabaseError("not a table B-tree page", page=number)
        children = node.children()
        if after is not None:
            children = children[bisect_right(node.keys, after) :]
        missing = tuple(c for c in children if not ch.in_memory(c))
        if missing:
            raise NeedPage(missing[0], missing[1:])
        stack.extend((child, depth + 1) for child in reversed(children))


def free_tree(ch: Changes, root: int, table: bool) -> None:
    """Free every page of the B-tree at `root` (the root too) and its overflow chains."""
    stack = [(root, 0)]
    while stack:
        number, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CorruptDatabaseError("the B-tree is too deep", page=root)
        node = ch.node(number)
        if node.is_table != table:
            raise CorruptDatabaseError("a page of another kind of B-tree", page=number)
        if not node.is_leaf:
            children = node.children()
            missing = tuple(c for c in children if not ch.in_memory(c))
            if missing:
                raise NeedPage(missing[0], missing[1:])
            stack.extend((child, depth + 1) for child in children)
        if node.kind != TABLE_INTERIOR:
            for cell in node.cells:
                _free_overflow(ch, node, cell)
        ch.free(number)


def read_row(ch: Changes, position: Position) -> bytes:
    """The record of the row at a found position."""
    return payload_of(ch, ch.node(position.path[-1]), position.index)


def insert_row(ch: Changes, root: int, position: Position, rowid: int, payload: bytes) -> None:
    """Insert a row where `seek_rowid` said it goes (the rowid is not there)."""
    leaf = ch.edit(position.path[-1])
    appended = position.index == len(leaf.cells)
    leaf.cells.insert(position.index, _table_cell(ch, rowid, payload))
    leaf.keys.insert(position.index, rowid)
    rebalance(ch, position.path, position.slots, appended=appended)


def replace_row(ch: Changes, position: Position, rowid: int, payload: bytes) -> None:
    """Replace the record of the row at a found position."""
    leaf = ch.edit(position.path[-1])
    old = leaf.cells[position.index]
    _free_overflow(ch, leaf, old)
    cell = _table_cell(ch, rowid, payload)
    leaf.cells[position.index] = cell
    rebalance(ch, position.path, position.slots, shrunk=len(cell) < len(old))


def delete_row(ch: Changes, position: Position) -> None:
    """Delete the row at a found position, and its overflow chain."""
    leaf = ch.edit(position.path[-1])
    _free_overflow(ch, leaf, leaf.cells[position.index])
    del leaf.cells[position.index]
    del leaf.keys[position.index]
    rebalance(ch, position.path, position.slots, shrunk=True)


# -- indexes ------------------------------------------------------------------------


def _has_unknown(keys: list[Any]) -> bool:
    """True if a key is still None (not decoded); by identity, which costs a tenth of
    `None in keys` (that compares each key, tuples, to None with `==`)."""
    for key in keys:  # noqa: SIM110 (a generator in `any` costs more, compiled)
        if key is None:
            return True
    return False


def index_keys(ch: Changes, node: Node, key_of: KeyOf) -> list[Any]:
    """The sort keys of an index node's cells, decoding the ones not known yet."""
    keys = node.keys
    if _has_unknown(keys):
        for i, key in enumerate(keys):
            if key is None:
                keys[i] = key_of(payload_of(ch, node, i))
    return keys


def seek_entry(ch: Changes, root: int, key: object, key_of: KeyOf) -> Position:
    """Find the entry with sort key `key` in the index B-tree at `root`: the position of the
    entry (on an interior page or a leaf) if present, else the leaf position it goes to."""
    path = [root]
    slots: list[int] = []
    node = ch.node(root)
    while True:
        if node.is_table or len(path) > MAX_DEPTH:
            raise CorruptDatabaseError("not an index B-tree page", page=node.number)
        keys = index_keys(ch, node, key_of)
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return Position(path, slots, i, True)
        if node.is_leaf:
            return Position(path, slots, i, False)
        slots.append(i)
        child = node.child(i)
        path.append(child)
        node = ch.node(child)


def first_at_or_after(
    ch: Changes, root: int, probe: object, key_of: KeyOf
) -> tuple[Node, int] | None:
    """The smallest entry whose key is >= `probe` (a key or a key prefix): its node and
    cell index, or None."""
    best: tuple[Node, int] | None = None
    node = ch.node(root)
    depth = 0
    while True:
        depth += 1
        if node.is_table or depth > MAX_DEPTH:
            raise CorruptDatabaseError("not an index B-tree page", page=node.number)
        keys = index_keys(ch, node, key_of)
        i = bisect_left(keys, probe)
        if i < len(keys):
            best = (node, i)
        if node.is_leaf:
            return best
        node = ch.node(node.child(i))


def insert_entry(ch: Changes, root: int, key: object, payload: bytes, key_of: KeyOf) -> None:
    """Insert an index entry (its key is not in the index)."""
    position = seek_entry(ch, root, key, key_of)
    if position.found:
        raise CorruptDatabaseError("the index already holds this entry", page=root)
    leaf = ch.edit(position.path[-1])
    i = position.index
    leaf.cells.insert(i, make_index_cell(ch, payload))
    leaf.keys.insert(i, key)
    rebalance(ch, position.path, position.slots)


def delete_entry(ch: Changes, root: int, key: object, key_of: KeyOf) -> bool:
    """Delete the index entry with sort key `key`; False if it is not there."""
    position = seek_entry(ch, root, key, key_of)
    if not position.found:
        return False
    path = position.path
    slots = position.slots
    node = ch.edit(path[-1])
    i = position.index
    _free_overflow(ch, node, node.cells[i])
    if node.is_leaf:
        del node.cells[i]
        del node.keys[i]
        rebalance(ch, path, slots, shrunk=True)
        return True
    # An interior entry: the largest entry of its left subtree takes its place.
    child_number = node.child(i)
    path = [*path, child_number]
    slots = [*slots, i]
    child = ch.node(child_number)
    while not child.is_leaf:
        if len(path) > MAX_DEPTH:
            raise CorruptDatabaseError("the index B-tree is too deep", page=root)
        slots.append(len(child.cells))
        path.append(child.right)
        child = ch.node(child.right)
    leaf = ch.edit(child.number)
    if not leaf.cells:
        raise CorruptDatabaseError("an index leaf is empty", page=leaf.number)
    moved = leaf.cells.pop()
    moved_key = leaf.keys.pop()
    node.cells[i] = _u32.pack(child_number) + moved
    node.keys[i] = moved_key
    rebalance(ch, path, slots, shrunk=True)
    return True
