"""Write activation archives from a training job, one checkpoint at a time.

>>> from dynatrain import ArchiveWriter
>>> meta = {"run_id": "mlp-s0", "dataset": "digits"}
>>> with ArchiveWriter("run.h5", metadata=meta) as w:  # doctest: +SKIP
...     for epoch in range(1, 101):
...         train_one_epoch()
...         w.append(epoch=epoch, activations={"fc1": h1, "fc2": h2},
...                  metrics={"val_accuracy": acc})

Crash safety: when :meth:`ArchiveWriter.append` returns, the checkpoint is written
and counted in the root attribute ``complete_checkpoints``; a process killed at any
moment (SIGKILL included) leaves every such checkpoint readable. HDF5 archives are
written in SWMR mode, so ``dynatrain`` can read them while training is still running.
One writer per archive: a second one, in this process or another, is refused.

Object storage: a Zarr archive may be written to an fsspec URL
(``ArchiveWriter("s3://bucket/run.zarr")``). There a checkpoint counts once its chunks
are stored and the root's ``complete_checkpoints`` says so, which is done before
``append`` returns; a killed writer leaves every counted checkpoint readable. The
one-writer rule rests on conditional writes instead of locks (see
:class:`~dynatrain.archive._sinks.FsspecSink`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from dynatrain.archive import format as fmt
from dynatrain.archive._backends import as_python
from dynatrain.archive._sinks import (
    ArraySpec,
    FsspecSink,
    HDF5Sink,
    Row,
    Sink,
    WriteMode,
    ZarrSink,
    check_mode,
    os_reason,
)
from dynatrain.archive.storage import local_path, redact
from dynatrain.errors import ArchiveError, DynatrainError, InputError

__all__ = ["ArchiveWriter"]

_METADATA_TYPES = (str, bool, int, float)
_INT64 = np.iinfo(np.int64)
#: Rows per storage chunk of the small per-checkpoint vectors (epoch, step, metrics).
_VECTOR_CHUNK = 1024
#: Rows the arrays are created with; they then double when full.
_INITIAL_CAPACITY = 1024


class ArchiveWriter:
    """Append checkpoints to a new activation archive.

    Parameters
    ----------
    path : str or path-like
        ``.h5``/``.hdf5`` for HDF5, ``.zarr`` for a Zarr (format 3) directory store.
        Missing parent folders are created. A Zarr archive may also be an fsspec URL
        (``s3://bucket/runs/run.zarr``, ``gs://...``, ``memory://...``; ``file://``
        URLs are local paths).
    metadata : mapping, optional
        Free run metadata stored as root attributes: strings, numbers or booleans
        (``run_id``, ``model``, ``dataset``, ``seed``, ``optimizer``, ``lr``, ...).
    mode : {"w-", "w"}
        ``"w-"`` creates the archive and refuses to replace an existing one; ``"w"``
        replaces it (a Zarr folder only if it is a Zarr store). Either way, an archive
        that another writer has open is refused.
    activation_dtype : {"float16", "float32", "float64"}, optional
        Stored type of the activations; default: that of the first arrays appended
        (``float32`` for non-float input). A finite value beyond the stored type's
        range becomes infinite; the first time that happens in a layer, a
        ``RuntimeWarning`` says so.
    chunk_checkpoints : int, optional
        Checkpoints per storage chunk of the activations. Default: as many as fit in
        4 KiB for HDF5 (1 with compression), in 64 KiB for Zarr, and at least 1. Few
        large chunks keep HDF5's chunk index small (each append then costs the same)
        and a long Zarr run from being millions of files.
    compression : {"gzip", "lzf"}, optional
        HDF5 filter for the activations. Zarr stores are written uncompressed (each
        row is written in place in its chunk; zarr can recompress a finished store).
    durable_every : int
        Make the archive durable (and count the new checkpoints in
        ``complete_checkpoints``) every this many appends, and at :meth:`close`. 1,
        the default, keeps the promise above for every checkpoint; with N, a killed
        job loses at most the last N - 1 appended checkpoints, for faster appends.
    expected_checkpoints : int, optional
        How many checkpoints the job plans to write, stored as the root attribute
        ``expected_checkpoints`` (a live ``watch`` uses it to choose the analysis
        window a later ``analyze`` will use). The same as passing it in ``metadata``.
    layer_attributes : mapping of str to mapping, optional
        Per layer, attributes of its group ``/layers/<name>`` (strings, numbers or
        booleans), written with the structure at the first append; every layer named
        must be in that append. The torch recorder stores each layer's pooling so.
    storage_options : mapping, optional
        For a URL: fsspec storage options (``{"endpoint_url": ..., "key": ...}``),
        over those of the environment (see :mod:`dynatrain.archive.storage`).

    Attributes
    ----------
    path : str
        The archive, as given (credentials in a URL shown as ``***``).
    n_checkpoints : int
        Checkpoints appended so far.
    n_durable : int
        Checkpoints counted in ``complete_checkpoints`` (``n_checkpoints`` unless
        ``durable_every`` > 1).

    Raises
    ------
    InputError
        For a bad argument, or an existing archive with ``mode="w-"``.
    ArchiveError
        If the archive cannot be created, or another writer has it open.

    Notes
    -----
    Layers, their per-checkpoint shapes, the metric names and whether ``step`` is
    given are fixed by the first :meth:`append`; a later append that differs raises
    :class:`~dynatrain.errors.InputError` before anything is written. A metric left
    out of a later append is stored as NaN. After a failed write (a full disk), the
    archive keeps every checkpoint counted before it; the writer refuses further
    appends and :meth:`close` only lets go of the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        mode: WriteMode = "w-",
        activation_dtype: str | None = None,
        chunk_checkpoints: int | None = None,
        compression: str | None = None,
        durable_every: int = 1,
        expected_checkpoints: int | None = None,
        layer_attributes: Mapping[str, Mapping[str, Any]] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            location = os.fspath(path)
        except TypeError:
            raise InputError(f"invalid archive path {path!r}: give a str or path-like") from None
        if not isinstance(location, str):
            location = os.fsdecode(location)
        # Messages, errors and the repr show the path with any credentials redacted.
        self.path = redact(location)
        self._closed = True  # until the archive exists
        mode = check_mode(mode)
        if activation_dtype is not None and activation_dtype not in fmt.ACTIVATION_DTYPES:
            raise InputError(
                f"invalid activation_dtype {activation_dtype!r}: use one of"
                f" {', '.join(fmt.ACTIVATION_DTYPES)}"
            )
        if compression not in (None, "gzip", "lzf"):
            raise InputError(f"invalid compression {compression!r}: use None, 'gzip' or 'lzf'")
        if chunk_checkpoints is not None:
            chunk_checkpoints = _positive_int(chunk_checkpoints, "chunk_checkpoints")
        durable_every = _positive_int(durable_every, "durable_every")
        local = local_path(location)  # a file:// URL is a local path
        backend = fmt.backend_for_path(location)
        if backend is None:
            raise InputError(
                f"{self.path}: cannot tell the back end from the suffix; use a path"
                " ending in .h5, .hdf5 or .zarr (or a .zarr URL)"
            )
        if local is None and backend != "zarr":
            raise InputError(
                f"{self.path}: HDF5 archives are written to local paths; write a .zarr"
                " archive to object storage"
            )
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise InputError("storage_options must be a mapping of option name to value")
        metadata = _check_metadata(metadata or {})
        # Given as an argument or in the metadata, it is stored the same way (last).
        expected = metadata.pop(fmt.EXPECTED_ATTR, None)
        if expected_checkpoints is not None:
            argument = _positive_int(expected_checkpoints, "expected_checkpoints")
            if expected not in (None, argument):
                raise InputError(
                    f"expected_checkpoints={argument} and metadata"
                    f" {fmt.EXPECTED_ATTR!r}={expected} disagree"
                )
            expected = argument
        if expected is not None:
            metadata[fmt.EXPECTED_ATTR] = expected
        if layer_attributes is not None and not isinstance(layer_attributes, Mapping):
            raise InputError("layer_attributes must map layer names to mappings of attributes")
        self._layer_attributes = {
            name: _check_metadata(attributes)
            for name, attributes in (layer_attributes or {}).items()
        }
        self._backend = backend
        self._activation_dtype = activation_dtype
        self._chunk_checkpoints = chunk_checkpoints
        self._durable_every = durable_every
        self._layer_kinds: dict[str, tuple[str, ...]] = {}
        self._specs: dict[tuple[str, ...], ArraySpec] = {}
        self._metric_names: tuple[str, ...] = ()
        self._has_step = False
        self._last_epoch = -math.inf
        self._capacity = 0
        self._overflow_warned: set[str] = set()
        self._failure: ArchiveError | None = None
        self.n_checkpoints = 0
        self.n_durable = 0
        if local is None:
            self._sink: Sink = FsspecSink(location, mode, compression, dict(storage_options or {}))
        else:
            _make_parent_folder(local)
            sink_class = HDF5Sink if backend == "hdf5" else ZarrSink
            self._sink = sink_class(local, mode, compression)
        self._closed = False
        root = {fmt.FORMAT_ATTR: fmt.FORMAT_NAME, fmt.VERSION_ATTR: fmt.FORMAT_VERSION}
        root[fmt.COMPLETE_ATTR] = 0
        try:
            self._sink.init_root({**root, **metadata})
        except Exception as exc:
            self._fail("cannot write the root attributes", exc)

    # -- appending -----------------------------------------------------------------------------

    def append(
        self,
        *,
        epoch: float,
        activations: Mapping[str, Any] | None = None,
        signals: Mapping[str, float] | None = None,
        metrics: Mapping[str, float] | None = None,
        step: int | None = None,
    ) -> int:
        """Write one checkpoint; return its index.

        Parameters
        ----------
        epoch : float
            Epoch of the checkpoint; strictly greater than the previous one.
        activations : mapping of str to array-like, optional
            Per layer, the activations on the probe batch, shape ``(N, ...)``: N probe
            samples, then features. Anything ``numpy.asarray`` accepts (a CPU tensor too).
        signals : mapping of str to float, optional
            Per layer, a pre-reduced scalar (stored as ``/layers/<name>/signal``).
        metrics : mapping of str to float, optional
            ``train_loss``, ``val_accuracy``, ... (fractions or percentages, as you like).
            A name may contain ``/`` (``val/acc``): it is stored as nested groups and
            read back under the same name.
        step : int, optional
            Global optimisation step.

        Raises
        ------
        InputError
            If the checkpoint does not match the first one (layers, shapes, metrics,
            step), the epoch does not increase, or a value is not a number; nothing
            is written then.
        ArchiveError
            If writing fails (a full disk): the archive keeps the checkpoints
            counted before, and the writer accepts no more.
        """
        if self._failure is not None:
            raise ArchiveError(
                self.path, f"the writer stopped at an earlier error ({self._failure.problem})"
            )
        if self._closed:
            raise InputError(f"{self.path}: the writer is closed")
        rows = self._rows(epoch, activations or {}, signals or {}, metrics or {}, step)
        index = self.n_checkpoints
        try:
            if not self._specs:
                self._create(rows)
            self._place(rows, index)
            if index + 1 - self.n_durable >= self._durable_every:
                self._commit(index + 1)
        except DynatrainError as exc:  # e.g. the path was taken meanwhile (mode "w-")
            self._failure = (
                exc if isinstance(exc, ArchiveError) else ArchiveError(self.path, str(exc))
            )
            self._sink.abort()
            self._closed = True
            raise
        except Exception as exc:
            self._fail(f"cannot write checkpoint {index}", exc)
        self.n_checkpoints = index + 1
        self._last_epoch = float(rows[(fmt.CHECKPOINTS, fmt.EPOCH)])
        return index

    def _create(self, rows: dict[tuple[str, ...], Row]) -> None:
        """Create every array from the rows of the first append."""
        for parts, row in rows.items():
            if parts[-1] == fmt.ACTIVATIONS and parts[0] == fmt.LAYERS:
                chunk_rows = self._chunk_checkpoints or self._sink.chunk_rows(row.nbytes)
            else:
                chunk_rows = _VECTOR_CHUNK
            self._specs[parts] = ArraySpec(
                parts, row.shape, row.dtype.newbyteorder("<"), chunk_rows
            )
        self._capacity = _INITIAL_CAPACITY
        self._sink.create(
            self._specs.values(), list(self._layer_kinds), self._capacity, self._layer_attributes
        )

    def _place(self, rows: dict[tuple[str, ...], Row], index: int) -> None:
        """Write one checkpoint's rows, first growing the arrays if they are full."""
        if index >= self._capacity:
            self._capacity *= 2
            self._sink.grow(self._specs.values(), self._capacity)
        for parts, spec in self._specs.items():
            self._sink.write_row(spec, index, rows[parts])

    def _commit(self, n_checkpoints: int) -> None:
        """Count ``n_checkpoints`` in ``complete_checkpoints``, durably."""
        self._sink.commit(n_checkpoints)
        self.n_durable = n_checkpoints

    def _fail(self, what: str, exc: BaseException) -> None:
        """Stop the writer after a failed write and raise one clear ArchiveError."""
        counted = f"the archive keeps the {self.n_durable} checkpoint(s) counted before"
        self._failure = ArchiveError(self.path, f"{what}: {os_reason(exc)}; {counted}")
        self._sink.abort()
        self._closed = True
        if isinstance(exc, OSError):
            raise self._failure from None  # the system's words say it all
        raise self._failure from exc

    # -- checking one checkpoint ----------------------------------------------------------------

    def _rows(
        self,
        epoch: Any,
        activations: Mapping[str, Any],
        signals: Mapping[str, Any],
        metrics: Mapping[str, Any],
        step: Any,
    ) -> dict[tuple[str, ...], Row]:
        """Check one checkpoint against the archive's structure; return its rows."""
        where = f"{self.path}: checkpoint {self.n_checkpoints}"
        for what, mapping in (("activations", activations), ("signals", signals)):
            if not isinstance(mapping, Mapping):
                raise InputError(f"{where}: {what} must be a mapping of layer name to values")
        if not isinstance(metrics, Mapping):
            raise InputError(f"{where}: metrics must be a mapping of metric name to number")
        epoch = _number(epoch, f"{where}: epoch")
        if not math.isfinite(epoch) or epoch <= self._last_epoch:
            raise InputError(
                f"{where}: epoch must be finite and greater than the previous one"
                f" ({self._last_epoch:g}), got {epoch:g}"
            )
        first = not self._specs
        kinds: dict[str, list[str]] = {}
        for name in activations:
            kinds.setdefault(name, []).append(fmt.ACTIVATIONS)
        for name in signals:
            kinds.setdefault(name, []).append(fmt.SIGNAL)
        if first:
            for name in kinds:  # later appends must name the same layers
                fmt.check_layer_name(name)
            if not kinds:
                raise InputError(f"{where}: give activations or signals for at least one layer")
            unknown_layers = sorted(set(self._layer_attributes) - set(kinds), key=str)
            if unknown_layers:
                raise InputError(
                    f"{where}: layer_attributes name layer(s) {', '.join(map(str, unknown_layers))}"
                    " that the first checkpoint does not hold"
                )
            self._check_metric_names(list(metrics), where)
        else:
            expected = {name: list(k) for name, k in self._layer_kinds.items()}
            if kinds != expected:
                raise InputError(
                    f"{where}: layers differ from the first checkpoint"
                    f" (expected {_describe(expected)}, got {_describe(kinds)})"
                )
            unknown = sorted(set(metrics) - set(self._metric_names), key=str)
            if unknown:
                raise InputError(
                    f"{where}: metric(s) {', '.join(map(str, unknown))} were not in the first"
                    " checkpoint; give every metric at the first append (NaN where not measured)"
                )
            if (step is not None) != self._has_step:
                said = "gave" if self._has_step else "did not give"
                raise InputError(f"{where}: the first checkpoint {said} a step; be consistent")

        rows: dict[tuple[str, ...], Row] = {(fmt.CHECKPOINTS, fmt.EPOCH): np.float64(epoch)}
        if step is not None:
            rows[(fmt.CHECKPOINTS, fmt.STEP)] = np.int64(_step(step, where))
        for name, value in activations.items():
            rows[(fmt.LAYERS, name, fmt.ACTIVATIONS)] = self._activation_row(name, value, where)
        for name, value in signals.items():
            value = _number(value, f"{where}: signal of layer {name!r}")
            rows[(fmt.LAYERS, name, fmt.SIGNAL)] = np.float64(value)
        names = tuple(metrics) if first else self._metric_names
        for name in names:
            value = metrics.get(name)
            value = math.nan if value is None else value  # not measured at this checkpoint
            value = _number(value, f"{where}: metric {name!r}")
            rows[fmt.metric_parts(name)] = np.float64(value)
        if first:  # everything checked: fix the structure
            self._layer_kinds = {name: tuple(k) for name, k in kinds.items()}
            self._metric_names = names
            self._has_step = step is not None
        return rows

    @staticmethod
    def _check_metric_names(names: list[Any], where: str) -> None:
        groups: dict[str, str] = {}  # group path -> a metric inside it
        for name in names:
            fmt.check_metric_name(name)
            parts = name.split("/")
            for depth in range(1, len(parts)):
                groups.setdefault("/".join(parts[:depth]), name)
        for name in names:
            if name in groups:
                raise InputError(
                    f"{where}: metrics {name!r} and {groups[name]!r} clash: {name!r} would be"
                    " both a value and the group holding the other"
                )

    def _activation_row(self, name: str, value: Any, where: str) -> np.ndarray:
        spec = self._specs.get((fmt.LAYERS, name, fmt.ACTIVATIONS))
        if (
            spec is not None
            and isinstance(value, np.ndarray)
            and value.dtype == spec.dtype
            and value.shape == spec.row_shape
        ):
            return value  # the usual case, checked in one go (written before append returns)
        what = f"{where}: activations of layer {name!r}"
        try:
            array = np.asarray(value)
        except Exception as exc:
            raise InputError(f"{what} are not an array ({os_reason(exc)})") from None
        if array.dtype.kind not in "fiub":
            raise InputError(f"{what} must be real numbers, got dtype {array.dtype}")
        if array.ndim < 1 or array.size == 0:
            raise InputError(f"{what} must have shape (N, ...) with N >= 1, got {array.shape}")
        if spec is None:
            dtype = np.dtype(
                self._activation_dtype
                or (array.dtype.name if array.dtype.name in fmt.ACTIVATION_DTYPES else "float32")
            ).newbyteorder("<")
        else:
            dtype = spec.dtype
            if array.shape != spec.row_shape:
                raise InputError(
                    f"{what} have shape {array.shape}, the first checkpoint had {spec.row_shape}"
                )
        if array.dtype == dtype:
            return array
        with np.errstate(over="ignore", invalid="ignore"):
            row = array.astype(dtype)
        narrower = array.dtype.kind != "f" or array.dtype.itemsize > dtype.itemsize
        if narrower and name not in self._overflow_warned and not np.isfinite(row).all():
            self._warn_overflow(name, array, row, dtype, where)
        return row

    def _warn_overflow(
        self, name: str, array: np.ndarray, row: np.ndarray, dtype: np.dtype, where: str
    ) -> None:
        """Say once per layer that finite values became infinite in a narrower type."""
        with np.errstate(invalid="ignore"):
            overflowed = int(np.count_nonzero(np.isinf(row) & np.isfinite(array)))
        if not overflowed:
            return  # the input itself held the non-finite values
        self._overflow_warned.add(name)
        limit = np.finfo(dtype).max
        warnings.warn(
            f"{where}: {overflowed} finite activation value(s) of layer {name!r} exceed"
            f" {dtype.name}'s range (±{limit:.6g}) and are stored as ±inf (the analysis"
            f" stops before them); store a wider type (activation_dtype=) to keep them."
            " Reported once per layer",
            RuntimeWarning,
            stacklevel=5,  # the caller of append()
        )

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Make every appended checkpoint durable, trim the arrays, release the archive.

        Safe to call more than once, and after a failed write (it then only lets go
        of the file).
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._specs:
                if self.n_durable < self.n_checkpoints:
                    self._commit(self.n_checkpoints)
                if self._capacity > self.n_checkpoints:
                    self._sink.grow(self._specs.values(), self.n_checkpoints)
            self._sink.close()
        except Exception as exc:
            self._fail("cannot close the archive", exc)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ArchiveWriter {self.path!r} {state} checkpoints={self.n_checkpoints}>"


