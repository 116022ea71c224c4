"""An integrity check: walk every page of every B-tree and report what is wrong (in the
spirit of SQLite's `PRAGMA integrity_check`, `sqlite3BtreeIntegrityCheck` in btree.c, and
Turso's `integrity_check.rs`).

Theory of operation:
- `check_database(db)` is a read operation like the others in `database.py` (same
  transaction outline: lock, header and WAL checks, schema), finishing with
  `Done(list[Problem])`: empty when the database is sound. Problems are collected, not
  raised, so one run reports many; the walk stops after `max_problems`.
- Trees are walked depth first from each root (sqlite_schema, then every table, then every
  index). Every page is *claimed* once, by a B-tree, an overflow chain or the freelist: a
  page claimed twice, or never, is a problem (pointer-map pages of auto-vacuum databases and
  the lock-byte page are expected to be unclaimed). A page that fails to parse is reported
  and its subtree is not entered, so a walk always ends.
- On each page: its type matches its tree; all leaves are at one depth; keys (rowids, or
  index keys under the index's collations) increase within the page and stay within the
  bounds the parent's dividers set; every record decodes; every overflow chain has exactly
  the pages its payload needs. An index (not partial) has as many entries as its table
  has rows.
- Index contents: each table is walked just before its indexes. While its rows are read,
  every index of it whose entries follow from a row alone (not partial, no expression, no
  virtual generated column) gets the multiset of records the rows predict: the index
  columns' stored values (the rowid for an INTEGER PRIMARY KEY, a column's default for a
  row older than the column), then the rowid, or for a WITHOUT ROWID table the primary key
  columns the index does not already hold (`pk_suffix`). Walking the index takes each
  entry out of that multiset; what is left is missing, what was not there is extra, and
  one problem names the index with an example of each. Values compare as SQLite's records
  do, so an integer stored for a REAL equals its real. Memory: the predicted entries of
  one table's indexes at a time (dropped as each index is finished), plus one example of
  an extra entry. A tree that had any other problem is not compared: its rows or entries
  are incomplete and the mismatch would only repeat what was reported.
- Re-entrancy: the page being waited for is kept by a `PageLoader`; the work item is
  popped, and its page claimed, only in the transition that has the page in hand. The
  position within a page (cell index, overflow chain) lives in fields that advance only
  after the read they wait on.
"""

from __future__ import annotations

import enum
import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from core.completion import Completion
from core.storage.changes import lock_byte_page
from core.storage.collation import KeyPlan
from core.storage.database import Database
from core.storage.errors import CorruptDatabaseError, StorageError
from core.storage.page import (
    INDEX_INTERIOR,
    TABLE_FLAG,
    TABLE_INTERIOR,
    TABLE_LEAF,
    Page,
    cell_overflow,
    parse_btree,
    parse_cells,
)
from core.storage.pager import PageLoader
from core.storage.record import Value, decode_record
from core.storage.schema import Index, Table, fold_name, pk_suffix
from core.storage.transaction import ReadTransaction

__all__ = ["DEFAULT_MAX_PROBLEMS", "CheckDatabase", "Problem", "check_database"]

DEFAULT_MAX_PROBLEMS = 100
MAX_DEPTH = 20
_u32 = struct.Struct(">I").unpack_from
_ROWID = -1
"""In `_Contents.fields`: the entry field that holds the row's rowid."""
_SHOW_CHARS = 20
"""A long value in a message shows this many characters from each end."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the database."""

    where: str
    """What was being checked: "table books", "index books_title", "freelist", "file"."""
    page: int | None
    """The page it was found on, when there is one."""
    message: str

    def describe(self) -> str:
        """One line for people: where, page, what."""
        page = f" page {self.page}" if self.page is not None else ""
        return f"{self.where}{page}: {self.message}"


