"""Text files: CPython's `TextIOWrapper` over a `BufferedFile`, as explicit state machines.

Theory of operation:
- `TextFile` keeps the state of CPython's C `TextIOWrapper` (Modules/_io/textio.c) under the
  same names: an incremental decoder (wrapped in `io.IncrementalNewlineDecoder` for universal
  newlines) and encoder from `codecs`; `decoded_chars`, the decoded text not yet returned, and
  `decoded_chars_used`, how much of it was; `snapshot`, the decoder flags and the bytes fed
  since the last point where the decoder's buffer was empty, from which `tell()` rebuilds an
  opaque cookie; `pending`, encoded text not yet handed to the buffer; `telling`.
- Text is read in chunks with the buffer's `read1(max(8192, b2cratio * wanted))`, decoded,
  and handed out from `decoded_chars`, exactly as CPython does, so that every result and every
  `tell()` cookie is the one CPython gives for the same calls. That includes CPython's quirks:
  a `write()` after a `read()` lands after the chunk that was read, not after the characters
  returned; `truncate()` without a size truncates at the buffer's position; `readlines(hint)`
  with a positive hint leaves `tell()` disabled, as iterating does.
- Each call is a `FileCall` on the buffer's lock. It drives the buffer's calls as parts of its
  own state machine (their `_advance()`), so a text call is one operation however many reads
  or writes it needs. `read(n)` and `readline()` answered from the decoded text, and a
  `write()` that only queues bytes, need no I/O and complete when made (`Ready`).
- Rollback restores the text state a call started from (decoded text, snapshot, pending
  bytes, and the decoder's state, saved right before the first chunk is read) together with
  the buffer's, so a cancelled read leaves the file usable at the position it had.
- Cookies are packed as CPython packs them (start position, decoder flags, bytes to feed,
  characters to skip, need-EOF flag in 8+4+4+4+1 little-endian bytes), so a cookie from one
  side seeks correctly on the other.
"""

from __future__ import annotations

import codecs
import enum
import io
import operator
from collections.abc import Iterable
from typing import Any, TypeVar

from core.errors import StateMachineError
from core.files.buffered import (
    BufferedFile,
    _Close,
    _FlushWrites,
    _Fsync,
    _Read,
    _Read1,
    _Saved,
    _Seek,
    _Truncate,
    _Write,
)
from core.files.call import EachInTurn, FileCall, LinesUntilHint, Ready
from core.files.errors import UnsupportedFileOperation, closed_file
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = ["CHUNK_SIZE", "TextFile"]

T = TypeVar("T")

CHUNK_SIZE = 8192
"""CPython's `TextIOWrapper._CHUNK_SIZE`: the least a chunk read asks for."""

_TextSaved = tuple[
    str, int, "tuple[int, bytes] | None", float, bool, "tuple[list[bytes], int]", int, bool
]


def _unsupported(message: str) -> UnsupportedFileOperation:
    return UnsupportedFileOperation(message)


