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

The second part times ``analyze`` end to end on a 50-layer x 100-checkpoint archive
with 199 surrogates (the work after start-up, and the CLI's wall time), and
``dynatrain --help``.

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

    bench_analyze()


def bench_analyze(n_layers: int = 50, n_checkpoints: int = 100, surrogates: int = 199) -> None:
    """``analyze`` on one archive end to end: in-process work, and the CLI's wall time."""
    import subprocess
    import tempfile

    from dynatrain.analysis import Settings, analyze
    from dynatrain.simulate import simulate_run, write_run

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.h5"
        write_run(
            path,
            simulate_run(
                "hurst", n_layers=n_layers, n_checkpoints=n_checkpoints, hurst=HURST, seed=0
            ),
        )
        settings = Settings(surrogates=surrogates)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            analyze(path, settings)
            times.append(time.perf_counter() - start)

        def wall(*command: str) -> float:
            best = np.inf
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                best = min(best, time.perf_counter() - start)
            return best

        cli = wall(sys.executable, "-m", "dynatrain.cli", "analyze", str(path), "--format", "json")
        python = wall(sys.executable, "-c", "pass")
        imports = wall(sys.executable, "-c", "import dynatrain.analysis, dynatrain.cli, h5py")
        help_ = wall(sys.executable, "-m", "dynatrain.cli", "--help")
    print(f"\nanalyze: {n_layers} layers x {n_checkpoints} checkpoints, {surrogates} surrogates")
    print(
        f"  work after start-up (read + measures + surrogates), best of {REPEATS}:"
        f" {min(times):.3f} s   (target < 1 s)"
    )
    print(
        f"  `dynatrain analyze --format json` wall time: {cli:.3f} s"
        f" (python alone {python:.3f} s, imports {imports - python:.3f} s)"
    )
    print(
        f"  `dynatrain --help` wall time: {help_:.3f} s, {help_ - python:.3f} s over python"
        "   (target < 0.3 s)"
    )


if __name__ == "__main__":
    main()
