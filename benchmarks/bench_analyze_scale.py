"""Benchmark: `dynatrain analyze` as checkpoints and layers grow (linear cost, bounded memory).

Run from the repository root::

    python benchmarks/bench_analyze_scale.py            # every size below
    python benchmarks/bench_analyze_scale.py --quick    # the small ones only
    python benchmarks/bench_analyze_scale.py --live-only   # the live monitor's update cost
    python benchmarks/bench_analyze_scale.py --sizes 50x1000,500x1000 --no-live
    python benchmarks/bench_analyze_scale.py --threads 1   # one thread only

Each archive is written directly with h5py in the format of version 1 (activations of
2 values per layer and checkpoint, float32: a learning-like transition shared by the
layers plus independent random walks, and a saturating ``val_accuracy``); reading is not
what is measured here.  Every size runs ``dynatrain analyze RUN --format json`` with the
default settings (199 surrogates, the default window and window step, the causal
convergence rule with its surrogate null) in a fresh process, which reports its wall time,
the time of the analysis alone (after the imports) and its peak resident memory.  Each
size runs twice, with ``--threads 1`` and with the default (the cores available), and
the ratio of the two analysis times is printed (the outputs are the same bits).

Targets (issue "Scale with the number of checkpoints"):

* 50 layers: T = 10,000 within 12x the time of T = 1,000, in < 5 s and < 1 GB;
* 5 layers x T = 100,000 in < 20 s;
* 500 layers x T = 1,000 in < 10 s and < 1 GB;
* a shipped sample archive, 199 surrogates: < 1 s of analysis after start-up.

``--worst-case`` also times the convergence null at its most expensive: a run whose
convergence is significant and decided at its last window draws every one of its 99
surrogates, each a shuffled copy of the whole run through every window (the archives above
converge early or not significantly, so their nulls stop after a few surrogates).

``--floor`` times, alone and on one thread, the NumPy calls that the default analysis of
50 layers x 10,000 checkpoints cannot do without (the shuffles and one prefix sum per
shuffled series, the FFTs of the phase-randomised surrogates and of their Hilbert
transforms, the FFTs of the run's windows): a lower bound on its CPU time for any
implementation built from NumPy's FFT and random permutations.

Last, a live monitor is fed a 50-layer run of 10,000 checkpoints and the cost of one
update is printed (median, 99th percentile, maximum; the update that decides the
convergence, which runs its surrogate null, apart).

Ratios are measured in the same run; seconds depend on the machine and its load (on a
shared machine, the CPU column (the process and its children) is the steadier figure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "mlp-digits-seed1.h5"

#: (layers, checkpoints) measured; the first two give the 10x-checkpoints ratio.
SIZES = [(50, 1_000), (50, 10_000), (5, 100_000), (500, 1_000)]
QUICK_SIZES = [(50, 1_000), (5, 10_000)]

#: Runs `dynatrain analyze` in this process and reports on stderr (stdout is the JSON).
DRIVER = """
import json, resource, sys, time
start = time.perf_counter()
from dynatrain.cli import _single_threaded_blas, main
_single_threaded_blas()  # what `analyze` does before NumPy loads; the spy below loads it
from dynatrain import analysis
calls = []
real = analysis.analyze
def timed(*args, **kwargs):
    begin = time.perf_counter()
    result = real(*args, **kwargs)
    calls.append((time.perf_counter() - begin, result))
    return result
analysis.analyze = timed
try:
    main(["analyze", sys.argv[1], "--format", "json", *sys.argv[2:]], standalone_mode=False)
finally:
    seconds, result = calls[0]
    report = {
        "wall": time.perf_counter() - start,
        "cpu": sum(
            usage.ru_utime + usage.ru_stime
            for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        ),
        "analysis": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "window": result.settings["window"],
        "window_step": result.settings["window_step"],
        "windows": len(result.window_end_epoch),
        "converged": result.convergence_epoch,
        "decided": result.decided_epoch,
        "convergence_p": result.convergence_p,
        "convergence_surrogates_drawn": result.convergence_surrogates_drawn,
    }
    print(json.dumps(report), file=sys.stderr)