class TextFile:
    """The state of one open text file, and its calls as operations.

    Errors are CPython's: `ClosedFileError` (a `ValueError`, "I/O operation on closed file.")
    on a closed file, `UnsupportedFileOperation` ("not readable", "not writable", "can't do
    nonzero cur-relative seeks"), `TypeError` for a non-`str` write, `ValueError` for a
    negative seek or a bad whence, `OSError` when `tell()` is disabled or a cookie cannot be
    restored, codec errors (`UnicodeDecodeError`...) as the codec raises them, and a failed
    I/O's `CompletionError`.
    """

    __slots__ = (
        "_b2cratio",
        "_decoded_chars",
        "_decoded_chars_used",
        "_decoder",
        "_encoder",
        "_encoding_start_of_stream",
        "_pending",
        "_pending_count",
        "_readnl",
        "_readtranslate",
        "_readuniversal",
        "_rollback_decoder",
        "_snapshot",
        "_telling",
        "_writenl",
        "_writetranslate",
        "buffer",
        "chunk_size",
        "encoding",
        "errors",
        "line_buffering",
        "lock",
        "mode",
    )

    def __init__(
        self,
        buffer: BufferedFile,
        *,
        encoding: str,
        errors: str = "strict",
        newline: str | None = None,
        line_buffering: bool = False,
        mode: str = "r",
    ) -> None:
        """Wrap `buffer`. Raises `LookupError` for an unknown encoding and `ValueError` for a
        newline other than None, '', '\\n', '\\r', '\\r\\n'."""
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline}")
        info = codecs.lookup(encoding)
        self.buffer = buffer
        self.lock = buffer.lock
        self.encoding = encoding
        self.errors = errors
        self.mode = mode
        self.line_buffering = line_buffering
        self.chunk_size = CHUNK_SIZE
        self._readuniversal = not newline
        self._readtranslate = newline is None
        self._readnl = newline
        self._writetranslate = newline != ""
        self._writenl: str | None = None
        if not self._readuniversal and newline is not None and newline != "\n":
            self._writenl = newline
        self._decoder: Any = None
        if buffer.readable:
            decoder: Any = info.incrementaldecoder(errors)
            if self._readuniversal:
                decoder = io.IncrementalNewlineDecoder(decoder, self._readtranslate)
            self._decoder = decoder
        self._encoder: Any = info.incrementalencoder(errors) if buffer.writable else None
        self._decoded_chars = ""
        self._decoded_chars_used = 0
        self._snapshot: tuple[int, bytes] | None = None
        self._b2cratio = 0.0
        self._telling = True
        self._pending: list[bytes] = []
        self._pending_count = 0
        self._rollback_decoder: tuple[bytes, int] | None = None
        self._encoding_start_of_stream = False
        if self._encoder is not None:
            self._encoding_start_of_stream = True
            if buffer.tell() != 0:
                self._encoding_start_of_stream = False
                self._encoder.setstate(0)

    # -- what callers see ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the buffer is closed."""
        return self.buffer.closed

    @property
    def name(self) -> str | bytes:
        """The buffer's name."""
        return self.buffer.name

    @property
    def newlines(self) -> str | tuple[str, ...] | None:
        """The newlines seen so far (universal-newlines mode), else None."""
        return getattr(self._decoder, "newlines", None)

    def read(self, size: int | None = -1) -> FileCall[str]:
        """Read up to `size` characters (all if negative or None)."""
        n = -1 if size is None else _read_size(size)
        if self.lock.holder is None and self._ready_to_read():
            used = self._decoded_chars_used
            if 0 <= n <= len(self._decoded_chars) - used:
                self._decoded_chars_used = used + n
                return Ready(self._decoded_chars[used : used + n])
        return _TextRead(self, n)

    def readline(self, size: int = -1) -> FileCall[str]:
        """Read one line (up to `size` characters if not negative)."""
        limit = operator.index(size)
        if limit < 0 and self.lock.holder is None and self._ready_to_read():
            # The first pass of CPython's `_textiowrapper_readline`: a whole line is decoded.
            chars = self._decoded_chars
            used = self._decoded_chars_used
            end, _ = _find_line_ending(self, chars, used)
            if end >= 0:
                self._decoded_chars_used = used + end
                return Ready(chars[used : used + end])
        return _TextReadline(self, limit)

    def _ready_to_read(self) -> bool:
        return self._decoder is not None and not self._pending and not self.buffer._closed

    def readlines(self, hint: int | None = -1) -> FileCall[list[str]]:
        """Read lines as iteration does, until the end or until `hint` characters (if > 0)."""
        return _TextReadlines(self, -1 if hint is None else operator.index(hint))

    def write(self, text: str) -> FileCall[int]:
        """Write `text`; the result is its length in characters."""
        if (
            self.lock.holder is None
            and type(text) is str
            and self._encoder is not None
            and not self.buffer._closed
        ):
            translated, needflush = self._translate(text)
            if not needflush:
                data: bytes = self._encoder.encode(translated)
                if self._pending_count + len(data) <= self.chunk_size:
                    self._encoding_start_of_stream = False
                    self._pending.append(data)
                    self._pending_count += len(data)
                    self._written()
                    return Ready(len(text))
                return _TextWrite(self, text, data)  # encoded already: hand it over
        return _TextWrite(self, text)

    def _translate(self, text: str) -> tuple[str, bool]:
        """Newline translation for writing, and whether line buffering asks for a flush."""
        haslf = False
        writenl = self._writenl
        if (self._writetranslate and writenl is not None) or self.line_buffering:
            haslf = "\n" in text
        if haslf and self._writetranslate and writenl is not None:
            text = text.replace("\n", writenl)
        return text, self.line_buffering and (haslf or "\r" in text)

    def _written(self) -> None:
        """What every write ends with: the read state is gone."""
        self._decoded_chars = ""
        self._decoded_chars_used = 0
        self._snapshot = None
        if self._decoder is not None:
            self._decoder.reset()

    def writelines(self, lines: Iterable[str]) -> FileCall[None]:
        """Write each of `lines`."""
        return _TextWritelines(self, lines)

    def flush(self) -> FileCall[None]:
        """Hand pending text to the buffer and flush it (no fsync)."""
        return _TextFlush(self)

    def tell(self) -> FileCall[int]:
        """The position as an opaque cookie (a byte offset where the decoder is clean)."""
        return _TextTell(self)

    def seek(self, cookie: int, whence: int = 0) -> FileCall[int]:
        """Go to a cookie from `tell()` (whence 0), or to the start or end (whence 1 or 2 with
        offset 0)."""
        return _TextSeek(self, cookie, whence)

    def truncate(self, size: int | None = None) -> FileCall[int]:
        """Flush, then truncate the buffer at `size` (at its position if None)."""
        return _TextTruncate(self, size)

    def fsync(self) -> FileCall[None]:
        """Flush, then make everything written durable."""
        return _TextFsync(self)

    def close(self) -> FileCall[None]:
        """Flush and close; closing a closed file does nothing."""
        return _TextClose(self)

    def __repr__(self) -> str:
        return f"<TextFile name={self.name!r} mode={self.mode!r} encoding={self.encoding!r}>"

    # -- decoded characters (CPython's ADT) ------------------------------------------------

    def _set_decoded_chars(self, chars: str) -> None:
        self._decoded_chars = chars
        self._decoded_chars_used = 0

    def _get_decoded_chars(self, n: int) -> str:
        chars = self._decoded_chars
        used = self._decoded_chars_used
        avail = len(chars) - used
        if n < 0 or n > avail:
            n = avail
        self._decoded_chars_used = used + n
        if used == 0 and n == len(chars):
            return chars
        return chars[used : used + n]

    def _decoder_setstate(self, start_pos: int, dec_flags: int) -> None:
        # At the start of the stream reset rather than set: for UTF-16 the initial state is
        # "expecting a BOM", which no (b"", flags) state expresses.
        if start_pos == 0 and dec_flags == 0:
            self._decoder.reset()
        else:
            self._decoder.setstate((b"", dec_flags))

    def _encoder_setstate(self, start_pos: int, dec_flags: int) -> None:
        if start_pos == 0 and dec_flags == 0:
            self._encoder.reset()
            self._encoding_start_of_stream = True
        else:
            self._encoder.setstate(0)
            self._encoding_start_of_stream = False

    def _save(self) -> _TextSaved:
        self._rollback_decoder = None
        # The pending list is only ever appended to or replaced, never cut, so its object and
        # length are enough to restore it.
        return (
            self._decoded_chars,
            self._decoded_chars_used,
            self._snapshot,
            self._b2cratio,
            self._telling,
            (self._pending, len(self._pending)),
            self._pending_count,
            self._encoding_start_of_stream,
        )

    def _note_decoder_state(self) -> None:
        if self._rollback_decoder is None and self._decoder is not None:
            self._rollback_decoder = self._decoder.getstate()

    def _restore(self, saved: _TextSaved) -> None:
        (
            self._decoded_chars,
            self._decoded_chars_used,
            self._snapshot,
            self._b2cratio,
            self._telling,
            (pending, length),
            self._pending_count,
            start_of_stream,
        ) = saved
        del pending[length:]
        self._pending = pending
        if self._rollback_decoder is not None:
            self._decoder.setstate(self._rollback_decoder)
            self._rollback_decoder = None
        if self._encoder is not None and start_of_stream != self._encoding_start_of_stream:
            if start_of_stream:
                self._encoder.reset()
            else:
                self._encoder.setstate(0)
            self._encoding_start_of_stream = start_of_stream


