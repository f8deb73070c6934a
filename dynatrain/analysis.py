"""One run, analysed: compose the measures into an :class:`AnalysisResult`.

>>> from dynatrain.analysis import Settings, analyze
>>> result = analyze("sample_data/mlp-digits-seed1.h5", Settings(surrogates=99))  # doctest: +SKIP
>>> result.integration, result.convergence_epoch  # doctest: +SKIP

The result is plain data: :meth:`AnalysisResult.to_dict` gives the JSON of the
output contract, and the plots are drawn from that dictionary alone.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynatrain import defaults
from dynatrain import measures as m
from dynatrain._plain import json_ready
from dynatrain.archive.reader import Archive, open_archive
from dynatrain.errors import InputError
from dynatrain.measures import ProgressCallback
from dynatrain.signals import (
    LayerSignals,
    finite_prefix_length,
    flush_tiny,
    parse_epoch_range,
    read_signals,
    usable_signal,
)

__all__ = [
    "AnalysisResult",
    "Settings",
    "analyze",
    "analyze_signals",
    "convergence_generator",
    "style_generator",
    "transform_signals",
    "uncertainty_generators",
]


@dataclass(frozen=True)
class Settings:
    """Every option of an analysis; defaults from :mod:`dynatrain.defaults`.

    ``max_scale``, ``window`` and ``window_step`` default to ``None``: they are
    resolved from the length of the analysed series (``T // 4``, ``max(16, T // 4)``
    and :func:`dynatrain.defaults.default_window_step`), and the resolved values are
    what :meth:`AnalysisResult.to_dict` reports.  ``convergence_surrogates`` ``None``
    means ``min(surrogates, defaults.CONVERGENCE_SURROGATES)``.
    """

    reduce: str = defaults.REDUCE
    transform: str = defaults.TRANSFORM
    dfa_order: int = defaults.DFA_ORDER
    min_scale: int = defaults.MIN_SCALE
    max_scale: int | None = None
    n_scales: int = defaults.N_SCALES
    window: int | None = None
    window_step: int | None = None
    vol_window: int = defaults.VOL_WINDOW
    vol_threshold: float = defaults.VOL_THRESHOLD
    vol_patience: int = defaults.VOL_PATIENCE
    convergence_rule: str = defaults.CONVERGENCE_RULE
    metric: str | None = None
    plateau_tolerance: float = defaults.PLATEAU_TOLERANCE
    plateau_smoothing: int = defaults.PLATEAU_SMOOTHING
    style_threshold: float = defaults.STYLE_THRESHOLD
    phase_edge: str = defaults.PHASE_EDGE
    significance_level: float = defaults.SIGNIFICANCE_LEVEL
    surrogates: int = defaults.SURROGATES
    convergence_surrogates: int | None = None
    seed: int = defaults.SEED
    strict: bool = False
    layers: tuple[str, ...] | None = None
    epochs: str | None = None

    def __post_init__(self) -> None:
        if self.reduce not in defaults.REDUCTIONS:
            raise InputError(
                f"invalid reduce {self.reduce!r}: use one of {', '.join(defaults.REDUCTIONS)}"
            )
        if self.transform not in defaults.TRANSFORMS:
            raise InputError(
                f"invalid transform {self.transform!r}: use one of {', '.join(defaults.TRANSFORMS)}"
            )
        if self.phase_edge not in defaults.PHASE_EDGES:
            raise InputError(
                f"invalid phase_edge {self.phase_edge!r}: use one of"
                f" {', '.join(defaults.PHASE_EDGES)}"
            )
        level = self.significance_level
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
            raise InputError(
                f"significance_level (--significance-level) must be a number strictly between"
                f" 0 and 1, got {level!r}"
            )
        if not 0 <= self.surrogates <= defaults.MAX_SURROGATES:
            raise InputError(
                f"--surrogates must be between 0 and {defaults.MAX_SURROGATES},"
                f" got {self.surrogates}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise InputError(f"--seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise InputError(f"--seed must be >= 0, got {self.seed}")
        if self.window is not None and self.window < 1:
            raise InputError(f"window must be >= 1, got {self.window}")
        if self.window_step is not None and self.window_step < 1:
            raise InputError(f"window_step must be >= 1, got {self.window_step}")
        if self.convergence_rule not in defaults.CONVERGENCE_RULES:
            raise InputError(
                f"invalid convergence_rule {self.convergence_rule!r}: use one of "
                + ", ".join(defaults.CONVERGENCE_RULES)
            )
        if self.convergence_surrogates is not None and self.convergence_surrogates < 0:
            raise InputError(
                f"convergence_surrogates must be >= 0, got {self.convergence_surrogates}"
            )
        _check_settings(self)
        parse_epoch_range(self.epochs)  # fail early on a malformed range

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def _check_settings(settings: Settings) -> None:
    """Refuse, on construction, every value an analysis would fail on after the DFA work.

    Each message is one line naming the setting (and its command-line option) and the value.
    ``layers`` given as one string becomes a one-name tuple; ``epochs`` as ``(start, end)``
    becomes ``"start:end"`` (``None`` for an open end).
    """

    def integer(name: str, minimum: int, maximum: int | None = None, *, none: bool = False) -> None:
        value = getattr(settings, name)
        if none and value is None:
            return
        in_range = (
            isinstance(value, numbers.Integral)
            and not isinstance(value, bool)
            and minimum <= int(value) <= (maximum if maximum is not None else int(value))
        )
        if not in_range:
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise InputError(f"{_setting_name(name)} must be an integer {bound}, got {value!r}")

    def fraction(name: str, low: float, high: float) -> None:
        value = getattr(settings, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not low <= float(value) <= high
        ):
            raise InputError(
                f"{_setting_name(name)} must be a number between {low:g} and {high:g},"
                f" got {value!r}"
            )

    integer("dfa_order", 1, 3)
    integer("min_scale", 1)
    if settings.min_scale < settings.dfa_order + 2:  # a segment must outlast its fitted line
        raise InputError(
            f"min_scale (--min-scale) must be at least dfa_order + 2 = {settings.dfa_order + 2}"
            f" at --dfa-order {settings.dfa_order} (a segment needs more points than its"
            f" detrending polynomial has coefficients), got {settings.min_scale}"
        )
    integer("n_scales", defaults.MIN_N_SCALES)
    # At least MIN_N_SCALES distinct integer scales from min_scale to max_scale.
    integer("max_scale", settings.min_scale + defaults.MIN_N_SCALES - 1, none=True)
    integer("vol_window", 2)
    integer("vol_patience", 1)
    integer("plateau_smoothing", 1)
    fraction("vol_threshold", 0.0, 1.0)
    fraction("plateau_tolerance", 0.0, 1.0)
    fraction("style_threshold", 0.0, 1.0)
    if not isinstance(settings.strict, bool):
        raise InputError(f"strict must be True or False, got {settings.strict!r}")
    if settings.metric is not None and not isinstance(settings.metric, str):
        raise InputError(f"metric (--metric) must be a metric name, got {settings.metric!r}")
    layers = settings.layers
    if isinstance(layers, str):
        layers = (layers,)
    if layers is not None:
        layers = tuple(layers)
        if not all(isinstance(pattern, str) for pattern in layers):
            raise InputError(f"layers (--layers) must be layer names or globs, got {layers!r}")
        object.__setattr__(settings, "layers", layers or None)
    epochs = settings.epochs
    if isinstance(epochs, (tuple, list)) and len(epochs) == 2:
        ends = ["" if end is None else f"{end!r}".strip("'") for end in epochs]
        object.__setattr__(settings, "epochs", ":".join(ends))
    elif epochs is not None and not isinstance(epochs, str):
        raise InputError(f"epochs (--epochs) must be 'START:END' or (start, end), got {epochs!r}")


def _setting_name(name: str) -> str:
    """``vol_window (--vol-window)`` for a setting that is a command-line option."""
    option = "--" + name.replace("_", "-")
    return f"{name} ({option})" if name in _CLI_SETTINGS else name


#: Settings that are also options of ``dynatrain analyze``.
_CLI_SETTINGS = frozenset(
    {
        "reduce", "transform", "dfa_order", "min_scale", "max_scale", "n_scales", "window",
        "window_step", "vol_window", "vol_threshold", "vol_patience", "convergence_rule",
        "phase_edge", "significance_level", "metric", "surrogates", "convergence_surrogates",
        "seed", "strict", "layers", "epochs",
    }
)  # fmt: skip


@dataclass(repr=False)
class AnalysisResult:
    """Everything measured on one run (plain data; see :meth:`to_dict`).

    Series are NumPy arrays; scalars are floats (NaN where not computable).
    ``zscored`` and the ``dfa_*`` arrays hold the analysed series and the DFA
    fluctuation functions, so that every plot can be drawn from the result alone.

    In a REPL the result prints as a few lines; in Jupyter, as a small table.
    :meth:`to_dict` gives the JSON of ``dynatrain analyze --format json``;
    :meth:`to_frame`, :meth:`layers_frame` and :meth:`windows_frame` give pandas
    data frames (``pip install 'dynatrain[pandas]'``).

    The ``*_corrected`` exponents are the raw ones corrected for the finite-size
    bias of DFA at the run's own length and scales
    (:func:`~dynatrain.measures.corrected_alpha`): comparable between runs of
    different lengths.  ``style.p`` is NaN when the style was not tested
    (``surrogates=0``): the label then comes from the threshold on rho alone.
    """

    run: str
    run_id: str | None
    metadata: dict[str, Any]
    settings: dict[str, Any]
    checkpoints: int
    epochs: tuple[float, float]
    layer_names: tuple[str, ...]
    excluded_layers: list[dict[str, str]]
    layer_alpha: np.ndarray
    layer_alpha_corrected: np.ndarray
    layer_mean: np.ndarray
    layer_std: np.ndarray
    integration: float
    integration_corrected: float
    integration_global: float
    integration_global_corrected: float
    integration_ci95: tuple[float, float] | None
    integration_corrected_ci95: tuple[float, float] | None
    integration_p: float | None
    synchrony: float
    synchrony_p: float | None
    metastability: float
    metastability_p: float | None
    stability_index: float
    style: m.StyleTest | None
    convergence_epoch: float | None
    decided_epoch: float | None
    convergence_p: float | None
    convergence_relapse: float | None
    convergence_surrogates_drawn: int | None
    plateau_epoch: float | None
    metric: str | None
    epoch: np.ndarray
    kuramoto_r: np.ndarray
    window_end_epoch: np.ndarray
    window_integration: np.ndarray
    window_metastability: np.ndarray
    window_stability_index: np.ndarray
    volatility: np.ndarray
    zscored: np.ndarray
    dfa_scales: np.ndarray
    dfa_fluctuations: np.ndarray
    dfa_intercept: np.ndarray
    metric_epoch: np.ndarray
    metric_values: np.ndarray | None
    warnings: list[str] = field(default_factory=list)

    @property
    def lead_epochs(self) -> float | None:
        """Plateau epoch minus the epoch the convergence was decided (positive: early)."""
        if self.decided_epoch is None or self.plateau_epoch is None:
            return None
        return self.plateau_epoch - self.decided_epoch

    def __repr__(self) -> str:
        from dynatrain._repr import result_text

        return result_text(self.to_dict(json_safe=False))

    def _repr_html_(self) -> str:
        from dynatrain._repr import result_html

        return result_html(self.to_dict(json_safe=False))

    def to_frame(self) -> Any:
        """One row with the columns of ``dynatrain analyze --format csv`` (a pandas DataFrame)."""
        from dynatrain.frames import runs_frame

        return runs_frame([self], error_column=False)

    def layers_frame(self) -> Any:
        """One row per layer (a pandas DataFrame indexed by layer name).

        ``alpha``, the signal's ``mean`` and ``std``, and ``excluded`` (why a layer was left
        out, ``None`` for the analysed layers, which come first).
        """
        from dynatrain.frames import layers_frame

        return layers_frame(self)

    def windows_frame(self) -> Any:
        """One row per sliding window (a pandas DataFrame indexed by the epoch ending it).

        The windowed integration, metastability, stability index and volatility.
        """
        from dynatrain.frames import windows_frame

        return windows_frame(self)

    def to_dict(self, *, detail: bool = False, json_safe: bool = True) -> dict[str, Any]:
        """The JSON object of the output contract.

        Parameters
        ----------
        detail : bool
            Also include ``detail``: the z-scored analysed series, the DFA
            fluctuation functions with the intercepts of their fitted lines (ln F at
            s = 1) and the accuracy curve, which the plots need.
        json_safe : bool
            Plain Python data, as ``dynatrain analyze --format json`` prints it: lists,
            and ``None`` for NaN, so ``json.dumps(result.to_dict())`` works. False: NumPy
            arrays and NaN as they are (faster, for computing on).
        """
        style = None
        if self.style is not None:
            p = float(self.style.p)
            style = {
                "label": self.style.label,
                "spearman": float(self.style.spearman),
                "p": None if math.isnan(p) else p,
            }
        out: dict[str, Any] = {
            "run": self.run,
            "run_id": self.run_id,
            "metadata": self.metadata,
            "format_version": 1,
            "checkpoints": self.checkpoints,
            "epochs": list(self.epochs),
            "settings": self.settings,
            "layers_analysed": len(self.layer_names),
            "excluded_layers": self.excluded_layers,
            "integration": self.integration,
            "integration_corrected": self.integration_corrected,
            "integration_global": self.integration_global,
            "integration_global_corrected": self.integration_global_corrected,
            "integration_ci95": _interval(self.integration_ci95),
            "integration_corrected_ci95": _interval(self.integration_corrected_ci95),
            "integration_p": self.integration_p,
            "synchrony": self.synchrony,
            "synchrony_p": self.synchrony_p,
            "metastability": self.metastability,
            "metastability_p": self.metastability_p,
            "stability_index": self.stability_index,
            "style": style,
            "convergence": {
                "epoch": self.convergence_epoch,
                "decided_epoch": self.decided_epoch,
                "p": self.convergence_p,
                "relapse": self.convergence_relapse,
                "surrogates_drawn": self.convergence_surrogates_drawn,
                "accuracy_plateau_epoch": self.plateau_epoch,
                "lead_epochs": self.lead_epochs,
                "metric": self.metric,
            },
            "layers": [
                {
                    "name": name,
                    "alpha": float(alpha),
                    "alpha_corrected": float(corrected),
                    "mean": float(mean),
                    "std": float(std),
                }
                for name, alpha, corrected, mean, std in zip(
                    self.layer_names,
                    self.layer_alpha,
                    self.layer_alpha_corrected,
                    self.layer_mean,
                    self.layer_std,
                    strict=True,
                )
            ],
            "timeseries": {
                "epoch": self.epoch,
                "kuramoto_r": self.kuramoto_r,
                "window_end_epoch": self.window_end_epoch,
                "integration": self.window_integration,
                "metastability": self.window_metastability,
                "stability_index": self.window_stability_index,
                "volatility": self.volatility,
            },
            "warnings": list(self.warnings),
        }
        if detail:
            out["detail"] = {
                "zscored": self.zscored,
                "dfa": {
                    "scales": self.dfa_scales,
                    "fluctuations": self.dfa_fluctuations,
                    "intercept": self.dfa_intercept,
                },
                "metric": {"epoch": self.metric_epoch, "values": self.metric_values},
            }
        return json_ready(out) if json_safe else out


def analyze(
    source: str | os.PathLike[str] | Archive | LayerSignals,
    settings: Settings | None = None,
    *,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> AnalysisResult:
    """Analyse one run: read (or take) its layer signals and measure them.

    Parameters
    ----------
    source : path, Archive or LayerSignals
        An archive, or layer signals already in memory (then ``reduce``,
        ``layers`` and ``epochs`` of the settings were applied by whoever made them).
    settings : Settings, optional
    threads : int, optional
        Threads that compute the surrogate nulls, the windows and the finite-size
        calibration (:func:`dynatrain.measures.threads`).  The result is the same, to
        the bit, for any number; 1 (the default here) leaves the cores to the caller,
        as ``batch`` wants (``dynatrain analyze`` takes every core, up to
        :data:`~dynatrain.defaults.MAX_ANALYSIS_THREADS`).
    progress : callable, optional
        ``progress(stage, done, total)``, told how many surrogates of each null are
        done (:func:`dynatrain.measures.reporting`); the result does not change.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    ArchiveError
        If the archive cannot be read.
    InputError
        If the data cannot be analysed with these settings (too few checkpoints or
        layers, a missing metric, non-finite values with ``strict``).
    """
    settings = settings or Settings()
    if isinstance(source, LayerSignals):
        signals = source
    elif isinstance(source, Archive):
        signals = _read(source, settings)
    else:
        with open_archive(source) as archive:
            signals = _read(archive, settings)
    return analyze_signals(signals, settings, threads=threads, progress=progress)


def _read(archive: Archive, settings: Settings) -> LayerSignals:
    """The layer signals ``settings`` select.

    An ``--epochs`` range that leaves too few checkpoints is refused, naming the archive's
    own range of epochs.
    """
    signals = read_signals(
        archive,
        reduce=settings.reduce,
        layers=settings.layers,
        epochs=parse_epoch_range(settings.epochs),
    )
    needed = _checkpoints_needed(archive.path, settings)
    if settings.epochs is not None and len(signals.epochs) < needed:
        epochs = archive.epochs
        span = (
            f"epochs {epochs[0]:g} to {epochs[-1]:g}" if len(epochs) else "no complete checkpoint"
        )
        raise InputError(
            f"{archive.path}: --epochs {settings.epochs} selects {len(signals.epochs)}"
            f" checkpoint(s) of the archive's {len(epochs)} ({span}); the analysis needs at"
            f" least {needed}"
        )
    return signals


def transform_signals(
    values: np.ndarray, epochs: np.ndarray, transform: str
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``--transform``: ``(series, epochs)`` to analyse.

    ``change``: (x(t) - x(t-1)) / (epoch(t) - epoch(t-1)), dated at epoch(t);
    ``level``: x(t) itself.
    """
    if transform == "level":
        return values, epochs
    return np.diff(values, axis=-1) / np.diff(epochs), epochs[1:]


