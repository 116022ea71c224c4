"""SQLite's file locks, taken the way a reading connection takes them (Turso
`io/unix.rs` locking; SQLite `os_unix.c` `unixLock`, sqlite.org/lockingv3.html).

Rules:
- SQLite locks byte ranges of the database file far beyond any data: PENDING at
  0x40000000, RESERVED the byte after, SHARED the 510 bytes after that. A reader takes
  SHARED by read-locking PENDING, then the SHARED range, then releasing PENDING, so a
  writer waiting for EXCLUSIVE (holding PENDING) keeps new readers out. While any reader
  holds SHARED no writer can get EXCLUSIVE, so the file cannot change under the read.
- On Linux the locks are open-file-description locks (`F_OFD_SETLK`): they belong to this
  open file, not the process, so closing some other descriptor of the same file (as a
  sqlite3 connection in the same process does) does not drop them, and they conflict with
  SQLite's own POSIX locks even within this process. On macOS, which has no OFD locks,
  classic `F_SETLK` locks are used; caveats: they are per process (so they neither conflict
  with nor protect against a sqlite3 connection in the same process) and closing any
  descriptor of the file in the process releases them.
- Every call is non-blocking (`F_*SETLK`, never `F_*SETLKW`): a conflict raises
  `DatabaseBusyError` at once; the core never waits on a lock.
- The calls are synchronous and take microseconds, so operations make them at their start
  and end rather than through completions.
- A writer takes SQLite's EXCLUSIVE lock (write locks on PENDING, RESERVED and the SHARED
  range) for the whole write transaction: no other connection, ours or SQLite's, reads or
  writes the file meanwhile, so nothing can read the WAL while it is appended to or reset
  without the `-shm` protocol. It also refuses while some SQLite connection has the
  database open in WAL mode (`wal_connections_open`: such a connection holds a lock on the
  DMS byte of the `-shm` file, and its cached wal-index would go stale under our writes).
"""

from __future__ import annotations

import errno
import os
import struct
import sys

if sys.platform == "win32":  # pragma: no cover - the package states it needs POSIX
    raise ImportError(
        "core.storage needs POSIX fcntl byte-range locks (Linux or macOS); Windows is not supported"
    )

import fcntl
from typing import Final

from core.storage.errors import DatabaseBusyError

__all__ = [
    "PENDING_BYTE",
    "RESERVED_BYTE",
    "SHARED_FIRST",
    "SHARED_SIZE",
    "FileLock",
    "wal_connections_open",
]

PENDING_BYTE: Final = 0x40000000
RESERVED_BYTE: Final = PENDING_BYTE + 1
SHARED_FIRST: Final = PENDING_BYTE + 2
SHARED_SIZE: Final = 510

_F_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_F_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None)

if sys.platform == "darwin":  # struct flock { off_t start, len; pid_t pid; short type, whence; }

    def _pack(kind: int, start: int, length: int) -> bytes:
        return struct.pack("qqihh", start, length, 0, kind, os.SEEK_SET)

    def _unpack_type(data: bytes) -> int:
        return int(struct.unpack("qqihh", data[: struct.calcsize("qqihh")])[3])

else:  # Linux: struct flock { short type, whence; off_t start, len; pid_t pid; } + padding

    def _pack(kind: int, start: int, length: int) -> bytes:
        return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)

    def _unpack_type(data: bytes) -> int:
        return int(struct.unpack("hhqqi", data[: struct.calcsize("hhqqi")])[0])


# The four requests a reader makes, packed once.
_READ_PENDING: Final = _pack(fcntl.F_RDLCK, PENDING_BYTE, 1)
_READ_SHARED: Final = _pack(fcntl.F_RDLCK, SHARED_FIRST, SHARED_SIZE)
_RELEASE_PENDING: Final = _pack(fcntl.F_UNLCK, PENDING_BYTE, 1)
_RELEASE_ALL: Final = _pack(fcntl.F_UNLCK, PENDING_BYTE, 2 + SHARED_SIZE)
_WRITE_ALL: Final = _pack(fcntl.F_WRLCK, PENDING_BYTE, 2 + SHARED_SIZE)
_RELEASE_WRITER: Final = _pack(fcntl.F_UNLCK, PENDING_BYTE, 2)

