"""Small real operations written as explicit state machines: useful on their own, and the
fixtures the drivers, the simulator and the benchmarks run."""

from core.ops.copy import CopyFile
from core.ops.read import DEFAULT_CHUNK_SIZE, ReadRange, ReadWholeFile
from core.ops.write import WriteBuffers

__all__ = ["DEFAULT_CHUNK_SIZE", "CopyFile", "ReadRange", "ReadWholeFile", "WriteBuffers"]
