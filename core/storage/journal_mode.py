"""Switching a rollback-journal database to WAL mode (SQLite `PRAGMA journal_mode=WAL`,
`sqlite3PagerSetJournalMode` and the header's file format versions).

Theory of operation:
- A database is in WAL mode when bytes 18 and 19 of its header (the write and read file
  format versions) are 2. This engine writes only in WAL mode, so a rollback-journal
  database is converted once, explicitly: `ConvertToWal` takes the write lock (SQLite's
  EXCLUSIVE: no other connection is reading or writing, and the read outline has already
  refused a hot journal), writes those two bytes in place and syncs the file.
- Two bytes within one sector are written whole or not at all, so a crash leaves the
  database in one mode or the other, never in between; the content is untouched.
- A database already in WAL mode is left alone (`Done(False)`); a conversion is
  `Done(True)`.
"""

from __future__ import annotations

import enum

from core.completion import Completion
from core.storage.errors import StorageError
from core.storage.header import parse_header
from core.storage.shared import SharedState
from core.storage.transaction import ReadPhase, ReadTransaction

__all__ = ["ConvertToWal"]

_WAL_VERSIONS = b"\x02\x02"
_VERSIONS_OFFSET = 18


class _Step(enum.Enum):
    CHECK = "check"
    WRITTEN = "written"
    SYNCED = "synced"
    DONE = "done"


class ConvertToWal(ReadTransaction[bool]):
    """The operation `Database.convert_to_wal` returns; `Done(True)` if it converted."""

    __slots__ = ("_converted", "_holds_write", "_io", "_step")

    def __init__(self, db: SharedState) -> None:
        super().__init__(db)
        self._holds_write = False
        self._step = _Step.CHECK
        self._io: Completion | None = None
        self._converted = False

    def _prepare(self) -> SharedState:
        db = super()._prepare()
        db.check_open()
        if not db.writable:
            raise StorageError(
                f"database {db.path!r} was opened read-only; open it with writable=True"
            )
        if not self._holds_write:
            db.acquire_write()
            self._holds_write = True
        return db

    def _work(self) -> Completion | None:
        db = self.db
        assert db is not None
        while True:
            match self._step:
                case _Step.CHECK:
                    if db.header is None or db.header.wal_mode:
                        self._step = _Step.DONE
                        continue
                    c = self._io = Completion.new_write()
                    self._step = _Step.WRITTEN
                    db.file.pwrite(_VERSIONS_OFFSET, _WAL_VERSIONS, c)
                    if not c.finished():
                        return c
                case _Step.WRITTEN:
                    self._result()
                    c = self._io = Completion.new_sync()
                    self._step = _Step.SYNCED
                    db.file.sync(c)
                    if not c.finished():
                        return c
                case _Step.SYNCED:
                    self._result()
                    raw = bytearray(db.raw_file_header)
                    raw[_VERSIONS_OFFSET : _VERSIONS_OFFSET + 2] = _WAL_VERSIONS
                    header = parse_header(bytes(raw), path=db.path)
                    db.apply_header(header, db.pager.page_count)
                    db.raw_file_header = db.raw_page1_header = bytes(raw)
                    db.pager.invalidate([1])
                    self._converted = True
                    self._step = _Step.DONE
                case _Step.DONE:
                    return None

    def _result(self) -> None:
        c = self._io
        assert c is not None
        c.result()  # raises the write's or the sync's CompletionError

    def _value(self) -> bool:
        return self._converted

    def _after_work(self) -> ReadPhase:
        return ReadPhase.DONE

    def _finalize(self) -> None:
        super()._finalize()
        if self._holds_write:
            self._holds_write = False
            assert self.db is not None
            self.db.release_write()