def analyze_signals(
    signals: LayerSignals,
    settings: Settings | None = None,
    *,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> AnalysisResult:
    """Analyse layer signals already in memory (see :func:`analyze`)."""
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise InputError(f"threads must be an integer >= 1, got {threads!r}")
    # A small run's chunks are too small for a pool to pay (a sample run took 1.35x the
    # time on two threads): one thread below THREADS_FROM_VALUES values.
    if signals.values.size < defaults.THREADS_FROM_VALUES:
        threads = 1
    with m.threads(threads), m.reporting(progress):
        return _analyze_signals(signals, settings or Settings())


def _analyze_signals(signals: LayerSignals, settings: Settings) -> AnalysisResult:
    warnings: list[str] = []
    run = signals.path
    excluded = [{"name": e.name, "reason": e.reason} for e in signals.excluded]

    # -- the data: finite prefix, transform, dead layers ----------------------------------------
    values, epochs = flush_tiny(signals.values), signals.epochs
    metrics = signals.metrics
    n_finite = finite_prefix_length(values)
    cut = ""  # why the analysed checkpoints stop early, for a too-short message
    if n_finite < values.shape[1]:
        bad_layers = [
            name
            for name, row in zip(signals.layer_names, values, strict=True)
            if not usable_signal(row[n_finite])
        ]
        message = (
            f"{_unusable_phrase(values[:, n_finite])} from epoch {epochs[n_finite]:g} (checkpoint"
            f" {signals.first_checkpoint + n_finite}) in layer(s) {', '.join(bad_layers)}"
        )
        if settings.strict:
            raise InputError(f"{run}: {message} (--strict)")
        if n_finite == 0:
            raise InputError(
                f"{run}: {message}: no usable checkpoint before it; the analysis needs at"
                f" least {_checkpoints_needed(run, settings)} checkpoints"
            )
        warnings.append(f"{message}: analysing the {n_finite} checkpoints before it")
        cut = f" (the checkpoints before the {message})"
        values, epochs = values[:, :n_finite], epochs[:n_finite]
        metrics = {name: series[:n_finite] for name, series in metrics.items()}
    if len(epochs) == 0:
        raise InputError(
            f"{run}: no complete checkpoint to analyse; the analysis needs at least"
            f" {_checkpoints_needed(run, settings)} checkpoints"
        )
    # Too short is said before anything else: with 1 checkpoint every layer is "constant".
    _check_length(run, len(epochs), settings, cut)

    all_series, series_epochs = transform_signals(values, epochs, settings.transform)
    varying = (
        np.ptp(all_series, axis=1) > 0 if all_series.shape[1] else np.zeros(len(all_series), bool)
    )
    names = [name for name, keep in zip(signals.layer_names, varying, strict=True) if keep]
    for name, keep in zip(signals.layer_names, varying, strict=True):
        if not keep:
            excluded.append({"name": name, "reason": "constant over the analysed checkpoints"})
    series, levels = all_series[varying], values[varying]
    if len(names) < 2:
        raise InputError(
            f"{run}: {len(names)} layer(s) with varying signals; the analysis needs at least 2"
            + (f" (excluded: {', '.join(e['name'] for e in excluded)})" if excluded else "")
        )
    n_points = series.shape[1]
    max_scale = settings.max_scale or defaults.default_max_scale(n_points)
    window = settings.window or defaults.default_window(n_points)
    if window > n_points:
        raise InputError(f"{run}: --window {window} is longer than the {n_points} analysed points")
    step = settings.window_step or defaults.default_window_step(n_points, window)
    dfa_options = {
        "min_scale": settings.min_scale,
        "n_scales": settings.n_scales,
        "order": settings.dfa_order,
    }

    warnings += _grid_warnings(epochs, n_points)

    # -- run-level measures ---------------------------------------------------------------------
    try:
        fit = m.dfa_fit(series, max_scale=max_scale, **dfa_options)
    except ValueError as exc:  # bad option combinations the measures refuse
        raise InputError(f"{run}: {exc}") from exc
    # A layer whose alpha is undefined (F(s) = 0: a straight line left by the detrending)
    # is excluded as a constant one is: it would make integration and the surrogates NaN.
    defined = np.isfinite(fit.alpha)
    if not defined.all():
        for name in np.asarray(names)[~defined]:
            excluded.append(
                {
                    "name": str(name),
                    "reason": "DFA exponent undefined (no fluctuation left after detrending"
                    f" of order {settings.dfa_order})",
                }
            )
        names = [name for name, keep in zip(names, defined, strict=True) if keep]
        series, levels = series[defined], levels[defined]
        fit = fit._replace(
            alpha=fit.alpha[defined],
            intercept=fit.intercept[defined],
            fluctuations=fit.fluctuations[defined],
        )
        if len(names) < 2:
            raise InputError(
                f"{run}: {len(names)} layer(s) with a defined DFA exponent; the analysis needs"
                f" at least 2 (excluded: {', '.join(e['name'] for e in excluded)})"
            )
    try:
        zscored = (series - series.mean(axis=1, keepdims=True)) / series.std(axis=1, keepdims=True)
        integration_global = float(m.dfa(zscored.mean(axis=0), max_scale=max_scale, **dfa_options))
        sync = m.kuramoto(series, edge=settings.phase_edge)
        # Every layer goes through the windows, constant ones too (a layer constant in a
        # window has no exponent and no phase there): the windows see what a live
        # monitor, which cannot know that a layer will stay constant, sees.
        windows = _windows(all_series, series_epochs, window, step, settings)
        # The finite-size correction at this run's length and scales (cached per length).
        alpha_corrected, global_corrected = (
            m.corrected_alpha(alpha, n_points, max_scale=max_scale, **dfa_options)
            for alpha in (fit.alpha, integration_global)
        )
    except ValueError as exc:  # bad option combinations the measures refuse
        raise InputError(f"{run}: {exc}") from exc
    integration = float(np.mean(fit.alpha))
    integration_corrected = float(np.mean(alpha_corrected))
    metastability = float(sync.metastability)

    metric, metric_values = _accuracy_metric(run, metrics, settings.metric, warnings)
    plateau = None
    if metric_values is not None:
        plateau = m.accuracy_plateau(
            metric_values,
            smoothing=settings.plateau_smoothing,
            tolerance=settings.plateau_tolerance,
        )
    style = _style(windows, settings, warnings)

    # -- uncertainty ----------------------------------------------------------------------------
    # Intervals over layers: Student t, which covers what it claims with 4-50 layers and
    # needs no random numbers (the percentile bootstrap covers 80-85% with 4-5 layers).
    integration_ci95 = _t_interval(fit.alpha)
    integration_corrected_ci95 = _t_interval(alpha_corrected)
    integration_p = synchrony_p = metastability_p = None
    if settings.surrogates > 0:
        rng_shuffle, rng_phase, _ = uncertainty_generators(settings.seed)
        null_integration = m.integration_null(
            series, settings.surrogates, rng=rng_shuffle, max_scale=max_scale, **dfa_options
        )
        null_sync = m.kuramoto_null(
            series, settings.surrogates, rng=rng_phase, edge=settings.phase_edge
        )
        integration_p = float(m.surrogate_p_value(integration, null_integration))
        synchrony_p = float(m.surrogate_p_value(sync.synchrony, null_sync.synchrony))
        metastability_p = float(m.surrogate_p_value(metastability, null_sync.metastability))
    decided = windows.convergence.decided_window
    known = all_series
    if decided is not None and settings.convergence_rule == "causal":
        known = all_series[:, : int(windows.starts[decided]) + window]
    null = convergence_significance(
        known, window=window, step=step, decided_window=decided, settings=settings
    )

    resolved = {
        "reduce": signals.reduce,
        "transform": settings.transform,
        "dfa_order": settings.dfa_order,
        "min_scale": settings.min_scale,
        "max_scale": int(max_scale),
        "n_scales": settings.n_scales,
        "window": int(window),
        "window_step": int(step),
        "vol_window": settings.vol_window,
        "vol_threshold": settings.vol_threshold,
        "vol_patience": settings.vol_patience,
        "convergence_rule": settings.convergence_rule,
        "metric": metric,
        "plateau_tolerance": settings.plateau_tolerance,
        "plateau_smoothing": settings.plateau_smoothing,
        "style_threshold": settings.style_threshold,
        "phase_edge": settings.phase_edge,
        "significance_level": settings.significance_level,
        "surrogates": settings.surrogates,
        "convergence_surrogates": _convergence_surrogates(settings),
        "convergence_null_stop": defaults.convergence_null_stop(
            _convergence_surrogates(settings), settings.significance_level
        ),
        "seed": settings.seed,
        "layers": list(settings.layers) if settings.layers else None,
        "epochs": settings.epochs,
    }
    run_id = signals.metadata.get("run_id")
    converged = windows.convergence
    return AnalysisResult(
        run=run,
        run_id=None if run_id is None else str(run_id),
        metadata=signals.metadata,
        settings=resolved,
        checkpoints=len(epochs),
        epochs=(float(epochs[0]), float(epochs[-1])),
        layer_names=tuple(names),
        excluded_layers=excluded,
        layer_alpha=fit.alpha,
        layer_alpha_corrected=alpha_corrected,
        layer_mean=levels.mean(axis=1),
        layer_std=levels.std(axis=1),
        integration=integration,
        integration_corrected=integration_corrected,
        integration_global=integration_global,
        integration_global_corrected=float(global_corrected),
        integration_ci95=integration_ci95,
        integration_corrected_ci95=integration_corrected_ci95,
        integration_p=integration_p,
        synchrony=float(sync.synchrony),
        synchrony_p=synchrony_p,
        metastability=metastability,
        metastability_p=metastability_p,
        stability_index=float(m.stability_index(integration, metastability)),
        style=style,
        convergence_epoch=windows.epoch_of(converged.window),
        decided_epoch=windows.epoch_of(converged.decided_window),
        convergence_p=None if null is None else null.p,
        convergence_relapse=converged.relapse,
        convergence_surrogates_drawn=None if null is None else null.drawn,
        plateau_epoch=None if plateau is None else float(epochs[plateau]),
        metric=metric,
        epoch=series_epochs,
        kuramoto_r=sync.r,
        window_end_epoch=windows.end_epoch,
        window_integration=windows.integration,
        window_metastability=windows.metastability,
        window_stability_index=windows.stability_index,
        volatility=windows.volatility,
        zscored=zscored,
        dfa_scales=fit.scales,
        dfa_fluctuations=fit.fluctuations,
        dfa_intercept=fit.intercept,
        metric_epoch=epochs,
        metric_values=metric_values,
        warnings=warnings,
    )


def _grid_warnings(epochs: np.ndarray, n_points: int) -> list[str]:
    """Warnings about the time grid: too few points, or unevenly spaced checkpoints.

    Every measure takes consecutive points as equally far apart, and DFA on short series
    reads noisy exponents (:data:`~dynatrain.defaults.RELIABLE_POINTS`).
    """
    warnings = []
    if n_points < defaults.RELIABLE_POINTS:
        warnings.append(
            f"only {n_points} analysed points: below {defaults.RELIABLE_POINTS}, one layer's DFA"
            " exponent varies by more than 0.1 (SD) from series to series (0.4-0.6 at 24"
            " points), so read integration, its CI and p-value and the style label as rough"
        )
    steps = np.diff(epochs)
    if len(steps) > 1:
        typical = float(np.median(steps))
        if float(np.max(np.abs(steps - typical))) > defaults.UNEVEN_STEP_TOLERANCE * typical:
            warnings.append(
                f"checkpoints are unevenly spaced in epoch (steps from {np.min(steps):g} to"
                f" {np.max(steps):g} epochs): every measure takes consecutive checkpoints as"
                " equally far apart; record at a fixed interval, or select an evenly spaced"
                " range with --epochs"
            )
    return warnings


@dataclass(frozen=True)
class Windows:
    """The windowed measures of a run and where its stability index converged.

    Attributes
    ----------
    window, step : int
        Window length and the points between window starts.
    starts : ndarray of int64, shape (n_windows,)
        First analysed point of each window.
    end_epoch : ndarray, shape (n_windows,)
        Epoch of each window's last point.
    integration, metastability, stability_index, volatility : ndarray, shape (n_windows,)
        The windowed series (NaN where undefined).
    convergence : dynatrain.measures.Convergence
        Window indices of the convergence and of its decision, and the relapse.
    """

    window: int
    step: int
    starts: np.ndarray
    end_epoch: np.ndarray
    integration: np.ndarray
    metastability: np.ndarray
    stability_index: np.ndarray
    volatility: np.ndarray
    convergence: m.Convergence

    def epoch_of(self, index: int | None) -> float | None:
        """The end epoch of window `index` (None stays None)."""
        return None if index is None else float(self.end_epoch[index])


def _windows(
    series: np.ndarray, epochs: np.ndarray, window: int, step: int, settings: Settings
) -> Windows:
    """The windowed measures, the stability index, its volatility and its convergence."""
    windowed = m.windowed_measures(
        series,
        window,
        step=step,
        min_scale=settings.min_scale,
        n_scales=settings.n_scales,
        order=settings.dfa_order,
        edge=settings.phase_edge,
    )
    dsi = m.stability_index(windowed.integration, windowed.metastability)
    volatility = m.rolling_volatility(dsi, settings.vol_window)
    starts = m.window_starts(series.shape[1], window, step)
    converged = m.find_convergence(
        volatility,
        rule=settings.convergence_rule,
        threshold=settings.vol_threshold,
        patience=settings.vol_patience,
    )
    return Windows(
        window=window,
        step=step,
        starts=starts,
        end_epoch=epochs[starts + window - 1],
        integration=windowed.integration,
        metastability=windowed.metastability,
        stability_index=dsi,
        volatility=volatility,
        convergence=converged,
    )


def _interval(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


def _t_interval(alpha: np.ndarray) -> tuple[float, float] | None:
    """The t interval of the mean of per-layer exponents; None if one is undefined (NaN)."""
    if not np.all(np.isfinite(alpha)):
        return None
    lo, hi = m.t_interval(alpha, level=defaults.CI_LEVEL)
    return float(lo), float(hi)


def _style(windows: Windows, settings: Settings, warnings: list[str]) -> m.StyleTest | None:
    """The training style, tested against its surrogates when there are any.

    With ``surrogates=0`` the label comes from the threshold on rho alone (p NaN), as in
    version 0.1, and a label other than "independent" comes with a warning that it is
    untested.
    """
    if settings.surrogates > 0:
        return m.style_test(
            windows.integration,
            windows.metastability,
            settings.surrogates,
            rng=style_generator(settings.seed),
            threshold=settings.style_threshold,
            level=settings.significance_level,
        )
    style = m.training_style(
        windows.integration, windows.metastability, threshold=settings.style_threshold
    )
    if style is None:
        return None
    if style.label != m.STYLE_LABELS[2]:
        warnings.append(
            f"training style {style.label!r} from |rho| >= {settings.style_threshold:g} alone,"
            " untested (no surrogates): two unrelated windowed series reach it often (a third"
            " of white-noise runs)"
        )
    return m.StyleTest(style.label, style.spearman, math.nan)


def _convergence_surrogates(settings: Settings) -> int:
    """Most surrogate runs for the convergence p-value."""
    if settings.convergence_surrogates is None:
        return min(settings.surrogates, defaults.CONVERGENCE_SURROGATES)
    return settings.convergence_surrogates


def convergence_significance(
    known: np.ndarray, *, window: int, step: int, decided_window: int | None, settings: Settings
) -> m.ConvergenceNull | None:
    """The convergence p-value, from the data the decision was taken on.

    Parameters
    ----------
    known : ndarray, shape (n_layers, n_points)
        Every analysed layer signal, as the windows saw them: with the causal rule the
        points up to the end of the decided window, with the whole-run rule all of them.
    window, step : int
        The run's windows.
    decided_window : int or None
        Where the run's convergence was decided (None: it did not converge).
    settings : Settings

    Returns
    -------
    dynatrain.measures.ConvergenceNull or None
        None when the stability index did not converge or no surrogates are asked for.

    Notes
    -----
    With the causal rule the p-value is fixed when the decision is taken: a live
    monitor that decides at that checkpoint calls this function on the same points and
    gets the same p-value.
    """
    n_surrogates = _convergence_surrogates(settings)
    if decided_window is None or n_surrogates == 0:
        return None
    return m.convergence_null(
        known,
        window=window,
        step=step,
        decided_window=decided_window,
        n_surrogates=n_surrogates,
        rng=convergence_generator(settings.seed),
        rule=settings.convergence_rule,
        threshold=settings.vol_threshold,
        patience=settings.vol_patience,
        vol_window=settings.vol_window,
        min_scale=settings.min_scale,
        n_scales=settings.n_scales,
        order=settings.dfa_order,
        edge=settings.phase_edge,
        stop_after=defaults.convergence_null_stop(n_surrogates, settings.significance_level),
    )


def uncertainty_generators(
    seed: int,
) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """The independent generators of one analysis's uncertainty, from ``--seed``.

    Returns
    -------
    (shuffle, phase, bootstrap) : tuple of numpy.random.Generator
        For the time-shuffled surrogates (integration), the phase-randomised
        surrogates (synchrony, metastability) and a bootstrap over layers (the
        analysis no longer draws one: its interval is the t interval; the child
        stays, so that the later children keep their places).
    """
    shuffle, phase, bootstrap = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    return shuffle, phase, bootstrap


def style_generator(seed: int) -> np.random.Generator:
    """The generator of the style test's surrogates, from ``--seed``.

    The fifth child of ``SeedSequence(seed)``: independent of the others, which keep
    their draws.
    """
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])


