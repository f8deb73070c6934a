"""Validation: edge handling of the Hilbert phases, on oscillators with known phases.

Run from the repository root::

    python benchmarks/validate_hilbert_edges.py           # the README's tables (~1 minute)
    python benchmarks/validate_hilbert_edges.py --quick   # fewer systems

Ground truth: noisy coupled Kuramoto oscillators (8 per system, natural
frequencies N(2 pi / 10, 0.05^2) rad per point, phase noise 0.05, Euler-Maruyama
with 20 substeps per sample; ``tests/measures/measures_refs.py``), observed as
``cos(theta) + 0.1 * noise``.  The true R(t) = |mean exp(i theta)|; the
measured one comes from ``kuramoto`` on the observed signals.  Coupling K = 0
(incoherent), 1.5 K_c (partly synchronised) and 3 K_c (locked, where
metastability is small and edge errors matter most); T = 25, 50, 100, 200.

Compared: ``edge="none"`` (the FFT as it is), ``edge="ar"`` (AR forecast
extension, the default), and "trim": ``none`` with the outer 10% of R(t) at
each end dropped before metastability is taken (the truth trimmed alike).
Other candidates tried while choosing (mirror padding, odd mirror, Tukey
taper) were worse than ``none``, and a Burg AR fit no better than the
Yule-Walker one used; they are not repeated here.  Then the cost.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "measures"))

import measures_refs as refs  # noqa: E402
import numpy as np  # noqa: E402

from dynatrain.measures import kuramoto  # noqa: E402

LENGTHS = (25, 50, 100, 200)
REGIMES = (("incoherent", 0.0), ("partly synchronised", 1.5), ("locked", 3.0))
N_OSCILLATORS = 8
OBSERVATION_NOISE = 0.1
EDGE_FRACTION = 0.1


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def simulate(n_points: int, relative_coupling: float, n_systems: int, seed: int):
    theta = refs.kuramoto_phases(
        N_OSCILLATORS,
        n_points,
        coupling=relative_coupling * refs.critical_coupling(0.05),
        n_systems=n_systems,
        seed=seed,
    )
    rng = np.random.default_rng(seed + 1)
    observed = np.cos(theta) + OBSERVATION_NOISE * rng.standard_normal(theta.shape)
    return observed, np.abs(np.exp(1j * theta).mean(axis=-2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 systems per cell, not 400")
    args = parser.parse_args()
    n_systems = 100 if args.quick else 400

    r_rows, meta_rows, sync_rows = [], [], []
    for name, relative in REGIMES:
        for n_points in LENGTHS:
            observed, truth = simulate(n_points, relative, n_systems, seed=n_points)
            trim = max(1, round(EDGE_FRACTION * n_points))
            outer = np.r_[:trim, n_points - trim : n_points]
            middle = np.r_[trim : n_points - trim]
            label = [name if n_points == LENGTHS[0] else "", f"{relative:g}", str(n_points)]
            r_cells, meta_cells, sync_cells = [], [], []
            for edge in ("none", "ar"):
                result = kuramoto(observed, edge=edge)
                error = np.abs(result.r - truth)
                r_cells.append(f"{error[:, outer].mean():.3f} / {error[:, middle].mean():.3f}")
                meta_error = result.metastability - truth.std(axis=-1)
                meta_cells.append(f"{meta_error.mean():+.4f} ({np.abs(meta_error).mean():.4f})")
                sync_error = np.abs(result.synchrony - truth.mean(axis=-1)).mean()
                sync_cells.append(f"{sync_error:.4f}")
            r_none = kuramoto(observed, edge="none").r[:, middle]
            trimmed_error = r_none.std(axis=-1) - truth[:, middle].std(axis=-1)
            meta_cells.append(f"{trimmed_error.mean():+.4f} ({np.abs(trimmed_error).mean():.4f})")
            r_rows.append(label + r_cells)
            meta_rows.append([*label, f"{truth.std(axis=-1).mean():.4f}", *meta_cells])
            sync_rows.append(label + sync_cells)
        print(f"{name}: done", file=sys.stderr)

    print(f"\n{n_systems} systems of {N_OSCILLATORS} oscillators per row.\n")
    print("Mean |error| of R(t), outer 10% / middle 80% of the points\n")
    print(row(["regime", "K / K_c", "T", "none", "ar (default)"]))
    print(row(["---"] * 5))
    for cells in r_rows:
        print(row(cells))
    print("\nMetastability: true value, bias (mean |error|)\n")
    print(row(["regime", "K / K_c", "T", "true", "none", "ar (default)", "trim 10% (none)"]))
    print(row(["---"] * 7))
    for cells in meta_rows:
        print(row(cells))
    print("\nSynchrony: mean |error|\n")
    print(row(["regime", "K / K_c", "T", "none", "ar (default)"]))
    print(row(["---"] * 5))
    for cells in sync_rows:
        print(row(cells))
    cost()


def _time(call, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cost() -> None:
    """kuramoto, its surrogate null and analyze with and without the extension."""
    from dynatrain.analysis import analyze_signals
    from dynatrain.measures import kuramoto_null
    from dynatrain.signals import read_signals

    rng = np.random.default_rng(0)
    print("\nCost (median of 15 calls each, one thread), none -> ar\n")
    print(row(["call", "none", "ar", "ratio"]))
    print(row(["---"] * 4))
    for shape in ((5, 100), (50, 1000)):
        x = rng.standard_normal(shape)
        none = _time(lambda x=x: kuramoto(x, edge="none"))
        ar = _time(lambda x=x: kuramoto(x, edge="ar"))
        label = f"kuramoto, {shape[0]} layers x {shape[1]} points"
        print(row([label, f"{1e3 * none:.2f} ms", f"{1e3 * ar:.2f} ms", f"{ar / none:.2f}"]))
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "mlp-digits-seed0.h5"
    signals = read_signals(sample, reduce="mean")
    x = np.diff(signals.values, axis=1)
    order_parameter = importlib.import_module("dynatrain.measures.kuramoto")._order_parameter
    timings = {}
    for edge in ("none", "ar"):
        # The windowed measures and the null call _order_parameter with its default edge.
        order_parameter.__defaults__ = (edge,)
        try:
            timings[edge] = (
                _time(lambda: kuramoto_null(x, 199, rng=np.random.default_rng(0))),
                _time(lambda: analyze_signals(signals)),
            )
        finally:
            order_parameter.__defaults__ = ("ar",)
    for i, label in enumerate(("kuramoto_null, 199 surrogates", "analyze (default settings)")):
        none, ar = timings["none"][i], timings["ar"][i]
        label = f"{label}, {sample.name}"
        print(row([label, f"{1e3 * none:.2f} ms", f"{1e3 * ar:.2f} ms", f"{ar / none:.2f}"]))


if __name__ == "__main__":
    main()
