"""Confidence intervals over layers: the t quantile, the interval, its coverage.

References: ``scipy.stats.t`` (quantiles and intervals) and simulation with
known population means (normal values; DFA exponents of fGn from the `fbm`
package).  The full coverage table is ``benchmarks/validate_intervals.py``.
"""

from __future__ import annotations

import measures_refs as refs
import numpy as np
import pytest
from scipy import stats

from dynatrain.measures import bootstrap_ci, dfa
from dynatrain.measures.finite_size import corrected_alpha
from dynatrain.measures.intervals import student_t_quantile, t_interval


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 19, 49, 100, 999])
@pytest.mark.parametrize("probability", [0.001, 0.025, 0.3, 0.5, 0.9, 0.975, 0.9995])
def test_t_quantile_matches_scipy(probability, df):
    expected = stats.t.ppf(probability, df)
    assert student_t_quantile(probability, df) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_t_interval_matches_scipy():
    values = np.random.default_rng(0).normal(0.7, 0.2, size=(6, 9))
    lo, hi = t_interval(values, level=0.9)
    mean, sem = values.mean(axis=1), stats.sem(values, axis=1)
    expected_lo, expected_hi = stats.t.interval(0.9, 8, loc=mean, scale=sem)
    np.testing.assert_allclose(lo, expected_lo, rtol=1e-10)
    np.testing.assert_allclose(hi, expected_hi, rtol=1e-10)


def test_axis_shapes_and_one_value():
    values = np.random.default_rng(1).standard_normal((3, 5, 4))
    lo, hi = t_interval(values, axis=1)
    moved_lo, moved_hi = t_interval(np.moveaxis(values, 1, -1))
    np.testing.assert_allclose(lo, moved_lo)
    np.testing.assert_allclose(hi, moved_hi)
    assert lo.shape == (3, 4)
    single_lo, single_hi = t_interval([0.4])
    assert np.isnan(single_lo) and np.isnan(single_hi)
    assert isinstance(t_interval([0.4, 0.6])[0], np.float64)


def _covers(lo, hi, target):
    return float(np.mean((lo <= target) & (target <= hi)))


@pytest.mark.parametrize("n_layers", [4, 50])
def test_coverage_of_normal_values_is_nominal(n_layers):
    """4000 runs: coverage 95 +- 1.5 points (Monte Carlo SE 0.34)."""
    values = np.random.default_rng(n_layers).normal(0.6, 0.15, size=(4000, n_layers))
    assert abs(_covers(*t_interval(values), 0.6) - 0.95) < 0.015


@pytest.fixture(scope="module")
def fgn_layer_pool():
    """Corrected exponents of fbm fGn, 64 points, H in {0.3, 0.5, 0.7, 0.9}: 4 x 1000."""
    raw = np.concatenate(
        [dfa(refs.fbm_fgn(64, h, n_series=1000, seed=int(10 * h))) for h in (0.3, 0.5, 0.7, 0.9)]
    )
    return corrected_alpha(raw, 64)


@pytest.mark.parametrize("n_layers", [4, 5, 20])
def test_coverage_over_dfa_layers_is_nominal_and_the_bootstrap_is_not(fgn_layer_pool, n_layers):
    """Runs of L layers drawn from the pool; the target is the pool's mean.

    Measured (benchmarks/validate_intervals.py): t interval 92.5-96.4% at
    4-50 layers; percentile bootstrap 80-85% at 4-5 layers.  Accept 95 +- 2.5
    points for t (3000 runs, SE 0.4) and below 90% for the bootstrap at L <= 5.
    """
    rng = np.random.default_rng(n_layers)
    values = rng.choice(fgn_layer_pool, size=(3000, n_layers))
    target = fgn_layer_pool.mean()
    assert abs(_covers(*t_interval(values), target) - 0.95) < 0.025
    if n_layers <= 5:
        boot = _covers(*bootstrap_ci(values, n_resamples=1000, rng=rng), target)
        assert boot < 0.9


def test_bad_input():
    with pytest.raises(ValueError, match=r"level must be strictly between 0 and 1, got 1\.0"):
        t_interval([0.1, 0.2], level=1.0)
    with pytest.raises(ValueError, match=r"values is empty along axis 0 \(shape \(0,\)\)"):
        t_interval([])
    with pytest.raises(ValueError, match="values contains 1 non-finite value"):
        t_interval([0.1, np.nan])
    with pytest.raises(ValueError, match="probability must be strictly between 0 and 1"):
        student_t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df must be >= 1, got 0"):
        student_t_quantile(0.9, 0)
