"""The activation archive format, version 1: names and rules in one place.

The same tree is used by both back ends (HDF5 file, Zarr directory store)::

    /                            attrs: format, format_version, complete_checkpoints,
                                        free metadata (run_id, model, dataset, seed, ...)
    /checkpoints/epoch           float64 [T], strictly increasing
    /checkpoints/step            int64   [T], optional
    /layers                      attrs: order = [layer names, input side first]
    /layers/<name>/activations   float16|float32|float64 [T, N, ...]
    /layers/<name>/signal        float64 [T], optional pre-reduced scalar per checkpoint
    /metrics/<name>              float64 [T], optional; a name with '/' (``val/acc``) is
                                 stored as nested groups (/metrics/val/acc)

``T``, the length of the arrays, may exceed ``complete_checkpoints`` while a writer
runs (it grows them geometrically) or after it was killed; rows beyond
``complete_checkpoints`` hold fill values and are never read. A writer that closes
trims every array to ``complete_checkpoints`` rows. The optional root attribute
``expected_checkpoints`` is the number of checkpoints the job plans to write;
``writer_id``, written to archives in object storage, identifies their writer.

Readers and writers import every name from here; nothing else spells them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from dynatrain.errors import InputError

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_DTYPES",
    "CHECKPOINTS",
    "COMPLETE_ATTR",
    "EPOCH",
    "EXPECTED_ATTR",
    "FORMAT_ATTR",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HDF5_SUFFIXES",
    "LAYERS",
    "MAX_METRIC_DEPTH",
    "METRICS",
    "ORDER_ATTR",
    "RESERVED_ATTRS",
    "SIGNAL",
    "STEP",
    "SUPPORTED_VERSIONS",
    "VERSION_ATTR",
    "WRITER_ATTR",
    "ZARR_SUFFIXES",
    "Backend",
    "backend_for_path",
    "check_layer_name",
    "check_metric_name",
    "metric_parts",
]

FORMAT_ATTR: Final = "format"
FORMAT_NAME: Final = "dynatrain-activations"
VERSION_ATTR: Final = "format_version"
FORMAT_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
COMPLETE_ATTR: Final = "complete_checkpoints"
#: Optional root attribute: how many checkpoints the job plans to write (an int >= 1).
#: Free metadata as far as the reader is concerned (it is not reserved): a job may
#: also pass it in ``metadata``, which gives the same file.
EXPECTED_ATTR: Final = "expected_checkpoints"
#: Optional root attribute of an archive written to object storage: a random
#: identifier of its writer, which makes each writer's root document unique, so that
#: its conditional updates fail once another writer has replaced the root.
WRITER_ATTR: Final = "writer_id"
#: Root attributes that are part of the format, not free metadata.
RESERVED_ATTRS: Final = (FORMAT_ATTR, VERSION_ATTR, COMPLETE_ATTR, WRITER_ATTR)

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


#: Names no group member may take: the metadata document of a Zarr (format 3) node.
_RESERVED_MEMBER_NAMES: Final = ("zarr.json",)
#: Deepest nesting of a metric name (``a/b/c`` is 3).
MAX_METRIC_DEPTH: Final = 8


def _is_member_name(name: object) -> bool:
    """Whether ``name`` can name one group member in both back ends."""
    return (
        isinstance(name, str)
        and bool(name)
        and "/" not in name
        and not name.startswith(".")
        and name not in _RESERVED_MEMBER_NAMES
    )


def check_layer_name(name: str) -> str:
    """Return ``name`` if it can name a layer group, else raise ``InputError``.

    A layer name becomes a group name in both back ends, so it must be a non-empty
    string without ``/`` that does not start with ``.`` (Zarr reserves those keys) and
    is not ``zarr.json`` (a Zarr node's own metadata document).
    """
    if not _is_member_name(name):
        raise InputError(
            f"invalid layer name {name!r}: use a non-empty name without '/' that does not"
            " start with '.' (and is not 'zarr.json')"
        )
    return name


def metric_parts(name: str) -> tuple[str, ...]:
    """The tree path of a metric: ``"val/acc"`` -> ``("metrics", "val", "acc")``."""
    return (METRICS, *name.split("/"))


def check_metric_name(name: str) -> str:
    """Return ``name`` if it can name a metric, else raise ``InputError``.

    A metric name may contain ``/`` (``val/acc``, as TensorBoard and W&B name them):
    each ``/`` opens a nested group under ``/metrics``, and readers name the array by
    its path below ``/metrics``. Each part between slashes follows the rule of
    :func:`check_layer_name`; at most ``MAX_METRIC_DEPTH`` parts.
    """
    parts = name.split("/") if isinstance(name, str) else [name]
    if not all(_is_member_name(part) for part in parts) or len(parts) > MAX_METRIC_DEPTH:
        raise InputError(
            f"invalid metric name {name!r}: use non-empty parts separated by single '/',"
            f" none starting with '.' or named 'zarr.json', at most {MAX_METRIC_DEPTH} parts"
        )
    return name
