"""Writing the on-disk format (`core.storage.encode`): every encoder against the decoder it
inverts, against the bytes sqlite3 writes for the same rows, and pages built here written
into sqlite3's own databases, which must then pass `PRAGMA integrity_check`."""

from __future__ import annotations

import math
import random
import sqlite3
import struct
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.storage import SchemaError
from core.storage.collation import Affinity, KeyPlan, affinity_of, field_key
from core.storage.encode import (
    MIN_CELL_SIZE,
    append_to_page,
    build_page,
    cell_area,
    column_value,
    encode_record,
    index_interior_cell,
    index_leaf_cell,
    overflow_page_count,
    overflow_pages,
    table_interior_cell,
    table_leaf_cell,
    varint_size,
    write_varint,
)
from core.storage.page import (
    INDEX_INTERIOR,
    INDEX_LEAF,
    TABLE_INTERIOR,
    TABLE_LEAF,
    Page,
    PageLayout,
    cell_overflow,
    parse_btree,
    parse_cells,
)
from core.storage.record import Value, _decode_generic, decode_record, read_varint, to_signed64
from tests.storage_helpers import make_db

_U64 = (1 << 64) - 1
_u32 = struct.Struct(">I").unpack_from


def _same(got: Sequence[object], expected: Sequence[object]) -> bool:
    """Equal value by value and type (tells -0.0 from 0.0 and 1 from 1.0)."""
    return [(type(v), repr(v)) for v in got] == [(type(v), repr(v)) for v in expected]


def _serial_types(record: bytes) -> list[int]:
    header_size, p = read_varint(record, 0)
    types = []
    while p < header_size:
        t, p = read_varint(record, p)
        types.append(t)
    assert p == header_size
    return types


def _decoded(record: bytes, codec: str = "utf-8") -> list[Value]:
    """The record through both decoders (the cached-plan one and the generic one), which
    must agree, read from the middle of a larger buffer."""
    buf = b"\xaa\xbb" + record + b"\xcc"
    fast = decode_record(buf, 2, 2 + len(record), codec)
    generic = _decode_generic(buf, 2, 2 + len(record), codec)
    assert _same(fast, generic)
    return fast


def _parsed(number: int, data: bytes, layout: PageLayout) -> Page:
    page = Page(number, data)
    parse_btree(page, layout)
    parse_cells(page, layout)
    return page


def _payload(page: Page, i: int, layout: PageLayout, chain: dict[int, bytes]) -> bytes:
    """Cell `i`'s whole payload: its local part, then its overflow pages from `chain`."""
    assert page.payload_sizes is not None
    start, end, following = cell_overflow(page, i, layout)
    out = bytearray(page.data[start:end])
    while following:
        overflow = chain[following]
        following = _u32(overflow, 0)[0]
        out += overflow[4 : layout.usable_size]
    return bytes(out[: page.payload_sizes[i]])


def _pattern(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _file_page(data: bytes, number: int, page_size: int) -> bytes:
    return data[(number - 1) * page_size : number * page_size]


def _chain(data: bytes, first: int, page_size: int) -> list[int]:
    numbers = []
    while first:
        numbers.append(first)
        first = _u32(data, (first - 1) * page_size)[0]
    return numbers


def _write_pages(path: Path, page_size: int, pages: dict[int, bytes]) -> None:
    data = bytearray(path.read_bytes())
    for number, page in pages.items():
        assert len(page) == page_size
        data[(number - 1) * page_size : number * page_size] = page
    path.write_bytes(bytes(data))


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as con:
        return con.execute(sql).fetchall()


def _roots(path: Path) -> dict[str, int]:
    return {name: root for name, root in _query(path, "SELECT name, rootpage FROM sqlite_master")}


# -- varints ----------------------------------------------------------------------------

VARINT_EDGES = [
    *(bound + d for k in range(1, 9) for bound in (1 << (7 * k),) for d in (-1, 0)),
    0,
    1,
    (1 << 63) - 1,
    1 << 63,
    _U64,
    -1,
    -(1 << 63),
]


@pytest.mark.parametrize("value", VARINT_EDGES)
def test_varint_edges_round_trip(value: int) -> None:
    encoded = write_varint(value)
    assert len(encoded) == varint_size(value)
    decoded, end = read_varint(b"\xff" + encoded + b"\xff", 1)
    assert end == 1 + len(encoded)
    assert decoded == value & _U64
    if value < 1 << 63:
        assert to_signed64(decoded) == value


def test_varint_sizes_at_each_boundary() -> None:
    for k in range(1, 9):
        assert varint_size((1 << (7 * k)) - 1) == k
        assert varint_size(1 << (7 * k)) == (k + 1 if k < 8 else 9)
    assert varint_size(_U64) == varint_size(-1) == varint_size(-(1 << 63)) == 9
    assert write_varint(0x7F) == b"\x7f"
    assert write_varint(0x80) == b"\x81\x00"
    assert write_varint(-1) == b"\xff" * 9


@settings(derandomize=True)
@given(st.integers(min_value=-(1 << 63), max_value=_U64))
def test_varint_round_trip(value: int) -> None:
    encoded = write_varint(value)
    assert len(encoded) == varint_size(value)
    assert read_varint(encoded, 0) == (value & _U64, len(encoded))


@pytest.mark.parametrize("value", [1 << 64, -(1 << 63) - 1])
def test_varint_outside_64_bits_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="64"):
        write_varint(value)
    with pytest.raises(ValueError, match="64"):
        varint_size(value)


