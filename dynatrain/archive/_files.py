"""File primitives of the writer: one-writer locks and atomic replacement.

**Locks.** One writer per archive, with operating-system locks that die with their
process. A writer holds an exclusive lock for as long as it is open:

* HDF5: an open-file-description lock (Linux ``F_OFD_SETLK``) on the archive file
  itself. It is independent of the ``flock`` locks HDF5 takes, so readers (SWMR
  included) open the file as before; elsewhere, a POSIX ``lockf`` lock.
* Zarr: ``flock`` on the store's directory (nothing else in the store is stable:
  every metadata document is replaced, not rewritten, on each update).

The kernel releases both when the last descriptor of the lock's open file goes
away, so a lock never outlives its process (a SIGKILL included). One caveat: a child
forked while the writer is open (a DataLoader worker) shares the descriptor, and
the lock lives until that child exits too.

**Atomic replacement.** A Zarr chunk or metadata document is replaced by writing a
temporary file and renaming it over the old one, so that a reader or a killed
process sees the old content or the new, never a mix. On Linux file systems such as
ext4, renaming over a file that holds data forces the new file's data out first
(``auto_da_alloc``): 0.1 to 2 ms per rename, a dozen milliseconds per append. Where
the kernel offers it, the two names are swapped instead (``renameat2`` with
``RENAME_EXCHANGE``, just as atomic) and the old content, now under the temporary
name, is removed: 20 to 30 us.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
import sys
import warnings
from collections.abc import Callable
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, see lock_file
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "archive_writer_present",
    "descriptor_locked_elsewhere",
    "directory_locked_elsewhere",
    "file_locked_elsewhere",
    "lock_directory",
    "lock_file",
    "same_file",
    "write_atomically",
]

#: errno values that mean "another process holds the lock".
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_HAVE_OFD = fcntl is not None and hasattr(fcntl, "F_OFD_SETLK") and sys.platform == "linux"


def _flock_struct(lock_type: int) -> bytes:
    """A ``struct flock`` locking the whole file (Linux layout, 32 bytes)."""
    return struct.pack("hhqqi4x", lock_type, os.SEEK_SET, 0, 0, 0)


def lock_file(fd: int, path: str) -> bool:
    """Take an exclusive lock on the file open as ``fd`` (for writing); False if held.

    Where the file system cannot lock at all (some network file systems), a
    ``RuntimeWarning`` says so and the writer goes on unlocked.
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
        _cannot_lock(path, exc)
    return True


def _cannot_lock(path: str, exc: OSError) -> None:
    warnings.warn(
        f"{path}: cannot lock the archive ({os.strerror(exc.errno or 0).lower()}); a second"
        " writer would not be noticed",
        RuntimeWarning,
        stacklevel=4,
    )


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
        return bool(descriptor_locked_elsewhere(fd))
    finally:
        os.close(fd)


def descriptor_locked_elsewhere(fd: int) -> bool | None:
    """Whether another open file holds the lock of :func:`lock_file` on the file ``fd`` is.

    Only looks (``F_OFD_GETLK``), on the very file a reader has open (its name may
    meanwhile point to another). None where it cannot tell (not Linux).
    """
    if not _HAVE_OFD:  # pragma: no cover
        return None
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock_struct(fcntl.F_WRLCK))
    except OSError:
        return None
    return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK


def directory_locked_elsewhere(path: str) -> bool | None:
    """Whether a ``flock`` (a Zarr writer's lock, :func:`lock_directory`) is held on ``path``.

    Only looks, in ``/proc/locks`` (Linux): trying the lock to see would, for that
    instant, refuse a writer starting at the same moment. None where it cannot tell
    (not Linux, or ``path`` is gone).
    """
    try:
        status = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            table = locks.read()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE 4242 fe:01:1234567 0 EOF": major:minor (hex) and inode.
    here = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "FLOCK" in fields and here in fields and "->" not in fields:  # "->": a waiter
            return True
    return False


def archive_writer_present(path: str) -> bool | None:
    """Whether a writer holds the archive at ``path`` open (its one-writer lock), by looking.

    A Zarr store (a directory) is checked with :func:`directory_locked_elsewhere`, an
    HDF5 file with :func:`file_locked_elsewhere`. None where the lock cannot be seen
    (not Linux, or the path is gone).
    """
    if os.path.isdir(path):
        return directory_locked_elsewhere(path)
    if not _HAVE_OFD or not os.path.exists(path):  # pragma: no cover - not Linux
        return None
    return file_locked_elsewhere(path)


def lock_directory(fd: int, path: str) -> bool:
    """Take an exclusive ``flock`` on the directory open as ``fd``; False if held.

    Where the file system cannot lock, as :func:`lock_file`.
    """
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        _cannot_lock(path, exc)
    return True


def same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not replaced or removed)."""
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def write_atomically(path: str, data: Any) -> None:
    """Write ``data`` (bytes-like) to ``path`` through a temporary file and a rename.

    A reader, or a process killed at any moment, sees the old content or the new one,
    never a mix (see the module notes). The temporary name starts with ``.``: readers
    ignore such names.
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
        if _exchange(temporary, path):
            os.unlink(temporary)  # now the old content
        else:
            os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


#: errno values of renameat2 that mean "not on this system or file system".
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's ``renameat2``, or ``None`` where there is none (not Linux)."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_exchange_works = True


def _exchange(source: str, target: str) -> bool:
    """Swap two existing files atomically, if the kernel can.

    False if ``target`` is absent or swapping is not supported: the caller renames.
    """
    global _exchange_works
    function = _renameat2() if _exchange_works else None
    if function is None:
        return False
    import ctypes

    if (
        function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE)
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code == errno.ENOENT:
        return False  # nothing to replace yet: a plain rename is cheap
    if code in _NO_EXCHANGE:
        _exchange_works = False
        return False
    raise OSError(code, os.strerror(code), target)
