"""What follows from a database's schema alone is made once per schema (`Entry.derived`):
how a table's rows are shown, the index a lookup walks."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from examples.service.app import create_app
from examples.service.databases import Entry
from examples.service.queries import lookup
from examples.service.sample import create_sample_database
from examples.service.settings import Settings
from tests.service_helpers import asgi_client


def test_a_derived_value_is_made_once_per_schema() -> None:
    db: Any = SimpleNamespace(schema=object())
    entry = Entry("x", Path("x.db"), "upload", db)
    made: list[int] = []

    def make() -> int:
        made.append(len(made))
        return len(made)

    assert entry.derived("k", make) == entry.derived("k", make) == 1
    assert entry.derived("other", make) == 2
    db.schema = object()  # the engine read a changed schema
    assert entry.derived("k", make) == 3

    def fail() -> int:
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError):
            entry.derived("bad", fail)


@pytest.mark.asyncio
async def test_a_lookup_chooses_its_index_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(create_sample_database(tmp_path / "sample.db", rows=200), data / "sample.db")
    chosen: list[tuple[str, ...]] = []
    choose = lookup._choose_index

    def counting(entry: Entry, table: Any, columns: Any) -> Any:
        chosen.append(tuple(columns))
        return choose(entry, table, columns)

    monkeypatch.setattr(lookup, "_choose_index", counting)
    app = create_app(Settings.from_env({}, data_dir=data, create_sample=False))
    base = "/databases/sample/tables/books/lookup"
    async with asgi_client(app) as client:
        for query in ("column=year&eq=1990", "column=YEAR&eq=1991", "column=year&eq=1992"):
            assert (await client.get(f"{base}?{query}")).status_code == 200
        assert chosen == [("year",)]
        # A refusal is not kept: asked twice, it is worked out twice.
        for _ in range(2):
            assert (await client.get(f"{base}?column=summary&eq=x")).status_code == 422
        assert chosen == [("year",), ("summary",), ("summary",)]
