"""The two storage back ends behind one small read-only interface.

:class:`Archive` (in :mod:`dynatrain.archive.reader`) speaks only to a
:class:`Store`, which knows how to open an HDF5 file or a Zarr store read-only,
how to walk its tree without leaving the archive, and how to turn the back end's
exceptions into one-line :class:`~dynatrain.errors.ArchiveError` messages. The
stores themselves live in :mod:`dynatrain.archive._hdf5` and
:mod:`dynatrain.archive._zarr`; this module holds what they share.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynatrain.archive.format import backend_for_path, is_url
from dynatrain.errors import ArchiveError

__all__ = ["MAX_CHUNK_BYTES", "Store", "json_value", "open_store"]

#: Largest storage chunk (decoded) that an archive may have, in bytes (256 MiB).
#: dynatrain decodes one whole chunk at a time; a larger one is refused with a clear
#: error rather than risking memory on what may be a decompression bomb. The
#: writer's chunks are one checkpoint of one layer.
MAX_CHUNK_BYTES = 256 * 2**20
#: Longest name shown in a message, and how many names a message lists.
_MAX_NAME_CHARS = 60
_MAX_NAMES_SHOWN = 5


# Flags some platforms lack (Windows has no FIFOs to guard against, and no O_NONBLOCK).
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def describe_mode(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (``"a FIFO"``, ``"a symbolic link"``)."""
    kinds = [
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISREG, "a regular file"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular_file(path: str) -> int:
    """Open ``path`` read-only and return the descriptor, if it is a regular file.

    The open does not block on a FIFO (``O_NONBLOCK``) and the type is checked on
    the open descriptor (``fstat``), so there is no window between check and open.
    A symbolic link given as ``path`` itself is followed: the user named it.

    Raises
    ------
    ArchiveError
        For a FIFO, socket, device or directory (naming which).
    OSError
        If the file cannot be opened (missing, permission denied).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # opening a socket
            raise ArchiveError(path, "is a socket, not an archive file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ArchiveError(path, f"is {describe_mode(mode)}, not an archive file")
    return fd


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, for one-line errors (capped)."""
    for line in str(exc).splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= 300 else text[:297] + "..."
    return type(exc).__name__


def show_name(name: Any) -> str:
    """A name as a message shows it: quoted, escaped, cut to a readable length.

    Undecodable bytes (lone surrogates from the file system, raw ``bytes``) and control
    characters are escaped, so the message prints on any terminal and any encoding.
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="backslashreplace")
    text = (
        str(name)
        .encode("utf-8", errors="surrogateescape")
        .decode("utf-8", errors="backslashreplace")
    )
    if len(text) > _MAX_NAME_CHARS:
        text = text[: _MAX_NAME_CHARS - 3] + "..."
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return f"'{escaped}'"


def names_phrase(names: Sequence[Any], limit: int = _MAX_NAMES_SHOWN) -> str:
    """``'a', 'b', 'c'`` or ``'a', 'b', 'c', 'd', 'e' and 995 more``: bounded length."""
    shown = ", ".join(show_name(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def is_member_name(name: Any) -> bool:
    """Whether ``name`` names one group member: a non-empty string, no ``/``, not ``.``/``..``.

    Names come partly from the archive itself (``/layers`` ``order``): a name with
    ``/``, or ``.``/``..``, would walk elsewhere in the tree (or, in a Zarr directory
    store, outside it). A name must also be valid Unicode text (no undecodable bytes).
    """
    if not (isinstance(name, str) and name and "/" not in name and name not in (".", "..")):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_member_name(path: str, name: str, where: str) -> None:
    """Refuse a path component that is not one member name (:func:`is_member_name`)."""
    if not is_member_name(name):
        raise ArchiveError(path, f"{where}: {show_name(name)} is not a valid member name")


def decode_member_name(path: str, raw: bytes | str, where: str) -> str:
    """A member name as text; a name that is not UTF-8 is refused (naming it escaped)."""
    try:
        name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        name.encode("utf-8")
    except UnicodeError:
        raise ArchiveError(
            path, f"{where} has a member named {show_name(raw)}, which is not UTF-8 text"
        ) from None
    return name


def memory_problem(exc: MemoryError | ValueError, what: str) -> str:
    """The message for an allocation that failed while reading ``what``."""
    return f"cannot read {what}: not enough memory ({first_line(exc)})"


def gaps(present_blocks: Iterable[int], n_blocks: int, rows_per_block: int, n_rows: int) -> Any:
    """Row ranges ``[[start, stop], ...]`` of the blocks in ``range(n_blocks)`` not present.

    Costs time in the number of present blocks, not in ``n_blocks`` (an array may
    declare far more rows than it stores).
    """
    ranges = []
    expected = 0
    for block in sorted(set(present_blocks)):
        if block >= n_blocks:
            break
        if block > expected:
            ranges.append((expected * rows_per_block, min(block * rows_per_block, n_rows)))
        expected = block + 1
    if expected < n_blocks:
        ranges.append((expected * rows_per_block, n_rows))
    return np.array(ranges, dtype=np.int64).reshape(-1, 2)


def clip_ranges(ranges: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``[start, stop)`` ranges intersected with ``[start, stop)``; empty ones dropped."""
    clipped = np.clip(ranges, start, max(start, stop))
    return clipped[clipped[:, 1] > clipped[:, 0]]


class Store(ABC):
    """A read-only view of an archive's tree.

    Paths are tuples of names from the root, e.g. ``("layers", "conv1", "activations")``.
    """

    backend: str

    def __init__(self, path: str) -> None:
        self.path = path

    @abstractmethod
    def attrs(self, parts: tuple[str, ...] = ()) -> dict[str, Any]:
        """Attributes of the group at ``parts`` (empty dict if it has none)."""

    @abstractmethod
    def kind(self, parts: tuple[str, ...]) -> str | None:
        """What the node at ``parts`` is: ``"group"``, ``"array"`` or ``"other"``.

        ``"other"`` is e.g. an HDF5 named datatype; ``None`` means absent.
        """

    @abstractmethod
    def array(self, parts: tuple[str, ...]) -> Any:
        """The array at ``parts`` (h5py Dataset or zarr AsyncArray), sliceable along axis 0."""

    @abstractmethod
    def members(self, parts: tuple[str, ...]) -> list[str]:
        """Names listed in the group at ``parts``, whatever they are (cheap: no member opened)."""

    def children(self, parts: tuple[str, ...]) -> list[str]:
        """Names of the groups and arrays in the group at ``parts``."""
        names = self.members(parts)
        self.prefetch([(*parts, name) for name in names])
        return [name for name in names if self.kind((*parts, name)) in ("group", "array")]

    def prefetch(
        self,
        paths: Iterable[tuple[str, ...]],
        below: Mapping[tuple[str, ...], int] | None = None,
    ) -> None:
        """Read the metadata of these nodes ahead, together, where that saves time.

        A hint: in object storage each node's metadata is a round trip, and reading
        them concurrently makes one of many. ``below`` maps groups to a depth: the
        nodes under each, down to that many levels, are read in the same batch where
        the store can tell them without asking (object storage: from its listing).
        Nothing is raised here (a node that cannot be read raises when it is asked
        for).
        """
        return  # a file on disk: nothing to gain

    @abstractmethod
    def read(self, array: Any, selection: Any) -> np.ndarray:
        """``array[selection]`` as a NumPy array (exceptions are the back end's own)."""

    @abstractmethod
    def read_error(self, exc: BaseException) -> str:
        """A short description of an exception raised while reading data."""

    def fill_value(self, array: Any) -> Any:
        """The value a read returns where no data was ever stored (``None``: unset)."""
        return None

    @abstractmethod
    def chunk_shape(self, array: Any) -> tuple[int, ...]:
        """Shape of the unit of storage that is decoded whole (a chunk, or a shard)."""

    def chunk_rows(self, array: Any) -> int:
        """Checkpoints per storage unit along axis 0 (1 for contiguous storage)."""
        return self.chunk_shape(array)[0] if len(array.shape) else 1

    def array_problem(self, array: Any, what: str) -> str | None:
        """Why ``array`` cannot be read here (a storage chunk too large to decode), or ``None``."""
        shape = self.chunk_shape(array)
        if not shape:
            return None
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize
        if nbytes > MAX_CHUNK_BYTES:
            return (
                f"{what} is stored in chunks of {nbytes} bytes (shape {list(shape)}), more"
                f" than the {MAX_CHUNK_BYTES} bytes a chunk may have (each chunk is decoded"
                " whole)"
            )
        return None

    @abstractmethod
    def absent_ranges(self, array: Any, n_rows: int, start: int = 0) -> np.ndarray:
        """Rows ``start .. n_rows - 1`` in absent storage chunks, as ``[start, stop)`` ranges.

        Shape ``(k, 2)``, sorted. A read returns the fill value there. A follower gives
        ``start``, the rows it checked before, to check only the new ones.
        """

    def absent_is_lost(self, array: Any) -> bool:
        """Whether rows in absent chunks are lost data (else, possibly the fill value)."""
        return True

    def attr(self, key: str, parts: tuple[str, ...] = ()) -> Any:
        """One attribute of the group at ``parts`` (None if absent)."""
        return self.attrs(parts).get(key)

    # Following a writer (``Archive.refresh``): hooks for a store still being filled.

    def refresh(self) -> bool:
        """Look again at a store a writer is still filling: :meth:`attr` then reads anew.

        Returns True if the arrays handed out before stay usable (bring each up to
        date with :meth:`refresh_array`), False if the store had to be opened again
        and they must be fetched again with :meth:`array`.
        """
        return True

    def refresh_array(self, array: Any, parts: tuple[str, ...], n_rows: int | None) -> Any:
        """``array`` (from :meth:`array`) as the writer has left it now: length, chunks.

        ``n_rows`` is the number of rows the caller is about to read (None: it needs
        the current length).
        """
        return array

    def size_on_disk(self) -> int | None:
        """Bytes the archive occupies, or ``None`` when it cannot be told (URLs)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the file handle."""


def open_store(
    path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Store:
    """Open an archive read-only, choosing the back end from the path.

    The suffix decides (``.h5``/``.hdf5`` -> HDF5, ``.zarr`` -> Zarr); with another
    suffix, a directory is taken for a Zarr store and a file for HDF5. A URL is a
    Zarr store, opened with ``storage_options`` (see :mod:`dynatrain.archive.storage`).

    Raises
    ------
    ArchiveError
        If the path is missing, is not a regular file or folder (a FIFO, a device),
        or cannot be opened by its back end.
    """
    path = os.fspath(path)
    if is_url(path):
        from dynatrain.archive._zarr import ZarrStore

        return ZarrStore(path, storage_options)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ArchiveError(path, "no such file or directory") from None
    except OSError as exc:
        raise ArchiveError(path, f"cannot open ({first_line(exc)})") from None
    backend = backend_for_path(path)
    is_dir = stat.S_ISDIR(mode)
    if backend == "hdf5" and is_dir:
        raise ArchiveError(path, "is a directory, expected an HDF5 file")
    if backend == "zarr" or (backend is None and is_dir):
        if not is_dir:
            raise ArchiveError(path, f"is {describe_mode(mode)}, expected a Zarr directory store")
        from dynatrain.archive._zarr import ZarrStore

        return ZarrStore(path)
    from dynatrain.archive._hdf5 import HDF5Store

    try:
        return HDF5Store(path)
    except PermissionError as exc:
        raise ArchiveError(path, "permission denied") from exc
    except OSError as exc:
        raise ArchiveError(path, f"cannot open ({first_line(exc)})") from exc


def iter_row_blocks(n_rows: int, rows_per_block: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs that cover ``range(n_rows)`` in blocks."""
    for start in range(0, n_rows, rows_per_block):
        yield start, min(start + rows_per_block, n_rows)


def as_python(value: Any) -> Any:
    """Convert an attribute value (NumPy scalar, bytes, array) to plain JSON-able Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [as_python(v) for v in value.tolist()] if value.ndim else as_python(value[()])
    if isinstance(value, np.generic):
        return as_python(value.item())
    if isinstance(value, (list, tuple)):
        return [as_python(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


#: Values JSON has (NaN and infinities are floats here; JSON writers make them null).
_JSON_SCALARS = (str, bool, int, float, type(None))
#: Longest text that stands in for a value with no JSON form.
_MAX_TEXT = 200


#: Deepest nesting of lists and objects kept in metadata; deeper is shown as text.
_MAX_DEPTH = 32


def json_value(value: Any, lossy: list[str] | None = None, _depth: int = 0) -> Any:
    """Convert an attribute value, as a back end returns it, to plain JSON data.

    * strings, booleans, integers, floats and ``None`` are kept (NaN too: the JSON
      writers print it as ``null``);
    * bytes become text (UTF-8, undecodable bytes replaced);
    * NumPy scalars become Python scalars, NumPy arrays (and lists, tuples) lists,
      recursively, a 0-d array its one value; a structured (compound) value becomes
      a dict of its fields; mappings (Zarr JSON objects) stay dicts with text keys;
    * an HDF5 attribute with no value (``h5py.Empty``) becomes ``None``;
    * anything else has no JSON form (an HDF5 object or region reference, a complex
      number, opaque bytes): it is replaced by its text, cut to 200 characters
      (``"<HDF5 object reference>"``, ``"(1+2j)"``), and its type is appended to
      ``lossy`` so that the caller can say so. Nothing is dereferenced.

    Parameters
    ----------
    value : object
    lossy : list of str, optional
        Receives the type name of every value replaced by its text.
    """
    if type(value) is str:
        return _clean_text(value)
    if type(value) in _JSON_SCALARS:
        return value
    if _depth > _MAX_DEPTH:
        if lossy is not None:
            lossy.append(f"nesting deeper than {_MAX_DEPTH}")
        return "(nested too deeply)"
    if isinstance(value, _JSON_SCALARS) and not isinstance(value, np.generic):
        # A subclass (an IntEnum, a str subclass): its plain value.
        plain = next(base(value) for base in (bool, int, float, str) if isinstance(value, base))
        return _clean_text(plain) if isinstance(plain, str) else plain
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return json_value(value[()], lossy, _depth)
        if value.dtype.kind in "biuf":  # fast and exact: Python bool, int, float
            return value.tolist()
        return [json_value(item, lossy, _depth + 1) for item in value]
    if isinstance(value, np.void):
        if value.dtype.names:
            return {name: json_value(value[name], lossy, _depth + 1) for name in value.dtype.names}
    elif isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, (*_JSON_SCALARS, bytes)):
            return json_value(item, lossy, _depth + 1)
    elif isinstance(value, Mapping):
        return {str(key): json_value(item, lossy, _depth + 1) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        return [json_value(item, lossy, _depth + 1) for item in value]
    elif isinstance(value, Path):
        return str(value)
    elif _is_h5py_empty(value):
        return None
    if lossy is not None:
        lossy.append(type(value).__name__)
    text = str(value).strip()
    text = text.splitlines()[0] if text else type(value).__name__
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _clean_text(text: str) -> str:
    """``text``, with undecodable bytes (lone surrogates, from HDF5) replaced by U+FFFD.

    Anything printed must be encodable: a metadata value read from a damaged file
    would otherwise stop the output (``UnicodeEncodeError``) halfway.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return text


def _is_h5py_empty(value: Any) -> bool:
    h5py = sys.modules.get("h5py")  # only an HDF5 file, read with h5py, holds one
    return h5py is not None and isinstance(value, h5py.Empty)
