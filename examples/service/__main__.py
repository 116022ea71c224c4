"""Run the service: `python -m examples.service` (what `make demo` does).

Creates the sample database on first run, then serves every database under the data
directory with uvicorn on uvloop (httptools parsing HTTP), on 127.0.0.1 by default.
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from examples.service.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    """Parse the options, build the application, serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.service",
        description="Browse and query SQLite databases over HTTP through ioresult's async core.",
        epilog="Options override the IORESULT_* environment variables (see settings.py).",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on, 0 for any (default 8000)")
    parser.add_argument("--data-dir", type=Path, help="where the sample and uploads live")
    parser.add_argument("--rows", type=int, help="books in the sample made on first run")
    parser.add_argument(
        "--max-answer-bytes",
        type=int,
        help="the most JSON a page of rows or one row may answer with, in bytes "
        "(default: IORESULT_MAX_ANSWER_BYTES or 8 MiB)",
    )
    parser.add_argument(
        "--write-token",
        help="enable writes; each write request must send 'Authorization: Bearer TOKEN' "
        "(default: IORESULT_WRITE_TOKEN; unset, the service only reads)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log every request (benchmarks)"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    for option, field in (
        ("host", "host"),
        ("port", "port"),
        ("data_dir", "data_dir"),
        ("rows", "sample_rows"),
        ("max_answer_bytes", "max_answer_bytes"),
        ("write_token", "write_token"),
    ):
        value = getattr(args, option)
        if value is not None:
            overrides[field] = value
    try:
        settings = Settings.from_env(None, **overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from examples.service.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    loop = "uvloop" if sys.platform != "win32" else "asyncio"
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=loop,
        http="httptools",
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )
    server = _AnnouncingServer(config, app)
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shut down cleanly, then re-raised Ctrl+C for us: no traceback for that.
        pass
    return 0


# Young collections once this many more objects were made than freed (CPython's default is
# 700); the older generations keep their default thresholds.
YOUNG_COLLECTION_THRESHOLD = 10_000


class GcTunedServer(uvicorn.Server):
    """A uvicorn server with a garbage-collector policy for serving: once started, every
    object then alive (modules, the application, the opened databases) moves into the
    collector's permanent generation, and young collections run less often.

    The startup objects live as long as the process, yet each full collection would walk
    them all: about 80,000 objects, 25-60 ms on the loop thread, every few seconds under
    load, which was most of the service's p99 latency. With them frozen, the full
    collections of what came later (the databases' caches, 40,000-70,000 objects) still
    took 8-15 ms each, and the default young threshold (700) reached one every few seconds:
    at 10,000, there are fewer young collections (a fifth as many) and full ones (less than
    half as many). Measured with `benchmarks/bench_service.py`, which serves its aiosqlite
    twins with this class too. Objects are collected as usual, only in larger batches.
    Process policy, so it lives here and not in `create_app`.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


class _AnnouncingServer(GcTunedServer):
    """Says where the service is, once it really listens (the port may have been 0)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or not self.servers or not self.servers[0].sockets:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        databases = getattr(self.app.state, "databases", None)
        count = len(databases.entries) if databases is not None else 0
        url = f"http://{host}:{port}"
        settings = getattr(self.app.state, "settings", None)
        writes = settings is not None and settings.writes_enabled
        print(
            f"Serving {count} database(s). API: {url}/databases  Docs: {url}/docs  "
            + ("Writes: on (bearer token)" if writes else "Writes: off (--write-token)"),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
