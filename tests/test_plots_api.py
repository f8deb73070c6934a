"""The plot functions from Python: the result object, dictionaries without detail, own axes."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

import dynatrain
from dynatrain.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "sample_data" / "mlp-digits-seed1.h5"

#: Each figure function and the number of axes it draws on.
FUNCTIONS = {
    "plot_signals": 1,
    "plot_dfa": 1,
    "plot_kuramoto": 1,
    "plot_stability": 3,
    "plot_style_map": 1,
}


@pytest.fixture(scope="module")
def result():
    return dynatrain.analyze(RUN, surrogates=19)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _axes(n: int, **options):
    figure, axes = plt.subplots(n, 1, **options)
    return figure, (list(axes) if n > 1 else axes)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_figure_takes_the_result_object(result, name):
    _, axes = _axes(FUNCTIONS[name])
    getattr(dynatrain, name)(axes, result)
    drawn = axes if isinstance(axes, list) else [axes]
    assert all(ax.has_data() for ax in drawn)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_dictionary_without_detail_draws_or_says_what_is_missing(result, name):
    _, axes = _axes(FUNCTIONS[name])
    plain = result.to_dict()  # no detail
    if name in ("plot_signals", "plot_dfa", "plot_stability"):
        with pytest.raises(InputError) as caught:
            getattr(dynatrain, name)(axes, plain)
        message = str(caught.value)
        assert message.startswith(f"{name} draws the ")
        assert "'detail': pass the AnalysisResult itself, result.to_dict(detail=True)" in message
    else:
        getattr(dynatrain, name)(axes, plain)  # kuramoto and style need no detail
    getattr(dynatrain, name)(axes, result.to_dict(detail=True))


def test_anything_else_is_one_clear_error(result):
    _, ax = _axes(1)
    with pytest.raises(InputError, match=r"plot_dfa: expected an AnalysisResult or its to_dict"):
        dynatrain.plot_dfa(ax, [1, 2, 3])
    damaged = result.to_dict(detail=True)
    del damaged["detail"]["dfa"]["scales"]
    with pytest.raises(InputError, match=r"detail\.dfa\.scales is missing"):
        dynatrain.plot_dfa(ax, damaged)
    _, two = _axes(2)
    with pytest.raises(InputError, match=r"plot_stability draws 3 panels .* got 2 axes"):
        dynatrain.plot_stability(two, result)


@pytest.mark.parametrize("name", ["plot_dfa", "plot_kuramoto", "plot_stability"])
@pytest.mark.parametrize("layout", [None, "constrained"])
def test_the_legend_is_never_cut_off_on_your_own_figure(result, name, layout, tmp_path):
    figure, axes = _axes(FUNCTIONS[name], figsize=(6, 4 * FUNCTIONS[name] / 2), layout=layout)
    getattr(dynatrain, name)(axes, result)
    legend = (axes[0] if isinstance(axes, list) else axes).get_legend()
    figure.savefig(tmp_path / "mine.png")  # as it is: no bbox_inches="tight"
    box = legend.get_window_extent(figure.canvas.get_renderer())
    page = figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


def test_plot_analysis_takes_the_object_and_names_files_by_run(result, tmp_path):
    paths = dynatrain.plot_analysis(result, tmp_path, fmt="svg")
    assert [Path(p).name for p in paths] == [
        f"mlp-digits-seed1-{name}.svg"
        for name in ("signals", "dfa", "kuramoto", "stability", "style")
    ]
    assert matplotlib.get_backend()  # the user's back end is left as it was
