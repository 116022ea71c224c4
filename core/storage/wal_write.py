"""Writing a write-ahead log: the frames of a commit, appended durably, and the checkpoint
that copies the log into the database file and resets it (Turso `wal.rs`: `append_frame`,
`checkpoint`; SQLite `wal.c`: `walWriteToLog`, `walCheckpoint`; sqlite.org/walformat.html).

Theory of operation:
- `WalAppender` knows the log's state as of its last commit: the header (and whether it
  still has to be written), the next frame number, the running checksum after the last
  commit frame, and the `WalSnapshot` a reader would build from the file. `prepare()`
  turns a commit's pages into the bytes of its frames, where they go and the state after
  them, and changes nothing; `commit(prepared)` adopts that state, and is called only
  once `AppendCommit` has made the frames durable. A failed append adopts nothing.
- Frames go right after the last commit frame. Whatever lies beyond it (an uncommitted
  or torn tail left by a crash or a failed append) is overwritten; readers stop at the
  new commit frame, because the frame after it no longer continues the checksum chain.
  After an append failed, rescan the log (`WalScan`) and build the next appender from
  that snapshot: a failed sync leaves it unknown whether the frames landed, and if they
  did, readers may already have seen them as committed.
- A new or reset log gets a new header: checkpoint sequence 0 (or the previous one + 1),
  salt1 one more than the previous header's (or from a seed when there is none), salt2 a
  hash of salt1 and the sequence. Nothing here is random: the simulator replays the same
  bytes from the same calls. The header says the host's byte order for checksums, as
  SQLite writes it (0x377f0682 on little-endian hosts).
- `AppendCommit`: for a new log, write the header and sync it before any frame is written
  (a header that may not be durable must never have frames after it), then write all
  frames with one `pwrite` and sync; `Done(snapshot)` only after that sync finished. A
  crash at any point leaves the log as before the commit or as after it: the commit frame
  is the last one written, and without it (or with any byte of the commit missing, which
  the checksum chain catches) the commit is not there.
- `Checkpoint`: sync the log (a log SQLite wrote may not be synced yet), copy the latest
  committed frame of every page up to the database size into the database file, reading
  the log in runs of nearby frames and writing runs of consecutive pages with one
  `pwritev`, a batch of about a megabyte at a time; truncate the database file to its
  size in pages and sync it; only then truncate the log to 0 bytes and sync. Until that
  truncation the log holds every page, so a crash anywhere leaves the same content, and
  running the checkpoint again is harmless. The next commit writes a new header
  (`WalAppender.reset()`).
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError, ErrorKind
from core.io.backend import Buffer, File
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult
from core.storage.errors import CorruptDatabaseError
from core.storage.wal import (
    WAL_FRAME_HEADER_SIZE,
    WAL_HEADER_SIZE,
    WAL_MAGIC_BE,
    WAL_MAGIC_LE,
    WAL_VERSION,
    WalHeader,
    WalSnapshot,
)
from core.storage.wal_checksum import wal_checksum

__all__ = ["DEFAULT_BATCH_BYTES", "AppendCommit", "Checkpoint", "PreparedCommit", "WalAppender"]

_MASK: Final = 0xFFFFFFFF
_HOST_BIG_ENDIAN: Final = sys.byteorder == "big"

_header_struct: Final = struct.Struct(">IIIIII")
_frame_start: Final = struct.Struct(">II")  # page number, database size (commit frames only)
_four_words: Final = struct.Struct(">IIII")
_pair_be: Final = struct.Struct(">II")
_pair_le: Final = struct.Struct("<II")

DEFAULT_BATCH_BYTES: Final = 1 << 20
"""About how much of the log a checkpoint reads and holds at once."""
_GAP_FRAMES: Final = 4
"""A checkpoint reads over up to this many unneeded frames rather than start another read."""
_IOV_PAGES: Final = 128
"""At most this many pages in one `pwritev` (IOV_MAX is 1024 on Linux)."""


def _mix(value: int) -> int:
    """A 32-bit integer hash (two rounds of multiply and xor-shift)."""
    value &= _MASK
    value = ((value ^ (value >> 16)) * 0x045D9F3B) & _MASK
    value = ((value ^ (value >> 16)) * 0x045D9F3B) & _MASK
    return value ^ (value >> 16)


def _salt2(salt1: int, checkpoint_seq: int) -> int:
    return _mix(salt1 * 0x9E3779B1 + checkpoint_seq)


def _frame_offset(frame: int, page_size: int) -> int:
    return WAL_HEADER_SIZE + (frame - 1) * (WAL_FRAME_HEADER_SIZE + page_size)


@dataclass(frozen=True, slots=True, init=False)
class PreparedCommit:
    """The bytes of one commit and the log's state once they are durable."""

    header: bytes | None
    """The 32-byte WAL header to write (and sync) at offset 0 before any frame, for a new
    or reset log; None when appending to the log as it is."""
    frames: bytes
    """The frames, back to back; the last one is the commit frame."""
    offset: int
    """Where `frames` go in the WAL file."""
    first_frame: int
    """The number (1-based) of the first frame."""
    base_checksum: tuple[int, int]
    """The running checksum the frames continue from."""
    snapshot: WalSnapshot
    """The log after this commit, as `WalScan` would read it (`file_size` as far as the
    appender knows the file: a tail it never scanned may make the file longer)."""

    def __init__(
        self,
        header: bytes | None,
        frames: bytes,
        offset: int,
        first_frame: int,
        base_checksum: tuple[int, int],
        snapshot: WalSnapshot,
    ) -> None:
        # Written out: compiled, a native constructor (see `WalSnapshot.__init__`).
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "first_frame", first_frame)
        object.__setattr__(self, "base_checksum", base_checksum)
        object.__setattr__(self, "snapshot", snapshot)

    @property
    def end(self) -> int:
        """The file offset just past the commit frame."""
        return self.offset + len(self.frames)


