"""What the asyncio driver (`bridge._drive`) and the trio driver (`bridge._trio`) share.

Rules it keeps:
- It imports neither driver, so both (and the file backend) can import it at module level
  without an import circle: `bridge._drive` imports `bridge._trio` only lazily, when a drive
  runs under trio, and `bridge._trio` needs nothing of `bridge._drive`.
- Nothing here is on the per-step path of a drive; these run once per call or when a drive
  gives up (a cancellation, a timeout).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Generator
from typing import Any

import sniffio

from bridge._errors import ConcurrentDriveError, InvalidArgumentError
from core.driver import abort_operation
from core.unraisable import report_unraisable

__all__ = [
    "DEFAULT_SETTLE_TIMEOUT",
    "DEFAULT_TIME_SLICE",
    "DRIVING",
    "abort_quietly",
    "check_seconds",
    "current_library",
    "one_turn",
    "refuse_second_driver",
    "when_settled_of",
]


@types.coroutine
def one_turn() -> Generator[None, None, None]:
    """Give the asyncio loop exactly one turn (what `asyncio.sleep(0)` does, minus a call)."""
    yield


DEFAULT_TIME_SLICE = 0.002
"""Seconds a run of already-finished steps may hold the loop before it gets a turn."""

DEFAULT_SETTLE_TIMEOUT = 1.0
"""Seconds a cancelled drive waits for work already in a worker to come back."""

DRIVING: set[int] = set()
"""The identities (`id`) of the operations some `drive` is running right now, in any thread:
an operation object is stepped by one driver at a time. A drive adds its operation before
its first await and removes it in `finally`; while it is there the object is alive (the
drive holds it), so its `id` names it alone."""


def current_library() -> str | None:
    """The async library running in this thread (sniffio's cheap lookups), or None."""
    return sniffio.thread_local.name or sniffio.current_async_library_cvar.get()


def refuse_second_driver(op: object) -> None:
    """Raise `ConcurrentDriveError` if another drive is running `op` now."""
    if id(op) in DRIVING:
        raise ConcurrentDriveError(
            f"{op!r} is already being driven by another drive() call; an operation runs "
            "under one driver at a time (await that call, or build a new operation)"
        )


def abort_quietly(op: object, exc: BaseException) -> None:
    """`op.abort(exc)` while a cancellation or timeout is on its way out: an abort that
    raises (it must not) is reported, never allowed to replace the cancellation."""
    try:
        abort_operation(op, exc)
    except Exception as abort_exc:
        report_unraisable(abort_exc, f"Exception in abort() of {op!r}", op)


def when_settled_of(io: object) -> Callable[[Callable[[], object]], bool] | None:
    """The backend's `when_settled(callback) -> bool` (False: nothing is out, the callback
    will not be called), or None for a backend that hands no work to workers."""
    when_settled: Any = getattr(io, "when_settled", None)
    return when_settled if callable(when_settled) else None


def check_seconds(value: object, name: str) -> float:
    """Validate a finite, non-negative number of seconds (an `int` too large for a float,
    infinity and NaN are refused, never read as "no limit": that is None where a limit is
    optional). Raises `InvalidArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{name} must be a number of seconds >= 0, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds >= 0, got an integer too large "
            f"for a float ({int(value).bit_length()} bits)"
        ) from None
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise InvalidArgumentError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return seconds
