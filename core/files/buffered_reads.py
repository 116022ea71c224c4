"""The reading calls of a buffered binary file: `read`, `read1`, `readinto`, `peek`,
`readline`, `readlines` (CPython's `_bufferedreader_*` and `_buffered_readline`).

Theory of operation:
- Each call is a `BufferedCall` whose `_advance()` matches on an `Enum` state. Whatever a
  state mutates happens either before it submits an I/O and leaves the state, or after the
  I/O has finished, in the next state: stepping again while an I/O is pending returns the
  same completion.
- A read first takes what the read-ahead holds; then, in a file that can write, it writes
  the dirty range and rewinds the raw stream to the logical position (the shared
  `_flush_writes` step, in its own state so that re-entry does not take the read-ahead
  twice); then it reads. A read-only file skips that step without building it.
- Raw reads that finish inline are consumed in the same step (a loop, not a state per read),
  so a cached read costs one pass through the state machine. The hot cases that need no I/O
  at all never get here: `BufferedFile` answers them with `Ready`.
- `readinto` reads into memory of ours and copies, so an abandoned read never writes into
  the caller's buffer.
"""

from __future__ import annotations

import enum

from core.completion import Completion
from core.files.buffer_state import BufferedCall, BufferState, check_readable
from core.files.call import LinesUntilHint
from core.files.errors import closed_file
from core.files.support import READ_ALL_CHUNK, byte_view, wait
from core.io.backend import Buffer
from core.result import IO, Done
from core.state_machine import Continue, TransitionResult

__all__ = [
    "BufferedPeek",
    "BufferedRead",
    "BufferedRead1",
    "BufferedReadInto",
    "BufferedReadline",
    "BufferedReadlines",
]


class _ReadStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    BLOCKS_WAIT = "blocks wait"
    DIRECT_WAIT = "direct wait"
    FILL_WAIT = "fill wait"
    ALL_WAIT = "all wait"


