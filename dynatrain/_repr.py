"""Short renderings of results for people: a few lines in a REPL, a small table in Jupyter.

Everything here takes the plain data of :meth:`AnalysisResult.to_dict` (arrays or lists,
NaN or ``None``) and returns text; :mod:`dynatrain.report.tables` draws the same rows
in the terminal panel, so a measure reads the same everywhere.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from typing import Any

from dynatrain._format import format_interval, format_number, p_value_text, printable

__all__ = ["EXPLAIN", "batch_html", "batch_text", "measure_rows", "result_html", "result_text"]

#: One-line explanations shown next to each measure, for readers new to the method.
EXPLAIN = {
    "integration": "memory of layer activity: 0.5 none, 1 strong",
    "integration_corrected": "without the bias of DFA at this length: compare runs",
    "integration_global": "the same, for the mean of all layers",
    "integration_global_corrected": "the same, corrected",
    "synchrony": "phase alignment of the layers, 0 to 1",
    "metastability": "how much that alignment varies",
    "stability_index": "integration x (1 - metastability)",
    "style": "windowed integration vs metastability",
    "convergence": "stability index stops fluctuating",
    "plateau": "accuracy close to its best",
    "lead": "plateau minus the epoch convergence was decided",
}


def _epoch(value: float | None) -> str:
    return "-" if value is None else f"epoch {format_number(value, None)}"


def _interval_text(interval: Sequence[object] | None) -> str:
    """``"[0.702, 0.918]"``; ``""`` without an interval."""
    return "" if not interval or None in interval else format_interval(interval)


def measure_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(measure, value, uncertainty, meaning)`` rows summarising one analysis.

    The uncertainty is the 95% interval, then the p-value and what the test says; the
    style and the convergence rows are worded by their surrogate tests
    (:mod:`dynatrain.report.style_text`, :mod:`dynatrain.report.convergence_text`).
    Fields a result saved by an earlier version lacks show ``-``.
    """
    from dynatrain.report.convergence_text import converged_text, early_warning_text
    from dynatrain.report.style_text import style_text

    settings = result["settings"]
    surrogates = settings.get("surrogates")
    integration_p = p_value_text(result["integration_p"], surrogates)
    style, style_detail = style_text(result["style"], settings)
    convergence = result["convergence"]
    converged, converged_detail = converged_text(convergence, settings)
    warning, warning_detail = early_warning_text(convergence, settings)
    return [
        (
            "integration",
            format_number(result["integration"]),
            " ".join(x for x in (_interval_text(result["integration_ci95"]), integration_p) if x),
            EXPLAIN["integration"],
        ),
        (
            "  corrected",
            format_number(result.get("integration_corrected")),
            _interval_text(result.get("integration_corrected_ci95")),
            EXPLAIN["integration_corrected"],
        ),
        (
            "  mean field",
            format_number(result["integration_global"]),
            "",
            EXPLAIN["integration_global"],
        ),
        (
            "    corrected",
            format_number(result.get("integration_global_corrected")),
            "",
            EXPLAIN["integration_global_corrected"],
        ),
        (
            "synchrony",
            format_number(result["synchrony"]),
            p_value_text(result.get("synchrony_p"), surrogates),
            EXPLAIN["synchrony"],
        ),
        (
            "metastability",
            format_number(result["metastability"]),
            p_value_text(result["metastability_p"], surrogates),
            EXPLAIN["metastability"],
        ),
        (
            "stability index",
            format_number(result["stability_index"]),
            "",
            EXPLAIN["stability_index"],
        ),
        ("training style", style, style_detail, EXPLAIN["style"]),
        ("DSI converged", converged, converged_detail, EXPLAIN["convergence"]),
        (
            "accuracy plateau",
            _epoch(convergence["accuracy_plateau_epoch"]),
            convergence["metric"] or "no metric",
            EXPLAIN["plateau"],
        ),
        ("early warning", warning, warning_detail, EXPLAIN["lead"]),
    ]


#: Longest warning shown in full in a REPL repr (the rest is in ``result.warnings``).
_WARNING_CHARACTERS = 110


def run_name(result: Mapping[str, Any]) -> str:
    """The run's id, else its archive's file name (control characters escaped)."""
    return printable(result.get("run_id") or os.path.basename(str(result["run"]).rstrip("/\\")))


