"""The measures package as a whole: imports, public names, dtypes, read-only input."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

import dynatrain.measures as measures

FORBIDDEN = ["h5py", "zarr", "rich", "matplotlib", "click", "scipy.signal", "scipy.stats"]


def test_import_pulls_in_nothing_heavy():
    code = (
        "import json, sys\n"
        "import dynatrain.measures, dynatrain.synthetic\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_all_is_explicit_and_complete():
    assert len(set(measures.__all__)) == len(measures.__all__)
    for name in measures.__all__:
        assert hasattr(measures, name), name
    public = {name for name in vars(measures) if not name.startswith("_")}
    submodules = {
        "convergence",
        "dfa",
        "finite_size",
        "intervals",
        "kuramoto",
        "stability",
        "style",
        "surrogates",
        "windows",
    }
    assert public - set(measures.__all__) <= submodules | {"annotations"}
    assert "np" not in public


@pytest.mark.parametrize(
    "module",
    [
        "dynatrain.measures.dfa",
        "dynatrain.measures.kuramoto",
        "dynatrain.measures.stability",
        "dynatrain.measures.surrogates",
        "dynatrain.measures.windows",
        "dynatrain.measures.convergence",
        "dynatrain.measures.finite_size",
        "dynatrain.measures.intervals",
        "dynatrain.measures.style",
        "dynatrain.synthetic",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


#: Every public function on a (4, 64) layers x points input, and how to call it.
CALLS = {
    "dfa": lambda x: measures.dfa(x),
    "dfa_fit": lambda x: measures.dfa_fit(x).fluctuations,
    "fluctuation_function": lambda x: measures.fluctuation_function(x, [4, 8, 16]),
    "hilbert_phase": lambda x: measures.hilbert_phase(x),
    "kuramoto_r": lambda x: measures.kuramoto_r(x),
    "kuramoto": lambda x: measures.kuramoto(x).metastability,
    "windowed_measures": lambda x: measures.windowed_measures(x, 32).integration,
    "stability_index": lambda x: measures.stability_index(x, x),
    "rolling_volatility": lambda x: measures.rolling_volatility(x, 5),
    "spearman": lambda x: measures.spearman(x, x[::-1]),
    "shuffle_surrogates": lambda x: measures.shuffle_surrogates(x, 3, rng=_rng()),
    "phase_randomized_surrogates": lambda x: measures.phase_randomized_surrogates(x, 3, rng=_rng()),
    "surrogate_p_value": lambda x: measures.surrogate_p_value(x[0], x),
    "bootstrap_ci": lambda x: measures.bootstrap_ci(x, n_resamples=50, rng=_rng())[0],
    "integration_null": lambda x: measures.integration_null(x, 3, rng=_rng()),
    "kuramoto_null": lambda x: measures.kuramoto_null(x, 3, rng=_rng()).synchrony,
    "convergence_window": lambda x: measures.convergence_window(x[0]),
    "find_convergence": lambda x: measures.find_convergence(x[0]),
    "convergence_null": lambda x: measures.convergence_null(
        x, window=32, step=4, decided_window=3, n_surrogates=3, rng=_rng()
    ),
    "window_starts": lambda x: measures.window_starts(x.shape[-1], 32, 4),
    "window_count": lambda x: measures.window_count(x.shape[-1], 32, 4),
    "window_scales": lambda x: measures.window_scales(x.shape[-1] // 2),
    "accuracy_plateau": lambda x: measures.accuracy_plateau(x[0]),
    "training_style": lambda x: measures.training_style(x[0], x[1]),
    "corrected_alpha": lambda x: measures.corrected_alpha(x, 64),
    "t_interval": lambda x: measures.t_interval(x)[0],
    "style_test": lambda x: measures.style_test(x[0], x[1], 9, rng=_rng()),
    "rank_surrogates": lambda x: measures.rank_surrogates(x, 3, rng=_rng()),
}


def test_every_public_function_is_covered():
    functions = {n for n in measures.__all__ if callable(getattr(measures, n)) and n[0].islower()}
    scalar_input = {
        "dfa_scales",
        "min_points_for_dfa",
        "dfa_bias_curve",
        "expected_squared_fluctuation",
        "student_t_quantile",
    }
    context_managers = {"threads", "reporting"}  # tested in test_threads.py, test_progress.py
    assert functions - scalar_input - context_managers == set(CALLS)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "uint8"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_dtypes_and_read_only_arrays(name, dtype):
    """HDF5 and Zarr hand out read-only arrays of any of these dtypes."""
    values = np.random.default_rng(1).integers(0, 100, size=(4, 64)).astype(dtype)
    values.setflags(write=False)
    result = CALLS[name](values)
    expected = CALLS[name](values.astype(np.float64))
    if isinstance(expected, tuple):
        assert result == expected
    else:
        np.testing.assert_array_equal(result, expected)
