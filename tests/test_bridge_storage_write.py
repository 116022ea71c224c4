"""Writing through `bridge.storage`: `async with adb.transaction() as tx:` on asyncio,
uvloop and trio, over both engines of `AsyncFileIO`.

Each scenario is written once with anyio (which runs on all three loops) and collected
twice: under pytest-asyncio's loop factories (asyncio, uvloop) and under anyio's plugin
(trio). Where the scenario needs a sync of the WAL to be still running, the backend holds
the WAL's syncs until the test lets them go; where it needs a cancellation during a
commit, the backend cancels when the commit's frames are submitted. Nothing is timed:
waits are bounded by counting loop passes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
import sniffio

from bridge import AsyncFile, AsyncFileIO
from bridge.storage import AsyncDatabase
from core import Completion
from core.io import OpenFlags
from core.io.backend import Buffer, StrPath
from core.storage import (
    ConstraintError,
    DatabaseBusyError,
    StorageError,
    TransactionState,
)

# Every test here runs on both engines of AsyncFileIO (see `file_engine` in conftest).
pytestmark = pytest.mark.usefixtures("file_engine")

USERS = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT)"
USERS_NAME = "CREATE UNIQUE INDEX users_name ON users(name)"
TASKS = 64


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("ioresult-worker")]
    assert not alive, f"worker threads left running: {alive}"


class HookedFile(AsyncFile):
    """An `AsyncFile` of a `HookedIO`: counts and may hold the syncs of a WAL, may park
    its next write (never submitted: a cancellation that aborts it leaves nothing in
    flight), and calls the backend's `on_wal_write` hook (once) right after submitting
    (or parking) a write to a WAL."""

    __slots__ = ()

    def sync(self, c: Completion) -> Completion:
        io = self._backend
        assert isinstance(io, HookedIO)
        if self.path.endswith("-wal"):
            io.wal_syncs += 1
            if io.hold_syncs:
                io.held.append((self, c))
                return c
        return super().sync(c)

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        # Compiled, `AsyncFile.pwrite` calls its own `pwritev`, never this class's.
        return self.pwritev(pos, (buffer,), c)

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        io = self._backend
        assert isinstance(io, HookedIO)
        if io.park_wal_write and self.path.endswith("-wal"):
            io.park_wal_write = False
            io.parked.append(c)
        else:
            c = super().pwritev(pos, buffers, c)
        hook = io.on_wal_write
        if hook is not None and self.path.endswith("-wal"):
            io.on_wal_write = None
            hook()
        return c


class HookedIO(AsyncFileIO):
    """`AsyncFileIO` whose files are `HookedFile`s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wal_syncs = 0
        self.hold_syncs = False
        self.held: list[tuple[AsyncFile, Completion]] = []
        self.park_wal_write = False
        self.parked: list[Completion] = []
        self.on_wal_write: Callable[[], None] | None = None

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> AsyncFile:
        file = super().open_file(path, flags)
        file.__class__ = HookedFile  # same slots: only `sync` and `pwritev` differ
        return file

    def release_syncs(self) -> int:
        """Stop holding; submit the held syncs for real. How many there were."""
        self.hold_syncs = False
        held, self.held = self.held, []
        for file, c in held:
            AsyncFile.sync(file, c)
        return len(held)


async def passes_until(condition: Callable[[], bool], limit: int = 1_000_000) -> None:
    """Give the loop turns until `condition()` holds (at most `limit` turns)."""
    for _ in range(limit):
        if condition():
            return
        await anyio.sleep(0)
    raise AssertionError("condition never held")


async def open_users(io: AsyncFileIO, path: Path) -> AsyncDatabase:
    adb = await AsyncDatabase.open(io, path, writable=True, page_size=1024)
    async with adb.transaction() as tx:
        await tx.execute_ddl(USERS)
        await tx.execute_ddl(USERS_NAME)
    return adb


