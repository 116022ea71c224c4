"""Shared by the service's tests: an in-process client of the application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

__all__ = ["asgi_client"]


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
