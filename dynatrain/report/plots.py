"""The five figures of one analysis, drawn from its result data alone.

Every function here takes the dictionary of
:meth:`dynatrain.analysis.AnalysisResult.to_dict` with ``detail=True`` (NumPy
arrays and NaN), or the same object read back from ``dynatrain analyze --format
json --detail`` (lists and ``null``), and draws it. Nothing is measured here: every
number shown comes from the result, so a figure redrawn from a saved JSON file is
the figure ``dynatrain analyze --plot`` drew. The input is never modified and
global matplotlib state is left alone.

>>> from dynatrain.analysis import analyze
>>> from dynatrain.report.plots import plot_analysis
>>> result = analyze("sample_data/mlp-digits-seed1.h5").to_dict(detail=True)  # doctest: +SKIP
>>> plot_analysis(result, "figures", fmt="svg")  # doctest: +SKIP
['figures/signals.svg', 'figures/dfa.svg', ...]

This module imports matplotlib: import it only to plot.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FormatStrFormatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from dynatrain.errors import InputError
from dynatrain.report._format import p_value_text
from dynatrain.report._mpl import (
    OKABE_ITO,
    PLOT_FORMATS,
    color_cycle,
    new_figure,
    plain_text,
    plot_style,
    save_figure,
)
from dynatrain.report.convergence_text import (
    convergence_headline,
    convergence_p_text,
    relapse_text,
)
from dynatrain.report.plot_input import check_plot_input

__all__ = [
    "FIGURES",
    "plot_analysis",
    "plot_dfa",
    "plot_kuramoto",
    "plot_signals",
    "plot_stability",
    "plot_style_map",
    "run_label",
]

#: Diverging map for z-scores, white at 0; ColorBrewer's RdBu is colour-blind safe.
SIGNALS_CMAP = "RdBu_r"
#: z-scores beyond this many standard deviations share the end colours.
SIGNALS_ZLIM = 3.0
#: Sequential, perceptually uniform and colour-blind safe, for epochs and layer order:
#: viridis without its palest yellows, which vanish on white.
SEQUENTIAL_CMAP = ListedColormap(
    colormaps["viridis"](np.linspace(0.0, 0.88, 256)), name="viridis_dark"
)
#: Up to this many layers get their own Okabe-Ito colour and legend entry; more get
#: a colour map and a colour bar (a legend of 50 entries helps nobody).
MAX_LEGEND_LAYERS = len(OKABE_ITO)
#: Up to this many layers get every name as a tick label in the heatmap.
MAX_LAYER_TICKS = 30

#: Slopes drawn for reference in the DFA figure, with their line styles.
REFERENCE_SLOPES = ((0.5, (0, (5, 3))), (1.0, (0, (2, 2))), (1.5, (0, (6, 2, 1, 2))))
DFA_MEANING = {0.5: "white noise", 1.0: "1/f noise", 1.5: "random walk"}

_BLUE, _ORANGE, _GREEN, _VERMILLION, _PURPLE, _SKY, _ = OKABE_ITO
_GREY = "0.45"
_CONVERGED_COLOR = _VERMILLION
_PLATEAU_COLOR = _GREEN

_REDUCTIONS = {
    "mean": "mean activation",
    "rms": "RMS activation",
    "mean-abs": "mean |activation|",
    "std": "activation SD",
    "signal": "stored signal",
}


# -- small readers: data conversion only ---------------------------------------------------------


def _array(values: Any) -> np.ndarray:
    """A float array from a list (``None`` -> NaN) or an array (never a view to write to)."""
    array = np.array(values, dtype=float)
    array.flags.writeable = False
    return array


def run_label(result: Mapping[str, Any]) -> str:
    """The run's name for titles: its ``run_id``, else the archive's file name (no mathtext)."""
    return plain_text(result.get("run_id") or os.path.basename(str(result["run"]).rstrip("/\\")))


def _series_label(result: Mapping[str, Any]) -> str:
    """What the analysed series is, in words (from ``settings``)."""
    settings = result["settings"]
    signal = _REDUCTIONS.get(settings["reduce"], settings["reduce"])
    return f"change in {signal} per epoch" if settings["transform"] == "change" else signal


def _layer_names(result: Mapping[str, Any]) -> list[str]:
    return [plain_text(layer["name"]) for layer in result["layers"]]


def _excluded_note(ax: Axes, result: Mapping[str, Any]) -> None:
    """Name the layers left out of the analysis under the axes, if any."""
    excluded = result.get("excluded_layers") or []
    if excluded:
        text = plain_text(
            "not analysed: " + "; ".join(f"{e['name']} ({e['reason']})" for e in excluded)
        )
        # Under the x label, as part of the axes, so the layout makes room for it.
        ax.annotate(
            text,
            (0.5, 0),
            xycoords=ax.xaxis.label,
            xytext=(0, -6),
            textcoords="offset points",
            fontsize=8,
            color=_GREY,
            ha="center",
            va="top",
        )


def _layer_colors(n_layers: int) -> tuple[list[Any], ScalarMappable | None]:
    """One colour per layer: Okabe-Ito for a few, else a colour map (and its mappable)."""
    if n_layers <= MAX_LEGEND_LAYERS:
        return list(color_cycle(n_layers)), None
    mappable = ScalarMappable(Normalize(0, n_layers - 1), SEQUENTIAL_CMAP)
    return [mappable.to_rgba(i) for i in range(n_layers)], mappable


def _layer_index_colorbar(ax: Axes, mappable: ScalarMappable, names: Sequence[str]) -> None:
    """A colour bar for layer colours, labelled by layer name from input to output."""
    colorbar = ax.figure.colorbar(mappable, ax=ax, pad=0.02)
    colorbar.set_label("layer (input side = 0)")
    colorbar.ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    colorbar.ax.yaxis.set_major_formatter(_index_formatter(names))
    colorbar.ax.tick_params(labelsize=8)


def _index_formatter(names: Sequence[str]) -> FuncFormatter:
    """Tick labels that show the layer name at each integer position."""

    def name_at(position: float, _tick: int | None = None) -> str:
        index = round(position)
        return names[index] if abs(position - index) < 1e-9 and 0 <= index < len(names) else ""

    return FuncFormatter(name_at)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None or value != value else format(value, spec)


def _p_text(result: Mapping[str, Any], key: str, sep: str = ", ") -> str:
    text = p_value_text(result.get(key), result["settings"].get("surrogates"))
    return text and sep + text


# -- the figures -------------------------------------------------------------------------------


def plot_signals(ax: Axes, result: Mapping[str, Any]) -> None:
    """Heatmap of the z-scored analysed series, layers (input side on top) x epochs.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; a colour bar is added next to it.
    result : mapping
        An analysis result with ``detail`` (``detail.zscored``, shape
        ``(n_layers, n_points)``, and ``timeseries.epoch``, ``(n_points,)``).
    """
    names = _layer_names(result)
    zscored = _array(result["detail"]["zscored"])
    epoch = _array(result["timeseries"]["epoch"])
    mesh = ax.pcolormesh(
        epoch,
        np.arange(len(names)),
        zscored,
        shading="nearest",
        cmap=SIGNALS_CMAP,
        vmin=-SIGNALS_ZLIM,
        vmax=SIGNALS_ZLIM,
        rasterized=True,
    )
    ax.grid(False)
    ax.set_ylim(len(names) - 0.5, -0.5)  # input side on top
    if len(names) <= MAX_LAYER_TICKS:
        ax.set_yticks(np.arange(len(names)), names)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=MAX_LAYER_TICKS // 2, integer=True))
        ax.yaxis.set_major_formatter(_index_formatter(names))
    ax.tick_params(axis="y", labelsize=8 if len(names) > 12 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("layer (input side on top)")
    ax.set_title(f"{run_label(result)}: {_series_label(result)}, z-scored per layer")
    colorbar = ax.figure.colorbar(mesh, ax=ax, extend="both", pad=0.02)
    colorbar.set_label("z-score (SD from the layer's mean)")
    _excluded_note(ax, result)


def plot_dfa(ax: Axes, result: Mapping[str, Any]) -> None:
    """DFA fluctuation function F(s) per layer with its fitted power law, on log-log axes.

    Points are F(s); each line is exp(intercept) * s ** alpha, the least-squares fit
    the analysis made. Grey dashed lines show the slopes of white noise (0.5), 1/f
    noise (1) and a random walk (1.5) for reference.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    result : mapping
        An analysis result with ``detail.dfa`` (``scales`` ``(n_scales,)``,
        ``fluctuations`` ``(n_layers, n_scales)``, ``intercept`` ``(n_layers,)``)
        and ``layers[*].alpha``.
    """
    names = _layer_names(result)
    dfa = result["detail"]["dfa"]
    scales = _array(dfa["scales"])
    fluctuations = _array(dfa["fluctuations"])
    intercepts = _array(dfa["intercept"])
    colors, mappable = _layer_colors(len(names))
    few = mappable is None
    # Handles and labels are kept explicitly: matplotlib leaves a label that starts
    # with "_" out of a collected legend, and a layer may well be called "_proj".
    handles, labels = [], []
    for name, layer, color, points, intercept in zip(
        names, result["layers"], colors, fluctuations, intercepts, strict=True
    ):
        alpha = layer["alpha"]
        ax.plot(scales, points, "o", color=color, markersize=3.5 if few else 2, alpha=0.8)
        (line,) = ax.plot(
            scales,
            np.exp(intercept) * scales**alpha,
            "-",
            color=color,
            linewidth=1.3 if few else 0.7,
        )
        handles.append(line)
        labels.append(f"{name}  α = {_fmt(alpha, '.2f')}")  # noqa: RUF001
    # Reference slopes start just below the lowest first point (placement only).
    anchor = np.nanmin(fluctuations[:, 0]) / 1.6
    references, reference_labels = [], []
    for slope, style in REFERENCE_SLOPES:
        (line,) = ax.plot(
            scales,
            anchor * (scales / scales[0]) ** slope,
            color=_GREY,
            linestyle=style,
            linewidth=0.9,
            zorder=1.5,
        )
        references.append(line)
        reference_labels.append(f"slope {slope:g} ({DFA_MEANING[slope]})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Plain numbers at round values (4, 6, 8, 12 ... and 0.2, 0.3, 0.5, 1 ...): the
    # ranges are often under a decade, where powers of ten alone leave no label.
    ax.xaxis.set_major_locator(LogLocator(base=2, subs=(1.0, 1.5)))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("scale s (points of the analysed series)")
    ax.set_ylabel("fluctuation F(s)")
    ci = result.get("integration_ci95")
    ci_text = f", 95% CI [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    ax.set_title(
        f"{run_label(result)}: detrended fluctuation analysis per layer\n"
        f"integration (mean α) = {_fmt(result['integration'], '.2f')}{ci_text}"  # noqa: RUF001
        f"{_p_text(result, 'integration_p')}",
    )
    if mappable is None:  # beside the axes: a flat layer can run through any corner
        ax.legend(
            handles + references,
            labels + reference_labels,
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    else:
        ax.legend(references, reference_labels, fontsize=8, loc="upper left")
        _layer_index_colorbar(ax, mappable, names)
    _excluded_note(ax, result)


def plot_kuramoto(ax: Axes, result: Mapping[str, Any]) -> None:
    """Kuramoto order parameter R(t) over epochs, synchrony and metastability marked.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    result : mapping
        An analysis result: ``timeseries.epoch`` and ``timeseries.kuramoto_r``
        ``(n_points,)``, ``synchrony`` (mean of R) and ``metastability`` (SD of R).
    """
    epoch = _array(result["timeseries"]["epoch"])
    kuramoto_r = _array(result["timeseries"]["kuramoto_r"])
    synchrony, metastability = result["synchrony"], result["metastability"]
    metastability_label = "± metastability\n(SD of R) = " + _fmt(metastability)
    synchrony_label = "synchrony\n(mean R) = " + _fmt(synchrony)
    ax.axhspan(
        synchrony - metastability,
        synchrony + metastability,
        color=_ORANGE,
        alpha=0.18,
        linewidth=0,
        label=metastability_label + _p_text(result, "metastability_p", sep="\n"),
    )
    ax.axhline(
        synchrony,
        color=_ORANGE,
        linestyle="--",
        linewidth=1.3,
        label=synchrony_label + _p_text(result, "synchrony_p", sep="\n"),
    )
    ax.plot(epoch, kuramoto_r, color=_BLUE, linewidth=1.4, label="R(t)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("order parameter R (0 = no alignment, 1 = full)")
    ax.set_title(f"{run_label(result)}: phase synchrony across {result['layers_analysed']} layers")
    handles, labels = ax.get_legend_handles_labels()
    # Beside the axes: R(t) can fill any part of [0, 1], so no place inside is free.
    ax.legend(
        handles[::-1],
        labels[::-1],
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize=9,
        labelspacing=1.2,
    )


def plot_stability(axes: Sequence[Axes], result: Mapping[str, Any]) -> None:
    """The windowed stability index, its volatility and the accuracy, sharing epochs.

    Vertical lines mark the epoch at which the stability index converged, the epoch the
    rule decided it (dotted) and the accuracy plateau; the volatility panel shows the
    peak the rule measures from (the running peak, or the whole run's with
    ``--convergence-rule whole-run``) and the threshold under it.  The title states the
    convergence with its surrogate p-value, and a lead over the plateau only when the
    convergence is distinguishable from its surrogates.

    Parameters
    ----------
    axes : sequence of matplotlib.axes.Axes
        Three stacked panels (stability index, volatility, accuracy), or two when
        the result has no accuracy metric.
    result : mapping
        An analysis result: ``timeseries.window_end_epoch``,
        ``timeseries.stability_index`` and ``timeseries.volatility``
        ``(n_windows,)``, ``convergence``, and ``detail.metric``.
    """
    timeseries, convergence = result["timeseries"], result["convergence"]
    settings = result["settings"]
    metric = None if convergence["metric"] is None else plain_text(convergence["metric"])
    window_end = _array(timeseries["window_end_epoch"])
    dsi_ax, volatility_ax = axes[0], axes[1]
    dsi_ax.plot(window_end, _array(timeseries["stability_index"]), color=_BLUE, linewidth=1.4)
    dsi_ax.set_ylabel("stability index\nI × (1 − M)")  # noqa: RUF001
    volatility = _array(timeseries["volatility"])
    volatility_ax.plot(window_end, volatility, color=_PURPLE, linewidth=1.4)
    volatility_ax.set_ylabel(f"volatility\n(SD over {settings['vol_window']} windows)")
    volatility_ax.set_ylim(bottom=0)
    _convergence_rule(volatility_ax, window_end, volatility, settings)
    if metric is not None:
        metric_ax = axes[2]
        detail_metric = result["detail"]["metric"]
        metric_ax.plot(
            _array(detail_metric["epoch"]),
            _array(detail_metric["values"]),
            color=_SKY,
            linewidth=1.4,
            marker="o",
            markersize=2,
        )
        metric_ax.set_ylabel(metric)
    about = ", ".join(
        text
        for text in (convergence_p_text(convergence, settings), relapse_text(convergence))
        if text
    )
    converged_label = "stability index converged" + (f" ({about})" if about else "")
    markers = (
        (convergence["epoch"], converged_label, _CONVERGED_COLOR, "-"),
        (convergence.get("decided_epoch"), "convergence decided", _CONVERGED_COLOR, ":"),
        (convergence["accuracy_plateau_epoch"], f"{metric} plateau", _PLATEAU_COLOR, "--"),
    )
    for epoch, what, color, style in markers:
        if epoch is None:
            continue
        for ax in axes:
            ax.axvline(epoch, color=color, linestyle=style, linewidth=1.3)
        axes[0].plot([], [], color=color, linestyle=style, label=f"{what}: epoch {epoch:g}")
    # One legend for every panel, in rows above them: it hides no data.
    handles, labels = axes[0].get_legend_handles_labels()
    more_handles, more_labels = volatility_ax.get_legend_handles_labels()
    if handles or more_handles:
        axes[0].legend(
            handles + more_handles,
            labels + more_labels,
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            ncols=2,
            fontsize=9,
        )
    step = settings.get("window_step", 1)
    every = "" if step == 1 else f", one every {step} checkpoints"
    axes[-1].set_xlabel(
        f"epoch (windowed measures dated at the end of their {settings['window']}-point"
        f" window{every})"
    )
    headline = textwrap.fill(convergence_headline(convergence, settings, metric), 80)
    axes[0].figure.suptitle(f"{run_label(result)}: stability index and convergence\n{headline}")


def _convergence_rule(
    ax: Axes, window_end: np.ndarray, volatility: np.ndarray, settings: Mapping[str, Any]
) -> None:
    """Draw the peak the convergence rule measures from, and the threshold under it."""
    if not np.any(np.isfinite(volatility)) or not np.nanmax(volatility) > 0:
        return
    threshold = settings["vol_threshold"]
    if settings.get("convergence_rule", "whole-run") == "causal":
        # The running peak over the windows so far (what a live watcher compares with).
        running = np.fmax.accumulate(np.where(np.isnan(volatility), -np.inf, volatility))
        running[np.isinf(running)] = np.nan
        ax.plot(window_end, running, color="0.55", linewidth=1.0, label="running peak")
        ax.plot(
            window_end,
            threshold * running,
            color="0.35",
            linestyle=":",
            linewidth=1.2,
            label=f"convergence threshold: {threshold:g} × running peak",  # noqa: RUF001
        )
        return
    peak = int(np.nanargmax(volatility))
    ax.plot(
        window_end[peak],
        volatility[peak],
        "o",
        color=_PURPLE,
        markersize=5,
        label="peak volatility",
    )
    ax.hlines(
        threshold * volatility[peak],
        window_end[peak],
        window_end[-1],
        color="0.35",
        linestyle=":",
        linewidth=1.2,
        label=f"convergence threshold: {threshold:g} × peak",  # noqa: RUF001
    )


def plot_style_map(ax: Axes, result: Mapping[str, Any]) -> None:
    """Windowed integration against metastability, coloured by epoch: the training style.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw; a colour bar is added next to it.
    result : mapping
        An analysis result: ``timeseries.integration``, ``timeseries.metastability``
        and ``timeseries.window_end_epoch`` ``(n_windows,)``, and ``style``.
    """
    timeseries = result["timeseries"]
    integration = _array(timeseries["integration"])
    metastability = _array(timeseries["metastability"])
    window_end = _array(timeseries["window_end_epoch"])
    ax.plot(integration, metastability, color=_GREY, linewidth=0.5, alpha=0.45, zorder=1)
    points = ax.scatter(
        integration,
        metastability,
        c=window_end,
        cmap=SEQUENTIAL_CMAP,
        s=18,
        zorder=2,
        edgecolors="none",
    )
    colorbar = ax.figure.colorbar(points, ax=ax, pad=0.02)
    colorbar.set_label("epoch (end of window)")
    ax.set_xlabel("integration I (mean DFA α in the window)")  # noqa: RUF001
    ax.set_ylabel("metastability M (SD of R in the window)")
    style = result["style"]
    style_text = (
        f"style {style['label']} (Spearman ρ = {_fmt(style['spearman'], '.2f')})"  # noqa: RUF001
        if style
        else "no training style (too few windows)"
    )
    ax.set_title(
        f"{run_label(result)}: integration vs metastability in "
        f"{result['settings']['window']}-point windows\n{style_text}"
    )


# -- all figures --------------------------------------------------------------------------------


def _drawn(
    figure: Figure, draw: Callable[..., None], axes: Any, result: Mapping[str, Any]
) -> Figure:
    """``draw(axes, result)`` on ``figure``; close the figure if drawing fails."""
    try:
        draw(axes, result)
    except BaseException:
        plt.close(figure)
        raise
    return figure


def _signals_figure(result: Mapping[str, Any]) -> Figure:
    height = float(np.clip(1.6 + 0.2 * len(result["layers"]), 3.4, 9.0))
    figure, ax = new_figure(figsize=(7.5, height), layout="constrained")
    return _drawn(figure, plot_signals, ax, result)


def _single_figure(
    draw: Callable[[Axes, Mapping[str, Any]], None], figsize: tuple[float, float]
) -> Callable[[Mapping[str, Any]], Figure]:
    def make(result: Mapping[str, Any]) -> Figure:
        figure, ax = new_figure(figsize=figsize, layout="constrained")
        return _drawn(figure, draw, ax, result)

    return make


def _stability_figure(result: Mapping[str, Any]) -> Figure:
    n_panels = 2 if result["convergence"]["metric"] is None else 3
    figure, axes = new_figure(
        n_panels, 1, figsize=(7.5, 1.9 * n_panels + 1.2), sharex=True, layout="constrained"
    )
    return _drawn(figure, plot_stability, list(axes), result)


#: Figure names (file stems) and how each is made, in the order they are written.
FIGURES: dict[str, Callable[[Mapping[str, Any]], Figure]] = {
    "signals": _signals_figure,
    "dfa": _single_figure(plot_dfa, (8.0, 4.8)),
    "kuramoto": _single_figure(plot_kuramoto, (8.0, 4.0)),
    "stability": _stability_figure,
    "style": _single_figure(plot_style_map, (6.5, 5.0)),
}


def plot_analysis(
    result: Mapping[str, Any], directory: str | os.PathLike[str], *, fmt: str = "png"
) -> list[str]:
    """Write the five figures of one analysis to ``directory`` as ``<name>.<fmt>``.

    Parameters
    ----------
    result : mapping
        :meth:`dynatrain.analysis.AnalysisResult.to_dict` with ``detail=True``, or
        the JSON of ``dynatrain analyze --format json --detail`` read back. Not
        modified.
    directory : str or path
        Output directory, created if needed; existing figures are replaced.
    fmt : {"png", "svg", "pdf"}
        File format. The same result gives the same bytes.

    Returns
    -------
    list of str
        The paths written, in the order of :data:`FIGURES`.

    Raises
    ------
    InputError
        If ``result`` has no ``detail``, is not an analysis result, or a field the
        figures draw is missing or malformed (:func:`check_plot_input`).
    ValueError
        If ``fmt`` is not a known format.
    """
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"invalid plot format {fmt!r}: use one of {', '.join(PLOT_FORMATS)}")
    check_plot_input(result)  # a damaged JSON file: one line naming the bad field
    paths = []
    # Absurd but finite values (alpha = 1e300) overflow on the way to the axes: drawn
    # as they come out, not warned about on stderr.
    with plot_style(), np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for name, make in FIGURES.items():
            try:
                figure = make(result)
            except (KeyError, TypeError, IndexError) as exc:
                raise InputError(f"malformed analysis result ({name} figure): {exc!r}") from exc
            paths.append(save_figure(figure, directory, name, fmt))
    return paths
