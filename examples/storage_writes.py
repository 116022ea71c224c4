"""64 tasks writing one SQLite database at once, on asyncio, with
`async with adb.transaction() as tx:` from `bridge.storage`.

Each block waits its turn (the loop keeps running meanwhile), commits when it ends and
returns once the commit is durable; commits made while a sync of the log runs share the
next one (group commit), so the log is usually synced fewer times than there are commits
(how many share a sync depends on how long a sync takes). A block that raises rolls back.
sqlite3 reads the result.

Run: python -m examples.storage_writes [auto|threads|uring]
     (or: python examples/storage_writes.py [...]); the argument picks the engine of
     `AsyncFileIO`, "auto" by default.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import tempfile
from contextlib import closing

from bridge import AsyncFileIO
from bridge.storage import AsyncDatabase
from core.storage import ConstraintError

TASKS = 64


async def main(engine: str = "auto") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.db")
        async with AsyncFileIO(engine=engine) as io:
            db = await AsyncDatabase.open(io, path, writable=True)
            async with db.transaction() as tx:
                await tx.execute_ddl(
                    "CREATE TABLE events(id INTEGER PRIMARY KEY, task INT NOT NULL, note TEXT)"
                )
                await tx.execute_ddl("CREATE UNIQUE INDEX events_task ON events(task)")
            commits, syncs = db.commits, db.log_syncs

            async def writer(task: int) -> None:
                async with db.transaction() as tx:
                    await tx.insert("events", {"task": task, "note": f"from task {task}"})

            await asyncio.gather(*(writer(task) for task in range(TASKS)))
            commits, syncs = db.commits - commits, db.log_syncs - syncs
            print(f"{commits} tasks committed a row each: {await db.count('events')} rows")
            print(f"WAL syncs: {syncs} for {commits} commits (engine: {io.engine})")

            try:
                async with db.transaction() as tx:
                    await tx.insert("events", {"task": TASKS, "note": "not kept"})
                    await tx.insert("events", {"task": 0, "note": "task 0 has a row"})
            except ConstraintError as exc:
                print(f"rolled back on {type(exc).__name__}: {await db.count('events')} rows")
            db.close()
        with closing(sqlite3.connect(path)) as con:
            (check,) = con.execute("PRAGMA integrity_check").fetchone()
            (rows,) = con.execute("SELECT count(DISTINCT task) FROM events").fetchone()
        print(f"sqlite3: integrity_check {check}, {rows} tasks")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
