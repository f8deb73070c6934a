"""A writer killed with SIGKILL at a random moment loses no checkpoint whose
``append()`` returned: every one of them reads back exactly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dynatrain import open_archive

WRITER = r"""
import sys
import numpy as np
from dynatrain import ArchiveWriter

path = sys.argv[1]
with ArchiveWriter(path, metadata={"run_id": "crash"}) as writer:
    print("ready", flush=True)
    for t in range(100_000):
        writer.append(
            epoch=0.5 * t,
            activations={"big": np.full((64, 32, 8), t, dtype=np.float32),
                         "small": np.full((64, 10), -t, dtype=np.float16)},
            metrics={"val_accuracy": t / 1000},
            step=10 * t,
        )
        print(t, flush=True)
"""

KILLS_PER_BACKEND = 12


def check_archive(path, last_returned):
    if last_returned < 0 and not path.exists():
        return 0  # killed before the first append returned: nothing was promised
    with open_archive(path) as archive:
        n = archive.n_checkpoints
        assert n >= last_returned + 1
        if n == 0:  # killed inside the first append: nothing to read, and no error
            assert archive.layer_names == ()
            return n
        np.testing.assert_array_equal(archive.epochs, 0.5 * np.arange(n))
        np.testing.assert_array_equal(archive.steps, 10 * np.arange(n))
        np.testing.assert_array_equal(archive.metric("val_accuracy"), np.arange(n) / 1000)
        for layer, sign in (("big", 1), ("small", -1)):
            for block in archive.iter_activations(layer):
                # As the layer's dtype stores them (float16 is exact only up to 2048:
                # a fast writer gets past it before the kill).
                expected = (sign * np.arange(block.start, block.stop)[:, None]).astype(
                    block.values.dtype
                )
                np.testing.assert_array_equal(
                    block.values, np.broadcast_to(expected, block.values.shape)
                )
    return n


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_sigkill_at_random_moments_loses_no_returned_checkpoint(tmp_path, suffix):
    rng = np.random.default_rng(2026)
    for attempt in range(KILLS_PER_BACKEND):
        path = tmp_path / f"run{attempt}{suffix}"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4) if attempt else 0.0)  # the first: inside append #1
        child.send_signal(signal.SIGKILL)
        output, _ = child.communicate()
        returned = [int(line) for line in output.split()]
        last = returned[-1] if returned else -1
        check_archive(path, last)


#: A writer of small checkpoints (fast appends), printing each returned index; its
#: layer crosses the arrays' growth (1,024 -> 2,048 -> 4,096 rows) and many chunks.
SOAK_WRITER = r"""
import sys
import numpy as np
from dynatrain import ArchiveWriter

path = sys.argv[1]
with ArchiveWriter(path, metadata={"run_id": "soak"}) as writer:
    print("ready", flush=True)
    for t in range(1_000_000):
        writer.append(
            epoch=t + 1,
            activations={"a": np.full((4, 16), t, np.float32),
                         "b": np.full((3,), -t, np.float64)},
            signals={"b": 0.25 * t},
            metrics={"val/acc": t / 7, "loss": -t},
            step=t,
        )
        print(t, flush=True)
"""

#: Kills per back end, each at a random moment after at least this many appends.
SOAK_KILLS = 3
SOAK_MIN_CHECKPOINTS = 1_500
SOAK_MAX_CHECKPOINTS = 4_500


def check_soak_archive(path, last_returned):
    with open_archive(path) as archive:
        n = archive.n_checkpoints
        assert n >= last_returned + 1
        t = np.arange(n)
        np.testing.assert_array_equal(archive.epochs, t + 1)
        np.testing.assert_array_equal(archive.steps, t)
        np.testing.assert_array_equal(archive.metric("val/acc"), t / 7)
        np.testing.assert_array_equal(archive.metric("loss"), -t)
        np.testing.assert_array_equal(archive.signal("b"), 0.25 * t)
        for layer, sign in (("a", 1), ("b", -1)):
            values = np.concatenate([block.values for block in archive.iter_activations(layer)])
            np.testing.assert_array_equal(values, np.broadcast_to(sign * t[:, None], values.shape))
    return n


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_soak_sigkill_after_thousands_of_checkpoints(tmp_path, suffix):
    """Killed after 1,500 to 4,500 appends, at a random moment of the current one."""
    rng = np.random.default_rng(17)
    for attempt in range(SOAK_KILLS):
        path = tmp_path / f"soak{attempt}{suffix}"
        target = int(rng.integers(SOAK_MIN_CHECKPOINTS, SOAK_MAX_CHECKPOINTS))
        child = subprocess.Popen(
            [sys.executable, "-c", SOAK_WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        returned = -1
        while returned < target:
            returned = int(child.stdout.readline())
        time.sleep(rng.uniform(0.0, 0.003))  # inside one of the next appends
        child.send_signal(signal.SIGKILL)
        output, _ = child.communicate()
        last = int(output.split()[-1]) if output.split() else returned
        assert check_soak_archive(path, last) >= target
