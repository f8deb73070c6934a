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
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dynatrain._format import (
    cell_text,
    did_you_mean,
    format_interval,
    format_number,
    printable,
)
from dynatrain._plain import run_columns, run_rows
from dynatrain.batch import Comparison, GroupSummary, smallest_p_value
from dynatrain.errors import InputError
from dynatrain.frames import comparison_columns, group_columns
from dynatrain.report.convergence_text import early_warning_text
from dynatrain.report.export import to_csv, to_json, to_markdown
from dynatrain.report.outputs import (
    check_output_dir,
    is_inside,
    run_stem,
    write_file,
    writing,
)

__all__ = [
    "RunFiles",
    "batch_markdown",
    "batch_progress",
    "check_report_dir",
    "comparison_table_rows",
    "csv_columns",
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


def _with_interval(value: float | None, interval: Sequence[float | None] | None) -> str | None:
    """``"0.812 [0.771, 0.850]"``; ``None`` without a value."""
    if value is None or value != value:
        return None
    return format_number(value) + ("" if interval is None else f" {format_interval(interval)}")


def _epoch(value: float | None) -> str | None:
    return None if value is None else format_number(value, None)


def _numeric(value: Any) -> bool:
    """A number, a missing value, or a number already written as text (``"53"``)."""
    if isinstance(value, str):
        return _NUMBER_TEXT.match(value) is not None
    return isinstance(value, (int, float, type(None)))


#: Text that starts as a number does: right-justified like numbers.
_NUMBER_TEXT = re.compile(r"[-+]?(\d|\.\d|inf)")


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
            # Corrected for the finite-size bias at the run's length: comparable across runs.
            "corrected [95% CI]": _with_interval(
                record.get("integration_corrected"), record.get("integration_corrected_ci95")
            ),
            "metastability": record.get("metastability"),
            "DSI": record.get("stability_index"),
            # Labelled only when significant; p null: untested (no surrogates).
            "style": style["label"] if style else None,
            "p (style)": style.get("p") if style else None,
            # Epochs as they are (53, not 53.000): they are not measures.
            "converged": _epoch(convergence.get("epoch")),
            "decided": _epoch(convergence.get("decided_epoch")),
            "p (converged)": convergence.get("p"),
            "relapse": convergence.get("relapse"),
            "plateau": _epoch(convergence.get("accuracy_plateau_epoch")),
            # Worded by the convergence's test: no lead for a convergence the run's own
            # surrogates reach as early.
            "early warning": (
                early_warning_text(convergence, record.get("settings"))[0] if convergence else None
            ),
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
            "95% CI (t)": format_interval((row["ci95_low"], row["ci95_high"])),
        }
        for row in rows
    ]


def varied_keys(summary: GroupSummary, comparison: Comparison) -> list[str]:
    """The ``--group-by`` keys whose values differ between the two groups compared."""
    groups = {group.label: group for group in summary.groups}
    a, b = groups[comparison.group_a], groups[comparison.group_b]
    return [key for key in summary.keys if a.values.get(key) != b.values.get(key)]


def comparison_table_rows(
    summary: GroupSummary, *, one_factor: bool | None = None
) -> list[dict[str, Any]]:
    """One row per measure and pair of groups for people.

    Parameters
    ----------
    summary : GroupSummary
    one_factor : bool, optional
        True: only the pairs that differ in one ``--group-by`` key (the comparisons that
        say what that key does), with a ``varies`` column naming it; False: only the
        others; None: all pairs.
    """
    rows = []
    several_keys = len(summary.keys) > 1
    for comparison in summary.comparisons:
        varied = varied_keys(summary, comparison)
        if one_factor is not None and (len(varied) == 1) != one_factor:
            continue
        row: dict[str, Any] = {"measure": comparison.measure}
        if several_keys:
            row["varies"] = ", ".join(varied)
        row.update(
            {
                "B vs A": f"{comparison.group_b} vs {comparison.group_a}",
                "n (A, B)": f"{comparison.n_a}, {comparison.n_b}",
                "mean B - A": comparison.difference,
                "Cohen's d": comparison.cohens_d,
                "p (MWU)": comparison.p_value,
                "AUROC": comparison.auroc,
            }
        )
        rows.append(row)
    return rows


