"""Windowed measures, stability index, volatility, convergence, plateau, style."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import spearmanr

from dynatrain.defaults import STYLE_THRESHOLD, VOL_PATIENCE, VOL_THRESHOLD
from dynatrain.measures import (
    STYLE_LABELS,
    accuracy_plateau,
    convergence_window,
    dfa,
    kuramoto,
    rolling_volatility,
    spearman,
    stability_index,
    training_style,
    windowed_measures,
)

nan = np.nan

# --- windowed measures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_layers", "n_points", "window"), [(3, 40, 16), (5, 90, 30), (2, 24, 24)]
)
def test_windows_match_a_loop_over_windows(n_layers, n_points, window):
    x = np.random.default_rng(n_points).standard_normal((n_layers, n_points))
    result = windowed_measures(x, window)
    n_windows = n_points - window + 1
    assert result.integration.shape == result.metastability.shape == (n_windows,)
    for w in range(n_windows):
        part = x[:, w : w + window]
        assert result.integration[w] == pytest.approx(
            dfa(part, max_scale=window // 2).mean(), rel=1e-12
        )
        assert result.metastability[w] == pytest.approx(kuramoto(part).metastability, abs=1e-12)


def test_windows_vectorise_over_runs():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 50))
    result = windowed_measures(x, 20, order=2, min_scale=5)
    assert result.integration.shape == (2, 3, 31)
    single = windowed_measures(x[1, 2], 20, order=2, min_scale=5)
    np.testing.assert_allclose(result.integration[1, 2], single.integration, rtol=1e-12)
    np.testing.assert_allclose(result.metastability[1, 2], single.metastability, atol=1e-12)


def test_layer_constant_in_a_window_is_left_out():
    """nanmean over layers; a window with every layer constant is NaN, without a warning."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 60))
    x[0, :30] = 1.0  # constant in the first windows
    x[1:, :20] = 2.0
    result = windowed_measures(x, 16)
    assert np.isnan(result.integration[:5]).all()  # windows 0..4 lie inside t < 20
    assert result.integration[6] == pytest.approx(dfa(x[1:, 6:22], max_scale=8).mean(), rel=1e-12)
    assert np.isfinite(result.integration[20:]).all()


def test_window_errors():
    x = np.random.default_rng(3).standard_normal((3, 40))
    with pytest.raises(ValueError, match=r"window=41 is longer than the series: x.shape=\(3, 40\)"):
        windowed_measures(x, 41)
    with pytest.raises(ValueError, match=r"window=11 is too short .* at least 12 points"):
        windowed_measures(x, 11)
    with pytest.raises(ValueError, match="at least 2 layers"):
        windowed_measures(x[:1], 16)
    with pytest.raises(ValueError, match="min_scale=2 is too small"):
        windowed_measures(x, 16, min_scale=2)


# --- stability index and volatility --------------------------------------------------------


def test_stability_index():
    assert stability_index(0.8, 0.25) == pytest.approx(0.6)
    np.testing.assert_allclose(
        stability_index([1.0, 0.5, nan], [[0.0], [0.5]]), [[1.0, 0.5, nan], [0.5, 0.25, nan]]
    )
    with pytest.raises(ValueError, match=r"shape \(3,\) and metastability shape \(2,\)"):
        stability_index([1.0, 2.0, 3.0], [0.1, 0.2])


def test_rolling_volatility_matches_a_loop():
    dsi = np.random.default_rng(4).standard_normal((2, 30))
    volatility = rolling_volatility(dsi, 5)
    assert np.isnan(volatility[:, :4]).all()
    for w in range(4, 30):
        np.testing.assert_allclose(volatility[:, w], dsi[:, w - 4 : w + 1].std(axis=1), rtol=1e-12)


