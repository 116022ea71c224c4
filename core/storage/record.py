"""Varints and the record format (Turso `sqlite3_ondisk.rs`: `read_varint`, `read_value`;
sqlite.org/fileformat2.html sections 1.6 and 2.1).

A record is a header (its own length as a varint, then one serial type per field) followed
by the field bodies. Rules kept here:
- A varint is 1..9 bytes, big-endian, seven bits per byte with the high bit as "more"; the
  ninth byte contributes all eight bits. Rowids are the two's-complement reading of it.
- Every serial type is decoded: 0 NULL, 1-6 big-endian signed integers of 1, 2, 3, 4, 6, 8
  bytes, 7 an IEEE double (a NaN reads as NULL, as SQLite's `sqlite3VdbeSerialGet` does),
  8 and 9 the constants 0 and 1, even N >= 12 a blob of (N-12)/2 bytes, odd N >= 13 text of
  (N-13)/2 bytes in the database's encoding. 10 and 11 are reserved and corrupt.
- Text that is not valid in the database encoding decodes with U+FFFD replacements: SQLite
  itself never rejects stored text, so neither does this reader.
- A header or a body that runs past the payload is a `CorruptDatabaseError`; decoding never
  lets an `IndexError` or `struct.error` escape (the callers name the page).
"""

from __future__ import annotations

import struct
from typing import Final, TypeAlias

from core.storage.errors import CorruptDatabaseError

__all__ = [
    "MAX_RECORD_HEADER",
    "Value",
    "decode_record",
    "read_varint",
    "to_signed64",
]

Value: TypeAlias = int | float | str | bytes | None
"""A column value as Python's sqlite3 returns it."""

MAX_RECORD_HEADER: Final = 98307
"""SQLite's bound on a record header's size (it refuses larger ones as corrupt)."""

_unpack_double: Final = struct.Struct(">d").unpack_from
_unpack_h: Final = struct.Struct(">h").unpack_from
_unpack_i: Final = struct.Struct(">i").unpack_from
_unpack_q: Final = struct.Struct(">q").unpack_from

_SIGN64: Final = 1 << 63
_WRAP64: Final = 1 << 64


