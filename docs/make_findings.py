"""Regenerate ``docs/findings.md`` and its figures from the training runs in ``sample_data/``.

Every number in the document comes from this script: it analyses the twelve runs with
dynatrain's defaults, once with ``--transform change`` (the default) and once with
``--transform level``, and writes the tables and the sentences that state a number or a
verdict. Nothing in the document is typed by hand.

Usage::

    python docs/make_findings.py            # write docs/findings.md and docs/figures/findings/
    python docs/make_findings.py --check    # exit 1 if docs/findings.md is out of date

``--check`` does not draw the figures; the test suite runs it, so the document cannot
drift from what the code computes on the shipped runs.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dynatrain import measures
from dynatrain._format import format_number, p_value_text
from dynatrain.analysis import (
    AnalysisResult,
    Settings,
    analyze,
    analyze_signals,
    uncertainty_generators,
)
from dynatrain.batch import GroupSummary, group_summary, smallest_p_value
from dynatrain.defaults import CI_LEVEL, SIGNIFICANCE_LEVEL
from dynatrain.report.convergence_text import convergence_p_text
from dynatrain.report.export import json_ready
from dynatrain.signals import LayerSignals

ROOT = Path(__file__).resolve().parent.parent
RUNS = sorted((ROOT / "sample_data").glob("*.h5"))
DOCUMENT = ROOT / "docs" / "findings.md"
FIGURES = ROOT / "docs" / "figures" / "findings"
#: The run whose single-run figures the document shows: an MLP on the clean task.
SHOWCASE_RUN = "mlp-digits-seed1"
TRANSFORMS = ("change", "level")
ALPHA = SIGNIFICANCE_LEVEL  # a p-value at or below it is significant, as in the reports
#: The integration the runs are compared on: corrected for the finite-size bias of DFA at
#: each run's length, so that runs of different lengths are comparable (batch reports
#: compare it too).
COMPARED = "integration_corrected"
#: A plateau this many epochs after the first volatility leaves the rule little room.
EARLY_PLATEAU = 15


# -- analysis --------------------------------------------------------------------------------


@dataclass
class RunFindings:
    """One run analysed with one transform."""

    result: AnalysisResult
    record: dict[str, Any]  # the JSON object of the output contract
    null_alpha: float  # mean integration of the run's time-shuffled surrogates
    whole_run: dict[str, Any]  # its convergence by the whole-run rule of version 0.1


def analyse_runs(transform: str) -> list[RunFindings]:
    """Analyse every sample run with the default settings and the given transform."""
    settings = Settings(transform=transform)
    findings = []
    for path in RUNS:
        result = analyze(str(path.relative_to(ROOT)), settings)
        # What shuffled copies of these very series read: the small-sample reference
        # for integration (0.5 only for long series), drawn exactly as the p-value's null.
        rng_shuffle, _, _ = uncertainty_generators(settings.seed)
        null = measures.integration_null(
            result.zscored,
            settings.surrogates,
            rng=rng_shuffle,
            max_scale=result.settings["max_scale"],
            min_scale=settings.min_scale,
            n_scales=settings.n_scales,
            order=settings.dfa_order,
        )
        whole_run = analyze(
            str(path.relative_to(ROOT)), settings.replace(convergence_rule="whole-run")
        )
        findings.append(
            RunFindings(
                result,
                json_ready(result.to_dict()),
                float(null.mean()),
                json_ready(whole_run.to_dict()["convergence"]),
            )
        )
    return findings


# -- formatting ------------------------------------------------------------------------------


def significant(p: float | None) -> bool:
    """Whether a p-value is at or below the significance level (the reports' rule)."""
    return p is not None and p <= ALPHA


def num(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals (dynatrain's one rule); an en dash for a missing value."""
    return format_number(value, digits, missing="–")


def p_text(value: float | None) -> str:
    """A p-value, at the resolution the surrogates give."""
    return format_number(value, 3, missing="–")


def surrogate_p(record: Mapping[str, Any], key: str) -> str:
    """A surrogate p-value of a run, as a bound at the smallest value N surrogates give."""
    text = p_value_text(record[key], record["settings"]["surrogates"])
    return text.removeprefix("p = ").replace("p ", "") or "–"


def epoch_text(value: float | None) -> str:
    """An epoch (or a lead in epochs), signed leads keep their sign."""
    return "never" if value is None else format_number(value, None)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A Markdown table; `align` gives one of l/r per column (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"


def comparison(summary: GroupSummary, measure: str, a: str, b: str) -> Any:
    """The comparison of `measure` between groups labelled `a` and `b`."""
    for item in summary.comparisons:
        if item.measure == measure and {item.group_a, item.group_b} == {a, b}:
            return item
    raise KeyError((measure, a, b))


def direction(item: Any, easy: str) -> tuple[str, float]:
    """Which group is higher, and the AUROC oriented so that it says so (>= 0.5)."""
    higher_easy = (item.difference < 0) == (item.group_a == easy)
    auroc = item.auroc if item.auroc >= 0.5 else 1 - item.auroc
    return ("higher on the easy task" if higher_easy else "higher on the hard task"), auroc


# -- sections --------------------------------------------------------------------------------


def runs_table(findings: Sequence[RunFindings]) -> str:
    """One row per run: every measure with its uncertainty."""
    rows = []
    for f in findings:
        r = f.record
        conv = r["convergence"]
        rows.append(
            [
                r["run_id"],
                with_interval(r["integration"], r["integration_ci95"]),
                surrogate_p(r, "integration_p"),
                with_interval(r["integration_corrected"], r["integration_corrected_ci95"]),
                num(f.null_alpha),
                f"{num(r['synchrony'])} ({surrogate_p(r, 'synchrony_p')})",
                f"{num(r['metastability'])} ({surrogate_p(r, 'metastability_p')})",
                num(r["stability_index"]),
                style_cell(r),
                converged_with_p(r),
                epoch_text(conv["accuracy_plateau_epoch"]),
                epoch_text(conv["lead_epochs"]),
            ]
        )
    header = [
        "run",
        "integration [95% CI]",
        "p",
        "corrected [95% CI]",
        "shuffled α",
        "synchrony (p)",
        "metastability (p)",
        "DSI",
        "style (ρ, p)",
        "DSI converged (p)",
        "plateau",
        "lead",
    ]
    return table(header, rows, "l" + "r" * 7 + "l" + "rrr")


def with_interval(value: float | None, interval: Sequence[float] | None) -> str:
    """``"0.812 [0.61, 1.01]"``: a value with its interval."""
    if interval is None:
        return num(value)
    return f"{num(value)} [{num(interval[0], 2)}, {num(interval[1], 2)}]"


def style_cell(record: Mapping[str, Any]) -> str:
    """The style's label with its rho and surrogate p-value: ``"independent (-0.59, 0.06)"``."""
    style = record["style"]
    p = p_value_text(style["p"], record["settings"]["surrogates"])
    p = p.removeprefix("p = ").replace("p ", "") or "untested"
    return f"{style['label']} ({num(style['spearman'], 2)}, {p})"


def step_phrase(step: int) -> str:
    """Where windows start: "every checkpoint" or "every 30th checkpoint"."""
    return "every checkpoint" if step == 1 else f"every {step}th checkpoint"


def converged_with_p(record: Mapping[str, Any]) -> str:
    """The converged epoch with the convergence's surrogate p-value: "42 (0.02)"."""
    conv = record["convergence"]
    if conv["epoch"] is None:
        return "never"
    return f"{epoch_text(conv['epoch'])} ({convergence_p(record)})"


def convergence_p(record: Mapping[str, Any]) -> str:
    """The convergence p-value as the reports show it (a bound at the floor)."""
    text = convergence_p_text(record["convergence"], record["settings"])
    return text.removeprefix("p = ").replace("p ", "") or "–"


def group_table(summary: GroupSummary, measures_shown: Sequence[str]) -> str:
    """Mean ± sd and the t-interval of each measure in each group."""
    rows = []
    for measure in measures_shown:
        for group in summary.groups:
            s = group.stats[measure]
            ci = s.ci95 or (None, None)
            rows.append(
                [
                    f"`{measure}`",
                    group.label,
                    str(s.n),
                    f"{num(s.mean)} ± {num(s.sd)}",
                    f"[{num(ci[0])}, {num(ci[1])}]",
                ]
            )
    return table(["measure", "group", "n", "mean ± sd", "95% CI of the mean"], rows, "llrrr")


def comparison_table(summary: GroupSummary, measures_shown: Sequence[str], easy: str) -> str:
    """Easy vs hard task for each measure: difference, effect size, test, AUROC."""
    rows = []
    pairs = [(c.group_a, c.group_b) for c in summary.comparisons if c.measure == measures_shown[0]]
    for a, b in pairs:
        if easy not in a and easy not in b:
            continue
        for measure in measures_shown:
            item = comparison(summary, measure, a, b)
            easy_label = a if a.endswith(easy) else b
            said, auroc = direction(item, easy_label)
            rows.append(
                [
                    f"`{measure}`",
                    f"{b} − {a}",
                    num(item.difference),
                    num(item.cohens_d, 2),
                    p_text(item.p_value),
                    num(auroc, 2),
                    said,
                ]
            )
    header = ["measure", "groups", "mean difference", "Cohen's d", "p (MWU)", "AUROC", "direction"]
    return table(header, rows, "llrrrrl")


def within_model(
    by_model: GroupSummary, measure: str = COMPARED
) -> list[tuple[str, Any, str, float]]:
    """Easy vs hard task within each network: ``(model, comparison, direction, AUROC)``."""
    found = []
    for item in by_model.comparisons:
        model_a, model_b = item.group_a.split(" / ")[0], item.group_b.split(" / ")[0]
        if model_a == model_b and item.measure == measure:
            easy = item.group_a if item.group_a.endswith(" / digits") else item.group_b
            found.append((model_a, item, *direction(item, easy)))
    return found


def claim_integration(
    by_task: GroupSummary, by_model: GroupSummary, records: Sequence[Mapping[str, Any]]
) -> str:
    """Claim 1: integration separates the easy and the hard task."""
    pooled = comparison(by_task, COMPARED, "digits", "digits-hard")
    raw = comparison(by_task, "integration", "digits", "digits-hard")
    said, auroc = direction(pooled, "digits")
    raw_said, raw_auroc = direction(raw, "digits")
    holds = significant(pooled.p_value)
    shift = [record["integration"] - record["integration_corrected"] for record in records]
    same = "the same verdict" if significant(raw.p_value) == holds else "another verdict"
    lines = [
        "Integration is compared corrected for the finite-size bias of DFA at each run's "
        "length (`integration_corrected`, as `dynatrain batch` compares it), the measure "
        "that stays comparable when runs differ in length. These runs all have the same "
        f"length; the correction lowers each run by {num(min(shift))} to {num(max(shift))} "
        "(more for exponents near 0.5), which moves the comparison a little, so the raw "
        f"exponent is given beside it ({same}).",
        "",
        f"Pooled over both networks ({pooled.n_a} and {pooled.n_b} runs), integration is "
        f"**{said}**: "
        f"difference {num(pooled.difference)}, Cohen's d {num(pooled.cohens_d, 2)}, "
        f"Mann-Whitney p = {p_text(pooled.p_value)}, AUROC {num(auroc, 2)} (raw: "
        f"{raw_said}, difference {num(raw.difference)}, p = {p_text(raw.p_value)}, AUROC "
        f"{num(raw_auroc, 2)}). "
        + (
            f"At the {ALPHA} level the two tasks are **separated**."
            if holds
            else f"At the {ALPHA} level the two tasks are **not** separated."
        ),
        "",
    ]
    for model, item, said_here, auroc_here in within_model(by_model):
        lines.append(
            f"* Within the {model.upper()} runs ({item.n_a} against {item.n_b}): {said_here}, "
            f"AUROC {num(auroc_here, 2)}, Cohen's d {num(item.cohens_d, 2)}, "
            f"p = {p_text(item.p_value)} (the smallest two-sided p that {item.n_a} runs "
            f"against {item.n_b} can give is {p_text(smallest_p_value(item.n_a, item.n_b))})."
        )
    return "\n".join(lines) + "\n"


@dataclass
class Leads:
    """Lead times of a set of runs (plateau minus DSI-converged epoch)."""

    leads: np.ndarray  # of the runs that have one
    early: int  # runs whose DSI converged before the plateau
    late: int  # ... after it
    sign_p: float | None  # two-sided sign test of early against late


def lead_counts(findings: Sequence[RunFindings]) -> Leads:
    """Count early and late warnings, with their sign test."""
    conv = [f.record["convergence"] for f in findings]
    leads = np.array([c["lead_epochs"] for c in conv if c["lead_epochs"] is not None])
    early, late = int((leads > 0).sum()), int((leads < 0).sum())
    sign_p = float(stats.binomtest(early, early + late).pvalue) if early + late else None
    return Leads(leads, early, late, sign_p)


@dataclass
class NullCounts:
    """How the converged runs fare against their surrogates."""

    converged: int  # runs whose stability index converged
    distinct: int  # ... with a convergence p-value at or below ALPHA
    warned: int  # ... decided before the plateau and distinct: an early warning
    relapse: np.ndarray  # relapse fraction of the converged runs that have one


def null_counts(findings: Sequence[RunFindings]) -> NullCounts:
    """Count the convergences that beat their surrogates, and the early warnings left."""
    conv = [f.record["convergence"] for f in findings]
    converged = [c for c in conv if c["epoch"] is not None]
    distinct = [c for c in converged if significant(c["p"])]
    warned = [c for c in distinct if c["lead_epochs"] is not None and c["lead_epochs"] > 0]
    relapse = np.array([c["relapse"] for c in converged if c["relapse"] is not None])
    return NullCounts(len(converged), len(distinct), len(warned), relapse)


def claim_lead(findings: Sequence[RunFindings]) -> str:
    """Claim 2: the volatility of the stability index falls before accuracy plateaus."""
    conv = [f.record["convergence"] for f in findings]
    counts = lead_counts(findings)
    leads, early, late, sign_p = counts.leads, counts.early, counts.late, counts.sign_p
    nulls = null_counts(findings)
    n_runs, n_lead = len(conv), len(leads)
    pairs = [
        (c["epoch"], c["accuracy_plateau_epoch"])
        for c in conv
        if c["epoch"] is not None and c["accuracy_plateau_epoch"] is not None
    ]
    rho, rho_p = stats.spearmanr(*zip(*pairs, strict=True)) if len(pairs) > 2 else (None, None)
    never = n_runs - n_lead
    settings = findings[0].record["settings"]
    lines = [
        f"The convergence of the stability index was decided before the accuracy plateau in "
        f"**{early} of {n_runs} runs**, after it in {late}"
        + (f", at the same epoch in {n_lead - early - late}" if n_lead - early - late else "")
        + (f"; it never converged in {never}" if never else "")
        + f". Lead times (plateau minus the epoch the convergence was decided): median "
        f"{num(float(np.median(leads)), 1)} epochs, from {epoch_text(float(leads.min()))} to "
        f"{epoch_text(float(leads.max()))}; a sign test of early against late gives "
        f"p = {p_text(sign_p)}.",
        "",
        "**Against its null.** Each convergence comes with how often time-shuffled copies of "
        "the run (every layer shuffled, up to the checkpoint of the decision, "
        f"{settings['convergence_surrogates']} at most, drawing stopped once "
        f"{settings['convergence_null_stop']} converged as early, when the p-value can no "
        f"longer reach {ALPHA}) converge as early. The "
        f"convergence beats its surrogates (p ≤ {ALPHA}) in **{nulls.distinct} of "
        f"{nulls.converged} runs**; decided before the plateau *and* beating its surrogates, "
        f"an early warning worth the name, in **{nulls.warned} of {n_runs} runs**. After the "
        "decision the volatility is back above the threshold in a median "
        f"{float(np.median(nulls.relapse)):.0%} of the windows (from "
        f"{float(nulls.relapse.min()):.0%} to {float(nulls.relapse.max()):.0%}).",
        "",
        "A warning is useful only if it tracks each run's own plateau, not just the middle "
        "of training. Across the runs the DSI-converged epoch and the plateau epoch have "
        f"Spearman ρ = {num(rho, 2)} (p = {p_text(rho_p)}, {len(pairs)} runs).",
    ]
    return "\n".join(lines) + "\n"


def lead_table(findings: Sequence[RunFindings]) -> str:
    """Per run: converged and decided epochs, p-value, relapse, plateau, lead, whole-run rule."""
    rows = []
    for f in findings:
        conv = f.record["convergence"]
        relapse = conv["relapse"]
        rows.append(
            [
                f.record["run_id"],
                f.record["metadata"]["dataset"],
                epoch_text(conv["epoch"]),
                epoch_text(conv["decided_epoch"]),
                convergence_p(f.record) if conv["epoch"] is not None else "–",
                "–" if relapse is None else f"{relapse:.0%}",
                epoch_text(conv["accuracy_plateau_epoch"]),
                epoch_text(conv["lead_epochs"]),
                epoch_text(f.whole_run["epoch"]),
            ]
        )
    header = [
        "run",
        "task",
        "DSI converged",
        "decided",
        "p",
        "relapse",
        "accuracy plateau",
        "lead",
        "whole-run rule",
    ]
    return table(header, rows, "ll" + "r" * 7)


def claim_style(findings: Sequence[RunFindings]) -> str:
    """Claim 3: the relation of windowed integration and metastability."""
    counts = Counter(f.record["style"]["label"] for f in findings)
    rhos = np.array([f.record["style"]["spearman"] for f in findings])
    p_values = np.array([f.record["style"]["p"] for f in findings])
    settings = findings[0].record["settings"]
    strong = np.abs(rhos) >= settings["style_threshold"]
    by_cell: dict[str, list[str]] = {}
    for f in findings:
        meta = f.record["metadata"]
        by_cell.setdefault(f"{meta['model']} / {meta['dataset']}", []).append(
            f.record["style"]["label"]
        )
    parts = ", ".join(f"{label} {counts[label]}" for label in sorted(counts))
    cells = "; ".join(f"{cell}: " + ", ".join(labels) for cell, labels in sorted(by_cell.items()))
    why = (
        " A negative ρ is what the transition of section 2 gives by itself: the windows "
        "of the learning phase have high integration and low metastability, those after "
        "it the reverse."
        if np.median(rhos) < 0
        else ""
    )
    kept = int(np.sum(strong & (p_values <= settings["significance_level"])))
    return (
        f"Spearman ρ from {num(float(rhos.min()), 2)} to {num(float(rhos.max()), 2)}, "
        f"median {num(float(np.median(rhos)), 2)}; negative in {int((rhos < 0).sum())} runs."
        f"{why}\n\n"
        f"The label is tested: ρ is compared with ρ between surrogates of the two windowed "
        f"series that keep each one's spectrum (independent series as smooth as these), "
        f"{settings['surrogates']} pairs, and a run is labelled `coupled` or `antagonistic` "
        f"only when |ρ| ≥ {settings['style_threshold']:g} *and* p ≤ "
        f"{settings['significance_level']:g}. By |ρ| alone {int(strong.sum())} of "
        f"{len(findings)} runs would be labelled; with the test {kept} keep their label "
        f"(the surrogate p-values run from {p_text(float(p_values.min()))} to "
        f"{p_text(float(p_values.max()))}). Labels over the {len(findings)} runs: {parts}. "
        f"By network and task: {cells}.\n"
    )


def uncertainty_text(findings: Sequence[RunFindings]) -> str:
    """How many runs pass each surrogate test, and the small-sample reference for alpha."""
    n = len(findings)

    def passed(key: str) -> int:
        return sum(1 for f in findings if significant(f.record[key]))

    null = np.array([f.null_alpha for f in findings])
    widths = np.array(
        [f.record["integration_ci95"][1] - f.record["integration_ci95"][0] for f in findings]
    )
    shift = np.array(
        [f.record["integration"] - f.record["integration_corrected"] for f in findings]
    )
    points = findings[0].record["timeseries"]["epoch"]
    return (
        f"* **Integration** exceeds its time-shuffled surrogates (p ≤ {ALPHA}) in "
        f"**{passed('integration_p')} of {n}** runs. Shuffled copies of the same series "
        f"read α = {num(float(null.min()))} to {num(float(null.max()))}, not 0.5: "
        f"with {len(points)} points and scales "
        f"{findings[0].record['settings']['min_scale']}–"
        f"{findings[0].record['settings']['max_scale']}, DFA reads uncorrelated series "
        "too high. The corrected integration removes that bias for the run's length and "
        f"scales: it is lower than the raw one by {num(float(shift.min()))} to "
        f"{num(float(shift.max()))} here (more for exponents near 0.5, fading to none "
        "above about 1).\n"
        f"* The 95% intervals over layers (Student t over the {layer_counts(findings)} "
        f"layers' exponents) are wide, {num(float(widths.min()), 2)} to "
        f"{num(float(widths.max()), 2)} in α: the layers disagree more than the runs do.\n"
        f"* **Synchrony** exceeds its phase-randomised surrogates in "
        f"**{passed('synchrony_p')} of {n}** runs.\n"
        f"* **Metastability** exceeds its phase-randomised surrogates in only "
        f"**{passed('metastability_p')} of {n}** runs: the variation of R(t) over "
        "training is mostly what layers with these spectra and no phase relation "
        "would show. Metastability, and the stability index through it, should be read "
        "with its p-value.\n"
    )


def layer_counts(findings: Sequence[RunFindings]) -> str:
    """The numbers of analysed layers, e.g. "4 or 5"."""
    return " or ".join(str(n) for n in sorted({f.record["layers_analysed"] for f in findings}))


def model_contrast(by_task: GroupSummary, by_model: GroupSummary) -> str:
    """Integration of the two networks on the clean task (the network as a confound)."""
    means = {
        group.label.split(" / ")[0]: group.stats[COMPARED].mean
        for group in by_model.groups
        if group.label.endswith(" / digits")
    }
    (low, low_mean), (high, high_mean) = sorted(means.items(), key=lambda item: item[1])
    network_gap = high_mean - low_mean
    task_gap = abs(comparison(by_task, COMPARED, "digits", "digits-hard").difference)
    how_much = "more than" if network_gap > task_gap else "less than"
    return (
        f"The network matters {how_much} the task: on the clean task the {high.upper()} "
        f"reads corrected integration {num(high_mean)} and the {low.upper()} "
        f"{num(low_mean)}, a gap of "
        f"{num(network_gap)} against {num(task_gap)} between the tasks (pooled). "
        "A batch that mixes architectures should group by both "
        "(`--group-by model,dataset`), as the table above does.\n"
    )


def phases(findings: Sequence[RunFindings]) -> str:
    """How the convergence rule behaves, and what the windowed measures do around it."""
    first_epochs, rows, soon, differ, after_values = set(), [], [], [], []
    higher_before = lower_before = n_converged = 0
    for f in findings:
        series, convergence = f.record["timeseries"], f.record["convergence"]
        ends = np.array(series["window_end_epoch"], dtype=float)
        volatility = np.array([np.nan if v is None else v for v in series["volatility"]])
        first = float(ends[np.isfinite(volatility)][0])
        first_epochs.add(first)
        plateau, converged = convergence["accuracy_plateau_epoch"], convergence["epoch"]
        if plateau is not None and plateau - first <= EARLY_PLATEAU:
            soon.append(f"{f.record['run_id']} ({epoch_text(plateau)})")
        if f.whole_run["epoch"] != converged:
            differ.append(
                f"{f.record['run_id']} ({epoch_text(converged)} against "
                f"{epoch_text(f.whole_run['epoch'])})"
            )
        if converged is None:
            continue
        n_converged += 1
        before = ends <= converged
        integration = np.array(series["integration"], dtype=float)
        metastability = np.array(series["metastability"], dtype=float)
        i_before, i_after = integration[before].mean(), integration[~before].mean()
        m_before, m_after = metastability[before].mean(), metastability[~before].mean()
        higher_before += bool(i_before > i_after)
        lower_before += bool(m_before < m_after)
        after_values.append(i_after)
        rows.append(
            [
                f.record["run_id"],
                epoch_text(converged),
                num(i_before),
                num(i_after),
                num(m_before),
                num(m_after),
            ]
        )
    first_text = " to ".join(epoch_text(e) for e in sorted(first_epochs))
    soon_text = (
        f"; runs whose accuracy plateaus within {EARLY_PLATEAU} epochs of it leave the "
        "rule little room: " + ", ".join(soon)
        if soon
        else ""
    )
    below_half = (
        f"read α below 0.5 (at most {num(max(after_values))} after convergence)"
        if after_values and max(after_values) < 0.5
        else "read a low α"
    )
    return (
        f"**How the rule behaves.** The first volatility exists at epoch {first_text}: a "
        "window of the stability index needs its points and the volatility several "
        f"windows, so no warning can come earlier{soon_text}. The rule measures each "
        "window against the running peak of the volatility, the largest so far, so it "
        "decides every window from the windows before it: what a live watcher sees, and "
        "what `dynatrain analyze` reports afterwards. It starts only once the volatility "
        "has risen above its first value (the first value is where measuring starts, not "
        "a peak). The whole-run rule of version 0.1, which starts from the largest "
        "volatility of the finished run, gives the same converged epoch in "
        f"{len(findings) - len(differ)} of {len(findings)} runs"
        + (f"; the others, causal against whole-run: {', '.join(differ)}" if differ else "")
        + ".\n\n"
        f"**What the DSI tracks.** In {higher_before} of {n_converged} runs the windowed "
        "integration is higher in the windows that end before the DSI converged than in "
        f"those after, and in {lower_before} of {n_converged} the windowed metastability is "
        "lower. While the network learns, the layers' changes share a persistent drift "
        "(high α, steady phases); once it settles they fluctuate like noise, whose "
        f"differences {below_half}. The DSI converges when that transition ends.\n\n"
        + table(["run", "DSI converged", "I before", "I after", "M before", "M after"], rows)
    )


def level_summary(findings: Sequence[RunFindings], by_task: GroupSummary) -> str:
    """The headline numbers with ``--transform level``."""
    alphas = np.array([f.record["integration"] for f in findings])
    meta = np.array([f.record["metastability"] for f in findings])
    pooled = comparison(by_task, COMPARED, "digits", "digits-hard")
    said, auroc = direction(pooled, "digits")
    early = lead_counts(findings).early
    return (
        f"On levels, integration is {num(float(alphas.min()), 2)} to "
        f"{num(float(alphas.max()), 2)} in every run (median "
        f"{num(float(np.median(alphas)), 2)}): the exponent of the smooth trend that "
        "the layers share (see [From activations to signals]"
        "(../README.md#from-activations-to-signals)), and metastability is "
        f"{num(float(meta.min()), 3)} to {num(float(meta.max()), 3)}. "
        f"Corrected integration is then {said} (AUROC {num(auroc, 2)}, "
        f"p = {p_text(pooled.p_value)}), "
        f"and the convergence of the stability index is decided before the plateau in {early} "
        f"of {len(findings)} runs, {lead_and_null(findings)}. The table below is the same as "
        "the first one, on levels.\n"
    )


def lead_and_null(findings: Sequence[RunFindings]) -> str:
    """How many convergences beat their surrogates, as a clause."""
    nulls = null_counts(findings)
    verb = "beats its" if nulls.distinct == 1 else "beat their"
    return (
        f"and {nulls.distinct} of the {nulls.converged} convergences {verb} surrogates "
        f"(p ≤ {ALPHA})"
    )


# -- runs with no structure -----------------------------------------------------------------

#: Simulated runs per null model, and their seed (fixed: the document must not change).
NULL_RUNS = 100
NULL_SEED = 20261123


def null_signals(changes: np.ndarray) -> LayerSignals:
    """Layer signals whose checkpoint-to-checkpoint changes are `changes` (layers x points).

    The accuracy is a smooth saturating curve, so every null run has a plateau.
    """
    n_layers, n_points = changes.shape
    levels = np.concatenate([np.zeros((n_layers, 1)), np.cumsum(changes, axis=1)], axis=1)
    epochs = np.arange(n_points + 1, dtype=np.float64)
    accuracy = 1 - 0.9 * np.exp(-epochs / 20)
    names = tuple(f"layer{i}" for i in range(n_layers))
    return LayerSignals("null", {}, "mean", names, epochs, levels, {"val_accuracy": accuracy})


def ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """Stationary AR(1) series along the last axis: short memory, no long-range correlation."""
    series = np.empty(shape)
    series[:, 0] = rng.standard_normal(shape[0]) / np.sqrt(1 - phi**2)
    for t in range(1, shape[1]):
        series[:, t] = phi * series[:, t - 1] + rng.standard_normal(shape[0])
    return series


def simulate_nulls(findings: Sequence[RunFindings]) -> dict[str, list[AnalysisResult]]:
    """Simulated runs of the sample runs' shape with no structure, analysed with the defaults."""
    n_layers = max(f.record["layers_analysed"] for f in findings)
    n_points = len(findings[0].record["timeseries"]["epoch"])
    rng = np.random.default_rng(NULL_SEED)
    models = {
        "white noise": lambda: rng.standard_normal((n_layers, n_points)),
        "AR(1), φ = 0.5": lambda: ar1(rng, (n_layers, n_points), 0.5),
    }
    return {
        name: [analyze_signals(null_signals(draw()), Settings()) for _ in range(NULL_RUNS)]
        for name, draw in models.items()
    }


def null_table(findings: Sequence[RunFindings], nulls: Mapping[str, list[AnalysisResult]]) -> str:
    """What the default rules say about simulated runs with no structure, next to the real runs."""
    rows = [null_row(f"{name}, {NULL_RUNS} simulated runs", nulls[name]) for name in nulls]
    rows.append(null_row(f"the {len(findings)} sample runs", [f.result for f in findings]))
    header = [
        "layer changes",
        f"integration p ≤ {ALPHA}",
        f"metastability p ≤ {ALPHA}",
        "\\|ρ\\| ≥ style threshold",
        "style labelled (tested)",
        "DSI converges",
        f"converges, p ≤ {ALPHA}",
        "median corr(DSI, I) over windows",
    ]
    return table(header, rows)


def null_convergence(nulls: Mapping[str, list[AnalysisResult]]) -> str:
    """How often the rule fires on the noise runs, and how often its p-value says so."""
    results = [r for name in nulls for r in nulls[name]]
    fired = np.mean([r.convergence_epoch is not None for r in results])
    tested = np.mean([significant(r.convergence_p) for r in results])
    return (
        f"The convergence rule fires on {fired:.0%} of these runs of pure noise, and it fires "
        f"with a p-value at or below {ALPHA} on {tested:.0%}: a converged epoch alone says "
        "little, a converged epoch with a small p-value says that the run's own time-shuffled "
        "copies rarely settle as early."
    )


def null_row(name: str, results: Sequence[AnalysisResult]) -> list[str]:
    """Rates of the null table for one set of analysed runs."""

    def share(flags: Sequence[bool]) -> str:
        return f"{np.mean(flags):.0%}"

    correlations = [
        np.corrcoef(r.window_stability_index, r.window_integration)[0, 1] for r in results
    ]
    threshold = results[0].settings["style_threshold"]
    return [
        name,
        share([significant(r.integration_p) for r in results]),
        share([significant(r.metastability_p) for r in results]),
        share([r.style is not None and abs(r.style.spearman) >= threshold for r in results]),
        share([r.style is not None and r.style.label != "independent" for r in results]),
        share([r.convergence_epoch is not None for r in results]),
        share([significant(r.convergence_p) for r in results]),
        num(float(np.median(correlations))),
    ]


def style_on_noise(nulls: Mapping[str, list[AnalysisResult]]) -> str:
    """How often the style would be labelled on the noise runs, by the threshold and tested."""
    results = [r for name in nulls for r in nulls[name]]
    threshold = results[0].settings["style_threshold"]
    alone = np.mean([r.style is not None and abs(r.style.spearman) >= threshold for r in results])
    tested = np.mean([r.style is not None and r.style.label != "independent" for r in results])
    return (
        f"By |ρ| ≥ {threshold:g} alone, the style of {alone:.0%} of these runs of pure noise "
        f"would be labelled `coupled` or `antagonistic`: two smooth windowed series correlate "
        f"strongly by chance. With its surrogate test (p ≤ {ALPHA}), {tested:.0%} are."
    )


def interval_coverage(findings: Sequence[RunFindings]) -> str:
    """Coverage of the t interval, and of the percentile bootstrap, over as few values as layers."""
    rng = np.random.default_rng(NULL_SEED)
    t_parts, bootstrap_parts = [], []
    for n_layers in sorted({f.record["layers_analysed"] for f in findings}):
        values = rng.standard_normal((4000, n_layers))  # true mean 0
        lo, hi = measures.t_interval(values, level=CI_LEVEL)
        t_parts.append(f"{np.mean((lo <= 0) & (0 <= hi)):.1%} with {n_layers} layers")
        lo, hi = measures.bootstrap_ci(values, level=CI_LEVEL, rng=rng)
        bootstrap_parts.append(f"{np.mean((lo <= 0) & (0 <= hi)):.1%}")
    return (
        f"for normally distributed values it covers the mean {' and '.join(t_parts)} "
        f"(4,000 simulated runs each), where the percentile bootstrap of version 0.1 covers "
        f"{' and '.join(bootstrap_parts)}"
    )


# -- the document ----------------------------------------------------------------------------


def render(results: Mapping[str, list[RunFindings]]) -> str:
    """The whole document, from the analyses of both transforms."""
    change = results["change"]
    records = [f.record for f in change]
    by_task = group_summary(records, ["dataset"])
    by_model = group_summary(records, ["model", "dataset"])
    level = results["level"]
    level_by_task = group_summary([f.record for f in level], ["dataset"])
    settings = change[0].record["settings"]
    nulls = simulate_nulls(change)
    shown = [COMPARED, "integration", "integration_global", "metastability", "stability_index"]
    checkpoints = sorted({f.record["checkpoints"] for f in change})
    metadata = [f.record["metadata"] for f in change]
    hard = next(meta for meta in metadata if meta["dataset"] != "digits")
    cells = Counter((meta["model"], meta["dataset"]) for meta in metadata)
    per_cell = " to ".join(str(n) for n in sorted(set(cells.values())))

    return f"""# Findings on the sample runs

<!-- Generated by docs/make_findings.py from the archives in sample_data/: do not edit.
     Regenerate with `python docs/make_findings.py`; the tests check it is up to date. -->

The method behind dynatrain makes three claims: (1) integration separates an easier task
from a harder one; (2) the volatility of the dynamical stability index (DSI) falls before
accuracy plateaus; (3) the relation between windowed integration and metastability shows a
run's training style. This page checks each claim on the {len(change)} real training runs
shipped in [`sample_data/`](../README.md#training-runs-in-sample_data): an MLP and a small
CNN trained on scikit-learn's digits (`digits`) and on a harder variant (`digits-hard`:
{hard["label_noise"]:.0%} of the training labels wrong, Gaussian noise of sd
{hard["input_noise"]:g} on every image), {per_cell} seeds per network and task,
{" or ".join(map(str, checkpoints))} checkpoints per run. That is little data, so every
comparison below carries its test and its effect size, and a claim that fails here is
reported as failing.

Settings: dynatrain's defaults, the same for every run: `--reduce {settings["reduce"]}`,
`--transform change` (and `level` at the end), DFA of order {settings["dfa_order"]} on
scales {settings["min_scale"]}–{settings["max_scale"]} ({settings["n_scales"]} log-spaced),
windows of {settings["window"]} points starting at {step_phrase(settings["window_step"])},
volatility over {settings["vol_window"]} windows, convergence below
{settings["vol_threshold"]} of the running peak of the volatility for
{settings["vol_patience"]} windows (the {settings["convergence_rule"]} rule), plateau on
`{settings["metric"]}`, Hilbert phases with `--phase-edge {settings["phase_edge"]}`,
{settings["surrogates"]} surrogates, significance level {settings["significance_level"]:g}
(a p-value at or below it is significant), seed {settings["seed"]}. The
same numbers come from

```bash
dynatrain batch sample_data/ --group-by dataset
dynatrain batch sample_data/ --group-by model,dataset -o report/
```

## Every run

Integration with its 95% interval over layers (Student t) and its surrogate p-value;
integration corrected for the finite-size bias of DFA at the run's length, with its
interval; the mean integration of the run's own time-shuffled surrogates ("shuffled α",
what the same values read with their order destroyed); synchrony and metastability with
their phase-randomised surrogate p-values; the stability index; the style with its ρ and
surrogate p-value; the epoch at which the DSI converged with the p-value of its
convergence (how often the run's time-shuffled copies converge as early), the accuracy
plateau and the lead (plateau minus the epoch the convergence was decided, positive:
before the plateau).

{runs_table(change)}
### What the uncertainty says

{uncertainty_text(change)}
## 1. Does integration separate the easy and the hard task?

{claim_integration(by_task, by_model, records)}
{comparison_table(by_task, shown, "digits")}
{group_table(by_model, [COMPARED, "integration"])}
![measures by network and task](figures/findings/measures_by_group.png)

{model_contrast(by_task, by_model)}
## 2. Does the stability index converge before accuracy plateaus?

{claim_lead(change)}
{lead_table(change)}
![lead times by network and task](figures/findings/lead_by_group.png)

{phases(change)}
For one run, `{SHOWCASE_RUN}`: the windowed stability index, its volatility and the
validation accuracy, with the converged and plateau epochs marked.

![stability figure of {SHOWCASE_RUN}](figures/findings/{SHOWCASE_RUN}-stability.png)

## 3. Training style

{claim_style(change)}
![integration vs metastability per run](figures/findings/integration_vs_metastability.png)

![style map of {SHOWCASE_RUN}](figures/findings/{SHOWCASE_RUN}-style.png)

## The same runs with `--transform level`

{level_summary(level, level_by_task)}
{runs_table(level)}
## How the measures behave on runs with no structure

A measure is worth what it says about data that has nothing to say. Below, the same
analysis (default settings, {change[0].record["settings"]["surrogates"]} surrogates) on
simulated runs of the same shape as the sample runs ({
        max(f.record["layers_analysed"] for f in change)
    } layers, {len(change[0].record["timeseries"]["epoch"])} analysed points):
layer changes that are independent white noise, and independent AR(1) noise, which has
short memory but no long-range correlation; the accuracy is a smooth saturating curve.

{null_table(change, nulls)}
* The integration test is calibrated on white noise but rejects short-memory noise as
  readily as long-range correlation: time-shuffled surrogates destroy *all* temporal
  correlation, so a small `integration_p` says "the layers' changes are correlated in
  time", not "they have long memory". The DFA exponent itself is what tells the two apart,
  and at this length only roughly.
* {style_on_noise(nulls)} {null_convergence(nulls)}
* The windowed stability index is almost the windowed integration (last column):
  metastability varies too little between windows to move it, so the volatility of the
  index follows the estimation noise of a DFA exponent on
  {change[0].record["settings"]["window"]} points, which is large enough for the rule to
  find a converged epoch in runs of pure noise.
* The interval of integration is the Student t interval over the layers;
  {interval_coverage(change)}. It treats the layers as independent draws from a
  population of layers, and does not include the correlation between layers of one run.

## What holds and what does not, on this data

* **Claim 1** (integration and task): {verdict_integration(by_task, by_model)}
* **Claim 2** (early warning): {verdict_lead(change)}
* **Claim 3** (style): {verdict_style(change)}
* **Metastability**: {verdict_metastability(change)}
"""


def verdict_metastability(findings: Sequence[RunFindings]) -> str:
    """State in one sentence how often metastability beats its surrogates."""
    n = sum(1 for f in findings if significant(f.record["metastability_p"]))
    if 2 * n >= len(findings):
        return f"exceeds its phase-randomised surrogates in {n} of {len(findings)} runs."
    return (
        f"exceeds its phase-randomised surrogates in only {n} of {len(findings)} runs, "
        "which weakens every measure built on it (the stability index, the style); the "
        "surrogate p-values are what makes this visible, and a batch report should be read "
        "with them."
    )


def verdict_integration(by_task: GroupSummary, by_model: GroupSummary) -> str:
    """State in one sentence whether claim 1 holds."""
    pooled = comparison(by_task, COMPARED, "digits", "digits-hard")
    said, auroc = direction(pooled, "digits")
    comparisons = within_model(by_model)
    within = "; ".join(
        f"{model.upper()} AUROC {num(auroc_here, 2)} ({said_here})"
        for model, _, said_here, auroc_here in comparisons
    )
    floor = max(smallest_p_value(item.n_a, item.n_b) for _, item, _, _ in comparisons)
    limit = (
        f"within a network no test of so few seeds can reach p ≤ {ALPHA}: {within}. "
        "More seeds would decide it."
        if floor > ALPHA
        else f"within a network: {within}."
    )
    raw = comparison(by_task, "integration", "digits", "digits-hard")
    _, raw_auroc = direction(raw, "digits")
    status = "holds" if significant(pooled.p_value) else "does not hold"
    return (
        f"{status} when pooled, on the corrected integration (p = {p_text(pooled.p_value)}, "
        f"AUROC {num(auroc, 2)}, {said}; raw exponent p = {p_text(raw.p_value)}, AUROC "
        f"{num(raw_auroc, 2)}); {limit}"
    )


def verdict_lead(findings: Sequence[RunFindings]) -> str:
    """State in one sentence whether claim 2 holds."""
    counts = lead_counts(findings)
    nulls = null_counts(findings)
    status = "holds" if significant(counts.sign_p) else "is not established"
    return (
        f"{status}: the convergence was decided before the plateau in {counts.early} of "
        f"{len(findings)} runs (sign test p = {p_text(counts.sign_p)}), with leads from "
        f"{epoch_text(float(counts.leads.min()))} to {epoch_text(float(counts.leads.max()))}"
        f" epochs; it beats its time-shuffled surrogates (p ≤ {ALPHA}) in {nulls.distinct} of "
        f"{nulls.converged} runs, and {nulls.warned} of {len(findings)} runs have an early "
        "warning that does both."
    )


def verdict_style(findings: Sequence[RunFindings]) -> str:
    """State in one sentence whether the style tells these runs apart (claim 3)."""
    n = len(findings)
    counts = Counter(f.record["style"]["label"] for f in findings)
    rhos = np.array([f.record["style"]["spearman"] for f in findings])
    cells: dict[str, list[bool]] = {}
    for f in findings:
        meta = f.record["metadata"]
        cell = f"{meta['model']} / {meta['dataset']}"
        cells.setdefault(cell, []).append(f.record["style"]["label"] != "independent")
    labelled = n - counts["independent"]
    with_label = sum(any(flags) for flags in cells.values())
    all_labelled = sum(all(flags) for flags in cells.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    head = (
        f"with its surrogate test {labelled} of {n} runs keep a label ({parts}); ρ is "
        f"negative in {int((rhos < 0).sum())} of {n}, as the learning transition gives by "
        "itself"
    )
    if labelled == 0:
        return f"{head}, and no run's ρ beats its surrogates: on this data there is no style."
    if all_labelled == 0 and with_label > 1:
        return (
            f"{head}. The labelled runs are spread over {with_label} of the {len(cells)} "
            "network × task cells and no cell has all its runs labelled: on this data the "
            "style does not tell networks or tasks apart."
        )
    return (
        f"{head}. Labelled runs by network and task: "
        + "; ".join(f"{cell} {sum(flags)} of {len(flags)}" for cell, flags in sorted(cells.items()))
        + "."
    )


# -- figures and main ------------------------------------------------------------------------


def draw_figures(findings: Sequence[RunFindings]) -> None:
    """The batch figures (by network and task) and three figures of the showcase run."""
    import shutil
    import tempfile

    from dynatrain.report.batch_plots import plot_batch
    from dynatrain.report.plots import plot_analysis

    records = [f.record for f in findings]
    plot_batch(records, group_summary(records, ["model", "dataset"]), FIGURES)
    showcase = next(f for f in findings if f.record["run_id"] == SHOWCASE_RUN)
    with tempfile.TemporaryDirectory() as scratch:
        plot_analysis(showcase.result, scratch)  # <run id>-<figure>.png
        for name in ("signals", "stability", "style"):
            figure = f"{SHOWCASE_RUN}-{name}.png"
            shutil.copyfile(Path(scratch) / figure, FIGURES / figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the findings document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with docs/findings.md, write nothing"
    )
    args = parser.parse_args(argv)
    results = {transform: analyse_runs(transform) for transform in TRANSFORMS}
    text = render(results)
    if args.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "docs/findings.md", "regenerated", lineterm=""
        )
        print("\n".join(diff), file=sys.stderr)
        print("docs/findings.md is out of date: run python docs/make_findings.py", file=sys.stderr)
        return 1
    DOCUMENT.write_text(text, encoding="utf-8")
    draw_figures(results["change"])
    print(f"wrote {DOCUMENT.relative_to(ROOT)} and {FIGURES.relative_to(ROOT)}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