# -- records ----------------------------------------------------------------------------

EDGE_VALUES: list[tuple[Value, int]] = [
    (None, 0),
    (0, 8),
    (1, 9),
    (-1, 1),
    (2, 1),
    (127, 1),
    (-128, 1),
    (128, 2),
    (-129, 2),
    (2**15 - 1, 2),
    (-(2**15), 2),
    (2**15, 3),
    (-(2**15) - 1, 3),
    (2**23 - 1, 3),
    (-(2**23), 3),
    (2**23, 4),
    (-(2**23) - 1, 4),
    (2**31 - 1, 4),
    (-(2**31), 4),
    (2**31, 5),
    (-(2**31) - 1, 5),
    (2**47 - 1, 5),
    (-(2**47), 5),
    (2**47, 6),
    (-(2**47) - 1, 6),
    (2**63 - 1, 6),
    (-(2**63), 6),
    (0.0, 7),
    (-0.0, 7),
    (1.5, 7),
    (math.inf, 7),
    (-math.inf, 7),
    (5e-324, 7),
    (1.7976931348623157e308, 7),
    ("", 13),
    (b"", 12),
    ("a", 15),
    (b"\x00", 14),
    ("é", 17),
    ("x" * 57, 127),
    ("x" * 58, 129),
    (b"\xff" * 58, 128),
    ("y" * 100_000, 200_013),
    (b"\x01" * 70_000, 140_012),
]


@pytest.mark.parametrize(("value", "serial_type"), EDGE_VALUES)
def test_every_serial_type_and_edge_value_round_trips(value: Value, serial_type: int) -> None:
    record = encode_record([value])
    assert _serial_types(record) == [serial_type]
    assert _same(_decoded(record), [value])


def test_all_edge_values_in_one_record() -> None:
    values = [v for v, _ in EDGE_VALUES]
    record = encode_record(values)
    assert _serial_types(record) == [t for _, t in EDGE_VALUES]
    assert _same(_decoded(record), values)


def test_nan_is_stored_as_null_and_bool_as_integer() -> None:
    assert encode_record([math.nan]) == encode_record([None]) == b"\x02\x00"
    assert encode_record([True, False]) == encode_record([1, 0]) == b"\x03\x09\x08"


def test_header_length_counts_itself_across_the_one_byte_boundary() -> None:
    # 126 serial types fit a 1-byte length (127); 127 need a 2-byte one, so the header is
    # 129 bytes: 128 would claim a 1-byte length it cannot have.
    fits = encode_record([None] * 126)
    assert fits[0] == 127 and len(fits) == 127
    grows = encode_record([None] * 127)
    assert read_varint(grows, 0) == (129, 2) and len(grows) == 129
    for n in (126, 127):
        assert _decoded(encode_record([None] * n)) == [None] * n
    # The same boundary reached with 2-byte serial types.
    text = ["t" * 60] * 63
    assert encode_record(text)[0] == 127
    assert read_varint(encode_record([*text, None]), 0) == (129, 2)
    assert _decoded(encode_record([*text, None])) == [*text, None]


values_strategy = st.lists(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
        st.floats(),
        st.text(),
        st.binary(),
        st.text(min_size=60, max_size=300),
    ),
    max_size=150,
)


@settings(derandomize=True)
@given(values_strategy, st.sampled_from(["utf-8", "utf-16-le", "utf-16-be"]))
def test_records_round_trip(values: list[Value], codec: str) -> None:
    expected = [
        None if isinstance(v, float) and math.isnan(v) else int(v) if isinstance(v, bool) else v
        for v in values
    ]
    assert _same(_decoded(encode_record(values, codec), codec), expected)


def test_record_errors_name_the_problem() -> None:
    for bad in ([1], bytearray(b"x"), object(), 1j):
        with pytest.raises(TypeError, match=type(bad).__name__):
            encode_record([1, bad])  # type: ignore[list-item]
    for big in (1 << 63, -(1 << 63) - 1):
        with pytest.raises(ValueError, match="64 bits"):
            encode_record([big])
    with pytest.raises(UnicodeEncodeError):
        encode_record(["\ud800"])


# -- column affinity --------------------------------------------------------------------

DECLARED = ("TEXT", "NUMERIC", "INTEGER", "REAL", "BLOB", "")
_TYPEOF = {type(None): "null", int: "integer", float: "real", str: "text", bytes: "blob"}

