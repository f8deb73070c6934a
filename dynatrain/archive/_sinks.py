"""The back-end half of :class:`~dynatrain.archive.writer.ArchiveWriter`.

A sink creates the archive (holding the one-writer lock of :mod:`._files` until it
closes), creates the arrays, writes one row per array and checkpoint, and makes what
it wrote durable before counting it. Every append costs the same at checkpoint
100,000 as at 1,000:

* arrays grow geometrically (their length is a capacity; ``complete_checkpoints``
  says how much is valid), so array metadata is rewritten O(log T) times;
* nothing the sink keeps grows with T.

HDF5 (h5py, SWMR mode): a chunk goes straight to the file (``write_direct_chunk``)
when unfiltered, through the filters otherwise; one flush writes data, chunk index
and lengths, then the count is written and flushed. There is no chunk cache: with
h5py's default one (1 MiB per dataset), each flush scanned every cached chunk, and an
append at checkpoint 3,000 took 4 times as long as at checkpoint 500. File space is
paged (4 KiB): HDF5 places a metadata entry smaller than a page inside one page.
Linux copies a write into the page cache page by page and, when the process is
killed, stops between two pages; an entry across a page boundary (a chunk index's
72-byte header at offset 8138, say) was then left half new, half old, its checksum
wrong for good, and HDF5 could no longer read any chunk of that array.

Zarr (format 3, local directory store) is written directly from the specification,
not through zarr-python, whose per-call overhead was 2 ms per array and append. Its
chunks hold many checkpoints and are stored uncompressed (the ``bytes`` codec
alone), so that a row has a fixed place in its chunk file: a chunk is created whole
(the rows to come hold the fill value) and each later row is written in place. A
reader never sees a counted row change (a write only touches rows beyond
``complete_checkpoints``, and the bytes of the other rows are rewritten by nobody),
and a process killed in the middle of a write damages only the row being written,
which is not counted yet. Metadata documents are replaced atomically
(:func:`~dynatrain.archive._files.write_atomically`). zarr reads the result (the
tests check it).

Zarr in object storage (an fsspec URL, :class:`FsspecSink`): the same layout, but an
object store has neither in-place writes nor locks. An object is replaced whole and
atomically (a reader gets the old object or the new one), so the chunk being filled
is kept in memory and uploaded whole at each commit, with every other changed chunk,
concurrently; only then is the root's ``complete_checkpoints`` uploaded. A counted
row is in every later version of its chunk, so a writer killed at any moment (in
the middle of an upload included) leaves every counted checkpoint readable. One
writer per archive is enforced with conditional writes where the store has them
(see :class:`FsspecSink`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dynatrain.archive import format as fmt
from dynatrain.archive._files import (
    file_locked_elsewhere,
    lock_directory,
    lock_file,
    same_file,
    write_atomically,
)
from dynatrain.errors import ArchiveError, ArchiveExistsError, DynatrainError, InputError

__all__ = ["ArraySpec", "FsspecSink", "HDF5Sink", "Sink", "ZarrSink"]

WriteMode = Literal["w-", "w"]
#: One row of an array: a checkpoint's activations, or a scalar (epoch, metric, ...).
Row = np.ndarray | np.generic

#: HDF5 activations (unfiltered): checkpoints per chunk, as many as fit in this many bytes.
_HDF5_CHUNK_BYTES = 4 * 2**10
#: Zarr activations: as many as fit in this many bytes. A 100,000-checkpoint store of
#: 50 layers of 64 float32 values is then 20 thousand files, not 5 million.
_ZARR_CHUNK_BYTES = 64 * 2**10
#: HDF5 file-space page: a metadata entry smaller than this never straddles a multiple
#: of it. Memory pages are 4 KiB or a multiple of it, so a kill cannot tear the entry.
_HDF5_PAGE_BYTES = 4096
#: Tries at taking a lock whose file was replaced between opening and locking it.
_LOCK_TRIES = 5
#: How long a writer that has just created a Zarr store waits for a lock that another
#: writer holds only to look at the store (seconds).
_NEW_STORE_LOCK_WAIT = 2.0


@dataclass(frozen=True)
class ArraySpec:
    """One per-checkpoint array: its path, the shape and type of one row, its chunking."""

    parts: tuple[str, ...]
    row_shape: tuple[int, ...]
    dtype: np.dtype
    chunk_rows: int

    @property
    def fill_value(self) -> Any:
        """NaN for floats (a never-written row reads as missing), 0 otherwise."""
        return np.nan if self.dtype.kind == "f" else 0


def os_reason(exc: BaseException) -> str:
    """The operating system's words for an error, else the exception's first line.

    h5py's OSErrors carry the system's ``errno`` under HDF5's own long message
    (which names internal files); the system's words are what a user needs.
    """
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and isinstance(code, int) and code > 0:
        words = os.strerror(code)
        return words[0].lower() + words[1:]
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Sink(ABC):
    """Creates, grows, writes and closes one archive (see the module notes)."""

    path: str

    @abstractmethod
    def chunk_rows(self, row_nbytes: int) -> int:
        """Default checkpoints per storage chunk of activations ``row_nbytes`` bytes long."""

    @abstractmethod
    def init_root(self, attrs: dict[str, Any]) -> None:
        """Write the root attributes of the new archive (``complete_checkpoints`` = 0)."""

    @abstractmethod
    def create(
        self,
        specs: Iterable[ArraySpec],
        layer_order: list[str],
        capacity: int,
        layer_attributes: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Create every array, ``capacity`` rows long, the ``/layers`` order, layer attributes."""

    @abstractmethod
    def grow(self, specs: Iterable[ArraySpec], capacity: int) -> None:
        """Make every array ``capacity`` rows long (longer or, on close, shorter)."""

    @abstractmethod
    def write_row(self, spec: ArraySpec, index: int, row: Row) -> None:
        """Write row ``index`` of an array (rows come in order, from 0)."""

    @abstractmethod
    def commit(self, n_checkpoints: int) -> None:
        """Make everything written durable, then set ``complete_checkpoints``, durably."""

    @abstractmethod
    def close(self) -> None:
        """Close the archive and release the lock."""

    @abstractmethod
    def abort(self) -> None:
        """After a failed write: let go of the archive as it is on disk, never raising."""


