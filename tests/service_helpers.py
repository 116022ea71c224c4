"""Shared by the service's tests: an in-process client of the application, and the walks
of a sort order's pages both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from asgi_lifespan import LifespanManager

if TYPE_CHECKING:
    from examples.service.queries.sorting import Order

__all__ = ["asgi_client", "http_scope", "walk_backward", "walk_forward"]


@asynccontextmanager
async def asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that calls `app` in-process, inside the app's lifespan (startup before
    the first request, shutdown after the block). `client.app` is the app, for tests that
    look at its state."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://test"
        ) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


def http_scope(
    method: str, path: str, query: bytes, state: dict[str, Any], spec_version: str = "2.3"
) -> dict[str, Any]:
    """The ASGI scope of one HTTP request, for tests that call the app with their own
    `receive` and `send` (a disconnect, a body cut short); `state` is the lifespan's."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": dict(state),
    }


async def walk_forward(order: Order, n: int) -> list[Any]:
    """Every row of `order`, reading pages of `n` forward from the start."""
    seen: list[Any] = []
    cut = None
    while True:
        page, ended = await order.forward(cut, n)
        seen += [w.row for w in page]
        if ended or not page:
            return seen
        cut = page[-1].after


async def walk_backward(order: Order, n: int) -> list[Any]:
    """Every row of `order`, reading pages of `n` backward from the end."""
    seen: list[Any] = []
    cut = None
    while True:
        page, at_start = await order.backward(cut, n)
        seen = [w.row for w in page] + seen
        if at_start or not page:
            return seen
        cut = page[0].before
