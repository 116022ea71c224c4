"""B-tree cursors as explicit state machines (Turso `btree.rs`: `BTreeCursor`, `move_to`,
`get_next_record`, `OverflowState`).

Theory of operation:
- A cursor walks one B-tree (a table tree keyed by rowid, or an index tree keyed by record)
  with a stack of pages and, per level, a cell index: on an interior page the child it went
  down into (`cell_count` meaning the right-most pointer), on the leaf the current cell.
  On an index tree the cursor can also rest on an interior page: its divider cells are
  entries too, visited between the two children they separate.
- Every movement is a method (`rewind`, `seek_rowid`, `seek_key`, `next`, `load_record`)
  that returns None when done and a `Completion` when it needs a page that is not cached:
  the caller yields that completion and, once it finished, calls the *same* method again.
  (None/Completion instead of `Done(None)`/`IO(c)` keeps the per-row path allocation-free;
  the operations in `database.py` wrap them into `Done`/`IO`.)
- The method's progress lives in `_State`; a transition mutates the stack only after the
  page it needs is in hand (`LOAD` pushes after the load, `ADVANCE` pops and re-points a
  level and moves to `LOAD` in one transition), so re-entry never repeats a step. The
  pending read is kept in a `PageLoader` and re-checked on re-entry, never submitted twice.
- Corruption is caught, not looped on: a tree deeper than 20 levels, a page that is its
  own ancestor, a page met twice in one scan (`scan=True` keeps a visited set), a page of
  the wrong kind, a child pointer out of range, an overflow chain that cycles or ends
  early are each a `CorruptDatabaseError` naming the page. So every walk reads at most as
  many pages as the tree has (plus overflow pages), and ends.
- Seeks bisect cached per-page keys: table pages cache their rowids, index pages their
  decoded records and the sort keys a `KeyPlan` builds from them (see `page.py`). Rowids
  are found by `rowid_position`: compiled, a loop over native integers, 2-3x faster than
  `bisect`'s generic comparisons; interpreted, `bisect` itself.
- A scan reads ahead: when it must load a child of an interior page, it also submits reads
  for the next few children in the same `CompletionGroup` (see `pager.py`).
- Hot caches skip the machine: a seek first tries `_descend_cached`, and point lookups use
  `lookup_rowid_cached`; both walk cached, already parsed pages only and, at the first
  doubt (a page missing, anything unusual), change nothing and leave the work to the
  machine, which owns every corruption check.
"""

from __future__ import annotations

import enum
import struct
from bisect import bisect_left, bisect_right
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Final

from core.completion import Completion
from core.errors import InternalError
from core.storage.collation import MAX_KEY, KeyPlan
from core.storage.errors import CorruptDatabaseError
from core.storage.page import (
    LEAF_FLAG,
    TABLE_FLAG,
    TABLE_INTERIOR,
    TABLE_LEAF,
    Page,
    cell_overflow,
    parse_btree,
    parse_cells,
)
from core.storage.pager import PageLoader, Pager
from core.storage.record import Value, decode_record

__all__ = [
    "MAX_DEPTH",
    "BTreeCursor",
    "Lookup",
    "OverflowReader",
    "ScanStep",
    "index_range_cached",
    "lookup_rowid_cached",
    "rowid_position",
]

MAX_DEPTH: Final = 20
"""SQLite's `BTCURSOR_MAX_DEPTH`: no legitimate B-tree is deeper."""

_COMPILED: Final = __file__.endswith(tuple(EXTENSION_SUFFIXES))
"""True when this module is a mypyc-compiled extension (see `rowid_position`)."""


def rowid_position(rowids: list[int], rowid: int, after: bool = False) -> int:
    """Where `rowid` goes in a page's ascending `rowids`: the index of the first one at or
    above it (`bisect_left`), or with `after` above it (`bisect_right`)."""
    if not _COMPILED:
        return bisect_right(rowids, rowid) if after else bisect_left(rowids, rowid)
    lo = 0
    hi = len(rowids)
    if after:
        while lo < hi:
            mid = (lo + hi) >> 1
            if rowids[mid] <= rowid:
                lo = mid + 1
            else:
                hi = mid
    else:
        while lo < hi:
            mid = (lo + hi) >> 1
            if rowids[mid] < rowid:
                lo = mid + 1
            else:
                hi = mid
    return lo


