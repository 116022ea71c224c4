"""The 100-byte database header at the start of page 1 (Turso `sqlite3_ondisk.rs`,
`DatabaseHeader`; sqlite.org/fileformat2.html section 1.3).

Rules kept here:
- Only the fields a reader needs are interpreted; every one is validated the way SQLite's
  `lockBtree` does, and a bad one is a `CorruptDatabaseError` on page 1 naming the field.
- The page size field is two bytes, so 65536 is stored as 1.
- The in-header page count is trusted only when "version-valid-for" equals the change
  counter (older writers did not maintain it); otherwise the file size decides.
- The text encoding is taken as SQLite does: the low two bits, 0 meaning UTF-8.
- Writing: a database this engine creates has a header like the one `sqlite3` writes for a
  new file in WAL mode (`new_header`); a commit patches only the counters it keeps
  (`with_counters`): the change counter, and version-valid-for equal to it, so that the
  in-header page count is trusted; the page count; the freelist; the schema cookie.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from core.storage.errors import CorruptDatabaseError

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "SQLITE_VERSION_NUMBER",
    "DatabaseHeader",
    "TextEncoding",
    "new_header",
    "parse_header",
    "with_counters",
]

HEADER_SIZE: Final = 100
MAGIC: Final = b"SQLite format 3\x00"
MIN_USABLE_SIZE: Final = 480

_FIELDS: Final = struct.Struct(">HBBBBBBIIIIIIIIIIII20xII")


class TextEncoding(enum.Enum):
    """How TEXT values are stored; the value is the Python codec name."""

    UTF8 = "utf-8"
    UTF16LE = "utf-16-le"
    UTF16BE = "utf-16-be"


_ENCODINGS: Final = {0: TextEncoding.UTF8, 1: TextEncoding.UTF8, 2: TextEncoding.UTF16LE}


@dataclass(frozen=True, slots=True)
class DatabaseHeader:
    """The interpreted database header."""

    page_size: int
    """Bytes per page, 512..65536."""
    write_version: int
    """1 for rollback journal, 2 for WAL."""
    read_version: int
    """1 for rollback journal, 2 for WAL."""
    reserved_bytes: int
    """Bytes at the end of each page reserved for extensions."""
    change_counter: int
    """Incremented by rollback-journal writers on every commit."""
    page_count: int
    """The database size in pages, 0 when the header's count is not valid."""
    freelist_trunk: int
    freelist_count: int
    schema_cookie: int
    """Incremented whenever the schema changes."""
    schema_format: int
    """1..4; DESC indexes are honoured from 4 on."""
    text_encoding: TextEncoding
    user_version: int
    application_id: int
    version_valid_for: int
    sqlite_version: int
    largest_root: int = 0
    """Non-zero in an auto-vacuum (or incremental-vacuum) database."""

    @property
    def usable_size(self) -> int:
        """Page size minus the reserved bytes: the space a B-tree page may use."""
        return self.page_size - self.reserved_bytes

    @property
    def wal_mode(self) -> bool:
        """True when the file format versions say the database is in WAL mode."""
        return self.read_version == 2 or self.write_version == 2


