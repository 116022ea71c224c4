"""What wakes a waiting asyncio (or uvloop) drive: the waiter a completion's done-callback
calls, and the resolver of a settle wait.

Compiled in the compiled build: a waiter runs twice per wait (made, then called when the
completion finishes), on every I/O that does not finish inline. It holds nothing to clean
up, so it needs none of the `finally` blocks that keep `bridge._drive_asyncio` interpreted.
"""

from __future__ import annotations

from asyncio import AbstractEventLoop, Future
from threading import get_ident
from typing import Final

from core.completion import Completion

__all__ = ["AsyncioWaiter", "Resolver", "resolve"]

_get_ident: Final = get_ident  # a C static when compiled, not a global lookup per wake-up


class AsyncioWaiter:
    """Wakes one drive call. Registered as the done-callback of the completion it waits on;
    reused across the waits of one call (stale calls from an earlier completion are ignored)."""

    __slots__ = ("completion", "expired", "fut", "loop", "thread_id")

    def __init__(self, loop: AbstractEventLoop) -> None:
        self.loop = loop
        self.thread_id = get_ident()
        self.completion: Completion | None = None
        self.fut: Future[None] | None = None
        self.expired = False

    def wait_on(self, completion: Completion) -> Future[None]:
        """Register as `completion`'s done-callback; return the Future it wakes."""
        self.completion = completion
        self.fut = fut = self.loop.create_future()
        completion.add_done_callback(self)
        return fut

    def forget(self, completion: Completion) -> None:
        """Undo `wait_on`: no longer `completion`'s done-callback, nor woken by it."""
        self.completion = None
        completion.remove_done_callback(self)

    def __call__(self, completion: Completion) -> None:
        if completion is not self.completion:
            return
        fut = self.fut
        if fut is None:
            return
        if _get_ident() == self.thread_id:
            if not fut.done():
                try:
                    fut.set_result(None)
                except RuntimeError:
                    pass  # its loop is closed (a backend closed after it): nobody to wake
            return
        loop = self.loop
        if loop.is_closed():
            return  # nobody is left to wake
        try:
            loop.call_soon_threadsafe(resolve, fut)
        except RuntimeError:
            pass  # the loop closed between the check and the call

    def expire(self) -> None:
        """The timeout's timer: mark expired and wake the waiting task."""
        self.expired = True
        fut = self.fut
        if fut is not None and not fut.done():
            fut.set_result(None)


def resolve(fut: Future[None]) -> None:
    """Set `fut`'s result unless it is done already (cancelled, or woken before)."""
    if not fut.done():
        fut.set_result(None)


class Resolver:
    """A callable that resolves one Future (a settle callback, loop thread only)."""

    __slots__ = ("fut",)

    def __init__(self, fut: Future[None]) -> None:
        self.fut = fut

    def __call__(self) -> None:
        resolve(self.fut)
