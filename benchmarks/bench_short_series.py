"""Benchmark: what the short-series statistics add to ``analyze``.

Run from the repository root::

    python benchmarks/bench_short_series.py

Times ``analyze_signals`` on sample runs at default settings (199 surrogates),
as it was before these statistics (Hilbert phases without edge handling), then
adding one at a time: the AR edge extension (inside every Kuramoto call: run,
windows, surrogates), the finite-size correction of every layer's exponent
with a calibration computed afresh (the first run of a length in a process),
the t interval over layers and the style test with 199 surrogates; last, all
of it with the calibration cached (later runs of the same length, as in a
batch).  Medians of 21 interleaved rounds (5 for the longer simulated run of 20
layers x 1001 checkpoints), so that load on the machine hits every variant
alike, and the median of the per-round ratios; single-threaded.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

from dynatrain.analysis import Settings, analyze_signals  # noqa: E402
from dynatrain.measures import corrected_alpha, style_test, t_interval  # noqa: E402
from dynatrain.measures import finite_size as fs  # noqa: E402
from dynatrain.signals import LayerSignals, read_signals  # noqa: E402

ROUNDS = 21
KURAMOTO = importlib.import_module("dynatrain.measures.kuramoto")


def _analyze(signals, settings, edge):
    KURAMOTO._order_parameter.__defaults__ = (edge,)
    try:
        return analyze_signals(signals, settings)
    finally:
        KURAMOTO._order_parameter.__defaults__ = ("ar",)


def before(signals, settings):
    return _analyze(signals, settings, "none")


def edges(signals, settings):
    return _analyze(signals, settings, "ar")


def corrected(signals, settings, *, fresh=True):
    if fresh:
        fs._bias_curve.cache_clear()
    result = edges(signals, settings)
    return result, corrected_alpha(result.layer_alpha, result.zscored.shape[1])


def everything(signals, settings, *, fresh=True):
    result, alpha = corrected(signals, settings, fresh=fresh)
    t_interval(alpha)
    style_test(
        result.window_integration,
        result.window_metastability,
        settings.surrogates,
        rng=np.random.default_rng(0),
    )
    return result


VARIANTS = {
    "before": before,
    "+ edges": edges,
    "+ correction (fresh calibration)": corrected,
    "+ interval + style test": everything,
    "all, calibration cached": lambda s, o: everything(s, o, fresh=False),
}


def _noise_run(n_layers: int, n_checkpoints: int) -> LayerSignals:
    """A longer run: independent random walks (white-noise changes), no metrics."""
    values = np.random.default_rng(0).standard_normal((n_layers, n_checkpoints)).cumsum(axis=1)
    return LayerSignals(
        path="white-noise",
        metadata={},
        reduce="mean",
        layer_names=tuple(f"layer{i}" for i in range(n_layers)),
        epochs=np.arange(1.0, n_checkpoints + 1),
        values=values,
        metrics={},
        steps=None,
        excluded=(),
        first_checkpoint=0,
    )


def main() -> None:
    folder = Path(__file__).resolve().parents[1] / "sample_data"
    settings = Settings()
    print("| run | " + " | ".join(VARIANTS) + " |")
    print("| --- " * (len(VARIANTS) + 1) + "|")
    runs = [
        (name, read_signals(folder / f"{name}.h5", reduce="mean"), ROUNDS)
        for name in ("mlp-digits-seed0", "cnn-digits-seed0")
    ]
    runs.append(("white noise", _noise_run(20, 1001), 5))
    for name, signals, rounds in runs:
        for call in VARIANTS.values():
            call(signals, settings)
        times = {label: [] for label in VARIANTS}
        for _ in range(rounds):
            for label, call in VARIANTS.items():
                start = time.perf_counter()
                call(signals, settings)
                times[label].append(time.perf_counter() - start)
        base = np.array(times["before"])
        cells = [f"{1e3 * np.median(base):.1f} ms"]
        for label in list(VARIANTS)[1:]:
            ratio = np.median(np.array(times[label]) / base)
            cells.append(f"{1e3 * np.median(times[label]):.1f} ms ({ratio:.2f}x)")
        shape = f"{signals.values.shape[0]} x {signals.values.shape[1]}"
        print(f"| {name} ({shape}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