def sqlite_rows(path: Path, sql: str) -> tuple[str, list[tuple[Any, ...]]]:
    """sqlite3's integrity_check and the rows of `sql` (the connection is closed after)."""
    with closing(sqlite3.connect(path)) as con:
        check = con.execute("PRAGMA integrity_check").fetchone()[0]
        return check, con.execute(sql).fetchall()


Scenario = Callable[[Path], Awaitable[None]]


def on_every_loop(scenario: Scenario) -> tuple[Any, Any]:
    """Two tests running `scenario`: on asyncio and uvloop, and on trio."""

    async def on_asyncio(tmp_path: Path) -> None:
        await scenario(tmp_path)

    async def on_trio(tmp_path: Path) -> None:
        await scenario(tmp_path)

    on_asyncio.__doc__ = on_trio.__doc__ = scenario.__doc__
    return pytest.mark.asyncio(on_asyncio), pytest.mark.anyio(on_trio)


# -- commit, rollback ----------------------------------------------------------------


async def commit_on_exit(tmp_path: Path) -> None:
    """Leaving the block commits; the rows are there, for us and for sqlite3."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        assert adb.writable and adb.commits == 1
        async with adb.transaction() as tx:
            assert tx.state is TransactionState.OPEN
            ada = await tx.insert("users", {"name": "Ada", "age": 36})
            bob = await tx.insert("users", {"name": "Bob", "age": "41"})
            carl = await tx.insert("users", {"name": "Carl"})
            assert await tx.update("users", ada, {"age": 37}) is True
            assert await tx.delete("users", carl) is True
            assert await tx.delete("users", carl) is False
            # Reads in the transaction see its writes; the database's, the last commit.
            assert await tx.get("users", ada) == (ada, ada, "Ada", 37)
            assert await tx.get("users", carl) is None
            assert await tx.scan("users", after=ada, limit=5) == [(bob, bob, "Bob", 41)]
            assert await tx.count("users") == 2
            assert await adb.count("users") == 0 and await adb.get("users", ada) is None
        assert tx.state is TransactionState.COMMITTED
        assert adb.commits == 2
        assert adb.db.log_synced == adb.db.log_end  # durable before __aexit__ returned
        assert await adb.scan("users") == [(ada, ada, "Ada", 37), (bob, bob, "Bob", 41)]
        assert await adb.index_scan("users_name", equal=["Bob"]) == [(bob, bob, "Bob", 41)]
        with pytest.raises(StorageError):
            await tx.insert("users", {"name": "Dan"})  # the transaction has ended
        adb.close()
    check, rows = sqlite_rows(path, "SELECT id, name, age FROM users ORDER BY id")
    assert check == "ok"
    assert rows == [(ada, "Ada", 37), (bob, "Bob", 41)]


test_commit_on_exit_asyncio, test_commit_on_exit_trio = on_every_loop(commit_on_exit)


async def rollback_on_exception(tmp_path: Path) -> None:
    """An exception leaving the block rolls back and goes on; the next transaction works."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        with pytest.raises(RuntimeError, match="boom"):
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": "Ada"})
                raise RuntimeError("boom")
        assert tx.state is TransactionState.ROLLED_BACK
        assert adb.commits == 1 and not adb.db.writing
        assert await adb.count("users") == 0
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Bob"})
        adb.close()
    assert sqlite_rows(path, "SELECT name FROM users") == ("ok", [("Bob",)])


test_rollback_on_exception_asyncio, test_rollback_on_exception_trio = on_every_loop(
    rollback_on_exception
)