def parse_header(data: bytes | bytearray, *, path: str | None = None) -> DatabaseHeader:
    """Interpret the first 100 bytes of a database file.

    Raises `CorruptDatabaseError` (page 1) if the data is short, the magic string is wrong,
    or a field holds a value SQLite would refuse.
    """
    if len(data) < HEADER_SIZE:
        raise CorruptDatabaseError(
            f"file is too short for a database header ({len(data)} of {HEADER_SIZE} bytes)",
            page=1,
            path=path,
        )
    if bytes(data[:16]) != MAGIC:
        raise CorruptDatabaseError(
            f"not a database: header magic is {bytes(data[:16])!r}", page=1, path=path
        )
    (
        raw_page_size,
        write_version,
        read_version,
        reserved,
        max_fraction,
        min_fraction,
        leaf_fraction,
        change_counter,
        page_count,
        freelist_trunk,
        freelist_count,
        schema_cookie,
        schema_format,
        _cache_size,
        _largest_root,
        encoding,
        user_version,
        _incremental_vacuum,
        application_id,
        version_valid_for,
        sqlite_version,
    ) = _FIELDS.unpack_from(data, 16)

    def bad(what: str) -> CorruptDatabaseError:
        return CorruptDatabaseError(f"bad database header: {what}", page=1, path=path)

    page_size = 65536 if raw_page_size == 1 else raw_page_size
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise bad(f"page size {raw_page_size} is not a power of two in 512..65536")
    if read_version not in (1, 2):
        raise bad(f"file format read version {read_version} (only 1 and 2 exist)")
    if write_version not in (1, 2):
        raise bad(f"file format write version {write_version} (only 1 and 2 exist)")
    if (max_fraction, min_fraction, leaf_fraction) != (64, 32, 32):
        raise bad(
            f"payload fractions are {max_fraction}/{min_fraction}/{leaf_fraction}, must be 64/32/32"
        )
    if page_size - reserved < MIN_USABLE_SIZE:
        raise bad(
            f"{reserved} reserved bytes leave {page_size - reserved} usable bytes per page "
            f"(at least {MIN_USABLE_SIZE} needed)"
        )
    if schema_format > 4:
        raise bad(f"schema format {schema_format} (only 1..4 exist)")
    if version_valid_for != change_counter:
        page_count = 0  # written by a writer that did not keep the count up to date
    return DatabaseHeader(
        page_size=page_size,
        write_version=write_version,
        read_version=read_version,
        reserved_bytes=reserved,
        change_counter=change_counter,
        page_count=page_count,
        freelist_trunk=freelist_trunk,
        freelist_count=freelist_count,
        schema_cookie=schema_cookie,
        schema_format=schema_format,
        text_encoding=_ENCODINGS.get(encoding & 3, TextEncoding.UTF16BE),
        user_version=user_version,
        application_id=application_id,
        version_valid_for=version_valid_for,
        sqlite_version=sqlite_version,
        largest_root=_largest_root,
    )


SQLITE_VERSION_NUMBER: Final = 3045001
"""The SQLite version number this engine writes into headers (the file format it follows)."""

_u32: Final = struct.Struct(">I")


def new_header(page_size: int) -> bytes:
    """The 100-byte header of a new, empty UTF-8 database in WAL mode (one page).

    Raises `ValueError` for a page size that is not a power of two in 512..65536.
    """
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise ValueError(f"page size {page_size} is not a power of two in 512..65536")
    return MAGIC + _FIELDS.pack(
        1 if page_size == 65536 else page_size,
        2,  # write version: WAL
        2,  # read version: WAL
        0,  # reserved bytes per page
        64,
        32,
        32,
        1,  # change counter
        1,  # page count
        0,  # freelist trunk
        0,  # freelist pages
        0,  # schema cookie
        4,  # schema format
        0,  # default cache size
        0,  # largest root (no auto-vacuum)
        1,  # UTF-8
        0,  # user version
        0,  # incremental vacuum
        0,  # application id
        1,  # version-valid-for
        SQLITE_VERSION_NUMBER,
    )


def with_counters(
    raw: bytes,
    *,
    change_counter: int,
    page_count: int,
    freelist_trunk: int,
    freelist_count: int,
    schema_cookie: int,
) -> bytes:
    """`raw` (a 100-byte header) with the counters a commit maintains replaced."""
    out = bytearray(raw[:HEADER_SIZE])
    pack = _u32.pack_into
    counter = change_counter & 0xFFFFFFFF
    pack(out, 24, counter)
    pack(out, 28, page_count)
    pack(out, 32, freelist_trunk)
    pack(out, 36, freelist_count)
    pack(out, 40, schema_cookie & 0xFFFFFFFF)
    pack(out, 92, counter)
    pack(out, 96, SQLITE_VERSION_NUMBER)
    return bytes(out)