def _read_size(size: object) -> int:
    try:
        return operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"argument should be integer or None, not '{type(size).__name__}'"
        ) from None


def _pack_cookie(
    start_pos: int,
    dec_flags: int = 0,
    bytes_to_feed: int = 0,
    chars_to_skip: int = 0,
    need_eof: bool = False,
) -> int:
    # CPython's layout: off_t start, then three C ints and a char, little-endian, unsigned.
    return (
        (start_pos & (2**64 - 1))
        | ((dec_flags & 0xFFFFFFFF) << 64)
        | ((bytes_to_feed & 0xFFFFFFFF) << 96)
        | ((chars_to_skip & 0xFFFFFFFF) << 128)
        | (int(need_eof) << 160)
    )


def _unpack_cookie(cookie: int) -> tuple[int, int, int, int, bool]:
    raw = cookie.to_bytes(21, "little")  # OverflowError for what CPython refuses too
    start_pos = int.from_bytes(raw[0:8], "little", signed=True)
    dec_flags = int.from_bytes(raw[8:12], "little", signed=True)
    bytes_to_feed = int.from_bytes(raw[12:16], "little", signed=True)
    chars_to_skip = int.from_bytes(raw[16:20], "little", signed=True)
    return start_pos, dec_flags, bytes_to_feed, chars_to_skip, raw[20] != 0


