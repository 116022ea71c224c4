"""How rows become JSON, NDJSON and CSV: the formats live in `bridge.storage` (the
command-line tool shares them); see its docstring for the rules."""

from bridge.storage import TableShape, decode_cell, dumps, encode_cell, encode_row

__all__ = ["TableShape", "decode_cell", "dumps", "encode_cell", "encode_row"]
