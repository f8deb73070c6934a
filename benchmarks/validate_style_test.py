"""Validation: the surrogate test for the training style.

Run from the repository root::

    python benchmarks/validate_style_test.py           # the README's tables (a few minutes)
    python benchmarks/validate_style_test.py --quick   # 300 runs per cell

Null runs (no relation between windowed integration and metastability): 5
independent layers of white noise, of AR(1) noise (phi = 0.7), of fGn with
H = 0.8 (the `fbm` package) or of random walks, T analysed points, the default
window max(16, T // 4).  For each run: the label by the threshold alone
(|rho| >= 0.3, today's rule), the share with p <= 0.05 (``style_test``, 199
surrogates) and the label that needs both.  Then the test's power, the sample
runs, and the cost.

Power is measured on pairs of series shaped like the windowed measures: each is
a moving average of white noise over w points (n_windows = T - w + 1 values,
w = T // 4 as by default), the second mixed with the first so that their
correlation is r.  With windows a quarter of the run long, the windowed series
hold only about three independent windows, which caps what any test can see.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "measures"))

import measures_refs as refs  # noqa: E402
import numpy as np  # noqa: E402

from dynatrain.defaults import STYLE_LEVEL, STYLE_THRESHOLD, default_window  # noqa: E402
from dynatrain.measures import spearman, training_style, windowed_measures  # noqa: E402
from dynatrain.measures.style import style_test  # noqa: E402

LENGTHS = (32, 50, 100, 200)
N_LAYERS = 5
N_SURROGATES = 199


def null_layers(kind: str, n_runs: int, n_points: int, rng: np.random.Generator) -> np.ndarray:
    shape = (n_runs, N_LAYERS)
    if kind == "white noise":
        return rng.standard_normal((*shape, n_points))
    if kind == "AR(1), phi = 0.7":
        noise = rng.standard_normal((*shape, n_points + 50))
        x = np.zeros_like(noise)
        for t in range(1, noise.shape[-1]):
            x[..., t] = 0.7 * x[..., t - 1] + noise[..., t]
        return x[..., 50:]
    if kind == "fGn, H = 0.8 (fbm)":
        seed = int(rng.integers(2**31))
        return refs.fbm_fgn(n_points, 0.8, n_runs * N_LAYERS, seed=seed).reshape(*shape, n_points)
    if kind == "random walks":
        return rng.standard_normal((*shape, n_points)).cumsum(axis=-1)
    raise ValueError(kind)


def smooth_pairs(
    correlation: float, n_points: int, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two moving averages (window T // 4) of white noise with correlation `correlation`."""
    window = default_window(n_points)
    noise = rng.standard_normal((2, n_pairs, n_points))
    first, second = np.lib.stride_tricks.sliding_window_view(noise, window, axis=-1).mean(-1)
    return first, correlation * first + np.sqrt(1 - correlation**2) * second


