"""The shipped training runs are what the README and the findings say they are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from dynatrain.archive import format as fmt
from dynatrain.archive.reader import open_archive
from dynatrain.measures.stability import accuracy_plateau

ROOT = Path(__file__).resolve().parent.parent
RUNS = sorted((ROOT / "sample_data").glob("*.h5"))
NETWORKS = {"mlp", "cnn", "resnet", "vit"}
TASKS = {"digits", "digits-hard"}


def test_every_network_and_task_has_five_seeds_and_the_readme_run_exists():
    cells = Counter()
    for path in RUNS:
        with open_archive(path) as archive:
            meta = archive.metadata
        expected = f"{meta['model']}-{meta['dataset']}-seed{meta['seed']}"
        assert path.stem == meta["run_id"] == expected
        cells[(meta["model"], meta["dataset"])] += 1
    assert set(cells) == {(net, task) for net in NETWORKS for task in TASKS}
    assert min(cells.values()) >= 5
    assert (ROOT / "sample_data" / "mlp-digits-seed1.h5").is_file()  # the README's first command


@pytest.mark.parametrize("path", RUNS, ids=[path.stem for path in RUNS])
def test_a_run_is_complete_pooled_from_epoch_0_and_plateaus_mid_run(path):
    with open_archive(path) as archive:
        meta = archive.metadata
        epochs = archive.epochs
        accuracy = archive.metric("val_accuracy")
        names = archive.layer_names
    assert epochs[0] == 0 and len(epochs) == meta["expected_checkpoints"] == meta["epochs"] + 1
    with h5py.File(path, "r") as f:
        for name in names:
            activations = f["layers"][name]["activations"]
            assert activations.dtype == np.float16
            assert activations.ndim == 3, name  # (checkpoints, probe samples, features)
            pooling = f["layers"][name].attrs[fmt.POOLING_ATTR]
            assert pooling in ("spatial_mean", "token_mean", "none")
    if meta["model"] == "resnet":  # the stem, at least 8 residual blocks, the head
        assert sum(name.startswith("layer") for name in names) >= 8
    if meta["model"] == "vit":  # the encoder's token sequences are averaged over tokens
        with h5py.File(path, "r") as f:
            assert f["layers"]["encoder.layers.0"].attrs[fmt.POOLING_ATTR] == "token_mean"
    plateau = accuracy_plateau(accuracy)
    assert plateau is not None and 15 <= epochs[plateau] <= 90, epochs[plateau]
    assert np.nanmax(accuracy) > 0.3  # learnt something: chance is 0.1