_u32: Final = struct.Struct(">I").unpack_from


class _State(enum.Enum):
    IDLE = "idle"
    LOAD = "load"  # load `_target` and push it
    POSITION = "position"  # choose the cell on the top page for the current `_mode`
    ADVANCE = "advance"  # move from the current entry to the next one
    KEYS = "keys"  # read the overflow payloads the top page's records need
    PAYLOAD = "payload"  # read the overflow payload of the current table cell


# Hot paths compare against module-level aliases of the enum members: looking a member up
# on its class goes through the enum metaclass and costs about ten times a global lookup.
_S_IDLE: Final = _State.IDLE
_S_LOAD: Final = _State.LOAD
_S_POSITION: Final = _State.POSITION
_S_ADVANCE: Final = _State.ADVANCE
_S_KEYS: Final = _State.KEYS
_S_PAYLOAD: Final = _State.PAYLOAD


class _Mode(enum.Enum):
    LEFTMOST = "leftmost"
    SEEK_ROWID = "seek rowid"
    SEEK_KEY = "seek key"


_M_LEFTMOST: Final = _Mode.LEFTMOST
_M_SEEK_ROWID: Final = _Mode.SEEK_ROWID
_M_SEEK_KEY: Final = _Mode.SEEK_KEY


class _Movement(enum.Enum):
    REWIND = "rewind"
    SEEK = "seek"
    NEXT = "next"
    RECORD = "load_record"


_MV_REWIND: Final = _Movement.REWIND
_MV_SEEK: Final = _Movement.SEEK
_MV_NEXT: Final = _Movement.NEXT
_MV_RECORD: Final = _Movement.RECORD


class _OverflowState(enum.Enum):
    IDLE = "idle"
    READING = "reading"


_OV_IDLE: Final = _OverflowState.IDLE
_OV_READING: Final = _OverflowState.READING


class OverflowReader:
    """Assembles one payload from its local part and its overflow chain.

    `start(...)`, then call `advance()` until it returns None; the payload is then in
    `payload`. Raises `CorruptDatabaseError` if the chain ends early, leaves the database,
    or visits a page twice.
    """

    __slots__ = ("_chunks", "_loader", "_next", "_remaining", "_seen", "_state", "owner", "payload")

    def __init__(self, pager: Pager) -> None:
        self._loader = PageLoader(pager)
        self._chunks: list[bytes] = []
        self._next = 0
        self._remaining = 0
        self._seen: set[int] = set()
        self._state = _OV_IDLE
        self.owner = 0
        self.payload = b""

    def start(self, local: bytes, total: int, first: int, owner: int) -> None:
        """Begin assembling a `total`-byte payload whose first `len(local)` bytes are on page
        `owner` and the rest on the chain from page `first`.

        Raises `CorruptDatabaseError` if the payload could not fit in the database at all.
        """
        pager = self._loader.pager
        if total > pager.page_count * pager.layout.usable_size:
            raise CorruptDatabaseError(
                f"a cell claims a {total}-byte payload, more than the whole database holds",
                page=owner,
                path=pager.path,
            )
        self._chunks = [local]
        self._remaining = total - len(local)
        self._next = first
        self._seen = set()
        self._state = _OV_READING
        self.owner = owner
        self.payload = b""

    def reset(self) -> None:
        """Abandon a payload in progress."""
        self._state = _OV_IDLE
        self._chunks = []
        self._loader.reset()

    def advance(self) -> Completion | None:
        """Read on along the chain; None when the payload is complete."""
        if self._state is not _OV_READING:
            raise InternalError("OverflowReader stepped before start()")
        loader = self._loader
        pager = loader.pager
        capacity = pager.layout.usable_size - 4
        while self._remaining > 0:
            number = self._next
            if not 1 <= number <= pager.page_count:
                raise CorruptDatabaseError(
                    f"overflow chain of a cell holds page {number}, outside the database "
                    f"({pager.page_count} pages) with {self._remaining} bytes still to read",
                    page=self.owner,
                    path=pager.path,
                )
            if number in self._seen:
                raise CorruptDatabaseError(
                    f"overflow chain of a cell cycles back to page {number}",
                    page=self.owner,
                    path=pager.path,
                )
            page = loader.load(number)
            if page is None:
                return loader.wait
            self._seen.add(number)
            take = min(self._remaining, capacity)
            data = page.data
            self._chunks.append(data[4 : 4 + take])
            self._remaining -= take
            self._next = _u32(data, 0)[0]
        self.payload = b"".join(self._chunks)
        self._chunks = []
        self._state = _OV_IDLE
        return None


