"""``dynatrain watch`` on a run being written: latency and per-checkpoint cost.

Two measurements, 50 layers (16 probe samples x 8 features, float32, HDF5):

1. **Latency**: a writer process appends at 20 checkpoints a second and stamps the
   moment each ``append`` returns; ``dynatrain watch --format jsonl`` follows it in
   another process, and this script stamps the moment each checkpoint's JSON line
   arrives. Target: every event < 1 s after its append returned.
2. **Cost at T = 10,000**: the run is first written and followed to 10,000
   checkpoints, then new checkpoints are appended and polled in this process, one per
   poll and five per poll (what the default ``--interval`` of 0.25 s sees at 20 a
   second); a poll's time (read the new rows, update the monitor, build the events)
   over its checkpoints is the per-checkpoint update cost. Target < 20 ms. The run-level
   integration and metastability are refreshed only when the run has grown by an
   eighth: that refresh is timed apart, its cost spread over the checkpoints between
   two refreshes.

Both clocks are ``time.monotonic`` (system-wide on Linux). Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_watch.py [--latency-checkpoints 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from dynatrain.analysis import Settings
from dynatrain.archive.writer import ArchiveWriter
from dynatrain.watch import RunFollower

N_LAYERS = 50
SHAPE = (16, 8)
RATE = 20.0


def activations(t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A drifting, noisy checkpoint for every layer."""
    drift = np.tanh(t / 500.0)
    return {
        f"layer{i:02d}": (drift * (i + 1) + rng.standard_normal(SHAPE)).astype(np.float32)
        for i in range(N_LAYERS)
    }


def writer_process(path: str, n: int, rate: float) -> None:
    """Append `n` checkpoints at `rate` a second; print each append's return time."""
    rng = np.random.default_rng(0)
    period = 1.0 / rate
    with ArchiveWriter(path, expected_checkpoints=n) as writer:
        start = time.monotonic()
        for t in range(n):
            writer.append(epoch=t, activations=activations(t, rng), metrics={"val_accuracy": 0.5})
            print(t, time.monotonic(), flush=True)
            time.sleep(max(0.0, start + (t + 1) * period - time.monotonic()))


def latency(n: int, folder: Path) -> np.ndarray:
    """Seconds from each append's return to its event's line, one per checkpoint."""
    path = folder / "latency.h5"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    writer = subprocess.Popen(
        [sys.executable, __file__, "--writer", str(path), str(n)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    appended: dict[int, float] = {}

    def read_writer() -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            index, stamp = line.split()
            appended[int(index)] = float(stamp)

    reader = threading.Thread(target=read_writer)
    reader.start()
    while not (path.exists() or Path(f"{path}.incomplete").exists()):
        time.sleep(0.01)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynatrain.cli",
            "watch",
            str(path),
            "--until",
            "complete",
            "--interval",
            "0.05",
            "--surrogates",
            "19",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: dict[int, float] = {}
    assert watcher.stdout is not None
    for line in watcher.stdout:
        arrived = time.monotonic()
        event = json.loads(line)
        if event["event"] == "checkpoint":
            seen[event["checkpoint"]] = arrived
    watcher.wait()
    writer.wait()
    reader.join()
    return np.array([seen[t] - appended[t] for t in sorted(seen)])


def update_cost(
    n_before: int, n_timed: int, batch: int, folder: Path
) -> tuple[np.ndarray, float, int]:
    """Per-checkpoint cost of polls after `n_before` checkpoints, `batch` new ones per poll.

    Returns the cost of each checkpoint (a poll's time over its checkpoints), the time of
    one refresh of the running measures at this length, and the window step.
    """
    path = folder / f"cost-{batch}.h5"
    rng = np.random.default_rng(1)
    total = n_before + n_timed
    costs = []
    with ArchiveWriter(path, expected_checkpoints=total) as writer:
        for t in range(n_before):
            writer.append(epoch=t, activations=activations(t, rng), metrics={"val_accuracy": 0.5})
        follower = RunFollower(path, Settings(surrogates=19))
        for _ in follower.poll():  # the first ones in one go (not timed)
            pass
        for t0 in range(n_before, total, batch):
            for t in range(t0, min(t0 + batch, total)):
                writer.append(
                    epoch=t, activations=activations(t, rng), metrics={"val_accuracy": 0.5}
                )
            start = time.perf_counter()
            events = list(follower.poll())
            costs += [(time.perf_counter() - start) / len(events)] * len(events)
    monitor = follower.monitor
    assert monitor is not None
    start = time.perf_counter()
    monitor._refresh_running(monitor._points.size)  # what a refresh costs at this length
    refresh = time.perf_counter() - start
    follower.close()
    return np.array(costs), refresh, monitor.plan.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-checkpoints", type=int, default=200)
    parser.add_argument("--cost-checkpoints", type=int, default=10_000)
    parser.add_argument("--timed", type=int, default=120)
    parser.add_argument("--writer", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer_process(args.writer[0], int(args.writer[1]), RATE)
        return
    with tempfile.TemporaryDirectory() as folder:
        lags = latency(args.latency_checkpoints, Path(folder))
        print(
            f"latency, {N_LAYERS} layers at {RATE:g} checkpoints/s, {len(lags)} events: median"
            f" {1e3 * np.median(lags):.0f} ms, p95 {1e3 * np.percentile(lags, 95):.0f} ms, max"
            f" {1e3 * lags.max():.0f} ms (target < 1000 ms)"
        )
        n = args.cost_checkpoints
        for batch in (1, 5):
            times, refresh, step = update_cost(n, args.timed, batch, Path(folder))
            print(
                f"update cost at T = {n:,}, {N_LAYERS} layers, {batch} new checkpoint(s) per"
                f" poll, {len(times)} checkpoints: per checkpoint median"
                f" {1e3 * np.median(times):.1f} ms, mean {1e3 * times.mean():.1f} ms, max"
                f" {1e3 * times.max():.1f} ms (a new window every {step} checkpoints;"
                " target < 20 ms)"
            )
        spread = refresh / max(1, n // 8)
        print(
            f"running integration/metastability refresh at T = {n:,}: {1e3 * refresh:.0f} ms,"
            f" once per {n // 8:,} checkpoints = {1e3 * spread:.2f} ms per checkpoint"
        )


if __name__ == "__main__":
    main()
