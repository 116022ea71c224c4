"""The async side: drive core operations from asyncio, uvloop or trio.

- `drive(op, io=None, *, timeout=None)` runs any core operation on the running event loop.
- `AsyncFileIO` is the file backend for event loops: page-cache hits complete inline, the
  rest goes to a small pool of worker threads whose results come back on the loop thread.
"""

from bridge._drive import drive
from bridge._drive_common import DEFAULT_SETTLE_TIMEOUT, DEFAULT_TIME_SLICE
from bridge._errors import (
    ConcurrentDriveError,
    DriveTimeoutError,
    EventLoopError,
    InvalidArgumentError,
)
from bridge._fileio import (
    DEFAULT_INLINE_BUDGET,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_WORKERS,
    AsyncFile,
    AsyncFileIO,
)
from bridge.aiofile import open

__all__ = [
    "DEFAULT_INLINE_BUDGET",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_SETTLE_TIMEOUT",
    "DEFAULT_TIME_SLICE",
    "DEFAULT_WORKERS",
    "AsyncFile",
    "AsyncFileIO",
    "ConcurrentDriveError",
    "DriveTimeoutError",
    "EventLoopError",
    "InvalidArgumentError",
    "drive",
    "open",
]
