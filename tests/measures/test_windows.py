"""Windows that advance by a step, and the windowed kernel that analyze and live share.

References: a direct DFA of each window (``dfa`` on the window's points, which is
checked against fathon and MFDFA in test_dfa.py), fathon itself on a few windows, and a
naive per-window Kuramoto.
"""

from __future__ import annotations

import measures_refs as refs
import numpy as np
import pytest

from dynatrain.measures import dfa, dfa_scales, kuramoto, window_count, window_starts
from dynatrain.measures import windows as kernel
from dynatrain.measures.stability import windowed_measures

# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_points", "window", "step", "expected"),
    [
        (10, 4, 1, [0, 1, 2, 3, 4, 5, 6]),
        (10, 4, 3, [0, 3, 6]),
        (10, 4, 7, [0]),
        (10, 10, 1, [0]),
        (9, 10, 1, []),
        (100, 25, 1, list(range(76))),
    ],
)
def test_window_starts(n_points, window, step, expected):
    starts = window_starts(n_points, window, step)
    assert starts.tolist() == expected
    assert window_count(n_points, window, step) == len(expected)
    assert all(start + window <= n_points for start in starts)


def test_window_starts_errors():
    with pytest.raises(ValueError, match="step must be >= 1, got 0"):
        window_starts(10, 4, 0)
    with pytest.raises(ValueError, match="window must be >= 1"):
        window_starts(10, 0, 1)


# --- the windowed DFA against a direct DFA of each window ----------------------------------