def read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    """The unsigned varint at `pos` and the position after it.

    Raises `IndexError` if the buffer ends first (callers translate it).
    """
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    for i in range(1, 8):
        b = buf[pos + i]
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, pos + i + 1
    return (value << 8) | buf[pos + 8], pos + 9


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint as the signed integer SQLite stores."""
    return value - _WRAP64 if value >= _SIGN64 else value


_TEXT, _NULL, _ZERO, _ONE, _FLOAT, _INT24, _INT48 = range(7)


class _Plan:
    """How to decode every record whose header is exactly the same bytes: one `struct`
    call for the whole body, then fix-ups for the fields `struct` cannot express."""

    __slots__ = ("fixups", "size", "unpack")

    def __init__(self, types: list[int]) -> None:
        fmt = [">"]
        fixups: list[tuple[int, int]] = []
        for i, t in enumerate(types):
            if t >= 12:
                fmt.append(f"{(t - 12) >> 1}s")
                if t & 1:
                    fixups.append((i, _TEXT))
            elif t in _FIXED:
                fmt.append(_FIXED[t])
                if t == 7:
                    fixups.append((i, _FLOAT))
            elif t == 3:
                fmt.append("3s")
                fixups.append((i, _INT24))
            elif t == 5:
                fmt.append("6s")
                fixups.append((i, _INT48))
            else:
                fmt.append("0s")
                fixups.append((i, _NULL if t == 0 else _ZERO if t == 8 else _ONE))
        compiled = struct.Struct("".join(fmt))
        self.unpack = compiled.unpack_from
        self.size = compiled.size
        self.fixups = tuple(fixups)


_FIXED: Final = {1: "b", 2: "h", 4: "i", 6: "q", 7: "d"}
_PLANS: Final[dict[bytes, _Plan]] = {}
_MAX_PLANS: Final = 4096


def _make_plan(key: bytes) -> _Plan | None:
    types = []
    p = 1
    n = len(key)
    while p < n:
        t = key[p]
        if t < 0x80:
            p += 1
        else:
            try:
                t, p = read_varint(key, p)
            except IndexError:
                return None
            if p > n:
                return None
        if t in (10, 11) or t > 0xFFFFFFFF:
            return None  # reserved or absurd: the field-by-field path reports it
        types.append(t)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()  # many distinct headers (varied text lengths): start over
    plan = _PLANS[key] = _Plan(types)
    return plan


def decode_record(buf: bytes, start: int, end: int, codec: str) -> list[Value]:
    """Decode the record in `buf[start:end]`; text decodes with `codec`.

    Records with the same header (the same serial types) decode through one cached
    `struct` plan; anything unusual goes field by field.

    Raises `CorruptDatabaseError` (without a page; the caller adds it) if the header or a
    field body runs past `end` or a serial type is reserved.
    """
    if start < end:
        header_size = buf[start]
        if 0 < header_size < 0x80:
            body = start + header_size
            key = buf[start:body]
            plan = _PLANS.get(key)
            if plan is None and len(key) == header_size:
                plan = _make_plan(key)
            if plan is not None and body + plan.size <= end:
                values: list[Value] = list(plan.unpack(buf, body))
                for i, kind in plan.fixups:
                    if kind == _TEXT:
                        values[i] = values[i].decode(codec, "replace")  # type: ignore[union-attr]
                    elif kind == _FLOAT:
                        f = values[i]
                        if f != f:  # noqa: PLR0124 (NaN reads as NULL)
                            values[i] = None
                    elif kind == _NULL:
                        values[i] = None
                    elif kind == _ZERO:
                        values[i] = 0
                    elif kind == _ONE:
                        values[i] = 1
                    else:
                        values[i] = int.from_bytes(values[i], "big", signed=True)  # type: ignore[arg-type]
                return values
    return _decode_generic(buf, start, end, codec)


def _decode_generic(buf: bytes, start: int, end: int, codec: str) -> list[Value]:
    """Decode field by field (any header; the reference the plans must agree with)."""
    try:
        b = buf[start]
        if b < 0x80:
            header_size = b
            p = start + 1
        else:
            header_size, p = read_varint(buf, start)
        header_end = start + header_size
        if header_size < p - start or header_end > end or header_size > MAX_RECORD_HEADER:
            raise CorruptDatabaseError(
                f"record header of {header_size} bytes does not fit its {end - start}-byte payload"
            )
        body = header_end
        values: list[Value] = []
        append = values.append
        while p < header_end:
            t = buf[p]
            if t < 0x80:
                p += 1
            else:
                t, p = read_varint(buf, p)
            if t >= 12:
                q = body + ((t - 12) >> 1)
                if q > end:
                    body = q
                    break  # reported below
                if t & 1:
                    append(buf[body:q].decode(codec, "replace"))
                else:
                    append(buf[body:q])
                body = q
            elif t == 0:
                append(None)
            elif t == 1:
                v = buf[body]
                append(v - 256 if v > 127 else v)
                body += 1
            elif t == 2:
                append(_unpack_h(buf, body)[0])
                body += 2
            elif t == 4:
                append(_unpack_i(buf, body)[0])
                body += 4
            elif t == 6:
                append(_unpack_q(buf, body)[0])
                body += 8
            elif t == 7:
                f = _unpack_double(buf, body)[0]
                append(None if f != f else f)  # noqa: PLR0124 (NaN reads as NULL)
                body += 8
            elif t == 3:
                append(int.from_bytes(buf[body : body + 3], "big", signed=True))
                body += 3
            elif t == 5:
                append(int.from_bytes(buf[body : body + 6], "big", signed=True))
                body += 6
            elif t == 8:
                append(0)
            elif t == 9:
                append(1)
            else:
                raise CorruptDatabaseError(f"record uses reserved serial type {t}")
        if body > end or p > header_end:
            raise CorruptDatabaseError(
                f"record fields need {body - start} bytes but the payload has {end - start}"
            )
        return values
    except (IndexError, struct.error) as exc:
        raise CorruptDatabaseError(f"record runs past the end of its payload ({exc})") from None
