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
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dynatrain import measures
from dynatrain.analysis import (
    AnalysisResult,
    Settings,
    analyze,
    analyze_signals,
    uncertainty_generators,
)
from dynatrain.batch import GroupSummary, group_summary
from dynatrain.report._format import p_value_text
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
ALPHA = 0.05  # significance level of the verdicts
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


def num(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals; an en dash for a missing value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def p_text(value: float | None) -> str:
    """A p-value, at the resolution the surrogates give."""
    return "–" if value is None else f"{value:.3f}"


def surrogate_p(record: Mapping[str, Any], key: str) -> str:
    """A surrogate p-value of a run, as a bound at the smallest value N surrogates give."""
    text = p_value_text(record[key], record["settings"]["surrogates"])
    return text.removeprefix("p = ").replace("p ", "") or "–"


def epoch_text(value: float | None) -> str:
    """An epoch (or a lead in epochs), signed leads keep their sign."""
    return "never" if value is None else f"{value:g}"


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
        ci = r["integration_ci95"]
        conv = r["convergence"]
        rows.append(
            [
                r["run_id"],
                f"{num(r['integration'])} [{num(ci[0], 2)}, {num(ci[1], 2)}]",
                surrogate_p(r, "integration_p"),
                num(f.null_alpha),
                f"{num(r['synchrony'])} ({surrogate_p(r, 'synchrony_p')})",
                f"{num(r['metastability'])} ({surrogate_p(r, 'metastability_p')})",
                num(r["stability_index"]),
                f"{r['style']['label']} ({num(r['style']['spearman'], 2)})",
                converged_with_p(r),
                epoch_text(conv["accuracy_plateau_epoch"]),
                epoch_text(conv["lead_epochs"]),
            ]
        )
    header = [
        "run",
        "integration [95% CI]",
        "p",
        "shuffled α",
        "synchrony (p)",
        "metastability (p)",
        "DSI",
        "style (ρ)",
        "DSI converged (p)",
        "plateau",
        "lead",
    ]
    return table(header, rows, "l" + "r" * 6 + "l" + "rrr")


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


def within_model(by_model: GroupSummary) -> list[tuple[str, Any, str, float]]:
    """Easy vs hard task within each network: ``(model, comparison, direction, AUROC)``."""
    found = []
    for item in by_model.comparisons:
        model_a, model_b = item.group_a.split(" / ")[0], item.group_b.split(" / ")[0]
        if model_a == model_b and item.measure == "integration":
            easy = item.group_a if item.group_a.endswith(" / digits") else item.group_b
            found.append((model_a, item, *direction(item, easy)))
    return found


def claim_integration(by_task: GroupSummary, by_model: GroupSummary) -> str:
    """Claim 1: integration separates the easy and the hard task."""
    pooled = comparison(by_task, "integration", "digits", "digits-hard")
    said, auroc = direction(pooled, "digits")
    holds = pooled.p_value < ALPHA
    lines = [
        f"Pooled over both networks ({pooled.n_a} and {pooled.n_b} runs), integration is "
        f"**{said}**: "
        f"difference {num(pooled.difference)}, Cohen's d {num(pooled.cohens_d, 2)}, "
        f"Mann-Whitney p = {p_text(pooled.p_value)}, AUROC {num(auroc, 2)}. "
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
            f"against {item.n_b} can give is {p_text(smallest_mwu_p(item.n_a, item.n_b))})."
        )
    return "\n".join(lines) + "\n"


def smallest_mwu_p(n_a: int, n_b: int) -> float:
    """Smallest two-sided exact Mann-Whitney p for complete separation of n_a and n_b runs."""
    return float(stats.mannwhitneyu(np.arange(n_a), np.arange(n_b) + n_a).pvalue)


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
    distinct: int  # ... with a convergence p-value below ALPHA
    warned: int  # ... decided before the plateau and distinct: an early warning
    relapse: np.ndarray  # relapse fraction of the converged runs that have one


def null_counts(findings: Sequence[RunFindings]) -> NullCounts:
    """Count the convergences that beat their surrogates, and the early warnings left."""
    conv = [f.record["convergence"] for f in findings]
    converged = [c for c in conv if c["epoch"] is not None]
    distinct = [c for c in converged if c["p"] is not None and c["p"] < ALPHA]
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
        f"longer fall below {ALPHA}) converge as early. The "
        f"convergence beats its surrogates (p < {ALPHA}) in **{nulls.distinct} of "
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
    return (
        f"Labels over the {len(findings)} runs: {parts}. Spearman ρ from "
        f"{num(float(rhos.min()), 2)} to {num(float(rhos.max()), 2)}, "
        f"median {num(float(np.median(rhos)), 2)}; negative in {int((rhos < 0).sum())} runs. "
        f"By network and task: {cells}.{why}\n"
    )


def uncertainty_text(findings: Sequence[RunFindings]) -> str:
    """How many runs pass each surrogate test, and the small-sample reference for alpha."""
    n = len(findings)

    def passed(key: str) -> int:
        return sum(1 for f in findings if f.record[key] is not None and f.record[key] < ALPHA)

    null = np.array([f.null_alpha for f in findings])
    widths = np.array(
        [f.record["integration_ci95"][1] - f.record["integration_ci95"][0] for f in findings]
    )
    points = findings[0].record["timeseries"]["epoch"]
    return (
        f"* **Integration** exceeds its time-shuffled surrogates (p < {ALPHA}) in "
        f"**{passed('integration_p')} of {n}** runs. Shuffled copies of the same series "
        f"read α = {num(float(null.min()))} to {num(float(null.max()))}, not 0.5: "
        f"with {len(points)} points and scales "
        f"{findings[0].record['settings']['min_scale']}–"
        f"{findings[0].record['settings']['max_scale']}, DFA reads uncorrelated series "
        "too high, so compare α with that column rather than with 0.5.\n"
        f"* The 95% bootstrap intervals over layers are wide, {num(float(widths.min()), 2)} "
        f"to {num(float(widths.max()), 2)} in α: the interval resamples "
        f"{layer_counts(findings)} layers, which disagree more than the runs do.\n"
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
        group.label.split(" / ")[0]: group.stats["integration"].mean
        for group in by_model.groups
        if group.label.endswith(" / digits")
    }
    (low, low_mean), (high, high_mean) = sorted(means.items(), key=lambda item: item[1])
    network_gap = high_mean - low_mean
    task_gap = abs(comparison(by_task, "integration", "digits", "digits-hard").difference)
    how_much = "more than" if network_gap > task_gap else "less than"
    return (
        f"The network matters {how_much} the task: on the clean task the {high.upper()} "
        f"reads integration {num(high_mean)} and the {low.upper()} {num(low_mean)}, a gap of "
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
    pooled = comparison(by_task, "integration", "digits", "digits-hard")
    said, auroc = direction(pooled, "digits")
    early = lead_counts(findings).early
    return (
        f"On levels, integration is {num(float(alphas.min()), 2)} to "
        f"{num(float(alphas.max()), 2)} in every run (median "
        f"{num(float(np.median(alphas)), 2)}): the exponent of the smooth trend that "
        "the layers share (see [From activations to signals]"
        "(../README.md#from-activations-to-signals)), and metastability is "
        f"{num(float(meta.min()), 3)} to {num(float(meta.max()), 3)}. "
        f"Integration is then {said} (AUROC {num(auroc, 2)}, p = {p_text(pooled.p_value)}), "
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
        f"(p < {ALPHA})"
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
        "integration p < 0.05",
        "metastability p < 0.05",
        "style not `independent`",
        "DSI converges",
        "converges, p < 0.05",
        "median corr(DSI, I) over windows",
    ]
    return table(header, rows)


def null_convergence(nulls: Mapping[str, list[AnalysisResult]]) -> str:
    """How often the rule fires on the noise runs, and how often its p-value says so."""
    results = [r for name in nulls for r in nulls[name]]
    fired = np.mean([r.convergence_epoch is not None for r in results])
    significant = np.mean(
        [r.convergence_p is not None and r.convergence_p < ALPHA for r in results]
    )
    return (
        f"The convergence rule fires on {fired:.0%} of these runs of pure noise, and it fires "
        f"with a p-value below {ALPHA} on {significant:.0%}: a converged epoch alone says "
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
    return [
        name,
        share([r.integration_p < ALPHA for r in results]),
        share([r.metastability_p < ALPHA for r in results]),
        share([r.style is not None and r.style.label != "independent" for r in results]),
        share([r.convergence_epoch is not None for r in results]),
        share([r.convergence_p is not None and r.convergence_p < ALPHA for r in results]),
        num(float(np.median(correlations))),
    ]


def bootstrap_coverage(findings: Sequence[RunFindings]) -> str:
    """Coverage of the percentile bootstrap interval of a mean over as few values as layers."""
    rng = np.random.default_rng(NULL_SEED)
    parts = []
    for n_layers in sorted({f.record["layers_analysed"] for f in findings}):
        values = rng.standard_normal((2000, n_layers))  # true mean 0
        lo, hi = measures.bootstrap_ci(values, rng=rng)
        parts.append(f"{np.mean((lo <= 0) & (0 <= hi)):.0%} with {n_layers} layers")
    return " and ".join(parts)


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
    shown = ["integration", "integration_global", "metastability", "stability_index"]
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
`{settings["metric"]}`, {settings["surrogates"]} surrogates, seed {settings["seed"]}. The
same numbers come from

```bash
dynatrain batch sample_data/ --group-by dataset
dynatrain batch sample_data/ --group-by model,dataset -o report/
```

## Every run

Integration with its bootstrap 95% interval over layers and its surrogate p-value; the
mean integration of the run's own time-shuffled surrogates ("shuffled α", what the same
values read with their order destroyed); synchrony and metastability with their
phase-randomised surrogate p-values; the stability index; the style; the epoch at which the
DSI converged with the p-value of its convergence (how often the run's time-shuffled copies
converge as early), the accuracy plateau and the lead (plateau minus the epoch the
convergence was decided, positive: before the plateau).

{runs_table(change)}
### What the uncertainty says

{uncertainty_text(change)}
## 1. Does integration separate the easy and the hard task?

{claim_integration(by_task, by_model)}
{comparison_table(by_task, shown, "digits")}
{group_table(by_model, ["integration"])}
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
A style label is a threshold on a Spearman ρ between two windowed series whose windows
overlap in all but one point, so consecutive windows are far from independent and ρ has
no simple p-value; the label describes a run, it is not a test.

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
* The style label fires on pure noise: a `coupled` or `antagonistic` label is
  informative only against these base rates. {null_convergence(nulls)}
* The windowed stability index is almost the windowed integration (last column):
  metastability varies too little between windows to move it, so the volatility of the
  index follows the estimation noise of a DFA exponent on
  {change[0].record["settings"]["window"]} points, which is large enough for the rule to
  find a converged epoch in runs of pure noise.
* The bootstrap interval of integration resamples only the layers; for normally
  distributed values its coverage is {bootstrap_coverage(change)}, not 95%: read it as a
  lower bound on the uncertainty.

## What holds and what does not, on this data

* **Claim 1** (integration and task): {verdict_integration(by_task, by_model)}
* **Claim 2** (early warning): {verdict_lead(change)}
* **Claim 3** (style): {verdict_style(change)}
* **Metastability**: {verdict_metastability(change)}
"""


def verdict_metastability(findings: Sequence[RunFindings]) -> str:
    """State in one sentence how often metastability beats its surrogates."""
    n = sum(
        1
        for f in findings
        if f.record["metastability_p"] is not None and f.record["metastability_p"] < ALPHA
    )
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
    pooled = comparison(by_task, "integration", "digits", "digits-hard")
    said, auroc = direction(pooled, "digits")
    comparisons = within_model(by_model)
    within = "; ".join(
        f"{model.upper()} AUROC {num(auroc_here, 2)} ({said_here})"
        for model, _, said_here, auroc_here in comparisons
    )
    floor = max(smallest_mwu_p(item.n_a, item.n_b) for _, item, _, _ in comparisons)
    limit = (
        f"within a network no test of so few seeds can reach p < {ALPHA}: {within}. "
        "More seeds would decide it."
        if floor >= ALPHA
        else f"within a network: {within}."
    )
    status = "holds" if pooled.p_value < ALPHA else "does not hold"
    return (
        f"{status} when pooled (p = {p_text(pooled.p_value)}, AUROC {num(auroc, 2)}, "
        f"{said}); {limit}"
    )


def verdict_lead(findings: Sequence[RunFindings]) -> str:
    """State in one sentence whether claim 2 holds."""
    counts = lead_counts(findings)
    nulls = null_counts(findings)
    status = (
        "holds" if counts.sign_p is not None and counts.sign_p < ALPHA else "is not established"
    )
    return (
        f"{status}: the convergence was decided before the plateau in {counts.early} of "
        f"{len(findings)} runs (sign test p = {p_text(counts.sign_p)}), with leads from "
        f"{epoch_text(float(counts.leads.min()))} to {epoch_text(float(counts.leads.max()))}"
        f" epochs; it beats its time-shuffled surrogates (p < {ALPHA}) in {nulls.distinct} of "
        f"{nulls.converged} runs, and {nulls.warned} of {len(findings)} runs have an early "
        "warning that does both."
    )


def verdict_style(findings: Sequence[RunFindings]) -> str:
    """State in one sentence whether the style tells these runs apart (claim 3)."""
    counts = Counter(f.record["style"]["label"] for f in findings)
    label, count = counts.most_common(1)[0]
    return (
        f"{count} of {len(findings)} runs are `{label}`, whatever the network or the task, "
        "so on this data the style does not tell runs apart."
        if count >= len(findings) - 2
        else f"the labels vary ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})."
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
        plot_analysis(json_ready(showcase.result.to_dict(detail=True)), scratch)
        for name in ("signals", "stability", "style"):
            shutil.copyfile(Path(scratch) / f"{name}.png", FIGURES / f"{SHOWCASE_RUN}-{name}.png")


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
