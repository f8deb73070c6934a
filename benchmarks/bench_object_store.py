"""Archives in object storage, against a local S3-compatible server (moto's server mode).

    python benchmarks/bench_object_store.py [--layers 50] [--checkpoints 2000]
        [--features 64] [--runs 100] [--repeat 3] [--appends 100] [--skip-sweep]

Needs ``moto[server]`` and ``s3fs`` (``pip install -e '.[test]'``). Starts the
server on 127.0.0.1 and measures, printing ratios measured in the same run:

1. **Reading a run's signals**: ``read_signals("s3://.../run.zarr")`` (``--reduce
   mean``) against a plain concurrent ``fs.cat`` of the same objects (every object
   of the store, fetched by s3fs in one concurrent batch of single GETs, nothing
   decoded; the keys are listed beforehand, untimed). The target is a ratio (plain
   time / dynatrain time) of at least 0.8. Also shown, for comparison only: the
   same fetch preceded by a listing of the store (``fs.find``, as zarr lists a
   store), as a reader that does not know the keys beforehand has to. The three are run interleaved,
   ``--repeat`` times; medians are printed, with the CPU time each read costs this
   process and the server (Linux: from ``/proc``), which the load of other jobs on
   the machine changes far less than the wall time.
2. **Appending checkpoints**: ``ArchiveWriter("s3://...").append`` (``--layers``, at
   most 10, layers of ``--features`` float32, each append counted) against the same
   uploads done plainly with s3fs: objects of the sizes of the run's chunks, in one
   concurrent batch, then the root document (what an append uploads).
3. **A sweep in the bucket**: ``--runs`` small runs batch-reported (``dynatrain
   batch s3://bucket/sweep/ -o DIR``, default analysis settings) with ``--jobs 2``
   and with ``--scheduler dask --jobs 2`` (a 2-worker LocalCluster), and, for
   comparison, the same runs on local disk with ``--jobs 2``.

The server is local: there is no network latency, and the server (a Python
process) costs CPU time of its own on the same machine. Timings on a shared
machine are provisional; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "objectstore"))

from s3server import S3Server  # noqa: E402


def _simulate(url: str, *, layers: int, checkpoints: int, features: int, seed: int) -> None:
    from dynatrain.simulate import simulate_run, write_run

    run = simulate_run("training", n_layers=layers, n_checkpoints=checkpoints, seed=seed)
    write_run(url, run, samples=1, features=features, seed=seed)


def _best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of another process so far, where ``/proc`` tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_read(args: argparse.Namespace, bucket: str, server_pid: int) -> None:
    import s3fs

    from dynatrain.signals import read_signals

    url = f"s3://{bucket}/read/run.zarr"
    start = time.perf_counter()
    _simulate(url, layers=args.layers, checkpoints=args.checkpoints, features=args.features, seed=0)
    print(f"wrote {url} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    # One GET per object, as dynatrain reads them (s3fs's default first asks each size).
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, max_concurrency=1)
    keys = fs.find(f"{bucket}/read/run.zarr")
    size = fs.du(f"{bucket}/read/run.zarr")

    def plain() -> None:
        fs.cat(keys)  # concurrent GETs of every object

    def listed() -> None:
        # The same, after listing the keys as zarr lists a store (one listing request).
        fs.cat(fs.find(f"{bucket}/read/run.zarr/", withdirs=False))

    def dynatrain() -> None:
        read_signals(url, reduce="mean")

    plain()
    listed()
    dynatrain()  # warm: imports, connection pools
    # Interleaved (the load of other jobs falls on all three alike): medians, and each
    # ratio's median over the rounds. CPU time, of this process and of the server, is
    # summed over the rounds: what the load of other jobs does not change.
    names = ("plain", "listed", "dynatrain")
    timings: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    server_cpu: dict[str, float | None] = dict.fromkeys(names, 0.0)
    for _ in range(args.repeat):
        for name, function in zip(names, (plain, listed, dynatrain), strict=True):
            server_before = _cpu_seconds(server_pid)
            cpu_before, start = time.process_time(), time.perf_counter()
            function()
            timings[name].append(time.perf_counter() - start)
            cpu[name] += time.process_time() - cpu_before
            server_after = _cpu_seconds(server_pid)
            used = server_cpu[name]
            if used is None or server_before is None or server_after is None:
                server_cpu[name] = None
            else:
                server_cpu[name] = used + server_after - server_before
    t_plain, t_listed, t_read = (statistics.median(timings[name]) for name in names)
    ratios = [p / d for p, d in zip(timings["plain"], timings["dynatrain"], strict=True)]
    listed_ratios = [p / d for p, d in zip(timings["listed"], timings["dynatrain"], strict=True)]
    print(
        f"\nread signals: {args.layers} layers x {args.checkpoints} checkpoints x"
        f" {args.features} float32, {len(keys)} objects, {size / 2**20:.1f} MiB"
        f" (medians of {args.repeat}, interleaved; CPU: client + server, per read)"
    )
    for name, what, seconds in zip(
        names,
        ("plain concurrent fs.cat", "listing, then fs.cat", "dynatrain read_signals"),
        (t_plain, t_listed, t_read),
        strict=True,
    ):
        used = server_cpu[name]
        server = "?" if used is None else f"{used / args.repeat * 1e3:.0f}"
        print(
            f"  {what:28s} {seconds:7.3f} s  {size / 2**20 / seconds:7.1f} MiB/s"
            f"   CPU {cpu[name] / args.repeat * 1e3:.0f} + {server} ms"
        )
    print(
        f"  ratio plain / dynatrain      {statistics.median(ratios):7.2f}   (target >= 0.8;"
        f" rounds: {min(ratios):.2f} to {max(ratios):.2f})"
    )
    print(f"  ratio listing+cat / dynatrain {statistics.median(listed_ratios):6.2f}")


def bench_append(args: argparse.Namespace, bucket: str) -> None:
    import numpy as np
    import s3fs

    from dynatrain import ArchiveWriter

    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    rows = {f"layer{i}": np.ones(args.features, np.float32) for i in range(min(args.layers, 10))}
    n = args.appends
    url = f"s3://{bucket}/append/run.zarr"
    timings: list[float] = []

    def appends() -> None:
        with ArchiveWriter(url, mode="w") as writer:
            writer.append(epoch=0, activations=rows, metrics={"loss": 1.0})  # not timed
            start = time.perf_counter()
            for t in range(n):
                writer.append(epoch=t + 1, activations=rows, metrics={"loss": 1.0})
            timings.append(time.perf_counter() - start)

    for _ in range(args.repeat):
        appends()
    t_append = min(timings) / n
    # The same uploads, plainly: each chunk's object (same sizes) concurrently, then
    # the root document.
    stored = fs.find(f"{bucket}/append/run.zarr", detail=True)
    chunks = {key: b"x" * info["size"] for key, info in stored.items() if "/c/" in key}
    root = fs.cat_file(f"{bucket}/append/run.zarr/zarr.json")
    plain_chunks = {key.replace("/run.zarr/", "/plain/"): data for key, data in chunks.items()}

    def plain() -> None:
        for _ in range(n):
            fs.pipe(plain_chunks)
            fs.pipe_file(f"{bucket}/append/plain/zarr.json", root)

    plain()
    t_plain = _best(plain, args.repeat) / n
    print(
        f"\nappend: {len(rows)} layers x {args.features} float32 and 1 metric, {n} appends"
        f" ({len(chunks)} chunk objects, {sum(map(len, chunks.values())) / 1024:.0f} KiB)"
    )
    print(f"  plain: chunks, then the root  {t_plain * 1e3:6.1f} ms")
    print(f"  ArchiveWriter.append          {t_append * 1e3:6.1f} ms")
    print(f"  ratio plain / append          {t_plain / t_append:6.2f}")


def _cli(*args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "dynatrain.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"dynatrain {' '.join(args)} failed:\n{result.stderr}")
    return elapsed


def bench_sweep(args: argparse.Namespace, bucket: str) -> None:
    local = Path(tempfile.mkdtemp(prefix="dynatrain-bench-"))
    try:
        start = time.perf_counter()
        for i in range(args.runs):
            name = f"lr{i % 4}-seed{i}.zarr"
            for where in (f"s3://{bucket}/sweep/{name}", str(local / "sweep" / name)):
                _simulate(where, layers=6, checkpoints=100, features=16, seed=i)
        print(f"wrote 2 x {args.runs} runs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        report = local / "reports"
        timings = {
            "local disk, --jobs 2": _cli(
                "batch", str(local / "sweep"), "--jobs", "2", "-o", str(report / "a")
            ),
            "bucket, --jobs 2": _cli(
                "batch", f"s3://{bucket}/sweep/", "--jobs", "2", "-o", str(report / "b")
            ),
            "bucket, dask (2 workers)": _cli(
                "batch",
                f"s3://{bucket}/sweep/",
                "--scheduler",
                "dask",
                "--jobs",
                "2",
                "-o",
                str(report / "c"),
            ),
        }
    finally:
        shutil.rmtree(local, ignore_errors=True)
    print(f"\nsweep of {args.runs} runs (6 layers x 100 checkpoints), batch -o, default settings")
    base = timings["local disk, --jobs 2"]
    for what, seconds in timings.items():
        print(f"  {what:28s} {seconds:7.1f} s   {seconds / base:5.2f}x local disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--checkpoints", type=int, default=2000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--appends", type=int, default=100)
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    with S3Server() as server:
        os.environ.update(server.environment())
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True).mkdir("bench")
        bench_read(args, "bench", server.process.pid)
        bench_append(args, "bench")
        if not args.skip_sweep:
            bench_sweep(args, "bench")


if __name__ == "__main__":
    main()