_SHM_DMS_BYTE: Final = 128
"""The "dead man switch" byte of the -shm file that every open WAL connection locks."""


class FileLock:
    """SQLite-compatible SHARED locking of one open database file descriptor."""

    __slots__ = ("_get", "_set", "fd", "ofd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.ofd = _F_OFD_SETLK is not None and _F_OFD_GETLK is not None
        self._set = _F_OFD_SETLK if _F_OFD_SETLK is not None else fcntl.F_SETLK
        self._get = _F_OFD_GETLK if _F_OFD_GETLK is not None else fcntl.F_GETLK

    def _request(self, packed: bytes) -> bool:
        try:
            fcntl.fcntl(self.fd, self._set, packed)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            if exc.errno == errno.EINVAL and self.ofd:
                # A file system without OFD locks: fall back to process locks.
                self.ofd = False
                self._set = fcntl.F_SETLK
                self._get = fcntl.F_GETLK
                return self._request(packed)
            raise DatabaseBusyError(f"cannot lock {self.path!r}: {exc.strerror}") from exc
        return True

    def lock_shared(self) -> None:
        """Take SQLite's SHARED lock.

        Raises `DatabaseBusyError` if a writer holds PENDING or EXCLUSIVE.
        """
        if not self._request(_READ_PENDING):
            raise DatabaseBusyError(
                f"database {self.path!r} is locked: a writer is committing (PENDING lock held)"
            )
        try:
            if not self._request(_READ_SHARED):
                raise DatabaseBusyError(
                    f"database {self.path!r} is locked: a writer holds the EXCLUSIVE lock"
                )
        finally:
            self._request(_RELEASE_PENDING)

    def lock_exclusive(self) -> None:
        """Take SQLite's EXCLUSIVE lock (this file's own SHARED lock is upgraded).

        Raises `DatabaseBusyError` if any other connection holds any lock on the file.
        """
        if not self._request(_WRITE_ALL):
            raise DatabaseBusyError(
                f"database {self.path!r} is locked: another connection is reading or writing it"
            )

    def downgrade_to_shared(self) -> None:
        """Turn the EXCLUSIVE lock back into a SHARED one (for readers still running)."""
        self._request(_READ_SHARED)
        self._request(_RELEASE_WRITER)

    def unlock(self) -> None:
        """Release every lock this file holds (a no-op if none)."""
        self._request(_RELEASE_ALL)

    def reserved_elsewhere(self) -> bool:
        """True if some other connection holds RESERVED (or more): a writer is active."""
        try:
            out = fcntl.fcntl(self.fd, self._get, _pack(fcntl.F_WRLCK, RESERVED_BYTE, 1))
        except OSError:
            return True  # cannot tell: assume a writer, so a journal is not called hot
        return _unpack_type(out) != fcntl.F_UNLCK

    def holder_kind(self, start: int, length: int) -> int:
        """The type of a lock another connection holds on the range (F_UNLCK if none)."""
        out = fcntl.fcntl(self.fd, self._get, _pack(fcntl.F_WRLCK, start, length))
        return _unpack_type(out)


def wal_connections_open(path: str) -> bool:
    """True if some connection holds a lock on the DMS byte of `path`'s `-shm` file: a
    SQLite connection has the database open in WAL mode. False when there is no `-shm`."""
    shm = path + "-shm"
    if not os.access(shm, os.F_OK):  # the common case, without raising and catching
        return False
    try:
        fd = os.open(shm, os.O_RDONLY)
    except OSError:
        return False
    try:
        probe = FileLock(fd, shm)
        try:
            return probe.holder_kind(_SHM_DMS_BYTE, 1) != fcntl.F_UNLCK
        except OSError:
            return True  # cannot tell: assume a connection
    finally:
        os.close(fd)
