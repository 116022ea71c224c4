"""Python-compatible file objects on the core: `open()`'s arguments, buffered binary files
and text files whose every call is an operation (a state machine), run by `core.block` or
`bridge.drive`. `bridge.open` is the aiofiles-compatible face of these."""

from core.files.buffered import BufferedFile
from core.files.call import FileCall, FileLock
from core.files.errors import (
    ClosedFileError,
    FileOSError,
    UnsupportedFileOperation,
    to_os_error,
)
from core.files.mode import OpenOptions, parse_open_arguments
from core.files.opening import OpenFile, default_buffer_size
from core.files.raw import RawFile
from core.files.text import TextFile

__all__ = [
    "BufferedFile",
    "ClosedFileError",
    "FileCall",
    "FileLock",
    "FileOSError",
    "OpenFile",
    "OpenOptions",
    "RawFile",
    "TextFile",
    "UnsupportedFileOperation",
    "default_buffer_size",
    "parse_open_arguments",
    "to_os_error",
]
