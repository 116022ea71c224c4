"""`ioresult`: look into any SQLite file through the async core.

    ioresult schema DB                      tables, columns and indexes
    ioresult export DB TABLE [--format csv|ndjson] [-o FILE]
    ioresult check DB                       walk every page of every B-tree

Theory of operation:
- Every command runs one asyncio loop with one `AsyncFileIO`, and reads the database only
  through `bridge.storage.AsyncDatabase`, i.e. `await drive(op)` on the storage engine's
  operations: the same path the example service takes.
- The database is opened read-only and, unless `--immutable` is given, with the storage
  engine's shared lock, so a concurrent SQLite writer is respected.
- `export` reads a page of rows per `drive` and writes it out before reading the next, so
  memory stays flat. On a terminal it shows a progress bar on stderr (rows done, rows/s,
  time left), sized by the table's row count, which is read first.
- Errors go to stderr, one line naming what was wrong; the exit status is 0 on success, 1
  when the command failed or `check` found problems, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable

from bridge._fileio import AsyncFileIO
from bridge.rows import TableShape
from bridge.storage import DEFAULT_PAGE_ROWS, AsyncDatabase
from core.errors import CompletionError, IOResultError
from core.storage import CorruptDatabaseError, SchemaError, StorageError
from core.storage.check import DEFAULT_MAX_PROBLEMS

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(IOResultError):
    """A command cannot go on; the message is for the user."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ioresult",
        description="Read SQLite databases through ioresult's async core (asyncio + drive).",
        epilog="Exit status: 0 success, 1 failure or problems found, 2 usage error.",
    )
    parser.add_argument(
        "--immutable",
        action="store_true",
        help="promise nothing writes the file: no locking, nothing re-read",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    schema = commands.add_parser(
        "schema",
        help="show tables, columns and indexes",
        description="Show every table (columns, key, row count) and index of DATABASE.",
    )
    schema.add_argument("database", type=Path, help="the SQLite file")
    schema.add_argument("--no-counts", action="store_true", help="do not count each table's rows")

    export = commands.add_parser(
        "export",
        help="write a table as CSV or NDJSON",
        description=(
            "Write every row of TABLE in key order, as CSV (header line, NULL as an empty "
            "field, blobs as base64) or NDJSON (one JSON object per row; blobs as "
            '{"$base64": true, "encoded": ...}). Shows progress on a terminal.'
        ),
    )
    export.add_argument("database", type=Path, help="the SQLite file")
    export.add_argument("table", help="the table to export")
    export.add_argument(
        "--format", "-f", choices=["csv", "ndjson"], default="csv", help="default: csv"
    )
    export.add_argument("--output", "-o", type=Path, help="write here instead of standard output")
    export.add_argument(
        "--page-rows",
        type=int,
        default=DEFAULT_PAGE_ROWS,
        help=f"rows read per operation (default {DEFAULT_PAGE_ROWS})",
    )
    progress = export.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show the progress bar",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never show the progress bar",
    )

    check = commands.add_parser(
        "check",
        help="check every page of every B-tree",
        description=(
            "Walk every page of every B-tree (and the freelist) and report what is wrong: "
            "pages that fail to parse, keys out of order, broken overflow chains, pages "
            "used twice or never, indexes whose entry count differs from their table's. "
            "Exit status 1 if anything is."
        ),
    )
    check.add_argument("database", type=Path, help="the SQLite file")
    check.add_argument(
        "--max-problems",
        type=int,
        default=DEFAULT_MAX_PROBLEMS,
        help=f"stop after this many (default {DEFAULT_MAX_PROBLEMS})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default `sys.argv[1:]`); return the exit status."""
    args = _parser().parse_args(argv)
    err = Console(stderr=True, highlight=False)
    try:
        return asyncio.run(_run(args, err))
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`ioresult export ... | head`).
        return EXIT_OK
    except (CommandError, StorageError, CompletionError) as exc:
        _say(f"ioresult {args.command}: error: {_message(exc)}")
        return EXIT_FAILED


