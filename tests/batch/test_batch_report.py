"""The report folder of `dynatrain batch -o DIR`: contents, refusal to overwrite, safe names."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from dynatrain import __version__
from dynatrain.report.batch_report import run_file_stems
from dynatrain.simulate import simulate_run, write_run

FAST = ("--surrogates", "19", "-j", "1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("report-runs")
    paths = []
    for i, (dataset, hurst) in enumerate([("A", 0.55), ("A", 0.55), ("B", 0.9), ("B", 0.9)]):
        path = folder / f"{dataset}{i}.h5"
        run = simulate_run("hurst", n_layers=5, n_checkpoints=40, hurst=hurst, seed=i)
        write_run(path, run, metadata={"dataset": dataset}, samples=4, features=4)
        paths.append(path)
    (folder / "broken.h5").write_text("not an archive")
    return [*paths, folder / "broken.h5"]


def test_report_folder_contents(cli, runs, tmp_path):
    report = tmp_path / "report"
    result = cli("batch", *runs, *FAST, "--group-by", "dataset", "-o", report, "--format", "csv")
    assert result.exit_code == 2  # one broken run; the report is still written
    names = sorted(str(p.relative_to(report)) for p in report.rglob("*") if p.is_file())
    assert names == [
        "comparisons.csv",
        "groups.csv",
        "groups.json",
        "integration_vs_metastability.png",
        "lead_by_group.png",
        "measures_by_group.png",
        "report.html",
        "runs.csv",
        "runs/A0.json",
        "runs/A1.json",
        "runs/B2.json",
        "runs/B3.json",
        "runs/broken.json",
    ]
    assert (report / "runs.csv").read_text() == result.stdout
    groups = list(csv.DictReader(io.StringIO((report / "groups.csv").read_text())))
    assert {(row["group"], row["measure"]) for row in groups} >= {
        ("A", "integration"),
        ("B", "integration"),
    }
    comparisons = list(csv.DictReader(io.StringIO((report / "comparisons.csv").read_text())))
    assert float(next(r for r in comparisons if r["measure"] == "integration")["auroc"]) == 1.0
    assert json.loads((report / "runs/broken.json").read_text())["error"]
    assert (report / "measures_by_group.png").read_bytes().startswith(b"\x89PNG")

    page = (report / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 3
    # Nothing loaded from elsewhere; links only to the runs' own JSON files.
    assert not re.search(r"(src|href)=['\"](?!data:|runs/)", page)
    assert "<a href='runs/A0.json'>A0</a>" in page
    figures = tmp_path / "figures"
    assert cli("plot", report / "runs" / "B3.json", "--out", figures).exit_code == 0
    assert sorted(os.listdir(figures))[0] == "B3-dfa.png"
    assert "Failed runs" in page and "broken.h5" in page
    assert "<td>surrogates</td><td>19</td>" in page and f"dynatrain {__version__}" in page
    assert "AUROC" in page


def test_a_non_empty_folder_needs_force(cli, runs, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "keep.txt").write_text("mine")
    result = cli("batch", *runs[:2], *FAST, "-o", report)
    assert result.exit_code == 2 and "not empty (--force" in result.stderr
    assert result.stdout == ""  # refused before any analysis
    assert sorted(os.listdir(report)) == ["keep.txt"]
    result = cli("batch", *runs[:2], *FAST, "-o", report, "--force")
    assert result.exit_code == 0, result.stderr
    assert (report / "keep.txt").read_text() == "mine" and (report / "report.html").exists()
    (tmp_path / "file").write_text("")
    assert cli("batch", *runs[:2], *FAST, "-o", tmp_path / "file").exit_code == 2


def test_run_ids_cannot_write_outside_the_folder(cli, tmp_path):
    hostile = [
        "../../x",
        "/etc/passwd",
        "..",
        "",
        "a/../../b",
        "<script>alert(1)</script>",
        "CASE",
        "case",
    ]
    folder = tmp_path / "deep" / "runs"
    folder.mkdir(parents=True)
    paths = []
    for i, run_id in enumerate(hostile):
        path = folder / f"r{i}.h5"
        run = simulate_run("hurst", n_layers=3, n_checkpoints=30, seed=i)
        write_run(path, run, metadata={"run_id": run_id, "dataset": run_id}, samples=2, features=2)
        paths.append(path)
    before = sorted(tmp_path.rglob("*"))
    report = tmp_path / "deep" / "report"
    result = cli(
        "batch", *paths, "--surrogates", "0", "-j", "1", "-o", report, "--group-by", "dataset"
    )
    assert result.exit_code == 0, result.stderr
    after = sorted(tmp_path.rglob("*"))
    assert [p for p in after if p not in before and report not in p.parents and p != report] == []
    stems = sorted(p.name for p in (report / "runs").iterdir())
    assert stems == [
        "CASE.json",
        "a_.._.._b.json",
        "case-2.json",
        "etc_passwd.json",
        "r3.json",
        "run.json",
        "script_alert_1_script.json",
        "x.json",
    ]
    page = (report / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_file_stems_are_safe_and_unique():
    records = [
        {"run": "a/r.h5", "run_id": run_id}
        for run_id in ["../../x", "/etc/passwd", "..", None, "ok", "OK", "ok", "é"]
    ]
    assert run_file_stems(records) == ["x", "etc_passwd", "run", "r", "ok", "OK-2", "ok-3", "run-2"]


def test_a_linked_runs_folder_is_refused_before_any_analysis(cli, runs, tmp_path):
    """`runs/` in the report folder linking elsewhere: refused first, nothing written."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    (report / "runs").symlink_to(elsewhere, target_is_directory=True)
    result = cli("batch", *runs[:2], *FAST, "-o", report, "--force")
    assert result.exit_code == 2 and result.stdout == ""  # before any run was analysed
    assert result.stderr.strip().splitlines() == [
        f"dynatrain: error: {report / 'runs'}: links outside the report folder {report};"
        " refusing to write through it"
    ]
    assert os.listdir(report) == ["runs"] and os.listdir(elsewhere) == []


