"""A read-only Zarr store for a local directory that never leaves it.

zarr's own ``LocalStore`` opens ``root / key`` like any path: a chunk that is a
symbolic link to ``/etc/passwd`` is read as that file, a layer folder linked to
another store is read as if it were this one, and a FIFO named ``zarr.json``
blocks the reader forever. :class:`NoFollowStore` implements zarr's public store
interface (:class:`zarr.abc.store.Store`) for reading only, and refuses all of
these with an :class:`~dynatrain.errors.ArchiveError` that names the store and
the member.

Race-free: nothing is checked and then opened by name. The store's root folder is
opened once (following a link there: that is the path the user chose); every key
is then walked from that descriptor one component at a time with ``O_NOFOLLOW``
(a symbolic link anywhere on the way fails the open instead of being followed),
each file is opened with ``O_NONBLOCK`` (a FIFO does not block) and the open
descriptor is checked with ``fstat`` to be a regular file before a byte is read.
Listings use ``scandir`` without following links.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)

from dynatrain.archive._backends import describe_mode
from dynatrain.errors import ArchiveError

if TYPE_CHECKING:
    from zarr.abc.buffer import Buffer, BufferPrototype

__all__ = ["SUPPORTED", "NoFollowStore"]

#: Whether this platform can walk a store without following links (POSIX: ``openat``
#: with ``O_NOFOLLOW``). Elsewhere (Windows) zarr's own ``LocalStore`` is used.
SUPPORTED = (
    hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and os.open in os.supports_dir_fd
    and os.stat in os.supports_dir_fd
    and os.scandir in os.supports_fd
)
_DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_FILE_FLAGS = _DIR_FLAGS & ~getattr(os, "O_DIRECTORY", 0)


class NoFollowStore(Store):
    """Read-only zarr store over a local folder, refusing anything not inside it.

    Parameters
    ----------
    root : str
        The store's folder. A symbolic link here is followed (the user named it);
        below it, symbolic links, FIFOs, sockets and devices are refused.
    max_file_bytes : int
        Largest member file read (a larger one is refused: no chunk is that big).
    check : callable, optional
        ``check(key, data)`` is called with every file's bytes before zarr sees
        them; it may raise :class:`ArchiveError` (the reader bounds what one chunk
        may decompress to with it).

    Notes
    -----
    Keys follow zarr's layout (``layers/fc1/activations/c/0/0``); a missing key
    reads as ``None``, as in every zarr store. The root folder stays open until
    :meth:`release`.
    """

    supports_writes = False
    supports_deletes = False
    supports_listing = True

    def __init__(
        self,
        root: str,
        *,
        max_file_bytes: int,
        check: Callable[[str, bytes], None] | None = None,
    ) -> None:
        super().__init__(read_only=True)
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.check = check
        # The root itself may be a link (the user named it): no O_NOFOLLOW here.
        self._root_fd: int | None = os.open(root, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))

    # -- the walk ----------------------------------------------------------------------------

    def _refuse(self, member: str, what: str) -> ArchiveError:
        return ArchiveError(
            self.root,
            f"{member} is {what}; a Zarr store may hold only plain files and folders"
            " inside it, so it is refused",
        )

    def _parts(self, key: str) -> list[str]:
        parts = key.split("/") if key else []
        if any(part in ("", ".", "..") for part in parts):
            raise ArchiveError(self.root, f"invalid key {key!r} (empty, '.' or '..' component)")
        return parts

    def _open_dir(self, parts: list[str]) -> int | None:
        """A descriptor of the folder ``parts`` below the root, or ``None`` if absent."""
        if self._root_fd is None:
            raise ArchiveError(self.root, "the store was closed")
        fd = os.dup(self._root_fd)
        try:
            for i, name in enumerate(parts):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    return None
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
                        member = "/".join(parts[: i + 1])
                        found = self._lstat(fd, name)
                        if found is None or stat.S_ISREG(found):
                            return None  # a file where a folder would be: no such key
                        raise self._refuse(member, describe_mode(found)) from None
                    raise
                os.close(fd)
                fd = child
            result, fd = fd, -1
            return result
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _lstat(dir_fd: int, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None

    def read_bytes(self, key: str, byte_range: ByteRequest | None = None) -> bytes | None:
        """The bytes of ``key`` (or of a range of it); ``None`` if there is no such file."""
        parts = self._parts(key)
        if not parts:
            return None
        dir_fd = self._open_dir(parts[:-1])
        if dir_fd is None:
            return None
        try:
            mode = self._lstat(dir_fd, parts[-1])
            if mode is None or stat.S_ISDIR(mode):
                return None
            if not stat.S_ISREG(mode):  # never even opened: a device may act on open
                raise self._refuse(key, describe_mode(mode))
            try:
                fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENXIO):  # replaced since the lstat
                    raise self._refuse(key, "not a regular file") from None
                raise
        finally:
            os.close(dir_fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise self._refuse(key, describe_mode(info.st_mode))
            if info.st_size > self.max_file_bytes:
                raise ArchiveError(
                    self.root,
                    f"{key} is {info.st_size} bytes, more than any member of an archive"
                    f" may be ({self.max_file_bytes} bytes)",
                )
            start, stop = _byte_span(byte_range, info.st_size)
            data = _pread_all(fd, start, stop)
        finally:
            os.close(fd)
        if self.check is not None and byte_range is None:
            self.check(key, data)
        return data

    def walk(self, prefix: str = "") -> Iterator[str]:
        """Every file key below ``prefix`` (refusing links and special files met)."""
        parts = self._parts(prefix.rstrip("/"))
        fd = self._open_dir(parts)
        if fd is None:
            return
        base = "/".join(parts)
        try:
            yield from self._walk(fd, base)
        finally:
            os.close(fd)

    def _walk(self, fd: int, base: str) -> Iterator[str]:
        folders = []
        for name, mode in self._entries(fd, base):
            key = f"{base}/{name}" if base else name
            if stat.S_ISDIR(mode):
                folders.append((name, key))
            else:
                yield key
        for name, key in folders:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise self._refuse(key, "not a folder any more") from None
                raise
            try:
                yield from self._walk(child, key)
            finally:
                os.close(child)

    def _entries(self, fd: int, base: str) -> list[tuple[str, int]]:
        """``(name, st_mode)`` of a folder's entries; links and special files refused."""
        entries = []
        with os.scandir(fd) as listing:
            for entry in listing:
                # The entry's type comes with the listing (d_type): no system call per
                # entry, except on file systems that do not report it.
                if entry.is_file(follow_symlinks=False):
                    entries.append((entry.name, stat.S_IFREG))
                elif entry.is_dir(follow_symlinks=False):
                    entries.append((entry.name, stat.S_IFDIR))
                else:
                    try:
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except FileNotFoundError:
                        continue
                    key = f"{base}/{entry.name}" if base else entry.name
                    raise self._refuse(key, describe_mode(mode))
        return entries

    def names(self, prefix: str = "") -> list[str]:
        """Names of the files and folders directly in ``prefix`` (links refused)."""
        parts = self._parts(prefix.rstrip("/"))
        fd = self._open_dir(parts)
        if fd is None:
            return []
        try:
            return [name for name, _ in self._entries(fd, "/".join(parts))]
        finally:
            os.close(fd)

    def size(self) -> int:
        """Bytes of all the store's files (links are refused, not counted)."""
        total = 0
        for key in self.walk(""):
            parts = key.split("/")
            fd = self._open_dir(parts[:-1])
            if fd is None:
                continue
            try:
                total += os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_size
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        return total

    def release(self) -> None:
        """Close the root folder's descriptor (the store cannot be read after)."""
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    # -- zarr's store interface ---------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoFollowStore) and other._root_fd == self._root_fd

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NoFollowStore({self.root!r})"

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        if prototype is None:
            from zarr.buffer import default_buffer_prototype

            prototype = default_buffer_prototype()
        data = await asyncio.to_thread(self.read_bytes, key, byte_range)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.read_bytes, key, RangeByteRequest(0, 0)) is not None

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(lambda: list(self.walk(""))):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(lambda: list(self.walk(prefix))):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for name in await asyncio.to_thread(self.names, prefix):
            yield name

    def close(self) -> None:
        """Keep the folder open: zarr may close a store, this one belongs to the reader."""


def _byte_span(byte_range: ByteRequest | None, size: int) -> tuple[int, int]:
    """``(start, stop)`` offsets of a zarr byte request in a file of ``size`` bytes."""
    if byte_range is None:
        return 0, size
    if isinstance(byte_range, RangeByteRequest):
        return min(byte_range.start, size), min(byte_range.end, size)
    if isinstance(byte_range, OffsetByteRequest):
        return min(byte_range.offset, size), size
    if isinstance(byte_range, SuffixByteRequest):
        return max(0, size - byte_range.suffix), size
    raise TypeError(f"unexpected byte range {byte_range!r}")


def _pread_all(fd: int, start: int, stop: int) -> bytes:
    """Bytes ``start .. stop - 1`` of an open file (fewer if it was cut meanwhile)."""
    pieces = []
    while start < stop:
        piece = os.pread(fd, stop - start, start)
        if not piece:
            break
        pieces.append(piece)
        start += len(piece)
    return b"".join(pieces)