def small_groups_note(summary: GroupSummary, threshold: float = 0.1) -> str | None:
    """A sentence when groups are too small for a comparison to reach ``p < threshold``.

    With 3 runs against 3, the smallest two-sided Mann-Whitney p is 0.1 (every run of
    one group above every run of the other): no such comparison can reach p < 0.1,
    whatever the data. ``None`` when every comparison can.
    """
    floors = [
        (smallest_p_value(c.n_a, c.n_b), c.n_a, c.n_b)
        for c in summary.comparisons
        if c.n_a and c.n_b
    ]
    blocked = [floor for floor in floors if floor[0] >= threshold]
    if not blocked:
        return None
    floor, n_a, n_b = min(blocked)
    sizes = f"{n_a} runs against {n_b}" if n_a != n_b else f"{n_a} runs per group"
    which = (
        "No comparison"
        if len(blocked) == len(floors)
        else (f"{len(blocked)} of {len(floors)} comparisons")
    )
    return (
        f"{which} here can reach p < {format_number(threshold, None)}: with {sizes} the"
        f" smallest two-sided Mann-Whitney p is {format_number(floor)}, even when every run of"
        " one group lies above every run of the other. Read Cohen's d and the AUROC; add runs"
        " (seeds) to test."
    )


def runs_csv(
    records: Records, summary: GroupSummary | None = None, columns: Sequence[str] | None = None
) -> str:
    """CSV of the runs: ``run, run_id, error``, the metadata, the measures, then the settings.

    With a ``summary`` grouped by metadata keys, a ``group`` column follows ``error``:
    the label of the run's group (empty for a failed run). ``columns`` chooses the
    columns (default: all, in the order of :func:`~dynatrain._plain.run_columns`).
    """
    rows = run_rows(records, summary)
    return to_csv(rows, run_columns(rows) if columns is None else columns)


#: ``--columns summary``: what a reader compares runs on, in the order of the tables.
SUMMARY_COLUMNS = (
    "integration",
    "integration_ci95.0",
    "integration_ci95.1",
    "integration_p",
    "metastability",
    "metastability_p",
    "stability_index",
    "style.label",
    "convergence.epoch",
    "convergence.decided_epoch",
    "convergence.p",
    "convergence.accuracy_plateau_epoch",
    "convergence.lead_epochs",
)


def csv_columns(records: Records, summary: GroupSummary | None, choice: str) -> list[str]:
    """The columns ``--columns`` chooses: ``all``, ``summary``, or names separated by commas.

    ``summary``: ``run_id`` (and ``run`` when a run has no id), the group and its keys (or
    ``dataset``, ``model``, ``seed`` where present), :data:`SUMMARY_COLUMNS`, and
    ``error`` last (its text may hold commas) when a run failed.

    Raises
    ------
    InputError
        For a column that no run has (with the closest names).
    """
    rows = run_rows(records, summary)
    available = run_columns(rows)
    if choice == "all":
        return available
    if choice == "summary":
        keys = _metadata_columns(records, summary or GroupSummary((), (), []))
        lacks_id = any(not row.get("run_id") for row in rows)
        chosen = [
            *(["run"] if lacks_id else []),
            "run_id",
            *(["group"] if "group" in available else []),
            *(f"metadata.{key}" for key in keys),
            *SUMMARY_COLUMNS,
            *(["error"] if any(row["error"] for row in rows) else []),
        ]
        return [column for column in chosen if column in available]
    chosen = [name.strip() for name in choice.split(",") if name.strip()]
    for name in chosen:
        if name not in available:
            raise InputError(
                f"--columns: no column {name!r}{did_you_mean(name, available)} (all or summary,"
                " or names from the"
                " header of --columns all)"
            )
    if not chosen:
        raise InputError("--columns: give all, summary, or column names separated by commas")
    return chosen


# -- terminal and Markdown -------------------------------------------------------------------------


#: What the group and comparison columns mean, under their tables.
_GROUPS_NOTE = "sd: sample standard deviation; 95% CI: t-interval of the mean (none below 2 runs)."
_COMPARISONS_NOTE = (
    "For groups A and B: mean B - A; Cohen's d with the pooled sd; p: two-sided Mann-Whitney U"
    " test, not adjusted for multiple comparisons; AUROC = U / (nA nB), the probability that a"
    " run of B has a larger value than a run of A (0.5: no separation)."
)


