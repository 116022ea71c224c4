"""A property-based fuzz of the service's whole HTTP API, generated from its OpenAPI schema.

Theory of operation:
- Every operation in the application's OpenAPI schema is one test. schemathesis derives
  requests from the schema, valid ones and invalid ones (wrong types, out of range,
  missing or malformed parameters), and sends them to the ASGI application in-process;
  its ASGI transport runs the application's lifespan, as a server would, on the event
  loop that serves the requests.
- Names drawn at random would only ever meet a 404, so most requests are aimed at what
  is there: a database served (the sample, and two uploads, `tiny` and `zoo`, that hold
  what a reader can trip on), one of its tables, a column it can search, keys and values
  from its rows, all read from the service at the start. The rest of a request comes
  from the generator or from pools of awkward values (keys and page tokens of every
  shape, numbers past 64 bits, names with `/` or dots in them). Requests also carry query
  parameters the schema does not know, and repeated ones. An upload's body is a small
  valid database, a damaged, truncated or padded copy of one, bytes past the upload
  limit, or what the generator made.
- Writes are enabled (a write token), so the fuzz writes too: most write requests carry
  the token and a body aimed at a table's columns (rows, and batches of changes), the
  rest a wrong or no token, or what the generator made. Only the temporary copies are
  written.
- Every answer must have a status the schema documents for its operation and never a 5xx
  (nothing here is corrupt or locked); a body the schema describes must match it; an
  error must be JSON whose `detail` says what was wrong. A page's `next` link is followed
  and held to the same. Every distinct upload the service accepts is read back through
  every reading endpoint, since accepting a file promises that it can be read. After the
  run the service still answers `GET /databases`, holds no lease, keeps exactly the
  uploads it serves, and the sample it wrote passes `core.storage`'s check and SQLite's
  `PRAGMA integrity_check`.
- The application serves a temporary data directory (copies, and uploads bounded by a
  small `max_upload_bytes`); the files it was copied from are checked to be untouched.
- Deterministic: hypothesis runs derandomized, so the same number of examples sends the
  same requests. A failure shows the shrunk request as curl, and the pytest command that
  replays it. `--fuzz-examples=N` sets the number of requests per operation;
  `--fuzz-seed=SEED` explores from a seed instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import string
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core import block
from core.io import UnixIO
from core.storage import Database
from core.storage.check import check_database
from examples.service import models
from examples.service.app import create_app
from examples.service.queries.paging import encode_entry_token
from examples.service.sample import create_sample_database
from examples.service.settings import Settings

# A failing request is printed whole, and an upload past the limit makes a long repr.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

DEFAULT_EXAMPLES = 200
"""Requests per operation in `make test`: about 20 s for the whole fuzz on a 2-core machine."""

UPLOAD_LIMIT = 16 * 1024
"""The test application's `max_upload_bytes`: every upload stays small."""

SAMPLE_ROWS = 300

ROWS = "GET /databases/{database}/tables/{table}/rows"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


TOKEN = "fuzz-write-token"
"""The test application's write token."""

WRITES = {
    "POST /databases/{database}/tables/{table}/rows",
    "PATCH /databases/{database}/tables/{table}/rows/{key}",
    "DELETE /databases/{database}/tables/{table}/rows/{key}",
    "POST /databases/{database}/batch",
}
"""The operations that need the write token."""


def _settings(data_dir: Path) -> Settings:
    return Settings.from_env(
        {},
        data_dir=data_dir,
        create_sample=False,
        max_upload_bytes=UPLOAD_LIMIT,
        write_token=TOKEN,
    )


def _operation_labels() -> list[str]:
    """Every operation of the schema, as schemathesis labels it ("GET /databases")."""
    schema = create_app(_settings(Path("unused"))).openapi()
    return [f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops]


# -- the databases ---------------------------------------------------------------------


