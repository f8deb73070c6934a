"""The two storage back ends behind one small read-only interface.

:class:`Archive` (in :mod:`dynatrain.archive.reader`) speaks only to a
:class:`Store`, which knows how to open an HDF5 file or a Zarr store read-only,
how to walk its tree without leaving the archive, and how to turn the back end's
exceptions into one-line :class:`~dynatrain.errors.ArchiveError` messages.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynatrain.archive.format import backend_for_path, is_url
from dynatrain.errors import ArchiveError

__all__ = ["Store", "json_value", "open_store"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Rounds of waiting for the tasks a failed zarr call left running (see _settled).
_SETTLE_ROUNDS = 32
#: Soft links followed while resolving one path (HDF5's own limit, H5L_NUM_LINKS).
_MAX_SOFT_LINKS = 16


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, for one-line errors."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def is_member_name(name: Any) -> bool:
    """Whether ``name`` names one group member: a non-empty string, no ``/``, not ``.``/``..``.

    Names come partly from the archive itself (``/layers`` ``order``): a name with
    ``/``, or ``.``/``..``, would walk elsewhere in the tree (or, in a Zarr directory
    store, outside it).
    """
    return isinstance(name, str) and bool(name) and "/" not in name and name not in (".", "..")


def _check_member_name(path: str, name: str, where: str) -> None:
    """Refuse a path component that is not one member name (:func:`is_member_name`)."""
    if not is_member_name(name):
        raise ArchiveError(path, f"{where}: {name!r} is not a valid member name")


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
        """The array at ``parts`` (h5py Dataset or zarr Array), sliceable along axis 0."""

    @abstractmethod
    def children(self, parts: tuple[str, ...]) -> list[str]:
        """Names of the members of the group at ``parts``."""

    @abstractmethod
    def read(self, array: Any, selection: Any) -> np.ndarray:
        """``array[selection]`` as a NumPy array (exceptions are the back end's own)."""

    @abstractmethod
    def read_error(self, exc: BaseException) -> str:
        """A short description of an exception raised while reading data."""

    def fill_value(self, array: Any) -> Any:
        """The value a read returns where no data was ever stored (``None``: unset)."""
        return None

    def absent_rows(self, array: Any, n_rows: int) -> np.ndarray:
        """Which of the first ``n_rows`` rows lie in a storage chunk absent from the store.

        Such rows read as the fill value. Only Zarr stores keep chunks as separate
        objects that can go missing; in an HDF5 file a chunk is never absent unless it
        was never written, so every row is reported present there.
        """
        return np.zeros(n_rows, dtype=bool)

    def chunk_rows(self, array: Any) -> int:
        """Checkpoints per storage chunk along axis 0 (1 for contiguous storage)."""
        chunks = getattr(array, "chunks", None)
        return int(chunks[0]) if chunks else 1

    def size_on_disk(self) -> int | None:
        """Bytes the archive occupies, or ``None`` when it cannot be told (URLs)."""
        return None

    def attr(self, key: str, parts: tuple[str, ...] = ()) -> Any:
        """One attribute of the group at ``parts`` (None if absent)."""
        return self.attrs(parts).get(key)

    def refresh(self) -> bool:
        """Look again at a store a writer is still filling: :meth:`attrs` then reads anew.

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
        """The object at ``parts``, or ``None`` if it is absent (or a dangling soft link).

        Links are resolved here, one at a time, never by HDF5: a hard link is opened, a
        soft link's target path is walked the same way, and an external or user-defined
        link is refused, also when it is met halfway through a soft link's target (a
        soft link to ``/hidden/x`` with ``/hidden`` an external link would otherwise
        read another file). Every object opened is then checked to live in the
        archive's own file (same HDF5 file number), and a dataset must not read
        another file through virtual sources or external raw storage.
        """
        where = "/" + "/".join(parts)
        for name in parts:
            _check_member_name(self.path, name, where)
        node = self._resolve(self._file, parts, where, [_MAX_SOFT_LINKS])
        if isinstance(node, self._h5py.Dataset):
            self._refuse_outside_storage(node, where, depth=0)
        return node

    def _resolve(
        self, start: Any, names: Sequence[str], asked: str, soft_links_left: list[int]
    ) -> Any:
        """Follow ``names`` from the group ``start``, as :meth:`_node` describes.

        ``asked`` is the path the caller wanted, for messages; ``soft_links_left`` is
        shared by the nested walks of soft-link targets.
        """
        h5py = self._h5py
        h5l = h5py.h5l
        node = start
        for name in names:
            here = f"{node.name.rstrip('/')}/{name}"
            if not isinstance(node, h5py.Group):
                return None  # a dataset or datatype has no members
            encoded = name.encode("utf-8")
            try:
                # Neither call follows the link: they only look at the group's entry.
                if not node.id.links.exists(encoded):
                    return None
                link_type = node.id.links.get_info(encoded).type
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                raise ArchiveError(self.path, f"cannot read {here} ({_first_line(exc)})") from exc
            if link_type == h5l.TYPE_HARD:
                try:
                    node = node[name]
                except (OSError, KeyError, ValueError) as exc:
                    raise ArchiveError(
                        self.path, f"cannot read {here} ({_first_line(exc)})"
                    ) from exc
            elif link_type == h5l.TYPE_SOFT:
                soft_links_left[0] -= 1
                if soft_links_left[0] < 0:
                    raise ArchiveError(
                        self.path, f"{asked}: more than {_MAX_SOFT_LINKS} soft links (a loop?)"
                    )
                target = node.id.links.get_val(encoded).decode("utf-8", errors="replace")
                base = self._file if target.startswith("/") else node
                steps = [step for step in target.split("/") if step not in ("", ".")]
                node = self._resolve(base, steps, asked, soft_links_left)
                if node is None:
                    return None  # dangling soft link: the object is absent
            elif link_type == h5l.TYPE_EXTERNAL:
                filename, path = node.id.links.get_val(encoded)
                target = f"{os.fsdecode(filename)}:{path.decode('utf-8', errors='replace')}"
                via = "" if here == asked else f" leads through {here}, which"
                raise ArchiveError(
                    self.path,
                    f"{asked}{via} is an external link to {target}; links to other files"
                    " are refused",
                )
            else:
                raise ArchiveError(
                    self.path,
                    f"{asked}: {here} is a user-defined link (type {link_type}); only hard"
                    " and soft links are followed",
                )
            if node.id.fileno != self._file.id.fileno:  # belt and braces: never expected
                raise ArchiveError(
                    self.path,
                    f"{asked} resolves to an object in another file ({node.file.filename});"
                    " objects in other files are refused",
                )
        return node

    def _refuse_outside_storage(self, dataset: Any, where: str, *, depth: int) -> None:
        """Refuse datasets whose data is read from other files.

        Virtual datasets may only map datasets of this file (source ``"."``), and those
        are resolved like any other path (a source path through an external link is
        refused), recursively; external raw storage is always refused.
        """
        if dataset.is_virtual:
            sources = dataset.virtual_sources()
            elsewhere = sorted({vs.file_name for vs in sources} - {"."})
            if elsewhere:
                raise ArchiveError(
                    self.path,
                    f"{where} is a virtual dataset reading {', '.join(elsewhere)};"
                    " data in other files is refused",
                )
            if depth >= _MAX_SOFT_LINKS:
                raise ArchiveError(
                    self.path, f"{where}: virtual datasets nested more than {depth} deep"
                )
            for source_path in sorted({vs.dset_name for vs in sources}):
                steps = [step for step in source_path.split("/") if step not in ("", ".")]
                asked = f"{where} (virtual source {source_path})"
                source = self._resolve(self._file, steps, asked, [_MAX_SOFT_LINKS])
                if isinstance(source, self._h5py.Dataset):
                    self._refuse_outside_storage(source, asked, depth=depth + 1)
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

    def attr(self, key: str, parts: tuple[str, ...] = ()) -> Any:
        node = self._node(parts)
        if node is None or key not in node.attrs:
            return None
        try:
            return node.attrs[key]
        except OSError as exc:
            where = "/" + "/".join(parts)
            raise ArchiveError(
                self.path, f"cannot read attribute {key!r} of {where} ({_first_line(exc)})"
            ) from exc

    def kind(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        if node is None:
            return None
        if isinstance(node, self._h5py.Dataset):
            return "array"
        return "group" if isinstance(node, self._h5py.Group) else "other"

    def array(self, parts: tuple[str, ...]) -> Any:
        return self._node(parts)

    def children(self, parts: tuple[str, ...]) -> list[str]:
        node = self._node(parts)
        return list(node.keys()) if isinstance(node, self._h5py.Group) else []

    def read(self, array: Any, selection: Any) -> np.ndarray:
        return np.asarray(array[selection])

    def read_error(self, exc: BaseException) -> str:
        return f"truncated or corrupt data ({_first_line(exc)})"

    def fill_value(self, array: Any) -> Any:
        return array.fillvalue

    def size_on_disk(self) -> int | None:
        return os.path.getsize(self.path)

    def refresh(self) -> bool:
        # A SWMR reader caches object headers: the root's attributes (the count of
        # complete checkpoints) stay as first read until the root is refreshed. h5py
        # wraps only H5Drefresh, so H5Orefresh is called from the library h5py loaded;
        # where it cannot be found, the file is opened again.
        refresh_object = _h5orefresh()
        root = self._file["/"]  # held: its identifier must stay open during the call
        if refresh_object is not None and refresh_object(root.id.id) >= 0:
            return True
        self._file.close()
        self._file = self._h5py.File(self.path, "r", swmr=True, rdcc_nbytes=0)
        return False

    def refresh_array(self, array: Any, parts: tuple[str, ...], n_rows: int | None) -> Any:
        array.refresh()  # H5Drefresh: its extent and chunk index as flushed by the writer
        return array

    def close(self) -> None:
        self._file.close()


@functools.cache
def _h5orefresh() -> Callable[[int], int] | None:
    """``H5Orefresh`` of the HDF5 library h5py uses, or None where it cannot be found.

    Looked up by path in the process's mapped libraries (Linux): another copy of the
    library would not know h5py's identifiers.
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "/libhdf5" in line}
    except OSError:
        return None
    for path in sorted(paths):
        name = os.path.basename(path)
        if not name.startswith("libhdf5.") and not name.startswith("libhdf5-"):
            continue  # libhdf5_hl, the high-level library, has no H5Orefresh
        try:
            function = ctypes.CDLL(path).H5Orefresh
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_int64]  # hid_t since HDF5 1.10
        function.restype = ctypes.c_int
        return function
    return None


