"""The service's response models: what `/docs` shows, and what every JSON body is.

The endpoints that return rows encode their bodies themselves (see `encoding.py`, for
speed), so these models are the contract those bodies keep; the tests validate responses
against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

__all__ = [
    "BatchRequest",
    "BatchResponse",
    "Blob",
    "Cell",
    "Change",
    "ChangeResult",
    "ColumnInfo",
    "CountResponse",
    "DatabaseDetail",
    "DatabaseSummary",
    "ErrorResponse",
    "IndexColumnInfo",
    "IndexInfo",
    "InputCell",
    "LookupPage",
    "RowResponse",
    "RowValues",
    "RowsPage",
    "SpecialFloat",
    "TableInfo",
    "WrittenRow",
]


class Blob(BaseModel):
    """A BLOB value: its bytes in standard base64."""

    model_config = ConfigDict(populate_by_name=True)

    base64: Literal[True] = Field(alias="$base64", description="Always true: marks a blob.")
    encoded: str = Field(description="The bytes, base64-encoded.")


class SpecialFloat(BaseModel):
    """A REAL value JSON cannot hold."""

    model_config = ConfigDict(populate_by_name=True)

    float_: Literal["Infinity", "-Infinity", "NaN"] = Field(alias="$float")


Cell = int | float | str | Blob | SpecialFloat | None
"""One value of a row: JSON scalars as they are, blobs and infinities as marked objects."""


class ErrorResponse(BaseModel):
    """What every error says."""

    detail: str = Field(description="What went wrong, and what to do about it.")
    page: int | None = Field(
        default=None, description="For a corrupt database: the page the problem was found on."
    )


class ColumnInfo(BaseModel):
    """A table column."""

    name: str
    declared_type: str = Field(description="The type as declared (may be empty).")
    affinity: str = Field(description="TEXT, NUMERIC, INTEGER, REAL or BLOB.")
    collation: str
    primary_key: bool
    rowid_alias: bool = Field(description="True for an INTEGER PRIMARY KEY column.")
    generated: str | None = Field(description='"virtual" or "stored" for a generated column.')


class IndexColumnInfo(BaseModel):
    """A column of an index."""

    name: str | None = Field(description="The table column; null for an expression.")
    expression: str
    collation: str
    descending: bool


class IndexInfo(BaseModel):
    """An index."""

    name: str
    table: str
    unique: bool
    automatic: bool = Field(description="Made by SQLite for a PRIMARY KEY or UNIQUE constraint.")
    partial: bool = Field(description="Has a WHERE clause: holds only some rows.")
    columns: list[IndexColumnInfo]
    sql: str | None


class TableInfo(BaseModel):
    """A table: its columns, its key, and the indexes on it."""

    name: str
    without_rowid: bool
    strict: bool
    virtual: bool
    columns: list[ColumnInfo]
    row_columns: list[str] = Field(
        description="The columns rows are shown with: the declared ones, after `rowid` for a "
        "rowid table without an INTEGER PRIMARY KEY."
    )
    primary_key: list[str]
    key: str = Field(
        description='How rows are addressed: "rowid" (an integer), or "primary key" (a JSON '
        "array of the primary-key values, for a WITHOUT ROWID table)."
    )
    indexes: list[str]
    lookup_columns: list[str] = Field(
        description="Columns /lookup can search: the first column of some index, and the "
        "rowid (or its alias)."
    )
    sql: str | None


class DatabaseSummary(BaseModel):
    """A database the service serves."""

    name: str
    source: Literal["sample", "upload"]
    immutable: bool = Field(description="Opened read-only with no locking: nothing may change it.")
    size_bytes: int
    page_size: int
    page_count: int
    tables: int
    indexes: int
    url: str


class DatabaseDetail(BaseModel):
    """A database with its tables and indexes."""

    name: str
    source: Literal["sample", "upload"]
    immutable: bool
    size_bytes: int
    page_size: int
    page_count: int
    text_encoding: str
    tables: list[TableInfo]
    indexes: list[IndexInfo]
    views: list[str]
    triggers: list[str]


class RowsPage(BaseModel):
    """A page of rows in key order (keyset pagination)."""

    database: str
    table: str
    columns: list[str]
    rows: list[list[Cell]]
    next_after: int | list[Cell] | None = Field(
        description="Pass as `after` for the next page (null on the last page): a rowid, or "
        "a primary key as a JSON array."
    )
    next: str | None = Field(description="The URL of the next page; null on the last one.")


class LookupPage(BaseModel):
    """Rows found through an index (or the rowid), in index order."""

    database: str
    table: str
    column: str = Field(description="The first column searched.")
    searched: list[str] = Field(description="The columns searched, in order.")
    strategy: Literal["index", "rowid", "primary key"] = Field(
        description='"index": an index was searched; "rowid": the table itself, by rowid; '
        '"primary key": a WITHOUT ROWID table itself, by its first primary-key column.'
    )
    index: str | None = Field(
        description="The index searched (null for the rowid or the primary key)."
    )
    index_columns: list[str]
    columns: list[str]
    rows: list[list[Cell]]
    next_after: str | None = Field(
        description="Pass as `after`, with the same search, for the next page; null on the last."
    )
    next: str | None


class RowResponse(BaseModel):
    """One row."""

    database: str
    table: str
    columns: list[str]
    row: list[Cell]


class CountResponse(BaseModel):
    """A table's row count."""

    database: str
    table: str
    count: int


# -- writes ------------------------------------------------------------------------------

InputCell = StrictInt | StrictFloat | StrictStr | Blob | SpecialFloat | None
"""A value to write: as `Cell`, but a JSON true or false is no value (SQLite has none)."""


class RowValues(BaseModel):
    """The body of an insert or an update: column names to values."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, InputCell] = Field(
        description="Column name to value. An insert leaves the others to their DEFAULT "
        "(or NULL); an update changes only the columns named."
    )


class WrittenRow(BaseModel):
    """A row as a write left it."""

    database: str
    table: str
    key: int = Field(description="The row's rowid: its key in `/rows/{key}`.")
    columns: list[str]
    row: list[Cell]


class Change(BaseModel):
    """One change of a batch."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["insert", "update", "delete"]
    table: str
    key: StrictInt | None = Field(
        default=None, description="The rowid, for an update or a delete (not for an insert)."
    )
    values: dict[str, InputCell] | None = Field(
        default=None, description="Column name to value, for an insert or an update."
    )


class BatchRequest(BaseModel):
    """Changes to make in one transaction: all of them, or none."""

    model_config = ConfigDict(extra="forbid")

    changes: list[Change] = Field(min_length=1)


class ChangeResult(BaseModel):
    """What one change of a batch did."""

    op: Literal["insert", "update", "delete"]
    table: str
    key: int
    row: list[Cell] | None = Field(description="The row as written; null for a delete.")


class BatchResponse(BaseModel):
    """A committed batch: each change's result, in order."""

    database: str
    results: list[ChangeResult]