def _make_tiny_database(path: Path) -> Path:
    """A few pages of 512 bytes with what a reader can trip on: a rowid alias, a rowid table
    without one, a WITHOUT ROWID table with a two-column key, blobs, infinities, NULLs,
    NOCASE and descending indexes, indexes on expressions (first and second), a partial
    index, a view, a trigger."""
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA page_size = 512")
        con.executescript(
            """
            CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT COLLATE NOCASE, c BLOB, d REAL);
            CREATE INDEX t_b ON t (b);
            CREATE INDEX t_d ON t (d DESC, b);
            CREATE INDEX t_lower ON t (lower(b));
            CREATE TABLE kv (k TEXT, n INTEGER, v, PRIMARY KEY (k, n)) WITHOUT ROWID;
            CREATE INDEX kv_v ON kv (v) WHERE v IS NOT NULL;
            CREATE TABLE plain (x INTEGER, y NUMERIC);
            CREATE INDEX plain_x ON plain (x, y * 2);
            CREATE INDEX plain_y ON plain (y DESC);
            CREATE VIEW vw AS SELECT a, b FROM t;
            CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;
            """
        )
        con.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [
                (1, "Ada", b"\x00\x01\xff", 1.5),
                (2, "ada", None, float("inf")),
                (3, None, b"", float("-inf")),
                (-7, "\u00e9t\u00e9", b"x" * 40, 0.0),
                (2**62, "z" * 60, None, -2.5),
            ],
        )
        con.executemany(
            "INSERT INTO kv VALUES (?, ?, ?)",
            [("a", 1, "x"), ("a", 2, None), ("b", -1, 3), ("", 0, b"\x01"), ("ñ", 9, 1.25)],
        )
        con.executemany("INSERT INTO plain VALUES (?, ?)", [(i % 4, f"{i % 3}") for i in range(12)])
        con.commit()
    return path


def _make_zoo_database(path: Path) -> Path:
    """What else a valid upload may hold: UTF-16 text, WAL mode, auto-vacuum, a STRICT
    table, AUTOINCREMENT, generated columns (stored and virtual), a descending INTEGER
    PRIMARY KEY, a column named rowid, names with spaces, a `/` and non-ASCII letters,
    keys with `/`, `?`, `#` and `%` in them, a descending WITHOUT ROWID key, integers at
    both ends of 64 bits, infinities, subnormals, an RTRIM index, a virtual table."""
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA page_size = 512")
        con.execute("PRAGMA encoding = 'UTF-16le'")
        con.execute("PRAGMA auto_vacuum = FULL")
        con.execute("PRAGMA journal_mode = WAL")
        con.executescript(
            """
            CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, v ANY)
                STRICT;
            CREATE INDEX s_v ON s (v);
            CREATE TABLE g (a INTEGER, b INTEGER AS (a * 2) STORED, c INTEGER AS (a + 1));
            CREATE INDEX g_b ON g (b);
            CREATE TABLE d (a INTEGER PRIMARY KEY DESC, "rowid" TEXT);
            CREATE TABLE "path/like" (x);
            CREATE TABLE "ü w" (k, n INTEGER, PRIMARY KEY (k DESC, n)) WITHOUT ROWID;
            CREATE INDEX "ü w n" ON "ü w" (n COLLATE RTRIM);
            CREATE TABLE big (a INTEGER PRIMARY KEY, r REAL, n NUMERIC);
            CREATE INDEX big_r ON big (r);
            CREATE INDEX big_n ON big (n);
            CREATE VIRTUAL TABLE box USING rtree (id, x0, x1);
            """
        )
        con.executemany(
            "INSERT INTO s (name, v) VALUES (?, ?)",
            [("a", 1), ("b", "x"), ("c", 2.5), ("d", b"\x00"), ("e", None)],
        )
        con.executemany("INSERT INTO g (a) VALUES (?)", [(1,), (2,), (2,), (None,)])
        con.executemany("INSERT INTO d VALUES (?, ?)", [(1, "one"), (2, None)])
        con.execute('INSERT INTO "path/like" VALUES (1)')
        con.executemany(
            'INSERT INTO "ü w" VALUES (?, ?)',
            [("a/b", 1), ("a/b", 2), ("?#%", 3), (b"\xff/", 4), (1.5, 5), ("", 6), ("x ", 7)],
        )
        con.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            [
                (-(2**63), 1e308, "1e400"),
                (2**63 - 1, -0.0, "9223372036854775808"),
                (0, 5e-324, "abc"),
                (5, float("-inf"), "-0"),
            ],
        )
        con.execute("INSERT INTO box VALUES (1, 0, 1)")
        con.commit()
    return path


