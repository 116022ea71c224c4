"""The example service against two equivalent services built on aiosqlite, side by side.

    .venv/bin/python benchmarks/bench_service.py [--quick]

All are FastAPI applications served by uvicorn on uvloop (httptools) on 127.0.0.1, each in
a process of its own, reading the same sample database (100,000 books; 20,000 with
`--quick`) and answering with the same JSON (encoded by the same function):
- ours: `examples.service`, every read an `await drive(op)` of the storage engine's
  operations over one `AsyncFileIO` (the database opened as `make demo` opens it: mutable,
  with the shared lock taken for each read), once per engine of `AsyncFileIO` (`--engine
  threads|uring|both`, default both: "threads" the worker pool, "uring" the io_uring ring;
  each its own process, the engine chosen through what `engine="auto"` picks);
- aiosqlite (minimal app): the three endpoints written plainly, each taking only the
  parameters these requests send, each query one `execute_fetchall` on a pool of
  connections (4 by default, like our 4 workers: one hop to the connection's thread and
  back). It pays less of FastAPI's per-request work than ours: fewer parameters to
  validate, no unknown-parameter check, no middleware of its own.
- aiosqlite (the service's app): `examples.service`'s own application, with the sample's
  three reads (`get`, `scan`, `index_page`) answered by the same pool of aiosqlite
  connections (`SqlReads`): the same routes, parameters, checks and code around the
  reads, so only the data access differs.

The load generator (`loadgen.py`, this process, uvloop) sends the same bounded mix of
requests to each: a row by rowid, a page of 20 rows after a rowid, 20 rows by an indexed
column (`year`, through the index books_year), in equal parts, over 1, 16 and 64
keep-alive connections. Rounds alternate the services (A B, then B A, ...); each figure
is the median over rounds. The bodies of both services are compared before anything is
timed.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(REPO))

from benchmarks.loadgen import LoadResult, run_load  # noqa: E402
from bridge.storage import IndexPage  # noqa: E402

CONCURRENCY = (1, 16, 64)
PAGE = 20
MINIMAL = "aiosqlite"
SAME_APP = "aiosqlite-app"
TWINS = (MINIMAL, SAME_APP)


# -- the aiosqlite service --------------------------------------------------------------------


def index_entry(year: object, price: object, rowid: object) -> tuple[object, ...]:
    """The entry of index books_year (year, price) for a row, as the engine returns it: the
    record's values as stored, and SQLite stores a whole REAL (a price of 93.0) as an
    integer (93), which the engine does not turn back into a float."""
    if type(price) is float and price.is_integer():
        price = int(price)
    return (year, price, rowid)


def aiosqlite_app(path: Path, connections: int) -> Any:
    """The same three endpoints, on aiosqlite."""
    import aiosqlite
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    from bridge.rows import dumps
    from examples.service.queries.paging import encode_entry_token

    pool: list[aiosqlite.Connection] = []
    turn = 0
    columns: list[str] = []

    def conn() -> aiosqlite.Connection:
        nonlocal turn
        turn = (turn + 1) % len(pool)
        return pool[turn]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for _ in range(connections):
            pool.append(await aiosqlite.connect(path))
        info = await pool[0].execute_fetchall("PRAGMA table_info(books)")
        columns.extend(str(row[1]) for row in info)
        try:
            yield
        finally:
            for c in pool:
                await c.close()

    app = FastAPI(lifespan=lifespan)

    def reply(payload: object) -> Response:
        return Response(dumps(payload), media_type="application/json")

    @app.get("/databases/sample/tables/books/rows/{key}")
    async def row(key: int) -> Response:
        rows = list(await conn().execute_fetchall("SELECT * FROM books WHERE id = ?", (key,)))
        return reply(
            {"database": "sample", "table": "books", "columns": columns, "row": list(rows[0])}
        )

    @app.get("/databases/sample/tables/books/rows")
    async def rows(request: Request, after: int = 0, limit: int = 100) -> Response:
        found = list(
            await conn().execute_fetchall(
                "SELECT * FROM books WHERE id > ? ORDER BY id LIMIT ?", (after, limit + 1)
            )
        )
        next_after = None
        next_url = None
        if len(found) > limit:
            del found[limit:]
            next_after = found[-1][0]
            next_url = str(request.url.include_query_params(after=next_after))
        return reply(
            {
                "database": "sample",
                "table": "books",
                "columns": columns,
                "rows": found,
                "next_after": next_after,
                "next": next_url,
            }
        )

    @app.get("/databases/sample/tables/books/lookup")
    async def lookup(request: Request, column: str, eq: int, limit: int = 100) -> Response:
        assert column == "year"
        found = list(
            await conn().execute_fetchall(
                "SELECT * FROM books WHERE year = ? ORDER BY year, price, id LIMIT ?",
                (eq, limit + 1),
            )
        )
        token = None
        if len(found) > limit:
            del found[limit:]
            last = found[-1]
            token = encode_entry_token(index_entry(last[3], last[4], last[0]))
        return reply(
            {
                "database": "sample",
                "table": "books",
                "strategy": "index",
                "index": "books_year",
                "index_columns": ["year", "price"],
                "columns": columns,
                "rows": found,
                "next_after": token,
                "column": column,
                "searched": [column],
                "next": None
                if token is None
                else str(request.url.include_query_params(after=token)),
            }
        )

    return app


# -- the same application, reading through aiosqlite ----------------------------------------


_ROWS = "SELECT id, * FROM books"
"""A row as the engine returns it: the rowid, then every column (`id` is the rowid)."""


class SqlReads:
    """The three reads the measured requests make (`get`, `scan`, `index_page` of
    `bridge.storage.AsyncDatabase`), answered by aiosqlite for the sample's `books` table
    and its index `books_year` (year, price); everything else (the schema, the leases) is
    the engine's `AsyncDatabase`, which only the startup reads through."""

    def __init__(self, engine: Any, pool: list[Any]) -> None:
        self._engine = engine
        self._pool = pool
        self._turn = 0

    @property
    def schema(self) -> Any:
        # Read on every request: a property, not the slower `__getattr__` below.
        return self._engine.schema

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _conn(self) -> Any:
        self._turn = (self._turn + 1) % len(self._pool)
        return self._pool[self._turn]

    async def get(self, table: str, key: object) -> tuple[object, ...] | None:
        assert table == "books"
        rows = await self._conn().execute_fetchall(_ROWS + " WHERE id = ?", (key,))
        return tuple(rows[0]) if rows else None

    async def scan(
        self, table: str, *, after: object = None, limit: int | None = None
    ) -> list[tuple[object, ...]]:
        assert table == "books" and limit is not None
        rows = await self._conn().execute_fetchall(
            _ROWS + " WHERE id > ? ORDER BY id LIMIT ?", (-1 if after is None else after, limit)
        )
        return [tuple(r) for r in rows]

    async def index_page(
        self,
        index: str,
        *,
        equal: Any = (),
        lower: Any = None,
        upper: Any = None,
        limit: int,
        after: Any = None,
    ) -> Any:
        assert index == "books_year" and len(equal) == 1 and lower is None and upper is None
        # The index entry is (year, price, rowid): a page continues strictly after one.
        sql = _ROWS + " WHERE year = ?"
        args: list[object] = [equal[0]]
        if after is not None:
            sql += " AND (year, price, id) > (?, ?, ?)"
            args += list(after)
        rows = await self._conn().execute_fetchall(
            sql + " ORDER BY year, price, id LIMIT ?", (*args, limit + 1)
        )
        found = [tuple(r) for r in rows[:limit]]
        more = len(rows) > limit and bool(found)
        last = found[-1]
        return IndexPage(found, index_entry(last[4], last[5], last[0]) if more else None)


