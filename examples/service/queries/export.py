"""Exports: a whole table streamed as NDJSON or CSV, one page of rows per chunk sent.

Rules:
- An export holds a lease on its database from `start_export` until its chunks end,
  however they end: finished, failed, or closed because the client went away.
- The first page is read before the response starts (`start_export`), so that an error
  found there is still a proper HTTP error; after that, a failed read can only end the
  response early (the transfer is incomplete): it is logged in one line and raised as
  `responses.ResponseCut`, which ends the response without a traceback.
- Memory stays flat whatever the table's size: each chunk is one `scan` of
  `export_page_rows` rows, and a client that goes away stops the reading at once (the
  cancellation reaches the `drive` in progress, which aborts its read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from core import CompletionError
from core.storage import StorageError, Table
from examples.service.databases import Databases, Entry
from examples.service.encoding import TableShape
from examples.service.queries.describe import find_table
from examples.service.responses import ResponseCut

__all__ = ["Export", "ExportFormat", "export_chunks", "start_export"]

log = logging.getLogger("examples.service")

ExportFormat = Literal["ndjson", "csv"]
"""The formats an export is written in."""


@dataclass(slots=True)
class Export:
    """An export under way: its lease on `entry`, and the pages of `table` still to read
    after `first` (None for an empty table)."""

    databases: Databases
    entry: Entry
    table: Table
    shape: TableShape
    first: list[Any] | None
    pages: AsyncIterator[list[Any]]
    closed: bool = False

    async def close(self) -> None:
        """Stop the reading and end the lease; idempotent. The response calls it however
        it ends, even when its chunks were never asked for (a HEAD, a client gone before
        the first)."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.pages.aclose()  # type: ignore[attr-defined]
        finally:
            self.databases.release(self.entry)


async def start_export(databases: Databases, database: str, table: str, page_rows: int) -> Export:
    """Lease `database` and read the first page of `table`; on any error the lease ends."""
    entry = databases.acquire(database)
    try:
        info = find_table(entry, table)
        shape = entry.shape(info.name)
        pages = entry.db.pages(info.name, page_size=page_rows)
        try:
            first = await anext(pages, None)
        except BaseException:
            await pages.aclose()  # type: ignore[attr-defined]
            raise
    except BaseException:
        databases.release(entry)
        raise
    return Export(databases, entry, info, shape, first, pages)


async def export_chunks(export: Export, format: ExportFormat) -> AsyncIterator[bytes]:
    """The export's chunks: one per page of rows; ends its lease when it ends."""
    shape, pages = export.shape, export.pages
    encode = shape.csv if format == "csv" else shape.ndjson
    try:
        if format == "csv":
            yield shape.csv_header()
        if export.first is not None:
            yield encode(export.first)
            while True:
                # One loop turn per page. Reads that hit the page cache finish without
                # ever waiting, and a server may take chunks for a client that is gone
                # without waiting either: this turn is where the news of a disconnect
                # (and the cancellation it brings) gets in.
                await asyncio.sleep(0)
                page = await anext(pages, None)
                if page is None:
                    break
                yield encode(page)
    except (StorageError, CompletionError) as exc:
        # The response has started: one line for the log, and a cut response for the
        # client (no traceback: there is nothing more to say than this).
        log.error("export of %s from %r stopped: %s", shape.table.name, export.entry.name, exc)
        raise ResponseCut(str(exc)) from None
    finally:
        await export.close()