"""


def simulated_levels(n_layers: int, n_checkpoints: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Epochs ``(T,)`` and layer levels ``(T, L)``: a shared learning-like transition plus
    independent random walks."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_checkpoints, dtype=np.float64)
    learning = np.tanh(t / (n_checkpoints / 6))
    walks = 0.05 * rng.standard_normal((n_checkpoints, n_layers)).cumsum(axis=0)
    return t, rng.uniform(0.5, 2.0, n_layers) * learning[:, np.newaxis] + walks


def write_archive(path: Path, n_layers: int, n_checkpoints: int, seed: int = 0) -> None:
    """A valid version-1 HDF5 archive, written in one go with h5py."""
    import h5py

    t, levels = simulated_levels(n_layers, n_checkpoints, seed)
    names = [f"layer{i:03d}" for i in range(n_layers)]
    with h5py.File(path, "w", libver="latest") as archive:
        archive.attrs.update(
            {
                "format": "dynatrain-activations",
                "format_version": 1,
                "complete_checkpoints": n_checkpoints,
                "run_id": path.stem,
            }
        )
        archive.create_dataset("checkpoints/epoch", data=t)
        accuracy = 1 - 0.9 * np.exp(-t / (n_checkpoints / 8))
        archive.create_dataset("metrics/val_accuracy", data=accuracy)
        layers = archive.create_group("layers")
        layers.attrs["order"] = names
        chunk = (min(n_checkpoints, 4096), 1, 2)
        for i, name in enumerate(names):
            values = np.repeat(levels[:, i, np.newaxis], 2, axis=1)[:, np.newaxis, :]
            layers.create_dataset(
                f"{name}/activations", data=values.astype(np.float32), chunks=chunk
            )


def measure(path: Path, threads: int | None = None) -> dict:
    """Run the analysis in a fresh process (``--threads`` if given); its report."""
    extra = [] if threads is None else ["--threads", str(threads)]
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, str(path), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(process.stderr.strip().splitlines()[-1])


def measure_convergence_worst(n_layers: int, n_checkpoints: int, threads: list[int]) -> None:
    """Time the convergence null when it must draw all its surrogates over the whole run.

    The null of a run decided at its last window, with no early stop: what a run whose
    convergence is significant (fewer than ``convergence_null_stop`` surrogates as early)
    costs.  The signals are those of :func:`write_archive` after the default transform
    (changes between checkpoints), with the default window and step.
    """
    import time

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from dynatrain import defaults
    from dynatrain.measures import convergence_null, window_count
    from dynatrain.measures._parallel import threads as thread_pool

    _, levels = simulated_levels(n_layers, n_checkpoints, seed=0)
    changes = np.diff(levels, axis=0).T.copy()  # (layers, points), as analyze sees them
    n_points = changes.shape[1]
    window = defaults.default_window(n_points)
    step = defaults.default_window_step(n_points, window)
    last = window_count(n_points, window, step) - 1
    n_surrogates = defaults.CONVERGENCE_SURROGATES
    for n_threads in threads:
        with thread_pool(n_threads):
            start = time.perf_counter()
            cpu = time.process_time()
            convergence_null(
                changes,
                window=window,
                step=step,
                decided_window=last,
                n_surrogates=n_surrogates,
                rng=np.random.default_rng(1),
            )
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(
            f"convergence null, every surrogate drawn ({n_surrogates} x {n_layers} layers x"
            f" {n_points} points, window {window}, step {step}, {last + 1} windows),"
            f" {n_threads} thread(s): {wall:.1f} s wall, {cpu:.1f} s CPU,"
            f" {wall / n_surrogates:.2f} s per surrogate",
            flush=True,
        )


def measure_floor(n_layers: int, n_checkpoints: int) -> None:
    """CPU time of the NumPy calls the default analysis cannot avoid, each timed alone."""
    import time

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from dynatrain import defaults
    from dynatrain.measures import window_count
    from dynatrain.measures.kuramoto import edge_pads

    n_points = n_checkpoints - 1  # the default transform: changes between checkpoints
    n_surrogates = defaults.SURROGATES
    rng = np.random.default_rng(0)
    rows = 6  # series per call, as the nulls batch them (about 0.5 MiB)
    batch = rng.standard_normal((rows, n_points))
    calls = n_surrogates * n_layers / rows

    def seconds(function, repeat: int = 30) -> float:
        function()
        start = time.process_time()
        for _ in range(repeat):
            function()
        return (time.process_time() - start) / repeat

    spectrum = np.fft.rfft(batch)
    extended = sum(edge_pads(n_points)) + n_points
    padded = np.zeros((rows, extended))
    window = defaults.default_window(n_points)
    n_windows = window_count(n_points, window, defaults.default_window_step(n_points, window))
    window_extended = sum(edge_pads(window)) + window
    windows = np.zeros((n_layers, window_extended))
    parts = {
        "shuffles": calls * seconds(lambda: rng.permuted(batch, axis=-1, out=batch)),
        "profiles of the shuffles": calls * seconds(lambda: np.cumsum(batch, axis=-1)),
        "phase surrogates' inverse FFTs": calls * seconds(lambda: np.fft.irfft(spectrum, n_points)),
        "their Hilbert FFT pairs": calls
        * seconds(lambda: np.fft.irfft(np.fft.rfft(padded), extended)),
        "the run's windows' FFT pairs": n_windows
        * seconds(lambda: np.fft.irfft(np.fft.rfft(windows), window_extended), 10),
    }
    per_windowed_pass = parts["the run's windows' FFT pairs"]
    print(
        f"floor of the default analysis of {n_layers} x {n_checkpoints:,} ({n_points} points,"
        f" {n_surrogates} surrogates, {n_windows} windows of {window}), one thread: "
        + ", ".join(f"{name} {value:.2f} s" for name, value in parts.items())
        + f"; {sum(parts.values()):.2f} s CPU in all (a convergence null that draws all"
        f" {defaults.CONVERGENCE_SURROGATES} surrogates over the whole run adds"
        f" {defaults.CONVERGENCE_SURROGATES} x {per_windowed_pass:.2f} s)",
        flush=True,
    )


def measure_live(n_layers: int, n_checkpoints: int) -> None:
    """Feed a run to a live monitor; print the cost of one update (the watch target)."""
    import time

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from dynatrain.analysis import Settings
    from dynatrain.live import Monitor

    t, levels = simulated_levels(n_layers, n_checkpoints, seed=1)
    monitor = Monitor(
        [f"layer{i}" for i in range(n_layers)],
        Settings(),
        expected_checkpoints=n_checkpoints,
    )
    seconds, decided_at = [], None
    for k in range(n_checkpoints):
        start = time.perf_counter()
        status = monitor.update(t[k], levels[k])
        seconds.append(time.perf_counter() - start)
        if decided_at is None and status["convergence"]["decided_epoch"] is not None:
            decided_at = k
    seconds = np.array(seconds)
    tail = seconds[n_checkpoints // 2 :]  # the second half: long history, every kind of update
    if decided_at is not None and decided_at >= n_checkpoints // 2:
        tail = np.delete(tail, decided_at - n_checkpoints // 2)
    print(
        f"\nlive monitor, {n_layers} layers x {n_checkpoints} checkpoints (window"
        f" {monitor.plan.window}, step {monitor.plan.step}), one update over the second half:"
        f" median {1e3 * np.median(tail):.2f} ms, mean {1e3 * tail.mean():.2f} ms,"
        f" 99th percentile {1e3 * np.quantile(tail, 0.99):.1f} ms, max {1e3 * tail.max():.0f} ms"
        " (target < 20 ms per checkpoint at T = 10,000)"
    )
    if decided_at is not None:
        print(
            f"  the update that decided the convergence (checkpoint {decided_at}, with its"
            f" surrogate null): {seconds[decided_at]:.2f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small sizes")
    parser.add_argument(
        "--live-only", action="store_true", help="only the live monitor's update cost"
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="only these LAYERSxCHECKPOINTS sizes, comma-separated (e.g. 50x1000,500x1000)",
    )
    parser.add_argument("--no-live", action="store_true", help="skip the live monitor's cost")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the NumPy calls the analysis of 50 x 10,000 cannot avoid",
    )
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="also time the convergence null drawing all its surrogates over 50 x 10,000"
        " (several minutes)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="analyze --threads (default: each size twice, with 1 and with the default,"
        " the cores available)",
    )
    args = parser.parse_args(argv)
    if args.live_only:
        measure_live(50, 2_000 if args.quick else 10_000)
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    from dynatrain.defaults import default_threads

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(
        f"{'layers':>6} {'T':>8} {'window':>7} {'step':>5} {'windows':>7} {'threads':>7}"
        f" {'wall s':>7} {'CPU s':>7} {'analysis s':>10} {'peak MiB':>9}"
        "  convergence (epoch, decided, p, drawn)"
    )
    # The default (what a user gets) last, so that `reports` holds it; one thread first,
    # in the same run, for the ratio.
    runs = [args.threads] if args.threads else [1, default_threads()]
    reports, single = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for n_layers, n_checkpoints in sizes:
            path = Path(folder) / f"run-{n_layers}x{n_checkpoints}.h5"
            write_archive(path, n_layers, n_checkpoints)
            for threads in dict.fromkeys(runs):
                report = reports[(n_layers, n_checkpoints)] = measure(path, threads)
                if threads == 1:
                    single[(n_layers, n_checkpoints)] = report
                print(
                    f"{n_layers:>6} {n_checkpoints:>8} {report['window']:>7}"
                    f" {report['window_step']:>5} {report['windows']:>7} {threads:>7}"
                    f" {report['wall']:>7.2f} {report['cpu']:>7.2f} {report['analysis']:>10.2f}"
                    f" {report['peak_rss_mib']:>9.0f}  "
                    f"{report['converged']}, {report['decided']}, {report['convergence_p']},"
                    f" {report['convergence_surrogates_drawn']}",
                    flush=True,
                )
            path.unlink()
    for size, report in reports.items():
        if size in single and report is not single[size]:
            print(
                f"{size[0]} x {size[1]:,}: {runs[-1]} threads take"
                f" {report['analysis'] / single[size]['analysis']:.2f}x the analysis time of one"
            )
    sample = measure(SAMPLE)
    print(
        f"\nsample archive {SAMPLE.name}: analysis {sample['analysis']:.3f} s after start-up"
        f" (target < 1 s), wall {sample['wall']:.2f} s, CPU {sample['cpu']:.2f} s,"
        f" peak {sample['peak_rss_mib']:.0f} MiB"
    )
    if (50, 1_000) in reports and (50, 10_000) in reports:
        small, large = reports[(50, 1_000)], reports[(50, 10_000)]
        print(
            f"50 layers, T = 10,000 against T = 1,000: {large['analysis'] / small['analysis']:.1f}x"
            f" the analysis time (target <= 12x), {large['wall']:.1f} s wall (target < 5 s),"
            f" {large['cpu']:.1f} s CPU,"
            f" {large['peak_rss_mib']:.0f} MiB (target < 1024)"
        )
    if (5, 100_000) in reports:
        deep = reports[(5, 100_000)]
        print(
            f"5 layers x T = 100,000: {deep['wall']:.1f} s wall (target < 20 s),"
            f" {deep['cpu']:.1f} s CPU"
        )
    if (500, 1_000) in reports:
        wide = reports[(500, 1_000)]
        print(
            f"500 layers x T = 1,000: {wide['wall']:.1f} s wall (target < 10 s),"
            f" {wide['cpu']:.1f} s CPU,"
            f" {wide['peak_rss_mib']:.0f} MiB (target < 1024)"
        )
    if args.floor:
        measure_floor(50, 10_000)
    if args.worst_case:
        measure_convergence_worst(50, 10_000, runs)
    if not args.no_live:
        measure_live(50, 2_000 if args.quick else 10_000)
    return 0


def _sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [
            (int(layers), int(checkpoints))
            for layers, checkpoints in (item.lower().split("x") for item in text.split(","))
        ]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 50x1000,500x1000, got {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
