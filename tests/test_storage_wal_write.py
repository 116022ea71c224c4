"""Writing the WAL: frames appended by `AppendCommit` and copied back by `Checkpoint`.

- The checksum computed on packed integers equals SQLite's word loop, for every length.
- Commits built from the pages of databases sqlite3 wrote (each version of one database
  file, grown, updated, shrunk by VACUUM, grown again) are read by sqlite3 (rows, page
  count, `PRAGMA integrity_check`) and by our reader exactly as sqlite3 wrote them; a
  rescan of the log gives the snapshot the appender predicted; a log SQLite wrote is
  continued; a torn or uncommitted tail is overwritten; a checkpoint leaves the database
  file byte for byte what sqlite3 wrote, and the next commit starts a new log generation.
- Under the simulator, a power loss at every step of an append or a checkpoint, keeping
  none, some or all of what was not yet synced, leaves exactly the content before or
  after (after, once the operation said Done), and writing goes on from there; injected
  I/O faults give clean errors and the same guarantee; every schedule `explore` tries
  gives the inline run's result and files.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import shutil
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import Done, block
from core.driver import Operation
from core.errors import CompletionError, IOResultError
from core.io import OpenFlags, UnixIO
from core.io.backend import File, IOBackend
from core.sim import FaultConfig, SimulatorIO, explore
from core.storage import Database
from core.storage.wal import (
    WAL_FRAME_HEADER_SIZE,
    WAL_HEADER_SIZE,
    WAL_MAGIC_BE,
    WAL_MAGIC_LE,
    WalScan,
    WalSnapshot,
    parse_wal_header,
    wal_checksum,
    wal_header_bytes,
)
from core.storage.wal_checksum import checksum_bytes, checksum_fold, checksum_loop
from core.storage.wal_write import AppendCommit, Checkpoint, PreparedCommit, WalAppender

Rows = list[tuple[Any, ...]]
HOST_BIG_ENDIAN = sys.byteorder == "big"

# -- the checksum ---------------------------------------------------------------------------


def _reference(data: bytes, s0: int, s1: int, big: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


_words = st.integers(1, 700).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n))
_u32 = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=300, deadline=None)
@given(_words, _u32, _u32, st.booleans(), st.integers(0, 16))
def test_the_fold_equals_the_loop_for_any_length(
    data: bytes, s0: int, s1: int, big: bool, pad: int
) -> None:
    padded = bytes(8 * pad) + data + b"\x01" * 8  # the range sits inside a larger buffer
    start, end = 8 * pad, 8 * pad + len(data)
    expected = _reference(data, s0, s1, big)
    assert checksum_fold(padded, start, end, s0, s1, big) == expected
    assert checksum_loop(padded, start, end, s0, s1, big) == expected
    assert checksum_bytes(padded, start, end, s0, s1, big) == expected
    assert checksum_bytes(bytearray(padded), start, end, s0, s1, big) == expected
    assert wal_checksum(padded, start, end, s0, s1, big) == expected


@pytest.mark.parametrize("page_size", [512, 1024, 4096, 65536])
def test_the_fold_equals_the_loop_on_whole_pages(page_size: int) -> None:
    rng = random.Random(page_size)
    for data in (bytes(page_size), b"\xff" * page_size, rng.randbytes(page_size)):
        for big in (False, True):
            s0, s1 = rng.getrandbits(32), rng.getrandbits(32)
            expected = _reference(data, s0, s1, big)
            assert wal_checksum(data, 0, page_size, s0, s1, big) == expected
            assert checksum_bytes(data, 0, page_size, s0, s1, big) == expected


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
@pytest.mark.parametrize("big", [False, True])
def test_a_header_goes_back_to_its_bytes(page_size: int, big: bool) -> None:
    appender = WalAppender.new_log(page_size, seed=3, checkpoint_seq=5, big_endian=big)
    prepared = appender.prepare([(1, bytes(page_size))], 1)
    assert prepared.header is not None
    assert wal_header_bytes(parse_wal_header(prepared.header)) == prepared.header


def test_a_header_is_packed_once_while_it_stays_the_same() -> None:
    # Every transaction compares the log's header with the one it knows: packing it again
    # each time was a cost per commit.
    first = WalAppender.new_log(4096, seed=3).header
    second = WalAppender.new_log(4096, seed=4).header
    packed = wal_header_bytes(first)
    assert wal_header_bytes(first) is packed
    assert wal_header_bytes(second) != packed  # another header: its own bytes
    assert wal_header_bytes(first) == packed


# -- the databases: successive versions of one file, written by sqlite3 -----------------------


@dataclasses.dataclass(frozen=True)
class Versions:
    """Successive images of one database file (each written by sqlite3 from the one
    before), and `SELECT rowid, * FROM t` of each."""

    page_size: int
    images: list[bytes]
    rows: list[Rows]

    def pages(self, k: int) -> int:
        return len(self.images[k]) // self.page_size

    def diff(self, old: bytes, k: int) -> list[tuple[int, bytes]]:
        """The pages of version `k` that differ from `old` (all pages past its end)."""
        size = self.page_size
        new = self.images[k]
        return [
            (n + 1, new[n * size : (n + 1) * size])
            for n in range(len(new) // size)
            if new[n * size : (n + 1) * size] != old[n * size : (n + 1) * size]
        ]


def _insert(first: int, last: int) -> tuple[str, list[tuple[Any, ...]]]:
    rows = [(i, f"value-{i:05d}-" * (1 + i % 6), i * 0.5) for i in range(first, last)]
    return "INSERT INTO t(id, v, n) VALUES (?, ?, ?)", rows


_STEPS: list[list[str | tuple[str, list[tuple[Any, ...]]]]] = [
    [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL)",
        "CREATE INDEX t_v ON t(v)",
        _insert(0, 300),
    ],
    [_insert(300, 1000)],
    [
        "UPDATE t SET v = v || '!' WHERE id BETWEEN 100 AND 130",
        "DELETE FROM t WHERE id BETWEEN 500 AND 540",
        _insert(1000, 1200),
    ],
    ["DELETE FROM t WHERE id % 3 != 0", "VACUUM"],
    [_insert(5000, 5600)],
]


@functools.cache
def versions(page_size: int) -> Versions:
    images: list[bytes] = []
    rows: list[Rows] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.db"
        for step in _STEPS:
            con = sqlite3.connect(path, isolation_level=None)
            con.execute(f"PRAGMA page_size={page_size}")
            con.execute("PRAGMA journal_mode=wal")
            for item in step:
                if isinstance(item, str):
                    con.execute(item)
                else:
                    con.execute("BEGIN")
                    con.executemany(*item)
                    con.execute("COMMIT")
            rows.append(con.execute("SELECT rowid, * FROM t ORDER BY rowid").fetchall())
            con.close()  # the last connection checkpoints and deletes the log
            assert not Path(f"{path}-wal").exists()
            images.append(path.read_bytes())
    return Versions(page_size, images, rows)


def test_the_versions_grow_change_and_shrink() -> None:
    v = versions(1024)
    sizes = [v.pages(k) for k in range(len(v.images))]
    assert sizes[0] < sizes[1] < sizes[2] and sizes[3] < sizes[2] and sizes[4] > sizes[3]
    assert all(image[18:20] == b"\x02\x02" for image in v.images)  # WAL mode
    assert 0 < len(v.diff(v.images[1], 2)) < sizes[2]  # some pages unchanged


# -- real files: sqlite3 and our reader read what we wrote ---------------------------------------


def _sqlite_view(db: Path, scratch: Path) -> tuple[str, Rows, int]:
    """integrity_check, the rows and the page count as sqlite3 sees a copy of `db` and its
    log (sqlite3 rebuilds the -shm by recovery, and checkpoints the copy when it closes)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    copy = scratch / "copy.db"
    shutil.copy(db, copy)
    if Path(f"{db}-wal").exists():
        shutil.copy(f"{db}-wal", f"{copy}-wal")
    con = sqlite3.connect(copy)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        rows = con.execute("SELECT rowid, * FROM t ORDER BY rowid").fetchall()
        pages = con.execute("PRAGMA page_count").fetchone()[0]
    finally:
        con.close()
    return integrity, rows, pages