def test_rolling_volatility_edge_cases():
    np.testing.assert_array_equal(rolling_volatility([1.0, 2.0, 3.0], 1), [0.0, 0.0, 0.0])
    assert np.isnan(rolling_volatility([1.0, 2.0, 3.0], 4)).all()
    with_gap = rolling_volatility([1.0, 2.0, nan, 4.0, 5.0, 6.0, 7.0], 2)
    np.testing.assert_array_equal(with_gap, [nan, 0.5, nan, nan, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="vol_window must be >= 1, got 0"):
        rolling_volatility([1.0, 2.0], 0)


# --- convergence ---------------------------------------------------------------------------

PEAK_THEN_FALL = [nan, nan, 0.1, 0.4, 1.0, 0.6, 0.3, 0.2, 0.24, 0.1, 0.05, 0.05]


@pytest.mark.parametrize(
    ("volatility", "options", "expected"),
    [
        pytest.param(PEAK_THEN_FALL, {}, 7, id="peak-then-fall"),
        pytest.param(PEAK_THEN_FALL, {"patience": 1}, 7, id="patience-1"),
        pytest.param(PEAK_THEN_FALL, {"threshold": 0.6}, 5, id="looser-threshold"),
        pytest.param(PEAK_THEN_FALL, {"threshold": 0.04}, None, id="never-low-enough"),
        pytest.param(PEAK_THEN_FALL, {"patience": 6}, None, id="patience-runs-past-end"),
        pytest.param(PEAK_THEN_FALL, {"patience": 5}, 7, id="patience-ends-at-last"),
        pytest.param([0.1, 0.1, 0.1, 0.5, 1.0, 0.9, 0.8], {}, None, id="low-before-peak-only"),
        pytest.param([0.8, 0.4, 0.1, 0.3, 0.6, 1.0], {}, None, id="fall-then-rise"),
        pytest.param([0.05, 0.05, 0.05, 1.0, 0.1, 0.2, 0.1], {}, 4, id="low-peak-low"),
        pytest.param([1.0, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1], {}, 4, id="interrupted-run"),
        pytest.param([0.2, 0.4, 0.6, 0.8, 1.0], {}, None, id="never-falls"),
        pytest.param([nan, nan, nan], {}, None, id="all-nan"),
        pytest.param([0.0, 0.0, 0.0, 0.0], {}, None, id="zero-peak"),
        pytest.param([1.0, 0.2, nan, 0.2, 0.2, 0.2], {}, 3, id="nan-is-not-low"),
        pytest.param([1.0, 0.1], {}, None, id="shorter-than-patience"),
        pytest.param([0.5, 1.0, 1.0, 0.1, 0.1, 0.1], {}, 3, id="first-peak"),
    ],
)
def test_convergence_window(volatility, options, expected):
    assert convergence_window(volatility, **options) == expected


def test_convergence_defaults_are_the_spec():
    assert (VOL_THRESHOLD, VOL_PATIENCE) == (0.25, 3)
    result = convergence_window(PEAK_THEN_FALL)
    assert isinstance(result, int)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 1.5}, r"threshold must be in \[0.0, 1.0\], got 1.5"),
        ({"threshold": nan}, "threshold must be in"),
        ({"patience": 0}, "patience must be >= 1"),
    ],
)
def test_convergence_errors(options, message):
    with pytest.raises(ValueError, match=message):
        convergence_window([1.0, 0.1, 0.1, 0.1], **options)


def test_convergence_rejects_2d_and_inf():
    with pytest.raises(ValueError, match=r"volatility must be 1-D, got shape \(2, 2\)"):
        convergence_window(np.ones((2, 2)))
    with pytest.raises(ValueError, match="infinite"):
        convergence_window([1.0, np.inf])


# --- accuracy plateau ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accuracy", "options", "expected"),
    [
        # smoothed[0] = 0.2, best 0.98, gain 0.78: first >= 0.98 - 0.0156 is
        # smoothed[6] = (0.95 + 0.97 + 0.98) / 3 = 0.9667
        pytest.param(
            [0.1, 0.3, 0.6, 0.8, 0.9, 0.95, 0.97, 0.98, 0.98, 0.98], {}, 6, id="rise-then-flat"
        ),
        pytest.param([0.1, 0.5, 0.9, 0.9, 0.9, 0.9], {"smoothing": 1}, 2, id="no-smoothing"),
        pytest.param([0.1, 0.5, 0.9, 0.9, 0.9, 0.9], {"tolerance": 0.5}, 2, id="loose"),
        pytest.param([0.1, nan, 0.5, nan, 0.9, 0.9, nan, 0.9, 0.9], {}, 5, id="nan-gaps-map-back"),
        pytest.param([nan, nan, 0.2, 0.6, 0.6, 0.6, 0.6], {"smoothing": 1}, 3, id="nan-prefix"),
        pytest.param([0.9, 0.8, 0.7, 0.6], {}, None, id="falling"),
        pytest.param([0.9] * 8, {}, None, id="flat"),
        pytest.param([0.9, 0.9, 0.9, 0.9, 0.9, 0.9 + 1e-15], {}, None, id="rounding-is-no-gain"),
        pytest.param([nan, nan], {}, None, id="never-recorded"),
        pytest.param([0.5], {}, None, id="one-point"),
        pytest.param([0.1, 0.2, 0.4, 0.8], {}, 3, id="still-rising"),
    ],
)
def test_accuracy_plateau(accuracy, options, expected):
    assert accuracy_plateau(accuracy, **options) == expected


