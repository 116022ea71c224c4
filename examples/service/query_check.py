"""Query parameters an endpoint does not take are refused, never ignored.

Rules:
- Every API route is a `QueryCheckedRoute`: before FastAPI's handler solves anything, it
  compares the request's query parameters with those the route declares (its own and its
  dependencies'), and answers 422 naming the ones it does not take. A misspelt `limt`,
  or a Datasette habit like `_sort=title`, would otherwise be silently ignored and
  copied into every `next` link.
- The declared names are read once, from the route's dependency tree, when FastAPI builds
  the route's handler; the check then costs a set lookup per parameter. (As a dependency
  it cost a second round of FastAPI's dependency solving on every request.) The tree is
  the route's own, with its router's dependencies: a dependency added by
  `include_router(..., dependencies=...)` is not in it, and the application adds none.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from examples.service.errors import ServiceError

__all__ = ["QueryCheckedRoute"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _declared(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


def _refuse_unknown(request: Request, declared: frozenset[str]) -> None:
    """Raise `ServiceError` 422 naming each query parameter of `request` that is not in
    `declared`."""
    unknown = sorted({k for k in request.query_params if k not in declared})
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        takes = ", ".join(sorted(declared)) or "none"
        raise ServiceError(
            422,
            f"unknown query parameter(s) {names}: {request.method} {request.url.path} "
            f"takes: {takes}",
        )


class QueryCheckedRoute(APIRoute):
    """An API route that refuses the query parameters it does not declare (422, raised as
    `ServiceError` before the route's own parameters are validated)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        declared = frozenset(_declared(self.dependant))

        async def checked(request: Request) -> Response:
            if request.scope["query_string"]:
                _refuse_unknown(request, declared)
            return await handler(request)

        return checked
