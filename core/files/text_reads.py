"""The reading calls of a text file: `read`, `readline`, `readlines` (CPython's
`_io_TextIOWrapper_read_impl` and `_textiowrapper_readline`).

Theory of operation:
- Text is read in chunks with the buffer's `read1(max(8192, b2cratio * wanted))`, decoded,
  and handed out from `decoded_chars`, exactly as CPython does, so that every result and every
  `tell()` cookie is the one CPython gives for the same calls. A chunk read notes the
  decoder's state first (for `tell()`, in the snapshot, and for rollback).
- Pending written text goes to the buffer first (the shared `_write_pending` step).
- `read(n)` and `readline()` answered from the decoded text need no I/O: `TextFile` answers
  them with `Ready` and they never get here.
- CPython's quirks are kept: `readlines(hint)` with a positive hint leaves `tell()` disabled,
  as iterating does.
"""

from __future__ import annotations

import enum

from core.files.buffered_reads import BufferedRead, BufferedRead1
from core.files.call import LinesUntilHint
from core.files.errors import UnsupportedFileOperation
from core.files.text_state import TextCall, TextState
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = ["TextRead", "TextReadline", "TextReadlines", "find_line_ending"]


def find_line_ending(t: TextState, line: str, start: int) -> tuple[int, int]:
    """CPython's `_PyIO_find_line_ending` on `line[start:]`: (end, consumed), both relative to
    `start`; `end` is just past the line ending, or -1 with `consumed` what can be set aside."""
    length = len(line) - start
    if t._readtranslate:
        pos = line.find("\n", start)
        return (pos - start + 1, 0) if pos >= 0 else (-1, length)
    if t._readuniversal:
        nl = line.find("\n", start)
        cr = line.find("\r", start)
        if cr < 0 and nl < 0:
            return -1, length
        if cr < 0 or (0 <= nl < cr):
            return nl - start + 1, 0
        if line.startswith("\n", cr + 1):
            return cr - start + 2, 0
        return cr - start + 1, 0
    readnl = t._readnl
    assert readnl is not None
    if len(readnl) == 1:
        pos = line.find(readnl, start)
        return (pos - start + 1, 0) if pos >= 0 else (-1, length)
    end = len(line)
    e = max(end - (len(readnl) - 1), start)
    s = start
    while s < e:
        pos = line.find(readnl[0], s)
        if pos < 0 or pos >= e:
            break
        if line.startswith(readnl, pos):
            return pos - start + len(readnl), 0
        s = pos + 1
    pos = line.find(readnl[0], e)
    return -1, (length if pos < 0 else pos - start)


class _ChunkRead:
    """CPython's `textiowrapper_read_chunk`: one `read1`, decoded; `Done(not eof)`."""

    __slots__ = ("_dec_buffer", "_dec_flags", "_hint", "_read1", "_t")

    def __init__(self, t: TextState, size_hint: int) -> None:
        self._t = t
        self._hint = size_hint
        self._read1: BufferedRead1 | None = None
        self._dec_buffer = b""
        self._dec_flags = 0

    def advance(self) -> TransitionResult[bool]:
        t = self._t
        if self._read1 is None:
            decoder = t._decoder
            if decoder is None:
                raise UnsupportedFileOperation("not readable")
            if t._telling:
                state = decoder.getstate()
                self._dec_buffer, self._dec_flags = state
                if t._rollback_decoder is None:
                    t._rollback_decoder = state
            else:
                t._note_decoder_state()
            hint = self._hint
            if hint > 0:
                hint = int(max(t._b2cratio, 1.0) * hint)
            self._read1 = BufferedRead1(t.buffer, max(t.chunk_size, hint))
        r = self._read1._advance()
        if not isinstance(r, Done):
            return r
        chunk = r.value
        eof = not chunk
        decoded: str = t._decoder.decode(chunk, eof)
        t._set_decoded_chars(decoded)
        nchars = len(decoded)
        t._b2cratio = len(chunk) / nchars if nchars else 0.0
        if nchars:
            eof = False
        if t._telling:
            t._snapshot = (self._dec_flags, self._dec_buffer + chunk)
        return Done(not eof)


class _ReadStep(enum.Enum):
    START = "start"
    PENDING = "pending"
    ALL = "all"
    LOOP = "loop"
    CHUNK = "chunk"


