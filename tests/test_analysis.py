"""One-run analysis end to end, on archives with planted properties."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynatrain.analysis import Settings, analyze
from dynatrain.errors import InputError
from dynatrain.report.export import to_json
from dynatrain.simulate import simulate_run, write_run

CONTRACT_KEYS = {
    "run", "run_id", "metadata", "format_version", "checkpoints", "epochs", "settings",
    "layers_analysed", "excluded_layers", "integration", "integration_global",
    "integration_ci95", "integration_p", "synchrony", "metastability", "metastability_p",
    "stability_index", "style", "convergence", "layers", "timeseries", "warnings",
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Planted runs, written once for the module."""
    folder = tmp_path_factory.mktemp("planted")
    plans = {
        "white.h5": ("hurst", {"hurst": 0.5, "n_layers": 8, "n_checkpoints": 129}),
        "persistent.h5": ("hurst", {"hurst": 0.9, "n_layers": 8, "n_checkpoints": 129}),
        "locked.zarr": ("oscillators", {"coupling": "locked"}),
        "independent.h5": ("oscillators", {"coupling": "independent", "n_layers": 12}),
        "switching.h5": ("oscillators", {"coupling": "switching", "n_layers": 12}),
        "training.h5": ("training", {}),
    }
    paths = {}
    for name, (kind, options) in plans.items():
        paths[name] = folder / name
        write_run(paths[name], simulate_run(kind, seed=3, **options), seed=3)
    return paths


def test_contract_keys_and_no_nan(archives):
    data = analyze(archives["training.h5"]).to_dict()
    assert CONTRACT_KEYS <= set(data)
    assert set(data["convergence"]) == {
        "epoch", "decided_epoch", "p", "relapse", "surrogates_drawn",
        "accuracy_plateau_epoch", "lead_epochs", "metric",
    }
    assert set(data["timeseries"]) == {
        "epoch", "kuramoto_r", "window_end_epoch", "integration", "metastability",
        "stability_index", "volatility",
    }
    text = to_json(data)
    assert "NaN" not in text
    parsed = json.loads(text)
    assert parsed["timeseries"]["volatility"][0] is None  # first vol_window - 1 are undefined
    assert len(parsed["timeseries"]["epoch"]) == parsed["checkpoints"] - 1  # change transform
    n_windows = len(parsed["timeseries"]["window_end_epoch"])
    n_points, settings = len(parsed["timeseries"]["epoch"]), parsed["settings"]
    assert n_windows == (n_points - settings["window"]) // settings["window_step"] + 1


def test_integration_reads_the_planted_hurst_exponent(archives):
    white = analyze(archives["white.h5"], Settings(surrogates=99))
    persistent = analyze(archives["persistent.h5"], Settings(surrogates=99))
    # DFA reads fGn slightly high at 128 points (bias ~ +0.05 to +0.1; README, "Reading the
    # numbers").
    assert white.integration == pytest.approx(0.55, abs=0.1)
    assert persistent.integration == pytest.approx(0.95, abs=0.1)
    assert persistent.integration_p < 0.05
    assert white.integration_p > 0.05
    lo, hi = persistent.integration_ci95
    assert lo <= persistent.integration <= hi


def test_kuramoto_measures_read_the_planted_coupling(archives):
    locked = analyze(archives["locked.zarr"], Settings(surrogates=99))
    independent = analyze(archives["independent.h5"], Settings(surrogates=99))
    switching = analyze(archives["switching.h5"], Settings(surrogates=99))
    assert locked.synchrony > 0.95
    assert locked.metastability < 0.05
    assert independent.synchrony < 0.5
    assert switching.metastability > 2 * max(locked.metastability, independent.metastability)
    assert switching.metastability_p < 0.05


def test_training_run_converges_soon_after_its_planted_settle(archives):
    """The stability index converges within two windows of the epoch the drift stops.

    (Whether that precedes the accuracy plateau depends on the simulated accuracy's
    noise, so it is not asserted here; docs/findings.md measures it on real runs.)
    """
    result = analyze(archives["training.h5"])
    assert result.metric == "val_accuracy"
    assert result.convergence_epoch is not None
    assert result.plateau_epoch is not None
    settle = result.metadata["planted_settle_epoch"]
    assert settle <= result.convergence_epoch <= settle + 2 * result.settings["window"]