def _add_notes(path: Path) -> Path:
    """A table of the sample the storage engine writes with all it keeps in step: a
    UNIQUE and a NOT NULL column, a blob, a DEFAULT, and an index of its own (the sample's
    other writable table, `authors`, has no index)."""
    with closing(sqlite3.connect(path)) as con:
        con.executescript(
            """
            CREATE TABLE notes (
                id INTEGER PRIMARY KEY,
                title TEXT NOT NULL UNIQUE,
                body BLOB,
                score REAL DEFAULT 0.5
            );
            CREATE INDEX notes_score ON notes (score);
            INSERT INTO notes (title, body, score) VALUES ('a', x'00ff', 1), ('b', NULL, 2);
            """
        )
    return path


def _make_empty_database(path: Path) -> Path:
    """A database whose only table is empty, on pages of 1024 bytes."""
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA page_size = 1024")
        con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT UNIQUE)")
    return path


class Target(NamedTuple):
    """A table that is there: the columns a lookup in it can search, and keys and values
    from its first rows."""

    database: str
    table: str
    lookup_columns: tuple[str, ...]
    keys: tuple[str, ...]
    values: tuple[str, ...]
    columns: tuple[str, ...]
    writable: bool


def _targets(schema: schemathesis.BaseSchema) -> list[Target]:
    """Every table of every database the service serves now, read through the service;
    the ones with the most to search first, and their indexed columns before the rowid,
    since hypothesis draws the first choices most."""
    targets = []
    for summary in _get(schema, "GET /databases").json():
        name = summary["name"]
        detail = _get(schema, "GET /databases/{database}", database=name).json()
        for table in detail["tables"]:
            if "/" in table["name"]:
                continue  # no path can name it (see `_read_back`)
            rows: list[Any] = []
            if _has_rows(table):
                where = {"database": name, "table": table["name"]}
                page = _get(schema, ROWS, {"limit": 5}, **where).json()
                rows = [(page["columns"], row) for row in page["rows"]]
            keys = tuple(_row_key(table, columns, row) for columns, row in rows)
            values = {str(v) for _, row in rows for v in row if not isinstance(v, dict)}
            columns = tuple(reversed(table["lookup_columns"]))
            declared = tuple(c["name"] for c in table["columns"])
            writable = _writable(detail, table)
            targets.append(
                Target(
                    name, table["name"], columns, keys, tuple(sorted(values)), declared, writable
                )
            )
    return sorted(targets, key=lambda t: -len(t.lookup_columns))


def _writable(detail: dict[str, Any], table: dict[str, Any]) -> bool:
    """Whether the storage engine will likely write `table` (see docs/writing.md, "What is
    refused"), judged from its description."""
    indexes = {i["name"]: i for i in detail["indexes"]}
    sql = (table["sql"] or "").upper()
    return (
        detail["text_encoding"] == "utf-8"
        and not table["without_rowid"]
        and not table["virtual"]
        and not table["name"].startswith("sqlite_")
        and all(c["generated"] is None for c in table["columns"])
        and "REFERENCES" not in sql
        and "CHECK" not in sql
        and not detail["triggers"]
        and not any(
            indexes[i]["partial"] or any(c["name"] is None for c in indexes[i]["columns"])
            for i in table["indexes"]
        )
    )


