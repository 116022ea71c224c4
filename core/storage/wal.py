"""Reading a write-ahead log without its -shm index (Turso `wal.rs` and
`sqlite3_ondisk.rs` `BuildSharedWal`; sqlite.org/walformat.html, fileformat2.html 4).

Theory of operation:
- The WAL is a 32-byte header, then frames: a 24-byte frame header (page number, database
  size after commit or 0, the header's two salts, a running checksum) and one page. A
  frame counts only if its salts match the header and its checksum continues the chain
  from the header's; a frame with a non-zero size field is a commit. Readers use the
  latest frame of each page at or before the last commit; frames after it belong to a
  transaction in progress (or a crash) and are ignored.
- Without the -shm wal-index (which needs SQLite's shared-memory locking protocol) the
  index is rebuilt by reading the log: `WalScan` is that read, as a state machine that
  reads the header, then frames in chunks of a quarter megabyte (yielding between
  chunks, since checksumming one takes milliseconds), and produces an immutable
  `WalSnapshot`. Given the previous snapshot of the same log generation (same salts) it
  resumes after the last commit instead of starting over.
- The end of the valid log is where SQLite puts it: a salt mismatch (frames left over from
  an older generation) or the first frame whose checksum does not continue the chain.
  Frames after that one may still chain on from its stored checksum up to a commit: a
  power loss during an unsynced append leaves exactly that when the disk wrote some
  sectors of the append and not others (a frame's header and the next frames landed,
  a sector of its page did not). Nothing in the file tells that apart from damage to a
  commit that was synced, so, as SQLite does, the log ends at the bad frame.
- A header with a bad magic number, version or checksum, or a page size other than the
  database's, is a `CorruptDatabaseError` when frames follow it; a log shorter than one
  frame is empty.
- Checksums: pairs of 32-bit words, `s0 += a + s1; s1 += b + s0` modulo 2**32, the words
  big-endian when the magic is 0x377f0683 and little-endian when it is 0x377f0682
  (`wal_checksum.py` computes them a page at a time on packed integers).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from core.completion import Completion
from core.errors import InternalError
from core.io.backend import File
from core.storage.errors import CorruptDatabaseError
from core.storage.wal_checksum import wal_checksum

__all__ = [
    "WAL_FRAME_HEADER_SIZE",
    "WAL_HEADER_SIZE",
    "WAL_MAGIC_BE",
    "WAL_MAGIC_LE",
    "WAL_VERSION",
    "WalHeader",
    "WalScan",
    "WalSnapshot",
    "parse_wal_header",
    "wal_checksum",
    "wal_header_bytes",
]

WAL_HEADER_SIZE: Final = 32
WAL_FRAME_HEADER_SIZE: Final = 24
WAL_MAGIC_LE: Final = 0x377F0682
WAL_MAGIC_BE: Final = 0x377F0683
WAL_VERSION: Final = 3007000
_CHUNK_BYTES: Final = 256 * 1024

_header_struct: Final = struct.Struct(">IIIIIIII")
_frame_struct: Final = struct.Struct(">IIIIII")


@dataclass(frozen=True, slots=True)
class WalHeader:
    """The WAL file header."""

    big_endian: bool
    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    checksum: tuple[int, int]


def parse_wal_header(data: bytes | bytearray, *, path: str | None = None) -> WalHeader:
    """Interpret and verify the 32-byte WAL header.

    Raises `CorruptDatabaseError` for a bad magic number, version, page size or checksum.
    """
    if len(data) < WAL_HEADER_SIZE:
        raise CorruptDatabaseError(f"WAL header is {len(data)} bytes, not 32", path=path)
    magic, version, page_size, seq, salt1, salt2, c1, c2 = _header_struct.unpack_from(data)
    if magic not in (WAL_MAGIC_LE, WAL_MAGIC_BE):
        raise CorruptDatabaseError(f"WAL header has a bad magic number {magic:#x}", path=path)
    if version != WAL_VERSION:
        raise CorruptDatabaseError(f"WAL header has unknown version {version}", path=path)
    if page_size == 1:
        page_size = 65536
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise CorruptDatabaseError(f"WAL header has a bad page size {page_size}", path=path)
    big_endian = magic == WAL_MAGIC_BE
    if wal_checksum(data, 0, 24, 0, 0, big_endian) != (c1, c2):
        raise CorruptDatabaseError("WAL header checksum does not match", path=path)
    return WalHeader(big_endian, page_size, seq, salt1, salt2, (c1, c2))


_last_packed: tuple[WalHeader, bytes] | None = None
"""The header `wal_header_bytes` packed last, and its bytes: every transaction compares
the log's header with the one it knows, which stays the same object while the log does."""


