"""One writer per archive, with operating-system locks that die with their process.

A writer holds an exclusive lock for as long as it is open:

* HDF5: an open-file-description lock (Linux ``F_OFD_SETLK``) on the archive file
  itself. It is independent of the ``flock`` locks HDF5 takes, so readers (SWMR
  included) open the file as before; elsewhere, a POSIX ``lockf`` lock.
* Zarr: ``flock`` on the store's directory (nothing else in the store is stable:
  every metadata document is replaced, not rewritten, on each update).

The kernel releases both when the last descriptor of the lock's open file goes
away, so a lock never outlives its process (a SIGKILL included). One caveat: a child
forked while the writer is open (a DataLoader worker) shares the descriptor, and
the lock lives until that child exits too.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, see lock_file
    fcntl = None  # type: ignore[assignment]

__all__ = ["file_locked_elsewhere", "lock_directory", "lock_file", "write_atomically"]

#: errno values that mean "another process holds the lock".
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_HAVE_OFD = fcntl is not None and hasattr(fcntl, "F_OFD_SETLK") and sys.platform == "linux"


def _flock_struct(lock_type: int) -> bytes:
    """A ``struct flock`` locking the whole file (Linux layout, 32 bytes)."""
    return struct.pack("hhqqi4x", lock_type, os.SEEK_SET, 0, 0, 0)


def lock_file(fd: int) -> bool:
    """Take an exclusive lock on the file open as ``fd`` (for writing); False if held.

    Raises ``OSError`` if the file system cannot lock at all.
    """
    if fcntl is None:  # pragma: no cover
        return True
    try:
        if _HAVE_OFD:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK))
        else:  # pragma: no cover - not Linux
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def file_locked_elsewhere(path: str) -> bool:
    """Whether another open file holds the lock of :func:`lock_file` on ``path``.

    Only looks (``F_OFD_GETLK``): takes nothing. False where it cannot tell.
    """
    if not _HAVE_OFD:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock_struct(fcntl.F_WRLCK))
        return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK
    except OSError:
        return False
    finally:
        os.close(fd)


def lock_directory(fd: int) -> bool:
    """Take an exclusive ``flock`` on the directory open as ``fd``; False if held."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not replaced or removed)."""
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def write_atomically(path: str, data: Any) -> None:
    """Write ``data`` (bytes-like) to ``path`` by writing a temporary file, then renaming it.

    A reader, or a process killed at any moment, sees the old content or the new one,
    never a mix. The temporary name starts with ``.``: readers ignore such names.
    """
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        try:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