def _our_rows(io: IOBackend, db: Path) -> Rows:
    database = block(Database.open(io, db), io)
    try:
        rows: Rows = block(database.scan("t"), io)
        return rows
    finally:
        database.close()


def _scan(io: IOBackend, file: File, page_size: int) -> WalSnapshot:
    scan = WalScan(file, page_size, None)
    while (c := scan.advance()) is not None:
        io.wait_for_completion(c)
    return scan.snapshot


class Writer:
    """The write side of one database file on one backend: the log, its appender, and
    the current logical image (to diff the next version against)."""

    def __init__(self, io: IOBackend, db: str, appender: WalAppender, image: bytes) -> None:
        self.io = io
        self.db = db
        self.wal = io.open_file(f"{db}-wal", OpenFlags.CREATE)
        self.appender = appender
        self.image = image

    def commit_to(self, v: Versions, k: int) -> PreparedCommit:
        prepared = self.appender.prepare(v.diff(self.image, k), v.pages(k))
        snapshot = block(AppendCommit(self.wal, prepared), self.io)
        assert snapshot is prepared.snapshot
        self.appender.commit(prepared)
        self.image = v.images[k]
        return prepared

    def checkpoint(self) -> int:
        with self.io.open_file(self.db) as db_file:
            copied: int = block(
                Checkpoint(db_file, self.wal, self.appender.snapshot, self.appender.page_size),
                self.io,
            )
        self.appender = self.appender.reset()
        return copied


