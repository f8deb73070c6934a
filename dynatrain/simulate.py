"""Synthetic activation archives with planted properties, for demos, tests and benchmarks.

Three kinds of run (``dynatrain simulate --kind ...``):

``hurst``
    Every layer's checkpoint-to-checkpoint change is independent fractional
    Gaussian noise of Hurst exponent H, so the default analysis (``--transform
    change``) should read integration ~ H (plus the small-sample bias of DFA).
``oscillators``
    The layers' changes oscillate and are phase-locked (synchrony ~ 1,
    metastability ~ 0), independent (synchrony ~ 1/sqrt(L)), or switch between
    the two in blocks (high metastability).
``training``
    A drift-then-settle run: a learning phase in which every layer follows one
    shared, decaying drift with persistent (H = 0.9) fluctuations, then a settled
    phase of small independent white noise; validation accuracy rises and
    plateaus. Integration and the stability index fall as the run settles.

Layer signals are turned into activations of shape ``(samples, features)`` whose
element mean is exactly the planted signal (zero-mean noise is added around it),
so ``--reduce mean`` recovers the plant up to floating-point rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynatrain.archive.writer import ArchiveWriter
from dynatrain.synthetic import coupled_oscillators, fgn, switching_schedule

__all__ = ["KINDS", "SimulatedRun", "simulate_run", "write_run"]

KINDS = ("training", "hurst", "oscillators")
#: Bytes of float64 noise drawn at once when writing activations.
_BLOCK_BYTES = 8 * 2**20
#: Appends per durable commit of the writer (see ``write_run``).
_DURABLE_EVERY = 256
COUPLINGS = ("locked", "independent", "switching")


@dataclass
class SimulatedRun:
    """Planted layer signals and metrics of one synthetic run.

    Attributes
    ----------
    epochs : ndarray, shape (n_checkpoints,)
    signals : ndarray, shape (n_layers, n_checkpoints)
        Layer signals x_l(t) (levels; their changes carry the planted property).
    metrics : dict of str to ndarray, each shape (n_checkpoints,)
    metadata : dict
        What was planted (kind, hurst, coupling, ...), for the archive's root.
    """

    epochs: np.ndarray
    signals: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def simulate_run(
    kind: str = "training",
    *,
    n_layers: int = 6,
    n_checkpoints: int = 100,
    hurst: float = 0.8,
    coupling: str = "switching",
    seed: int = 0,
) -> SimulatedRun:
    """Make the planted signals of one run (no file is written).

    Parameters
    ----------
    kind : {"training", "hurst", "oscillators"}
    n_layers, n_checkpoints : int
    hurst : float
        Hurst exponent of the layers' changes (kind ``hurst``), in (0, 1).
    coupling : {"locked", "independent", "switching"}
        Phase relation of the layers (kind ``oscillators``).
    seed : int
        Seed of the random generator: same seed, same run.
    """
    if kind not in KINDS:
        raise ValueError(f"invalid kind {kind!r}: use one of {', '.join(KINDS)}")
    if n_layers < 2 or n_checkpoints < 3:
        raise ValueError(
            f"need at least 2 layers and 3 checkpoints, got {n_layers} and {n_checkpoints}"
        )
    rng = np.random.default_rng(seed)
    epochs = np.arange(1.0, n_checkpoints + 1)
    metadata: dict[str, Any] = {"model": "synthetic", "simulated_kind": kind, "seed": seed}
    n_changes = n_checkpoints - 1
    if kind == "hurst":
        changes = fgn(n_changes, hurst, size=n_layers, rng=rng)
        metadata["planted_hurst"] = hurst
    elif kind == "oscillators":
        if coupling not in COUPLINGS:
            raise ValueError(f"invalid coupling {coupling!r}: use one of {', '.join(COUPLINGS)}")
        locked: Any = {"locked": True, "independent": False}.get(coupling)
        if locked is None:
            locked = switching_schedule(n_changes, block_length=max(4, n_changes // 8))
        changes = coupled_oscillators(n_layers, n_changes, locked=locked, rng=rng)
        metadata["planted_coupling"] = coupling
    else:
        changes, settle = _training_changes(n_layers, n_changes, rng)
        metadata["planted_settle_epoch"] = float(epochs[settle])
    # Each layer at its own level and scale, as real layers are.
    gains = rng.uniform(0.5, 2.0, size=(n_layers, 1))
    offsets = rng.normal(0.0, 1.0, size=(n_layers, 1))
    signals = offsets + gains * np.concatenate(
        [np.zeros((n_layers, 1)), np.cumsum(changes, axis=1)], axis=1
    )
    return SimulatedRun(epochs, signals, _metrics(epochs, rng), metadata)


def _training_changes(
    n_layers: int, n_changes: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Shared decaying drift with persistent fluctuations, then independent white noise."""
    t = np.arange(n_changes)
    settle = int(0.45 * n_changes)
    envelope = np.exp(-t / (0.15 * n_changes))  # learning slows down...
    envelope[settle:] = 0.0  # ...and stops
    shared = fgn(n_changes, 0.9, rng=rng)
    drift = envelope * (3.0 + shared)
    noise = 0.15 * rng.standard_normal((n_layers, n_changes))
    layer_share = rng.uniform(0.7, 1.3, size=(n_layers, 1))
    return layer_share * drift + noise, settle


