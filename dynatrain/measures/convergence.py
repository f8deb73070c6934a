"""When the stability index converged: the causal rule, the whole-run rule, and their null.

The causal rule decides each window from the windows before it, so a monitor fed one
checkpoint at a time and an analysis of the finished run report the same windows.  The
null asks how often the same rule fires as early on time-shuffled copies of the run.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from dynatrain.defaults import (
    CONVERGENCE_RULES,
    DFA_ORDER,
    MIN_SCALE,
    N_SCALES,
    PHASE_EDGE,
    PHASE_EDGES,
    VOL_PATIENCE,
    VOL_THRESHOLD,
    VOL_WINDOW,
)
from dynatrain.measures._checks import (
    as_float_array,
    check_choice,
    check_fraction,
    check_generator,
    check_int,
    check_layers,
)
from dynatrain.measures._parallel import report
from dynatrain.measures.stability import (
    convergence_window,
    rolling_volatility,
    stability_index,
    windowed_measures,
)
from dynatrain.measures.surrogates import shuffle_surrogates

__all__ = [
    "CausalConvergence",
    "Convergence",
    "ConvergenceNull",
    "convergence_null",
    "find_convergence",
]

#: Surrogate elements (float64) shuffled and windowed at once (~8 MiB).
_NULL_CHUNK_ELEMENTS = 1 << 20
#: Surrogates in the first batch of a sequential null, per early surrogate that stops it.
_FIRST_BATCH = 2


class Convergence(NamedTuple):
    """Result of :func:`convergence`.

    Attributes
    ----------
    window : int or None
        Index of the window at which the stability index converged (the run's
        converged epoch is its end); None if it did not.
    decided_window : int or None
        Index of the window at which the patience ran out: when a live watcher knew.
    relapse : float or None
        Fraction of the windows after `decided_window` (with a volatility) whose
        volatility is back above the threshold; None without convergence or without
        windows after it.
    """

    window: int | None
    decided_window: int | None
    relapse: float | None


class ConvergenceNull(NamedTuple):
    """Result of :func:`convergence_null`.

    Attributes
    ----------
    p : float
        Monte-Carlo p-value of converging as early as the run did.
    drawn : int
        Surrogate runs drawn (fewer than asked when the sequential test stopped).
    as_early : int
        How many of them converged at or before the run's decided window.
    """

    p: float
    drawn: int
    as_early: int


class CausalConvergence:
    r"""The causal convergence rule, fed one window's volatility at a time.

    Parameters
    ----------
    threshold : float, optional
        Fraction of the running peak, in [0, 1].
    patience : int, optional
        Consecutive low windows required, at least 1.

    Notes
    -----
    Let :math:`P_w = \max_{k \le w} V_k` be the running peak of the volatility (NaN
    entries, e.g. the first ``vol_window - 1``, are skipped), first reached at window
    :math:`\pi_w`.  Window w is *low* if :math:`w > \pi_w` and
    :math:`V_w \le \text{threshold} \cdot P_w`.  The stability index has converged at
    the first window w that starts `patience` consecutive low windows; the decision falls
    on the last of them, ``w + patience - 1``, and is never taken back.

    One guard beyond that: the rule is *armed* only once the running peak has risen above
    the first volatility.  The first volatility is where measuring starts, not a peak: a
    run whose volatility is falling when it can first be measured (often the case, the
    first value needs ``window + vol_window - 1`` points) would otherwise "converge" a few
    windows later, wherever its real surge comes.  On the shipped runs that happened once
    (``mlp-digits-seed2``: at epoch 31, two epochs after the first volatility, against the
    surge that peaks at epoch 50).  A run whose volatility only ever falls never converges.

    After the decision every window with a volatility counts towards the relapse: it
    relapsed if its volatility is above ``threshold`` times the running peak.
    """

    def __init__(self, *, threshold: float = VOL_THRESHOLD, patience: int = VOL_PATIENCE):
        self.threshold = check_fraction(threshold, "threshold", low=0.0, high=1.0)
        self.patience = check_int(patience, "patience", minimum=1)
        self.windows = 0
        self.peak = math.nan
        self.peak_window: int | None = None
        self.armed = False
        self.low_run = 0
        self.window: int | None = None
        self.decided_window: int | None = None
        self.after = 0
        self.relapsed = 0

    def update(self, volatility: float) -> bool:
        """Take the next window's volatility; return True on the window that decides."""
        index = self.windows
        self.windows += 1
        if math.isnan(volatility):
            self.low_run = 0
            return False
        if self.peak_window is None:
            self.peak, self.peak_window = volatility, index
        elif volatility > self.peak:
            self.peak, self.peak_window, self.armed = volatility, index, True
        low = volatility <= self.threshold * self.peak
        if self.decided_window is not None:
            self.after += 1
            self.relapsed += not low
            return False
        self.low_run = self.low_run + 1 if self.armed and index > self.peak_window and low else 0
        if self.low_run == self.patience:
            self.decided_window = index
            self.window = index - self.patience + 1
            return True
        return False

    @property
    def relapse(self) -> float | None:
        """Fraction of the windows after the decision whose volatility relapsed."""
        if self.decided_window is None or self.after == 0:
            return None
        return self.relapsed / self.after

    def result(self) -> Convergence:
        """The state as a :class:`Convergence`."""
        return Convergence(self.window, self.decided_window, self.relapse)