async def unique_violation(tmp_path: Path) -> None:
    """A UNIQUE violation raises `ConstraintError` out of the block and rolls back all of
    the transaction, the rows before it included."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Ada"})
        with pytest.raises(ConstraintError):
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": "Bob"})
                await tx.insert("users", {"name": "Ada"})
        assert tx.state is TransactionState.ROLLED_BACK
        assert [r[2] for r in await adb.scan("users")] == ["Ada"]
        # Caught inside the block, the violation leaves the transaction usable.
        async with adb.transaction() as tx:
            with pytest.raises(ConstraintError):
                await tx.insert("users", {"name": "Ada"})
            await tx.insert("users", {"name": "Cleo"})
        adb.close()
    assert sqlite_rows(path, "SELECT name FROM users ORDER BY id") == (
        "ok",
        [("Ada",), ("Cleo",)],
    )


test_unique_violation_asyncio, test_unique_violation_trio = on_every_loop(unique_violation)


async def misuse(tmp_path: Path) -> None:
    """A statement outside the block, a second entry, a read-only database: `StorageError`,
    and the lock is not left held."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        tx = adb.transaction()
        with pytest.raises(StorageError, match="async with"):
            await tx.insert("users", {"name": "Ada"})
        async with tx:
            await tx.insert("users", {"name": "Ada"})
        with pytest.raises(StorageError, match="entered once"):
            async with tx:
                pass
        adb.close()
        reader = await AsyncDatabase.open(io, path)
        for _ in range(2):  # the second attempt does not wait for a lock left held
            with pytest.raises(StorageError, match="read-only"):
                async with reader.transaction():
                    pass
        reader.close()


test_misuse_asyncio, test_misuse_trio = on_every_loop(misuse)


async def busy_elsewhere(tmp_path: Path) -> None:
    """Another connection's lock: `DatabaseBusyError` as it is, then the next one works."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        with closing(sqlite3.connect(path)) as con:
            assert con.execute("SELECT count(*) FROM users").fetchone() == (0,)  # WAL mode
            with pytest.raises(DatabaseBusyError):
                async with adb.transaction() as tx:
                    await tx.insert("users", {"name": "Ada"})
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Bob"})
        adb.close()
    assert sqlite_rows(path, "SELECT name FROM users") == ("ok", [("Bob",)])


test_busy_elsewhere_asyncio, test_busy_elsewhere_trio = on_every_loop(busy_elsewhere)


# -- cancellation ------------------------------------------------------------------------


async def cancel_inside_the_block(tmp_path: Path) -> None:
    """A cancel scope cancelled inside the block: rolled back, the cancellation goes on
    (the scope catches it), and the next transaction works. A task cancelled while it
    waits its turn leaves the queue and takes nothing with it."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        with anyio.CancelScope() as scope:
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": "Ada"})
                scope.cancel()
                await anyio.sleep(0)
            raise AssertionError("not reached")
        assert scope.cancelled_caught
        assert tx.state is TransactionState.ROLLED_BACK
        assert await adb.count("users") == 0

        inside = anyio.Event()
        go_on = anyio.Event()

        async def holder() -> None:
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": "Bob"})
                inside.set()
                await go_on.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await inside.wait()
            with anyio.CancelScope() as waiting:
                waiting.cancel()  # delivered while it waits for the lock
                async with adb.transaction():
                    raise AssertionError("not reached")
            assert waiting.cancelled_caught
            go_on.set()
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Cleo"})
        adb.close()
    assert sqlite_rows(path, "SELECT name FROM users ORDER BY id") == (
        "ok",
        [("Bob",), ("Cleo",)],
    )


test_cancel_inside_the_block_asyncio, test_cancel_inside_the_block_trio = on_every_loop(
    cancel_inside_the_block
)


