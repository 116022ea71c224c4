"""The on-disk format pieces: header, varints, records, page parsing, WAL checksums."""

from __future__ import annotations

import math
import sqlite3
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import IOResultError
from core.io import UnixIO
from core.storage import CorruptDatabaseError, TextEncoding
from core.storage.header import MAGIC, parse_header
from core.storage.page import (
    INDEX_LEAF,
    TABLE_INTERIOR,
    TABLE_LEAF,
    Page,
    PageLayout,
    parse_btree,
    parse_cells,
)
from core.storage.record import decode_record, read_varint, to_signed64
from core.storage.wal import parse_wal_header, wal_checksum
from tests.storage_helpers import PAGE_SIZES, make_db, open_db

# -- header ---------------------------------------------------------------------------


def _header(**changes: int) -> bytearray:
    data = bytearray(100)
    data[:16] = MAGIC
    fields = {
        "page_size": (16, ">H", 4096),
        "write": (18, "B", 1),
        "read": (19, "B", 1),
        "reserved": (20, "B", 0),
        "max_frac": (21, "B", 64),
        "min_frac": (22, "B", 32),
        "leaf_frac": (23, "B", 32),
        "change": (24, ">I", 7),
        "pages": (28, ">I", 3),
        "format": (44, ">I", 4),
        "encoding": (56, ">I", 1),
        "valid_for": (92, ">I", 7),
    }
    for name, (offset, fmt, default) in fields.items():
        struct.pack_into(fmt, data, offset, changes.get(name, default))
    return data


def test_header_fields() -> None:
    h = parse_header(_header())
    assert (h.page_size, h.usable_size, h.page_count, h.schema_format) == (4096, 4096, 3, 4)
    assert h.text_encoding is TextEncoding.UTF8
    assert not h.wal_mode
    assert parse_header(_header(read=2, write=2)).wal_mode


def test_header_page_size_one_means_65536() -> None:
    assert parse_header(_header(page_size=1)).page_size == 65536


@pytest.mark.parametrize(
    ("value", "encoding"), [(0, "UTF8"), (1, "UTF8"), (2, "UTF16LE"), (3, "UTF16BE")]
)
def test_header_encodings(value: int, encoding: str) -> None:
    assert parse_header(_header(encoding=value)).text_encoding is TextEncoding[encoding]


def test_header_page_count_needs_version_valid_for() -> None:
    assert parse_header(_header(valid_for=6)).page_count == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"page_size": 1000}, "page size 1000"),
        ({"page_size": 256}, "page size 256"),
        ({"page_size": 0}, "page size 0"),
        ({"read": 3}, "read version 3"),
        ({"write": 0}, "write version 0"),
        ({"max_frac": 60}, "payload fractions"),
        ({"reserved": 40, "page_size": 512}, "usable bytes"),
        ({"format": 5}, "schema format 5"),
    ],
)
def test_header_rejects(changes: dict[str, int], message: str) -> None:
    with pytest.raises(CorruptDatabaseError, match=message) as info:
        parse_header(_header(**changes))
    assert info.value.page == 1
    assert isinstance(info.value, IOResultError)


def test_header_rejects_magic_and_short_data() -> None:
    data = _header()
    data[0:6] = b"SQLitf"
    with pytest.raises(CorruptDatabaseError, match="not a database"):
        parse_header(data)
    with pytest.raises(CorruptDatabaseError, match="too short"):
        parse_header(_header()[:99])


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_header_of_real_databases(tmp_path: Path, page_size: int) -> None:
    path = make_db(tmp_path / "p.db", ["CREATE TABLE t(x)"], page_size=page_size)
    header = parse_header(path.read_bytes()[:100])
    assert header.page_size == page_size
    assert header.page_count == path.stat().st_size // page_size


