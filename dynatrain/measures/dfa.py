"""Detrended fluctuation analysis (DFA), vectorised over any number of series.

Time is the last axis (or ``axis``); every leading axis is a batch of
independent series, processed together without a Python loop over series.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from dynatrain.defaults import DFA_ORDER, MIN_N_SCALES, MIN_SCALE, N_SCALES, default_max_scale
from dynatrain.measures._checks import as_float_array, check_int, normalize_axis

__all__ = ["DFAFit", "dfa", "dfa_fit", "dfa_scales", "fluctuation_function", "min_points_for_dfa"]

#: Input elements (float64) processed per batch: ~0.5 MiB keeps the temporaries in
#: cache; much larger batches page-fault and run about twice as slow.
_CHUNK_ELEMENTS = 1 << 16
#: F(s) at or below this fraction of the profile's RMS is rounding noise: the series
#: is then, to rounding, a polynomial of degree < order around its mean.
_ZERO_FLUCTUATION = 1e-12
#: Scales up to which :func:`_projected_fluctuations` projects on the complement of the
#: polynomials (scale - order - 1 products per point; cheap for short segments).
_COMPLEMENT_MAX_SCALE = 12
#: Above it, the norm identity is used where |y|^2 <= this x RSS (relative error below
#: about 1e-11); other series are done with the explicit residual.
_NORM_IDENTITY_RATIO = 2.0**14


def _einsum_row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


#: Row-wise dot product; numpy >= 2 has a BLAS-backed one (4x faster than einsum).
_row_dot = getattr(np, "vecdot", _einsum_row_dot)


class DFAFit(NamedTuple):
    """Result of :func:`dfa_fit`: the exponent and what it was fitted to.

    Attributes
    ----------
    alpha : ndarray, shape (...)
        DFA exponent (slope of ln F(s) against ln s), dimensionless.
    intercept : ndarray, shape (...)
        Intercept of that line, ln F at s = 1 (natural logarithms).
    scales : ndarray of int64, shape (n_scales,)
        Segment lengths s, in points.
    fluctuations : ndarray, shape (..., n_scales)
        F(s), in the units of the profile (input units times points).
    """

    alpha: np.ndarray
    intercept: np.ndarray
    scales: np.ndarray
    fluctuations: np.ndarray


# --- scales --------------------------------------------------------------------------------


def _scale_grid(min_scale: int, max_scale: int, n_scales: int) -> np.ndarray:
    return np.unique(np.round(np.geomspace(min_scale, max_scale, n_scales)).astype(np.int64))


def _check_scale_options(min_scale: Any, n_scales: Any, order: Any) -> tuple[int, int, int]:
    order = check_int(order, "order", minimum=1)
    n_scales = check_int(n_scales, "n_scales", minimum=MIN_N_SCALES)
    min_scale = check_int(min_scale, "min_scale")
    if min_scale < order + 2:
        raise ValueError(
            f"min_scale={min_scale} is too small for order={order}: a segment must have at "
            f"least order + 2 = {order + 2} points, one more than the order + 1 polynomial "
            "coefficients, or nothing is left after detrending"
        )
    return min_scale, n_scales, order


def _half_length(n_points: int) -> int:
    """Largest DFA scale in a sliding window of `n_points`: ``n_points // 2``."""
    return n_points // 2


@functools.lru_cache(maxsize=256)
def _smallest_length(max_scale_for: Callable[[int], int], min_scale: int, n_scales: int) -> int:
    """Smallest n whose scales ``min_scale .. max_scale_for(n)`` are valid."""
    n_points = 2 * min_scale  # below this no scale has two segments
    while True:
        max_scale = max_scale_for(n_points)
        if (
            min_scale <= max_scale <= n_points // 2
            and len(_scale_grid(min_scale, max_scale, n_scales)) >= MIN_N_SCALES
        ):
            return n_points
        n_points += 1