def _find_line_ending(t: TextFile, line: str, start: int) -> tuple[int, int]:
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


# -- the shared pieces ---------------------------------------------------------------------


class _PendingFlush:
    """CPython's `_textiowrapper_writeflush`: hand the pending bytes to the buffer's `write`."""

    __slots__ = ("_t", "_write")

    def __init__(self, t: TextFile) -> None:
        self._t = t
        self._write: _Write | None = None

    def advance(self) -> TransitionResult[None]:
        if self._write is None:
            t = self._t
            if not t._pending:
                return Done(None)
            data = t._pending[0] if len(t._pending) == 1 else b"".join(t._pending)
            t._pending = []
            t._pending_count = 0
            self._write = _Write(t.buffer, data)
        r = self._write._advance()
        if not isinstance(r, Done):
            return r
        return Done(None)


class _TextFlushStep:
    """CPython's `textiowrapper_flush` body: pending bytes to the buffer, then `buffer.flush`."""

    __slots__ = ("_buffer_flush", "_pending", "_t")

    def __init__(self, t: TextFile) -> None:
        self._t = t
        self._pending = _PendingFlush(t)
        self._buffer_flush: _FlushWrites | None = None

    def advance(self) -> TransitionResult[None]:
        t = self._t
        if self._buffer_flush is None:
            t._telling = True
            r = self._pending.advance()
            if not isinstance(r, Done):
                return r
            if not t.buffer.writable:
                return Done(None)
            self._buffer_flush = _FlushWrites(t.buffer, True)
        return self._buffer_flush.advance()


class _ChunkRead:
    """CPython's `textiowrapper_read_chunk`: one `read1`, decoded; `Done(not eof)`."""

    __slots__ = ("_dec_buffer", "_dec_flags", "_hint", "_read1", "_t")

    def __init__(self, t: TextFile, size_hint: int) -> None:
        self._t = t
        self._hint = size_hint
        self._read1: _Read1 | None = None
        self._dec_buffer = b""
        self._dec_flags = 0

    def advance(self) -> TransitionResult[bool]:
        t = self._t
        if self._read1 is None:
            decoder = t._decoder
            if decoder is None:
                raise _unsupported("not readable")
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
            self._read1 = _Read1(t.buffer, max(t.chunk_size, hint))
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