SAMPLES: list[object] = [
    None,
    0,
    1,
    -1,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    True,
    0.0,
    -0.0,
    3.0,
    2.5,
    0.1,
    1 / 3,
    1e100,
    1e-5,
    2.0**62,
    9.2233720368547758e18,
    -9.2233720368547758e18,
    math.inf,
    -math.inf,
    math.nan,
    "",
    " ",
    "abc",
    "12",
    " 12 ",
    "\t7\n",
    "+5",
    "-0",
    "-0.0",
    "12.0",
    ".5",
    "5.",
    "1e5",
    "1E2",
    "1.5e3",
    "1e",
    "12e",
    "7 x",
    "0x10",
    "1_000",
    "Inf",
    "nan",
    "00012",
    "\u0661",
    "1e400",
    "3.0000000000000001",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "9223372036854775807.0",
    b"",
    b"12",
    bytearray(b"3"),
    memoryview(b"4.5"),
]


def _stored_by_sqlite(con: sqlite3.Connection, value: object) -> list[tuple[str, object]]:
    """What sqlite3 stores for `value` in a column of each of `DECLARED`: typeof, value."""
    con.execute("DELETE FROM t")
    con.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", [value] * len(DECLARED))
    names = [f"c{i}" for i in range(len(DECLARED))]
    row = con.execute(f"SELECT {', '.join(f'typeof({n}), {n}' for n in names)} FROM t").fetchone()
    return [(row[2 * i], row[2 * i + 1]) for i in range(len(DECLARED))]


def _stored_here(value: object) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for declared in DECLARED:
        stored = column_value(value, affinity_of(declared))
        out.append((_TYPEOF[type(stored)], stored))
    return out


@pytest.fixture(scope="module")
def typed_table() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    columns = ", ".join(f"c{i} {t}" for i, t in enumerate(DECLARED))
    con.execute(f"CREATE TABLE t({columns})")
    return con


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_column_value_stores_what_sqlite_stores(
    typed_table: sqlite3.Connection, value: object
) -> None:
    expected = _stored_by_sqlite(typed_table, value)
    got = _stored_here(value)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert _same([v for _, v in got], [v for _, v in expected])


@settings(max_examples=300, derandomize=True)
@given(
    st.one_of(
        st.floats(),
        st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
        st.text(alphabet="0123456789+-.eE \t", max_size=12),
        st.text(max_size=8),
        st.binary(max_size=8),
    )
)
def test_column_value_agrees_with_sqlite(value: object) -> None:
    with closing(sqlite3.connect(":memory:")) as con:
        columns = ", ".join(f"c{i} {t}" for i, t in enumerate(DECLARED))
        con.execute(f"CREATE TABLE t({columns})")
        expected = _stored_by_sqlite(con, value)
    got = _stored_here(value)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert _same([v for _, v in got], [v for _, v in expected])


def test_column_value_without_affinity_only_normalises() -> None:
    assert column_value("12", None) == "12"
    assert column_value(3.0, None) == 3.0 and type(column_value(3.0, None)) is float
    assert column_value(True, None) == 1 and type(column_value(True, None)) is int
    assert column_value(memoryview(b"ab"), None) == b"ab"
    assert column_value(math.nan, Affinity.REAL) is None


def test_column_value_refuses_what_sqlite_cannot_store() -> None:
    for bad in ([1], object(), 1j):
        with pytest.raises(SchemaError, match=type(bad).__name__):
            column_value(bad, Affinity.TEXT)
    with pytest.raises(SchemaError, match="64 bits"):
        column_value(1 << 63, Affinity.INTEGER)


# -- cells, overflow chains and pages ---------------------------------------------------

GEOMETRIES = [
    (512, 0),
    (512, 32),
    (1024, 0),
    (1024, 8),
    (4096, 0),
    (4096, 100),
    (65536, 0),
    (65536, 255),
]


def _threshold_sizes(layout: PageLayout, table_leaf: bool) -> list[int]:
    max_local = layout.max_local_table if table_leaf else layout.max_local_index
    return [
        0,
        1,
        layout.min_local,
        max_local - 1,
        max_local,
        max_local + 1,
        max_local + layout.usable_size - 4,
        3 * layout.usable_size + 17,
    ]


