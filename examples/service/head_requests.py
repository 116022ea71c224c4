"""HEAD on every GET endpoint: the same status and headers, no body.

Rules:
- FastAPI routes a GET endpoint for GET only; `HeadMiddleware` sends a HEAD request to the
  application as a GET (on a copy of the scope: the server still knows it answers a HEAD
  and sends no body) and drops every body byte on the way out.
- A streamed response (an export) is told by `is_head(scope)` not to read its table at
  all: headers only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadMiddleware", "is_head"]

_HEAD = "ioresult.head"
"""Set in the scope of a HEAD request that the application sees as a GET."""


def is_head(scope: Scope) -> bool:
    """Whether the request is a HEAD answered as a GET (no body is wanted)."""
    return bool(scope.get(_HEAD, False))


class HeadMiddleware:
    """Answer HEAD as GET without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def send_headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", _HEAD: True}, receive, send_headers_only)