def wal_header_bytes(header: WalHeader) -> bytes:
    """The 32 bytes of `header` as they stand in the file (`parse_wal_header` inverted)."""
    global _last_packed
    last = _last_packed
    if last is not None and last[0] is header:  # immutable: the same object, the same bytes
        return last[1]
    data = _header_struct.pack(
        WAL_MAGIC_BE if header.big_endian else WAL_MAGIC_LE,
        WAL_VERSION,
        header.page_size,  # as SQLite writes it (65536 too; a 1 there reads as 65536)
        header.checkpoint_seq,
        header.salt1,
        header.salt2,
        *header.checksum,
    )
    _last_packed = (header, data)
    return data


@dataclass(frozen=True, slots=True, init=False)
class WalSnapshot:
    """What the WAL held at the last commit when it was read."""

    header: WalHeader | None
    """None for an empty (or missing) log."""
    frames: dict[int, int]
    """Page number -> the frame (1-based) holding its latest committed version."""
    max_frame: int
    """The last commit frame; 0 if nothing is committed."""
    db_size: int
    """The database size in pages after that commit; 0 if nothing is committed."""
    checksum: tuple[int, int]
    """The running checksum after `max_frame` (where a resumed scan continues)."""
    file_size: int
    """The WAL file's size when it was read (a change means the log moved on)."""

    def __init__(
        self,
        header: WalHeader | None,
        frames: dict[int, int],
        max_frame: int,
        db_size: int,
        checksum: tuple[int, int],
        file_size: int,
    ) -> None:
        # Written out rather than generated: compiled, this is a native constructor (a
        # commit builds one), where the generated one is interpreted and 30x slower.
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "max_frame", max_frame)
        object.__setattr__(self, "db_size", db_size)
        object.__setattr__(self, "checksum", checksum)
        object.__setattr__(self, "file_size", file_size)


EMPTY_SNAPSHOT: Final = WalSnapshot(None, {}, 0, 0, (0, 0), 0)


class _ScanState(enum.Enum):
    START = "start"
    HEADER = "header"
    FRAMES = "frames"
    NEXT_CHUNK = "next chunk"
    DONE = "done"


