"""Benchmark: what the short-series statistics add to ``analyze``.

Run from the repository root::

    python benchmarks/bench_short_series.py

Times ``analyze_signals`` on sample runs at default settings (199 surrogates),
as it was before these statistics (Hilbert phases without edge handling) and
with everything they add: the AR edge extension (inside every Kuramoto call:
run, windows, surrogates), the finite-size correction of every layer's
exponent with a calibration computed afresh (the first run of a length in a
process; later runs of that length reuse it), the t interval over layers and
the style test with 199 surrogates.  Rounds interleave the two so that load on
the machine hits both alike; single-threaded.
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
from dynatrain.signals import read_signals  # noqa: E402

ROUNDS = 21
KURAMOTO = importlib.import_module("dynatrain.measures.kuramoto")


def before(signals, settings):
    KURAMOTO._order_parameter.__defaults__ = ("none",)
    try:
        return analyze_signals(signals, settings)
    finally:
        KURAMOTO._order_parameter.__defaults__ = ("ar",)


def after(signals, settings):
    fs._bias_curve.cache_clear()
    result = analyze_signals(signals, settings)
    n_points = result.zscored.shape[1]
    corrected = corrected_alpha(result.layer_alpha, n_points)
    t_interval(corrected)
    style_test(
        result.window_integration,
        result.window_metastability,
        settings.surrogates,
        rng=np.random.default_rng(0),
    )
    return result


def main() -> None:
    folder = Path(__file__).resolve().parents[1] / "sample_data"
    settings = Settings()
    print("| run | layers x checkpoints | before (ms) | after (ms) | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("mlp-digits-seed0", "cnn-digits-seed0"):
        signals = read_signals(folder / f"{name}.h5", reduce="mean")
        before(signals, settings)
        after(signals, settings)
        times = {"before": [], "after": []}
        for _ in range(ROUNDS):
            for label, call in (("before", before), ("after", after)):
                start = time.perf_counter()
                call(signals, settings)
                times[label].append(time.perf_counter() - start)
        old, new = np.median(times["before"]), np.median(times["after"])
        ratio = np.median(np.array(times["after"]) / np.array(times["before"]))
        shape = f"{signals.values.shape[0]} x {signals.values.shape[1]}"
        print(f"| {name} | {shape} | {1e3 * old:.1f} | {1e3 * new:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
