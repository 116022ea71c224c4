"""The responses the endpoints answer with, besides FastAPI's own.

Rules:
- A body with rows is encoded once, by `encoding.dumps` (blobs as base64 with a marker,
  infinities as marked strings), and sent as it is: `json_response` skips FastAPI's
  validation and re-encoding, which would cost more than the reading did. `models.py`
  describes these bodies for the OpenAPI schema, and the tests hold them to it.
- A streamed body always has its iterator closed when the response ends, however it ends
  (`ClosingStreamingResponse`), because the iterator holds a lease and a read in progress.
"""

from collections.abc import Awaitable, Callable

from fastapi.responses import Response, StreamingResponse
from starlette.types import Send

from examples.service.encoding import dumps

__all__ = ["ClosingStreamingResponse", "json_response"]

_JSON = "application/json"


def json_response(payload: object, status: int = 200) -> Response:
    """`payload` encoded by `encoding.dumps`."""
    return Response(dumps(payload), status_code=status, media_type=_JSON)


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body iterator, so an export's reading
    and its lease end as soon as the response does, however it ends."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose: Callable[[], Awaitable[None]] | None = getattr(
                self.body_iterator, "aclose", None
            )
            if aclose is not None:
                await aclose()
