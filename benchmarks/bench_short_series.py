"""Benchmark: what the short-series statistics cost ``analyze``.

Run from the repository root::

    python benchmarks/bench_short_series.py
    git archive <commit> dynatrain | tar -x -C /tmp/before
    python benchmarks/bench_short_series.py --before /tmp/before

Default settings (199 surrogates), single-threaded (``OPENBLAS_NUM_THREADS=1``).  Times
are the CPU time of the process (``time.process_time``): on a machine shared with other
jobs, wall time measures the queue for a core as much as the work.

Part 1, in this process: ``analyze_signals`` on sample runs, and what each addition
costs on its own, timed on the same data as the analysis computes it: the AR edge
extension of the Hilbert phases (``phase_edge="none"`` against the default), the
finite-size correction of every layer's exponent and of the mean field's (the first
call at a length pays the calibration; later calls read it from the cache), the two t
intervals and the style test.  Medians of interleaved rounds, so load on the machine
hits every variant alike.

Part 2, with ``--before SRC`` (a source tree of dynatrain from before these statistics,
which is put first on ``sys.path``): ``analyze_signals`` of that version and of this
one on the same sample runs, each in fresh processes started in alternation (the
first call in a process is what one ``dynatrain analyze`` pays: this version computes
its calibration there), and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("mlp-digits-seed0", "cnn-digits-seed0")
ROUNDS = 15
#: Warm calls timed in each fresh process of part 2, after its first (cold) call.
WARM_CALLS = 3

#: Runs in a fresh process: prints the first call's time and the median of the warm ones.
_CHILD = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from dynatrain.analysis import Settings, analyze_signals
from dynatrain.signals import read_signals
signals = read_signals(sys.argv[2], reduce="mean")
times = []
for _ in range(1 + int(sys.argv[3])):
    start = time.process_time()
    analyze_signals(signals, Settings())
    times.append(time.process_time() - start)
print(json.dumps({"first": times[0], "warm": statistics.median(times[1:])}))
"""


def _median_ms(values: list[float]) -> str:
    return f"{1e3 * float(np.median(values)):.1f} ms"


COLUMNS = (
    "analyze (default)",
    "analyze, phase_edge none",
    "correction, first at this length",
    "correction, cached",
    "t intervals",
    "style test (199)",
)


def _variants(name: str) -> tuple[str, dict[str, Callable[[], object]]]:
    """The run's shape, and a call per column of :data:`COLUMNS`."""
    from dynatrain import measures as m
    from dynatrain.analysis import Settings, analyze_signals, style_generator
    from dynatrain.measures import finite_size
    from dynatrain.signals import read_signals

    settings = Settings()
    signals = read_signals(ROOT / "sample_data" / f"{name}.h5", reduce="mean")
    result = analyze_signals(signals, settings)
    n_points = result.zscored.shape[1]
    options = {
        "min_scale": settings.min_scale,
        "max_scale": result.settings["max_scale"],
        "n_scales": settings.n_scales,
        "order": settings.dfa_order,
    }

    def correction(fresh: bool) -> None:
        if fresh:
            finite_size._bias_curve.cache_clear()
        m.corrected_alpha(result.layer_alpha, n_points, **options)
        m.corrected_alpha(result.integration_global, n_points, **options)

    calls = (
        lambda: analyze_signals(signals, settings),
        lambda: analyze_signals(signals, settings.replace(phase_edge="none")),
        lambda: correction(True),
        lambda: correction(False),
        lambda: (m.t_interval(result.layer_alpha), m.t_interval(result.layer_alpha)),
        lambda: m.style_test(
            result.window_integration,
            result.window_metastability,
            settings.surrogates,
            rng=style_generator(settings.seed),
        ),
    )
    return f"{len(result.layer_names)} x {n_points}", dict(zip(COLUMNS, calls, strict=True))


def in_process() -> None:
    """Part 1: the analysis and each addition's own cost, on the same data."""
    print("| run | " + " | ".join(COLUMNS) + " |")
    print("| --- " * (len(COLUMNS) + 1) + "|")
    for name in RUNS:
        shape, variants = _variants(name)
        times: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(ROUNDS):
            for label, call in variants.items():
                start = time.process_time()
                call()
                times[label].append(time.process_time() - start)
        base = np.median(times[COLUMNS[0]])
        cells = [_median_ms(times[COLUMNS[0]])]
        cells += [
            f"{_median_ms(times[label])} ({np.median(times[label]) / base:.2f}x)"
            for label in COLUMNS[1:]
        ]
        print(f"| {name} ({shape} points) | " + " | ".join(cells) + " |")


def _child(source: Path, run: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(source), str(run), str(WARM_CALLS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def against(before: Path) -> None:
    """Part 2: this version against the one in `before`, in fresh processes."""
    print(f"\nThis version against {before} (fresh processes, {ROUNDS} rounds):\n")
    print("| run | before: first call / warm | now: first call / warm | ratio first / warm |")
    print("| --- | --- | --- | --- |")
    for name in RUNS:
        run = ROOT / "sample_data" / f"{name}.h5"
        times: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
        for round_ in range(ROUNDS):
            order = [("before", before), ("now", ROOT)]
            for label, source in order if round_ % 2 == 0 else order[::-1]:
                times[label].append(_child(source, run))
        cells = []
        for label in ("before", "now"):
            first = [t["first"] for t in times[label]]
            warm = [t["warm"] for t in times[label]]
            cells.append(f"{_median_ms(first)} / {_median_ms(warm)}")
        ratios = [
            np.median(
                [
                    now[key] / old[key]
                    for now, old in zip(times["now"], times["before"], strict=True)
                ]
            )
            for key in ("first", "warm")
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratios[0]:.2f}x / {ratios[1]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", type=Path, help="source tree (holding dynatrain/) of the version to compare"
    )
    args = parser.parse_args()
    in_process()
    if args.before is not None:
        if not (args.before / "dynatrain" / "__init__.py").is_file():
            parser.error(f"{args.before}: no dynatrain/ package in it")
        against(args.before)


if __name__ == "__main__":
    main()
