"""Streaming reduction vs a plain chunk-by-chunk read of the same bytes.

    python benchmarks/bench_signals.py [--size-gb 1.0] [--backend hdf5|zarr] [--dir DIR]
    python benchmarks/bench_signals.py --checkpoints 1000,10000,100000 [--per-chunk 1]

Writes an archive of about ``--size-gb`` GB (4 layers, one checkpoint per chunk,
float32), then times, each in a fresh subprocess so that peak RSS is its own:

* ``plain read``: h5py (or zarr) reading every chunk once, nothing else;
* ``dynatrain signals --reduce mean`` and ``--reduce std`` through ``read_signals``.

It prints the best of ``--repeat`` runs (imports excluded), the ratio to the plain
read and the peak resident memory of the whole process. Both read from the page
cache (the archive was just written): the comparison is of CPU cost per byte,
which is what dynatrain adds.

``--checkpoints N1,N2,...`` measures instead how reading scales with the number of
checkpoints: for each N, an archive of 5 layers x 4 x 4 float32 values per
checkpoint (``--per-chunk`` checkpoints per storage chunk), written with h5py or
zarr directly, is read by ``signals`` (``read_signals``), ``inspect``
(``open_archive`` and its summary) and ``validate`` (``validate_archive``), each in
a fresh interpreter. It prints the time per checkpoint at each size and its ratio
to the smallest size: 1.0 is linear.
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


SCALING = """
from dynatrain.archive.reader import open_archive
from dynatrain.archive.validate import validate_archive
from dynatrain.signals import read_signals
import h5py, zarr
def run(path, command):
    if command == "signals":
        read_signals(path)
    elif command == "inspect":
        with open_archive(path) as archive:
            archive.summary()
    else:
        report = validate_archive(path)
        assert report.valid, report.problems
"""

SCALING_LAYERS = 5
SCALING_SHAPE = (4, 4)


def write_scaling_archive(path: str, n_checkpoints: int, per_chunk: int) -> None:
    """An archive of ``n_checkpoints``, written with h5py or zarr directly (not the writer)."""
    rng = np.random.default_rng(0)
    epochs = np.arange(1.0, n_checkpoints + 1)
    arrays = {"checkpoints/epoch": epochs, "metrics/val_accuracy": epochs / n_checkpoints}
    for i in range(SCALING_LAYERS):
        values = rng.normal(size=(n_checkpoints, *SCALING_SHAPE)).astype(np.float32)
        arrays[f"layers/layer{i}/activations"] = values
    attrs = {
        "format": "dynatrain-activations",
        "format_version": 1,
        "complete_checkpoints": n_checkpoints,
    }
    order = [f"layer{i}" for i in range(SCALING_LAYERS)]
    if path.endswith(".h5"):
        import h5py

        with h5py.File(path, "w", libver="latest") as f:
            f.attrs.update(attrs)
            f.require_group("layers").attrs["order"] = order
            for key, values in arrays.items():
                chunks = (per_chunk, *values.shape[1:]) if values.ndim > 1 else (1024,)
                f.create_dataset(
                    key, data=values, chunks=chunks, maxshape=(None, *values.shape[1:])
                )
    else:
        import zarr

        root = zarr.open_group(path, mode="w", zarr_format=3)
        root.attrs.update(attrs)
        root.require_group("layers").attrs["order"] = order
        for key, values in arrays.items():
            chunks = (per_chunk, *values.shape[1:]) if values.ndim > 1 else (1024,)
            array = root.create_array(
                key, shape=values.shape, dtype=values.dtype, chunks=chunks, fill_value=np.nan
            )
            array[...] = values


def scaling(args: argparse.Namespace) -> None:
    sizes = [int(n) for n in args.checkpoints.split(",")]
    workdir = tempfile.mkdtemp(dir=args.dir, prefix="dynatrain-bench-")
    suffix = ".h5" if args.backend == "hdf5" else ".zarr"
    commands = ("signals", "inspect", "validate")
    results: dict[int, dict[str, float]] = {}
    try:
        for n in sizes:
            path = os.path.join(workdir, f"scale-{n}{suffix}")
            start = time.perf_counter()
            write_scaling_archive(path, n, args.per_chunk)
            written = time.perf_counter() - start
            results[n] = {}
            for command in commands:
                results[n][command] = min(
                    timed(SCALING, path, command)[0] for _ in range(args.repeat)
                )
            print(
                f"{n} checkpoints written in {written:.1f} s; "
                + ", ".join(f"{c} {results[n][c]:.2f} s" for c in commands),
                flush=True,
            )
            if suffix == ".zarr":
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{args.backend}, {SCALING_LAYERS} layers x {SCALING_SHAPE} float32,"
        f" {args.per_chunk} checkpoint(s) per chunk; microseconds per checkpoint"
        f" (ratio to {sizes[0]} checkpoints)"
    )
    print(f"{'checkpoints':>12}" + "".join(f"{c:>22}" for c in commands))
    for n in sizes:
        cells = []
        for command in commands:
            per = results[n][command] / n * 1e6
            ratio = per / (results[sizes[0]][command] / sizes[0] * 1e6)
            cells.append(f"{per:>12.1f} ({ratio:>5.2f}x)")
        print(f"{n:>12}" + "".join(f"{cell:>22}" for cell in cells))
    print(json.dumps({"backend": args.backend, "per_chunk": args.per_chunk, "seconds": results}))


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
    parser.add_argument(
        "--checkpoints",
        default=None,
        help="comma-separated sizes: measure how reading scales with checkpoints instead",
    )
    parser.add_argument("--per-chunk", type=int, default=1, help="checkpoints per chunk")
    args = parser.parse_args()
    if args.checkpoints:
        scaling(args)
        return

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
