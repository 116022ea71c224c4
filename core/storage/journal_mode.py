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
from typing import Final

from core.completion import Completion
from core.storage.header import parse_header
from core.storage.shared import SharedState
from core.storage.transaction import WriteLockedTransaction

__all__ = ["ConvertToWal"]

_WAL_VERSIONS: Final = b"\x02\x02"
_VERSIONS_OFFSET: Final = 18


class _Step(enum.Enum):
    CHECK = "check"
    WRITTEN = "written"
    SYNCED = "synced"
    DONE = "done"


class ConvertToWal(WriteLockedTransaction[bool]):
    """The operation `Database.convert_to_wal` returns; `Done(True)` if it converted."""

    __slots__ = ("_converted", "_step")

    def __init__(self, db: SharedState) -> None:
        super().__init__(db)
        self._step = _Step.CHECK
        self._converted = False

    def _work(self) -> Completion | None:
        db = self.db
        assert db is not None
        while True:
            match self._step:
                case _Step.CHECK:
                    if db.header is None or db.header.wal_mode:
                        self._step = _Step.DONE
                        continue
                    self._step = _Step.WRITTEN
                    pending = self._write(db.file, _VERSIONS_OFFSET, _WAL_VERSIONS)
                    if pending is not None:
                        return pending
                case _Step.WRITTEN:
                    self._io_done()
                    self._step = _Step.SYNCED
                    pending = self._sync(db.file)
                    if pending is not None:
                        return pending
                case _Step.SYNCED:
                    self._io_done()
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

    def _value(self) -> bool:
        return self._converted
