"""docs/findings.md is what docs/make_findings.py computes from sample_data/, to the byte."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    path = ROOT / "docs" / "make_findings.py"
    spec = importlib.util.spec_from_file_location("make_findings", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_findings_document_is_up_to_date(capsys):
    status = _load_generator().main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_every_figure_the_document_shows_exists():
    text = (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(figures) >= 5
    for figure in figures:
        assert (ROOT / "docs" / figure).is_file(), figure
