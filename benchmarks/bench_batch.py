"""Benchmark `dynatrain batch`: speed-up with worker processes, and the cost of the Dask path.

    python benchmarks/bench_batch.py                 # 16 runs of 50 layers x 150 checkpoints
    python benchmarks/bench_batch.py --runs 24 --no-dask

1. CPU-bound batch: the same runs analysed with ``jobs=1`` (in this process) and ``jobs=2``
   (two spawned worker processes, start-up included); prints both times and the ratio
   (target >= 1.6x on 2 cores).
2. Dask: the same batch on a ``LocalCluster`` of 2 single-threaded worker processes
   (start-up timed apart), and a batch of small runs on the local pool vs the running
   cluster, whose difference per run is the Dask path's overhead.

The results of every path are checked to be identical. Other work on the machine makes the
times noisy: each configuration is timed ``--repeat`` times and the best is kept.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial

from dynatrain.analysis import Settings
from dynatrain.batch import analyze_runs
from dynatrain.report.export import to_jsonl
from dynatrain.simulate import simulate_run, write_run


def make_runs(folder: str, n_runs: int, n_layers: int, n_checkpoints: int) -> list[str]:
    paths = []
    for i in range(n_runs):
        path = os.path.join(folder, f"run-{i:03d}.h5")
        run = simulate_run(
            "hurst",
            n_layers=n_layers,
            n_checkpoints=n_checkpoints,
            hurst=0.6 + 0.3 * (i % 2),
            seed=i,
        )
        write_run(path, run, samples=4, features=4, metadata={"dataset": "AB"[i % 2]}, seed=i)
        paths.append(path)
    return paths


def best_time(repeat: int, function: Callable[..., list], *args: object) -> tuple[float, list]:
    best, result = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def batches_on(dask_address: str | None) -> dict[str, Callable[[list[str], Settings], list]]:
    """The ways to run a batch: in process, on a local pool, on Dask (given an address)."""
    batches = {
        "in process, jobs=1": partial(analyze_runs, jobs=1),
        "local pool, jobs=2": partial(analyze_runs, jobs=2),
    }
    if dask_address is not None:
        batches["dask, cluster running"] = partial(
            analyze_runs, scheduler="dask", dask_address=dask_address
        )
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--checkpoints", type=int, default=150)
    parser.add_argument("--surrogates", type=int, default=199)
    parser.add_argument("--small-runs", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        runs = make_runs(folder, options.runs, options.layers, options.checkpoints)
        settings = Settings(surrogates=options.surrogates)
        print(
            f"CPU-bound batch: {options.runs} runs of {options.layers} layers x"
            f" {options.checkpoints} checkpoints, {options.surrogates} surrogates,"
            f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the start"
        )
        local = batches_on(None)
        one, reference = best_time(options.repeat, local["in process, jobs=1"], runs, settings)
        two, records = best_time(options.repeat, local["local pool, jobs=2"], runs, settings)
        assert to_jsonl(records) == to_jsonl(reference), "jobs=2 differs from jobs=1"
        print(f"  jobs=1  {one:7.2f} s   ({one / options.runs * 1e3:6.0f} ms per run)")
        print(f"  jobs=2  {two:7.2f} s   ({two / options.runs * 1e3:6.0f} ms per run)")
        print(f"  speed-up jobs=2 / jobs=1: {one / two:.2f}x")
        if options.no_dask:
            return

        import distributed

        start = time.perf_counter()
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            startup = time.perf_counter() - start
            batches = batches_on(cluster.scheduler_address)
            del batches["in process, jobs=1"]
            dask_time, records = best_time(
                options.repeat, batches["dask, cluster running"], runs, settings
            )
            assert to_jsonl(records) == to_jsonl(reference), "Dask differs from local"
            print(f"  dask, 2 workers    {dask_time:7.2f} s   (cluster already running)")

            # Small runs in batches of two sizes: the slope is the cost per run, the
            # intercept the fixed cost (the pool starts its processes every time).
            os.mkdir(small_folder := os.path.join(folder, "small"))
            small = make_runs(small_folder, options.small_runs, 6, 50)
            small_settings = Settings(surrogates=19)
            few = options.small_runs // 4
            print(
                f"Overhead: small runs (6 layers x 50 checkpoints, 19 surrogates), batches of"
                f" {few} and {options.small_runs}"
            )
            print(f"  LocalCluster start-up, 2 worker processes: {startup:.2f} s")
            per_run = {}
            for label, batch in batches.items():
                t_few, _ = best_time(options.repeat, batch, small[:few], small_settings)
                t_all, _ = best_time(options.repeat, batch, small, small_settings)
                per_run[label] = (t_all - t_few) / (options.small_runs - few)
                fixed = t_all - per_run[label] * options.small_runs
                print(f"  {label:22s} {per_run[label] * 1e3:6.1f} ms per run, fixed {fixed:5.2f} s")
        overhead = per_run["dask, cluster running"] - per_run["local pool, jobs=2"]
        print(f"  Dask path minus local pool: {overhead * 1e3:+.1f} ms per run")


if __name__ == "__main__":
    main()
