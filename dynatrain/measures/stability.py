"""Windowed integration and metastability, the stability index and what follows from it.

The dynamical stability index (DSI) of La Quang et al. combines integration
(mean DFA exponent over layers) and metastability (variability of the Kuramoto
order parameter) in sliding windows; its rolling volatility falls when training
converges, and the rank correlation of the two windowed series labels the
run's "training style".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dynatrain.defaults import (
    DFA_ORDER,
    MIN_SCALE,
    N_SCALES,
    PLATEAU_SMOOTHING,
    PLATEAU_TOLERANCE,
    STYLE_THRESHOLD,
    VOL_PATIENCE,
    VOL_THRESHOLD,
    VOL_WINDOW,
)
from dynatrain.measures._checks import (
    as_float_array,
    check_fraction,
    check_int,
    check_layers,
    normalize_axis,
)
from dynatrain.measures._ranks import average_ranks
from dynatrain.measures.dfa import (
    _check_scale_options,
    _half_length,
    _smallest_length,
    dfa_scales,
)
from dynatrain.measures.windows import window_measures, window_starts

__all__ = [
    "STYLE_LABELS",
    "Style",
    "Windowed",
    "accuracy_plateau",
    "convergence_window",
    "rolling_volatility",
    "spearman",
    "stability_index",
    "training_style",
    "window_scales",
    "windowed_measures",
]

#: Training-style labels, for rho >= threshold, rho <= -threshold, and otherwise.
STYLE_LABELS = ("coupled", "antagonistic", "independent")
#: A gain in accuracy this small relative to the accuracy scale is rounding noise.
_NO_GAIN = 1e-12


class Windowed(NamedTuple):
    """Result of :func:`windowed_measures`, one value per window.

    Attributes
    ----------
    integration : ndarray, shape (..., n_windows)
        Mean over layers of the DFA exponent in each window.
    metastability : ndarray, shape (..., n_windows)
        Population std over time of the Kuramoto R(t) in each window.
    """

    integration: np.ndarray
    metastability: np.ndarray


class Style(NamedTuple):
    """Training style: the label and the Spearman rho it comes from."""

    label: str
    spearman: float


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the non-NaN values; NaN (and no warning) where there are none."""
    present = ~np.isnan(values)
    count = np.count_nonzero(present, axis=axis)
    total = np.where(present, values, 0.0).sum(axis=axis)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def windowed_measures(
    x: Any,
    window: int,
    *,
    step: int = 1,
    min_scale: int = MIN_SCALE,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
) -> Windowed:
    r"""Integration and metastability in sliding windows that advance by `step` points.

    Parameters
    ----------
    x : array_like, shape (..., n_layers, n_points)
        Real, finite layer signals: layers on axis -2 (at least 2), time
        (checkpoints) on axis -1.
    window : int
        Window length, in points; at most ``n_points``.
    step : int, optional
        Points between the starts of consecutive windows, at least 1.
    min_scale, n_scales, order : int, optional
        DFA settings; the largest scale is ``window // 2``.

    Returns
    -------
    Windowed
        ``(integration, metastability)``, each shaped ``(..., n_windows)`` with
        ``n_windows = (n_points - window) // step + 1``; window k covers points
        ``k * step .. k * step + window - 1``.

    Raises
    ------
    ValueError
        On non-finite input, fewer than 2 layers, a window longer than the
        series, a bad step, or a window too short for the DFA scales (the
        message gives the shortest usable window).

    Notes
    -----
    In window w, :math:`I_w = \frac{1}{L} \sum_l \alpha_l^{(w)}` with
    :math:`\alpha_l^{(w)}` the DFA exponent of layer l on the window's points
    (scales ``min_scale .. window // 2``), and :math:`M_w` the metastability of
    :func:`~dynatrain.measures.kuramoto.kuramoto` on the window (phases from the
    window's own z-scored, detrended signals).  A layer that is constant
    inside a window has no exponent there (NaN) and no phase: :math:`I_w` is
    the mean over the other layers, NaN if none is left.

    The DFA of every window comes from one pass over the run (see
    :mod:`dynatrain.measures.windows`): its cost is linear in ``n_points`` per
    scale, plus one addition per segment of each window, and it agrees with a
    direct DFA of each window to about 1e-14 (order 1).  The phases are
    computed window by window, in batches of bounded memory.

    References
    ----------
    .. [1] La Quang, Ugail, Howard et al., "Training Deep Visual Networks
       Beyond Loss and Accuracy Through a Dynamical Systems Approach",
       arXiv:2604.09716 (2026).
    """
    x = as_float_array(x)
    check_layers(x)
    window = check_int(window, "window", minimum=1)
    step = check_int(step, "step", minimum=1)
    n_points = x.shape[-1]
    if window > n_points:
        raise ValueError(
            f"window={window} is longer than the series: x.shape={x.shape} has {n_points} points"
        )
    scales = window_scales(window, min_scale=min_scale, n_scales=n_scales, order=order)
    starts = window_starts(n_points, window, step)
    integration, metastability = window_measures(x, starts, window, scales, order)
    return Windowed(integration, metastability)


