"""Synthetic signals with planted properties, in pure NumPy.

Used by ``dynatrain simulate`` (synthetic archives) and by the tests:

* :func:`fgn` — exact fractional Gaussian noise with a chosen Hurst exponent,
  whose DFA exponent is known (alpha ~ H);
* :func:`coupled_oscillators` — multi-layer signals whose layers are
  phase-locked, independent, or switch between the two
  (:func:`switching_schedule`), so synchrony and metastability are known.

All randomness comes from the ``rng`` argument: same seed, same output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dynatrain.measures._checks import check_generator, check_int
from dynatrain.measures.finite_size import _fgn_autocovariance

__all__ = ["coupled_oscillators", "fgn", "fgn_autocovariance", "switching_schedule"]

#: Circulant eigenvalues below -this * largest are a failed embedding (not rounding).
_NEGATIVE_EIGENVALUE = 1e-10


def _check_hurst(hurst: Any) -> float:
    try:
        hurst = float(hurst)
    except (TypeError, ValueError):
        raise ValueError(f"hurst must be a number, got {hurst!r}") from None
    if not 0.0 < hurst < 1.0:
        raise ValueError(f"hurst must be strictly between 0 and 1, got {hurst}")
    return hurst


def _check_size(size: Any) -> tuple[int, ...]:
    shape = (size,) if np.isscalar(size) else tuple(size)
    return tuple(check_int(n, "size entry", minimum=0) for n in shape)


def fgn_autocovariance(n_lags: int, hurst: float) -> np.ndarray:
    r"""Autocovariance of unit-variance fractional Gaussian noise.

    Parameters
    ----------
    n_lags : int
        Number of lags k = 0 .. n_lags - 1.
    hurst : float
        Hurst exponent H, in (0, 1).

    Returns
    -------
    ndarray, shape (n_lags,)
        :math:`\gamma(k) = \tfrac12 (|k+1|^{2H} - 2|k|^{2H} + |k-1|^{2H})`.
    """
    return _fgn_autocovariance(check_int(n_lags, "n_lags", minimum=0), _check_hurst(hurst))


def _circulant_eigenvalues(n_points: int, hurst: float) -> np.ndarray | None:
    """Eigenvalues of the 2n circulant embedding, or None if it is not non-negative."""
    gamma = fgn_autocovariance(n_points + 1, hurst)
    first_row = np.concatenate([gamma, gamma[-2:0:-1]])  # lags 0..n, n-1..1
    eigenvalues = np.fft.fft(first_row).real
    if eigenvalues.min() < -_NEGATIVE_EIGENVALUE * eigenvalues.max():
        return None
    return np.maximum(eigenvalues, 0.0)


def fgn(n_points: int, hurst: float, *, size: Any = (), rng: np.random.Generator) -> np.ndarray:
    r"""Exact fractional Gaussian noise with unit variance.

    Parameters
    ----------
    n_points : int
        Length of each series, at least 1.
    hurst : float
        Hurst exponent H in (0, 1): 0.5 is white noise, above 0.5 persistent,
        below anti-persistent.  DFA reads alpha ~ H; the cumulative sum is
        fractional Brownian motion (alpha ~ H + 1).
    size : int or tuple of int, optional
        Leading shape: the number of independent series.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray, shape (*size, n_points)
        Stationary Gaussian series with mean 0, variance 1 and autocovariance
        :func:`fgn_autocovariance`.

    Raises
    ------
    ValueError
        On a bad length, Hurst exponent or size.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    Davies-Harte circulant embedding: the covariance is embedded in a
    circulant matrix of size :math:`M = 2n` with first row
    :math:`\gamma(0), \dots, \gamma(n), \gamma(n-1), \dots, \gamma(1)` and
    eigenvalues :math:`\lambda = \mathrm{FFT}(\text{row})`; then
    :math:`\mathrm{Re}\,\mathrm{FFT}(\sqrt{\lambda/M}\,(A + iB))_{0..n-1}`,
    with A, B independent standard normal, has exactly the fGn covariance.
    All series are drawn in one vectorised call.  If the embedding had a
    negative eigenvalue (it does not for fGn as far as is known, but the
    guarantee is numerical), the Cholesky factor of the n x n Toeplitz
    covariance is used instead, also exact, at O(n^3) cost.

    References
    ----------
    .. [1] R. B. Davies and D. S. Harte, "Tests for Hurst effect",
       Biometrika 74, 95 (1987).
    .. [2] C. R. Dietrich and G. N. Newsam, "Fast and exact simulation of
       stationary Gaussian processes through circulant embedding of the
       covariance matrix", SIAM J. Sci. Comput. 18, 1088 (1997).
    """
    check_generator(rng)
    n_points = check_int(n_points, "n_points", minimum=1)
    hurst = _check_hurst(hurst)
    shape = _check_size(size)
    eigenvalues = _circulant_eigenvalues(n_points, hurst)
    if eigenvalues is None:
        covariance = fgn_autocovariance(n_points, hurst)
        lags = np.abs(np.subtract.outer(np.arange(n_points), np.arange(n_points)))
        factor = np.linalg.cholesky(covariance[lags])
        return rng.standard_normal((*shape, n_points)) @ factor.T
    n_circulant = len(eigenvalues)
    normal = rng.standard_normal((*shape, 2, n_circulant))
    weights = np.sqrt(eigenvalues / n_circulant) * (normal[..., 0, :] + 1j * normal[..., 1, :])
    return np.fft.fft(weights, axis=-1).real[..., :n_points]


def switching_schedule(
    n_points: int, block_length: int, *, start_locked: bool = True
) -> np.ndarray:
    """Alternating locked/unlocked blocks, for :func:`coupled_oscillators`.

    Parameters
    ----------
    n_points : int
        Length of the schedule.
    block_length : int
        Points per block, at least 1.
    start_locked : bool, optional
        Whether the first block is locked.

    Returns
    -------
    ndarray of bool, shape (n_points,)
        True where the layers are phase-locked.
    """
    n_points = check_int(n_points, "n_points", minimum=0)
    block_length = check_int(block_length, "block_length", minimum=1)
    first_block = (np.arange(n_points) // block_length) % 2 == 0
    return first_block if start_locked else ~first_block


def coupled_oscillators(
    n_layers: int,
    n_points: int,
    *,
    locked: Any = True,
    period: float = 16.0,
    drift: float = 0.5,
    noise: float = 0.1,
    size: Any = (),
    rng: np.random.Generator,
) -> np.ndarray:
    r"""Multi-layer oscillations that are phase-locked, independent, or switch.

    Parameters
    ----------
    n_layers : int
        Number of layers, at least 1.
    n_points : int
        Number of time points (checkpoints), at least 1.
    locked : bool or array_like of bool, shape (n_points,), optional
        Where the layers share one phase: True (always; synchrony ~ 1,
        metastability ~ 0), False (never; independent layers, synchrony
        ~ :math:`1/\sqrt{L}`), or a schedule such as
        :func:`switching_schedule` (high metastability).
    period : float, optional
        Period of the common oscillation, in points (> 0).
    drift : float, optional
        Standard deviation of each unlocked layer's phase step, in radians
        per point (>= 0); larger drift decorrelates the layers faster.
    noise : float, optional
        Standard deviation of additive white noise (>= 0).
    size : int or tuple of int, optional
        Leading shape: the number of independent systems.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray, shape (*size, n_layers, n_points)
        :math:`x_l(t) = \cos(2\pi t / \text{period} + \theta_0 + \psi_l(t))
        + \text{noise}\cdot\epsilon_l(t)`, with :math:`\psi_l(t) = 0` where
        locked and otherwise a random walk in phase started at a uniform
        random angle, independent per layer.

    Raises
    ------
    ValueError
        On bad sizes or parameters, or a `locked` schedule of the wrong shape.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.
    """
    check_generator(rng)
    n_layers = check_int(n_layers, "n_layers", minimum=1)
    n_points = check_int(n_points, "n_points", minimum=1)
    shape = _check_size(size)
    schedule = np.asarray(locked)
    if schedule.dtype != bool or schedule.shape not in ((), (n_points,)):
        raise ValueError(
            f"locked must be a bool or a bool array of shape ({n_points},), "
            f"got dtype {schedule.dtype} with shape {schedule.shape}"
        )
    if not (np.isfinite(period) and period > 0):
        raise ValueError(f"period must be a positive number of points, got {period!r}")
    for name, value in (("drift", drift), ("noise", noise)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    start_phase = rng.uniform(0.0, 2.0 * np.pi, size=(*shape, 1, 1))
    layer_phase = rng.uniform(0.0, 2.0 * np.pi, size=(*shape, n_layers, 1))
    steps = drift * rng.standard_normal((*shape, n_layers, n_points))
    additive = noise * rng.standard_normal((*shape, n_layers, n_points))
    wander = np.where(schedule, 0.0, layer_phase + np.cumsum(steps, axis=-1))
    carrier = 2.0 * np.pi * np.arange(n_points) / period
    return np.cos(carrier + start_phase + wander) + additive
