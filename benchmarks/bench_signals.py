"""Streaming reduction vs a plain chunk-by-chunk read of the same bytes.

    python benchmarks/bench_signals.py [--size-gb 1.0] [--backend hdf5|zarr] [--dir DIR]

Writes an archive of about ``--size-gb`` GB (4 layers, one checkpoint per chunk,
float32), then times, each in a fresh subprocess so that peak RSS is its own:

* ``plain read``: h5py (or zarr) reading every chunk once, nothing else;
* ``dynatrain signals --reduce mean`` and ``--reduce std`` through ``read_signals``.

It prints the best of ``--repeat`` runs (imports excluded), the ratio to the plain
read and the peak resident memory of the whole process. Both read from the page
cache (the archive was just written): the comparison is of CPU cost per byte,
which is what dynatrain adds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

LAYERS = 4
SAMPLES, FEATURES = 256, 1024  # one checkpoint of one layer: 1 MiB of float32

# Each script defines run(path, *args); imports happen before the clock starts.
PLAIN_HDF5 = """
import h5py
def run(path):
    with h5py.File(path, "r", swmr=True) as f:
        for name in f["layers"].attrs["order"]:
            ds = f[f"layers/{name}/activations"]
            for t in range(ds.shape[0]):  # one chunk = one checkpoint
                ds[t]
"""

PLAIN_ZARR = """
import zarr
def run(path):
    root = zarr.open_group(path, mode="r")
    for name in root["layers"].attrs["order"]:
        arr = root[f"layers/{name}/activations"]
        for t in range(arr.shape[0]):
            arr[t]
"""

DYNATRAIN = """
from dynatrain.signals import read_signals
import h5py, zarr  # the reader imports its back end lazily: keep that out of the timing
def run(path, reduce):
    read_signals(path, reduce=reduce)
"""

TIMED = """
import resource, sys, time
script, *argv = sys.argv[1:]
namespace = {}
exec(compile(script, "<bench>", "exec"), namespace)
start = time.perf_counter()
namespace["run"](*argv)
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_archive(path: str, size_gb: float) -> int:
    from dynatrain import ArchiveWriter

    checkpoint_bytes = LAYERS * SAMPLES * FEATURES * 4
    n_checkpoints = max(1, int(size_gb * 1e9 / checkpoint_bytes))
    rng = np.random.default_rng(0)
    base = rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32)
    with ArchiveWriter(path, metadata={"run_id": "bench"}, mode="w") as writer:
        for t in range(n_checkpoints):
            writer.append(
                epoch=t,
                activations={f"layer{i}": base + np.float32(t + i) for i in range(LAYERS)},
            )
    return n_checkpoints


def timed(script: str, *argv: str) -> tuple[float, float]:
    """(seconds of the work itself, peak RSS in MiB) in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", TIMED, script, *argv], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--backend", choices=["hdf5", "zarr"], default="hdf5")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write the archive (default: tmp)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(dir=args.dir, prefix="dynatrain-bench-")
    path = os.path.join(workdir, "bench.h5" if args.backend == "hdf5" else "bench.zarr")
    try:
        start = time.perf_counter()
        n_checkpoints = write_archive(path, args.size_gb)
        gigabytes = n_checkpoints * LAYERS * SAMPLES * FEATURES * 4 / 1e9
        print(
            f"archive: {args.backend}, {n_checkpoints} checkpoints x {LAYERS} layers x"
            f" {SAMPLES}x{FEATURES} float32 = {gigabytes:.2f} GB"
            f" (written in {time.perf_counter() - start:.1f} s)"
        )
        plain = PLAIN_HDF5 if args.backend == "hdf5" else PLAIN_ZARR
        cases = {
            "plain read": (plain, path),
            "signals --reduce mean": (DYNATRAIN, path, "mean"),
            "signals --reduce std": (DYNATRAIN, path, "std"),
        }
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):  # interleaved, so drift affects every case alike
            for label, (script, *argv) in cases.items():
                seconds, rss = timed(script, *argv)
                old = best.get(label)
                best[label] = (
                    min(seconds, old[0]) if old else seconds,
                    max(rss, old[1]) if old else rss,
                )
        base = best["plain read"][0]
        print(f"{'case':<24}{'seconds':>9}{'ratio':>8}{'GB/s':>7}{'peak RSS':>11}")
        for label, (seconds, rss) in best.items():
            gbps = gigabytes / seconds
            print(f"{label:<24}{seconds:>9.3f}{seconds / base:>8.2f}{gbps:>7.2f}{rss:>8.0f} MiB")
        print(json.dumps({k: {"seconds": v[0], "peak_rss_mib": v[1]} for k, v in best.items()}))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