def _comparisons_note(summary: GroupSummary) -> str:
    """What the comparison columns mean, and whether the groups can reach p < 0.1."""
    small = small_groups_note(summary)
    return _COMPARISONS_NOTE + (f" {small}" if small else "")


def _cell(value: Any) -> str | Text:
    """A rich cell: a number as a (highlighted) string, any text as :class:`Text`.

    Rich would read a string cell as markup, and strings here come from the data.
    """
    text = cell_text(value)
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
        numeric = all(_numeric(row[column]) for row in rows)
        # The first column names the row (a run, a measure): other columns wrap before it.
        name_width = max(len(cell_text(row[column])) for row in rows) if position == 0 else None
        justify: Literal["left", "right"] = "right" if numeric else "left"
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
            _rich_table(
                "Between groups", comparison_table_rows(summary), _comparisons_note(summary)
            )
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
            + f"\n{_comparisons_note(summary)}\n"
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
    """A safe, unique file-name stem per run (:func:`~dynatrain.report.outputs.run_stem`).

    Stems equal but for case get ``-2``, ``-3``... (in input order).
    """
    taken: set[str] = set()
    return [_unique(run_stem(record), taken) for record in records]


def _unique(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... if taken (case ignored); marked as taken."""
    unique, suffix = stem, 2
    while unique.lower() in taken:
        unique, suffix = f"{stem}-{suffix}", suffix + 1
    taken.add(unique.lower())
    return unique


class RunFiles:
    """Write each run's JSON to ``DIR/runs/<stem>.json`` as soon as its record is done.

    A batch with a report folder keeps each run's ``detail`` (what ``dynatrain plot``
    draws the run's figures from) only until its file is written, so memory does not grow
    with the series of every run. Stems are those of :func:`run_file_stems`, given in
    input order. Check the folder first (:func:`check_report_dir`).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self.written: list[str] = []
        self._taken: set[str] = set()

    def write(self, record: Mapping[str, Any]) -> str:
        """Write one run's record (the next in input order); return its path."""
        stem = _unique(run_stem(record), self._taken)
        with writing(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            path = _write_inside(
                self.directory, f"{RUNS_FOLDER}/{stem}.json", to_json(record) + "\n"
            )
        self.written.append(path)
        return path


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
    run_files: RunFiles | None = None,
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
    run_files : RunFiles, optional
        Where the runs' JSON files were written as the runs were analysed; without it,
        they are written here from ``records`` (with their ``detail`` if they have it).

    Raises
    ------
    InputError
        If the folder is refused (:func:`check_report_dir`, with the records' runs as
        the inputs) or a file cannot be written (the message names it).
    """
    from dynatrain.report.batch_plots import plot_batch

    directory = os.fspath(directory)
    # Not empty any more when the runs' files were written as they came (run_files).
    empty_or_ours = force or run_files is not None
    check_report_dir(
        directory, force=empty_or_ours, inputs=(str(record["run"]) for record in records)
    )
    with writing(directory):
        os.makedirs(directory, exist_ok=True)
        written = [
            _write_inside(directory, "runs.csv", runs_csv(records, summary)),
            _write_inside(
                directory, "groups.csv", to_csv(summary.group_rows(), group_columns(summary))
            ),
            _write_inside(
                directory,
                "comparisons.csv",
                to_csv(summary.comparison_rows(), comparison_columns()),
            ),
            _write_inside(directory, "groups.json", to_json(summary.to_dict()) + "\n"),
        ]
        if run_files is None:
            run_files = RunFiles(directory)
            for record in records:
                run_files.write(record)
        written += run_files.written
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
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
.wide { overflow-x: auto; }
img { max-width: 100%; height: auto; }
figure { margin: 0.5em 1em 1.5em 0; display: inline-block; vertical-align: top; }
.error { color: #b00020; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
.caution { background: #fff6e0; border-left: 4px solid #e69f00; padding: 0.4em 0.8em; }
details > summary { cursor: pointer; margin: 0.5em 0; }
"""


def _html_table(rows: Sequence[Mapping[str, Any]], links: Sequence[str | None] = ()) -> str:
    """A table; ``links``: a relative URL per row for its first cell (or ``None``)."""
    if not rows:
        return "<p class='note'>none</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(printable(c))}</th>" for c in columns)
    lines = []
    for position, row in enumerate(rows):
        cells = [html.escape(cell_text(row[c])) for c in columns]
        link = links[position] if position < len(links) else None
        if link is not None:
            cells[0] = f"<a href='{html.escape(link)}'>{cells[0]}</a>"
        lines.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    return f"<div class='wide'>{table}</div>"


#: Pixels per inch of the figures (``savefig.dpi``) and of a CSS inch: each figure is shown
#: at the size it was drawn for, so text reads the same size in every figure.
_FIGURE_DPI, _CSS_DPI = 150, 96


def _embedded_png(path: str) -> str:
    with open(path, "rb") as stream:
        data = stream.read()
    encoded = base64.b64encode(data).decode("ascii")
    name = html.escape(os.path.basename(path))
    width = int.from_bytes(data[16:20], "big")  # the PNG header's IHDR width
    size = f" width='{round(width * _CSS_DPI / _FIGURE_DPI)}'" if width else ""
    return f"<figure><img alt='{name}'{size} src='data:image/png;base64,{encoded}'></figure>"


def _note(text: str, css: str = "note") -> str:
    return f"<p class='{css}'>{html.escape(text)}</p>"


def report_html(
    records: Records,
    summary: GroupSummary,
    settings: Mapping[str, Any],
    *,
    version: str,
    figures: Sequence[str] = (),
) -> str:
    """One self-contained HTML page, read from the top: figures, comparisons, groups, runs.

    The figures come first; then the comparisons between groups that differ in one
    ``--group-by`` key (what that key does), with a warning when the groups are too small
    for any p-value to reach 0.1 (:func:`small_groups_note`); the pairs that differ in
    several keys at once follow, folded; then the group summary, the runs (each linked to
    its JSON in ``runs/``, from which ``dynatrain plot`` draws its figures), the failures,
    warnings and settings. Every text from the data is escaped; ``figures`` (PNG paths)
    are embedded as data URIs, so the page opens in a browser without a server or the
    other files.
    """
    failed = [record for record in records if "error" in record]
    by = printable(", ".join(summary.keys)) or "none (all runs together)"
    sections = [
        "<h1>dynatrain batch report</h1>",
        f"<p>{len(records)} runs, {len(failed)} failed; grouped by {html.escape(by)};"
        f" dynatrain {html.escape(version)}.</p>",
    ]
    if figures:
        sections += ["<h2>Figures</h2>", *(_embedded_png(path) for path in figures)]
    if summary.comparisons:
        one_factor = comparison_table_rows(summary, one_factor=True)
        crossed = comparison_table_rows(summary, one_factor=False)
        small = small_groups_note(summary)
        title = "Between groups" + (" that differ in one key" if len(summary.keys) > 1 else "")
        sections += [f"<h2>{title}</h2>"]
        if small:
            sections.append(_note(small, "note caution"))
        sections += [_html_table(one_factor), _note(_COMPARISONS_NOTE)]
        if crossed:
            sections += [
                f"<details><summary>{len(crossed)} comparisons between groups that differ in"
                " more than one key (which key made the difference, they cannot say)"
                "</summary>",
                _html_table(crossed),
                "</details>",
            ]
    sections += [
        "<h2>Groups</h2>",
        _html_table(group_table_rows(summary)),
        _note(_GROUPS_NOTE),
    ]
    links = [
        None if "error" in record else f"{RUNS_FOLDER}/{stem}.json"
        for stem, record in zip(run_file_stems(records), records, strict=True)
    ]
    sections += [
        "<h2>Runs</h2>",
        _html_table(run_table_rows(records, summary), links),
        _note(
            f"Each run's JSON ({RUNS_FOLDER}/<run>.json) holds what its figures are drawn from:"
            f" dynatrain plot {RUNS_FOLDER}/<run>.json --out figures/"
        ),
    ]
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
        _note(
            "As given; max_scale and window, when not given, are resolved per run (see each"
            " run's JSON)."
        ),
        _html_table(setting_rows),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        "<title>dynatrain batch report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
