"""What every operation on one database file shares (Turso `core/lib.rs` `Database`, the
per-file half): the file and its lock, the header and WAL snapshot as of the last read
transaction, the schema and its cookie, the pager and its cache, and the per-schema caches
(row builders, key plans, resolved index lookups).

Theory of operation:
- Read transactions (`core.storage.transaction.ReadTransaction`) are the only writers of
  this state: they re-read the header and the WAL, then `apply_header`/`apply_wal`, which
  drop exactly the cached pages that may have changed; `validated` says the current
  transaction's view was already checked by another reader still running.
- The SHARED lock is counted per reader (`acquire_read`/`release_read`): taken by the first
  reader, released by the last.
- Answers from the cache alone (`row_from_cache`, `index_rows_from_cache`): the hot-cache
  point lookups. Everything they need is cached and parsed, so they run as a handful of
  calls with no cursor, no state machine and no completion. Any doubt (a page not cached, an
  overflowing payload, an unusual tree, a name not yet resolved once by the full path)
  returns MISS and the full operation does the work, with all of its checks and its exact
  errors. Both paths return the same rows (the tests run every query through both). The
  descents themselves live in `btree.py`, beside the cursor's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from mypy_extensions import mypyc_attr

from core.completion import Completion
from core.errors import CompletionError, ErrorKind
from core.io.backend import File, IOBackend, OpenFlags
from core.storage.btree import Lookup, index_range_cached, lookup_rowid_cached
from core.storage.collation import Affinity, KeyPlan, apply_affinity
from core.storage.errors import CorruptDatabaseError, DatabaseBusyError, SchemaError
from core.storage.header import HEADER_SIZE, DatabaseHeader, parse_header
from core.storage.limits import SchemaLimits
from core.storage.locking import FileLock, wal_connections_open
from core.storage.page import Page, PageLayout
from core.storage.pager import Pager
from core.storage.record import Value, decode_record
from core.storage.schema import (
    Index,
    RowBuilder,
    Schema,
    Table,
    check_collations,
    fold_name,
    index_key_plan,
)
from core.storage.wal import WalSnapshot
from core.storage.wal_write import WalAppender

if TYPE_CHECKING:
    from core.storage.node import Node
    from core.storage.row_write import TablePlan

AUTO_CHECKPOINT_FRAMES: Final = 1000
"""SQLite's default: checkpoint once the WAL holds this many frames."""

__all__ = ["AUTO_CHECKPOINT_FRAMES", "MISS", "Row", "SharedState"]

Row = tuple[Value, ...]
"""A row: `(rowid, *columns)` for rowid tables, `(*columns)` for WITHOUT ROWID tables."""

MISS: Final = Lookup.MISS
"""What an answer from the cache alone returns when the full operation must run."""

_TEXT_AS_IS: Final = frozenset({Affinity.TEXT, Affinity.BLOB, None})


