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

Every figure is given as wall time and as this process's CPU time: on a busy
machine the wall time includes waiting for a CPU, which the CPU time does not.

``simulate``: wall time of ``dynatrain simulate OUT --layers 50 --checkpoints 10000
--samples 4 --features 4`` (the whole command, in a subprocess; target < 30 s).

Set ``OPENBLAS_NUM_THREADS=1`` for stable figures.
"""

from __future__ import annotations

import argparse
import os
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
    wall = np.empty(n)  # seconds per append, wall clock
    cpu = np.empty(n)  # and CPU time of this process
    control_wall = np.empty(CONTROL_LEAD)
    control_cpu = np.empty(CONTROL_LEAD)
    control = None
    start, start_cpu = time.perf_counter(), time.process_time()
    writer = ArchiveWriter(main_path, metadata={"run_id": "bench"})
    for t in range(n):
        metrics = {"val_accuracy": t / n, "train_loss": 1.0 - t / n}
        t0, c0 = time.perf_counter(), time.process_time()
        writer.append(epoch=t, activations=checkpoints[t % 8], metrics=metrics, step=t)
        wall[t], cpu[t] = time.perf_counter() - t0, time.process_time() - c0
        c = t - (n - CONTROL_LEAD)
        if c == 0:
            control = ArchiveWriter(control_path, metadata={"run_id": "control"})
        if control is not None:
            t0, c0 = time.perf_counter(), time.process_time()
            control.append(epoch=c, activations=checkpoints[c % 8], metrics=metrics, step=c)
            control_wall[c], control_cpu[c] = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    if control is not None:
        control.close()
    control_close, control_close_cpu = time.perf_counter() - t0, time.process_time() - c0
    writer.close()
    total = time.perf_counter() - start - control_wall.sum() - control_close
    total_cpu = time.process_time() - start_cpu - control_cpu.sum() - control_close_cpu

    def window(values: np.ndarray, first: int) -> float:
        return float(values[first : first + WINDOW].mean())

    early, early_cpu = window(wall, WINDOW), window(cpu, WINDOW)
    late, late_cpu = window(wall, n - WINDOW), window(cpu, n - WINDOW)
    alongside, alongside_cpu = window(control_wall, WINDOW), window(control_cpu, WINDOW)
    print(
        f"  {backend:4}  checkpoints {WINDOW + 1:,}-{2 * WINDOW:,}: {1e3 * early:5.2f} ms"
        f" (CPU {1e3 * early_cpu:4.2f})   last {WINDOW:,}: {1e3 * late:5.2f} ms"
        f" (CPU {1e3 * late_cpu:4.2f})   ratio {late / early:4.2f}"
        f" (CPU {late_cpu / early_cpu:4.2f})"
    )
    print(
        f"        control, its checkpoints {WINDOW + 1:,}-{2 * WINDOW:,} timed alongside the"
        f" last {WINDOW:,}: {1e3 * alongside:5.2f} ms (CPU {1e3 * alongside_cpu:4.2f})"
        f"   ratio {late / alongside:4.2f} (CPU {late_cpu / alongside_cpu:4.2f})"
    )
    print(
        f"        amortised, all {n:,} appends + close: {1e3 * total / n:5.2f} ms per checkpoint"
        f" (CPU {1e3 * total_cpu / n:4.2f}); slowest append {1e3 * wall.max():.0f} ms"
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
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (wall times include waiting for a CPU)")
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
