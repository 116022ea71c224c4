"""Where a text file stands: `tell` and `seek` (CPython's `_io_TextIOWrapper_tell_impl` and
`_io_TextIOWrapper_seek_impl`).

Theory of operation:
- Both flush the text first (the shared `_flush_text` step), so the cookie speaks of bytes
  that are in the file.
- `tell` rebuilds the cookie from the snapshot (`core.files.text_cookie`); it fails, as in
  CPython, while iteration or `readlines(hint)` has disabled it.
- `seek(cookie)` moves the buffer to the cookie's safe start point, resets the decoder to
  the flags there, and replays: it reads the cookie's bytes to feed, decodes them, and skips
  the characters. `seek(0, 2)` goes to the end with a clean decoder. The encoder is set so
  that a BOM is written only at the start of the stream.
- The decoder's state is noted when the call starts, so a rollback puts it back.
"""

from __future__ import annotations

import enum
import operator

from core.files.buffered_random_access import BufferedSeek
from core.files.buffered_reads import BufferedRead
from core.files.errors import UnsupportedFileOperation
from core.files.text_cookie import compute_cookie, unpack_cookie
from core.files.text_state import TextCall, TextState
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = ["TextSeek", "TextTell"]


class TextTell(TextCall[int]):
    """`tell()`: flush, then rebuild the cookie from the snapshot (CPython's algorithm)."""

    __slots__ = ()

    def _check(self) -> None:
        super()._check()
        if not self._t._telling:
            raise OSError("telling position disabled by next() call")

    def _advance(self) -> TransitionResult[int]:
        r = self._flush_text()
        if r is not None:
            return r
        return Done(compute_cookie(self._t))


class _SeekStep(enum.Enum):
    START = "start"
    TELL = "tell"
    END_FLUSH = "end flush"
    END_SEEK = "end seek"
    FLUSH = "flush"
    SEEK = "seek"
    FEED = "feed"


class TextSeek(TextCall[int]):
    """`seek(cookie, whence)`: go back to the cookie's safe start point and replay the
    decoder up to the position (CPython's `textiowrapper_seek`)."""

    __slots__ = (
        "_cookie",
        "_cookie_arg",
        "_fields",
        "_read",
        "_seek",
        "_state",
        "_whence",
    )

    def __init__(self, t: TextState, cookie: int, whence: int) -> None:
        super().__init__(t)
        self._cookie_arg = cookie
        self._cookie = 0
        self._whence = operator.index(whence)
        self._state = _SeekStep.START
        self._seek: BufferedSeek | None = None
        self._read: BufferedRead | None = None
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
                        raise UnsupportedFileOperation("can't do nonzero cur-relative seeks")
                    if not t._telling:
                        raise OSError("telling position disabled by next() call")
                    self._state = _SeekStep.TELL
                    return Continue
                if whence == 2:
                    if cookie != 0:
                        raise UnsupportedFileOperation("can't do nonzero end-relative seeks")
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
                r = self._flush_text()
                if r is not None:
                    return r
                self._cookie = compute_cookie(t)
                self._cookie_arg = self._cookie
                self._state = _SeekStep.FLUSH
                return Continue
            case _SeekStep.END_FLUSH:
                r = self._flush_text()
                if r is not None:
                    return r
                t._set_decoded_chars("")
                t._snapshot = None
                if t._decoder is not None:
                    t._decoder.reset()
                self._seek = BufferedSeek(t.buffer, 0, 2)
                self._seek._check()
                self._state = _SeekStep.END_SEEK
                return Continue
            case _SeekStep.END_SEEK:
                assert self._seek is not None
                r2 = self._seek._advance()
                if not isinstance(r2, Done):
                    return r2
                if t._encoder is not None:
                    t._set_encoder_at_start(r2.value == 0)
                return r2
            case _SeekStep.FLUSH:
                r = self._flush_text()
                if r is not None:
                    return r
                self._fields = unpack_cookie(self._cookie)
                self._seek = BufferedSeek(t.buffer, self._fields[0], 0)
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
                        raise UnsupportedFileOperation("not readable")
                    self._read = BufferedRead(t.buffer, bytes_to_feed)
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

    def _finish(self) -> Done[int]:
        t = self._t
        if t._encoder is not None:
            t._encoder_setstate(self._fields[0], self._fields[1])
        return Done(self._cookie_arg)