@pytest.mark.asyncio
async def test_asyncio_task_cancelled_inside_the_block(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        inside = asyncio.Event()

        async def writer() -> None:
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": "Ada"})
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(writer())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await adb.count("users") == 0 and not adb.db.writing
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Bob"})
        adb.close()
    assert sqlite_rows(path, "SELECT name FROM users") == ("ok", [("Bob",)])


async def check_after_cancelled_commit(adb: AsyncDatabase, path: Path, parked: bool) -> None:
    """The lock is free, the next transaction commits, and whether or not the abandoned
    frames reached the log, we and sqlite3 read the same rows."""
    assert not adb.db.writing
    async with adb.transaction() as tx:
        await tx.insert("users", {"name": "Next"})
    ours = [r[2] for r in await adb.scan("users")]
    if parked:
        assert ours == ["Before", "Next"]
    else:
        assert ours in (["Before", "Next"], ["Before", "Cancelled", "Next"])
    assert await adb.check() == []
    adb.close()
    check, rows = sqlite_rows(path, "SELECT name FROM users ORDER BY id")
    assert check == "ok"
    assert [r[0] for r in rows] == ours


async def cancel_during_commit(tmp_path: Path, park: bool) -> None:
    path = tmp_path / "w.db"
    async with HookedIO() as io:
        adb = await open_users(io, path)
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Before"})
        with anyio.CancelScope() as scope:
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": "Cancelled"})
                io.park_wal_write = park
                io.on_wal_write = scope.cancel
            raise AssertionError("not reached")
        assert scope.cancelled_caught
        assert io.on_wal_write is None  # the hook ran: the cancel was asked for in the commit
        if park:
            assert tx.state is TransactionState.FAILED
            assert [c.finished() for c in io.parked] == [True]  # aborted, never submitted
            assert await adb.count("users") == 1
        elif sniffio.current_async_library() == "trio":
            assert tx.state is TransactionState.FAILED
        else:
            # anyio delivers a scope's cancellation on asyncio at a later loop pass: the
            # write may have finished by then, and the cancellation lands in the sync's
            # wait instead, after the commit.
            assert tx.state in (TransactionState.FAILED, TransactionState.COMMITTED)
        await check_after_cancelled_commit(adb, path, park)


async def cancel_during_parked_commit(tmp_path: Path) -> None:
    """A cancel scope cancelled while the commit's frames wait to be written: the
    transaction ends as failed, the cancellation goes on, nothing of it is in the log,
    and the next transaction commits."""
    await cancel_during_commit(tmp_path, park=True)


async def cancel_during_submitted_commit(tmp_path: Path) -> None:
    """The same with the frames already submitted: they may or may not reach the log,
    and we and sqlite3 read the same rows either way."""
    await cancel_during_commit(tmp_path, park=False)


test_cancel_during_parked_commit_asyncio, test_cancel_during_parked_commit_trio = on_every_loop(
    cancel_during_parked_commit
)
test_cancel_during_submitted_commit_asyncio, test_cancel_during_submitted_commit_trio = (
    on_every_loop(cancel_during_submitted_commit)
)


@pytest.mark.asyncio
async def test_asyncio_task_cancelled_during_commit(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with HookedIO() as io:
        adb = await open_users(io, path)
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Before"})
        tx = adb.transaction()

        async def writer() -> None:
            task = asyncio.current_task()
            assert task is not None
            async with tx:
                await tx.insert("users", {"name": "Cancelled"})
                io.on_wal_write = task.cancel  # delivered at the commit's first wait
            raise AssertionError("not reached")

        task = asyncio.create_task(writer())
        with pytest.raises(asyncio.CancelledError):
            await task
        assert io.on_wal_write is None
        assert tx.state is TransactionState.FAILED
        await check_after_cancelled_commit(adb, path, parked=False)


class GatedIO(HookedIO):
    """The worker pool, where a batch writing to a WAL waits for `gate` while `gating`
    (and says so through `in_worker`); cancelled drives may wait for it a long time."""

    def __init__(self) -> None:
        super().__init__(engine="threads", settle_timeout=60)
        self.gating = False
        self.gate = threading.Event()
        self.in_worker = threading.Event()

    def _run_batch(self, batch: Any) -> None:
        wal_write = any(
            r.kind.name == "WRITE" and r.file.path.endswith("-wal") for r in batch.requests
        )
        if self.gating and wal_write:
            self.in_worker.set()
            self.gate.wait()
        super()._run_batch(batch)


async def cancel_while_the_write_is_in_a_worker(tmp_path: Path) -> None:
    """Cancelled while the commit's frames are inside a worker's system call: the lock is
    not given to the next writer until that call came back (on asyncio too, where anyio's
    repeated cancellations cut `drive`'s own wait short), so its frames never race a late
    write of the abandoned commit."""
    path = tmp_path / "w.db"
    async with GatedIO() as io:
        adb = await open_users(io, path)
        async with adb.transaction() as tx:
            await tx.insert("users", {"name": "Before"})
        cancelled = anyio.CancelScope()
        next_inside = False

        async def abandoned() -> None:
            with cancelled:
                async with adb.transaction() as tx:
                    await tx.insert("users", {"name": "Cancelled"})
                    io.gating = True

        async def next_writer() -> None:
            nonlocal next_inside
            async with adb.transaction() as tx:
                next_inside = True
                await tx.insert("users", {"name": "Next"})

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(abandoned)
                await passes_until(io.in_worker.is_set)
                cancelled.cancel()
                tg.start_soon(next_writer)
                for _ in range(200):
                    await anyio.sleep(0)
                assert not next_inside  # still waiting: the frames are still being written
                assert not cancelled.cancelled_caught
                io.gating = False
                io.gate.set()
        finally:
            io.gate.set()  # never leave a worker held, even when an assertion failed
        assert cancelled.cancelled_caught and next_inside
        ours = [r[2] for r in await adb.scan("users")]
        assert ours in (["Before", "Next"], ["Before", "Cancelled", "Next"])
        adb.close()
    check, rows = sqlite_rows(path, "SELECT name FROM users ORDER BY id")
    assert check == "ok"
    assert [r[0] for r in rows] == ours


@pytest.mark.asyncio
async def test_cancel_while_the_write_is_in_a_worker_asyncio(
    tmp_path: Path, file_engine: str
) -> None:
    if file_engine != "threads":
        pytest.skip("holds a worker thread of the pool")
    await cancel_while_the_write_is_in_a_worker(tmp_path)


@pytest.mark.anyio
async def test_cancel_while_the_write_is_in_a_worker_trio(tmp_path: Path, file_engine: str) -> None:
    if file_engine != "threads":
        pytest.skip("holds a worker thread of the pool")
    await cancel_while_the_write_is_in_a_worker(tmp_path)


async def cancel_while_waiting_for_the_sync(tmp_path: Path) -> None:
    """Cancelled while it waits for the sync: the commit stays (it is visible already),
    the cancellation goes on, and the sync it waited on is not failed for the task
    waiting behind it, which then gets the next sync."""
    path = tmp_path / "w.db"
    async with HookedIO() as io:
        adb = await open_users(io, path)
        base, base_wal = adb.log_syncs, io.wal_syncs
        io.hold_syncs = True
        results: list[str] = []

        async def writer(name: str, scope: anyio.CancelScope) -> None:
            with scope:
                async with adb.transaction() as tx:
                    await tx.insert("users", {"name": name})
                results.append(name)

        first, second = anyio.CancelScope(), anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, "Ada", first)
            await passes_until(lambda: adb.commits == 2)  # committed, waits for its sync
            tg.start_soon(writer, "Bob", second)
            await passes_until(lambda: adb.commits == 3)  # committed, waits for that sync
            assert len(io.held) == 1 and adb.log_syncs - base == 1
            first.cancel()
            await passes_until(lambda: first.cancelled_caught)
            assert io.release_syncs() == 1
        assert results == ["Bob"] and not second.cancelled_caught
        assert adb.log_syncs - base == 2 == io.wal_syncs - base_wal
        assert adb.db.log_synced == adb.db.log_end
        assert [r[2] for r in await adb.scan("users")] == ["Ada", "Bob"]
        adb.close()
    check, rows = sqlite_rows(path, "SELECT name FROM users ORDER BY id")
    assert (check, rows) == ("ok", [("Ada",), ("Bob",)])


test_cancel_while_waiting_for_the_sync_asyncio, test_cancel_while_waiting_for_the_sync_trio = (
    on_every_loop(cancel_while_waiting_for_the_sync)
)


# -- many writers --------------------------------------------------------------------


async def group_commit(tmp_path: Path) -> None:
    """64 tasks, one row each: all committed, and while the first commit's sync runs (held
    until the last task is inside its block) the others pile up behind it and share the
    next sync, so the log is synced at most three times for 64 commits."""
    path = tmp_path / "w.db"
    async with HookedIO() as io:
        adb = await open_users(io, path)
        base_syncs, base_wal_syncs, base_commits = adb.log_syncs, io.wal_syncs, adb.commits
        io.hold_syncs = True
        entered = 0

        async def writer(i: int) -> None:
            nonlocal entered
            async with adb.transaction() as tx:
                entered += 1
                if entered == TASKS:  # every other task has committed by now
                    assert len(io.held) == 1 and adb.commits - base_commits == TASKS - 1
                    io.release_syncs()
                await tx.insert("users", {"name": f"user {i}", "age": i})

        async with anyio.create_task_group() as tg:
            for i in range(TASKS):
                tg.start_soon(writer, i)
        commits = adb.commits - base_commits
        syncs = adb.log_syncs - base_syncs
        assert commits == TASKS
        assert syncs == io.wal_syncs - base_wal_syncs  # counted where the syscall goes
        assert 2 <= syncs <= 3 < commits
        assert adb.db.log_synced == adb.db.log_end
        assert await adb.count("users") == TASKS
        adb.close()
    check, rows = sqlite_rows(path, "SELECT count(*), sum(age), count(DISTINCT name) FROM users")
    assert check == "ok"
    assert rows == [(TASKS, sum(range(TASKS)), TASKS)]


test_group_commit_asyncio, test_group_commit_trio = on_every_loop(group_commit)


async def loop_never_blocked(tmp_path: Path) -> None:
    """While 64 transactions queue for the lock, another task keeps running: it sees every
    count of commits from 0 to 64 go by (each commit's write is a real wait, during which
    the loop runs it), so no transaction holds the loop while the others wait."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        base = adb.commits
        seen: set[int] = set()
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                seen.add(adb.commits - base)
                ticks += 1
                await anyio.sleep(0)

        async def writer(i: int) -> None:
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": f"user {i}"})

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with anyio.create_task_group() as writers:
                for i in range(TASKS):
                    writers.start_soon(writer, i)
            done = True
        assert set(range(TASKS)) <= seen
        assert ticks >= TASKS
        assert adb.commits - base == TASKS
        assert adb.log_syncs <= adb.commits
        adb.close()
    check, rows = sqlite_rows(path, "SELECT count(*) FROM users")
    assert (check, rows) == ("ok", [(TASKS,)])


test_loop_never_blocked_asyncio, test_loop_never_blocked_trio = on_every_loop(loop_never_blocked)


async def checkpoint_in_turn(tmp_path: Path) -> None:
    """`checkpoint()` takes its turn among the transactions instead of failing busy."""
    path = tmp_path / "w.db"
    async with AsyncFileIO() as io:
        adb = await open_users(io, path)
        copied: list[int] = []

        async def writer(i: int) -> None:
            async with adb.transaction() as tx:
                await tx.insert("users", {"name": f"user {i}"})

        async def checkpointer() -> None:
            copied.append(await adb.checkpoint())

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(writer, i)
                if i == 3:
                    tg.start_soon(checkpointer)
        assert copied and copied[0] > 0
        assert await adb.count("users") == 8
        adb.close()
    assert os.path.getsize(str(path) + "-wal") > 0 or copied
    assert sqlite_rows(path, "SELECT count(*) FROM users") == ("ok", [(8,)])


test_checkpoint_in_turn_asyncio, test_checkpoint_in_turn_trio = on_every_loop(checkpoint_in_turn)
