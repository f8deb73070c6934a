"""Costs as the number of checkpoints grows: appends and ``dynatrain simulate``.

    python benchmarks/bench_scale.py [--section append|simulate|all] [--backend hdf5|zarr|both]
                                     [--checkpoints 20000] [--layers 50] [--values 64]
                                     [--dir DIR]

``append``: an ``ArchiveWriter`` with the default durability (every append counted
before it returns) writes ``--checkpoints`` checkpoints of ``--layers`` layers of
``--values`` float32 values (4 probe samples x values / 4 features), two metrics and
the step, and times every append. Printed per back end:

* the mean append time over checkpoints 1,001-2,000 and over the last 1,000, and
  their ratio (target: <= 1.3);
* the same ratio against a *control*: a second archive, started 2,000 checkpoints
  before the end and written in the same loop, whose checkpoints 1,001-2,000 are
  timed at the same moments as the first archive's last 1,000. On a shared machine
  the load changes over a run of minutes; the control ratio compares like with like;
* the amortised cost: wall time of all appends plus ``close()`` (which trims the
  arrays), divided by the checkpoints (targets: HDF5 <= 2 ms, Zarr <= 10 ms).

``simulate``: wall time of ``dynatrain simulate OUT --layers 50 --checkpoints 10000
--samples 4 --features 4`` (the whole command, in a subprocess; target < 30 s).

Set ``OPENBLAS_NUM_THREADS=1`` for stable figures.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dynatrain import ArchiveWriter

SUFFIX = {"hdf5": ".h5", "zarr": ".zarr"}
WINDOW = 1000  # checkpoints per timed window
CONTROL_LEAD = 2 * WINDOW  # the control archive starts this many checkpoints before the end


def _activations(n_layers: int, n_values: int, rng: np.random.Generator) -> list[dict]:
    """A few distinct checkpoints to cycle through (generating them is not timed)."""
    shape = (4, n_values // 4)
    return [
        {f"layer{i}": rng.standard_normal(shape).astype(np.float32) for i in range(n_layers)}
        for _ in range(8)
    ]


def bench_append(backend: str, n: int, n_layers: int, n_values: int, folder: Path) -> None:
    rng = np.random.default_rng(0)
    checkpoints = _activations(n_layers, n_values, rng)
    main_path = folder / f"main{SUFFIX[backend]}"
    control_path = folder / f"control{SUFFIX[backend]}"
    main_times = np.empty(n)
    control_times = np.empty(CONTROL_LEAD)
    control = None
    start = time.perf_counter()
    writer = ArchiveWriter(main_path, metadata={"run_id": "bench"})
    for t in range(n):
        metrics = {"val_accuracy": t / n, "train_loss": 1.0 - t / n}
        t0 = time.perf_counter()
        writer.append(epoch=t, activations=checkpoints[t % 8], metrics=metrics, step=t)
        main_times[t] = time.perf_counter() - t0
        c = t - (n - CONTROL_LEAD)
        if c == 0:
            control = ArchiveWriter(control_path, metadata={"run_id": "control"})
        if control is not None:
            t0 = time.perf_counter()
            control.append(epoch=c, activations=checkpoints[c % 8], metrics=metrics, step=c)
            control_times[c] = time.perf_counter() - t0
    control_close = time.perf_counter()
    if control is not None:
        control.close()
    control_close = time.perf_counter() - control_close
    writer.close()
    wall = time.perf_counter() - start - control_times.sum() - control_close

    early = main_times[WINDOW : 2 * WINDOW].mean()
    late = main_times[n - WINDOW :].mean()
    control_early = control_times[WINDOW : 2 * WINDOW].mean()
    print(
        f"  {backend:4}  checkpoints {WINDOW + 1:,}-{2 * WINDOW:,}: {1e3 * early:6.2f} ms"
        f"   last {WINDOW:,}: {1e3 * late:6.2f} ms   ratio {late / early:4.2f}"
    )
    print(
        f"        control, checkpoints {WINDOW + 1:,}-{2 * WINDOW:,} timed alongside the last"
        f" {WINDOW:,}: {1e3 * control_early:6.2f} ms   ratio {late / control_early:4.2f}"
    )
    print(
        f"        amortised (all {n:,} appends + close): {1e3 * wall / n:6.2f} ms per checkpoint;"
        f" slowest append {1e3 * main_times.max():.0f} ms"
    )


def bench_simulate(backend: str, folder: Path) -> None:
    out = folder / f"sim{SUFFIX[backend]}"
    command = [
        sys.executable,
        "-m",
        "dynatrain.cli",
        "simulate",
        str(out),
        "--layers",
        "50",
        "--checkpoints",
        "10000",
        "--samples",
        "4",
        "--features",
        "4",
        "--force",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    print(f"  {backend:4}  simulate --layers 50 --checkpoints 10000: {wall:5.1f} s (whole command)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["append", "simulate", "all"], default="all")
    parser.add_argument("--backend", choices=["hdf5", "zarr", "both"], default="both")
    parser.add_argument("--checkpoints", type=int, default=20_000)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--values", type=int, default=64, help="float32 values per layer")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    args = parser.parse_args()
    if args.checkpoints < 2 * CONTROL_LEAD:
        parser.error(f"--checkpoints must be at least {2 * CONTROL_LEAD}")
    backends = ["hdf5", "zarr"] if args.backend == "both" else [args.backend]
    folder = Path(tempfile.mkdtemp(prefix="dynatrain-scale-", dir=args.dir))
    try:
        if args.section in ("append", "all"):
            print(
                f"append: {args.layers} layers x {args.values} float32, {args.checkpoints:,}"
                " checkpoints, default durability"
            )
            for backend in backends:
                bench_append(backend, args.checkpoints, args.layers, args.values, folder)
        if args.section in ("simulate", "all"):
            print("simulate:")
            for backend in backends:
                bench_simulate(backend, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
