"""Every default setting of dynatrain, in one place.

The CLI options, the library functions and the ``settings`` block of the JSON
output all take their defaults from here.
"""

from __future__ import annotations

import math
import os
from typing import Final

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CI_LEVEL",
    "CONVERGENCE_RULE",
    "CONVERGENCE_RULES",
    "CONVERGENCE_SURROGATES",
    "DFA_ORDER",
    "FFT_FRIENDLY_WINDOW",
    "HUGE_SIGNAL",
    "MAX_ANALYSIS_THREADS",
    "MAX_SURROGATES",
    "MAX_WINDOWS",
    "METRIC_CANDIDATES",
    "MIN_N_SCALES",
    "MIN_SCALE",
    "N_SCALES",
    "PHASE_EDGE",
    "PHASE_EDGES",
    "PLATEAU_SMOOTHING",
    "PLATEAU_TOLERANCE",
    "REDUCE",
    "REDUCTIONS",
    "RELIABLE_POINTS",
    "SEED",
    "SIGNIFICANCE_LEVEL",
    "STYLE_THRESHOLD",
    "SURROGATES",
    "THREADS_FROM_VALUES",
    "TINY_SIGNAL",
    "TRANSFORM",
    "TRANSFORMS",
    "UNEVEN_STEP_TOLERANCE",
    "VOL_PATIENCE",
    "VOL_THRESHOLD",
    "VOL_WINDOW",
    "WINDOW_FRACTION",
    "WINDOW_MIN",
    "available_cores",
    "convergence_null_stop",
    "default_max_scale",
    "default_threads",
    "default_window",
    "default_window_step",
]

# --- signals -------------------------------------------------------------------------------
#: Reductions of an activation tensor to one number per checkpoint (``--reduce``).
REDUCTIONS: Final = ("mean", "rms", "mean-abs", "std", "signal")
REDUCE: Final = "mean"
#: Transforms applied to the layer signals before every measure (``--transform``).
TRANSFORMS: Final = ("change", "level")
TRANSFORM: Final = "change"
#: Layer signals larger than this in magnitude are treated like non-finite ones (a
#: diverging run): the measures square and sum them, which would overflow float64.
HUGE_SIGNAL: Final = 1e150
#: Layer signals smaller than this in magnitude are read as 0: z-scores and DFA
#: fluctuations of such values underflow (subnormal numbers), and no activation that
#: small carries information.
TINY_SIGNAL: Final = 1e-150

# --- DFA -----------------------------------------------------------------------------------
MIN_SCALE: Final = 4
N_SCALES: Final = 16
DFA_ORDER: Final = 1
#: DFA needs at least this many distinct scales to fit a slope.
MIN_N_SCALES: Final = 3
#: Below this many analysed points an analysis warns that its exponents are rough: one
#: series' DFA alpha then has an SD above 0.1 (0.11-0.16 at 50 points, 0.4-0.6 at 24; the
#: README, "Reading the numbers").
RELIABLE_POINTS: Final = 50
#: Checkpoints whose epoch steps differ by more than this fraction of the median step
#: are "unevenly spaced": every measure assumes one step between consecutive points.
UNEVEN_STEP_TOLERANCE: Final = 0.01

# --- phases ------------------------------------------------------------------------------
#: Edge handling of the Hilbert transform: "ar" extends each series at both ends with an
#: AR forecast before the transform (validated: benchmarks/validate_hilbert_edges.py);
#: "none" transforms the series as it is (circular, distorted near the ends).
PHASE_EDGES: Final = ("ar", "none")
PHASE_EDGE: Final = "ar"

# --- windows, stability index, convergence -------------------------------------------------
WINDOW_MIN: Final = 16
WINDOW_FRACTION: Final = 4  # window = max(WINDOW_MIN, T // WINDOW_FRACTION)
#: Default windows longer than this are rounded down to FFT-friendly lengths.
FFT_FRIENDLY_WINDOW: Final = 64
#: Most windows the default ``window_step`` leaves: up to this many stride-1 windows the step
#: is 1 (runs of up to 339 analysed points, 340 checkpoints with ``--transform change``, are
#: windowed exactly as with stride 1, which covers every per-epoch run of a few hundred
#: epochs); beyond, the step grows so that the windowed measures cost at most 256 windows x
#: layers x window = O(layers x T), and the converged epoch keeps a resolution of about 0.3%
#: of the run (a step of 3 T / 1024 points at the default window of T / 4).
MAX_WINDOWS: Final = 256
VOL_WINDOW: Final = 5
VOL_THRESHOLD: Final = 0.25
VOL_PATIENCE: Final = 3
#: Convergence rules (``--convergence-rule``): "causal" decides each window from the windows
#: before it (what a live watcher sees); "whole-run" starts from the largest volatility of the
#: finished run (version 0.1).
CONVERGENCE_RULES: Final = ("causal", "whole-run")
CONVERGENCE_RULE: Final = "causal"
#: Most surrogate runs for the convergence p-value (``--convergence-surrogates``; never
#: more than ``--surrogates``).  Each costs a windowed pass over the run up to its decision,
#: several times what a surrogate of integration costs; 99 give p-values down to 0.01.
CONVERGENCE_SURROGATES: Final = 99
#: Accuracy metrics looked for, in this order, when ``--metric`` is not given.
METRIC_CANDIDATES: Final = ("val_accuracy", "val_acc", "accuracy", "train_accuracy")
PLATEAU_SMOOTHING: Final = 3  # points in the moving average of the accuracy
PLATEAU_TOLERANCE: Final = 0.02  # fraction of the total gain
STYLE_THRESHOLD: Final = 0.3  # |Spearman rho| for "coupled" / "antagonistic"