def _say(line: str) -> None:
    """One line on stderr, never wrapped or styled."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _message(exc: BaseException) -> str:
    if isinstance(exc, CorruptDatabaseError):
        return f"the database is corrupt: {exc}"
    return str(exc)


async def _run(args: argparse.Namespace, err: Console) -> int:
    path: Path = args.database
    if not path.exists():
        raise CommandError(f"no such file: {path}")
    if path.is_dir():
        raise CommandError(f"{path} is a directory, not a database file")
    async with AsyncFileIO() as io:
        db = await AsyncDatabase.open(io, path, immutable=args.immutable)
        try:
            if args.command == "schema":
                return await _schema(db, args, Console(highlight=False))
            if args.command == "export":
                return await _export(db, args, err)
            return await _check(db, args, err)
        finally:
            db.close()


async def _schema(db: AsyncDatabase, args: argparse.Namespace, out: Console) -> int:
    schema = await db.read_schema()
    header = db.db.header
    size = f"{header.page_size}-byte pages" if header is not None else "empty"
    out.print(f"[bold]{db.path}[/bold]: {db.page_count} pages ({size})")
    if not schema.tables:
        out.print("no tables")
    for table in schema.tables:
        count = ""
        if not args.no_counts and not table.virtual:
            count = f", {await db.count(table.name)} rows"
        kind = "WITHOUT ROWID table" if table.without_rowid else "table"
        grid = RichTable(title=f"{kind} {table.name}{count}", title_justify="left")
        grid.add_column("column")
        grid.add_column("type")
        grid.add_column("collation")
        grid.add_column("key")
        pk = {c.column for c in table.primary_key}
        for i, column in enumerate(table.columns):
            key = "rowid" if column.rowid_alias else ("primary key" if i in pk else "")
            grid.add_row(column.name, column.declared_type, column.collation, key)
        out.print(grid)
        for index in schema.indexes_of(table.name):
            columns = ", ".join(
                (c.name or c.expression)
                + ("" if c.collation == "BINARY" else f" COLLATE {c.collation}")
                + (" DESC" if c.descending else "")
                for c in index.columns
            )
            flags = " unique" if index.unique else ""
            partial = f" WHERE {index.where}" if index.where else ""
            out.print(f"  index{flags} {index.name} ({columns}){partial}", markup=False)
    for name in schema.views:
        out.print(f"view {name}", markup=False)
    return EXIT_OK


async def _export(db: AsyncDatabase, args: argparse.Namespace, err: Console) -> int:
    if args.page_rows < 1:
        raise CommandError(f"--page-rows must be at least 1, got {args.page_rows}")
    try:
        table = db.schema.table(args.table)
    except SchemaError:
        names = ", ".join(t.name for t in db.schema.tables) or "none"
        raise CommandError(f"no table {args.table!r}; the tables are: {names}") from None
    shape = TableShape(table)
    total = await db.count(table.name)
    show = args.progress if args.progress is not None else err.is_terminal
    output: IO[bytes]
    output = args.output.open("wb") if args.output is not None else sys.stdout.buffer
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
        transient=False,
    )
    done = 0
    try:
        with progress:
            task = progress.add_task(f"export {table.name}", total=total, rate="-")
            if args.format == "csv":
                output.write(shape.csv_header())
            encode = shape.csv if args.format == "csv" else shape.ndjson
            async for page in db.pages(table.name, page_size=args.page_rows):
                output.write(encode(page))
                done += len(page)
                speed = progress.tasks[0].speed
                progress.update(task, completed=done, rate=f"{speed:,.0f}" if speed else "-")
            output.flush()
    finally:
        if args.output is not None:
            output.close()
    if args.output is not None:
        _say(f"wrote {done} rows of {table.name} to {args.output}")
    return EXIT_OK


async def _check(db: AsyncDatabase, args: argparse.Namespace, err: Console) -> int:
    if args.max_problems < 1:
        raise CommandError(f"--max-problems must be at least 1, got {args.max_problems}")
    problems = await db.check(max_problems=args.max_problems)
    out: TextIO = sys.stdout
    if not problems:
        out.write(f"ok: {db.path}: {db.page_count} pages, no problems found\n")
        return EXIT_OK
    for problem in problems:
        out.write(problem.describe() + "\n")
    more = " (stopped there: --max-problems)" if len(problems) >= args.max_problems else ""
    noun = "problem" if len(problems) == 1 else "problems"
    _say(f"{db.path}: {len(problems)} {noun} found{more}")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
