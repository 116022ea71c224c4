"""The demo's sample database is deterministic and has what the demo needs."""

from __future__ import annotations

import pathlib
import sqlite3

import pytest

from examples.service.sample import create_sample_database


def _dump(path: pathlib.Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_same_seed_same_database(tmp_path: pathlib.Path) -> None:
    a = create_sample_database(tmp_path / "a.db", rows=600)
    b = create_sample_database(tmp_path / "b.db", rows=600)
    assert _dump(a) == _dump(b)
    conn = sqlite3.connect(a)
    try:
        assert conn.execute("SELECT count(*) FROM books").fetchone() == (600,)
        assert conn.execute("SELECT count(*) FROM reviews").fetchone() == (120,)
        longest = conn.execute("SELECT max(length(summary)) FROM books").fetchone()[0]
        assert longest > 4096  # spills onto overflow pages
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='index'")}
        assert {"books_title", "books_year", "reviews_stars"} <= names
    finally:
        conn.close()


def test_refuses_to_overwrite(tmp_path: pathlib.Path) -> None:
    (tmp_path / "x.db").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        create_sample_database(tmp_path / "x.db", rows=10)
    assert (tmp_path / "x.db").read_bytes() == b"keep me"
