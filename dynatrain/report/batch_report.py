r"""Batch output: the runs and groups as tables (rich, Markdown, CSV) and the report folder.

The report folder (``dynatrain batch ... -o DIR``)::

    runs.csv                  one row per run (scalar fields, metadata, group, error)
    groups.csv                one row per group and measure: n, mean, sd, median, 95% CI
    comparisons.csv           one row per pair of groups and measure
    groups.json               the same two, with each group's runs
    runs/<run id>.json        each run's full record (file names from sanitised run ids)
    <figure>.png              the batch figures (:mod:`dynatrain.report.batch_plots`)
    report.html               all of it on one self-contained page (figures embedded)

Every file is created inside ``DIR``: names come from run ids with anything but
letters, digits, ``.``, ``_`` and ``-`` replaced, no leading dot, and the final path is
checked to lie in ``DIR`` before it is written, as every output is, through a
temporary file renamed over the name (a link there is replaced, never written
through: :func:`dynatrain.report.outputs.write_file`). A folder whose report files
would touch an input archive, or whose ``runs`` links out of it, is refused before any
run is analysed (:func:`check_report_dir`).

In the rich tables every text from the data (run ids, metadata, group labels, error
messages) is a :class:`rich.text.Text`, never markup: a run id ``[/oops]`` is shown;
its control characters are shown as escapes (``\x1b``), in the tables, the Markdown
and the HTML page alike.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dynatrain.batch import GroupSummary
from dynatrain.errors import InputError
from dynatrain.report._format import printable
from dynatrain.report.convergence_text import early_warning_text
from dynatrain.report.export import scalar_row, to_csv, to_json, to_markdown
from dynatrain.report.outputs import check_output_dir, is_inside, write_file, writing

__all__ = [
    "batch_markdown",
    "batch_progress",
    "check_report_dir",
    "comparison_table_rows",
    "group_table_rows",
    "render_batch",
    "report_entries",
    "report_html",
    "run_file_stems",
    "run_table_rows",
    "runs_csv",
    "write_groups_json",
    "write_report",
]

Records = Sequence[Mapping[str, Any]]

#: Metadata shown in the runs table when no ``--group-by`` key is given.
_DEFAULT_METADATA = ("dataset", "model", "seed")
#: Longest file-name stem derived from a run id.
_MAX_STEM = 100


def _text(value: Any, digits: int = 4) -> str:
    """A cell for people: ``digits`` significant digits, ``-`` for null or NaN.

    Text is shown with its control characters escaped (:func:`printable`).
    """
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return printable(value)


def _interval(interval: Sequence[float | None] | None) -> str:
    if not interval or None in interval:
        return "-"
    return f"[{_text(float(interval[0]), 3)}, {_text(float(interval[1]), 3)}]"


def _with_interval(value: float | None, interval: Sequence[float | None] | None) -> str | None:
    """``"0.812 [0.771, 0.85]"``; ``None`` without a value."""
    if value is None or value != value:
        return None
    return _text(float(value), 3) + ("" if interval is None else f" {_interval(interval)}")


# -- rows ------------------------------------------------------------------------------------------


def _metadata_columns(records: Records, summary: GroupSummary) -> list[str]:
    if summary.keys:
        return list(summary.keys)
    present = {key for record in records for key in record.get("metadata") or {}}
    return [key for key in _DEFAULT_METADATA if key in present]


def run_table_rows(records: Records, summary: GroupSummary) -> list[dict[str, Any]]:
    """One row per run for people: id, key metadata, measures, convergence, error."""
    keys = _metadata_columns(records, summary)
    failed = any("error" in record for record in records)
    rows = []
    for record in records:
        metadata = record.get("metadata") or {}
        convergence = record.get("convergence") or {}
        style = record.get("style")
        row = {
            "run": record.get("run_id") or record["run"],
            **{key: metadata.get(key) for key in keys},
            "integration [95% CI]": _with_interval(
                record.get("integration"), record.get("integration_ci95")
            ),
            "metastability": record.get("metastability"),
            "DSI": record.get("stability_index"),
            "style": style["label"] if style else None,
            "converged": convergence.get("epoch"),
            "decided": convergence.get("decided_epoch"),
            "p (converged)": convergence.get("p"),
            "relapse": convergence.get("relapse"),
            "plateau": convergence.get("accuracy_plateau_epoch"),
            # Worded by the convergence's test: no lead for a convergence the run's own
            # surrogates reach as early.
            "early warning": early_warning_text(convergence)[0] if convergence else None,
        }
        if failed:
            row["error"] = record.get("error")
        rows.append(row)
    return rows


def group_table_rows(summary: GroupSummary) -> list[dict[str, Any]]:
    """One row per measure and group for people (measure first, so groups sit together)."""
    rows = sorted(summary.group_rows(), key=lambda row: summary.measures.index(row["measure"]))
    return [
        {
            "measure": row["measure"],
            "group": row["group"],
            "n": row["n"],
            "mean": row["mean"],
            "sd": row["sd"],
            "median": row["median"],
            "95% CI (t)": _interval((row["ci95_low"], row["ci95_high"])),
        }
        for row in rows
    ]


def comparison_table_rows(summary: GroupSummary) -> list[dict[str, Any]]:
    """One row per measure and pair of groups for people."""
    return [
        {
            "measure": row["measure"],
            "B vs A": f"{row['group_b']} vs {row['group_a']}",
            "n (A, B)": f"{row['n_a']}, {row['n_b']}",
            "mean B - A": row["difference"],
            "Cohen's d": row["cohens_d"],
            "p (MWU)": row["p_value"],
            "AUROC": row["auroc"],
        }
        for row in summary.comparison_rows()
    ]


def runs_csv(records: Records, summary: GroupSummary | None = None) -> str:
    """CSV of the runs: ``run, run_id, error``, the metadata, then every scalar field.

    With a ``summary`` grouped by metadata keys, a ``group`` column follows ``error``:
    the label of the run's group (empty for a failed run).
    """
    rows = [scalar_row(record) for record in records]
    first = ["run", "run_id", "error"]
    if summary is not None and summary.keys:
        first.append("group")
        for group in summary.groups:
            for index in group.members:
                rows[index]["group"] = group.label
    seen = list(dict.fromkeys(key for row in rows for key in row))
    first += [key for key in seen if key.startswith("metadata.")]
    return to_csv(rows, [*first, *(key for key in seen if key not in first)])


# -- terminal and Markdown -------------------------------------------------------------------------


#: What the group and comparison columns mean, under their tables.
_GROUPS_NOTE = "sd: sample standard deviation; 95% CI: t-interval of the mean (none below 2 runs)."
_COMPARISONS_NOTE = (
    "For groups A and B: mean B - A; Cohen's d with the pooled sd; p: two-sided Mann-Whitney U"
    " test, not adjusted for multiple comparisons; AUROC = U / (nA nB), the probability that a"
    " run of B has a larger value than a run of A (0.5: no separation)."
)


def _cell(value: Any) -> str | Text:
    """A rich cell: a number as a (highlighted) string, any text as :class:`Text`.

    Rich would read a string cell as markup, and strings here come from the data.
    """
    text = _text(value, 3)
    return Text(text) if isinstance(value, str) else text


def _rich_table(title: str, rows: Sequence[Mapping[str, Any]], note: str | None = None) -> Table:
    table = Table(
        caption=note,
        caption_justify="left",
        title=Text(printable(title)),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),  # with the box's one-space separator: two spaces between columns
        show_edge=False,
    )
    columns = list(rows[0]) if rows else []
    for position, column in enumerate(columns):
        numeric = all(isinstance(row[column], (int, float, type(None))) for row in rows)
        # The first column names the row (a run, a measure): other columns wrap before it.
        name_width = max(len(_text(row[column])) for row in rows) if position == 0 else None
        justify = "right" if numeric else "left"
        table.add_column(Text(printable(column)), justify=justify, min_width=name_width)
    for row in rows:
        table.add_row(*(_cell(row[column]) for column in columns))
    return table


def render_batch(records: Records, summary: GroupSummary, console: Console) -> None:
    """Print the runs table (errors below it), then the group summary and the comparisons."""
    rows = run_table_rows(records, summary)
    for row in rows:
        row.pop("error", None)  # too wide for a column at a terminal
    console.print(_rich_table(f"Runs ({len(records)})", rows))
    for record in records:
        if "error" in record:
            message = Text.assemble(
                ("failed", "red"), " ", printable(record["run"]), ": ", printable(record["error"])
            )
            console.print(message, soft_wrap=True)
    by = ", ".join(summary.keys) or "none: all runs together"
    console.print(_rich_table(f"Groups (by {by})", group_table_rows(summary), _GROUPS_NOTE))
    if summary.comparisons:
        console.print(
            _rich_table("Between groups", comparison_table_rows(summary), _COMPARISONS_NOTE)
        )


def batch_markdown(records: Records, summary: GroupSummary) -> str:
    """The runs, groups and comparisons as Markdown sections."""
    by = printable(", ".join(summary.keys)) or "none: all runs together"
    parts = [
        f"## Runs ({len(records)})\n\n" + to_markdown(run_table_rows(records, summary)),
        f"## Groups (by {by})\n\n" + to_markdown(group_table_rows(summary)) + f"\n{_GROUPS_NOTE}\n",
    ]
    if summary.comparisons:
        parts.append(
            "## Between groups\n\n"
            + to_markdown(comparison_table_rows(summary))
            + f"\n{_COMPARISONS_NOTE}\n"
        )
    return "\n".join(parts)


@contextlib.contextmanager
def batch_progress(total: int, console: Console | None) -> Iterator[Callable[[], None]]:
    """A progress bar of ``total`` runs on ``console``; ``None``: silent.

    Yields the function to call each time a run is done. What is written to stdout
    meanwhile goes to stdout, not to the bar's console.
    """
    if console is None:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("analysing runs", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Rich would otherwise catch what is written to stdout meanwhile and print it on the
    # bar's console: the streamed JSON lines would land on stderr, wrapped, not in the pipe.
    with Progress(*columns, console=console, transient=True, redirect_stdout=False) as progress:
        task = progress.add_task("runs", total=total)
        yield lambda: progress.advance(task)


# -- report folder ---------------------------------------------------------------------------------


#: Files written at the top of the report folder (the figures come from ``batch_plots``).
REPORT_FILES = ("runs.csv", "groups.csv", "comparisons.csv", "groups.json", "report.html")
#: The subfolder of the runs' JSON files.
RUNS_FOLDER = "runs"


def report_entries() -> tuple[str, ...]:
    """The names :func:`write_report` writes in the report folder (``runs/``: a folder)."""
    from dynatrain.report.batch_plots import BATCH_FIGURES

    return (*REPORT_FILES, f"{RUNS_FOLDER}/", *(f"{name}.png" for name in BATCH_FIGURES))


def check_report_dir(
    directory: str | os.PathLike[str], *, force: bool, inputs: Iterable[str] = ()
) -> None:
    """Refuse a report folder that cannot take the report, before anything is analysed.

    Refused: a folder whose report files would touch an input archive (it is one, lies
    inside one, or one of its report files is or holds one; see
    :func:`dynatrain.report.outputs.check_output_dir`), a path that is a file or cannot
    be created, a non-empty folder without ``force``, and a ``runs`` entry that is not
    a folder of its own inside the report folder (a link out of it, say).

    Parameters
    ----------
    directory : str or path-like
    force : bool
        Allow a non-empty folder.
    inputs : iterable of str
        The archives the batch reads.

    Raises
    ------
    InputError
    """
    directory = os.fspath(directory)
    check_output_dir(directory, inputs=inputs, option="-o", entries=report_entries())
    if os.path.isdir(directory) and os.listdir(directory) and not force:
        raise InputError(f"{directory}: the report folder is not empty (--force to write into it)")
    runs = os.path.join(directory, RUNS_FOLDER)
    if os.path.lexists(runs):
        if not os.path.isdir(runs):
            raise InputError(f"{runs}: exists and is not a directory")
        if not is_inside(os.path.realpath(runs), os.path.realpath(directory)):
            raise InputError(
                f"{runs}: links outside the report folder {directory}; refusing to write through it"
            )


def run_file_stems(records: Records) -> list[str]:
    """A safe, unique file-name stem per run: its run id, else its file name without suffix.

    Anything but ASCII letters, digits, ``.``, ``_`` and ``-`` becomes ``_``; leading
    and trailing dots, underscores and dashes go, so ``../../x`` gives ``x`` and
    ``/etc/passwd`` gives ``etc_passwd``. Stems equal but for case get ``-2``, ``-3``...
    """
    stems: list[str] = []
    taken: set[str] = set()
    for record in records:
        file_name = os.path.basename(str(record["run"]).rstrip("/\\"))
        name = record.get("run_id") or os.path.splitext(file_name)[0]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")[:_MAX_STEM] or "run"
        unique, suffix = stem, 2
        while unique.lower() in taken:
            unique, suffix = f"{stem}-{suffix}", suffix + 1
        taken.add(unique.lower())
        stems.append(unique)
    return stems


def _write_inside(directory: str, relative: str, content: str | bytes) -> str:
    """Write ``directory/relative``, refusing any path that resolves outside ``directory``."""
    root = os.path.realpath(directory)
    path = os.path.normpath(os.path.join(root, relative))
    folder = os.path.dirname(path)
    if not is_inside(path, root) or path == root:
        raise InputError(f"{relative}: refusing to write outside the report folder {directory}")
    os.makedirs(folder, exist_ok=True)
    if not is_inside(os.path.realpath(folder), root):  # a linked subfolder
        raise InputError(f"{relative}: refusing to write outside the report folder {directory}")
    write_file(path, content)  # replaced, never written through (it may be a link)
    return os.path.join(directory, relative)


def write_report(
    directory: str | os.PathLike[str],
    records: Records,
    summary: GroupSummary,
    settings: Mapping[str, Any],
    *,
    version: str,
    force: bool = False,
) -> list[str]:
    """Write the report folder (see the module docstring) and return the paths written.

    Parameters
    ----------
    directory : str or path-like
        Created if missing; must be empty unless ``force`` (then the report's files
        are replaced and other files are left alone).
    records : sequence of dict
        Run records, in input order.
    summary : GroupSummary
    settings : mapping
        The settings of the batch, shown in ``report.html``.
    version : str
        The dynatrain version, shown in ``report.html``.
    force : bool

    Raises
    ------
    InputError
        If the folder is refused (:func:`check_report_dir`, with the records' runs as
        the inputs) or a file cannot be written (the message names it).
    """
    from dynatrain.report.batch_plots import plot_batch

    directory = os.fspath(directory)
    check_report_dir(directory, force=force, inputs=(str(record["run"]) for record in records))
    with writing(directory):
        os.makedirs(directory, exist_ok=True)
        written = [
            _write_inside(directory, "runs.csv", runs_csv(records, summary)),
            _write_inside(directory, "groups.csv", to_csv(summary.group_rows())),
            _write_inside(directory, "comparisons.csv", to_csv(summary.comparison_rows())),
            _write_inside(directory, "groups.json", to_json(summary.to_dict()) + "\n"),
        ]
        for stem, record in zip(run_file_stems(records), records, strict=True):
            relative = f"{RUNS_FOLDER}/{stem}.json"
            written.append(_write_inside(directory, relative, to_json(record) + "\n"))
        figures = []
        if summary.groups:  # each figure replaces what is at its name (save_figure)
            figures = plot_batch(records, summary, directory, fmt="png")
        written += figures
        page = report_html(records, summary, settings, version=version, figures=figures)
        written.append(_write_inside(directory, "report.html", page))
    return written


def write_groups_json(path: str | os.PathLike[str], summary: GroupSummary) -> None:
    """Write the group summary and comparisons (:meth:`GroupSummary.to_dict`) to ``path``.

    Check the path first with :func:`dynatrain.report.outputs.check_output_file`.

    Raises
    ------
    InputError
        If the file cannot be written (the message names it).
    """
    with writing(path):
        write_file(path, to_json(summary.to_dict()) + "\n")


# -- report.html -----------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
.error { color: #b00020; }
.note { color: #555; font-size: 0.9em; }
"""


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(printable(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(row[c]))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _embedded_png(path: str) -> str:
    with open(path, "rb") as stream:
        encoded = base64.b64encode(stream.read()).decode("ascii")
    name = html.escape(os.path.basename(path))
    return f"<figure><img alt='{name}' src='data:image/png;base64,{encoded}'></figure>"


def report_html(
    records: Records,
    summary: GroupSummary,
    settings: Mapping[str, Any],
    *,
    version: str,
    figures: Sequence[str] = (),
) -> str:
    """One self-contained HTML page: groups, comparisons, figures, runs, failures, settings.

    Every text from the data is escaped; ``figures`` (PNG paths) are embedded as
    data URIs, so the page opens in a browser without a server or the other files.
    """
    failed = [record for record in records if "error" in record]
    by = printable(", ".join(summary.keys)) or "none (all runs together)"
    sections = [
        "<h1>dynatrain batch report</h1>",
        f"<p>{len(records)} runs, {len(failed)} failed; grouped by {html.escape(by)};"
        f" dynatrain {html.escape(version)}.</p>",
        "<h2>Groups</h2>",
        _html_table(group_table_rows(summary)),
        f"<p class='note'>{html.escape(_GROUPS_NOTE)}</p>",
    ]
    if summary.comparisons:
        sections += [
            "<h2>Between groups</h2>",
            _html_table(comparison_table_rows(summary)),
            f"<p class='note'>{html.escape(_COMPARISONS_NOTE)}</p>",
        ]
    if figures:
        sections += ["<h2>Figures</h2>", *(_embedded_png(path) for path in figures)]
    sections += ["<h2>Runs</h2>", _html_table(run_table_rows(records, summary))]
    if failed:
        items = "".join(
            f"<li><code>{html.escape(printable(r['run']))}</code>:"
            f" {html.escape(printable(r['error']))}</li>"
            for r in failed
        )
        sections += ["<h2 class='error'>Failed runs</h2>", f"<ul class='error'>{items}</ul>"]
    if summary.warnings:
        items = "".join(f"<li>{html.escape(printable(w))}</li>" for w in summary.warnings)
        sections += ["<h2>Warnings</h2>", f"<ul>{items}</ul>"]
    setting_rows = [{"setting": key, "value": value} for key, value in settings.items()]
    sections += [
        "<h2>Settings</h2>",
        "<p class='note'>As given; max_scale and window, when not given, are resolved per"
        " run (see each run's JSON).</p>",
        _html_table(setting_rows),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<title>dynatrain batch report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
