"""The HDF5 back end: a file opened read-only, in SWMR mode, never leaving it.

:class:`HDF5Store` resolves every link itself (external links, virtual datasets and
external storage that point outside the file are refused), opens the file through
a descriptor checked to be a regular file, reads its metadata first in a forked
probe process (:func:`probe_hdf5`: the HDF5 library can crash or hang on a corrupt
file), and inflates deflate-compressed chunks itself with the output bounded
(:func:`read_inflating`).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dynatrain.archive._backends import (
    Store,
    _check_member_name,
    clip_ranges,
    decode_member_name,
    first_line,
    gaps,
    names_phrase,
    open_regular_file,
    show_name,
)
from dynatrain.archive._files import descriptor_locked_elsewhere
from dynatrain.errors import ArchiveError

__all__ = ["HDF5Store", "inflates", "probe_hdf5", "read_inflating"]

#: Soft links followed while resolving one path (HDF5's own limit, H5L_NUM_LINKS).
_MAX_SOFT_LINKS = 16


def _fd_path(fd: int) -> str | None:
    """A path that opens the very file behind ``fd`` (Linux: ``/proc/self/fd/N``)."""
    path = f"/proc/self/fd/{fd}"
    return path if os.path.exists(path) else None


#: Seconds the HDF5 library gets to read an archive's metadata in the probe process.
PROBE_SECONDS = 60
#: Threads that never call h5py: a process running only these may fork the probe.
_PROBE_SAFE_THREADS = ("dynatrain-zarr", "asyncio")
#: Set in the probe process itself (it must not probe again).
_in_probe = False


def probe_hdf5(path: str) -> str | None:
    """Read an HDF5 archive's metadata in a forked child first; say if that crashed or hung.

    The HDF5 library can crash (segmentation fault) or loop forever on a corrupt
    file: a flipped byte in an attribute's datatype or in the global heap is enough.
    No exception can be caught then, so the parts of the archive that dynatrain
    reads through HDF5's metadata code (the structure, the attributes, the chunk
    indexes) are first read by a child process; if it dies from a signal or does
    not finish in ``PROBE_SECONDS``, the archive is refused in one line and this
    process never touches it.

    Returns ``None`` (go on) when the child finished, whatever it found (this
    process then finds the same problems itself), and also where no child can be
    forked safely: no ``fork`` (Windows), or other threads running that might hold
    h5py's lock.
    """
    if _in_probe or not hasattr(os, "fork"):
        return None
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if any(not t.name.startswith(_PROBE_SAFE_THREADS) for t in others):
        return None
    import warnings

    with warnings.catch_warnings():  # Python >= 3.12 warns about fork with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: read, then leave without running any exit handler
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            _probe_child(path)
        finally:
            os._exit(0)
    return _wait_probe(pid)


def _probe_child(path: str) -> None:
    global _in_probe
    _in_probe = True
    try:
        from dynatrain.archive.reader import Archive

        with Archive(path) as archive:
            archive.chunk_gaps()
    except BaseException:  # the parent finds and reports the same problem itself
        pass


def _wait_probe(pid: int) -> str | None:
    import signal
    import time

    deadline = time.monotonic() + PROBE_SECONDS
    pause = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return (
                f"the HDF5 library did not finish reading its metadata in {PROBE_SECONDS} s"
                " (a corrupt file)"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return f"the HDF5 library crashed ({name}) reading its metadata: the file is corrupt"
    return None


class HDF5Store(Store):
    """An HDF5 file opened read-only in SWMR mode (reads files still being written).

    The file is opened by dynatrain first (``O_NONBLOCK``, checked to be a regular
    file on the open descriptor, so a FIFO neither blocks nor gets through), and
    HDF5 then opens that same file through ``/proc/self/fd``: no other file can
    be put in its place between the check and HDF5's open. Where ``/proc`` is
    missing, HDF5 opens the path and the file it opened is compared (device and
    inode) with the one checked.
    """

    backend = "hdf5"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import h5py

        self._h5py = h5py
        fd = open_regular_file(path)
        try:
            checked = os.fstat(fd)
            if checked.st_size == 0:
                raise ArchiveError(path, "empty file, not an HDF5 archive")
            same_file = _fd_path(fd)
            opened = same_file or path
            # Looked at before HDF5 opens the file: a writer gone now never comes back
            # to this file (a new writer replaces it).
            self._writer_gone = descriptor_locked_elsewhere(fd) is False
            crashed = probe_hdf5(opened)
            if crashed is not None:
                raise ArchiveError(path, crashed)
            try:
                if not h5py.is_hdf5(opened):
                    raise ArchiveError(path, "not an HDF5 file (no HDF5 signature)")
                self._file = _open_swmr(opened, patient=not self._writer_gone)
            except (OSError, RuntimeError, ValueError, MemoryError) as exc:
                raise self._open_error(exc) from exc
        finally:
            os.close(fd)
        if same_file is None:
            self._check_same_file(checked)

    def _open_error(self, exc: BaseException) -> ArchiveError:
        text = str(exc)
        if "already open for write" in text or "not already open for SWMR" in text:
            return ArchiveError(
                self.path,
                "its writer did not close it and was not in SWMR mode, so HDF5 refuses"
                " to open it ('h5clear -s' clears the flag; the data may be incomplete)",
            )
        if isinstance(exc, MemoryError) or "alloc" in text.lower():
            return ArchiveError(self.path, f"cannot open HDF5 file: not enough memory ({text})")
        return ArchiveError(
            self.path, f"cannot open HDF5 file, truncated or corrupt ({first_line(exc)})"
        )

    def _check_same_file(self, checked: os.stat_result) -> None:
        try:
            handle = self._file.id.get_vfd_handle()
            opened = os.fstat(handle if isinstance(handle, int) else int(handle))
        except (OSError, TypeError, ValueError):
            return  # a driver without a descriptor: nothing to compare
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            self._file.close()
            raise ArchiveError(self.path, "the file was replaced while it was being opened")

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
            encoded = name.encode("utf-8", errors="surrogateescape")
            try:
                # Neither call follows the link: they only look at the group's entry.
                if not node.id.links.exists(encoded):
                    return None
                link_type = node.id.links.get_info(encoded).type
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                raise ArchiveError(
                    self.path, f"cannot read {show_name(here)} ({first_line(exc)})"
                ) from exc
            if link_type == h5l.TYPE_HARD:
                try:
                    node = node[encoded]
                except (OSError, KeyError, ValueError, RuntimeError) as exc:
                    raise ArchiveError(
                        self.path, f"cannot read {show_name(here)} ({first_line(exc)})"
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
                    f"{asked}{via} is an external link to {show_name(target)}; links to other"
                    " files are refused",
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
                    f"{where} is a virtual dataset reading {names_phrase(elsewhere)};"
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
            files = sorted({os.fsdecode(name) for name, *_ in dataset.external})
            raise ArchiveError(
                self.path,
                f"{where} stores its data in external file(s) {names_phrase(files)}; data in"
                " other files is refused",
            )

    def attrs(self, parts: tuple[str, ...] = ()) -> dict[str, Any]:
        node = self._node(parts)
        if node is None:
            return {}
        where = "/" + "/".join(parts)
        try:
            names = [
                decode_member_name(self.path, raw, f"the attributes of {where}")
                for raw in _attribute_names(node)
            ]
            return {name: node.attrs[name] for name in names}
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(
                self.path, f"cannot read attributes of {where} ({first_line(exc)})"
            ) from exc

    def attr(self, key: str, parts: tuple[str, ...] = ()) -> Any:
        node = self._node(parts)
        where = "/" + "/".join(parts)
        try:
            return node.attrs[key] if node is not None and key in node.attrs else None
        except (OSError, RuntimeError, TypeError, ValueError) as exc:
            raise ArchiveError(
                self.path, f"cannot read attribute {key!r} of {where} ({first_line(exc)})"
            ) from exc

    def refresh(self) -> bool:
        if not self._writer_gone and self._writer_ended():
            # Opened while its writer held it: opened again, without the retries that
            # only a writer's next flush could end (see _open_swmr).
            self._file.close()
            self.__init__(self.path)  # type: ignore[misc]
            return False
        # A SWMR reader caches object headers: the root's attributes (the count of
        # complete checkpoints) stay as first read until the root is refreshed. h5py
        # wraps only H5Drefresh, so H5Orefresh is called from the library h5py loaded;
        # where it cannot be found, the file is opened again.
        refresh_object = _hdf5_function("H5Orefresh", (ctypes.c_int64,))
        root = self._file["/"]  # held: its identifier must stay open during the call
        if refresh_object is not None and refresh_object(root.id.id) >= 0:
            return True
        self._file.close()
        self.__init__(self.path)  # type: ignore[misc]
        return False

    def _writer_ended(self) -> bool:
        """Whether the writer that held the open file has let go of it since."""
        try:
            handle = self._file.id.get_vfd_handle()
            fd = handle if isinstance(handle, int) else int(handle)
        except (OSError, TypeError, ValueError):
            return False  # a driver without a descriptor: cannot tell
        return descriptor_locked_elsewhere(fd) is False

    def refresh_array(self, array: Any, parts: tuple[str, ...], n_rows: int | None) -> Any:
        array.refresh()  # H5Drefresh: its extent and chunk index as flushed by the writer
        return array

    def kind(self, parts: tuple[str, ...]) -> str | None:
        node = self._node(parts)
        if node is None:
            return None
        if isinstance(node, self._h5py.Dataset):
            return "array"
        return "group" if isinstance(node, self._h5py.Group) else "other"

    def array(self, parts: tuple[str, ...]) -> Any:
        return self._node(parts)

    def members(self, parts: tuple[str, ...]) -> list[str]:
        node = self._node(parts)
        if not isinstance(node, self._h5py.Group):
            return []
        where = "/" + "/".join(parts)
        try:
            raw_names = list(node.id)  # bytes, as stored: h5py's keys() mixes in bytes
        except (OSError, RuntimeError, ValueError) as exc:
            raise ArchiveError(self.path, f"cannot list {where} ({first_line(exc)})") from exc
        return [decode_member_name(self.path, raw, where) for raw in raw_names]

    def read(self, array: Any, selection: Any) -> np.ndarray:
        if isinstance(selection, slice) and len(array.shape) == 1 and inflates(array):
            start, stop, _ = selection.indices(int(array.shape[0]))
            out = np.empty(max(stop - start, 0), dtype=array.dtype)
            read_inflating(array, (start,), out, self.path)
            return out
        return np.asarray(array[selection])

    def read_error(self, exc: BaseException) -> str:
        if isinstance(exc, MemoryError):
            return f"not enough memory ({first_line(exc)})"
        text = str(exc)
        if "filter" in text.lower() and ("plugin" in text or "not registered" in text):
            return f"an HDF5 filter it needs is not available here ({first_line(exc)})"
        if "alloc" in text.lower():
            return f"not enough memory ({first_line(exc)})"
        if "checksum" in text:
            return (
                "HDF5 metadata that fails its checksum: a writer killed in the middle of"
                f" writing it, or a corrupt file ({first_line(exc)})"
            )
        return f"truncated or corrupt data ({first_line(exc)})"

    def fill_value(self, array: Any) -> Any:
        return array.fillvalue

    def chunk_shape(self, array: Any) -> tuple[int, ...]:
        chunks = array.chunks
        return tuple(int(n) for n in chunks) if chunks else tuple(1 for _ in array.shape)

    def array_problem(self, array: Any, what: str) -> str | None:
        """Chunks too large (see :class:`Store`), or a filter that is not available here.

        A filter HDF5 cannot load would fail every read with a message about a
        "can't open directory" or "truncated" data; say which filter instead.
        """
        h5z = self._h5py.h5z
        try:
            plist = array.id.get_create_plist()
            filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
        except (OSError, RuntimeError, ValueError) as exc:
            return f"cannot read the storage settings of {what} ({first_line(exc)})"
        for code, _flags, _values, name in filters:
            if not h5z.filter_avail(code):
                label = name.decode("utf-8", errors="replace") if name else "unnamed"
                return (
                    f"{what} is compressed with HDF5 filter {code} ({show_name(label)}), which"
                    " is not available here (install the plugin that provides it, e.g. the"
                    " hdf5plugin package, or set HDF5_PLUGIN_PATH)"
                )
        return super().array_problem(array, what)

    def absent_ranges(self, array: Any, n_rows: int, start: int = 0) -> np.ndarray:
        """See :class:`Store`: chunks HDF5 never allocated, i.e. never written.

        In an HDF5 file a chunk exists from its first write on, so a row of the
        complete checkpoints in an absent chunk was never written, whatever the fill
        value says. The chunk index is asked how many chunks exist and, if some are
        missing, walked once; but where rows lie past the complete ones (a writer still
        running, or killed) or only new rows are asked for (``start``), the chunks of rows
        ``start .. n_rows - 1`` are looked up one by one instead (see
        :meth:`_probe_blocks`), up to ``_PROBED_CHUNKS`` of them.
        """
        stored = int(array.shape[0]) if array.shape else 0
        n_rows = min(n_rows, stored)
        empty = np.zeros((0, 2), dtype=np.int64)
        if n_rows <= 0 or array.size == 0:
            return empty
        h5d = self._h5py.h5d
        layout = array.id.get_create_plist().get_layout()
        if layout == h5d.CONTIGUOUS:
            stored = array.id.get_storage_size() > 0
            return empty if stored else np.array([[0, n_rows]], dtype=np.int64)
        if layout != h5d.CHUNKED:
            return empty  # compact (stored in the header) or virtual (sources checked)
        chunks = self.chunk_shape(array)
        grid = [-(-int(size) // step) for size, step in zip(array.shape, chunks, strict=True)]
        per_block = int(np.prod(grid[1:], dtype=np.int64))
        first, last = start // chunks[0], -(-n_rows // chunks[0])
        # Walking the index reads its entries for every stored row: safe once nothing is
        # stored past the complete rows (a closed archive), slow to look up row by row.
        only_complete = stored <= n_rows and start == 0
        if not only_complete and (last - first) * per_block <= _PROBED_CHUNKS:
            probed = self._probe_blocks(array, first, last, chunks, grid, start, n_rows)
            if probed is not None:
                return probed  # else no chunk index yet: the walk below finds none
        if array.id.get_num_chunks() >= int(np.prod(grid, dtype=np.int64)):
            return empty  # every chunk of the whole array exists
        counts: dict[int, int] = {}

        def count(info: Any) -> None:
            block = info.chunk_offset[0] // chunks[0]
            counts[block] = counts.get(block, 0) + 1

        if hasattr(array.id, "chunk_iter"):
            array.id.chunk_iter(count)
        else:  # older HDF5: one query per chunk
            for index in range(array.id.get_num_chunks()):
                count(array.id.get_chunk_info(index))
        present = [block for block, n in counts.items() if n >= per_block]
        ranges = gaps(present, -(-n_rows // chunks[0]), chunks[0], n_rows)
        return clip_ranges(ranges, start, n_rows)

    def _probe_blocks(
        self,
        array: Any,
        first: int,
        last: int,
        chunks: tuple[int, ...],
        grid: list[int],
        start: int,
        n_rows: int,
    ) -> np.ndarray | None:
        """Absent ranges among the blocks of rows ``first .. last - 1``, chunk by chunk.

        Each chunk is looked up by its coordinates, which reads no data (the one-byte
        buffer is refused for a chunk that exists, before anything is read) and touches
        only the chunk index's entries for these rows: walking the whole index
        (``chunk_iter``, ``get_num_chunks``) also reads its entries past the complete
        checkpoints, which a writer killed mid-append may have left half-written, and
        HDF5's reader in SWMR mode retries such a read with growing pauses for minutes.
        A lookup costs about 13 µs, whatever the file's size.

        None if a lookup gives a size no chunk of this array can have: HDF5 answers so
        for a dataset whose chunk index was never created (no chunk ever written).
        """
        import itertools

        chunk_bytes = int(np.prod(chunks, dtype=np.int64)) * array.dtype.itemsize
        filtered = array.id.get_create_plist().get_nfilters() > 0
        probe = np.empty(1, dtype=np.uint8)
        across = [range(0, n * step, step) for n, step in zip(grid[1:], chunks[1:], strict=True)]
        present = []
        for block in range(first, last):
            for rest in itertools.product(*across):
                try:
                    array.id.read_direct_chunk((block * chunks[0], *rest), out=probe)
                except ValueError as exc:  # it exists: the buffer is too small for it
                    size = _required_bytes(exc)
                    plausible = size is None or (
                        size <= 2 * chunk_bytes + 4096 if filtered else size == chunk_bytes
                    )
                    if not plausible:
                        return None
                    continue
                except RuntimeError as exc:
                    if "not allocated" in str(exc):
                        break  # a chunk of the block is absent
                    raise
            else:
                present.append(block)
        ranges = gaps(present, last, chunks[0], n_rows)
        return clip_ranges(ranges, start, n_rows)

    def size_on_disk(self) -> int | None:
        return os.path.getsize(self.path)

    def close(self) -> None:
        self._file.close()


def _required_bytes(exc: ValueError) -> int | None:
    """The chunk size in h5py's "out buffer is only 1 bytes, N bytes required"."""
    import re

    match = re.search(r"(\d+) bytes required", str(exc))
    return int(match.group(1)) if match else None


