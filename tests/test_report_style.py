"""The training style is worded by its surrogate test, in every report."""

from __future__ import annotations

import pytest
from rich.console import Console

from dynatrain.analysis import Settings, analyze
from dynatrain.batch import group_summary
from dynatrain.report.batch_report import run_table_rows
from dynatrain.report.export import json_ready
from dynatrain.report.style_text import style_headline, style_text
from dynatrain.report.tables import analysis_markdown, measure_rows, render_analysis
from dynatrain.simulate import simulate_run, write_run

SETTINGS = {"surrogates": 199, "style_threshold": 0.3, "significance_level": 0.05}


@pytest.mark.parametrize(
    ("style", "settings", "expected"),
    [
        (
            {"label": "coupled", "spearman": 0.62, "p": 0.01},
            SETTINGS,
            ("coupled", "rho = 0.620, p = 0.01"),
        ),
        (
            {"label": "antagonistic", "spearman": -0.9, "p": 0.005},
            SETTINGS,
            ("antagonistic", "rho = -0.900, p ≤ 0.005"),
        ),
        (
            {"label": "independent", "spearman": 0.45, "p": 0.21},
            SETTINGS,
            ("independent", "rho = 0.450, p = 0.21, surrogates correlate as strongly"),
        ),
        (
            {"label": "independent", "spearman": 0.1, "p": 0.6},
            SETTINGS,
            ("independent", "rho = 0.100, p = 0.6"),
        ),
        (  # --surrogates 0: the threshold label, said to be untested
            {"label": "coupled", "spearman": 0.45, "p": None},
            {**SETTINGS, "surrogates": 0},
            ("coupled", "rho = 0.450, untested (no surrogates)"),
        ),
        (  # a result saved before the test existed
            {"label": "coupled", "spearman": 0.45},
            {"surrogates": 199},
            ("coupled", "rho = 0.450, untested (no surrogates)"),
        ),
        (  # a stricter level of the analysis
            {"label": "independent", "spearman": 0.45, "p": 0.03},
            {**SETTINGS, "significance_level": 0.01},
            ("independent", "rho = 0.450, p = 0.03, surrogates correlate as strongly"),
        ),
        (None, SETTINGS, ("-", "")),
    ],
    ids=[
        "coupled",
        "antagonistic-at-floor",
        "strong-not-significant",
        "weak",
        "untested",
        "saved-by-0.1",
        "strict-level",
        "none",
    ],
)
def test_style_row(style, settings, expected):
    assert style_text(style, settings) == expected


def test_headline_for_the_figure():
    style = {"label": "independent", "spearman": 0.45, "p": 0.21}
    assert style_headline(style, SETTINGS) == (
        "style independent (Spearman ρ = 0.450, p = 0.21, surrogates correlate as strongly)"  # noqa: RUF001
    )
    assert style_headline(None, SETTINGS) == "no training style (too few windows)"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("style") / "run.h5"
    write_run(path, simulate_run("training", n_checkpoints=80, seed=4), samples=2, features=2)
    return path


@pytest.mark.parametrize("surrogates", [0, 19])
def test_table_markdown_and_batch_show_the_label_with_its_p(run, surrogates):
    data = json_ready(analyze(run, Settings(surrogates=surrogates)).to_dict())
    value, detail = style_text(data["style"], data["settings"])
    rows = {row[0]: row for row in measure_rows(data)}
    assert rows["training style"][1:3] == (value, detail)
    console = Console(width=160, record=True)
    render_analysis(data, console)
    text = console.export_text()
    assert detail in text and detail in analysis_markdown(data)
    assert ("untested" in detail) == (surrogates == 0)
    [row] = run_table_rows([data], group_summary([data]))
    assert (row["style"], row["p (style)"]) == (data["style"]["label"], data["style"]["p"])
    assert row["corrected [95% CI]"].startswith(f"{data['integration_corrected']:.3f} [")


def test_table_shows_the_corrected_integration_and_its_interval(run):
    data = json_ready(analyze(run, Settings(surrogates=0)).to_dict())
    rows = {row[0]: row for row in measure_rows(data)}
    lo, hi = data["integration_corrected_ci95"]
    assert rows["  corrected"][1:3] == (
        f"{data['integration_corrected']:.3f}",
        f"[{lo:.3f}, {hi:.3f}]",
    )
    assert rows["    corrected"][1] == f"{data['integration_global_corrected']:.3f}"
    # A result saved before the correction existed shows a dash, not an error.
    for key in ("integration_corrected", "integration_corrected_ci95"):
        del data[key]
    assert {row[0]: row for row in measure_rows(data)}["  corrected"][1:3] == ("-", "")
