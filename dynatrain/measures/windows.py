"""Sliding windows that advance by a step, and the kernel of the windowed measures.

Window k covers the analysed points ``[k * step, k * step + window)``.  The kernel gives,
for any set of window starts, the DFA exponent of every layer and the Kuramoto
metastability in each window.  ``analyze`` calls it on every window of a finished run, the
live monitor on each window as its last point arrives; both get the same bits, because
every step is element-wise, a prefix sum along time, or a reduction along a contiguous last
axis or in a fixed order, none of which depends on how many windows or layers are computed
together.

Windowed DFA without recomputation
----------------------------------
With detrending of order q >= 1, the residual of a profile segment does not change when a
straight line is subtracted from the profile.  A window's profile is the run's profile
minus a constant and a line (the window's mean), so every segment of every window is a
segment of the run's profile, and its residual sum of squares (RSS) depends only on where
the segment starts.  The RSS of the segments of length s starting at every point comes
from prefix sums of ``w**j * y`` (j <= q) and ``y**2``, O(n) per scale, and a window's
F(s) is a sum of those RSS.

Prefix sums over a whole run cancel catastrophically (the profile of a trending signal is
huge next to a segment's residual), so the sums are rebased: the starts are cut into blocks
of ``2 * s`` points, and each block works on its own stretch of the profile, ``3 s - 1``
points long, from which the line through its first segment (its chord slope) is removed.
What is left is of the size of the block's own fluctuations.  The reference line depends
only on the block's first s points, which have arrived before any segment of the block is
complete: the computation is causal, and a block's RSS do not change as later points come.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dynatrain.defaults import PHASE_EDGE
from dynatrain.measures._checks import check_int
from dynatrain.measures._parallel import ordered_map
from dynatrain.measures.kuramoto import _order_parameter

__all__ = ["kernel_origin", "window_count", "window_measures", "window_starts"]

#: Segment starts per rebased block, in segments: a block spans (this + 1) * s - 1 points.
_BLOCK_SEGMENTS = 2
#: The sums give a segment's RSS to about 1e-14 of the sum of squares they add (the
#: rebased profile's): an RSS below this fraction of it keeps fewer than ~8 digits, and
#: is computed again, explicitly, from the segment alone (rare: a jump or a kink much
#: larger than the fluctuations, or a strong smooth trend with orders above 1).
_ILL_CONDITIONED = 1e-6
#: An explicit residual at or below this fraction of the segment's sum of squares is
#: rounding noise (a segment on which the layer is, to rounding, a polynomial of degree
#: < order): it counts as 0.  A window whose RSS are all 0 at some scale gets no exponent
#: for that layer (e.g. a layer constant in the window).
_ROUNDING_FLOOR = 1e-24
#: float64 elements per working array (~2 MiB): bounds the kernel's memory.
_CHUNK_ELEMENTS = 1 << 18
#: Points per batch of windows in the phase computation (~1 MiB of float64): the
#: temporaries stay in cache.
_PHASE_CHUNK_ELEMENTS = 1 << 17


def window_starts(n_points: int, window: int, step: int = 1) -> np.ndarray:
    """First point of every window that fits in a series.

    Parameters
    ----------
    n_points : int
        Length of the series, in points.
    window : int
        Window length, in points, at least 1.
    step : int, optional
        Points between the starts of consecutive windows, at least 1.

    Returns
    -------
    ndarray of int64, shape (n_windows,)
        ``0, step, 2 step, ...`` up to ``n_points - window``; empty when the series is
        shorter than a window.  Window k covers points ``[k * step, k * step + window)``
        and ends at point ``k * step + window - 1``.

    Examples
    --------
    >>> window_starts(10, 4, 3)
    array([0, 3, 6])
    """
    n_points = check_int(n_points, "n_points", minimum=0)
    window = check_int(window, "window", minimum=1)
    step = check_int(step, "step", minimum=1)
    return np.arange(0, max(0, n_points - window + 1), step, dtype=np.int64)


def window_count(n_points: int, window: int, step: int = 1) -> int:
    """Number of windows of :func:`window_starts`: ``(n_points - window) // step + 1``, or 0."""
    return len(window_starts(n_points, window, step))


