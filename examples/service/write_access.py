"""Who may write: writes are off unless the service has a write token, and a write
request must carry it.

Rules:
- Without a token configured (`--write-token`, `IORESULT_WRITE_TOKEN`), every write is a
  403 that says how to enable writes: the databases are not even opened writable.
- With one, a write request without `Authorization: Bearer <token>`, or with another
  token, is a 401 (with `WWW-Authenticate: Bearer`). Tokens are compared in constant time
  (`hmac.compare_digest`), so the answer's timing says nothing about the token.
- `require_write_token` is a dependency of every write route; FastAPI runs it before it
  validates the request's body, so a stranger learns nothing about the body's rules. It is
  a coroutine function, so FastAPI runs it on the loop, not in a worker thread.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from examples.service.errors import ServiceError
from examples.service.settings import Settings

__all__ = ["require_write_token"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="write token",
    description="The token the service was started with (--write-token).",
)
"""Declares the scheme in the OpenAPI schema (so /docs has an Authorize button); the
check itself is ours, to answer in the service's own words."""


async def require_write_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Raise `ServiceError` 403 if writes are disabled, 401 unless the request carries
    the write token."""
    settings: Settings = request.app.state.settings
    token = settings.write_token
    if token is None:
        raise ServiceError(
            403,
            "writes are disabled: start the service with --write-token TOKEN (or set "
            "IORESULT_WRITE_TOKEN) and send 'Authorization: Bearer TOKEN' with each write",
        )
    given = credentials.credentials if credentials is not None else ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        what = "a wrong token" if given else "no bearer token"
        raise ServiceError(
            401,
            f"this write needs the service's write token, got {what}: send "
            "'Authorization: Bearer TOKEN'",
            headers={"WWW-Authenticate": "Bearer"},
        )
