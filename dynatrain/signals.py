"""From archived activations to layer signals: one number per layer and checkpoint.

:func:`read_signals` streams every layer's activations block by block (memory is
bounded by the block budget, whatever the archive's size), reduces each checkpoint's
activation tensor to a float64 scalar (``mean``, ``rms``, ``mean-abs``, ``std``) or
reads the stored ``signal``, and returns a :class:`LayerSignals` matrix of shape
``(n_layers, n_checkpoints)`` with the epoch axis and the metrics.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynatrain import defaults
from dynatrain.archive.format import is_url
from dynatrain.archive.reader import DEFAULT_BLOCK_BYTES, Archive, open_archive
from dynatrain.errors import InputError

__all__ = [
    "ExcludedLayer",
    "LayerSignals",
    "checkpoint_range",
    "finite_prefix_length",
    "flush_tiny",
    "parse_epoch_range",
    "read_signals",
    "reduce_layer",
    "reduce_rows",
    "select_layers",
    "usable_signal",
]

#: Elements converted to float64 at a time (2 MiB): few enough to stay in the CPU's
#: caches, enough that NumPy's cost per call does not count (at 1 << 16, --reduce std
#: took a fifth longer).
_PIECE_ELEMENTS = 1 << 18
#: Layers of an archive in object storage read at once: each layer's chunks are
#: fetched in one concurrent batch, and a round trip per layer in turn would leave
#: the connection idle most of the time. The memory budget is shared among them.
_REMOTE_LAYERS_AT_ONCE = 8


@dataclass(frozen=True)
class ExcludedLayer:
    """A layer left out of the analysis, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class LayerSignals:
    """Layer signals of one run.

    Attributes
    ----------
    path : str
        The archive, as given.
    metadata : dict
        The archive's free metadata.
    reduce : str
        How each checkpoint was reduced (one of ``defaults.REDUCTIONS``).
    layer_names : tuple of str
        Layers in ``values``, input side first.
    epochs : ndarray, shape (n_checkpoints,)
        Epoch of each checkpoint.
    values : ndarray of float64, shape (n_layers, n_checkpoints)
        x_l(t). May hold non-finite values (a diverged run); the analysis decides.
    metrics : dict of str to ndarray, each shape (n_checkpoints,)
    steps : ndarray of int64, shape (n_checkpoints,), or None
    excluded : tuple of ExcludedLayer
        Selected layers that could not be reduced this way (e.g. no stored signal).
    first_checkpoint : int
        Index in the archive of the first checkpoint here (non-zero with an epoch range).
    """

    path: str
    metadata: dict[str, Any]
    reduce: str
    layer_names: tuple[str, ...]
    epochs: np.ndarray
    values: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    steps: np.ndarray | None = None
    excluded: tuple[ExcludedLayer, ...] = ()
    first_checkpoint: int = 0

    @property
    def n_checkpoints(self) -> int:
        """Number of checkpoints (columns of ``values``)."""
        return int(self.epochs.shape[0])