# --- uncertainty ---------------------------------------------------------------------------
SURROGATES: Final = 199
#: Most surrogates per test (``--surrogates``): p-values down to 1e-5; more cost time and
#: memory and resolve nothing a study reports.
MAX_SURROGATES: Final = 100_000
#: Resamples of :func:`dynatrain.measures.bootstrap_ci` (kept for the library; the
#: analysis reports the t interval, which covers what it claims with few layers).
BOOTSTRAP_RESAMPLES: Final = 2000
CI_LEVEL: Final = 0.95
SEED: Final = 0
#: The one significance level (``--significance-level``): a surrogate p-value at or below
#: it makes a result distinguishable from its surrogates (an "early warning" for the
#: convergence, a "coupled" or "antagonistic" label for the style); above it, the reports
#: say the surrogates do as well.
SIGNIFICANCE_LEVEL: Final = 0.05


def convergence_null_stop(n_surrogates: int, level: float = SIGNIFICANCE_LEVEL) -> int:
    """Early surrogates after which the convergence null stops drawing (Besag & Clifford).

    ``floor(level * n_surrogates) + 1``: once that many surrogate runs have converged as
    early as the run, its p-value (that count over the surrogates drawn, at least that
    count over `n_surrogates`) is above `level` whatever the rest would give, and
    drawing more would only refine a p-value that the reports word as "not
    distinguishable" anyway.

    Examples
    --------
    >>> convergence_null_stop(99), convergence_null_stop(199), convergence_null_stop(19)
    (5, 10, 1)
    >>> convergence_null_stop(100)  # p = 5 / 100 = 0.05 would still be significant
    6
    """
    return math.floor(level * n_surrogates + 1e-9) + 1


def default_max_scale(n_points: int) -> int:
    """Largest DFA scale used when none is given: ``floor(n_points / 4)``.

    Parameters
    ----------
    n_points : int
        Length of the analysed series (checkpoints after the transform).
    """
    return n_points // 4


def default_window(n_points: int) -> int:
    """Sliding-window length in checkpoints: ``max(16, n_points // 4)``, FFT-friendly.

    Above ``FFT_FRIENDLY_WINDOW`` points the window is rounded down to the nearest length
    whose prime factors are all at most 11: the phases of every window come from FFTs of
    its length, which cost 4 to 8 times more at lengths with a large prime factor
    (249 = 3 x 83 takes 24 ns per point, 250 takes 6.5).  The window shrinks by at most
    a few percent; windows of runs of up to 260 checkpoints are not rounded.

    Parameters
    ----------
    n_points : int
        Length of the analysed series (checkpoints after the transform).

    Examples
    --------
    >>> default_window(100), default_window(999), default_window(10_000)
    (25, 245, 2500)
    """
    window = max(WINDOW_MIN, n_points // WINDOW_FRACTION)
    if window > FFT_FRIENDLY_WINDOW:
        while not _is_smooth(window):
            window -= 1
    return window


def _is_smooth(n: int) -> bool:
    """Whether every prime factor of n is at most 11 (lengths the FFT handles fast)."""
    for prime in (2, 3, 5, 7, 11):
        while n % prime == 0:
            n //= prime
    return n == 1


def default_window_step(n_points: int, window: int) -> int:
    """Checkpoints between window starts: 1 up to ``MAX_WINDOWS`` windows, larger beyond.

    Parameters
    ----------
    n_points : int
        Length of the analysed series (checkpoints after the transform); for a live
        monitor, the length the run is expected to reach.
    window : int
        Window length, in points.

    Returns
    -------
    int
        ``ceil((n_points - window + 1) / MAX_WINDOWS)``, at least 1: the smallest step
        that leaves at most ``MAX_WINDOWS`` windows.

    Examples
    --------
    >>> default_window_step(100, 25), default_window_step(10_000, 2500)
    (1, 30)
    """
    stride_one_windows = max(1, n_points - window + 1)
    return max(1, -(-stride_one_windows // MAX_WINDOWS))


#: Most threads one run's analysis uses by default (``analyze --threads``): its surrogate
#: nulls, windows and calibration are computed in chunks of about 0.5 MiB, which gain
#: little from more threads than this.
MAX_ANALYSIS_THREADS: Final = 8


#: Layer signal values (layers x checkpoints) from which a run's analysis uses its threads;
#: below, one (the pool's start and hand-offs cost more than they save).
THREADS_FROM_VALUES: Final = 20_000


def available_cores() -> int:
    """Cores this process may use (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads of one ``dynatrain analyze``: the cores available, at most 8.

    :data:`MAX_ANALYSIS_THREADS` is the most; ``batch`` runs each analysis on one thread
    (its runs already share the cores).
    """
    return min(MAX_ANALYSIS_THREADS, available_cores())
