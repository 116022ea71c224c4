"""The service's settings: defaults, overridden by environment variables, then by
command-line options (`python -m examples.service --help`).

| variable | default | meaning |
| --- | --- | --- |
| `IORESULT_DATA_DIR` | `data/` in the repository | where the sample and uploads live |
| `IORESULT_SAMPLE_ROWS` | 100000 | books in the sample database made on first run |
| `IORESULT_HOST` | 127.0.0.1 | address to listen on |
| `IORESULT_PORT` | 8000 | port to listen on (0: any free port) |
| `IORESULT_MAX_UPLOAD_BYTES` | 268435456 (256 MiB) | the largest upload accepted |
| `IORESULT_MAX_LIMIT` | 1000 | the largest `limit` a page of rows may ask for |
| `IORESULT_MAX_ANSWER_BYTES` | 8388608 (8 MiB) | the most JSON of rows one answer may hold |
| `IORESULT_CACHE_PAGES` | 8192 | pages each database keeps in its page cache |
| `IORESULT_MAX_SCHEMA_BYTES` | 262144 (256 KiB) | an upload's largest schema SQL |
| `IORESULT_MAX_SCHEMA_OBJECTS` | 2000 | an upload's most tables, indexes, views, triggers |
| `IORESULT_MAX_TABLE_COLUMNS` | 2000 | the most columns of one table of an upload |
| `IORESULT_WRITE_TOKEN` | unset | enables writes; every write must carry it as a bearer token |
| `IORESULT_MAX_WRITE_BYTES` | 1048576 (1 MiB) | the largest JSON body of a write |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from core.storage import SchemaLimits
from examples.service.sample import DEFAULT_ROWS

__all__ = ["REPO_ROOT", "Settings", "SettingsError"]

REPO_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the application reads at startup."""

    data_dir: Path = REPO_ROOT / "data"
    sample_rows: int = DEFAULT_ROWS
    create_sample: bool = True
    """Write the sample database on startup when it is missing."""
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 256 * 1024 * 1024
    default_limit: int = 100
    max_limit: int = 1000
    max_answer_bytes: int = 8 * 1024 * 1024
    """The most bytes of JSON the rows of one answer may take (estimated per cell while the
    page is read): a page stops short of `limit` rows rather than pass it, and a single row
    larger than this is refused (413)."""
    export_page_rows: int = 500
    """Rows per read (one `drive`) while exporting; also rows per chunk sent."""
    max_schema_bytes: int = 256 * 1024
    """Uploads: the largest schema SQL accepted, checked before the schema is parsed."""
    max_schema_objects: int = 2000
    """Uploads: the most schema objects (tables, indexes, views, triggers) accepted."""
    max_table_columns: int = 2000
    """Uploads: the most columns one table may have (SQLite's own default limit)."""
    cache_pages: int = 8192
    """Pages each database keeps in its page cache (8192 pages of 4 KiB: the whole
    100,000-book sample, so after warming up every read is a cache hit)."""
    workers: int = 4
    """Worker threads of the AsyncFileIO, for reads that miss the page cache."""
    write_token: str | None = None
    """Writes are enabled only with a token, and every write request must carry it
    (`Authorization: Bearer <token>`); None: the service only reads."""
    max_write_bytes: int = 1024 * 1024
    """The largest JSON body of a write request (a row, a batch)."""
    max_batch_changes: int = 1000
    """The most changes one batch may hold."""
    nowait: bool | None = None
    """The AsyncFileIO's `nowait`: None tries RWF_NOWAIT reads inline where the platform
    has them; False sends every read to the workers."""

    @property
    def writes_enabled(self) -> bool:
        """Whether the service writes (a write token is set)."""
        return self.write_token is not None

    @property
    def schema_limits(self) -> SchemaLimits:
        """The bounds an uploaded database's schema must keep."""
        return SchemaLimits(
            max_sql_bytes=self.max_schema_bytes,
            max_objects=self.max_schema_objects,
            max_columns=self.max_table_columns,
        )

    @property
    def sample_path(self) -> Path:
        """The sample database's file."""
        return self.data_dir / "sample.db"

    def __post_init__(self) -> None:
        # A `str` (or another path-like) from a caller becomes a `Path`, which the
        # properties below join onto.
        if not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded databases are kept, one `NAME.db` each."""
        return self.data_dir / "uploads"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then `IORESULT_*` variables from `env` (default `os.environ`), then
        `overrides`. Raises `SettingsError` naming a variable that is not a valid number."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "IORESULT_DATA_DIR" in env:
            values["data_dir"] = Path(env["IORESULT_DATA_DIR"])
        if "IORESULT_HOST" in env:
            values["host"] = env["IORESULT_HOST"]
        if env.get("IORESULT_WRITE_TOKEN"):
            values["write_token"] = env["IORESULT_WRITE_TOKEN"]
        for name, field in (
            ("IORESULT_SAMPLE_ROWS", "sample_rows"),
            ("IORESULT_PORT", "port"),
            ("IORESULT_MAX_UPLOAD_BYTES", "max_upload_bytes"),
            ("IORESULT_MAX_LIMIT", "max_limit"),
            ("IORESULT_MAX_ANSWER_BYTES", "max_answer_bytes"),
            ("IORESULT_CACHE_PAGES", "cache_pages"),
            ("IORESULT_MAX_SCHEMA_BYTES", "max_schema_bytes"),
            ("IORESULT_MAX_SCHEMA_OBJECTS", "max_schema_objects"),
            ("IORESULT_MAX_TABLE_COLUMNS", "max_table_columns"),
            ("IORESULT_MAX_WRITE_BYTES", "max_write_bytes"),
        ):
            if name in env:
                try:
                    values[field] = int(env[name])
                except ValueError:
                    raise SettingsError(f"{name} must be an integer, got {env[name]!r}") from None
        values.update(overrides)
        settings = replace(cls(), **values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Raise `SettingsError` naming the first setting out of range."""
        if self.sample_rows < 1:
            raise SettingsError(f"sample_rows must be at least 1, got {self.sample_rows}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0..65535, got {self.port}")
        if self.max_upload_bytes < 1:
            raise SettingsError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if not 1 <= self.default_limit <= self.max_limit:
            raise SettingsError(
                f"default_limit ({self.default_limit}) must be 1..max_limit ({self.max_limit})"
            )
        if self.max_answer_bytes < 1:
            raise SettingsError(f"max_answer_bytes must be positive, got {self.max_answer_bytes}")
        for name in ("max_schema_bytes", "max_schema_objects", "max_table_columns"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be positive, got {getattr(self, name)}")
        if self.cache_pages < 1:
            raise SettingsError(f"cache_pages must be positive, got {self.cache_pages}")
        if self.write_token is not None and len(self.write_token) < 8:
            raise SettingsError("the write token must be at least 8 characters long")
        if self.max_write_bytes < 1:
            raise SettingsError(f"max_write_bytes must be positive, got {self.max_write_bytes}")
        if self.max_batch_changes < 1:
            raise SettingsError(f"max_batch_changes must be positive, got {self.max_batch_changes}")
        if self.export_page_rows < 1:
            raise SettingsError(f"export_page_rows must be positive, got {self.export_page_rows}")