class _TextCall(FileCall[T]):
    """A call on a `TextFile`: the checkpoint covers the text state and the buffer's."""

    __slots__ = ("_bsaved", "_t", "_tsaved")

    def __init__(self, t: TextFile) -> None:
        super().__init__(t.lock)
        self._t = t
        self._bsaved: _Saved | None = None
        self._tsaved: _TextSaved | None = None

    def _check(self) -> None:
        if self._t.buffer._closed:
            raise closed_file()

    def _begin(self) -> None:
        self._check()
        self._bsaved = self._t.buffer._save()
        self._tsaved = self._t._save()

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        t = self._t
        if self._bsaved is None or self._tsaved is None or t.buffer._closed:
            return
        t.buffer._restore(self._bsaved, abandoned)
        t._restore(self._tsaved)


# -- reads ---------------------------------------------------------------------------------


class _ReadStep(enum.Enum):
    START = "start"
    PENDING = "pending"
    ALL = "all"
    LOOP = "loop"
    CHUNK = "chunk"


class _TextRead(_TextCall[str]):
    """`read(n)`: decoded characters first, then chunks until `n` or the end."""

    __slots__ = ("_all", "_chunk", "_n", "_parts", "_pending", "_remaining", "_state")

    def __init__(self, t: TextFile, n: int) -> None:
        super().__init__(t)
        self._n = n
        self._state = _ReadStep.START
        self._pending = _PendingFlush(t)
        self._all: _Read | None = None
        self._chunk: _ChunkRead | None = None
        self._parts: list[str] = []
        self._remaining = 0

    def _check(self) -> None:
        super()._check()
        if self._t._decoder is None:
            raise _unsupported("not readable")

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
                r = self._pending.advance()
                if not isinstance(r, Done):
                    return r
                if self._n < 0:
                    t._note_decoder_state()
                    self._all = _Read(t.buffer, -1)
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


class _TextReadline(_TextCall[str]):
    """`readline(limit)`: CPython's `_textiowrapper_readline`."""

    __slots__ = ("_chunk", "_chunked", "_chunks", "_limit", "_pending", "_remaining", "_state")

    def __init__(self, t: TextFile, limit: int) -> None:
        super().__init__(t)
        self._limit = limit
        self._state = _LineStep.PENDING
        self._pending = _PendingFlush(t)
        self._chunk: _ChunkRead | None = None
        self._chunks: list[str] = []
        self._chunked = 0
        self._remaining: str | None = None

    def _advance(self) -> TransitionResult[str]:
        t = self._t
        match self._state:
            case _LineStep.PENDING:
                r = self._pending.advance()
                if not isinstance(r, Done):
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
        endpos, consumed = _find_line_ending(t, line, start)
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


class _TextReadlines(_TextCall[list[str]]):
    """`readlines(hint)`: iteration's `readline()`s, with `tell()` disabled meanwhile."""

    __slots__ = ("_lines", "_started")

    def __init__(self, t: TextFile, hint: int) -> None:
        super().__init__(t)
        self._lines = LinesUntilHint(hint, lambda: _TextReadline(t, -1))
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


class _WriteStep(enum.Enum):
    START = "start"
    PENDING = "pending"
    FLUSH = "flush"