def _signals(n_layers: int, n_points: int, trend: float, seed: int) -> np.ndarray:
    """Random walks (alpha ~ 1.5) plus, with `trend`, a strong smooth trend and a jump."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_layers, n_points)).cumsum(axis=1)
    t = np.linspace(0.0, 1.0, n_points)
    x += trend * (t**2 + np.sin(40 * t))
    x[:, n_points // 3 :] += trend  # a step in the level
    return x


def _direct_integration(x: np.ndarray, starts, window: int, order: int, min_scale: int):
    return np.array(
        [
            dfa(
                x[:, a : a + window], max_scale=window // 2, order=order, min_scale=min_scale
            ).mean()
            for a in starts
        ]
    )


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize(
    ("n_points", "window", "step", "trend"),
    [(100, 25, 1, 0.0), (1000, 250, 3, 0.0), (3000, 750, 11, 1e5)],
    ids=["sample-run", "thousand", "strong-trend"],
)
def test_windowed_dfa_matches_a_direct_dfa_of_every_window(n_points, window, step, trend, order):
    x = _signals(3, n_points, trend, seed=n_points + order)
    min_scale = order + 2 if order > 2 else 4
    result = windowed_measures(x, window, step=step, order=order, min_scale=min_scale)
    starts = window_starts(n_points, window, step)
    checked = starts[:: max(1, len(starts) // 12)]
    expected = _direct_integration(x, checked, window, order, min_scale)
    got = result.integration[np.searchsorted(starts, checked)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_precision_at_a_hundred_thousand_points_with_strong_trends():
    """Prefix sums over 100,000 points would cancel: the rebased sums keep ~1e-12."""
    n_points, window, step = 100_000, 25_000, 293
    x = _signals(2, n_points, 1e6, seed=7)
    x[1] += np.linspace(0.0, 1e9, n_points)  # a huge drift in the changes
    result = windowed_measures(x, window, step=step)
    starts = window_starts(n_points, window, step)
    checked = starts[[0, 97, len(starts) - 1]]
    expected = _direct_integration(x, checked, window, 1, 4)
    np.testing.assert_allclose(
        result.integration[np.searchsorted(starts, checked)], expected, rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("start", [0, 37, 150])
def test_windowed_dfa_matches_fathon_on_windows(start):
    """fathon (``revSeg=True``) is the same definition: each layer's alpha to 1e-9."""
    pytest.importorskip("fathon")
    window = 200
    x = _signals(2, 400, 50.0, seed=start)
    scales = dfa_scales(window, max_scale=window // 2)
    alpha = kernel._windowed_alpha(
        np.ascontiguousarray(x.T), np.array([start]), window, scales, 1, 0
    )[0]
    for layer in range(2):
        expected, _ = refs.fathon_fluctuations(x[layer, start : start + window], scales, 1)
        assert alpha[layer] == pytest.approx(expected, abs=1e-9)


# --- metastability -------------------------------------------------------------------------


def test_windowed_metastability_matches_kuramoto_of_every_window():
    x = np.random.default_rng(4).standard_normal((5, 300))
    result = windowed_measures(x, 64, step=9)
    for k, start in enumerate(window_starts(300, 64, 9)):
        expected = kuramoto(x[:, start : start + 64]).metastability
        assert result.metastability[k] == pytest.approx(expected, abs=1e-13)


# --- the same bits whatever is computed together -------------------------------------------


@pytest.mark.parametrize("order", [1, 2])
def test_a_step_takes_every_step_th_window_bit_for_bit(order):
    x = _signals(4, 400, 30.0, seed=order)
    every = windowed_measures(x, 80, order=order)
    stepped = windowed_measures(x, 80, step=7, order=order)
    np.testing.assert_array_equal(stepped.integration, every.integration[::7])
    np.testing.assert_array_equal(stepped.metastability, every.metastability[::7])


@pytest.mark.parametrize("order", [1, 3])
def test_one_window_from_the_tail_of_the_history_is_bit_for_bit(order):
    """What a live monitor computes (one window, from the tail) is what analyze computes."""
    x = _signals(3, 500, 1e3, seed=11)
    x[1, 100:260] = 0.25  # constant for a while: some windows have no exponent for it
    window, step, min_scale = 120, 5, 5
    scales = dfa_scales(window, max_scale=window // 2, min_scale=min_scale, order=order)
    starts = window_starts(500, window, step)
    integration, metastability = kernel.window_measures(x, starts, window, scales, order)
    for k, start in enumerate(starts):
        origin = kernel.kernel_origin(int(start), scales)
        assert start - window <= origin <= start
        one_i, one_m = kernel.window_measures(
            x[:, origin : start + window], np.array([start]), window, scales, order, origin=origin
        )
        assert one_i[0] == integration[k] or (np.isnan(one_i[0]) and np.isnan(integration[k]))
        assert one_m[0] == metastability[k]


def test_batches_of_layers_and_runs_do_not_change_the_bits(monkeypatch):
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 150))
    whole = windowed_measures(x, 40, step=3)
    monkeypatch.setattr(kernel, "_CHUNK_ELEMENTS", 150)  # one row at a time
    monkeypatch.setattr(kernel, "_PHASE_CHUNK_ELEMENTS", 1)  # one window at a time
    chunked = windowed_measures(x, 40, step=3)
    np.testing.assert_array_equal(whole.integration, chunked.integration)
    np.testing.assert_array_equal(whole.metastability, chunked.metastability)
    single = windowed_measures(x[1, 2], 40, step=3)
    np.testing.assert_array_equal(whole.integration[1, 2], single.integration)


# --- constant layers -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 0.1, 1 / 3, 1e6 + 0.1, -2.5e-9])
def test_a_layer_constant_in_a_window_has_no_exponent_there(value):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 200))
    x[0, 50:150] = value
    window = 40
    result = windowed_measures(x, window, step=2)
    for k, start in enumerate(window_starts(200, window, 2)):
        inside = 50 <= start and start + window <= 150
        rows = [1, 2] if inside else [0, 1, 2]
        expected = dfa(x[rows, start : start + window], max_scale=window // 2).mean()
        assert result.integration[k] == pytest.approx(expected, abs=1e-10), (k, inside)


def test_every_layer_constant_gives_nan_without_a_warning():
    x = np.ones((3, 80))
    result = windowed_measures(x, 20, step=4)
    assert np.isnan(result.integration).all() and np.isnan(result.metastability).all()
