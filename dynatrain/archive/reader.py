"""Read activation archives (HDF5 or Zarr) behind one interface.

>>> with open_archive("sample_data/mlp-digits-seed1.h5") as archive:  # doctest: +SKIP
...     archive.layer_names, archive.n_checkpoints

Opening an archive checks its structure against the format (``format.py``) and
reads the small arrays (epochs, steps); activations are streamed on demand with
:meth:`Archive.iter_activations`. Nothing is ever written to the archive.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from dynatrain.archive import format as fmt
from dynatrain.archive._backends import (
    MAX_CHUNK_BYTES,
    Store,
    as_python,
    clip_ranges,
    is_member_name,
    iter_row_blocks,
    json_value,
    memory_problem,
    names_phrase,
    open_store,
    show_name,
)
from dynatrain.archive.storage import redact
from dynatrain.errors import ArchiveError

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "MAX_CHUNK_BYTES",
    "ActivationBlock",
    "Archive",
    "ChunkGap",
    "LayerInfo",
    "open_archive",
    "read_complete_checkpoints",
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
    """Complete checkpoints of one array whose storage chunk is absent.

    ``what`` names the array (``"layer 'fc1' activations"``), ``ranges`` are
    ``[start, stop)`` checkpoint ranges, shape ``(k, 2)``, ``fill_value`` is what a
    read returns for them, ``lost`` whether that is lost data (see :class:`Archive`).
    """

    what: str
    ranges: np.ndarray
    fill_value: Any
    lost: bool = False

    @property
    def count(self) -> int:  # type: ignore[override]  # a gap's size, not tuple.count
        """Number of checkpoints in the gap."""
        return int((self.ranges[:, 1] - self.ranges[:, 0]).sum())

    @property
    def first(self) -> int:
        """Index of the first checkpoint in the gap."""
        return int(self.ranges[0, 0])

    @property
    def checkpoints(self) -> np.ndarray:
        """Indices of the checkpoints in the gap."""
        return np.concatenate([np.arange(a, b) for a, b in self.ranges])

    @property
    def fill_is_nan(self) -> bool:
        """Whether the fill value is NaN."""
        return _is_nan(self.fill_value)


class ActivationBlock(NamedTuple):
    """A block of activations streamed from one layer.

    ``values`` has shape ``(stop - start, k)``: checkpoints ``start .. stop - 1`` and
    ``k`` of their elements. A checkpoint larger than the block budget arrives in
    several consecutive blocks with the same ``start`` and ``stop``.
    """

    start: int
    stop: int
    values: np.ndarray


def open_archive(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> Archive:
    """Open an activation archive read-only and check its structure.

    Parameters
    ----------
    path : str or path-like
        An HDF5 file (``.h5``, ``.hdf5``), a Zarr directory store (``.zarr``), or a
        Zarr URL that fsspec understands (``s3://bucket/run.zarr``).
    storage_options : mapping, optional
        For a URL: fsspec storage options, over those in effect (see
        :mod:`dynatrain.archive.storage`).

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
    return Archive(path, storage_options=storage_options)


def read_complete_checkpoints(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> int | None:
    """The root's ``complete_checkpoints`` now, reading nothing else.

    What a watcher polls to learn that a run has grown, without opening it whole:
    a Zarr store's root document (for a URL, one small read of its root, from the
    store itself: nothing is cached), an HDF5 file's root attribute (SWMR).

    Returns
    -------
    int or None
        ``None`` if the root has no such attribute (every stored row is complete:
        open the archive to count them).

    Raises
    ------
    ArchiveError
        If the archive cannot be opened, or the attribute is not an integer >= 0.
    """
    location = os.fspath(path)
    store = open_store(location, storage_options)
    try:
        value = as_python(store.attrs(()).get(fmt.COMPLETE_ATTR))
    finally:
        store.close()
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArchiveError(
            store.path, f"root attribute '{fmt.COMPLETE_ATTR}' must be a non-negative integer"
        )
    return value


class Archive:
    """An open activation archive (see :func:`open_archive`).

    Attributes
    ----------
    path : str
        The path as given (a URL with its credentials shown as ``***``).
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
        in the middle of a checkpoint (or was killed there), or where it reserved
        rows ahead. Rows beyond ``n_checkpoints`` are never read.
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
    still at work, or rows it reserved). With sharding, whole shards are checked.

    **HDF5 chunks never written.** In an HDF5 file a chunk exists from its first
    write on, so a complete checkpoint in a chunk that does not exist was never
    written, whatever the fill value: lost data, reported like a lost Zarr chunk.
    The chunk index is queried for this; no data is read to find it.

    **Hostile archives.** Nothing outside the archive is read (see
    :mod:`dynatrain.archive._local_store` for Zarr stores), only the complete
    checkpoints are read, no storage chunk may decode to more than
    ``MAX_CHUNK_BYTES``, and every message is one line of bounded length.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        location = os.fspath(path)
        # Messages and the summary show a URL without its credentials.
        self.path = redact(location) if fmt.is_url(location) else location
        self._store: Store = open_store(location, storage_options)
        try:
            problems = self._load()
        except ArchiveError:
            self._store.close()
            raise
        except RecursionError as exc:
            self._store.close()
            raise ArchiveError(self.path, "metadata nested too deeply to read") from exc
        if problems:
            self._store.close()
            error = ArchiveError(self.path, _problems_line(problems))
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
            found = "missing" if format_name is None else show_name(format_name)
            return [
                f"not a dynatrain archive (root attribute '{fmt.FORMAT_ATTR}' is {found},"
                f" expected {fmt.FORMAT_NAME!r})"
            ]
        version = as_python(root_attrs.get(fmt.VERSION_ATTR))
        whole = _is_int(version) or (isinstance(version, float) and version.is_integer())
        if not whole or version not in fmt.SUPPORTED_VERSIONS:
            supported = ", ".join(map(str, fmt.SUPPORTED_VERSIONS))
            found = _short(version)
            return [f"unsupported format_version {found} (this dynatrain reads {supported})"]
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
                    f"metadata {show_name(key)} holds values with no JSON form ({kinds}),"
                    f" shown as text: {_short(self.metadata[key])}"
                )

        self.steps: np.ndarray | None = None
        self.layer_names: tuple[str, ...] = ()
        self.layers: dict[str, LayerInfo] = {}
        self.metric_names: tuple[str, ...] = ()
        self._arrays: dict[tuple[str, str], Any] = {}
        self._absent: dict[str, np.ndarray] = {}
        self._absent_upto: dict[str, int] = {}  # checkpoints those ranges were found among
        self._followed: dict[tuple[str, ...], Any] = {}  # epoch, step, metrics (refresh)
        self.n_checkpoints = self.n_rows_stored = 0
        self.epochs = np.empty(0)
        complete = as_python(root_attrs.get(fmt.COMPLETE_ATTR))
        if complete == 0 and _is_int(complete):
            # A writer that has not finished its first append (or was killed in it) may
            # have created only part of the tree: there is nothing to read yet.
            return problems
        if complete is not None and not (_is_int(complete) and complete >= 0):
            problems.append(
                f"root attribute '{fmt.COMPLETE_ATTR}' must be a non-negative integer,"
                f" got {_short(complete)}"
            )
            complete = None
        # The small arrays and the groups read next, with the layers and metrics, in
        # one go where that saves round trips.
        self._store.prefetch(
            [
                (fmt.CHECKPOINTS, fmt.EPOCH),
                (fmt.CHECKPOINTS, fmt.STEP),
                (fmt.LAYERS,),
                (fmt.METRICS,),
            ],
            below={(fmt.LAYERS,): 2, (fmt.METRICS,): fmt.MAX_METRIC_DEPTH},
        )
        epoch_array = self._vector_array((fmt.CHECKPOINTS, fmt.EPOCH), problems, required=True)
        if epoch_array is None:
            return problems
        self.n_rows_stored = int(epoch_array.shape[0])
        # Only the complete checkpoints are ever read: an array may declare far more
        # rows (space a writer reserved ahead, or a hostile 3e8) than hold data.
        self.n_checkpoints = (
            self.n_rows_stored if complete is None else min(self.n_rows_stored, complete)
        )
        lost = self._lost_chunks(epoch_array, "checkpoints/epoch")
        if lost is not None:
            problems.append(lost)
            return problems
        epochs = self._read_prefix(epoch_array, "checkpoints/epoch", problems)
        if epochs is None:
            return problems
        self.epochs = np.asarray(epochs, dtype=np.float64)
        if not np.all(np.isfinite(self.epochs)):
            at = int(np.argmin(np.isfinite(self.epochs)))
            problems.append(
                f"checkpoints/epoch holds non-finite values (checkpoint {at}: {self.epochs[at]:g})"
            )
        elif np.any(np.diff(self.epochs) <= 0):
            at = int(np.argmax(np.diff(self.epochs) <= 0)) + 1
            problems.append(
                "checkpoints/epoch is not strictly increasing"
                f" (checkpoint {at}: {self.epochs[at - 1]:g} then {self.epochs[at]:g})"
            )
        self._load_steps(problems)
        self._load_layers(problems)
        self._load_metrics(problems)
        return problems

    def _vector_array(
        self, parts: tuple[str, ...], problems: list[str], *, required: bool
    ) -> Any | None:
        """The 1-D real-valued array at ``parts``, or ``None`` (with the problem recorded)."""
        where = "/".join(parts)
        kind = self._store.kind(parts)
        if kind != "array":
            if required or kind is not None:
                problems.append(f"missing {where}" if kind is None else f"{where} is not an array")
            return None
        array = self._store.array(parts)
        if len(array.shape) != 1:
            problems.append(f"{where} must be 1-D, has shape {list(array.shape)}")
            return None
        if not _is_real(array.dtype):
            problems.append(f"{where} must hold real numbers, has dtype {array.dtype}")
            return None
        storage = self._store.array_problem(array, where)
        if storage is not None:
            problems.append(storage)
            return None
        return array

    def _read_prefix(self, array: Any, what: str, problems: list[str]) -> np.ndarray | None:
        """Rows ``0 .. n_checkpoints - 1`` of a 1-D array, or ``None`` (problem recorded)."""
        try:
            return self._read_rows(array, what)
        except ArchiveError as exc:
            problems.append(exc.problem)
            return None

    def _load_steps(self, problems: list[str]) -> None:
        """``checkpoints/step``: optional; whole numbers (the writer stores int64)."""
        where = "checkpoints/step"
        array = self._vector_array((fmt.CHECKPOINTS, fmt.STEP), problems, required=False)
        if array is None or not self._enough_rows(int(array.shape[0]), where, problems):
            return
        lost = self._lost_chunks(array, where)
        if lost is not None:
            problems.append(lost)
            return
        try:
            steps = np.asarray(self._store.read(array, slice(0, self.n_checkpoints)))
        except ArchiveError as exc:
            problems.append(exc.problem)
            return
        except MemoryError as exc:
            problems.append(memory_problem(exc, where))
            return
        except Exception as exc:
            problems.append(f"cannot read {where}: {self._store.read_error(exc)}")
            return
        if steps.dtype.kind == "f":
            whole = np.isfinite(steps) & (steps == np.round(steps)) & (np.abs(steps) < 2.0**63)
            if not whole.all():
                at = int(np.argmin(whole))
                problems.append(
                    f"{where} must hold whole numbers, has {steps[at]:g} at checkpoint {at}"
                )
                return
        elif steps.dtype.kind == "u" and steps.size and steps.max() >= 2**63:
            problems.append(f"{where} holds values too large for int64 ({int(steps.max())})")
            return
        self.steps = steps.astype(np.int64)

    def _enough_rows(self, n_rows: int, where: str, problems: list[str]) -> bool:
        if n_rows < self.n_checkpoints:
            problems.append(
                f"{where} has {n_rows} checkpoints, the archive claims {self.n_checkpoints}"
            )
            return False
        return True

    def _load_layers(self, problems: list[str]) -> None:
        """The layer order, then each layer group: checks linear in the number of names."""
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
        not_text = [name for name in order if not isinstance(name, str)]
        if not_text:
            problems.append(
                f"/layers order must list layer names (strings), has {len(not_text)} other"
                f" value(s): {_short(not_text)}"
            )
            return
        invalid = [name for name in order if not is_member_name(name)]
        if invalid:
            problems.append(
                f"/layers order names {names_phrase(invalid)}, not valid layer names"
                " (a layer name is one group member: no '/', not '.' or '..')"
            )
            return
        counts = Counter(order)
        duplicates = [name for name, count in counts.items() if count > 1]
        if duplicates:
            problems.append(f"/layers order names {names_phrase(duplicates)} more than once")
        listed = set(store.members((fmt.LAYERS,)))
        missing = [name for name in counts if name not in listed]
        store.prefetch(
            (fmt.LAYERS, name, *kind)
            for name in counts
            if name in listed
            for kind in ((), (fmt.ACTIVATIONS,), (fmt.SIGNAL,))
        )
        for name in counts:
            if name in listed:
                info = self._load_layer(name, problems, missing)
                if info is not None:
                    self.layers[name] = info
        if missing:
            verb = (
                "there is no such layer group"
                if len(missing) == 1
                else ("there are no such layer groups")
            )
            problems.append(f"/layers order names {names_phrase(missing)}, but {verb}")
        self.layer_names = tuple(self.layers)

    def _load_layer(self, name: str, problems: list[str], missing: list[str]) -> LayerInfo | None:
        store = self._store
        where = f"layer {show_name(name)}"
        if store.kind((fmt.LAYERS, name)) != "group":
            missing.append(name)
            return None
        kinds: list[str] = []
        sample_shape: tuple[int, ...] = ()
        dtype = "float64"
        found_problem = False
        activations_parts = (fmt.LAYERS, name, fmt.ACTIVATIONS)
        if store.kind(activations_parts) == "array":
            array = store.array(activations_parts)
            shape = tuple(int(n) for n in array.shape)
            storage = None
            if array.dtype.name not in fmt.ACTIVATION_DTYPES:
                storage = (
                    f"{where} activations have dtype {array.dtype}, expected one of"
                    f" {', '.join(fmt.ACTIVATION_DTYPES)}"
                )
            elif len(shape) < 2:
                storage = f"{where} activations must have shape [T, N, ...], have {list(shape)}"
            elif 0 in shape[1:]:
                storage = f"{where} activations are empty, shape {list(shape)}"
            else:
                storage = store.array_problem(array, f"{where} activations")
            if storage is not None:
                problems.append(storage)
                found_problem = True
            elif self._enough_rows(shape[0], f"{where} activations", problems):
                kinds.append(fmt.ACTIVATIONS)
                sample_shape, dtype = shape[1:], array.dtype.name
                self._arrays[(name, fmt.ACTIVATIONS)] = array
            else:
                found_problem = True
        signal_parts = (fmt.LAYERS, name, fmt.SIGNAL)
        if store.kind(signal_parts) == "array":
            array = store.array(signal_parts)
            storage = None
            if len(array.shape) != 1 or not _is_real(array.dtype):
                storage = (
                    f"{where} signal must be a 1-D array of real numbers,"
                    f" has shape {list(array.shape)} and dtype {array.dtype}"
                )
            else:
                storage = store.array_problem(array, f"{where} signal")
            if storage is not None:
                problems.append(storage)
                found_problem = True
            elif self._enough_rows(array.shape[0], f"{where} signal", problems):
                kinds.append(fmt.SIGNAL)
                self._arrays[(name, fmt.SIGNAL)] = array
            else:
                found_problem = True
        if not kinds:
            if not found_problem:
                problems.append(f"{where} holds neither 'activations' nor 'signal'")
            return None
        return LayerInfo(name=name, kinds=tuple(kinds), sample_shape=sample_shape, dtype=dtype)

    def _load_metrics(self, problems: list[str]) -> None:
        names: list[str] = []
        store = self._store
        for name, parts in sorted(_metric_arrays(store)):
            array = store.array(parts)
            where = f"metric {show_name(name)}"
            problem = _vector_problem(store, array, where)
            if problem is not None:
                problems.append(problem)
            elif self._enough_rows(array.shape[0], where, problems):
                names.append(name)
        self.metric_names = tuple(names)

    # -- data ----------------------------------------------------------------------------------

    def metric(self, name: str, *, start: int = 0, stop: int | None = None) -> np.ndarray:
        """One metric, float64 (NaN where not recorded), shape ``(stop - start,)``."""
        if name not in self.metric_names:
            available = names_phrase(self.metric_names, limit=20) or "none"
            raise ArchiveError(self.path, f"no metric {show_name(name)} (available: {available})")
        parts = fmt.metric_parts(name)
        array = self._followed.get(parts)
        if array is None:
            array = self._store.array(parts)
        return self._read_rows(array, f"metric {show_name(name)}", start=start, stop=stop)

    # -- following a writer --------------------------------------------------------------------

    def refresh(self) -> int:
        """Take in the checkpoints a running writer has completed since the last look.

        For following a run in progress (``dynatrain watch``): the root's
        ``complete_checkpoints`` is read again, and ``n_checkpoints``,
        ``n_rows_stored``, ``epochs`` and ``steps`` are brought up to date by reading
        the new rows only. Layers, metrics and metadata stay those found at opening
        (an archive opened before its first checkpoint has none: open it again).

        Returns
        -------
        int
            Checkpoints added (0 if none).

        Raises
        ------
        ArchiveError
            If the archive now counts fewer complete checkpoints than before (it was
            replaced), or the new rows cannot be read or break the format.
        """
        store = self._store
        if not store.refresh():  # opened again: every array handle is new
            self._arrays = {key: store.array((fmt.LAYERS, *key)) for key in self._arrays}
            self._followed = {}
        complete = as_python(store.attr(fmt.COMPLETE_ATTR))
        if not self._followed:
            wanted: list[tuple[str, ...]] = [(fmt.CHECKPOINTS, fmt.EPOCH)]
            wanted += [(fmt.CHECKPOINTS, fmt.STEP)] if self.steps is not None else []
            wanted += [fmt.metric_parts(name) for name in self.metric_names]
            self._followed = {parts: store.array(parts) for parts in wanted}
        epoch_parts = (fmt.CHECKPOINTS, fmt.EPOCH)
        epoch_array = self._followed[epoch_parts] = store.refresh_array(
            self._followed[epoch_parts], epoch_parts, None
        )
        n_rows = int(epoch_array.shape[0])
        old = self.n_checkpoints
        new = n_rows if not _is_int(complete) else min(n_rows, int(complete))
        if new < old:
            raise ArchiveError(
                self.path,
                f"now counts {new} complete checkpoints, fewer than the {old} read before"
                " (was it replaced?)",
            )
        self.n_rows_stored = n_rows
        if new == old:
            return 0
        for parts, array in self._followed.items():
            if parts != epoch_parts:
                self._followed[parts] = store.refresh_array(array, parts, new)
        for key, array in self._arrays.items():
            self._arrays[key] = store.refresh_array(array, (fmt.LAYERS, *key), new)
        self.n_checkpoints = new
        # The absent chunks found among the old count stand; the new rows are checked
        # when they are read (only theirs: a poll costs the new rows, not the history).
        try:
            epochs = self._read_rows(epoch_array, "checkpoints/epoch", start=old, stop=new)
            previous = self.epochs[-1:] if old else np.empty(0)
            if not np.all(np.isfinite(epochs)) or np.any(np.diff(np.r_[previous, epochs]) <= 0):
                raise ArchiveError(
                    self.path,
                    f"checkpoints/epoch of checkpoints {old} to {new - 1} is not finite and"
                    " strictly increasing",
                )
            steps = None
            if self.steps is not None:
                step_array = self._followed[(fmt.CHECKPOINTS, fmt.STEP)]
                try:
                    steps = np.asarray(self._store.read(step_array, slice(old, new)))
                except Exception as exc:
                    raise ArchiveError(
                        self.path, f"cannot read checkpoints/step: {self._store.read_error(exc)}"
                    ) from exc
        except ArchiveError:
            self.n_checkpoints = old
            raise
        self.epochs = np.concatenate([self.epochs, epochs])
        if steps is not None and self.steps is not None:
            self.steps = np.concatenate([self.steps, steps.astype(np.int64)])
        return new - old

    def signal(self, layer: str, *, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A layer's stored ``signal``, float64, shape ``(stop - start,)``."""
        info = self._layer(layer)
        if not info.has_signal:
            raise ArchiveError(self.path, f"layer {show_name(layer)} stores no 'signal'")
        return self._read_rows(
            self._arrays[(layer, fmt.SIGNAL)],
            f"layer {show_name(layer)} signal",
            start=start,
            stop=stop,
        )

    def _read_rows(
        self, array: Any, what: str, *, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Rows ``start .. stop - 1`` of a 1-D array as float64 (never beyond the complete ones)."""
        stop = self.n_checkpoints if stop is None else min(stop, self.n_checkpoints)
        lost = self._lost_chunks(array, what, start, stop)
        if lost is not None:
            raise ArchiveError(self.path, lost)
        try:
            values = np.asarray(self._store.read(array, slice(start, stop)))
        except ArchiveError:
            raise
        except (MemoryError, ValueError) as exc:
            if isinstance(exc, MemoryError) or "too big" in str(exc):
                raise ArchiveError(self.path, memory_problem(exc, what)) from exc
            raise ArchiveError(
                self.path, f"cannot read {what}: {self._store.read_error(exc)}"
            ) from exc
        except Exception as exc:
            raise ArchiveError(
                self.path, f"cannot read {what}: {self._store.read_error(exc)}"
            ) from exc
        return values.astype(np.float64, copy=False)

    def _absent_checkpoints(self, array: Any, what: str) -> np.ndarray:
        """``[start, stop)`` ranges of complete checkpoints whose chunk of ``array`` is absent."""
        checked = self._absent_upto.get(what, 0) if what in self._absent else 0
        if what not in self._absent or checked < self.n_checkpoints:
            try:
                absent = self._store.absent_ranges(array, self.n_checkpoints, start=checked)
            except ArchiveError:
                raise
            except Exception as exc:
                raise ArchiveError(
                    self.path, f"cannot list the chunks of {what}: {self._store.read_error(exc)}"
                ) from exc
            if checked:
                absent = _merge_ranges(np.concatenate([self._absent[what], absent]))
            self._absent[what] = absent
            self._absent_upto[what] = self.n_checkpoints
        return self._absent[what]

    def _lost_chunks(
        self, array: Any, what: str, start: int = 0, stop: int | None = None
    ) -> str | None:
        """What is wrong if chunks of ``array`` are lost, else ``None``.

        Lost: absent from the store where no stored value could stand for them (in
        HDF5, always: see :meth:`Store.absent_ranges`; in Zarr, where the fill value
        is NaN: see the class notes), among checkpoints ``start .. stop - 1``.
        """
        if not self._store.absent_is_lost(array):
            return None
        stop = self.n_checkpoints if stop is None else stop
        missing = clip_ranges(self._absent_checkpoints(array, what), start, stop)
        if missing.size == 0:
            return None
        phrase = _checkpoints_phrase(missing, self.epochs)
        if self.backend == "hdf5":
            fill = as_python(self._store.fill_value(array))
            return (
                f"{what}: {phrase} absent from the file (never written: lost data, a read"
                f" would give the fill value {_short(fill)})"
            )
        return (
            f"{what}: {phrase} missing from the store"
            " (lost data: a read would give the fill value NaN, as if the run had diverged)"
        )

    def chunk_gaps(self) -> list[ChunkGap]:
        """Every array's complete checkpoints whose storage chunk is absent.

        See the class notes for what a gap means, by back end and fill value.
        """
        arrays = [("checkpoints/epoch", self._store.array((fmt.CHECKPOINTS, fmt.EPOCH)))]
        if self.steps is not None:
            arrays.append(("checkpoints/step", self._store.array((fmt.CHECKPOINTS, fmt.STEP))))
        arrays += [
            (f"layer {show_name(name)} {kind}", a) for (name, kind), a in self._arrays.items()
        ]
        arrays += [
            (f"metric {show_name(name)}", self._store.array(fmt.metric_parts(name)))
            for name in self.metric_names
        ]
        found = []
        for what, array in arrays:
            missing = self._absent_checkpoints(array, what)
            if missing.size:
                found.append(
                    ChunkGap(
                        what,
                        missing,
                        as_python(self._store.fill_value(array)),
                        self._store.absent_is_lost(array),
                    )
                )
        return found

    def _layer(self, layer: str) -> LayerInfo:
        try:
            return self.layers[layer]
        except KeyError:
            raise ArchiveError(
                self.path,
                f"no layer {show_name(layer)} (layers: {names_phrase(self.layer_names, 20)})",
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
        """Stream a layer's activations in blocks made of whole storage chunks.

        Parameters
        ----------
        layer : str
        start, stop : int
            Checkpoint range (``stop`` defaults to ``n_checkpoints``; never beyond).
        max_block_bytes : int
            Memory budget for one block, in bytes of the stored dtype. A block holds
            whole storage chunks, about ``TARGET_BLOCK_BYTES`` of them; a checkpoint
            larger than the budget is split along the probe-sample axis, at chunk
            boundaries. Each chunk is thus decoded exactly once; a block is never
            smaller than one chunk (at most ``MAX_CHUNK_BYTES``), whatever the budget.
        read_ahead : bool
            Read the next block in a background thread while the caller works on
            this one (two blocks in memory at most). Reading and reducing then
            overlap on two cores.

        Yields
        ------
        ActivationBlock
            ``values`` is a 2-D array ``(checkpoints, elements)`` in the stored dtype.
            For checkpoints whose Zarr chunks are absent (read as the fill value, see
            the class notes) it is a read-only broadcast of the fill value, with zero
            strides: nothing is read or allocated for them.

        Notes
        -----
        With ``read_ahead``, a caller that may stop before the end (an exception
        included) should close the iterator (``contextlib.closing``): that waits for
        the read in flight, which garbage collection would only do at some later time.
        """
        info = self._layer(layer)
        what = f"layer {show_name(layer)} activations"
        if not info.has_activations:
            raise ArchiveError(self.path, f"layer {show_name(layer)} stores no 'activations'")
        array = self._arrays[(layer, fmt.ACTIVATIONS)]
        stop = self.n_checkpoints if stop is None else min(stop, self.n_checkpoints)
        lost = self._lost_chunks(array, what, start, stop)
        if lost is not None:
            raise ArchiveError(self.path, lost)
        absent = clip_ranges(self._absent_checkpoints(array, what), start, stop)
        fill = self._store.fill_value(array)
        chunk_shape = self._store.chunk_shape(array)
        rows, samples_per_block = _block_shape(info, chunk_shape, max_block_bytes)
        # No block (nor buffer) longer than the rows asked for, rounded to whole chunks.
        rows = min(rows, -(-max(stop - start, 1) // chunk_shape[0]) * chunk_shape[0])
        n_samples = info.sample_shape[0]
        selections = [
            (t0, t1, n0, n1)
            for t0, t1 in _row_blocks(start, stop, rows)
            for n0, n1 in iter_row_blocks(n_samples, samples_per_block)
        ]

        read_into = self._block_reader(array, rows, samples_per_block, info)
        elements_per_sample = int(np.prod(info.sample_shape[1:], dtype=np.int64))

        def read(selection: tuple[int, int, int, int], slot: int) -> ActivationBlock:
            t0, t1, n0, n1 = selection
            if _covers(absent, t0, t1):
                values = np.broadcast_to(
                    np.asarray(fill, dtype=info.dtype),
                    (t1 - t0, (n1 - n0) * elements_per_sample),
                )
                return ActivationBlock(t0, t1, values)
            try:
                values = read_into(slot, t0, t1, n0, n1)
            except ArchiveError:
                raise
            except Exception as exc:
                problem = (
                    memory_problem(exc, what)
                    if isinstance(exc, MemoryError)
                    else f"cannot read {what}: {self._store.read_error(exc)}"
                )
                raise ArchiveError(self.path, problem) from exc
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

        from dynatrain.archive._hdf5 import inflates, read_inflating

        feature_shape = info.sample_shape[1:]
        buffers: dict[int, np.ndarray] = {}
        by_hand = inflates(array)

        def read_hdf5(slot: int, t0: int, t1: int, n0: int, n1: int) -> np.ndarray:
            buffer = buffers.get(slot)
            if buffer is None:
                buffer = buffers[slot] = np.empty((rows, samples, *feature_shape), array.dtype)
            shape = (t1 - t0, n1 - n0, *feature_shape)
            out = buffer[: t1 - t0, : n1 - n0] if n1 - n0 < samples else buffer[: t1 - t0]
            if out.size == 0:
                return out
            out = np.ascontiguousarray(out)  # a partial-sample view is not contiguous
            origin = (t0, n0, *(0 for _ in feature_shape))
            if by_hand:  # deflate: inflated here, bounded (see read_inflating)
                read_inflating(array, origin, out, self.path)
                return out
            file_space = array.id.get_space()
            file_space.select_hyperslab(origin, shape)
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


def _is_nan(value: Any) -> bool:
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(dtype: Any) -> bool:
    """Whether a dtype holds real numbers (integers or floats; not complex, text, bool)."""
    return np.dtype(dtype).kind in "iuf"


def _vector_problem(store: Store, array: Any, where: str) -> str | None:
    """Why ``array`` is not a readable 1-D array of real numbers, or ``None``."""
    if len(array.shape) != 1 or not _is_real(array.dtype):
        return (
            f"{where} must be a 1-D array of real numbers, has shape {list(array.shape)}"
            f" and dtype {array.dtype}"
        )
    return store.array_problem(array, where)


#: Longest rendering of a value (or of a list of problems) in a message.
_MAX_SHORT = 200
_MAX_PROBLEMS_SHOWN = 5


def _short(value: Any) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _MAX_SHORT else text[: _MAX_SHORT - 3] + "..."


def _problems_line(problems: list[str]) -> str:
    """The problems joined for a one-line error, the first few only."""
    line = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
    if len(problems) > _MAX_PROBLEMS_SHOWN:
        line += f"; and {len(problems) - _MAX_PROBLEMS_SHOWN} more problem(s)"
    return line


def _merge_ranges(ranges: np.ndarray) -> np.ndarray:
    """Sorted ``[start, stop)`` ranges with touching or overlapping ones joined."""
    if len(ranges) < 2:
        return ranges
    ranges = ranges[np.argsort(ranges[:, 0], kind="stable")]
    merged = [list(ranges[0])]
    for start, stop in ranges[1:]:
        if start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return np.array(merged, dtype=np.int64).reshape(-1, 2)


def _covers(ranges: np.ndarray, start: int, stop: int) -> bool:
    """Whether ``[start, stop)`` lies inside one of the (sorted, disjoint) ranges."""
    if ranges.size == 0:
        return False
    i = int(np.searchsorted(ranges[:, 0], start, side="right")) - 1
    return i >= 0 and ranges[i, 1] >= stop


def _block_shape(
    info: LayerInfo, chunk_shape: tuple[int, ...], max_block_bytes: int
) -> tuple[int, int]:
    """``(rows, samples)`` of the blocks a layer is streamed in: whole chunks only.

    Rows are a multiple of the chunk's rows, and samples of the chunk's samples (or
    all of them), so that no chunk is split between blocks (a chunk split in two is
    decoded twice: a gzip chunk of zeros read in 16 pieces was inflated 16 times).
    """
    n_samples = info.sample_shape[0]
    row_bytes = int(np.prod(info.sample_shape, dtype=np.int64)) * np.dtype(info.dtype).itemsize
    chunk_rows = max(1, int(chunk_shape[0]))
    chunk_samples = max(1, min(int(chunk_shape[1]) if len(chunk_shape) > 1 else 1, n_samples))
    if chunk_rows * row_bytes <= max_block_bytes:
        # Whole checkpoints, as many chunks as make the target.
        chunks = max(1, min(TARGET_BLOCK_BYTES, max_block_bytes) // (chunk_rows * row_bytes))
        return chunks * chunk_rows, n_samples
    # One row of chunks is over the budget: split it along the samples, at chunk edges.
    sample_bytes = max(1, row_bytes // n_samples)
    fit = max_block_bytes // (chunk_rows * sample_bytes)
    samples = max(chunk_samples, fit // chunk_samples * chunk_samples)
    return chunk_rows, min(samples, n_samples)


def _row_blocks(start: int, stop: int, rows: int) -> Iterator[tuple[int, int]]:
    """``[t0, t1)`` covering ``[start, stop)``, cut at multiples of ``rows`` (chunk edges)."""
    t0 = start
    while t0 < stop:
        t1 = min((t0 // rows + 1) * rows, stop)
        yield t0, t1
        t0 = t1


def _checkpoints_phrase(ranges: np.ndarray, epochs: np.ndarray) -> str:
    """Name the checkpoints whose chunks are absent, for messages.

    ``"the chunk of checkpoint 12 (epoch 13) is"``, or ``"the chunks of 3 checkpoints,
    from checkpoint 12 (epoch 13), are"``.
    """
    count = int((ranges[:, 1] - ranges[:, 0]).sum())
    first = int(ranges[0, 0])
    at = f"checkpoint {first}"
    if first < len(epochs) and np.isfinite(epochs[first]):
        at += f" (epoch {epochs[first]:g})"
    if count == 1:
        return f"the chunk of {at} is"
    return f"the chunks of {count} checkpoints, from {at}, are"