@pytest.mark.parametrize("page_one", [False, True])
@pytest.mark.parametrize("kind", [TABLE_LEAF, INDEX_LEAF, INDEX_INTERIOR])
@pytest.mark.parametrize(("page_size", "reserved"), GEOMETRIES)
def test_cells_at_the_overflow_thresholds_round_trip(
    page_size: int, reserved: int, kind: int, page_one: bool
) -> None:
    usable = page_size - reserved
    layout = PageLayout(page_size, usable)
    table_leaf = kind == TABLE_LEAF
    max_local = layout.max_local_table if table_leaf else layout.max_local_index
    prefix = bytes(range(100)) if page_one else b""
    for size in _threshold_sizes(layout, table_leaf):
        payload = _pattern(size, size)
        local = layout.local_size(size, table_leaf)
        assert (local == size) == (size <= max_local)
        rest = payload[local:]
        numbers = list(range(1000, 1000 + overflow_page_count(len(rest), usable)))
        chain = dict(zip(numbers, overflow_pages(rest, numbers, usable, page_size), strict=True))
        first = numbers[0] if numbers else 0
        rowid = -(size + 1)
        if kind == TABLE_LEAF:
            cell = table_leaf_cell(rowid, payload, local, first)
        elif kind == INDEX_LEAF:
            cell = index_leaf_cell(payload, local, first)
        else:
            cell = index_interior_cell(77, payload, local, first)
        assert len(cell) >= MIN_CELL_SIZE
        right = 0 if kind == INDEX_LEAF or table_leaf else 99
        if cell_area([cell], kind != INDEX_INTERIOR, len(prefix)) > usable:
            # The largest local parts leave no room for page 1's database header: SQLite
            # never puts such a cell there (a full page 1 splits instead).
            assert page_one
            with pytest.raises(ValueError, match="do not fit"):
                build_page(
                    kind, [cell], right, page_size=page_size, usable_size=usable, prefix=prefix
                )
            continue
        data = build_page(
            kind, [cell], right, page_size=page_size, usable_size=usable, prefix=prefix
        )
        assert len(data) == page_size and data[: len(prefix)] == prefix
        assert data[usable:] == bytes(reserved)
        page = _parsed(1 if page_one else 7, data, layout)
        assert (page.kind, page.cell_count) == (kind, 1)
        assert _payload(page, 0, layout, chain) == payload
        if table_leaf:
            assert page.rowids == [rowid]
        if kind == INDEX_INTERIOR:
            assert page.children == [77, 99]
        for overflow in chain.values():
            assert len(overflow) == page_size and overflow[usable:] == bytes(reserved)


def test_spilled_payloads_fill_every_overflow_page_unless_local_falls_back() -> None:
    # SQLite keeps min_local + (size - min_local) % (usable - 4) bytes local when that fits
    # under max_local, so the chain is whole pages; only the fallback to min_local leaves a
    # partly used last page.
    layout = PageLayout(1024, 1024)
    chunk = 1020
    for size in range(layout.max_local_table + 1, layout.max_local_table + 3 * chunk, 37):
        local = layout.local_size(size, True)
        if local != layout.min_local:
            assert (size - local) % chunk == 0


def test_short_cells_are_padded_to_four_bytes() -> None:
    assert table_leaf_cell(1, b"\x01", 1, 0) == b"\x01\x01\x01\x00"
    assert index_leaf_cell(b"\x02\x08", 2, 0) == b"\x02\x02\x08\x00"
    assert index_leaf_cell(b"", 0, 0) == b"\x00\x00\x00\x00"
    assert table_leaf_cell(1, b"\x02\x08", 2, 0) == b"\x02\x01\x02\x08"


def test_interior_pages_round_trip() -> None:
    layout = PageLayout(4096, 4096)
    rowids = [-(1 << 63), -1, 0, 1, 127, 128, 1 << 40, (1 << 63) - 1]
    cells = [table_interior_cell(10 + i, r) for i, r in enumerate(rowids)]
    page = _parsed(
        3, build_page(TABLE_INTERIOR, cells, 999, page_size=4096, usable_size=4096), layout
    )
    assert page.rowids == rowids
    assert page.children == [10 + i for i in range(len(rowids))] + [999]
    records = [encode_record([f"key{i}", i]) for i in range(20)]
    index_cells = [index_interior_cell(50 + i, r, len(r), 0) for i, r in enumerate(records)]
    page = _parsed(
        4, build_page(INDEX_INTERIOR, index_cells, 7, page_size=4096, usable_size=4096), layout
    )
    assert page.children == [50 + i for i in range(20)] + [7]
    assert [_payload(page, i, layout, {}) for i in range(20)] == records
    assert table_interior_cell(0xFFFFFFFF, 0) == b"\xff\xff\xff\xff\x00"


def test_cells_are_packed_from_the_end_with_cell_zero_last() -> None:
    layout = PageLayout(1024, 1000)
    records = [encode_record([i, "v" * i]) for i in range(1, 9)]
    cells = [table_leaf_cell(i, rec, len(rec), 0) for i, rec in enumerate(records, 1)]
    data = build_page(TABLE_LEAF, cells, 0, page_size=1024, usable_size=1000)
    page = _parsed(2, data, layout)
    ends = [ptr + len(cell) for ptr, cell in zip(page.cell_ptrs, cells, strict=True)]
    assert ends == [1000, *page.cell_ptrs[:-1]]
    content_start = struct.unpack_from(">H", data, 5)[0]
    assert content_start == page.cell_ptrs[-1]
    pointers_end = 8 + 2 * len(cells)
    assert data[pointers_end:content_start] == bytes(content_start - pointers_end)
    assert cell_area(cells, True, 0) == 1000 - content_start + pointers_end