def _check_real(io: UnixIO, db: Path, scratch: Path, v: Versions, k: int) -> None:
    integrity, rows, pages = _sqlite_view(db, scratch)
    assert integrity == "ok"
    assert rows == v.rows[k]
    assert pages == v.pages(k)
    assert _our_rows(io, db) == v.rows[k]


@pytest.mark.parametrize("page_size", [4096, 1024])
def test_commits_then_a_checkpoint_read_by_sqlite_and_by_us(tmp_path: Path, page_size: int) -> None:
    v = versions(page_size)
    db = tmp_path / "db"
    db.write_bytes(v.images[0])
    io = UnixIO()
    writer = Writer(io, str(db), WalAppender.new_log(page_size, seed=7), v.images[0])
    header_written = None
    for k in (1, 2, 3):
        prepared = writer.commit_to(v, k)
        if k == 1:
            assert prepared.header is not None and prepared.offset == WAL_HEADER_SIZE
            header_written = parse_wal_header(prepared.header)
        else:
            assert prepared.header is None
        assert db.read_bytes() == v.images[0]  # only the log was written
        _check_real(io, db, tmp_path / "scratch", v, k)
        # A fresh scan of the log is what the appender predicted, byte for byte.
        assert _scan(io, writer.wal, page_size) == writer.appender.snapshot
    assert header_written is not None
    assert header_written == writer.appender.header
    assert header_written.big_endian is HOST_BIG_ENDIAN
    # Version 3 is smaller: frames for pages past its end are in the log, not copied.
    stale = [p for p in writer.appender.snapshot.frames if p > v.pages(3)]
    assert stale
    copied = writer.checkpoint()
    assert copied == sum(1 for p in _pages_written(v) if p <= v.pages(3))
    assert db.read_bytes() == v.images[3]  # byte for byte what sqlite3 wrote
    assert Path(f"{db}-wal").stat().st_size == 0
    _check_real(io, db, tmp_path / "scratch", v, 3)
    # The next commit starts a new generation of the log.
    prepared = writer.commit_to(v, 4)
    assert prepared.header is not None
    header = parse_wal_header(prepared.header)
    assert header.checkpoint_seq == header_written.checkpoint_seq + 1
    assert header.salt1 == header_written.salt1 + 1 and header.salt2 != header_written.salt2
    _check_real(io, db, tmp_path / "scratch", v, 4)
    assert _scan(io, writer.wal, page_size) == writer.appender.snapshot
    writer.wal.close()
    io.close()


def _pages_written(v: Versions) -> set[int]:
    """Every page the commits 1..3 wrote."""
    pages: set[int] = set()
    image = v.images[0]
    for k in (1, 2, 3):
        pages.update(n for n, _ in v.diff(image, k))
        image = v.images[k]
    return pages


def test_the_other_byte_order_is_read_by_sqlite_and_by_us(tmp_path: Path) -> None:
    v = versions(4096)
    db = tmp_path / "db"
    db.write_bytes(v.images[0])
    io = UnixIO()
    appender = WalAppender.new_log(4096, seed=3, big_endian=not HOST_BIG_ENDIAN)
    writer = Writer(io, str(db), appender, v.images[0])
    prepared = writer.commit_to(v, 1)
    assert prepared.header is not None
    magic = WAL_MAGIC_LE if HOST_BIG_ENDIAN else WAL_MAGIC_BE
    assert struct.unpack(">I", prepared.header[:4])[0] == magic
    writer.commit_to(v, 2)
    _check_real(io, db, tmp_path / "scratch", v, 2)
    writer.wal.close()


