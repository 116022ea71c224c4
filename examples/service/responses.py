"""The responses the endpoints answer with, besides FastAPI's own.

Rules:
- A body with rows is encoded once, by `encoding.dumps` (blobs as base64 with a marker,
  infinities as marked strings), and sent as it is: `json_response` skips FastAPI's
  validation and re-encoding, which would cost more than the reading did. A page's rows
  may come encoded already (`encoding.Encoded`); `encoding.dumps_body` splices them in. `models.py`
  describes these bodies for the OpenAPI schema, and the tests hold them to it.
- A streamed body always has its iterator closed when the response ends, however it ends
  (`ClosingStreamingResponse`), because the iterator holds a lease and a read in progress.
"""

from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from examples.service.encoding import dumps, dumps_body
from examples.service.head_requests import is_head

__all__ = ["ClosingStreamingResponse", "ResponseCut", "json_response"]

_JSON = "application/json"


def json_response(payload: object, status: int = 200) -> Response:
    """`payload` encoded by `encoding.dumps` (a dict by `encoding.dumps_body`)."""
    body = dumps_body(payload) if type(payload) is dict else dumps(payload)
    return Response(body, status_code=status, media_type=_JSON)


class ResponseCut(Exception):
    """Raised by a streamed body that cannot go on (it logged why): the response ends
    without its last chunk, so no client mistakes what it got for the whole."""


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body iterator, so an export's reading
    and its lease end as soon as the response does, however it ends. A body that raises
    `ResponseCut` ends the response unfinished and quietly: the body logged the reason,
    and a traceback of a response already started would tell an operator nothing more.
    A HEAD request (`head.is_head`) gets the headers and never reads the body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_head(scope):
            headers = self.raw_headers
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await self._close_body()
            return
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except ResponseCut:
            pass  # the server sees the response unfinished and closes the connection
        finally:
            await self._close_body()

    def __init__(
        self,
        content: AsyncIterable[bytes],
        *,
        on_close: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close
        """Called when the response ends, however it ends: an iterator never started is
        not run by closing it, so what it holds is given back here."""

    async def _close_body(self) -> None:
        try:
            aclose: Callable[[], Awaitable[None]] | None = getattr(
                self.body_iterator, "aclose", None
            )
            if aclose is not None:
                await aclose()
        finally:
            if self.on_close is not None:
                await self.on_close()
