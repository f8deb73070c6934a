"""The causal convergence rule, the whole-run rule, the relapse and the convergence null.

The rule is checked against a brute-force reading of its definition (each window
decided from scratch from the windows before it); the null against a loop that draws
the same shuffles one at a time and counts by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynatrain.measures import (
    CausalConvergence,
    convergence_null,
    convergence_window,
    find_convergence,
    rolling_volatility,
    shuffle_surrogates,
    stability_index,
    windowed_measures,
)
from dynatrain.measures import convergence as convergence_module

nan = np.nan


def brute_force_causal(volatility, threshold=0.25, patience=3):
    """(window, decided, relapse) straight from the definition, nothing carried over."""
    v = list(volatility)

    def low(w):
        seen = [(value, k) for k, value in enumerate(v[: w + 1]) if not math.isnan(value)]
        if math.isnan(v[w]) or not seen:
            return False
        first = seen[0][0]
        peak = max(value for value, _ in seen)
        peak_window = min(k for value, k in seen if value == peak)
        armed = peak > first
        return armed and w > peak_window and v[w] <= threshold * peak

    for w in range(len(v) - patience + 1):
        if all(low(k) for k in range(w, w + patience)):
            decided = w + patience - 1
            after = [k for k in range(decided + 1, len(v)) if not math.isnan(v[k])]
            relapsed = [
                k
                for k in after
                if v[k] > threshold * max(x for x in v[: k + 1] if not math.isnan(x))
            ]
            return w, decided, (len(relapsed) / len(after) if after else None)
    return None, None, None


@pytest.mark.parametrize(
    ("volatility", "expected"),
    [
        pytest.param([nan, nan, 0.1, 0.4, 1.0, 0.6, 0.2, 0.2, 0.24, 0.1], (6, 8, 0.0), id="fall"),
        pytest.param([nan, 0.2, 1.0, 0.5, 0.1, 0.1, 0.1, 0.3], (4, 6, 1.0), id="relapse"),
        pytest.param([0.2, 1.0, 0.1, 0.1, 0.1], (2, 4, None), id="decided-at-the-end"),
        pytest.param([1.0, 0.1, 0.1, 0.1, 0.1], (None, None, None), id="first-value-is-no-peak"),
        pytest.param([1.0, 0.1, 1.2, 0.1, 0.1, 0.1], (3, 5, None), id="armed-by-a-rise"),
        pytest.param([0.1, 1.0, 0.1, nan, 0.1, 0.1, 0.1], (4, 6, None), id="nan-breaks-a-run"),
        pytest.param([0.1, 1.0, 0.1, 0.1, 2.0, 0.4, 0.4, 0.4], (5, 7, None), id="new-peak-resets"),
        pytest.param([0.0, 0.0, 0.0, 0.0], (None, None, None), id="zero"),
        pytest.param([nan, nan], (None, None, None), id="all-nan"),
        pytest.param([], (None, None, None), id="empty"),
        pytest.param(
            [0.1, 1.0, 0.25, 0.25, 0.25, 0.26, nan], (2, 4, 1.0), id="threshold-inclusive"
        ),
    ],
)
def test_causal_rule(volatility, expected):
    assert tuple(find_convergence(volatility)) == expected
    assert brute_force_causal(volatility) == expected


def test_decided_windows_do_not_change_with_later_windows():
    """Causal: appending windows never moves a decision already taken."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        volatility = rng.gamma(1.0, size=40)
        volatility[rng.random(40) < 0.1] = nan
        full = find_convergence(volatility, patience=2)
        if full.decided_window is None:
            continue
        prefix = find_convergence(volatility[: full.decided_window + 1], patience=2)
        assert (prefix.window, prefix.decided_window) == (full.window, full.decided_window)


@settings(max_examples=300, deadline=None)
@given(
    volatility=st.lists(
        st.one_of(st.just(nan), st.floats(0.0, 10.0, allow_nan=False)), max_size=30
    ),
    threshold=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    patience=st.integers(1, 4),
)
def test_causal_rule_property_against_brute_force(volatility, threshold, patience):
    got = find_convergence(volatility, threshold=threshold, patience=patience)
    assert tuple(got) == brute_force_causal(volatility, threshold, patience)


def test_state_machine_reports_the_deciding_window():
    state = CausalConvergence(patience=2)
    fired = [state.update(v) for v in [0.1, 1.0, 0.1, 0.1, 0.5, 0.1]]
    assert fired == [False, False, False, True, False, False]
    assert (state.window, state.decided_window) == (2, 3)
    assert state.relapse == 0.5  # 0.5 > 0.25 * 1.0, then 0.1 is not