def test_plateau_uses_a_centred_average():
    """Centred 3-point average: a step is not delayed by the smoothing window."""
    step = [0.0] * 10 + [1.0] * 10
    # smoothed: ..., 0, 1/3 (index 9), 2/3 (index 10), 1, 1, ...; within 2% of the gain at 11
    assert accuracy_plateau(step) == 11
    assert accuracy_plateau(step, smoothing=4) == 11  # points i-1 .. i+2


def test_plateau_errors():
    with pytest.raises(ValueError, match="smoothing must be >= 1"):
        accuracy_plateau([0.1, 0.2], smoothing=0)
    with pytest.raises(ValueError, match=r"tolerance must be in \[0.0, 1.0\]"):
        accuracy_plateau([0.1, 0.2], tolerance=-0.1)


# --- spearman and training style -----------------------------------------------------------


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, size=(20, 40)).astype(float)
    b = a + rng.integers(-3, 4, size=(20, 40))
    expected = [spearmanr(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(spearman(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(spearman(a.T, b.T, axis=0), expected, rtol=1e-12)


@settings(max_examples=80, deadline=None)
@given(
    pairs=hnp.arrays(
        np.int64, st.tuples(st.just(2), st.integers(2, 30)), elements=st.integers(-4, 4)
    )
)
def test_spearman_property_against_scipy(pairs):
    a, b = pairs.astype(float)
    rho = spearman(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert np.isnan(rho)
    else:
        assert rho == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_constant_and_errors():
    assert np.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert spearman([1.0, 2.0], [5.0, 3.0]) == -1.0
    with pytest.raises(ValueError, match="at least 2 pairs"):
        spearman([1.0], [2.0])
    with pytest.raises(ValueError, match=r"a shape \(3,\) and b shape \(2,\) do not broadcast"):
        spearman([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        spearman([1.0, nan, 3.0], [1.0, 2.0, 3.0])


def test_training_style_labels():
    t = np.linspace(0.0, 1.0, 30)
    coupled, antagonistic, independent = STYLE_LABELS
    assert training_style(t, t**2) == (coupled, 1.0)
    assert training_style(t, 1 - t) == (antagonistic, -1.0)
    wiggle = np.sin(40 * t)
    style = training_style(t, wiggle)
    assert style.label == independent and abs(style.spearman) < STYLE_THRESHOLD


def test_training_style_threshold_is_inclusive():
    a = np.arange(10.0)
    b = np.array([0, 1, 2, 3, 4, 9, 8, 7, 6, 5], dtype=float)
    rho = spearman(a, b)
    assert training_style(a, b, threshold=rho).label == "coupled"
    assert training_style(a, -b, threshold=rho).label == "antagonistic"
    assert training_style(a, b, threshold=min(1.0, rho + 1e-9)).label == "independent"


def test_training_style_undefined():
    assert training_style([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]) is None
    assert training_style([1.0, nan, 3.0, 4.0], [1.0, 2.0, nan, 4.0]) is None  # 2 finite pairs
    style = training_style([1.0, nan, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 6.0])
    assert style.label == "coupled" and style.spearman == 1.0
    assert isinstance(style.spearman, float)


def test_training_style_errors():
    with pytest.raises(ValueError, match=r"shape \(3,\) and metastability_w shape \(2,\) differ"):
        training_style([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="threshold must be in"):
        training_style([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], threshold=2)