def test_a_page_fills_exactly_and_not_a_byte_more() -> None:
    assert cell_area([], False, 100) == 112
    assert cell_area([], True, 0) == 8
    layout = PageLayout(1024, 1024)
    records = [encode_record([i]) for i in range(80)]
    cells = [table_leaf_cell(i, rec, len(rec), 0) for i, rec in enumerate(records)]
    room = 1024 - cell_area(cells, True, 0) - 2  # for the last cell, after its pointer
    filler = b"z" * (room - 3)  # its size varint takes 2 bytes, its rowid 1
    last = table_leaf_cell(80, filler, len(filler), 0)
    assert len(last) == room
    assert cell_area([*cells, last], True, 0) == 1024
    data = build_page(TABLE_LEAF, [*cells, last], 0, page_size=1024, usable_size=1024)
    page = _parsed(2, data, layout)
    assert page.cell_count == 81
    assert [_payload(page, i, layout, {}) for i in range(81)] == [*records, filler]
    with pytest.raises(ValueError, match="do not fit"):
        build_page(TABLE_LEAF, [*cells, last + b"\x00"], 0, page_size=1024, usable_size=1024)


def test_an_empty_65536_byte_page_stores_its_content_start_as_zero() -> None:
    data = build_page(TABLE_LEAF, [], 0, page_size=65536, usable_size=65536)
    assert data[:8] == bytes([TABLE_LEAF, 0, 0, 0, 0, 0, 0, 0])
    page = _parsed(2, data, PageLayout(65536, 65536))
    assert page.cell_count == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(min_size=MIN_CELL_SIZE, max_size=300), max_size=40),
    st.integers(0, 40),
    st.sampled_from([TABLE_LEAF, INDEX_LEAF, TABLE_INTERIOR, INDEX_INTERIOR]),
    st.booleans(),
)
def test_appending_to_a_compact_page_is_building_it_again(
    cells: list[bytes], kept: int, kind: int, page1: bool
) -> None:
    kept = min(kept, len(cells))
    usable, size = 4000, 4096
    prefix = bytes(range(100)) if page1 else b""
    leaf = kind in (TABLE_LEAF, INDEX_LEAF)
    right = 0 if leaf else 7
    if cell_area(cells, leaf, len(prefix)) > usable:
        cells = cells[: max(kept, 1) - 1]
        kept = len(cells)
    before = build_page(
        kind, cells[:kept], 3 if not leaf else 0, page_size=size, usable_size=usable, prefix=prefix
    )
    got = append_to_page(before, len(prefix), kind, kept, cells, right, usable, prefix)
    assert got == build_page(kind, cells, right, page_size=size, usable_size=usable, prefix=prefix)


def test_appending_declines_what_it_cannot_do() -> None:
    cells = [bytes([i]) * 100 for i in range(30)]
    page = build_page(TABLE_LEAF, cells[:10], 0, page_size=4096, usable_size=4096)
    # Another kind, a cell count that is not the page's, no room left in the gap.
    assert append_to_page(page, 0, INDEX_LEAF, 10, cells[:11], 0, 4096) is None
    assert append_to_page(page, 0, TABLE_LEAF, 9, cells[:11], 0, 4096) is None
    more = [*cells, b"x" * 1100]
    assert append_to_page(page, 0, TABLE_LEAF, 10, more, 0, 4096) is None
    assert append_to_page(page, 0, TABLE_LEAF, 10, cells[:12], 0, 4096) == build_page(
        TABLE_LEAF, cells[:12], 0, page_size=4096, usable_size=4096
    )


def test_build_page_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="page type"):
        build_page(3, [], 0, page_size=1024, usable_size=1024)
    with pytest.raises(ValueError, match="no right child"):
        build_page(TABLE_LEAF, [], 5, page_size=1024, usable_size=1024)
    with pytest.raises(ValueError, match="right child 0"):
        build_page(TABLE_INTERIOR, [], 0, page_size=1024, usable_size=1024)
    with pytest.raises(ValueError, match="usable size"):
        build_page(TABLE_LEAF, [], 0, page_size=1024, usable_size=2048)


def test_cell_and_chain_errors() -> None:
    with pytest.raises(ValueError, match="local bytes"):
        table_leaf_cell(1, b"abc", 4, 0)
    with pytest.raises(ValueError, match="overflow page number 0"):
        index_leaf_cell(b"abc", 1, 0)
    with pytest.raises(ValueError, match="rowid"):
        table_leaf_cell(1 << 63, b"abc", 3, 0)
    with pytest.raises(ValueError, match="left child 0"):
        table_interior_cell(0, 1)
    with pytest.raises(ValueError, match="left child"):
        index_interior_cell(1 << 32, b"abc", 3, 0)
    assert [overflow_page_count(n, 512) for n in (0, 1, 508, 509, 1016, 1017)] == [0, 1, 1, 2, 2, 3]
    assert overflow_pages(b"", [], 512, 512) == []
    with pytest.raises(ValueError, match="need 2 pages"):
        overflow_pages(b"x" * 509, [3], 512, 512)
    with pytest.raises(ValueError, match="page number 0"):
        overflow_pages(b"x" * 509, [3, 0], 512, 512)


