"""Figures of a batch: a measure by group, integration vs metastability, lead times.

Every function draws from the run records and their :class:`~dynatrain.batch.GroupSummary`
alone (no analysis is redone); ``draw_*`` functions take an axes, and
:func:`plot_batch` saves the three figures. Imports matplotlib: import it only to plot.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dynatrain._format import format_number
from dynatrain.batch import GroupSummary, measure_value, measure_values
from dynatrain.report._mpl import color_cycle, new_figure, plain_text, save_figure
from dynatrain.report.convergence_text import distinguishable, significance_level

__all__ = [
    "BATCH_FIGURES",
    "draw_integration_vs_metastability",
    "draw_measure_by_group",
    "measures_figure",
    "plot_batch",
    "untangle_tick_labels",
]

#: File names (without suffix) of the figures :func:`plot_batch` writes.
BATCH_FIGURES = ("measures_by_group", "integration_vs_metastability", "lead_by_group")

#: Measures shown in ``measures_by_group``, with their axis labels.
_BY_GROUP = {
    "integration_corrected": "integration, corrected (mean DFA $\\alpha$)",
    "metastability": "metastability (std of R)",
    "stability_index": "stability index",
}

Records = Sequence[Mapping[str, Any]]

#: Width of one group's place on a group axis, in inches (the axes grow with the groups).
_INCHES_PER_GROUP = 1.0


def draw_measure_by_group(
    ax: Any,
    records: Records,
    summary: GroupSummary,
    measure: str,
    *,
    label: str | None = None,
    hollow: Callable[[Mapping[str, Any]], bool] | None = None,
) -> None:
    """One box per group (median, quartiles, 1.5 IQR whiskers) with every run as a dot.

    Parameters
    ----------
    ax : matplotlib Axes
    records : sequence of dict
        Run records, indexed by the groups' ``members``.
    summary : GroupSummary
    measure : str
        Dotted path of the measure in a record.
    label : str, optional
        Axis label (default: ``measure``).
    hollow : callable, optional
        Runs for which it returns True are drawn as open circles (e.g. a lead whose
        convergence does not beat its surrogates).
    """
    colors = color_cycle(len(summary.groups))
    for position, (group, color) in enumerate(zip(summary.groups, colors, strict=True)):
        values = measure_values(records, group.members, measure)
        if len(values) == 0:
            continue
        ax.boxplot(
            values,
            positions=[position],
            widths=0.5,
            showfliers=False,  # every run is drawn as a dot anyway
            medianprops={"color": color},
        )
        # Deterministic spread, so the same batch gives the same image.
        offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else [0.0]
        x = position + np.asarray(offsets)
        runs = [records[i] for i in group.members if measure_value(records[i], measure) is not None]
        open_ = np.array([hollow is not None and hollow(run) for run in runs], dtype=bool)
        ax.scatter(x[~open_], values[~open_], s=18, color=color, alpha=0.8, zorder=3)
        if open_.any():
            ax.scatter(x[open_], values[open_], s=18, facecolors="none", edgecolors=color, zorder=3)
    # One line per grouping key ("cnn / digits-hard" -> "cnn\ndigits-hard").
    labels = [plain_text(group.label).replace(" / ", "\n") for group in summary.groups]
    ax.set_xticks(range(len(summary.groups)))
    ax.set_xticklabels(labels)
    ax.set_xlim(-0.6, len(summary.groups) - 0.4)
    ax.set_ylabel(label or measure)


def untangle_tick_labels(ax: Any) -> None:
    """Turn the x tick labels until no two overlap: level, slanted 30 degrees, then upright.

    Measured on the drawn figure (call it after the figure is laid out), not guessed from
    the number of characters: group names collide or not depending on the font, the
    number of groups and the width the layout leaves the axes.
    """
    renderer = ax.figure.canvas.get_renderer()
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    for rotation, align in ((0, "center"), (30, "right"), (90, "center")):
        for tick_label in labels:
            tick_label.set_rotation(rotation)
            tick_label.set_horizontalalignment(align)
            tick_label.set_rotation_mode("anchor" if rotation == 30 else "default")
        boxes = [tick_label.get_window_extent(renderer) for tick_label in labels]
        # A few pixels apart at least: labels that touch read as one.
        if all(left.x1 + 4 <= right.x0 for left, right in itertools.pairwise(boxes)):
            return


def draw_integration_vs_metastability(ax: Any, records: Records, summary: GroupSummary) -> None:
    """Integration against metastability, one dot per run (with its integration CI), by group.

    The integration is the finite-size corrected one, comparable across run lengths
    (records saved before it existed have none: their raw integration is drawn, and the
    axis says so).
    """
    corrected = any(record.get("integration_corrected") is not None for record in records)
    measure = "integration_corrected" if corrected else "integration"
    interval = "integration_corrected_ci95" if corrected else "integration_ci95"
    handles, labels = [], []
    for group, color in zip(summary.groups, color_cycle(len(summary.groups)), strict=True):
        runs = [records[i] for i in group.members]
        runs = [
            run
            for run in runs
            if measure_value(run, "metastability") is not None
            and measure_value(run, measure) is not None
        ]
        if not runs:
            continue
        metastability = [measure_value(run, "metastability") for run in runs]
        integration = [measure_value(run, measure) for run in runs]
        handles.append(ax.scatter(metastability, integration, s=24, color=color, zorder=3))
        labels.append(plain_text(f"{group.label} (n={len(runs)})"))
        for x, run in zip(metastability, runs, strict=True):
            ci = run.get(interval)
            if ci is not None and None not in ci:
                ax.plot([x, x], ci, color=color, alpha=0.4, linewidth=1)
    ax.set_xlabel("metastability (std of R)")
    ax.set_ylabel(f"integration{', corrected' if corrected else ''} (mean DFA $\\alpha$)")
    if handles:
        # Handles and labels given explicitly: matplotlib leaves out a collected label that
        # starts with "_", and a group may well be called "_baseline".
        ax.legend(handles, labels, loc="best", fontsize=8)


def plot_batch(
    records: Records, summary: GroupSummary, directory: str | os.PathLike[str], fmt: str = "png"
) -> list[str]:
    """Save the batch figures of :data:`BATCH_FIGURES` into ``directory``.

    Returns
    -------
    list of str
        The paths written, in the order of :data:`BATCH_FIGURES`.
    """
    paths = [save_figure(measures_figure(records, summary), directory, BATCH_FIGURES[0], fmt)]

    figure, ax = new_figure(figsize=(6.0, 4.5))
    draw_integration_vs_metastability(ax, records, summary)
    ax.set_title("Training style: integration vs metastability (bars: 95% CI)")
    paths.append(save_figure(figure, directory, BATCH_FIGURES[1], fmt))

    width = max(6.0, _INCHES_PER_GROUP * len(summary.groups) + 1.0)
    figure, ax = new_figure(figsize=(width, 4.0), layout="constrained")
    draw_measure_by_group(
        ax,
        records,
        summary,
        "convergence.lead_epochs",
        label="lead (epochs; > 0: decided before the plateau)",
        hollow=lambda run: not distinguishable(run.get("convergence") or {}, run.get("settings")),
    )
    ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
    levels = {significance_level(r.get("settings")) for r in records if "error" not in r}
    level = (
        f"p <= {format_number(levels.pop(), None)}"
        if len(levels) == 1
        else "its significance level"
    )
    ax.set_title(
        "Accuracy plateau minus the decided DSI convergence\n"
        f"(open: the convergence does not beat its surrogates at {level})",
        fontsize=10,
    )
    figure.canvas.draw()  # lay out, then measure the tick labels
    untangle_tick_labels(ax)
    paths.append(save_figure(figure, directory, BATCH_FIGURES[2], fmt))
    return paths


def measures_figure(records: Records, summary: GroupSummary) -> Any:
    """``measures_by_group``: integration, metastability and stability index by group.

    Each panel is as wide as its groups need, and the group names are turned until none
    overlaps (:func:`untangle_tick_labels`).
    """
    width = max(4.0, _INCHES_PER_GROUP * len(summary.groups) + 1.0)
    figure, axes = new_figure(
        1, len(_BY_GROUP), figsize=(width * len(_BY_GROUP), 4.2), layout="constrained"
    )
    for ax, (measure, label) in zip(axes, _BY_GROUP.items(), strict=True):
        draw_measure_by_group(ax, records, summary, measure, label=label)
    figure.suptitle("Measures by group (box: quartiles; dots: runs)")
    figure.canvas.draw()  # lay out, then measure the tick labels
    for ax in axes:
        untangle_tick_labels(ax)
    return figure