def _unusable_phrase(column: np.ndarray) -> str:
    """What is wrong with the first unusable checkpoint: non-finite, or huge values."""
    if np.all(np.isfinite(column)):
        return f"values beyond ±{defaults.HUGE_SIGNAL:g} (a diverging run)"
    return "non-finite values"


def convergence_generator(seed: int) -> np.random.Generator:
    """The generator of the convergence null's shuffles, from ``--seed``.

    The fourth child of ``SeedSequence(seed)``: independent of the three of
    :func:`uncertainty_generators`, which keep their draws.
    """
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def _points_needed(run: str, settings: Settings) -> int:
    """Analysed points the DFA scales of ``settings`` need."""
    try:
        return m.min_points_for_dfa(
            min_scale=settings.min_scale,
            max_scale=settings.max_scale,
            n_scales=settings.n_scales,
            order=settings.dfa_order,
        )
    except ValueError as exc:
        raise InputError(f"{run}: {exc}") from exc


def _checkpoints_needed(run: str, settings: Settings) -> int:
    """Checkpoints the DFA scales of ``settings`` need (one more with ``change``)."""
    return _points_needed(run, settings) + (1 if settings.transform == "change" else 0)


def _check_length(run: str, n_checkpoints: int, settings: Settings, cut: str = "") -> None:
    """Refuse a run too short for the DFA scales, saying how many checkpoints it needs.

    ``cut`` says why the analysed checkpoints end early (a non-finite value), if they do.
    """
    needed = _points_needed(run, settings)
    extra = 1 if settings.transform == "change" else 0
    n_points = max(n_checkpoints - extra, 0)
    if n_points < needed:
        raise InputError(
            f"{run}: {n_checkpoints} checkpoint(s){cut} give {n_points} analysed points"
            f" (--transform {settings.transform}); DFA with scales from {settings.min_scale}"
            f" needs at least {needed} points, i.e. {needed + extra} checkpoints"
        )


def _accuracy_metric(
    run: str, metrics: dict[str, np.ndarray], requested: str | None, warnings: list[str]
) -> tuple[str | None, np.ndarray | None]:
    """The accuracy metric to find the plateau on: the requested one, or the first found."""
    if requested is not None:
        if requested not in metrics:
            available = ", ".join(metrics) or "none"
            raise InputError(f"{run}: no metric {requested!r} (metrics: {available})")
        return requested, _finite_metric(requested, metrics[requested], warnings)
    for name in defaults.METRIC_CANDIDATES:
        if name in metrics:
            return name, _finite_metric(name, metrics[name], warnings)
    warnings.append(
        "no accuracy metric (looked for "
        + ", ".join(defaults.METRIC_CANDIDATES)
        + "; choose one with --metric): no accuracy plateau"
    )
    return None, None


def _finite_metric(name: str, values: np.ndarray, warnings: list[str]) -> np.ndarray:
    """The metric with infinite values treated as not recorded (NaN), said in a warning."""
    infinite = np.isinf(values)
    if not infinite.any():
        return values
    warnings.append(
        f"metric {name!r} is infinite at {int(infinite.sum())} checkpoint(s):"
        " treated as not recorded there"
    )
    return np.where(infinite, np.nan, values)
