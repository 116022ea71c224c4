"""The arguments of `open()`: checked as CPython checks them, resolved into `OpenOptions`.

Theory of operation:
- Every check here runs before any I/O, in the order `io.open` runs it, and raises the same
  exception type with the same message (`TypeError` for a wrong type, `ValueError` for a bad
  mode or combination, `LookupError` for an unknown or non-text encoding). One deliberate
  difference: CPython opens (and for "w" truncates) the file before it looks the encoding up;
  we look it up first, so a bad encoding leaves the file system untouched.
- `OpenOptions` is the resolved request: which of create/read/write/append, whether "+", binary
  or text, the buffer size, and for text the encoding, errors and newline. `raw_mode` is what
  CPython's `FileIO.mode` reports (and so what a binary file object's `mode` is); a text file
  reports the mode string it was given.
- The core backends open files by path with `OpenFlags`; "w" truncation is an I/O of its own
  (see `core.files.opening`), and "a" and "x" map to `OpenFlags.APPEND` and `EXCLUSIVE`.
"""

from __future__ import annotations

import codecs
import io
import locale
import operator
import os
import warnings
from dataclasses import dataclass

from core.files.errors import UnsupportedFileOperation
from core.io.backend import OpenFlags

__all__ = ["NEWLINES", "OpenOptions", "parse_open_arguments"]

NEWLINES: tuple[str | None, ...] = (None, "", "\n", "\r", "\r\n")
"""The values `newline` may take."""

_MODE_CHARS = frozenset("axrwb+t")


@dataclass(frozen=True, slots=True)
class OpenOptions:
    """A checked `open()` request."""

    path: str
    """The path handed to the backend."""
    name: str | bytes
    """What the file object's `name` reports: the path as given (a `PathLike` becomes `str`)."""
    mode: str
    """The mode string as given."""
    creating: bool
    reading: bool
    writing: bool
    appending: bool
    updating: bool
    binary: bool
    buffering: int
    """0 for unbuffered (binary only), -1 for the default size, else the buffer size."""
    line_buffering: bool
    encoding: str | None
    """The resolved text encoding (a name `codecs.lookup` knows); `None` in binary mode."""
    errors: str | None
    newline: str | None

    @property
    def readable(self) -> bool:
        """Whether reads are allowed."""
        return self.reading or self.updating

    @property
    def writable(self) -> bool:
        """Whether writes are allowed."""
        return self.writing or self.appending or self.creating or self.updating

    @property
    def raw_mode(self) -> str:
        """The mode CPython's `FileIO` reports: 'rb', 'rb+', 'wb', 'ab', 'ab+', 'xb', 'xb+'."""
        if self.creating:
            return "xb+" if self.readable else "xb"
        if self.appending:
            return "ab+" if self.readable else "ab"
        if self.readable:
            return "rb+" if self.writable else "rb"
        return "wb"

    @property
    def flags(self) -> OpenFlags:
        """The `OpenFlags` for the backend's `open_file`."""
        flags = OpenFlags.NONE
        if not self.writable:
            flags |= OpenFlags.READ_ONLY
        if self.creating or self.writing or self.appending:
            flags |= OpenFlags.CREATE
        if self.creating:
            flags |= OpenFlags.EXCLUSIVE
        if self.appending:
            flags |= OpenFlags.APPEND
        return flags

    @property
    def truncate(self) -> bool:
        """Whether opening empties the file ("w" modes)."""
        return self.writing


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_optional_str(value: object, what: str) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"open() argument '{what}' must be str or None, not {_type_name(value)}")


def parse_open_arguments(
    file: object,
    mode: object = "r",
    buffering: object = -1,
    encoding: object = None,
    errors: object = None,
    newline: object = None,
    closefd: object = True,
    opener: object = None,
) -> OpenOptions:
    """Check `open()`'s arguments as CPython does and resolve them.

    Raises `TypeError` (a wrong type), `ValueError` (a bad mode, a binary mode with text
    arguments, unbuffered text, `closefd=False` with a path), `LookupError` (an unknown or
    non-text encoding), and `UnsupportedFileOperation` for what the core cannot open: a file
    descriptor instead of a path, or a custom `opener`. Warns `RuntimeWarning` for
    `buffering=1` in binary mode, as CPython does.
    """
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {_type_name(mode)}")
    buffering = operator.index(buffering)  # type: ignore[arg-type]
    _check_optional_str(encoding, "encoding")
    _check_optional_str(errors, "errors")
    _check_optional_str(newline, "newline")
    assert encoding is None or isinstance(encoding, str)
    assert errors is None or isinstance(errors, str)
    assert newline is None or isinstance(newline, str)
    if isinstance(file, int) and not isinstance(file, bool):
        raise UnsupportedFileOperation(
            "opening a file descriptor is not supported here; pass a path"
        )
    if not isinstance(file, (str, bytes, os.PathLike)):
        raise TypeError(f"expected str, bytes or os.PathLike object, not {_type_name(file)}")
    name = os.fspath(file)
    path = os.fsdecode(name)

    chars = set(mode)
    if chars - _MODE_CHARS or len(mode) > len(chars):
        raise ValueError(f"invalid mode: {mode!r}")
    creating = "x" in chars
    reading = "r" in chars
    writing = "w" in chars
    appending = "a" in chars
    updating = "+" in chars
    text = "t" in chars
    binary = "b" in chars
    if text and binary:
        raise ValueError("can't have text and binary mode at once")
    if creating + reading + writing + appending > 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    if binary and buffering == 1:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, "
            "the default buffer size will be used",
            RuntimeWarning,
            stacklevel=3,
        )
    if not (creating or reading or writing or appending):
        raise ValueError(
            "Must have exactly one of create/read/write/append mode and at most one plus"
        )
    if not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    if opener is not None:
        raise UnsupportedFileOperation("a custom opener is not supported here")

    line_buffering = buffering == 1
    if buffering == 1 or buffering < 0:
        buffering = -1
    if buffering == 0 and not binary:
        raise ValueError("can't have unbuffered text I/O")

    resolved: str | None = None
    if not binary:
        if newline not in NEWLINES:
            raise ValueError(f"illegal newline value: {newline}")
        resolved = io.text_encoding(encoding, 3)
        if resolved == "locale":
            resolved = locale.getpreferredencoding(False)
        if not codecs.lookup(resolved)._is_text_encoding:
            raise LookupError(
                f"{resolved!r} is not a text encoding; use codecs.open() to handle arbitrary codecs"
            )
        if errors is None:
            errors = "strict"

    return OpenOptions(
        path=path,
        name=name,
        mode=mode,
        creating=creating,
        reading=reading,
        writing=writing,
        appending=appending,
        updating=updating,
        binary=binary,
        buffering=buffering,
        line_buffering=line_buffering and not binary,
        encoding=resolved,
        errors=errors if not binary else None,
        newline=newline,
    )
