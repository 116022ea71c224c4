"""Keeping a B-tree in shape after an insert or a delete (Turso `btree.rs` `balance`,
`balance_non_root`, `balance_root`; SQLite `btree.c` `balance_nonroot`, `balance_deeper`,
`balance_shallower`), on a statement's staged `Changes`.

Theory of operation:
- A change touches one path from the root to a node. `rebalance(ch, path)` then walks
  that path bottom up; a node needs balancing when it overflows its page or is empty, and
  the node a delete shrank also when it is less than a third full (SQLite's threshold).
  The root is handled apart (below).
- A non-root node is balanced with up to two siblings under its parent: their cells (and,
  on interior and index levels, the dividers between them, which are real cells there)
  are gathered into one list and packed again, left to right, each page filled as far as
  it goes (SQLite's fill heuristics are not needed: an underfull page is legal). Packing
  an interior or index level promotes the last cell of each full page into the parent as
  its divider; a table leaf level gets a divider holding the last rowid of each page. The
  old page numbers are reused in order, more are allocated, extra ones freed. The parent
  takes the new dividers and may in turn need balancing, one level up.
- The root keeps its page number. A root that overflows moves its content to a new child
  and becomes an interior page above it (`balance_deeper`), then that child is balanced.
  An interior root left with no cells takes its only child's content when it fits (on page
  1 the database header leaves 100 bytes less) and frees the child (`balance_shallower`).
- Invariants kept: every non-root page holds at least one cell, all leaves are at one
  depth, keys stay in order, and every page is referenced once (overflow chains move with
  their cells: a cell moved between pages or levels keeps its chain).
- Everything here is synchronous and edits only `Changes`: a page that is not in memory
  raises `NeedPage` from `Changes`, and the statement plans again after reading it.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from core.storage.changes import Changes
from core.storage.encode import cells_size, table_interior_cell
from core.storage.errors import CorruptDatabaseError
from core.storage.node import Node, interior_kind, with_child
from core.storage.page import TABLE_LEAF

__all__ = ["rebalance"]

_u32: Final = struct.Struct(">I")


def _needs_balance(node: Node, usable: int, root: bool, underfull: bool) -> bool:
    used = node.used()
    if used > usable:
        return True
    if root:
        return not node.is_leaf and not node.cells
    return not node.cells or (underfull and usable - used > usable * 2 // 3)


def rebalance(
    ch: Changes,
    path: list[int],
    slots: list[int],
    *,
    shrunk: bool = False,
    appended: bool = False,
) -> None:
    """Balance every node on `path` (root first; `slots[k]` is the child of `path[k]` that
    `path[k + 1]` is), bottom up. `shrunk`: the change removed or shortened a cell of the
    last node, so it is merged with its siblings when under a third full (only then: an
    insert never rebalances an underfull page, which would repack the same pages on every
    insert near it).

    `appended`: the change added a cell at the end of the last node, a table leaf; if that
    leaf is its parent's right-most child and overflows, the new cell moves to a new
    right-most leaf of its own (SQLite's `balance_quick`): rows inserted in rowid order
    leave full pages behind them instead of half-full ones.

    Raises `NeedPage` and `CorruptDatabaseError`.
    """
    usable = ch.layout.usable_size
    bottom = len(path) - 1
    if appended and bottom > 0:
        if ch.node(path[bottom]).used() <= usable:
            bottom -= 1  # the new cell fits (measured once here, not again below)
            shrunk = False
        elif _balance_quick(ch, path[bottom - 1], slots[bottom - 1]):
            bottom -= 1  # the leaf is settled; its parent gained a divider
            shrunk = False
    # A node this statement did not edit is as an earlier statement (or the file) left it,
    # balanced: only the edited ones (`ch.nodes`) can need it.
    edited = ch.nodes
    for level in range(bottom, 0, -1):
        node = edited.get(path[level])
        if node is not None and _needs_balance(node, usable, False, shrunk and level == bottom):
            _balance_nonroot(ch, path[level - 1], slots[level - 1])
    root = edited.get(path[0])
    if root is not None and _needs_balance(root, usable, True, False):
        _balance_root(ch, path[0])


def _balance_quick(ch: Changes, parent_number: int, slot: int) -> bool:
    """Move the last cell of an overflowing right-most table leaf to a new leaf; False if
    the leaf does not qualify."""
    parent = ch.node(parent_number)
    if slot != len(parent.cells):
        return False
    leaf = ch.node(parent.right)
    if leaf.kind != TABLE_LEAF or leaf.used() <= ch.layout.usable_size or len(leaf.cells) < 2:
        return False
    leaf = ch.edit(leaf.number)
    number = ch.allocate()
    ch.put(Node(number, TABLE_LEAF, [leaf.cells.pop()], [leaf.keys.pop()]))
    parent = ch.edit(parent_number)
    parent.cells.append(table_interior_cell(leaf.number, leaf.keys[-1]))
    parent.keys.append(leaf.keys[-1])
    parent.right = number
    return True


def _balance_root(ch: Changes, number: int) -> None:
    usable = ch.layout.usable_size
    root = ch.node(number)
    if root.used() > usable:
        # balance_deeper: the content moves to a new child, which is then split.
        child = ch.allocate()
        moved = root.copy(child)
        ch.put(moved)
        ch.put(Node(number, interior_kind(root.is_table), [], [], child))
        _balance_nonroot(ch, number, 0)
        root = ch.node(number)
        if root.used() > usable:  # dividers overflowed the root again: one level more
            _balance_root(ch, number)
        return
    while not root.is_leaf and not root.cells:
        # balance_shallower: take the only child's content if it fits.
        child_number = root.right
        lifted = ch.node(child_number).copy(number)
        if lifted.used() > usable:
            return  # only on page 1: an interior root with no cells is legal there
        ch.put(lifted)
        ch.free(child_number)
        root = lifted


def _balance_nonroot(ch: Changes, parent_number: int, slot: int) -> None:
    layout = ch.layout
    parent = ch.edit(parent_number)
    last_child = len(parent.cells)
    lo = max(0, slot - 1)
    hi = min(last_child, lo + 2)
    lo = max(0, hi - 2)
    numbers = [parent.child(j) for j in range(lo, hi + 1)]
    siblings = [ch.node(n) for n in numbers]
    kind = siblings[0].kind
    for s in siblings:
        if s.kind != kind:
            raise CorruptDatabaseError(
                f"siblings under page {parent_number} are of different kinds", page=s.number
            )
    table = siblings[0].is_table
    leaf = siblings[0].is_leaf

    # Gather the cells of the siblings, with the parent's dividers where they are cells.
    cells: list[bytes] = []
    keys: list[Any] = []
    for j, s in enumerate(siblings):
        cells.extend(s.cells)
        keys.extend(s.keys)
        if j == len(siblings) - 1:
            break
        divider = parent.cells[lo + j]
        if table:
            if not leaf:
                key = parent.keys[lo + j]
                assert isinstance(key, int)
                cells.append(table_interior_cell(s.right, key))
                keys.append(key)
        elif leaf:
            cells.append(divider[4:])
            keys.append(parent.keys[lo + j])
        else:
            cells.append(with_child(divider, s.right))
            keys.append(parent.keys[lo + j])
    last_right = siblings[-1].right

    # Pack them again, left to right, as evenly as the fewest pages allow (full pages
    # would overflow again at the next insert into any of them).
    capacity = layout.usable_size - (8 if leaf else 12)
    total = cells_size(cells) + 2 * len(cells)
    target = total // -(-total // capacity) if total else capacity
    pages: list[tuple[list[bytes], list[Any]]] = []
    dividers: list[tuple[bytes | None, Any]] = []  # promoted cell (None: table leaf), key
    page_cells: list[bytes] = []
    page_keys: list[Any] = []
    size = 0
    for cell, key in zip(cells, keys, strict=True):
        need = len(cell) + 2
        if page_cells and (size + need > capacity or size >= target):
            if table and leaf:
                dividers.append((None, page_keys[-1]))
            else:
                dividers.append((page_cells.pop(), page_keys.pop()))
            pages.append((page_cells, page_keys))
            page_cells = []
            page_keys = []
            size = 0
        page_cells.append(cell)
        page_keys.append(key)
        size += need
    pages.append((page_cells, page_keys))

    # Page numbers: the old ones in order, then new ones; extra old ones are freed.
    new_numbers = numbers[: len(pages)]
    while len(new_numbers) < len(pages):
        new_numbers.append(ch.allocate())
    for extra in numbers[len(pages) :]:
        ch.free(extra)

    parent_cells: list[bytes] = []
    parent_keys: list[Any] = []
    for k, (page_cells, page_keys) in enumerate(pages):
        number = new_numbers[k]
        right = 0
        if k < len(dividers):
            promoted, key = dividers[k]
            if promoted is None:
                assert isinstance(key, int)
                parent_cells.append(table_interior_cell(number, key))
            elif leaf:
                parent_cells.append(_u32.pack(number) + promoted)
            else:
                right = int(_u32.unpack_from(promoted)[0])
                parent_cells.append(with_child(promoted, number))
            parent_keys.append(key)
        elif not leaf:
            right = last_right
        ch.put(Node(number, kind, page_cells, page_keys, right))

    # The parent: the window's dividers replaced; the last page takes the window's place.
    last = new_numbers[-1]
    tail_cells = parent.cells[hi:]
    tail_keys = parent.keys[hi:]
    if hi < last_child:
        tail_cells[0] = with_child(tail_cells[0], last)
    else:
        parent.right = last
    parent.cells[lo:] = parent_cells + tail_cells
    parent.keys[lo:] = parent_keys + tail_keys
