"""Buffered binary files: CPython's buffered reader, writer and random-access file, with every
system call turned into a completion and every call into an explicit state machine.

Theory of operation:
- `BufferedFile` is the object callers hold. Its state and the rules it keeps (CPython's
  names, the simulated raw stream, checkpoints and rollback) are `BufferState`
  (`core.files.buffer_state`); its calls are state machines in `buffered_reads`,
  `buffered_writes` and `buffered_random_access`. Each method returns an operation.
- The hot calls first try, when no other call holds the file, the part of CPython's
  algorithm that needs no I/O (a read inside the read-ahead, a write that fits in the
  buffer, a seek inside it or with nothing to flush): it runs right away, here, the same code
  CPython runs, and the call is `Ready`, built without a state machine. A read of whole
  blocks with nothing buffered submits its one raw read at once; if that does not finish
  inline, a `BufferedRead` call adopts it, holding the file's turn from then on.
- Deliberate differences from CPython 3.11: `read1` flushes pending writes first (CPython
  reads from the raw position and returns stale bytes); `seek` supports whence 0, 1 and 2
  (not SEEK_DATA/SEEK_HOLE).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from core.completion import Completion
from core.files.buffer_state import BufferState
from core.files.buffered_random_access import (
    BufferedClose,
    BufferedFsync,
    BufferedSeek,
    BufferedTruncate,
)
from core.files.buffered_reads import (
    BufferedPeek,
    BufferedRead,
    BufferedRead1,
    BufferedReadInto,
    BufferedReadline,
    BufferedReadlines,
)
from core.files.buffered_writes import BufferedFlush, BufferedWrite, BufferedWritelines
from core.files.call import FileCall, Ready
from core.files.errors import closed_file
from core.files.support import size_arg
from core.io.backend import Buffer

__all__ = ["BufferedFile"]


class BufferedFile(BufferState):
    """The state of one open binary file, and its calls as operations.

    Each I/O method returns an operation (run it with `core.block` or `bridge.drive`); `tell()`
    needs no I/O and answers at once. Errors are CPython's: `ClosedFileError` (a `ValueError`)
    on a closed file, `UnsupportedFileOperation` (an `io.UnsupportedOperation`) for a call the
    mode forbids, `TypeError`/`ValueError` for bad arguments, `FileOSError` (an `OSError`) with
    `EINVAL` for a negative position; a failed I/O raises its `CompletionError`.
    """

    __slots__ = ()

    # -- what callers see ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or a rollback had to close the file)."""
        return self._closed

    def tell(self) -> int:
        """The current position. Raises `ClosedFileError` if closed."""
        if self._closed:
            raise closed_file("I/O operation on closed file")
        return self._raw_tell() - self._raw_offset()

    def read(self, size: int | None = -1) -> FileCall[bytes]:
        """Read up to `size` bytes (all to the end if negative or None)."""
        # `size_arg` inline for the common int: this is the hottest call of the files.
        n = size if type(size) is int else size_arg(size, "read length must be non-negative or -1")
        if n < -1:
            raise ValueError("read length must be non-negative or -1")
        if self.lock.holder is None and self.readable and not self._closed and n >= 0:
            pos = self._pos
            read_end = self._read_end
            if read_end != -1 and n <= read_end - pos:  # CPython's read_fast
                self._pos = pos + n
                return Ready(bytes(self._buf[pos : pos + n]))
            # Nothing buffered: no read-ahead left (`read_end` -1 or at `pos`), nothing to
            # write, and the raw stream at the position (`_raw_offset() == 0`, inline).
            if (
                n > 0
                and n % self.buffer_size == 0
                and read_end in (-1, pos)
                and self._write_end == -1
                and (read_end == -1 or self._raw_pos < 0 or self._raw_pos == pos)
            ):
                return self._read_blocks(n)
        return BufferedRead(self, n)

    def _read_blocks(self, n: int) -> FileCall[bytes]:
        """`read(n)` of whole blocks with nothing buffered: one raw read that becomes the
        result (CPython's `_read_generic` takes the same path). It asks for bytes
        (`Completion.new_read_bytes`): the backend reads where it likes and hands them over,
        with no zeroed buffer of ours to fill and copy. When it finishes inline and in full,
        the call is complete; otherwise a `BufferedRead` call takes over, already holding
        the lock and waiting on that read."""
        fd_pos = self._fd_pos
        if self.writable:
            self._abs_pos = fd_pos  # the (empty) flush-and-rewind re-reads the position
        c = Completion.new_read_bytes(n)
        self.file.pread(fd_pos, c)
        if c.succeeded():
            data = c.read_bytes()
            if len(data) == n:
                # `_finish_read(c)` inline.
                self._fd_pos = fd_pos + n
                if self._abs_pos != -1:
                    self._abs_pos += n
                self._pos = self._raw_pos = self._read_end = 0
                return Ready(data)
        return BufferedRead.adopt(self, n, c)

    def read1(self, size: int | None = -1) -> FileCall[bytes]:
        """Read up to `size` bytes with at most one raw read (buffered bytes first)."""
        n = -1 if size is None else operator.index(size)
        if self.lock.holder is None and self.readable and not self._closed:
            have = self._readahead()
            if n == 0 or have > 0:
                n = min(have, self.buffer_size if n < 0 else n)
                pos = self._pos
                self._pos = pos + n
                return Ready(bytes(self._buf[pos : pos + n]))
        return BufferedRead1(self, n)

    def readinto(self, buffer: Buffer) -> FileCall[int]:
        """Read into `buffer`; the result is the count."""
        return BufferedReadInto(self, buffer)

    def peek(self, size: int = 0) -> FileCall[bytes]:
        """The buffered bytes at the position (filling the buffer if empty), not consumed."""
        return BufferedPeek(self)

    def readline(self, size: int | None = -1) -> FileCall[bytes]:
        """Read one line, up to `size` bytes if that is not negative."""
        limit = -1 if size is None else operator.index(size)
        if self.lock.holder is None and self.readable and not self._closed:
            # The first part of CPython's `_buffered_readline`: a line inside the read-ahead.
            pos = self._pos
            n = self._read_end - pos if self._read_end != -1 else 0
            if 0 <= limit < n:
                n = limit
            buf = self._buf
            end = buf.find(b"\n", pos, pos + n)
            if end >= 0:
                self._pos = end + 1
                return Ready(bytes(buf[pos : end + 1]))
            if n == limit:
                self._pos = pos + n
                return Ready(bytes(buf[pos : pos + n]))
        return BufferedReadline(self, limit)

    def readlines(self, hint: int | None = -1) -> FileCall[list[bytes]]:
        """Read lines until the end, or until their total length reaches `hint` (if > 0)."""
        return BufferedReadlines(self, -1 if hint is None else operator.index(hint))

    def write(self, data: Buffer) -> FileCall[int]:
        """Write `data` (buffered); the result is its length."""
        if (
            self.lock.holder is None
            and self.writable
            and not self._closed
            and (type(data) is bytes or type(data) is bytearray)
        ):
            # CPython's fast path: the data fits in the buffer.
            valid_read = self.readable and self._read_end != -1
            valid_write = self._write_end != -1
            pos = self._pos if valid_read or valid_write else 0
            size = len(data)
            if size <= self.buffer_size - pos:
                if not valid_read and not valid_write:
                    self._raw_pos = 0
                self._buf[pos : pos + size] = data
                if not valid_write or self._write_pos > pos:
                    self._write_pos = pos
                self._adjust_position(pos + size)
                self._write_end = max(self._write_end, self._pos)
                return Ready(size)
        return BufferedWrite(self, data)

    def writelines(self, lines: Iterable[Buffer]) -> FileCall[None]:
        """Write each of `lines`."""
        return BufferedWritelines(self, lines)

    def flush(self) -> FileCall[None]:
        """Write pending data to the file (no fsync)."""
        return BufferedFlush(self)

    def seek(self, offset: int, whence: int = 0) -> FileCall[int]:
        """Move the position; the result is the new absolute position."""
        if self.lock.holder is None and not self._closed and whence in (0, 1, 2):
            target = operator.index(offset)
            moved = self._seek_in_buffer(target, whence)
            if moved is not None:
                return Ready(moved)
            if not self._dirty():  # the flush would write nothing
                if self.writable:
                    self._reset_write()
                return Ready(self._seek_raw(target, whence))
        return BufferedSeek(self, offset, whence)

    def truncate(self, size: int | None = None) -> FileCall[int]:
        """Flush, then set the file's size to `size` (the position if None); the result is
        the new size. The position does not move."""
        return BufferedTruncate(self, size)

    def fsync(self) -> FileCall[None]:
        """Flush, then make everything written durable (`File.sync`)."""
        return BufferedFsync(self)

    def close(self) -> FileCall[None]:
        """Flush and close; closing a closed file does nothing. The file is closed even if
        the flush fails (its error is raised after closing)."""
        return BufferedClose(self)

    def __repr__(self) -> str:
        return f"<BufferedFile name={self.name!r} mode={self.mode!r}>"
