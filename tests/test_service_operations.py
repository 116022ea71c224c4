"""Each request of the rows endpoints is one engine operation (one `drive`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from examples.service.app import create_app
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from tests.service_helpers import asgi_client

BASE = "/databases/sample/tables/books"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    sample = create_sample_database(tmp_path / "sample.db", rows=300)
    shutil.copy(sample, data / "sample.db")
    return data


@pytest.mark.asyncio
async def test_each_rows_request_is_one_engine_operation(data_dir: Path) -> None:
    # A row by key is one `get`; a page of 20 one `scan`; a lookup of 20 one index scan.
    app = create_app(Settings.from_env({}, data_dir=data_dir, create_sample=False))
    async with asgi_client(app) as client:
        db = app.state.databases.entries["sample"].db
        for path in (
            f"{BASE}/rows/7",
            f"{BASE}/rows?after=40&limit=20",
            f"{BASE}/lookup?column=year&eq=1990&limit=20",
        ):
            drives = db.drives
            r = await client.get(path)
            assert r.status_code == 200, path
            assert db.drives - drives == 1, path
