"""What a first user trips over: each rough edge of the first contact, with its fix.

Short runs and uneven checkpoints are said; figures of several runs share a folder;
the report's runs can be drawn; CSV reads at a terminal; one number format; errors
that name what the user can change; settings checked when they are made.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import dynatrain
from dynatrain._format import format_interval, format_number
from dynatrain.analysis import Settings
from dynatrain.errors import InputError
from dynatrain.report.tables import render_analysis

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


def _layers(n: int, seed: int = 0, n_layers: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"l{i}": rng.normal(size=(n, 3)) for i in range(n_layers)}


def one_line(result, *needles: str, exit_code: int = 2, after_warnings: bool = False) -> str:
    assert result.exit_code == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    if after_warnings:  # the runs' own warnings (e.g. an untested style) may come first
        lines = [line for line in lines if not line.startswith("dynatrain: warning: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- 2: short and uneven runs are said ---------------------------------------------------------


def test_a_short_run_warns_in_the_panel_and_the_json(plain_archive):
    short = dynatrain.analyze(plain_archive("short.h5", layers=_layers(25)), surrogates=19)
    assert np.isfinite(short.integration) and short.integration_p is not None
    (warning,) = [w for w in short.warnings if not w.startswith("no accuracy metric")]
    assert warning.startswith("only 24 analysed points: below 50, one layer's DFA exponent")
    console = Console(record=True, width=120, file=io.StringIO())
    render_analysis(short.to_dict(), console)
    assert "warning: only 24 analysed points" in console.export_text()
    accuracy = {"val_accuracy": np.linspace(0.1, 0.9, 51)}
    long = dynatrain.analyze(
        plain_archive("long.h5", layers=_layers(51), metrics=accuracy), surrogates=0
    )
    assert long.warnings == []  # 50 points: no warning


def test_uneven_checkpoints_are_said(plain_archive):
    epochs = np.concatenate([np.arange(0.0, 40.0), np.arange(40.0, 100.0, 5.0)])
    path = plain_archive("uneven.h5", layers=_layers(len(epochs)), epochs=epochs)
    result = dynatrain.analyze(path, surrogates=0, epochs="0:39")
    assert not any("unevenly" in w for w in result.warnings)  # the even part alone
    result = dynatrain.analyze(path, surrogates=0)
    (warning,) = [w for w in result.warnings if "unevenly" in w]
    assert warning.startswith("checkpoints are unevenly spaced in epoch (steps from 1 to 5 epochs)")
    fractional = np.arange(60) / 3  # steps of 1/3 epoch, with rounding: even
    path = plain_archive("thirds.h5", layers=_layers(60), epochs=fractional)
    assert not any("unevenly" in w for w in dynatrain.analyze(path, surrogates=0).warnings)


# -- 3: figures by run, and reachable from the batch report -----------------------------------


def test_figures_of_two_runs_share_a_folder(cli, tmp_path):
    for run in ("mlp-digits-seed0", "cnn-digits-seed0"):
        result = cli("analyze", SAMPLE / f"{run}.h5", "--surrogates", "0", "--plot", tmp_path)
        assert result.exit_code == 0, result.stderr
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 10
    assert names[:2] == ["cnn-digits-seed0-dfa.png", "cnn-digits-seed0-kuramoto.png"]
    assert "mlp-digits-seed0-signals.png" in names


# -- 4: CSV at a terminal ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory):
    from click.testing import CliRunner

    from dynatrain.cli import main

    def run(*options: str, surrogates: str = "0") -> str:
        result = CliRunner().invoke(
            main,
            [
                "batch",
                str(SAMPLE),
                "--surrogates",
                surrogates,
                "-j",
                "1",
                "--format",
                "csv",
                *options,
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.stderr
        return result.stdout

    return run


def test_the_readme_column_example_lines_up(sample_csv):
    """`batch ... --columns summary | column -s, -t`: no quoted field, same width each row."""
    text = sample_csv("--group-by", "dataset,model", "--columns", "summary")
    lines = text.splitlines()
    assert '"' not in text  # `column -s,` knows no quoting
    assert len({line.count(",") for line in lines}) == 1
    header = lines[0].split(",")
    assert header[:5] == ["run_id", "group", "metadata.dataset", "metadata.model", "integration"]
    assert len(header) < 20 and len(lines) == 41
    column = shutil.which("column")
    if column is not None:  # the README's command itself, on the shipped runs
        text = sample_csv("--group-by", "dataset", "--columns", "summary", surrogates="19")
        shown = subprocess.run([column, "-s,", "-t"], input=text, capture_output=True, text=True)
        # `column` merges empty fields (a run that did not converge): the README says so;
        # every row with all its values lines up with the header.
        full = [i for i, line in enumerate(text.splitlines()) if ",," not in line + ","]
        widths = {len(shown.stdout.splitlines()[i].split()) for i in full}
        assert len(full) > 20 and len(widths) == 1
    picked = sample_csv("--columns", "run_id,integration,convergence.epoch").splitlines()
    assert picked[0] == "run_id,integration,convergence.epoch"
    assert picked[1].startswith("cnn-digits-hard-seed0,0.")


def test_the_default_csv_puts_measures_before_settings(sample_csv):
    header = next(csv.reader(io.StringIO(sample_csv())))
    assert header[:3] == ["run", "run_id", "error"]
    assert header.index("integration") < header.index("settings.reduce")
    assert header.index("convergence.epoch") < header.index("settings.reduce")
    assert header[-2:] == ["excluded_layers", "warnings"]


def test_an_unknown_column_is_refused_with_close_names(cli):
    result = cli(
        "batch", SAMPLE / "mlp-digits-seed0.h5", "--surrogates", "0", "--format", "csv",
        "--columns", "run_id,integraton",
    )  # fmt: skip
    one_line(
        result, "--columns: no column 'integraton'; did you mean 'integration'", after_warnings=True
    )
    result = cli("batch", SAMPLE / "mlp-digits-seed0.h5", "--columns", "summary")
    one_line(result, "--columns chooses the columns of --format csv")


# -- 7: one number format ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (0.18, 3, "0.180"),
        (0.1808, 3, "0.181"),
        (1.2, 3, "1.200"),
        (12.3456, 3, "12.346"),
        (-0.0, 3, "0.000"),
        (-0.0004, 3, "-4.00e-04"),
        (4.2e-05, 3, "4.20e-05"),
        (2.5e6, 3, "2.50e+06"),
        (float("nan"), 3, "-"),
        (None, 3, "-"),
        (float("inf"), 3, "inf"),
        (np.float32(0.5), 3, "0.500"),
        (np.int64(101), 3, "101"),
        (53.0, None, "53"),
        (-12.5, None, "-12.5"),
        (0.25, 2, "0.25"),
    ],
)
def test_format_number(value, decimals, text):
    assert format_number(value, decimals) == text


def test_every_people_output_writes_a_measure_the_same_way(cli):
    run = SAMPLE / "cnn-digits-seed1.h5"
    data = json.loads(cli("analyze", run, "--surrogates", "19", "--format", "json").stdout)
    value = format_number(data["metastability"])
    interval = format_interval(data["integration_ci95"])
    assert re.fullmatch(r"\d\.\d{3}", value)
    assert re.fullmatch(r"\[\d\.\d{3}, \d\.\d{3}\]", interval)
    markdown = cli("analyze", run, "--surrogates", "19", "--format", "markdown").stdout
    table = cli("analyze", run, "--surrogates", "19", "--format", "table").stdout
    batch = cli("batch", run, "--surrogates", "19", "--format", "markdown").stdout
    for text in (markdown, table, batch):
        assert value in text
    for text in (markdown, table):
        assert interval in text
    assert f"{format_number(data['integration'])} {interval}" in batch
    assert repr(dynatrain.analyze(run, surrogates=19)).count(value) == 1
    # Every measure in the batch runs table has 3 decimals (no "0.18" next to "0.1808").
    table_lines = [line for line in batch.split("## Groups")[0].splitlines() if line[:1] == "|"]
    header, rows = table_lines[0].split("|"), [line.split("|") for line in table_lines[2:]]
    column = header.index(" metastability ")
    assert rows and all(re.fullmatch(r" \d\.\d{3} ", row[column]) for row in rows)


# -- 8: the HTML report ------------------------------------------------------------------------


def test_the_report_leads_with_figures_and_one_factor_comparisons(two_factor_report):
    page = (two_factor_report / "report.html").read_text()
    assert page.index("<figure>") < page.index("<table>")
    one_factor = page.index("Between groups that differ in one key")
    folded = page.index("<details>")
    assert one_factor < folded < page.index("<h2>Groups</h2>")
    head = page[one_factor:folded]
    assert (
        "<td>task</td>" in head and "<td>model</td>" in head and "<td>task, model</td>" not in head
    )
    assert "<td>task, model</td>" in page[folded : page.index("</details>")]
    assert "No comparison here can reach p &lt; 0.1: with 3 runs per group" in page


def test_group_names_never_overlap_on_the_group_axis(two_factor_report):
    from dynatrain.batch import group_summary
    from dynatrain.report.batch_plots import measures_figure

    records = [json.loads(p.read_text()) for p in sorted((two_factor_report / "runs").iterdir())]
    summary = group_summary(records, ["task", "model"])
    figure = measures_figure(records, summary)
    renderer = figure.canvas.get_renderer()
    for ax in figure.axes:
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()]
        assert len(boxes) == 4
        for left, right in itertools.pairwise(boxes):
            assert left.x1 <= right.x0, [label.get_text() for label in ax.get_xticklabels()]
    import matplotlib.pyplot as plt

    plt.close(figure)


# -- 9: what the messages name ------------------------------------------------------------------


def test_an_epoch_range_outside_the_run_names_the_runs_range(cli):
    result = cli("analyze", SAMPLE / "mlp-digits-seed1.h5", "--epochs", "200:300")
    one_line(
        result,
        "--epochs 200:300 selects 0 checkpoint(s) of the archive's 101 (epochs 0 to 100);"
        " the analysis needs at least 25",
    )
    result = cli("batch", SAMPLE / "mlp-digits-seed1.h5", "--epochs", "90:", "--format", "csv")
    assert result.exit_code == 2
    assert "selects 11 checkpoint(s) of the archive's 101 (epochs 0 to 100)" in result.stdout


def test_min_scale_help_and_check_agree(cli):
    help_text = " ".join(cli("analyze", "--help").stdout.split())
    assert (
        "--min-scale INTEGER RANGE Smallest DFA scale, in checkpoints (at least --dfa-order + 2)."
        in help_text
    )
    one_line(
        cli("analyze", "x.h5", "--min-scale", "2"), "'--min-scale': 2 is not in the range x>=3"
    )
    one_line(
        cli("analyze", SAMPLE / "mlp-digits-seed1.h5", "--dfa-order", "2", "--min-scale", "3"),
        "min_scale (--min-scale) must be at least dfa_order + 2 = 4 at --dfa-order 2",
    )
    ok = cli("analyze", SAMPLE / "mlp-digits-seed1.h5", "--min-scale", "3", "--surrogates", "0")
    assert ok.exit_code == 0, ok.stderr


def test_comparisons_csv_without_groups_has_its_header(cli, tmp_path):
    report = tmp_path / "report"
    result = cli("batch", SAMPLE / "mlp-digits-seed1.h5", "--surrogates", "0", "-o", report)
    assert result.exit_code == 0, result.stderr
    text = (report / "comparisons.csv").read_text()
    assert (
        text == "measure,group_a,group_b,n_a,n_b,difference,cohens_d,mann_whitney_u,p_value,auroc\n"
    )
    pandas = pytest.importorskip("pandas")
    assert pandas.read_csv(report / "comparisons.csv").empty


def test_a_full_output_is_one_line(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    command = [
        sys.executable,
        "-m",
        "dynatrain.cli",
        "inspect",
        str(SAMPLE / "mlp-digits-seed1.h5"),
    ]
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 2
    assert done.stderr == "dynatrain: error: cannot write the output: No space left on device\n"


# -- 10: settings checked when made; undefined exponents excluded ---------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vol_window": 0}, "vol_window (--vol-window) must be an integer >= 2, got 0"),
        ({"vol_threshold": 2}, "vol_threshold (--vol-threshold) must be a number between 0 and 1, got 2"),  # noqa: E501
        ({"style_threshold": -1}, "style_threshold must be a number between 0 and 1, got -1"),
        ({"plateau_smoothing": 0}, "plateau_smoothing must be an integer >= 1, got 0"),
        ({"vol_patience": 0.5}, "vol_patience (--vol-patience) must be an integer >= 1, got 0.5"),
        ({"n_scales": 2}, "n_scales (--n-scales) must be an integer >= 3, got 2"),
        ({"max_scale": 5}, "max_scale (--max-scale) must be an integer >= 6, got 5"),
        ({"dfa_order": 4}, "dfa_order (--dfa-order) must be an integer between 1 and 3, got 4"),
        ({"plateau_smoothing": 0}, "plateau_smoothing must be an integer >= 1, got 0"),
        ({"plateau_tolerance": True}, "plateau_tolerance must be a number between 0 and 1, got True"),  # noqa: E501
        ({"strict": "yes"}, "strict must be True or False, got 'yes'"),
        ({"layers": [1, 2]}, "layers (--layers) must be layer names or globs, got (1, 2)"),
        ({"epochs": 3}, "epochs (--epochs) must be 'START:END' or (start, end), got 3"),
    ],
)  # fmt: skip
def test_settings_are_checked_when_made(options, message):
    with pytest.raises(InputError) as caught:
        Settings(**options)
    assert str(caught.value) == message


def test_a_bad_setting_fails_before_any_batch_work(tmp_path):
    """Was "internal error" per run, after the DFA work: now one line before anything runs."""
    from dynatrain.batch import analyze_runs

    with pytest.raises(InputError, match="vol_window"):
        analyze_runs([str(SAMPLE / "mlp-digits-seed1.h5")], Settings(vol_window=1))


def test_a_layer_with_an_undefined_exponent_is_excluded(plain_archive):
    """A straight line, at --transform level and order 2, leaves no fluctuation: alpha NaN."""
    layers = _layers(60, n_layers=3)
    layers["linear"] = np.linspace(0, 1, 60)[:, None] * np.ones((1, 3))
    path = plain_archive("linear.h5", layers=layers)
    result = dynatrain.analyze(path, transform="level", dfa_order=2, surrogates=19)
    assert result.layer_names == ("l0", "l1", "l2")
    assert result.excluded_layers == [
        {
            "name": "linear",
            "reason": "DFA exponent undefined (no fluctuation left after detrending of order 2)",
        }
    ]
    assert np.isfinite(result.integration) and result.integration_p is not None
    assert np.isfinite(result.integration_ci95).all()