@dataclass(slots=True)
class _Contents:
    """The entries of one index that its table's rows predict (see the module)."""

    label: str
    table_label: str
    fields: tuple[int, ...]
    """For each entry field, its position in the table's record, or `_ROWID`."""
    defaults: tuple[tuple[Value, bool], ...]
    """For each entry field: the value of a record too short to hold it, and whether it
    is known (a default this reader cannot evaluate leaves the index unchecked)."""
    expected: dict[tuple[Value, ...], int] = field(default_factory=dict)
    """Predicted entries not yet found, with their multiplicity."""
    extra: int = 0
    extra_example: tuple[Value, ...] | None = None
    extra_page: int | None = None
    compare: bool = True
    """False once the entries cannot be predicted or counted (the comparison is skipped)."""
    pick: Callable[[list[Value]], tuple[Value, ...]] = field(init=False)
    """The entry from a record with the rowid appended (so `_ROWID`, -1, picks it)."""
    needs: int = field(init=False)
    """The fields a record must have for `pick` (shorter ones take defaults)."""

    def __post_init__(self) -> None:
        getter = operator.itemgetter(*self.fields)
        self.pick = getter if len(self.fields) > 1 else lambda r: (getter(r),)
        self.needs = max(self.fields) + 1

    def predict(self, record: list[Value]) -> None:
        """Add the entry a row needs; `record` is the row's record with its rowid appended
        (None for WITHOUT ROWID)."""
        if len(record) > self.needs:
            entry = self.pick(record)
        else:
            padded = self._padded(record)
            if padded is None:
                return
            entry = padded
        expected = self.expected
        expected[entry] = expected.get(entry, 0) + 1

    def _padded(self, record: list[Value]) -> tuple[Value, ...] | None:
        """The entry of a record older than some of its fields' columns (None, and the
        comparison skipped, if a missing field's default is unknown)."""
        n = len(record) - 1
        entry: list[Value] = []
        for position, (default, known) in zip(self.fields, self.defaults, strict=True):
            if position == _ROWID or position < n:
                entry.append(record[position])
            elif known:
                entry.append(default)
            else:
                self.release(compare=False)
                return None
        return tuple(entry)

    def found(self, record: list[Value], page: int) -> None:
        """Take the index entry `record` (on `page`) out of the predicted ones, or count
        it extra."""
        key = tuple(record)
        expected = self.expected
        left = expected.pop(key, 0)
        if left > 1:
            expected[key] = left - 1
        elif left == 0:
            self.extra += 1
            if self.extra_example is None:
                self.extra_example = key
                self.extra_page = page

    def release(self, *, compare: bool) -> None:
        """Drop the predicted entries; with `compare` False, also skip the comparison."""
        self.expected = {}
        self.compare = self.compare and compare


@dataclass(slots=True)
class _Tree:
    label: str
    root: int
    table: bool
    """True for a table (rowid) B-tree, False for an index B-tree."""
    plan: KeyPlan | None
    """The key plan of an index B-tree (None: do not check its order)."""
    rows_of: str | None
    """For an index: the table whose row count its entry count must match."""
    entries: int = 0
    leaf_depth: int = 0
    predicts: tuple[_Contents, ...] = ()
    """For a table: the indexes whose entries its rows predict."""
    contents: _Contents | None = None
    """For an index: its predicted entries, to be matched."""
    problems_before: int = 0
    """How many problems were known when the walk of this tree began."""


@dataclass(slots=True)
class _Item:
    page: int
    depth: int
    lo: object
    """Keys on this page must be greater than this (None: no bound)."""
    hi: object
    """Keys on this page must be at most (table) / less than (index) this (None: none)."""
    parent: int


class _State(enum.Enum):
    TREE = "tree"
    PAGE = "page"
    CELLS = "cells"
    OVERFLOW = "overflow"
    FREELIST = "freelist"
    UNUSED = "unused"
    DONE = "done"


