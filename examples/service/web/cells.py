"""How a stored value looks on a page: SQLite's types kept visible.

Rules:
- NULL is a marked cell (`kind` "null"), never the text "NULL": a text cell holding
  'NULL' reads the same but is styled as text, and the two differ in the markup.
- Text is given to the template as text; Jinja2's autoescaping makes it safe, whatever it
  holds. Long text is cut on the table page (the row page shows all of it).
- A blob is its size and the hex of its first bytes; a real keeps its shortest
  round-tripping form (so 1.0 stays 1.0, unlike an integer 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Cell", "cell"]

HEX_PREFIX = 16
"""Bytes of a blob shown as hex."""


@dataclass(frozen=True, slots=True)
class Cell:
    """A value as a template shows it."""

    kind: str
    """null, integer, real, text or blob (a CSS class too)."""
    text: str
    title: str = ""
    """The full value, when `text` is cut."""


def cell(value: object, cut: int | None = 200) -> Cell:
    """`value` for display, text longer than `cut` characters shortened (None: never)."""
    if value is None:
        return Cell("null", "NULL", "SQL NULL")
    if isinstance(value, bool | int):
        return Cell("integer", str(int(value)))
    if isinstance(value, float):
        if math.isinf(value):
            return Cell("real", "Infinity" if value > 0 else "-Infinity")
        return Cell("real", repr(value))
    if isinstance(value, bytes):
        shown = value[:HEX_PREFIX].hex(" ")
        more = "…" if len(value) > HEX_PREFIX else ""
        return Cell("blob", f"{len(value)} bytes: {shown}{more}", f"blob of {len(value)} bytes")
    text = str(value)
    if cut is not None and len(text) > cut:
        return Cell("text", text[:cut] + "…", f"{len(text)} characters")
    return Cell("text", text)