def test_a_log_sqlite_wrote_is_continued(tmp_path: Path) -> None:
    live = tmp_path / "live.db"
    con = sqlite3.connect(live, isolation_level=None)
    con.execute("PRAGMA page_size=4096")
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n REAL)")
    for first in (0, 200):
        con.execute("BEGIN")
        con.executemany(*_insert(first, first + 200))
        con.execute("COMMIT")
    db = tmp_path / "db"
    shutil.copy(live, db)
    shutil.copy(f"{live}-wal", f"{db}-wal")
    before = con.serialize()
    con.execute("BEGIN")
    con.executemany(*_insert(400, 900))
    con.execute("UPDATE t SET v = 'changed' WHERE id < 50")
    con.execute("COMMIT")
    after = con.serialize()
    expected = con.execute("SELECT rowid, * FROM t ORDER BY rowid").fetchall()
    con.close()
    v = Versions(4096, [before, after], [[], expected])
    io = UnixIO()
    wal = io.open_file(f"{db}-wal")
    snapshot = _scan(io, wal, 4096)
    assert snapshot.header is not None
    assert snapshot.header.big_endian is HOST_BIG_ENDIAN  # SQLite writes the host's order
    magic = WAL_MAGIC_BE if HOST_BIG_ENDIAN else WAL_MAGIC_LE
    assert struct.unpack(">I", Path(f"{db}-wal").read_bytes()[:4])[0] == magic
    wal.close()
    writer = Writer(io, str(db), WalAppender.from_snapshot(snapshot, 4096), before)
    assert writer.appender.next_frame == snapshot.max_frame + 1
    writer.commit_to(v, 1)
    _check_real(io, db, tmp_path / "scratch", v, 1)
    # And our checkpoint of a log SQLite started.
    assert writer.checkpoint() > 0
    integrity, rows, _ = _sqlite_view(db, tmp_path / "scratch")
    assert (integrity, rows) == ("ok", expected)
    assert _our_rows(io, db) == expected


