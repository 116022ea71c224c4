"""The default backend of `bridge.open`: one `AsyncFileIO` per running asyncio/uvloop loop,
one per `trio.run`.

Theory of operation:
- Made on first use. Under asyncio it is closed when the loop shuts down: an async generator
  parked at its `yield` for the life of the loop is closed by `loop.shutdown_asyncgens()`
  (which `asyncio.run` and `asyncio.Runner` call); a later `default_io` that finds its loop
  closed closes it, and so does interpreter exit. Under trio a system task closes it when the
  run ends. Its workers are daemon threads, so nothing can hold the process.
- This module stays plain Python in the compiled build (`bridge.aiofile` compiles): the
  loop only tracks a real async generator object (its first-iteration hook), which a
  compiled async generator is not.
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import AsyncGenerator
from typing import Any

from bridge._drive_common import current_library
from bridge._errors import EventLoopError
from bridge._fileio import AsyncFileIO

__all__ = ["default_io"]

_DEFAULTS: dict[asyncio.AbstractEventLoop, tuple[AsyncFileIO, AsyncGenerator[None, None]]] = {}


async def _close_with_loop(
    loop: asyncio.AbstractEventLoop, io: AsyncFileIO
) -> AsyncGenerator[None, None]:
    """Parked at its `yield` for the life of the loop; `shutdown_asyncgens` closes it."""
    try:
        yield
    finally:
        if _DEFAULTS.get(loop, (None,))[0] is io:
            del _DEFAULTS[loop]
        io.close()


def _close_parked(agen: AsyncGenerator[None, None]) -> None:
    """Close a parked generator without a loop (its `finally` does not await)."""
    closing = agen.aclose()
    try:
        closing.send(None)
    except StopIteration:
        pass
    except RuntimeError:  # already closed or running
        closing.close()


def _prune() -> None:
    for loop, (io, agen) in list(_DEFAULTS.items()):
        if loop.is_closed():
            _close_parked(agen)
            _DEFAULTS.pop(loop, None)
            io.close()


@atexit.register
def _close_all_defaults() -> None:
    for _loop, (io, agen) in list(_DEFAULTS.items()):
        _close_parked(agen)
        io.close()
    _DEFAULTS.clear()


def default_io() -> AsyncFileIO:
    """The shared `AsyncFileIO` of the running loop (asyncio/uvloop) or trio run, made on
    first use and closed when the loop shuts down or the run ends.

    Raises `EventLoopError` outside asyncio, uvloop and trio.
    """
    if current_library() == "trio":
        return _trio_default_io()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise EventLoopError(
            "bridge.open must be awaited under asyncio, uvloop or trio; no running event loop"
        ) from None
    entry = _DEFAULTS.get(loop)
    if entry is not None:
        return entry[0]
    _prune()
    io = AsyncFileIO()
    agen = _close_with_loop(loop, io)
    starting = agen.asend(None)  # the loop's first-iteration hook starts tracking it here
    try:
        starting.send(None)
    except StopIteration:
        pass
    _DEFAULTS[loop] = (io, agen)
    return io


_TRIO_DEFAULT: list[Any] = []  # the trio RunVar, made on first use under trio


def _trio_default_io() -> AsyncFileIO:
    import trio

    if not _TRIO_DEFAULT:
        _TRIO_DEFAULT.append(trio.lowlevel.RunVar("ioresult_default_io"))
    var = _TRIO_DEFAULT[0]
    try:
        io: AsyncFileIO = var.get()
    except LookupError:
        io = AsyncFileIO()
        var.set(io)
        # System tasks are cancelled when the main task returns: the run's end closes it.
        trio.lowlevel.spawn_system_task(_close_with_run, io)
    return io


async def _close_with_run(io: AsyncFileIO) -> None:
    import trio

    try:
        await trio.sleep_forever()
    finally:
        io.close()