def _make_parent_folder(path: str) -> None:
    """Create the folders above ``path`` that are missing; one clear error if impossible."""
    parent = os.path.dirname(os.path.abspath(path))
    ancestor = parent
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ArchiveError(path, f"cannot create the archive: {ancestor} is not a folder")
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(path, f"cannot create its folder {parent} ({os_reason(exc)})") from None


def _describe(kinds: Mapping[str, list[str]]) -> str:
    return ", ".join(f"{name} ({'+'.join(k)})" for name, k in kinds.items()) or "none"


def _number(value: Any, what: str) -> float:
    """``value`` as a float (a NumPy or 0-d tensor scalar too); InputError otherwise."""
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "fiub" or array.size != 1:
            raise TypeError
        return float(array.reshape(()))
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} must be a real number, got {_short(value)}") from None


def _step(value: Any, where: str) -> int:
    """``value`` as an int64 step; a float is accepted if it is a whole number."""
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "iuf" or array.size != 1:
            raise TypeError
        step = array.reshape(()).item()
        if isinstance(step, float):
            if not step.is_integer():
                raise ValueError
            step = int(step)
        if not _INT64.min <= step <= _INT64.max:
            raise OverflowError
        return int(step)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: step must be an integer (int64), got {_short(value)}") from None


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise InputError(f"{name} must be an integer >= 1, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise InputError(f"metadata must be a mapping of str to value, got {_short(metadata)}")
    checked: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or key in fmt.RESERVED_ATTRS:
            raise InputError(
                f"invalid metadata key {key!r}: use a non-empty string other than"
                f" {', '.join(fmt.RESERVED_ATTRS)}"
            )
        value = as_python(value)
        if not isinstance(value, _METADATA_TYPES):
            raise InputError(
                f"metadata {key!r} must be a string, number or boolean, got {type(value).__name__}"
            )
        if isinstance(value, int) and not _INT64.min <= value <= _INT64.max:
            raise InputError(f"metadata {key!r} = {value} does not fit in a 64-bit integer")
        if key == fmt.EXPECTED_ATTR:
            value = _positive_int(value, f"metadata {key!r}")
        checked[key] = value
    return checked
