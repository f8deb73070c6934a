"""Pure numerical measures on arrays: DFA, Kuramoto synchrony, stability, surrogates.

Everything here takes NumPy arrays (time on the last axis, leading axes a
batch), returns NumPy arrays or small named tuples, and knows nothing of files,
printing or plotting.  Only NumPy is imported.
"""

from __future__ import annotations

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
    "STYLE_LABELS",
    "CausalConvergence",
    "Convergence",
    "ConvergenceNull",
    "DFAFit",
    "Kuramoto",
    "Style",
    "Windowed",
    "accuracy_plateau",
    "bootstrap_ci",
    "convergence_null",
    "convergence_window",
    "dfa",
    "dfa_fit",
    "dfa_scales",
    "find_convergence",
    "fluctuation_function",
    "hilbert_phase",
    "integration_null",
    "kuramoto",
    "kuramoto_null",
    "kuramoto_r",
    "min_points_for_dfa",
    "phase_randomized_surrogates",
    "rolling_volatility",
    "shuffle_surrogates",
    "spearman",
    "stability_index",
    "surrogate_p_value",
    "training_style",
    "window_count",
    "window_scales",
    "window_starts",
    "windowed_measures",
]
