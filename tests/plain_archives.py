"""Archives written the way the format describes them, and a check that one is untouched.

Imported by test modules as ``from plain_archives import ...`` (``tests/`` is on the
import path): a module of its own, not ``conftest``, whose name other test folders'
``conftest.py`` files would shadow when they run in the same session.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = {"format": "dynatrain-activations", "format_version": 1}


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
