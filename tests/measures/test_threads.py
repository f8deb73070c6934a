"""The measures computed on several threads give the bits of one thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dynatrain import measures as m
from dynatrain.measures import finite_size
from dynatrain.measures._parallel import ordered_map


def _layers(n_layers: int, n_points: int, seed: int = 5) -> np.ndarray:
    """Changes of random walks with a shared drift: layers with some common structure."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(n_points)
    return common + rng.standard_normal((n_layers, n_points))


def _same(one: object, other: object) -> None:
    if isinstance(one, tuple):
        assert isinstance(other, tuple) and len(one) == len(other)
        for a, b in zip(one, other, strict=True):
            _same(a, b)
    elif isinstance(one, np.ndarray):
        assert isinstance(other, np.ndarray)
        np.testing.assert_array_equal(one, other)  # equal to the bit (NaN where NaN)
    else:
        assert one == other


# Each case runs with more chunks than threads (small chunks forced below), so the order
# in which chunks finish differs from the order in which they were drawn.
CASES = {
    "integration_null": lambda x: m.integration_null(
        x, 23, rng=np.random.default_rng(1), max_scale=60
    ),
    "kuramoto_null": lambda x: tuple(m.kuramoto_null(x, 23, rng=np.random.default_rng(2))),
    # More layers than a chunk holds: a run's layers in groups, their phasors summed.
    "kuramoto_null_grouped": lambda x: tuple(
        m.kuramoto_null(np.tile(x, (30, 1)), 3, rng=np.random.default_rng(2))
    ),
    "windowed_measures": lambda x: tuple(m.windowed_measures(x, 60, step=3)[:2]),
    "convergence_null": lambda x: tuple(
        m.convergence_null(
            x,
            window=60,
            step=3,
            decided_window=10,
            n_surrogates=19,
            rng=np.random.default_rng(3),
            stop_after=4,
        )
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n_threads", [2, 3])
def test_threads_give_the_bits_of_one_thread(case, n_threads, monkeypatch):
    from dynatrain.measures import surrogates, windows

    monkeypatch.setattr(surrogates, "_DFA_CHUNK_ELEMENTS", 1000)
    monkeypatch.setattr(surrogates, "_PHASE_CHUNK_ELEMENTS", 2000)
    monkeypatch.setattr(windows, "_CHUNK_ELEMENTS", 1000)
    monkeypatch.setattr(windows, "_PHASE_CHUNK_ELEMENTS", 2000)
    x = _layers(6, 240)
    alone = CASES[case](x)
    with m.threads(n_threads):
        together = CASES[case](x)
    _same(alone, together)


def test_the_finite_size_calibration_is_the_same_on_threads(monkeypatch):
    monkeypatch.setattr(finite_size, "_BATCH_ELEMENTS", 4000)  # several batches
    finite_size._bias_curve.cache_clear()
    alone = m.dfa_bias_curve(300)
    finite_size._bias_curve.cache_clear()
    try:
        with m.threads(3):
            together = m.dfa_bias_curve(300)
    finally:
        finite_size._bias_curve.cache_clear()
    _same(tuple(alone), tuple(together))


def test_ordered_map_keeps_the_order_of_the_items_whatever_finishes_first():
    def slow_first(item: int) -> int:
        time.sleep(0.02 if item % 3 == 0 else 0.0)
        return item * item

    with m.threads(3):
        assert list(ordered_map(slow_first, range(20))) == [i * i for i in range(20)]


def test_ordered_map_draws_the_items_in_the_calling_thread():
    caller = threading.get_ident()
    drawn_on = []

    def items():
        for i in range(10):
            drawn_on.append(threading.get_ident())
            yield i

    with m.threads(2):
        computed_on = list(ordered_map(lambda _: threading.get_ident(), items()))
    assert set(drawn_on) == {caller}
    assert caller not in computed_on  # the chunks ran on the pool


def test_ordered_map_holds_a_few_chunks_at_a_time():
    drawn = []
    with m.threads(2):
        results = ordered_map(lambda i: i, (drawn.append(i) or i for i in range(100)))
        assert next(results) == 0
        assert len(drawn) <= 3  # the one taken, and at most one per thread ahead of it
        results.close()


def test_ordered_map_outside_a_threads_block_runs_here():
    caller = threading.get_ident()
    assert list(ordered_map(lambda _: threading.get_ident(), range(3))) == [caller] * 3


def test_a_chunk_on_the_pool_runs_its_own_loops_on_its_thread():
    """No nested submission (which could wait on itself): inner loops are sequential."""

    def inner(item: int) -> list[int]:
        return [threading.get_ident() for _ in ordered_map(lambda i: i, range(4))]

    with m.threads(2):
        for idents in ordered_map(inner, range(4)):
            assert len(set(idents)) == 1 and threading.get_ident() not in idents


def test_an_error_in_a_chunk_reaches_the_caller():
    def failing(item: int) -> int:
        if item == 5:
            raise ValueError("chunk 5")
        return item

    with m.threads(2), pytest.raises(ValueError, match="chunk 5"):
        list(ordered_map(failing, range(10)))


def test_one_thread_or_less_uses_no_pool_even_within_a_larger_block():
    caller = threading.get_ident()
    for n_threads in (1, 0):
        with m.threads(n_threads):
            assert list(ordered_map(lambda _: threading.get_ident(), range(2))) == [caller] * 2
        with m.threads(3), m.threads(n_threads):
            assert list(ordered_map(lambda _: threading.get_ident(), range(2))) == [caller] * 2
