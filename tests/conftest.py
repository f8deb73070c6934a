"""Shared fixtures: small archives built in a temporary directory.

``plain_archive`` writes archives with raw h5py / zarr calls that follow the format
description (not with ``ArchiveWriter``), so the reader is tested against the
format itself; tests then break them on purpose.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

FORMAT = {"format": "dynatrain-activations", "format_version": 1}

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


def write_plain_archive(
    path: Path,
    *,
    layers: dict[str, np.ndarray] | None = None,
    signals: dict[str, np.ndarray] | None = None,
    epochs: np.ndarray | None = None,
    steps: np.ndarray | None = None,
    metrics: dict[str, np.ndarray] | None = None,
    attrs: dict[str, Any] | None = None,
    order: list[str] | None = None,
    zarr_format: int = 3,
) -> Path:
    """Write an archive the way the format describes it, with h5py or zarr directly."""
    layers = {} if layers is None else layers
    signals = {} if signals is None else signals
    n = len(next(iter(layers.values()))) if layers else len(next(iter(signals.values())))
    epochs = np.arange(1.0, n + 1) if epochs is None else epochs
    root_attrs = {**FORMAT, "run_id": path.stem, **(attrs or {})}
    order = list(dict.fromkeys([*layers, *signals])) if order is None else order
    arrays: dict[str, np.ndarray] = {"checkpoints/epoch": np.asarray(epochs, dtype=np.float64)}
    if steps is not None:
        arrays["checkpoints/step"] = np.asarray(steps, dtype=np.int64)
    for name, values in layers.items():
        arrays[f"layers/{name}/activations"] = values
    for name, values in signals.items():
        arrays[f"layers/{name}/signal"] = np.asarray(values, dtype=np.float64)
    for name, values in (metrics or {}).items():
        arrays[f"metrics/{name}"] = np.asarray(values, dtype=np.float64)

    if path.suffix == ".zarr":
        import zarr

        root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
        root.attrs.update(root_attrs)
        root.require_group("layers").attrs["order"] = order
        for key, values in arrays.items():
            chunks = (1, *values.shape[1:]) if values.ndim > 1 else (max(len(values), 1),)
            array = root.create_array(key, shape=values.shape, dtype=values.dtype, chunks=chunks)
            array[...] = values
    else:
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs.update(root_attrs)
            f.require_group("layers").attrs["order"] = order
            for key, values in arrays.items():
                chunks = (1, *values.shape[1:]) if values.ndim > 1 and len(values) else None
                f.create_dataset(key, data=values, chunks=chunks)
    return path


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


def tree_digest(path: Path) -> str:
    """A hash of every file's path and bytes below ``path`` (or of one file)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(os.fsencode(file.relative_to(path.parent)))
        digest.update(file.read_bytes())
    return digest.hexdigest()


def tree_state(path: Path) -> dict[str, tuple[int, str]] | None:
    """Every file and directory below ``path`` (or the one file): modification time in
    nanoseconds, and for files the SHA-256 of the bytes; ``None`` if ``path`` is absent."""
    if not path.exists():
        return None
    entries = [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
    state = {}
    for entry in entries:
        stat = entry.lstat()
        digest = hashlib.sha256(entry.read_bytes()).hexdigest() if entry.is_file() else ""
        state[str(entry.relative_to(path.parent))] = (stat.st_mtime_ns, digest)
    return state


@contextmanager
def archive_untouched(path: Path | str) -> Iterator[None]:
    """Assert that the block leaves the archive at ``path`` exactly as it was.

    Same files and directories, same bytes, same modification times (a rewrite of
    identical bytes, or a file created and removed again in a Zarr directory, changes
    those). Use it around any command::

        with archive_untouched(path):
            result = cli("analyze", path)
    """
    path = Path(path)
    before = tree_state(path)
    yield
    after = tree_state(path)
    assert after == before, f"{path} was modified"


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
