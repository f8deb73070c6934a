"""docs/early_stopping.md is what docs/make_early_stopping.py computes from sample_data/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    path = ROOT / "docs" / "make_early_stopping.py"
    spec = importlib.util.spec_from_file_location("make_early_stopping", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_early_stopping_page_is_up_to_date(capsys):
    status = _load_generator().main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_the_patience_rule_is_keras_and_lightnings():
    """Hand-worked curves: strict improvement, min_delta 0, stop when the wait reaches P."""
    rule = _load_generator().patience_stop
    epochs = np.arange(0.0, 12.0)
    # Epoch 0 is not shown; best 0.5 at epoch 2; equal values do not improve (min_delta 0).
    accuracy = np.array([0.9, 0.1, 0.5, 0.5, 0.4, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert rule(epochs, accuracy, 3) == 5  # waits 1, 2, 3 at epochs 3, 4, 5
    assert rule(epochs, accuracy, 4) == 10  # epoch 6 improves; waits at 7, 8, 9, 10
    assert rule(epochs, accuracy, 6) is None
    assert rule(epochs, np.linspace(0, 1, 12), 1) is None  # always improving
