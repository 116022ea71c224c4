"""A storage engine that reads SQLite database files, written as explicit state machines.

`Database.open(io, path)` and every query on the `Database` are operations: run them with
`core.block(op, io)` or `await bridge.drive(op)`. See `docs/storage.md`.
"""

from core.storage.collation import Affinity
from core.storage.collation import field_key as collation_key
from core.storage.database import (
    DEFAULT_CACHE_PAGES,
    DEFAULT_READAHEAD,
    Database,
    OpenDatabase,
    ReadSchema,
    Row,
)
from core.storage.errors import (
    CorruptDatabaseError,
    DatabaseBusyError,
    HotJournalError,
    SchemaError,
    StorageError,
    UnsupportedError,
)
from core.storage.header import DatabaseHeader, TextEncoding
from core.storage.index_scan import Bound, IndexScan
from core.storage.queries import CountRows, GetRow, ScanRows
from core.storage.record import Value
from core.storage.schema import Column, Index, IndexColumn, Schema, Table
from core.storage.schema import fold_name as fold_identifier

__all__ = [
    "DEFAULT_CACHE_PAGES",
    "DEFAULT_READAHEAD",
    "Affinity",
    "Bound",
    "Column",
    "CorruptDatabaseError",
    "CountRows",
    "Database",
    "DatabaseBusyError",
    "DatabaseHeader",
    "GetRow",
    "HotJournalError",
    "Index",
    "IndexColumn",
    "IndexScan",
    "OpenDatabase",
    "ReadSchema",
    "Row",
    "ScanRows",
    "Schema",
    "SchemaError",
    "StorageError",
    "Table",
    "TextEncoding",
    "UnsupportedError",
    "Value",
    "collation_key",
    "fold_identifier",
]
