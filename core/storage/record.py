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
from typing import TypeAlias

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

MAX_RECORD_HEADER = 98307
"""SQLite's bound on a record header's size (it refuses larger ones as corrupt)."""

_unpack_double = struct.Struct(">d").unpack_from
_unpack_h = struct.Struct(">h").unpack_from
_unpack_i = struct.Struct(">i").unpack_from
_unpack_q = struct.Struct(">q").unpack_from

_SIGN64 = 1 << 63
_WRAP64 = 1 << 64


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


def decode_record(buf: bytes, start: int, end: int, codec: str) -> list[Value]:
    """Decode the record in `buf[start:end]`; text decodes with `codec`.

    Raises `CorruptDatabaseError` (without a page; the caller adds it) if the header or a
    field body runs past `end` or a serial type is reserved.
    """
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
