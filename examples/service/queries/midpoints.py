"""Values between values, in SQLite's sort order: the probes of a backward walk.

The storage engine's cursors only move forward. A walk backward (a descending sort, or the
page before this one) therefore looks for a lower bound `x` close below where it stands,
reads forward from `x`, and keeps the last rows (`sorting.py`). These helpers choose the
`x` to try: a value `below` a known one (galloping down), and a value `between` two known
ones (bisecting).

Rules:
- Values are what SQLite stores: int, float, str, bytes. They sort numbers first, then
  text, then blobs; text under the column's collation (`key`, from
  `core.storage.collation_key`).
- A candidate is only returned if `key` confirms it is strictly between (or below): the
  arithmetic may be clumsy for odd texts (an RTRIM collation, say), never wrong. None means
  "no candidate found": the caller then reads forward from the last bound it knows, with
  its work capped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BOTTOM", "below", "between"]

Key = Callable[[Any], Any]
"""A collation's sort key: values compare as their keys do."""

BOTTOM = object()
"""What `below` returns once there is nothing left to gallop to: the start of the order."""

_MIN_INT = -(1 << 63)
_TOP_INT = 1 << 62
_TEXT_TOPS = ("\x7f", "\uffff", "\U0010ffff")
"""Texts above most texts, to bisect down from when a text's upper neighbour is a blob."""


def below(value: object, attempt: int, step: int, key: Key) -> object:
    """A value under `value` to probe from: `step` lower at the first `attempt` (the rows
    are often dense, as rowids are), then by orders of magnitude; `BOTTOM` when nothing
    below is worth a probe."""
    if isinstance(value, bool) or value is None:
        return BOTTOM
    if isinstance(value, int | float):
        if value == float("inf"):
            return _TOP_INT
        if value == float("-inf"):
            return BOTTOM
        if attempt == 0:
            candidate: int | float = value - step
        elif value > 16 * step:
            candidate = value // 16
        elif value > -step:
            candidate = value - 16 * step
        else:
            candidate = value * 16
        return candidate if candidate >= _MIN_INT else float("-inf")
    if isinstance(value, str | bytes):
        # A prefix sorts before the value: gallop down by shortening it (one character,
        # then half of what is left), then to the lowest text or blob there is. Below ""
        # are the numbers; below b"" the texts.
        empty = value[:0]
        keep = len(value) - 1 if attempt == 0 else len(value) // 2
        while keep > 0:
            prefix = value[:keep]
            if key(prefix) < key(value):
                return prefix
            keep -= 1
        if key(empty) < key(value):
            return empty
        return float("inf") if isinstance(value, str) else ""
    return BOTTOM


def between(lo: object, hi: object, key: Key) -> object | None:
    """A value strictly between `lo` and `hi` (lo < hi) under `key`, or None."""
    folded = isinstance(lo, str) and isinstance(hi, str) and key("A") == key("a")
    candidate = _midpoint(lo, hi, folded)
    if candidate is None:
        return None
    try:
        if key(lo) < key(candidate) < key(hi):
            return candidate
    except TypeError:
        return None
    if isinstance(candidate, str):
        lowered = candidate.lower()
        if key(lo) < key(lowered) < key(hi):
            return lowered
    return None


def _midpoint(lo: object, hi: object, folded: bool) -> object | None:
    numbers = (int, float)
    if isinstance(lo, numbers) and isinstance(hi, numbers):
        return _mid_number(lo, hi)
    if isinstance(lo, numbers) and isinstance(hi, str):
        return "" if hi != "" else _mid_number(lo, float("inf"))
    if isinstance(lo, str) and isinstance(hi, str):
        return _mid_text(lo, hi, folded)
    if isinstance(lo, numbers) and isinstance(hi, bytes):
        return ""
    if isinstance(lo, str) and isinstance(hi, bytes):
        return next((top for top in _TEXT_TOPS if lo < top), None)
    if isinstance(lo, bytes) and isinstance(hi, bytes):
        return _mid_digits(list(lo), list(hi), 256, bytes)
    return None


def _mid_number(lo: float, hi: float) -> float | None:
    """Integers where both ends are whole (an INTEGER column's bisection ends on adjacent
    values instead of halving the gap between them forever)."""
    if lo == float("-inf"):
        if hi == float("inf"):
            return 0
        return hi - max(1, abs(hi)) if float(hi).is_integer() else hi - max(1.0, abs(hi))
    if hi == float("inf"):
        return lo + max(1, abs(lo)) if lo < _TOP_INT else None
    if float(lo).is_integer() and float(hi).is_integer():
        a, b = int(lo), int(hi)
        return (a + b) // 2 if b - a > 1 else None
    mid = lo + (hi - lo) / 2
    return mid if lo < mid < hi else None


def _mid_text(lo: str, hi: str, folded: bool) -> str | None:
    """A text between two texts. Under a case-folding collation (NOCASE) the texts are
    folded first and the midpoint is taken in an alphabet without the upper-case ASCII
    letters, which that collation never sees."""
    if folded:
        lo, hi = lo.translate(_FOLD), hi.translate(_FOLD)
    a = [_digit(ord(c), folded) for c in lo]
    b = [_digit(ord(c), folded) for c in hi]
    # Digits in a base just above the largest one seen: an ASCII text bisects seven bits
    # at a time, not twenty-one.
    base = max(0x80, *a, *b) + 1
    found = _mid_digits(a, b, base, lambda digits: _chars(digits, folded))
    assert found is None or isinstance(found, str)
    return found


_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER_A = ord("A")
_LETTERS = 26


def _digit(code: int, folded: bool) -> int:
    if folded and code > ord("Z"):
        return code - _LETTERS
    return code


def _chars(digits: list[int], folded: bool) -> str:
    out = []
    for d in digits:
        code = d + _LETTERS if folded and d >= _UPPER_A else d
        # Surrogates cannot be stored as UTF-8: step over them.
        out.append(chr(code if not 0xD800 <= code <= 0xDFFF else 0xE000))
    return "".join(out)


def _mid_digits(
    lo: list[int], hi: list[int], base: int, build: Callable[[list[int]], object]
) -> object | None:
    """The midpoint of two digit strings read as fractions (`0.d1 d2 ...` in `base`):
    lexicographic order is the order of those fractions."""
    width = max(len(lo), len(hi)) + 1
    a = _number(lo, width, base)
    b = _number(hi, width, base)
    if b - a < 2:
        width += 1
        a, b = a * base, b * base
    mid = (a + b) // 2
    digits = []
    for _ in range(width):
        mid, digit = divmod(mid, base)
        digits.append(digit)
    digits.reverse()
    while digits and digits[-1] == 0:
        digits.pop()
    return build(digits)


def _number(digits: list[int], width: int, base: int) -> int:
    value = 0
    for i in range(width):
        value = value * base + (digits[i] if i < len(digits) else 0)
    return value
