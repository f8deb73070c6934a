"""Every Python example of the README's "From Python" section runs and prints what it shows.

The section's ```python blocks are one doctest session (names carry from block to block),
run from a scratch folder that sees the repository's sample_data/, so whatever the
examples write (figures, a report) lands there.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_from_python_section_has_examples():
    blocks = _python_blocks(_section("From Python"))
    assert len(blocks) >= 5
    assert all(block.lstrip().startswith(">>>") for block in blocks)  # every block is checked


def test_every_from_python_example_runs_as_shown(tmp_path, monkeypatch):
    pytest.importorskip("pandas", reason="the examples show data frames")
    pytest.importorskip("xarray", reason="the examples show an xarray dataset")
    import matplotlib.pyplot as plt

    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    monkeypatch.chdir(tmp_path)
    session = "\n".join(_python_blocks(_section("From Python")))
    test = doctest.DocTestParser().get_doctest(session, {}, "README.md: From Python", None, 0)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    failures: list[str] = []
    runner.run(test, out=failures.append)
    plt.close("all")
    assert runner.failures == 0, "\n".join(failures)
    assert (tmp_path / "figures" / "mlp-digits-seed1-dfa.png").is_file()
    assert (tmp_path / "report" / "report.html").is_file()
