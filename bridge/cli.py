"""`ioresult`: look into any SQLite file through the async core.

    ioresult schema DB                      tables, columns and indexes
    ioresult export DB TABLE [--format csv|ndjson] [-o FILE]
    ioresult check DB                       walk every page of every B-tree
    ioresult --version

Theory of operation:
- Every command runs one asyncio loop with one `AsyncFileIO`, and reads the database only
  through `bridge.storage.AsyncDatabase`, i.e. `await drive(op)` on the storage engine's
  operations: the same path the example service takes.
- The database is opened read-only and, unless `--immutable` is given, with the storage
  engine's shared lock, so a concurrent SQLite writer is respected.
- `export` reads a page of rows per `drive` and writes it out before reading the next, so
  memory stays flat. On a terminal it shows a progress bar on stderr (rows done, rows/s,
  time left), sized by the table's row count, which is read first.
- `check` and `schema` are long on a large file (every page, or every table's rows): on a
  terminal they show their progress on stderr too, pages read so far, which a task polls
  while the operation runs (`drive` gives the loop a turn every time slice). Only when
  stderr is a terminal (or `--progress`): nothing is written for a pipe.
- Errors go to stderr, one line naming what was wrong; the exit status is 0 on success, 1
  when the command failed or `check` found problems, 2 for a usage error (argparse's, and
  option values out of range).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.table import Table as RichTable
from rich.text import Text

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

POLL_INTERVAL = 0.1
"""Seconds between two looks at the progress of a long operation."""


class CommandError(IOResultError):
    """A command cannot go on; the message is for the user."""


def _positive(value: str) -> int:
    """An option value of at least 1; anything else is a usage error (exit status 2)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _version() -> str:
    try:
        return version("ioresult")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(not installed)"


def _add_progress_flags(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help=f"always show {what} (default: only when stderr is a terminal)",
    )
    group.add_argument(
        "--no-progress", dest="progress", action="store_false", help=f"never show {what}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ioresult",
        description="Read SQLite databases through ioresult's async core (asyncio + drive).",
        epilog="Exit status: 0 success, 1 failure or problems found, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"ioresult {_version()}")
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
    _add_progress_flags(schema, "the progress of counting rows")

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
        type=_positive,
        default=DEFAULT_PAGE_ROWS,
        help=f"rows read per operation, at least 1 (default {DEFAULT_PAGE_ROWS})",
    )
    _add_progress_flags(export, "the progress bar")

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
        type=_positive,
        default=DEFAULT_MAX_PROBLEMS,
        help=f"stop after this many, at least 1 (default {DEFAULT_MAX_PROBLEMS})",
    )
    _add_progress_flags(check, "the progress bar")
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
    except OSError as exc:
        # Writing the output failed (a full disk, say): a line, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"ioresult {args.command}: error: {where}{exc.strerror or exc}")
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
                return await _schema(db, args, Console(highlight=False), err)
            if args.command == "export":
                return await _export(db, args, err)
            return await _check(db, args, err)
        finally:
            db.close()


# -- progress --------------------------------------------------------------------------------


def _show_progress(args: argparse.Namespace, err: Console) -> bool:
    forced: bool | None = args.progress
    return forced if forced is not None else err.is_terminal


