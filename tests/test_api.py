"""The Python API at the package top: names, options, reprs, JSON, data frames, xarray."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

import dynatrain
from dynatrain.analysis import Settings
from dynatrain.analysis import analyze as analyze_with_settings
from dynatrain.errors import InputError, OptionError
from dynatrain.report.export import to_json

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "sample_data" / "mlp-digits-seed1.h5"
FAST = {"surrogates": 19}


@pytest.fixture(scope="module")
def result():
    return dynatrain.analyze(RUN, **FAST)


# -- names -----------------------------------------------------------------------------------------


def test_dir_is_all_and_every_name_resolves():
    assert dir(dynatrain) == dynatrain.__all__
    assert dynatrain.__all__ == sorted(dynatrain.__all__, key=str)
    for name in dynatrain.__all__:
        assert getattr(dynatrain, name) is not None, name
    assert not {"Any", "TYPE_CHECKING", "importlib"} & set(dir(dynatrain))
    with pytest.raises(AttributeError, match="no attribute 'analyse'"):
        dynatrain.analyse  # noqa: B018


def test_version_comes_from_the_package_metadata():
    assert dynatrain.__version__ == version("dynatrain")


def test_import_stays_light():
    """`import dynatrain` loads none of NumPy, matplotlib, pandas, zarr, h5py, xarray."""
    heavy = ("numpy", "matplotlib", "pandas", "zarr", "h5py", "xarray", "scipy", "rich", "torch")
    code = (
        "import sys, dynatrain; dir(dynatrain); dynatrain.__version__;"
        f" print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_analyze_and_plots_do_not_import_pandas():
    code = (
        "import sys, dynatrain;"
        f" r = dynatrain.analyze({str(RUN)!r}, surrogates=0); repr(r); r._repr_html_();"
        " print('pandas' in sys.modules, 'xarray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- options ---------------------------------------------------------------------------------------


def test_threads_are_a_keyword_not_a_setting(monkeypatch):
    from dynatrain import defaults
    from dynatrain import measures as m

    monkeypatch.setattr(defaults, "THREADS_FROM_VALUES", 0)  # a sample run uses them too
    one = dynatrain.analyze(RUN, surrogates=19, threads=1)
    three = dynatrain.analyze(RUN, surrogates=19, threads=3)
    assert to_json(one.to_dict(detail=True)) == to_json(three.to_dict(detail=True))
    assert "threads" not in one.settings
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="threads"):
            dynatrain.analyze(RUN, surrogates=0, threads=bad)
    # Below THREADS_FROM_VALUES values the pool is not started at all.
    monkeypatch.setattr(defaults, "THREADS_FROM_VALUES", 10**9)
    started = []
    real = m.threads
    monkeypatch.setattr(m, "threads", lambda n: started.append(n) or real(n))
    dynatrain.analyze(RUN, surrogates=0, threads=3)
    assert started == [1]


def test_progress_is_told_each_null_and_changes_nothing():
    calls = []
    shown = dynatrain.analyze(RUN, surrogates=19, progress=lambda *call: calls.append(call))
    assert to_json(shown.to_dict()) == to_json(dynatrain.analyze(RUN, surrogates=19).to_dict())
    assert {stage for stage, _, _ in calls} >= {"shuffle null", "phase null"}
    assert ("shuffle null", 19, 19) in calls and ("phase null", 19, 19) in calls
    with pytest.raises(OptionError, match="progress must be callable"):
        dynatrain.analyze(RUN, surrogates=0, progress="bar")


def test_options_are_the_settings(result):
    direct = analyze_with_settings(str(RUN), Settings(**FAST))
    assert to_json(result.to_dict()) == to_json(direct.to_dict())
    based = dynatrain.analyze(RUN, Settings(surrogates=0), seed=3)
    assert based.settings["surrogates"] == 0 and based.settings["seed"] == 3


def test_python_forms_of_layers_and_epochs():
    one = dynatrain.analyze(RUN, surrogates=0, layers="fc[123]", epochs=(10, None))
    assert one.settings["layers"] == ["fc[123]"]
    assert one.settings["epochs"] == "10:"
    assert one.layer_names == ("fc1", "fc2", "fc3") and one.epochs == (10.0, 100.0)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"surrogate": 9}, "unknown option 'surrogate'; did you mean 'surrogates'?"),
        (
            {"minscale": 9},
            "unknown option 'minscale'; did you mean 'min_scale', 'n_scales', 'max_scale'?",
        ),
        ({"colour": "red"}, "unknown option 'colour' (options: reduce, transform,"),
    ],
)
def test_an_unknown_option_is_one_line_listing_the_valid_ones(options, needle):
    with pytest.raises(TypeError) as caught:
        dynatrain.analyze(RUN, **options)
    message = str(caught.value)
    assert isinstance(caught.value, OptionError) and isinstance(caught.value, InputError)
    assert needle in message and "\n" not in message
    assert "vol_threshold" in message and "seed" in message  # every valid name is listed
    with pytest.raises(TypeError, match="analyze_many\\(\\) got an unknown option"):
        dynatrain.analyze_many(RUN, **options)


# -- what a result looks like ------------------------------------------------------------------


def test_repr_is_a_few_lines(result):
    text = repr(result)
    lines = text.splitlines()
    assert len(lines) == 5 + len(result.warnings)
    assert lines[0] == (
        "<AnalysisResult mlp-digits-seed1: 101 checkpoints (epochs 0 to 100), 4 layers analysed>"
    )
    assert f"integration {result.integration:.3f} [" in text
    assert f"metastability {result.metastability:.3f}" in text
    assert "stability index converged: epoch" in text and "val_accuracy plateau: epoch" in text
    assert "decided" in text and "early warning:" in text
    assert max(map(len, lines)) < 130


def test_repr_html_is_a_small_escaped_table(plain_archive):
    rng = np.random.default_rng(0)
    path = plain_archive(
        "x.h5",
        layers={"<b>": rng.normal(size=(30, 2)), "fc": rng.normal(size=(30, 2))},
        attrs={"run_id": "<script>alert(1)</script>"},
    )
    hostile = dynatrain.analyze(path, surrogates=0)
    page = hostile._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<table") == 1 and "integration" in page
    assert "only 29 analysed points" in page  # the warnings are shown
    assert len(page) < 6000


def test_to_dict_is_json_safe_and_what_the_cli_prints(cli, result):
    data = result.to_dict()
    json.dumps(data, allow_nan=False)
    json.dumps(result.to_dict(detail=True), allow_nan=False)
    assert data["timeseries"]["volatility"][0] is None  # NaN -> null, as the CLI writes it
    printed = cli("analyze", RUN, "--surrogates", "19", "--format", "json")
    assert json.loads(printed.stdout) == json.loads(json.dumps(data))
    raw = result.to_dict(json_safe=False)
    assert isinstance(raw["timeseries"]["epoch"], np.ndarray)
    assert math.isnan(raw["timeseries"]["volatility"][0])


# -- data frames -------------------------------------------------------------------------------


def test_to_frame_has_the_csv_columns_and_values(cli, result):
    frame = result.to_frame()
    printed = cli("analyze", RUN, "--surrogates", "19", "--format", "csv").stdout
    (row,) = list(csv.DictReader(io.StringIO(printed)))
    assert list(frame.columns) == list(row)
    assert frame.shape == (1, len(row))
    assert frame.loc[0, "integration"] == pytest.approx(float(row["integration"]), rel=0, abs=0)
    assert frame.loc[0, "convergence.epoch"] == float(row["convergence.epoch"])
    assert frame.loc[0, "metadata.dataset"] == "digits"
    assert frame["settings.layers"].isna().all()  # null in the JSON


def test_layers_and_windows_frames(plain_archive):
    rng = np.random.default_rng(1)
    layers = {f"l{i}": rng.normal(size=(60, 3)) for i in range(3)}
    layers["dead"] = np.ones((60, 3))
    run = dynatrain.analyze(plain_archive("f.h5", layers=layers), surrogates=0)
    frame = run.layers_frame()
    assert list(frame.index) == ["l0", "l1", "l2", "dead"] and frame.index.name == "layer"
    assert list(frame.columns) == ["alpha", "mean", "std", "excluded"]
    np.testing.assert_array_equal(frame["alpha"].to_numpy()[:3], run.layer_alpha)
    assert frame["alpha"].mean() == pytest.approx(run.integration)
    assert frame.loc["dead", "excluded"] == "constant over the analysed checkpoints"
    windows = run.windows_frame()
    assert windows.index.name == "window_end_epoch"
    np.testing.assert_array_equal(windows.index.to_numpy(), run.window_end_epoch)
    assert set(windows.columns) >= {"integration", "metastability", "stability_index", "volatility"}
    np.testing.assert_array_equal(windows["volatility"].to_numpy(), run.volatility)


def test_without_pandas_one_line_says_what_to_install(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(ImportError) as caught:
        result.to_frame()
    assert str(caught.value) == (
        "data frames need pandas, which is not installed: pip install 'dynatrain[pandas]'"
    )


# -- many runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for name in ("mlp-digits-seed0", "mlp-digits-seed1", "cnn-digits-seed0", "cnn-digits-seed1"):
        (folder / f"{name}.h5").write_bytes((ROOT / "sample_data" / f"{name}.h5").read_bytes())
    (folder / "zz-broken.h5").write_text("not an archive")
    return folder


def test_analyze_many_is_the_batch(cli, many):
    batch = dynatrain.analyze_many(many, jobs=2, surrogates=0)
    assert len(batch) == 5 and len(batch.results) == 4
    assert list(batch.failed) == [str(many / "zz-broken.h5")]
    assert "not an HDF5 file" in batch.failed[str(many / "zz-broken.h5")]
    printed = cli("batch", many, "--surrogates", "0", "-j", "1", "--format", "jsonl")
    assert [json.loads(line) for line in printed.stdout.splitlines()] == json.loads(
        json.dumps(batch.records)
    )
    assert repr(batch).splitlines()[0] == "<BatchResult: 5 runs, 1 failed>"
    assert batch._repr_html_().count("<tr>") == 6


def test_batch_frames_have_the_csv_columns(cli, many, tmp_path):
    batch = dynatrain.analyze_many(str(many / "*.h5"), jobs=1, surrogates=0)
    frame = batch.to_frame("model")
    printed = cli(
        "batch", many, "--surrogates", "0", "-j", "1", "--group-by", "model", "--format", "csv"
    ).stdout
    header = next(csv.reader(io.StringIO(printed)))
    assert list(frame.columns) == header
    assert list(frame["group"].iloc[:4]) == ["cnn", "cnn", "mlp", "mlp"]
    assert "zz-broken.h5: not an HDF5 file" in frame["error"].iloc[4]
    groups = batch.groups_frame("model")
    assert set(groups["group"]) == {"cnn", "mlp"} and "ci95_low" in groups.columns
    comparisons = batch.comparisons_frame("model")
    assert list(comparisons["group_a"].unique()) == ["cnn"]
    assert batch.comparisons_frame().empty  # one group: no pair, but the columns
    assert "auroc" in batch.comparisons_frame().columns
    with pytest.raises(InputError, match="did you mean 'model'"):
        batch.groups("modle")
    written = batch.write_report(tmp_path / "report", "model")
    assert str(tmp_path / "report" / "report.html") in written
    saved = json.loads((tmp_path / "report" / "runs" / "mlp-digits-seed1.json").read_text())
    assert "detail" in saved  # its figures can be drawn again


# -- archives and xarray -----------------------------------------------------------------------


def test_open_is_the_archive_reader():
    with dynatrain.open(RUN) as archive:
        assert isinstance(archive, dynatrain.Archive)
        assert archive.layer_names == ("fc1", "fc2", "fc3", "fc4")


def test_signals_dataset_is_layer_by_epoch_with_metadata():
    xarray = pytest.importorskip("xarray", reason="xarray is an optional extra")
    dataset = dynatrain.signals_dataset(RUN, reduce="rms", layers=["fc1", "fc2"], epochs="0:50")
    signals = dynatrain.read_signals(RUN, reduce="rms", layers=["fc1", "fc2"], epochs=(0, 50))
    assert isinstance(dataset, xarray.Dataset)
    assert dataset["signal"].dims == ("layer", "epoch")
    assert list(dataset["layer"].values) == ["fc1", "fc2"]
    np.testing.assert_array_equal(dataset["signal"].values, signals.values)
    np.testing.assert_array_equal(dataset["epoch"].values, signals.epochs)
    np.testing.assert_array_equal(dataset["val_accuracy"].values, signals.metrics["val_accuracy"])
    assert dataset.attrs["run_id"] == "mlp-digits-seed1" and dataset.attrs["dataset"] == "digits"
    assert dataset.attrs["dynatrain_reduce"] == "rms"
    assert float(dataset["signal"].sel(layer="fc2", epoch=10)) == signals.values[1, 10]


def test_without_xarray_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"^xarray datasets need xarray, which is not installed"):
        dynatrain.signals_dataset(RUN)