# -- varints and records ----------------------------------------------------------------


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    if value > 0x00FFFFFFFFFFFFFF:
        out = [value & 0xFF]
        value >>= 8
        for _ in range(8):
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        return bytes(reversed(out))
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = _encode_varint(value)
    decoded, end = read_varint(b"\x00" + encoded + b"\xff", 1)
    assert end == 1 + len(encoded) <= 10
    assert to_signed64(decoded) == value


def test_varint_nine_bytes_uses_all_bits_of_the_last() -> None:
    assert read_varint(b"\xff" * 9, 0) == ((1 << 64) - 1, 9)
    assert to_signed64(read_varint(b"\xff" * 9, 0)[0]) == -1


def _record(*fields: tuple[int, bytes]) -> bytes:
    header = b"".join(_encode_varint(t) for t, _ in fields)
    size = len(header) + 1
    if size > 127:
        size += 1
    return _encode_varint(size) + header + b"".join(body for _, body in fields)


def test_record_every_serial_type() -> None:
    payload = _record(
        (0, b""),
        (1, b"\xff"),
        (2, struct.pack(">h", -2)),
        (3, (-3 & 0xFFFFFF).to_bytes(3, "big")),
        (4, struct.pack(">i", 70000)),
        (5, (-(1 << 40)).to_bytes(6, "big", signed=True)),
        (6, struct.pack(">q", -(1 << 63))),
        (7, struct.pack(">d", -0.0)),
        (7, struct.pack(">d", math.inf)),
        (8, b""),
        (9, b""),
        (12, b""),
        (12 + 2 * 3, b"\x00\x01\x02"),
        (13 + 2 * 4, "häj".encode()),
    )
    values = decode_record(payload, 0, len(payload), "utf-8")
    assert values == [
        None,
        -1,
        -2,
        -3,
        70000,
        -(1 << 40),
        -(1 << 63),
        -0.0,
        math.inf,
        0,
        1,
        b"",
        b"\x00\x01\x02",
        "häj",
    ]
    assert math.copysign(1.0, values[7]) == -1.0  # type: ignore[arg-type]


def test_record_nan_reads_as_null_and_text_decodes_per_encoding() -> None:
    nan = _record((7, struct.pack(">d", math.nan)))
    assert decode_record(nan, 0, len(nan), "utf-8") == [None]
    text = "ab€".encode("utf-16-be")
    payload = _record((13 + 2 * len(text), text))
    assert decode_record(payload, 0, len(payload), "utf-16-be") == ["ab€"]
    bad = _record((13 + 2, b"\xff"))
    assert decode_record(bad, 0, len(bad), "utf-8") == ["\ufffd"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_record((10, b"")), "reserved serial type 10"),
        (_record((11, b"")), "reserved serial type 11"),
        (_record((6, b"\x00\x00")), "payload"),
        (_record((13 + 20, b"abc")), "payload has"),
        (b"\x7f\x01", "does not fit"),
        (b"\x00", "does not fit"),
        (b"\x81", "runs past"),
    ],
)
def test_record_rejects(payload: bytes, message: str) -> None:
    with pytest.raises(CorruptDatabaseError, match=message):
        decode_record(payload, 0, len(payload), "utf-8")


# -- pages ---------------------------------------------------------------------------


def _leaf_page(cells: list[bytes], kind: int = TABLE_LEAF, size: int = 512) -> Page:
    data = bytearray(size)
    data[0] = kind
    struct.pack_into(">H", data, 3, len(cells))
    end = size
    for i, cell in enumerate(cells):
        end -= len(cell)
        data[end : end + len(cell)] = cell
        struct.pack_into(">H", data, 8 + 2 * i, end)
    struct.pack_into(">H", data, 5, end)
    return Page(2, bytes(data))


def test_parse_table_leaf() -> None:
    rec = _record((1, b"\x05"))
    page = _leaf_page([_encode_varint(len(rec)) + _encode_varint(7) + rec])
    layout = PageLayout(512, 512)
    parse_btree(page, layout)
    parse_cells(page, layout)
    assert page.is_leaf and page.is_table and page.rowids == [7]
    assert page.payload_sizes == [len(rec)]


