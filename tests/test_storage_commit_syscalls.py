"""The system calls of a durable single-row commit on `UnixIO`, counted: the same writes
and syncs as sqlite3 in WAL mode with `synchronous=FULL` (the frame written, the log
synced once), and the checks of the file's state that the missing -shm index makes
necessary, each made once (the -wal file's identity and size from one `stat`)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import block
from core.io import UnixIO
from core.storage import Database

_COUNTED = ("fsync", "fdatasync", "pwritev", "preadv", "stat", "fstat", "open", "access")


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    for name in _COUNTED:
        real = getattr(os, name)

        def counted(*args: Any, _real: Callable[..., Any] = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(os, name, counted)
    return calls


def test_a_durable_single_row_commit_writes_once_and_syncs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = UnixIO()
    db = block(Database.open(io, tmp_path / "db", writable=True), io)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)"), io)
    block(tx.commit(), io)
    for i in range(3):  # a table of a few rows, its pages cached
        tx = block(db.begin(), io)
        block(tx.insert("t", {"name": f"row {i}"}), io)
        block(tx.commit(), io)
    calls = _counting(monkeypatch)
    commits = 5
    for i in range(commits):
        tx = block(db.begin(), io)
        block(tx.insert("t", {"name": f"more {i}"}), io)
        block(tx.commit(), io)
    monkeypatch.undo()
    db.close()
    per_commit = {name: count / commits for name, count in calls.items()}
    assert per_commit == {
        "pwritev": 1,  # the frame (the commit frame), header and page in one write
        "fsync": 1,  # the log, once
        "preadv": 2,  # the database header and the log's header, to see other writers
        "stat": 1,  # whether the -wal file was replaced, once under the write lock, and
        # the log's size with it (no fstat: under the lock no one else can change it)
        "access": 1,  # whether a SQLite connection holds the -shm (none: no open)
    }