def min_points_for_dfa(
    *,
    min_scale: int = MIN_SCALE,
    max_scale: int | None = None,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
) -> int:
    """Smallest series length for which :func:`dfa_scales` succeeds.

    Parameters
    ----------
    min_scale : int, optional
        Smallest segment length, in points.
    max_scale : int or None, optional
        Largest segment length, in points; None for the default
        ``defaults.default_max_scale(n_points)``.
    n_scales : int, optional
        Number of log-spaced scales before rounding and removing duplicates.
    order : int, optional
        Order of the detrending polynomial.

    Returns
    -------
    int
        The minimum number of points (checkpoints).

    Raises
    ------
    ValueError
        If no length works, e.g. an explicit `max_scale` so close to `min_scale`
        that fewer than ``defaults.MIN_N_SCALES`` distinct scales result.

    Notes
    -----
    With the default `max_scale` the answer is found by increasing n until the
    scales ``min_scale .. default_max_scale(n)`` hold ``MIN_N_SCALES`` distinct
    integers (24 points for the defaults: scales 4, 5, 6).  With an explicit
    `max_scale` it is ``2 * max_scale`` (every scale needs two segments).

    Examples
    --------
    >>> min_points_for_dfa()
    24
    >>> min_points_for_dfa(max_scale=10)
    20
    """
    min_scale, n_scales, order = _check_scale_options(min_scale, n_scales, order)
    if max_scale is None:
        return _smallest_length(default_max_scale, min_scale, n_scales)
    max_scale = check_int(max_scale, "max_scale")
    n_distinct = len(_scale_grid(min_scale, max_scale, n_scales)) if max_scale >= min_scale else 0
    if n_distinct < MIN_N_SCALES:
        raise ValueError(
            f"scales min_scale={min_scale} .. max_scale={max_scale} give {n_distinct} distinct "
            f"scale(s); DFA needs at least {MIN_N_SCALES}: raise max_scale"
        )
    return 2 * max_scale


def dfa_scales(
    n_points: int,
    *,
    min_scale: int = MIN_SCALE,
    max_scale: int | None = None,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
) -> np.ndarray:
    """Segment lengths used by DFA for a series of `n_points` points.

    Parameters
    ----------
    n_points : int
        Length of the series.
    min_scale : int, optional
        Smallest segment length, in points; at least ``order + 2``.
    max_scale : int or None, optional
        Largest segment length, in points, at most ``n_points // 2``; None for
        ``defaults.default_max_scale(n_points)``.
    n_scales : int, optional
        Number of log-spaced values before rounding and removing duplicates.
    order : int, optional
        Order of the detrending polynomial (only checked against `min_scale`).

    Returns
    -------
    ndarray of int64, shape (n_distinct,)
        ``np.unique(np.round(np.geomspace(min_scale, max_scale, n_scales)).astype(int))``.

    Raises
    ------
    ValueError
        If ``min_scale < order + 2``, ``max_scale > n_points // 2``, or fewer than
        ``defaults.MIN_N_SCALES`` distinct scales result; the message says how
        many points are needed (see :func:`min_points_for_dfa`).

    Notes
    -----
    A segment of s points detrended by a polynomial with ``order + 1``
    coefficients keeps ``s - order - 1`` degrees of freedom, so s >= order + 2.
    ``max_scale <= n_points // 2`` leaves at least two segments per direction.

    Examples
    --------
    >>> dfa_scales(64)
    array([ 4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 15, 16])
    """
    n_points = check_int(n_points, "n_points", minimum=0)
    min_scale, n_scales, order = _check_scale_options(min_scale, n_scales, order)
    options = {"min_scale": min_scale, "n_scales": n_scales, "order": order}
    if max_scale is None:
        needed = min_points_for_dfa(**options)
        max_scale = default_max_scale(n_points)
        what = f"min_scale={min_scale} and the default max_scale"
    else:
        max_scale = check_int(max_scale, "max_scale")
        if max_scale < min_scale:
            raise ValueError(f"max_scale={max_scale} must be >= min_scale={min_scale}")
        needed = min_points_for_dfa(max_scale=max_scale, **options)
        what = f"scales {min_scale}..{max_scale} (max_scale <= n_points // 2)"
    # Every length from `needed` on works (tested), so the second check is a safeguard.
    if n_points < needed or (
        len(scales := _scale_grid(min_scale, max_scale, n_scales)) < MIN_N_SCALES
    ):
        raise ValueError(
            f"DFA needs at least {needed} points for {what} "
            f"({MIN_N_SCALES} distinct scales); got {n_points}"
        )
    return scales


# --- fluctuation function ------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _basis(scale: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of polynomials of degree <= order on 0..scale-1, and its transpose."""
    t = np.arange(scale, dtype=np.float64)
    t = (t - t.mean()) / scale  # centred and scaled: a well-conditioned Vandermonde matrix
    q, _ = np.linalg.qr(t[:, np.newaxis] ** np.arange(order + 1))
    q_t = np.ascontiguousarray(q.T)
    q.setflags(write=False)
    q_t.setflags(write=False)
    return q, q_t


