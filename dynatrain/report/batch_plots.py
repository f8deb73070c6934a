"""Figures of a batch: a measure by group, integration vs metastability, lead times.

Every function draws from the run records and their :class:`~dynatrain.batch.GroupSummary`
alone (no analysis is redone); ``draw_*`` functions take an axes, and
:func:`plot_batch` saves the three figures. Imports matplotlib: import it only to plot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dynatrain.batch import GroupSummary, measure_value, measure_values
from dynatrain.defaults import SIGNIFICANCE_LEVEL
from dynatrain.report._mpl import color_cycle, new_figure, plain_text, save_figure
from dynatrain.report.convergence_text import distinguishable

__all__ = [
    "BATCH_FIGURES",
    "draw_integration_vs_metastability",
    "draw_measure_by_group",
    "plot_batch",
]

#: File names (without suffix) of the figures :func:`plot_batch` writes.
BATCH_FIGURES = ("measures_by_group", "integration_vs_metastability", "lead_by_group")

#: Measures shown in ``measures_by_group``, with their axis labels.
_BY_GROUP = {
    "integration": "integration (mean DFA $\\alpha$)",
    "metastability": "metastability (std of R)",
    "stability_index": "stability index",
}

Records = Sequence[Mapping[str, Any]]

#: Characters of tick labels that fit side by side under one group axis.
_TICK_CHARACTERS = 48


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
    # One line per grouping key ("cnn / digits-hard" -> "cnn\ndigits-hard"), slanted when
    # the labels would not fit side by side (about 48 characters across a 4-inch axes).
    labels = [plain_text(group.label).replace(" / ", "\n") for group in summary.groups]
    widest = max((len(line) for label in labels for line in label.splitlines()), default=0)
    slanted = len(labels) * widest > _TICK_CHARACTERS
    ax.set_xticks(range(len(summary.groups)))
    ax.set_xticklabels(labels, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set_xlim(-0.6, len(summary.groups) - 0.4)
    ax.set_ylabel(label or measure)


def draw_integration_vs_metastability(ax: Any, records: Records, summary: GroupSummary) -> None:
    """Integration against metastability, one dot per run (with its integration CI), by group."""
    handles, labels = [], []
    for group, color in zip(summary.groups, color_cycle(len(summary.groups)), strict=True):
        runs = [records[i] for i in group.members]
        runs = [
            run
            for run in runs
            if measure_value(run, "metastability") is not None
            and measure_value(run, "integration") is not None
        ]
        if not runs:
            continue
        metastability = [measure_value(run, "metastability") for run in runs]
        integration = [measure_value(run, "integration") for run in runs]
        handles.append(ax.scatter(metastability, integration, s=24, color=color, zorder=3))
        labels.append(plain_text(f"{group.label} (n={len(runs)})"))
        for x, run in zip(metastability, runs, strict=True):
            ci = run.get("integration_ci95")
            if ci is not None and None not in ci:
                ax.plot([x, x], ci, color=color, alpha=0.4, linewidth=1)
    ax.set_xlabel("metastability (std of R)")
    ax.set_ylabel("integration (mean DFA $\\alpha$)")
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
    figure, axes = new_figure(1, len(_BY_GROUP), figsize=(4.0 * len(_BY_GROUP), 4.0))
    for ax, (measure, label) in zip(axes, _BY_GROUP.items(), strict=True):
        draw_measure_by_group(ax, records, summary, measure, label=label)
    figure.suptitle("Measures by group (box: quartiles; dots: runs)")
    paths = [save_figure(figure, directory, BATCH_FIGURES[0], fmt)]

    figure, ax = new_figure(figsize=(6.0, 4.5))
    draw_integration_vs_metastability(ax, records, summary)
    ax.set_title("Training style: integration vs metastability (bars: 95% CI)")
    paths.append(save_figure(figure, directory, BATCH_FIGURES[1], fmt))

    figure, ax = new_figure(figsize=(6.0, 4.0))
    draw_measure_by_group(
        ax,
        records,
        summary,
        "convergence.lead_epochs",
        label="lead (epochs; > 0: decided before the plateau)",
        hollow=lambda run: not distinguishable(run.get("convergence") or {}),
    )
    ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_title(
        "Accuracy plateau minus the decided DSI convergence\n"
        f"(open: the convergence does not beat its surrogates at p < {SIGNIFICANCE_LEVEL:g})",
        fontsize=10,
    )
    paths.append(save_figure(figure, directory, BATCH_FIGURES[2], fmt))
    return paths
