"""What the service says about a database and its tables: summaries and schema details.

Rules:
- Everything here is read from the schema and header the storage engine keeps for an open
  database; `database_detail` and `table_detail` read the schema again first, so a
  mutable database's changes show.
- A table is named in any case (`find_table`); an unknown one is a 404 that lists the
  tables there are; a view is a 422 that says views are listed but not readable.
- `lookup_columns` are the columns a lookup can search without reading the whole table:
  the rowid (or a WITHOUT ROWID table's first primary-key column), and the first column
  of each index. `lookup.py` refuses any other.
"""

from __future__ import annotations

from core.storage import KNOWN_COLLATIONS, Index, SchemaError, Table, fold_identifier
from examples.service import models
from examples.service.databases import Databases, Entry
from examples.service.encoding import TableShape
from examples.service.errors import ServiceError

__all__ = [
    "database_detail",
    "find_table",
    "lookup_columns",
    "searchable_indexes",
    "summaries",
    "summary",
    "table_detail",
]


def find_table(entry: Entry, name: str) -> Table:
    """Table `name` (any case) of `entry`; raises `ServiceError` 404 naming the tables,
    or 422 for a view (listed, but not readable without a SQL engine)."""
    schema = entry.db.schema
    try:
        return schema.table(name)
    except SchemaError:
        folded = fold_identifier(name)
        view = next((v for v in schema.views if fold_identifier(v) == folded), None)
        if view is not None:
            # The view exists; reading it would take a SQL engine to run its SELECT.
            raise ServiceError(
                422,
                f"{view!r} in database {entry.name!r} is a view: views are listed but cannot "
                "be read, since reading one means running its SELECT and this service has "
                "no SQL engine; read the tables it selects from instead",
            ) from None
        tables = ", ".join(t.name for t in entry.db.schema.tables) or "none"
        raise ServiceError(
            404, f"no table {name!r} in database {entry.name!r}; its tables are: {tables}"
        ) from None


def summaries(databases: Databases) -> list[models.DatabaseSummary]:
    """A summary of each database served, sample first."""
    out = []
    for name in databases.names():
        with databases.lease(name) as entry:
            out.append(summary(entry))
    return out


def summary(entry: Entry) -> models.DatabaseSummary:
    """What `GET /databases` says about one database."""
    db = entry.db
    header = db.db.header
    schema = db.schema
    return models.DatabaseSummary(
        name=entry.name,
        source=entry.source,
        immutable=db.immutable,
        size_bytes=entry.size_bytes,
        page_size=header.page_size if header is not None else 0,
        page_count=db.page_count,
        tables=len(schema.tables),
        indexes=len(schema.indexes),
        url=f"/databases/{entry.name}",
    )


async def database_detail(entry: Entry) -> models.DatabaseDetail:
    """A database's tables, indexes, views and triggers, from its schema read afresh."""
    schema = await entry.db.read_schema()
    header = entry.db.db.header
    return models.DatabaseDetail(
        name=entry.name,
        source=entry.source,
        immutable=entry.db.immutable,
        size_bytes=entry.size_bytes,
        page_size=header.page_size if header is not None else 0,
        page_count=entry.db.page_count,
        text_encoding=header.text_encoding.value if header is not None else "utf-8",
        tables=[_table_info(entry, t) for t in schema.tables],
        indexes=[_index_info(i) for i in schema.indexes],
        views=list(schema.views),
        triggers=list(schema.triggers),
    )


async def table_detail(entry: Entry, name: str) -> models.TableInfo:
    """Table `name`'s columns, key and indexes, from the schema read afresh."""
    await entry.db.read_schema()
    return _table_info(entry, find_table(entry, name))


def searchable_indexes(entry: Entry, table: Table) -> list[Index]:
    """The indexes of `table` a lookup can walk: those whose columns all use a collation
    the storage engine has (an index in another, which a file may declare, cannot be
    searched in its own order)."""
    return [
        index
        for index in entry.db.schema.indexes_of(table.name)
        if all(c.collation in KNOWN_COLLATIONS for c in index.columns)
    ]


def lookup_columns(entry: Entry, table: Table) -> list[str]:
    """The columns of `table` a lookup can search: the rowid (under the name its rows show
    it with: `_rowid_` where a column is named rowid) or a WITHOUT ROWID table's first
    primary-key column, then each index's first."""
    names: list[str] = []
    if table.rowid_alias is not None:
        names.append(table.columns[table.rowid_alias].name)
    elif not table.without_rowid:
        names.append(TableShape(table).columns[0])
    elif table.primary_key and table.primary_key[0].name is not None:
        names.append(table.primary_key[0].name)  # its own B-tree is keyed by it
    for index in searchable_indexes(entry, table):
        first = index.columns[0].name if index.columns else None
        if first is not None and fold_identifier(first) not in {fold_identifier(n) for n in names}:
            names.append(first)
    return names


def _table_info(entry: Entry, table: Table) -> models.TableInfo:
    pk = {c.column for c in table.primary_key}
    return models.TableInfo(
        name=table.name,
        without_rowid=table.without_rowid,
        strict=table.strict,
        virtual=table.virtual,
        columns=[
            models.ColumnInfo(
                name=c.name,
                declared_type=c.declared_type,
                affinity=c.affinity.value,
                collation=c.collation,
                primary_key=i in pk,
                rowid_alias=c.rowid_alias,
                generated=c.generated,
            )
            for i, c in enumerate(table.columns)
        ],
        row_columns=TableShape(table).columns,
        primary_key=[str(c.name) for c in table.primary_key],
        key="primary key" if table.without_rowid else "rowid",
        indexes=[i.name for i in entry.db.schema.indexes_of(table.name)],
        lookup_columns=lookup_columns(entry, table),
        sql=table.sql,
    )


def _index_info(index: Index) -> models.IndexInfo:
    return models.IndexInfo(
        name=index.name,
        table=index.table,
        unique=index.unique,
        automatic=index.automatic,
        partial=index.where is not None,
        columns=[
            models.IndexColumnInfo(
                name=c.name, expression=c.expression, collation=c.collation, descending=c.descending
            )
            for c in index.columns
        ],
        sql=index.sql,
    )
