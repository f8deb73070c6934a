"""Every default setting of dynatrain, in one place.

The CLI options, the library functions and the ``settings`` block of the JSON
output all take their defaults from here.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CI_LEVEL",
    "DFA_ORDER",
    "MAX_SURROGATES",
    "METRIC_CANDIDATES",
    "MIN_N_SCALES",
    "MIN_SCALE",
    "N_SCALES",
    "PLATEAU_SMOOTHING",
    "PLATEAU_TOLERANCE",
    "REDUCE",
    "REDUCTIONS",
    "RELIABLE_POINTS",
    "SEED",
    "STYLE_THRESHOLD",
    "SURROGATES",
    "TRANSFORM",
    "TRANSFORMS",
    "UNEVEN_STEP_TOLERANCE",
    "VOL_PATIENCE",
    "VOL_THRESHOLD",
    "VOL_WINDOW",
    "WINDOW_FRACTION",
    "WINDOW_MIN",
    "default_max_scale",
    "default_window",
]

# --- signals -------------------------------------------------------------------------------
#: Reductions of an activation tensor to one number per checkpoint (``--reduce``).
REDUCTIONS: Final = ("mean", "rms", "mean-abs", "std", "signal")
REDUCE: Final = "mean"
#: Transforms applied to the layer signals before every measure (``--transform``).
TRANSFORMS: Final = ("change", "level")
TRANSFORM: Final = "change"

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

# --- windows, stability index, convergence -------------------------------------------------
WINDOW_MIN: Final = 16
WINDOW_FRACTION: Final = 4  # window = max(WINDOW_MIN, T // WINDOW_FRACTION)
VOL_WINDOW: Final = 5
VOL_THRESHOLD: Final = 0.25
VOL_PATIENCE: Final = 3
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
BOOTSTRAP_RESAMPLES: Final = 2000
CI_LEVEL: Final = 0.95
SEED: Final = 0


def default_max_scale(n_points: int) -> int:
    """Largest DFA scale used when none is given: ``floor(n_points / 4)``.

    Parameters
    ----------
    n_points : int
        Length of the analysed series (checkpoints after the transform).
    """
    return n_points // 4


def default_window(n_points: int) -> int:
    """Sliding-window length in checkpoints: ``max(16, n_points // 4)``.

    Parameters
    ----------
    n_points : int
        Length of the analysed series (checkpoints after the transform).
    """
    return max(WINDOW_MIN, n_points // WINDOW_FRACTION)
