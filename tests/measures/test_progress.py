"""The surrogate nulls say how far they are (``measures.reporting``), and change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from dynatrain import measures as m
from dynatrain.measures import surrogates


def _layers(n_layers: int, n_points: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n_points) + rng.standard_normal((n_layers, n_points))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))


def _check_counts(calls: list[tuple[str, int, int]], stage: str, total: int, last: int) -> None:
    assert calls, "no report"
    assert {call[0] for call in calls} == {stage}
    assert {call[2] for call in calls} == {total}
    done = [call[1] for call in calls]
    assert done == sorted(done) and 0 <= done[0] and done[-1] == last


@pytest.mark.parametrize("n_threads", [1, 2])
def test_integration_null_reports_every_surrogate_and_the_same_bits(monkeypatch, n_threads):
    monkeypatch.setattr(surrogates, "_DFA_CHUNK_ELEMENTS", 2_000)  # several chunks
    x = _layers(4, 300)
    quiet = m.integration_null(x, 17, rng=np.random.default_rng(2))
    recorder = Recorder()
    with m.threads(n_threads), m.reporting(recorder):
        reported = m.integration_null(x, 17, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(reported, quiet)
    _check_counts(recorder.calls, "shuffle null", 17, 17)
    assert len(recorder.calls) > 2


@pytest.mark.parametrize(
    "shape",
    [(4, 300), (3, 40_000)],  # a batch of whole runs; a run's layers in groups
    ids=["runs", "layer-groups"],
)
def test_kuramoto_null_reports_every_surrogate_and_the_same_bits(monkeypatch, shape):
    if shape[1] < 1_000:
        monkeypatch.setattr(surrogates, "_PHASE_CHUNK_ELEMENTS", 3_000)
    x = _layers(*shape)
    n_surrogates = 5 if shape[1] > 1_000 else 11
    quiet = m.kuramoto_null(x, n_surrogates, rng=np.random.default_rng(4))
    recorder = Recorder()
    with m.reporting(recorder):
        reported = m.kuramoto_null(x, n_surrogates, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(reported.r, quiet.r)
    _check_counts(recorder.calls, "phase null", n_surrogates, n_surrogates)


def test_convergence_null_reports_what_it_drew_also_when_it_stops_early():
    x = _layers(3, 120)
    options = {"window": 30, "step": 1, "decided_window": 60}
    quiet = m.convergence_null(x, n_surrogates=40, rng=np.random.default_rng(5), **options)
    stopped = m.convergence_null(
        x, n_surrogates=40, rng=np.random.default_rng(5), stop_after=1, **options
    )
    assert stopped.drawn < 40  # the case below does stop early
    for stop_after, expected in ((None, quiet), (1, stopped)):
        recorder = Recorder()
        with m.reporting(recorder):
            result = m.convergence_null(
                x,
                n_surrogates=40,
                rng=np.random.default_rng(5),
                stop_after=stop_after,
                **options,
            )
        assert result == expected
        _check_counts(recorder.calls, "convergence null", 40, expected.drawn)


def test_reporting_none_silences_an_enclosing_block_and_errors_propagate():
    x = _layers(3, 200)
    recorder = Recorder()
    with m.reporting(recorder), m.reporting(None):
        m.integration_null(x, 3, rng=np.random.default_rng(0))
    assert recorder.calls == []

    class Stop(Exception):
        pass

    def interrupt(stage: str, done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop), m.reporting(interrupt):
        m.kuramoto_null(x, 3, rng=np.random.default_rng(0))
    # The block ended: nothing reports any more.
    m.kuramoto_null(x, 3, rng=np.random.default_rng(0))