class _TextWrite(_TextCall[int]):
    """`write(s)`: translate newlines, encode, queue; hand over past `chunk_size` bytes or
    at a line end with line buffering. `encoded` is the text already encoded by
    `TextFile.write` (its fast path found the queue would overflow)."""

    __slots__ = ("_encoded", "_flush", "_needflush", "_pending", "_state", "_text")

    def __init__(self, t: TextFile, text: str, encoded: bytes | None = None) -> None:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        super().__init__(t)
        self._text = text
        self._encoded = encoded
        self._state = _WriteStep.START
        self._needflush = False
        self._pending = _PendingFlush(t)
        self._flush: _FlushWrites | None = None

    def _check(self) -> None:
        super()._check()
        if self._t._encoder is None:
            raise _unsupported("not writable")

    def _advance(self) -> TransitionResult[int]:
        t = self._t
        match self._state:
            case _WriteStep.START:
                data = self._encoded
                if data is None:
                    translated, self._needflush = t._translate(self._text)
                    data = t._encoder.encode(translated)
                t._encoding_start_of_stream = False
                t._pending.append(data)
                t._pending_count += len(data)
                if t._pending_count > t.chunk_size or self._needflush:
                    self._state = _WriteStep.PENDING
                    return Continue
                return self._done()
            case _WriteStep.PENDING:
                r = self._pending.advance()
                if not isinstance(r, Done):
                    return r
                if self._needflush and t.buffer.writable:
                    self._flush = _FlushWrites(t.buffer, True)
                    self._state = _WriteStep.FLUSH
                    return Continue
                return self._done()
            case _WriteStep.FLUSH:
                assert self._flush is not None
                r2 = self._flush.advance()
                if not isinstance(r2, Done):
                    return r2
                return self._done()

    def _done(self) -> Done[int]:
        self._t._written()
        return Done(len(self._text))


class _TextWritelines(_TextCall[None]):
    """`writelines(lines)`: `write()` each line."""

    __slots__ = ("_each",)

    def __init__(self, t: TextFile, lines: Iterable[str]) -> None:
        super().__init__(t)
        self._each = EachInTurn(list(lines), lambda line: _TextWrite(t, line))

    def _advance(self) -> TransitionResult[None]:
        return self._each.advance()


class _TextFlush(_TextCall[None]):
    """`flush()`: pending text to the buffer, then the buffer's flush."""

    __slots__ = ("_flush",)

    def __init__(self, t: TextFile) -> None:
        super().__init__(t)
        self._flush = _TextFlushStep(t)

    def _advance(self) -> TransitionResult[None]:
        return self._flush.advance()


class _TextFsync(_TextCall[None]):
    """`fsync()`: flush, then the buffer's fsync."""

    __slots__ = ("_flush", "_sync")

    def __init__(self, t: TextFile) -> None:
        super().__init__(t)
        self._flush = _TextFlushStep(t)
        self._sync: _Fsync | None = None

    def _advance(self) -> TransitionResult[None]:
        if self._sync is None:
            r = self._flush.advance()
            if not isinstance(r, Done):
                return r
            self._sync = _Fsync(self._t.buffer)
        return self._sync._advance()


# -- tell and seek -------------------------------------------------------------------------


class _TellStep(enum.Enum):
    FLUSH = "flush"


class _TextTell(_TextCall[int]):
    """`tell()`: flush, then rebuild the cookie from the snapshot (CPython's algorithm)."""

    __slots__ = ("_flush", "_state")

    def __init__(self, t: TextFile) -> None:
        super().__init__(t)
        self._flush = _TextFlushStep(t)
        self._state = _TellStep.FLUSH

    def _check(self) -> None:
        super()._check()
        if not self._t._telling:
            raise OSError("telling position disabled by next() call")

    def _advance(self) -> TransitionResult[int]:
        if self._state is not _TellStep.FLUSH:
            raise StateMachineError("text tell stepped after it finished")
        r = self._flush.advance()
        if not isinstance(r, Done):
            return r
        return Done(_compute_cookie(self._t))


