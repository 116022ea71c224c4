"""The state of a text file, and what every call on it shares: its checkpoint, its rollback,
and the hand-over of pending text that many calls make first.

Theory of operation:
- `TextState` keeps the state of CPython's C `TextIOWrapper` (Modules/_io/textio.c) under the
  same names: an incremental decoder (wrapped in `io.IncrementalNewlineDecoder` for universal
  newlines) and encoder from `codecs`; `decoded_chars`, the decoded text not yet returned, and
  `decoded_chars_used`, how much of it was; `snapshot`, the decoder flags and the bytes fed
  since the last point where the decoder's buffer was empty, from which `tell()` rebuilds an
  opaque cookie (`core.files.text_cookie`); `pending`, encoded text not yet handed to the
  buffer; `telling`. The fields keep CPython's names behind a leading underscore: they are
  the file's internals, touched only by its calls (the `text_*` modules).
- A text call is a call on the buffer too (`TextCall` is a `BufferedCall`: they share one
  lock), and it drives the buffer's calls as parts of its own state machine (their
  `_advance()`), so a text call is one operation however many reads or writes it needs.
- Rollback restores the text state a call started from (decoded text, snapshot, pending
  bytes, and the decoder's state, saved right before the first chunk is read) together with
  the buffer's, so a cancelled read leaves the file usable at the position it had.
- Two steps come first in many calls, and each is written once: `_write_pending` (CPython's
  `_textiowrapper_writeflush`: the pending bytes become one buffered `write`) and
  `_flush_text` (CPython's `textiowrapper_flush` body: that, then the buffer's flush).
"""

from __future__ import annotations

import codecs
import io
from typing import Any, Literal, TypeVar

from core.files.buffer_state import BufferedCall
from core.files.buffered import BufferedFile
from core.files.buffered_writes import BufferedWrite
from core.files.errors import closed_file
from core.result import IO, Done
from core.state_machine import ContinueType

__all__ = ["CHUNK_SIZE", "TextCall", "TextCheckpoint", "TextState"]

T = TypeVar("T")

CHUNK_SIZE = 8192
"""CPython's `TextIOWrapper._CHUNK_SIZE`: the least a chunk read asks for."""

TextCheckpoint = tuple[
    str, int, "tuple[int, bytes] | None", float, bool, "tuple[list[bytes], int]", int, bool
]
"""A text file's own state when a call started (the buffer's is a `Checkpoint`)."""


class TextState:
    """The state of one open text file (see the module docstring); `TextFile` adds its
    calls."""

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
        self._set_encoder_at_start(start_pos == 0 and dec_flags == 0)

    def _set_encoder_at_start(self, start_of_stream: bool) -> None:
        # At the start of the stream the encoder writes a BOM first (UTF-16, UTF-8-sig);
        # anywhere else it must not.
        if start_of_stream:
            self._encoder.reset()
        else:
            self._encoder.setstate(0)
        self._encoding_start_of_stream = start_of_stream

    def _save(self) -> TextCheckpoint:
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

    def _restore(self, saved: TextCheckpoint) -> None:
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
            self._set_encoder_at_start(start_of_stream)


class TextCall(BufferedCall[T]):
    """A call on a text file: the checkpoint covers the text state and the buffer's, and
    `_write_pending` and `_flush_text` are the steps many calls take first."""

    __slots__ = ("_pending_write", "_t", "_tsaved")

    def __init__(self, t: TextState) -> None:
        super().__init__(t.buffer)
        self._t = t
        self._tsaved: TextCheckpoint | None = None
        self._pending_write: BufferedWrite | None = None

    def _check(self) -> None:
        if self._bf._closed:
            raise closed_file()

    def _begin(self) -> None:
        super()._begin()
        self._tsaved = self._t._save()

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        tsaved = self._tsaved
        if tsaved is None or self._bf._closed:
            return
        super()._rollback(error, abandoned)  # the buffer's state first, as it was taken
        self._t._restore(tsaved)

    def _write_pending(self) -> IO | Literal[ContinueType.CONTINUE] | None:
        """CPython's `_textiowrapper_writeflush`: hand the pending bytes to the buffer's
        `write`, as one. `IO` or `Continue` while it runs (call again to resume the same
        write), None once the pending bytes are in the buffer."""
        write = self._pending_write
        if write is None:
            t = self._t
            if not t._pending:
                return None
            data = t._pending[0] if len(t._pending) == 1 else b"".join(t._pending)
            t._pending = []
            t._pending_count = 0
            write = self._pending_write = BufferedWrite(t.buffer, data)
        r = write._advance()
        if not isinstance(r, Done):
            return r
        self._pending_write = None
        return None

    def _flush_text(self) -> IO | Literal[ContinueType.CONTINUE] | None:
        """CPython's `textiowrapper_flush` body: the pending bytes to the buffer, then the
        buffer's flush (with its rewind). Resumed and finished as `_write_pending`."""
        if self._flush is None:  # the buffer's flush has not started: the pending bytes first
            self._t._telling = True
            r = self._write_pending()
            if r is not None:
                return r
            if not self._bf.writable:
                return None
        return self._flush_writes(True)
