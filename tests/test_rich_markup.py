"""Text from the data is printed as it is, never read as rich markup.

Rich reads ``[bold]``, ``[/oops]`` and ``:smile:`` in a plain string as markup (a closing
tag that matches nothing raises ``MarkupError``). File names, run ids, layer, metric and
metadata names and values, and error messages all come from the user or the archive.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

#: Names rich would style, drop or replace (a layer name cannot hold the "/" of a closing tag).
HOSTILE_LAYERS = ["[bold]b", ":smile:", "back\\", "[red]"]
METRIC = "[red]val_accuracy"
DATASET = "[/x]"
RUN_ID = "[link=http://x]r[/link]"


@pytest.fixture
def hostile(plain_archive):
    rng = np.random.default_rng(0)
    return plain_archive(
        "red[bold].h5",
        layers={name: rng.normal(size=(40, 3)) for name in HOSTILE_LAYERS},
        metrics={METRIC: np.linspace(0.1, 0.9, 40)},
        attrs={"dataset": DATASET, "run_id": RUN_ID},
    )


def _clean(result, exit_code: int = 0) -> str:
    assert result.exit_code == exit_code, result.stderr
    assert "internal error" not in result.stderr and "MarkupError" not in result.stderr
    return result.stdout


def test_validate_prints_names_as_they_are(cli, hostile, plain_archive):
    assert _clean(cli("validate", hostile)).startswith(f"ok {hostile} (40 checkpoints, 4 layers)")
    rng = np.random.default_rng(1)
    broken = plain_archive(
        "[b]broken.h5", layers={"a": rng.normal(size=(40, 3))}, order=["a", "[/oops]"]
    )
    out = _clean(cli("validate", broken), exit_code=2)
    assert out.startswith(f"invalid {broken}: /layers order names '[/oops]', not valid layer")


def test_inspect_and_analyze_tables(cli, hostile, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = _clean(cli("inspect", hostile, "--format", "table"))
    for text in [str(hostile), *HOSTILE_LAYERS, METRIC, DATASET, RUN_ID]:
        assert text in out, text
    out = _clean(
        cli("analyze", hostile, "--surrogates", "0", "--format", "table", "--metric", METRIC)
    )
    for text in [str(hostile), *HOSTILE_LAYERS, METRIC, f"{RUN_ID} / synthetic / {DATASET}"]:
        assert text.replace(" / synthetic", "") in out, text


def test_batch_table_with_hostile_names_and_errors(
    cli, hostile, plain_archive, tmp_path, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "[").mkdir()
    broken = tmp_path / "[" / "oops].h5"  # the path reads [/oops].h5, a closing tag
    broken.write_text("not an archive")
    rng = np.random.default_rng(3)
    keyed = plain_archive(  # has the key the hostile run lacks (a key no run has is refused)
        "keyed.h5",
        layers={"a": rng.normal(size=(60, 3)), "b": rng.normal(size=(60, 3))},
        attrs={"[b]key": "[i]value", "dataset": DATASET},
    )
    result = cli(
        "batch",
        hostile,
        keyed,
        broken,
        "--surrogates",
        "0",
        "-j",
        "1",
        "--group-by",
        "dataset,[b]key",
        "--format",
        "table",
    )
    out = _clean(result, exit_code=2)  # the broken run
    assert out.index("Runs (3)") < out.index("Groups (by dataset, [b]key)")
    assert f"failed {broken}: {broken}: not an HDF5 file" in out
    for text in [RUN_ID, DATASET, f"{DATASET} / (missing)", f"{DATASET} / [i]value", "[b]key"]:
        assert text in out, text


def test_render_batch_prints_every_string_as_text():
    from dynatrain.batch import group_summary
    from dynatrain.report.batch_report import render_batch

    records = [
        {
            "run": f"{name}.h5",
            "run_id": name,
            "metadata": {"dataset": name},
            "integration": 0.5 + i / 10,
        }
        for i, name in enumerate(["[/a]", "[bold]b", "c\\", ":smile:"])
    ]
    records.append({"run": "[/d].h5", "error": "[/d].h5: [red]broken[/red]"})
    console = Console(record=True, width=200, file=io.StringIO())
    render_batch(records, group_summary(records, ["dataset"]), console)
    shown = console.export_text()
    for text in ["[/a]", "[bold]b", "c\\", ":smile:", "failed [/d].h5: [/d].h5: [red]broken[/red]"]:
        assert text in shown, text
    assert "[/a] vs" in shown or "vs [/a]" in shown
