"""The JSON body of a write is bounded: a body past `max_write_bytes` is a 413.

Rules:
- `BodyLimitMiddleware` applies to POST and PATCH (the writes with a JSON body; uploads
  are PUT and have their own limit, enforced as they stream to disk). A Content-Length
  past the limit is answered at once, before any of the body is read; a body sent
  without one is counted as it arrives and refused as soon as it passes the limit.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from examples.service.errors import error_response

__all__ = ["BodyLimitMiddleware"]

_BOUNDED = frozenset({"POST", "PATCH"})


class BodyLimitMiddleware:
    """Refuse POST and PATCH bodies longer than `limit` bytes with a 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _message(self) -> str:
        return (
            f"the request body is larger than the limit of {self.limit} bytes (set "
            "IORESULT_MAX_WRITE_BYTES to change it; send large changes as several batches)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BOUNDED:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                # The rest of the body is not read: the connection cannot carry another.
                response = error_response(413, self._message(), headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI lets an HTTPException out of reading the body as it is.
                    raise HTTPException(413, self._message(), headers={"Connection": "close"})
            return message

        await self.app(scope, bounded_receive, send)
