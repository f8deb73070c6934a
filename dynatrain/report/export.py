r"""Machine-readable output: JSON, JSON Lines, CSV and Markdown.

Every writer takes plain data (dicts, lists, numbers, strings) and returns text.
Non-finite numbers become ``null`` in JSON and empty fields in CSV: JSON has no NaN,
and an empty field is what spreadsheet and data-frame readers take for missing.

Strings come from archives and are written so that they cannot act on whatever shows
them: JSON escapes every control character (``\u001b``; Python's ``json`` leaves
the C1 ones raw); CSV and Markdown cells show them as escapes (``\x1b``), and a CSV
text cell that a spreadsheet would run as a formula (``=cmd|...``) starts with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dynatrain._format import cell_text, printable, spreadsheet_safe

__all__ = [
    "flatten",
    "json_ready",
    "scalar_row",
    "to_csv",
    "to_json",
    "to_jsonl",
    "to_markdown",
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


#: Characters ``json.dumps(ensure_ascii=False)`` writes raw that a terminal may act on
#: (DEL, the C1 controls such as the one-byte CSI, the line and paragraph separators,
#: bidirectional overrides). They can only occur inside JSON strings, where ``\\uXXXX``
#: means the same character.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """One JSON document (``indent=None``: on one line, for JSON Lines)."""
    text = json.dumps(json_ready(data), indent=indent, allow_nan=False, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def to_jsonl(records: Iterable[Any]) -> str:
    """One compact JSON object per line."""
    return "".join(to_json(record, indent=None) + "\n" for record in records)


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


def _csv_cell(value: Any) -> Any:
    value = json_ready(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that round-trips
    if isinstance(value, (bool, int)):
        return value  # a number, never a formula: -3 stays -3
    return spreadsheet_safe(str(value))


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV with one header row; ``columns`` default to the union of keys, in first-seen order."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(str(column)) for column in columns])
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _markdown_cell(value: Any) -> str:
    value = json_ready(value)
    if value is None:
        return ""
    return cell_text(value).replace("|", "\\|")


def to_markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (numbers by :func:`~dynatrain._format.format_number`)."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = [
        "| " + " | ".join(printable(column).replace("|", "\\|") for column in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


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