#: Most chunks looked up one by one to find the absent ones (else the index is walked).
_PROBED_CHUNKS = 250_000

_H5Z_FILTER_DEFLATE = 1
_H5Z_FILTER_SHUFFLE = 2


def inflates(dataset: Any) -> bool:
    """Whether dynatrain inflates this dataset's chunks itself (see :func:`read_inflating`).

    True for chunked datasets compressed with deflate (gzip), shuffled or not, and
    nothing else (other pipelines are left to HDF5).
    """
    if dataset.chunks is None:
        return False
    plist = dataset.id.get_create_plist()
    codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    return _H5Z_FILTER_DEFLATE in codes and set(codes) <= {
        _H5Z_FILTER_DEFLATE,
        _H5Z_FILTER_SHUFFLE,
    }


def read_inflating(dataset: Any, origin: tuple[int, ...], out: np.ndarray, path: str) -> None:
    """Read ``dataset[origin : origin + out.shape]`` into ``out``, inflating chunks here.

    HDF5's deflate filter inflates a chunk as far as its stream goes, growing its
    buffer as needed, and then keeps the chunk's first bytes: 500 KB of deflated
    zeros stored as a 96-byte chunk cost 512 MB of memory and are read without a
    word. Here each chunk's stored bytes are read as they are
    (``read_direct_chunk``) and inflated with the output bounded by the chunk's
    size; a stream that inflates to more is refused with :class:`ArchiveError`
    (it cannot be a valid chunk), one that inflates to less is corrupt
    (``ValueError``). Each chunk is inflated once. A chunk that was never written
    reads as the fill value.
    """
    chunks = tuple(int(n) for n in dataset.chunks)
    dtype = np.dtype(dataset.dtype)
    chunk_bytes = int(np.prod(chunks, dtype=np.int64)) * dtype.itemsize
    plist = dataset.id.get_create_plist()
    codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    fill = dataset.fillvalue
    stops = [start + size for start, size in zip(origin, out.shape, strict=True)]
    if out.size == 0:
        return
    grid = [
        range(start // step, (stop - 1) // step + 1)
        for start, stop, step in zip(origin, stops, chunks, strict=True)
    ]
    for index in itertools.product(*grid):
        offset = tuple(i * step for i, step in zip(index, chunks, strict=True))
        try:
            mask, stored = dataset.id.read_direct_chunk(offset)
        except (OSError, RuntimeError, KeyError, ValueError):
            chunk = None  # never written: the fill value
        else:
            chunk = _decode_chunk(stored, mask, codes, chunk_bytes, dtype, chunks, offset, path)
        source, target = [], []
        for first, stop, start, step in zip(offset, stops, origin, chunks, strict=True):
            lo, hi = max(first, start), min(first + step, stop)
            source.append(slice(lo - first, hi - first))
            target.append(slice(lo - start, hi - start))
        out[tuple(target)] = fill if chunk is None else chunk[tuple(source)]


def _decode_chunk(
    stored: bytes,
    mask: int,
    codes: list[int],
    chunk_bytes: int,
    dtype: np.dtype,
    chunks: tuple[int, ...],
    offset: tuple[int, ...],
    path: str,
) -> np.ndarray:
    """Undo the filters of one chunk (in reverse order, skipping those its mask skips)."""
    data: bytes | np.ndarray = stored
    for i in reversed(range(len(codes))):
        if mask & (1 << i):
            continue
        if codes[i] == _H5Z_FILTER_DEFLATE:
            inflater = zlib.decompressobj()
            try:
                data = inflater.decompress(bytes(data), chunk_bytes + 1)
            except zlib.error as exc:
                raise ValueError(f"chunk at {list(offset)}: {exc}") from None
            if len(data) > chunk_bytes:
                raise ArchiveError(
                    path,
                    f"the chunk at {list(offset)} inflates to more than the {chunk_bytes}"
                    " bytes of a chunk (a decompression bomb, or corrupt)",
                )
        else:  # shuffle: bytes were grouped by position within the item
            raw = np.frombuffer(bytes(data), dtype=np.uint8)
            whole = raw.size - raw.size % dtype.itemsize
            items = raw[:whole].reshape(dtype.itemsize, -1).T.reshape(-1)
            data = np.concatenate([items, raw[whole:]])
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if raw.size != chunk_bytes:
        raise ValueError(f"chunk at {list(offset)} has {raw.size} bytes, expected {chunk_bytes}")
    return raw.view(dtype).reshape(chunks)


def _attribute_names(node: Any) -> list[bytes]:
    """Names of an HDF5 object's attributes, as stored (bytes)."""
    h5a = sys.modules["h5py"].h5a
    names: list[bytes] = []

    def collect(name: bytes, *_: Any) -> None:
        names.append(name)

    h5a.iterate(node.id, collect)
    return names


@functools.cache
def _hdf5_function(name: str, argtypes: tuple[Any, ...]) -> Callable[..., int] | None:
    """The C function ``name`` of the HDF5 library h5py uses (returning ``int``), or None.

    Looked up by path in the process's mapped libraries (Linux): another copy of the
    library would not know h5py's identifiers. ``argtypes`` are its ctypes argument
    types (``hid_t`` is 64 bits since HDF5 1.10).
    """
    import h5py  # noqa: F401  # loads the library looked up below

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "/libhdf5" in line}
    except OSError:
        return None
    for path in sorted(paths):
        basename = os.path.basename(path)
        if not basename.startswith(("libhdf5.", "libhdf5-")):
            continue  # libhdf5_hl, the high-level library, has none of the core API
        try:
            function = getattr(ctypes.CDLL(path), name)
        except (OSError, AttributeError):
            continue
        function.argtypes = list(argtypes)
        function.restype = ctypes.c_int
        return function
    return None


