"""Replay a finished archive checkpoint by checkpoint into a new one, as a training job would.

Used by the watch tests, in-process (:func:`replay`, a generator that yields after each
append) and as a separate writer process::

    python tests/replay_writer.py SOURCE DEST [--rate 20] [--hang-after N] [--zarr-chunk 4]

``--hang-after N`` stops appending after N checkpoints and waits, holding the archive
open, until the process is killed (a writer killed mid-run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dynatrain.archive.reader import open_archive
from dynatrain.archive.writer import ArchiveWriter


def load(source: Path) -> dict:
    """Everything a replay needs from a finished archive, in memory."""
    with open_archive(source) as archive:
        activations = {}
        for name in archive.layer_names:
            rows = [block.values for block in archive.iter_activations(name, read_ahead=False)]
            shape = (archive.n_checkpoints, *archive.layers[name].sample_shape)
            activations[name] = np.concatenate(rows).reshape(shape)
        metadata = {
            key: value
            for key, value in archive.metadata.items()
            if isinstance(value, (str, int, float, bool))
        }
        return {
            "epochs": archive.epochs.copy(),
            "activations": activations,
            "metrics": {name: archive.metric(name) for name in archive.metric_names},
            "metadata": metadata,
        }


def replay(
    source: Path | dict,
    dest: Path,
    *,
    expected: bool = True,
    stop_after: int | None = None,
    **writer_options,
) -> Iterator[int]:
    """Append the source's checkpoints to ``dest`` one at a time; yield after each.

    ``expected``: store ``expected_checkpoints`` (the source's length), as a job that
    knows its number of epochs does.
    """
    run = load(source) if not isinstance(source, dict) else source
    n = len(run["epochs"])
    options = {"expected_checkpoints": n} if expected else {}
    # The source's own announcement (the sample runs have one) is the one given here.
    metadata = {k: v for k, v in run["metadata"].items() if k != "expected_checkpoints"}
    with ArchiveWriter(dest, metadata, **options, **writer_options) as writer:
        for t in range(n if stop_after is None else stop_after):
            writer.append(
                epoch=float(run["epochs"][t]),
                activations={name: values[t] for name, values in run["activations"].items()},
                metrics={name: float(values[t]) for name, values in run["metrics"].items()},
            )
            yield t


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--rate", type=float, default=None, help="checkpoints per second")
    parser.add_argument("--hang-after", type=int, default=None)
    parser.add_argument("--no-expected", action="store_true")
    args = parser.parse_args(argv)
    run = load(args.source)
    period = None if args.rate is None else 1.0 / args.rate
    start = time.monotonic()
    writer = replay(run, args.dest, expected=not args.no_expected)
    for t in writer:
        print(t, flush=True)  # the test reads how far the writer got
        if args.hang_after is not None and t + 1 == args.hang_after:
            time.sleep(3600)  # holding the archive open, until killed
        if period is not None:
            time.sleep(max(0.0, start + (t + 1) * period - time.monotonic()))
    sys.exit(0)


if __name__ == "__main__":
    main()