def window_scales(
    window: int, *, min_scale: int = MIN_SCALE, n_scales: int = N_SCALES, order: int = DFA_ORDER
) -> np.ndarray:
    """DFA scales of a window: ``min_scale .. window // 2``.

    Parameters
    ----------
    window : int
        Window length, in points.
    min_scale, n_scales, order : int, optional
        DFA settings, as in :func:`~dynatrain.measures.dfa.dfa_scales`.

    Returns
    -------
    ndarray of int64
        The scales, as :func:`~dynatrain.measures.dfa.dfa_scales` gives them with
        ``max_scale = window // 2``.

    Raises
    ------
    ValueError
        On bad options, or a window too short for the scales (the message gives the
        shortest usable window).

    Examples
    --------
    >>> window_scales(25)
    array([ 4,  5,  6,  7,  8,  9, 10, 11, 12])
    """
    window = check_int(window, "window", minimum=1)
    min_scale, n_scales, order = _check_scale_options(min_scale, n_scales, order)
    shortest = _smallest_length(_half_length, min_scale, n_scales)
    if window < shortest:
        raise ValueError(
            f"window={window} is too short for DFA scales {min_scale}..window // 2: "
            f"windows need at least {shortest} points"
        )
    return dfa_scales(
        window, min_scale=min_scale, max_scale=_half_length(window), n_scales=n_scales, order=order
    )


def stability_index(integration: Any, metastability: Any) -> np.ndarray:
    r"""Dynamical stability index DSI = I * (1 - M).

    Parameters
    ----------
    integration : array_like
        Integration I (mean DFA exponent), run-level or per window.
    metastability : array_like
        Metastability M, broadcastable against `integration`.

    Returns
    -------
    ndarray or numpy.float64
        DSI, with the broadcast shape; NaN where either input is NaN.

    Raises
    ------
    ValueError
        On infinite or non-real input (NaN is allowed and propagates).

    Notes
    -----
    .. math:: \mathrm{DSI} = I \, (1 - M)

    References
    ----------
    .. [1] La Quang, Ugail, Howard et al., arXiv:2604.09716 (2026).
    """
    integration = as_float_array(integration, "integration", min_ndim=0, allow_nan=True)
    metastability = as_float_array(metastability, "metastability", min_ndim=0, allow_nan=True)
    try:
        return (integration * (1.0 - metastability))[()]
    except ValueError:
        raise ValueError(
            f"integration shape {integration.shape} and metastability shape "
            f"{metastability.shape} do not broadcast"
        ) from None


def rolling_volatility(dsi: Any, vol_window: int = VOL_WINDOW) -> np.ndarray:
    r"""Rolling standard deviation of the stability index over the last windows.

    Parameters
    ----------
    dsi : array_like, shape (..., n_windows)
        Stability index per window, in window order along the last axis.
    vol_window : int, optional
        Number of windows in each standard deviation, at least 1.

    Returns
    -------
    ndarray, shape (..., n_windows)
        Volatility V_w; NaN for the first ``vol_window - 1`` entries (and
        everywhere if there are fewer windows than that), and where a NaN DSI
        falls in the rolling window.

    Raises
    ------
    ValueError
        On infinite or non-real input or a bad `vol_window`.

    Notes
    -----
    .. math:: V_w = \operatorname{std}(\mathrm{DSI}_{w-k+1}, \dots,
              \mathrm{DSI}_w), \quad k = \text{vol\_window},

    the population standard deviation (divisor k).
    """
    dsi = as_float_array(dsi, "dsi", allow_nan=True)
    vol_window = check_int(vol_window, "vol_window", minimum=1)
    volatility = np.full(dsi.shape, np.nan)
    n_windows = dsi.shape[-1]
    if vol_window <= n_windows:
        # Added term by term in window order (not numpy's pairwise sums), so that the
        # newest volatility of a live monitor, computed from the last `vol_window` values
        # alone, has the same bits as the one computed here for the whole run.
        count = n_windows - vol_window + 1
        terms = [dsi[..., k : k + count] for k in range(vol_window)]
        mean = terms[0].copy()
        for term in terms[1:]:
            mean += term
        mean /= vol_window
        variance = np.zeros(mean.shape)
        for term in terms:
            deviation = term - mean
            variance += deviation * deviation
        variance /= vol_window
        volatility[..., vol_window - 1 :] = np.sqrt(variance)
    return volatility


