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
from dynatrain.archive.reader import DEFAULT_BLOCK_BYTES, Archive, open_archive
from dynatrain.errors import InputError

__all__ = [
    "ExcludedLayer",
    "LayerSignals",
    "checkpoint_range",
    "finite_prefix_length",
    "parse_epoch_range",
    "read_signals",
    "reduce_layer",
    "select_layers",
]

#: Elements converted to float64 at a time: small enough to stay in cache.
_PIECE_ELEMENTS = 1 << 17


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
    rows: list[np.ndarray] = []
    for name in names:
        info = archive.layers[name]
        if reduce == "signal" and not info.has_signal:
            excluded.append(ExcludedLayer(name, "no stored signal (use another --reduce)"))
            continue
        if reduce != "signal" and not info.has_activations:
            excluded.append(ExcludedLayer(name, "no stored activations (use --reduce signal)"))
            continue
        kept.append(name)
        rows.append(
            reduce_layer(
                archive, name, reduce, start=start, stop=stop, max_block_bytes=max_block_bytes
            )
        )
    if not kept:
        reasons = "; ".join(f"{e.name}: {e.reason}" for e in excluded)
        raise InputError(
            f"{archive.path}: no layer can be reduced with --reduce {reduce} ({reasons})"
        )
    values = np.vstack(rows) if rows else np.empty((0, stop - start))
    return LayerSignals(
        path=archive.path,
        metadata=dict(archive.metadata),
        reduce=reduce,
        layer_names=tuple(kept),
        epochs=archive.epochs[start:stop].copy(),
        values=values,
        metrics={name: archive.metric(name)[start:stop] for name in archive.metric_names},
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

    See :func:`read_signals` for the reductions. Memory use is bounded by two blocks
    of ``max_block_bytes`` (one read ahead) plus a cache-sized float64 working piece.
    """
    stop = archive.n_checkpoints if stop is None else stop
    if reduce == "signal":
        return archive.signal(layer, start=start, stop=stop)
    n_rows = stop - start
    sums = np.zeros(n_rows)
    sums_of_squares = np.zeros(n_rows)
    counts = np.zeros(n_rows)
    # std uses the shifted-data formula: var = E[(x-K)^2] - (E[x-K])^2 with K one value of
    # the row, so the subtraction does not cancel when the mean dwarfs the spread.
    shift = np.full(n_rows, np.nan) if reduce == "std" else None
    blocks = archive.iter_activations(
        layer, start=start, stop=stop, max_block_bytes=max_block_bytes
    )
    # Closed on the way out, an error included: no read is left running behind it.
    with closing(blocks):
        for block in blocks:
            rows = slice(block.start - start, block.stop - start)
            values = block.values
            counts[rows] += values.shape[1]
            if reduce in ("mean", "mean-abs"):
                if reduce == "mean-abs":
                    values = np.abs(values)  # exact in the stored type
                # NumPy casts to float64 in small buffers as it sums: no float64 copy.
                sums[rows] += np.add.reduce(values, axis=1, dtype=np.float64)
                continue
            for r0, piece in _pieces(values):
                at = slice(rows.start + r0, rows.start + r0 + piece.shape[0])
                piece64 = np.empty(piece.shape)
                if shift is None:
                    np.copyto(piece64, piece)
                else:
                    unset = np.isnan(shift[at])  # first piece of these rows
                    if unset.any():
                        shift[at] = np.where(unset, piece[:, 0], shift[at])
                    np.subtract(piece, shift[at, None], out=piece64)
                    sums[at] += np.add.reduce(piece64, axis=1)
                sums_of_squares[at] += np.einsum("ij,ij->i", piece64, piece64)
    if reduce == "std":
        mean_shifted = sums / counts
        return np.sqrt(np.maximum(sums_of_squares / counts - mean_shifted**2, 0.0))
    if reduce == "rms":
        return np.sqrt(sums_of_squares / counts)
    return sums / counts


def _pieces(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Cache-sized views of a 2-D block, row-major: ``(first row, piece)``."""
    n_rows, n_cols = values.shape
    rows_per_piece = max(1, _PIECE_ELEMENTS // max(n_cols, 1))
    cols_per_piece = min(n_cols, _PIECE_ELEMENTS)
    for r0 in range(0, n_rows, rows_per_piece):
        for c0 in range(0, n_cols, cols_per_piece):
            yield r0, values[r0 : r0 + rows_per_piece, c0 : c0 + cols_per_piece]


def finite_prefix_length(values: np.ndarray) -> int:
    """Length of the longest prefix of columns where every row is finite."""
    bad = ~np.all(np.isfinite(values), axis=0)
    return int(np.argmax(bad)) if bad.any() else values.shape[-1]