def _has_rows(table: dict[str, Any]) -> bool:
    """Whether the service can show the rows of `table`: not those of a virtual table, nor
    of one with a virtual generated column (the storage engine runs no module and computes
    no column; it refuses them, cleanly)."""
    return not table["virtual"] and all(c["generated"] != "virtual" for c in table["columns"])


def _row_key(table: dict[str, Any], columns: list[str], row: list[Any]) -> str:
    """The text of the key of `row`, as `/rows/{key}` takes it."""
    cells = {c.lower(): v for c, v in zip(columns, row, strict=True)}
    if table["without_rowid"]:
        return json.dumps([cells[c.lower()] for c in table["primary_key"]])
    aliases = [c["name"] for c in table["columns"] if c["rowid_alias"]]
    return str(cells[aliases[0].lower()] if aliases else row[0])  # else the rowid is first


# -- what goes into requests --------------------------------------------------------------

UPLOAD_NAMES = ["tiny", "zoo", "fuzz-a", "fuzz_b"]
"""Names uploads are sent to: two served from the start, two that are not (yet)."""

ODD_NAMES = [
    *("sample", "x" * 64, "x" * 65, "-x", "a.b", "a b", "", ".", ".."),
    *("a/b", "a/tables/b", "tiny/"),
]
ODD_TABLES = ["BOOKS", "sqlite_schema", "sqlite_master", "vw", "t_b", "nope", "", "a/b", "books/"]
ODD_COLUMNS = ["rowid", "oid", "_rowid_", "TITLE", "nope", "lower(b)", ""]

_cells = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.none(),
    st.builds(
        lambda b: {"$base64": True, "encoded": base64.b64encode(b).decode()},
        st.binary(max_size=4),
    ),
    st.sampled_from([{"$float": "Infinity"}, {"$float": "-Infinity"}, {"$float": "NaN"}, {}, []]),
)
"""Values as JSON keys and tokens carry them, with markers good and bad."""
_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e999", "0x10", "1_000", " 1", "1.0", "-0"]),
)
_words = st.sampled_from(["ana", "bo", "chen", "eve", "a", "b", "", "\u00f1"])
_keys = st.one_of(
    st.integers(min_value=-3, max_value=SAMPLE_ROWS + 3).map(str),
    st.tuples(st.integers(min_value=0, max_value=60), _words).map(lambda k: json.dumps(list(k))),
    st.tuples(_words, st.integers(min_value=-1, max_value=9)).map(lambda k: json.dumps(list(k))),
    _numbers,
    st.lists(_cells, max_size=3).map(json.dumps),
    _cells.map(json.dumps),
    st.text(max_size=12),
)
"""Row keys: rowids and primary keys that are there, and every other shape."""
_tokens = st.one_of(
    st.builds(encode_entry_token, st.lists(_cells, max_size=4)),
    st.text(alphabet=string.ascii_letters + string.digits + "-_=", max_size=16),
    _keys,
)
"""Lookup page tokens: well-formed ones of any entry, and not."""
_values = st.one_of(
    st.integers(min_value=1945, max_value=2030).map(str),
    _numbers,
    _words,
    st.text(max_size=8),
)
"""A lookup's bounds."""