# -- HDF5 ----------------------------------------------------------------------------------------


class HDF5Sink(Sink):
    """HDF5 in SWMR mode, built under a staging name until SWMR mode is on.

    A file killed before it enters SWMR mode cannot be opened by anyone (its "open
    for write" flag stays set), and objects can only be created before SWMR mode. So
    the file is created as ``<path>.incomplete`` and renamed to ``path`` once its
    structure exists and SWMR mode is on (at the first append): ``path`` is readable
    at every moment after that, and never half-built before.

    The lock is taken on the staging file and so, after the rename, on the archive.
    Every writer takes the staging file's lock first, then checks that nobody holds
    the archive's: two writers can never both get past the first step.
    """

    def __init__(self, path: str, mode: WriteMode, compression: str | None) -> None:
        import h5py

        self.path = path
        self._compression = compression
        self._exclusive = mode == "w-"
        self._staging: str | None = f"{path}.incomplete"
        self._lock_fd = self._lock_staging(mode)
        try:
            # No chunk cache: chunks are written whole, and a cache only made each
            # flush slower as the archive grew. Paged file space: no metadata entry
            # that a kill could cut in two (see the module notes).
            self._file = h5py.File(
                self._staging,
                "w",
                libver="latest",
                rdcc_nbytes=0,
                fs_strategy="page",
                fs_page_size=_HDF5_PAGE_BYTES,
            )
        except BaseException as exc:
            self._drop_staging()
            if isinstance(exc, OSError):
                raise ArchiveError(path, f"cannot create the archive ({os_reason(exc)})") from None
            raise
        self._datasets: dict[tuple[str, ...], tuple[Any, bool]] = {}  # (id, unfiltered)
        self._buffers: dict[tuple[str, ...], np.ndarray] = {}
        self._complete_attr: Any = None

    def _lock_staging(self, mode: WriteMode) -> int:
        """Open and lock the staging file; refuse if another writer has the archive."""
        assert self._staging is not None
        for _ in range(_LOCK_TRIES):
            try:
                fd = os.open(self._staging, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise ArchiveError(
                    self.path, f"cannot create the archive ({os_reason(exc)})"
                ) from None
            if not lock_file(fd, self.path):
                os.close(fd)
                raise ArchiveError(
                    self.path, "another writer is creating this archive; one writer at a time"
                )
            if not same_file(fd, self._staging):
                os.close(fd)  # replaced between open and lock: try again
                continue
            if os.fstat(fd).st_nlink > 1:
                # A writer killed between linking its file to `path` and removing the
                # staging name: that file is the archive itself, leave it alone.
                os.unlink(self._staging)
                os.close(fd)
                continue
            try:
                self._check_destination(mode)
            except BaseException:
                os.unlink(self._staging)  # ours (locked): nobody else uses it
                os.close(fd)
                raise
            return fd
        raise ArchiveError(self.path, "cannot lock the archive: its files keep being replaced")

    def _check_destination(self, mode: WriteMode) -> None:
        if not os.path.lexists(self.path):
            return
        if os.path.isdir(self.path):
            raise ArchiveError(self.path, "is a directory; an HDF5 archive is a file")
        if file_locked_elsewhere(self.path):
            raise ArchiveError(
                self.path, "is being written by another writer; one writer at a time"
            )
        if mode == "w-":
            raise already_exists(self.path)

    def _drop_staging(self) -> None:
        """Remove the unpublished staging file and release the lock (best effort)."""
        if self._staging is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._staging)
            self._staging = None
        self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1

    def _publish(self, mode_exclusive: bool) -> None:
        """Give the staging file its real name (atomically)."""
        if self._staging is None:
            return
        if mode_exclusive:
            try:
                os.link(self._staging, self.path)  # fails if `path` appeared meanwhile
            except FileExistsError:
                raise already_exists(self.path) from None
            except OSError:  # no hard links on this file system
                if os.path.lexists(self.path):
                    raise already_exists(self.path) from None
                os.replace(self._staging, self.path)
            else:
                os.unlink(self._staging)
        else:
            os.replace(self._staging, self.path)
        self._staging = None

    def chunk_rows(self, row_nbytes: int) -> int:
        # A chunk is rewritten whole at each append until it is full (in place: it
        # keeps its address, so the chunk index changes once per chunk, not per
        # append). One row per chunk made the index grow by one entry per append, and
        # a flush at checkpoint 12,000 took 2.5 times as long as at 2,000.
        if self._compression is not None:
            return 1  # a compressed chunk changes size: rewriting it would move it
        return max(1, _HDF5_CHUNK_BYTES // row_nbytes)

    def init_root(self, attrs: dict[str, Any]) -> None:
        for key, value in attrs.items():
            self._file.attrs[key] = value
        self._file.flush()

    def create(
        self,
        specs: Iterable[ArraySpec],
        layer_order: list[str],
        capacity: int,
        layer_attributes: Mapping[str, Mapping[str, Any]],
    ) -> None:
        layers = self._file.require_group(fmt.LAYERS)
        layers.attrs[fmt.ORDER_ATTR] = layer_order
        for name, attributes in layer_attributes.items():
            group = layers.require_group(name)
            for key, value in attributes.items():
                group.attrs[key] = value
        for spec in specs:
            compression = self._compression if spec.parts[-1] == fmt.ACTIVATIONS else None
            dataset = self._file.create_dataset(
                "/".join(spec.parts),
                shape=(capacity, *spec.row_shape),
                maxshape=(None, *spec.row_shape),
                chunks=(spec.chunk_rows, *spec.row_shape),
                dtype=spec.dtype,
                fillvalue=spec.fill_value,
                compression=compression,
                shuffle=compression is not None,
                track_times=False,  # identical inputs give identical files
            )
            self._datasets[spec.parts] = (dataset.id, compression is None)
        self._file.flush()
        self._file.swmr_mode = True
        self._publish(self._exclusive)

    def grow(self, specs: Iterable[ArraySpec], capacity: int) -> None:
        for spec in specs:
            self._datasets[spec.parts][0].set_extent((capacity, *spec.row_shape))

    def write_row(self, spec: ArraySpec, index: int, row: Row) -> None:
        dataset_id, unfiltered = self._datasets[spec.parts]
        chunk, position = divmod(index, spec.chunk_rows)
        offset = (chunk * spec.chunk_rows, *(0 for _ in spec.row_shape))
        values = self._buffers.get(spec.parts)  # the chunk being filled, written whole
        if values is None:
            values = np.full((spec.chunk_rows, *spec.row_shape), spec.fill_value, spec.dtype)
            self._buffers[spec.parts] = values
        elif position == 0:
            values[...] = spec.fill_value
        values[position] = row
        if unfiltered:
            # Past HDF5's caches, in place once the chunk exists (its size never
            # changes). Writing only the new row at the chunk's file offset would be
            # cheaper, but asking HDF5 for that offset costs time linear in the number
            # of chunks (get_chunk_info_by_coord: 6 ms at 10,000 chunks).
            dataset_id.write_direct_chunk(offset, values)
        else:
            self._write_filtered(dataset_id, offset, values)

    @staticmethod
    def _write_filtered(dataset_id: Any, offset: tuple[int, ...], values: np.ndarray) -> None:
        import h5py

        rows = min(len(values), dataset_id.shape[0] - offset[0])
        shape = (rows, *values.shape[1:])
        file_space = dataset_id.get_space()
        file_space.select_hyperslab(offset, shape)
        dataset_id.write(h5py.h5s.create_simple(shape), file_space, values[:rows])

    def commit(self, n_checkpoints: int) -> None:
        import h5py

        # Data, chunk index and array lengths first, then the count: at no moment does
        # the file count a checkpoint whose data is not in it.
        self._file.flush()
        if self._complete_attr is None:
            self._complete_attr = h5py.h5a.open(self._file.id, fmt.COMPLETE_ATTR.encode())
        self._complete_attr.write(np.asarray(n_checkpoints, dtype=np.int64))
        self._file.flush()

    def close(self) -> None:
        try:
            self._complete_attr = None
            self._file.close()
            _clear_extension_times(self._lock_fd)
            self._publish(self._exclusive)  # an archive with no checkpoint is still valid
        finally:
            self._release()

    def abort(self) -> None:
        self._complete_attr = None
        _abandon_hdf5_file(self._file)
        if self._staging is not None:
            self._drop_staging()  # nothing was published: nothing to keep
        self._release()


def _clear_extension_times(fd: int) -> None:
    """Zero the four timestamps of the superblock extension of the closed HDF5 file ``fd``.

    Paged file space keeps its settings in the superblock extension, an object header
    that HDF5 creates with the group defaults, times included, and updates on closing
    (``track_times`` does not reach it): two archives of identical inputs differed in
    these bytes when written in different seconds. The header (version 2) is checked
    first, layout and checksum; anything else is left as it is (a valid file whose
    bytes carry the time). It lies inside one page (see the module notes), so the
    single write that replaces it cannot be torn.
    """
    if not hasattr(os, "pread"):  # pragma: no cover - Windows
        return
    with contextlib.suppress(OSError):
        superblock = os.pread(fd, 48, 0)
        # Signature, version 2 or 3, 8-byte offsets and lengths; the extension's
        # address follows the base address.
        if superblock[:8] != b"\x89HDF\r\n\x1a\n" or superblock[8:11] not in (
            b"\x02\x08\x08",
            b"\x03\x08\x08",
        ):
            return
        address = int.from_bytes(superblock[20:28], "little")
        header = os.pread(fd, _HDF5_PAGE_BYTES, address)
        if header[:5] != b"OHDR\x02" or not header[5] & _OHDR_TIMES:
            return
        flags = header[5]
        at = 6 + 16 + (4 if flags & _OHDR_PHASE_CHANGE else 0)  # the size of chunk 0
        width = 1 << (flags & 0x03)
        end = at + width + int.from_bytes(header[at : at + width], "little")
        if end + 4 > len(header) or _lookup3(header[:end]) != int.from_bytes(
            header[end : end + 4], "little"
        ):
            return
        patched = bytearray(header[: end + 4])
        patched[6:22] = bytes(16)
        patched[end:] = _lookup3(bytes(patched[:end])).to_bytes(4, "little")
        os.pwrite(fd, bytes(patched), address)


#: Object header (version 2) flags: times stored; attribute phase change values stored.
_OHDR_TIMES = 0x20
_OHDR_PHASE_CHANGE = 0x10


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 ``hashlittle(data, 0)``: the checksum of HDF5's metadata."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    a = b = c = (0xDEADBEEF + len(data)) & mask
    rest = len(data)
    i = 0
    while rest > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & mask
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & mask
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & mask
        a = ((a - c) & mask) ^ rot(c, 4)
        c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 6)
        a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 8)
        b = (b + a) & mask
        a = ((a - c) & mask) ^ rot(c, 16)
        c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 19)
        a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 4)
        b = (b + a) & mask
        rest -= 12
        i += 12
    if rest == 0:
        return c
    tail = data[i:] + bytes(12 - rest)
    a = (a + int.from_bytes(tail[0:4], "little")) & mask
    b = (b + int.from_bytes(tail[4:8], "little")) & mask
    c = (c + int.from_bytes(tail[8:12], "little")) & mask
    c = ((c ^ b) - rot(b, 14)) & mask
    a = ((a ^ c) - rot(c, 11)) & mask
    b = ((b ^ a) - rot(a, 25)) & mask
    c = ((c ^ b) - rot(b, 16)) & mask
    a = ((a ^ c) - rot(c, 4)) & mask
    b = ((b ^ a) - rot(a, 14)) & mask
    c = ((c ^ b) - rot(b, 24)) & mask
    return c


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset`` (a regular file takes it at once unless it is full)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _abandon_hdf5_file(file: Any) -> None:
    """Close an HDF5 file after a failed write, without raising and without a crash.

    After a failed write (a full disk) the library holds metadata it cannot write;
    ``close()`` then failed half-way, and the interpreter crashed at exit trying
    again (HDF5 closing datasets of a half-closed file). So the library's file
    descriptor is pointed at a scratch file first: the close writes its last
    metadata there, where it is thrown away, and succeeds. The archive stays as the
    last successful flush left it, as if the writer had been killed there, which
    readers handle (``complete_checkpoints`` counts only what was flushed before).
    """
    import tempfile

    if not file.id.valid:
        return
    with contextlib.suppress(Exception):
        descriptor = file.id.get_vfd_handle()
        folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
        scratch, scratch_path = tempfile.mkstemp(prefix="dynatrain-abandoned-", dir=folder)
        os.unlink(scratch_path)
        os.dup2(scratch, descriptor)
        os.close(scratch)
    try:
        file.close()
    except Exception:
        # Even the scratch file refused (a file size limit): leave the file open in
        # the library, and stop Python from trying to release it again at exit.
        with contextlib.suppress(Exception):
            file.id.locked = True


