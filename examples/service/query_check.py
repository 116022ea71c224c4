"""Query parameters an endpoint does not take are refused, never ignored.

Rules:
- `reject_unknown_query` is a dependency of every API route: it compares the request's
  query parameters with those the matched route declares (its own and its
  dependencies'), and answers 422 naming the ones it does not take. A misspelt `limt`,
  or a Datasette habit like `_sort=title`, would otherwise be silently ignored and
  copied into every `next` link.
- The declared names are read once per route from FastAPI's dependency tree, and kept
  by the route's id with a weak reference to the route: an id is reused once its route is
  gone (another app's, in a process that builds several), and a new route must never get
  the names of the dead one at its address.
- It is a coroutine function: FastAPI runs a plain `def` dependency in a worker thread,
  a thread hop on every request for a check that never blocks.
"""

from __future__ import annotations

import weakref

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from examples.service.errors import ServiceError

__all__ = ["reject_unknown_query"]

_DECLARED: dict[int, tuple[weakref.ref[APIRoute], frozenset[str]]] = {}
"""The query parameter names of each route seen, by the route's id, with the route."""


def _declared(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Raise `ServiceError` 422 naming each query parameter the route does not declare."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    seen = _DECLARED.get(id(route))
    if seen is not None and seen[0]() is route:
        declared = seen[1]
    else:
        declared = frozenset(_declared(route.dependant))
        _DECLARED[id(route)] = (weakref.ref(route), declared)
    unknown = sorted({k for k in request.query_params if k not in declared})
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        takes = ", ".join(sorted(declared)) or "none"
        raise ServiceError(
            422,
            f"unknown query parameter(s) {names}: {request.method} {request.url.path} "
            f"takes: {takes}",
        )