class WalAppender:
    """The writer's view of one WAL: builds commits (`prepare`) and adopts them (`commit`).

    Build it with `from_snapshot` (an existing log, as `WalScan` read it) or `new_log` (no
    log yet, or one being reset); `reset()` after a checkpoint emptied the log.
    """

    __slots__ = ("_pending_header", "header", "page_size", "snapshot")

    def __init__(
        self,
        page_size: int,
        header: WalHeader,
        snapshot: WalSnapshot,
        pending_header: bytes | None,
    ) -> None:
        """Prefer the class methods. `snapshot` is the log as committed so far (with
        `pending_header`, the log before the new header: frames start again at 1)."""
        if header.page_size != page_size:
            raise ValueError(f"WAL page size {header.page_size} is not the database's {page_size}")
        self.page_size = page_size
        self.header = header
        """The header of the log the next commit continues (or starts)."""
        self.snapshot = snapshot
        """The log as of the last commit."""
        self._pending_header = pending_header

    @classmethod
    def from_snapshot(cls, snapshot: WalSnapshot, page_size: int, *, seed: int = 0) -> WalAppender:
        """Continue the log `snapshot` describes, after its last commit frame; a log without
        a valid header (missing, empty, or a torn header with no frame after it) starts
        anew with salts from `seed`.

        Raises `ValueError` if the log's page size is not `page_size`.
        """
        header = snapshot.header
        if header is None:
            return cls.new_log(page_size, seed=seed, file_size=snapshot.file_size)
        return cls(page_size, header, snapshot, None)

    @classmethod
    def new_log(
        cls,
        page_size: int,
        *,
        previous: WalHeader | None = None,
        checkpoint_seq: int = 0,
        seed: int = 0,
        big_endian: bool | None = None,
        file_size: int = 0,
    ) -> WalAppender:
        """A log that starts with a new header at the next commit.

        After `previous` (the header of the log being reset): its checkpoint sequence + 1
        and salt1 + 1; without one, `checkpoint_seq` and a salt1 drawn from `seed`.
        `big_endian` chooses the checksum byte order (default: the host's, as SQLite does).
        `file_size` is the WAL file's current size (0 once a checkpoint truncated it).

        Raises `ValueError` for a page size SQLite does not allow.
        """
        if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
            raise ValueError(f"bad page size {page_size}")
        if previous is not None:
            checkpoint_seq = (previous.checkpoint_seq + 1) & _MASK
            salt1 = (previous.salt1 + 1) & _MASK
        else:
            checkpoint_seq &= _MASK
            salt1 = _mix(seed)
        salt2 = _salt2(salt1, checkpoint_seq)
        big = _HOST_BIG_ENDIAN if big_endian is None else big_endian
        magic = WAL_MAGIC_BE if big else WAL_MAGIC_LE
        start = _header_struct.pack(magic, WAL_VERSION, page_size, checkpoint_seq, salt1, salt2)
        checksum = wal_checksum(start, 0, 24, 0, 0, big)
        data = start + _pair_be.pack(*checksum)
        header = WalHeader(big, page_size, checkpoint_seq, salt1, salt2, checksum)
        empty = WalSnapshot(None, {}, 0, 0, (0, 0), file_size)
        return cls(page_size, header, empty, data)

    def reset(self) -> WalAppender:
        """The appender for this log once a checkpoint truncated it: a new header (next
        checkpoint sequence, next salt1) at the next commit."""
        return WalAppender.new_log(
            self.page_size, previous=self.header, big_endian=self.header.big_endian
        )

    @property
    def next_frame(self) -> int:
        """The number of the next commit's first frame."""
        return self.snapshot.max_frame + 1

    @property
    def checksum(self) -> tuple[int, int]:
        """The running checksum the next frame continues."""
        if self._pending_header is not None:
            return self.header.checksum
        return self.snapshot.checksum

    @property
    def needs_header(self) -> bool:
        """True while the next commit has to write the header first."""
        return self._pending_header is not None

    def prepare(self, pages: Sequence[tuple[int, bytes]], db_size: int) -> PreparedCommit:
        """The frames of a commit of `pages` (page number, page image) leaving the database
        `db_size` pages long, and the log's state after them; changes nothing.

        Raises `ValueError` for no pages, a page number outside 1..`db_size`, the same
        page twice, or an image that is not one page long.
        """
        if not pages:
            raise ValueError("a commit needs at least one page")
        if not 1 <= db_size <= _MASK:
            raise ValueError(f"bad database size {db_size}")
        page_size = self.page_size
        header = self.header
        big = header.big_endian
        pair = _pair_be if big else _pair_le
        salt1 = header.salt1
        salt2 = header.salt2
        first = self.next_frame
        base = self.checksum
        s0, s1 = base
        last = len(pages) - 1
        # The frames' pieces, joined once at the end: the images are copied only there.
        parts: list[bytes] = []
        frames = dict(self.snapshot.frames)
        for index, (number, image) in enumerate(pages):
            if not 1 <= number <= db_size:
                raise ValueError(f"page {number} is outside the database's {db_size} pages")
            if len(image) != page_size:
                raise ValueError(f"page {number} is {len(image)} bytes, not {page_size}")
            if frames.get(number, 0) >= first:
                raise ValueError(f"page {number} appears twice in one commit")
            frames[number] = first + index
            start = _frame_start.pack(number, db_size if index == last else 0)
            a, b = pair.unpack(start)
            s0 = (s0 + a + s1) & _MASK
            s1 = (s1 + b + s0) & _MASK
            s0, s1 = wal_checksum(image, 0, page_size, s0, s1, big)
            parts.append(start)
            parts.append(_four_words.pack(salt1, salt2, s0, s1))
            parts.append(image)
        data = b"".join(parts)
        offset = _frame_offset(first, page_size)
        end = offset + len(data)
        snapshot = WalSnapshot(
            header,
            frames,
            first + last,
            db_size,
            (s0, s1),
            max(self.snapshot.file_size, end),
        )
        return PreparedCommit(self._pending_header, data, offset, first, base, snapshot)

    def commit(self, prepared: PreparedCommit) -> None:
        """Adopt `prepared` once `AppendCommit` wrote it durably.

        Raises `ValueError` if it was not prepared from this appender's current state.
        """
        if (
            prepared.first_frame != self.next_frame
            or prepared.base_checksum != self.checksum
            or (
                prepared.snapshot.header is not self.header
                and prepared.snapshot.header != self.header
            )
            or prepared.header != self._pending_header
        ):
            raise ValueError("this commit was not prepared from the appender's current state")
        self.snapshot = prepared.snapshot
        self._pending_header = None


