"""Helpers for the storage tests: databases written by sqlite3, copies of them in memory
backends, a real-file backend that defers every read, and a re-entrancy checking driver."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core import IO, Completion, Done, block
from core.io import IOBackend, MemoryIO, MemoryYieldIO, OpenFlags, UnixIO, UringIO
from core.io.unix import UnixFile, open_flags_to_os
from core.ops import WriteBuffers
from core.storage import Database

T = TypeVar("T")

PAGE_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
ENCODINGS = ("UTF-8", "UTF-16le", "UTF-16be")


def make_db(
    path: Path,
    script: Iterable[str | tuple[str, Sequence[Any]] | tuple[str, list[Sequence[Any]], bool]],
    *,
    page_size: int = 4096,
    encoding: str | None = None,
    journal_mode: str | None = None,
    reserved: int = 0,
) -> Path:
    """Create `path` with sqlite3: set page size/encoding, then run the script.

    Script items: a SQL string; `(sql, params)`; or `(sql, rows, True)` for executemany.
    """
    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    try:
        con.execute(f"PRAGMA page_size={page_size}")
        if encoding is not None:
            con.execute(f"PRAGMA encoding='{encoding}'")
        if journal_mode is not None:
            con.execute(f"PRAGMA journal_mode={journal_mode}")
        for item in script:
            if isinstance(item, str):
                con.execute(item)
            elif len(item) == 3:
                con.executemany(item[0], item[1])
            else:
                con.execute(item[0], item[1])
        con.commit()
    finally:
        con.close()
    if reserved:
        set_reserved_bytes(path, reserved)
    return path


def set_reserved_bytes(path: Path, reserved: int) -> None:
    """Give an existing database `reserved` bytes per page and rewrite it (VACUUM).

    Python's sqlite3 module has no file-control call, so this goes to the same SQLite
    library through ctypes: `sqlite3_file_control(SQLITE_FCNTL_RESERVE_BYTES)`.
    """
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no SQLite shared library found for ctypes")
    lib = ctypes.CDLL(name)
    handle = ctypes.c_void_p()
    assert lib.sqlite3_open(str(path).encode(), ctypes.byref(handle)) == 0
    try:
        value = ctypes.c_int(reserved)
        rc = lib.sqlite3_file_control(handle, b"main", 38, ctypes.byref(value))
        assert rc == 0, f"SQLITE_FCNTL_RESERVE_BYTES failed with {rc}"
        assert lib.sqlite3_exec(handle, b"VACUUM", None, None, None) == 0
    finally:
        lib.sqlite3_close(handle)


def sqlite_rows(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows sqlite3 returns for `sql` on `path` (opened read-only)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def copy_into(io: MemoryIO, src: Path, name: str) -> None:
    """Copy the file `src` (and its -wal if any) into the memory backend as `name`."""
    for suffix in ("", "-wal"):
        source = Path(str(src) + suffix)
        if not source.exists():
            continue
        f = io.open_file(name + suffix, OpenFlags.CREATE)
        block(WriteBuffers(f, 0, [source.read_bytes()], sync=False), io)
        f.close()


def open_db(io: IOBackend, path: str | Path, **kwargs: Any) -> Database:
    """`Database.open` run to completion with `block`."""
    return block(Database.open(io, os.fspath(path), **kwargs), io)


class DeferredFile(UnixFile):
    """A real file whose reads wait for the backend's next `step()` (it has an `fd`, so
    locking works as on `UnixIO`)."""

    def pread(self, pos: int, c: Completion) -> Completion:
        self._check_open("pread")
        backend = self._backend
        assert isinstance(backend, DeferredUnixIO)
        backend.queue.append((self, pos, c))
        return c


class DeferredUnixIO(UnixIO):
    """`UnixIO` with every read deferred to `step()`, first in, first out."""

    needs_stepping = True

    def __init__(self) -> None:
        super().__init__()
        self.queue: deque[tuple[DeferredFile, int, Completion]] = deque()

    def open_file(self, path: Any, flags: OpenFlags = OpenFlags.NONE) -> UnixFile:
        name = os.fspath(path)
        if not os.path.exists(name) and OpenFlags.CREATE not in flags:
            return super().open_file(name, flags)  # raises the ENOENT error
        fd = os.open(name, open_flags_to_os(flags), 0o644)
        file = DeferredFile(self, name, fd, OpenFlags.READ_ONLY in flags)
        self._open_files.add(file)
        return file

    def step(self) -> int:
        batch = list(self.queue)
        self.queue.clear()
        for file, pos, c in batch:
            if not c.finished():
                UnixFile.pread(file, pos, c)
        return len(batch)


def drive_checked(op: Any, io: IOBackend, *, max_steps: int = 1_000_000) -> Any:
    """Run `op` like `block`, but before each wait step it once more and check that it
    yields the same unfinished completion (re-entry must not redo or skip anything).
    Returns the value and leaves the number of yields in `drive_checked.yields`."""
    yields = 0
    for _ in range(max_steps):
        result = op.step()
        if type(result) is Done:
            drive_checked.yields = yields  # type: ignore[attr-defined]
            return result.value
        assert isinstance(result, IO)
        c = result.completion
        if not c.finished():
            again = op.step()
            assert isinstance(again, IO) and again.completion is c, (
                f"re-entry before the completion finished yielded {again!r}, not {result!r}"
            )
            yields += 1
            io.wait_for_completion(c)
    raise AssertionError(f"operation did not finish within {max_steps} steps")


def backends_for(tmp_path: Path, db_path: Path) -> list[tuple[str, IOBackend, str]]:
    """(name, backend, path) triples to run the same checks on: real files through
    `UnixIO` and (where the kernel allows it) `UringIO`, and a copy in a `MemoryYieldIO`
    (every I/O deferred)."""
    memory = MemoryYieldIO()
    copy_into(memory, db_path, "/db")
    out: list[tuple[str, IOBackend, str]] = [("unix", UnixIO(), str(db_path))]
    if UringIO.available():
        out.append(("uring", UringIO(), str(db_path)))
    return [*out, ("memory-yield", memory, "/db")]