def _metrics(epochs: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A validation accuracy that rises and plateaus about 60% into the run, and losses."""
    progress = 1.0 - np.exp(-(epochs - epochs[0]) / (0.15 * len(epochs)))
    accuracy = 0.1 + 0.85 * progress + 0.004 * rng.standard_normal(len(epochs))
    train_loss = 2.3 * (1.0 - progress) + 0.05 + 0.01 * rng.standard_normal(len(epochs))
    return {
        "val_accuracy": np.clip(accuracy, 0.0, 1.0),
        "train_loss": train_loss,
        "val_loss": train_loss + 0.1,
    }


def write_run(
    path: str | os.PathLike[str],
    run: SimulatedRun,
    *,
    samples: int = 16,
    features: int = 8,
    dtype: str = "float32",
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
    seed: int = 0,
) -> None:
    """Write a simulated run as an activation archive (HDF5 or Zarr by suffix).

    Parameters
    ----------
    path : str or path-like
    run : SimulatedRun
    samples, features : int
        Shape of each layer's activations at one checkpoint.
    dtype : {"float16", "float32", "float64"}
    metadata : dict, optional
        Extra metadata (e.g. ``{"dataset": "A"}``), over the run's own.
    overwrite : bool
        Replace an existing archive.
    seed : int
        Seed of the activation noise.
    """
    rng = np.random.default_rng([seed, 1])
    layer_names = [f"layer{i}" for i in range(len(run.signals))]
    meta = {
        "run_id": os.path.splitext(os.path.basename(os.fspath(path)))[0],
        **run.metadata,
        **(metadata or {}),
    }
    n_layers, n_checkpoints = run.signals.shape
    # Checkpoints are made in blocks (one NumPy call per block, not per layer and
    # checkpoint), drawing the same numbers in the same order as one at a time.
    block = max(1, _BLOCK_BYTES // (8 * n_layers * samples * features))
    with ArchiveWriter(
        path,
        metadata=meta,
        mode="w" if overwrite else "w-",
        activation_dtype=dtype,
        # A simulated archive is made in one go: counting checkpoints in blocks is
        # enough (a killed `simulate` is run again), and much faster.
        durable_every=_DURABLE_EVERY,
        expected_checkpoints=n_checkpoints,
    ) as writer:
        for start in range(0, n_checkpoints, block):
            stop = min(start + block, n_checkpoints)
            noise = rng.standard_normal((stop - start, n_layers, samples, features))
            noise -= noise.mean(axis=(2, 3), keepdims=True)
            levels = run.signals[:, start:stop].T[:, :, np.newaxis, np.newaxis]
            activations = (levels + noise).astype(dtype)
            for t in range(start, stop):
                writer.append(
                    epoch=float(run.epochs[t]),
                    activations=dict(zip(layer_names, activations[t - start], strict=True)),
                    metrics={name: float(series[t]) for name, series in run.metrics.items()},
                    step=int(100 * (t + 1)),
                )