ODD_PATH: dict[str, st.SearchStrategy[str]] = {
    "database": st.sampled_from([*UPLOAD_NAMES, *ODD_NAMES]),
    "name": st.sampled_from(ODD_NAMES),
    "table": st.sampled_from(ODD_TABLES),
    "key": _keys,
}
ODD_QUERY: dict[str, st.SearchStrategy[str]] = {
    "column": st.sampled_from(ODD_COLUMNS),
    "after": st.one_of(_keys, _tokens),
    "eq": _values,
    "gt": _values,
    "ge": _values,
    "lt": _values,
    "le": _values,
    "limit": st.one_of(st.integers(min_value=-2, max_value=1002).map(str), st.just("1e2")),
    "format": st.sampled_from(["csv", "ndjson", "CSV", "xml"]),
}
SEARCHES = [("eq",), ("ge",), ("gt",), ("lt",), ("le",), ("gt", "le"), ("ge", "lt"), None]
"""The shapes of a lookup's search (None: as generated); anything else is refused before
a database is read, so most requests keep to one of these."""
AIMS = st.sampled_from(["aimed", "aimed", "aimed", "generated", "odd"])
"""What each part of a request is: aimed at what is there (a sensible value), as the
generator made it, or from the pools of awkward values. Shrinks towards aimed."""
_unknown_names = st.text(alphabet=string.ascii_letters + "_[].$", min_size=1, max_size=8)