def _compute_cookie(t: TextFile) -> int:
    position = t.buffer.tell()
    decoder = t._decoder
    snapshot = t._snapshot
    if decoder is None or snapshot is None:
        return position
    dec_flags, next_input = snapshot
    start_pos = position - len(next_input)
    if t._decoded_chars_used == 0:
        return _pack_cookie(start_pos, dec_flags)
    chars_to_skip = t._decoded_chars_used
    saved_state = decoder.getstate()
    try:
        # Fast search for a start point close to the position: one decode for fixed-width
        # codecs, a few for others.
        skip_bytes = int(t._b2cratio * chars_to_skip)
        skip_back = 1
        while skip_bytes > 0:
            t._decoder_setstate(start_pos, dec_flags)
            chars_decoded = len(decoder.decode(next_input[:skip_bytes]))
            if chars_decoded <= chars_to_skip:
                dec_buffer, flags = decoder.getstate()
                if not dec_buffer:
                    dec_flags = flags
                    chars_to_skip -= chars_decoded
                    break
                skip_bytes -= len(dec_buffer)
                skip_back = 1
            else:
                skip_bytes -= skip_back
                skip_back *= 2
        if skip_bytes <= 0:
            skip_bytes = 0
            t._decoder_setstate(start_pos, dec_flags)
        start_pos += skip_bytes
        if chars_to_skip == 0:
            return _pack_cookie(start_pos, dec_flags)
        # Feed one byte at a time, noting the last safe start point (decoder buffer empty).
        bytes_to_feed = 0
        need_eof = False
        chars_decoded = 0
        i = skip_bytes
        end = len(next_input)
        while i < end:
            chars_decoded += len(decoder.decode(next_input[i : i + 1]))
            bytes_to_feed += 1
            dec_buffer, flags = decoder.getstate()
            if not dec_buffer and chars_decoded <= chars_to_skip:
                start_pos += bytes_to_feed
                chars_to_skip -= chars_decoded
                dec_flags = flags
                bytes_to_feed = 0
                chars_decoded = 0
            if chars_decoded >= chars_to_skip:
                break
            i += 1
        if i == end:
            chars_decoded += len(decoder.decode(b"", True))
            need_eof = True
            if chars_decoded < chars_to_skip:
                raise OSError("can't reconstruct logical file position")
        return _pack_cookie(start_pos, dec_flags, bytes_to_feed, chars_to_skip, need_eof)
    finally:
        decoder.setstate(saved_state)


class _SeekStep(enum.Enum):
    START = "start"
    TELL = "tell"
    END_FLUSH = "end flush"
    END_SEEK = "end seek"
    FLUSH = "flush"
    SEEK = "seek"
    FEED = "feed"


