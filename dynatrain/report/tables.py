"""Rich renderings for people at a terminal.

Every function takes plain data and a :class:`rich.console.Console` and prints;
it computes nothing (tests record the console and compare the text).

Rich reads a plain ``str`` as markup (``[bold]``, ``:smile:``), so every string that
comes from the data (paths, run ids, layer, metric and metadata names and values,
problems) is passed as :class:`rich.text.Text`, which is printed as it is: a layer named
``[/oops]`` is shown, not parsed (and cannot fail the rendering). Rich passes most
control characters through (an ESC in a run id would reach the terminal), so the same
strings first go through :func:`~dynatrain.report._format.printable` (:func:`data_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dynatrain.report._format import p_value_text, printable
from dynatrain.report.convergence_text import converged_text, early_warning_text

__all__ = [
    "analysis_markdown",
    "data_text",
    "format_bytes",
    "measure_rows",
    "render_analysis",
    "render_inspect",
    "render_validation",
]


def data_text(value: Any, style: str = "") -> Text:
    """A string from the data as rich text: shown as it is, control characters escaped."""
    return Text(printable(value), style=style)


def format_bytes(n_bytes: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"unknown"``."""
    if n_bytes is None:
        return "unknown"
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _key_values(pairs: Mapping[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs.items():
        grid.add_row(data_text(key), data_text(value))
    return grid


def render_inspect(summary: Mapping[str, Any], console: Console) -> None:
    """Print an archive summary (:meth:`dynatrain.archive.reader.Archive.summary`)."""
    epochs = summary["epochs"]
    span = f"epochs {epochs[0]:g} to {epochs[1]:g}" if epochs else "no complete checkpoint"
    facts = {
        "back end": f"{summary['backend']} (format {summary['format_version']})",
        "checkpoints": f"{summary['checkpoints']} ({span})",
        "size on disk": format_bytes(summary.get("size_bytes")),
        "metrics": ", ".join(summary["metrics"]) or "none",
    }
    layers = Table(title="Layers (input side first)", title_justify="left", expand=False)
    layers.add_column("#", justify="right", style="dim")
    layers.add_column("layer", style="bold")
    layers.add_column("stored")
    layers.add_column("shape per checkpoint")
    layers.add_column("dtype")
    for i, layer in enumerate(summary["layers"]):
        shape = " x ".join(map(str, layer["shape"])) if layer["shape"] else "scalar"
        layers.add_row(
            str(i),
            data_text(layer["name"]),
            data_text(" + ".join(layer["kinds"])),
            data_text(shape),
            data_text(layer["dtype"]),
        )
    parts: list[Any] = [_key_values(facts)]
    if summary["metadata"]:
        parts += [
            Text(""),
            Text("Metadata", style="bold underline"),
            _key_values(summary["metadata"]),
        ]
    console.print(Panel(Group(*parts), title=data_text(summary["path"]), title_align="left"))
    console.print(layers)


def render_validation(report: Any, console: Console) -> None:
    """Print one line per problem and note of a :class:`ValidationReport`."""
    path = printable(report.path)
    if report.valid:
        size = ""
        if report.n_checkpoints is not None:
            size = f" ({report.n_checkpoints} checkpoints, {report.n_layers} layers)"
        console.print(Text.assemble(("ok", "green"), " ", path, size), soft_wrap=True)
    for problem in report.problems:
        console.print(
            Text.assemble(("invalid", "red"), " ", path, ": ", printable(problem)), soft_wrap=True
        )
    for note in report.notes:
        console.print(
            Text.assemble(("note", "yellow"), " ", path, ": ", printable(note)), soft_wrap=True
        )


# -- analyze --------------------------------------------------------------------------------------

#: Terminal width from which the explanations fit beside the measures.
WIDE_TERMINAL = 110
#: One-line explanations shown next to each measure, for readers new to the method.
EXPLAIN = {
    "integration": "memory of layer activity: 0.5 none, 1 strong",
    "integration_global": "the same, for the mean of all layers",
    "synchrony": "phase alignment of the layers, 0 to 1",
    "metastability": "how much that alignment varies",
    "stability_index": "integration x (1 - metastability)",
    "style": "windowed integration vs metastability",
    "convergence": "stability index stops fluctuating",
    "plateau": "accuracy close to its best",
    "lead": "plateau minus the epoch convergence was decided",
}


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _epoch(value: float | None) -> str:
    return "-" if value is None else f"epoch {value:g}"


def measure_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(measure, value, uncertainty, meaning)`` rows summarising one analysis."""
    ci = result["integration_ci95"]
    ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    surrogates = result["settings"].get("surrogates")
    integration_p = p_value_text(result["integration_p"], surrogates)
    style = result["style"]
    convergence = result["convergence"]
    converged, converged_detail = converged_text(convergence, result["settings"])
    warning, warning_detail = early_warning_text(convergence)
    return [
        (
            "integration",
            _num(result["integration"]),
            " ".join(x for x in (ci_text, integration_p) if x),
            EXPLAIN["integration"],
        ),
        ("  mean field", _num(result["integration_global"]), "", EXPLAIN["integration_global"]),
        (
            "synchrony",
            _num(result["synchrony"]),
            p_value_text(result.get("synchrony_p"), surrogates),
            EXPLAIN["synchrony"],
        ),
        (
            "metastability",
            _num(result["metastability"]),
            p_value_text(result["metastability_p"], surrogates),
            EXPLAIN["metastability"],
        ),
        ("stability index", _num(result["stability_index"]), "", EXPLAIN["stability_index"]),
        (
            "training style",
            style["label"] if style else "-",
            f"rho = {style['spearman']:.2f}" if style else "",
            EXPLAIN["style"],
        ),
        ("DSI converged", converged, converged_detail, EXPLAIN["convergence"]),
        (
            "accuracy plateau",
            _epoch(convergence["accuracy_plateau_epoch"]),
            convergence["metric"] or "no metric",
            EXPLAIN["plateau"],
        ),
        ("early warning", warning, warning_detail, EXPLAIN["lead"]),
    ]


def _step_text(settings: Mapping[str, Any]) -> str:
    """``"checkpoint"`` or ``"30 checkpoints"``: how far apart the windows start."""
    step = settings.get("window_step", 1)
    return "checkpoint" if step == 1 else f"{step} checkpoints"


def _rule_text(settings: Mapping[str, Any]) -> str:
    """The convergence rule in a few words."""
    peak = "running peak" if settings.get("convergence_rule") == "causal" else "whole-run peak"
    return (
        f"converged below {settings['vol_threshold']:g} x {peak} for"
        f" {settings['vol_patience']} windows"
    )


def render_analysis(result: Mapping[str, Any], console: Console) -> None:
    """Print one run's analysis (the dict of ``AnalysisResult.to_dict()``).

    Warnings are not printed here: the CLI sends them to stderr.
    """
    meta = result["metadata"]
    settings = result["settings"]
    about = {
        "run": " / ".join(
            str(v) for v in (result["run_id"], meta.get("model"), meta.get("dataset")) if v
        )
        or result["run"],
        "checkpoints": f"{result['checkpoints']} (epochs {result['epochs'][0]:g} to"
        f" {result['epochs'][1]:g})",
        "layers": f"{result['layers_analysed']} analysed"
        + (f", {len(result['excluded_layers'])} excluded" if result["excluded_layers"] else ""),
    }
    # On a wide terminal each measure is explained on its row; on a narrow one, below.
    wide = console.width >= WIDE_TERMINAL
    measures = Table(box=None, padding=(0, 1), header_style="bold")
    measures.add_column("measure", no_wrap=True)
    measures.add_column("value", justify="right", no_wrap=True)
    # The convergence's uncertainty is a few words long: it wraps on a narrow terminal.
    measures.add_column("uncertainty")
    if wide:
        measures.add_column("meaning", style="dim")
    legend = Text(style="dim")
    for name, value, uncertainty, meaning in measure_rows(result):
        # The uncertainty of the plateau is the metric's name, from the archive.
        measures.add_row(
            name, data_text(value), data_text(uncertainty), *([meaning] if wide else [])
        )
        if not wide and not name.startswith(" "):
            legend.append(f"{name}: {meaning}\n")

    layers = Table(title="Layers", title_justify="left", header_style="bold")
    layers.add_column("layer")
    layers.add_column("alpha", justify="right")
    layers.add_column("signal mean", justify="right")
    layers.add_column("signal std", justify="right")
    for layer in result["layers"]:
        layers.add_row(
            data_text(layer["name"]),
            _num(layer["alpha"]),
            f"{layer['mean']:.4g}",
            f"{layer['std']:.4g}",
        )
    for excluded in result["excluded_layers"]:
        layers.add_row(
            data_text(excluded["name"], style="dim"),
            "-",
            "-",
            data_text(f"excluded: {excluded['reason']}", style="dim"),
        )

    footer = Text(
        f"reduce {settings['reduce']}, transform {settings['transform']}, DFA order"
        f" {settings['dfa_order']} scales {settings['min_scale']}..{settings['max_scale']},"
        f" window {settings['window']} every {_step_text(settings)},"
        f" volatility over {settings['vol_window']} windows, {_rule_text(settings)},"
        f" {settings['surrogates']} surrogates, seed {settings['seed']}",
        style="dim",
    )
    parts = [_key_values(about), Text(""), measures, Text(""), *([] if wide else [legend]), footer]
    console.print(Panel(Group(*parts), title=data_text(result["run"]), title_align="left"))
    console.print(layers)


def analysis_markdown(result: Mapping[str, Any]) -> str:
    """A Markdown summary of one run: the measures, then the layers."""
    from dynatrain.report.export import to_markdown

    columns = ["measure", "value", "uncertainty", "meaning"]
    rows = [
        dict(zip(columns, (c.strip() for c in row), strict=True)) for row in measure_rows(result)
    ]
    layers = [
        {
            "layer": layer["name"],
            "alpha": layer["alpha"],
            "mean": layer["mean"],
            "std": layer["std"],
        }
        for layer in result["layers"]
    ]
    head = f"### {printable(result['run_id'] or result['run'])}\n\n"
    return head + to_markdown(rows, columns) + "\n" + to_markdown(layers)
