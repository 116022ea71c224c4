"""SQLite's comparison order, collations and column affinity, as sort keys (Turso
`translate/collate.rs` and `types.rs` compare; sqlite.org/datatype3.html sections 3-7).

Theory of operation:
- SQLite compares index records field by field: NULL < numbers < text < blobs; numbers by
  value (an integer and a float compare exactly, -0.0 equals 0); text by the field's
  collation; blobs with memcmp. Instead of a comparison function this module builds, per
  field, a *sort key* whose Python ordering is SQLite's, so a page's keys can be computed
  once, cached, and bisected. `KeyPlan.key(record)` is the tuple of a record's field keys.
- Collations: BINARY is memcmp of the text *in the database encoding*. For UTF-8 that is
  code-point order, i.e. Python's `str` order; for UTF-16 databases the key is the encoded
  bytes, since SQLite registers BINARY for each encoding. NOCASE and RTRIM exist only for
  UTF-8 in SQLite, so they compare the UTF-8 form: NOCASE folds ASCII A-Z only and, like
  `sqlite3StrNICmp`, stops at a NUL in the left string (see `_nocase_key`); RTRIM ignores
  trailing spaces.
- A DESC field reverses its key with `_Desc`. `MAX_KEY` sorts after every field key, so
  `probe + (MAX_KEY,)` finds the first entry *after* every entry starting with `probe`.
- Affinity: a declared column type maps to an affinity by SQLite's substring rules, and a
  value compared with a column first gets that column's affinity (numbers become text for
  TEXT columns, numeric-looking text becomes a number for NUMERIC, INTEGER and REAL ones),
  which is what SQLite does to a bound parameter in `WHERE column = ?`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from typing import Final

from core.storage.errors import SchemaError
from core.storage.record import Value

__all__ = [
    "KNOWN_COLLATIONS",
    "MAX_KEY",
    "Affinity",
    "FieldKey",
    "KeyPlan",
    "affinity_of",
    "apply_affinity",
    "field_key",
    "real_to_text",
    "text_to_numeric",
]

KNOWN_COLLATIONS: Final = ("BINARY", "NOCASE", "RTRIM")

FieldKey = Callable[[Value], tuple[object, ...]]
"""Turns one field value into a short tuple whose ordering is SQLite's for that field."""

