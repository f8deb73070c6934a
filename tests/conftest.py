"""Shared fixtures: small archives built in a temporary directory.

``plain_archive`` writes archives with raw h5py / zarr calls that follow the format
description (not with ``ArchiveWriter``), so the reader is tested against the
format itself; tests then break them on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from plain_archives import write_plain_archive

#: Optional packages some tests need, and what is skipped without them.
OPTIONAL = {
    "torch": "the recorder tests (pip install -e '.[test,torch]')",
    "pandas": "the data-frame tests (pip install -e '.[test]')",
    "xarray": "the xarray test (pip install -e '.[test]')",
    "distributed": "the Dask tests (pip install -e '.[test]')",
}


def _missing_optional() -> dict[str, str]:
    import importlib.util

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # a module set to None in sys.modules
            return True

    return {name: what for name, what in OPTIONAL.items() if absent(name)}


def pytest_configure(config: pytest.Config) -> None:
    """In CI (DYNATRAIN_REQUIRE_TORCH=1) a missing torch stops the run instead of skipping."""
    if os.environ.get("DYNATRAIN_REQUIRE_TORCH") == "1" and "torch" in _missing_optional():
        raise pytest.UsageError("DYNATRAIN_REQUIRE_TORCH=1 but torch is not installed")


def pytest_report_header() -> list[str]:
    """Say at the top what will be skipped, and how to run it."""
    return [f"not installed: {name}: skipping {what}" for name, what in _missing_optional().items()]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """...and again at the end, where it is read."""
    for name, what in _missing_optional().items():
        terminalreporter.write_line(f"SKIPPED {what}: {name} is not installed", yellow=True)


@pytest.fixture
def plain_archive(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``plain_archive("run.h5", layers={...}, ...)`` -> path in tmp_path."""

    def make(name: str = "run.h5", **kwargs: Any) -> Path:
        return write_plain_archive(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def small_layers() -> dict[str, np.ndarray]:
    """Three layers, 30 checkpoints, a few probe samples and features, mixed dtypes."""
    rng = np.random.default_rng(7)
    return {
        "conv1": rng.normal(size=(30, 4, 3, 2, 2)).astype(np.float32),
        "conv2": rng.normal(size=(30, 4, 5)).astype(np.float16),
        "fc": rng.normal(size=(30, 4, 6)),
    }


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Run the CLI in-process: ``cli("inspect", path)`` -> click Result (stdout/stderr apart)."""
    from dynatrain.cli import main

    runner = CliRunner()

    def run(*args: Any, input: str | None = None) -> Any:
        return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def two_factor_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch report folder: 12 runs in 4 groups of 3 on two keys with long values.

    Integration is planted (H = 0.55 for one task, 0.9 for the other); 3 runs per group
    cannot reach p < 0.1, and half the pairs of groups differ in both keys.
    """
    from dynatrain.cli import main
    from dynatrain.simulate import simulate_run, write_run

    folder = tmp_path_factory.mktemp("two-factor")
    paths = []
    for task, hurst in (("easy-task-with-a-long-name", 0.55), ("hard-task-with-a-long-name", 0.9)):
        for model in ("convolutional", "multilayer-perceptron"):
            for seed in range(3):
                path = folder / f"{task[:4]}-{model[:4]}-{seed}.h5"
                run = simulate_run("hurst", n_layers=4, n_checkpoints=51, hurst=hurst, seed=seed)
                write_run(path, run, metadata={"task": task, "model": model}, samples=2)
                paths.append(str(path))
    report = folder / "report"
    options = ["--surrogates", "0", "-j", "1", "--group-by", "task,model", "-o", str(report)]
    result = CliRunner().invoke(main, ["batch", *paths, *options], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return report
