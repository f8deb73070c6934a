"""The two storage back ends behind one small read-only interface.

:class:`Archive` (in :mod:`dynatrain.archive.reader`) speaks only to a
:class:`Store`, which knows how to open an HDF5 file or a Zarr store read-only,
how to walk its tree without leaving the archive, and how to turn the back end's
exceptions into one-line :class:`~dynatrain.errors.ArchiveError` messages.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dynatrain.archive.format import backend_for_path
from dynatrain.errors import ArchiveError

__all__ = ["Store", "open_store"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, for one-line errors."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _is_url(path: str) -> bool:
    return "://" in path


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
        """``"group"``, ``"array"`` or ``None`` (absent) for the node at ``parts``."""

    @abstractmethod
    def array(self, parts: tuple[str, ...]) -> Any:
        """The array at ``parts`` (h5py Dataset or zarr Array), sliceable along axis 0."""

    @abstractmethod
    def children(self, parts: tuple[str, ...]) -> list[str]:
        """Names of the members of the group at ``parts``."""

    @abstractmethod
    def read_error(self, exc: BaseException) -> str:
        """A short description of an exception raised while reading data."""

    def chunk_rows(self, array: Any) -> int:
        """Checkpoints per storage chunk along axis 0 (1 for contiguous storage)."""
        chunks = getattr(array, "chunks", None)
        return int(chunks[0]) if chunks else 1

    def size_on_disk(self) -> int | None:
        """Bytes the archive occupies, or ``None`` when it cannot be told (URLs)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the file handle."""


class HDF5Store(Store):
    """An HDF5 file opened read-only in SWMR mode (reads files still being written)."""

    backend = "hdf5"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import h5py

        self._h5py = h5py
        with open(path, "rb") as fh:
            head = fh.read(len(_HDF5_SIGNATURE))
        if not head:
            raise ArchiveError(path, "empty file, not an HDF5 archive")
        if not h5py.is_hdf5(path):
            raise ArchiveError(path, "not an HDF5 file (no HDF5 signature)")
        try:
            # No chunk cache: every chunk is read once, and the cache would only add a
            # copy (reads are a third faster without it).
            self._file = h5py.File(path, "r", swmr=True, rdcc_nbytes=0)
        except OSError as exc:
            if "already open for write" in str(exc) or "not already open for SWMR" in str(exc):
                raise ArchiveError(
                    path,
                    "its writer did not close it and was not in SWMR mode, so HDF5 refuses"
                    " to open it ('h5clear -s' clears the flag; the data may be incomplete)",
                ) from exc
            raise ArchiveError(
                path, f"cannot open HDF5 file, truncated or corrupt ({_first_line(exc)})"
            ) from exc

    def _node(self, parts: tuple[str, ...]) -> Any:
        """Walk ``parts`` link by link, refusing links that leave the file."""
        h5py = self._h5py
        node = self._file
        for depth, name in enumerate(parts):
            where = "/" + "/".join(parts[: depth + 1])
            try:
                link = node.get(name, getlink=True)
            except (OSError, KeyError, ValueError) as exc:
                raise ArchiveError(self.path, f"cannot read {where} ({_first_line(exc)})") from exc
            if link is None:
                return None
            if isinstance(link, h5py.ExternalLink):
                raise ArchiveError(
                    self.path,
                    f"{where} is an external link to {link.filename}:{link.path};"
                    " links to other files are refused",
                )
            try:
                node = node[name]
            except KeyError:  # dangling soft link
                return None
            except OSError as exc:
                raise ArchiveError(self.path, f"cannot read {where} ({_first_line(exc)})") from exc
        if isinstance(node, h5py.Dataset):
            self._refuse_outside_storage(node, "/" + "/".join(parts))
        return node

    def _refuse_outside_storage(self, dataset: Any, where: str) -> None:
        """Refuse virtual datasets and external raw storage that read other files."""
        if dataset.is_virtual:
            sources = {vs.file_name for vs in dataset.virtual_sources()}
            if sources - {"."}:
                raise ArchiveError(
                    self.path,
                    f"{where} is a virtual dataset reading {', '.join(sorted(sources))};"
                    " data in other files is refused",
                )
        if dataset.external:
            files = ", ".join(sorted({os.fsdecode(name) for name, *_ in dataset.external}))
            raise ArchiveError(
                self.path,
                f"{where} stores its data in external file(s) {files}; data in other files"
                " is refused",
            )

    def attrs(self, parts: tuple[str, ...] = ()) -> dict[str, Any]:
        node = self._node(parts)
        if node is None:
            return {}
        try:
            return {key: node.attrs[key] for key in node.attrs}
        except OSError as exc:
            where = "/" + "/".join(parts)
            raise ArchiveError(
                self.path, f"cannot read attributes of {where} ({_first_line(exc)})"
            ) from exc

    def kind(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        if node is None:
            return None
        return "array" if isinstance(node, self._h5py.Dataset) else "group"

    def array(self, parts: tuple[str, ...]) -> Any:
        return self._node(parts)

    def children(self, parts: tuple[str, ...]) -> list[str]:
        node = self._node(parts)
        return list(node.keys()) if node is not None else []

    def read_error(self, exc: BaseException) -> str:
        return f"truncated or corrupt data ({_first_line(exc)})"

    def size_on_disk(self) -> int | None:
        return os.path.getsize(self.path)

    def close(self) -> None:
        self._file.close()


class ZarrStore(Store):
    """A Zarr group (format 3, or 2) opened read-only."""

    backend = "zarr"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import zarr
        import zarr.errors

        try:
            if _is_url(path):
                self._root = zarr.open_group(path, mode="r")
            else:
                from zarr.storage import LocalStore

                self._root = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
        except (zarr.errors.GroupNotFoundError, FileNotFoundError) as exc:
            raise ArchiveError(
                path, "not a Zarr store (no zarr.json or .zgroup at its root)"
            ) from exc
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise ArchiveError(path, f"cannot open Zarr store ({_first_line(exc)})") from exc
        self._zarr = zarr

    def _node(self, parts: tuple[str, ...]) -> Any:
        if not parts:
            return self._root
        try:
            return self._root.get("/".join(parts))
        except (ValueError, TypeError, KeyError, OSError) as exc:
            where = "/" + "/".join(parts)
            raise ArchiveError(self.path, f"cannot read {where} ({_first_line(exc)})") from exc

    def attrs(self, parts: tuple[str, ...] = ()) -> dict[str, Any]:
        node = self._node(parts)
        return dict(node.attrs) if node is not None else {}

    def kind(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        if node is None:
            return None
        return "group" if isinstance(node, self._zarr.Group) else "array"

    def array(self, parts: tuple[str, ...]) -> Any:
        return self._node(parts)

    def children(self, parts: tuple[str, ...]) -> list[str]:
        node = self._node(parts)
        return sorted(node.keys()) if node is not None else []

    def chunk_rows(self, array: Any) -> int:
        # With sharding, a shard is the unit of I/O; read whole shards.
        shards = getattr(array, "shards", None)
        return int((shards or array.chunks)[0])

    def read_error(self, exc: BaseException) -> str:
        return f"corrupt or missing chunk ({_first_line(exc)})"

    def close(self) -> None:
        """Nothing to release: zarr holds no open file between reads."""

    def size_on_disk(self) -> int | None:
        if _is_url(self.path):
            return None
        total = 0
        for folder, _, files in os.walk(self.path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total


def open_store(path: str | os.PathLike[str]) -> Store:
    """Open an archive read-only, choosing the back end from the path.

    The suffix decides (``.h5``/``.hdf5`` -> HDF5, ``.zarr`` -> Zarr); with another
    suffix, a directory is taken for a Zarr store and a file for HDF5.

    Raises
    ------
    ArchiveError
        If the path is missing or cannot be opened by its back end.
    """
    path = os.fspath(path)
    if _is_url(path):
        return ZarrStore(path)
    if not os.path.exists(path):
        raise ArchiveError(path, "no such file or directory")
    backend = backend_for_path(path)
    is_dir = os.path.isdir(path)
    if backend == "hdf5" and is_dir:
        raise ArchiveError(path, "is a directory, expected an HDF5 file")
    if backend == "zarr" or (backend is None and is_dir):
        if not is_dir:
            raise ArchiveError(path, "is a file, expected a Zarr directory store")
        return ZarrStore(path)
    try:
        return HDF5Store(path)
    except PermissionError as exc:
        raise ArchiveError(path, "permission denied") from exc


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