class TextRead(TextCall[str]):
    """`read(n)`: decoded characters first, then chunks until `n` or the end."""

    __slots__ = ("_all", "_chunk", "_n", "_parts", "_remaining", "_state")

    def __init__(self, t: TextState, n: int) -> None:
        super().__init__(t)
        self._n = n
        self._state = _ReadStep.START
        self._all: BufferedRead | None = None
        self._chunk: _ChunkRead | None = None
        self._parts: list[str] = []
        self._remaining = 0

    def _check(self) -> None:
        super()._check()
        if self._t._decoder is None:
            raise UnsupportedFileOperation("not readable")

    def _advance(self) -> TransitionResult[str]:
        t = self._t
        match self._state:
            case _ReadStep.START:
                n = self._n
                if not t._pending and 0 <= n <= len(t._decoded_chars) - t._decoded_chars_used:
                    return Done(t._get_decoded_chars(n))
                self._state = _ReadStep.PENDING
                return Continue
            case _ReadStep.PENDING:
                r = self._write_pending()
                if r is not None:
                    return r
                if self._n < 0:
                    t._note_decoder_state()
                    self._all = BufferedRead(t.buffer, -1)
                    self._state = _ReadStep.ALL
                    return Continue
                first = t._get_decoded_chars(self._n)
                self._parts.append(first)
                self._remaining = self._n - len(first)
                self._state = _ReadStep.LOOP
                return Continue
            case _ReadStep.ALL:
                assert self._all is not None
                r2 = self._all._advance()
                if not isinstance(r2, Done):
                    return r2
                decoded: str = t._decoder.decode(r2.value, True)
                result = t._get_decoded_chars(-1) + decoded
                t._snapshot = None
                return Done(result)
            case _ReadStep.LOOP:
                if self._remaining <= 0:
                    return self._result()
                self._chunk = _ChunkRead(t, self._remaining)
                self._state = _ReadStep.CHUNK
                return Continue
            case _ReadStep.CHUNK:
                assert self._chunk is not None
                r3 = self._chunk.advance()
                if not isinstance(r3, Done):
                    return r3
                if not r3.value:
                    return self._result()
                more = t._get_decoded_chars(self._remaining)
                self._parts.append(more)
                self._remaining -= len(more)
                self._state = _ReadStep.LOOP
                return Continue

    def _result(self) -> Done[str]:
        parts = self._parts
        return Done(parts[0] if len(parts) == 1 else "".join(parts))


class _LineStep(enum.Enum):
    PENDING = "pending"
    DATA = "data"
    CHUNK = "chunk"


class TextReadline(TextCall[str]):
    """`readline(limit)`: CPython's `_textiowrapper_readline`."""

    __slots__ = ("_chunk", "_chunked", "_chunks", "_limit", "_remaining", "_state")

    def __init__(self, t: TextState, limit: int) -> None:
        super().__init__(t)
        self._limit = limit
        self._state = _LineStep.PENDING
        self._chunk: _ChunkRead | None = None
        self._chunks: list[str] = []
        self._chunked = 0
        self._remaining: str | None = None

    def _advance(self) -> TransitionResult[str]:
        t = self._t
        match self._state:
            case _LineStep.PENDING:
                r = self._write_pending()
                if r is not None:
                    return r
                self._state = _LineStep.DATA
                return Continue
            case _LineStep.DATA:
                if not t._decoded_chars:
                    self._chunk = _ChunkRead(t, 0)
                    self._state = _LineStep.CHUNK
                    return Continue
                return self._scan()
            case _LineStep.CHUNK:
                assert self._chunk is not None
                r2 = self._chunk.advance()
                if not isinstance(r2, Done):
                    return r2
                if not r2.value:  # end of file
                    t._set_decoded_chars("")
                    t._snapshot = None
                    return self._finish(None, 0, 0, 0)
                self._state = _LineStep.DATA
                return Continue

    def _scan(self) -> TransitionResult[str]:
        t = self._t
        limit = self._limit
        chunked = self._chunked
        if self._remaining is None:
            line = t._decoded_chars
            start = t._decoded_chars_used
            offset_to_buffer = 0
        else:
            line = self._remaining + t._decoded_chars
            start = 0
            offset_to_buffer = len(self._remaining)
            self._remaining = None
        endpos, consumed = find_line_ending(t, line, start)
        if endpos >= 0:
            endpos += start
            if limit >= 0 and (endpos - start) + chunked >= limit:
                endpos = start + limit - chunked
            return self._finish(line, start, endpos, offset_to_buffer)
        endpos = consumed + start
        if limit >= 0 and (endpos - start) + chunked >= limit:
            endpos = start + limit - chunked
            return self._finish(line, start, endpos, offset_to_buffer)
        if endpos > start:
            self._chunks.append(line[start:endpos])
            self._chunked = chunked + endpos - start
        if endpos < len(line):
            self._remaining = line[endpos:]
        t._set_decoded_chars("")
        self._state = _LineStep.DATA
        return Continue

    def _finish(
        self, line: str | None, start: int, endpos: int, offset_to_buffer: int
    ) -> Done[str]:
        t = self._t
        if line is not None:
            t._decoded_chars_used = endpos - offset_to_buffer
            if start > 0 or endpos < len(line):
                line = line[start:endpos]
        chunks = self._chunks
        if self._remaining is not None:
            chunks.append(self._remaining)
        if chunks:
            if line is not None:
                chunks.append(line)
            return Done("".join(chunks))
        return Done(line if line is not None else "")


class TextReadlines(TextCall[list[str]]):
    """`readlines(hint)`: iteration's `readline()`s, with `tell()` disabled meanwhile."""

    __slots__ = ("_lines", "_started")

    def __init__(self, t: TextState, hint: int) -> None:
        super().__init__(t)
        self._lines = LinesUntilHint(hint, lambda: TextReadline(t, -1))
        self._started = False

    def _advance(self) -> TransitionResult[list[str]]:
        t = self._t
        if not self._started:
            self._started = True
            t._telling = False
        result = self._lines.advance()
        if self._lines.at_end:
            t._snapshot = None
            t._telling = True
        return result
