"""Finite-size correction of the DFA exponent.

Ground truth is fGn from the `fbm` package (not dynatrain's generator), the
closed-form E[F^2(s)] of DFA-1 on a random walk, and fathon's fluctuation
function.  The validation tables (every H and length) come from
``benchmarks/validate_dfa_bias.py``; these tests pin the properties they show.
"""

from __future__ import annotations

import measures_refs as refs
import numpy as np
import pytest

from dynatrain.measures import dfa, dfa_scales
from dynatrain.measures import finite_size as fs


def test_expected_squared_fluctuation_of_white_noise_is_the_closed_form():
    """White noise (H = 1/2): the profile is a random walk, E[F^2(s)] = (s^2 - 4) / (15 s)."""
    scales = np.array([4, 5, 8, 13, 64, 250])
    expected = (scales**2 - 4) / (15 * scales)
    np.testing.assert_allclose(fs.expected_squared_fluctuation(scales, 0.5), expected, rtol=1e-12)


@pytest.mark.parametrize("hurst", [0.2, 0.8])
def test_expected_squared_fluctuation_matches_simulated_fgn(hurst):
    """Mean F^2(s) of 400 fbm series (fathon's DFA, both ends), 64 points.

    F^2 at one scale has a relative SD of about 0.3-1 per series: the mean of
    400 is within 10% of its expectation (more than 3 standard errors).
    """
    scales = dfa_scales(64)
    series = refs.fbm_fgn(64, hurst, n_series=400, seed=3)
    mean_f2 = np.mean([refs.fathon_fluctuations(x, scales, 1)[1] ** 2 for x in series], axis=0)
    exact = fs.expected_squared_fluctuation(scales, hurst)
    np.testing.assert_allclose(mean_f2, exact, rtol=0.1)


def test_expected_squared_fluctuation_broadcasts_over_hurst():
    scales = np.array([4, 9])
    both = fs.expected_squared_fluctuation(scales, [0.3, 0.7])
    assert both.shape == (2, 2)
    np.testing.assert_allclose(both[1], fs.expected_squared_fluctuation(scales, 0.7))


@pytest.mark.parametrize("n_points", [24, 25, 31, 32, 47, 64, 100, 101, 150, 200, 256, 500])
def test_bias_curve_rises_with_hurst_and_reads_high(n_points):
    """Expected alpha increases with H (so it can be inverted) and reads above H."""
    curve = fs.dfa_bias_curve(n_points)
    hurst = np.linspace(0.02, 0.98, 97)
    reading = curve.mean_alpha(hurst)
    assert np.all(np.diff(reading) > 0)
    assert np.all(reading > hurst)
    assert curve.standard_error.max() < 0.01
    # The fitted cubic passes through the simulated means.
    np.testing.assert_allclose(curve.mean_alpha(curve.hurst), curve.simulated_alpha, atol=3e-3)


def test_bias_shrinks_with_length():
    """The bias at every calibrated H falls as the series gets longer."""
    biases = [
        fs.dfa_bias_curve(n).simulated_alpha - np.asarray(fs.CALIBRATION_HURST)
        for n in (32, 64, 128, 256, 1024)
    ]
    assert np.all(np.diff(biases, axis=0) < 0)


@pytest.mark.parametrize(("n_points", "hurst"), [(64, 0.2), (64, 0.5), (64, 0.8), (128, 0.5)])
def test_corrected_alpha_is_unbiased_on_fgn_where_raw_is_not(n_points, hurst):
    """600 fbm series: the raw mean reads >= 0.015 high, the corrected one within 0.02 of H.

    SD of one exponent is 0.09-0.15 at these lengths, so the standard error
    of the mean of 600 is <= 0.006; raw biases are +0.03 to +0.16.
    """
    raw = dfa(refs.fbm_fgn(n_points, hurst, n_series=600, seed=n_points + int(100 * hurst)))
    corrected = fs.corrected_alpha(raw, n_points)
    assert raw.mean() - hurst > 0.015
    assert abs(corrected.mean() - hurst) < 0.02


def test_corrected_integration_beats_raw_on_a_run_of_five_layers():
    """RMSE of the mean of 5 layers (white noise, 64 points) is lower after correction."""
    raw = dfa(refs.fbm_fgn(64, 0.5, n_series=1000, seed=11)).reshape(200, 5)
    corrected = fs.corrected_alpha(raw, 64)
    rmse_raw = np.sqrt(np.mean((raw.mean(axis=1) - 0.5) ** 2))
    rmse_corrected = np.sqrt(np.mean((corrected.mean(axis=1) - 0.5) ** 2))
    assert rmse_corrected < 0.8 * rmse_raw


def test_outside_the_calibrated_range():
    """Below: the end's bias is subtracted; above: a bridge, then no correction."""
    curve = fs.dfa_bias_curve(64)
    low, high = float(curve.mean_alpha(0.02)), float(curve.mean_alpha(0.98))
    bias_low, bias_high = low - 0.02, high - 0.98
    corrected = fs.corrected_alpha([low - 0.5, low, high, high + bias_high, 1.5, 1.9], 64)
    np.testing.assert_allclose(corrected[0], low - 0.5 - bias_low)
    np.testing.assert_allclose(corrected[1:3], [0.02, 0.98], atol=1e-3)
    np.testing.assert_allclose(corrected[3:], [high + bias_high, 1.5, 1.9])
    # Continuous and increasing across both ends.
    alpha = np.linspace(low - 0.2, high + 0.2, 2001)
    values = fs.corrected_alpha(alpha, 64)
    assert np.all(np.diff(values) > 0)
    assert np.max(np.abs(np.diff(values))) < 3 * (alpha[1] - alpha[0]) * 2


def test_shape_nan_and_determinism():
    alpha = np.array([[0.5, np.nan], [0.7, 1.1]])
    first = fs.corrected_alpha(alpha, 100)
    fs._bias_curve.cache_clear()
    second = fs.corrected_alpha(alpha, 100)
    assert first.shape == (2, 2)
    assert np.isnan(first[0, 1])
    np.testing.assert_array_equal(first, second)  # a fixed seed, not the caller's
    assert isinstance(fs.corrected_alpha(0.5, 100), np.float64)


def test_settings_change_the_curve():
    """The correction follows the scales it is given (here a smaller max_scale)."""
    default = fs.corrected_alpha(0.6, 100)
    shorter = fs.corrected_alpha(0.6, 100, max_scale=12)
    assert default != shorter
    assert fs.dfa_bias_curve(100, max_scale=12).scales.max() == 12


def test_bad_input():
    with pytest.raises(ValueError, match="DFA needs at least 24 points"):
        fs.corrected_alpha(0.5, 20)
    with pytest.raises(ValueError, match="alpha contains infinite values"):
        fs.corrected_alpha([0.5, np.inf], 100)
    with pytest.raises(ValueError, match="hurst must be strictly between 0 and 1"):
        fs.expected_squared_fluctuation([4, 8], 1.0)
    with pytest.raises(ValueError, match="scales must be a 1-D array of integers >= order \\+ 2"):
        fs.expected_squared_fluctuation([2, 8], 0.5)