def test_write_inside_refuses_a_path_that_resolves_outside(tmp_path):
    """The last guard, when the folder changed after the check: nothing lands outside."""
    from dynatrain.errors import InputError
    from dynatrain.report.batch_report import _write_inside

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    (report / "runs").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InputError, match=r"runs/x\.json: refusing to write outside the report"):
        _write_inside(str(report), "runs/x.json", "{}")
    for relative in ("../x.json", "/tmp/x.json", "."):
        with pytest.raises(InputError, match="refusing to write outside the report folder"):
            _write_inside(str(report), relative, "{}")
    assert os.listdir(elsewhere) == [] and sorted(os.listdir(tmp_path)) == ["elsewhere", "report"]
    # Inside the folder, a link in the way is replaced, never written through.
    (report / "kept.txt").write_text("mine")
    (report / "runs.csv").symlink_to(report / "kept.txt")
    _write_inside(str(report), "runs.csv", "a,b\n")
    assert (report / "kept.txt").read_text() == "mine"
    assert not (report / "runs.csv").is_symlink() and (report / "runs.csv").read_text() == "a,b\n"


def test_figures_draw_group_labels_as_they_are(tmp_path):
    """Group labels from metadata are not mathtext ($...$) and "_x" stays in the legend."""
    from matplotlib import cbook

    from dynatrain.batch import group_summary
    from dynatrain.report._mpl import new_figure
    from dynatrain.report.batch_plots import (
        draw_integration_vs_metastability,
        draw_measure_by_group,
        plot_batch,
    )

    names = ["$\\oops$", "_baseline", "a $5 and $6 b"]
    records = [
        {
            "run": f"r{i}.h5",
            "metadata": {"dataset": name},
            "integration": 0.5 + i / 10,
            "integration_ci95": [0.4, 0.9],
            "metastability": 0.1 * (i + 1),
            "stability_index": 0.3,
            "convergence": {"lead_epochs": float(i)},
        }
        for i, name in enumerate(names)
    ]
    summary = group_summary(records, ["dataset"])
    assert len(plot_batch(records, summary, tmp_path)) == 3  # was ValueError from mathtext

    figure, ax = new_figure()
    draw_integration_vs_metastability(ax, records, summary)
    draw_measure_by_group(ax, records, summary, "integration")
    figure.canvas.draw()
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    ticks = [text.get_text() for text in ax.get_xticklabels()]
    for texts in (legend, ticks):
        assert len(texts) == 3 and not any(cbook.is_math_text(text) for text in texts)
    shown = sorted(text.replace("\\$", "$") for text in ticks)  # what matplotlib draws
    assert shown == sorted(names)
    assert "_baseline (n=1)" in legend