def _as_series(values: Any, name: str) -> np.ndarray:
    series = as_float_array(values, name, allow_nan=True)
    if series.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {series.shape}")
    return series


def convergence_window(
    volatility: Any, *, threshold: float = VOL_THRESHOLD, patience: int = VOL_PATIENCE
) -> int | None:
    r"""First window after the volatility peak where volatility stays low.

    Parameters
    ----------
    volatility : array_like, shape (n_windows,)
        Volatility per window (NaN entries, e.g. the first ``vol_window - 1``,
        are ignored and never count as low).
    threshold : float, optional
        Fraction of the peak volatility, in [0, 1].
    patience : int, optional
        Number of consecutive low windows required, at least 1.

    Returns
    -------
    int or None
        Index j of the converged window (the analysis reports the end of
        window j); None if there is none, if every entry is NaN, or if the
        peak volatility is 0.

    Raises
    ------
    ValueError
        On infinite input, input that is not 1-D, or bad options.

    Notes
    -----
    Let :math:`V_{max} = \max_w V_w`, first reached at window k.  The result
    is the smallest :math:`j \ge k` with
    :math:`V_i \le \text{threshold} \cdot V_{max}` for every
    :math:`i = j, \dots, j + \text{patience} - 1` (all of which must exist).
    Starting at the peak matters: before a network learns, volatility is also
    low.

    References
    ----------
    .. [1] La Quang, Ugail, Howard et al., arXiv:2604.09716 (2026).
    """
    volatility = _as_series(volatility, "volatility")
    threshold = check_fraction(threshold, "threshold", low=0.0, high=1.0)
    patience = check_int(patience, "patience", minimum=1)
    recorded = ~np.isnan(volatility)
    if not recorded.any() or volatility.size < patience:
        return None
    peak = int(np.nanargmax(volatility))
    v_max = volatility[peak]
    if v_max <= 0:
        return None
    low = recorded & (volatility <= threshold * v_max)
    low[:peak] = False
    stays_low = sliding_window_view(low, patience).all(axis=-1)
    hits = np.flatnonzero(stays_low)
    return int(hits[0]) if hits.size else None


def _centred_moving_average(values: np.ndarray, points: int) -> np.ndarray:
    """Moving average over `points` neighbours, centred, shrinking at the edges."""
    before, after = (points - 1) // 2, points // 2
    padded = np.pad(values, (before, after), constant_values=np.nan)
    neighbours = sliding_window_view(padded, points)
    return _nanmean(neighbours, axis=-1)


def accuracy_plateau(
    accuracy: Any,
    *,
    smoothing: int = PLATEAU_SMOOTHING,
    tolerance: float = PLATEAU_TOLERANCE,
) -> int | None:
    r"""First checkpoint at which the smoothed accuracy reaches its plateau.

    Parameters
    ----------
    accuracy : array_like, shape (n_checkpoints,)
        Accuracy (higher is better) per checkpoint; NaN where it was not
        recorded.
    smoothing : int, optional
        Points in the centred moving average, at least 1.
    tolerance : float, optional
        Fraction of the total gain, in [0, 1].

    Returns
    -------
    int or None
        Index into `accuracy` of the plateau checkpoint; None if nothing was
        recorded or the smoothed accuracy never rises above its first value.

    Raises
    ------
    ValueError
        On infinite input, input that is not 1-D, or bad options.

    Notes
    -----
    NaN entries are dropped first and the result maps back to the input
    index.  With :math:`\bar a` the moving average of the recorded values,
    gain :math:`G = \max \bar a - \bar a_0`, and the plateau is the first
    i with :math:`\bar a_i \ge \max \bar a - \text{tolerance} \cdot G`.

    The average is centred (points ``i - (k-1)//2 .. i + k//2``, fewer at the
    edges) rather than trailing: a trailing average lags by about
    ``(k - 1) / 2`` checkpoints, which would delay the plateau and inflate the
    lead of the stability-index convergence over it.
    """
    accuracy = _as_series(accuracy, "accuracy")
    smoothing = check_int(smoothing, "smoothing", minimum=1)
    tolerance = check_fraction(tolerance, "tolerance", low=0.0, high=1.0)
    recorded = np.flatnonzero(~np.isnan(accuracy))
    if recorded.size == 0:
        return None
    smoothed = _centred_moving_average(accuracy[recorded], smoothing)
    best = smoothed.max()
    gain = best - smoothed[0]
    if gain <= _NO_GAIN * np.abs(smoothed).max():  # flat, falling, or rounding noise
        return None
    first = np.flatnonzero(smoothed >= best - tolerance * gain)[0]
    return int(recorded[first])


