"""One-run analysis end to end, on archives with planted properties."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynatrain import measures as m
from dynatrain.analysis import Settings, analyze
from dynatrain.errors import InputError
from dynatrain.report.export import to_json
from dynatrain.signals import LayerSignals
from dynatrain.simulate import simulate_run, write_run

CONTRACT_KEYS = {
    "run",
    "run_id",
    "metadata",
    "format_version",
    "checkpoints",
    "epochs",
    "settings",
    "layers_analysed",
    "excluded_layers",
    "integration",
    "integration_global",
    "integration_ci95",
    "integration_p",
    "synchrony",
    "metastability",
    "metastability_p",
    "stability_index",
    "style",
    "convergence",
    "layers",
    "timeseries",
    "warnings",
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
        "epoch",
        "decided_epoch",
        "p",
        "relapse",
        "surrogates_drawn",
        "accuracy_plateau_epoch",
        "lead_epochs",
        "metric",
    }
    assert set(data["timeseries"]) == {
        "epoch",
        "kuramoto_r",
        "window_end_epoch",
        "integration",
        "metastability",
        "stability_index",
        "volatility",
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
    data = analyze(
        archives["white.h5"], Settings(surrogates=0, layers=("layer[0-3]",), epochs="1:100")
    ).to_dict()
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
    path = plain_archive(
        "short.h5", layers={"a": rng.normal(size=(20, 3)), "b": rng.normal(size=(20, 3))}
    )
    with pytest.raises(InputError, match=r"needs at least 24 points, i\.e\. 25 checkpoints"):
        analyze(path)
    with pytest.raises(InputError, match=r"at least 24 points, i\.e\. 24 checkpoints"):
        analyze(path, Settings(transform="level"))


def test_one_varying_layer_is_not_enough(plain_archive):
    rng = np.random.default_rng(3)
    path = plain_archive("one.h5", layers={"a": rng.normal(size=(40, 3)), "b": np.zeros((40, 3))})
    with pytest.raises(InputError, match="needs at least 2"):
        analyze(path)


def test_metric_choice(archives, plain_archive):
    with pytest.raises(InputError, match="no metric 'top5'"):
        analyze(archives["white.h5"], Settings(metric="top5", surrogates=0))
    result = analyze(archives["white.h5"], Settings(metric="val_loss", surrogates=0))
    assert result.metric == "val_loss"
    rng = np.random.default_rng(4)
    bare = plain_archive(
        "bare.h5", layers={"a": rng.normal(size=(40, 3)), "b": rng.normal(size=(40, 3))}
    )
    result = analyze(bare, Settings(surrogates=0))
    assert result.metric is None and result.plateau_epoch is None and result.lead_epochs is None
    assert any("no accuracy metric" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"reduce": "max"}, "invalid reduce"),
        ({"transform": "log"}, "invalid transform"),
        ({"surrogates": -1}, "surrogates"),
        ({"epochs": "x"}, "--epochs"),
        ({"window_step": 0}, "window_step must be >= 1, got 0"),
        ({"convergence_rule": "peak"}, "invalid convergence_rule 'peak': use one of causal"),
        ({"convergence_surrogates": -2}, "convergence_surrogates must be >= 0, got -2"),
    ],
)
def test_bad_settings_are_input_errors(settings, match):
    with pytest.raises(InputError, match=match):
        Settings(**settings)


def test_window_longer_than_the_run(archives):
    with pytest.raises(InputError, match="--window 500 is longer"):
        analyze(archives["white.h5"], Settings(window=500, surrogates=0))


# -- windows that advance by a step, and the convergence ---------------------------------------


def synthetic_signals(n_checkpoints, n_layers=4, seed=0):
    """Random walks with a learning-like drift that settles, and an accuracy curve."""
    rng = np.random.default_rng(seed)
    levels = rng.standard_normal((n_layers, n_checkpoints)).cumsum(axis=1)
    levels += 30 * np.tanh(np.arange(n_checkpoints) / (n_checkpoints / 6))
    epochs = np.arange(n_checkpoints, dtype=np.float64)
    accuracy = 1 - np.exp(-epochs / (n_checkpoints / 8))
    names = tuple(f"layer{i}" for i in range(n_layers))
    return LayerSignals("synthetic", {}, "mean", names, epochs, levels, {"val_accuracy": accuracy})


@pytest.mark.parametrize(
    ("n_checkpoints", "window", "step", "n_windows"),
    [
        (101, 25, 1, 76),
        (201, 50, 1, 151),
        (340, 84, 1, 256),
        (341, 84, 2, 129),
        (1000, 245, 3, 252),
        (1001, 250, 3, 251),
    ],
)
def test_default_window_step_keeps_the_windows_bounded(n_checkpoints, window, step, n_windows):
    """Stride 1 up to 256 windows (every run of up to 340 checkpoints), larger beyond."""
    result = analyze(synthetic_signals(n_checkpoints), Settings(surrogates=0))
    assert (result.settings["window"], result.settings["window_step"]) == (window, step)
    assert len(result.window_end_epoch) == n_windows
    # window k ends at analysed point k * step + window - 1, i.e. checkpoint k * step + window
    np.testing.assert_array_equal(result.window_end_epoch, np.arange(n_windows) * step + window)


def test_window_step_option_gives_every_step_th_window():
    signals = synthetic_signals(301)
    every = analyze(signals, Settings(surrogates=0))
    stepped = analyze(signals, Settings(surrogates=0, window_step=4))
    assert stepped.settings["window_step"] == 4
    np.testing.assert_array_equal(stepped.window_integration, every.window_integration[::4])
    np.testing.assert_array_equal(stepped.window_end_epoch, every.window_end_epoch[::4])


def test_convergence_epochs_are_window_ends_and_the_lead_counts_from_the_decision():
    for seed in range(30):
        result = analyze(synthetic_signals(161, seed=seed), Settings(surrogates=19))
        if result.decided_epoch is not None and result.plateau_epoch is not None:
            break
    else:
        pytest.fail("no synthetic run converged")
    converged = m.find_convergence(result.volatility)
    assert result.convergence_epoch == result.window_end_epoch[converged.window]
    assert result.decided_epoch == result.window_end_epoch[converged.decided_window]
    assert result.convergence_relapse == converged.relapse
    assert result.lead_epochs == result.plateau_epoch - result.decided_epoch
    assert result.convergence_p is not None and 1 / 20 <= result.convergence_p <= 1


def test_the_convergence_p_value_is_fixed_when_the_decision_is():
    """Causal: the run after the decided checkpoint changes neither the epochs nor p."""
    for seed in range(30):
        signals = synthetic_signals(161, seed=seed)
        full = analyze(signals, Settings(surrogates=39))
        if full.decided_epoch is not None and full.decided_epoch < 140:
            break
    else:
        pytest.fail("no synthetic run converged early enough")
    fixed = Settings(
        surrogates=39, window=full.settings["window"], window_step=full.settings["window_step"]
    )
    end = int(full.decided_epoch) + 1  # checkpoints up to the decision (epochs are indices)
    for extra in (0, 7):
        cut = LayerSignals(
            "cut",
            {},
            "mean",
            signals.layer_names,
            signals.epochs[: end + extra],
            signals.values[:, : end + extra],
        )
        shorter = analyze(cut, fixed)
        assert (shorter.convergence_epoch, shorter.decided_epoch, shorter.convergence_p) == (
            full.convergence_epoch,
            full.decided_epoch,
            full.convergence_p,
        )


def test_whole_run_rule_and_no_convergence_null(archives):
    whole = analyze(archives["training.h5"], Settings(surrogates=19, convergence_rule="whole-run"))
    expected = m.convergence_window(whole.volatility)
    if expected is None:
        assert whole.convergence_epoch is None
    else:
        assert whole.convergence_epoch == whole.window_end_epoch[expected]
        assert whole.decided_epoch == whole.window_end_epoch[expected + 2]
    assert whole.settings["convergence_rule"] == "whole-run"
    untested = analyze(archives["training.h5"], Settings(surrogates=19, convergence_surrogates=0))
    assert untested.convergence_p is None and untested.integration_p is not None
    assert untested.settings["convergence_surrogates"] == 0
    assert analyze(archives["training.h5"], Settings(surrogates=0)).convergence_p is None


def test_a_layer_constant_over_the_run_does_not_change_the_windows():
    """The windows see every layer (as a live monitor does); a dead one changes nothing."""
    signals = synthetic_signals(121, n_layers=3)
    with_dead = LayerSignals(
        "dead",
        {},
        "mean",
        (*signals.layer_names, "dead"),
        signals.epochs,
        np.vstack([signals.values, np.full((1, 121), 2.5)]),
        signals.metrics,
    )
    a = analyze(signals, Settings(surrogates=0))
    b = analyze(with_dead, Settings(surrogates=0))
    assert b.excluded_layers[-1]["name"] == "dead"
    np.testing.assert_allclose(b.window_integration, a.window_integration, rtol=1e-14)
    np.testing.assert_allclose(b.window_metastability, a.window_metastability, rtol=1e-14)
