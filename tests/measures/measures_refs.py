"""Reference implementations for the measures tests: peers, naive loops, fGn from `fbm`.

Peer libraries are imported lazily (neurokit2 pulls in pandas and matplotlib).
Every function here works on one 1-D series, the way the peers do.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np


@functools.cache
def import_nolds() -> ModuleType:
    """Import nolds 0.6.3, which fails on Python 3.11 without help.

    ``nolds.datasets`` loads its bundled data at import with
    ``importlib.resources.files("nolds.datasets")``; on 3.11 that call needs a
    package, and ``nolds.datasets`` is a module (3.12 accepts modules).  While
    nolds imports, answer that one call with the directory that holds the
    data files, which is what 3.12 would do.
    """
    if "nolds" in sys.modules:
        return sys.modules["nolds"]
    original = importlib.resources.files
    spec = importlib.util.find_spec("nolds")
    package_dir = Path(spec.origin).parent

    def files(anchor=None):
        if anchor == "nolds.datasets":
            return package_dir
        return original(anchor)

    importlib.resources.files = files
    try:
        return importlib.import_module("nolds")
    finally:
        importlib.resources.files = original


def fathon_fluctuations(
    x: np.ndarray, scales: np.ndarray, order: int, *, both_ends: bool = True
) -> tuple[float, np.ndarray]:
    """Alpha and F(s) from fathon (``revSeg=True`` adds the end-aligned segments)."""
    import fathon
    from fathon import fathonUtils

    analysis = fathon.DFA(fathonUtils.toAggregated(np.asarray(x, dtype=np.float64)))
    _, fluct = analysis.computeFlucVec(
        winSizes=np.asarray(scales, dtype=np.int64), revSeg=both_ends, polOrd=order
    )
    alpha, _ = analysis.fitFlucVec()
    return float(alpha), np.asarray(fluct)


def mfdfa_fluctuations(x: np.ndarray, scales: np.ndarray, order: int) -> np.ndarray:
    """F(s) from MFDFA with q = 2 (segments from both ends)."""
    from MFDFA import MFDFA

    lags, fluct = MFDFA(np.asarray(x, dtype=np.float64), lag=np.asarray(scales), q=2, order=order)
    assert np.array_equal(lags, scales), "MFDFA dropped lags (needs lag > order + 1)"
    return fluct[:, 0]


def nolds_alpha(x: np.ndarray, scales: np.ndarray, order: int) -> float:
    """Alpha from nolds, matched: non-overlapping windows, least-squares fit."""
    nolds = import_nolds()
    return float(nolds.dfa(x, nvals=list(scales), overlap=False, order=order, fit_exp="poly"))


def neurokit_alpha(x: np.ndarray, scales: np.ndarray, order: int) -> float:
    """Alpha from neurokit2, matched: non-overlapping windows, z-scored input.

    neurokit2 drops segments whose residual variance is <= 1e-8, so the input
    is z-scored to keep every segment.
    """
    from neurokit2.complexity import fractal_dfa

    z = (x - x.mean()) / x.std()
    alpha, _ = fractal_dfa(z, scale=np.asarray(scales), overlap=False, order=order)
    return float(alpha)


def naive_fluctuations(
    x: np.ndarray, scales: np.ndarray, order: int, *, both_ends: bool = True
) -> np.ndarray:
    """F(s) the obvious way: loop over segments, ``np.polyfit`` in each."""
    profile = np.cumsum(x - x.mean())
    n_points = len(profile)
    fluct = []
    for scale in scales:
        n_segments = n_points // scale
        starts = [k * scale for k in range(n_segments)]
        if both_ends:
            starts += [n_points - (k + 1) * scale for k in range(n_segments)]
        t = np.arange(scale)
        squares = []
        for start in starts:
            segment = profile[start : start + scale]
            trend = np.polyval(np.polyfit(t, segment, order), t)
            squares.append(np.mean((segment - trend) ** 2))
        fluct.append(np.sqrt(np.mean(squares)))
    return np.array(fluct)


def loglog_slope(scales: np.ndarray, fluct: np.ndarray) -> float:
    """Least-squares slope of ln F against ln s."""
    return float(np.polyfit(np.log(scales), np.log(fluct), 1)[0])


def fbm_fgn(n_points: int, hurst: float, n_series: int, seed: int) -> np.ndarray:
    """Unit-variance fGn from the `fbm` package, shape (n_series, n_points).

    `fbm` draws from NumPy's global generator: seed it here and restore it.
    ``length=n_points`` gives unit variance (the default length 1 gives
    std n^-H).  Its Davies-Harte embedding puts 0 where gamma(n) belongs, so
    it fails for H near 1 and falls back to the slow Hosking method with a
    warning; for H >= 0.9 use its (exact) Cholesky method instead.
    """
    from fbm import FBM

    method = "cholesky" if hurst >= 0.9 else "daviesharte"
    generator = FBM(n_points, hurst, length=n_points, method=method)
    state = np.random.get_state()  # noqa: NPY002 (fbm only uses the global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a fallback would be a surprise here
            return np.array([generator.fgn() for _ in range(n_series)])
    finally:
        np.random.set_state(state)  # noqa: NPY002


def kuramoto_phases(
    n_oscillators: int,
    n_points: int,
    *,
    coupling: float,
    spread: float = 0.05,
    period: float = 10.0,
    phase_noise: float = 0.05,
    n_systems: int = 1,
    seed: int = 0,
    substeps: int = 20,
    burn_in: int = 50,
) -> np.ndarray:
    """Phases of noisy coupled Kuramoto oscillators, sampled once per time unit.

    d theta_i = [omega_i + K R sin(psi - theta_i)] dt + phase_noise dW_i, with
    R e^{i psi} the mean field and omega_i ~ N(2 pi / period, spread^2),
    integrated by Euler-Maruyama (``substeps`` per sample) after ``burn_in``
    samples.  The critical coupling for this Gaussian spread is
    K_c = 2 / (pi g(0)) = spread * 2 sqrt(2 pi) / pi.  Returns theta, shape
    (n_systems, n_oscillators, n_points), unwrapped, in radians.
    """
    rng = np.random.default_rng(seed)
    omega = 2 * np.pi / period + spread * rng.standard_normal((n_systems, n_oscillators))
    theta = rng.uniform(0.0, 2 * np.pi, (n_systems, n_oscillators))
    dt = 1.0 / substeps
    phases = np.empty((n_systems, n_oscillators, n_points))
    for sample in range(-burn_in, n_points):
        for _ in range(substeps):
            field = np.exp(1j * theta).mean(axis=-1, keepdims=True)
            pull = coupling * np.abs(field) * np.sin(np.angle(field) - theta)
            noise = phase_noise * np.sqrt(dt) * rng.standard_normal(theta.shape)
            theta = theta + (omega + pull) * dt + noise
        if sample >= 0:
            phases[..., sample] = theta
    return phases


def critical_coupling(spread: float) -> float:
    """Kuramoto's K_c for natural frequencies N(mean, spread^2)."""
    return spread * 2 * np.sqrt(2 * np.pi) / np.pi
