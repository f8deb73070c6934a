"""Strings from archives cannot act on a terminal, a spreadsheet or an SVG file.

Run ids, metadata, layer and metric names are whatever a training script stored. An
escape sequence among them (``ESC [ 2 J`` clears the screen, ``ESC ] 0 ; ... BEL`` sets
the window title, the one-byte C1 ``CSI``), a carriage return that overwrites the line
it is on, a cell that a spreadsheet runs as a formula (``=HYPERLINK(...)``), or a
control character that makes an SVG invalid XML: each is shown as text instead.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from dynatrain._format import printable, spreadsheet_safe
from dynatrain.report.export import to_csv, to_json, to_markdown

#: What must never reach a terminal raw: C0 controls but newline, DEL, C1 controls.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")

RUN_ID = "run\x1b[2J\r"
LAYER = "conv\x1b[31m1"
METRIC = "acc\x1b]0;pwned\x07"
MODEL = "\x9b31mmodel\u202e"  # the one-byte CSI, then a right-to-left override
DATASET = '=HYPERLINK("http://x","y")'


@pytest.fixture
def hostile(plain_archive):
    rng = np.random.default_rng(0)
    return plain_archive(
        "hostile.h5",
        layers={LAYER: rng.normal(size=(40, 3)), "fc": rng.normal(size=(40, 3))},
        metrics={METRIC: np.linspace(0.1, 0.9, 40)},
        attrs={
            "run_id": RUN_ID,
            "model": MODEL,
            "dataset": DATASET,
            "note": "+cmd|' /C calc'!A0",
            "plain_negative": "-0.5",
            "lr": -0.001,
        },
    )


def _safe(text: str) -> str:
    assert not RAW_CONTROL.search(text), repr(RAW_CONTROL.search(text).group())
    return text


def test_printable_and_spreadsheet_safe():
    assert printable("a\x1b[2Jb\r\n\t\x07\x9b\u202e") == "a\\x1b[2Jb\\r\\n\\t\\x07\\x9b\\u202e"
    assert printable("ünïcode [bold] $x$") == "ünïcode [bold] $x$"  # printable: as it is
    for text in ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "\tx", "\r=1"):
        assert spreadsheet_safe(text).startswith("'"), text
    for text in ("-0.5", "+3", "-1e-3", "plain", "", "a=b"):
        assert spreadsheet_safe(text) == text, text


def test_exports_escape_and_defuse():
    rows = [{"name": DATASET, "value": -0.25, "count": -3, "text": "-0.5", "id": RUN_ID}]
    table = list(csv.reader(io.StringIO(to_csv(rows))))
    assert table[1] == ["'" + DATASET, "-0.25", "-3", "-0.5", "run\\x1b[2J\\r"]
    header = to_csv([{"=cmd": 1}]).splitlines()[0]
    assert header == "'=cmd"
    assert _safe(to_markdown(rows)).count("\n") == 3  # header, rule, one row
    text = to_json({"id": RUN_ID, "model": MODEL})
    assert _safe(text) and json.loads(text) == {"id": RUN_ID, "model": MODEL}
    assert "\\u009b" in text and "\\u202e" in text and "\\u001b" in text


def test_analyze_and_inspect_show_names_as_escapes(cli, hostile, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for args in (
        ("analyze", hostile, "--surrogates", "0", "--metric", METRIC, "--format", "table"),
        ("analyze", hostile, "--surrogates", "0", "--metric", METRIC, "--format", "markdown"),
        ("analyze", hostile, "--surrogates", "0", "--metric", METRIC, "--format", "json"),
        ("inspect", hostile, "--format", "table"),
        ("inspect", hostile, "--format", "json"),
        ("validate", hostile),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        _safe(result.stdout)
        _safe(result.stderr)
    table = cli("analyze", hostile, "--surrogates", "0", "--metric", METRIC, "--format", "table")
    for shown in ("run\\x1b[2J\\r", "conv\\x1b[31m1", "acc\\x1b]0;pwned\\x07", "\\x9b31mmodel"):
        assert shown in table.stdout, shown


def test_csv_cells_are_never_formulas(cli, hostile):
    result = cli("analyze", hostile, "--surrogates", "0", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    (row,) = list(csv.DictReader(io.StringIO(_safe(result.stdout))))
    assert row["metadata.dataset"] == "'" + DATASET
    assert row["metadata.note"] == "'+cmd|' /C calc'!A0"
    assert row["metadata.plain_negative"] == "-0.5"  # a number, as text: left alone
    assert row["metadata.lr"] == "-0.001"  # a number
    assert row["run_id"] == "run\\x1b[2J\\r"
    assert all(not cell.startswith(("=", "+", "@")) for cell in row.values())


def test_batch_outputs_and_messages_are_safe(cli, hostile, plain_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    missing = tmp_path / "gone\x1b\rx.h5"
    # A key only some runs have is grouped as (missing) with a warning; one that no run has
    # is refused (tests/test_api_newcomer.py).
    rng = np.random.default_rng(2)
    keyed = plain_archive(
        "keyed.h5",
        layers={"a": rng.normal(size=(60, 3)), "b": rng.normal(size=(60, 3))},
        attrs={"\x1b[1mkey": "\x1b[2Jvalue"},
    )
    for output_format in ("table", "markdown", "csv", "jsonl"):
        result = cli(
            "batch",
            hostile,
            keyed,
            missing,
            "--surrogates",
            "0",
            "-j",
            "1",
            "--group-by",
            "model,\x1b[1mkey",
            "--format",
            output_format,
        )
        assert result.exit_code == 2  # the missing run
        _safe(result.stdout)
        lines = _safe(result.stderr).strip().splitlines()
        assert any("gone\\x1b\\rx.h5" in line for line in lines), lines
        assert any("without metadata '\\x1b[1mkey'" in line for line in lines), lines
    report = tmp_path / "report"
    result = cli("batch", hostile, "--surrogates", "0", "-j", "1", "-o", report)
    assert result.exit_code == 0, result.stderr
    for name in ("report.html", "runs.csv", "groups.csv"):
        _safe((report / name).read_text())


def test_a_one_line_error_stays_on_one_line(cli, tmp_path):
    result = cli("analyze", tmp_path / "a\nb\x1b[2J.h5")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "a\\nb\\x1b[2J.h5" in lines[0]


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_figures_with_control_characters_in_names(cli, hostile, tmp_path, fmt):
    """A control character in a name made every SVG figure invalid XML."""
    figures = tmp_path / "figures"
    result = cli(
        "analyze",
        hostile,
        "--surrogates",
        "0",
        "--metric",
        METRIC,
        "--plot",
        figures,
        "--plot-format",
        fmt,
    )
    assert result.exit_code == 0, result.stderr
    written = sorted(figures.iterdir())
    assert len(written) == 5
    if fmt == "svg":
        for path in written:
            ElementTree.parse(path)  # raises on invalid XML
            assert "\x1b" not in path.read_text()