class _Description(ProgressColumn):
    """The task's description, cut with an ellipsis when the line is short of room. Its
    table column may shrink (it wraps, for rich), so it gives way before the counts do."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(min_width=6))

    def render(self, task: Task) -> Text:
        return Text(task.description, style="bold", no_wrap=True, overflow="ellipsis")


class _Counts(ProgressColumn):
    """Done of total, percentage, rate and time left, as one text that never shrinks.

    As separate columns, rich shrank every column alike on an 80-column terminal and cut
    the total ("54321/10…"); as one, the bar and the description give way first, and a
    terminal too narrow even for this text loses its end (the time left), not the total.
    """

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task: Task) -> Text:
        total = int(task.total) if task.total is not None else 0
        rate = f"{task.speed:,.0f}" if task.speed else "-"
        if task.finished:
            tail = f"in {timedelta(seconds=int(task.finished_time or 0))}"
        elif task.time_remaining is not None:
            tail = f"{timedelta(seconds=int(task.time_remaining))} left"
        else:
            tail = "-:--:-- left"
        unit = self.unit
        # Padded, so the line keeps its length as the numbers grow and the bar stays put.
        done = f"{int(task.completed):>{len(str(total))}}/{total}"
        text = f"{done} {unit} {task.percentage:>3.0f}% {rate:>7} {unit}/s {tail}"
        return Text(text, no_wrap=True, overflow="ellipsis")


def _progress_bar(err: Console, show: bool, unit: str) -> Progress:
    return Progress(
        _Description(),
        BarColumn(bar_width=None, table_column=Column(ratio=1)),
        _Counts(unit),
        console=err,
        disable=not show,
        expand=True,
    )


@contextlib.asynccontextmanager
async def _polling(progress: Progress, update: Callable[[], None]) -> AsyncIterator[None]:
    """Call `update` every `POLL_INTERVAL` seconds while the block runs, if `progress` is
    shown. The block's operations are driven on this loop, and `drive` gives the loop a
    turn at least every time slice, so the poll runs while one long operation does."""
    if progress.disable:
        yield
        return

    async def poll() -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            update()

    poller = asyncio.create_task(poll())
    try:
        yield
    finally:
        poller.cancel()
        await asyncio.wait([poller])  # raises nothing of the poller's, nor swallows ours


# -- commands --------------------------------------------------------------------------------


async def _schema(db: AsyncDatabase, args: argparse.Namespace, out: Console, err: Console) -> int:
    schema = await db.read_schema()
    counted = [] if args.no_counts else [t for t in schema.tables if not t.virtual]
    counts: dict[str, int] = {}
    # Counting reads every page of every table: long on a large file, so it comes first,
    # under a progress display that a terminal clears before the tables are printed.
    progress = Progress(
        SpinnerColumn(),
        _Description(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} tables, {task.fields[pages]} pages read"),
        TimeElapsedColumn(),
        console=err,
        disable=not (counted and _show_progress(args, err)),
        transient=err.is_terminal,  # forced onto a pipe, the final state stays
    )
    pager = db.db.pager
    start = pager.reads
    with progress:
        task = progress.add_task("counting rows", total=len(counted), pages=0)

        def update() -> None:
            progress.update(task, pages=pager.reads - start)

        async with _polling(progress, update):
            for table in counted:
                progress.update(task, description=f"counting rows of {table.name}")
                counts[table.name] = await db.count(table.name)
                progress.advance(task)
        update()

    header = db.db.header
    size = f"{header.page_size}-byte pages" if header is not None else "empty"
    out.print(f"[bold]{db.path}[/bold]: {db.page_count} pages ({size})")
    if not schema.tables:
        out.print("no tables")
    for table in schema.tables:
        count = f", {counts[table.name]} rows" if table.name in counts else ""
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


def _open_output(path: Path, database: Path) -> IO[bytes]:
    if path.exists() and path.samefile(database):
        raise CommandError(f"{path} is the database being exported; choose another output")
    try:
        return path.open("wb")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None


async def _export(db: AsyncDatabase, args: argparse.Namespace, err: Console) -> int:
    try:
        table = db.schema.table(args.table)
    except SchemaError:
        names = ", ".join(t.name for t in db.schema.tables) or "none"
        raise CommandError(f"no table {args.table!r}; the tables are: {names}") from None
    shape = TableShape(table)
    output: IO[bytes]
    output = sys.stdout.buffer if args.output is None else _open_output(args.output, args.database)
    done = 0
    try:
        total = await db.count(table.name)
        progress = _progress_bar(err, _show_progress(args, err), "rows")
        with progress:
            task = progress.add_task(f"export {table.name}", total=total)
            if args.format == "csv":
                output.write(shape.csv_header())
            encode = shape.csv if args.format == "csv" else shape.ndjson
            async for page in db.pages(table.name, page_size=args.page_rows):
                output.write(encode(page))
                done += len(page)
                progress.update(task, completed=done)
            output.flush()
    finally:
        if args.output is not None:
            output.close()
    if args.output is not None:
        _say(f"wrote {done} rows of {table.name} to {args.output}")
    return EXIT_OK


async def _check(db: AsyncDatabase, args: argparse.Namespace, err: Console) -> int:
    out: TextIO = sys.stdout
    if db.page_count == 0:
        # A 0-byte file is a valid empty database: sqlite3 opens it and its integrity_check
        # says ok. There is no page 1 to walk.
        out.write(f"ok: {db.path}: 0 pages (an empty database), no problems found\n")
        return EXIT_OK
    total = db.page_count
    pager = db.db.pager
    start = pager.reads
    progress = _progress_bar(err, _show_progress(args, err), "pages")
    with progress:
        # Every page is read once (cache hits aside): page reads are the progress.
        task = progress.add_task("check", total=total)

        def update() -> None:
            progress.update(task, completed=min(total, pager.reads - start))

        async with _polling(progress, update):
            problems = await db.check(max_problems=args.max_problems)
        if len(problems) < args.max_problems:  # else it stopped early: leave the bar there
            progress.update(task, completed=total)
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
