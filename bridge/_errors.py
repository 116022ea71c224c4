"""Errors the bridge raises on purpose; each derives from `core.errors.IOResultError`.

Where Python already has a familiar exception for the situation, ours derives from that as
well, so `except TimeoutError` or `except ValueError` keeps working for callers that do not
know this library.
"""

from __future__ import annotations

from core.errors import IOResultError

__all__ = [
    "ConcurrentDriveError",
    "DriveTimeoutError",
    "EventLoopError",
    "InvalidArgumentError",
]


class ConcurrentDriveError(IOResultError, RuntimeError):
    """`drive(op)` was called while another `drive` is still running the same operation
    object; the second call is refused before it touches the operation."""


class DriveTimeoutError(IOResultError, TimeoutError):
    """`drive(op, timeout=...)` gave up: the operation was aborted when the timeout expired."""


class EventLoopError(IOResultError, RuntimeError):
    """No usable event loop: called outside asyncio/uvloop/trio, from the wrong thread or
    loop, or a backend that needs the loop was driven with the blocking `block`."""


class InvalidArgumentError(IOResultError, ValueError):
    """An argument was out of range; the message names it and the value given."""