def rates(layers: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Threshold-only label rate, p <= level rate, tested label rate, median p."""
    window = default_window(layers.shape[-1])
    windowed = windowed_measures(layers, window)
    old, significant, new, p_values = 0, 0, 0, []
    for integration, metastability in zip(
        windowed.integration, windowed.metastability, strict=True
    ):
        style = training_style(integration, metastability)
        tested = style_test(integration, metastability, N_SURROGATES, rng=rng)
        old += style is not None and style.label != "independent"
        significant += tested is not None and tested.p <= STYLE_LEVEL
        new += tested is not None and tested.label != "independent"
        p_values.append(np.nan if tested is None else tested.p)
    n_runs = len(layers)
    return old / n_runs, significant / n_runs, new / n_runs, float(np.nanmedian(p_values))


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 runs per cell, not 1000")
    args = parser.parse_args()
    n_runs = 300 if args.quick else 1000
    rng = np.random.default_rng(2024)

    print(
        f"\nNull runs ({N_LAYERS} independent layers, {n_runs} runs per row, Monte Carlo SE "
        f"{100 * np.sqrt(0.05 * 0.95 / n_runs):.1f} points at 5%): share of runs labelled by "
        f"|rho| >= {STYLE_THRESHOLD} alone, with p <= {STYLE_LEVEL}, and labelled by both\n"
    )
    print(row(["layers", "T", "window", "label by threshold", "p <= 0.05", "label (tested)"]))
    print(row(["---"] * 6))
    for kind in ("white noise", "AR(1), phi = 0.7", "fGn, H = 0.8 (fbm)", "random walks"):
        for n_points in LENGTHS:
            old, significant, new, _ = rates(null_layers(kind, n_runs, n_points, rng), rng)
            cells = [kind if n_points == LENGTHS[0] else "", str(n_points)]
            cells += [str(default_window(n_points))]
            cells += [f"{100 * old:.1f}%", f"{100 * significant:.1f}%", f"{100 * new:.1f}%"]
            print(row(cells))
        print(f"{kind}: done", file=sys.stderr)

    print(
        f"\nPower: share of pairs with p <= {STYLE_LEVEL} (and labelled), {n_runs // 2} pairs "
        "per cell, pairs of smooth series with correlation r\n"
    )
    correlations = (0.0, 0.5, 0.8, 0.95)
    print(row(["T (windows)", *(f"r = {r}" for r in correlations)]))
    print(row(["---"] * (1 + len(correlations))))
    for n_points in (50, 100, 200):
        cells = [f"{n_points} ({n_points - default_window(n_points) + 1})"]
        for correlation in correlations:
            first, second = smooth_pairs(correlation, n_points, n_runs // 2, rng)
            pairs = zip(first, second, strict=True)
            tests = [style_test(a, b, N_SURROGATES, rng=rng) for a, b in pairs]
            significant = np.mean([t.p <= STYLE_LEVEL for t in tests])
            labelled = np.mean([t.label != "independent" for t in tests])
            cells.append(f"{100 * significant:.0f}% ({100 * labelled:.0f}%)")
        print(row(cells))
    sample_runs()


def sample_runs() -> None:
    """The shipped runs: rho, p, the label by threshold and the tested label; and the cost."""
    from dynatrain.analysis import analyze_signals
    from dynatrain.signals import read_signals

    print("\nSample runs (--transform change, default window, 199 surrogates, seed 0)\n")
    print(row(["run", "rho", "p", "label by threshold", "label (tested)", "test ms"]))
    print(row(["---"] * 6))
    folder = Path(__file__).resolve().parents[1] / "sample_data"
    for path in sorted(folder.glob("*.h5")):
        signals = read_signals(path, reduce="mean")
        series = np.diff(signals.values, axis=1) / np.diff(signals.epochs)
        windowed = windowed_measures(series, default_window(series.shape[1]))
        old = training_style(windowed.integration, windowed.metastability)
        start = time.perf_counter()
        tested = style_test(
            windowed.integration, windowed.metastability, N_SURROGATES, rng=np.random.default_rng(0)
        )
        elapsed = time.perf_counter() - start
        cells = [path.stem, f"{tested.spearman:+.2f}", f"{tested.p:.3f}", old.label, tested.label]
        print(row([*cells, f"{1e3 * elapsed:.1f}"]))
    assert float(spearman(windowed.integration, windowed.metastability)) == tested.spearman
    signals = read_signals(folder / "mlp-digits-seed0.h5", reduce="mean")
    analyze_signals(signals)
    plain, test = [], []
    for _ in range(15):
        start = time.perf_counter()
        result = analyze_signals(signals)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        style_test(
            result.window_integration,
            result.window_metastability,
            N_SURROGATES,
            rng=np.random.default_rng(0),
        )
        test.append(time.perf_counter() - start)
    print(
        f"\nstyle_test with {N_SURROGATES} surrogates: median {1e3 * np.median(test):.1f} ms, "
        f"{np.median(np.array(test) / np.array(plain)):.2f} x the median analyze of "
        f"mlp-digits-seed0 ({1e3 * np.median(plain):.1f} ms; 15 interleaved pairs)"
    )


if __name__ == "__main__":
    main()