# -- DFA in every window ----------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _projection(scale: int, order: int) -> np.ndarray:
    """G with Q^T y = G @ mu, mu_j = sum_k t_k^j y_k, t_k = (k - (scale - 1) / 2) / scale.

    Q is the orthonormal basis of polynomials of degree <= order on the segment (the one
    the direct DFA projects on): with V = Q R the Vandermonde matrix of t, Q^T = R^-T V^T.
    """
    t = (np.arange(scale, dtype=np.float64) - (scale - 1) / 2) / scale
    _, r = np.linalg.qr(t[:, np.newaxis] ** np.arange(order + 1))
    g = np.linalg.inv(r).T
    g.setflags(write=False)
    return g


@functools.lru_cache(maxsize=512)
def _first_segment_fit(scale: int, order: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on a block's first segment, and its polynomial basis over the block.

    Returns ``(solve, basis)``: the coefficients of the degree-`order` least-squares
    polynomial of y over the first `scale` points are ``solve @ [sum t^j y]_j``, and
    ``basis[j]`` is t^j at every point of the block (t = (u - (scale - 1) / 2) / scale),
    shaped ``(order + 1, span, 1, 1)`` to broadcast over blocks and rows.
    """
    t = (np.arange(span, dtype=np.float64) - (scale - 1) / 2) / scale
    basis = t ** np.arange(order + 1)[:, np.newaxis]  # (order + 1, span)
    first = basis[:, :scale]
    solve = np.linalg.inv(first @ first.T)
    basis = basis[:, :, np.newaxis, np.newaxis].copy()
    solve.setflags(write=False)
    basis.setflags(write=False)
    return solve, basis


def _remove_first_segment_fit(profile: np.ndarray, scale: int, order: int) -> None:
    """Subtract, in place, the least-squares polynomial of each block's first segment.

    `profile` is shaped ``(span, n_blocks, n_rows)``.  A polynomial of degree <= order is
    absorbed by the detrending of every segment; with orders above 1, removing the first
    segment's fit leaves only what it does not explain (strong smooth trends otherwise
    leave sums of squares far larger than the residuals, which the sums would cancel).
    Causal: it uses the first segment only.
    """
    solve, basis = _first_segment_fit(scale, order, profile.shape[0])
    head = profile[:scale]
    sums = [_sequential_sum(head * basis[j, :scale]) for j in range(order + 1)]
    for i in range(order + 1):
        coefficient = solve[i, 0] * sums[0]
        for j in range(1, order + 1):
            coefficient += solve[i, j] * sums[j]
        profile -= coefficient * basis[i]


def _sequential_sum(values: np.ndarray) -> np.ndarray:
    """Sum over axis 0, added in order (a reduction may add pairwise, depending on shape)."""
    return np.cumsum(values, axis=0)[-1]


def _segment_rss(
    rows: np.ndarray,
    scale: int,
    order: int,
    first: int,
    stop: int,
    origin: int,
    equal_runs: np.ndarray,
) -> np.ndarray:
    """RSS of the profile segments ``[p, p + scale)`` of every row, for p in [first, stop).

    Parameters
    ----------
    rows : ndarray, shape (n_points, n_rows)
        Analysed series (float64), time first, starting at point `origin` of the run
        (at most the start of the block of `first`, see :func:`kernel_origin`);
        ``stop + scale - 1 <= origin + n_points``.  Positions are points of the run:
        blocks start at multiples of ``2 * scale`` of the run, whatever `origin`.
    equal_runs : ndarray of int, shape (n_points, n_rows)
        :func:`_equal_runs` of `rows` (the same at every scale, computed once).

    Returns
    -------
    ndarray, shape (stop - first, n_rows)
        The residual sum of squares after removing the least-squares polynomial of
        `order`; exactly 0 where the layer's changes are constant on the segment, and
        recomputed explicitly where the sums cannot resolve it (``_ILL_CONDITIONED``).

    Notes
    -----
    Every array is shaped ``(point in block, block, row)``: prefix sums and reductions run
    along axis 0, one element-wise addition per point for all blocks and rows at once (fast
    for short blocks, and the same additions in the same order whatever the number of
    blocks or rows).
    """
    n_points = rows.shape[0]
    block = _BLOCK_SEGMENTS * scale
    span = block + scale - 1
    first_block, end_block = first // block, (stop - 1) // block + 1
    offsets = np.arange(span)
    # Points past the end are never part of a requested segment; clipping keeps them finite.
    index = np.minimum(
        offsets[:, np.newaxis] + (np.arange(first_block, end_block) * block - origin),
        n_points - 1,
    )
    profile = rows[index]  # (span, n_blocks, n_rows): a copy of the changes x
    # Remove the chord slope of the block's first segment (its mean change), then sum:
    # the block's profile minus a line, 0 at its first point.
    profile -= _sequential_sum(profile[1:scale]) / (scale - 1)
    profile[0] = 0.0
    np.cumsum(profile, axis=0, out=profile)
    if order > 1:
        _remove_first_segment_fit(profile, scale, order)

    def segment_sums(values: np.ndarray) -> np.ndarray:
        """Sum of `values` over the segment starting at each point of each block."""
        prefix = np.empty((span + 1, *values.shape[1:]))
        prefix[0] = 0.0
        np.cumsum(values, axis=0, out=prefix[1:])
        return prefix[scale : scale + block] - prefix[:block]

    # w = u / s about the block's middle, in [-1.5, 1.5): small powers, little cancellation.
    position = ((offsets - (span - 1) / 2) / scale)[:, np.newaxis, np.newaxis]
    moments = [segment_sums(profile)]
    power = np.ones_like(position)
    for _ in range(order):
        power = power * position
        moments.append(segment_sums(profile * power))
    squares = segment_sums(profile * profile)
    # Moments about each segment's centre, in units of the scale: t = w - centre.
    centre = ((np.arange(block) + (scale - 1) / 2 - (span - 1) / 2) / scale)[
        :, np.newaxis, np.newaxis
    ]
    centred = []
    for j in range(order + 1):
        mu = moments[j].copy()
        for m in range(j - 1, -1, -1):
            mu += math.comb(j, m) * (-centre) ** (j - m) * moments[m]
        centred.append(mu)
    g = _projection(scale, order)
    rss = squares.copy()
    for i in range(order + 1):
        projected = g[i, 0] * centred[0]
        for j in range(1, i + 1):
            projected += g[i, j] * centred[j]
        rss -= projected * projected
    # (point in block, block, row) -> (position, row), positions in order.
    start = first - first_block * block
    n_rows = rows.shape[1]
    rss = rss.transpose(1, 0, 2).reshape(-1, n_rows)[start : start + stop - first]
    squares = squares.transpose(1, 0, 2).reshape(-1, n_rows)[start : start + stop - first]
    # The layer is constant on a segment's increments: its residual is exactly 0.
    constant = _constant_increments(equal_runs, scale, first - origin, stop - origin)
    rss[constant] = 0.0
    suspect = np.nonzero(~constant & (rss <= _ILL_CONDITIONED * squares))
    if suspect[0].size:
        rss[suspect] = _explicit_rss(rows, scale, order, suspect[0] + (first - origin), suspect[1])
    return rss


def _equal_runs(rows: np.ndarray) -> np.ndarray:
    """How many equal values end at each point of each row (rows shaped (n_points, n_rows)).

    The same for every scale: :func:`_windowed_alpha` computes it once per chunk.
    """
    n_points = rows.shape[0]
    changed = np.ones(rows.shape, dtype=bool)
    changed[1:] = rows[1:] != rows[:-1]
    points = np.arange(n_points)[:, np.newaxis]
    last_change = np.maximum.accumulate(np.where(changed, points, 0), axis=0)
    return points - last_change + 1


def _constant_increments(equal_runs: np.ndarray, scale: int, first: int, stop: int) -> np.ndarray:
    """Whether ``x[p + 1 : p + scale]`` is constant, for p in [first, stop) (local points).

    Exact (no rounding): the profile is then a straight line on the segment, whose
    residual is 0 for every order.  Shaped ``(stop - first, n_rows)``; `equal_runs`
    from :func:`_equal_runs`.
    """
    ends = np.arange(first, stop) + scale - 1
    return equal_runs[ends] >= scale - 1


def _explicit_rss(
    rows: np.ndarray, scale: int, order: int, positions: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """RSS of the segments at local `positions` of `columns`, each from its own points.

    The segment's profile is rebuilt from its own changes, its chord removed, and the
    residual of the projection on the orthonormal polynomial basis formed explicitly:
    precise whatever the block around it.  Every segment is computed alone (element-wise
    and along its own points), so the result does not depend on which are computed.
    """
    result = np.empty(len(positions))
    per_chunk = max(1, _CHUNK_ELEMENTS // scale)
    steps = np.arange(1, scale)
    q_t = _orthonormal_basis(scale, order)
    chord = np.arange(scale) / (scale - 1)
    for lo in range(0, len(positions), per_chunk):
        where = slice(lo, lo + per_chunk)
        changes = rows[positions[where, np.newaxis] + steps, columns[where, np.newaxis]]
        profile = np.zeros((len(changes), scale))
        np.cumsum(changes, axis=1, out=profile[:, 1:])
        profile -= profile[:, -1:] * chord
        residual = profile.copy()
        for basis in q_t:
            residual -= np.sum(profile * basis, axis=1, keepdims=True) * basis
        rss = np.sum(residual * residual, axis=1)
        rss[rss <= _ROUNDING_FLOOR * np.sum(profile * profile, axis=1)] = 0.0
        result[where] = rss
    return result


@functools.lru_cache(maxsize=512)
def _orthonormal_basis(scale: int, order: int) -> np.ndarray:
    """Rows: an orthonormal basis of the polynomials of degree <= order on 0..scale-1."""
    t = (np.arange(scale, dtype=np.float64) - (scale - 1) / 2) / scale
    q, _ = np.linalg.qr(t[:, np.newaxis] ** np.arange(order + 1))
    basis = np.ascontiguousarray(q.T)
    basis.setflags(write=False)
    return basis


def _windowed_alpha(
    rows: np.ndarray, starts: np.ndarray, window: int, scales: np.ndarray, order: int, origin: int
) -> np.ndarray:
    """DFA exponent of every row in every window.

    `rows` is shaped ``(n_points, n_rows)`` (time first); the result ``(n_windows, n_rows)``,
    NaN where a window's fluctuation cannot be told from rounding (e.g. a constant layer).
    """
    n_rows = rows.shape[1]
    n_windows = len(starts)
    log_scales = np.log(scales.astype(np.float64))
    centred = log_scales - log_scales.mean()
    denominator = float(np.sum(centred * centred))
    slope = np.zeros((n_windows, n_rows))
    valid = np.ones((n_windows, n_rows), dtype=bool)
    first = int(starts[0])
    local = starts - first
    equal_runs = _equal_runs(rows)  # the same at every scale
    for i, scale in enumerate(scales):
        scale = int(scale)
        n_segments = window // scale
        rss = _segment_rss(
            rows, scale, order, first, int(starts[-1]) + window - scale + 1, origin, equal_runs
        )
        segment_starts = list(scale * np.arange(n_segments))
        if n_segments * scale != window:  # segments from the end too
            segment_starts += list(window - scale * np.arange(1, n_segments + 1))
        # Summed one segment at a time, in a fixed order, for every window at once.
        total = rss[local + segment_starts[0]]
        for offset in segment_starts[1:]:
            total += rss[local + offset]
        resolved = total > 0.0
        valid &= resolved
        log_f = 0.5 * np.log(np.where(resolved, total / (len(segment_starts) * scale), 1.0))
        slope += centred[i] * log_f
    slope /= denominator
    slope[~valid] = np.nan
    return slope


def _layer_mean(alpha: np.ndarray) -> np.ndarray:
    """Mean over axis 0 (layers) of the non-NaN values, added in layer order; NaN if none."""
    total = np.zeros(alpha.shape[1:])
    count = np.zeros(total.shape)
    for values in alpha:
        present = ~np.isnan(values)
        total += np.where(present, values, 0.0)
        count += present
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _windowed_integration(
    x: np.ndarray, starts: np.ndarray, window: int, scales: np.ndarray, order: int, origin: int
) -> np.ndarray:
    """Mean over layers of the windowed DFA exponent: x (batch, L, n) -> (batch, n_windows)."""
    batch, n_layers, n_points = x.shape
    rows = x.reshape(batch * n_layers, n_points)
    per_chunk = max(1, _CHUNK_ELEMENTS // n_points)

    def chunk_alpha(lo: int) -> np.ndarray:
        # Time first: the kernel's prefix sums run along axis 0.
        chunk = np.ascontiguousarray(rows[lo : lo + per_chunk].T)
        return _windowed_alpha(chunk, starts, window, scales, order, origin)

    alpha = np.concatenate(list(ordered_map(chunk_alpha, range(0, len(rows), per_chunk))), axis=1)
    by_layer = alpha.reshape(len(starts), batch, n_layers).transpose(2, 1, 0)
    return _layer_mean(by_layer)


def _windowed_metastability(
    x: np.ndarray, starts: np.ndarray, window: int, edge: str = PHASE_EDGE
) -> np.ndarray:
    """Population std of R(t) in every window: x (batch, L, n) -> (batch, n_windows).

    Each batch of windows is a (batch, windows, L, window) view, copied once (into C
    order) by the first step of the phases, so that every window goes through the same
    computation whatever the batch.
    """
    batch, n_layers, _ = x.shape
    metastability = np.empty((batch, len(starts)))
    per_chunk = max(1, _PHASE_CHUNK_ELEMENTS // (batch * n_layers * window))
    # (batch, start, L, window): every window of every layer, a view.
    windows = np.moveaxis(sliding_window_view(x, window, axis=-1), 2, 1)
    steps = np.unique(np.diff(starts))

    def chunk_metastability(lo: int) -> np.ndarray:
        chunk = starts[lo : lo + per_chunk]
        if len(steps) == 1:  # evenly spaced: a strided view, no copy here
            part = windows[:, chunk[0] : chunk[-1] + 1 : int(steps[0])]
        else:
            part = windows[:, chunk]
        return _order_parameter(part, edge).std(axis=-1)

    firsts = range(0, len(starts), per_chunk)
    for lo, values in zip(firsts, ordered_map(chunk_metastability, firsts), strict=True):
        metastability[:, lo : lo + per_chunk] = values
    return metastability


def kernel_origin(first_start: int, scales: np.ndarray) -> int:
    """First point :func:`window_measures` reads for windows from `first_start` on.

    The DFA works in blocks of ``2 * s`` points that start at multiples of ``2 * s`` of
    the run, so it reads back to the start of the block of `first_start` at each scale:
    at most ``2 * max(scales) <= window`` points before it.
    """
    return min(
        (first_start // (_BLOCK_SEGMENTS * int(s))) * _BLOCK_SEGMENTS * int(s) for s in scales
    )


def window_measures(
    x: np.ndarray,
    starts: np.ndarray,
    window: int,
    scales: np.ndarray,
    order: int,
    *,
    origin: int = 0,
    edge: str = PHASE_EDGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Integration and metastability of the windows starting at `starts` (unchecked).

    Parameters
    ----------
    x : ndarray, shape (..., n_layers, n_points)
        Finite float64 layer signals from point `origin` of the run on; only the points
        the windows cover, and the DFA blocks they start in, are read.
    starts : ndarray of int64, shape (n_windows,)
        Increasing window starts, as points of the run, at least
        ``kernel_origin(starts[0], scales)`` and each at most
        ``origin + n_points - window``.
    window : int
        Window length, in points.
    scales : ndarray of int64
        DFA scales (each at most ``window // 2``).
    order : int
        DFA detrending order.
    origin : int, optional
        The point of the run at which `x` starts (a live monitor passes only the tail
        of its history: :func:`kernel_origin` of its newest window).
    edge : {"ar", "none"}, optional
        Edge handling of the Hilbert transform in each window (see
        :func:`~dynatrain.measures.kuramoto.hilbert_phase`).

    Returns
    -------
    (integration, metastability) : ndarray, shape (..., n_windows)
        The same bits whichever windows are computed together and whatever `origin`
        (see the module notes).
    """
    lead_shape = x.shape[:-2]
    x3 = x.reshape(-1, *x.shape[-2:])
    if len(starts) == 0:
        empty = np.empty((*lead_shape, 0))
        return empty, empty.copy()
    integration = _windowed_integration(x3, starts, window, scales, order, origin)
    metastability = _windowed_metastability(x3, starts - origin, window, edge)
    n_windows = len(starts)
    return integration.reshape(*lead_shape, n_windows), metastability.reshape(
        *lead_shape, n_windows
    )
