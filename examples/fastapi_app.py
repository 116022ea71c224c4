"""FastAPI on the async core: one `AsyncFileIO` and the databases are opened in the lifespan,
handed to the handlers by dependencies, and closed at shutdown (see docs/fastapi.md).

Run: python examples/fastapi_app.py data/sample.db [more.db ...]
 or: IORESULT_DATABASES=data/sample.db python -m examples.fastapi_app   (PORT=8000 by default)
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

import bridge
from bridge import AsyncFileIO, drive
from bridge.storage import AsyncDatabase, encode_row
from core.io import OpenFlags
from core.ops import ReadRange
from core.storage import SchemaError


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the backend and the databases before the first request, close them after the last."""
    paths = os.environ.get("IORESULT_DATABASES", "data/sample.db").split(os.pathsep)
    async with AsyncExitStack() as stack:  # unwinds in reverse: databases, then the backend
        io = await stack.enter_async_context(AsyncFileIO())
        app.state.io, app.state.dbs = io, {}
        for path in map(Path, paths):
            app.state.dbs[path.stem] = await stack.enter_async_context(
                await AsyncDatabase.open(io, path)
            )
        yield


app = FastAPI(lifespan=lifespan)


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a thread
# hop per request for what is a dictionary look-up.
async def file_io(request: Request) -> AsyncFileIO:
    """The application's one backend."""
    io: AsyncFileIO = request.app.state.io
    return io


async def database(name: str, request: Request) -> AsyncDatabase:
    """The database named in the path."""
    db: AsyncDatabase | None = request.app.state.dbs.get(name)
    if db is None:
        raise HTTPException(404, f"no database {name!r}")
    return db


FileIO = Annotated[AsyncFileIO, Depends(file_io)]
Database = Annotated[AsyncDatabase, Depends(database)]


@app.exception_handler(SchemaError)
async def unknown_name(request: Request, exc: Exception) -> JSONResponse:
    """An unknown table is the client's mistake: 404, not 500."""
    return JSONResponse({"detail": str(exc)}, status_code=404)


@app.get("/{name}/tables/{table}/count")
async def count(table: str, db: Database) -> int:
    return await db.count(table)  # every AsyncDatabase method is one `await drive(op)`


@app.get("/{name}/tables/{table}/rows/{rowid}")
async def row(table: str, rowid: int, db: Database) -> list[object]:
    found = await db.get(table, rowid)
    if found is None:
        raise HTTPException(404, f"no row {rowid} in {table!r}")
    return encode_row(found)  # as sqlite3 gives SELECT rowid, *; blobs as {"$base64": ...}


@app.get("/{name}/header")
async def header(db: Database, io: FileIO) -> dict[str, object]:
    # A file opened per request is closed by its `with`: left open, each request would
    # hold a descriptor until shutdown.
    with io.open_file(db.path, OpenFlags.READ_ONLY) as f:
        head = await drive(ReadRange(f, 0, 100, exact=True), io)
    size = int.from_bytes(head[16:18], "big")
    return {"magic": head[:15].decode(), "page_size": 65536 if size == 1 else size}


@app.get("/{name}/magic")
async def magic(db: Database, io: FileIO) -> str:
    # The same through `bridge.open` (aiofiles' API), on the application's backend.
    async with bridge.open(db.path, "rb", io=io) as f:
        data: bytes = await f.read(15)
    return data.decode()


if __name__ == "__main__":
    import uvicorn

    if sys.argv[1:]:
        os.environ["IORESULT_DATABASES"] = os.pathsep.join(sys.argv[1:])
    uvicorn.run(app, port=int(os.environ.get("PORT", "8000")))
