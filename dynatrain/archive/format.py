"""The activation archive format, version 1: names and rules in one place.

The same tree is used by both back ends (HDF5 file, Zarr directory store)::

    /                            attrs: format, format_version, complete_checkpoints,
                                        free metadata (run_id, model, dataset, seed, ...)
    /checkpoints/epoch           float64 [T], strictly increasing
    /checkpoints/step            int64   [T], optional
    /layers                      attrs: order = [layer names, input side first]
    /layers/<name>/activations   float16|float32|float64 [T, N, ...]
    /layers/<name>/signal        float64 [T], optional pre-reduced scalar per checkpoint
    /metrics/<name>              float64 [T], optional

Readers and writers import every name from here; nothing else spells them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_DTYPES",
    "CHECKPOINTS",
    "COMPLETE_ATTR",
    "EPOCH",
    "FORMAT_ATTR",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HDF5_SUFFIXES",
    "LAYERS",
    "METRICS",
    "ORDER_ATTR",
    "RESERVED_ATTRS",
    "SIGNAL",
    "STEP",
    "SUPPORTED_VERSIONS",
    "VERSION_ATTR",
    "ZARR_SUFFIXES",
    "Backend",
    "backend_for_path",
    "check_layer_name",
]

FORMAT_ATTR: Final = "format"
FORMAT_NAME: Final = "dynatrain-activations"
VERSION_ATTR: Final = "format_version"
FORMAT_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
COMPLETE_ATTR: Final = "complete_checkpoints"
#: Root attributes that are part of the format, not free metadata.
RESERVED_ATTRS: Final = (FORMAT_ATTR, VERSION_ATTR, COMPLETE_ATTR)

CHECKPOINTS: Final = "checkpoints"
EPOCH: Final = "epoch"
STEP: Final = "step"
LAYERS: Final = "layers"
ORDER_ATTR: Final = "order"
POOLING_ATTR: Final = "pooling"  # /layers/<name> attribute: how the recorder pooled the layer
ACTIVATIONS: Final = "activations"
SIGNAL: Final = "signal"
METRICS: Final = "metrics"

#: Floating-point types allowed for raw activations.
ACTIVATION_DTYPES: Final = ("float16", "float32", "float64")

HDF5_SUFFIXES: Final = (".h5", ".hdf5")
ZARR_SUFFIXES: Final = (".zarr",)

Backend = Literal["hdf5", "zarr"]


def is_url(path: str | Path) -> bool:
    """Whether ``path`` is a URL (``s3://bucket/run.zarr``): zarr opens it through fsspec.

    A URL is read where the work runs; it is never resolved, expanded or compared as a
    local file.
    """
    return "://" in str(path)


def backend_for_path(path: str | Path) -> Backend | None:
    """Back end implied by a path's suffix, or ``None`` if the suffix names neither.

    Parameters
    ----------
    path : str or Path
        Archive path (``run.h5``, ``run.hdf5``, ``run.zarr``) or a Zarr URL.
    """
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    return None


def check_layer_name(name: str) -> str:
    """Return ``name`` if it can name a layer group, else raise ``ValueError``.

    A layer name becomes a group name in both back ends, so it must be a non-empty
    string without ``/`` and must not start with ``.`` (Zarr reserves those keys).
    """
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(
            f"invalid layer name {name!r}: use a non-empty name without '/' that does not"
            " start with '.'"
        )
    return name