def test_same_seed_same_bytes_other_seed_other_p_values(archives):
    first = to_json(analyze(archives["switching.h5"], Settings(seed=5)).to_dict())
    again = to_json(analyze(archives["switching.h5"], Settings(seed=5)).to_dict())
    other = json.loads(to_json(analyze(archives["switching.h5"], Settings(seed=6)).to_dict()))
    assert first == again
    assert json.loads(first)["integration"] == other["integration"]  # no randomness in it
    assert json.loads(first)["integration_ci95"] != other["integration_ci95"]


def test_surrogates_zero_gives_null_uncertainty(archives):
    data = analyze(archives["white.h5"], Settings(surrogates=0)).to_dict()
    assert data["integration_p"] is None
    assert data["integration_ci95"] is None
    assert data["metastability_p"] is None


def test_level_transform_analyses_every_checkpoint(archives):
    result = analyze(archives["training.h5"], Settings(transform="level", surrogates=0))
    assert len(result.epoch) == result.checkpoints


def test_settings_report_resolved_values(archives):
    data = analyze(archives["white.h5"], Settings(surrogates=0, layers=("layer[0-3]",),
                                                  epochs="1:100")).to_dict()
    assert data["layers_analysed"] == 4
    assert data["checkpoints"] == 100
    assert data["settings"]["max_scale"] == 99 // 4
    assert data["settings"]["window"] == max(16, 99 // 4)
    assert data["settings"]["layers"] == ["layer[0-3]"]


def test_diverged_run_is_cut_to_its_finite_prefix(plain_archive):
    rng = np.random.default_rng(0)
    layers = {f"l{i}": rng.normal(size=(60, 4, 3)) for i in range(3)}
    layers["l1"][41] = np.nan
    path = plain_archive("diverged.h5", layers=layers)
    result = analyze(path, Settings(surrogates=0))
    assert result.checkpoints == 41
    assert any("non-finite values from epoch 42" in w and "l1" in w for w in result.warnings)
    with pytest.raises(InputError, match="--strict"):
        analyze(path, Settings(surrogates=0, strict=True))


def test_dead_layer_is_excluded_with_its_reason(plain_archive):
    rng = np.random.default_rng(1)
    layers = {f"l{i}": rng.normal(size=(40, 4, 3)) for i in range(3)}
    layers["dead"] = np.ones((40, 4, 3))
    result = analyze(plain_archive("dead.h5", layers=layers), Settings(surrogates=0))
    assert result.layer_names == ("l0", "l1", "l2")
    assert result.excluded_layers == [
        {"name": "dead", "reason": "constant over the analysed checkpoints"}
    ]


def test_too_few_checkpoints_says_how_many_are_needed(plain_archive):
    rng = np.random.default_rng(2)
    path = plain_archive("short.h5", layers={"a": rng.normal(size=(20, 3)),
                                             "b": rng.normal(size=(20, 3))})
    with pytest.raises(InputError, match=r"needs at least 24 points, i\.e\. 25 checkpoints"):
        analyze(path)
    with pytest.raises(InputError, match=r"at least 24 points, i\.e\. 24 checkpoints"):
        analyze(path, Settings(transform="level"))


def test_one_varying_layer_is_not_enough(plain_archive):
    rng = np.random.default_rng(3)
    path = plain_archive("one.h5", layers={"a": rng.normal(size=(40, 3)),
                                           "b": np.zeros((40, 3))})
    with pytest.raises(InputError, match="needs at least 2"):
        analyze(path)


def test_metric_choice(archives, plain_archive):
    with pytest.raises(InputError, match="no metric 'top5'"):
        analyze(archives["white.h5"], Settings(metric="top5", surrogates=0))
    result = analyze(archives["white.h5"], Settings(metric="val_loss", surrogates=0))
    assert result.metric == "val_loss"
    rng = np.random.default_rng(4)
    bare = plain_archive("bare.h5", layers={"a": rng.normal(size=(40, 3)),
                                            "b": rng.normal(size=(40, 3))})
    result = analyze(bare, Settings(surrogates=0))
    assert result.metric is None and result.plateau_epoch is None and result.lead_epochs is None
    assert any("no accuracy metric" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"reduce": "max"}, "invalid reduce"), ({"transform": "log"}, "invalid transform"),
     ({"surrogates": -1}, "surrogates"), ({"epochs": "x"}, "--epochs")],
)
def test_bad_settings_are_input_errors(settings, match):
    with pytest.raises(InputError, match=match):
        Settings(**settings)


def test_window_longer_than_the_run(archives):
    with pytest.raises(InputError, match="--window 500 is longer"):
        analyze(archives["white.h5"], Settings(window=500, surrogates=0))
