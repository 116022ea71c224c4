"""Running the service in-process, for tests and benchmarks.

`serve_in_thread(app)` starts uvicorn (uvloop, httptools) on 127.0.0.1 on a free port in a
thread of its own and always stops it; `make_wide_database` writes a database whose export
is far larger than any socket buffer (for disconnect tests).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

__all__ = ["RunningServer", "make_wide_database", "serve_in_thread"]


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server started by `serve_in_thread`."""

    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve_in_thread(
    app: FastAPI, *, loop: str = "uvloop", startup_timeout: float = 30.0
) -> Iterator[RunningServer]:
    """Serve `app` on 127.0.0.1 (a free port) in a thread until the block ends.

    Raises `RuntimeError` if the server does not start within `startup_timeout` seconds.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop=loop,
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # The server runs in a thread: it must not touch the main thread's signal handlers.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        pause = threading.Event()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            pause.wait(0.01)
        sockets = server.servers[0].sockets
        host, port = sockets[0].getsockname()[:2]
        yield RunningServer(host, port, server)
    finally:
        server.should_exit = True
        thread.join(startup_timeout)


def make_wide_database(path: Path, *, rows: int = 4000, width: int = 5000) -> Path:
    """A table `wide(id INTEGER PRIMARY KEY, body TEXT)` of `rows` rows of `width` bytes
    (each on overflow pages); about rows * width bytes."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany(
            "INSERT INTO wide VALUES (?, ?)",
            ((i, (f"{i:08d}" * (width // 8 + 1))[:width]) for i in range(1, rows + 1)),
        )
        conn.commit()
    finally:
        conn.close()
    return path