#: Metadata read attempts for a file no writer holds: HDF5's own number outside SWMR
#: mode. In SWMR mode HDF5 makes 100 attempts at a metadata read whose checksum fails,
#: pausing 1 ns after the first and twice as long after each next one (34 s after the
#: 36th): a writer's flush in progress ends them at once, a torn entry never.
_WRITERLESS_READ_ATTEMPTS = 1


def _open_swmr(path: str, *, patient: bool) -> Any:
    """Open ``path`` as ``h5py.File(path, "r", swmr=True)`` does, without a chunk cache.

    ``patient=False``: a metadata read whose checksum fails is not retried. A writer
    killed while the kernel copied one of its metadata writes into the page cache
    leaves that entry torn (new bytes up to a page boundary, old ones after), its
    checksum wrong for good; HDF5 in SWMR mode would retry the read with pauses that
    double without end (see ``_WRITERLESS_READ_ATTEMPTS``), so a file that no writer
    holds fails at once instead. Where HDF5's ``H5Pset_metadata_read_attempts``
    cannot be reached, it retries.
    """
    import h5py

    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)  # as h5py
    # No chunk cache: every chunk is read once, and the cache would only add a copy
    # (reads are a third faster without it).
    cache = list(fapl.get_cache())
    cache[2] = 0
    fapl.set_cache(*cache)
    if not patient:
        set_attempts = _hdf5_function(
            "H5Pset_metadata_read_attempts", (ctypes.c_int64, ctypes.c_uint)
        )
        if set_attempts is not None:
            set_attempts(fapl.id, _WRITERLESS_READ_ATTEMPTS)
    flags = h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ
    return h5py.File(h5py.h5f.open(os.fsencode(path), flags, fapl=fapl))
