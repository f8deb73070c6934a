"""The live panel of ``dynatrain watch`` at a terminal, drawn from one event.

Every string from the archive (the path, metric names) goes through
:func:`~dynatrain._format.printable` and into :class:`rich.text.Text`, never into
markup, and the convergence is worded by its test as in the other reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dynatrain._format import printable
from dynatrain.report.convergence_text import converged_text

__all__ = ["watch_panel"]


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _convergence_line(event: Mapping[str, Any], surrogates: int | None) -> str:
    convergence = event["convergence"]
    if convergence["decided_epoch"] is None:
        return "not yet"
    value, uncertainty = converged_text(convergence, {"convergence_surrogates": surrogates})
    if event.get("p_pending"):
        uncertainty = f"decided {convergence['decided_epoch']:g}, surrogate test running"
    return f"{value} ({uncertainty})" if uncertainty else value


def watch_panel(
    event: Mapping[str, Any], *, surrogates: int | None = None, writer: str | None = None
) -> RenderableType:
    """The panel for the newest event of a watch (a checkpoint or the end).

    Parameters
    ----------
    event : mapping
        What :meth:`dynatrain.watch.RunFollower.poll` returned (or the end's
        ``to_dict()``).
    surrogates : int, optional
        Most surrogate runs of the convergence test, for the wording of its p-value.
    writer : str, optional
        What is known of the writer (``"writing"``, ``"gone"``), shown in the title.
    """
    plan = event["window"]
    expected = plan.get("expected_checkpoints")
    rows: list[tuple[str, str]] = [
        ("run", printable(event.get("run", ""))),
        (
            "checkpoint",
            f"{event['checkpoints']}"
            + (f" of {expected}" if expected else "")
            + f" (epoch {event['epoch']:g})",
        ),
    ]
    measured = event.get("measured_at_checkpoints")
    over = "" if measured is None else f" (over {measured} checkpoints)"
    rows.append(("integration", _number(event["integration"]) + over))
    rows.append(("metastability", _number(event["metastability"]) + over))
    if event["windows"]:
        rows.append(
            (
                "stability index",
                f"{_number(event['stability_index'])} (window ending at epoch"
                f" {event['window_end_epoch']:g})",
            )
        )
        rows.append(("volatility", _number(event["volatility"])))
    else:
        rows.append(("stability index", f"first window after {plan['length']} points"))
    rows.append(("convergence", _convergence_line(event, surrogates)))
    for name, value in (event.get("metrics") or {}).items():
        rows.append((printable(name), _number(value, 4)))
    if event.get("stopped"):
        rows.append(("stopped", printable(event["stopped"])))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, value in rows:
        table.add_row(Text(name), Text(value))
    footer = Text(
        f"windows of {plan['length']} points, step {plan['step']} (from {plan['length_from']})",
        style="dim",
    )
    parts: list[RenderableType] = [table, footer]
    if event.get("event") == "end":
        parts.append(Text(printable(event["message"]), style="bold"))
    title = Text("dynatrain watch")
    if writer:
        title += Text(f"  writer: {writer}", style="dim")
    return Panel(Group(*parts), title=title, title_align="left")