def _whole_run(volatility: np.ndarray, threshold: float, patience: int) -> Convergence:
    """The version 0.1 rule: from the largest volatility of the whole run."""
    converged = convergence_window(volatility, threshold=threshold, patience=patience)
    if converged is None:
        return Convergence(None, None, None)
    decided = converged + patience - 1
    after = volatility[decided + 1 :]
    after = after[~np.isnan(after)]
    bound = threshold * np.nanmax(volatility)
    relapse = float(np.mean(after > bound)) if after.size else None
    return Convergence(converged, decided, relapse)


def find_convergence(
    volatility: Any,
    *,
    rule: str = "causal",
    threshold: float = VOL_THRESHOLD,
    patience: int = VOL_PATIENCE,
) -> Convergence:
    """Where the stability index converged, by the causal or the whole-run rule.

    Parameters
    ----------
    volatility : array_like, shape (n_windows,)
        Volatility per window, in window order (NaN where undefined).
    rule : {"causal", "whole-run"}, optional
        "causal": :class:`CausalConvergence` (each window decided from the windows
        before it).  "whole-run": :func:`~dynatrain.measures.stability.convergence_window`
        (from the largest volatility of the finished run), with the relapse counted
        against that peak.
    threshold : float, optional
        Fraction of the peak, in [0, 1].
    patience : int, optional
        Consecutive low windows required, at least 1.

    Returns
    -------
    Convergence
        ``(window, decided_window, relapse)``.

    Raises
    ------
    ValueError
        On infinite input, input that is not 1-D, or bad options.

    Examples
    --------
    >>> find_convergence([float("nan"), 0.2, 1.0, 0.5, 0.1, 0.1, 0.1, 0.3])
    Convergence(window=4, decided_window=6, relapse=1.0)
    """
    rule = check_choice(rule, "rule", CONVERGENCE_RULES)
    volatility = as_float_array(volatility, "volatility", allow_nan=True)
    if volatility.ndim != 1:
        raise ValueError(f"volatility must be 1-D, got shape {volatility.shape}")
    if rule == "whole-run":
        threshold = check_fraction(threshold, "threshold", low=0.0, high=1.0)
        patience = check_int(patience, "patience", minimum=1)
        return _whole_run(volatility, threshold, patience)
    state = CausalConvergence(threshold=threshold, patience=patience)
    for value in volatility.tolist():
        state.update(value)
    return state.result()


