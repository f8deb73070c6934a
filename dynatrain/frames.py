"""Results as pandas data frames, and an archive's signals as an xarray dataset.

pandas and xarray are optional (``pip install 'dynatrain[pandas]'``,
``'dynatrain[xarray]'``) and imported only here, when a frame or a dataset is asked
for; without them, one line says what to install.

* :func:`runs_frame`: one row per run, the columns of ``dynatrain batch --format csv``
  (made by the same functions, :func:`dynatrain._plain.run_rows` and
  :func:`~dynatrain._plain.run_columns`);
* :func:`layers_frame`: one row per layer; :func:`windows_frame`: one row per window;
* :func:`groups_frame` and :func:`comparisons_frame`: ``groups.csv`` and
  ``comparisons.csv`` of a batch;
* :func:`signals_dataset`: the layer x epoch signal matrix with the metrics, labelled,
  the archive's metadata as attributes.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dynatrain._plain import json_ready, run_columns, run_rows

if TYPE_CHECKING:
    from dynatrain.analysis import AnalysisResult
    from dynatrain.batch import GroupSummary
    from dynatrain.signals import LayerSignals

__all__ = [
    "comparisons_frame",
    "groups_frame",
    "layers_frame",
    "require",
    "runs_frame",
    "signals_dataset",
    "windows_frame",
]

#: Optional packages: what to install for each.
_EXTRAS = {"pandas": "pandas", "xarray": "xarray"}
#: Per-point series of ``timeseries`` (one value per analysed point, not per window).
_POINT_SERIES = ("epoch", "kuramoto_r")


def require(package: str, purpose: str) -> Any:
    """Import an optional package, or raise ``ImportError`` with one line saying what to install.

    Parameters
    ----------
    package : {"pandas", "xarray"}
    purpose : str
        What needs it, for the message (``"data frames"``).
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        extra = _EXTRAS.get(package, package)
        raise ImportError(
            f"{purpose} need {package}, which is not installed: pip install 'dynatrain[{extra}]'"
        ) from None


def _record(item: AnalysisResult | Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON record of a result object, or the record itself."""
    return item.to_dict() if hasattr(item, "to_dict") else item


def runs_frame(
    items: Iterable[AnalysisResult | Mapping[str, Any]],
    summary: GroupSummary | None = None,
    *,
    error_column: bool = True,
) -> Any:
    """One row per run with the columns of the CSV: ``run``, ``run_id``, ``error``, ...

    Parameters
    ----------
    items : iterable of AnalysisResult or dict
        Results, or their records (``to_dict()``, batch records, failed ones included).
    summary : GroupSummary, optional
        Adds the ``group`` column, as ``batch --group-by`` does.
    error_column : bool
        False: no ``error`` column, as in ``dynatrain analyze --format csv``.

    Returns
    -------
    pandas.DataFrame
        Missing values are NaN (or ``None`` in a column of text).
    """
    pandas = require("pandas", "data frames")
    rows = run_rows([_record(item) for item in items], summary)
    if not error_column:
        for row in rows:
            del row["error"]
    return pandas.DataFrame.from_records(rows, columns=run_columns(rows))


def layers_frame(result: AnalysisResult | Mapping[str, Any]) -> Any:
    """One row per layer, indexed by name: ``alpha``, ``mean``, ``std``, ``excluded``.

    Analysed layers come first, in the archive's order; excluded ones follow, with NaN
    measures and the reason they were left out in ``excluded``.
    """
    pandas = require("pandas", "data frames")
    record = _record(result)
    rows = [{**layer, "excluded": None} for layer in record["layers"]]
    rows += [
        {
            "name": layer["name"],
            "alpha": None,
            "mean": None,
            "std": None,
            "excluded": layer["reason"],
        }
        for layer in record.get("excluded_layers") or ()
    ]
    columns = ["name", "alpha", "mean", "std", "excluded"]
    frame = pandas.DataFrame.from_records(rows, columns=columns).set_index("name")
    frame.index.name = "layer"
    for column in ("alpha", "mean", "std"):
        frame[column] = frame[column].astype(float)
    return frame


def windows_frame(result: AnalysisResult | Mapping[str, Any]) -> Any:
    """One row per sliding window, indexed by ``window_end_epoch``.

    Columns: every windowed series of ``timeseries`` (``integration``, ``metastability``,
    ``stability_index``, ``volatility``), NaN where a value is not defined (the first
    ``vol_window - 1`` volatilities).
    """
    pandas = require("pandas", "data frames")
    record = _record(result)
    timeseries = record["timeseries"]
    index = timeseries["window_end_epoch"]
    columns = {
        name: series
        for name, series in timeseries.items()
        if name not in (*_POINT_SERIES, "window_end_epoch") and len(series) == len(index)
    }
    frame = pandas.DataFrame(columns, index=pandas.Index(index, name="window_end_epoch"))
    return frame.astype(float)


def groups_frame(summary: GroupSummary) -> Any:
    """``groups.csv`` of a batch: one row per group and measure (n, mean, sd, median, CI)."""
    pandas = require("pandas", "data frames")
    return pandas.DataFrame.from_records(summary.group_rows(), columns=group_columns(summary))


def comparisons_frame(summary: GroupSummary) -> Any:
    """``comparisons.csv`` of a batch: one row per pair of groups and measure."""
    pandas = require("pandas", "data frames")
    return pandas.DataFrame.from_records(summary.comparison_rows(), columns=comparison_columns())


def group_columns(summary: GroupSummary) -> list[str]:
    """The columns of ``groups.csv`` (also when there is no group)."""
    stats = ["measure", "n", "mean", "sd", "median", "ci95_low", "ci95_high"]
    return ["group", *summary.keys, *stats]


def comparison_columns() -> list[str]:
    """The columns of ``comparisons.csv`` (also when no pair is compared)."""
    from dynatrain.batch import Comparison

    return [field.name for field in dataclasses.fields(Comparison)]


def signals_dataset(signals: LayerSignals) -> Any:
    """The layer signals as an :class:`xarray.Dataset`: ``signal`` (layer x epoch), metrics.

    Parameters
    ----------
    signals : LayerSignals
        From :func:`dynatrain.read_signals`.

    Returns
    -------
    xarray.Dataset
        ``signal`` with dims ``("layer", "epoch")``, the reduced activations x_l(t)
        before any transform; one variable per metric along ``epoch`` (a metric that
        would shadow ``signal`` or a coordinate is named ``metric:<name>``);
        coordinates ``layer``, ``epoch`` and, when stored, ``step``; attributes: the
        archive's metadata, with ``dynatrain_run``, ``dynatrain_reduce`` and
        ``dynatrain_excluded_layers`` added.
    """
    xarray = require("xarray", "xarray datasets")
    coords: dict[str, Any] = {"layer": list(signals.layer_names), "epoch": signals.epochs}
    if signals.steps is not None:
        coords["step"] = ("epoch", signals.steps)
    variables: dict[str, Any] = {"signal": (("layer", "epoch"), signals.values)}
    for name, values in signals.metrics.items():
        key = f"metric:{name}" if name in variables or name in coords else name
        variables[key] = ("epoch", values)
    attrs = dict(json_ready(signals.metadata))
    attrs["dynatrain_run"] = signals.path
    attrs["dynatrain_reduce"] = signals.reduce
    attrs["dynatrain_excluded_layers"] = [f"{e.name}: {e.reason}" for e in signals.excluded]
    return xarray.Dataset(variables, coords=coords, attrs=attrs)