class ScanStep(enum.Enum):
    """Where a walk of rows over a cursor is, for the machines that walk one (the schema
    load, `ScanRows`): seek the start, take the row, move to the next, done."""

    SEEK = "seek"
    ROW = "row"
    NEXT = "next"
    DONE = "done"


class Lookup(enum.Enum):
    """The answer of `lookup_rowid_cached` when the cache alone cannot tell."""

    MISS = "miss"


_L_MISS: Final = Lookup.MISS


def lookup_rowid_cached(pager: Pager, root: int, rowid: int) -> tuple[Page, int] | Lookup | None:
    """Find `rowid` in the table B-tree at `root` through cached, parsed pages only.

    Returns `(leaf, cell)` if found, None if the table has no such row, `_L_MISS` if a
    page is missing or anything is unusual (then a `BTreeCursor` must do it, with its
    checks). No I/O, no cursor, no state: the hot-cache point lookup.
    """
    pages = pager.cache.pages
    number = root
    path: list[int] = []
    for _ in range(MAX_DEPTH):
        page = pages.get(number)
        if page is None:
            return _L_MISS
        rowids = page.rowids
        if rowids is None:
            return _L_MISS
        path.append(number)
        i = rowid_position(rowids, rowid)
        kind = page.kind
        if kind == TABLE_LEAF:
            if not rowids and len(path) > 1:
                return _L_MISS  # an empty non-root leaf is corrupt: let the cursor say so
            pager.cache.touch(path)
            if i < len(rowids) and rowids[i] == rowid:
                return page, i
            return None
        if kind != TABLE_INTERIOR:
            return _L_MISS
        children = page.children
        assert children is not None
        number = children[i]
    return _L_MISS


def index_range_cached(
    pager: Pager, root: int, plan: KeyPlan, probe: tuple[object, ...]
) -> tuple[Page, int, int] | Lookup:
    """Find the entries of the index B-tree at `root` whose key starts with `probe`, through
    cached, parsed pages only.

    Returns `(leaf, start, stop)`, the cells `start:stop` of one leaf, when every match is
    on that leaf; `_L_MISS` if a page is missing, parsed with another plan, or the matches
    may go on past the leaf (then a `BTreeCursor` must do it). No I/O, no cursor, no state.
    """
    n = len(probe)
    pages = pager.cache.pages
    number = root
    path: list[int] = []
    for _ in range(MAX_DEPTH):
        page = pages.get(number)
        if page is None or page.key_plan is not plan or page.kind & TABLE_FLAG:
            return _L_MISS
        keys = page.keys
        assert keys is not None and page.records is not None
        path.append(number)
        i = bisect_left(keys, probe)
        if page.kind & LEAF_FLAG:
            count = len(keys)
            j = i
            while j < count and keys[j][:n] == probe:
                j += 1
            if j == count and (len(path) > 1 or count == 0):
                return _L_MISS  # the matches may go on past this leaf
            pager.cache.touch(path)
            return page, i, j
        children = page.children
        assert children is not None
        number = children[i]
    return _L_MISS