class AppendState(enum.Enum):
    """The states of an append: header written, header synced, frames written, synced."""

    START = "start"
    HEADER_WRITTEN = "header written"
    HEADER_SYNCED = "header synced"
    FRAMES_WRITTEN = "frames written"
    FRAMES_SYNCED = "frames synced"


class AppendCommit(Machine[WalSnapshot]):
    """Write a `PreparedCommit` to the WAL `file` durably; `Done(snapshot after it)`.

    A new log's header is written and synced before any frame. With `sync=False` the
    frames are not synced: `Done` once written (a later sync of the log makes them
    durable; see `SyncLog` in `commit.py`). A write that lands fewer
    bytes than submitted fails with `ErrorKind.SHORT_WRITE`. Raises the first failed
    write's or sync's `CompletionError` (nothing is adopted; see the module on what to do
    next), and `StateMachineError` if stepped after it finished or failed.
    """

    __slots__ = ("_completion", "_expected", "_offset", "_state", "_sync", "file", "prepared")

    def __init__(self, file: File, prepared: PreparedCommit, *, sync: bool = True) -> None:
        super().__init__()
        self.file = file
        self.prepared = prepared
        self._sync = sync
        self._state = AppendState.START
        self._completion: Completion | None = None
        self._expected = 0
        self._offset = 0

    def _advance(self) -> TransitionResult[WalSnapshot]:
        match self._state:
            case AppendState.START:
                header = self.prepared.header
                if header is None:
                    return self._write_frames()
                self._state = AppendState.HEADER_WRITTEN
                return self._write(0, header)
            case AppendState.HEADER_WRITTEN:
                self._result()
                self._state = AppendState.HEADER_SYNCED
                return self._submit(self.file.sync(self._new(Completion.new_sync())))
            case AppendState.HEADER_SYNCED:
                self._result()
                return self._write_frames()
            case AppendState.FRAMES_WRITTEN:
                self._result()
                if not self._sync:
                    return Done(self.prepared.snapshot)  # durable after a later sync
                self._state = AppendState.FRAMES_SYNCED
                return self._submit(self.file.sync(self._new(Completion.new_sync())))
            case AppendState.FRAMES_SYNCED:
                self._result()
                return Done(self.prepared.snapshot)

    def _write_frames(self) -> TransitionResult[WalSnapshot]:
        self._state = AppendState.FRAMES_WRITTEN
        return self._write(self.prepared.offset, self.prepared.frames)

    def _write(self, offset: int, data: bytes) -> TransitionResult[WalSnapshot]:
        self._offset = offset
        self._expected = len(data)
        c = self._new(Completion.new_write(self._check_count))
        return self._submit(self.file.pwrite(offset, data, c))

    def _new(self, c: Completion) -> Completion:
        self._completion = c
        return c

    @staticmethod
    def _submit(c: Completion) -> TransitionResult[WalSnapshot]:
        return Continue if c.finished() else IO(c)

    def _result(self) -> None:
        c = self._completion
        assert c is not None
        c.result()  # raises the completion's error, if any

    def _check_count(self, outcome: int | CompletionError) -> CompletionError | None:
        if isinstance(outcome, int) and outcome != self._expected:
            return CompletionError(
                ErrorKind.SHORT_WRITE,
                "WAL write landed fewer bytes than submitted",
                path=self.file.path,
                offset=self._offset,
                expected=self._expected,
                actual=outcome,
            )
        return None