class WalScan:
    """Reads a WAL into a `WalSnapshot`; `advance()` returns a completion to wait for, or None
    when `snapshot` is ready.

    Raises `CorruptDatabaseError` as described in the module, and the read completions'
    `CompletionError`s.
    """

    __slots__ = (
        "_buffer",
        "_checksum",
        "_chunk_frames",
        "_commit_checksum",
        "_completion",
        "_db_size",
        "_frames",
        "_max_frame",
        "_next",
        "_pending",
        "_size",
        "_state",
        "file",
        "header",
        "page_size",
        "path",
        "previous",
        "snapshot",
    )

    def __init__(self, file: File, page_size: int, previous: WalSnapshot | None) -> None:
        self.file = file
        self.path = file.path
        self.page_size = page_size
        self.previous = previous
        self.header: WalHeader | None = None
        self.snapshot: WalSnapshot = EMPTY_SNAPSHOT
        self._state = _ScanState.START
        self._buffer = bytearray()
        self._completion: Completion | None = None
        self._size = 0
        self._next = 1
        self._chunk_frames = 0
        self._frames: dict[int, int] = {}
        self._pending: dict[int, int] = {}
        self._max_frame = 0
        self._db_size = 0
        self._checksum = (0, 0)
        self._commit_checksum = (0, 0)

    def advance(self) -> Completion | None:
        """Advance; None when `snapshot` holds the result."""
        while True:
            match self._state:
                case _ScanState.START:
                    self._size = self.file.size()
                    if self._size < WAL_HEADER_SIZE:
                        self.snapshot = WalSnapshot(None, {}, 0, 0, (0, 0), self._size)
                        self._state = _ScanState.DONE
                        return None
                    header_read = self._read(0, WAL_HEADER_SIZE)
                    self._state = _ScanState.HEADER
                    if not header_read.finished():
                        return header_read
                case _ScanState.HEADER:
                    if not self._start_frames():
                        return None
                    chunk = self._read_chunk()
                    if chunk is None:
                        self._finish()
                        return None
                    self._state = _ScanState.FRAMES
                    if not chunk.finished():
                        return chunk
                case _ScanState.FRAMES:
                    if self._parse_chunk():
                        # Checksumming a chunk takes milliseconds: let the loop run.
                        self._state = _ScanState.NEXT_CHUNK
                        return Completion.new_yield()
                    self._finish()
                    return None
                case _ScanState.NEXT_CHUNK:
                    chunk = self._read_chunk()
                    if chunk is None:
                        self._finish()
                        return None
                    self._state = _ScanState.FRAMES
                    if not chunk.finished():
                        return chunk
                case _ScanState.DONE:
                    return None
                case _:
                    raise InternalError(f"WalScan in state {self._state}")

    def _read(self, offset: int, length: int) -> Completion:
        self._buffer = bytearray(length)
        c = Completion.new_read(self._buffer)
        self._completion = c
        self.file.pread(offset, c)
        return c

    def _result(self) -> int:
        c = self._completion
        assert c is not None
        return c.result()

    def _frame_size(self) -> int:
        return WAL_FRAME_HEADER_SIZE + self.page_size

    def _start_frames(self) -> bool:
        count = self._result()
        complete_frames = (self._size - WAL_HEADER_SIZE) // self._frame_size()
        try:
            header = parse_wal_header(self._buffer[:count], path=self.path)
        except CorruptDatabaseError:
            if complete_frames == 0:
                self.snapshot = WalSnapshot(None, {}, 0, 0, (0, 0), self._size)
                self._state = _ScanState.DONE
                return False
            raise
        if header.page_size != self.page_size:
            raise CorruptDatabaseError(
                f"WAL page size {header.page_size} differs from the database's {self.page_size}",
                path=self.path,
            )
        self.header = header
        previous = self.previous
        if (
            previous is not None
            and previous.header is not None
            and (previous.header.salt1, previous.header.salt2, previous.header.checkpoint_seq)
            == (header.salt1, header.salt2, header.checkpoint_seq)
            and self._size >= previous.file_size
        ):
            self._frames = dict(previous.frames)
            self._max_frame = previous.max_frame
            self._db_size = previous.db_size
            self._checksum = previous.checksum
            self._next = previous.max_frame + 1
        else:
            self._checksum = header.checksum
            self._next = 1
        self._commit_checksum = self._checksum
        return True

    def _read_chunk(self) -> Completion | None:
        frame_size = self._frame_size()
        total = (self._size - WAL_HEADER_SIZE) // frame_size
        if self._next > total:
            return None
        count = min(total - self._next + 1, max(1, _CHUNK_BYTES // frame_size))
        self._chunk_frames = count
        offset = WAL_HEADER_SIZE + (self._next - 1) * frame_size
        return self._read(offset, count * frame_size)

    def _parse_chunk(self) -> bool:
        """Check the frames just read; True if the log may go on after them."""
        header = self.header
        assert header is not None
        got = self._result()
        data = self._buffer
        frame_size = self._frame_size()
        usable = min(self._chunk_frames, got // frame_size)
        big = header.big_endian
        salts = (header.salt1, header.salt2)
        s0, s1 = self._checksum
        for k in range(usable):
            number = self._next + k
            base = k * frame_size
            page, commit, salt1, salt2, c1, c2 = _frame_struct.unpack_from(data, base)
            if (salt1, salt2) != salts or page == 0:
                return self._end_of_log()
            t0, t1 = wal_checksum(data, base, base + 8, s0, s1, big)
            t0, t1 = wal_checksum(
                data, base + WAL_FRAME_HEADER_SIZE, base + frame_size, t0, t1, big
            )
            if (t0, t1) != (c1, c2):
                return self._end_of_log()
            s0, s1 = c1, c2
            self._pending[page] = number
            if commit:
                self._frames.update(self._pending)
                self._pending.clear()
                self._max_frame = number
                self._db_size = commit
                self._commit_checksum = (s0, s1)
        self._checksum = (s0, s1)
        self._next += usable
        return usable == self._chunk_frames

    def _end_of_log(self) -> bool:
        return False

    def _finish(self) -> None:
        self.snapshot = WalSnapshot(
            self.header,
            self._frames,
            self._max_frame,
            self._db_size,
            self._commit_checksum,
            self._size,
        )
        self._buffer = bytearray()
        self._state = _ScanState.DONE
