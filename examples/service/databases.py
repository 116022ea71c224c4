"""The databases the service serves, and the upload path that adds one.

Rules:
- One `AsyncFileIO` (the application's) carries every read and write.
- The sample (`sample.db`) is opened mutable, so the storage engine takes its shared lock
  for each read and notices a writer's changes; uploads (`uploads/NAME.db`) are opened
  immutable: the service is the only writer and never writes one in place. With writes
  enabled (a write token is set), every database is opened writable instead, and a
  rollback-journal database is converted to WAL mode once, when it is opened (this
  engine writes WAL only); its `-wal` file goes with it when it is deleted or replaced.
- A request *leases* the database it reads (`lease`, or `acquire`/`release`): a database
  replaced by a new upload, or deleted, stays open until its last reader is done, and only
  then closes.
- An upload is written with `bridge.open` (the project's aiofiles-compatible files) to a
  temporary name (`uploads/.NAME.<random>.part`), with the size limit enforced while the
  body streams in; it is opened and checked through the core, and only then renamed to
  `NAME.db` and served. On any failure (too large, invalid, client
  gone, cancelled) the temporary file is removed; leftovers of a crash are removed at
  startup.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import bridge
from bridge import AsyncFileIO
from bridge.storage import AsyncDatabase
from core import CompletionError, IOResultError
from core.storage import (
    DatabaseBusyError,
    Schema,
    SchemaLimits,
    SchemaTooLargeError,
    StorageError,
    Table,
)
from examples.service.encoding import TableShape
from examples.service.settings import Settings

__all__ = [
    "NAME_PATTERN",
    "SAMPLE_NAME",
    "DatabaseNameError",
    "Databases",
    "Entry",
    "InvalidUploadError",
    "ServedDatabaseError",
    "UnknownDatabaseError",
    "UploadTooLargeError",
]

log = logging.getLogger("examples.service")

T = TypeVar("T")

SAMPLE_NAME = "sample"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class ServedDatabaseError(IOResultError):
    """Base of the errors about which databases are served."""


class UnknownDatabaseError(ServedDatabaseError):
    """No database of that name is served."""


class DatabaseNameError(ServedDatabaseError):
    """A name that cannot be a database's (or the sample's, which cannot be replaced)."""


class UploadTooLargeError(ServedDatabaseError):
    """The upload passed the size limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the upload is larger than the limit of {limit} bytes "
            f"(set IORESULT_MAX_UPLOAD_BYTES to change it)"
        )


class InvalidUploadError(ServedDatabaseError):
    """The uploaded file is not a database the core can read; the message says why."""

    def __init__(self, message: str, *, page: int | None = None) -> None:
        self.page = page
        super().__init__(message)