class CheckpointState(enum.Enum):
    """The states of a checkpoint, in order; READING and WRITING repeat per batch."""

    START = "start"
    LOG_SYNCED = "log synced"
    READING = "reading"
    WRITING = "writing"
    DB_TRUNCATED = "database truncated"
    DB_SYNCED = "database synced"
    LOG_TRUNCATED = "log truncated"
    LOG_RESET = "log reset"


_Run = tuple[int, int, list[tuple[int, int]]]
"""One read of the log: first frame, frame count, and the (frame, page) pairs it serves."""


@mypyc_attr(allow_interpreted_subclasses=True)
class Checkpoint(Machine[int]):
    """Copy the committed content of the WAL into the database file, then empty the WAL;
    `Done(pages copied)`.

    `snapshot` is the log as last read (`WalScan`) or written (`AppendCommit`). Raises a
    failed I/O's `CompletionError` (a short read or write is `SHORT_READ`/`SHORT_WRITE`),
    `CorruptDatabaseError` if a frame no longer holds the page the snapshot says (the log
    changed since), and `StateMachineError` if stepped after it finished or failed. A
    checkpoint that failed changed no content: run it again.
    """

    __slots__ = (
        "_batches",
        "_buffers",
        "_completion",
        "_copied",
        "_expected",
        "_state",
        "batch_bytes",
        "db_file",
        "page_size",
        "snapshot",
        "wal_file",
    )

    def __init__(
        self,
        db_file: File,
        wal_file: File,
        snapshot: WalSnapshot,
        page_size: int,
        *,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        """`batch_bytes` bounds how much of the log is read (and held) before its pages
        are written; at least one frame is."""
        header = snapshot.header
        if header is not None and header.page_size != page_size:
            raise ValueError(f"WAL page size {header.page_size} is not the database's {page_size}")
        super().__init__()
        self.batch_bytes = batch_bytes
        self.db_file = db_file
        self.wal_file = wal_file
        self.snapshot = snapshot
        self.page_size = page_size
        self._state = CheckpointState.START
        self._completion: Completion | None = None
        self._batches: list[list[_Run]] = []
        self._buffers: list[tuple[_Run, bytearray]] = []
        self._expected = 0
        self._copied = 0

    def _advance(self) -> TransitionResult[int]:
        match self._state:
            case CheckpointState.START:
                if self.snapshot.max_frame == 0:  # nothing committed: only reset the log
                    self._state = CheckpointState.LOG_TRUNCATED
                    return self._submit(self.wal_file.truncate(0, self._new_trunc()))
                self._state = CheckpointState.LOG_SYNCED
                return self._submit(self.wal_file.sync(self._new_sync()))
            case CheckpointState.LOG_SYNCED:
                self._result()
                self._batches = self._plan()
                self._batches.reverse()  # popped from the end, first batch first
                return self._next_batch()
            case CheckpointState.READING:
                self._result()
                return self._write_batch()
            case CheckpointState.WRITING:
                self._result()
                self._buffers = []
                return self._next_batch()
            case CheckpointState.DB_TRUNCATED:
                self._result()
                self._state = CheckpointState.DB_SYNCED
                return self._submit(self.db_file.sync(self._new_sync()))
            case CheckpointState.DB_SYNCED:
                self._result()
                self._state = CheckpointState.LOG_TRUNCATED
                return self._submit(self.wal_file.truncate(0, self._new_trunc()))
            case CheckpointState.LOG_TRUNCATED:
                self._result()
                self._state = CheckpointState.LOG_RESET
                return self._submit(self.wal_file.sync(self._new_sync()))
            case CheckpointState.LOG_RESET:
                self._result()
                return Done(self._copied)

    def _plan(self) -> list[list[_Run]]:
        """The reads, grouped into batches of at most `batch_bytes` (or one frame): runs of
        frames in log order, each crossing at most `_GAP_FRAMES` unneeded frames at a time."""
        snapshot = self.snapshot
        db_size = snapshot.db_size
        wanted = sorted((frame, page) for page, frame in snapshot.frames.items() if page <= db_size)
        frame_size = WAL_FRAME_HEADER_SIZE + self.page_size
        limit = max(1, self.batch_bytes // frame_size)
        batches: list[list[_Run]] = []
        batch: list[_Run] = []
        batch_frames = 0
        run: list[tuple[int, int]] = []
        for frame, page in wanted:
            if run and (
                frame - run[-1][0] > _GAP_FRAMES + 1 or frame - run[0][0] >= limit - batch_frames
            ):
                batch.append((run[0][0], run[-1][0] - run[0][0] + 1, run))
                batch_frames += run[-1][0] - run[0][0] + 1
                run = []
                if batch_frames >= limit:
                    batches.append(batch)
                    batch = []
                    batch_frames = 0
            run.append((frame, page))
        if run:
            batch.append((run[0][0], run[-1][0] - run[0][0] + 1, run))
        if batch:
            batches.append(batch)
        return batches

    def _next_batch(self) -> TransitionResult[int]:
        if not self._batches:
            self._state = CheckpointState.DB_TRUNCATED
            size = self.snapshot.db_size * self.page_size
            return self._submit(self.db_file.truncate(size, self._new_trunc()))
        batch = self._batches.pop()
        frame_size = WAL_FRAME_HEADER_SIZE + self.page_size
        group = CompletionGroup(self._check_total_read)
        reads: list[tuple[int, Completion]] = []
        self._buffers = []
        self._expected = 0
        for run in batch:
            first, count, _ = run
            buffer = bytearray(count * frame_size)
            c = Completion.new_read(buffer)
            group.add(c)  # every child linked before any is submitted
            reads.append((_frame_offset(first, self.page_size), c))
            self._buffers.append((run, buffer))
            self._expected += len(buffer)
        c = self._new(group.build())
        self._state = CheckpointState.READING
        try:
            for offset, read in reads:
                self.wal_file.pread(offset, read)
        except BaseException:
            group.cancel()
            raise
        return self._submit(c)

    def _write_batch(self) -> TransitionResult[int]:
        header = self.snapshot.header
        assert header is not None
        page_size = self.page_size
        frame_size = WAL_FRAME_HEADER_SIZE + page_size
        pages: list[tuple[int, memoryview]] = []
        for (first, _, served), buffer in self._buffers:
            view = memoryview(buffer)
            for frame, page in served:
                at = (frame - first) * frame_size
                number, _, salt1, salt2 = _four_words.unpack_from(buffer, at)
                if number != page or (salt1, salt2) != (header.salt1, header.salt2):
                    raise CorruptDatabaseError(
                        f"WAL frame {frame} no longer holds page {page}: the log changed "
                        "since it was read",
                        path=self.wal_file.path,
                    )
                pages.append((page, view[at + WAL_FRAME_HEADER_SIZE : at + frame_size]))
        pages.sort(key=_page_number)
        # Runs of consecutive page numbers, one pwritev each.
        writes: list[tuple[int, list[Buffer]]] = []
        for page, data in pages:
            if writes:
                start, parts = writes[-1]
                if page == start + len(parts) and len(parts) < _IOV_PAGES:
                    parts.append(data)
                    continue
            writes.append((page, [data]))
        group = CompletionGroup(self._check_total_write)
        submits: list[tuple[int, list[Buffer], Completion]] = []
        for start, parts in writes:
            part = Completion.new_write()
            group.add(part)
            submits.append(((start - 1) * page_size, parts, part))
        self._expected = len(pages) * page_size
        self._copied += len(pages)
        c = self._new(group.build())
        self._state = CheckpointState.WRITING
        try:
            for offset, parts, part in submits:
                self.db_file.pwritev(offset, parts, part)
        except BaseException:
            group.cancel()
            raise
        return self._submit(c)

    def _new_sync(self) -> Completion:
        return self._new(Completion.new_sync())

    def _new_trunc(self) -> Completion:
        return self._new(Completion.new_trunc())

    def _new(self, c: Completion) -> Completion:
        self._completion = c
        return c

    @staticmethod
    def _submit(c: Completion) -> TransitionResult[int]:
        return Continue if c.finished() else IO(c)

    def _result(self) -> None:
        c = self._completion
        assert c is not None
        c.result()  # raises the completion's error, if any

    def _check_total_read(self, outcome: int | CompletionError) -> CompletionError | None:
        if isinstance(outcome, int) and outcome != self._expected:
            return CompletionError(
                ErrorKind.SHORT_READ,
                "the WAL ended before its committed frames",
                path=self.wal_file.path,
                expected=self._expected,
                actual=outcome,
            )
        return None

    def _check_total_write(self, outcome: int | CompletionError) -> CompletionError | None:
        if isinstance(outcome, int) and outcome != self._expected:
            return CompletionError(
                ErrorKind.SHORT_WRITE,
                "database writes landed fewer bytes than submitted",
                path=self.db_file.path,
                expected=self._expected,
                actual=outcome,
            )
        return None

    def _finalize(self) -> None:
        self._buffers = []
        self._batches = []


def _page_number(entry: tuple[int, memoryview]) -> int:
    return entry[0]