# -- against the bytes sqlite3 writes -----------------------------------------------------

ROWS: list[tuple[int, tuple[Value, ...]]] = [
    (-(2**63), (0, 1, -1, None, 2.5)),
    (-1, (127, -128, 128, -129, 2**15 - 1)),
    (0, (-(2**15), 2**15, 2**23 - 1, -(2**23), 2**23)),
    (1, (2**31 - 1, -(2**31), 2**31, 2**47 - 1, -(2**47))),
    (2, (2**47, 2**63 - 1, -(2**63), -0.0, math.inf)),
    (127, ("", b"", "héllo", b"\x00\xff", "x" * 60)),
    (128, (-math.inf, 1e-300, 0.1, b"y" * 58, "z" * 57)),
    (2**63 - 1, (5e-324, None, None, None, None)),
]


def test_records_cells_and_pages_are_the_bytes_sqlite_writes(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "kinds.db",
        [
            "CREATE TABLE t(a, b, c, d, e)",
            (
                "INSERT INTO t(rowid, a, b, c, d, e) VALUES (?, ?, ?, ?, ?, ?)",
                [(r, *v) for r, v in ROWS],
                True,
            ),
            "CREATE INDEX tb ON t(b)",
            "CREATE TABLE w(k PRIMARY KEY) WITHOUT ROWID",
            ("INSERT INTO w VALUES (?)", [(0,), (1,), (2,)], True),
        ],
        page_size=1024,
    )
    data = path.read_bytes()
    layout = PageLayout(1024, 1024)
    roots = _roots(path)

    leaf = _parsed(roots["t"], _file_page(data, roots["t"], 1024), layout)
    assert leaf.kind == TABLE_LEAF and leaf.rowids == [r for r, _ in ROWS]
    cells = []
    for i, (rowid, values) in enumerate(ROWS):
        record = encode_record(values)
        start, end, _ = cell_overflow(leaf, i, layout)
        assert leaf.data[start:end] == record
        cell = table_leaf_cell(rowid, record, len(record), 0)
        ptr = leaf.cell_ptrs[i]
        assert leaf.data[ptr : ptr + len(cell)] == cell
        cells.append(cell)
    assert build_page(TABLE_LEAF, cells, 0, page_size=1024, usable_size=1024) == leaf.data

    plan = KeyPlan([field_key("BINARY", "utf-8")])
    entries = sorted(([v[1], r] for r, v in ROWS), key=plan.key)
    index = [index_leaf_cell(rec, len(rec), 0) for rec in map(encode_record, entries)]
    built = build_page(INDEX_LEAF, index, 0, page_size=1024, usable_size=1024)
    assert built == _file_page(data, roots["tb"], 1024)

    # A WITHOUT ROWID key of 0 or 1 is a 3-byte cell, which SQLite pads to 4 bytes as
    # well; its pad byte is whatever was in SQLite's cell buffer (`fillInCell` does not
    # clear it), so that byte alone is left out of the comparison.
    keys = [index_leaf_cell(rec, len(rec), 0) for rec in map(encode_record, ([0], [1], [2]))]
    assert keys[:2] == [b"\x02\x02\x08\x00", b"\x02\x02\x09\x00"]
    ours = bytearray(build_page(INDEX_LEAF, keys, 0, page_size=1024, usable_size=1024))
    written = bytearray(_file_page(data, roots["w"], 1024))
    for ptr in _parsed(roots["w"], bytes(written), layout).cell_ptrs[:2]:
        ours[ptr + 3] = written[ptr + 3] = 0
    assert ours == written

    schema = _query(path, "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master")
    rows = [encode_record(row) for row in schema]
    page_one = [table_leaf_cell(i + 1, rec, len(rec), 0) for i, rec in enumerate(rows)]
    built = build_page(TABLE_LEAF, page_one, 0, page_size=1024, usable_size=1024, prefix=data[:100])
    assert built == data[:1024]


def test_record_header_boundary_is_the_bytes_sqlite_writes(tmp_path: Path) -> None:
    for columns in (126, 127):
        values = [i % 3 - 1 if i % 2 else None for i in range(columns)]
        names = ", ".join(f"c{i}" for i in range(columns))
        path = make_db(
            tmp_path / f"wide{columns}.db",
            [
                f"CREATE TABLE t({names})",
                (f"INSERT INTO t VALUES ({', '.join('?' * columns)})", values),
            ],
            page_size=1024,
        )
        layout = PageLayout(1024, 1024)
        leaf = _parsed(2, _file_page(path.read_bytes(), 2, 1024), layout)
        start, end, _ = cell_overflow(leaf, 0, layout)
        record = encode_record(values)
        assert leaf.data[start:end] == record
        assert read_varint(record, 0)[0] == (127 if columns == 126 else 129)


