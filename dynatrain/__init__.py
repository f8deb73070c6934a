"""dynatrain: neural-network training as a dynamical system.

Reads activation archives (HDF5 or Zarr) written checkpoint by checkpoint during
training and measures integration (DFA), metastability (Kuramoto order parameter)
and a dynamical stability index.

>>> import dynatrain
>>> result = dynatrain.analyze("sample_data/mlp-digits-seed1.h5")  # doctest: +SKIP
>>> result.to_frame()  # doctest: +SKIP

The entry points: :func:`analyze` (one run), :func:`analyze_many` (many, in
parallel), :func:`open` (an archive), :func:`read_signals` and
:func:`signals_dataset` (the layer x checkpoint signals), the plot functions
(``plot_*``, on your own matplotlib axes) and :class:`ArchiveWriter` (to record a
run). Every name is imported on first use, so ``import dynatrain`` (and
``dynatrain --help``) stays fast: NumPy, matplotlib, pandas and zarr are loaded only
when something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "analyze": "dynatrain.api",
    "analyze_many": "dynatrain.api",
    "open": "dynatrain.api",
    "signals_dataset": "dynatrain.api",
    "BatchResult": "dynatrain.api",
    "AnalysisResult": "dynatrain.analysis",
    "Settings": "dynatrain.analysis",
    "ArchiveError": "dynatrain.errors",
    "DynatrainError": "dynatrain.errors",
    "InputError": "dynatrain.errors",
    "OptionError": "dynatrain.errors",
    "Archive": "dynatrain.archive.reader",
    "open_archive": "dynatrain.archive.reader",
    "ArchiveWriter": "dynatrain.archive.writer",
    "validate_archive": "dynatrain.archive.validate",
    "LayerSignals": "dynatrain.signals",
    "read_signals": "dynatrain.signals",
    "plot_analysis": "dynatrain.report.plots",
    "plot_dfa": "dynatrain.report.plots",
    "plot_kuramoto": "dynatrain.report.plots",
    "plot_signals": "dynatrain.report.plots",
    "plot_stability": "dynatrain.report.plots",
    "plot_style_map": "dynatrain.report.plots",
}

__all__ = [
    "AnalysisResult",
    "Archive",
    "ArchiveError",
    "ArchiveWriter",
    "BatchResult",
    "DynatrainError",
    "InputError",
    "LayerSignals",
    "OptionError",
    "Settings",
    "__version__",
    "analyze",
    "analyze_many",
    "open",
    "open_archive",
    "plot_analysis",
    "plot_dfa",
    "plot_kuramoto",
    "plot_signals",
    "plot_stability",
    "plot_style_map",
    "read_signals",
    "signals_dataset",
    "validate_archive",
]

if TYPE_CHECKING:
    from dynatrain.analysis import AnalysisResult, Settings
    from dynatrain.api import BatchResult, analyze, analyze_many, open, signals_dataset
    from dynatrain.archive.reader import Archive, open_archive
    from dynatrain.archive.validate import validate_archive
    from dynatrain.archive.writer import ArchiveWriter
    from dynatrain.errors import ArchiveError, DynatrainError, InputError, OptionError
    from dynatrain.report.plots import (
        plot_analysis,
        plot_dfa,
        plot_kuramoto,
        plot_signals,
        plot_stability,
        plot_style_map,
    )
    from dynatrain.signals import LayerSignals, read_signals

    __version__: str


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
    return list(__all__)
