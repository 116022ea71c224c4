"""Text files: CPython's `TextIOWrapper` over a `BufferedFile`, as explicit state machines.

Theory of operation:
- `TextFile` is the object callers hold. Its state and the rules it keeps (CPython's names,
  the decoder snapshot, checkpoints and rollback) are `TextState` (`core.files.text_state`);
  its calls are state machines in `text_reads`, `text_writes` and `text_seek`, and the cookie
  `tell()` returns is `core.files.text_cookie`. Each method returns an operation.
- Each call is a `FileCall` on the buffer's lock, so text and binary calls on one file take
  turns. `read(n)` and `readline()` answered from the decoded text, and a `write()` that only
  queues bytes, need no I/O: they run right away, here, and the call is `Ready`, built
  without a state machine.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from core.files.call import FileCall, Ready
from core.files.text_reads import TextRead, TextReadline, TextReadlines, find_line_ending
from core.files.text_seek import TextSeek, TextTell
from core.files.text_state import CHUNK_SIZE, TextState
from core.files.text_writes import (
    TextClose,
    TextFlush,
    TextFsync,
    TextTruncate,
    TextWrite,
    TextWritelines,
)

__all__ = ["CHUNK_SIZE", "TextFile"]


class TextFile(TextState):
    """The state of one open text file, and its calls as operations.

    Errors are CPython's: `ClosedFileError` (a `ValueError`, "I/O operation on closed file.")
    on a closed file, `UnsupportedFileOperation` ("not readable", "not writable", "can't do
    nonzero cur-relative seeks"), `TypeError` for a non-`str` write, `ValueError` for a
    negative seek or a bad whence, `OSError` when `tell()` is disabled or a cookie cannot be
    restored, codec errors (`UnicodeDecodeError`...) as the codec raises them, and a failed
    I/O's `CompletionError`.
    """

    __slots__ = ()

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
        return TextRead(self, n)

    def readline(self, size: int = -1) -> FileCall[str]:
        """Read one line (up to `size` characters if not negative)."""
        limit = operator.index(size)
        if limit < 0 and self.lock.holder is None and self._ready_to_read():
            # The first pass of CPython's `_textiowrapper_readline`: a whole line is decoded.
            chars = self._decoded_chars
            used = self._decoded_chars_used
            end, _ = find_line_ending(self, chars, used)
            if end >= 0:
                self._decoded_chars_used = used + end
                return Ready(chars[used : used + end])
        return TextReadline(self, limit)

    def _ready_to_read(self) -> bool:
        return self._decoder is not None and not self._pending and not self.buffer._closed

    def readlines(self, hint: int | None = -1) -> FileCall[list[str]]:
        """Read lines as iteration does, until the end or until `hint` characters (if > 0)."""
        return TextReadlines(self, -1 if hint is None else operator.index(hint))

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
                return TextWrite(self, text, data)  # encoded already: hand it over
        return TextWrite(self, text)

    def writelines(self, lines: Iterable[str]) -> FileCall[None]:
        """Write each of `lines`."""
        return TextWritelines(self, lines)

    def flush(self) -> FileCall[None]:
        """Hand pending text to the buffer and flush it (no fsync)."""
        return TextFlush(self)

    def tell(self) -> FileCall[int]:
        """The position as an opaque cookie (a byte offset where the decoder is clean)."""
        return TextTell(self)

    def seek(self, cookie: int, whence: int = 0) -> FileCall[int]:
        """Go to a cookie from `tell()` (whence 0), or to the start or end (whence 1 or 2 with
        offset 0)."""
        return TextSeek(self, cookie, whence)

    def truncate(self, size: int | None = None) -> FileCall[int]:
        """Flush, then truncate the buffer at `size` (at its position if None)."""
        return TextTruncate(self, size)

    def fsync(self) -> FileCall[None]:
        """Flush, then make everything written durable."""
        return TextFsync(self)

    def close(self) -> FileCall[None]:
        """Flush and close; closing a closed file does nothing."""
        return TextClose(self)

    def __repr__(self) -> str:
        return f"<TextFile name={self.name!r} mode={self.mode!r} encoding={self.encoding!r}>"


def _read_size(size: object) -> int:
    try:
        return operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"argument should be integer or None, not '{type(size).__name__}'"
        ) from None
