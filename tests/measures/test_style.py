"""The surrogate test of the training style.

Size on null runs (independent white-noise layers through the windowed
measures), power on pairs of smooth series with a known correlation, the
label rule, and argument errors.  The full tables:
``benchmarks/validate_style_test.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynatrain.defaults import default_window
from dynatrain.measures import training_style, windowed_measures
from dynatrain.measures.style import StyleTest, rank_surrogates, style_test


def _smooth_pair(correlation, n_points, rng):
    window = default_window(n_points)
    noise = rng.standard_normal((2, n_points))
    first, second = np.lib.stride_tricks.sliding_window_view(noise, window, axis=-1).mean(-1)
    return first, correlation * first + np.sqrt(1 - correlation**2) * second


def test_white_noise_runs_are_rarely_labelled():
    """300 runs of 5 white-noise layers x 50 points (windows of 16).

    The threshold alone labels ~21% of them; the test at 5% rejects 4.7-5.5%
    (measured).  Accept below 9% (Monte Carlo SE 1.3 points) and require the
    threshold-only rate to be above 14%, so the test is seen to matter.
    """
    rng = np.random.default_rng(0)
    windowed = windowed_measures(rng.standard_normal((300, 5, 50)), default_window(50))
    pairs = list(zip(windowed.integration, windowed.metastability, strict=True))
    old = np.mean([training_style(i, m).label != "independent" for i, m in pairs])
    tested = [style_test(i, m, 199, rng=rng) for i, m in pairs]
    assert np.mean([t.label != "independent" for t in tested]) < 0.09
    assert old > 0.14


@pytest.mark.parametrize(("correlation", "low", "high"), [(0.0, 0.0, 0.16), (0.95, 0.9, 1.0)])
def test_power_and_size_on_smooth_series(correlation, low, high):
    """100 pairs shaped like the windowed measures of 100 points (76 windows of 25)."""
    rng = np.random.default_rng(1)
    pairs = [_smooth_pair(correlation, 100, rng) for _ in range(100)]
    rejected = np.mean([style_test(a, b, 199, rng=rng).p <= 0.05 for a, b in pairs])
    assert low <= rejected <= high


def test_label_rule_and_p_range():
    t = np.linspace(0, 1, 40)
    rising = t + 0.01 * np.sin(37 * t)
    rng = np.random.default_rng(2)
    coupled = style_test(rising, 2 * rising + 1, 199, rng=rng)
    assert coupled.label == "coupled" and coupled.spearman == 1.0
    assert coupled.p == pytest.approx(1 / 200, abs=0.02)
    antagonistic = style_test(rising, -rising, 199, rng=rng)
    assert antagonistic.label == "antagonistic"
    # Significant but below the threshold, or strong but not significant: independent.
    assert style_test(rising, -rising, 199, rng=rng, threshold=1.0).label == "antagonistic"
    strong = style_test(rising, -rising, 199, rng=rng, level=antagonistic.p / 2)
    assert strong.label == "independent" and strong.p > antagonistic.p / 2
    assert isinstance(coupled, StyleTest) and 1 / 200 <= strong.p <= 1


def test_same_generator_same_result_and_nan_pairs():
    rng_values = np.random.default_rng(3).standard_normal((2, 30))
    first = style_test(*rng_values, 99, rng=np.random.default_rng(4))
    second = style_test(*rng_values, 99, rng=np.random.default_rng(4))
    assert first == second
    with_nan = rng_values.copy()
    with_nan[0, :5] = np.nan
    dropped = style_test(*with_nan, 99, rng=np.random.default_rng(4))
    assert (
        dropped.spearman
        == style_test(
            rng_values[0, 5:], rng_values[1, 5:], 99, rng=np.random.default_rng(4)
        ).spearman
    )
    assert style_test([1.0, np.nan, 2.0], [1.0, 2.0, 3.0], 9, rng=np.random.default_rng(0)) is None
    assert style_test(np.ones(9), np.arange(9.0), 9, rng=np.random.default_rng(0)) is None


def test_rank_surrogates_keep_the_ranks_and_their_smoothness():
    rng = np.random.default_rng(5)
    smooth, _ = _smooth_pair(0.0, 100, rng)
    surrogates = rank_surrogates(smooth, 200, rng=rng)
    assert surrogates.shape == (200, len(smooth))
    np.testing.assert_array_equal(np.sort(surrogates, axis=-1)[0], np.arange(1, len(smooth) + 1))

    def lag_one(x):
        x = x - x.mean(axis=-1, keepdims=True)
        return np.sum(x[..., 1:] * x[..., :-1], axis=-1) / np.sum(x * x, axis=-1)

    ranks = np.argsort(np.argsort(smooth)) + 1.0
    assert abs(lag_one(surrogates).mean() - lag_one(ranks)) < 0.05


def test_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(
        ValueError, match=r"must be 1-D of equal length, got shapes \(5,\) and \(4,\)"
    ):
        style_test(np.ones(5), np.ones(4), 9, rng=rng)
    with pytest.raises(ValueError, match="level must be > 0"):
        style_test(np.arange(5.0), np.arange(5.0), 9, rng=rng, level=0.0)
    with pytest.raises(ValueError, match="n_surrogates must be >= 1, got 0"):
        style_test(np.arange(5.0), np.arange(5.0), 0, rng=rng)
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        style_test(np.arange(5.0), np.arange(5.0), 9, rng=0)
    with pytest.raises(ValueError, match="integration_w contains infinite values"):
        style_test([1.0, np.inf, 2.0], [1.0, 2.0, 3.0], 9, rng=rng)