_NULL_KEY: Final = (0,)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class _MaxKey:
    """Sorts after every field key (used to seek past all entries with a given prefix)."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return other is self

    def __gt__(self, other: object) -> bool:
        return other is not self

    def __ge__(self, other: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return 0x5EED

    def __repr__(self) -> str:
        return "MAX_KEY"


MAX_KEY: Final = _MaxKey()


class _Desc:
    """A field key in reverse order (a DESC index column)."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key

    def __lt__(self, other: object) -> bool:
        if type(other) is _Desc:
            return bool(other.key < self.key)  # type: ignore[operator]
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if type(other) is _Desc:
            return bool(self.key < other.key)  # type: ignore[operator]
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if type(other) is _Desc:
            return not bool(self.key < other.key)  # type: ignore[operator]
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if type(other) is _Desc:
            return not bool(other.key < self.key)  # type: ignore[operator]
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        return type(other) is _Desc and bool(self.key == other.key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"DESC({self.key!r})"


def _binary_utf8(v: Value) -> tuple[object, ...]:
    if v is None:
        return _NULL_KEY
    t = type(v)
    if t is int or t is float:
        return (1, v)
    if t is str:
        return (2, v)
    return (3, v)


def _binary_encoded(codec: str) -> FieldKey:
    def key(v: Value) -> tuple[object, ...]:
        if v is None:
            return _NULL_KEY
        t = type(v)
        if t is int or t is float:
            return (1, v)
        if t is str:
            return (2, v.encode(codec, "surrogatepass"))  # type: ignore[union-attr]
        return (3, v)

    return key


def _nocase_key(s: str) -> tuple[int, str, int]:
    # sqlite3StrNICmp folds ASCII letters and stops where the left string has a NUL; if
    # the strings agree up to there, the byte lengths decide. Cutting after the first NUL
    # and adding the UTF-8 length (only then) reproduces that as a plain sort key.
    cut = s.find("\x00")
    if cut < 0:
        return (2, s.translate(_ASCII_LOWER), 0)
    return (2, s[: cut + 1].translate(_ASCII_LOWER), len(s.encode("utf-8", "surrogatepass")))


def _nocase(v: Value) -> tuple[object, ...]:
    if type(v) is str:
        return _nocase_key(v)
    return _binary_utf8(v)


def _rtrim(v: Value) -> tuple[object, ...]:
    if type(v) is str:
        return (2, v.rstrip(" "))
    return _binary_utf8(v)


def field_key(collation: str, codec: str, descending: bool = False) -> FieldKey:
    """The sort-key function of one field: Python orders its keys as SQLite orders the
    field's values under `collation` (any case) in a database whose text encoding is
    `codec`, reversed if `descending`; two values are equal under it exactly when their
    keys are. Exported as `core.storage.collation_key`.

    Raises `SchemaError` for a collation other than BINARY, NOCASE and RTRIM.
    """
    name = collation.upper()
    if name == "BINARY":
        base = _binary_utf8 if codec == "utf-8" else _binary_encoded(codec)
    elif name == "NOCASE":
        base = _nocase
    elif name == "RTRIM":
        base = _rtrim
    else:
        raise SchemaError(
            f"collation {collation!r} is not built in (only BINARY, NOCASE and RTRIM are)"
        )
    if not descending:
        return base

    def desc(v: Value) -> tuple[object, ...]:
        return (_Desc(base(v)),)

    return desc


class KeyPlan:
    """How to build the sort key of an index record: one `FieldKey` per leading field;
    fields beyond them compare as BINARY (the rowid of a rowid table's index)."""

    __slots__ = ("fields", "limit", "tail")

    def __init__(
        self, fields: Sequence[FieldKey], tail: FieldKey = _binary_utf8, limit: int | None = None
    ) -> None:
        self.fields = tuple(fields)
        self.tail = tail
        self.limit = limit
        """Compare only this many leading fields (a WITHOUT ROWID table's key); None: all."""

    def key(self, values: Sequence[Value]) -> tuple[object, ...]:
        """The sort key of a decoded record: the field keys laid end to end in one flat
        tuple (comparing flat tuples is what makes bisecting a page cheap; it orders like
        the field-by-field comparison because a field's key has the same length whenever
        the fields being compared are equal so far)."""
        if self.limit is not None:
            values = values[: self.limit]
        fields = self.fields
        n = len(fields)
        key: tuple[object, ...] = ()
        for i, v in enumerate(values):
            key += (fields[i] if i < n else self.tail)(v)
        return key

    def probe(self, values: Sequence[Value]) -> tuple[object, ...]:
        """The sort key of a search prefix (at most as many values as the plan has fields)."""
        key: tuple[object, ...] = ()
        for f, v in zip(self.fields, values, strict=False):
            key += f(v)
        return key


class Affinity(enum.Enum):
    """A column's type affinity."""

    BLOB = "BLOB"
    TEXT = "TEXT"
    NUMERIC = "NUMERIC"
    INTEGER = "INTEGER"
    REAL = "REAL"


def affinity_of(declared_type: str, *, strict: bool = False) -> Affinity:
    """The affinity of a declared column type, by SQLite's rules (section 3.1 of
    datatype3.html; in a STRICT table, ANY has no affinity)."""
    t = declared_type.upper()
    if "INT" in t:
        return Affinity.INTEGER
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return Affinity.TEXT
    if "BLOB" in t or not t.strip():
        return Affinity.BLOB
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return Affinity.REAL
    if strict and t.strip() == "ANY":
        return Affinity.BLOB
    return Affinity.NUMERIC


_SPACE: Final = "[ \t\n\f\r\v]*"
# Only ASCII digits count (Python's \d and int() would take any Unicode digit).
_NUMERIC_TEXT: Final = re.compile(
    _SPACE + r"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)" + _SPACE
)
_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1


def text_to_numeric(text: str) -> int | float | None:
    """The number a well-formed numeric text stands for (as NUMERIC affinity converts it:
    an integer when exact, else a float), or None if the text is not a number."""
    m = _NUMERIC_TEXT.fullmatch(text)
    if m is None:
        return None
    literal = m.group(1)
    if _INTEGER_TEXT.fullmatch(literal):
        # More than 19 significant digits cannot fit 64 bits; checking first also keeps
        # int() away from Python's limit on converting long digit strings.
        digits = literal.lstrip("+-").lstrip("0") or "0"
        if len(digits) > 19:
            return float(literal)
        value = -int(digits) if literal[0] == "-" else int(digits)
        if _I64_MIN <= value <= _I64_MAX:
            return value
        return float(literal)
    f = float(literal)
    if f.is_integer() and -9.2233720368547758e18 < f < 9.2233720368547758e18:
        return int(f)
    return f


def real_to_text(x: float) -> str:
    """A float as SQLite renders it as text (`%!.15g`: at least one decimal digit)."""
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0.0"  # SQLite drops the sign of -0.0 here
    s = f"{x:.15g}"
    if "e" in s:
        mantissa, exponent = s.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{exponent}"
    if "." not in s:
        s += ".0"
    return s


def apply_affinity(value: object, affinity: Affinity | None) -> Value:
    """`value` converted as SQLite converts an operand compared with a column of this
    affinity (None: no conversion). Booleans count as integers.

    Raises `SchemaError` for a value SQLite cannot hold (only None, int, float, str,
    bytes, bytearray, memoryview and bool are accepted).
    """
    if value is None:
        return None
    if type(value) is bool:
        value = int(value)
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, (int, float, str, bytes)):
        raise SchemaError(
            f"a {type(value).__name__} is not a value SQLite can hold (only None, int, float, "
            "str, bytes, bytearray, memoryview and bool are)"
        )
    if isinstance(value, float) and value != value:  # noqa: PLR0124 (NaN)
        return None  # SQLite binds NaN as NULL
    if isinstance(value, int) and not _I64_MIN <= value <= _I64_MAX:
        raise SchemaError(f"integer {value} does not fit in 64 bits")
    if affinity is None or affinity is Affinity.BLOB:
        return value
    if affinity is Affinity.TEXT:
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return real_to_text(value)
        return value
    if isinstance(value, str):
        number = text_to_numeric(value)
        return value if number is None else number
    return value
