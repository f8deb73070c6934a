"""Metadata attributes of any type come out as plain JSON data, never an internal error."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from plain_archives import write_plain_archive

from dynatrain import open_archive
from dynatrain.archive.validate import validate_archive


def _layers(n=30):
    rng = np.random.default_rng(5)
    return {"a": rng.normal(size=(n, 4, 3)), "b": rng.normal(size=(n, 4))}


@pytest.fixture
def odd_metadata(tmp_path):
    path = write_plain_archive(tmp_path / "odd.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f.attrs["ref"] = f["layers"].ref
        f.attrs["refs"] = np.array([f["layers"].ref, f["checkpoints"].ref], dtype=h5py.ref_dtype)
        f.attrs["region"] = f["checkpoints/epoch"].regionref[1:3]
        f.attrs["complex"] = 1 + 2j
        f.attrs["lrs"] = np.array([0.1, 0.01, 0.001])
        f.attrs["grid"] = np.arange(4, dtype=np.int8).reshape(2, 2)
        f.attrs["flags"] = np.array([True, False])
        f.attrs["names"] = np.array([b"fc1", b"fc2"])
        f.attrs["texts"] = np.array(["é", "b"], dtype=h5py.string_dtype())
        f.attrs["half"] = np.float16(0.5)
        f.attrs["nothing"] = h5py.Empty("f8")
        f.attrs["record"] = np.array((3, 2.5), dtype=[("seed", "i4"), ("lr", "f8")])
        f.attrs["one"] = np.array([7])
    return path


EXPECTED = {
    "ref": "<HDF5 object reference>",
    "refs": ["<HDF5 object reference>", "<HDF5 object reference>"],
    "region": "<HDF5 region reference>",
    "complex": "(1+2j)",
    "lrs": [0.1, 0.01, 0.001],
    "grid": [[0, 1], [2, 3]],
    "flags": [True, False],
    "names": ["fc1", "fc2"],
    "texts": ["é", "b"],
    "half": 0.5,
    "nothing": None,
    "record": {"seed": 3, "lr": 2.5},
    "one": [7],
}


def _plain(value):
    """Whether ``value`` is made only of JSON's own Python types."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, bool, int, float)


def test_metadata_is_plain_json(odd_metadata):
    with open_archive(odd_metadata) as archive:
        metadata = archive.metadata
        notes = archive.metadata_notes
    assert metadata == {"run_id": "odd", **EXPECTED}
    assert _plain(metadata)
    json.dumps(metadata, allow_nan=False)
    noted = sorted(note.split("'")[1] for note in notes)
    assert noted == ["complex", "ref", "refs", "region"]


@pytest.mark.parametrize("command", ["inspect", "analyze"])
def test_cli_prints_odd_metadata(cli, odd_metadata, command):
    result = cli(command, odd_metadata, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["metadata"] == {"run_id": "odd", **EXPECTED}


def test_validate_notes_values_shown_as_text(odd_metadata):
    report = validate_archive(odd_metadata)
    assert report.valid
    assert any("'ref'" in note and "Reference" in note for note in report.notes)


def test_zarr_metadata_stays_json(tmp_path):
    attrs = {"tags": ["a", "b"], "optim": {"name": "sgd", "lr": 0.1}, "seed": 3}
    path = write_plain_archive(tmp_path / "meta.zarr", layers=_layers(), attrs=attrs)
    with open_archive(path) as archive:
        assert archive.metadata == {"run_id": "meta", **attrs}
        assert archive.metadata_notes == []
