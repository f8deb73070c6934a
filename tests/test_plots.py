"""Plots: the five figures, drawn from the result data alone."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dynatrain.analysis import Settings, analyze
from dynatrain.errors import InputError
from dynatrain.report.export import json_ready, to_json
from dynatrain.simulate import simulate_run, write_run

matplotlib = pytest.importorskip("matplotlib")

from dynatrain.report import plots  # noqa: E402
from dynatrain.report._mpl import PLOT_FORMATS, new_figure  # noqa: E402

NAMES = ("signals", "dfa", "kuramoto", "stability", "style")
HEADERS = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "run.h5"
    write_run(path, simulate_run("training", seed=3), samples=2, features=2, seed=3)
    return path


@pytest.fixture(scope="module")
def result(run):
    """The detailed result as the library gives it (NumPy arrays, NaN)."""
    return analyze(run, Settings(surrogates=19)).to_dict(detail=True)


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    """Every figure in every format: {fmt: [paths]}, and the state before drawing."""
    before = {
        "result": copy.deepcopy(result),
        "rcParams": dict(matplotlib.rcParams),
        "writeable": result["detail"]["zscored"].flags.writeable,
    }
    directory = tmp_path_factory.mktemp("figures")
    paths = {fmt: plots.plot_analysis(result, directory, fmt=fmt) for fmt in PLOT_FORMATS}
    return {**paths, "before": before}


def drawn(draw, result, nrows=1):
    """Draw one figure with a public per-figure function; return (figure, axes)."""
    figure, axes = new_figure(nrows, 1, layout="constrained")
    draw(list(axes) if nrows > 1 else axes, result)
    return figure, axes


def texts(figure):
    """Every piece of text in a figure: titles, labels, legend entries, annotations."""
    return " | ".join(t.get_text() for t in figure.findobj(matplotlib.text.Text))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# -- files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", PLOT_FORMATS)
def test_every_figure_is_written_with_a_valid_header(written, fmt):
    paths = written[fmt]
    assert [p.rsplit("/", 1)[-1] for p in paths] == [f"{name}.{fmt}" for name in NAMES]
    for path in paths:
        content = Path(path).read_bytes()
        assert content.startswith(HEADERS[fmt]), path
        assert len(content) > 8_000, path
    if fmt == "svg":
        assert all(b"<svg" in Path(p).read_bytes() for p in paths)


@pytest.mark.parametrize("fmt", ["png", "pdf"])  # svg: in the next test
def test_same_result_same_bytes(result, written, tmp_path, fmt):
    again = plots.plot_analysis(result, tmp_path, fmt=fmt)
    for first, second in zip(written[fmt], again, strict=True):
        assert Path(first).read_bytes() == Path(second).read_bytes(), first


def test_library_data_and_its_json_draw_the_same_figure(result, written, tmp_path):
    from_json = json.loads(to_json(result))
    paths = plots.plot_analysis(from_json, tmp_path, fmt="svg")
    for first, second in zip(written["svg"], paths, strict=True):
        assert Path(first).read_bytes() == Path(second).read_bytes(), first


def test_plotting_modifies_neither_input_nor_global_state(result, written):
    import matplotlib.pyplot as plt

    before = written["before"]
    assert json_ready(result) == json_ready(before["result"])
    assert result["detail"]["zscored"].flags.writeable == before["writeable"]
    assert np.array_equal(result["detail"]["zscored"], before["result"]["detail"]["zscored"])
    assert dict(matplotlib.rcParams) == before["rcParams"]
    assert plt.get_fignums() == []  # every figure closed


def test_a_result_without_detail_is_refused(result, tmp_path):
    data = {key: value for key, value in result.items() if key != "detail"}
    with pytest.raises(InputError, match="--detail"):
        plots.plot_analysis(data, tmp_path)
    with pytest.raises(InputError, match="not a dynatrain analysis"):
        plots.plot_analysis({"run": "x"}, tmp_path)
    with pytest.raises(ValueError, match="plot format"):
        plots.plot_analysis(result, tmp_path, fmt="jpg")
    assert not list(tmp_path.iterdir())


# -- what the figures say -------------------------------------------------------------------------


def test_titles_name_the_run_and_axes_say_epoch(result):
    for draw in (plots.plot_signals, plots.plot_dfa, plots.plot_kuramoto, plots.plot_style_map):
        _, ax = drawn(draw, result)
        assert "run:" in ax.get_title()
    _, axes = drawn(plots.plot_signals, result)
    assert axes.get_xlabel() == "epoch"
    assert [t.get_text() for t in axes.get_yticklabels()] == [f"layer{i}" for i in range(6)]


def test_stability_marks_and_names_both_epochs(result):
    convergence = result["convergence"]
    assert convergence["epoch"] is not None and convergence["accuracy_plateau_epoch"] is not None
    figure, axes = drawn(plots.plot_stability, result, nrows=3)
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    p = convergence["p"]
    relapse = convergence["relapse"]
    assert (
        f"stability index converged (p = {p:.3g}, relapse {relapse:.0%}):"
        f" epoch {convergence['epoch']:g}"
    ) in labels
    assert f"convergence decided: epoch {convergence['decided_epoch']:g}" in labels
    assert f"val_accuracy plateau: epoch {convergence['accuracy_plateau_epoch']:g}" in labels
    title = figure.get_suptitle().replace("\n", " ")
    assert f"converged at epoch {convergence['epoch']:g}" in title
    assert f"(decided at {convergence['decided_epoch']:g}, p = {p:.3g})" in title
    assert axes[2].get_ylabel() == "val_accuracy"


@pytest.mark.parametrize(
    ("p", "said", "not_said"),
    [
        (0.01, "epochs before val_accuracy plateaued", "no early warning"),
        (0.3, "surrogates converge as early: no early warning", "plateaued"),
        (None, "untested", "no early warning"),
    ],
    ids=["distinguishable", "not-distinguishable", "untested"],
)
def test_stability_title_claims_no_more_than_the_test(result, p, said, not_said):
    data = json_ready(result)
    data["convergence"] = {
        **data["convergence"],
        "epoch": 40.0,
        "decided_epoch": 42.0,
        "accuracy_plateau_epoch": 60.0,
        "lead_epochs": 18.0,
        "p": p,
    }
    figure, _ = drawn(plots.plot_stability, data, nrows=3)
    title = figure.get_suptitle().replace("\n", " ")
    assert said in title
    assert not_said not in title


def test_stability_draws_the_causal_rule(result):
    """The running peak and the threshold under it: what the causal rule compares against."""
    assert result["settings"]["convergence_rule"] == "causal"
    _, axes = drawn(plots.plot_stability, result, nrows=3)
    volatility = np.asarray(result["timeseries"]["volatility"], dtype=float)
    lines = {line.get_label(): line for line in axes[1].get_lines()}
    running = lines["running peak"].get_ydata()
    threshold = lines["convergence threshold: 0.25 × running peak"].get_ydata()  # noqa: RUF001
    expected = [
        max(volatility[: i + 1][~np.isnan(volatility[: i + 1])], default=np.nan)
        for i in range(len(volatility))
    ]
    np.testing.assert_array_equal(running, expected)
    np.testing.assert_array_equal(threshold, 0.25 * np.asarray(expected))


def test_stability_draws_the_whole_run_rule(result):
    """With the whole-run rule: the peak volatility and the threshold after it."""
    data = {**result, "settings": {**result["settings"], "convergence_rule": "whole-run"}}
    _, axes = drawn(plots.plot_stability, data, nrows=3)
    volatility = np.asarray(result["timeseries"]["volatility"], dtype=float)
    ends = np.asarray(result["timeseries"]["window_end_epoch"], dtype=float)
    peak = int(np.nanargmax(volatility))
    [threshold] = axes[1].collections  # the one horizontal segment
    [[start, end]] = threshold.get_segments()
    expected = result["settings"]["vol_threshold"] * volatility[peak]
    assert start.tolist() == pytest.approx([ends[peak], expected])
    assert end.tolist() == pytest.approx([ends[-1], expected])
    [marker] = [line for line in axes[1].get_lines() if line.get_label() == "peak volatility"]
    assert marker.get_xydata()[0].tolist() == pytest.approx([ends[peak], volatility[peak]])


def test_p_values_at_the_surrogate_floor_are_bounds(result):
    floor = 1 / (result["settings"]["surrogates"] + 1)
    data = {**json_ready(result), "integration_p": floor}
    _, ax = drawn(plots.plot_dfa, data)
    assert f"p ≤ {floor:.3g}" in ax.get_title()
    data["integration_p"] = 2 * floor
    _, ax = drawn(plots.plot_dfa, data)
    assert f"p = {2 * floor:.3g}" in ax.get_title()


def test_dfa_legend_gives_alpha_per_layer_and_reference_slopes(result):
    _, ax = drawn(plots.plot_dfa, result)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    first = result["layers"][0]
    assert f"{first['name']}  α = {first['alpha']:.2f}" in labels  # noqa: RUF001
    assert "slope 0.5 (white noise)" in labels and "slope 1 (1/f noise)" in labels


def test_kuramoto_and_style_state_their_numbers(result):
    figure, _ = drawn(plots.plot_kuramoto, result)
    assert f"(mean R) = {result['synchrony']:.3f}" in texts(figure)
    assert f"(SD of R) = {result['metastability']:.3f}" in texts(figure)
    figure, ax = drawn(plots.plot_style_map, result)
    assert result["style"]["label"] in ax.get_title()
    assert f"ρ = {result['style']['spearman']:.2f}" in ax.get_title()  # noqa: RUF001


# -- null cases -----------------------------------------------------------------------------------


def test_no_metric_and_an_excluded_layer_still_plot(plain_archive, tmp_path):
    rng = np.random.default_rng(0)
    layers = {f"block{i}": rng.normal(size=(40, 2, 2)).cumsum(axis=0) for i in range(3)}
    layers["dead"] = np.ones((40, 2, 2))
    path = plain_archive("nometric.h5", layers=layers)
    data = json_ready(analyze(path, Settings(surrogates=0)).to_dict(detail=True))
    assert data["convergence"]["metric"] is None and data["excluded_layers"]
    assert len(plots.plot_analysis(data, tmp_path / "out", fmt="svg")) == 5
    figure, _ = drawn(plots.plot_stability, data, nrows=2)
    assert "no accuracy metric" in figure.get_suptitle()
    figure, _ = drawn(plots.plot_signals, data)
    assert "not analysed: dead" in texts(figure)


def test_no_convergence_no_style_and_nan_volatility(result):
    data = json_ready(result)
    assert data["timeseries"]["volatility"][0] is None  # NaN at the start, as null
    data["convergence"] = {
        **data["convergence"],
        **dict.fromkeys(("epoch", "decided_epoch", "p", "relapse", "lead_epochs")),
    }
    data["style"] = None
    figure, axes = drawn(plots.plot_stability, data, nrows=3)
    assert "did not converge" in figure.get_suptitle()
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    plateau = data["convergence"]["accuracy_plateau_epoch"]
    assert labels == [
        f"val_accuracy plateau: epoch {plateau:g}",
        "running peak",
        "convergence threshold: 0.25 × running peak",  # noqa: RUF001
    ]
    figure, ax = drawn(plots.plot_style_map, data)
    assert "no training style" in ax.get_title()


def test_many_layers_get_a_colour_bar_not_a_legend(tmp_path):
    path = tmp_path / "wide.h5"
    wide = simulate_run("training", n_layers=50, n_checkpoints=40, seed=0)
    write_run(path, wide, samples=1, features=1)
    data = analyze(path, Settings(surrogates=0)).to_dict(detail=True)
    figure, ax = drawn(plots.plot_dfa, data)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(label.startswith("slope") for label in labels)
    assert len(figure.axes) == 2  # the axes and the layer colour bar
    figure, ax = drawn(plots.plot_signals, data)
    assert 0 < len(ax.get_yticks()) <= plots.MAX_LAYER_TICKS


# -- command line ---------------------------------------------------------------------------------


def test_plot_command_redraws_what_analyze_drew(cli, run, tmp_path):
    analysed = cli(
        "analyze",
        run,
        "--format",
        "json",
        "--detail",
        "--surrogates",
        "19",
        "--plot",
        tmp_path / "a",
        "--plot-format",
        "svg",
    )
    assert analysed.exit_code == 0, analysed.stderr
    assert "wrote 5 figures" in analysed.stderr
    saved = tmp_path / "result.json"
    saved.write_text(analysed.stdout)
    redrawn = cli("plot", saved, "--out", tmp_path / "b", "--plot-format", "svg")
    assert redrawn.exit_code == 0, redrawn.stderr
    for name in NAMES:
        first = (tmp_path / "a" / f"{name}.svg").read_bytes()
        assert first == (tmp_path / "b" / f"{name}.svg").read_bytes(), name


def test_plot_command_refuses_json_without_detail(cli, run, tmp_path):
    saved = tmp_path / "plain.json"
    saved.write_text(cli("analyze", run, "--format", "json", "--surrogates", "0").stdout)
    result = cli("plot", saved, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(saved) in result.stderr and "--detail" in result.stderr
    assert not (tmp_path / "out").exists()
    from_stdin = cli("plot", "-", "--out", tmp_path / "out", input=saved.read_text())
    assert from_stdin.exit_code == 2 and from_stdin.stderr.startswith("dynatrain: error: -: ")
    (tmp_path / "bad.json").write_text("{not json")
    bad = cli("plot", tmp_path / "bad.json", "--out", tmp_path / "out")
    assert bad.exit_code == 2 and "not a JSON document" in bad.stderr
    missing = cli("plot", tmp_path / "missing.json", "--out", tmp_path / "out")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    assert cli("plot", saved, "--out", tmp_path, "--plot-format", "jpg").exit_code == 2


def test_cli_plot_formats_match_the_plotting_module():
    from dynatrain import cli

    assert cli.PLOT_FORMATS == PLOT_FORMATS


def _imported_after(code: str) -> str:
    """Run ``code`` in a fresh interpreter; say whether it imported matplotlib."""
    script = code + "\nimport sys; print('IMPORTED:' + str('matplotlib' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["analyze", "plot"])
def test_help_of_plotting_commands_does_not_import_matplotlib(command):
    code = (
        "from dynatrain.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass"
    )
    assert _imported_after(code) == "IMPORTED:False"


def test_analyze_without_plot_does_not_import_matplotlib(run):
    code = (
        "from dynatrain.cli import main\n"
        f"try:\n    main(['analyze', {str(run)!r}, '--format', 'json', '--surrogates', '0'])\n"
        "except SystemExit as exc:\n    assert exc.code in (0, None)"
    )
    assert _imported_after(code) == "IMPORTED:False"


def test_names_from_the_archive_are_drawn_as_they_are(result, tmp_path):
    """Run ids, layer and metric names are not mathtext, and "_x" stays in the legend."""
    from matplotlib import cbook

    data = copy.deepcopy(json_ready(result))
    data["run_id"] = "$\\oops$ run"
    data["layers"][0]["name"] = "$\\undefinedcmd$"
    data["layers"][1]["name"] = "_proj"
    data["excluded_layers"] = [{"name": "$dead$", "reason": "constant"}]
    data["convergence"]["metric"] = "$acc$"
    assert len(plots.plot_analysis(data, tmp_path, fmt="png")) == 5  # was ValueError
    _, ax = drawn(plots.plot_dfa, data)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("_proj  α") for label in legend)  # noqa: RUF001
    assert not any(cbook.is_math_text(label) for label in legend)
    figure, _ = drawn(plots.plot_stability, data, nrows=3)
    assert not cbook.is_math_text(figure.get_suptitle())


def test_a_result_saved_by_version_0_1_still_plots(result):
    """No decided epoch, p-value, relapse, window step or rule: the whole-run peak is drawn."""
    data = json_ready(result)
    data["convergence"] = {
        key: data["convergence"][key]
        for key in ("epoch", "accuracy_plateau_epoch", "lead_epochs", "metric")
    }
    data["settings"] = {
        key: value
        for key, value in data["settings"].items()
        if key not in ("window_step", "convergence_rule", "convergence_surrogates")
    }
    figure, axes = drawn(plots.plot_stability, data, nrows=3)
    assert "untested" in figure.get_suptitle()
    labels = [line.get_label() for line in axes[1].get_lines()]
    assert "peak volatility" in labels