class _TextSeek(_TextCall[int]):
    """`seek(cookie, whence)`: go back to the cookie's safe start point and replay the
    decoder up to the position (CPython's `textiowrapper_seek`)."""

    __slots__ = (
        "_cookie",
        "_cookie_arg",
        "_fields",
        "_flush",
        "_read",
        "_seek",
        "_state",
        "_whence",
    )

    def __init__(self, t: TextFile, cookie: int, whence: int) -> None:
        super().__init__(t)
        self._cookie_arg = cookie
        self._cookie = 0
        self._whence = operator.index(whence)
        self._state = _SeekStep.START
        self._flush = _TextFlushStep(t)
        self._seek: _Seek | None = None
        self._read: _Read | None = None
        self._fields = (0, 0, 0, 0, False)

    def _begin(self) -> None:
        super()._begin()
        self._t._note_decoder_state()

    def _advance(self) -> TransitionResult[int]:
        t = self._t
        match self._state:
            case _SeekStep.START:
                cookie = self._cookie_arg
                whence = self._whence
                if whence == 1:
                    if cookie != 0:
                        raise _unsupported("can't do nonzero cur-relative seeks")
                    if not t._telling:
                        raise OSError("telling position disabled by next() call")
                    self._state = _SeekStep.TELL
                    return Continue
                if whence == 2:
                    if cookie != 0:
                        raise _unsupported("can't do nonzero end-relative seeks")
                    self._state = _SeekStep.END_FLUSH
                    return Continue
                if whence != 0:
                    raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
                if cookie < 0:
                    raise ValueError(f"negative seek position {cookie!r}")
                self._cookie = int(cookie)
                self._state = _SeekStep.FLUSH
                return Continue
            case _SeekStep.TELL:
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                self._cookie = _compute_cookie(t)
                self._cookie_arg = self._cookie
                self._flush = _TextFlushStep(t)
                self._state = _SeekStep.FLUSH
                return Continue
            case _SeekStep.END_FLUSH:
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                t._set_decoded_chars("")
                t._snapshot = None
                if t._decoder is not None:
                    t._decoder.reset()
                self._seek = _Seek(t.buffer, 0, 2)
                self._seek._check()
                self._state = _SeekStep.END_SEEK
                return Continue
            case _SeekStep.END_SEEK:
                assert self._seek is not None
                r2 = self._seek._advance()
                if not isinstance(r2, Done):
                    return r2
                if t._encoder is not None:
                    self._reset_encoder_at(r2.value == 0)
                return r2
            case _SeekStep.FLUSH:
                r = self._flush.advance()
                if not isinstance(r, Done):
                    return r
                self._fields = _unpack_cookie(self._cookie)
                self._seek = _Seek(t.buffer, self._fields[0], 0)
                self._seek._check()
                self._state = _SeekStep.SEEK
                return Continue
            case _SeekStep.SEEK:
                assert self._seek is not None
                r2 = self._seek._advance()
                if not isinstance(r2, Done):
                    return r2
                start_pos, dec_flags, bytes_to_feed, chars_to_skip, _ = self._fields
                t._set_decoded_chars("")
                t._snapshot = None
                if t._decoder is not None:
                    t._decoder_setstate(start_pos, dec_flags)
                if chars_to_skip:
                    if t._decoder is None:
                        raise _unsupported("not readable")
                    self._read = _Read(t.buffer, bytes_to_feed)
                    self._state = _SeekStep.FEED
                    return Continue
                t._snapshot = (dec_flags, b"")
                return self._finish()
            case _SeekStep.FEED:
                assert self._read is not None
                r3 = self._read._advance()
                if not isinstance(r3, Done):
                    return r3
                _, dec_flags, _, chars_to_skip, need_eof = self._fields
                chunk = r3.value
                t._snapshot = (dec_flags, chunk)
                t._set_decoded_chars(t._decoder.decode(chunk, need_eof))
                if len(t._decoded_chars) < chars_to_skip:
                    raise OSError("can't restore logical file position")
                t._decoded_chars_used = chars_to_skip
                return self._finish()

    def _reset_encoder_at(self, start_of_stream: bool) -> None:
        t = self._t
        if start_of_stream:
            t._encoder.reset()
        else:
            t._encoder.setstate(0)
        t._encoding_start_of_stream = start_of_stream

    def _finish(self) -> Done[int]:
        t = self._t
        if t._encoder is not None:
            t._encoder_setstate(self._fields[0], self._fields[1])
        return Done(self._cookie_arg)


# -- truncate and close --------------------------------------------------------------------


class _TextTruncate(_TextCall[int]):
    """`truncate(size)`: flush, then the buffer's truncate (at its own position if None)."""

    __slots__ = ("_flush", "_size", "_truncate")

    def __init__(self, t: TextFile, size: int | None) -> None:
        super().__init__(t)
        self._size = size
        self._flush = _TextFlushStep(t)
        self._truncate: _Truncate | None = None

    def _advance(self) -> TransitionResult[int]:
        if self._truncate is None:
            r = self._flush.advance()
            if not isinstance(r, Done):
                return r
            self._truncate = _Truncate(self._t.buffer, self._size)
            self._truncate._check()
        return self._truncate._advance()


class _TextClose(_TextCall[None]):
    """`close()`: flush, then close the buffer; the buffer is closed even if the flush fails
    or is abandoned (the flush's error is raised after)."""

    __slots__ = ("_close", "_flush")

    def __init__(self, t: TextFile) -> None:
        super().__init__(t)
        self._flush = _TextFlushStep(t)
        self._close: _Close | None = None

    def _check(self) -> None:
        pass

    def _advance(self) -> TransitionResult[None]:
        t = self._t
        if self._close is None:
            if t.buffer._closed:
                return Done(None)
            r = self._flush.advance()
            if not isinstance(r, Done):
                return r
            self._close = _Close(t.buffer)
        return self._close._advance()

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if not self._t.buffer._closed:
            self._t.buffer._close_now()
