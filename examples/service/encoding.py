"""How rows become JSON, NDJSON and CSV: the formats live in `bridge.storage` (the
command-line tool shares them); see its docstring for the rules.

Here, for the service's bodies: a value already encoded by `dumps` (`Encoded`: a page's
rows, encoded once while their size was counted, `queries/answer_size.py`) is spliced
into its body as it is by `dumps_body`, never encoded twice. The body is byte for byte
what `dumps` writes for the same dict with the values decoded: JSON has no context, so
the text of a value does not depend on where it stands.
"""

from collections.abc import Mapping

from bridge.storage import TableShape, decode_cell, dumps, encode_cell, encode_row

__all__ = [
    "Encoded",
    "TableShape",
    "decode_cell",
    "dumps",
    "dumps_body",
    "encode_cell",
    "encode_row",
]


class Encoded(bytes):
    """JSON text written by `dumps`, to be put in a body as it is (`dumps_body`)."""

    __slots__ = ()


def dumps_body(payload: Mapping[str, object]) -> bytes:
    """`dumps(payload)`, where values that are `Encoded` are spliced in as they are: each
    run of the other values is encoded in one `dumps` call."""
    if not any(type(v) is Encoded for v in payload.values()):
        return dumps(payload)
    parts: list[bytes] = []
    run: dict[str, object] = {}
    for key, value in payload.items():
        if type(value) is Encoded:
            if run:
                parts.append(dumps(run)[1:-1])
                run = {}
            parts.append(dumps(key) + b":" + value)
        else:
            run[key] = value
    if run:
        parts.append(dumps(run)[1:-1])
    return b"{" + b",".join(parts) + b"}"
