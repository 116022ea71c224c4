"""A page's rows are encoded once: counted whole by `AnswerBudget.take_rows` (one `dumps`)
and spliced into the body by `encoding.dumps_body`. Both must give exactly what counting
row by row and encoding the whole body give."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import block
from core.io import UnixIO
from core.storage import Database, Table
from examples.service.encoding import Encoded, dumps, dumps_body
from examples.service.errors import ServiceError
from examples.service.queries.answer_size import AnswerBudget

cells = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=12),
)
rows = st.lists(st.tuples(st.integers(1, 10**6), cells, cells), max_size=12)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Table:
    path: Path = tmp_path_factory.mktemp("encoded") / "t.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (a, b)")
    with UnixIO() as io:
        db = block(Database.open(io, path, immutable=True), io)
        try:
            return db.schema.table("t")
        finally:
            db.close()


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.one_of(cells, st.lists(cells, max_size=3), st.lists(st.lists(cells, max_size=2))),
        max_size=6,
    ),
    spliced=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_dumps_body_is_dumps_of_the_decoded_body(values: list[object], spliced: list[bool]) -> None:
    payload = {f"k{i}": v for i, v in enumerate(values)}
    mixed = {k: Encoded(dumps(v)) if spliced[i] else v for i, (k, v) in enumerate(payload.items())}
    assert dumps_body(mixed) == dumps(payload)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(rows, max_size=4), max_bytes=st.integers(1, 400))
def test_take_rows_counts_what_take_counts_one_by_one(
    table: Table, chunks: list[list[tuple[object, ...]]], max_bytes: int
) -> None:
    whole = AnswerBudget(table, max_bytes)
    alone = AnswerBudget(table, max_bytes)
    shown: list[tuple[object, ...]] = []
    for chunk in chunks:
        try:
            taken = whole.take_rows(chunk, chunk)
        except ServiceError:
            with pytest.raises(ServiceError):
                for row in chunk:
                    assert alone.take(row, row)
            return
        expected = 0
        for row in chunk:
            if not alone.take(row, row):
                break
            expected += 1
        assert taken == expected
        assert (whole.used, whole.taken) == (alone.used, alone.taken)
        shown += chunk[:taken]
        if taken < len(chunk):
            break
    encoded = whole.encoded()
    assert encoded is None or encoded == dumps(shown)
    assert alone.encoded() is None or not shown