def _bodies(valid: dict[str, bytes]) -> st.SearchStrategy[bytes]:
    """Upload bodies: valid databases, damaged, truncated or padded copies, bytes past the
    limit; the simplest first, which is what a failure shrinks to."""
    # Drawn by name: a strategy's repr shows its choices.
    database = st.sampled_from(sorted(valid)).map(valid.__getitem__)

    def damage(body: bytes, edits: list[tuple[int, int]]) -> bytes:
        out = bytearray(body)
        for position, value in edits:
            out[position % len(out)] = value
        return bytes(out)

    edits = st.lists(
        st.tuples(st.integers(min_value=0, max_value=UPLOAD_LIMIT), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
    return st.one_of(
        st.binary(max_size=600),
        database,
        st.builds(damage, database, edits),
        st.builds(lambda b, n: b[: n % len(b)], database, st.integers(min_value=0)),
        st.builds(lambda b, n: b + bytes(n), database, st.integers(1, 1024)),
        st.integers(1, 2048).map(lambda n: b"\x01" * (UPLOAD_LIMIT + n)),
    )


def _segment(value: str) -> str:
    """`value` as one path segment, encoded as schemathesis encodes the values it makes: a
    `/` is sent as %2F (which a server decodes back to `/`), `.` and `..` are escaped."""
    return {".": "%2E", "..": "%2E%2E"}.get(value) or quote(value, safe="")


@st.composite
def _aimed(
    draw: st.DrawFn,
    generated: st.SearchStrategy[Case[Any]],
    targets: list[Target],
    bodies: st.SearchStrategy[bytes],
) -> Case[Any]:
    """A generated request, mostly aimed at a table that is there (see `AIMS`)."""
    case = draw(generated)
    label = f"{case.method} {case.operation.path}"
    if label in WRITES and draw(AIMS) == "aimed":
        # Writes aim at the tables the engine writes, else they are all refused alike.
        target = draw(st.sampled_from([t for t in targets if t.writable] or targets))
    else:
        target = draw(st.sampled_from(targets))
    aimed_path = {"database": target.database, "table": target.table}
    if target.keys:
        aimed_path["key"] = draw(st.sampled_from(target.keys))
    path = dict(case.path_parameters)
    for name in path:
        aim = draw(AIMS)
        if aim == "aimed" and name == "name":
            path[name] = draw(st.sampled_from(UPLOAD_NAMES))
        elif aim == "aimed" and name in aimed_path:
            path[name] = _segment(aimed_path[name])
        elif aim != "generated" and name in ODD_PATH:
            path[name] = _segment(draw(ODD_PATH[name]))
    case.path_parameters = path
    query = dict(case.query)
    names = [p.name for p in case.operation.query]
    aimed_query = {
        "limit": st.integers(min_value=1, max_value=5).map(str),
        "format": st.sampled_from(["ndjson", "csv"]),
    }
    if target.lookup_columns:
        aimed_query["column"] = st.sampled_from(target.lookup_columns)
    for name in names:
        aim = draw(AIMS)
        if aim == "aimed" and name in aimed_query:
            query[name] = draw(aimed_query[name])
        elif aim == "aimed" and name == "after":
            query.pop(name, None)  # the first page
        elif aim == "odd" and name in query and draw(st.booleans()):
            query[name] = [draw(ODD_QUERY[name]), draw(ODD_QUERY[name])]  # repeated
        elif aim == "odd":
            query[name] = draw(ODD_QUERY[name])
    if "eq" in names:
        search = draw(st.sampled_from(SEARCHES))
        if search is not None:
            for name in ("eq", "gt", "ge", "lt", "le"):
                query.pop(name, None)
            for name in search:
                aimed = draw(AIMS) == "aimed" and target.values
                query[name] = draw(st.sampled_from(target.values) if aimed else ODD_QUERY[name])
    if draw(AIMS) == "odd":  # refused (422) whatever else the request holds
        unknown = draw(st.dictionaries(_unknown_names, st.text(max_size=10), max_size=2))
        query.update({k: v for k, v in unknown.items() if k not in query})
    case.query = query
    if case.method == "PUT" and draw(AIMS) != "generated":
        case.body = draw(bodies)
        case.media_type = "application/octet-stream"
    if label in WRITES:
        aim = draw(AIMS)
        headers = dict(case.headers or {})
        if aim == "aimed":
            headers["Authorization"] = f"Bearer {TOKEN}"
        elif aim == "odd":
            headers["Authorization"] = draw(st.sampled_from(["Bearer wrong-token", TOKEN, ""]))
        case.headers = headers
        if case.method != "DELETE" and draw(AIMS) == "aimed":
            if case.method == "POST" and case.operation.path.endswith("/batch"):
                case.body = {"changes": draw(st.lists(_change(target), min_size=1, max_size=3))}
            else:
                case.body = {"values": draw(_row_values(target))}
            case.media_type = "application/json"
    return case


_write_cells = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([{"$float": "Infinity"}, {"$float": "-Infinity"}]),
    st.text(max_size=8),
    st.none(),
    st.binary(max_size=8).map(lambda b: {"$base64": True, "encoded": base64.b64encode(b).decode()}),
)
"""Values a write may carry: every kind SQLite stores."""


def _row_values(target: Target) -> st.SearchStrategy[dict[str, Any]]:
    """Values for some of `target`'s columns (or for a column it does not have)."""
    names = st.sampled_from(target.columns) if target.columns else st.just("nope")
    values = st.one_of(_write_cells, st.sampled_from(target.values or ("x",)))
    return st.dictionaries(
        st.one_of(names, names, names, st.just("nope")), values, min_size=1, max_size=4
    )


@st.composite
def _change(draw: st.DrawFn, target: Target) -> dict[str, Any]:
    """One change of a batch on `target`, mostly well-formed."""
    op = draw(st.sampled_from(["insert", "update", "delete"]))
    change: dict[str, Any] = {"op": op, "table": target.table}
    if op != "insert":
        keys = [int(k) for k in target.keys if k.lstrip("-").isdigit()]
        change["key"] = draw(st.sampled_from(keys) if keys else st.integers(-2, 400))
    if op != "delete":
        change["values"] = draw(_row_values(target))
    return change


# -- what every answer must be ------------------------------------------------------------


def _validate(case: Case[Any], response: Any) -> None:
    """Every check on one answer; a failure shows the request as curl."""
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as failures:
        # A BaseExceptionGroup, which hypothesis would let through unshrunk and unreported.
        raise AssertionError(failures.message) from None
    if response.status_code >= 400:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
        assert isinstance(detail, str) and detail.strip(), (
            f"an error must say what was wrong: {body!r}\n{case.as_curl_command()}"
        )


def _next_link(response: Any) -> object:
    """The `next` of a page of rows, if the answer is one."""
    if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
        return None
    body = response.json()
    return body.get("next") if isinstance(body, dict) else None


def _get(
    schema: schemathesis.BaseSchema,
    label: str,
    query: dict[str, Any] | None = None,
    *,
    expect: int = 200,
    **path: str,
) -> Any:
    """A request made by hand to `label`; it must pass every check and answer `expect`."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    case = operation.Case(path_parameters={k: _segment(v) for k, v in path.items()}, query=query)
    response = case.call(allow_redirects=False)
    _validate(case, response)
    assert response.status_code == expect, (label, path, query, response.text)
    return response


def _read_back(schema: schemathesis.BaseSchema, name: str) -> None:
    """Read every table of upload `name` through every reading endpoint, following one
    page, fetching each row of the first page by key and looking each of its values up."""
    detail = _get(schema, "GET /databases/{database}", database=name).json()
    for info in detail["tables"]:
        if "/" in info["name"]:
            continue  # no path can name it: servers decode %2F (see docs/service.md)
        where = {"database": name, "table": info["name"]}
        _get(schema, "GET /databases/{database}/tables/{table}", **where)
        if not _has_rows(info):
            _get(schema, ROWS, expect=422, **where)
            continue
        _get(schema, "GET /databases/{database}/tables/{table}/count", **where)
        for export_format in ("ndjson", "csv"):
            export = "GET /databases/{database}/tables/{table}/export"
            _get(schema, export, {"format": export_format}, **where)
        page = _get(schema, ROWS, {"limit": 2}, **where).json()
        if page["next_after"] is not None:
            after = page["next_after"]
            after = after if isinstance(after, int) else json.dumps(after)
            _get(schema, ROWS, {"after": after}, **where)
        for row in page["rows"]:
            key = _row_key(info, page["columns"], row)
            cells = {c.lower(): v for c, v in zip(page["columns"], row, strict=True)}
            _get(schema, "GET /databases/{database}/tables/{table}/rows/{key}", key=key, **where)
            for column in info["lookup_columns"]:
                value = cells.get(column.lower())
                if value is None or isinstance(value, dict):
                    continue
                for search in ("eq", "ge"):
                    lookup = "GET /databases/{database}/tables/{table}/lookup"
                    query = {"column": column, search: str(value), "limit": 1}
                    found = _get(schema, lookup, query, **where).json()
                    if found["next_after"] is not None:
                        _get(schema, lookup, {**query, "after": found["next_after"]}, **where)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_healthy(schema: schemathesis.BaseSchema, data: Path) -> None:
    """The service still answers, holds no lease, left no temporary file behind, keeps
    exactly the uploads it serves, and the sample it wrote is sound."""
    served = [
        models.DatabaseSummary.model_validate(d) for d in _get(schema, "GET /databases").json()
    ]
    assert served[0].name == "sample"
    operation = schema.find_operation_by_label("GET /databases")
    assert operation is not None and operation.app is not None
    assert operation.app.state.databases.leases() == 0
    uploads = sorted(p.name for p in (data / "uploads").iterdir() if p.suffix == ".db")
    assert uploads == sorted(f"{d.name}.db" for d in served if d.source == "upload")
    logs = {p.name for p in (data / "uploads").iterdir() if p.suffix != ".db"}
    assert {name.rsplit(".db-", 1)[0] + ".db" for name in logs} <= set(uploads), logs
    assert sorted(p.name for p in data.iterdir() if p.name != "sample.db-wal") == [
        "sample.db",
        "uploads",
    ]
    for path in [data / "sample.db", *sorted((data / "uploads").glob("*.db"))]:
        _check_sound(path)


def _check_sound(path: Path) -> None:
    """The database passes the storage engine's check and SQLite's integrity check."""
    io = UnixIO()
    try:
        db = block(Database.open(io, path), io)
        try:
            assert block(check_database(db), io) == []
        finally:
            db.close()
    finally:
        io.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# -- the fuzz -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files each test's data directory is copied from, made once."""
    made = tmp_path_factory.mktemp("originals")
    return {
        "sample": _add_notes(create_sample_database(made / "sample.db", rows=SAMPLE_ROWS)),
        "tiny": _make_tiny_database(made / "tiny.db"),
        "zoo": _make_zoo_database(made / "zoo.db"),
        "empty": _make_empty_database(made / "empty.db"),
    }


@pytest.fixture
def fuzz_examples(request: pytest.FixtureRequest) -> int:
    examples: int | None = request.config.getoption("--fuzz-examples")
    return DEFAULT_EXAMPLES if examples is None else examples


@pytest.fixture
def fuzz_seed(request: pytest.FixtureRequest) -> int | None:
    seed: int | None = request.config.getoption("--fuzz-seed")
    return seed


@pytest.fixture
def served(
    tmp_path: Path, originals: dict[str, Path]
) -> Iterator[tuple[schemathesis.BaseSchema, Path]]:
    """The schema of an application serving a fresh temporary data directory: the sample,
    and `tiny` and `zoo` as uploads. The files they were copied from are left as they
    were."""
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    shutil.copy(originals["sample"], data / "sample.db")
    for name in ("tiny", "zoo"):
        shutil.copy(originals[name], data / "uploads" / f"{name}.db")
    before = {name: _digest(path) for name, path in originals.items()}
    # The lifespan starts with the first request; schemathesis's pytest plugin ends it when
    # the test ends, before this fixture's teardown.
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_settings(data)))
    yield schema, data
    assert {name: _digest(path) for name, path in originals.items()} == before


