"""Pure numerical measures on arrays: DFA, Kuramoto synchrony, stability, surrogates.

Also the statistics of short series: the finite-size correction of the DFA
exponent (:mod:`~dynatrain.measures.finite_size`), confidence intervals over
layers (:mod:`~dynatrain.measures.intervals`) and the surrogate test of the
training style (:mod:`~dynatrain.measures.style`).

Everything here takes NumPy arrays (time on the last axis, leading axes a
batch), returns NumPy arrays or small named tuples, and knows nothing of files,
printing or plotting.  Only NumPy is imported.  The costly ones compute their chunks
on several threads inside ``with threads(n):``, with the same results as on one.
"""

from __future__ import annotations

from dynatrain.measures._parallel import ProgressCallback, reporting, threads
from dynatrain.measures.convergence import (
    CausalConvergence,
    Convergence,
    ConvergenceNull,
    convergence_null,
    find_convergence,
)
from dynatrain.measures.dfa import (
    DFAFit,
    dfa,
    dfa_fit,
    dfa_scales,
    fluctuation_function,
    min_points_for_dfa,
)
from dynatrain.measures.finite_size import (
    CALIBRATION_HURST,
    BiasCurve,
    corrected_alpha,
    dfa_bias_curve,
    expected_squared_fluctuation,
)
from dynatrain.measures.intervals import student_t_quantile, t_interval
from dynatrain.measures.kuramoto import Kuramoto, hilbert_phase, kuramoto, kuramoto_r
from dynatrain.measures.stability import (
    STYLE_LABELS,
    Style,
    Windowed,
    accuracy_plateau,
    convergence_window,
    rolling_volatility,
    spearman,
    stability_index,
    training_style,
    window_scales,
    windowed_measures,
)
from dynatrain.measures.style import StyleTest, rank_surrogates, style_test
from dynatrain.measures.surrogates import (
    ALTERNATIVES,
    bootstrap_ci,
    integration_null,
    kuramoto_null,
    phase_randomized_surrogates,
    shuffle_surrogates,
    surrogate_p_value,
)
from dynatrain.measures.windows import window_count, window_starts

__all__ = [
    "ALTERNATIVES",
    "CALIBRATION_HURST",
    "STYLE_LABELS",
    "BiasCurve",
    "CausalConvergence",
    "Convergence",
    "ConvergenceNull",
    "DFAFit",
    "Kuramoto",
    "ProgressCallback",
    "Style",
    "StyleTest",
    "Windowed",
    "accuracy_plateau",
    "bootstrap_ci",
    "convergence_null",
    "convergence_window",
    "corrected_alpha",
    "dfa",
    "dfa_bias_curve",
    "dfa_fit",
    "dfa_scales",
    "expected_squared_fluctuation",
    "find_convergence",
    "fluctuation_function",
    "hilbert_phase",
    "integration_null",
    "kuramoto",
    "kuramoto_null",
    "kuramoto_r",
    "min_points_for_dfa",
    "phase_randomized_surrogates",
    "rank_surrogates",
    "reporting",
    "rolling_volatility",
    "shuffle_surrogates",
    "spearman",
    "stability_index",
    "student_t_quantile",
    "style_test",
    "surrogate_p_value",
    "t_interval",
    "threads",
    "training_style",
    "window_count",
    "window_scales",
    "window_starts",
    "windowed_measures",
]
