"""Who may write from a browser: the write token entered once, then a cookie and a CSRF
token on every write form.

Rules:
- A person unlocks writes by entering the service's write token (`--write-token`) in a
  form; it is compared in constant time (`hmac.compare_digest`). The answer sets a cookie
  holding a random session id, never the token: HttpOnly (no script reads it),
  SameSite=Strict (no other site's form sends it), Path=/browse, Secure over HTTPS.
- Sessions live in this process's memory (`WriteSessions`, one per application): a
  restart locks everyone out again, which is the point of not deriving them from the
  token. The oldest are forgotten past `MAX_SESSIONS`.
- Each session has its own random CSRF token, put in every write form and checked on
  every POST: a missing or wrong one is a 403, even with a good cookie.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict

from fastapi import Request
from fastapi.responses import Response

from examples.service.errors import ServiceError
from examples.service.settings import Settings

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "WriteSessions",
    "check_token",
    "require_csrf",
    "session_csrf",
    "sessions_of",
    "unlock",
    "writes_enabled",
]

COOKIE = "ioresult_writes"
CSRF_FIELD = "_csrf"
MAX_SESSIONS = 1000


class WriteSessions:
    """The unlocked sessions of one application: session id -> its CSRF token."""

    def __init__(self) -> None:
        self._csrf: OrderedDict[str, str] = OrderedDict()

    def open(self) -> tuple[str, str]:
        """A new session: its id (the cookie's value) and its CSRF token."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._csrf[sid] = csrf
        while len(self._csrf) > MAX_SESSIONS:
            self._csrf.popitem(last=False)
        return sid, csrf

    def csrf(self, sid: str | None) -> str | None:
        """The CSRF token of session `sid`, or None if it is no session of ours."""
        if not sid:
            return None
        return self._csrf.get(sid)

    def close(self, sid: str | None) -> None:
        """Forget session `sid`."""
        if sid:
            self._csrf.pop(sid, None)


def sessions_of(request: Request) -> WriteSessions:
    """The application's sessions, made on first use."""
    state = request.app.state
    found = getattr(state, "write_sessions", None)
    if found is None:
        found = state.write_sessions = WriteSessions()
    assert isinstance(found, WriteSessions)
    return found


def writes_enabled(request: Request) -> bool:
    """Whether the service has a write token (else no write form is shown)."""
    settings: Settings = request.app.state.settings
    return settings.writes_enabled


def session_csrf(request: Request) -> str | None:
    """The CSRF token of the request's session, or None when writes are locked for it."""
    if not writes_enabled(request):
        return None
    return sessions_of(request).csrf(request.cookies.get(COOKIE))


def check_token(request: Request, given: str) -> bool:
    """Whether `given` is the service's write token (constant-time)."""
    token = request.app.state.settings.write_token
    if token is None or not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def unlock(request: Request, response: Response) -> None:
    """Open a session and set its cookie on `response`."""
    sid, _ = sessions_of(request).open()
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/browse",
    )


def require_csrf(request: Request, form: dict[str, str]) -> None:
    """Raise `ServiceError` 403 unless writes are enabled, the request has a session
    cookie, and `form` carries that session's CSRF token."""
    if not writes_enabled(request):
        raise ServiceError(403, "writes are disabled: start the service with --write-token TOKEN")
    expected = sessions_of(request).csrf(request.cookies.get(COOKIE))
    if expected is None:
        raise ServiceError(
            403, "writes are locked in this browser: unlock them with the write token first"
        )
    given = form.get(CSRF_FIELD, "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        what = "a wrong" if given else "no"
        raise ServiceError(
            403,
            f"this form carries {what} CSRF token: reload the page it came from and "
            "submit it again",
        )
