"""The direct path of the rows endpoints (`examples/service/direct_route.py`).

A plain request is answered by calling the endpoint directly, anything else by FastAPI's
handler; either way the answer is the same. Checked differentially: every request below
gets the same status, headers and body with the direct path on and off, and the direct
path's own count says which requests took it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from examples.service.app import create_app
from examples.service.direct_route import DirectDispatch, DirectRoute
from examples.service.query_check import reject_unknown_query
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from tests.service_helpers import asgi_client

BASE = "/databases/sample/tables/books"

DIRECT = [
    f"{BASE}/rows/7",
    f"{BASE}/rows/99999",  # 404 from the endpoint
    f"{BASE}/rows/x",  # 422 from the endpoint
    f"{BASE}/rows",
    f"{BASE}/rows?after=40&limit=5",
    f"{BASE}/rows?limit=1000",
    f"{BASE}/rows?after=",
    f"{BASE}/rows?after=abc",
    "/databases/nope/tables/books/rows?limit=3",
    "/databases/sample/tables/nope/rows/1",
    f"{BASE}/lookup?column=year&eq=1990&limit=3",
    f"{BASE}/lookup?column=year&ge=1990&lt=1992&limit=4",
    f"{BASE}/lookup?column=year&column=price&eq=1990&eq=12.5",
    f"{BASE}/lookup?column=title&eq=x",  # 422: no index
    f"{BASE}/lookup?column=year",  # 422: nothing asked
    f"{BASE}/lookup?column=year&eq=1990&limit=2&after=bad",
]
"""Requests the direct path answers."""

HANDLED = [
    f"{BASE}/rows?limit=0",
    f"{BASE}/rows?limit=1001",
    f"{BASE}/rows?limit=020",
    f"{BASE}/rows?limit=+20",
    f"{BASE}/rows?limit=2.0",
    f"{BASE}/rows?limit=",
    f"{BASE}/rows?limit=%D9%A2",  # an Arabic-Indic digit
    f"{BASE}/rows?limit=99999999999999999999999",
    f"{BASE}/rows?limit=3&limit=4",
    f"{BASE}/rows?after=1&after=2",
    f"{BASE}/rows?limt=3",
    f"{BASE}/rows/1?x=1",
    f"{BASE}/lookup?eq=1990",  # no column: FastAPI's 422
    f"{BASE}/lookup?column=year&eq=1990&sort=title",
]
"""Requests FastAPI's handler answers."""


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_sample_database(tmp_path_factory.mktemp("sample") / "sample.db", rows=300)


@pytest.fixture
def data_dir(tmp_path: Path, sample_file: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_file, data / "sample.db")
    return data


def _direct_routes(app: FastAPI) -> Iterator[DirectRoute]:
    def walk(routes: Any) -> Iterator[Any]:
        for route in routes:
            inner = getattr(route, "original_router", None)
            yield from walk(inner.routes) if inner is not None else [route]

    return (r for r in walk(app.router.routes) if isinstance(r, DirectRoute))


def _calls(app: FastAPI) -> int:
    return sum(r.direct_calls for r in _direct_routes(app))


async def _answers(data_dir: Path, paths: list[str], *, direct: str) -> list[Any]:
    """Each answer's status, headers, body and direct calls; `direct` is "dispatch" (as
    served), "route" (no `DirectDispatch`: the direct routes' own `handle`) or "off"."""
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    assert isinstance(app.router.routes[0], DirectDispatch)
    if direct != "dispatch":
        del app.router.routes[0]
    if direct == "off":
        for route in _direct_routes(app):
            route.direct_plan = None
    out = []
    async with asgi_client(app) as client:
        for path in paths:
            before = _calls(app)
            r: httpx.Response = await client.get(path)
            out.append((r.status_code, sorted(r.headers.items()), r.content, _calls(app) - before))
    return out


@pytest.mark.asyncio
async def test_the_rows_endpoints_are_direct_routes(data_dir: Path) -> None:
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    planned = {r.name for r in _direct_routes(app) if r.direct_plan is not None}
    assert planned == {"rows", "row", "lookup"}


@pytest.mark.asyncio
@pytest.mark.parametrize("direct", ["dispatch", "route"])
async def test_direct_and_handled_answers_are_the_same(data_dir: Path, direct: str) -> None:
    paths = DIRECT + HANDLED
    answers = await _answers(data_dir, paths, direct=direct)
    handled = await _answers(data_dir, paths, direct="off")
    for path, a, b in zip(paths, answers, handled, strict=True):
        assert a[:3] == b[:3], path
        assert b[3] == 0
    took = [path for path, a in zip(paths, answers, strict=True) if a[3]]
    assert took == DIRECT  # one direct call each, and none for the rest
    assert all(a[3] == 1 for a in answers[: len(DIRECT)])


@pytest.mark.asyncio
async def test_head_takes_the_direct_path_without_a_body(data_dir: Path) -> None:
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    async with asgi_client(app) as client:
        got = await client.get(f"{BASE}/rows/3")
        head = await client.head(f"{BASE}/rows/3")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert _calls(app) == 2


def test_included_direct_routes_have_no_dependency_the_direct_path_skips(
    tmp_path: Path,
) -> None:
    # The including router's dependencies run only on FastAPI's path; the direct path
    # stands in for `reject_unknown_query` alone (a request it refuses is never direct).
    app = create_app(Settings.from_env({}, data_dir=tmp_path, create_sample=False))
    seen = 0
    for included in app.router.routes:
        contexts = getattr(included, "effective_route_contexts", None)
        if contexts is None:
            continue
        for context in contexts():
            if isinstance(context.original_route, DirectRoute):
                seen += 1
                calls = [d.call for d in context.dependant.dependencies]
                assert calls == [reject_unknown_query], context.path
    assert seen >= 3


def test_no_direct_path_while_telemetry_records(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({}, data_dir=tmp_path, create_sample=False))
    route = next(r for r in _direct_routes(app) if r.name == "rows")
    scope: dict[str, Any] = {"type": "http", "method": "GET", "query_string": b"limit=5"}
    assert route.direct_arguments(scope) == {"after": None, "limit": 5}
    scope["fastapi.telemetry"] = object()  # what FastAPI sets while OpenTelemetry records
    assert route.direct_arguments(scope) is None


@pytest.mark.asyncio
async def test_each_rows_request_is_one_engine_operation(data_dir: Path) -> None:
    # A row by key is one `get`; a page of 20 one `scan`; a lookup of 20 one index scan:
    # one `drive` each, and all of them on the direct path.
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    async with asgi_client(app) as client:
        db = app.state.databases.entries["sample"].db
        for path in (
            f"{BASE}/rows/7",
            f"{BASE}/rows?after=40&limit=20",
            f"{BASE}/lookup?column=year&eq=1990&limit=20",
        ):
            drives, calls = db.drives, _calls(app)
            r = await client.get(path)
            assert r.status_code == 200, path
            assert (db.drives - drives, _calls(app) - calls) == (1, 1), path
