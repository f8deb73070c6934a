"""dynatrain: neural-network training as a dynamical system.

Reads activation archives (HDF5 or Zarr) written checkpoint by checkpoint during
training and measures integration (DFA), metastability (Kuramoto order parameter)
and a dynamical stability index.

The public names below are imported on first use, so that ``import dynatrain``
(and ``dynatrain --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ArchiveError": "dynatrain.errors",
    "DynatrainError": "dynatrain.errors",
    "InputError": "dynatrain.errors",
    "Archive": "dynatrain.archive.reader",
    "open_archive": "dynatrain.archive.reader",
    "ArchiveWriter": "dynatrain.archive.writer",
    "validate_archive": "dynatrain.archive.validate",
    "LayerSignals": "dynatrain.signals",
    "read_signals": "dynatrain.signals",
}

__all__ = [
    "Archive",
    "ArchiveError",
    "ArchiveWriter",
    "DynatrainError",
    "InputError",
    "LayerSignals",
    "__version__",
    "open_archive",
    "read_signals",
    "validate_archive",
]

if TYPE_CHECKING:
    from dynatrain.archive.reader import Archive, open_archive
    from dynatrain.archive.validate import validate_archive
    from dynatrain.archive.writer import ArchiveWriter
    from dynatrain.errors import ArchiveError, DynatrainError, InputError
    from dynatrain.signals import LayerSignals, read_signals


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dynatrain")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # looked up lazily: importlib.metadata costs start-up time
        globals()["__version__"] = value = _version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dynatrain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
