"""Plain GET requests of the hottest endpoints skip FastAPI's per-request machinery.

Rules:
- `DirectRoute` is an `APIRoute` (same path, schema, docs and errors) whose `handle` first
  tries a direct call: when the request is a GET whose every query parameter is one the
  endpoint declares, given once (a list parameter: any number of times), and whose every
  value is one FastAPI would take as it is (any text for a text parameter; for an
  integer, plain ASCII digits without a leading zero, within the declared bounds), the
  endpoint is called with those values and its response sent. FastAPI's handler would
  have called it with the same values; what it costs per request (two exit stacks, the
  dependency solver, a pydantic validation per parameter, telemetry spans for them) is
  what this saves.
- Anything else goes to FastAPI's handler, which answers exactly as before: an unknown or
  repeated parameter, a missing one, a value it may refuse or convert (`limit=020`,
  `limit=+20`, `limit=0`, `limit=`). So every error a client can get is FastAPI's own,
  or the endpoint's, or `query_check.reject_unknown_query`'s.
- The fast path stands in for the route's dependencies, so a route takes it only if it
  has none of its own, only query and path parameters of the kinds above (and the
  `Request`), and an async endpoint annotated to return a `Response` (sent as it is, as
  FastAPI sends it). The one dependency an including router adds, `reject_unknown_query`,
  needs no call here: a request it would refuse has an unknown parameter, so it never
  takes the fast path (a test holds the included routes to that).
- The plan (which parameter is what) is read once, from the route's dependant, when the
  route is built.
- `DirectDispatch`, the application's first route, matches the direct routes before
  FastAPI walks its included routers (which costs more than the endpoint of a row by
  key), for the requests they take directly; any other request goes on to the routes
  behind it. While OpenTelemetry records a request (FastAPI's telemetry), neither
  shortcut is taken, so its spans are FastAPI's own.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from annotated_types import Ge, Le
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

__all__ = ["DirectDispatch", "DirectRoute"]

_MAX_DIGITS = 18
"""An integer longer than this may pass a bound pydantic checks differently: not direct."""
_TELEMETRY = "fastapi.telemetry"
"""Set in the scope by FastAPI while OpenTelemetry records the request."""
_ARGUMENTS = "ioresult.direct_arguments"
"""Set in the scope by `DirectDispatch.matches` for its `handle`."""


@dataclass(frozen=True, slots=True)
class _Param:
    """How one query parameter is taken on the fast path."""

    name: str
    kind: str
    """"text" (str or str | None), "int", or "list" (list[str])."""
    required: bool
    default: Any
    ge: int | None = None
    le: int | None = None


class _Skip(Exception):
    """The request is not one the fast path takes: FastAPI's handler answers it."""


def _plan(route: APIRoute) -> dict[str, _Param] | None:
    """The query parameters of `route` by name, or None if it cannot take the fast path."""
    dependant = route.dependant
    if (
        dependant.dependencies
        or dependant.body_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.http_connection_param_name
        or dependant.security_scopes_param_name
        or route.methods != {"GET"}
        or route.status_code is not None
    ):
        return None
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        return None
    returns = inspect.signature(call).return_annotation
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        return None
    for field in dependant.path_params:
        info = field.field_info
        if info.annotation is not str or info.metadata or field.alias != field.name:
            return None
    params: dict[str, _Param] = {}
    for field in dependant.query_params:
        info = field.field_info
        if field.alias != field.name or info.validation_alias is not None:
            return None
        annotation = info.annotation
        required = info.is_required()
        default = None if required else info.get_default(call_default_factory=True)
        ge = le = None
        if annotation is str or annotation == (str | None):
            kind = "text"
        elif annotation is int:
            kind = "int"
        elif get_origin(annotation) is list and get_args(annotation) == (str,):
            kind = "list"
        else:
            return None
        for item in info.metadata:
            if kind == "int" and isinstance(item, Ge) and isinstance(item.ge, int):
                ge = item.ge
            elif kind == "int" and isinstance(item, Le) and isinstance(item.le, int):
                le = item.le
            else:
                return None
        params[field.name] = _Param(field.name, kind, required, default, ge, le)
    return params