def _record_of_size(size: int, extra: Sequence[Value] = ()) -> tuple[bytes, bytes]:
    """A blob and the record `[blob, *extra]` of exactly `size` bytes."""
    n = size
    for _ in range(4):
        record = encode_record([b"b" * n, *extra])
        if len(record) == size:
            blob = _pattern(n, size)
            return blob, encode_record([blob, *extra])
        n += size - len(record)
    raise AssertionError(f"no record of {size} bytes")


@pytest.mark.parametrize(
    ("page_size", "reserved"), [(512, 0), (1024, 0), (4096, 0), (65536, 0), (1024, 33), (4096, 100)]
)
def test_payloads_at_the_thresholds_are_the_bytes_sqlite_writes(
    tmp_path: Path, page_size: int, reserved: int
) -> None:
    usable = page_size - reserved
    layout = PageLayout(page_size, usable)
    # Table records [blob]; the index on the blob holds [blob, rowid 1], one byte longer.
    sizes = [
        layout.max_local_table,
        layout.max_local_table + 1,
        layout.max_local_index - 1,
        layout.max_local_index,
        3 * usable + 5,
    ]
    blobs = [_record_of_size(size)[0] for size in sizes]
    script: list[str | tuple[str, Sequence[object]]] = []
    for i, blob in enumerate(blobs):
        script += [
            f"CREATE TABLE t{i}(v)",
            (f"INSERT INTO t{i} VALUES (?)", [blob]),
            f"CREATE INDEX i{i} ON t{i}(v)",
        ]
    path = make_db(tmp_path / "sizes.db", script, page_size=page_size, reserved=reserved)
    data = path.read_bytes()
    assert data[20] == reserved
    roots = _roots(path)
    for i, blob in enumerate(blobs):
        for name, kind, record in (
            (f"t{i}", TABLE_LEAF, encode_record([blob])),
            (f"i{i}", INDEX_LEAF, encode_record([blob, 1])),
        ):
            table_leaf = kind == TABLE_LEAF
            original = _parsed(roots[name], _file_page(data, roots[name], page_size), layout)
            local = layout.local_size(len(record), table_leaf)
            first = cell_overflow(original, 0, layout)[2]
            numbers = _chain(data, first, page_size)
            if table_leaf:
                cell = table_leaf_cell(1, record, local, first)
            else:
                cell = index_leaf_cell(record, local, first)
            built = build_page(kind, [cell], 0, page_size=page_size, usable_size=usable)
            assert built == original.data, name
            chain = overflow_pages(record[local:], numbers, usable, page_size)
            assert chain == [_file_page(data, n, page_size) for n in numbers], name


# -- pages built here inside sqlite3's databases ------------------------------------------

COLUMNS = ("i INTEGER", "r REAL", "s TEXT", "n NUMERIC", "b BLOB", "x")
AFFINITIES = [affinity_of(c.partition(" ")[2]) for c in COLUMNS]
POOL: list[object] = [0, 1, -1, 7, 2**40, -(2**63), 2**63 - 1, 3.0, 2.5, -0.0, math.inf, 0.1]
POOL += ["12", " 3.5 ", "abc", "", "1e3", b"\x00\x01", b"", None, True, "-0.0", "x" * 30]


def _stored_row(raw: Sequence[object]) -> list[Value]:
    return [column_value(v, a) for v, a in zip(raw, AFFINITIES, strict=True)]