class CheckDatabase(ReadTransaction[list[Problem]]):
    """The operation `check_database` returns; `Done(list of Problem)`."""

    __slots__ = (
        "_cell",
        "_chain_last",
        "_chain_next",
        "_chain_pages",
        "_chunks",
        "_claimed",
        "_freelist_pages",
        "_freelist_seen",
        "_item",
        "_keys",
        "_max",
        "_page",
        "_pages",
        "_payload",
        "_problems",
        "_remaining",
        "_rows",
        "_stack",
        "_state",
        "_tree",
        "_trees",
        "_trunk",
    )

    def __init__(self, db: Database, max_problems: int = DEFAULT_MAX_PROBLEMS) -> None:
        super().__init__(db)
        if max_problems < 1:
            raise ValueError(f"max_problems must be at least 1, got {max_problems}")
        self._max = max_problems
        self._problems: list[Problem] = []
        self._trees: list[_Tree] = []
        self._tree = 0
        self._stack: list[_Item] = []
        self._claimed: dict[int, str] = {}
        self._rows: dict[str, int] = {}
        self._state = _State.TREE
        self._page: Page | None = None
        self._item: _Item | None = None
        self._cell = 0
        self._keys: list[object] = []
        self._payload: bytes | None = None
        self._chunks: list[bytes] = []
        self._chain_next = 0
        self._chain_pages = 0
        self._chain_last = 0
        self._remaining = 0
        self._trunk = 0
        self._freelist_pages = 0
        self._freelist_seen: set[int] = set()
        self._pages: PageLoader | None = None

    # -- setup ----------------------------------------------------------------------------

    def _resolve(self) -> None:
        db = self._db()
        self._pages = PageLoader(db.pager)
        self._problems = []
        self._claimed = {}
        self._rows = {}
        self._tree = 0
        self._stack = []
        self._state = _State.TREE
        self._page = None
        self._item = None
        trees = [_Tree("table sqlite_schema", 1, True, None, None)]
        schema = db.schema
        # Each table's indexes are walked right after it (see "Index contents").
        indexes: dict[str, list[Index]] = {}
        for index in schema.indexes:
            if index.root_page > 0:
                indexes.setdefault(fold_name(index.table), []).append(index)
        for table in schema.tables:
            if table.virtual or table.root_page <= 0:
                continue
            plan: KeyPlan | None = None
            if table.without_rowid:
                try:
                    plan = db.key_plan(table, None)
                except StorageError:
                    plan = None
            label = f"table {table.name}"
            tree = _Tree(label, table.root_page, not table.without_rowid, plan, None)
            trees.append(tree)
            predicts = []
            for index in indexes.pop(fold_name(table.name), []):
                index_tree = self._index_tree(table, index)
                index_tree.contents = _contents(table, index, label)
                if index_tree.contents is not None:
                    predicts.append(index_tree.contents)
                trees.append(index_tree)
            tree.predicts = tuple(predicts)
        for rest in indexes.values():
            trees.extend(self._index_tree(None, index) for index in rest)
        self._trees = trees
        # A file shorter than the header says: a page past its end fails to read unless the
        # WAL holds it (pages a commit added live only in the log until a checkpoint).
        page_size = db.pager.layout.page_size
        file_pages = db.file.size() // page_size
        in_log = db.wal.frames if db.wal is not None else {}
        never_written = lock_byte_page(page_size)
        if db.header is not None and any(
            n not in in_log and n != never_written
            for n in range(file_pages + 1, db.pager.page_count + 1)
        ):
            self._problem(
                "file",
                None,
                f"is truncated: it holds {file_pages} pages, the header says {db.pager.page_count}",
            )

    def _index_tree(self, table: Table | None, index: Index) -> _Tree:
        db = self._db()
        plan: KeyPlan | None = None
        try:
            plan = db.key_plan(table or db.schema.table(index.table), index)
        except StorageError:
            plan = None
        rows_of = None if index.where is not None else f"table {index.table}"
        return _Tree(f"index {index.name}", index.root_page, False, plan, rows_of)

    def _value(self) -> list[Problem]:
        return self._problems

    # -- helpers --------------------------------------------------------------------------

    def _problem(self, where: str, page: int | None, message: str) -> bool:
        """Record a problem; True once there are enough to stop."""
        if len(self._problems) < self._max:
            self._problems.append(Problem(where, page, message))
        if len(self._problems) >= self._max:
            self._state = _State.DONE
            return True
        return False

    def _claim(self, number: int, owner: str, where: str, at: int | None) -> bool:
        """Claim page `number` for `owner`; False (and a problem found on page `at`) if it
        is out of range or taken."""
        db = self._db()
        if not 1 <= number <= db.pager.page_count:
            self._problem(
                where,
                at,
                f"points at page {number}, outside the database (1..{db.pager.page_count})",
            )
            return False
        other = self._claimed.get(number)
        if other is not None:
            self._problem(where, number, f"page {number} is used twice: by {other} and by {owner}")
            return False
        self._claimed[number] = owner
        return True

    def _page_loader(self) -> PageLoader:
        loader = self._pages
        assert loader is not None
        return loader

    # -- the walk ---------------------------------------------------------------------------

    def _work(self) -> Completion | None:
        while True:
            if len(self._problems) >= self._max:
                self._state = _State.DONE
            match self._state:
                case _State.PAGE:
                    pending = self._load_page()
                case _State.CELLS:
                    pending = self._cells()
                case _State.OVERFLOW:
                    pending = self._overflow()
                case _State.TREE:
                    self._next_tree()
                    pending = None
                case _State.FREELIST:
                    pending = self._freelist()
                case _State.UNUSED:
                    self._unused()
                    pending = None
                case _State.DONE:
                    return None
            if pending is not None:
                return pending

    def _next_tree(self) -> None:
        if self._tree > 0:
            self._finish_tree(self._trees[self._tree - 1])
            if self._state is _State.DONE:
                return
        if self._tree >= len(self._trees):
            db = self._db()
            header = db.header
            self._trunk = header.freelist_trunk if header is not None else 0
            self._freelist_pages = 0
            self._freelist_seen = set()
            self._state = _State.FREELIST
            return
        tree = self._trees[self._tree]
        self._tree += 1
        tree.problems_before = len(self._problems)
        self._stack = [_Item(tree.root, 1, None, None, 0)]
        self._state = _State.PAGE

    def _finish_tree(self, tree: _Tree) -> None:
        sound = len(self._problems) == tree.problems_before
        if tree.rows_of is None:
            self._rows[tree.label] = tree.entries
        if not sound:
            for predicted in tree.predicts:
                predicted.release(compare=False)
        if tree.rows_of is not None:
            rows = self._rows.get(tree.rows_of)
            if rows is not None and rows != tree.entries:
                self._problem(
                    tree.label,
                    tree.root,
                    f"has {tree.entries} entries but {tree.rows_of} has {rows} rows",
                )
        contents = tree.contents
        if contents is not None:
            if sound and contents.compare:
                self._compare(tree, contents)
            contents.release(compare=False)

    def _compare(self, tree: _Tree, contents: _Contents) -> None:
        missing = sum(contents.expected.values())
        if not missing and not contents.extra:
            return
        parts = []
        if missing:
            example = next(iter(contents.expected))
            parts.append(
                f"lacks {_entries(missing)} that rows of {contents.table_label} need "
                f"(e.g. {_show_entry(example)})"
            )
        if contents.extra_example is not None:
            parts.append(
                f"holds {_entries(contents.extra)} that no row of {contents.table_label} "
                f"makes (e.g. {_show_entry(contents.extra_example)})"
            )
        self._problem(tree.label, contents.extra_page or tree.root, "; ".join(parts))

    def _load_page(self) -> Completion | None:
        if not self._stack:
            self._state = _State.TREE
            return None
        item = self._stack[-1]
        tree = self._trees[self._tree - 1]
        db = self._db()
        number = item.page
        if not 1 <= number <= db.pager.page_count or number in self._claimed:
            self._stack.pop()
            where = f"page {item.parent}" if item.parent else "its root"
            self._claim(number, f"{tree.label} (child of {where})", tree.label, item.parent or None)
            return None
        try:
            page = self._page_loader().load(number)
        except CorruptDatabaseError as exc:
            self._stack.pop()
            self._claimed[number] = tree.label
            self._problem(tree.label, number, exc.detail)
            return None
        if page is None:
            return self._page_loader().wait
        self._stack.pop()
        self._claimed[number] = tree.label
        layout = db.pager.layout
        try:
            parse_btree(page, layout)
            parse_cells(page, layout)
        except CorruptDatabaseError as exc:
            self._problem(tree.label, number, exc.detail)
            return None
        if bool(page.kind & TABLE_FLAG) != tree.table:
            want = "table" if tree.table else "index"
            self._problem(tree.label, number, f"is a {page.kind_name()} page in a {want} B-tree")
            return None
        if item.depth > MAX_DEPTH:
            self._problem(tree.label, number, f"the B-tree is deeper than {MAX_DEPTH} levels")
            return None
        if page.is_leaf:
            if tree.leaf_depth == 0:
                tree.leaf_depth = item.depth
            elif tree.leaf_depth != item.depth:
                self._problem(
                    tree.label,
                    number,
                    f"leaf at depth {item.depth}, other leaves are at depth {tree.leaf_depth}",
                )
        elif page.cell_count == 0 and page.rightmost == 0:
            self._problem(tree.label, number, "interior page with no children")
            return None
        self._page = page
        self._item = item
        self._cell = 0
        self._keys = []
        self._payload = None
        self._state = _State.CELLS
        return None

    def _cells(self) -> Completion | None:
        page = self._page
        item = self._item
        assert page is not None and item is not None
        tree = self._trees[self._tree - 1]
        db = self._db()
        layout = db.pager.layout
        while self._cell < page.cell_count:
            i = self._cell
            if page.kind == TABLE_INTERIOR:
                assert page.rowids is not None
                key: object = page.rowids[i]
            else:
                payload = self._payload
                if payload is None:
                    start, end, first = cell_overflow(page, i, layout)
                    if first:
                        assert page.payload_sizes is not None
                        self._chunks = [page.data[start:end]]
                        self._remaining = page.payload_sizes[i] - (end - start)
                        self._chain_next = first
                        self._chain_pages = 0
                        self._chain_last = 0
                        self._state = _State.OVERFLOW
                        return None
                    payload = page.data[start:end]
                self._payload = None
                if payload == b"":  # a broken overflow chain, already reported
                    if page.kind == TABLE_LEAF:
                        assert page.rowids is not None
                        key = page.rowids[i]
                    else:
                        self._cell += 1
                        tree.entries += 1
                        continue
                else:
                    try:
                        record = decode_record(payload, 0, len(payload), db.codec)
                    except CorruptDatabaseError as exc:
                        if self._problem(tree.label, page.number, f"cell {i}: {exc.detail}"):
                            return None
                        record = None
                    if record is not None and (tree.predicts or tree.contents is not None):
                        self._match(tree, page, i, record)
                    if page.kind == TABLE_LEAF:
                        assert page.rowids is not None
                        key = page.rowids[i]
                    elif record is None or tree.plan is None:
                        key = None
                    else:
                        key = tree.plan.key(record)
                tree.entries += 1
            if key is not None and not self._in_order(key, i):
                return None
            self._keys.append(key)
            self._cell += 1
        if not page.is_leaf:
            self._push_children(page, item)
        self._page = None
        self._item = None
        self._state = _State.PAGE
        return None

    def _match(self, tree: _Tree, page: Page, i: int, record: list[Value]) -> None:
        """Feed a table row (predict its index entries) or an index entry (match it)."""
        if tree.contents is not None:
            tree.contents.found(record, page.number)
            return
        if tree.predicts:
            rowid = None
            if page.kind == TABLE_LEAF:
                assert page.rowids is not None
                rowid = page.rowids[i]
            record.append(rowid)
            for contents in tree.predicts:
                if contents.compare:
                    contents.predict(record)
            record.pop()  # the record is the row again, for its key

    def _in_order(self, key: object, i: int) -> bool:
        """Check `key` (cell `i`) against the previous key and the page's bounds; False
        if checking must stop."""
        page = self._page
        item = self._item
        assert page is not None and item is not None
        tree = self._trees[self._tree - 1]
        previous = self._keys[-1] if self._keys else None
        table = tree.table
        try:
            if previous is not None and not previous < key:  # type: ignore[operator]
                return not self._problem(
                    tree.label,
                    page.number,
                    f"cell {i}: keys out of order ({_show(key, table)} "
                    f"after {_show(previous, table)})",
                )
            if item.lo is not None and not item.lo < key:  # type: ignore[operator]
                return not self._problem(
                    tree.label,
                    page.number,
                    f"cell {i}: key {_show(key, table)} is not above the parent's divider "
                    f"{_show(item.lo, table)}",
                )
            if item.hi is not None and (
                item.hi < key if table or page.kind == INDEX_INTERIOR else not key < item.hi  # type: ignore[operator]
            ):
                return not self._problem(
                    tree.label,
                    page.number,
                    f"cell {i}: key {_show(key, table)} is above the parent's divider "
                    f"{_show(item.hi, table)}",
                )
        except TypeError:
            return not self._problem(tree.label, page.number, f"cell {i}: keys do not compare")
        return True

    def _push_children(self, page: Page, item: _Item) -> None:
        children = page.children
        assert children is not None
        keys = self._keys
        # A page whose cells did not all yield a key (reported already) bounds only its
        # outermost children: the dividers do not line up with the children any more.
        known = len(keys) == len(children) - 1
        # Children in reverse so the left-most is walked first.
        for i in range(len(children) - 1, -1, -1):
            lo = (keys[i - 1] if known else None) if i > 0 else item.lo
            hi = (keys[i] if known else None) if i < len(children) - 1 else item.hi
            self._stack.append(_Item(children[i], item.depth + 1, lo, hi, page.number))

    def _overflow(self) -> Completion | None:
        page = self._page
        assert page is not None
        tree = self._trees[self._tree - 1]
        db = self._db()
        number = self._chain_next
        owner = f"the overflow chain of {tree.label} page {page.number} cell {self._cell}"
        if number == 0:
            self._problem(
                tree.label,
                page.number,
                f"cell {self._cell}: overflow chain ends {self._remaining} bytes early",
            )
            self._end_chain(b"")
            return None
        if not 1 <= number <= db.pager.page_count or number in self._claimed:
            self._claim(number, owner, tree.label, self._chain_at())
            self._end_chain(b"")
            return None
        try:
            overflow = self._page_loader().load(number)
        except CorruptDatabaseError as exc:
            self._claimed[number] = owner
            self._problem(tree.label, number, exc.detail)
            self._end_chain(b"")
            return None
        if overflow is None:
            return self._page_loader().wait
        self._claimed[number] = owner
        usable = db.pager.layout.usable_size
        take = min(self._remaining, usable - 4)
        self._chunks.append(overflow.data[4 : 4 + take])
        self._remaining -= take
        self._chain_pages += 1
        self._chain_last = number
        self._chain_next = _u32(overflow.data, 0)[0]
        if self._remaining == 0:
            if self._chain_next != 0:
                self._problem(
                    tree.label,
                    number,
                    f"overflow chain of page {page.number} cell {self._cell} goes on past "
                    f"its payload (next page {self._chain_next})",
                )
            self._end_chain(b"".join(self._chunks))
            return None
        return None

    def _chain_at(self) -> int | None:
        """The page that points at the next overflow page: the last one read, or the cell's."""
        page = self._page
        return self._chain_last or (page.number if page is not None else None)

    def _end_chain(self, payload: bytes) -> None:
        self._chunks = []
        if self._state is not _State.DONE:
            self._payload = payload
            self._state = _State.CELLS

    def _freelist(self) -> Completion | None:
        db = self._db()
        header = db.header
        expected = header.freelist_count if header is not None else 0
        number = self._trunk
        if number == 0:
            if self._freelist_pages != expected:
                self._problem(
                    "freelist",
                    None,
                    f"holds {self._freelist_pages} pages but the header says {expected}",
                )
            if self._state is not _State.DONE:
                self._state = _State.UNUSED
            return None
        if not 1 <= number <= db.pager.page_count or number in self._claimed:
            self._claim(number, "the freelist (trunk)", "freelist", None)
            self._trunk = 0
            self._freelist_pages = expected  # the rest cannot be counted
            return None
        try:
            trunk = self._page_loader().load(number)
        except CorruptDatabaseError as exc:
            self._claimed[number] = "the freelist (trunk)"
            self._problem("freelist", number, exc.detail)
            self._trunk = 0
            self._freelist_pages = expected
            return None
        if trunk is None:
            return self._page_loader().wait
        self._claimed[number] = "the freelist (trunk)"
        self._freelist_pages += 1
        data = trunk.data
        count = _u32(data, 4)[0]
        limit = (db.pager.layout.usable_size - 8) // 4
        if count > limit:
            self._problem("freelist", number, f"trunk claims {count} leaves, at most {limit} fit")
            count = limit
        for k in range(count):
            leaf = _u32(data, 8 + 4 * k)[0]
            if self._claim(leaf, "the freelist", "freelist", number):
                self._freelist_pages += 1
        self._trunk = _u32(data, 0)[0]
        return None

    def _unused(self) -> None:
        db = self._db()
        page_count = db.pager.page_count
        page1 = db.pager.cache.peek(1)
        auto_vacuum = page1 is not None and len(page1.data) >= 56 and _u32(page1.data, 52)[0] != 0
        layout = db.pager.layout
        lock_page = (1 << 30) // layout.page_size + 1
        ptrmap_span = layout.usable_size // 5 + 1
        for number in range(1, page_count + 1):
            if number in self._claimed or number == lock_page:
                continue
            if auto_vacuum and number >= 2 and (number - 2) % ptrmap_span == 0:
                continue  # a pointer-map page
            if self._problem(
                "file",
                number,
                "page is never used (not in any B-tree, overflow chain or the freelist)",
            ):
                return
        self._state = _State.DONE


