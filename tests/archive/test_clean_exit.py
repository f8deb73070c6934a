"""A bad Zarr chunk, seen from a real process: exit code 2 and one line, nothing after it.

The CLI tests elsewhere run in-process (click's CliRunner), where the interpreter
does not exit: what happens at exit cannot be seen there. zarr reads the chunks of a
block in concurrent tasks; when one fails, the others used to be left running and
were destroyed at interpreter exit, printing up to hundreds of lines of asyncio
noise ("Task was destroyed but it is pending!", tracebacks) after the one-line error,
in some runs and not others. Hence a real subprocess, several times per command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from plain_archives import write_plain_archive

#: Runs per command: the noise came in about half the runs of an archive like this one.
REPEATS = 4


def dynatrain_command() -> list[str]:
    """The installed console script, else the module (same code, same exit path)."""
    script = Path(sys.executable).with_name("dynatrain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dynatrain.cli"]


def run_dynatrain(*args: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DYNATRAIN_DEBUG"}
    return subprocess.run(
        [*dynatrain_command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def corrupt_zarr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One layer of 200 one-checkpoint chunks (one block), the first chunk garbage."""
    rng = np.random.default_rng(3)
    path = write_plain_archive(
        tmp_path_factory.mktemp("clean-exit") / "bad.zarr",
        layers={"a": rng.normal(size=(200, 32, 64)).astype(np.float32)},
    )
    (path / "layers" / "a" / "activations" / "c" / "0" / "0" / "0").write_bytes(b"\x00junk" * 5)
    return path


@pytest.mark.parametrize("command", ["signals", "analyze"])
def test_corrupt_chunk_gives_one_line_and_nothing_else(corrupt_zarr, command):
    for _ in range(REPEATS):
        result = run_dynatrain(command, corrupt_zarr, "--format", "json")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr[:3000]
        assert str(corrupt_zarr) in lines[0]
        assert "corrupt" in lines[0]
        assert result.stdout == ""


def test_validate_corrupt_chunk_gives_one_line_and_nothing_else(corrupt_zarr):
    """``validate`` reports problems on stdout (one line each); stderr stays empty."""
    for _ in range(REPEATS):
        result = run_dynatrain("validate", corrupt_zarr)
        assert result.returncode == 2, result.stderr
        assert result.stderr == "", result.stderr[:3000]
        lines = result.stdout.splitlines()
        assert len(lines) == 1, result.stdout
        assert lines[0].startswith(f"invalid {corrupt_zarr}")
        assert "corrupt" in lines[0]