@pytest.mark.parametrize(("page_size", "reserved"), [(1024, 0), (4096, 32)])
def test_built_leaves_and_chains_pass_sqlite_integrity_check(
    tmp_path: Path, page_size: int, reserved: int
) -> None:
    rng = random.Random(page_size + reserved)
    raw = {rowid: [rng.choice(POOL) for _ in COLUMNS] for rowid in range(1, 15)}
    order = list(raw)
    rng.shuffle(order)
    names = ", ".join(c.split()[0] for c in COLUMNS)
    insert = f"INSERT INTO t(rowid, {names}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    path = make_db(
        tmp_path / "leaf.db",
        [
            f"CREATE TABLE t({', '.join(COLUMNS)})",
            "CREATE INDEX tns ON t(n, s)",
            (insert, [(r, *raw[r]) for r in order], True),
        ],
        page_size=page_size,
        reserved=reserved,
    )
    usable = page_size - reserved
    layout = PageLayout(page_size, usable)
    # Leave SQLite's pages with freeblocks and a spilled row, so ours differ from them.
    # Its local part falls back to min_local, so its last overflow page is partly used.
    target = layout.min_local + 3 * (usable - 4) - 1
    assert layout.local_size(target, True) == layout.min_local
    n = target
    for _ in range(4):
        big: list[object] = [5, 2.5, "big", 9, _pattern(n), None]
        size = len(encode_record(_stored_row(big)))
        n += target - size
    assert size == target
    with closing(sqlite3.connect(path)) as con:
        con.execute("DELETE FROM t WHERE rowid IN (3, 9)")
        con.execute("UPDATE t SET s = ? WHERE rowid = 5", ["a longer text than before " * 2])
        con.execute(insert, [20, *big])
        con.commit()
    del raw[3], raw[9]
    raw[5][2] = "a longer text than before " * 2
    raw[20] = big
    rows_before = _query(path, "SELECT rowid, * FROM t ORDER BY rowid")
    index_before = _query(path, "SELECT n, s, rowid FROM t INDEXED BY tns ORDER BY n, s")
    data = path.read_bytes()
    roots = _roots(path)
    original = _parsed(roots["t"], _file_page(data, roots["t"], page_size), layout)
    assert original.kind == TABLE_LEAF and original.rowids == sorted(raw)

    # The spilled row's chain goes on the same pages in reverse order.
    numbers = _chain(data, cell_overflow(original, len(raw) - 1, layout)[2], page_size)
    assert len(numbers) == 3
    numbers.reverse()
    pages: dict[int, bytes] = {}
    cells = []
    for rowid in sorted(raw):
        record = encode_record(_stored_row(raw[rowid]))
        local = layout.local_size(len(record), True)
        if local < len(record):
            chain = overflow_pages(record[local:], numbers, usable, page_size)
            pages.update(zip(numbers, chain, strict=True))
        cells.append(table_leaf_cell(rowid, record, local, numbers[0]))
    pages[roots["t"]] = build_page(TABLE_LEAF, cells, 0, page_size=page_size, usable_size=usable)
    assert pages[roots["t"]] != original.data

    plan = KeyPlan([field_key("BINARY", "utf-8")] * 2)
    entries = sorted(([*_stored_row(raw[r])[2:4][::-1], r] for r in raw), key=plan.key)
    index_cells = [index_leaf_cell(rec, len(rec), 0) for rec in map(encode_record, entries)]
    assert (
        _parsed(roots["tns"], _file_page(data, roots["tns"], page_size), layout).kind == INDEX_LEAF
    )
    pages[roots["tns"]] = build_page(
        INDEX_LEAF, index_cells, 0, page_size=page_size, usable_size=usable
    )

    schema = _query(path, "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master")
    records = [encode_record(row) for row in schema]
    schema_cells = [table_leaf_cell(i + 1, rec, len(rec), 0) for i, rec in enumerate(records)]
    pages[1] = build_page(
        TABLE_LEAF, schema_cells, 0, page_size=page_size, usable_size=usable, prefix=data[:100]
    )

    _write_pages(path, page_size, pages)
    assert _query(path, "PRAGMA integrity_check") == [("ok",)]
    assert _query(path, "SELECT rowid, * FROM t ORDER BY rowid") == rows_before
    assert _query(path, "SELECT n, s, rowid FROM t INDEXED BY tns ORDER BY n, s") == index_before


def test_built_interior_pages_pass_sqlite_integrity_check(tmp_path: Path) -> None:
    rows: list[Sequence[Any]] = [
        (i, f"{i * 7919 % 1000:04d}-" + "k" * (i % 40)) for i in range(1, 400)
    ]
    path = make_db(
        tmp_path / "tree.db",
        [
            "CREATE TABLE t(a INTEGER PRIMARY KEY, s TEXT)",
            ("INSERT INTO t VALUES (?, ?)", rows, True),
            "CREATE INDEX ts ON t(s)",
        ],
        page_size=1024,
    )
    layout = PageLayout(1024, 1024)
    data = path.read_bytes()
    roots = _roots(path)
    table = _parsed(roots["t"], _file_page(data, roots["t"], 1024), layout)
    index = _parsed(roots["ts"], _file_page(data, roots["ts"], 1024), layout)
    assert (table.kind, index.kind) == (TABLE_INTERIOR, INDEX_INTERIOR)
    assert table.children is not None and table.rowids is not None and index.children is not None

    table_cells = [
        table_interior_cell(c, r) for c, r in zip(table.children, table.rowids, strict=False)
    ]
    index_cells = []
    for i, child in enumerate(index.children[:-1]):
        start, end, following = cell_overflow(index, i, layout)
        assert following == 0
        record = encode_record(decode_record(index.data, start, end, "utf-8"))
        assert record == index.data[start:end]
        index_cells.append(index_interior_cell(child, record, len(record), 0))
    _write_pages(
        path,
        1024,
        {
            roots["t"]: build_page(
                TABLE_INTERIOR, table_cells, table.children[-1], page_size=1024, usable_size=1024
            ),
            roots["ts"]: build_page(
                INDEX_INTERIOR, index_cells, index.children[-1], page_size=1024, usable_size=1024
            ),
        },
    )
    assert _query(path, "PRAGMA integrity_check") == [("ok",)]
    assert _query(path, "SELECT a, s FROM t ORDER BY a") == rows
    assert _query(path, "SELECT s, a FROM t INDEXED BY ts ORDER BY s") == sorted(
        (s, a) for a, s in rows
    )
