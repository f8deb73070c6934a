"""Validation: coverage of the confidence interval over layers.

Run from the repository root::

    python benchmarks/validate_intervals.py           # the README's table (~1 minute)
    python benchmarks/validate_intervals.py --quick   # 1000 runs per cell

A run's integration is the mean of its layers' DFA exponents, and its interval
treats the layers as draws from a population of layers.  Each simulated run
draws L layers; the interval covers when it contains the population mean.
Populations:

* normal: exponents N(0.6, 0.15^2), where the t interval is exact;
* fGn, 100 points (raw / corrected): each layer is fGn from the `fbm` package
  with H drawn uniformly from {0.3, 0.4, ..., 0.9}, its exponent measured by
  ``dfa`` (raw) or ``corrected_alpha``; the population mean is that of a pool
  of 21,000 such layers (the runs draw from the pool);
* fGn, 32 points, corrected: the same at the shortest lengths;
* skewed: lognormal exponents (sigma 0.5), a stress case.

Intervals: the percentile bootstrap over layers (``bootstrap_ci``, 2000
resamples, what ``integration_ci95`` is today) and the Student t interval
(``t_interval``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "measures"))

import measures_refs as refs  # noqa: E402
import numpy as np  # noqa: E402

from dynatrain.measures import bootstrap_ci, dfa  # noqa: E402
from dynatrain.measures.finite_size import corrected_alpha  # noqa: E402
from dynatrain.measures.intervals import t_interval  # noqa: E402

LAYERS = (4, 5, 8, 10, 20, 50)
HURST = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
POOL_PER_HURST = 3000


def fgn_pool(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw and corrected exponents of POOL_PER_HURST fbm series per H."""
    raw = np.concatenate(
        [dfa(refs.fbm_fgn(n_points, h, POOL_PER_HURST, seed=int(100 * h))) for h in HURST]
    )
    return raw, corrected_alpha(raw, n_points)


def coverage(population: np.ndarray | None, draw, target: float, n_layers: int, runs: int):
    rng = np.random.default_rng(n_layers)
    values = (
        draw(rng, (runs, n_layers))
        if population is None
        else rng.choice(population, size=(runs, n_layers))
    )
    lo, hi = bootstrap_ci(values, rng=rng)
    boot = np.mean((lo <= target) & (target <= hi))
    lo, hi = t_interval(values)
    student = np.mean((lo <= target) & (target <= hi))
    return boot, student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000 runs per cell, not 4000")
    args = parser.parse_args()
    runs = 1000 if args.quick else 4000

    raw100, corrected100 = fgn_pool(100)
    _, corrected32 = fgn_pool(32)
    sigma = 0.5
    populations = {
        "normal": (None, lambda rng, shape: rng.normal(0.6, 0.15, shape), 0.6),
        "fGn, 100 points, raw": (raw100, None, raw100.mean()),
        "fGn, 100 points, corrected": (corrected100, None, corrected100.mean()),
        "fGn, 32 points, corrected": (corrected32, None, corrected32.mean()),
        "skewed (lognormal)": (
            None,
            lambda rng, shape: rng.lognormal(np.log(0.5), sigma, shape),
            0.5 * np.exp(sigma**2 / 2),
        ),
    }
    print(
        f"\nCoverage of the nominal 95% interval over layers, {runs} runs per cell "
        f"(Monte Carlo SE {100 * np.sqrt(0.95 * 0.05 / runs):.1f} points): "
        "percentile bootstrap / t interval\n"
    )
    print("| population | " + " | ".join(f"L = {n}" for n in LAYERS) + " |")
    print("| --- " * (len(LAYERS) + 1) + "|")
    for name, (population, draw, target) in populations.items():
        cells = []
        for n_layers in LAYERS:
            boot, student = coverage(population, draw, target, n_layers, runs)
            cells.append(f"{100 * boot:.1f} / {100 * student:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