def test_served_databases_read_back(served: tuple[schemathesis.BaseSchema, Path]) -> None:
    """What the fuzz aims at reads back through every reading endpoint."""
    schema, data = served
    for name in ("sample", "tiny", "zoo"):
        _read_back(schema, name)
    _check_healthy(schema, data)


@pytest.mark.parametrize("label", _operation_labels())
def test_fuzz_operation(
    label: str,
    served: tuple[schemathesis.BaseSchema, Path],
    originals: dict[str, Path],
    fuzz_examples: int,
    fuzz_seed: int | None,
    request: pytest.FixtureRequest,
) -> None:
    schema, data = served
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema"
    generated = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    bodies = _bodies({name: originals[name].read_bytes() for name in ("tiny", "zoo", "empty")})
    requests = _aimed(generated, _targets(schema), bodies)
    read_back: set[bytes] = set()
    written = 0

    @settings(
        max_examples=fuzz_examples,
        derandomize=fuzz_seed is None,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=requests)
    def fuzz(case: Case[Any]) -> None:
        nonlocal written
        response = case.call(allow_redirects=False)
        _validate(case, response)
        if label in WRITES and response.status_code < 300:
            written += 1
        if isinstance(link := _next_link(response), str):  # the next page must work too
            query = dict(parse_qsl(urlsplit(link).query))
            following = operation.Case(path_parameters=case.path_parameters, query=query)
            _validate(following, following.call(allow_redirects=False))
        if case.method == "PUT" and response.status_code in (200, 201):
            body = case.body if isinstance(case.body, bytes) else b""
            if body not in read_back:  # each distinct file once, until one fails
                _read_back(schema, response.json()["name"])
                read_back.add(body)

    seeded = f" --fuzz-seed={fuzz_seed}" if fuzz_seed is not None else ""
    try:
        (fuzz if fuzz_seed is None else seed(fuzz_seed)(fuzz))()
    except BaseException as exc:
        exc.add_note(
            "replay (the same requests): .venv/bin/pytest "
            f"'{request.node.nodeid}' --fuzz-examples={fuzz_examples}{seeded}"
        )
        raise
    if label in WRITES and fuzz_examples >= 100:
        assert written, f"no request to {label} was written: the fuzz missed every table"
    _check_healthy(schema, data)