def spearman(a: Any, b: Any, *, axis: int = -1) -> np.ndarray:
    r"""Spearman rank correlation of `a` and `b` along `axis`.

    Parameters
    ----------
    a, b : array_like
        Real, finite values of the same shape (or broadcastable), at least
        2 along `axis`.
    axis : int, optional
        Axis along which the pairs lie.

    Returns
    -------
    ndarray or numpy.float64
        rho in [-1, 1], with the shape without `axis`; NaN where either
        series is constant.

    Raises
    ------
    ValueError
        On non-finite input, shapes that do not broadcast, a bad axis, or
        fewer than 2 pairs.

    Notes
    -----
    Pearson correlation of the ranks, ties given their average rank (as
    ``scipy.stats.spearmanr``):
    :math:`\rho = \frac{\sum (r_a - \bar r)(r_b - \bar r)}
    {\sqrt{\sum (r_a - \bar r)^2 \sum (r_b - \bar r)^2}}`.

    References
    ----------
    .. [1] C. Spearman, "The proof and measurement of association between two
       things", Am. J. Psychol. 15, 72 (1904).
    """
    a = as_float_array(a, "a")
    b = as_float_array(b, "b")
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise ValueError(f"a shape {a.shape} and b shape {b.shape} do not broadcast") from None
    axis = normalize_axis(axis, a.ndim, a.shape)
    if a.shape[axis] < 2:
        raise ValueError(f"spearman needs at least 2 pairs along axis {axis}, got shape {a.shape}")
    ranks_a = average_ranks(np.moveaxis(a, axis, -1))
    ranks_b = average_ranks(np.moveaxis(b, axis, -1))
    ranks_a -= ranks_a.mean(axis=-1, keepdims=True)
    ranks_b -= ranks_b.mean(axis=-1, keepdims=True)
    covariance = np.sum(ranks_a * ranks_b, axis=-1)
    scale = np.sqrt(np.sum(ranks_a**2, axis=-1) * np.sum(ranks_b**2, axis=-1))
    rho = np.divide(covariance, scale, out=np.full(scale.shape, np.nan), where=scale > 0)
    return np.clip(rho, -1.0, 1.0)[()]


def training_style(
    integration_w: Any, metastability_w: Any, *, threshold: float = STYLE_THRESHOLD
) -> Style | None:
    """Label the relation between windowed integration and metastability.

    Parameters
    ----------
    integration_w, metastability_w : array_like, shape (n_windows,)
        Windowed series from :func:`windowed_measures`; pairs with a NaN in
        either are dropped.
    threshold : float, optional
        |rho| needed for "coupled" / "antagonistic", in [0, 1].

    Returns
    -------
    Style or None
        ``Style(label, spearman)``: "coupled" if rho >= threshold,
        "antagonistic" if rho <= -threshold, otherwise "independent"; None
        when rho is undefined (fewer than 3 finite pairs, or a constant
        series).

    Raises
    ------
    ValueError
        On infinite input, inputs that are not 1-D of equal length, or a bad
        threshold.

    References
    ----------
    .. [1] La Quang, Ugail, Howard et al., arXiv:2604.09716 (2026).
    """
    integration_w = _as_series(integration_w, "integration_w")
    metastability_w = _as_series(metastability_w, "metastability_w")
    if integration_w.shape != metastability_w.shape:
        raise ValueError(
            f"integration_w shape {integration_w.shape} and metastability_w shape "
            f"{metastability_w.shape} differ"
        )
    threshold = check_fraction(threshold, "threshold", low=0.0, high=1.0)
    paired = ~(np.isnan(integration_w) | np.isnan(metastability_w))
    if np.count_nonzero(paired) < 3:
        return None
    rho = float(spearman(integration_w[paired], metastability_w[paired]))
    if math.isnan(rho):
        return None
    coupled, antagonistic, independent = STYLE_LABELS
    if rho >= threshold:
        return Style(coupled, rho)
    if rho <= -threshold:
        return Style(antagonistic, rho)
    return Style(independent, rho)
