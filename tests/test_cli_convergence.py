"""`analyze` options for windows and convergence, and how every output words the convergence."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from rich.console import Console

from dynatrain.report.batch_report import run_table_rows
from dynatrain.report.convergence_text import (
    converged_text,
    convergence_headline,
    early_warning_text,
)
from dynatrain.report.tables import analysis_markdown, measure_rows, render_analysis
from dynatrain.simulate import simulate_run, write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run.h5"
    write_run(path, simulate_run("training", seed=1), seed=1)
    return path


def test_window_step_and_rule_reach_the_settings(cli, run):
    result = cli(
        "analyze",
        run,
        "--format",
        "json",
        "--surrogates",
        "9",
        "--window-step",
        "3",
        "--convergence-rule",
        "whole-run",
        "--convergence-surrogates",
        "5",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    settings = data["settings"]
    assert (settings["window_step"], settings["convergence_rule"]) == (3, "whole-run")
    assert (settings["surrogates"], settings["convergence_surrogates"]) == (9, 5)
    n_points = len(data["timeseries"]["epoch"])
    assert len(data["timeseries"]["window_end_epoch"]) == (n_points - settings["window"]) // 3 + 1
    assert set(data["convergence"]) >= {"epoch", "decided_epoch", "p", "relapse"}


def test_csv_carries_the_convergence_columns(cli, run):
    out = cli("analyze", run, "--format", "csv", "--surrogates", "9").stdout
    [row] = list(csv.DictReader(io.StringIO(out)))
    for column in (
        "convergence.epoch",
        "convergence.decided_epoch",
        "convergence.p",
        "convergence.relapse",
        "settings.window_step",
        "settings.convergence_rule",
    ):
        assert column in row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window-step", "0"], "Invalid value for '--window-step'"),
        (["--convergence-rule", "peak"], "Invalid value for '--convergence-rule'"),
        (["--convergence-surrogates", "-1"], "Invalid value for '--convergence-surrogates'"),
    ],
)
def test_bad_options_exit_2_with_one_line(run, args, message):
    process = subprocess.run(
        [sys.executable, "-m", "dynatrain.cli", "analyze", str(run), *args],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert message in process.stderr


def test_help_does_not_load_numpy():
    code = (
        "import sys; from click.testing import CliRunner; from dynatrain.cli import main;"
        "CliRunner().invoke(main, ['analyze', '--help']); print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- wording: no claim stronger than its test ---------------------------------------------------

SETTINGS = {"surrogates": 199, "convergence_surrogates": 199, "convergence_rule": "causal"}


def convergence(p, lead=13.0, epoch=53.0):
    return {
        "epoch": epoch,
        "decided_epoch": None if epoch is None else epoch + 2,
        "p": p,
        "relapse": 0.25,
        "surrogates_drawn": 199,
        "accuracy_plateau_epoch": 68.0,
        "lead_epochs": lead,
        "metric": "val_accuracy",
    }


@pytest.mark.parametrize(
    ("p", "lead", "value", "qualifier"),
    [
        (0.02, 13.0, "13 epochs", ""),
        (0.005, 1.0, "1 epoch", ""),
        (0.3, 13.0, "none", "convergence not distinguishable from its surrogates"),
        (0.05, 13.0, "none", "convergence not distinguishable from its surrogates"),
        (None, 13.0, "13 epochs", "untested (no surrogates)"),
        (0.02, -4.0, "none", "convergence decided 4 epochs after the plateau"),
        (0.02, 0.0, "none", "convergence decided at the plateau"),
    ],
)
def test_early_warning_is_worded_by_its_test(p, lead, value, qualifier):
    assert early_warning_text(convergence(p, lead)) == (value, qualifier)


def test_no_convergence_says_so():
    data = convergence(None, None, epoch=None)
    assert early_warning_text(data) == ("none", "the stability index did not converge")
    assert converged_text(data, SETTINGS) == ("not converged", "")
    assert convergence_headline(data, SETTINGS, "val_accuracy") == (
        "the stability index did not converge"
    )


def test_converged_row_gives_the_decision_p_and_relapse():
    assert converged_text(convergence(0.02), SETTINGS) == (
        "epoch 53",
        "decided 55, p = 0.02, relapse 25%",
    )
    assert converged_text(convergence(0.3), SETTINGS) == (
        "epoch 53",
        "decided 55, p = 0.3, surrogates converge as early, relapse 25%",
    )
    assert converged_text(convergence(0.005), SETTINGS)[1].startswith("decided 55, p ≤ 0.005")


def analysis(run, p):
    from dynatrain.analysis import Settings, analyze
    from dynatrain.report.export import json_ready

    data = json_ready(analyze(run, Settings(surrogates=19)).to_dict())
    data["convergence"] = convergence(p)
    return data


@pytest.mark.parametrize("p", [0.3, 0.02])
def test_table_markdown_and_batch_rows_agree(run, p):
    data = analysis(run, p)
    rows = {row[0]: row for row in measure_rows(data)}
    warning = early_warning_text(data["convergence"])
    assert rows["early warning"][1:3] == warning
    console = Console(width=140, record=True)
    render_analysis(data, console)
    text = console.export_text()
    markdown = analysis_markdown(data)
    if p >= 0.05:
        assert "13 epochs" not in text and "13 epochs" not in markdown
        assert "not distinguishable from its surrogates" in text
    else:
        assert "13 epochs" in text and "13 epochs" in markdown
    [batch_row] = run_table_rows([data], summary_of([data]))
    assert batch_row["early warning"] == warning[0]
    assert (batch_row["p (converged)"], batch_row["relapse"]) == (p, 0.25)


def summary_of(records):
    from dynatrain.batch import group_summary

    return group_summary(records, [])
