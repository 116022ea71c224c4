"""The parameters several routes share, and what a route takes from its request.

Rules:
- A parameter several endpoints take is declared once here, so `/docs` describes it the
  same way everywhere.
- `limit_param` is built from the settings because its bound is part of the schema.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query, Request

from examples.service.databases import Databases
from examples.service.settings import Settings

__all__ = ["DatabaseName", "TableName", "databases_of", "limit_param", "next_page_link"]

DatabaseName = Annotated[str, Path(description="A database's name, from GET /databases.")]
TableName = Annotated[str, Path(description="A table's name (any case).")]


def limit_param(settings: Settings) -> Any:
    """The type of a `limit` query parameter: rows per page, 1 to `settings.max_limit`."""
    limit_doc = f"Rows per page, 1..{settings.max_limit}."
    return Annotated[int, Query(ge=1, le=settings.max_limit, description=limit_doc)]


def databases_of(request: Request) -> Databases:
    """The databases the application serves (set by its lifespan)."""
    databases: Databases = request.app.state.databases
    return databases


def next_page_link(request: Request) -> Callable[[str], str]:
    """`link(after)` for a query: the URL of this request with `after` set to a value."""
    return lambda after: str(request.url.include_query_params(after=after))