def test_a_torn_tail_is_overwritten_by_the_next_commit(tmp_path: Path) -> None:
    v = versions(4096)
    db = tmp_path / "db"
    db.write_bytes(v.images[0])
    io = UnixIO()
    writer = Writer(io, str(db), WalAppender.new_log(4096, seed=11), v.images[0])
    writer.commit_to(v, 1)
    wal_path = Path(f"{db}-wal")
    end = wal_path.stat().st_size
    frame_size = WAL_FRAME_HEADER_SIZE + 4096
    garbage = random.Random(5).randbytes(frame_size * 3 // 2)  # a torn write
    with open(wal_path, "ab") as f:
        f.write(garbage)
    _check_real(io, db, tmp_path / "scratch", v, 1)
    prepared = writer.commit_to(v, 2)
    assert prepared.offset == end  # over the garbage
    assert wal_path.stat().st_size == max(end + len(garbage), prepared.end)
    _check_real(io, db, tmp_path / "scratch", v, 2)
    rescanned = _scan(io, writer.wal, 4096)
    assert rescanned.max_frame == writer.appender.snapshot.max_frame
    assert rescanned.frames == writer.appender.snapshot.frames
    writer.wal.close()


def test_an_uncommitted_tail_is_overwritten_by_a_shorter_commit(tmp_path: Path) -> None:
    v = versions(1024)
    db = tmp_path / "db"
    db.write_bytes(v.images[0])
    io = UnixIO()
    writer = Writer(io, str(db), WalAppender.new_log(1024, seed=12), v.images[0])
    writer.commit_to(v, 1)
    # A transaction that never committed: every frame of a long commit but its last.
    everything = [(n, v.images[1][(n - 1) * 1024 : n * 1024]) for n in range(1, v.pages(1) + 1)]
    long = writer.appender.prepare(everything, v.pages(1))
    shorter = v.diff(v.images[1], 2)
    assert len(shorter) < len(everything) - 1
    frame_size = WAL_FRAME_HEADER_SIZE + 1024
    with open(f"{db}-wal", "r+b") as f:
        f.seek(long.offset)
        f.write(long.frames[:-frame_size])
    _check_real(io, db, tmp_path / "scratch", v, 1)
    prepared = writer.commit_to(v, 2)  # overwrites the head of that tail; the rest stays
    assert Path(f"{db}-wal").stat().st_size > prepared.end + frame_size
    _check_real(io, db, tmp_path / "scratch", v, 2)
    writer.wal.close()


def test_after_a_failed_append_a_rescan_continues_the_log(tmp_path: Path) -> None:
    """The frames of an append whose sync failed may have landed whole; the log is then
    rescanned and continued after them (as the module docstring says to)."""
    v = versions(1024)
    db = tmp_path / "db"
    db.write_bytes(v.images[0])
    io = UnixIO()
    writer = Writer(io, str(db), WalAppender.new_log(1024, seed=13), v.images[0])
    writer.commit_to(v, 1)
    unadopted = writer.appender.prepare(v.diff(v.images[1], 3), v.pages(3))
    with open(f"{db}-wal", "r+b") as f:
        f.seek(unadopted.offset)
        f.write(unadopted.frames)  # landed, but never reported done
    snapshot = _scan(io, writer.wal, 1024)
    assert snapshot == unadopted.snapshot  # readers see it committed
    writer.appender = WalAppender.from_snapshot(snapshot, 1024)
    writer.image = v.images[3]
    writer.commit_to(v, 4)
    _check_real(io, db, tmp_path / "scratch", v, 4)
    writer.wal.close()


def test_checkpoint_reads_in_batches_and_gaps(tmp_path: Path) -> None:
    v = versions(1024)
    db = tmp_path / "db"
    db.write_bytes(v.images[0])
    io = UnixIO()
    writer = Writer(io, str(db), WalAppender.new_log(1024, seed=14), v.images[0])
    for k in (1, 2, 3, 4):
        writer.commit_to(v, k)
    snapshot = writer.appender.snapshot
    with io.open_file(db) as db_file:
        op = Checkpoint(db_file, writer.wal, snapshot, 1024, batch_bytes=8 * 1048)
        batches = op._plan()
        assert len(batches) > 5
        frames = [frame for batch in batches for _, _, served in batch for frame, _ in served]
        assert frames == sorted(f for p, f in snapshot.frames.items() if p <= snapshot.db_size)
        for batch in batches:
            assert sum(count for _, count, _ in batch) <= 8
            for first, count, served in batch:
                assert served[0][0] == first and served[-1][0] == first + count - 1
        assert block(op, io) == len(frames)
    assert db.read_bytes() == v.images[4]
    _check_real(io, db, tmp_path / "scratch", v, 4)
    writer.wal.close()


# -- the appender on its own ------------------------------------------------------------------


def test_new_logs_are_deterministic_and_resets_move_the_salts() -> None:
    a = WalAppender.new_log(4096, seed=1)
    b = WalAppender.new_log(4096, seed=1)
    c = WalAppender.new_log(4096, seed=2)
    page = [(1, bytes(4096))]
    pa, pb, pc = a.prepare(page, 1), b.prepare(page, 1), c.prepare(page, 1)
    assert pa == pb and pa.header is not None and pc.header is not None
    assert (a.header.salt1, a.header.salt2) != (c.header.salt1, c.header.salt2)
    assert parse_wal_header(pa.header) == a.header
    reset = a.reset()
    assert reset.header.checkpoint_seq == a.header.checkpoint_seq + 1
    assert reset.header.salt1 == a.header.salt1 + 1
    assert reset.needs_header and reset.next_frame == 1
    again = WalAppender.new_log(4096, checkpoint_seq=9, seed=1)
    assert again.header.checkpoint_seq == 9 and again.header.salt1 == a.header.salt1
    assert again.header.salt2 != a.header.salt2


def test_prepare_changes_nothing_and_commit_refuses_a_stale_commit() -> None:
    appender = WalAppender.new_log(1024, seed=4)
    first = appender.prepare([(1, b"a" * 1024), (2, b"b" * 1024)], 2)
    assert appender.next_frame == 1 and appender.needs_header
    second = appender.prepare([(1, b"c" * 1024)], 2)
    appender.commit(first)
    assert not appender.needs_header and appender.next_frame == 3
    assert appender.snapshot == first.snapshot
    assert first.snapshot.frames == {1: 1, 2: 2} and first.snapshot.db_size == 2
    with pytest.raises(ValueError, match="not prepared"):
        appender.commit(second)
    with pytest.raises(ValueError, match="not prepared"):
        appender.commit(first)
    third = appender.prepare([(2, b"d" * 1024)], 3)
    assert third.header is None and third.first_frame == 3
    assert third.offset == WAL_HEADER_SIZE + 2 * (WAL_FRAME_HEADER_SIZE + 1024)
    assert third.snapshot.frames == {1: 1, 2: 3}
    # Frame headers: page, commit size on the last frame only, the salts.
    number, commit, salt1, salt2 = struct.unpack_from(">IIII", first.frames, 0)
    assert (number, commit, salt1, salt2) == (1, 0, appender.header.salt1, appender.header.salt2)
    assert struct.unpack_from(">II", first.frames, WAL_FRAME_HEADER_SIZE + 1024) == (2, 2)


@pytest.mark.parametrize(
    ("pages", "db_size", "message"),
    [
        ([], 1, "at least one page"),
        ([(1, bytes(1024))], 0, "database size"),
        ([(3, bytes(1024))], 2, "outside"),
        ([(0, bytes(1024))], 2, "outside"),
        ([(1, bytes(1000))], 2, "not 1024"),
        ([(1, bytes(1024)), (1, bytes(1024))], 2, "twice"),
    ],
)
def test_prepare_refuses_bad_pages(
    pages: list[tuple[int, bytes]], db_size: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WalAppender.new_log(1024).prepare(pages, db_size)


def test_page_sizes_must_agree() -> None:
    with pytest.raises(ValueError, match="bad page size"):
        WalAppender.new_log(1000)
    header = WalAppender.new_log(4096).header
    snapshot = WalSnapshot(header, {}, 0, 0, header.checksum, 32)
    with pytest.raises(ValueError, match="page size"):
        WalAppender.from_snapshot(snapshot, 1024)
    io = SimulatorIO(0, inline=1.0)
    io.create_file(DB, b"")
    io.create_file(WAL, b"")
    with pytest.raises(ValueError, match="page size"):
        Checkpoint(io.open_file(DB), io.open_file(WAL), snapshot, 1024)


# -- the simulator: crashes at every step, faults, schedules ---------------------------------

SIM_PAGE = 1024
DB = "db"
WAL = "db-wal"


def _sim_logical(io: SimulatorIO) -> bytes:
    """The database's content as a reader sees it now: the log's committed frames over
    the database file's pages."""
    db = io.file_contents(DB)
    if WAL not in io.files():
        return db
    with io.open_file(WAL, OpenFlags.READ_ONLY) as wal:
        snapshot = _scan(io, wal, SIM_PAGE)
    if snapshot.max_frame == 0:
        return db
    data = io.file_contents(WAL)
    pages = []
    for number in range(1, snapshot.db_size + 1):
        frame = snapshot.frames.get(number)
        if frame is None:
            pages.append(db[(number - 1) * SIM_PAGE : number * SIM_PAGE])
        else:
            at = WAL_HEADER_SIZE + (frame - 1) * (WAL_FRAME_HEADER_SIZE + SIM_PAGE)
            pages.append(data[at + WAL_FRAME_HEADER_SIZE : at + WAL_FRAME_HEADER_SIZE + SIM_PAGE])
    return b"".join(pages)


def _sim_appender(io: SimulatorIO) -> WalAppender:
    """What a writer starting now builds: the log rescanned."""
    if WAL not in io.files():
        return WalAppender.new_log(SIM_PAGE, seed=21)
    with io.open_file(WAL, OpenFlags.READ_ONLY) as wal:
        return WalAppender.from_snapshot(_scan(io, wal, SIM_PAGE), SIM_PAGE, seed=21)


@functools.cache
def _sim_log(upto: int) -> bytes:
    """The log after committing versions 1..`upto` over version 0."""
    v = versions(SIM_PAGE)
    io = SimulatorIO(0, inline=1.0)
    io.create_file(DB, v.images[0])
    writer = Writer(io, DB, _sim_appender(io), v.images[0])
    for k in range(1, upto + 1):
        writer.commit_to(v, k)
    return io.file_contents(WAL)


def _version_of(v: Versions, image: bytes) -> int:
    for k, candidate in enumerate(v.images):
        if candidate == image:
            return k
    raise AssertionError("the content is no version of the database")


def _drive(op: Operation[Any], io: SimulatorIO, crash_at: int | None) -> tuple[bool, int]:
    """Step `op`, executing its I/O one simulator step at a time; with `crash_at`, lose
    power after that many steps (after Done if it finished first). Returns whether it
    finished and how many steps it took."""
    steps = 0
    while True:
        result = op.step()
        if isinstance(result, Done):
            break
        c = result.completion
        while not c.finished():
            if steps == crash_at:
                io.crash()
                return False, steps
            io.step()
            steps += 1
    if crash_at is not None:
        io.crash()
    return True, steps


@dataclasses.dataclass(frozen=True)
class Start:
    """A state to append from: the database file, the log, the content it holds."""

    name: str
    db: bytes
    wal: bytes | None
    version: int
    target: int


def _starts() -> list[Start]:
    v = versions(SIM_PAGE)
    garbage = random.Random(9).randbytes(2 * (WAL_FRAME_HEADER_SIZE + SIM_PAGE) + 100)
    return [
        Start("new log", v.images[0], None, 0, 1),
        Start("append", v.images[0], _sim_log(1), 1, 2),
        Start("append, shrink", v.images[0], _sim_log(2), 2, 3),
        Start("append over a torn tail", v.images[0], _sim_log(1) + garbage, 1, 2),
        Start("empty log file", v.images[3], b"", 3, 4),
    ]


def _setup(io: SimulatorIO, start: Start) -> None:
    io.create_file(DB, start.db)
    if start.wal is not None:
        io.create_file(WAL, start.wal)


def _recover_and_reach(io: SimulatorIO, v: Versions, target: int) -> None:
    """After a crash: rescan, commit what takes the content to version `target`, and
    check that both the logical image and our reader's rows are that version."""
    image = _sim_logical(io)
    writer = Writer(io, DB, _sim_appender(io), image)
    if image != v.images[target]:
        writer.commit_to(v, target)
    writer.wal.close()
    assert _sim_logical(io) == v.images[target]
    assert _our_rows(io, Path(DB)) == v.rows[target]


@pytest.mark.parametrize("start", _starts(), ids=lambda s: s.name)
def test_a_crash_at_every_step_of_an_append_leaves_before_or_after(start: Start) -> None:
    v = versions(SIM_PAGE)

    def append(io: SimulatorIO) -> tuple[AppendCommit, PreparedCommit]:
        _setup(io, start)
        appender = _sim_appender(io)
        changed = v.diff(v.images[start.version], start.target)
        prepared = appender.prepare(changed, v.pages(start.target))
        return AppendCommit(io.open_file(WAL, OpenFlags.CREATE), prepared), prepared

    seen = {start.version: 0, start.target: 0}
    for seed in range(3):
        io = SimulatorIO(seed, inline=0.0)
        op, prepared = append(io)
        finished, total = _drive(op, io, None)
        assert finished and total == (4 if prepared.header is not None else 2)
        with io.open_file(WAL, OpenFlags.READ_ONLY) as wal:
            assert _scan(io, wal, SIM_PAGE) == prepared.snapshot
        for keep in (0.0, 0.5, 1.0):
            for crash_at in range(total + 1):
                io = SimulatorIO(seed, FaultConfig(crash_keep_unsynced=keep), inline=0.0)
                op, _ = append(io)
                finished, _ = _drive(op, io, crash_at)
                version = _version_of(v, _sim_logical(io))
                assert version in (start.version, start.target), (seed, keep, crash_at)
                if finished:
                    assert version == start.target, f"a Done commit was lost ({seed}, {keep})"
                seen[version] += 1
                _recover_and_reach(io, v, 4)
    assert seen[start.version] > 0 and seen[start.target] > 0, seen


def test_a_crash_at_every_step_of_a_checkpoint_keeps_the_content() -> None:
    v = versions(SIM_PAGE)

    def checkpoint(io: SimulatorIO) -> Checkpoint:
        io.create_file(DB, v.images[0])
        io.create_file(WAL, _sim_log(3))
        wal = io.open_file(WAL)
        snapshot = _scan(io, wal, SIM_PAGE)
        return Checkpoint(io.open_file(DB), wal, snapshot, SIM_PAGE, batch_bytes=4 * 1048)

    outcomes = {"log": 0, "file": 0}
    for seed in range(2):
        io = SimulatorIO(seed, inline=0.0)
        finished, total = _drive(checkpoint(io), io, None)
        assert finished and total > 20
        assert io.file_contents(DB) == v.images[3] and io.file_contents(WAL) == b""
        for keep in (0.0, 0.5, 1.0):
            for crash_at in range(total + 1):
                io = SimulatorIO(seed, FaultConfig(crash_keep_unsynced=keep), inline=0.0)
                finished, _ = _drive(checkpoint(io), io, crash_at)
                assert _sim_logical(io) == v.images[3], (seed, keep, crash_at)
                outcomes["file" if io.file_contents(WAL) == b"" else "log"] += 1
                if finished:
                    assert io.file_contents(WAL) == b""
                # Run it again from a rescan: the same end, whatever was left.
                with io.open_file(WAL) as wal, io.open_file(DB) as db_file:
                    block(Checkpoint(db_file, wal, _scan(io, wal, SIM_PAGE), SIM_PAGE), io)
                assert io.file_contents(DB) == v.images[3]
                if keep == 0.5:  # and the next commit starts a log that reads right
                    _recover_and_reach(io, v, 4)
    assert outcomes["log"] > 0 and outcomes["file"] > 0, outcomes


FAULTS = FaultConfig(
    submit_error=0.03,
    write_error=0.08,
    sync_error=0.08,
    truncate_error=0.08,
    read_error=0.03,
    torn_write=0.08,
    crash_keep_unsynced=0.5,
)


def test_faults_give_clean_errors_and_before_or_after() -> None:
    """Versions 1..4 committed with a checkpoint after 3, under injected write, sync,
    truncate and read faults: each failure is a clean error; the content a reader sees
    is before or after the failed operation; after a power loss it is no older than the
    last operation reported done; rescanning and retrying gets there. (The scans that
    build the appender run without faults: a short read there would only shorten the log
    a reader sees.)"""
    v = versions(SIM_PAGE)
    tally = {"ok": 0, "failed": 0, "crashed": 0}
    for seed in range(40):
        io = SimulatorIO(seed, inline=0.3, max_latency_us=200)
        io.create_file(DB, v.images[0])
        rng = random.Random(seed)
        version = 0  # what readers see now
        durable = 0  # the last version an operation reported Done
        steps: list[int | str] = [1, 2, 3, "checkpoint", 4]
        while steps:
            step = steps[0]
            if step == version:  # a failed append that landed anyway
                steps.pop(0)
                continue
            io.faults = FaultConfig()
            appender = _sim_appender(io)
            wal = io.open_file(WAL, OpenFlags.CREATE)
            db_file = io.open_file(DB)
            op: Operation[Any]
            if isinstance(step, int):
                prepared = appender.prepare(v.diff(v.images[version], step), v.pages(step))
                op = AppendCommit(wal, prepared)
                after = step
            else:
                op = Checkpoint(db_file, wal, appender.snapshot, SIM_PAGE)
                after = version
            io.faults = FAULTS
            try:
                block(op, io)
            except IOResultError as exc:
                assert isinstance(exc, CompletionError), repr(exc)
                tally["failed"] += 1
                io.run_until_idle()
                io.faults = FaultConfig()
                assert _version_of(v, _sim_logical(io)) in (version, after)
                if rng.random() < 0.5:
                    io.crash()
                    tally["crashed"] += 1
                    # A failed append may have landed and been built on; none of them
                    # was reported done, so any of them may be lost.
                    version = _version_of(v, _sim_logical(io))
                    assert durable <= version <= after, (seed, step)
                else:
                    version = _version_of(v, _sim_logical(io))
            else:
                tally["ok"] += 1
                io.faults = FaultConfig()
                version = durable = after
                assert _version_of(v, _sim_logical(io)) == version
                steps.pop(0)
            wal.close()
            db_file.close()
        assert io.file_contents(DB) == v.images[3]  # checkpointed, then version 4 in the log
        assert _our_rows(io, Path(DB)) == v.rows[4]
        io.close()
    assert tally["failed"] > 20 and tally["crashed"] > 5 and tally["ok"] > 150, tally


def _log_setup(commits: int) -> Any:
    def setup(io: SimulatorIO) -> None:
        io.create_file(DB, versions(SIM_PAGE).images[0])
        io.create_file(WAL, _sim_log(commits))

    return setup


@pytest.mark.parametrize("commits", [0, 1])
def test_an_append_passes_explore(commits: int) -> None:
    v = versions(SIM_PAGE)
    if commits:
        appender = WalAppender.from_snapshot(_scan_bytes(_sim_log(commits)), SIM_PAGE)
    else:
        appender = WalAppender.new_log(SIM_PAGE)
    prepared = appender.prepare(v.diff(v.images[commits], commits + 1), v.pages(commits + 1))
    report = explore(
        lambda io: AppendCommit(io.open_file(WAL, OpenFlags.CREATE), prepared),
        setup=_log_setup(commits) if commits else lambda io: io.create_file(DB, v.images[0]),
        seeds=4,
    )
    assert report.outcome.error is None and report.outcome.value == prepared.snapshot
    assert report.io_points == (4 if prepared.header is not None else 2)


def test_a_checkpoint_passes_explore() -> None:
    snapshot = _scan_bytes(_sim_log(3))
    report = explore(
        lambda io: Checkpoint(
            io.open_file(DB), io.open_file(WAL), snapshot, SIM_PAGE, batch_bytes=8 * 1048
        ),
        setup=_log_setup(3),
        seeds=4,
        max_points=40,
    )
    assert report.outcome.error is None and report.io_points > 10
    assert report.outcome.value == sum(1 for p in snapshot.frames if p <= snapshot.db_size)


def _scan_bytes(log: bytes) -> WalSnapshot:
    io = SimulatorIO(0, inline=1.0)
    io.create_file(WAL, log)
    with io.open_file(WAL, OpenFlags.READ_ONLY) as wal:
        return _scan(io, wal, SIM_PAGE)