def test_parse_rejects_unknown_type_and_bad_pointers() -> None:
    layout = PageLayout(512, 512)
    page = _leaf_page([], kind=3)
    with pytest.raises(CorruptDatabaseError, match="unknown B-tree page type 3") as info:
        parse_btree(page, layout)
    assert info.value.page == 2
    data = bytearray(_leaf_page([b"\x01\x01\x00\x00"]).data)
    struct.pack_into(">H", data, 8, 600)
    with pytest.raises(CorruptDatabaseError, match="cell pointer 0 is 600"):
        parse_btree(Page(2, bytes(data)), layout)
    data = bytearray(512)
    data[0] = TABLE_INTERIOR
    struct.pack_into(">H", data, 3, 300)
    with pytest.raises(CorruptDatabaseError, match="300 cells do not fit"):
        parse_btree(Page(2, bytes(data)), layout)


def test_parse_rejects_cell_past_the_page() -> None:
    layout = PageLayout(512, 512)
    cell = _encode_varint(200) + _encode_varint(1) + b"x" * 10
    page = _leaf_page([cell])
    parse_btree(page, layout)
    with pytest.raises(CorruptDatabaseError, match="runs past the end of the page"):
        parse_cells(page, layout)
    index_page = _leaf_page([_encode_varint(300) + b"y" * 4], kind=INDEX_LEAF)
    parse_btree(index_page, layout)
    with pytest.raises(CorruptDatabaseError, match="cell 0"):
        parse_cells(index_page, layout)


def test_local_payload_sizes_follow_the_format() -> None:
    layout = PageLayout(4096, 4096)
    assert layout.local_size(4061, True) == 4061
    # Over the table-leaf maximum: M + (P - M) % (U - 4), or M when that is too big.
    m = ((4096 - 12) * 32 // 255) - 23
    assert layout.local_size(5000, True) == m + (5000 - m) % 4092
    assert layout.local_size(m + 4000, True) == m
    assert layout.max_local_index == ((4096 - 12) * 64 // 255) - 23


# -- WAL checksums -----------------------------------------------------------------------


def _naive_checksum(data: bytes, s0: int, s1: int, big: bool) -> tuple[int, int]:
    fmt = ">" if big else "<"
    for i in range(0, len(data), 8):
        a, b = struct.unpack(fmt + "II", data[i : i + 8])
        s0 = (s0 + a + s1) & 0xFFFFFFFF
        s1 = (s1 + b + s0) & 0xFFFFFFFF
    return s0, s1


@settings(max_examples=30)
@given(st.binary(min_size=8, max_size=256).map(lambda b: b[: len(b) // 8 * 8]), st.booleans())
def test_wal_checksum_matches_the_definition(data: bytes, big: bool) -> None:
    assert wal_checksum(data, 0, len(data), 1, 2, big) == _naive_checksum(data, 1, 2, big)


def test_wal_header_of_a_real_log(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t(x)")
    con.commit()
    data = Path(str(path) + "-wal").read_bytes()
    header = parse_wal_header(data[:32])
    assert header.page_size == 4096
    broken = bytearray(data[:32])
    broken[12] ^= 1
    with pytest.raises(CorruptDatabaseError, match="checksum"):
        parse_wal_header(broken)
    con.close()


def test_open_reads_page_sizes_and_encodings(tmp_path: Path) -> None:
    io = UnixIO()
    for encoding in ("UTF-8", "UTF-16le", "UTF-16be"):
        path = make_db(
            tmp_path / f"{encoding}.db",
            ["CREATE TABLE t(x TEXT)", ("INSERT INTO t VALUES (?)", ["\u00e9\U0001f600"])],
            encoding=encoding,
        )
        db = open_db(io, path)
        expected = {"UTF-8": "utf-8", "UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}
        assert db.codec == expected[encoding]
        db.close()