@mypyc_attr(allow_interpreted_subclasses=True)
class SharedState:
    """The state every operation on one database file shares; `Database` is its handle."""

    __slots__ = (
        "_appender_wal",
        "_builders",
        "_change_counter",
        "_log_sync",
        "_plans",
        "_readers",
        "_resolved",
        "_wal_checked",
        "_wal_identity",
        "appender",
        "auto_checkpoint",
        "cache_pages",
        "closed",
        "codec",
        "create_page_size",
        "file",
        "header",
        "immutable",
        "io",
        "loaded_schema",
        "lock",
        "log_end",
        "log_generation",
        "log_synced",
        "log_syncs",
        "pager",
        "path",
        "raw_file_header",
        "raw_page1_header",
        "readahead",
        "schema_cookie",
        "schema_limits",
        "validated",
        "wal",
        "wal_file",
        "wal_path",
        "wal_stat_size",
        "writable",
        "write_plans",
        "writing",
    )

    def __init__(
        self,
        io: IOBackend,
        path: str,
        file: File,
        *,
        immutable: bool,
        cache_pages: int,
        readahead: int,
    ) -> None:
        """Use `Database.open`; this only assembles an opened file."""
        self.io = io
        self.path = path
        self.file = file
        self.immutable = immutable
        self.cache_pages = cache_pages
        self.readahead = readahead
        self.header: DatabaseHeader | None = None
        """The header as of the last transaction; None for an empty (0-byte) file."""
        self.codec = "utf-8"
        self.pager = Pager(
            file, PageLayout(4096, 4096), cache_pages=cache_pages, readahead=readahead
        )
        self.wal_path = path + "-wal"
        self.wal_file: File | None = None
        self.wal: WalSnapshot | None = None
        """The WAL as of the last transaction (None when there is no log)."""
        self._wal_identity: tuple[int, int] | None = None
        self._wal_checked = False
        """True once the -wal file was checked (`refresh_wal_file`) under the write lock
        now held: it stays the same file until the lock is given back."""
        self.wal_stat_size = -1
        """The -wal file's size as the last `refresh_wal_file` saw it (-1 if it did not
        look, as on a backend without file descriptors)."""
        fd = _fd_of(file)
        self.lock: FileLock | None = (
            FileLock(fd, path) if fd is not None and not immutable else None
        )
        self._readers = 0
        self.validated = False
        self._change_counter = -1
        self.raw_file_header = b""
        self.raw_page1_header = b""
        self.loaded_schema: Schema | None = None
        self.schema_cookie = -1
        self._builders: dict[str, RowBuilder] = {}
        self._plans: dict[tuple[str, str], KeyPlan] = {}
        self._resolved: dict[
            str, tuple[int, int, KeyPlan, RowBuilder, tuple[Affinity | None, ...]]
        ] = {}
        self.closed = False
        self.schema_limits: SchemaLimits | None = None
        """Bounds the schema must keep (checked whenever it is loaded); None: no bounds."""
        self.writable = False
        """True when opened for writing (`Database.open(..., writable=True)`)."""
        self.writing = False
        """True while a write transaction holds the EXCLUSIVE lock."""
        self.write_plans: dict[str, TablePlan] = {}
        """What write transactions worked out per table from the current schema (their
        `TablePlan`s), kept across transactions until the schema changes."""
        self.create_page_size = 4096
        """The page size a writable database gets if its file is empty."""
        self.auto_checkpoint = AUTO_CHECKPOINT_FRAMES
        """A write transaction starts with a checkpoint once the WAL holds this many frames."""
        self.appender: WalAppender | None = None
        """How this handle's writer continues the WAL (valid while `wal` is what it wrote)."""
        self._appender_wal: WalSnapshot | None = None
        self.log_end = 0
        """The WAL offset just past the last frame this handle wrote."""
        self.log_synced = 0
        """The WAL offset up to which a sync has finished."""
        self.log_generation = 0
        """How many times the WAL was emptied: offsets of two generations never compare."""
        self.log_syncs = 0
        """How many syncs of the WAL `start_log_sync` started (group commit shares them)."""
        self._log_sync: Completion | None = None

    @property
    def schema(self) -> Schema:
        """The schema as of the last operation (use `Database.read_schema()` for a fresh
        one)."""
        assert self.loaded_schema is not None
        return self.loaded_schema

    def check_open(self) -> None:
        """Raise `CompletionError` (`ErrorKind.CLOSED`) once the database is closed."""
        if self.closed:
            raise CompletionError(ErrorKind.CLOSED, "database is closed", path=self.path)

    def adopt_schema(self, schema: Schema) -> None:
        """Take a freshly loaded schema (the header's cookie is its version) and forget what
        was built on the old one."""
        assert self.header is not None
        self.loaded_schema = schema
        self.schema_cookie = self.header.schema_cookie
        self._builders.clear()
        self._plans.clear()
        self._resolved.clear()
        self.write_plans.clear()
        self.validated = not self.immutable

    def row_builder(self, table: Table) -> RowBuilder:
        """The cached `RowBuilder` of `table` (made on first use)."""
        builder = self._builders.get(table.name)
        if builder is None or builder.table is not table:
            builder = self._builders[table.name] = RowBuilder(table)
        return builder

    def key_plan(self, table: Table, index: Index | None) -> KeyPlan:
        """The cached key plan of `index` (of the primary key when None) on `table`; raises
        `UnsupportedError` for a collation the engine does not know."""
        key = (table.name, index.name if index is not None else "")
        plan = self._plans.get(key)
        if plan is None:
            if index is not None:
                check_collations(index.columns, f"index {index.name}")
            check_collations(table.primary_key, f"table {table.name}")
            plan = self._plans[key] = index_key_plan(table, index, self.codec)
        return plan

    # -- answers from the cache alone (see the module docstring) ------------------------

    def row_from_cache(self, name: str, key: object) -> Row | Lookup | None:
        """The row of table `name` with rowid `key` from cached pages alone: the row, None
        if there is none, or MISS."""
        table = self.loaded_schema._by_name.get(name) if self.loaded_schema is not None else None
        if type(table) is not Table or table.without_rowid or type(key) is not int:
            return MISS
        builder = self._builders.get(table.name)
        if builder is None or builder.table is not table:
            return MISS
        return self.table_row_from_cache(table.root_page, key, builder)

    def table_row_from_cache(
        self, root: int, rowid: int, builder: RowBuilder
    ) -> Row | Lookup | None:
        """`row_from_cache` for a resolved table: its root page and row builder."""
        pager = self.pager
        found = lookup_rowid_cached(pager, root, rowid)
        if found is None or found is MISS:
            return found
        page, i = found
        sizes = page.payload_sizes
        starts = page.payload_starts
        assert sizes is not None and starts is not None
        size = sizes[i]
        if size > pager.layout.max_local_table:
            return MISS
        start = starts[i]
        try:
            values = decode_record(page.data, start, start + size, self.codec)
        except CorruptDatabaseError:
            return MISS
        return builder.build(rowid, values)

    def index_rows_from_cache(self, name: str, equal: tuple[object, ...]) -> list[Row] | Lookup:
        """The rows whose entry in index `name` starts with `equal`, from cached pages
        alone, or MISS."""
        resolved = self._resolved.get(name)
        if resolved is None:
            schema = self.loaded_schema
            if schema is None:
                return MISS
            index = schema._by_name.get(name)
            if type(index) is not Index:
                return MISS
            table = schema._by_name.get(fold_name(index.table))
            if type(table) is not Table or table.without_rowid:
                return MISS
            plan = self._plans.get((table.name, index.name))
            builder = self._builders.get(table.name)
            if plan is None or builder is None or builder.table is not table:
                return MISS  # the full path has not prepared them yet
            affinities = tuple(c.affinity for c in index.columns)
            resolved = self._resolved[name] = (
                index.root_page,
                table.root_page,
                plan,
                builder,
                affinities,
            )
        index_root, table_root, plan, builder, affinities = resolved
        if not equal or len(equal) > len(affinities):
            return MISS
        values: list[Value] = []
        for v, affinity in zip(equal, affinities, strict=False):
            if type(v) is str and affinity in _TEXT_AS_IS:
                values.append(v)
                continue
            try:
                converted = apply_affinity(v, affinity)
            except SchemaError:
                return MISS
            if converted is None:
                return MISS
            values.append(converted)
        found = index_range_cached(self.pager, index_root, plan, plan.probe(values))
        if found is MISS:
            return MISS
        leaf, start, stop = found
        records = leaf.records
        assert records is not None
        rows: list[Row] = []
        for k in range(start, stop):
            rowid = records[k][-1] if records[k] else None
            if type(rowid) is not int:
                return MISS
            row = self.table_row_from_cache(table_root, rowid, builder)
            if row is None or row is MISS:
                return MISS
            rows.append(row)
        return rows

    def acquire_read(self) -> None:
        """Count one more reader; the first takes the SHARED lock (may raise
        `DatabaseBusyError`)."""
        if self._readers == 0 and self.lock is not None and not self.writing:
            self.lock.lock_shared()
        self._readers += 1

    def release_read(self) -> None:
        """Count one reader less; the last releases the lock and the validation."""
        self._readers -= 1
        if self._readers <= 0:
            self._readers = 0
            self.validated = False
            if self.lock is not None and not self.closed and not self.writing:
                self.lock.unlock()

    def acquire_write(self) -> None:
        """Take the EXCLUSIVE lock for a write transaction.

        Raises `DatabaseBusyError` if a write transaction is already open on this handle, if
        another connection holds a lock on the file, or if a SQLite connection has it open
        in WAL mode. On a backend without file descriptors (memory, simulator) only the
        first check applies.
        """
        if self.writing:
            raise DatabaseBusyError(
                f"database {self.path!r}: a write transaction is already open on it"
            )
        lock = self.lock
        if lock is None:  # a backend without file descriptors: no other process sees it
            self.writing = True
            return
        lock.lock_exclusive()
        if wal_connections_open(self.path):
            self._drop_exclusive(lock)
            raise DatabaseBusyError(
                f"database {self.path!r} is open in a SQLite connection in WAL mode (its "
                "-shm file is locked); close that connection before writing"
            )
        self.writing = True

    def release_write(self) -> None:
        """Give the EXCLUSIVE lock back (keeping SHARED while readers still run)."""
        if not self.writing:
            return
        self.writing = False
        self._wal_checked = False
        if self.lock is not None and not self.closed:
            self._drop_exclusive(self.lock)

    def _drop_exclusive(self, lock: FileLock) -> None:
        if self._readers:
            lock.downgrade_to_shared()
        else:
            lock.unlock()

    def apply_header(self, header: DatabaseHeader, file_pages: int) -> None:
        """Adopt a freshly read header: re-lay the pager if the geometry changed, and drop
        the cache if the change counter moved."""
        old = self.header
        if (
            old is None
            or old.page_size != header.page_size
            or old.usable_size != header.usable_size
            or old.text_encoding is not header.text_encoding
        ):
            self.pager.layout = PageLayout(header.page_size, header.usable_size)
            self.pager.invalidate()
            self.schema_cookie = -1
            self._plans.clear()
            self._resolved.clear()
        elif header.change_counter != self._change_counter and not header.wal_mode:
            self.pager.invalidate()
        self.header = header
        self.codec = header.text_encoding.value
        self._change_counter = header.change_counter
        self.pager.page_count = header.page_count or file_pages

    def set_empty(self) -> None:
        """Adopt an empty (0-byte) file: no header, no pages, an empty schema."""
        self.header = None
        self.raw_file_header = b""
        self.raw_page1_header = b""
        self.pager.page_count = 0
        self.pager.invalidate()
        self.loaded_schema = Schema((), (), (), (), None)
        self.schema_cookie = -1

    def apply_wal(self, snapshot: WalSnapshot) -> None:
        """Adopt a fresh WAL snapshot: drop the cached pages whose frames changed (all of
        them if the log restarted)."""
        old = self.wal
        pager = self.pager
        if (
            old is None
            or old.header is None
            or snapshot.header is None
            or (old.header.salt1, old.header.salt2)
            != (snapshot.header.salt1, snapshot.header.salt2)
        ):
            pager.invalidate()
        else:
            changed = [p for p, f in snapshot.frames.items() if old.frames.get(p) != f]
            if changed:
                pager.invalidate(changed)
        self.wal = snapshot
        pager.wal_frames = snapshot.frames
        pager.wal_file = self.wal_file

    def refresh_wal_file(self) -> bool:
        """(Re)open the -wal file if it appeared or was replaced; True if it exists."""
        fd = _fd_of(self.file)
        if fd is not None:
            self.wal_stat_size = -1
            try:
                st = os.stat(self.wal_path)
            except FileNotFoundError:
                self.drop_wal_file()
                return False
            identity = (st.st_dev, st.st_ino)
            self.wal_stat_size = st.st_size
            if self.wal_file is not None and identity == self._wal_identity:
                self._wal_checked = self.writing
                return True
            self.drop_wal_file()
            self._wal_identity = identity
        elif self.wal_file is not None:
            return True
        try:
            flags = OpenFlags.NONE if self.writable else OpenFlags.READ_ONLY
            self.wal_file = self.io.open_file(self.wal_path, flags)
        except CompletionError as exc:
            if exc.errno == 2:  # ENOENT: no log (yet)
                self._wal_identity = None
                return False
            raise
        return True

    def open_wal_for_writing(self) -> File:
        """The -wal file, created if missing (a writer holds the EXCLUSIVE lock).

        Raises `CompletionError` if it cannot be created.
        """
        if self._wal_checked and self.wal_file is not None:
            # Checked since the lock was taken: SQLite removes or replaces a log only
            # under the EXCLUSIVE lock, so it is still the same file.
            return self.wal_file
        if not self.refresh_wal_file():
            file = self.io.open_file(self.wal_path, OpenFlags.CREATE)
            self.wal_file = file
            self.pager.wal_file = file
            fd = _fd_of(file)
            if fd is not None:
                st = os.fstat(fd)
                self._wal_identity = (st.st_dev, st.st_ino)
        assert self.wal_file is not None
        return self.wal_file

    def adopt_commit(
        self,
        snapshot: WalSnapshot,
        pages: list[tuple[int, bytes]],
        page_count: int,
        nodes: Mapping[int, Node] | None = None,
    ) -> None:
        """Publish a durable commit of this handle's own writer: the new WAL snapshot, the
        written pages (cached as the latest committed versions) and page 1's header. Other
        cached pages stay: they are still the latest versions. `nodes` holds the B-tree
        pages among them as nodes (their bytes are the nodes' `to_bytes`), kept on the
        cached pages so that the next transaction does not parse them again."""
        pager = self.pager
        pager.invalidate([number for number, _ in pages])
        self.wal = snapshot
        pager.wal_frames = snapshot.frames
        pager.wal_file = self.wal_file
        cache = pager.cache
        for number, data in pages:
            page = Page(number, data)
            if nodes is not None:
                node = nodes.get(number)
                if node is not None:
                    node.written_as(data)
                    page.node = node
            cache.put(page)
            if number == 1:
                raw = data[:HEADER_SIZE]
                self.apply_header(parse_header(raw, path=self.path), page_count)
                self.raw_page1_header = raw
        pager.page_count = page_count

    def wal_appender(self) -> WalAppender:
        """How the next commit continues the WAL: this handle's own appender while the log
        is what it last wrote, else one built from the log as last read."""
        appender = self.appender
        if appender is not None and self._appender_wal is self.wal:
            return appender
        page_size = self.pager.layout.page_size
        snapshot = self.wal
        if snapshot is None:
            size = self.wal_file.size() if self.wal_file is not None else 0
            snapshot = WalSnapshot(None, {}, 0, 0, (0, 0), size)
        appender = WalAppender.from_snapshot(
            snapshot, page_size, seed=int(self.io.now() * 1_000_000)
        )
        self.appender = appender
        self._appender_wal = self.wal
        return appender

    def forget_log(self) -> None:
        """After a failed commit: trust neither the appender nor the snapshot, so the next
        transaction reads the log again (frames of the failed commit may be in it)."""
        self.appender = None
        self._appender_wal = None
        self.wal = None

    def adopt_appender(self, appender: WalAppender) -> None:
        """Keep `appender` as the one that continues the current log."""
        self.appender = appender
        self._appender_wal = self.wal

    def log_written(self, end: int, *, durable: bool) -> None:
        """Record that frames up to WAL offset `end` are written (and synced if `durable`)."""
        self.log_end = max(self.log_end, end)
        if durable:
            self.log_synced = max(self.log_synced, end)

    def log_reset(self) -> None:
        """The WAL was emptied (a checkpoint, which synced it first): nothing is written or
        synced in the new generation, and a sync still under way no longer counts."""
        self.log_end = self.log_synced = 0
        self.log_generation += 1
        self._log_sync = None

    def start_log_sync(self) -> Completion:
        """The sync of the WAL under way, if there is one, else a new one covering
        everything written so far (its success advances `log_synced`, unless the log was
        emptied meanwhile).

        At most one sync of the log runs at a time: a caller whose commit the sync under
        way does not cover waits for it and asks again, and by then the new sync covers
        every commit written meanwhile (group commit, as PostgreSQL's `XLogFlush`).
        Raises `CompletionError` if the sync cannot be submitted.
        """
        pending = self._log_sync
        if pending is not None and not pending.finished():
            return pending
        wal_file = self.wal_file
        if wal_file is None:
            raise CompletionError(ErrorKind.CLOSED, "no WAL file to sync", path=self.wal_path)
        target = self.log_end
        generation = self.log_generation

        def synced(outcome: int | CompletionError) -> None:
            if isinstance(outcome, int) and self.log_generation == generation:
                self.log_synced = max(self.log_synced, target)

        c = wal_file.sync(Completion.new_sync(synced))
        self._log_sync = c  # only once submitted: a refused sync leaves no one waiting
        self.log_syncs += 1
        return c

    def drop_wal_file(self) -> None:
        """Close the -wal file and forget the log (its pages leave the cache). What this
        handle wrote to it is no longer ours to sync (`log_reset`): the file is gone or
        replaced, which SQLite does only once a checkpoint copied the log into the
        database."""
        if self.wal_file is not None:
            self.wal_file.close()
            self.wal_file = None
            self.log_reset()
            self._wal_identity = None
            self._wal_checked = False
            if self.wal is not None and self.wal.frames:
                self.pager.invalidate()
            self.wal = None
            self.pager.wal_frames = {}
            self.pager.wal_file = None


def _fd_of(file: File) -> int | None:
    fd = getattr(file, "fd", None)
    return fd if isinstance(fd, int) else None