def _show(key: object, table: bool) -> str:
    if table:
        return f"rowid {key}"
    return "an index key"


def _contents(table: Table, index: Index, table_label: str) -> _Contents | None:
    """What to predict for `index` from the rows of `table`; None if its entries do not
    follow from a row alone (partial, an expression or a virtual generated column)."""
    if index.where is not None or index.expression:
        return None
    columns = table.columns
    stored = [i for i, c in enumerate(columns) if c.generated != "virtual"]
    wanted = [c.column for c in index.columns]
    if table.without_rowid:
        key = [c.column for c in table.primary_key if c.column is not None]
        if not key or len(set(key)) != len(table.primary_key):
            return None  # an expression or a repeated column: not a layout this predicts
        stored = [*key, *(i for i in stored if i not in key)]
        wanted += [c.column for c in pk_suffix(table, index)]
    position = {column: p for p, column in enumerate(stored)}
    fields: list[int] = []
    defaults: list[tuple[Value, bool]] = []
    for column in wanted:
        assert column is not None  # not an expression index
        if column == table.rowid_alias:
            fields.append(_ROWID)
            defaults.append((None, True))
        elif column not in position:
            return None  # a virtual generated column: computed, not stored
        else:
            fields.append(position[column])
            defaults.append((columns[column].default, columns[column].default_supported))
    if not table.without_rowid:
        fields.append(_ROWID)
        defaults.append((None, True))
    return _Contents(f"index {index.name}", table_label, tuple(fields), tuple(defaults))


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _show_entry(entry: tuple[Value, ...]) -> str:
    """An index entry for a message: long text and blobs cut short (both ends kept)."""
    shown = []
    for v in entry:
        if isinstance(v, (str, bytes)) and len(v) > 2 * _SHOW_CHARS:
            unit = "chars" if isinstance(v, str) else "bytes"
            head, tail = v[:_SHOW_CHARS], v[-_SHOW_CHARS:]
            shown.append(f"{head!r}...{tail!r} ({len(v)} {unit})")
        else:
            shown.append(repr(v))
    return f"({', '.join(shown)})"


def check_database(db: Database, *, max_problems: int = DEFAULT_MAX_PROBLEMS) -> CheckDatabase:
    """An operation that checks every page of `db`; `Done([])` when it is sound, else the
    problems found (at most `max_problems`).

    Raises `ValueError` for `max_problems` < 1; the operation raises what every read
    operation may raise (`CompletionError`, `DatabaseBusyError`, ...) but reports
    corruption as `Problem`s rather than raising it, except in page 1's header or the
    schema, which it needs to begin.
    """
    return CheckDatabase(db, max_problems)
