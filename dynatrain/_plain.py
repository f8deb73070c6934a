"""Plain data: the JSON form of results and the flat rows of CSV files and data frames.

Lowest layer of the output side (NumPy only), so that :class:`~dynatrain.analysis.AnalysisResult`
can give JSON-safe data and :mod:`dynatrain.frames` the CSV's columns without importing the
report modules. :mod:`dynatrain.report.export` writes these as text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "RUN_COLUMNS_FIRST",
    "flatten",
    "json_ready",
    "run_columns",
    "run_rows",
    "scalar_row",
]


def json_ready(value: Any) -> Any:
    """Convert ``value`` to plain JSON data: NumPy to Python, NaN and inf to ``None``."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_ready(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def flatten(data: Mapping[str, Any], *, prefix: str = "", skip: Sequence[str] = ()) -> dict:
    """Flatten nested mappings to ``{"a.b": value}``; lists of scalars become ``a.0, a.1``.

    Lists of mappings and the keys in ``skip`` are left out: they are not scalar fields.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            if all(not isinstance(item, (Mapping, list, tuple)) for item in value):
                flat.update({f"{name}.{i}": item for i, item in enumerate(value)})
        else:
            flat[name] = value
    return flat


#: Keys of an analysis object that are not scalar fields (left out of CSV rows).
_NON_SCALAR = ("layers", "timeseries", "detail", "excluded_layers", "warnings", "metadata")


def scalar_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One flat CSV row of an analysis object (``AnalysisResult.to_dict()`` or batch error).

    Metadata keys come first as ``metadata.<key>``; nested fields are dotted
    (``convergence.epoch``, ``settings.window``); excluded layers and warnings are
    joined with ``"; "``.
    """
    row: dict[str, Any] = {"run": result.get("run"), "run_id": result.get("run_id")}
    row.update(flatten(result.get("metadata") or {}, prefix="metadata."))
    row.update(flatten(result, skip=(*_NON_SCALAR, "run", "run_id")))
    if "excluded_layers" in result:
        row["excluded_layers"] = "; ".join(
            f"{e['name']} ({e['reason']})" for e in result["excluded_layers"]
        )
    if "warnings" in result:
        row["warnings"] = "; ".join(result["warnings"])
    return row


#: Columns that lead every table of runs (CSV, data frame): which run, and whether it failed.
RUN_COLUMNS_FIRST = ("run", "run_id", "error", "group")
#: Scalar fields in the order a reader looks for them: the measures and their uncertainty,
#: convergence, then the shape of the data; settings (the same for every run of a batch but
#: for the resolved ``max_scale`` and ``window``) and the notes come last.
_MEASURE_PREFIXES = (
    "integration",
    "synchrony",
    "metastability",
    "stability_index",
    "style.",
    "convergence.",
    "checkpoints",
    "epochs.",
    "layers_analysed",
    "format_version",
)
_LAST_PREFIXES = ("settings.", "excluded_layers", "warnings")


def run_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns of a table of runs, in the order of ``runs.csv`` and of the data frames.

    ``run, run_id, error, group`` (those present), the metadata (``metadata.<key>``), the
    measures (``integration``, ``integration_ci95.0``, ...), convergence, the data's shape,
    any other field, then the settings, excluded layers and warnings.
    """
    seen = list(dict.fromkeys(key for row in rows for key in row))
    first = [key for key in RUN_COLUMNS_FIRST if key in seen]
    metadata = [key for key in seen if key.startswith("metadata.")]
    rest = [key for key in seen if key not in first and key not in metadata]

    def rank(key: str) -> int:
        if key.startswith(_LAST_PREFIXES):
            return len(_MEASURE_PREFIXES) + 1
        for position, prefix in enumerate(_MEASURE_PREFIXES):
            if key.startswith(prefix):
                return position
        return len(_MEASURE_PREFIXES)

    return [*first, *metadata, *sorted(rest, key=rank)]  # sorted is stable: order kept within


def run_rows(records: Sequence[Mapping[str, Any]], summary: Any = None) -> list[dict[str, Any]]:
    """One flat row per run (:func:`scalar_row`), with its ``error`` and its ``group``.

    ``error`` is ``None`` for a run analysed; ``group`` is there when ``summary`` groups by
    metadata keys (``None`` for a failed run).

    Parameters
    ----------
    records : sequence of dict
        Run records: ``AnalysisResult.to_dict()`` or ``{"run": ..., "error": ...}``.
    summary : dynatrain.batch.GroupSummary, optional
        Its ``keys`` and ``groups`` (each with a ``label`` and the ``members`` indices).
    """
    rows = [scalar_row(record) for record in records]
    for row in rows:
        row.setdefault("error", None)
    if summary is not None and summary.keys:
        for row in rows:
            row.setdefault("group", None)
        for group in summary.groups:
            for index in group.members:
                rows[index]["group"] = group.label
    return rows
