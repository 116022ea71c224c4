"""Parsing the CREATE TABLE and CREATE INDEX statements stored in `sqlite_schema` (Turso
`translate/schema.rs` and the `parser` crate, in the small: only what a reader needs).

Theory of operation:
- A tokenizer turns SQL into tokens with their source spans (identifiers bare or quoted as
  "x", [x] or `x`; 'strings'; numbers; x'blobs'; punctuation). Comments and whitespace go.
- The parser is deliberately forgiving, because SQLite has already accepted every statement
  it stores: it picks out names, declared types, COLLATE, DEFAULT, NOT NULL, PRIMARY KEY
  (with ASC/DESC and AUTOINCREMENT), UNIQUE, generated columns, WITHOUT ROWID and STRICT;
  of CHECK and REFERENCES/FOREIGN KEY it notes only that they are there (a writer must
  refuse what it cannot enforce), and it skips their bodies and conflict clauses by their
  structure. Only text it cannot make sense of at all (no column list, an unterminated
  quote) is an error: `CorruptDatabaseError`.
- Keywords are recognised only as bare identifiers, so a quoted "primary" is a name, as in
  SQLite, where PRIMARY, UNIQUE, CHECK, FOREIGN and CONSTRAINT are never bare names.
- PRIMARY KEY and UNIQUE constraints are reported in the order they appear (column
  constraints where their column is, table constraints after), which is the order SQLite
  numbers its `sqlite_autoindex_<table>_<n>` indexes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.storage.errors import CorruptDatabaseError

__all__ = [
    "DefaultValue",
    "ParsedColumn",
    "ParsedConstraint",
    "ParsedIndex",
    "ParsedIndexedColumn",
    "ParsedTable",
    "Token",
    "dequote",
    "parse_create_index",
    "parse_create_table",
    "tokenize",
]

_TOKEN = re.compile(
    r"""
     (?P<ws>[ \t\n\f\r]+|--[^\n]*|/\*(?:.|\n)*?(?:\*/|\Z))
    |(?P<blob>[xX]'[0-9a-fA-F]*')
    |(?P<str>'(?:[^']|'')*')
    |(?P<qid>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
    |(?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<id>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
    |(?P<op>\|\||<=|>=|==|!=|<>|<<|>>|[^'"`\[])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    """One token: `kind` is id, qid, str, num, blob or op; `text` its source text."""

    kind: str
    text: str
    start: int
    end: int

    def is_kw(self, *words: str) -> bool:
        """True if this is a bare identifier equal (ignoring case) to one of `words`."""
        return self.kind == "id" and self.text.upper() in words


def tokenize(sql: str) -> list[Token]:
    """Split `sql` into tokens. Raises `CorruptDatabaseError` on an unterminated quote."""
    tokens: list[Token] = []
    pos = 0
    n = len(sql)
    while pos < n:
        m = _TOKEN.match(sql, pos)
        if m is None:
            raise CorruptDatabaseError(
                f"malformed schema SQL: unterminated quote at offset {pos} in {sql!r}"
            )
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos, m.end()))
        pos = m.end()
    return tokens


def dequote(token: Token) -> str:
    """The name a token stands for: quotes removed and doubled quotes undone."""
    text = token.text
    if token.kind == "qid":
        if text[0] == "[":
            return text[1:-1]
        q = text[0]
        return text[1:-1].replace(q + q, q)
    if token.kind == "str":
        return text[1:-1].replace("''", "'")
    return text


@dataclass(frozen=True, slots=True)
class DefaultValue:
    """A DEFAULT clause as written.

    `kind` is one of: number (`text` is the literal, `negative` its sign), string, blob
    (`text` is the hex digits), null, true, false, identifier (a bare name, which SQLite
    takes as a string), or expression (anything else, `text` the source). A literal in
    parentheses, `DEFAULT (-1)`, is that literal: SQLite's parser drops the parentheses.
    """

    kind: str
    text: str
    negative: bool = False
    source: str = ""
    """The clause's text as `PRAGMA table_info` shows it (`dflt_value`): the expression
    after DEFAULT, without one pair of enclosing parentheses."""


@dataclass(frozen=True, slots=True)
class ParsedIndexedColumn:
    """One column of an index or of a PRIMARY KEY/UNIQUE constraint."""

    name: str | None
    """The column's name when the term is a plain name; None for an expression."""
    expression: str
    """The term's source text (without COLLATE, ASC or DESC)."""
    collation: str | None
    descending: bool


@dataclass(frozen=True, slots=True)
class ParsedColumn:
    """One column definition."""

    name: str
    declared_type: str
    collation: str | None
    default: DefaultValue | None
    generated: str | None
    """"virtual" or "stored" for a generated column, else None."""
    not_null: bool = False
    """A NOT NULL constraint on the column."""
    check: bool = False
    """A CHECK constraint on the column."""
    references: bool = False
    """A REFERENCES clause (a foreign key) on the column."""


@dataclass(frozen=True, slots=True)
class ParsedConstraint:
    """A PRIMARY KEY or UNIQUE constraint, column-level or table-level."""

    kind: str
    """"primary" or "unique"."""
    columns: tuple[ParsedIndexedColumn, ...]
    column_level: bool
    autoincrement: bool = False
    """PRIMARY KEY ... AUTOINCREMENT (SQLite accepts it only on an INTEGER PRIMARY KEY)."""


@dataclass(frozen=True, slots=True)
class ParsedTable:
    """What a CREATE TABLE statement says."""

    columns: tuple[ParsedColumn, ...]
    constraints: tuple[ParsedConstraint, ...]
    without_rowid: bool
    strict: bool
    table_check: bool = False
    """A table-level CHECK constraint (column-level ones are on the columns)."""
    table_foreign_key: bool = False
    """A table-level FOREIGN KEY constraint (column-level REFERENCES are on the columns)."""

    @property
    def autoincrement(self) -> bool:
        """True if the PRIMARY KEY is declared AUTOINCREMENT."""
        return any(c.autoincrement for c in self.constraints if c.kind == "primary")

    @property
    def has_check(self) -> bool:
        """True if any CHECK constraint is declared, on a column or on the table."""
        return self.table_check or any(c.check for c in self.columns)

    @property
    def has_foreign_keys(self) -> bool:
        """True if any column has REFERENCES or the table a FOREIGN KEY constraint."""
        return self.table_foreign_key or any(c.references for c in self.columns)


@dataclass(frozen=True, slots=True)
class ParsedIndex:
    """What a CREATE INDEX statement says."""

    unique: bool
    table: str
    columns: tuple[ParsedIndexedColumn, ...]
    where: str | None


_COLUMN_CONSTRAINT_WORDS = frozenset(
    {
        "CONSTRAINT",
        "PRIMARY",
        "NOT",
        "NULL",
        "UNIQUE",
        "CHECK",
        "DEFAULT",
        "COLLATE",
        "REFERENCES",
        "GENERATED",
        "AS",
    }
)
_TABLE_CONSTRAINT_WORDS = ("CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN")


def _malformed(sql: str, what: str) -> CorruptDatabaseError:
    return CorruptDatabaseError(f"malformed schema SQL ({what}): {sql!r}")


def _split_top_level(tokens: list[Token], start: int, sql: str) -> tuple[list[list[Token]], int]:
    """Split the parenthesised list opening at `tokens[start]` by top-level commas; return
    the items and the index after the closing parenthesis."""
    if start >= len(tokens) or tokens[start].text != "(":
        raise _malformed(sql, "expected '('")
    items: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    i = start + 1
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "op":
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                if depth == 0:
                    items.append(current)
                    return items, i + 1
                depth -= 1
            elif tok.text == "," and depth == 0:
                items.append(current)
                current = []
                i += 1
                continue
        current.append(tok)
        i += 1
    raise _malformed(sql, "unbalanced parentheses")


def _skip_group(tokens: list[Token], i: int) -> int:
    """Index after the balanced parenthesised group opening at `tokens[i]` (or `i` if none)."""
    if i >= len(tokens) or tokens[i].text != "(":
        return i
    depth = 0
    while i < len(tokens):
        text = tokens[i].text
        if tokens[i].kind == "op":
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
        i += 1
    return i


def _span(sql: str, tokens: list[Token], start: int, end: int) -> str:
    if start >= end:
        return ""
    return sql[tokens[start].start : tokens[end - 1].end]


def _skip_conflict(tokens: list[Token], i: int) -> int:
    if i + 1 < len(tokens) and tokens[i].is_kw("ON") and tokens[i + 1].is_kw("CONFLICT"):
        return min(i + 3, len(tokens))
    return i


def _parse_indexed_column(sql: str, tokens: list[Token]) -> ParsedIndexedColumn:
    end = len(tokens)
    descending = False
    collation: str | None = None
    if end and tokens[end - 1].is_kw("ASC", "DESC"):
        descending = tokens[end - 1].is_kw("DESC")
        end -= 1
    if end >= 2 and tokens[end - 2].is_kw("COLLATE"):
        collation = dequote(tokens[end - 1])
        end -= 2
    if end == 0:
        raise _malformed(sql, "empty indexed column")
    name = None
    if end == 1 and tokens[0].kind in ("id", "qid", "str"):
        name = dequote(tokens[0])
    return ParsedIndexedColumn(name, _span(sql, tokens, 0, end), collation, descending)


def _parse_default(sql: str, tokens: list[Token], i: int) -> tuple[DefaultValue, int]:
    if i >= len(tokens):
        raise _malformed(sql, "DEFAULT without a value")
    tok = tokens[i]
    if tok.text == "(" and tok.kind == "op":
        end = _skip_group(tokens, i)
        source = _span(sql, tokens, i + 1, end - 1)
        inner = _unwrap(tokens[i + 1 : end - 1])
        if inner and (len(inner) == 1 or (len(inner) == 2 and inner[0].text in "+-")):
            value, used = _parse_default(sql, inner, 0)
            # A bare name in parentheses is a column reference, which SQLite refuses as
            # a default; only literals are taken.
            if used == len(inner) and value.kind not in ("expression", "identifier"):
                return replace(value, source=source), end
        return DefaultValue("expression", _span(sql, tokens, i, end), source=source), end
    if tok.kind == "op" and tok.text in ("+", "-") and i + 1 < len(tokens):
        nxt = tokens[i + 1]
        source = _span(sql, tokens, i, i + 2)
        if nxt.kind == "num":
            return DefaultValue("number", nxt.text, tok.text == "-", source), i + 2
        return DefaultValue("expression", source, source=source), i + 2
    source = tok.text
    if tok.kind == "num":
        return DefaultValue("number", tok.text, source=source), i + 1
    if tok.kind == "str":
        return DefaultValue("string", dequote(tok), source=source), i + 1
    if tok.kind == "blob":
        return DefaultValue("blob", tok.text[2:-1], source=source), i + 1
    if tok.kind == "qid":
        return DefaultValue("identifier", dequote(tok), source=source), i + 1
    if tok.kind == "id":
        word = tok.text.upper()
        if word == "NULL":
            return DefaultValue("null", tok.text, source=source), i + 1
        if word in ("TRUE", "FALSE"):
            return DefaultValue(word.lower(), tok.text, source=source), i + 1
        if word in ("CURRENT_TIME", "CURRENT_DATE", "CURRENT_TIMESTAMP"):
            return DefaultValue("expression", tok.text, source=source), i + 1
        return DefaultValue("identifier", tok.text, source=source), i + 1
    return DefaultValue("expression", tok.text, source=source), i + 1


def _unwrap(tokens: list[Token]) -> list[Token]:
    """`tokens` without the parentheses that enclose all of them (`((5))` is `5`)."""
    while len(tokens) >= 2 and tokens[0].text == "(" and tokens[0].kind == "op":
        if _skip_group(tokens, 0) != len(tokens):
            break
        tokens = tokens[1:-1]
    return tokens


def _skip_references(tokens: list[Token], i: int) -> int:
    # REFERENCES table [(columns)] {ON {DELETE|UPDATE} action | MATCH name |
    # [NOT] DEFERRABLE [INITIALLY {DEFERRED|IMMEDIATE}]}*
    n = len(tokens)
    i += 1  # the table name
    i = _skip_group(tokens, i)
    while i < n:
        tok = tokens[i]
        if tok.is_kw("ON") and i + 1 < n and tokens[i + 1].is_kw("DELETE", "UPDATE"):
            i += 2
            if i < n and tokens[i].is_kw("SET"):
                i += 2  # SET NULL | SET DEFAULT
            elif i < n and tokens[i].is_kw("NO"):
                i += 2  # NO ACTION
            else:
                i += 1  # CASCADE | RESTRICT
        elif tok.is_kw("MATCH") or (
            tok.is_kw("NOT") and i + 1 < n and tokens[i + 1].is_kw("DEFERRABLE")
        ):
            i += 2
        elif tok.is_kw("DEFERRABLE"):
            i += 1
        elif tok.is_kw("INITIALLY"):
            i += 2
        else:
            break
    return i


def _parse_column(
    sql: str, tokens: list[Token], constraints: list[ParsedConstraint]
) -> ParsedColumn:
    name_tok = tokens[0]
    if name_tok.kind not in ("id", "qid", "str"):
        raise _malformed(sql, f"column name expected, found {name_tok.text!r}")
    name = dequote(name_tok)
    n = len(tokens)
    i = 1
    while i < n and not (
        tokens[i].kind == "id" and tokens[i].text.upper() in _COLUMN_CONSTRAINT_WORDS
    ):
        i = _skip_group(tokens, i) if tokens[i].text == "(" else i + 1
    declared_type = _span(sql, tokens, 1, i)
    collation: str | None = None
    default: DefaultValue | None = None
    generated: str | None = None
    not_null = check = references = False
    while i < n:
        tok = tokens[i]
        if tok.is_kw("CONSTRAINT"):
            i += 2
        elif tok.is_kw("PRIMARY"):
            i += 2  # PRIMARY KEY
            descending = False
            if i < n and tokens[i].is_kw("ASC", "DESC"):
                descending = tokens[i].is_kw("DESC")
                i += 1
            i = _skip_conflict(tokens, i)
            autoincrement = i < n and tokens[i].is_kw("AUTOINCREMENT")
            if autoincrement:
                i += 1
            column = ParsedIndexedColumn(name, dequote(name_tok), None, descending)
            constraints.append(
                ParsedConstraint("primary", (column,), True, autoincrement=autoincrement)
            )
        elif tok.is_kw("UNIQUE"):
            i = _skip_conflict(tokens, i + 1)
            column = ParsedIndexedColumn(name, dequote(name_tok), None, False)
            constraints.append(ParsedConstraint("unique", (column,), column_level=True))
        elif tok.is_kw("NOT"):
            not_null = not_null or (i + 1 < n and tokens[i + 1].is_kw("NULL"))
            i = _skip_conflict(tokens, i + 2)  # NOT NULL
        elif tok.is_kw("NULL"):
            i = _skip_conflict(tokens, i + 1)
        elif tok.is_kw("CHECK"):
            check = True
            i = _skip_group(tokens, i + 1)
        elif tok.is_kw("DEFAULT"):
            default, i = _parse_default(sql, tokens, i + 1)
        elif tok.is_kw("COLLATE"):
            if i + 1 < n:
                collation = dequote(tokens[i + 1])
            i += 2
        elif tok.is_kw("REFERENCES"):
            references = True
            i = _skip_references(tokens, i + 1)
        elif tok.is_kw("GENERATED", "AS"):
            if tok.is_kw("GENERATED"):
                i += 2  # GENERATED ALWAYS
            i = _skip_group(tokens, i + 1)  # AS (expr)
            generated = "virtual"
            if i < n and tokens[i].is_kw("STORED", "VIRTUAL"):
                generated = tokens[i].text.lower()
                i += 1
        else:
            i += 1  # something this reader need not understand
    return ParsedColumn(
        name, declared_type, collation, default, generated, not_null, check, references
    )


def _parse_table_constraint(
    sql: str, tokens: list[Token], constraints: list[ParsedConstraint]
) -> str | None:
    """Parse one table constraint into `constraints`; its kind: "primary", "unique",
    "check", "foreign" (None for one this reader does not know)."""
    i = 0
    n = len(tokens)
    while i < n and tokens[i].is_kw("CONSTRAINT"):
        i += 2
    if i >= n:
        return None
    if tokens[i].is_kw("PRIMARY", "UNIQUE"):
        kind = "primary" if tokens[i].is_kw("PRIMARY") else "unique"
        i += 2 if kind == "primary" else 1
        items, _ = _split_top_level(tokens, i, sql)
        # PRIMARY KEY(id AUTOINCREMENT): the keyword closes the list, after the last term.
        autoincrement = bool(items and items[-1] and items[-1][-1].is_kw("AUTOINCREMENT"))
        if autoincrement:
            items[-1] = items[-1][:-1]
        columns = tuple(_parse_indexed_column(sql, item) for item in items)
        constraints.append(
            ParsedConstraint(kind, columns, column_level=False, autoincrement=autoincrement)
        )
        return kind
    if tokens[i].is_kw("CHECK"):
        return "check"
    if tokens[i].is_kw("FOREIGN"):
        return "foreign"
    return None


def _skip_create_prefix(tokens: list[Token], sql: str, what: tuple[str, ...]) -> int:
    i = 0
    n = len(tokens)
    if i < n and tokens[i].is_kw("CREATE"):
        i += 1
    while i < n and not tokens[i].is_kw(*what):
        i += 1  # TEMP, UNIQUE, VIRTUAL...
    if i >= n:
        raise _malformed(sql, f"expected {' or '.join(what)}")
    i += 1
    if i + 2 < n and tokens[i].is_kw("IF") and tokens[i + 1].is_kw("NOT"):
        i += 3  # IF NOT EXISTS
    i += 1  # the name
    if i + 1 < n and tokens[i].text == ".":
        i += 2  # schema.name
    return i


def parse_create_table(sql: str) -> ParsedTable:
    """Parse a CREATE TABLE statement as stored in `sqlite_schema`.

    Raises `CorruptDatabaseError` if it has no column list or cannot be tokenized.
    """
    tokens = tokenize(sql)
    i = _skip_create_prefix(tokens, sql, ("TABLE",))
    items, after = _split_top_level(tokens, i, sql)
    columns: list[ParsedColumn] = []
    constraints: list[ParsedConstraint] = []
    table_constraints: set[str | None] = set()
    for item in items:
        if not item:
            raise _malformed(sql, "empty column definition")
        if item[0].is_kw(*_TABLE_CONSTRAINT_WORDS):
            table_constraints.add(_parse_table_constraint(sql, item, constraints))
        else:
            columns.append(_parse_column(sql, item, constraints))
    without_rowid = False
    strict = False
    rest = tokens[after:]
    for j, tok in enumerate(rest):
        if tok.is_kw("WITHOUT") and j + 1 < len(rest) and rest[j + 1].is_kw("ROWID"):
            without_rowid = True
        elif tok.is_kw("STRICT"):
            strict = True
    if not columns:
        raise _malformed(sql, "no columns")
    return ParsedTable(
        tuple(columns),
        tuple(constraints),
        without_rowid,
        strict,
        table_check="check" in table_constraints,
        table_foreign_key="foreign" in table_constraints,
    )


def parse_create_index(sql: str) -> ParsedIndex:
    """Parse a CREATE INDEX statement as stored in `sqlite_schema`.

    Raises `CorruptDatabaseError` if it has no ON clause or column list.
    """
    tokens = tokenize(sql)
    unique = any(t.is_kw("UNIQUE") for t in tokens[:3])
    i = _skip_create_prefix(tokens, sql, ("INDEX",))
    if i >= len(tokens) or not tokens[i].is_kw("ON") or i + 1 >= len(tokens):
        raise _malformed(sql, "expected ON table")
    table = dequote(tokens[i + 1])
    items, after = _split_top_level(tokens, i + 2, sql)
    columns = tuple(_parse_indexed_column(sql, item) for item in items if item)
    where = None
    if after < len(tokens) and tokens[after].is_kw("WHERE"):
        where = _span(sql, tokens, after + 1, len(tokens))
    if not columns:
        raise _malformed(sql, "no indexed columns")
    return ParsedIndex(unique, table, columns, where)
