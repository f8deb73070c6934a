"""The live monitor: fed checkpoint by checkpoint, it reports what analyze reports afterwards.

The central guarantee: on every shipped run and on random runs, the windowed series are
bit for bit those of ``analyze`` with the same window, step and seed, and the converged
epoch, the decided epoch, the p-value and the relapse are the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dynatrain.analysis import Settings, analyze
from dynatrain.errors import InputError
from dynatrain.live import Monitor, plan_windows
from dynatrain.measures.windows import kernel_origin
from dynatrain.signals import LayerSignals, read_signals

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = sorted((ROOT / "sample_data").glob("*.h5"))
SERIES = {
    "window_end_epoch": "window_end_epoch",
    "integration": "window_integration",
    "metastability": "window_metastability",
    "stability_index": "window_stability_index",
    "volatility": "volatility",
}
CONVERGENCE = ("epoch", "decided_epoch", "p", "relapse", "surrogates_drawn")


def feed(monitor: Monitor, signals: LayerSignals) -> list[dict]:
    statuses = []
    for k, epoch in enumerate(signals.epochs):
        metrics = {name: float(values[k]) for name, values in signals.metrics.items()}
        statuses.append(monitor.update(epoch, signals.values[:, k], metrics))
    return statuses


def assert_same_as_analyze(monitor: Monitor, statuses: list[dict], signals, settings) -> None:
    result = analyze(signals, settings)
    series = monitor.timeseries()
    for live_name, result_name in SERIES.items():
        np.testing.assert_array_equal(series[live_name], getattr(result, result_name))
    offline = result.to_dict()["convergence"]
    assert {k: statuses[-1]["convergence"][k] for k in CONVERGENCE} == {
        k: offline[k] for k in CONVERGENCE
    }
    # The decision was announced at the checkpoint it names, not later.
    if offline["decided_epoch"] is not None:
        first = next(s for s in statuses if s["convergence"]["decided_epoch"] is not None)
        assert first["epoch"] == offline["decided_epoch"]
        assert first["convergence"]["p"] == offline["p"]


@pytest.mark.parametrize("path", SAMPLE_RUNS, ids=lambda p: p.stem)
def test_every_shipped_run_live_equals_analyze(path):
    signals = read_signals(path)
    monitor = Monitor(signals.layer_names, expected_checkpoints=signals.n_checkpoints)
    statuses = feed(monitor, signals)
    assert monitor.plan.window_from == monitor.plan.step_from == "expected_checkpoints"
    assert_same_as_analyze(monitor, statuses, signals, Settings())


def random_run(n_checkpoints, n_layers, seed, *, constant_stretch=True):
    """Random walks with a learning-like drift, a constant stretch and a dead layer."""
    rng = np.random.default_rng(seed)
    levels = rng.standard_normal((n_layers, n_checkpoints)).cumsum(axis=1)
    levels += 20 * np.tanh(np.arange(n_checkpoints) / (n_checkpoints / 5))
    if constant_stretch:
        levels[1, n_checkpoints // 4 : n_checkpoints // 2] = levels[1, n_checkpoints // 4]
        levels[-1] = 3.0  # constant over the whole run: analyze excludes it
    epochs = np.arange(n_checkpoints) * 0.5 + 1.0
    accuracy = 1 - np.exp(-epochs / (n_checkpoints / 8))
    names = tuple(f"layer{i}" for i in range(n_layers))
    return LayerSignals("random", {}, "mean", names, epochs, levels, {"val_accuracy": accuracy})


@pytest.mark.parametrize(
    ("n_checkpoints", "n_layers", "options"),
    [
        (121, 4, {}),
        (900, 5, {"surrogates": 39}),
        (300, 3, {"transform": "level", "dfa_order": 2, "min_scale": 5, "surrogates": 19}),
        (260, 4, {"window": 60, "window_step": 7, "vol_window": 9, "surrogates": 19}),
        (200, 6, {"vol_threshold": 0.6, "vol_patience": 1, "seed": 3, "surrogates": 29}),
    ],
    ids=["short", "step-3", "level-order-2", "custom-windows", "loose-rule"],
)
def test_random_runs_live_equal_analyze(n_checkpoints, n_layers, options):
    signals = random_run(n_checkpoints, n_layers, seed=n_checkpoints)
    settings = Settings(**options)
    monitor = Monitor(signals.layer_names, settings, expected_checkpoints=n_checkpoints)
    statuses = feed(monitor, signals)
    assert_same_as_analyze(monitor, statuses, signals, settings)


def test_a_decision_is_reached_and_matches_on_a_converging_run():
    """At least one random run where the rule decides, so the p-value path is compared."""
    for seed in range(40):
        signals = random_run(160, 4, seed=seed, constant_stretch=False)
        result = analyze(signals, Settings(surrogates=19))
        if result.decided_epoch is not None:
            break
    else:
        pytest.fail("no random run converged")
    monitor = Monitor(signals.layer_names, Settings(surrogates=19), expected_checkpoints=160)
    assert_same_as_analyze(monitor, feed(monitor, signals), signals, Settings(surrogates=19))


def test_a_diverged_run_stops_where_analyze_cuts_it():
    signals = random_run(150, 3, seed=5, constant_stretch=False)
    signals.values[2, 120:] = np.nan
    monitor = Monitor(signals.layer_names, expected_checkpoints=150)
    statuses = feed(monitor, signals)
    assert statuses[-1]["checkpoints"] == 120
    assert statuses[-1]["epoch"] == signals.epochs[-1]
    assert "non-finite values from epoch" in statuses[-1]["stopped"]
    assert statuses[119]["stopped"] is None
    # analyze of the finite prefix, with the windows the monitor planned for 150
    settings = Settings(window=monitor.plan.window, window_step=monitor.plan.step)
    result = analyze(signals, settings)
    np.testing.assert_array_equal(monitor.timeseries()["integration"], result.window_integration)


def test_huge_values_stop_the_monitor_where_analyze_cuts_the_run():
    """A run whose float64 signals grow past 1e150 (diverging) is cut, not overflowed."""
    signals = random_run(150, 3, seed=6, constant_stretch=False)
    signals.values[1, 110:] = 1e200 * np.arange(1, 41)
    monitor = Monitor(signals.layer_names, expected_checkpoints=150)
    statuses = feed(monitor, signals)  # pytest turns any overflow warning into an error
    assert statuses[-1]["checkpoints"] == 110
    assert statuses[-1]["stopped"].startswith("values beyond ±1e+150 (a diverging run) from epoch")
    assert "layer1" in statuses[-1]["stopped"]
    settings = Settings(window=monitor.plan.window, window_step=monitor.plan.step, surrogates=19)
    result = analyze(signals, settings)
    assert result.checkpoints == 110
    assert any("values beyond ±1e+150" in w for w in result.warnings)
    np.testing.assert_array_equal(monitor.timeseries()["integration"], result.window_integration)


def test_subnormal_layer_is_read_as_zero_live_and_offline():
    """A layer of subnormal values would underflow every z-score: it counts as constant."""
    signals = random_run(150, 4, seed=7, constant_stretch=False)
    signals.values[3] = np.random.default_rng(0).standard_normal(150) * 1e-310
    result = analyze(signals, Settings(surrogates=19))
    assert {"name": "layer3", "reason": "constant over the analysed checkpoints"} in (
        result.excluded_layers
    )
    monitor = Monitor(signals.layer_names, Settings(surrogates=19), expected_checkpoints=150)
    assert_same_as_analyze(monitor, feed(monitor, signals), signals, Settings(surrogates=19))


def test_status_is_json_ready_and_complete():
    signals = random_run(121, 4, seed=1)
    monitor = Monitor(signals.layer_names, expected_checkpoints=121)
    statuses = feed(monitor, signals)
    for status in (statuses[0], statuses[40], statuses[-1]):
        json.dumps(status, allow_nan=False)
    first, last = statuses[0], statuses[-1]
    assert first["windows"] == 0 and first["stability_index"] is None
    assert first["integration"] is None  # not enough points for DFA yet
    assert set(last) == {
        "epoch",
        "checkpoints",
        "integration",
        "metastability",
        "measured_at_checkpoints",
        "windows",
        "window_end_epoch",
        "stability_index",
        "volatility",
        "convergence",
        "window",
        "stopped",
    }
    assert set(last["convergence"]) == {
        "epoch",
        "decided_epoch",
        "p",
        "relapse",
        "surrogates_drawn",
        "accuracy_plateau_epoch",
        "lead_epochs",
        "metric",
    }
    assert last["convergence"]["metric"] == "val_accuracy"
    assert last["convergence"]["accuracy_plateau_epoch"] is None  # needs the finished run
    assert last["window"] == {
        "length": 30,
        "step": 1,
        "length_from": "expected_checkpoints",
        "step_from": "expected_checkpoints",
        "expected_checkpoints": 121,
    }
    assert last["windows"] == 120 - 30 + 1


def test_running_measures_are_refreshed_on_a_growing_schedule():
    signals = random_run(400, 3, seed=2, constant_stretch=False)
    monitor = Monitor(signals.layer_names, Settings(window=50, surrogates=0))
    statuses = feed(monitor, signals)
    measured = [s["measured_at_checkpoints"] for s in statuses if s["integration"] is not None]
    refreshes = sorted(set(measured))
    assert 20 < len(refreshes) < 60  # every checkpoint early, then every eighth of the run
    for status in statuses:
        if status["measured_at_checkpoints"] is not None:
            assert status["measured_at_checkpoints"] >= status["checkpoints"] * 8 / 9 - 1
    last = statuses[-1]
    expected = analyze(
        read_prefix(signals, last["measured_at_checkpoints"]), Settings(surrogates=0)
    )
    assert last["integration"] == pytest.approx(expected.integration, rel=1e-12)
    assert last["metastability"] == pytest.approx(expected.metastability, rel=1e-12)


def read_prefix(signals: LayerSignals, n: int) -> LayerSignals:
    return LayerSignals(
        signals.path, {}, "mean", signals.layer_names, signals.epochs[:n], signals.values[:, :n]
    )


def test_each_window_reads_at_most_one_window_of_history(monkeypatch):
    """The cost of a window does not depend on the length of the history."""
    import dynatrain.live as live

    seen = []
    real = live.window_measures

    def spy(x, starts, window, scales, order, *, origin):
        seen.append((x.shape[-1], int(starts[0]), origin))
        return real(x, starts, window, scales, order, origin=origin)

    monkeypatch.setattr(live, "window_measures", spy)
    signals = random_run(600, 3, seed=3)
    monitor = Monitor(signals.layer_names, Settings(window=40, window_step=3, surrogates=0))
    feed(monitor, signals)
    assert len(seen) == (599 - 40) // 3 + 1
    for n_read, start, origin in seen:
        assert n_read <= 2 * 40
        assert origin == kernel_origin(start, monitor._scales)


# --- the plan and bad input ------------------------------------------------------------------


def test_plan_from_settings_expected_or_neither():
    assert plan_windows(Settings(window=40, window_step=5)).to_dict()["step_from"] == "settings"
    plan = plan_windows(Settings(), expected_checkpoints=10_001)
    assert (plan.window, plan.step) == (2500, 30)  # analyze's defaults for 10,000 points
    plan = plan_windows(Settings(transform="level"), expected_checkpoints=10_000)
    assert (plan.window, plan.step) == (2500, 30)
    plan = plan_windows(Settings(window=64))
    assert (plan.window, plan.step, plan.step_from) == (64, 1, "default")
    with pytest.raises(InputError, match="a live monitor needs its windows before the run ends"):
        plan_windows(Settings())
    with pytest.raises(InputError, match="expected_checkpoints must be >= 2, got 1"):
        plan_windows(Settings(), expected_checkpoints=1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Monitor(["a"], Settings(window=20)), "at least 2 layers, got 1"),
        (
            lambda: Monitor(["a", "b"], Settings(window=20, convergence_rule="whole-run")),
            "the whole-run convergence rule needs the finished run",
        ),
        (
            lambda: Monitor(["a", "b"], Settings(window=8)),
            r"window=8 is too short .* at least 12 points",
        ),
    ],
    ids=["one-layer", "whole-run-rule", "short-window"],
)
def test_construction_errors(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_update_errors():
    monitor = Monitor(["a", "b"], Settings(window=20))
    with pytest.raises(InputError, match="expected 2 layer values, got 3"):
        monitor.update(0, [1.0, 2.0, 3.0])
    monitor.update(1, [1.0, 2.0])
    with pytest.raises(InputError, match=r"epoch 1 must be finite and after the previous one"):
        monitor.update(1, [1.0, 2.0])
    with pytest.raises(InputError, match="epoch nan must be finite"):
        monitor.update(float("nan"), [1.0, 2.0])
    assert monitor.checkpoints == 1


def test_the_null_can_wait_and_gives_the_same_p_value():
    for seed in range(40):
        signals = random_run(160, 4, seed=seed, constant_stretch=False)
        if analyze(signals, Settings(surrogates=19)).decided_epoch is not None:
            break
    settings = Settings(surrogates=19)
    now = Monitor(signals.layer_names, settings, expected_checkpoints=160)
    later = Monitor(signals.layer_names, settings, expected_checkpoints=160, null_on_decision=False)
    feed(now, signals)
    statuses = feed(later, signals)
    assert statuses[-1]["convergence"]["decided_epoch"] is not None
    assert statuses[-1]["convergence"]["p"] is None  # not computed yet
    assert later.compute_null() == now.compute_null()
    assert later.status()["convergence"] == now.status()["convergence"]