class ZarrStore(Store):
    """A Zarr group (format 3, or 2) opened read-only.

    Every zarr operation runs through :meth:`_run`, on zarr's own event loop: when
    one fails, the concurrent tasks it started (the other chunks of a read, the
    other members of a listing) are waited for before the error is raised, so
    nothing is left running when the program reports it and exits.
    """

    backend = "zarr"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import zarr
        import zarr.errors
        from zarr.api import asynchronous as zarr_async

        self._zarr = zarr
        try:
            if is_url(path):
                store: Any = path
            else:
                from zarr.storage import LocalStore

                store = LocalStore(path, read_only=True)
            self._zarr_store = store
            self._root = self._run(zarr_async.open_group(store=store, mode="r"))
        except (zarr.errors.GroupNotFoundError, FileNotFoundError) as exc:
            raise ArchiveError(
                path, "not a Zarr store (no zarr.json or .zgroup at its root)"
            ) from exc
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise ArchiveError(path, f"cannot open Zarr store ({_first_line(exc)})") from exc

    @staticmethod
    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a zarr coroutine to completion on zarr's event loop (see the class)."""
        # zarr.core.sync.sync is what zarr's own synchronous API runs everything with.
        from zarr.core.sync import sync

        return sync(_settled(coro))

    def _node(self, parts: tuple[str, ...]) -> Any:
        """The ``AsyncGroup`` or ``AsyncArray`` at ``parts``, or ``None`` if absent."""
        if not parts:
            return self._root
        where = "/" + "/".join(parts)
        for name in parts:
            _check_member_name(self.path, name, where)
        try:
            return self._run(self._root.getitem("/".join(parts)))
        except KeyError:
            return None
        except (ValueError, TypeError, OSError) as exc:
            raise ArchiveError(self.path, f"cannot read {where} ({_first_line(exc)})") from exc

    def attrs(self, parts: tuple[str, ...] = ()) -> dict[str, Any]:
        node = self._node(parts)
        return dict(node.attrs) if node is not None else {}

    def kind(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        if node is None:
            return None
        from zarr import AsyncArray, AsyncGroup

        if isinstance(node, AsyncGroup):
            return "group"
        return "array" if isinstance(node, AsyncArray) else "other"

    def array(self, parts: tuple[str, ...]) -> Any:
        node = self._node(parts)
        return self._zarr.Array(node) if node is not None else None

    def read(self, array: Any, selection: Any) -> np.ndarray:
        return np.asarray(self._run(array.async_array.getitem(selection)))

    def children(self, parts: tuple[str, ...]) -> list[str]:
        """Names of the groups and arrays in the group at ``parts``.

        Taken from the store's listing, keeping the names that open as a group or an
        array: anything else there (a ``.partial`` file an interrupted writer left, a
        stray file or directory) is ignored, as the format says, and quietly (zarr's
        own listing warns about each).
        """
        from zarr import AsyncGroup

        node = self._node(parts)
        if not isinstance(node, AsyncGroup):
            return []

        async def listing() -> list[str]:
            return [key async for key in node.store.list_dir(node.path)]

        try:
            names = self._run(listing())
        except (ValueError, TypeError, OSError) as exc:
            where = "/" + "/".join(parts)
            raise ArchiveError(self.path, f"cannot list {where} ({_first_line(exc)})") from exc
        candidates = sorted(
            name for name in names if name != "zarr.json" and not name.startswith(".")
        )
        return [name for name in candidates if self.kind((*parts, name)) in ("group", "array")]

    def chunk_rows(self, array: Any) -> int:
        # With sharding, a shard is the unit of I/O; read whole shards.
        shards = getattr(array, "shards", None)
        return int((shards or array.chunks)[0])

    def fill_value(self, array: Any) -> Any:
        return array.fill_value

    def absent_rows(self, array: Any, n_rows: int) -> np.ndarray:
        """See :meth:`Store.absent_rows`.

        One listing of the array's keys; the storage key (chunk, or shard) of every
        block of rows is then looked up in it.
        """
        absent = np.zeros(n_rows, dtype=bool)
        grid = tuple(int(n) for n in (getattr(array, "shards", None) or array.chunks))
        shape = tuple(int(n) for n in array.shape)
        n_rows = min(n_rows, shape[0])
        if n_rows <= 0:
            return absent
        prefix = f"{array.path}/" if array.path else ""
        store = array.store_path.store

        async def listing() -> set[str]:
            return {key[len(prefix) :] async for key in store.list_prefix(prefix)}

        stored = self._run(listing())
        others = [range(-(-size // step)) for size, step in zip(shape[1:], grid[1:], strict=True)]
        for block in range(-(-n_rows // grid[0])):
            for rest in itertools.product(*others):
                if array.metadata.encode_chunk_key((block, *rest)) not in stored:
                    absent[block * grid[0] : (block + 1) * grid[0]] = True
                    break
        return absent

    def read_error(self, exc: BaseException) -> str:
        return f"corrupt or missing chunk ({_first_line(exc)})"

    def refresh(self) -> bool:
        from zarr.api import asynchronous as zarr_async

        try:  # the root's zarr.json again (zarr keeps the attributes it first read)
            self._root = self._run(zarr_async.open_group(store=self._zarr_store, mode="r"))
        except (ValueError, TypeError, KeyError, OSError) as exc:
            raise ArchiveError(
                self.path, f"cannot read the store again ({_first_line(exc)})"
            ) from exc
        return True

    def refresh_array(self, array: Any, parts: tuple[str, ...], n_rows: int | None) -> Any:
        # An array's metadata (its length) is read when it is opened: open it again
        # when the writer may have made it longer (or shorter, trimming at close).
        if n_rows is not None and array.shape[0] >= n_rows:
            return array
        fresh = self.array(parts)
        if fresh is None:
            raise ArchiveError(self.path, f"/{'/'.join(parts)} has gone")
        return fresh

    def close(self) -> None:
        """Nothing to release: zarr holds no open file between reads."""

    def size_on_disk(self) -> int | None:
        if is_url(self.path):
            return None
        total = 0
        for folder, _, files in os.walk(self.path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
        return total


async def _settled(coro: Coroutine[Any, Any, Any]) -> Any:
    """Await ``coro``; if it fails, first wait for the tasks started meanwhile.

    zarr reads the chunks of a selection (and the members of a group) in concurrent
    tasks gathered without cancelling the others when one fails: its exception
    comes back while the others still run. Left behind, they are destroyed pending
    when the interpreter exits, and asyncio prints "Task was destroyed but it is
    pending!", "Event loop is closed" and tracebacks on stderr, after the one-line
    error. Waiting (not cancelling: a chunk being decoded in a thread cannot be
    stopped) lets them finish; their own errors are retrieved and dropped, the
    first one is the one raised. Tasks that other threads start on the same loop
    meanwhile are waited for too, which costs only time.
    """
    current = asyncio.current_task()
    before = asyncio.all_tasks()
    try:
        return await coro
    except BaseException:
        # Tasks may start tasks of their own (a chunk read, then its decoding): a few
        # rounds, until none is left.
        for _ in range(_SETTLE_ROUNDS):
            started = asyncio.all_tasks() - before - {current}
            if not started:
                break
            await asyncio.wait(started)
            for task in started:
                if not task.cancelled():
                    task.exception()  # retrieved: asyncio would log it at exit
        raise


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
    if is_url(path):
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


#: Values JSON has (NaN and infinities are floats here; JSON writers make them null).
_JSON_SCALARS = (str, bool, int, float, type(None))
#: Longest text that stands in for a value with no JSON form.
_MAX_TEXT = 200


def json_value(value: Any, lossy: list[str] | None = None) -> Any:
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
    if type(value) in _JSON_SCALARS:
        return value
    if isinstance(value, _JSON_SCALARS) and not isinstance(value, np.generic):
        # A subclass (an IntEnum, a str subclass): its plain value.
        return next(base(value) for base in (bool, int, float, str) if isinstance(value, base))
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return json_value(value[()], lossy)
        if value.dtype.kind in "biuf":  # fast and exact: Python bool, int, float
            return value.tolist()
        return [json_value(item, lossy) for item in value]
    if isinstance(value, np.void):
        if value.dtype.names:
            return {name: json_value(value[name], lossy) for name in value.dtype.names}
    elif isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, (*_JSON_SCALARS, bytes)):
            return json_value(item, lossy)
    elif isinstance(value, Mapping):
        return {str(key): json_value(item, lossy) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        return [json_value(item, lossy) for item in value]
    elif isinstance(value, Path):
        return str(value)
    elif _is_h5py_empty(value):
        return None
    if lossy is not None:
        lossy.append(type(value).__name__)
    text = str(value).strip()
    text = text.splitlines()[0] if text else type(value).__name__
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _is_h5py_empty(value: Any) -> bool:
    h5py = sys.modules.get("h5py")  # only an HDF5 file, read with h5py, holds one
    return h5py is not None and isinstance(value, h5py.Empty)
