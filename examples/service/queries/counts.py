"""Row counts that cost nothing while the database has not changed.

Rules:
- A count reads the whole table, so the pages keep each table's count with the state of
  the file it was counted in: the header's change counter and, in WAL mode, the log's
  salts and last frame (a commit appends frames, a checkpoint that restarts the log
  changes the salts). Every commit moves one of them, whoever made it: this process
  (the write forms, the API) or another one.
- `read_schema` refreshes that state first: it re-reads only the 100-byte header and the
  log's header (page 1 too when they moved), never a table's page, so a count still
  valid is answered without reading any page.
- A count is kept only when the state was the same before and after it was read, so a
  commit made while it ran is never hidden.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from core.storage import Database, Table
from examples.service.databases import Entry

__all__ = ["cached_count", "change_state"]


def change_state(db: Database) -> Hashable:
    """What changes with every commit to `db`, as its last operation saw it."""
    header = db.header
    wal = db.wal
    log = (
        (wal.header.salt1, wal.header.salt2, wal.max_frame)
        if wal is not None and wal.header is not None
        else None
    )
    return (header.change_counter if header is not None else None, log, db.page_count)


async def cached_count(
    entry: Entry, table: Table, count: Callable[[], Awaitable[int | None]]
) -> int | None:
    """`count()` for `table`, or what it answered before if nothing changed since."""
    await entry.db.read_schema()
    before = change_state(entry.db.db)
    kept = entry.counts.get(table.name)
    if kept is not None and kept[0] == before and kept[1] is table:
        return kept[2]
    n = await count()
    if change_state(entry.db.db) == before:
        entry.counts[table.name] = (before, table, n)
    return n