def _span(result: Mapping[str, Any]) -> str:
    first, last = result["epochs"]
    excluded = len(result.get("excluded_layers") or ())
    return (
        f"{result['checkpoints']} checkpoints (epochs {format_number(first, None)} to"
        f" {format_number(last, None)}), {result['layers_analysed']} layers analysed"
        + (f", {excluded} excluded" if excluded else "")
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def result_text(result: Mapping[str, Any]) -> str:
    """A few lines: the run, its size, the measures and their uncertainty, convergence.

    Each warning follows on a line of its own (shortened; ``result.warnings`` has them whole).
    """
    rows = {name.strip(): (value, detail) for name, value, detail, _ in measure_rows(result)}

    def shown(name: str, label: str | None = None) -> str:
        value, detail = rows[name]
        return f"{label or name} {value}" + (f" {detail}" if detail else "")

    converged, converged_detail = rows["DSI converged"]
    plateau, metric = rows["accuracy plateau"]
    warning, warning_detail = rows["early warning"]
    style, rho = rows["training style"]
    lines = [
        f"<AnalysisResult {run_name(result)}: {_span(result)}>",
        "  " + "   ".join(shown(name) for name in ("integration", "metastability")),
        "  "
        + "   ".join(shown(name) for name in ("synchrony", "stability index"))
        + f"   style {style}"
        + (f" ({rho})" if rho else ""),
        f"  stability index converged: {converged}"
        + (f" ({converged_detail})" if converged_detail else ""),
        f"  {metric} plateau: {plateau}; early warning: {warning}"
        + (f" ({warning_detail})" if warning_detail else ""),
    ]
    for note in result.get("warnings") or ():
        lines.append("  warning: " + _clip(printable(note), _WARNING_CHARACTERS))
    return "\n".join(lines)


_TABLE_STYLE = "border-collapse:collapse;font-size:0.9em"
_CELL_STYLE = "padding:0.15em 0.6em;text-align:left;border-bottom:1px solid #ddd"


def _html_rows(rows: Sequence[Sequence[str]], header: Sequence[str] = ()) -> str:
    cells = "".join(f"<th style='{_CELL_STYLE}'>{html.escape(c)}</th>" for c in header)
    head = f"<thead><tr>{cells}</tr></thead>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL_STYLE}'>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table style='{_TABLE_STYLE}'>{head}<tbody>{body}</tbody></table>"


def result_html(result: Mapping[str, Any]) -> str:
    """A small HTML table for Jupyter: the run, the measures, the warnings."""
    rows = [
        (name.strip(), value, uncertainty, meaning)
        for name, value, uncertainty, meaning in measure_rows(result)
    ]
    parts = [
        f"<div><strong>AnalysisResult {html.escape(run_name(result))}</strong>"
        f" &middot; {html.escape(_span(result))}",
        _html_rows(rows, ("measure", "value", "uncertainty", "meaning")),
    ]
    warnings = list(result.get("warnings") or ())
    if warnings:
        items = "".join(f"<li>{html.escape(printable(w))}</li>" for w in warnings)
        parts.append(f"<p style='margin:0.3em 0'>Warnings:</p><ul style='margin:0'>{items}</ul>")
    return "\n".join(parts) + "</div>"


def batch_text(records: Sequence[Mapping[str, Any]]) -> str:
    """A few lines about many runs: how many, how many failed, and the first few."""
    failed = [r for r in records if "error" in r]
    lines = [f"<BatchResult: {len(records)} runs, {len(failed)} failed>"]
    shown = 5
    for record in records[:shown]:
        if "error" in record:
            lines.append(f"  {run_name(record)}: failed: {_clip(printable(record['error']), 80)}")
        else:
            lines.append(
                f"  {run_name(record)}: integration {format_number(record['integration'])},"
                f" metastability {format_number(record['metastability'])},"
                f" converged {_epoch(record['convergence']['epoch'])}"
            )
    if len(records) > shown:
        lines.append(f"  ... {len(records) - shown} more (.to_frame() for all)")
    return "\n".join(lines)


def batch_html(records: Sequence[Mapping[str, Any]]) -> str:
    """An HTML table of many runs for Jupyter: one row per run."""
    rows = []
    for record in records:
        if "error" in record:
            rows.append((run_name(record), "failed", printable(record["error"]), "", ""))
            continue
        rows.append(
            (
                run_name(record),
                format_number(record["integration"]),
                format_interval(record.get("integration_ci95")),
                format_number(record["metastability"]),
                _epoch(record["convergence"]["epoch"]),
            )
        )
    failed = sum("error" in r for r in records)
    header = ("run", "integration", "95% CI", "metastability", "converged")
    return (
        f"<div><strong>BatchResult</strong> &middot; {len(records)} runs, {failed} failed"
        + _html_rows(rows, header)
        + "</div>"
    )
