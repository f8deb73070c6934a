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
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dynatrain._format import cell_text, printable, spreadsheet_safe
from dynatrain._plain import flatten, json_ready, scalar_row

__all__ = [
    "flatten",
    "json_ready",
    "scalar_row",
    "to_csv",
    "to_json",
    "to_jsonl",
    "to_markdown",
]


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