def select_layers(available: Sequence[str], patterns: Sequence[str] | None) -> list[str]:
    """Layers named by ``patterns`` (exact names or shell globs), in archive order.

    Raises
    ------
    InputError
        If a pattern matches no layer.
    """
    if not patterns:
        return list(available)
    chosen: set[str] = set()
    for pattern in patterns:
        matches = [name for name in available if fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            raise InputError(
                f"--layers {pattern!r} matches no layer (layers: {', '.join(available)})"
            )
        chosen.update(matches)
    return [name for name in available if name in chosen]


def parse_epoch_range(text: str | None) -> tuple[float | None, float | None]:
    """Parse ``"START:END"`` (either side may be empty) into epoch bounds.

    Raises
    ------
    InputError
        If ``text`` is not of that form or START > END.
    """
    if text is None or text.strip() in ("", ":"):
        return None, None
    parts = text.split(":")
    if len(parts) != 2:
        raise InputError(f"--epochs {text!r}: expected START:END, e.g. 10:80, 10: or :80")
    try:
        bounds = [float(p) if p.strip() else None for p in parts]
    except ValueError:
        raise InputError(f"--epochs {text!r}: START and END must be numbers") from None
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise InputError(f"--epochs {text!r}: START is after END")
    return start, end


def checkpoint_range(
    epochs: np.ndarray, start_epoch: float | None, end_epoch: float | None
) -> tuple[int, int]:
    """Indices ``(start, stop)`` of the checkpoints with ``start_epoch <= epoch <= end_epoch``."""
    start = 0 if start_epoch is None else int(np.searchsorted(epochs, start_epoch, "left"))
    stop = len(epochs) if end_epoch is None else int(np.searchsorted(epochs, end_epoch, "right"))
    return start, max(start, stop)


def read_signals(
    source: str | os.PathLike[str] | Archive,
    *,
    reduce: str = defaults.REDUCE,
    layers: Sequence[str] | None = None,
    epochs: tuple[float | None, float | None] = (None, None),
    max_block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> LayerSignals:
    """Reduce an archive's activations to layer signals.

    Parameters
    ----------
    source : path or Archive
        An archive path (opened and closed here) or an open :class:`Archive`.
    reduce : {"mean", "rms", "mean-abs", "std", "signal"}
        Reduction of each checkpoint's activation tensor (all probe samples and
        features) to one number, accumulated in float64; ``signal`` reads the stored
        pre-reduced signal.
    layers : sequence of str, optional
        Layer names or shell globs; all layers by default.
    epochs : (float or None, float or None)
        Keep checkpoints whose epoch lies in this closed range.
    max_block_bytes : int
        Memory budget for one block of raw activations.

    Returns
    -------
    LayerSignals

    Raises
    ------
    ArchiveError
        If the archive cannot be read.
    InputError
        If the options select nothing that can be reduced.
    """
    if reduce not in defaults.REDUCTIONS:
        raise InputError(f"invalid reduce {reduce!r}: use one of {', '.join(defaults.REDUCTIONS)}")
    if isinstance(source, Archive):
        return _read_signals(source, reduce, layers, epochs, max_block_bytes)
    with open_archive(source) as archive:
        return _read_signals(archive, reduce, layers, epochs, max_block_bytes)


def _read_signals(
    archive: Archive,
    reduce: str,
    patterns: Sequence[str] | None,
    epoch_range: tuple[float | None, float | None],
    max_block_bytes: int,
) -> LayerSignals:
    names = select_layers(archive.layer_names, patterns)
    start, stop = checkpoint_range(archive.epochs, *epoch_range)
    kept: list[str] = []
    excluded: list[ExcludedLayer] = []
    for name in names:
        info = archive.layers[name]
        if reduce == "signal" and not info.has_signal:
            excluded.append(ExcludedLayer(name, "no stored signal (use another --reduce)"))
            continue
        if reduce != "signal" and not info.has_activations:
            excluded.append(ExcludedLayer(name, "no stored activations (use --reduce signal)"))
            continue
        kept.append(name)
    if not kept and excluded:  # (no layer at all: no complete checkpoint, said by the caller)
        reasons = "; ".join(f"{e.name}: {e.reason}" for e in excluded)
        raise InputError(
            f"{archive.path}: no layer can be reduced with --reduce {reduce} ({reasons})"
        )
    at_once = min(_REMOTE_LAYERS_AT_ONCE, len(kept)) if is_url(archive.path) else 1
    block_bytes = max(1, max_block_bytes // max(at_once, 1))

    def one(name: str) -> np.ndarray:
        return reduce_layer(
            archive, name, reduce, start=start, stop=stop, max_block_bytes=block_bytes
        )

    def metric(name: str) -> np.ndarray:
        return archive.metric(name)[start:stop]

    if at_once > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(at_once, thread_name_prefix="dynatrain-layer") as pool:
            # The metrics too, alongside (each is a round trip of its own); errors are
            # raised in the order a sequential read would meet them.
            metric_reads = [pool.submit(metric, name) for name in archive.metric_names]
            rows = list(pool.map(one, kept))  # in order; the first error is raised
            metrics = [read.result() for read in metric_reads]
    else:
        rows = [one(name) for name in kept]
        metrics = [metric(name) for name in archive.metric_names]
    values = np.vstack(rows) if rows else np.empty((0, stop - start))
    return LayerSignals(
        path=archive.path,
        metadata=dict(archive.metadata),
        reduce=reduce,
        layer_names=tuple(kept),
        epochs=archive.epochs[start:stop].copy(),
        values=values,
        metrics=dict(zip(archive.metric_names, metrics, strict=True)),
        steps=None if archive.steps is None else archive.steps[start:stop].copy(),
        excluded=tuple(excluded),
        first_checkpoint=start,
    )


def reduce_layer(
    archive: Archive,
    layer: str,
    reduce: str,
    *,
    start: int = 0,
    stop: int | None = None,
    max_block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> np.ndarray:
    """One layer's signal x_l(t) for checkpoints ``start .. stop - 1``, float64.

    See :func:`read_signals` for the reductions and :class:`_RowReduction` for how
    they are computed. Memory use is bounded by two blocks of ``max_block_bytes``
    (one read ahead), a block-sized array for ``mean-abs`` and a 2 MiB float64
    working piece.
    """
    stop = archive.n_checkpoints if stop is None else stop
    if reduce == "signal":
        return archive.signal(layer, start=start, stop=stop)
    reduction = _RowReduction(reduce, stop - start)
    blocks = archive.iter_activations(
        layer, start=start, stop=stop, max_block_bytes=max_block_bytes
    )
    # Closed on the way out, an error included: no read is left running behind it.
    with closing(blocks):
        for block in blocks:
            reduction.add(block.start - start, block.values)
    return reduction.result()


def reduce_rows(values: np.ndarray, reduce: str) -> np.ndarray:
    """Reduce each row of ``values`` (checkpoints x elements) as :func:`reduce_layer` does.

    For activations still in memory (a training loop's monitor): the result is bit
    for bit what ``read_signals`` reads back from the archive the same rows went to.

    Parameters
    ----------
    values : ndarray, shape (n_checkpoints, n_elements)
        Activations in their stored type.
    reduce : {"mean", "rms", "mean-abs", "std"}

    Returns
    -------
    ndarray of float64, shape (n_checkpoints,)
    """
    if reduce not in defaults.REDUCTIONS or reduce == "signal":
        choices = ", ".join(r for r in defaults.REDUCTIONS if r != "signal")
        raise InputError(f"invalid reduce {reduce!r} for activations: use one of {choices}")
    reduction = _RowReduction(reduce, values.shape[0])
    reduction.add(0, values)
    return reduction.result()


#: NumPy >= 2: dot products along the last axis, with BLAS for float64.
_vecdot = getattr(np, "vecdot", None)
#: Longest run of elements handed to one BLAS dot product. OpenBLAS spreads a dot
#: product of more than 10,000 elements over its threads; with the read-ahead thread
#: on the other core of a small machine that made --reduce std slower, not faster.
_DOT_SEGMENT = 4096
_ONES = np.ones(_DOT_SEGMENT)


def _row_dot(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``sum(a * b, axis=1)`` (``b=None``: ``sum(a, axis=1)``) of 2-D float64 arrays.

    Each row is cut into segments of ``_DOT_SEGMENT`` elements, one single-threaded
    BLAS dot product each, and the segments are added (pairwise).
    """
    n_rows, n_cols = a.shape
    if _vecdot is None:  # NumPy 1.x
        return np.add.reduce(a, axis=1) if b is None else np.einsum("ij,ij->i", a, b)
    if n_cols <= _DOT_SEGMENT:
        return _vecdot(a, _ONES[:n_cols] if b is None else b)
    head = n_cols - n_cols % _DOT_SEGMENT
    a_head = a[:, :head].reshape(n_rows, -1, _DOT_SEGMENT)
    b_head = _ONES if b is None else b[:, :head].reshape(n_rows, -1, _DOT_SEGMENT)
    total = np.add.reduce(_vecdot(a_head, b_head), axis=1)
    if head < n_cols:
        total += _vecdot(a[:, head:], _ONES[: n_cols - head] if b is None else b[:, head:])
    return total


class _RowReduction:
    """Streaming reduction of the rows (checkpoints) of a layer's blocks to float64.

    Each element is read once from the block, and the float64 work happens in a
    reused buffer of one piece (:func:`_pieces`, 2 MiB): never a float64 copy of a
    block, never a fresh array per piece. h5py holds the GIL while it reads, so
    reading and reducing do not overlap: what the reduction costs adds to the read.

    * ``mean``: sums in float64 straight from the stored type (NumPy converts in
      small buffers as it adds);
    * ``mean-abs``: absolute values in the stored type (exact) into a reused array,
      then the same sums;
    * ``rms``: the piece in float64 (float16/float32 squares are exact there), then
      its rows' dot products with themselves (:func:`_row_dot`);
    * ``std``: shifted sums. Each row's shift K is the mean of its first elements;
      with d = x - K, S1 = sum(d) and S2 = sum(d * d) over the whole row,
      var = S2 / n - (S1 / n) ** 2. K is close to the row's mean, so S1 / n is small
      and the subtraction loses nothing, even when the mean dwarfs the spread
      (1e4 + noise of 1e-4), where E[x^2] - E[x]^2 loses every digit; and x - K is
      exact in float64 whenever x and K are within a factor of two. One pass over
      the piece per sum, as for ``rms``.

    **Huge and tiny values.** A diverging run can store float64 values of 1e155 and
    more, whose squares (or sums) overflow float64 although the mean, rms and std
    are finite; subnormal values (1e-310) have squares that vanish. Where a row's
    partial sums of one piece overflow while its values are all finite, or its sum
    of squares underflows while its values are not all zero, that piece of the row
    is summed again scaled by a power of two (exact), and the row's sums are kept
    from then on in units of ``2 ** exponent`` (squares in ``4 ** exponent``); the
    result is scaled back at the end. Rows that need none of this are computed
    exactly as without it.
    Non-finite values (inf, NaN) propagate to the row's result (the analysis deals
    with them); no NumPy warning is printed for them.
    """

    def __init__(self, reduce: str, n_rows: int) -> None:
        self.reduce = reduce
        self.counts = np.zeros(n_rows)
        self.sums = np.zeros(n_rows)
        self.sums_of_squares = np.zeros(n_rows)
        self.shift = np.full(n_rows, np.nan)
        self.exponent = np.zeros(n_rows, dtype=np.int64)
        self._scaled = False  # whether any row has a non-zero exponent
        self._buffers: dict[np.dtype, np.ndarray] = {}

    def _buffer(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A working array of ``shape``, reused and grown as needed.

        A fresh array per piece or block would cost page faults on every one.
        """
        size = shape[0] * shape[1]
        flat = self._buffers.get(dtype)
        if flat is None or flat.size < size:
            flat = self._buffers[dtype] = np.empty(size, dtype)
        return flat[:size].reshape(shape)

    def add(self, row: int, values: np.ndarray) -> None:
        """Add a block: rows ``row ..`` of the result, some (or all) of their elements."""
        with np.errstate(over="ignore", invalid="ignore"):
            self._add(row, values)

    def _add(self, row: int, values: np.ndarray) -> None:
        rows = slice(row, row + values.shape[0])
        self.counts[rows] += values.shape[1]
        if values.size and not any(values.strides):  # one value broadcast (a fill value)
            self._add_constant(rows, float(values.flat[0]), values.shape[1])
            return
        if self.reduce in ("mean", "mean-abs"):
            if self.reduce == "mean-abs":  # exact in the stored type, into a reused array
                values = np.abs(values, out=self._buffer(values.dtype, values.shape))
            # NumPy casts to float64 in small buffers as it sums: no float64 copy.
            sums = np.add.reduce(values, axis=1, dtype=np.float64)
            self._merge(rows, sums, None, _rescale(values, sums, None, None))
            return
        std = self.reduce == "std"
        if std:
            unset = np.isnan(self.shift[rows])
            if unset.any():  # first elements of these rows: their mean is the shift
                mean = _robust_mean(values[:, :_DOT_SEGMENT])
                self.shift[rows] = np.where(unset, mean, self.shift[rows])
        for r0, piece in _pieces(values):
            at = slice(row + r0, row + r0 + piece.shape[0])
            x = self._buffer(np.dtype(np.float64), piece.shape)
            np.copyto(x, piece)
            sums = None
            if std:
                np.subtract(x, self.shift[at, None], out=x)  # d = x - K
                sums = _row_dot(x)
            squares = _row_dot(x, x)
            shift = self.shift[at] if std else None
            self._merge(at, sums, squares, _rescale(piece, sums, squares, shift))

    def _add_constant(self, rows: slice, value: float, count: int) -> None:
        """Add ``count`` elements equal to ``value`` to each row of ``rows``."""
        if self.reduce == "mean-abs":
            value = abs(value)
        x = np.full(rows.stop - rows.start, value)
        if self.reduce == "std":
            self.shift[rows] = np.where(np.isnan(self.shift[rows]), value, self.shift[rows])
            x = x - self.shift[rows]
        exponent = None
        if _needs_scaling(x * count, x * x * count).any() and np.isfinite(x).all():
            exponent = np.frexp(np.abs(x))[1].astype(np.int64)
            x = np.ldexp(x, -exponent)
        sums = x * count if self.reduce != "rms" else None
        squares = x * x * count if self.reduce in ("rms", "std") else None
        self._merge(rows, sums, squares, exponent)

    def _merge(
        self,
        at: slice,
        sums: np.ndarray | None,
        squares: np.ndarray | None,
        exponent: np.ndarray | None,
    ) -> None:
        """Add sums (in units of ``2 ** exponent``) and squares (``4 ** exponent``) to ``at``.

        Each row keeps the larger of its exponent and the new one (the smaller part is
        then scaled down, exactly, or to what float64 can hold of it); a row with
        nothing yet, or a contribution of zero, takes the other's exponent.
        """
        if exponent is None and not self._scaled:
            if sums is not None:
                self.sums[at] += sums
            if squares is not None:
                self.sums_of_squares[at] += squares
            return
        self._scaled = True
        old = self.exponent[at]
        exponent = old.copy() if exponent is None else exponent
        nothing_new = np.ones(old.shape, dtype=bool)
        for part in (sums, squares):
            if part is not None:
                nothing_new &= part == 0
        nothing_yet = (self.sums[at] == 0) & (self.sums_of_squares[at] == 0)
        exponent = np.where(nothing_new, old, exponent)
        old = np.where(nothing_yet, exponent, old)
        new = np.maximum(old, exponent)
        if sums is not None:
            self.sums[at] = np.ldexp(self.sums[at], old - new) + np.ldexp(sums, exponent - new)
        if squares is not None:
            self.sums_of_squares[at] = np.ldexp(
                self.sums_of_squares[at], 2 * (old - new)
            ) + np.ldexp(squares, 2 * (exponent - new))
        self.exponent[at] = new

    def result(self) -> np.ndarray:
        """x_l(t) for every row, float64."""
        n = self.counts
        with np.errstate(over="ignore", invalid="ignore"):
            if self.reduce == "std":
                mean_shifted = self.sums / n
                value = np.sqrt(np.maximum(self.sums_of_squares / n - mean_shifted**2, 0.0))
            elif self.reduce == "rms":
                value = np.sqrt(self.sums_of_squares / n)
            else:
                value = self.sums / n
        return np.ldexp(value, self.exponent) if self._scaled else value


#: Below this, a sum of squares has lost precision to underflow (its terms were
#: subnormal, or flushed to zero): squares of values under 2**-484.
_TINY_SQUARES = 2.0**-968


def _needs_scaling(sums: np.ndarray | None, squares: np.ndarray | None) -> np.ndarray:
    """Rows whose sums overflowed (non-finite) or whose squares underflowed (tiny)."""
    rows = sums if sums is not None else squares
    assert rows is not None  # one of the two is always given
    bad: np.ndarray = np.zeros(len(rows), dtype=np.bool_)
    for part in (sums, squares):
        if part is not None:
            bad |= ~np.isfinite(part)
    if squares is not None:
        bad |= squares < _TINY_SQUARES
    return bad


def _rescale(
    values: np.ndarray,
    sums: np.ndarray | None,
    squares: np.ndarray | None,
    shift: np.ndarray | None,
) -> np.ndarray | None:
    """Redo, scaled, the rows whose sums overflowed or whose squares underflowed.

    ``sums`` (of ``values - shift``, or of ``values``) and ``squares`` are the rows'
    plain float64 sums. Rows where one overflowed (not finite) while every value
    (and the shift) is finite, or where the squares fell below ``_TINY_SQUARES``
    while the values are not all zero (subnormal values: their squares vanish),
    are summed again from ``values / 2**e``, ``e`` the binary exponent of the
    largest magnitude, in place. Returns the exponents (``None`` when no row needed
    it: the common case costs a comparison over a vector per piece).
    """
    candidates = np.flatnonzero(_needs_scaling(sums, squares))
    if candidates.size == 0:
        return None
    # Vectorised first: rows of zeros (a dead layer) and non-finite rows need nothing.
    largest = np.max(np.abs(values[candidates]), axis=1).astype(np.float64)
    if shift is not None:
        largest = np.maximum(largest, np.abs(shift[candidates]))
    candidates = candidates[np.isfinite(largest) & (largest > 0)]
    if candidates.size == 0:
        return None
    rows = sums if sums is not None else squares
    assert rows is not None  # one of the two is always given
    exponent = np.zeros(len(rows), dtype=np.int64)
    for i in candidates:
        row = np.asarray(values[i], dtype=np.float64)
        k = 0.0 if shift is None else float(shift[i])
        if not (np.isfinite(row).all() and np.isfinite(k)):
            continue  # non-finite data: the result is non-finite, as it should be
        largest_i = max(float(np.max(np.abs(row))), abs(k))
        e = int(np.frexp(largest_i)[1])
        scaled = np.ldexp(row, -e) - np.ldexp(k, -e)
        if sums is not None:
            sums[i] = np.sum(scaled)
        if squares is not None:
            squares[i] = np.dot(scaled, scaled)
        exponent[i] = e
    return exponent


def _robust_mean(values: np.ndarray) -> np.ndarray:
    """Mean of each row in float64, finite whenever the row's values are (no overflow)."""
    mean = np.add.reduce(values, axis=1, dtype=np.float64) / values.shape[1]
    for i in np.flatnonzero(~np.isfinite(mean)):
        row = np.asarray(values[i], dtype=np.float64)
        if np.isfinite(row).all():
            e = int(np.frexp(np.max(np.abs(row)))[1])
            mean[i] = np.ldexp(np.mean(np.ldexp(row, -e)), e)
    return mean


def _pieces(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Views of at most ``_PIECE_ELEMENTS`` of a 2-D block, row-major: ``(first row, piece)``."""
    n_rows, n_cols = values.shape
    rows_per_piece = max(1, _PIECE_ELEMENTS // max(n_cols, 1))
    cols_per_piece = min(n_cols, _PIECE_ELEMENTS)
    for r0 in range(0, n_rows, rows_per_piece):
        for c0 in range(0, n_cols, cols_per_piece):
            yield r0, values[r0 : r0 + rows_per_piece, c0 : c0 + cols_per_piece]


def finite_prefix_length(values: np.ndarray) -> int:
    """Length of the longest prefix of columns where every row is usable.

    Usable: finite and at most :data:`~dynatrain.defaults.HUGE_SIGNAL` in magnitude
    (a run whose signals grow past it is diverging, and the measures would overflow).
    """
    bad = ~np.all(usable_signal(values), axis=0)
    return int(np.argmax(bad)) if bad.any() else values.shape[-1]


def usable_signal(values: np.ndarray) -> np.ndarray:
    """Where layer signals are finite and not beyond :data:`~dynatrain.defaults.HUGE_SIGNAL`."""
    with np.errstate(invalid="ignore"):
        return np.abs(values) <= defaults.HUGE_SIGNAL


def flush_tiny(values: np.ndarray) -> np.ndarray:
    """``values`` with magnitudes below :data:`~dynatrain.defaults.TINY_SIGNAL` set to 0.

    Elementwise, so an analysis of the finished run and a live monitor fed one
    checkpoint at a time see the same numbers. Returns ``values`` itself when
    nothing is that small (the common case: no copy).
    """
    with np.errstate(invalid="ignore"):
        tiny = (np.abs(values) < defaults.TINY_SIGNAL) & (values != 0)
    if not tiny.any():
        return values
    return np.where(tiny, 0.0, values)
