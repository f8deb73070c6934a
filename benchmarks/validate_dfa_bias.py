"""Validation: the finite-size correction of the DFA exponent, on independent fGn.

Run from the repository root::

    python benchmarks/validate_dfa_bias.py            # the README's tables (a few minutes)
    python benchmarks/validate_dfa_bias.py --quick    # fewer replicates

Ground truth: fractional Gaussian noise from the `fbm` package (Davies-Harte,
or its exact Cholesky method for H >= 0.9, where its Davies-Harte falls back),
H = 0.1 .. 0.9, n = 32 .. 2048, default DFA settings (order 1, scales
``dfa_scales(n)``).  For each (H, n): bias and RMSE of one series' exponent,
raw (``dfa``), corrected (``corrected_alpha``) and, for reference, fathon's
unbiased DFA on the same scales; then the RMSE of a run's integration (the mean
of 5 layers); then fractional Brownian motion (``fbm``'s own fBm, alpha = H + 1),
where the correction is an extrapolation; then the cost of the calibration
against ``analyze`` on the sample runs' length.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "measures"))

import measures_refs as refs  # noqa: E402
import numpy as np  # noqa: E402

from dynatrain.measures import dfa, dfa_scales  # noqa: E402
from dynatrain.measures import finite_size as fs  # noqa: E402

HURST = (0.1, 0.3, 0.5, 0.7, 0.9)
LENGTHS = (32, 64, 128, 256, 512, 1024, 2048)
LAYERS = 5  # layers averaged into one run's integration
FATHON_MAX_LENGTH = 256  # fathon is called series by series: only where the bias matters


def replicates(n_points: int, quick: bool) -> int:
    """Series per (H, n): more where one exponent is noisier."""
    count = 4000 if n_points <= 64 else 2000 if n_points <= 256 else 1000
    return count // 5 if quick else count


def fathon_unbiased(series: np.ndarray, scales: np.ndarray) -> np.ndarray:
    import fathon
    from fathon import fathonUtils

    out = []
    for x in series:
        analysis = fathon.DFA(fathonUtils.toAggregated(x))
        analysis.computeFlucVec(winSizes=scales.astype(np.int64), polOrd=1, unbiased=True)
        out.append(analysis.fitFlucVec()[0])
    return np.array(out)


def fbm_paths(n_points: int, hurst: float, n_series: int, seed: int) -> np.ndarray:
    """fBm sampled at 1..n (fbm's own ``fbm()``, its first point, 0, dropped)."""
    from fbm import FBM

    method = "cholesky" if hurst >= 0.9 else "daviesharte"
    generator = FBM(n_points, hurst, length=n_points, method=method)
    state = np.random.get_state()  # noqa: NPY002 (fbm only uses the global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return np.array([generator.fbm()[1:] for _ in range(n_series)])
    finally:
        np.random.set_state(state)  # noqa: NPY002


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    print(row(header))
    print(row(["---"] * len(header)))
    for cells in rows:
        print(row(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the replicates")
    args = parser.parse_args()

    bias_rows, rmse_rows, run_rows, worst_se = [], [], [], 0.0
    for n_points in LENGTHS:
        scales = dfa_scales(n_points)
        count = replicates(n_points, args.quick)
        bias_cells, rmse_cells, run_cells = [str(n_points)], [str(n_points)], [str(n_points)]
        for hurst in HURST:
            series = refs.fbm_fgn(n_points, hurst, count, seed=int(1000 * hurst) + n_points)
            raw = dfa(series)
            corrected = fs.corrected_alpha(raw, n_points)
            worst_se = max(worst_se, raw.std() / np.sqrt(count))
            estimates = {"raw": raw, "corrected": corrected}
            if n_points <= FATHON_MAX_LENGTH:
                estimates["fathon unbiased"] = fathon_unbiased(series, scales)
            bias = {k: v.mean() - hurst for k, v in estimates.items()}
            rmse = {k: np.sqrt(np.mean((v - hurst) ** 2)) for k, v in estimates.items()}
            bias_cells.append(" / ".join(f"{bias[k]:+.3f}" for k in estimates))
            rmse_cells.append(" / ".join(f"{rmse[k]:.3f}" for k in estimates))
            runs = {
                k: v[: count // LAYERS * LAYERS].reshape(-1, LAYERS).mean(axis=1)
                for k, v in estimates.items()
                if k != "fathon unbiased"
            }
            run_rmse = {k: np.sqrt(np.mean((v - hurst) ** 2)) for k, v in runs.items()}
            run_cells.append(" / ".join(f"{run_rmse[k]:.3f}" for k in runs))
        bias_rows.append(bias_cells)
        rmse_rows.append(rmse_cells)
        run_rows.append(run_cells)
        print(f"n = {n_points}: {count} series per H", file=sys.stderr)

    header = ["n", *(f"H = {h}" for h in HURST)]
    note = (
        "raw / corrected / fathon unbiased (fathon only up to n = "
        f"{FATHON_MAX_LENGTH}); Monte Carlo SE of a bias <= {worst_se:.3f}"
    )
    table(f"Bias of one series' exponent, {note}", header, bias_rows)
    table("RMSE of one series' exponent, raw / corrected / fathon unbiased", header, rmse_rows)
    table(
        f"RMSE of a run's integration (mean of {LAYERS} independent layers), raw / corrected",
        header,
        run_rows,
    )

    # fBm: alpha = H + 1, above the calibrated range (the correction extrapolates).
    fbm_rows = []
    for n_points in (32, 64, 128, 256, 1024):
        cells = [str(n_points)]
        count = replicates(n_points, args.quick) // 2
        for hurst in (0.2, 0.5, 0.8):
            paths = fbm_paths(n_points, hurst, count, seed=int(1000 * hurst) + n_points + 7)
            raw = dfa(paths)
            corrected = fs.corrected_alpha(raw, n_points)
            cells.append(f"{raw.mean() - 1 - hurst:+.3f} / {corrected.mean() - 1 - hurst:+.3f}")
        fbm_rows.append(cells)
    table(
        "Bias on fBm (alpha = H + 1: outside the calibration, an extrapolation), raw / corrected",
        ["n", "alpha = 1.2", "alpha = 1.5", "alpha = 1.8"],
        fbm_rows,
    )

    # Cost of the calibration, once per (length, scales, order).
    timing_rows = []
    for n_points in (24, 50, 100, 200, 500, 1000, 2000):
        fs._bias_curve.cache_clear()
        start = time.perf_counter()
        curve = fs.dfa_bias_curve(n_points)
        elapsed = time.perf_counter() - start
        timing_rows.append(
            [str(n_points), f"{1e3 * elapsed:.1f}", f"{curve.standard_error.max():.4f}"]
        )
    table(
        "Calibration cost (first call; cached after) and largest Monte Carlo SE of the curve",
        ["n", "ms", "SE"],
        timing_rows,
    )
    analyze_cost()


def analyze_cost(rounds: int = 15) -> None:
    """``analyze`` on a sample run with and without a fresh calibration, interleaved."""
    from dynatrain.analysis import analyze_signals
    from dynatrain.signals import read_signals

    sample = Path(__file__).resolve().parents[1] / "sample_data" / "mlp-digits-seed0.h5"
    signals = read_signals(sample, reduce="mean")
    analyze_signals(signals)  # warm up
    plain, corrected = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        analyze_signals(signals)
        plain.append(time.perf_counter() - start)
        fs._bias_curve.cache_clear()
        start = time.perf_counter()
        result = analyze_signals(signals)
        fs.corrected_alpha(result.layer_alpha, result.zscored.shape[1])
        corrected.append(time.perf_counter() - start)
    ratio = np.median(np.array(corrected) / np.array(plain))
    print(
        f"\nanalyze of {sample.name} ({signals.values.shape[0]} layers x "
        f"{signals.values.shape[1]} checkpoints, default settings, 199 surrogates): "
        f"median {1e3 * np.median(plain):.1f} ms; with a first-time calibration "
        f"{1e3 * np.median(corrected):.1f} ms; ratio {ratio:.2f} (median of {rounds} "
        "interleaved pairs)"
    )


if __name__ == "__main__":
    main()
