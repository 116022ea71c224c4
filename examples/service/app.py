"""The FastAPI application: browse and query SQLite databases through the async core.

Theory of operation:
- One `AsyncFileIO` is opened in the lifespan and closed on shutdown; every read of every
  request is one `await drive(op, io)` on it (through `bridge.storage.AsyncDatabase`), so
  the event loop never blocks on a page: cache hits finish inline, misses go to the
  backend's small worker pool.
- `create_app` only assembles: the routers (`routes/`, one per resource) run the queries
  (`queries/`), `errors.py` turns what they raise into HTTP errors, and the databases
  served and their leases live in `databases.py`. Every API route refuses unknown query
  parameters (`query_check.py`), and answers HEAD as GET without a body
  (`head_requests.py`).
- The settings are fixed when the application is made (`app.state.settings`); the lifespan
  reads them from there, and sets `app.state.databases` and `app.state.io` for the routes.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bridge import AsyncFileIO
from examples.service.body_limit import BodyLimitMiddleware
from examples.service.databases import Databases
from examples.service.docs_pages import install_docs
from examples.service.errors import ERROR_RESPONSES, install_error_handlers
from examples.service.head_requests import HeadMiddleware
from examples.service.queries.paging import encode_token
from examples.service.routes import routers
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from examples.service.web import router as web_router

__all__ = ["create_app"]

# Scripts written before the queries had modules of their own import the token encoder
# from here; `queries.paging.encode_token` is its home.
_encode_token = encode_token

log = logging.getLogger("examples.service")

_DESCRIPTION = (
    "Every page of every database is read by the storage engine in `core.storage`, "
    "driven from the event loop with `await bridge.drive(op)`. Blobs appear in JSON "
    'as `{"$base64": true, "encoded": ...}`, infinities as `{"$float": "Infinity"}`.'
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, configured by `settings` (default: `Settings.from_env()`)."""
    settings = settings if settings is not None else Settings.from_env()
    app = FastAPI(
        title="ioresult SQLite browser",
        version="0.1.0",
        summary="Browse and query SQLite databases through ioresult's async core.",
        description=_DESCRIPTION,
        lifespan=lifespan,
        # A trailing "/" is not dropped by a redirect: a name or key that ends in one (sent
        # as %2F, which servers decode) would be answered for the name without it.
        redirect_slashes=False,
        # Served from local files instead of a CDN (`docs_pages.py`).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(HeadMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_write_bytes)
    for router in routers(settings):
        # Every endpoint refuses query parameters it does not take (`QueryCheckedRoute`:
        # 422, documented here).
        app.include_router(router, responses={422: ERROR_RESPONSES[422]})
    app.include_router(web_router(settings))
    # Routes are matched in order: the API's first, as they take nearly every request.
    install_docs(app)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Make the sample if it is missing, then serve the databases until shutdown."""
    settings: Settings = app.state.settings
    await _create_sample(settings)
    async with AsyncFileIO(workers=settings.workers, nowait=settings.nowait) as io:
        databases = Databases(io, settings)
        await databases.start()
        app.state.databases = databases
        app.state.io = io
        try:
            yield
        finally:
            databases.close()


async def _create_sample(settings: Settings) -> None:
    if settings.create_sample and not settings.sample_path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        log.warning(
            "creating the sample database at %s (%d books; first run only)",
            settings.sample_path,
            settings.sample_rows,
        )
        # sqlite3 writes it: a few seconds that must not stall the loop.
        await asyncio.to_thread(
            create_sample_database, settings.sample_path, rows=settings.sample_rows
        )