def _profiles(rows: np.ndarray) -> np.ndarray:
    """Profiles Y = cumsum(x - mean x) of the rows of a (n_rows, n_points) array."""
    # Subtracting the first value first makes a constant series exactly zero
    # (its mean is not always exactly representable), so its F(s) is exactly 0.
    profile = rows - rows[:, :1]
    profile -= profile.mean(axis=1, keepdims=True)
    return np.cumsum(profile, axis=1, out=profile)


def _chunk_fluctuations(
    profile: np.ndarray, scales: np.ndarray, order: int, out: np.ndarray, work: np.ndarray
) -> None:
    """F(s) of each profile row into `out` (n_rows, n_scales); `work` is scratch space."""
    n_rows, n_points = profile.shape
    size = 2 * profile.size  # segments from both ends
    segment_buf, fit_buf, coef_buf = work[:size], work[size : 2 * size], work[2 * size :]
    for i, scale in enumerate(scales):
        used = (n_points // scale) * scale
        if used == n_points:  # segments from the end coincide with those from the start
            segments, n_sets = profile.reshape(-1, scale), 1
        else:
            both = segment_buf[: 2 * n_rows * used].reshape(n_rows, 2, used)
            both[:, 0] = profile[:, :used]
            both[:, 1] = profile[:, n_points - used :]
            segments, n_sets = both.reshape(-1, scale), 2
        _, q_t = _basis(int(scale), order)
        coef_t = coef_buf[: len(segments) * (order + 1)].reshape(order + 1, -1)
        residual = fit_buf[: segments.size].reshape(-1, scale)
        # Explicit residual y - Q Q^T y: the shortcut ||y||^2 - ||Q^T y||^2 cancels
        # catastrophically on smooth profiles (random walks).  The transposed
        # products are the faster BLAS paths for these tall, thin matrices.
        np.matmul(q_t, segments.T, out=coef_t)
        np.matmul(coef_t.T, q_t, out=residual)
        np.subtract(segments, residual, out=residual)
        per_series = residual.reshape(n_rows, n_sets * used)
        out[:, i] = _row_dot(per_series, per_series)
        out[:, i] /= n_sets * used
    np.sqrt(out, out=out)


def _fluctuations(x: np.ndarray, scales: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """F(s) and profile RMS of every series of `x` (..., n_points), unchecked.

    `x` may be any strided float64 view (e.g. a sliding window view): rows are
    gathered one batch at a time, so the whole array is never copied.
    """
    lead_shape, n_points = x.shape[:-1], x.shape[-1]
    n_rows = math.prod(lead_shape)
    fluct = np.empty((n_rows, len(scales)))
    profile_rms = np.empty(n_rows)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n_points)
    flat = x.reshape(n_rows, n_points) if x.flags.c_contiguous or x.ndim == 1 else None
    work = np.empty(6 * min(rows_per_chunk, n_rows) * n_points)
    for start in range(0, n_rows, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_rows)
        if flat is not None:
            rows = flat[start:stop]
        else:
            rows = x[np.unravel_index(np.arange(start, stop), lead_shape)]
        profile = _profiles(rows)
        profile_rms[start:stop] = np.sqrt(_row_dot(profile, profile) / n_points)
        _chunk_fluctuations(profile, scales, order, fluct[start:stop], work)
    return fluct.reshape(*lead_shape, len(scales)), profile_rms.reshape(lead_shape)


@functools.lru_cache(maxsize=512)
def _increment_complement(scale: int, order: int) -> np.ndarray:
    """M with ``RSS = |x_seg @ M|^2`` for a profile segment, from its series values x_seg.

    A profile segment is ``y_a + L x_seg`` (L: sums of the values after the first), and
    its residual after removing the least-squares polynomial is its projection on C, an
    orthonormal basis of the complement of the polynomials of degree <= order: the
    residual sum of squares is ``|C^T L x_seg|^2``; ``M = L^T C`` is ``(scale, scale -
    order - 1)``.  y_a, and the series' mean (a line in the profile), drop out exactly.
    """
    q, _ = _basis(scale, order)
    complement = np.linalg.qr(q, mode="complete")[0][:, order + 1 :]
    lower = np.tril(np.ones((scale, scale)))
    lower[:, 0] = 0.0  # the segment's first value only sets y_a
    m = np.ascontiguousarray(lower.T @ complement)
    m.setflags(write=False)
    return m


def _both_ends(rows: np.ndarray, scale: int, buffer: np.ndarray) -> tuple[np.ndarray, int]:
    """Segments of `scale` points from the start and from the end of every row.

    Returns ``(segments, n_sets)``: ``(n_rows * n_sets * n_segments, scale)``, the rows'
    segments in order, and 1 where both sets coincide (the length a multiple of the scale).
    """
    n_rows, n_points = rows.shape
    used = (n_points // scale) * scale
    if used == n_points:
        return rows.reshape(-1, scale), 1
    both = buffer[: 2 * n_rows * used].reshape(n_rows, 2, used)
    both[:, 0] = rows[:, :used]
    both[:, 1] = rows[:, n_points - used :]
    return both.reshape(-1, scale), 2


def _projected_fluctuations(
    x: np.ndarray, scales: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_fluctuations` of the rows of `x` (n_rows, n_points), by projections only.

    The same F(s) to rounding, in a fraction of the time, for the surrogate nulls (many
    series, no trend).  Each scale costs one matrix product of the segments, no residual:

    * up to ``_COMPLEMENT_MAX_SCALE``, the residual's coordinates in the complement of
      the polynomials, from the series values (:func:`_increment_complement`): exact,
      and the profile's large values never enter;
    * above, ``RSS = |y|^2 - |Q^T y|^2`` on the profile, whose rounding error is about
      ``eps |y|^2``: where ``|y|^2 > _NORM_IDENTITY_RATIO x RSS`` (relative error above
      ~1e-11; a random-walk profile of n points has a ratio of about 2.5 n / s) that
      series is done with the explicit residual instead.
    """
    n_rows, n_points = x.shape
    fluct = np.empty((n_rows, len(scales)))
    profile_rms = np.empty(n_rows)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // n_points)
    chunk_rows = min(rows_per_chunk, n_rows)
    # Scratch space, reused across chunks and scales: fresh large arrays page-fault.
    centred = np.empty((chunk_rows, n_points))
    profile = np.empty((chunk_rows, n_points))
    segment_buffer = np.empty(2 * chunk_rows * n_points)
    product_buffer = np.empty(2 * chunk_rows * n_points)
    work = None
    for start in range(0, n_rows, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_rows)
        n_chunk = stop - start
        rows = x[start:stop]
        chunk_centred = np.subtract(rows, rows[:, :1], out=centred[:n_chunk])
        chunk_centred -= chunk_centred.mean(axis=1, keepdims=True)
        chunk_profile = np.cumsum(chunk_centred, axis=1, out=profile[:n_chunk])
        squares = _row_dot(chunk_profile, chunk_profile)
        profile_rms[start:stop] = np.sqrt(squares / n_points)
        out = fluct[start:stop]
        for i, scale in enumerate(scales.tolist()):
            used = (n_points // scale) * scale
            if scale <= _COMPLEMENT_MAX_SCALE:
                segments, n_sets = _both_ends(chunk_centred, scale, segment_buffer)
                basis = _increment_complement(scale, order)
                products = product_buffer[: len(segments) * basis.shape[1]]
                np.matmul(segments, basis, out=products.reshape(len(segments), -1))
                products = products.reshape(n_chunk, -1)
                rss = _row_dot(products, products)
            else:
                segments, n_sets = _both_ends(chunk_profile, scale, segment_buffer)
                basis, _ = _basis(scale, order)
                products = product_buffer[: len(segments) * basis.shape[1]]
                np.matmul(segments, basis, out=products.reshape(len(segments), -1))
                products = products.reshape(n_chunk, -1)
                # |y|^2 over the segments: every point but the < scale left out at an end.
                tail = chunk_profile[:, used:]
                norm = squares - _row_dot(tail, tail)
                if n_sets == 2:
                    head = chunk_profile[:, : n_points - used]
                    norm += squares - _row_dot(head, head)
                rss = norm - _row_dot(products, products)
                inexact = ~(norm <= _NORM_IDENTITY_RATIO * rss)
                if inexact.any():
                    if work is None:
                        work = np.empty(6 * chunk_rows * n_points)
                    redo = np.empty((int(inexact.sum()), 1))
                    _chunk_fluctuations(
                        chunk_profile[inexact], np.array([scale]), order, redo, work
                    )
                    rss[inexact] = redo[:, 0] ** 2 * (n_sets * used)
            out[:, i] = rss / (n_sets * used)
        np.maximum(out, 0.0, out=out)
        np.sqrt(out, out=out)
    return fluct, profile_rms


def _check_scales(scales: Any, n_points: int, order: int) -> np.ndarray:
    array = np.asarray(scales)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
        raise ValueError(
            f"scales must be a non-empty 1-D array of integers, got {scales!r} "
            f"(shape {array.shape}, dtype {array.dtype})"
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise ValueError(f"scales must be whole numbers, got {array}")
    array = array.astype(np.int64)
    bad = array[(array < order + 2) | (array > n_points)]
    if bad.size:
        raise ValueError(
            f"scales must lie between order + 2 = {order + 2} and n_points = {n_points}, "
            f"got {bad.tolist()} among scales {array.tolist()}"
        )
    return array


def fluctuation_function(
    x: Any, scales: Any, *, order: int = DFA_ORDER, axis: int = -1
) -> np.ndarray:
    r"""DFA fluctuation function F(s) of one or many series.

    Parameters
    ----------
    x : array_like, shape (..., n_points, ...)
        Real, finite series; time along `axis`, every other axis is a batch.
    scales : array_like of int, shape (n_scales,)
        Segment lengths s in points, each in ``order + 2 .. n_points``.
    order : int, optional
        Order q >= 1 of the polynomial removed in each segment.
    axis : int, optional
        Time axis of `x`.

    Returns
    -------
    ndarray, shape (..., n_scales)
        F(s) for every series (the shape of `x` without `axis`, then scales),
        in units of x times points.

    Raises
    ------
    ValueError
        On non-finite or non-real input, a bad axis, order or scale.

    See Also
    --------
    dfa_fit : the exponent fitted to F(s), with F(s) for plotting.

    Notes
    -----
    Profile :math:`Y(k) = \sum_{j \le k} (x_j - \bar x)`.  For a scale s,
    :math:`N_s = \lfloor T/s \rfloor` non-overlapping segments are taken from
    the start and :math:`N_s` more aligned to the end (Kantelhardt et al. 2001),
    so no point is left out.  In each segment v the least-squares polynomial
    :math:`p_v` of order q is removed and

    .. math:: F(s) = \sqrt{\frac{1}{2 N_s} \sum_{v=1}^{2 N_s}
              \frac{1}{s} \sum_{i=1}^{s} (Y_{v,i} - p_v(i))^2 }.

    The polynomial basis on 0..s-1 is the same for every segment, so the fit
    is a projection onto an orthonormal basis Q of the Vandermonde matrix,
    done for all segments of all series with one matrix product; the residual
    :math:`y - Q Q^T y` is formed explicitly (the cheaper
    :math:`\|y\|^2 - \|Q^T y\|^2` loses precision on smooth profiles).
    Series are processed in batches of about 0.5 MiB.

    References
    ----------
    .. [1] C.-K. Peng, S. V. Buldyrev, S. Havlin, M. Simons, H. E. Stanley and
       A. L. Goldberger, "Mosaic organization of DNA nucleotides",
       Phys. Rev. E 49, 1685 (1994).
    .. [2] J. W. Kantelhardt, E. Koscielny-Bunde, H. H. A. Rego, S. Havlin and
       A. Bunde, "Detecting long-range correlations with detrended fluctuation
       analysis", Physica A 295, 441 (2001).
    """
    x = as_float_array(x)
    axis = normalize_axis(axis, x.ndim, x.shape)
    order = check_int(order, "order", minimum=1)
    scales = _check_scales(scales, x.shape[axis], order)
    fluct, _ = _fluctuations(np.moveaxis(x, axis, -1), scales, order)
    return fluct


def _loglog_fit(
    scales: np.ndarray, fluct: np.ndarray, profile_rms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through (ln s, ln F(s)) for every series; NaN where F(s) ~ 0."""
    log_scales = np.log(scales.astype(np.float64))
    centred = log_scales - log_scales.mean()
    valid = np.all(fluct > _ZERO_FLUCTUATION * profile_rms[..., np.newaxis], axis=-1)
    log_fluct = np.log(np.where(valid[..., np.newaxis], fluct, 1.0))
    alpha = (log_fluct @ centred) / (centred @ centred)
    intercept = log_fluct.mean(axis=-1) - alpha * log_scales.mean()
    return np.where(valid, alpha, np.nan), np.where(valid, intercept, np.nan)


def dfa_fit(
    x: Any,
    *,
    min_scale: int = MIN_SCALE,
    max_scale: int | None = None,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
    axis: int = -1,
) -> DFAFit:
    r"""DFA exponent with the scales, fluctuations and fitted line (for plots).

    Parameters
    ----------
    x : array_like, shape (..., n_points, ...)
        Real, finite series; time along `axis`.
    min_scale, max_scale, n_scales : int, optional
        Scales, as in :func:`dfa_scales` (`max_scale` None: the default).
    order : int, optional
        Order q >= 1 of the detrending polynomial.
    axis : int, optional
        Time axis of `x`.

    Returns
    -------
    DFAFit
        ``(alpha, intercept, scales, fluctuations)``; `alpha` and `intercept`
        have the shape of `x` without `axis`, `fluctuations` that shape plus
        ``(n_scales,)``.

    Raises
    ------
    ValueError
        On non-finite input, bad options, or a series too short for the scales.

    Notes
    -----
    :math:`\ln F(s) = \text{intercept} + \alpha \ln s`, ordinary least
    squares over the scales.  A series whose F(s) vanishes at some scale (to
    rounding: ``F(s) <= 1e-12`` times the RMS of its profile), e.g. a constant
    series, gets NaN for alpha and intercept, without a warning.
    """
    x = as_float_array(x)
    axis = normalize_axis(axis, x.ndim, x.shape)
    scales = dfa_scales(
        x.shape[axis], min_scale=min_scale, max_scale=max_scale, n_scales=n_scales, order=order
    )
    fluct, profile_rms = _fluctuations(np.moveaxis(x, axis, -1), scales, order)
    alpha, intercept = _loglog_fit(scales, fluct, profile_rms)
    return DFAFit(alpha[()], intercept[()], scales, fluct)


def dfa(
    x: Any,
    *,
    min_scale: int = MIN_SCALE,
    max_scale: int | None = None,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
    axis: int = -1,
) -> np.ndarray:
    """DFA exponent alpha of one or many series.

    Parameters
    ----------
    x : array_like, shape (..., n_points, ...)
        Real, finite series; time along `axis`, every other axis is a batch.
    min_scale : int, optional
        Smallest segment length, in points (at least ``order + 2``).
    max_scale : int or None, optional
        Largest segment length, in points; None for
        ``defaults.default_max_scale(n_points)``, i.e. ``n_points // 4``.
    n_scales : int, optional
        Number of log-spaced scales before rounding and removing duplicates.
    order : int, optional
        Order q >= 1 of the polynomial removed in each segment (DFA-q).
    axis : int, optional
        Time axis of `x`.

    Returns
    -------
    ndarray or numpy.float64
        alpha, with the shape of `x` without `axis` (a scalar for 1-D input);
        dimensionless.  NaN for a series with no fluctuation left after
        detrending (e.g. constant), see :func:`dfa_fit`.

    Raises
    ------
    ValueError
        On non-finite or non-real input, bad options, or a series too short
        for the scales (the message says how many points are needed).

    See Also
    --------
    dfa_fit : the same fit with intercept, scales and F(s).
    fluctuation_function : F(s) for given scales.

    Notes
    -----
    alpha is the least-squares slope of ln F(s) against ln s, with F(s) from
    :func:`fluctuation_function` (segments from both ends).  Fractional
    Gaussian noise with Hurst exponent H gives alpha ~ H (white noise 0.5), its
    cumulative sum alpha ~ H + 1 (a random walk 1.5).  Short series read high:
    at 64 points the bias is about +0.1 for white noise.

    References
    ----------
    .. [1] C.-K. Peng et al., "Mosaic organization of DNA nucleotides",
       Phys. Rev. E 49, 1685 (1994).
    .. [2] J. W. Kantelhardt et al., "Detecting long-range correlations with
       detrended fluctuation analysis", Physica A 295, 441 (2001).

    Examples
    --------
    >>> import numpy as np
    >>> noise = np.random.default_rng(0).standard_normal((3, 1024))
    >>> alpha = dfa(noise)
    >>> alpha.shape
    (3,)
    >>> bool(np.all(np.abs(alpha - 0.5) < 0.1))
    True
    """
    return dfa_fit(
        x, min_scale=min_scale, max_scale=max_scale, n_scales=n_scales, order=order, axis=axis
    ).alpha
