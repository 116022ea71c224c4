"""The write transaction (Turso `pager.rs` `begin_write_tx`/`commit_dirty_pages`, `vdbe`
`Transaction`): `Database.begin()` -> `WriteTransaction` -> statements -> `commit()` or
`rollback()`.

Theory of operation:
- `Begin` is a read transaction (the same outline: header, WAL, page 1, schema; see
  `transaction.py`) that first takes SQLite's EXCLUSIVE lock on the file
  (`SharedState.acquire_write`: `DatabaseBusyError` at once if another transaction of
  ours, another connection or a SQLite connection in WAL mode is in the way). So what the
  outline reads is the committed state, and stays so: no one else can write until the
  transaction ends. A 0-byte (new) file is given its first page here, written to the
  database file and synced before anything else (SQLite deletes a WAL found beside an
  empty database file, so the first page cannot live in the WAL).
- What is refused at `begin` with `UnsupportedError`: a database in rollback-journal mode
  (convert it first), an auto-vacuum database, and a text encoding other than UTF-8.
- Statements (`insert`, `update`, `delete`, `execute_ddl`) stage their edits and are
  adopted whole or not at all (see `statement.py`); reads of the transaction see its own
  writes, every other reader of the `Database` sees the last commit until `commit()` is
  done.
- `commit()` appends the dirty pages to the WAL as frames, the last one marking the
  commit, and syncs the log before it finishes (see `commit.py`); only then is the commit
  published to the `Database` (its WAL snapshot, page cache, header and schema) and the
  lock given back. `rollback()` drops the staged pages and gives the lock back at once.
- A transaction ends exactly once: after `commit` (done or failed) or `rollback`, every
  further use raises `StorageError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from core.completion import Completion
from core.result import Done
from core.state_machine import Machine, TransitionResult
from core.storage.changes import TransactionPages, lock_byte_page
from core.storage.checkpoint import CheckpointRun
from core.storage.collation import KeyPlan
from core.storage.commit import Commit
from core.storage.ddl_write import ExecuteDDL
from core.storage.errors import StorageError, UnsupportedError
from core.storage.header import (
    HEADER_SIZE,
    TextEncoding,
    new_header,
    parse_header,
    with_counters,
)
from core.storage.node import Node
from core.storage.page import Page, PageLayout
from core.storage.pager import PageLoader
from core.storage.record import decode_record
from core.storage.row_write import Delete, Insert, TablePlan, Update
from core.storage.schema import Index, Schema, Table, index_key_plan
from core.storage.shared import SharedState
from core.storage.transaction import WriteLockedTransaction
from core.storage.tree_edit import KeyOf
from core.storage.tx_reads import TxCount, TxGet, TxScan

__all__ = ["Begin", "RolledBack", "TransactionState", "WriteTransaction"]

DEFAULT_PAGE_SIZE: Final = 4096


class TransactionState(enum.Enum):
    """Where a write transaction is."""

    OPEN = "open"
    COMMITTING = "committing"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"


class WriteTransaction:
    """An open write transaction on a `Database` (build with `Database.begin()`).

    Its methods build operations; run them with `core.block` or `bridge.drive`.
    """

    __slots__ = (
        "_base_counters",
        "_key_plans",
        "_table_plans",
        "codec",
        "db",
        "pages",
        "random_rowids",
        "schema",
        "schema_cookie",
        "state",
    )

    def __init__(self, db: SharedState) -> None:
        """Use `Database.begin()`; this assembles a transaction on a locked database."""
        header = db.header
        assert header is not None
        self.db = db
        self.state = TransactionState.OPEN
        self.codec = db.codec  # the header's text encoding's codec
        pager = db.pager
        freelist = (header.freelist_trunk, header.freelist_count)
        self.pages = TransactionPages(
            pager.layout, pager.page_count, freelist[0], freelist[1], pager.cache.pages
        )
        self.schema: Schema = db.schema
        self.schema_cookie = header.schema_cookie
        self._base_counters = (pager.page_count, *freelist, header.schema_cookie)
        self.random_rowids = 0
        """Rowids drawn at random so far (once a table's largest rowid is 2**63-1)."""
        self._key_plans: dict[str, tuple[KeyPlan, KeyOf]] = {}
        self._table_plans: dict[str, TablePlan] = {}

    # -- statements ------------------------------------------------------------------

    def insert(self, table: str, values: Mapping[str, object]) -> Insert:
        """An operation: insert a row; `Done(rowid)`.

        `values` maps column names to values; missing columns get their DEFAULT (or NULL),
        the column's affinity is applied as SQLite applies it, and the rowid is the
        INTEGER PRIMARY KEY's value if given, else one more than the largest (AUTOINCREMENT:
        more than any ever inserted). The operation raises `SchemaError` for an unknown table
        or column or a non-integer rowid, `ConstraintError` for a NOT NULL or UNIQUE
        violation (nothing of the row is kept), `UnsupportedError` for a table this engine
        does not write, and `StorageError` if the transaction has ended.
        """
        return Insert(self, table, values)

    def update(self, table: str, rowid: int, values: Mapping[str, object]) -> Update:
        """An operation: change the named columns of the row `rowid`; `Done(True)`, or
        `Done(False)` if there is no such row. Raises as `insert` does (a NULL for the
        INTEGER PRIMARY KEY too: SQLite's "datatype mismatch")."""
        return Update(self, table, rowid, values)

    def delete(self, table: str, rowid: int) -> Delete:
        """An operation: delete the row `rowid` (and its index entries); `Done(True)`, or
        `Done(False)` if there is no such row. Raises as `insert` does."""
        return Delete(self, table, rowid)

    def execute_ddl(self, sql: str) -> ExecuteDDL:
        """An operation: run one `CREATE TABLE`, `CREATE [UNIQUE] INDEX`, `DROP TABLE` or
        `DROP INDEX` statement; `Done(schema)`, the schema the transaction now sees. An
        index is built from the table's rows.

        Raises `SchemaError` for a name that exists (or does not), `ConstraintError` when a
        UNIQUE index meets duplicates, `UnsupportedError` for other statements and for
        features this engine does not write, `CorruptDatabaseError` for SQL it cannot
        parse.
        """
        return ExecuteDDL(self, sql)

    # -- reads that see the transaction's writes -----------------------------------

    def get(self, table: str, rowid: int) -> TxGet:
        """An operation: the row `(rowid, *columns)` of rowid table `table` as this
        transaction sees it, or None. Raises `SchemaError` for an unknown table,
        `UnsupportedError` for a WITHOUT ROWID one (read it through the `Database`)."""
        return TxGet(self, table, rowid)

    def scan(self, table: str, *, after: int | None = None, limit: int | None = None) -> TxScan:
        """An operation: up to `limit` rows of `table` in rowid order after rowid `after`,
        as this transaction sees them. Raises as `get` does."""
        return TxScan(self, table, after, limit)

    def count(self, table: str) -> TxCount:
        """An operation: the number of rows of `table` as this transaction sees them."""
        return TxCount(self, table)

    # -- ending --------------------------------------------------------------------

    def commit(self, *, durable: bool = True) -> Commit:
        """An operation: make the transaction durable; `Done(None)` only after the WAL is
        synced. Raises the I/O's `CompletionError` if writing or syncing failed (the
        transaction is then over and its changes may or may not be in the log, as with
        SQLite), and `StorageError` if the transaction has ended.

        `durable=False` finishes once the frames are written, without the sync: the commit
        is visible and the lock given back, but it is safe from a power loss only after a
        later `Database.sync_log()` (one sync for any number of such commits: group
        commit)."""
        return Commit(self, durable=durable)

    def rollback(self) -> RolledBack:
        """Drop every change and end the transaction, at once (no I/O needed); returns an
        operation that finishes with `Done(None)` at its first step, so it may be driven
        like the others. A no-op after the transaction ended."""
        if self.state is TransactionState.OPEN:
            self.state = TransactionState.ROLLED_BACK
            self.pages = TransactionPages(self.pages.layout, 0, 0, 0, {})
            self.db.release_write()
        return RolledBack()

    # -- helpers for statements ------------------------------------------------------

    def check_usable(self) -> None:
        """Raise `StorageError` unless the transaction is open (and its database too)."""
        if self.state is not TransactionState.OPEN:
            raise StorageError(f"the write transaction is {self.state.value}")
        self.db.check_open()

    def key_plan(self, table: Table, index: Index) -> tuple[KeyPlan, KeyOf]:
        """The sort-key plan of `index`, and a function from an entry's payload to its key.

        Raises `SchemaError` for a collation this engine does not have.
        """
        found = self._key_plans.get(index.name)
        if found is None:
            plan = index_key_plan(table, index, self.codec)
            codec = self.codec

            def key_of(payload: bytes) -> object:
                return plan.key(decode_record(payload, 0, len(payload), codec))

            found = self._key_plans[index.name] = (plan, key_of)
        return found

    def table_plan(self, name: str) -> TablePlan:
        """How to write rows of table `name` (cached until the schema changes).

        Raises `SchemaError` for an unknown table and `UnsupportedError` for one this
        engine does not write.
        """
        # Plans made on the database's own schema serve every transaction after this one
        # too; after DDL in this transaction they are this transaction's alone.
        shared = self.schema is self.db.loaded_schema
        cache = self.db.write_plans if shared else self._table_plans
        plan = cache.get(name)
        if plan is None:
            plan = cache[name] = TablePlan(self, name)
        return plan

    def forget_key_plans(self) -> None:
        """Drop what was worked out from the schema (it changed)."""
        self._key_plans.clear()
        self._table_plans.clear()

    def header_changed(self) -> bool:
        """True if a commit must write page 1's header (size, freelist or schema moved)."""
        pages = self.pages
        now = (pages.page_count, pages.freelist_trunk, pages.freelist_count, self.schema_cookie)
        return now != self._base_counters

    def page_images(self) -> list[tuple[int, bytes]]:
        """The image of every page a commit writes, by page number: the dirty pages, page 1
        (with its header's counters, the change counter one more) when it is dirty or the
        counters moved, and a zero-filled image of each page the database grew by that the
        transaction freed again before the commit. A commit that leaves page 1 alone does
        not write it: in WAL mode readers learn of commits from the log, as in SQLite.

        Every page of the database must be in the file or the log: SQLite refuses to
        checkpoint a log whose database is larger than the file and the log's frames
        together ("database disk image is malformed"), and fills the file out to the
        database size when it does checkpoint."""
        pages = self.pages
        numbers = set(pages.dirty)
        if self.header_changed():
            numbers.add(1)
        if not numbers:
            return []
        layout = pages.layout
        skipped = lock_byte_page(layout.page_size)
        freed = [
            n
            for n in range(self._base_counters[0] + 1, pages.page_count + 1)
            if n not in numbers and n != skipped
        ]
        images = [(n, pages.page_image(n)) for n in numbers if n != 1]
        if 1 in numbers:
            db = self.db
            header = db.header
            assert header is not None
            prefix = with_counters(
                db.raw_page1_header,
                change_counter=header.change_counter + 1,
                page_count=pages.page_count,
                freelist_trunk=pages.freelist_trunk,
                freelist_count=pages.freelist_count,
                schema_cookie=self.schema_cookie,
            )
            images.append((1, pages.page_image(1, prefix)))
        if freed:
            empty = bytes(layout.page_size)
            images.extend((n, empty) for n in freed)
        if len(images) > 1:
            images.sort(key=_page_number)
        return images

    def begin_commit(self) -> None:
        """A commit started: no more statements."""
        self.state = TransactionState.COMMITTING

    def finish_commit(self) -> None:
        """The commit is published (or there was nothing to write): end the transaction."""
        db = self.db
        if self.schema_cookie != self._base_counters[3]:
            db.adopt_schema(self.schema)
        self.state = TransactionState.COMMITTED
        db.release_write()

    def fail_commit(self, in_flight: Completion | None) -> None:
        """The commit failed or was abandoned: end the transaction; give the lock back once
        `in_flight` (a write that may still land) has finished."""
        self.state = TransactionState.FAILED
        db = self.db
        db.forget_log()  # its frames may have landed: the next writer rescans the log
        if in_flight is not None and not in_flight.finished():
            in_flight.add_done_callback(lambda _: db.release_write())
        else:
            db.release_write()

    def __repr__(self) -> str:
        return f"<WriteTransaction {self.db.path!r} {self.state.value}>"


class RolledBack(Machine[None]):
    """What `WriteTransaction.rollback` returns: already done, `Done(None)`."""

    __slots__ = ()

    def _advance(self) -> TransitionResult[None]:
        return Done(None)


class _Init(enum.Enum):
    CHECK = "check"
    WRITE = "write page 1"
    SYNC = "sync"
    CHECKPOINT = "checkpoint"
    PAGE1 = "page 1"
    READY = "ready"


class Begin(WriteLockedTransaction[WriteTransaction]):
    """The operation `Database.begin()` returns; `Done(WriteTransaction)`."""

    __slots__ = (
        "_checkpoint",
        "_init",
        "_page1",
        "_page1_loader",
        "_page1_node",
        "_page_size",
    )

    def __init__(self, db: SharedState, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        super().__init__(db)
        self._init = _Init.CHECK
        self._page1 = b""
        self._page_size = page_size
        self._checkpoint: CheckpointRun | None = None
        self._page1_loader: PageLoader | None = None
        self._page1_node: Node | None = None

    def _work(self) -> Completion | None:
        db = self.db
        assert db is not None
        while True:
            match self._init:
                case _Init.CHECK:
                    if db.header is None:
                        self._page1 = _first_page(self._page_size)
                        self._init = _Init.WRITE
                        pending = self._write(db.file, 0, self._page1)
                        if pending is not None:
                            return pending
                    else:
                        _check_writable(db)
                        self._init = _Init.CHECKPOINT
                case _Init.WRITE:
                    self._io_done()
                    self._init = _Init.SYNC
                    pending = self._sync(db.file)
                    if pending is not None:
                        return pending
                case _Init.SYNC:
                    self._io_done()
                    page1 = self._page1
                    header = parse_header(page1[:HEADER_SIZE], path=db.path)
                    db.apply_header(header, 1)
                    db.raw_file_header = db.raw_page1_header = page1[:HEADER_SIZE]
                    db.pager.page_count = 1
                    db.pager.cache.put(Page(1, page1))
                    db.adopt_schema(Schema((), (), (), (), None))
                    self._init = _Init.CHECKPOINT
                case _Init.CHECKPOINT:
                    wal = db.wal
                    if wal is not None and wal.max_frame >= db.auto_checkpoint:
                        if self._checkpoint is None:
                            self._checkpoint = CheckpointRun(db)
                        pending = self._checkpoint.advance()
                        if pending is not None:
                            return pending
                    self._init = _Init.PAGE1
                    self._page1_loader = PageLoader(db.pager)
                case _Init.PAGE1:
                    loader = self._page1_loader
                    assert loader is not None
                    page = loader.load(1)
                    if page is None:
                        return loader.wait
                    self._page1_node = Node.of_page(page, db.pager.layout)
                    self._init = _Init.READY
                case _Init.READY:
                    return None

    def _value(self) -> WriteTransaction:
        db = self.db
        assert db is not None
        tx = WriteTransaction(db)
        assert self._page1_node is not None
        tx.pages.nodes[1] = self._page1_node  # a commit may rewrite page 1's header
        self._hand_over_lock()  # the transaction owns the lock now
        return tx


def _page_number(image: tuple[int, bytes]) -> int:
    return image[0]


def _first_page(page_size: int) -> bytes:
    """Page 1 of a new database: the header and an empty `sqlite_schema` leaf."""
    layout = PageLayout(page_size, page_size)
    return Node.empty(1, True).to_bytes(layout, new_header(page_size))


def _check_writable(db: SharedState) -> None:
    header = db.header
    assert header is not None
    if not header.wal_mode:
        raise UnsupportedError(
            f"database {db.path!r} is in rollback-journal mode: this engine writes only in "
            "WAL mode (convert it with Database.convert_to_wal() first)"
        )
    if header.largest_root:
        raise UnsupportedError(f"database {db.path!r} uses auto-vacuum, which is not supported")
    if header.text_encoding is not TextEncoding.UTF8:
        raise UnsupportedError(
            f"database {db.path!r} is {header.text_encoding.name}: only UTF-8 is written"
        )
