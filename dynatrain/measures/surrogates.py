"""Surrogate data, surrogate p-values and bootstrap intervals.

Surrogates keep some properties of the data and destroy the one under test:
shuffling in time destroys temporal correlation (the null for integration);
randomising Fourier phases independently per layer keeps each spectrum but
destroys cross-layer phase relations (the null for synchrony and
metastability).  All randomness comes from the ``rng`` argument.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from dynatrain.defaults import (
    BOOTSTRAP_RESAMPLES,
    CI_LEVEL,
    DFA_ORDER,
    MIN_SCALE,
    N_SCALES,
    PHASE_EDGE,
    PHASE_EDGES,
)
from dynatrain.measures._checks import (
    as_float_array,
    check_choice,
    check_fraction,
    check_generator,
    check_int,
    check_layers,
    normalize_axis,
)
from dynatrain.measures._parallel import ordered_map, report
from dynatrain.measures.dfa import _loglog_fit, _projected_fluctuations, dfa_scales
from dynatrain.measures.kuramoto import (
    MIN_PHASE_POINTS,
    Kuramoto,
    _order_from_sums,
    _order_parameter,
    _phasor_sums,
)

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
#: Series values (float64) phase-randomised and put through the phases at once in the
#: metastability null (~0.5 MiB): a run's layers in groups when they are more.
_PHASE_CHUNK_ELEMENTS = 1 << 16
#: Series values (float64) shuffled and put through DFA at once in the integration null
#: (~0.5 MiB): the temporaries stay in cache.
_DFA_CHUNK_ELEMENTS = 1 << 16


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
    return _phase_randomized(np.fft.rfft(x, axis=-1), x.shape[-1], n_surrogates, rng)


#: Unit phasors e^(2 pi i j / 1024): the table of :func:`_unit_phasors`.
_PHASOR_TABLE_BITS = 10


@functools.lru_cache(maxsize=1)
def _phasor_table() -> np.ndarray:
    size = 1 << _PHASOR_TABLE_BITS
    table = np.exp(2j * np.pi * np.arange(size + 1) / size)
    table.setflags(write=False)
    return table


def _unit_phasors(fractions: np.ndarray) -> np.ndarray:
    """exp(2 pi i u) for u in [0, 1), to within a few units in the last place.

    ``np.exp(1j * angle)`` costs about 50 ns per value (scalar sine and cosine); here
    u is split into the nearest multiple j / 1024, whose phasor comes from a table,
    and a remainder r with |2 pi r| <= pi / 1024, whose phasor is a short Taylor
    series (the first omitted terms are below 1e-18).
    """
    size = 1 << _PHASOR_TABLE_BITS
    nearest = np.rint(fractions * size)
    angle = fractions - nearest / size  # exact: u and j / 1024 are within 1 / 2048
    angle *= 2.0 * np.pi
    square = angle * angle
    phasor = np.empty(fractions.shape, dtype=np.complex128)
    # cos x = 1 - x^2 / 2 + x^4 / 24, sin x = x (1 - x^2 / 6 + x^4 / 120) for |x| <= pi / 1024.
    cos = square * (1.0 / 24.0)
    cos -= 0.5
    cos *= square
    cos += 1.0
    phasor.real = cos
    sin = square * (1.0 / 120.0)
    sin -= 1.0 / 6.0
    sin *= square
    sin += 1.0
    sin *= angle
    phasor.imag = sin
    phasor *= _phasor_table()[nearest.astype(np.intp)]
    return phasor


def _phase_randomized(
    spectrum: np.ndarray, n_points: int, n_surrogates: int, rng: np.random.Generator
) -> np.ndarray:
    """Phase-randomised surrogates from the real FFT of the series (unchecked).

    Draws ``rng.uniform(0, 2 pi)`` for every randomised frequency (as ``rng.random()``
    values u, the angle being 2 pi u), surrogates first, in C order.
    """
    return _rotated(spectrum, n_points, _phase_fractions(spectrum, n_points, n_surrogates, rng))


def _phase_fractions(
    spectrum: np.ndarray, n_points: int, n_surrogates: int, rng: np.random.Generator
) -> np.ndarray:
    """The draws of :func:`_phase_randomized`: phases as fractions of a turn."""
    n_random = (n_points - 1) // 2  # frequencies strictly between DC and Nyquist
    return rng.random(size=(n_surrogates, *spectrum.shape[:-1], n_random))


def _rotated(spectrum: np.ndarray, n_points: int, fractions: np.ndarray) -> np.ndarray:
    """The surrogates of :func:`_phase_randomized` from their drawn phase fractions."""
    n_random = fractions.shape[-1]
    rotated = np.empty((len(fractions), *spectrum.shape), dtype=np.complex128)
    rotated[..., : 1 + n_random] = spectrum[..., : 1 + n_random]  # DC kept as it is
    rotated[..., n_random + 1 :] = spectrum[..., n_random + 1 :]  # and an even Nyquist term
    rotated[..., 1 : 1 + n_random] *= _unit_phasors(fractions)
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
    Every layer is shuffled independently (the draws of :func:`shuffle_surrogates`)
    and the shuffled series go through DFA in batches of about 0.5 MiB, so memory does
    not grow with ``n_surrogates``.  Their F(s) come from projections of the segments
    only (no residual is formed: the complement of the polynomials for segments of up to
    12 points, the norm identity above, with a guard that falls back to the explicit
    residual where it would lose digits), equal to the F(s) of
    :func:`~dynatrain.measures.dfa.dfa` to about 1e-11 and about three times faster.
    A constant layer gives NaN, as in :func:`~dynatrain.measures.dfa.dfa`.
    """
    x, n_surrogates = _check_surrogate_input(x, n_surrogates, rng)
    check_layers(x)
    order = check_int(order, "order", minimum=1)
    n_points = x.shape[-1]
    scales = dfa_scales(
        n_points, min_scale=min_scale, max_scale=max_scale, n_scales=n_scales, order=order
    )
    layers = x.reshape(-1, n_points)  # every series of one surrogate, in C order
    n_series = n_surrogates * len(layers)
    per_batch = max(1, _DFA_CHUNK_ELEMENTS // n_points)

    def shuffled_batches() -> Iterator[np.ndarray]:
        for lo in range(0, n_series, per_batch):
            # Shuffled one series after the other, surrogates first: the draws of one big
            # call, made here in order (the DFA of a batch may run on another thread).
            batch = layers[np.arange(lo, min(lo + per_batch, n_series)) % len(layers)]
            rng.permuted(batch, axis=-1, out=batch)
            yield batch

    def exponents(batch: np.ndarray) -> np.ndarray:
        fluct, profile_rms = _projected_fluctuations(batch, scales, order)
        return _loglog_fit(scales, fluct, profile_rms)[0]

    parts, done = [], 0
    report("shuffle null", 0, n_surrogates)
    for part in ordered_map(exponents, shuffled_batches()):
        parts.append(part)
        done += len(part)
        report("shuffle null", done // len(layers), n_surrogates)
    alpha = np.concatenate(parts)
    return alpha.reshape(n_surrogates, *x.shape[:-2], x.shape[-2]).mean(axis=-1)


def kuramoto_null(
    x: Any, n_surrogates: int, *, rng: np.random.Generator, edge: str = PHASE_EDGE
) -> Kuramoto:
    """Synchrony and metastability of phase-randomised surrogates.

    Parameters
    ----------
    x : array_like, shape (..., n_layers, n_points)
        Real, finite layer signals (at least 2 layers, 3 points).
    n_surrogates : int
        Number of surrogates, at least 1.
    rng : numpy.random.Generator
        Source of randomness.
    edge : {"ar", "none"}, optional
        Edge handling of the Hilbert transform, as for the run
        (:func:`~dynatrain.measures.kuramoto.kuramoto`).

    Returns
    -------
    Kuramoto
        ``r`` shaped ``(n_surrogates, ..., n_points)``, ``synchrony`` and
        ``metastability`` shaped ``(n_surrogates, ...)``.

    Raises
    ------
    ValueError
        On non-finite input, fewer than 2 layers, fewer than 3 points or an
        unknown `edge`.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    Phases are randomised independently per layer
    (:func:`phase_randomized_surrogates`), which keeps each layer's spectrum
    and destroys the phase relations between layers.  The surrogates are
    computed in batches of about 0.5 MiB of data (a run's layers in groups, their
    unit phasors summed, when they are more; the same draws as one big batch), so
    memory holds R(t) of every surrogate but never all of their layers at once.
    """
    x, n_surrogates = _check_surrogate_input(x, n_surrogates, rng)
    check_layers(x, min_points=MIN_PHASE_POINTS)
    edge = check_choice(edge, "edge", PHASE_EDGES)
    n_layers, n_points = x.shape[-2:]
    units = x.reshape(-1, n_layers, n_points)  # one set of layers per leading index
    spectrum = np.fft.rfft(units, axis=-1)
    n_runs = n_surrogates * len(units)  # surrogate runs, surrogates first
    r = np.empty((n_runs, n_points))
    report("phase null", 0, n_surrogates)
    # The phases are drawn here, run after run, layer after layer: the draws of one big
    # call, whichever thread computes a batch (see `ordered_map`).
    if n_layers * n_points <= _PHASE_CHUNK_ELEMENTS:
        per_batch = _PHASE_CHUNK_ELEMENTS // (n_layers * n_points)
        batches = [np.arange(lo, min(lo + per_batch, n_runs)) for lo in range(0, n_runs, per_batch)]

        def drawn_runs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for runs in batches:
                group = spectrum[runs % len(units)]
                yield group, _phase_fractions(group, n_points, 1, rng)

        def order_parameter(drawn: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
            group, fractions = drawn
            return _order_parameter(_rotated(group, n_points, fractions)[0], edge)

        for runs, batch_r in zip(batches, ordered_map(order_parameter, drawn_runs()), strict=True):
            r[runs] = batch_r
            report("phase null", (int(runs[-1]) + 1) // len(units), n_surrogates)
    else:  # a run's layers in groups, their phasors summed
        per_group = max(1, _PHASE_CHUNK_ELEMENTS // n_points)
        groups = [(run, first) for run in range(n_runs) for first in range(0, n_layers, per_group)]

        def drawn_groups() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for run, first in groups:
                group = spectrum[run % len(units), first : first + per_group]
                yield group, _phase_fractions(group, n_points, 1, rng)

        def phasor_sums(drawn: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
            group, fractions = drawn
            return _phasor_sums(_rotated(group, n_points, fractions)[0], edge)

        sums: list[np.ndarray] = []
        for (run, first), parts in zip(
            groups, ordered_map(phasor_sums, drawn_groups()), strict=True
        ):
            if first == 0:
                sums = [np.zeros(n_points), np.zeros(n_points), np.zeros(n_points, np.int64)]
            for total, part in zip(sums, parts, strict=True):
                total += part
            if first + per_group >= n_layers:
                r[run] = _order_from_sums(*sums)
                report("phase null", (run + 1) // len(units), n_surrogates)
    r = r.reshape(n_surrogates, *x.shape[:-2], n_points)
    return Kuramoto(r, r.mean(axis=-1), r.std(axis=-1))
