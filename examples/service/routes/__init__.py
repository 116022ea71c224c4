"""The HTTP face of the service: one `APIRouter` per resource, in a module of its own.

Rules:
- A route parses and checks its parameters, leases the database it reads for as long as
  it reads (`Databases.lease`), calls one query (`queries/`) and wraps the result in a
  response. It holds no storage logic and builds no error response: it raises, and
  `errors.py` answers.
- The settings shape the OpenAPI schema (page limits, the upload limit), so a router that
  depends on them is built per application by `router(settings)`; every module has a
  `router(...)` for the same reason of symmetry.
- These modules do not use `from __future__ import annotations`: FastAPI reads the
  endpoints' annotations at run time, and some are built per application (`Limit`).
- Every router is built with `route_class=QueryCheckedRoute`, so each of its routes
  refuses query parameters it does not take (`query_check.py`).
- `routers` lists them in the order their paths appear in the schema, which is also the
  order `/docs` shows the endpoints of each tag in.
"""

from fastapi import APIRouter

from examples.service.routes import databases, exports, rows, tables, uploads, writes
from examples.service.settings import Settings

__all__ = ["routers"]


def routers(settings: Settings) -> list[APIRouter]:
    """Every router of the service, configured by `settings`."""
    return [
        databases.router(),
        tables.router(),
        rows.router(settings),
        exports.router(settings),
        uploads.router(settings),
        writes.router(settings),
    ]
