"""Synthetic generators: exact fGn and coupled oscillators."""

from __future__ import annotations

import measures_refs as refs
import numpy as np
import pytest

import dynatrain.synthetic as synthetic
from dynatrain.measures import dfa
from dynatrain.synthetic import coupled_oscillators, fgn, fgn_autocovariance, switching_schedule


def _pooled_autocovariance(x: np.ndarray, n_lags: int) -> np.ndarray:
    """Mean of x_t x_{t+k} over series and t (the process has mean 0)."""
    return np.array([np.mean(x[..., : x.shape[-1] - k] * x[..., k:]) for k in range(n_lags)])


def test_autocovariance_formula():
    np.testing.assert_allclose(fgn_autocovariance(4, 0.5), [1.0, 0.0, 0.0, 0.0], atol=1e-15)
    hurst = 0.8
    expected_lag1 = 2 ** (2 * hurst - 1) - 1  # 0.5 * (2^{2H} - 2)
    assert fgn_autocovariance(2, hurst)[1] == pytest.approx(expected_lag1)


@pytest.mark.parametrize("hurst", [0.2, 0.5, 0.8, 0.95])
def test_fgn_has_the_exact_autocovariance(hurst):
    """4000 series x 64 points; pooled lag-k covariance within 0.03 of gamma(k), k < 6."""
    x = fgn(64, hurst, size=4000, rng=np.random.default_rng(int(hurst * 100)))
    np.testing.assert_allclose(
        _pooled_autocovariance(x, 6), fgn_autocovariance(6, hurst), atol=0.03
    )


@pytest.mark.parametrize("n_points", [1, 2, 3, 7, 64, 1000, 1025])
@pytest.mark.parametrize("hurst", [0.01, 0.3, 0.5, 0.9, 0.99])
def test_circulant_embedding_is_non_negative(n_points, hurst):
    """With gamma(n) in the embedding (fbm puts 0 there) no fallback is needed."""
    assert synthetic._circulant_eigenvalues(n_points, hurst) is not None


def test_cholesky_fallback_is_exact(monkeypatch):
    monkeypatch.setattr(synthetic, "_circulant_eigenvalues", lambda n_points, hurst: None)
    x = fgn(32, 0.85, size=(2000, 2), rng=np.random.default_rng(1))
    assert x.shape == (2000, 2, 32)
    np.testing.assert_allclose(_pooled_autocovariance(x, 5), fgn_autocovariance(5, 0.85), atol=0.03)


def test_fgn_statistics_match_fbm():
    """Same H, same length: unit variance and the same mean DFA exponent as `fbm`'s fGn.

    32 series of 512 points each; the mean alpha of either has std ~0.008.
    """
    ours = fgn(512, 0.7, size=32, rng=np.random.default_rng(2))
    theirs = refs.fbm_fgn(512, 0.7, n_series=32, seed=2)
    assert ours.var() == pytest.approx(1.0, abs=0.1)
    assert theirs.var() == pytest.approx(1.0, abs=0.1)
    assert dfa(ours).mean() == pytest.approx(dfa(theirs).mean(), abs=0.04)


def test_fbm_falls_back_near_h1_as_documented():
    """The pitfall the ground-truth helper avoids: fbm's Davies-Harte warns at H = 0.9."""
    from fbm import FBM

    with pytest.warns(UserWarning, match="Reverting to Hosking"):
        FBM(64, 0.9, length=64).fgn()


def test_fgn_shapes_and_determinism():
    assert fgn(10, 0.3, rng=np.random.default_rng(0)).shape == (10,)
    assert fgn(10, 0.3, size=4, rng=np.random.default_rng(0)).shape == (4, 10)
    first = fgn(50, 0.6, size=(2, 3), rng=np.random.default_rng(3))
    assert first.shape == (2, 3, 50)
    assert np.array_equal(first, fgn(50, 0.6, size=(2, 3), rng=np.random.default_rng(3)))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((10, 1.0), {}, ValueError, "hurst must be strictly between 0 and 1, got 1.0"),
        ((10, 0.0), {}, ValueError, "hurst must be strictly between 0 and 1"),
        ((0, 0.5), {}, ValueError, "n_points must be >= 1, got 0"),
        ((10, 0.5), {"size": -1}, ValueError, "size entry must be >= 0"),
        ((10, 0.5), {"rng": 3}, TypeError, "rng must be a numpy"),
    ],
)
def test_fgn_errors(args, kwargs, error, message):
    kwargs = {"rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match=message):
        fgn(*args, **kwargs)


def test_switching_schedule():
    np.testing.assert_array_equal(switching_schedule(7, 2), [1, 1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(switching_schedule(5, 2, start_locked=False), [0, 0, 1, 1, 0])


def test_coupled_oscillators_shapes_and_locking():
    rng = np.random.default_rng(4)
    x = coupled_oscillators(3, 100, noise=0.0, size=(2,), rng=rng)
    assert x.shape == (2, 3, 100)
    np.testing.assert_allclose(x[:, 0], x[:, 2], atol=1e-12)  # locked, no noise: identical
    free = coupled_oscillators(3, 100, locked=False, noise=0.0, rng=rng)
    assert not np.allclose(free[0], free[1])
    assert np.array_equal(
        coupled_oscillators(4, 30, rng=np.random.default_rng(5)),
        coupled_oscillators(4, 30, rng=np.random.default_rng(5)),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"locked": np.ones(5, dtype=bool)},
            r"bool array of shape \(100,\), got dtype bool with shape \(5,\)",
        ),
        ({"locked": np.ones(100)}, "got dtype float64"),
        ({"period": 0.0}, "period must be a positive number of points, got 0.0"),
        ({"drift": -1.0}, "drift must be a finite number >= 0"),
        ({"noise": np.nan}, "noise must be a finite number >= 0"),
    ],
)
def test_coupled_oscillators_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        coupled_oscillators(3, 100, rng=np.random.default_rng(0), **kwargs)