class BufferedRead(BufferedCall[bytes]):
    """`read(n)`: CPython's `_bufferedreader_read_fast`, `_read_generic` and `_read_all`.
    Raw reads that finish inline are consumed in the same step (a loop, not a state per
    read), so a cached read costs one pass through the state machine."""

    __slots__ = (
        "_c",
        "_chunks",
        "_fill_start",
        "_n",
        "_out",
        "_remaining",
        "_state",
        "_want",
        "_written",
    )

    def __init__(self, bf: BufferState, n: int) -> None:
        super().__init__(bf)
        self._n = n
        self._state = _ReadStep.START
        self._out = bytearray()
        self._written = 0
        self._remaining = 0
        self._fill_start = 0
        self._want = 0
        self._chunks: list[bytes] = []
        self._c: Completion | None = None

    @classmethod
    def adopt(cls, bf: BufferState, n: int, c: Completion) -> BufferedRead:
        """A call that takes over the read of `n` bytes (a `new_read_bytes` completion)
        `BufferedFile.read` already submitted: it holds the lock from now on and its next
        step consumes `c`."""
        op = cls(bf, n)
        op._adopt(c)
        op._saved = bf._save()
        bf._reset_read()
        op._remaining = n
        op._c = c
        op._state = _ReadStep.BLOCKS_WAIT
        return op

    def _check(self) -> None:
        check_readable(self._bf, "read", "read of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _ReadStep.START:
                n = self._n
                current = bf._readahead()
                if n != -1 and n <= current:
                    pos = bf._pos
                    bf._pos = pos + n
                    return Done(bytes(bf._buf[pos : pos + n]))
                if current > 0:
                    if n == -1:
                        self._chunks.append(bytes(bf._buf[bf._pos : bf._pos + current]))
                    else:
                        self._out = bytearray(n)
                        self._out[:current] = bf._buf[bf._pos : bf._pos + current]
                    bf._pos += current
                elif n != -1:
                    self._out = bytearray(n)
                self._written = current
                self._remaining = n - current
                if bf.writable:
                    self._state = _ReadStep.FLUSH
                    return Continue
                return self._after_flush()
            case _ReadStep.BLOCKS_WAIT:
                c = self._c
                assert c is not None
                got = bf._finish_read(c)
                n = self._n
                if got == n:  # the commonest end: no copy of ours
                    bf._pos = bf._raw_pos = bf._read_end = 0  # as `_direct` leaves them
                    return Done(c.read_bytes())
                if got == 0:
                    return Done(b"")
                # Short: keep what came in the result and read the rest as `_direct` does.
                self._out = bytearray(n)
                self._out[:got] = c.read_bytes()
                self._written = got
                self._remaining = n - got
                return self._direct()
            case _ReadStep.DIRECT_WAIT:
                assert self._c is not None
                if self._direct_done(self._c):
                    return self._result()
                return self._direct()
            case _ReadStep.FILL_WAIT:
                assert self._c is not None
                if self._fill_done(self._c):
                    return self._result()
                return self._fill()
            case _ReadStep.FLUSH:
                r = self._flush_writes(True)
                if r is not None:
                    return r
                return self._after_flush()
            case _ReadStep.ALL_WAIT:
                assert self._c is not None
                if self._all_done(self._c):
                    return self._all_result()
                return self._all()

    def _after_flush(self) -> TransitionResult[bytes]:
        self._bf._reset_read()
        return self._all() if self._n == -1 else self._direct()

    # The loop of whole blocks read straight into the result.
    def _direct(self) -> TransitionResult[bytes]:
        bf = self._bf
        while True:
            r_len = bf._minus_last_block(self._remaining) if self._remaining > 0 else 0
            if r_len == 0:
                bf._pos = bf._raw_pos = bf._read_end = 0
                return self._fill()
            out = self._out
            if self._written == 0 and r_len == len(out):
                c = bf._submit_read(out)
            else:
                c = bf._submit_read(memoryview(out)[self._written : self._written + r_len])
            if not c.finished():
                self._c = c
                self._state = _ReadStep.DIRECT_WAIT
                return IO(c)
            if self._direct_done(c):
                return self._result()

    def _direct_done(self, c: Completion) -> bool:
        """Account for a direct read; True at the end of the file."""
        got = self._bf._finish_read(c)
        if got == 0:
            return True
        self._remaining -= got
        self._written += got
        return False

    # The loop that fills the buffer for the last partial block.
    def _fill(self) -> TransitionResult[bytes]:
        bf = self._bf
        while self._remaining > 0 and bf._read_end < bf.buffer_size:
            start = bf._read_end if bf._valid_read() else 0
            self._fill_start = start
            c = bf._submit_read(memoryview(bf._buf)[start:])
            if not c.finished():
                self._c = c
                self._state = _ReadStep.FILL_WAIT
                return IO(c)
            if self._fill_done(c):
                break
        return self._result()

    def _fill_done(self, c: Completion) -> bool:
        """Copy what a fill brought; True at the end of the file."""
        bf = self._bf
        got = bf._finish_read(c)
        if got == 0:
            return True
        bf._read_end = bf._raw_pos = self._fill_start + got
        take = min(self._remaining, got)
        pos = bf._pos
        self._out[self._written : self._written + take] = bf._buf[pos : pos + take]
        self._written += take
        bf._pos = pos + take
        self._remaining -= take
        return False

    # read(): everything to the end.
    def _all(self) -> TransitionResult[bytes]:
        bf = self._bf
        while True:
            # First one read of everything the size promises, plus one byte to see the end;
            # if the file grew meanwhile, go on in chunks until a short read.
            first = self._want == 0
            self._want = max(bf.file.size() - bf._fd_pos, 0) + 1 if first else READ_ALL_CHUNK
            self._out = bytearray(self._want)
            c = bf._submit_read(memoryview(self._out))
            if not c.finished():
                self._c = c
                self._state = _ReadStep.ALL_WAIT
                return IO(c)
            if self._all_done(c):
                return self._all_result()

    def _all_done(self, c: Completion) -> bool:
        got = self._bf._finish_read(c, cached=False)
        if got:
            self._chunks.append(bytes(memoryview(self._out)[:got]))
        return got < self._want

    def _all_result(self) -> Done[bytes]:
        chunks = self._chunks
        return Done(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _result(self) -> Done[bytes]:
        out, written = self._out, self._written
        return Done(bytes(out) if written == len(out) else bytes(memoryview(out)[:written]))


class _Read1Step(enum.Enum):
    START = "start"
    FLUSH = "flush"
    SUBMIT = "submit"
    WAIT = "wait"


class BufferedRead1(BufferedCall[bytes]):
    """`read1(n)`: buffered bytes if there are any, else one raw read of `n` bytes."""

    __slots__ = ("_c", "_n", "_out", "_state")

    def __init__(self, bf: BufferState, n: int) -> None:
        super().__init__(bf)
        self._n = n
        self._state = _Read1Step.START
        self._c: Completion | None = None
        self._out = bytearray()

    def _check(self) -> None:
        check_readable(self._bf, "read1", "read of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _Read1Step.START:
                n = self._n if self._n >= 0 else bf.buffer_size
                self._n = n
                if n == 0:
                    return Done(b"")
                have = bf._readahead()
                if have > 0:
                    n = min(have, n)
                    pos = bf._pos
                    bf._pos = pos + n
                    return Done(bytes(bf._buf[pos : pos + n]))
                if bf._dirty():  # CPython would read stale bytes at the raw position here
                    self._state = _Read1Step.FLUSH
                    return Continue
                self._state = _Read1Step.SUBMIT
                return Continue
            case _Read1Step.FLUSH:
                r = self._flush_writes(True)
                if r is not None:
                    return r
                self._state = _Read1Step.SUBMIT
                return Continue
            case _Read1Step.SUBMIT:
                bf._reset_read()
                self._out = bytearray(self._n)
                self._c = bf._submit_read(memoryview(self._out))
                self._state = _Read1Step.WAIT
                return wait(self._c)
            case _Read1Step.WAIT:
                assert self._c is not None
                got = bf._finish_read(self._c)
                out = self._out
                return Done(bytes(out) if got == len(out) else bytes(memoryview(out)[:got]))


class _ReadIntoStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    LOOP = "loop"
    DIRECT_WAIT = "direct wait"
    FILL_WAIT = "fill wait"


class BufferedReadInto(BufferedCall[int]):
    """`readinto(b)`: CPython's `_buffered_readinto_generic`. Raw reads go into memory of
    ours and are copied over, so an abandoned read never writes into the caller's buffer."""

    __slots__ = ("_c", "_dest", "_fill_start", "_state", "_temp", "_written")

    def __init__(self, bf: BufferState, buffer: Buffer) -> None:
        super().__init__(bf)
        self._dest = byte_view(buffer, "readinto", writable=True)
        self._state = _ReadIntoStep.START
        self._written = 0
        self._fill_start = 0
        self._temp = bytearray()
        self._c: Completion | None = None

    def _check(self) -> None:
        check_readable(self._bf, "read", "readinto of closed file")

    def _advance(self) -> TransitionResult[int]:
        bf = self._bf
        dest = self._dest
        match self._state:
            case _ReadIntoStep.START:
                n = bf._readahead()
                pos = bf._pos
                if n > 0:
                    if n >= len(dest):
                        dest[:] = bf._buf[pos : pos + len(dest)]
                        bf._pos = pos + len(dest)
                        return Done(len(dest))
                    dest[:n] = bf._buf[pos : pos + n]
                    bf._pos = pos + n
                    self._written = n
                if bf.writable:
                    self._state = _ReadIntoStep.FLUSH
                    return Continue
                return self._loop_from_empty_buffer()
            case _ReadIntoStep.FLUSH:
                r = self._flush_writes(True)
                if r is not None:
                    return r
                return self._loop_from_empty_buffer()
            case _ReadIntoStep.LOOP:
                remaining = len(dest) - self._written
                if remaining <= 0:
                    return self._result()
                if remaining > bf.buffer_size:
                    self._temp = bytearray(remaining)
                    self._c = bf._submit_read(memoryview(self._temp))
                    self._state = _ReadIntoStep.DIRECT_WAIT
                else:
                    start = bf._read_end if bf._valid_read() else 0
                    self._fill_start = start
                    self._c = bf._submit_read(memoryview(bf._buf)[start:])
                    self._state = _ReadIntoStep.FILL_WAIT
                return wait(self._c)
            case _ReadIntoStep.DIRECT_WAIT:
                assert self._c is not None
                n = bf._finish_read(self._c)
                if n == 0:
                    return self._result()
                dest[self._written : self._written + n] = memoryview(self._temp)[:n]
                self._written += n
                self._state = _ReadIntoStep.LOOP
                return Continue
            case _ReadIntoStep.FILL_WAIT:
                assert self._c is not None
                n = bf._finish_read(self._c)
                if n <= 0:
                    return self._result()
                bf._read_end = bf._raw_pos = self._fill_start + n
                n = min(n, len(dest) - self._written)
                pos = bf._pos
                dest[self._written : self._written + n] = bf._buf[pos : pos + n]
                bf._pos = pos + n
                self._written += n
                self._state = _ReadIntoStep.LOOP
                return Continue

    def _loop_from_empty_buffer(self) -> TransitionResult[int]:
        self._bf._reset_read()
        self._bf._pos = 0
        self._state = _ReadIntoStep.LOOP
        return Continue

    def _result(self) -> Done[int]:
        return Done(self._written)


class _PeekStep(enum.Enum):
    START = "start"
    WAIT = "wait"


class BufferedPeek(BufferedCall[bytes]):
    """`peek()`: the read-ahead bytes, or a freshly filled buffer; the position stays."""

    __slots__ = ("_c", "_state")

    def __init__(self, bf: BufferState) -> None:
        super().__init__(bf)
        self._state = _PeekStep.START
        self._c: Completion | None = None

    def _check(self) -> None:
        check_readable(self._bf, "peek", "peek of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _PeekStep.START:
                if bf.writable:  # nothing else happens in this state: re-entry resumes it
                    r = self._flush_writes(True)
                    if r is not None:
                        return r
                have = bf._readahead()
                if have > 0:
                    return Done(bytes(bf._buf[bf._pos : bf._read_end]))
                bf._reset_read()
                self._c = bf._submit_read(memoryview(bf._buf))
                self._state = _PeekStep.WAIT
                return wait(self._c)
            case _PeekStep.WAIT:
                assert self._c is not None
                got = bf._finish_read(self._c)
                if got > 0:
                    bf._read_end = bf._raw_pos = got
                bf._pos = 0
                return Done(bytes(bf._buf[:got]))


class _ReadlineStep(enum.Enum):
    START = "start"
    FLUSH = "flush"
    FILL = "fill"
    FILL_WAIT = "fill wait"


class BufferedReadline(BufferedCall[bytes]):
    """`readline(limit)`: CPython's `_buffered_readline`."""

    __slots__ = ("_c", "_chunks", "_limit", "_state")

    def __init__(self, bf: BufferState, limit: int) -> None:
        super().__init__(bf)
        self._limit = limit
        self._state = _ReadlineStep.START
        self._chunks: list[bytes] = []
        self._c: Completion | None = None

    def _check(self) -> None:
        if self._limit == 0 and not self._bf.readable:
            return  # IOBase.readline(0) returns b"" before it would read
        check_readable(self._bf, "read", "readline of closed file")

    def _advance(self) -> TransitionResult[bytes]:
        bf = self._bf
        match self._state:
            case _ReadlineStep.START:
                limit = self._limit
                if limit == 0:
                    return Done(b"")
                n = bf._readahead()
                if 0 <= limit < n:
                    n = limit
                buf = bf._buf
                pos = bf._pos
                end = buf.find(b"\n", pos, pos + n)
                if end >= 0:
                    bf._pos = end + 1
                    return Done(bytes(buf[pos : end + 1]))
                if n == limit:
                    bf._pos = pos + n
                    return Done(bytes(buf[pos : pos + n]))
                if n > 0:
                    self._chunks.append(bytes(buf[pos : pos + n]))
                    bf._pos = pos + n
                    if limit >= 0:
                        self._limit = limit - n
                if bf.writable:
                    self._state = _ReadlineStep.FLUSH
                else:
                    self._state = _ReadlineStep.FILL
                return Continue
            case _ReadlineStep.FLUSH:
                r = self._flush_writes(True)
                if r is not None:
                    return r
                self._state = _ReadlineStep.FILL
                return Continue
            case _ReadlineStep.FILL:
                bf._reset_read()
                self._c = bf._submit_read(memoryview(bf._buf))
                self._state = _ReadlineStep.FILL_WAIT
                return wait(self._c)
            case _ReadlineStep.FILL_WAIT:
                assert self._c is not None
                n = bf._finish_read(self._c)
                if n <= 0:
                    return self._result()
                bf._read_end = bf._raw_pos = n
                limit = self._limit
                if 0 <= limit < n:
                    n = limit
                buf = bf._buf
                end = buf.find(b"\n", 0, n)
                if end >= 0:
                    self._chunks.append(bytes(buf[: end + 1]))
                    bf._pos = end + 1
                    return self._result()
                self._chunks.append(bytes(buf[:n]))
                if n == limit:
                    bf._pos = n
                    return self._result()
                if limit >= 0:
                    self._limit = limit - n
                self._state = _ReadlineStep.FILL
                return Continue

    def _result(self) -> Done[bytes]:
        chunks = self._chunks
        return Done(chunks[0] if len(chunks) == 1 else b"".join(chunks))


class BufferedReadlines(BufferedCall[list[bytes]]):
    """`readlines(hint)`: `readline()` until an empty line, or until `hint` bytes (if > 0)."""

    __slots__ = ("_lines",)

    def __init__(self, bf: BufferState, hint: int) -> None:
        super().__init__(bf)
        self._lines = LinesUntilHint(hint, lambda: BufferedReadline(bf, -1))

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()
        self._lines.check()

    def _advance(self) -> TransitionResult[list[bytes]]:
        return self._lines.advance()
