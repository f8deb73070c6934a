"""Read activation archives (HDF5 or Zarr) behind one interface.

>>> with open_archive("sample_data/mlp-digits-seed1.h5") as archive:  # doctest: +SKIP
...     archive.layer_names, archive.n_checkpoints

Opening an archive checks its structure against the format (``format.py``) and
reads the small arrays (epochs, steps); activations are streamed on demand with
:meth:`Archive.iter_activations`. Nothing is ever written to the archive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from dynatrain.archive import format as fmt
from dynatrain.archive._backends import (
    Store,
    as_python,
    is_member_name,
    iter_row_blocks,
    json_value,
    open_store,
)
from dynatrain.errors import ArchiveError

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "ActivationBlock",
    "Archive",
    "ChunkGap",
    "LayerInfo",
    "open_archive",
]

#: Largest block of raw activations held in memory at once while streaming (bytes).
DEFAULT_BLOCK_BYTES = 32 * 2**20
#: Preferred block size: large enough to amortise per-read overhead, small enough
#: to stay in cache while it is reduced.
TARGET_BLOCK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class LayerInfo:
    """What one layer group holds.

    Attributes
    ----------
    name : str
        Layer name, as in ``/layers`` ``order``.
    kinds : tuple of str
        ``"activations"`` and/or ``"signal"``.
    sample_shape : tuple of int
        Shape of the activations at one checkpoint, ``(N, ...)`` (probe samples, then
        features); ``()`` for a signal-only layer.
    dtype : str
        Data type of the activations (``"float64"`` for a signal-only layer).
    """

    name: str
    kinds: tuple[str, ...]
    sample_shape: tuple[int, ...]
    dtype: str

    @property
    def has_activations(self) -> bool:
        """Whether raw activations are stored."""
        return fmt.ACTIVATIONS in self.kinds

    @property
    def has_signal(self) -> bool:
        """Whether a pre-reduced ``signal`` is stored."""
        return fmt.SIGNAL in self.kinds


class ChunkGap(NamedTuple):
    """Complete checkpoints of one array whose storage chunk is absent (Zarr only).

    ``what`` names the array (``"layer 'fc1' activations"``), ``checkpoints`` are
    indices, ``fill_value`` is what a read returns for them.
    """

    what: str
    checkpoints: np.ndarray
    fill_value: Any

    @property
    def fill_is_nan(self) -> bool:
        """Whether the fill value is NaN: then the gap is lost data (see :class:`Archive`)."""
        return _is_nan(self.fill_value)


def _is_nan(value: Any) -> bool:
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


class ActivationBlock(NamedTuple):
    """A block of activations streamed from one layer.

    ``values`` has shape ``(stop - start, k)``: checkpoints ``start .. stop - 1`` and
    ``k`` of their elements. A checkpoint larger than the block budget arrives in
    several consecutive blocks with the same ``start`` and ``stop``.
    """

    start: int
    stop: int
    values: np.ndarray


def open_archive(path: str | os.PathLike[str]) -> Archive:
    """Open an activation archive read-only and check its structure.

    Parameters
    ----------
    path : str or path-like
        An HDF5 file (``.h5``, ``.hdf5``), a Zarr directory store (``.zarr``), or a
        Zarr URL that fsspec understands (``s3://bucket/run.zarr``).

    Returns
    -------
    Archive
        Use it as a context manager to close the file.

    Raises
    ------
    ArchiveError
        If the path cannot be opened or does not follow the format; ``problems``
        lists every structural problem found.
    """
    return Archive(path)


class Archive:
    """An open activation archive (see :func:`open_archive`).

    Attributes
    ----------
    path : str
        The path as given.
    backend : {"hdf5", "zarr"}
    format_version : int
    metadata : dict
        Free root attributes (run_id, model, dataset, seed, ...), as plain JSON data:
        NumPy values become Python ones, arrays lists; a value with no JSON form (an
        HDF5 object reference, a complex number) is replaced by its text (see
        :func:`~dynatrain.archive._backends.json_value`) and noted in
        ``metadata_notes``.
    metadata_notes : list of str
        One line per metadata attribute replaced by its text.
    n_checkpoints : int
        Checkpoints completely written: ``min(len(epoch), complete_checkpoints)``.
    n_rows_stored : int
        Length of ``checkpoints/epoch``; more than ``n_checkpoints`` while a writer is
        in the middle of a checkpoint (or was killed there).
    epochs : ndarray of float64, shape (n_checkpoints,)
    steps : ndarray of int64, shape (n_checkpoints,), or None
    layer_names : tuple of str
        In the archive's order, input side first.
    layers : dict of str to LayerInfo
    metric_names : tuple of str

    Notes
    -----
    **Missing Zarr chunks.** Each chunk of a Zarr store is a separate object that
    can go missing (a partial copy or upload, a deleted file), and zarr reads a
    missing chunk as the array's fill value without a word. What that means depends
    on the fill value:

    * NaN (what :class:`~dynatrain.archive.writer.ArchiveWriter` uses for floats):
      the chunk is lost data. Read as NaN it would pass for a diverged run and cut
      the analysis short with a misleading message, so reading it raises
      :class:`ArchiveError` naming the array and the checkpoints, and ``validate``
      lists it as a problem. ``ArchiveWriter`` writes every chunk, NaN ones
      included (``write_empty_chunks``); Zarr archives written before it did lack
      the chunks of checkpoints that were all NaN (a diverged run) and are now
      reported so.
    * anything else, e.g. 0, zarr's default: zarr does not store a chunk whose values
      all equal the fill value, so a missing chunk may be one full of it. It is read
      as the fill value, and ``validate`` notes it.

    Only chunks inside the complete checkpoints count (those beyond are a writer
    still at work). With sharding, whole shards are checked.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._store: Store = open_store(self.path)
        try:
            problems = self._load()
        except ArchiveError:
            self._store.close()
            raise
        if problems:
            self._store.close()
            error = ArchiveError(self.path, "; ".join(problems))
            error.problems = problems  # type: ignore[attr-defined]
            raise error

    # -- structure -----------------------------------------------------------------------------

    def _load(self) -> list[str]:
        """Read the small parts of the archive; return the structural problems found."""
        store = self._store
        self.backend = store.backend
        root_attrs = store.attrs()
        problems: list[str] = []

        format_name = as_python(root_attrs.get(fmt.FORMAT_ATTR))
        if format_name != fmt.FORMAT_NAME:
            found = "missing" if format_name is None else repr(format_name)
            return [
                f"not a dynatrain archive (root attribute '{fmt.FORMAT_ATTR}' is {found},"
                f" expected {fmt.FORMAT_NAME!r})"
            ]
        version = as_python(root_attrs.get(fmt.VERSION_ATTR))
        if version not in fmt.SUPPORTED_VERSIONS or isinstance(version, bool):
            supported = ", ".join(map(str, fmt.SUPPORTED_VERSIONS))
            return [f"unsupported format_version {version!r} (this dynatrain reads {supported})"]
        self.format_version = int(version)
        self.metadata: dict[str, Any] = {}
        self.metadata_notes: list[str] = []
        for key, value in sorted(root_attrs.items()):
            if key in fmt.RESERVED_ATTRS:
                continue
            lossy: list[str] = []
            self.metadata[key] = json_value(value, lossy)
            if lossy:
                kinds = ", ".join(sorted(set(lossy)))
                self.metadata_notes.append(
                    f"metadata {key!r} holds values with no JSON form ({kinds}),"
                    f" shown as text: {self.metadata[key]!r}"
                )

        self.steps: np.ndarray | None = None
        self.layer_names: tuple[str, ...] = ()
        self.layers: dict[str, LayerInfo] = {}
        self.metric_names: tuple[str, ...] = ()
        self._arrays: dict[tuple[str, str], Any] = {}
        self._absent: dict[str, np.ndarray] = {}
        if as_python(root_attrs.get(fmt.COMPLETE_ATTR)) == 0:
            # A writer that has not finished its first append (or was killed in it) may
            # have created only part of the tree: there is nothing to read yet.
            self.n_checkpoints = self.n_rows_stored = 0
            self.epochs = np.empty(0)
            return problems
        epochs_all = self._read_vector((fmt.CHECKPOINTS, fmt.EPOCH), problems, required=True)
        if epochs_all is None:
            return problems
        complete = as_python(root_attrs.get(fmt.COMPLETE_ATTR, len(epochs_all)))
        if not isinstance(complete, int) or isinstance(complete, bool) or complete < 0:
            problems.append(
                f"root attribute '{fmt.COMPLETE_ATTR}' must be a non-negative integer,"
                f" got {complete!r}"
            )
            complete = len(epochs_all)
        n_checkpoints = min(len(epochs_all), complete)
        self.n_checkpoints = n_checkpoints
        self.n_rows_stored = len(epochs_all)
        self.epochs = np.asarray(epochs_all[:n_checkpoints], dtype=np.float64)
        epoch_array = self._store.array((fmt.CHECKPOINTS, fmt.EPOCH))
        lost = self._lost_chunks(epoch_array, "checkpoints/epoch")
        if lost is not None:
            problems.append(lost)
        elif not np.all(np.isfinite(self.epochs)):
            problems.append("checkpoints/epoch holds non-finite values")
        elif np.any(np.diff(self.epochs) <= 0):
            at = int(np.argmax(np.diff(self.epochs) <= 0)) + 1
            problems.append(
                "checkpoints/epoch is not strictly increasing"
                f" (checkpoint {at}: {self.epochs[at - 1]:g} then {self.epochs[at]:g})"
            )

        steps = self._read_vector((fmt.CHECKPOINTS, fmt.STEP), problems, required=False)
        if steps is not None:
            if self._enough_rows(len(steps), "checkpoints/step", problems):
                self.steps = np.asarray(steps[:n_checkpoints]).astype(np.int64)

        self._load_layers(problems)
        self._load_metrics(problems)
        return problems

    def _read_vector(
        self, parts: tuple[str, ...], problems: list[str], *, required: bool
    ) -> np.ndarray | None:
        """Read a small 1-D numeric array whole, or record why it cannot be."""
        where = "/".join(parts)
        kind = self._store.kind(parts)
        if kind != "array":
            if required or kind is not None:
                problems.append(f"missing {where}" if kind is None else f"{where} is not an array")
            return None
        array = self._store.array(parts)
        if len(array.shape) != 1:
            problems.append(f"{where} must be 1-D, has shape {tuple(array.shape)}")
            return None
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            problems.append(f"{where} is not numeric (dtype {array.dtype})")
            return None
        try:
            return self._store.read(array, slice(None))
        except Exception as exc:
            problems.append(f"cannot read {where}: {self._store.read_error(exc)}")
            return None

    def _enough_rows(self, n_rows: int, where: str, problems: list[str]) -> bool:
        if n_rows < self.n_checkpoints:
            problems.append(
                f"{where} has {n_rows} checkpoints, the archive claims {self.n_checkpoints}"
            )
            return False
        return True

    def _load_layers(self, problems: list[str]) -> None:
        store = self._store
        if store.kind((fmt.LAYERS,)) != "group":
            problems.append("no layers (missing /layers group)")
            return
        order = as_python(store.attrs((fmt.LAYERS,)).get(fmt.ORDER_ATTR))
        if order is None:
            problems.append(f"/layers has no '{fmt.ORDER_ATTR}' attribute listing the layers")
            return
        if isinstance(order, str) or not isinstance(order, list):
            order = [order]
        if not order:
            problems.append("no layers (/layers order is empty)")
            return
        if not all(isinstance(name, str) for name in order):
            problems.append(f"/layers order must list layer names (strings), got {order!r}")
            return
        invalid = [name for name in order if not is_member_name(name)]
        if invalid:
            problems.append(
                f"/layers order names {', '.join(map(repr, invalid))}, not valid layer names"
                " (a layer name is one group member: no '/', not '.' or '..')"
            )
            return
        duplicates = sorted({name for name in order if order.count(name) > 1})
        if duplicates:
            problems.append(f"/layers order names {', '.join(duplicates)} more than once")
        for name in dict.fromkeys(order):
            info = self._load_layer(name, problems)
            if info is not None:
                self.layers[name] = info
        self.layer_names = tuple(self.layers)

    def _load_layer(self, name: str, problems: list[str]) -> LayerInfo | None:
        store = self._store
        where = f"layer {name!r}"
        if store.kind((fmt.LAYERS, name)) != "group":
            problems.append(f"/layers order names {name!r}, but there is no such layer group")
            return None
        kinds: list[str] = []
        sample_shape: tuple[int, ...] = ()
        dtype = "float64"
        activations_parts = (fmt.LAYERS, name, fmt.ACTIVATIONS)
        if store.kind(activations_parts) == "array":
            array = store.array(activations_parts)
            shape = tuple(int(n) for n in array.shape)
            if array.dtype.name not in fmt.ACTIVATION_DTYPES:
                problems.append(
                    f"{where} activations have dtype {array.dtype}, expected one of"
                    f" {', '.join(fmt.ACTIVATION_DTYPES)}"
                )
            elif len(shape) < 2:
                problems.append(
                    f"{where} activations must have shape [T, N, ...], have {list(shape)}"
                )
            elif 0 in shape[1:]:
                problems.append(f"{where} activations are empty, shape {list(shape)}")
            elif self._enough_rows(shape[0], f"{where} activations", problems):
                kinds.append(fmt.ACTIVATIONS)
                sample_shape, dtype = shape[1:], array.dtype.name
                self._arrays[(name, fmt.ACTIVATIONS)] = array
        signal_parts = (fmt.LAYERS, name, fmt.SIGNAL)
        if store.kind(signal_parts) == "array":
            array = store.array(signal_parts)
            if len(array.shape) != 1 or not np.issubdtype(array.dtype, np.number):
                problems.append(
                    f"{where} signal must be a 1-D numeric array,"
                    f" has shape {list(array.shape)} and dtype {array.dtype}"
                )
            elif self._enough_rows(array.shape[0], f"{where} signal", problems):
                kinds.append(fmt.SIGNAL)
                self._arrays[(name, fmt.SIGNAL)] = array
        if not kinds:
            if not any(f"{where} " in p for p in problems):
                problems.append(f"{where} holds neither 'activations' nor 'signal'")
            return None
        return LayerInfo(name=name, kinds=tuple(kinds), sample_shape=sample_shape, dtype=dtype)

    def _load_metrics(self, problems: list[str]) -> None:
        names: list[str] = []
        store = self._store
        for name, parts in sorted(_metric_arrays(store)):
            array = store.array(parts)
            where = f"metric {name!r}"
            if len(array.shape) != 1 or not np.issubdtype(array.dtype, np.number):
                problems.append(f"{where} must be a 1-D numeric array")
            elif self._enough_rows(array.shape[0], where, problems):
                names.append(name)
        self.metric_names = tuple(names)

    # -- data ----------------------------------------------------------------------------------

    def metric(self, name: str) -> np.ndarray:
        """One metric, shape ``(n_checkpoints,)``, float64 (NaN where not recorded)."""
        if name not in self.metric_names:
            available = ", ".join(self.metric_names) or "none"
            raise ArchiveError(self.path, f"no metric {name!r} (available: {available})")
        return self._read_rows(self._store.array(fmt.metric_parts(name)), f"metric {name!r}")

    def signal(self, layer: str, *, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A layer's stored ``signal``, float64, shape ``(stop - start,)``."""
        info = self._layer(layer)
        if not info.has_signal:
            raise ArchiveError(self.path, f"layer {layer!r} stores no 'signal'")
        return self._read_rows(
            self._arrays[(layer, fmt.SIGNAL)], f"layer {layer!r} signal", start=start, stop=stop
        )

    def _read_rows(
        self, array: Any, what: str, *, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        stop = self.n_checkpoints if stop is None else stop
        lost = self._lost_chunks(array, what, start, stop)
        if lost is not None:
            raise ArchiveError(self.path, lost)
        try:
            return np.asarray(self._store.read(array, slice(start, stop)), dtype=np.float64)
        except Exception as exc:
            raise ArchiveError(
                self.path, f"cannot read {what}: {self._store.read_error(exc)}"
            ) from exc

    def _absent_checkpoints(self, array: Any, what: str) -> np.ndarray:
        """Indices of the complete checkpoints whose chunk of ``array`` is absent."""
        if what not in self._absent:
            try:
                absent = self._store.absent_rows(array, self.n_checkpoints)
            except Exception as exc:
                raise ArchiveError(
                    self.path, f"cannot list the chunks of {what}: {self._store.read_error(exc)}"
                ) from exc
            self._absent[what] = np.flatnonzero(absent)
        return self._absent[what]

    def _lost_chunks(
        self, array: Any, what: str, start: int = 0, stop: int | None = None
    ) -> str | None:
        """What is wrong if chunks of ``array`` are lost, else ``None``.

        Lost: absent from the store, where the fill value NaN would stand in for them
        (see the class notes), among checkpoints ``start .. stop - 1``.
        """
        if not _is_nan(self._store.fill_value(array)):
            return None
        stop = self.n_checkpoints if stop is None else stop
        missing = self._absent_checkpoints(array, what)
        missing = missing[(missing >= start) & (missing < stop)]
        if missing.size == 0:
            return None
        return (
            f"{what}: {_checkpoints_phrase(missing, self.epochs)} missing from the store"
            " (lost data: a read would give the fill value NaN, as if the run had diverged)"
        )

    def chunk_gaps(self) -> list[ChunkGap]:
        """Every array's complete checkpoints whose storage chunk is absent (Zarr).

        See the class notes for what a gap means, by fill value.
        """
        arrays = [("checkpoints/epoch", self._store.array((fmt.CHECKPOINTS, fmt.EPOCH)))]
        if self.steps is not None:
            arrays.append(("checkpoints/step", self._store.array((fmt.CHECKPOINTS, fmt.STEP))))
        arrays += [(f"layer {name!r} {kind}", a) for (name, kind), a in self._arrays.items()]
        arrays += [
            (f"metric {name!r}", self._store.array(fmt.metric_parts(name)))
            for name in self.metric_names
        ]
        gaps = []
        for what, array in arrays:
            missing = self._absent_checkpoints(array, what)
            if missing.size:
                gaps.append(ChunkGap(what, missing, as_python(self._store.fill_value(array))))
        return gaps

    def _layer(self, layer: str) -> LayerInfo:
        try:
            return self.layers[layer]
        except KeyError:
            raise ArchiveError(
                self.path, f"no layer {layer!r} (layers: {', '.join(self.layer_names)})"
            ) from None

    def iter_activations(
        self,
        layer: str,
        *,
        start: int = 0,
        stop: int | None = None,
        max_block_bytes: int = DEFAULT_BLOCK_BYTES,
        read_ahead: bool = True,
    ) -> Generator[ActivationBlock, None, None]:
        """Stream a layer's activations in blocks that follow the storage chunks.

        Parameters
        ----------
        layer : str
        start, stop : int
            Checkpoint range (``stop`` defaults to ``n_checkpoints``).
        max_block_bytes : int
            Memory budget for one block, in bytes of the stored dtype. A block holds
            whole storage chunks along the checkpoint axis, about
            ``TARGET_BLOCK_BYTES`` of them; a checkpoint larger than the budget is
            split along the probe-sample axis.
        read_ahead : bool
            Read the next block in a background thread while the caller works on
            this one (two blocks in memory at most). Reading and reducing then
            overlap on two cores.

        Yields
        ------
        ActivationBlock
            ``values`` is a 2-D array ``(checkpoints, elements)`` in the stored dtype.

        Notes
        -----
        With ``read_ahead``, a caller that may stop before the end (an exception
        included) should close the iterator (``contextlib.closing``): that waits for
        the read in flight, which garbage collection would only do at some later time.
        """
        info = self._layer(layer)
        if not info.has_activations:
            raise ArchiveError(self.path, f"layer {layer!r} stores no 'activations'")
        array = self._arrays[(layer, fmt.ACTIVATIONS)]
        stop = self.n_checkpoints if stop is None else stop
        lost = self._lost_chunks(array, f"layer {layer!r} activations", start, stop)
        if lost is not None:
            raise ArchiveError(self.path, lost)
        n_samples = info.sample_shape[0]
        row_bytes = int(np.prod(info.sample_shape)) * np.dtype(info.dtype).itemsize
        chunk_rows = self._store.chunk_rows(array)
        if chunk_rows * row_bytes <= max_block_bytes:
            # Whole chunks only (no chunk is decoded twice), as many as make the target.
            chunks = max(1, min(TARGET_BLOCK_BYTES, max_block_bytes) // (chunk_rows * row_bytes))
            rows, samples_per_block = chunks * chunk_rows, n_samples
        elif row_bytes <= max_block_bytes:
            rows, samples_per_block = max_block_bytes // row_bytes, n_samples
        else:  # one checkpoint alone is over the budget: split it along the samples
            rows = 1
            samples_per_block = max(1, max_block_bytes // (row_bytes // n_samples))
        selections = [
            (start + t0, start + t1, n0, n1)
            for t0, t1 in iter_row_blocks(stop - start, rows)
            for n0, n1 in iter_row_blocks(n_samples, samples_per_block)
        ]

        read_into = self._block_reader(array, rows, samples_per_block, info)

        def read(selection: tuple[int, int, int, int], slot: int) -> ActivationBlock:
            t0, t1, n0, n1 = selection
            try:
                values = read_into(slot, t0, t1, n0, n1)
            except Exception as exc:
                raise ArchiveError(
                    self.path,
                    f"cannot read layer {layer!r} activations: {self._store.read_error(exc)}",
                ) from exc
            return ActivationBlock(t0, t1, values.reshape(t1 - t0, -1))

        if not read_ahead or len(selections) < 2:
            for selection in selections:
                yield read(selection, 0)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynatrain-read")
        try:
            pending = pool.submit(read, selections[0], 0)
            for i, selection in enumerate(selections[1:], start=1):
                block = pending.result()
                # The caller has let go of slot i % 2 (it asked for the next block).
                pending = pool.submit(read, selection, i % 2)
                yield block
            yield pending.result()
        finally:
            # Reached when the stream ends, fails, or is closed by a caller that stops
            # early: the read in flight is waited for (it may not outlive the archive,
            # nor be abandoned in the middle of a zarr read at exit).
            pool.shutdown(wait=True, cancel_futures=True)

    def _block_reader(
        self, array: Any, rows: int, samples: int, info: LayerInfo
    ) -> Callable[[int, int, int, int, int], np.ndarray]:
        """A function ``(slot, t0, t1, n0, n1) -> block`` for this layer's storage.

        HDF5 reads into one of two reusable buffers (``slot``) with the low-level
        API: a fresh multi-MiB array per block costs page faults that, on a fresh
        process, take longer than the read itself. Zarr decodes into new arrays.
        """
        if self.backend != "hdf5":
            read = self._store.read
            return lambda slot, t0, t1, n0, n1: read(array, (slice(t0, t1), slice(n0, n1)))
        import h5py

        feature_shape = info.sample_shape[1:]
        buffers: dict[int, np.ndarray] = {}

        def read_hdf5(slot: int, t0: int, t1: int, n0: int, n1: int) -> np.ndarray:
            buffer = buffers.get(slot)
            if buffer is None:
                buffer = buffers[slot] = np.empty((rows, samples, *feature_shape), array.dtype)
            shape = (t1 - t0, n1 - n0, *feature_shape)
            out = buffer[: t1 - t0, : n1 - n0] if n1 - n0 < samples else buffer[: t1 - t0]
            if out.size == 0:
                return out
            file_space = array.id.get_space()
            file_space.select_hyperslab((t0, n0, *(0 for _ in feature_shape)), shape)
            out = np.ascontiguousarray(out)  # a partial-sample view is not contiguous
            array.id.read(h5py.h5s.create_simple(shape), file_space, out)
            return out

        return read_hdf5

    # -- misc ----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What ``dynatrain inspect`` shows, as plain JSON-able data."""
        return {
            "path": self.path,
            "backend": self.backend,
            "format_version": self.format_version,
            "checkpoints": self.n_checkpoints,
            "epochs": (
                [float(self.epochs[0]), float(self.epochs[-1])] if self.n_checkpoints else None
            ),
            "layers": [
                {
                    "name": info.name,
                    "shape": list(info.sample_shape),
                    "dtype": info.dtype,
                    "kinds": list(info.kinds),
                }
                for info in self.layers.values()
            ],
            "metrics": list(self.metric_names),
            "metadata": dict(self.metadata),
            "size_bytes": self.size_on_disk(),
        }

    def size_on_disk(self) -> int | None:
        """Bytes on disk (whole Zarr directory), or ``None`` for remote stores."""
        return self._store.size_on_disk()

    def close(self) -> None:
        """Close the underlying file."""
        self._store.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Archive {self.path!r} {self.backend} T={self.n_checkpoints}"
            f" layers={len(self.layer_names)}>"
        )


def _metric_arrays(store: Store) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every array under ``/metrics``, named by its path below it (``val/acc``).

    Metric names may contain ``/`` (``val/acc``, as TensorBoard and W&B name them):
    the writer stores them as nested groups, and they are read back under the same
    name. Anything else under ``/metrics`` is ignored, as the format says; the walk
    stops at ``MAX_METRIC_DEPTH`` levels.
    """
    pending: list[tuple[str, ...]] = [(fmt.METRICS,)]
    while pending:
        group = pending.pop(0)
        for child in store.children(group):
            parts = (*group, child)
            kind = store.kind(parts)
            if kind == "array":
                yield "/".join(parts[1:]), parts
            elif kind == "group" and len(parts) - 1 < fmt.MAX_METRIC_DEPTH:
                pending.append(parts)


def _checkpoints_phrase(indices: np.ndarray, epochs: np.ndarray) -> str:
    """Name the checkpoints whose chunks are absent, for messages.

    ``"the chunk of checkpoint 12 (epoch 13) is"``, or ``"the chunks of 3 checkpoints,
    from checkpoint 12 (epoch 13), are"``.
    """
    first = int(indices[0])
    at = f"checkpoint {first}"
    if first < len(epochs) and np.isfinite(epochs[first]):
        at += f" (epoch {epochs[first]:g})"
    if indices.size == 1:
        return f"the chunk of {at} is"
    return f"the chunks of {indices.size} checkpoints, from {at}, are"
