"""Rich renderings for people at a terminal.

Every function takes plain data and a :class:`rich.console.Console` and prints;
it computes nothing (tests record the console and compare the text).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["format_bytes", "render_inspect", "render_validation"]


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
        grid.add_row(str(key), str(value))
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
        layers.add_row(str(i), layer["name"], " + ".join(layer["kinds"]), shape, layer["dtype"])
    parts: list[Any] = [_key_values(facts)]
    if summary["metadata"]:
        parts += [
            Text(""),
            Text("Metadata", style="bold underline"),
            _key_values(summary["metadata"]),
        ]
    console.print(Panel(Group(*parts), title=summary["path"], title_align="left"))
    console.print(layers)


def render_validation(report: Any, console: Console) -> None:
    """Print one line per problem and note of a :class:`ValidationReport`."""
    if report.valid:
        size = ""
        if report.n_checkpoints is not None:
            size = f" ({report.n_checkpoints} checkpoints, {report.n_layers} layers)"
        console.print(f"[green]ok[/green] {report.path}{size}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        console.print(
            f"[red]invalid[/red] {report.path}: {problem}", highlight=False, soft_wrap=True
        )
    for note in report.notes:
        console.print(
            f"[yellow]note[/yellow] {report.path}: {note}", highlight=False, soft_wrap=True
        )
