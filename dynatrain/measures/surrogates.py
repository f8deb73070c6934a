"""Surrogate data, surrogate p-values and bootstrap intervals.

Surrogates keep some properties of the data and destroy the one under test:
shuffling in time destroys temporal correlation (the null for integration);
randomising Fourier phases independently per layer keeps each spectrum but
destroys cross-layer phase relations (the null for synchrony and
metastability).  All randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dynatrain.defaults import BOOTSTRAP_RESAMPLES, CI_LEVEL, DFA_ORDER, MIN_SCALE, N_SCALES
from dynatrain.measures._checks import (
    as_float_array,
    check_choice,
    check_fraction,
    check_generator,
    check_int,
    check_layers,
    normalize_axis,
)
from dynatrain.measures.dfa import dfa
from dynatrain.measures.kuramoto import MIN_PHASE_POINTS, Kuramoto, _order_parameter

__all__ = [
    "ALTERNATIVES",
    "bootstrap_ci",
    "integration_null",
    "kuramoto_null",
    "phase_randomized_surrogates",
    "shuffle_surrogates",
    "surrogate_p_value",
]

#: Accepted values of ``surrogate_p_value(alternative=...)``.
ALTERNATIVES = ("greater", "less")
#: Elements of the data (float64) per batch of surrogates in the nulls (~4 MiB): memory
#: stays bounded by the signals plus a constant, whatever the number of surrogates.
_SURROGATE_CHUNK_ELEMENTS = 1 << 19


def _chunks(n_surrogates: int, elements_per_surrogate: int) -> list[tuple[int, int]]:
    """``(first, size)`` of the batches of surrogates of at most ~4 MiB each (at least 1)."""
    per_batch = max(1, _SURROGATE_CHUNK_ELEMENTS // max(1, elements_per_surrogate))
    return [(lo, min(per_batch, n_surrogates - lo)) for lo in range(0, n_surrogates, per_batch)]


def _check_surrogate_input(x: Any, n_surrogates: Any, rng: Any) -> tuple[np.ndarray, int]:
    check_generator(rng)
    x = as_float_array(x)
    n_surrogates = check_int(n_surrogates, "n_surrogates", minimum=1)
    return x, n_surrogates


def shuffle_surrogates(x: Any, n_surrogates: int, *, rng: np.random.Generator) -> np.ndarray:
    """Time-shuffled copies of every series.

    Parameters
    ----------
    x : array_like, shape (..., n_points)
        Real, finite series, time on the last axis.
    n_surrogates : int
        Number of surrogates, at least 1.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray, shape (n_surrogates, ..., n_points)
        Each series permuted along time, independently for every series and
        surrogate; values (hence mean, variance, histogram) are kept exactly.

    Raises
    ------
    ValueError
        On non-finite input or a bad `n_surrogates`.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    References
    ----------
    .. [1] J. Theiler, S. Eubank, A. Longtin, B. Galdrikian and J. D. Farmer,
       "Testing for nonlinearity in time series: the method of surrogate
       data", Physica D 58, 77 (1992).
    """
    x, n_surrogates = _check_surrogate_input(x, n_surrogates, rng)
    copies = np.array(np.broadcast_to(x, (n_surrogates, *x.shape)))
    return rng.permuted(copies, axis=-1, out=copies)


def phase_randomized_surrogates(
    x: Any, n_surrogates: int, *, rng: np.random.Generator
) -> np.ndarray:
    r"""Fourier-phase-randomised copies of every series.

    Parameters
    ----------
    x : array_like, shape (..., n_points)
        Real, finite series, time on the last axis (for layer signals,
        ``(..., n_layers, n_points)``: every layer gets its own phases).
    n_surrogates : int
        Number of surrogates, at least 1.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray, shape (n_surrogates, ..., n_points)
        Real surrogates with exactly the Fourier amplitudes (hence the
        periodogram and circular autocorrelation) and mean of each series.

    Raises
    ------
    ValueError
        On non-finite input or a bad `n_surrogates`.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    With :math:`X_k` the real FFT of a series of length T,
    :math:`\tilde X_k = |X_k| e^{i(\arg X_k + \theta_k)}` with
    :math:`\theta_k \sim U[0, 2\pi)` independent for every k, series and
    surrogate, except the DC term and, for even T, the Nyquist term, which stay
    as they are (real); the surrogate is the inverse real FFT.

    References
    ----------
    .. [1] J. Theiler, S. Eubank, A. Longtin, B. Galdrikian and J. D. Farmer,
       "Testing for nonlinearity in time series: the method of surrogate
       data", Physica D 58, 77 (1992).
    """
    x, n_surrogates = _check_surrogate_input(x, n_surrogates, rng)
    n_points = x.shape[-1]
    spectrum = np.fft.rfft(x, axis=-1)
    n_random = (n_points - 1) // 2  # frequencies strictly between DC and Nyquist
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(n_surrogates, *x.shape[:-1], n_random))
    rotated = np.broadcast_to(spectrum, (n_surrogates, *spectrum.shape)).copy()
    rotated[..., 1 : 1 + n_random] *= np.exp(1j * angles)
    return np.fft.irfft(rotated, n=n_points, axis=-1)


def surrogate_p_value(observed: Any, null: Any, *, alternative: str = "greater") -> np.ndarray:
    r"""One-sided surrogate (Monte Carlo) p-value.

    Parameters
    ----------
    observed : array_like, shape (...)
        Statistic on the data.
    null : array_like, shape (n_surrogates, ...)
        The same statistic on each surrogate, surrogates along axis 0;
        `observed` broadcasts against ``null.shape[1:]``.
    alternative : {"greater", "less"}, optional
        "greater": the data's statistic is larger than chance; "less": smaller.

    Returns
    -------
    ndarray or numpy.float64
        p in ``[1 / (N + 1), 1]``.

    Raises
    ------
    ValueError
        On non-finite input, shapes that do not broadcast, an empty null, or
        an unknown `alternative`.

    Notes
    -----
    .. math:: p = \frac{1 + \#\{j : s_j \ge s_{obs}\}}{N + 1}

    ("greater"; :math:`\le` for "less").  Counting the observation itself
    keeps the test exact: under the null p is uniform on
    :math:`\{1, \dots, N+1\}/(N+1)`.

    References
    ----------
    .. [1] J. Theiler and D. Prichard, "Constrained-realization Monte-Carlo
       method for hypothesis testing", Physica D 94, 221 (1996).
    .. [2] J. Theiler et al., Physica D 58, 77 (1992).
    """
    alternative = check_choice(alternative, "alternative", ALTERNATIVES)
    observed = as_float_array(observed, "observed", min_ndim=0)
    null = as_float_array(null, "null", min_ndim=1)
    if null.shape[0] == 0:
        raise ValueError(f"null needs at least one surrogate, got shape {null.shape}")
    try:
        np.broadcast_shapes(observed.shape, null.shape[1:])
    except ValueError:
        raise ValueError(
            f"observed shape {observed.shape} does not broadcast against the "
            f"surrogates' shape {null.shape[1:]} (null shape {null.shape})"
        ) from None
    extreme = null >= observed if alternative == "greater" else null <= observed
    return ((1.0 + np.count_nonzero(extreme, axis=0)) / (null.shape[0] + 1.0))[()]


def bootstrap_ci(
    values: Any,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = CI_LEVEL,
    rng: np.random.Generator,
    axis: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Percentile bootstrap confidence interval of the mean.

    Parameters
    ----------
    values : array_like, shape (..., n_values, ...)
        Real, finite values (e.g. per-layer DFA exponents) along `axis`.
    n_resamples : int, optional
        Number of bootstrap resamples, at least 1.
    level : float, optional
        Confidence level, in (0, 1).
    rng : numpy.random.Generator
        Source of randomness.
    axis : int, optional
        Axis of the values to resample.

    Returns
    -------
    (lo, hi) : tuple of ndarray or numpy.float64
        Bounds, with the shape of `values` without `axis`.

    Raises
    ------
    ValueError
        On non-finite or empty input or bad options.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    Draw ``n_resamples`` index sets of size n with replacement (the same
    sets for every series), take the mean of each, and report the
    :math:`(1 \mp \text{level})/2` quantiles (linear interpolation) of those
    means.  With few values (e.g. 4 layers) the interval is narrow and
    optimistic: the percentile bootstrap undercovers for small n.

    References
    ----------
    .. [1] B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*,
       Chapman & Hall (1993), ch. 13.
    """
    check_generator(rng)
    values = as_float_array(values, "values")
    axis = normalize_axis(axis, values.ndim, values.shape)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    level = check_fraction(level, "level", low=0.0, high=1.0)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    n_values = values.shape[axis]
    if n_values == 0:
        raise ValueError(f"values is empty along axis {axis} (shape {values.shape})")
    picks = rng.integers(0, n_values, size=(n_resamples, n_values))
    means = np.moveaxis(values, axis, -1)[..., picks].mean(axis=-1)  # (..., n_resamples)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail], axis=-1)
    return lo[()], hi[()]


def integration_null(
    x: Any,
    n_surrogates: int,
    *,
    rng: np.random.Generator,
    min_scale: int = MIN_SCALE,
    max_scale: int | None = None,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
) -> np.ndarray:
    """Integration of time-shuffled surrogates: the null for integration.

    Parameters
    ----------
    x : array_like, shape (..., n_layers, n_points)
        Real, finite layer signals.
    n_surrogates : int
        Number of surrogates, at least 1.
    rng : numpy.random.Generator
        Source of randomness.
    min_scale, max_scale, n_scales, order : int, optional
        DFA settings, as in :func:`~dynatrain.measures.dfa.dfa`.

    Returns
    -------
    ndarray, shape (n_surrogates, ...)
        Mean over layers of the DFA exponent of each surrogate
        (``(n_surrogates,)`` for 2-D input).

    Raises
    ------
    ValueError
        On non-finite input, fewer than 2 layers, or a series too short for
        the scales.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    Every layer is shuffled independently (:func:`shuffle_surrogates`) and the
    surrogates go through batched DFA calls of about 4 MiB of data each, so memory
    does not grow with ``n_surrogates``; the draws are those of one big call.  A
    constant layer gives NaN, as in :func:`~dynatrain.measures.dfa.dfa`.
    """
    x, n_surrogates = _check_surrogate_input(x, n_surrogates, rng)
    check_layers(x)
    options = {"min_scale": min_scale, "max_scale": max_scale, "n_scales": n_scales}
    integration = np.empty((n_surrogates, *x.shape[:-2]))
    for lo, size in _chunks(n_surrogates, x.size):
        # The shuffles are drawn in order, so chunks give the draws of one big call.
        alpha = dfa(shuffle_surrogates(x, size, rng=rng), order=order, **options)
        integration[lo : lo + size] = alpha.mean(axis=-1)
    return integration


def kuramoto_null(x: Any, n_surrogates: int, *, rng: np.random.Generator) -> Kuramoto:
    """Synchrony and metastability of phase-randomised surrogates.

    Parameters
    ----------
    x : array_like, shape (..., n_layers, n_points)
        Real, finite layer signals (at least 2 layers, 3 points).
    n_surrogates : int
        Number of surrogates, at least 1.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    Kuramoto
        ``r`` shaped ``(n_surrogates, ..., n_points)``, ``synchrony`` and
        ``metastability`` shaped ``(n_surrogates, ...)``.

    Raises
    ------
    ValueError
        On non-finite input, fewer than 2 layers or fewer than 3 points.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    Phases are randomised independently per layer
    (:func:`phase_randomized_surrogates`), which keeps each layer's spectrum
    and destroys the phase relations between layers.  The surrogates are
    computed in batches of about 4 MiB of data (the same draws as one big
    batch), so memory holds R(t) of every surrogate but never all of their
    layers at once.
    """
    x, n_surrogates = _check_surrogate_input(x, n_surrogates, rng)
    check_layers(x, min_points=MIN_PHASE_POINTS)
    r = np.empty((n_surrogates, *x.shape[:-2], x.shape[-1]))
    for lo, size in _chunks(n_surrogates, x.size):
        # The phases are drawn in order, so chunks give the draws of one big call.
        r[lo : lo + size] = _order_parameter(phase_randomized_surrogates(x, size, rng=rng))
    return Kuramoto(r, r.mean(axis=-1), r.std(axis=-1))
