"""I/O backends that need no event loop, and the interfaces every backend implements."""

from core.io.backend import Buffer, File, IOBackend, OpenFlags, StrPath
from core.io.memory import MemoryFile, MemoryIO, MemoryYieldIO
from core.io.unix import UnixFile, UnixIO
from core.io.uring import UringFile, UringIO

__all__ = [
    "Buffer",
    "File",
    "IOBackend",
    "MemoryFile",
    "MemoryIO",
    "MemoryYieldIO",
    "OpenFlags",
    "StrPath",
    "UnixFile",
    "UnixIO",
    "UringFile",
    "UringIO",
]
