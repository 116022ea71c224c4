"""How many Python calls one I/O costs, from the caller down to the syscall and back.

Counted with `sys.setprofile` ('call' events: Python functions, generator and coroutine
resumptions; builtins do not count), so the figures are deterministic. Each test fails if a
count grows past its budget; lower a budget when a change makes the path shorter. A
compiled build (`core.COMPILED`) makes fewer calls still: its functions are not Python
frames.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import bridge
import core
from bridge import AsyncFileIO, drive
from core import block
from core.io import OpenFlags, UnixIO
from core.ops import ReadRange
from core.storage import Database

# Plain Python; before the calls were trimmed: 20, 15, 63; then 20, 14, 58. The single-row
# commit (begin, insert, commit): 217 before its check of the -wal size was trimmed.
BUDGET_FILE_READ = 12
BUDGET_DRIVE_READ_RANGE = 15
BUDGET_DB_GET = 61
# (db.get: 57, then 59: a rowid is found on each page by `btree.rowid_position`, a native
# loop compiled, and one call more interpreted, around `bisect`.)
# A read that waits in the io_uring ring, counting only `core` and `bridge` (the loop's own
# calls vary with how many passes the wait takes); before the calls were trimmed: 61, then
# 55; 57 since `drive` hands a read that waits to `bridge._drive_asyncio` (a coroutine
# more, which lets `bridge._drive` compile); 62 since a read that takes bytes lands in a
# spare buffer of the ring's (three calls more here, C calls compiled: the read saves a
# zeroed buffer, the ctypes object for its address and a copy); 66 since the interpreted
# drive hands its bookkeeping around a wait to compiled helpers (`AsyncioWaiter.wait_on`,
# `PassBudget.charge` and `after_wait`: calls here, fewer interpreted lines compiled), and
# the commonest wait is `bridge._drive`'s own, around the interpreted `wait_woken`; 67
# since the ring's pass state is forgotten by a method `close()` shares (`_end_pass`).
BUDGET_RING_READ = 67
BUDGET_SINGLE_ROW_COMMIT = 219
# (One more per read since a read's `buffer` is a property, which lets `UnixIO` hand over
# the bytes `pread` returns instead of copying out of a buffer: 10, 13, 59, 57 and 215
# before; and one more for `AsyncFile.pread`, which asks `Completion.takes_bytes` first, to
# read a hit into its scratch buffer. Compiled, these are C calls and none of these grow.)
OURS = tuple(str(Path(package.__file__).parent) for package in (core, bridge))


class Calls(Counter[str]):
    """A profile function counting 'call' events by file and function. Install it with
    `sys.setprofile` directly around the measured code (a helper would count itself).
    With `only`, it counts only functions of files under those directories."""

    def __init__(self, only: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.only = only

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if self.only and not code.co_filename.startswith(self.only):
                return
            self[f"{Path(code.co_filename).name}:{code.co_name}"] += 1


def report(what: str, calls: Counter[str], budget: int) -> int:
    total = calls.total()
    print(f"{what}: {total} Python calls (budget {budget}, compiled={core.COMPILED})")
    for name, n in calls.most_common():
        print(f"  {n:3d} {name}")
    return total


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 64)
    return str(path)


@pytest.mark.asyncio
async def test_bridge_open_read(data_file: str) -> None:
    async with bridge.open(data_file, "rb") as f:

        async def one() -> object:
            await f.seek(0)
            data = await f.read(4096)
            assert len(data) == 4096
            await f.seek(0)
            return data

        await one()
        await f.seek(0)
        calls = Calls()
        sys.setprofile(calls)
        try:
            data = await f.read(4096)
        finally:
            sys.setprofile(None)
        assert data == (bytes(range(256)) * 16)
    total = report("await f.read(4096)", calls, BUDGET_FILE_READ)
    assert total <= BUDGET_FILE_READ


@pytest.mark.asyncio
@pytest.mark.usefixtures("whole_pass")
async def test_drive_read_range(data_file: str) -> None:
    io = AsyncFileIO(engine="threads")
    try:
        f = io.open_file(data_file, OpenFlags.READ_ONLY)
        try:
            await drive(ReadRange(f, 4096, 4096), io)  # warm the page cache
            calls = Calls()
            sys.setprofile(calls)
            try:
                data = await drive(ReadRange(f, 4096, 4096), io)
            finally:
                sys.setprofile(None)
            assert data == bytes(range(256)) * 16
        finally:
            f.close()
    finally:
        io.close()
    total = report("await drive(ReadRange(...), io)", calls, BUDGET_DRIVE_READ_RANGE)
    assert total <= BUDGET_DRIVE_READ_RANGE


@pytest.mark.asyncio
async def test_drive_read_waiting_in_the_ring(tmp_path: Path) -> None:
    # The cold read's path: submitted, sent with the pass's enter, in the kernel until data
    # arrives (a FIFO nobody has written to yet), then the eventfd wakes the loop, the
    # entry is reaped and the completion finished.
    if not AsyncFileIO.uring_available():
        pytest.skip("no io_uring here")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = asyncio.get_running_loop()
    async with AsyncFileIO(engine="uring", nowait=False) as io:
        f = io.open_file(fifo)  # read-write: the FIFO never reports end of file
        engine = io._uring
        assert engine is not None

        def write_once_sent(enters: int) -> None:
            if engine.enters > enters:  # the read is in the kernel
                os.write(f.fd, b"x" * 4096)
            else:
                loop.call_soon(write_once_sent, enters)

        for _ in range(2):  # the first sets the ring up
            loop.call_soon(write_once_sent, engine.enters)
            calls = Calls(only=OURS)
            sys.setprofile(calls)
            try:
                data = await drive(ReadRange(f, 0, 4096), io)
            finally:
                sys.setprofile(None)
            assert data == b"x" * 4096
        f.close()
    total = report("await drive(ReadRange(...)) waiting in the ring", calls, BUDGET_RING_READ)
    assert total <= BUDGET_RING_READ


def test_block_db_get(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)")
        c.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 50) for i in range(5000)])
    c.close()
    io = UnixIO()
    try:
        db = block(Database.open(io, path), io)
        assert block(db.get("t", 1234), io) is not None
        calls = Calls()
        sys.setprofile(calls)
        try:
            row = block(db.get("t", 1234), io)
        finally:
            sys.setprofile(None)
        assert row is not None
        db.close()
    finally:
        io.close()
    total = report("block(db.get(...), UnixIO())", calls, BUDGET_DB_GET)
    assert total <= BUDGET_DB_GET


def _commit_one_row(tmp_path: Path) -> Calls:
    """The calls of one begin, insert and durable commit on a table of a few rows."""
    io = UnixIO()
    try:
        db = block(Database.open(io, tmp_path / "db", writable=True), io)
        tx = block(db.begin(), io)
        block(tx.execute_ddl("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)"), io)
        block(tx.commit(), io)
        for i in range(3):  # the table's pages cached, its plans made
            tx = block(db.begin(), io)
            block(tx.insert("t", {"name": f"row {i}"}), io)
            block(tx.commit(), io)
        calls = Calls()
        sys.setprofile(calls)
        try:
            tx = block(db.begin(), io)
            block(tx.insert("t", {"name": "one more"}), io)
            block(tx.commit(), io)
        finally:
            sys.setprofile(None)
        db.close()
    finally:
        io.close()
    return calls


def test_block_single_row_commit(tmp_path: Path) -> None:
    calls = _commit_one_row(tmp_path)
    total = report("begin, insert, commit (UnixIO)", calls, BUDGET_SINGLE_ROW_COMMIT)
    if core.COMPILED:
        # Compiled, the whole cycle is native code: an interpreted function on the way
        # (a dataclass's generated `__init__`, an enum property) costs a frame per call.
        assert total == 0
    assert total <= BUDGET_SINGLE_ROW_COMMIT