def test_whole_run_rule_is_version_0_1_plus_its_decision():
    rng = np.random.default_rng(1)
    for _ in range(100):
        volatility = rng.gamma(1.0, size=30)
        old = convergence_window(volatility)
        new = find_convergence(volatility, rule="whole-run")
        assert new.window == old
        if old is None:
            assert new == (None, None, None)
            continue
        assert new.decided_window == old + 2
        after = volatility[old + 3 :]
        expected = np.mean(after > 0.25 * volatility.max()) if after.size else None
        assert new.relapse == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rule": "latest"}, r"rule must be one of \('causal', 'whole-run'\), got 'latest'"),
        ({"threshold": 2.0}, r"threshold must be in \[0.0, 1.0\]"),
        ({"patience": 0}, "patience must be >= 1"),
    ],
)
def test_rule_errors(options, message):
    with pytest.raises(ValueError, match=message):
        find_convergence([1.0, 0.1], **options)
    with pytest.raises(ValueError, match=r"volatility must be 1-D, got shape \(1, 2\)"):
        find_convergence([[1.0, 0.1]])


# --- the null ------------------------------------------------------------------------------

WINDOW, STEP = 24, 2


@pytest.fixture(scope="module")
def run():
    """Layer changes with a learning phase (a shared drift) that settles into noise."""
    rng = np.random.default_rng(2)
    n_points = 90
    drift = np.where(np.arange(n_points) < 40, np.sin(np.arange(n_points) / 3.0), 0.0)
    return 3 * drift + rng.standard_normal((4, n_points))


def by_hand(x, n_surrogates, seed, decided_window, rule="causal"):
    """Decided window of each surrogate, drawn one at a time from the same generator."""
    rng = np.random.default_rng(seed)
    decisions = []
    for _ in range(n_surrogates):
        [surrogate] = shuffle_surrogates(x, 1, rng=rng)
        windowed = windowed_measures(surrogate, WINDOW, step=STEP)
        volatility = rolling_volatility(
            stability_index(windowed.integration, windowed.metastability), 5
        )
        decisions.append(find_convergence(volatility, rule=rule).decided_window)
    return [d is not None and d <= decided_window for d in decisions]


@pytest.mark.parametrize("decided_window", [8, 20, 33])
def test_p_value_counts_surrogates_that_decide_as_early(run, decided_window):
    options = {"window": WINDOW, "step": STEP, "decided_window": decided_window}
    null = convergence_null(
        run, n_surrogates=30, rng=np.random.default_rng(5), stop_after=None, **options
    )
    early = by_hand(run, 30, 5, decided_window)
    assert null.drawn == 30 and null.as_early == sum(early)
    assert null.p == (1 + sum(early)) / 31


def test_sequential_test_stops_at_the_h_th_early_surrogate(run):
    early = by_hand(run, 60, 6, 33)
    assert sum(early) >= 2
    stop = [i for i, flag in enumerate(early) if flag][1] + 1  # the second early one
    null = convergence_null(
        run,
        window=WINDOW,
        step=STEP,
        decided_window=33,
        n_surrogates=60,
        rng=np.random.default_rng(6),
        stop_after=2,
    )
    assert (null.drawn, null.as_early, null.p) == (stop, 2, 2 / stop)


def test_whole_run_rule_null(run):
    null = convergence_null(
        run,
        window=WINDOW,
        step=STEP,
        decided_window=20,
        n_surrogates=12,
        rng=np.random.default_rng(8),
        stop_after=None,
        rule="whole-run",
    )
    assert null.as_early == sum(by_hand(run, 12, 8, 20, rule="whole-run"))


def test_null_is_the_same_in_any_batches(run, monkeypatch):
    options = {"window": WINDOW, "step": STEP, "decided_window": 25, "n_surrogates": 15}
    whole = convergence_null(run, rng=np.random.default_rng(9), **options)
    monkeypatch.setattr(convergence_module, "_NULL_CHUNK_ELEMENTS", 1)  # one at a time
    assert convergence_null(run, rng=np.random.default_rng(9), **options) == whole


def test_null_errors(run):
    options = {"window": WINDOW, "step": STEP, "decided_window": 3, "n_surrogates": 5}
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        convergence_null(run, rng=0, **options)
    with pytest.raises(ValueError, match="n_surrogates must be >= 1"):
        convergence_null(run, rng=np.random.default_rng(0), **{**options, "n_surrogates": 0})
    with pytest.raises(ValueError, match=r"x must be shaped \(n_layers, n_points\)"):
        convergence_null(run[np.newaxis], rng=np.random.default_rng(0), **options)
    with pytest.raises(ValueError, match="stop_after must be >= 1"):
        convergence_null(run, rng=np.random.default_rng(0), stop_after=0, **options)