class BTreeCursor:
    """A cursor over the B-tree rooted at `root`.

    `table` says which kind of tree is expected (a page of the other kind inside it is
    corrupt). Index trees need a `key_plan` for `seek_key`. `scan=True` turns on read-ahead
    and the visited-page check of a full or range scan. `codec` decodes text.
    """

    __slots__ = (
        "_gt",
        "_keys_cells",
        "_keys_pos",
        "_keys_return",
        "_loader",
        "_mode",
        "_movement",
        "_overflow",
        "_payloads",
        "_probe",
        "_rowid",
        "_state",
        "_target",
        "_visited",
        "codec",
        "idxs",
        "key_plan",
        "layout",
        "pager",
        "pages",
        "payload",
        "records",
        "root",
        "scan",
        "table",
        "valid",
    )

    def __init__(
        self,
        pager: Pager,
        root: int,
        *,
        table: bool,
        codec: str,
        key_plan: KeyPlan | None = None,
        scan: bool = False,
        records: bool = True,
    ) -> None:
        self.pager = pager
        self.records = records
        """False when only positions matter (counting): index records are not decoded."""
        self.layout = pager.layout
        self.root = root
        self.table = table
        self.codec = codec
        self.key_plan = key_plan
        self.scan = scan
        self.pages: list[Page] = []
        self.idxs: list[int] = []
        self.valid = False
        """True when positioned on an entry."""
        self.payload: tuple[bytes, int, int] = (b"", 0, 0)
        """After `load_record` on a table cursor: the record as (buffer, start, end)."""
        self._state = _S_IDLE
        self._mode = _M_LEFTMOST
        self._movement = _MV_REWIND
        self._gt = False
        self._target = 0
        self._rowid = 0
        self._probe: tuple[object, ...] = ()
        self._loader = PageLoader(pager)
        self._overflow: OverflowReader | None = None
        self._visited: set[int] = set()
        self._keys_cells: list[int] = []
        self._keys_pos = 0
        self._payloads: dict[int, bytes] = {}
        self._keys_return = _S_IDLE

    # -- entry points ---------------------------------------------------------------

    def rewind(self) -> Completion | None:
        """Move to the first entry (`valid` False for an empty tree)."""
        if self._state is _S_IDLE:
            self._movement = _MV_REWIND
            self._mode = _M_LEFTMOST
            if self._descend_cached():
                return None
            self._start_descent(_M_LEFTMOST)
        elif self._movement is not _MV_REWIND:
            self._busy(_MV_REWIND)
        return self._run()

    def seek_rowid(self, rowid: int, *, gt: bool = False) -> Completion | None:
        """Table trees: move to the first row with rowid >= `rowid` (> with `gt`)."""
        if self._state is _S_IDLE:
            self._movement = _MV_SEEK
            self._rowid = rowid
            self._gt = gt
            self._mode = _M_SEEK_ROWID
            if self._descend_cached():
                return None
            self._start_descent(_M_SEEK_ROWID)
        elif self._movement is not _MV_SEEK:
            self._busy(_MV_SEEK)
        return self._run()

    def seek_key(self, probe: tuple[object, ...], *, gt: bool = False) -> Completion | None:
        """Index trees: move to the first entry whose sort key, cut to `len(probe)` fields,
        is >= `probe` (> with `gt`). `probe` holds sort keys built by the cursor's plan."""
        if self._state is _S_IDLE:
            if self.key_plan is None:
                raise InternalError("seek_key on a cursor without a key plan")
            self._movement = _MV_SEEK
            self._probe = (*probe, MAX_KEY) if gt else probe
            self._mode = _M_SEEK_KEY
            if self._descend_cached():
                return None
            self._start_descent(_M_SEEK_KEY)
        elif self._movement is not _MV_SEEK:
            self._busy(_MV_SEEK)
        return self._run()

    def next(self) -> Completion | None:
        """Move to the next entry (`valid` False past the last)."""
        if self._state is _S_IDLE:
            if not self.valid:
                return None
            self._movement = _MV_NEXT
            self._state = _S_ADVANCE
        elif self._movement is not _MV_NEXT:
            self._busy(_MV_NEXT)
        return self._run()

    def _busy(self, wanted: _Movement) -> None:
        raise InternalError(
            f"cursor {wanted.name} called while {self._movement.name} is still in progress"
        )

    def set_cell(self, i: int) -> None:
        """Move to cell `i` of the current leaf (a caller that walked the leaf's cells
        itself hands the position back)."""
        assert self._state is _S_IDLE and 0 <= i < self.pages[-1].cell_count
        self.idxs[-1] = i

    def page_keys(self, page: Page) -> list[tuple[object, ...]]:
        """Index trees: the sort keys of `page`'s cells (its records must be decoded)."""
        return self._page_keys(page)

    def skip_leaf(self) -> None:
        """On a leaf, move to its last cell, so that `next` leaves the page (for counting)."""
        top = self.pages[-1]
        if top.kind & LEAF_FLAG and top.cell_count:
            self.idxs[-1] = top.cell_count - 1

    def load_record(self) -> Completion | None:
        """Table trees: make the current row's record available as `payload`, reading its
        overflow chain if it has one."""
        state = self._state
        if state is _S_IDLE:
            self._movement = _MV_RECORD
            page = self.pages[-1]
            i = self.idxs[-1]
            assert page.payload_sizes is not None and page.payload_starts is not None
            size = page.payload_sizes[i]
            start = page.payload_starts[i]
            if size <= self.layout.max_local_table:
                self.payload = (page.data, start, start + size)
                return None
            local_start, local_end, first = cell_overflow(page, i, self.layout)
            reader = self._overflow
            if reader is None:
                reader = self._overflow = OverflowReader(self.pager)
            reader.start(page.data[local_start:local_end], size, first, page.number)
            self._state = _S_PAYLOAD
        elif self._movement is not _MV_RECORD:
            self._busy(_MV_RECORD)
        reader = self._overflow
        assert reader is not None
        pending = reader.advance()
        if pending is not None:
            return pending
        payload = reader.payload
        reader.payload = b""
        self.payload = (payload, 0, len(payload))
        self._state = _S_IDLE
        return None

    # -- what the cursor is on ------------------------------------------------------

    def rowid(self) -> int:
        """Table trees: the current row's rowid."""
        rowids = self.pages[-1].rowids
        assert rowids is not None
        return rowids[self.idxs[-1]]

    def record_values(self) -> list[Value]:
        """The decoded record of the current entry: after `load_record` on table trees;
        index trees have it cached on the page once `_ensure_records` ran (always, after a
        successful movement)."""
        if self.table:
            buf, start, end = self.payload
            try:
                return decode_record(buf, start, end, self.codec)
            except CorruptDatabaseError as exc:
                raise CorruptDatabaseError(
                    f"row {self.rowid()}: {exc.detail}",
                    page=self.pages[-1].number,
                    path=self.pager.path,
                ) from None
        records = self.pages[-1].records
        assert records is not None
        return records[self.idxs[-1]]

    def sort_key(self) -> tuple[object, ...]:
        """Index trees: the sort key of the current entry under the cursor's plan."""
        return self._page_keys(self.pages[-1])[self.idxs[-1]]

    def reset(self) -> None:
        """Forget the position and any movement in progress."""
        self.pages.clear()
        self.idxs.clear()
        self.valid = False
        self._state = _S_IDLE
        self._loader.reset()
        if self._overflow is not None:
            self._overflow.reset()

    # -- the machine ----------------------------------------------------------------

    def _descend_cached(self) -> bool:
        """Position for the current `_mode` walking cached, already parsed pages only, with
        no state machine and no I/O. Returns False, having changed nothing, as soon as a
        page is missing, unparsed, or anything is unusual (an empty leaf, a seek that runs
        off the end of a leaf, a tree too deep): the machine then does the work, and owns
        every corruption check. The common hot-cache seek never leaves this method."""
        pages = self.pager.cache.pages
        number = self.root
        stack: list[Page] = []
        idxs: list[int] = []
        mode = self._mode
        table = self.table
        for _ in range(MAX_DEPTH):
            page = pages.get(number)
            if page is None or (page.rowids is None and page.payload_starts is None):
                return False
            if bool(page.kind & TABLE_FLAG) != table:
                return False
            stack.append(page)
            if mode is _M_LEFTMOST:
                i = 0
            elif mode is _M_SEEK_ROWID:
                rowids = page.rowids
                assert rowids is not None
                i = rowid_position(rowids, self._rowid, self._gt)
            else:
                if page.records is None:
                    if self._spills(page):
                        return False
                    self._ensure_records(page)
                i = bisect_left(self._page_keys(page), self._probe)
            if page.kind & LEAF_FLAG:
                count = page.cell_count
                if i >= count:
                    return False
                if not table and self.records and page.records is None:
                    if self._spills(page):
                        return False
                    self._ensure_records(page)
                idxs.append(i)
                numbers = [p.number for p in stack]
                if len(set(numbers)) != len(numbers):
                    return False  # a cycle: the machine reports it
                self.pages = stack
                self.idxs = idxs
                if self.scan:
                    self._visited = set(numbers)
                self.pager.cache.touch(numbers)
                self.valid = True
                return True
            idxs.append(i)
            children = page.children
            assert children is not None
            number = children[i]
        return False

    def _spills(self, page: Page) -> bool:
        sizes = page.payload_sizes
        assert sizes is not None
        max_local = self.layout.max_local_index
        return any(size > max_local for size in sizes)

    def _start_descent(self, mode: _Mode) -> None:
        self.pages.clear()
        self.idxs.clear()
        self.valid = False
        self._visited = set()
        self._mode = mode
        self._target = self.root
        self._state = _S_LOAD

    def _run(self) -> Completion | None:
        while True:
            state = self._state
            if state is _S_LOAD:
                pending = self._load_and_push()
                if pending is not None:
                    return pending
            elif state is _S_POSITION:
                self._position()
            elif state is _S_ADVANCE:
                self._advance()
            elif state is _S_KEYS:
                pending = self._read_key_payloads()
                if pending is not None:
                    return pending
            elif state is _S_IDLE:
                return None
            else:
                raise InternalError(f"cursor movement called in state {state.name}")

    def _load_and_push(self) -> Completion | None:
        number = self._target
        pages = self.pages
        page = self.pager.cache.get(number)
        if page is None:
            if not 1 <= number <= self.pager.page_count:
                raise self._corrupt(
                    f"child pointer {number} is outside the database "
                    f"({self.pager.page_count} pages)",
                    pages[-1].number if pages else number,
                )
            ahead: list[int] = []
            if self.scan and pages:
                parent = pages[-1]
                children = parent.children
                if children is not None:
                    c = self.idxs[-1]
                    ahead = children[c + 1 : c + 1 + self.pager.readahead]
            page = self._loader.load(number, ahead)
            if page is None:
                return self._loader.wait
        # The page is in hand: everything below runs once per load.
        if page.kind == 0:
            parse_btree(page, self.layout)
        if bool(page.kind & TABLE_FLAG) != self.table:
            raise self._corrupt(
                f"{page.kind_name()} page found inside a "
                f"{'table' if self.table else 'index'} B-tree rooted at page {self.root}",
                number,
            )
        if page.children is None and page.payload_starts is None and page.rowids is None:
            parse_cells(page, self.layout)
        if pages:
            if len(pages) >= MAX_DEPTH:
                raise self._corrupt(
                    f"B-tree rooted at page {self.root} is deeper than {MAX_DEPTH} levels", number
                )
            for ancestor in pages:
                if ancestor.number == number:
                    raise self._corrupt(
                        f"cycle in the B-tree: page {number} is its own ancestor",
                        pages[-1].number,
                    )
            if page.cell_count == 0 and page.kind & LEAF_FLAG:
                raise self._corrupt("a non-root leaf page has no cells", number)
        if self.scan:
            if number in self._visited:
                raise self._corrupt(
                    f"page {number} is reached twice in one walk of the B-tree", number
                )
            self._visited.add(number)
        pages.append(page)
        self.idxs.append(0)
        self._state = _S_POSITION
        return None

    def _position(self) -> None:
        page = self.pages[-1]
        mode = self._mode
        count = page.cell_count
        if mode is _M_SEEK_KEY or (not self.table and page.kind & LEAF_FLAG and self.records):
            if page.records is None and self._needs_key_payloads(page):
                return  # state is now KEYS; it comes back here
            self._ensure_records(page)
        if page.kind & LEAF_FLAG:  # leaf
            if mode is _M_LEFTMOST:
                i = 0
            elif mode is _M_SEEK_ROWID:
                assert page.rowids is not None
                i = rowid_position(page.rowids, self._rowid, self._gt)
            else:
                i = bisect_left(self._page_keys(page), self._probe)
            if i < count:
                self.idxs[-1] = i
                self.valid = True
                self._state = _S_IDLE
                return
            if count == 0:  # an empty root leaf: an empty tree
                self.valid = False
                self._state = _S_IDLE
                return
            self.idxs[-1] = count - 1
            self._state = _S_ADVANCE
            return
        children = page.children
        assert children is not None
        if mode is _M_LEFTMOST:
            c = 0
        elif mode is _M_SEEK_ROWID:
            assert page.rowids is not None
            c = rowid_position(page.rowids, self._rowid, self._gt)
        else:
            c = bisect_left(self._page_keys(page), self._probe)
        self.idxs[-1] = c
        self._target = children[c]
        self._state = _S_LOAD

    def _advance(self) -> None:
        pages = self.pages
        idxs = self.idxs
        top = pages[-1]
        i = idxs[-1]
        if top.kind & LEAF_FLAG:
            if i + 1 < top.cell_count:
                idxs[-1] = i + 1
                self._position_valid(top)
                return
            while True:
                if len(pages) == 1:
                    self.valid = False
                    self._state = _S_IDLE
                    return
                pages.pop()
                idxs.pop()
                parent = pages[-1]
                c = idxs[-1]
                if c < parent.cell_count:
                    if not self.table:  # the divider is the next entry
                        self._position_valid(parent)
                        return
                    idxs[-1] = c + 1
                    assert parent.children is not None
                    self._target = parent.children[c + 1]
                    self._mode = _M_LEFTMOST
                    self._state = _S_LOAD
                    return
        else:
            # On an index interior divider: go down into the subtree after it.
            idxs[-1] = i + 1
            assert top.children is not None
            self._target = top.children[i + 1]
            self._mode = _M_LEFTMOST
            self._state = _S_LOAD

    def _position_valid(self, page: Page) -> None:
        if not self.table and page.records is None and self.records:
            # An index page entered without a seek: its records are needed for the entry.
            if self._needs_key_payloads(page, _S_IDLE):
                self.valid = True
                return
            self._ensure_records(page)
        self.valid = True
        self._state = _S_IDLE

    # -- index records and keys -----------------------------------------------------

    def _needs_key_payloads(self, page: Page, resume: _State = _S_POSITION) -> bool:
        """If some cell of `page` spills to overflow pages, start reading them (state KEYS,
        then `resume`) and return True."""
        sizes = page.payload_sizes
        assert sizes is not None
        max_local = self.layout.max_local_index
        spilled = [i for i, size in enumerate(sizes) if size > max_local]
        if not spilled:
            return False
        self._keys_cells = spilled
        self._keys_pos = 0
        self._payloads = {}
        self._keys_return = resume
        self._state = _S_KEYS
        return True

    def _read_key_payloads(self) -> Completion | None:
        page = self.pages[-1]
        reader = self._overflow
        if reader is None:
            reader = self._overflow = OverflowReader(self.pager)
        while self._keys_pos < len(self._keys_cells):
            i = self._keys_cells[self._keys_pos]
            if i not in self._payloads:
                if reader._state is _OV_IDLE:
                    assert page.payload_sizes is not None
                    local_start, local_end, first = cell_overflow(page, i, self.layout)
                    reader.start(
                        page.data[local_start:local_end],
                        page.payload_sizes[i],
                        first,
                        page.number,
                    )
                pending = reader.advance()
                if pending is not None:
                    return pending
                self._payloads[i] = reader.payload
                reader.payload = b""
            self._keys_pos += 1
        self._ensure_records(page)
        self._payloads = {}
        self._state = self._keys_return
        return None

    def _ensure_records(self, page: Page) -> None:
        if page.records is not None:
            return
        sizes = page.payload_sizes
        starts = page.payload_starts
        assert sizes is not None and starts is not None
        data = page.data
        codec = self.codec
        payloads = self._payloads
        records: list[list[Value]] = []
        i = 0
        try:
            for i, start in enumerate(starts):
                spilled = payloads.get(i)
                if spilled is not None:
                    records.append(decode_record(spilled, 0, len(spilled), codec))
                else:
                    records.append(decode_record(data, start, start + sizes[i], codec))
        except CorruptDatabaseError as exc:
            raise self._corrupt(f"cell {i}: {exc.detail}", page.number) from None
        page.records = records

    def _page_keys(self, page: Page) -> list[tuple[object, ...]]:
        plan = self.key_plan
        keys = page.keys
        if keys is not None and page.key_plan is plan:
            return keys
        assert plan is not None and page.records is not None
        keys = [plan.key(values) for values in page.records]
        page.keys = keys
        page.key_plan = plan
        return keys

    def _corrupt(self, detail: str, page: int) -> CorruptDatabaseError:
        return CorruptDatabaseError(detail, page=page, path=self.pager.path)
