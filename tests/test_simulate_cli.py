"""`dynatrain simulate`: what it writes, its help, and the places it cannot write to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from dynatrain import open_archive
from dynatrain.cli import simulate
from dynatrain.signals import read_signals
from dynatrain.simulate import simulate_run, write_run


def dynatrain_command() -> list[str]:
    script = Path(sys.executable).with_name("dynatrain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dynatrain.cli"]


def refused(result, *needles: str) -> str:
    """Exit 2 and exactly one line on stderr holding every needle."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dynatrain: error: ") and "internal error" not in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_write_run_plants_the_signals_as_activation_means(tmp_path, suffix, dtype):
    """The mean of each layer's activations is the planted signal (written in blocks)."""
    run = simulate_run("hurst", n_layers=4, n_checkpoints=300, seed=5)
    path = tmp_path / f"run{suffix}"
    write_run(path, run, samples=3, features=5, dtype=dtype, seed=5)
    signals = read_signals(path)
    tolerance = 1e-12 if dtype == "float64" else 1e-5 * (1 + np.abs(run.signals).max())
    np.testing.assert_allclose(signals.values, run.signals, rtol=0, atol=tolerance)
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 300
        assert archive.metadata["expected_checkpoints"] == 300
        np.testing.assert_array_equal(archive.epochs, run.epochs)
        np.testing.assert_array_equal(archive.metric("val_accuracy"), run.metrics["val_accuracy"])
        first = next(archive.iter_activations("layer0")).values
        assert first.shape[1] == 15 and first.dtype == np.dtype(dtype)
        assert np.std(first[0]) > 0.1  # noise around the mean, not a constant


def test_help_is_readable_and_every_option_is_explained(cli):
    result = cli("simulate", "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert "\\b" not in text and "\b" not in text
    assert "see below" not in text and "described above" in text
    # The kinds are listed one per line, as written (not rewrapped into a paragraph).
    assert "\n    training     drift then settle" in text
    assert "\n    hurst        each layer's change" in text
    for parameter in simulate.params:
        if isinstance(parameter, click.Option):
            assert parameter.help, f"{parameter.opts} has no help text"


def test_missing_folders_are_created(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in ("sim/train.h5", "sim/deeper/train.zarr"):
        result = cli("simulate", out, "--checkpoints", "20", "--layers", "3")
        assert result.exit_code == 0, result.stderr
        with open_archive(out) as archive:
            assert archive.n_checkpoints == 20 and len(archive.layer_names) == 3


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_an_existing_archive_names_the_force_option(cli, tmp_path, suffix):
    out = tmp_path / f"sim{suffix}"
    assert cli("simulate", out, "--checkpoints", "20").exit_code == 0
    line = refused(cli("simulate", out), f"{out}: already exists", "--force")
    assert "mode=" not in line
    assert cli("simulate", out, "--checkpoints", "30", "--force").exit_code == 0
    with open_archive(out) as archive:
        assert archive.n_checkpoints == 30


def test_unwritable_places_are_one_line(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    refused(cli("simulate", tmp_path / "notes.txt" / "sim.h5"), "is not a folder")
    refused(cli("simulate", tmp_path / "sim.txt"), "cannot tell the back end from the suffix")
    refused(cli("simulate", "/proc/dynatrain-sim.h5"), "cannot create the archive")
    negative_seed = cli("simulate", tmp_path / "s.h5", "--seed", "-1")  # a usage error
    assert negative_seed.exit_code == 2 and "-1 is not in the range x>=0" in negative_seed.stderr


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_a_read_only_file_system_is_one_line(tmp_path, suffix):
    """The real command, on a read-only tmpfs mounted in a private mount namespace."""
    unshare = shutil.which("unshare")
    mount = tmp_path / "ro"
    mount.mkdir()
    probe = [unshare or "unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {mount}"]
    if unshare is None or subprocess.run(probe, capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a private read-only tmpfs here")
    out = mount / "runs" / f"sim{suffix}"
    script = 'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"'
    env = {k: v for k, v in os.environ.items() if k != "DYNATRAIN_DEBUG"}
    result = subprocess.run(
        [unshare, "-rm", "sh", "-c", script, "sh", mount, *dynatrain_command(), "simulate", out],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"dynatrain: error: {out}: cannot create its folder {out.parent} (read-only file system)"
    )
