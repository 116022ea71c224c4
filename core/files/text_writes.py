"""The writing calls of a text file, and those that flush it first: `write`, `writelines`,
`flush`, `fsync`, `truncate`, `close` (CPython's `_io_TextIOWrapper_write_impl` and the calls
that begin with `textiowrapper_flush`).

Theory of operation:
- `write` translates newlines, encodes, and queues the bytes in `pending`; they are handed to
  the buffer (one buffered `write`, the shared `_write_pending` step) once more than
  `chunk_size` bytes wait, or at a line end with line buffering, which also flushes the
  buffer. A write that only queues needs no I/O: `TextFile.write` answers it with `Ready`.
- Every write ends the read state (decoded text, snapshot, decoder), as in CPython; so a
  `write()` after a `read()` lands after the chunk that was read, not after the characters
  returned.
- `flush`, `fsync`, `truncate` and `close` flush the text first (the shared `_flush_text`
  step), then run the buffer's call to its end. CPython's quirks are kept: `truncate()`
  without a size truncates at the buffer's position; `close` closes the buffer even if the
  flush fails or is abandoned, and raises the flush's error after.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeVar

from core.files.buffer_state import BufferedCall
from core.files.buffered_random_access import BufferedClose, BufferedFsync, BufferedTruncate
from core.files.call import EachInTurn
from core.files.errors import UnsupportedFileOperation
from core.files.text_state import TextCall, TextState
from core.result import Done
from core.state_machine import Continue, TransitionResult

__all__ = [
    "TextClose",
    "TextFlush",
    "TextFsync",
    "TextTruncate",
    "TextWrite",
    "TextWritelines",
]

T = TypeVar("T")


class _WriteStep(enum.Enum):
    START = "start"
    PENDING = "pending"
    FLUSH = "flush"


class TextWrite(TextCall[int]):
    """`write(s)`: translate newlines, encode, queue; hand over past `chunk_size` bytes or
    at a line end with line buffering. `encoded` is the text already encoded by
    `TextFile.write` (its fast path found the queue would overflow)."""

    __slots__ = ("_encoded", "_needflush", "_state", "_text")

    def __init__(self, t: TextState, text: str, encoded: bytes | None = None) -> None:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        super().__init__(t)
        self._text = text
        self._encoded = encoded
        self._state = _WriteStep.START
        self._needflush = False

    def _check(self) -> None:
        super()._check()
        if self._t._encoder is None:
            raise UnsupportedFileOperation("not writable")

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
                r = self._write_pending()
                if r is not None:
                    return r
                if self._needflush and t.buffer.writable:
                    self._state = _WriteStep.FLUSH
                    return Continue
                return self._done()
            case _WriteStep.FLUSH:
                r = self._flush_writes(True)
                if r is not None:
                    return r
                return self._done()

    def _done(self) -> Done[int]:
        self._t._written()
        return Done(len(self._text))


class TextWritelines(TextCall[None]):
    """`writelines(lines)`: `write()` each line."""

    __slots__ = ("_each",)

    def __init__(self, t: TextState, lines: Iterable[str]) -> None:
        super().__init__(t)
        self._each = EachInTurn(list(lines), lambda line: TextWrite(t, line))

    def _advance(self) -> TransitionResult[None]:
        return self._each.advance()


class TextFlush(TextCall[None]):
    """`flush()`: pending text to the buffer, then the buffer's flush."""

    __slots__ = ()

    def _advance(self) -> TransitionResult[None]:
        r = self._flush_text()
        if r is not None:
            return r
        return Done(None)


class _FlushTextThen(TextCall[T]):
    """Flush the text, then run the buffer's call that `_then()` makes to its end."""

    __slots__ = ("_then",)

    def __init__(self, t: TextState) -> None:
        super().__init__(t)
        self._then: BufferedCall[T] | None = None

    def _advance(self) -> TransitionResult[T]:
        then = self._then
        if then is None:
            r = self._flush_text()
            if r is not None:
                return r
            then = self._then = self._then_call()
        return then._advance()

    def _then_call(self) -> BufferedCall[T]:
        """The buffer's call, once the text is flushed; may raise (its own checks)."""
        raise NotImplementedError


class TextFsync(_FlushTextThen[None]):
    """`fsync()`: flush, then the buffer's fsync."""

    __slots__ = ()

    def _then_call(self) -> BufferedCall[None]:
        return BufferedFsync(self._t.buffer)


class TextTruncate(_FlushTextThen[int]):
    """`truncate(size)`: flush, then the buffer's truncate (at its own position if None)."""

    __slots__ = ("_size",)

    def __init__(self, t: TextState, size: int | None) -> None:
        super().__init__(t)
        self._size = size

    def _then_call(self) -> BufferedCall[int]:
        truncate = BufferedTruncate(self._t.buffer, self._size)
        truncate._check()
        return truncate


class TextClose(_FlushTextThen[None]):
    """`close()`: flush, then close the buffer; the buffer is closed even if the flush fails
    or is abandoned (the flush's error is raised after)."""

    __slots__ = ()

    def _check(self) -> None:
        pass  # closing a closed file does nothing

    def _advance(self) -> TransitionResult[None]:
        if self._then is None and self._bf._closed:
            return Done(None)
        return super()._advance()

    def _then_call(self) -> BufferedCall[None]:
        return BufferedClose(self._t.buffer)

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        self._close_regardless()