# -- Zarr ----------------------------------------------------------------------------------------

#: The chunk encoding of every array: raw little-endian bytes, so that a row has a
#: fixed place in its chunk file (see the module notes).
_ZARR_CODECS = ({"name": "bytes", "configuration": {"endian": "little"}},)
_ZARR_METADATA = "zarr.json"


def _zarr_json(document: dict[str, Any]) -> bytes:
    # As zarr writes it: indented, NaN and infinities as JSON extensions.
    return json.dumps(document, indent=2, allow_nan=True).encode()


def _zarr_groups(
    specs: list[ArraySpec],
    layer_order: list[str],
    layer_attributes: Mapping[str, Mapping[str, Any]],
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every group a Zarr archive of these arrays needs, with its attributes."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {(fmt.LAYERS,): {fmt.ORDER_ATTR: layer_order}}
    for name, attributes in layer_attributes.items():
        groups[(fmt.LAYERS, name)] = dict(attributes)
    for spec in specs:
        for depth in range(1, len(spec.parts)):
            groups.setdefault(spec.parts[:depth], {})
    return groups


def _group_document(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"attributes": attributes, "zarr_format": 3, "node_type": "group"}


def _array_document(spec: ArraySpec, capacity: int) -> dict[str, Any]:
    fill: Any = "NaN" if spec.dtype.kind == "f" else 0
    return {
        "shape": [capacity, *spec.row_shape],
        "data_type": spec.dtype.name,
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": [spec.chunk_rows, *spec.row_shape]},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": list(_ZARR_CODECS),
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


class ZarrSink(Sink):
    """A Zarr (format 3) directory store, locked with ``flock`` on its directory."""

    def __init__(self, path: str, mode: WriteMode, compression: str | None) -> None:
        self.path = path
        self._lock_fd = self._open_locked(mode)
        self._root_attrs: dict[str, Any] = {}
        self._chunk_files: dict[tuple[str, ...], str] = {}  # the chunk being filled

    def _open_locked(self, mode: WriteMode) -> int:
        path = self.path
        if os.path.lexists(path) and not os.path.isdir(path):
            raise ArchiveError(path, "is a file; a Zarr archive is a directory store")
        for _ in range(_LOCK_TRIES):
            try:
                os.mkdir(path)
                created = True
            except FileExistsError:
                created = False
            except OSError as exc:
                raise ArchiveError(path, f"cannot create the archive ({os_reason(exc)})") from None
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # removed meanwhile: start again
            except OSError as exc:
                raise ArchiveError(path, f"cannot open the archive ({os_reason(exc)})") from None
            try:
                if not self._lock(fd, created, path):
                    raise ArchiveError(
                        path, "is being written by another writer; one writer at a time"
                    )
                if not same_file(fd, path):
                    os.close(fd)
                    continue
                if created:
                    if os.listdir(path):  # another writer filled it before we locked it
                        raise already_exists(path)
                elif mode == "w-":
                    raise already_exists(path)
                else:
                    self._clear(path)
            except BaseException:
                os.close(fd)
                raise
            return fd
        raise ArchiveError(path, "cannot lock the archive: it keeps being replaced")

    @staticmethod
    def _lock(fd: int, created: bool, path: str) -> bool:
        """Lock the store; a store we have just made is worth a short wait.

        Another writer that finds the new store existing takes the lock only for as
        long as it takes to refuse (mode ``"w-"``), so a brief wait sorts them out.
        """
        deadline = time.monotonic() + (_NEW_STORE_LOCK_WAIT if created else 0.0)
        while not lock_directory(fd, path):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    @staticmethod
    def _clear(path: str) -> None:
        """Empty an existing store before replacing it; refuse anything that is not one."""
        import shutil

        entries = os.listdir(path)
        if entries and not {_ZARR_METADATA, ".zgroup", ".zarray"} & set(entries):
            raise ArchiveError(path, "is a folder but not a Zarr store; refusing to replace it")
        for name in entries:
            entry = os.path.join(path, name)
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.rmtree(entry)
            else:
                os.unlink(entry)

    def _node(self, parts: tuple[str, ...]) -> str:
        return os.path.join(self.path, *parts)

    def _write_document(self, parts: tuple[str, ...], document: dict[str, Any]) -> None:
        folder = self._node(parts)
        os.makedirs(folder, exist_ok=True)
        write_atomically(os.path.join(folder, _ZARR_METADATA), _zarr_json(document))

    def chunk_rows(self, row_nbytes: int) -> int:
        # A chunk is created whole, so a short run's last chunk is mostly fill values.
        return max(1, _ZARR_CHUNK_BYTES // row_nbytes)

    def init_root(self, attrs: dict[str, Any]) -> None:
        self._root_attrs = dict(attrs)
        self._write_document((), _group_document(attrs))

    def create(
        self,
        specs: Iterable[ArraySpec],
        layer_order: list[str],
        capacity: int,
        layer_attributes: Mapping[str, Mapping[str, Any]],
    ) -> None:
        specs = list(specs)
        groups = _zarr_groups(specs, layer_order, layer_attributes)
        for parts, attributes in sorted(groups.items()):
            self._write_document(parts, _group_document(attributes))
        self.grow(specs, capacity)

    def grow(self, specs: Iterable[ArraySpec], capacity: int) -> None:
        for spec in specs:
            self._write_document(spec.parts, _array_document(spec, capacity))

    def write_row(self, spec: ArraySpec, index: int, row: Row) -> None:
        chunk, position = divmod(index, spec.chunk_rows)
        if position == 0:  # a new chunk: all of it, the rows to come as fill values
            # The default chunk key encoding: c/<chunk>/0/0 (a chunk spans the other axes).
            key = ["c", str(chunk)] + ["0"] * len(spec.row_shape)
            folder = os.path.join(self._node(spec.parts), *key[:-1])
            os.makedirs(folder, exist_ok=True)
            chunk_file = self._chunk_files[spec.parts] = os.path.join(folder, key[-1])
            values = np.full((spec.chunk_rows, *spec.row_shape), spec.fill_value, spec.dtype)
            values[0] = row
            write_atomically(chunk_file, values)
            return
        data = np.asarray(row, dtype=spec.dtype).tobytes()
        fd = os.open(self._chunk_files[spec.parts], os.O_WRONLY | os.O_CLOEXEC)
        try:
            _write_all(fd, data, position * len(data))
        finally:
            os.close(fd)

    def commit(self, n_checkpoints: int) -> None:
        # Every row above is already in its file: counting it now is safe.
        self._root_attrs[fmt.COMPLETE_ATTR] = n_checkpoints
        document = _zarr_json(_group_document(self._root_attrs))
        write_atomically(os.path.join(self.path, _ZARR_METADATA), document)

    def close(self) -> None:
        self._release()

    def abort(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1


# -- Zarr in object storage -------------------------------------------------------------------

#: Error codes of a store that does not do conditional writes (S3-compatible servers).
_NO_CONDITIONAL_WRITES = ("NotImplemented", "InvalidArgument", "InvalidRequest")


class _StoreError(OSError):
    """A failed request to an object store, in the store's words (no ``errno``).

    ``os_reason`` then shows the words (the errno that fsspec maps a store's error
    to, e.g. EINVAL for every "precondition failed", says less).
    """


@dataclass
class _Chunk:
    """The chunk of one array being filled, kept whole in memory."""

    index: int
    key: str
    values: np.ndarray
    dirty: bool = False


class FsspecSink(Sink):
    """A Zarr (format 3) store at an fsspec URL: object storage (``s3://``, ``gs://``...).

    Each commit uploads every chunk that changed since the last one (the chunk being
    filled, whole), concurrently, then the root document that counts them (see the
    module notes): 2 round trips per checkpoint, whatever the number of arrays.

    **One writer per archive**, without locks (an object store has none):

    * the root document is created with a create-only write (S3's ``If-None-Match:
      *``; other stores: fsspec's ``mode="create"``, which checks first and is not
      atomic): of two writers creating the same archive, one is refused;
    * on S3, every later update of the root is conditional on the version this
      writer uploaded last (``If-Match``): a writer whose archive was replaced or
      taken over by another stops at its next checkpoint, with an error, instead of
      counting checkpoints in another writer's archive.

    A store that refuses conditional requests gets plain ones, and a
    ``RuntimeWarning`` says that a second writer would not be noticed. Mode ``"w"``
    replaces an archive even while another writer is writing it (nothing shows
    that a writer is alive); that writer then stops at its next checkpoint, but the
    chunks it uploaded meanwhile may stand in the new archive until the new writer
    rewrites them: do not replace a run that is still being written.
    """

    def __init__(
        self,
        path: str,
        mode: WriteMode,
        compression: str | None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        from dynatrain.archive.storage import filesystem

        self.path = _redacted(path)  # for messages: the URL without credentials
        # The process's instance for these options: a new one costs a client of its own
        # (~0.3 s), and nothing of a writer's is kept in it (listings are not cached).
        self._fs, root = filesystem(path, storage_options)
        self._root = root.rstrip("/")
        self._conditional = "s3" in _protocols(self._fs)  # If-Match: S3 only
        self._etag: str | None = None
        self._root_attrs: dict[str, Any] = {}
        self._chunks: dict[tuple[str, ...], _Chunk] = {}
        self._uploads: dict[str, bytes] = {}  # full chunks not uploaded yet
        try:
            self._prepare(mode)
        except (DynatrainError, _StoreError):
            raise
        except Exception as exc:
            raise ArchiveError(
                self.path, f"cannot create the archive ({_store_reason(exc)})"
            ) from None

    def _key(self, *parts: str) -> str:
        return "/".join((self._root, *parts))

    def _prepare(self, mode: WriteMode) -> None:
        """Refuse or clear what is at the URL already (the create-only write decides races)."""
        try:
            info = self._fs.info(self._root)
        except FileNotFoundError:
            return
        if info.get("type") != "directory":
            raise ArchiveError(self.path, "is an object; a Zarr archive is a prefix (a folder)")
        names = {name.rstrip("/").rsplit("/", 1)[-1] for name in self._fs.ls(self._root)}
        if not names:
            return
        if mode == "w-":
            raise already_exists(self.path)
        if not {_ZARR_METADATA, ".zgroup", ".zarray"} & names:
            raise ArchiveError(
                self.path, "holds objects but is not a Zarr store; refusing to replace it"
            )
        self._fs.rm(self._root, recursive=True)

    def chunk_rows(self, row_nbytes: int) -> int:
        # Each commit uploads the chunk being filled whole: 32 KiB per array on
        # average, for 64 times fewer objects (and reads) than a row per chunk.
        return max(1, _ZARR_CHUNK_BYTES // row_nbytes)

    def init_root(self, attrs: dict[str, Any]) -> None:
        import uuid

        # Unique to this writer: another writer's root never has the same content,
        # so never the same ETag (S3's is a digest of the content).
        self._root_attrs = {**attrs, fmt.WRITER_ATTR: uuid.uuid4().hex}
        self._put_root(create=True)

    def create(
        self,
        specs: Iterable[ArraySpec],
        layer_order: list[str],
        capacity: int,
        layer_attributes: Mapping[str, Mapping[str, Any]],
    ) -> None:
        specs = list(specs)
        groups = _zarr_groups(specs, layer_order, layer_attributes)
        documents = {
            self._key(*parts, _ZARR_METADATA): _zarr_json(_group_document(attributes))
            for parts, attributes in groups.items()
        }
        self._upload(documents | self._array_documents(specs, capacity))

    def grow(self, specs: Iterable[ArraySpec], capacity: int) -> None:
        self._upload(self._array_documents(specs, capacity))

    def _array_documents(self, specs: Iterable[ArraySpec], capacity: int) -> dict[str, bytes]:
        return {
            self._key(*spec.parts, _ZARR_METADATA): _zarr_json(_array_document(spec, capacity))
            for spec in specs
        }

    def write_row(self, spec: ArraySpec, index: int, row: Row) -> None:
        number, position = divmod(index, spec.chunk_rows)
        chunk = self._chunks.get(spec.parts)
        if chunk is None or chunk.index != number:
            if chunk is not None and chunk.dirty:  # full, and not uploaded yet
                self._uploads[chunk.key] = chunk.values.tobytes()
            # The default chunk key encoding: c/<chunk>/0/0 (a chunk spans the other axes).
            key = self._key(*spec.parts, "c", str(number), *("0" for _ in spec.row_shape))
            values = np.full((spec.chunk_rows, *spec.row_shape), spec.fill_value, spec.dtype)
            chunk = self._chunks[spec.parts] = _Chunk(number, key, values)
        chunk.values[position] = row
        chunk.dirty = True

    def commit(self, n_checkpoints: int) -> None:
        uploads = self._uploads
        for chunk in self._chunks.values():
            if chunk.dirty:
                uploads[chunk.key] = chunk.values.tobytes()
        self._upload(uploads)  # every chunk is stored before the count says so
        self._uploads = {}
        for chunk in self._chunks.values():
            chunk.dirty = False
        self._root_attrs[fmt.COMPLETE_ATTR] = n_checkpoints
        self._put_root(create=False)

    def _upload(self, objects: dict[str, bytes]) -> None:
        if not objects:
            return
        try:
            self._fs.pipe(objects)  # concurrently where the file system is asynchronous
        except Exception as exc:
            raise _StoreError(
                f"cannot upload {len(objects)} object(s): {_store_reason(exc)}"
            ) from exc

    def _put_root(self, *, create: bool) -> None:
        """Upload the root document, conditionally (see the class notes)."""
        key = self._key(_ZARR_METADATA)
        document = _zarr_json(_group_document(self._root_attrs))
        condition: dict[str, Any] = {}
        if create:
            condition = {"mode": "create"}
        elif self._conditional and self._etag is not None:
            condition = {"IfMatch": self._etag}
        try:
            try:
                response = self._fs.pipe_file(key, document, **condition)
            except FileExistsError:
                raise ArchiveError(
                    self.path, "another writer created this archive meanwhile; one writer at a time"
                ) from None
            except OSError as exc:
                code = _error_code(exc)
                if code == "PreconditionFailed":
                    raise ArchiveError(
                        self.path,
                        "was replaced or written by another writer since this writer's last"
                        " checkpoint; this writer stops (one writer at a time)",
                    ) from None
                if not condition or (
                    code not in _NO_CONDITIONAL_WRITES and exc.errno != errno.ENOSYS
                ):
                    raise
                self._no_conditional_writes(_store_reason(exc))
                response = self._fs.pipe_file(key, document)
        except (DynatrainError, _StoreError):
            raise
        except Exception as exc:
            raise _StoreError(f"cannot upload {key}: {_store_reason(exc)}") from exc
        etag = response.get("ETag") if isinstance(response, dict) else None
        self._etag = etag if isinstance(etag, str) else None

    def _no_conditional_writes(self, reason: str) -> None:
        import warnings

        self._conditional = False
        warnings.warn(
            f"{self.path}: the store refuses conditional writes ({reason}); a second"
            " writer would not be noticed",
            RuntimeWarning,
            stacklevel=6,
        )

    def close(self) -> None:
        """Nothing to release: every object is uploaded when it is written."""

    def abort(self) -> None:
        self._uploads = {}


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _error_code(exc: BaseException) -> str | None:
    """The store's error code behind an fsspec exception (S3: ``PreconditionFailed``...)."""
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code is not None else None
    return None


def _redacted(text: str) -> str:
    from dynatrain.archive.storage import redact

    return redact(text)


def _store_reason(exc: BaseException) -> str:
    """An object store's error in one line, credentials redacted."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, OSError) and exc.errno and line.startswith(f"[Errno {exc.errno}]"):
        line = line.split("]", 1)[1].strip()
    return _redacted(line)


def already_exists(path: str) -> ArchiveExistsError:
    """The error for an existing archive and mode ``"w-"``."""
    return ArchiveExistsError(f"{path}: already exists (replace it with mode='w')")


def check_mode(mode: Any) -> WriteMode:
    """Return ``mode`` if it is ``"w-"`` or ``"w"``, else raise ``InputError``."""
    if not isinstance(mode, str) or mode not in ("w-", "w"):
        raise InputError(f"invalid mode {mode!r}: use 'w-' (create) or 'w' (replace)")
    return mode  # type: ignore[return-value]