def _arguments(plan: dict[str, _Param], query: QueryParams) -> dict[str, Any]:
    """The endpoint's query arguments; raises `_Skip` for a request not taken directly."""
    values: dict[str, Any] = {}
    for key, value in query.multi_items():
        param = plan.get(key)
        if param is None:
            raise _Skip  # refused (422) by reject_unknown_query
        kind = param.kind
        if kind == "list":
            values.setdefault(key, []).append(value)
            continue
        if key in values:
            raise _Skip  # FastAPI takes one of them: let it say which
        if kind == "int":
            if not (
                value.isascii()
                and value.isdigit()
                and len(value) <= _MAX_DIGITS
                and (value[0] != "0" or value == "0")
            ):
                raise _Skip
            number = int(value)
            if (param.ge is not None and number < param.ge) or (
                param.le is not None and number > param.le
            ):
                raise _Skip
            values[key] = number
        else:
            values[key] = value
    for param in plan.values():
        if param.name not in values:
            if param.required:
                raise _Skip
            # A fresh list, as FastAPI copies a default: an endpoint may change it.
            default = param.default
            values[param.name] = list(default) if param.kind == "list" else default
    return values


class DirectRoute(APIRoute):
    """An `APIRoute` whose plain GET requests call the endpoint directly (module docstring)."""

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.direct_plan = _plan(self)
        """The query parameters the fast path takes, or None if it never applies."""
        self._path_names = [f.name for f in self.dependant.path_params]
        self.direct_calls = 0
        """Requests answered by the fast path (tests count them)."""

    def direct_arguments(self, scope: Scope) -> dict[str, Any] | None:
        """The endpoint's query arguments if the request takes the fast path, else None."""
        plan = self.direct_plan
        if (
            plan is None
            or scope["method"] != "GET"
            # With OpenTelemetry recording, FastAPI's handler makes the spans it makes.
            or scope.get(_TELEMETRY) is not None
        ):
            return None
        try:
            return _arguments(plan, QueryParams(scope["query_string"]))
        except _Skip:
            return None

    async def direct_call(
        self, scope: Scope, receive: Receive, send: Send, arguments: dict[str, Any]
    ) -> None:
        """Call the endpoint with the query `arguments`, the path's and the request; send
        its response."""
        request = Request(scope, receive, send)
        path_params = scope["path_params"]
        for name in self._path_names:
            arguments[name] = path_params[name]
        request_name = self.dependant.request_param_name
        if request_name is not None:
            arguments[request_name] = request
        self.direct_calls += 1
        call = self.dependant.call
        assert call is not None  # `_plan` checked
        response: Response = await call(**arguments)
        await response(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        arguments = self.direct_arguments(scope)
        if arguments is None:
            await super().handle(scope, receive, send)
        else:
            await self.direct_call(scope, receive, send, arguments)


class DirectDispatch(BaseRoute):
    """The first route of an application: a GET request that one of `routes` takes on its
    fast path is matched here, by that route's own `matches`, and answered; anything else
    is no match, and the routes behind this one answer as ever.

    FastAPI finds a route of an included router by asking each router before it, then
    matches it again inside its router, at several times the cost of the endpoint of a
    row by key. Matching the direct routes first changes no answer as long as no route
    before them in the application takes a request they take (the tests compare the
    answers with and without this dispatch)."""

    def __init__(self, routes: Iterable[DirectRoute]) -> None:
        self.routes = [r for r in routes if r.direct_plan is not None]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                arguments = route.direct_arguments(scope)
                if arguments is None:
                    return Match.NONE, {}
                child_scope[_ARGUMENTS] = arguments
                return match, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: DirectRoute = scope["route"]
        await route.direct_call(scope, receive, send, scope.pop(_ARGUMENTS))