class Entry:
    """A served database and the requests reading it."""

    __slots__ = (
        "_derived",
        "_derived_from",
        "counts",
        "db",
        "name",
        "path",
        "retired",
        "source",
        "users",
    )

    def __init__(
        self, name: str, path: Path, source: Literal["sample", "upload"], db: AsyncDatabase
    ) -> None:
        self.name = name
        self.path = path
        self.source: Literal["sample", "upload"] = source
        self.db = db
        self.users = 0
        self.retired = False
        self._derived: dict[Hashable, Any] = {}
        self._derived_from: Schema | None = None
        self.counts: dict[str, tuple[Hashable, Table, int | None]] = {}
        """Row counts by table, with the state they were counted in (`queries/counts.py`)."""

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()`, made once per schema: what follows from the schema alone (how a
        table's rows are shown, the index a lookup walks) is kept under `key` until the
        engine reads a changed schema (a new `Schema` object), then made again. What
        `make` raises is not kept."""
        schema = self.db.schema
        if schema is not self._derived_from:
            self._derived = {}
            self._derived_from = schema
        try:
            value: T = self._derived[key]
        except KeyError:
            value = self._derived[key] = make()
        return value

    def shape(self, table: str) -> TableShape:
        """How the rows of `table` (a name the schema has) are shown."""
        info = self.db.schema.table(table)
        return self.derived(("shape", info.name), lambda: TableShape(info))

    @property
    def size_bytes(self) -> int:
        """The file's size now (0 if it is gone)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


class Databases:
    """The databases served, by name."""

    def __init__(self, io: AsyncFileIO, settings: Settings) -> None:
        self.io = io
        self.settings = settings
        self.entries: dict[str, Entry] = {}
        self._closed = False

    # -- startup and shutdown -----------------------------------------------------------

    async def start(self) -> None:
        """Open the sample (if present) and every valid upload; remove the temporary files
        a crash left behind. A database that fails to open is logged and skipped."""
        uploads = self.settings.uploads_dir
        uploads.mkdir(parents=True, exist_ok=True)
        for leftover in uploads.glob(".*.part"):
            log.warning("removing %s, left by an upload that did not finish", leftover)
            leftover.unlink(missing_ok=True)
        sample = self.settings.sample_path
        if sample.exists():
            await self._open(SAMPLE_NAME, sample, "sample")
        for path in sorted(uploads.glob("*.db")):
            name = path.stem
            if _NAME.match(name) and name != SAMPLE_NAME:
                await self._open(name, path, "upload")

    async def _open(self, name: str, path: Path, source: Literal["sample", "upload"]) -> None:
        try:
            db = await self._open_served(
                path,
                schema_limits=self.settings.schema_limits if source == "upload" else None,
                upload=source == "upload",
            )
        except (StorageError, CompletionError) as exc:
            log.error("not serving %s (%s): %s", name, path, exc)
            return
        self.entries[name] = Entry(name, path, source, db)

    async def _open_served(
        self, path: Path, *, schema_limits: SchemaLimits | None, upload: bool = True
    ) -> AsyncDatabase:
        """Open a database to serve. Without writes, an upload is immutable and the sample
        a live database; with writes, every database is writable and in WAL mode (a
        rollback-journal file is converted once: this engine writes WAL only). Raises what
        `AsyncDatabase.open` and `Database.convert_to_wal` raise."""
        writable = self.settings.writes_enabled
        db = await AsyncDatabase.open(
            self.io,
            path,
            immutable=upload and not writable,
            writable=writable,
            cache_pages=self.settings.cache_pages,
            schema_limits=schema_limits,
        )
        if writable:
            try:
                if await bridge.drive(db.db.convert_to_wal(), self.io):
                    log.warning("converted %s to WAL mode to write it", path.name)
            except DatabaseBusyError as exc:
                # Another connection holds it: serve it anyway; its writes are refused
                # (422, rollback-journal mode) until it is converted at the next start.
                log.warning(
                    "not converting %s to WAL mode (%s): writes to it are refused", path.name, exc
                )
            except BaseException:
                db.close()
                raise
        return db

    def close(self) -> None:
        """Close every database (readers still running fail at their next read)."""
        self._closed = True
        for entry in self.entries.values():
            entry.db.close()
        self.entries.clear()

    # -- leasing ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names served, sample first."""
        return sorted(self.entries, key=lambda n: (n != SAMPLE_NAME, n))

    def acquire(self, name: str) -> Entry:
        """Lease database `name`; pair with `release`. Raises `UnknownDatabaseError`."""
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownDatabaseError(
                f"no database named {name!r}; the databases served are: {known}"
            )
        entry.users += 1
        return entry

    def release(self, entry: Entry) -> None:
        """End a lease; closes a retired database once its last reader is done."""
        entry.users -= 1
        if entry.retired and entry.users <= 0:
            entry.db.close()

    @contextmanager
    def lease(self, name: str) -> Iterator[Entry]:
        """Database `name`, leased for the length of a `with` block; raises what `acquire`
        raises."""
        entry = self.acquire(name)
        try:
            yield entry
        finally:
            self.release(entry)

    def leases(self) -> int:
        """Leases held now, on every database (for tests and shutdown)."""
        return sum(e.users for e in self.entries.values())

    def _retire(self, entry: Entry) -> None:
        entry.retired = True
        if entry.users <= 0:
            entry.db.close()

    # -- upload and delete ----------------------------------------------------------------

    @staticmethod
    def check_name(name: str) -> None:
        """Raise `DatabaseNameError` unless `name` is a valid name for an upload."""
        if not _NAME.match(name):
            raise DatabaseNameError(
                f"invalid database name {name!r}: use 1 to 64 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        if name == SAMPLE_NAME:
            raise DatabaseNameError(
                f"{SAMPLE_NAME!r} is the sample database and cannot be replaced or deleted; "
                "choose another name"
            )

    async def upload(
        self, name: str, body: AsyncIterator[bytes], *, declared_length: int | None = None
    ) -> tuple[Entry, bool]:
        """Receive database `name` from `body`; return its entry and whether it is new
        (False: it replaced an upload of the same name).

        Raises `DatabaseNameError`, `UploadTooLargeError` (as soon as the limit is passed,
        or at once if `declared_length` passes it), `InvalidUploadError` if the file is
        not a database the core can read, and whatever reading `body` raises (a client
        that went away). Nothing is left on disk when it raises.
        """
        self.check_name(name)
        limit = self.settings.max_upload_bytes
        if declared_length is not None and declared_length > limit:
            raise UploadTooLargeError(limit)
        final = self.settings.uploads_dir / f"{name}.db"
        temporary = self.settings.uploads_dir / f".{name}.{secrets.token_hex(8)}.part"
        try:
            size = await self._receive(body, temporary, limit)
            if size == 0:
                raise InvalidUploadError(
                    "the upload is empty: send the database file as the request body"
                )
            await self._validate(temporary)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        try:
            # A log left by the database this one replaces must not be read as its own.
            _remove_log(final)
            db = await self._open_served(final, schema_limits=self.settings.schema_limits)
        except BaseException:
            # It was valid a moment ago; whatever stopped us (a cancellation, say), the
            # upload did not happen: do not leave a file that is not served.
            final.unlink(missing_ok=True)
            old_entry = self.entries.pop(name, None)
            if old_entry is not None:
                self._retire(old_entry)
            raise
        old = self.entries.get(name)
        entry = self.entries[name] = Entry(name, final, "upload", db)
        if old is not None:
            self._retire(old)
        log.info("serving upload %s (%d bytes)", name, size)
        return entry, old is None

    async def _receive(self, body: AsyncIterator[bytes], path: Path, limit: int) -> int:
        """Write `body` to `path` (created, never overwritten) with the project's async files
        on the application's AsyncFileIO; return its size. The file is made durable
        before it is renamed into place."""
        size = 0
        async with bridge.open(path, "xb", io=self.io) as file:
            async for chunk in body:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise UploadTooLargeError(limit)
                await file.write(chunk)
            await file.flush()
            await file.fsync()
        return size

    async def _validate(self, path: Path) -> None:
        """Open `path` through the core and check every page; raise `InvalidUploadError`."""
        try:
            db = await AsyncDatabase.open(
                self.io, path, immutable=True, schema_limits=self.settings.schema_limits
            )
        except SchemaTooLargeError as exc:
            setting = _SCHEMA_SETTINGS[exc.limit]
            raise InvalidUploadError(
                f"the database's schema is too large for this service: {exc} (set {setting} "
                "to change it)"
            ) from exc
        except StorageError as exc:
            raise InvalidUploadError(
                f"not a valid SQLite database: {_what(exc)}", page=getattr(exc, "page", None)
            ) from exc
        try:
            problems = await db.check()
        except StorageError as exc:
            raise InvalidUploadError(
                f"not a valid SQLite database: {_what(exc)}", page=getattr(exc, "page", None)
            ) from exc
        finally:
            db.close()
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise InvalidUploadError(
                f"the database is damaged: {first.describe()}{more}", page=first.page
            )

    def delete(self, name: str) -> None:
        """Stop serving upload `name` and remove its file. Raises `DatabaseNameError` for
        the sample and `UnknownDatabaseError` if there is no such upload."""
        self.check_name(name)
        entry = self.entries.pop(name, None)
        if entry is None:
            raise UnknownDatabaseError(f"no uploaded database named {name!r}")
        entry.path.unlink(missing_ok=True)
        _remove_log(entry.path)
        self._retire(entry)


def _remove_log(path: Path) -> None:
    """Remove the WAL and wal-index files of database `path`, if any."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


_SCHEMA_SETTINGS = {
    "max_sql_bytes": "IORESULT_MAX_SCHEMA_BYTES",
    "max_objects": "IORESULT_MAX_SCHEMA_OBJECTS",
    "max_columns": "IORESULT_MAX_TABLE_COLUMNS",
}


def _what(exc: StorageError) -> str:
    """The storage error's message without the temporary file's path."""
    detail = getattr(exc, "detail", None)
    page = getattr(exc, "page", None)
    if isinstance(detail, str):
        return f"{detail} (page {page})" if page is not None else detail
    return str(exc)
