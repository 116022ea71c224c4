"""What the raw and buffered binary calls share: their arguments, taken as CPython takes them,
and the one way a call waits on an I/O it submitted.

Theory of operation:
- A bytes-like argument becomes a flat byte `memoryview` at once, when the call is made, with
  CPython's `TypeError` messages; a call never holds the caller's object in any other form,
  so what it copies in or out is exactly the bytes CPython would.
- A call that submitted an I/O yields its completion only while it is still running; one that
  finished inline (a page-cache hit, a memory backend) is consumed in the same step, so a
  driver never sees an `IO` of a finished completion from a file call.
"""

from __future__ import annotations

import operator
from typing import Final, Literal

from core.completion import Completion
from core.io.backend import Buffer
from core.result import IO
from core.state_machine import Continue, ContinueType

__all__ = ["READ_ALL_CHUNK", "byte_view", "size_arg", "wait"]

READ_ALL_CHUNK: Final = 64 * 1024
"""What a read to the end asks for per raw read once the size the file reported is used up
(the file grew while it was read)."""


def wait(c: Completion) -> IO | Literal[ContinueType.CONTINUE]:
    """Yield `c` if it is still running; otherwise continue at once (it finished inline)."""
    return IO(c) if not c.finished() else Continue


def size_arg(size: int | None, message: str) -> int:
    """A size argument: -1 for None; raises `TypeError` for a non-integer and `ValueError`
    (`message`) below -1."""
    n = -1 if size is None else operator.index(size)
    if n < -1:
        raise ValueError(message)
    return n


def byte_view(data: Buffer, what: str, *, writable: bool) -> memoryview:
    """`data` as a flat byte view, for the `what()` call; `writable` for a buffer read into.
    Raises `TypeError` with CPython's message when `data` is not (writable) bytes-like."""
    try:
        view = memoryview(data)
    except TypeError:
        kind = "read-write bytes-like object" if writable else "bytes-like object"
        if writable:
            raise TypeError(
                f"{what}() argument must be {kind}, not {type(data).__name__}"
            ) from None
        raise TypeError(f"a {kind} is required, not '{type(data).__name__}'") from None
    if writable and view.readonly:
        raise TypeError(f"{what}() argument must be read-write bytes-like object, not bytes")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view