def convergence_null(
    x: Any,
    *,
    window: int,
    step: int,
    decided_window: int,
    n_surrogates: int,
    rng: np.random.Generator,
    rule: str = "causal",
    threshold: float = VOL_THRESHOLD,
    patience: int = VOL_PATIENCE,
    vol_window: int = VOL_WINDOW,
    min_scale: int = MIN_SCALE,
    n_scales: int = N_SCALES,
    order: int = DFA_ORDER,
    edge: str = PHASE_EDGE,
    stop_after: int | None = None,
) -> ConvergenceNull:
    r"""How often time-shuffled copies of a run converge as early as the run did.

    Parameters
    ----------
    x : array_like, shape (n_layers, n_points)
        The analysed layer signals the decision was taken on: for the causal rule the
        points up to the end of the decided window (so that the p-value is known when
        the decision is, and a live monitor gets the same one); for the whole-run rule
        the whole run.
    window, step : int
        The windows, as for the run.
    decided_window : int
        The run's decided window; a surrogate counts if its own decision falls on a
        window at or before it.
    n_surrogates : int
        Most surrogate runs to draw, at least 1.
    rng : numpy.random.Generator
        Source of the shuffles (drawn one surrogate after the other, so the result does
        not depend on how many are computed at once).
    rule, threshold, patience, vol_window : optional
        The convergence rule and its settings, as for the run.
    min_scale, n_scales, order : int, optional
        DFA settings of the windows.
    edge : {"ar", "none"}, optional
        Edge handling of the Hilbert phases in the windows, as for the run.
    stop_after : int or None, optional
        Stop once this many surrogates have converged as early (the sequential test of
        Besag and Clifford; the analysis uses
        :func:`dynatrain.defaults.convergence_null_stop`); None draws all `n_surrogates`.

    Returns
    -------
    ConvergenceNull
        ``(p, drawn, as_early)``.

    Raises
    ------
    ValueError
        On non-finite input, fewer than 2 layers, or bad options.
    TypeError
        If `rng` is not a :class:`numpy.random.Generator`.

    Notes
    -----
    Each surrogate shuffles every layer in time independently (the null of
    integration: no temporal structure, the same values), goes through the same
    windows, stability index, volatility and rule as the run.  With g of the N
    surrogates converging as early,

    .. math:: p = \frac{1 + g}{N + 1}.

    With ``stop_after = h`` the surrogates are drawn one at a time and drawing stops at
    the l-th if it is the h-th to converge as early; then :math:`p = h / l`
    (Besag & Clifford 1991), a valid p-value that never drops below
    :math:`h / N`: runs whose convergence the null reaches easily cost about
    :math:`h / p` surrogates instead of N.

    References
    ----------
    .. [1] J. Besag and P. Clifford, "Sequential Monte Carlo p-values",
       Biometrika 78, 301 (1991).
    .. [2] J. Theiler et al., "Testing for nonlinearity in time series: the method of
       surrogate data", Physica D 58, 77 (1992).
    """
    check_generator(rng)
    x = as_float_array(x)
    check_layers(x)
    if x.ndim != 2:
        raise ValueError(f"x must be shaped (n_layers, n_points), got shape {x.shape}")
    rule = check_choice(rule, "rule", CONVERGENCE_RULES)
    edge = check_choice(edge, "edge", PHASE_EDGES)
    n_surrogates = check_int(n_surrogates, "n_surrogates", minimum=1)
    decided_window = check_int(decided_window, "decided_window", minimum=0)
    if stop_after is not None:
        stop_after = check_int(stop_after, "stop_after", minimum=1)
    per_chunk = max(1, _NULL_CHUNK_ELEMENTS // x.size)
    # With a stop, the first batches are small and double: a run whose surrogates converge
    # as early stops after about stop_after / p of them, which would otherwise be a full
    # batch of n_surrogates windowed passes.
    batch = per_chunk if stop_after is None else min(per_chunk, _FIRST_BATCH * stop_after)
    drawn = as_early = 0
    report("convergence null", 0, n_surrogates)
    while drawn < n_surrogates:
        size = min(batch, n_surrogates - drawn)
        batch = min(per_chunk, 2 * batch)
        shuffled = shuffle_surrogates(x, size, rng=rng)
        windowed = windowed_measures(
            shuffled,
            window,
            step=step,
            min_scale=min_scale,
            n_scales=n_scales,
            order=order,
            edge=edge,
        )
        dsi = stability_index(windowed.integration, windowed.metastability)
        volatility = rolling_volatility(dsi, vol_window)
        for series in volatility:
            drawn += 1
            decided = find_convergence(
                series, rule=rule, threshold=threshold, patience=patience
            ).decided_window
            as_early += decided is not None and decided <= decided_window
            if stop_after is not None and as_early == stop_after:
                report("convergence null", drawn, n_surrogates)
                return ConvergenceNull(as_early / drawn, drawn, as_early)
        report("convergence null", drawn, n_surrogates)
    return ConvergenceNull((1 + as_early) / (n_surrogates + 1), n_surrogates, as_early)
