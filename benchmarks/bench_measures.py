"""Benchmark: dynatrain's batched DFA against the peer libraries, same workload.

Run from the repository root::

    python benchmarks/bench_measures.py

Workload: 4000 series of fractional Gaussian noise (H = 0.7), 256 points each,
order 1, scales ``dfa_scales(256)`` (4 .. 64, 16 log-spaced, unique).
dynatrain takes all series in one call (best of 5 runs); fathon
(``revSeg=True``, the same definition) is called series by series on all 4000;
the slower peers on the first 200 series, matched as closely as they allow:
MFDFA (q = 2, segments from both ends), nolds (``overlap=False,
fit_exp="poly"``, forward segments only) and neurokit2 (``overlap=False`` on
z-scored input, forward segments only).  Peer wrappers are shared with the
tests (``tests/measures/measures_refs.py``).

Everything runs single-threaded (OpenMP and OpenBLAS threads set to 1 unless
already set), so the ratios compare cost per core; fathon would otherwise
spread its scales over OpenMP threads.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy and fathon start their thread pools
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "measures"))

# Imported after the thread settings above, on purpose.
import measures_refs as refs  # noqa: E402
import numpy as np  # noqa: E402

from dynatrain.measures import dfa, dfa_scales  # noqa: E402
from dynatrain.synthetic import fgn  # noqa: E402

N_SERIES = 4000
N_POINTS = 256
N_SLOW = 200  # series given to the slow peers
REPEATS = 5
HURST = 0.7


def _time_per_series(
    run: Callable[[np.ndarray], np.ndarray], series: np.ndarray
) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    alpha = run(series)
    return (time.perf_counter() - start) / len(series), alpha


def _one_by_one(peer: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda series: np.array([peer(row) for row in series])


def main() -> None:
    series = fgn(N_POINTS, HURST, size=N_SERIES, rng=np.random.default_rng(0))
    scales = dfa_scales(N_POINTS)
    print(
        f"DFA benchmark: {N_SERIES} fGn series (H={HURST}) x {N_POINTS} points, order 1, "
        f"{len(scales)} scales {scales.min()}..{scales.max()}"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
    )

    dfa(series)  # warm-up: caches the polynomial bases
    best = min(_time_per_series(dfa, series)[0] for _ in range(REPEATS))
    ours = dfa(series)

    peers = {
        "fathon (revSeg=True)": (
            N_SERIES,
            _one_by_one(lambda row: refs.fathon_fluctuations(row, scales, 1)[0]),
        ),
        "MFDFA (q=2)": (
            N_SLOW,
            _one_by_one(
                lambda row: refs.loglog_slope(scales, refs.mfdfa_fluctuations(row, scales, 1))
            ),
        ),
        "nolds (matched)": (N_SLOW, _one_by_one(lambda row: refs.nolds_alpha(row, scales, 1))),
        "neurokit2 (matched)": (
            N_SLOW,
            _one_by_one(lambda row: refs.neurokit_alpha(row, scales, 1)),
        ),
    }
    refs.import_nolds()  # import costs are not part of the timing
    import neurokit2.complexity  # noqa: F401

    print()
    print(
        f"{'library':<24}{'series':>8}{'total s':>10}{'per series':>14}{'dynatrain x faster':>20}"
    )
    total = best * N_SERIES
    print(f"{'dynatrain (batched)':<24}{N_SERIES:>8}{total:>10.3f}{best * 1e6:>11.2f} us")
    alphas = {}
    for name, (count, run) in peers.items():
        per_series, alphas[name] = _time_per_series(run, series[:count])
        print(
            f"{name:<24}{count:>8}{per_series * count:>10.3f}{per_series * 1e6:>11.1f} us"
            f"{per_series / best:>19.0f}x"
        )

    print()
    print("agreement of the exponent with the peers:")
    fathon_error = np.max(np.abs(ours - alphas["fathon (revSeg=True)"]))
    mfdfa_error = np.max(np.abs(ours[:N_SLOW] - alphas["MFDFA (q=2)"]))
    print(
        f"  max |alpha - fathon alpha| over {N_SERIES} series: {fathon_error:.1e} (same definition)"
    )
    print(
        f"  max |alpha - MFDFA alpha|  over {N_SLOW} series:  {mfdfa_error:.1e} (same definition)"
    )
    for name in ("nolds (matched)", "neurokit2 (matched)"):
        difference = np.abs(ours[:N_SLOW] - alphas[name])
        print(
            f"  |alpha - {name.split()[0]} alpha| over {N_SLOW} series: "
            f"max {difference.max():.3f}, mean {difference.mean():.3f} "
            "(forward segments only: a different estimator)"
        )

    # The `analyze` benchmark (one archive end to end) belongs to the analysis layer and is
    # added there; this script stops at the measures.


if __name__ == "__main__":
    main()