def same_app(data_dir: Path, connections: int) -> Any:
    """`examples.service`'s own application, the sample's reads answered by aiosqlite
    (`SqlReads`): the same routes, parameters, checks and bodies, another data layer."""
    import aiosqlite

    from examples.service.app import create_app
    from examples.service.settings import Settings

    app = create_app(Settings.from_env(None, data_dir=data_dir, create_sample=False))
    engine_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with engine_lifespan(app):
            entry = app.state.databases.entries["sample"]
            pool = [await aiosqlite.connect(entry.path) for _ in range(connections)]
            entry.db = SqlReads(entry.db, pool)
            try:
                yield
            finally:
                for c in pool:
                    await c.close()

    app.router.lifespan_context = lifespan
    return app


def serve_aiosqlite(path: Path, port: int, connections: int, *, whole_app: bool) -> None:
    """Run an aiosqlite service (the `serve-aiosqlite` subcommand): the minimal one, or
    with `whole_app` the service's own application over aiosqlite."""
    import uvicorn

    # Served as `python -m examples.service` serves ours: startup objects frozen, fewer
    # young collections (`GcTunedServer`).
    from examples.service.__main__ import GcTunedServer

    config = uvicorn.Config(
        same_app(path.parent, connections) if whole_app else aiosqlite_app(path, connections),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    server = GcTunedServer(config)
    server.run()
    if not server.started:
        sys.exit(3)  # what `uvicorn.run` exits with when the application fails to start


# -- orchestration ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    url = f"http://127.0.0.1:{port}/databases/sample/tables/books/rows/1"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        body: dict[str, Any] = json.loads(r.read())
    body.pop("next", None)
    return body


def _paths(rng: random.Random, n: int, rows: int) -> list[str]:
    base = "/databases/sample/tables/books"
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(f"{base}/rows/{rng.randint(1, rows)}")
        elif kind == 1:
            out.append(f"{base}/rows?after={rng.randint(0, rows - PAGE)}&limit={PAGE}")
        else:
            out.append(f"{base}/lookup?column=year&eq={rng.randint(1950, 2026)}&limit={PAGE}")
    return out


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve-aiosqlite", help="(internal) run the aiosqlite service")
    serve.add_argument("--db", type=Path, required=True)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--connections", type=int, default=4)
    serve.add_argument("--whole-app", action="store_true", help="the service's own app")
    parser.add_argument("--quick", action="store_true", help="smaller database, fewer rounds")
    parser.add_argument("--rounds", type=int, help="rounds per concurrency (default 5; 3 quick)")
    parser.add_argument("--requests", type=int, help="requests per round (default 3000; 900 quick)")
    parser.add_argument("--rows", type=int, help="books in the sample (default 100000)")
    parser.add_argument("--connections", type=int, default=4, help="aiosqlite connections")
    parser.add_argument(
        "--engine",
        choices=["threads", "uring", "both"],
        default="both",
        help="the AsyncFileIO engine(s) of our service (default both)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / "data" / "bench", help="where the sample lives"
    )
    args = parser.parse_args(argv)
    if args.command == "serve-aiosqlite":
        serve_aiosqlite(args.db, args.port, args.connections, whole_app=args.whole_app)
        return 0

    rows = args.rows or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (3 if args.quick else 5)
    requests = args.requests or (900 if args.quick else 3000)
    data_dir: Path = args.data_dir / f"rows-{rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    sample = data_dir / "sample.db"
    if not sample.exists():
        from examples.service.sample import create_sample_database

        print(f"creating the sample database ({rows} books) ...", flush=True)
        create_sample_database(sample, rows=rows)

    engines = ["threads", "uring"] if args.engine == "both" else [args.engine]
    if "uring" in engines:
        from bridge import AsyncFileIO

        if not AsyncFileIO.uring_available():
            print("io_uring cannot run here: measuring the threads engine only", flush=True)
            engines.remove("uring")
            if not engines:
                engines = ["threads"]
    # The servers run outside the checkout with it appended to their path, as this script
    # does, so that an installed (compiled) build is the one they import.
    env = dict(os.environ)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    for engine in engines:
        ports[f"ours-{engine}"] = port = _free_port()
        # The service builds `AsyncFileIO()` ("auto"); this sets what "auto" picks.
        launcher = (
            f"import sys; sys.path.append({str(REPO)!r}); import bridge._fileio as f; "
            f"f.AUTO_URING = {engine == 'uring'}; "
            "from examples.service.__main__ import main; sys.exit(main(sys.argv[1:]))"
        )
        procs[f"ours-{engine}"] = subprocess.Popen(
            [
                sys.executable, "-c", launcher,
                "--port", str(port), "--data-dir", str(data_dir),
                "--log-level", "warning", "--no-access-log",
            ],
            cwd=data_dir, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    for twin in TWINS:
        ports[twin] = theirs_port = _free_port()
        procs[twin] = subprocess.Popen(
            [
                sys.executable, __file__, "serve-aiosqlite",
                "--db", str(sample), "--port", str(theirs_port),
                "--connections", str(args.connections),
                *(["--whole-app"] if twin == SAME_APP else []),
            ],
            cwd=data_dir, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    names = list(procs)
    try:
        for name, proc in procs.items():
            _wait_ready(ports[name], proc, name)
        rng = random.Random(7)
        for path in _paths(rng, 150, rows):
            bodies = [_get(ports[name], path) for name in names]
            for name, body in zip(names, bodies, strict=True):
                if body != bodies[-1]:
                    raise SystemExit(
                        f"{name} and {names[-1]} disagree on {path}:\n{body}\n{bodies[-1]}"
                    )
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        results: dict[tuple[str, int], list[LoadResult]] = {}
        with runner:
            for port in ports.values():  # warm them up
                runner.run(run_load("127.0.0.1", port, _paths(rng, 300, rows), 16))
            for concurrency in CONCURRENCY:
                for r in range(rounds):
                    shift = r % len(names)  # rotate who goes first
                    order = names[shift:] + names[:shift]
                    paths = _paths(random.Random(1000 * concurrency + r), requests, rows)
                    for name in order:
                        result = runner.run(run_load("127.0.0.1", ports[name], paths, concurrency))
                        results.setdefault((name, concurrency), []).append(result)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    print(
        f"\n{rows} books; {rounds} rounds of {requests} requests per concurrency, "
        f"rotating; medians. aiosqlite: {args.connections} connections; ours: AsyncFileIO "
        "with 4 workers (threads) or one ring (uring).\n"
    )

    def med(rs: list[LoadResult], f: Any) -> float:
        return statistics.median(f(x) for x in rs)

    labels = {
        "ours-threads": "ours, threads",
        "ours-uring": "ours, io_uring",
        MINIMAL: "aiosqlite (minimal app)",
        SAME_APP: "aiosqlite (the service's app)",
    }
    print(
        "| connections | service | engine | req/s | vs aiosqlite (minimal app) "
        "| vs aiosqlite (the service's app) | p50 ms | p99 ms |"
    )
    print("|" + " --- |" * 8)
    for concurrency in CONCURRENCY:
        minimal = med(results[(MINIMAL, concurrency)], lambda x: x.rate)
        same = med(results[(SAME_APP, concurrency)], lambda x: x.rate)
        for name in names:
            rs = results[(name, concurrency)]
            rate = med(rs, lambda x: x.rate)
            service, _, engine = labels[name].partition(", ")
            engine = engine or f"threads ({args.connections} connections)"
            print(
                f"| {concurrency} | {service} | {engine} | {rate:,.0f} | "
                f"{rate / minimal:.2f}x | {rate / same:.2f}x | "
                f"{_fmt_ms(med(rs, lambda x: x.percentile(50)))} | "
                f"{_fmt_ms(med(rs, lambda x: x.percentile(99)))} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
