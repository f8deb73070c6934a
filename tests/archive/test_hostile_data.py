"""Values that would be altered silently are refused; stale copies of metadata ignored.

Complex epochs, metrics, signals or activations, and steps that are not whole
numbers used to be cast (imaginary parts dropped, NaN turned into an integer) while
``validate`` said "ok". A consolidated ``.zmetadata`` that a writer did not update
used to hide checkpoints.
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import zarr
import zarr.errors
from cli_checks import assert_one_line_error, assert_validate_lists
from plain_archives import FORMAT, write_plain_archive

from dynatrain import open_archive
from dynatrain.archive.validate import validate_archive
from dynatrain.errors import ArchiveError
from dynatrain.signals import read_signals

T = 30


def _layers() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(T, 4, 3)), "b": rng.normal(size=(T, 4))}


def _replace(path, key, values) -> None:
    """Store ``values`` at ``key`` as they are (no cast), in either back end."""
    if path.suffix == ".h5":
        with h5py.File(path, "r+") as f:
            if key in f:
                del f[key]
            f[key] = values
    else:
        root = zarr.open_group(str(path), mode="r+")
        if key in root:
            del root[key]
        root.create_array(key, shape=values.shape, dtype=values.dtype)[...] = values


CASES = {
    "complex-epochs": ("checkpoints/epoch", np.arange(1, T + 1) + 0.5j, "checkpoints/epoch must"),
    "complex-metric": ("metrics/val_accuracy", np.ones(T) * (1 + 2j), "metric 'val_accuracy'"),
    "complex-signal": ("layers/b/signal", np.ones(T) * 1j, "layer 'b' signal must be"),
    "complex-activations": (
        "layers/a/activations",
        np.ones((T, 4, 3), dtype=np.complex64),
        "layer 'a' activations have dtype complex64",
    ),
    "nan-step": ("checkpoints/step", np.where(np.arange(T) == 5, np.nan, np.arange(T)), "has nan"),
    "fractional-step": (
        "checkpoints/step",
        np.where(np.arange(T) == 7, 7.5, np.arange(T)),
        "checkpoints/step must hold whole numbers, has 7.5 at checkpoint 7",
    ),
    "inf-step": ("checkpoints/step", np.full(T, np.inf), "has inf at checkpoint 0"),
    "text-epochs": ("checkpoints/epoch", np.array([b"1"] * T), "must hold real numbers"),
}


@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
@pytest.mark.parametrize("case", list(CASES))
def test_values_that_would_be_altered_are_refused(cli, tmp_path, name, case):
    key, values, phrase = CASES[case]
    if name.endswith(".zarr") and values.dtype.kind == "S":
        pytest.skip("zarr stores fixed-length bytes differently; HDF5 covers the case")
    path = write_plain_archive(
        tmp_path / name, layers=_layers(), metrics={"val_accuracy": np.ones(T)}
    )
    _replace(path, key, values)
    for command in ("inspect", "signals"):
        assert_one_line_error(cli(command, path), path, phrase)
    assert_validate_lists(cli("validate", path), path, phrase)


def test_float_steps_holding_whole_numbers_are_read(tmp_path):
    path = write_plain_archive(tmp_path / "steps.h5", layers=_layers())
    _replace(path, "checkpoints/step", np.arange(T, dtype=np.float64) * 100)
    with open_archive(path) as archive:
        assert archive.steps.dtype == np.int64
        np.testing.assert_array_equal(archive.steps, np.arange(T) * 100)


def test_non_finite_epoch_is_named(tmp_path):
    epochs = np.arange(1.0, T + 1)
    epochs[12] = np.nan
    path = write_plain_archive(tmp_path / "nan.h5", layers=_layers(), epochs=epochs)
    report = validate_archive(path)
    assert report.problems == ["checkpoints/epoch holds non-finite values (checkpoint 12: nan)"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_stale_consolidated_metadata_is_not_trusted(cli, tmp_path, zarr_format):
    """Consolidated when 10 checkpoints were written, then grown to 30 without
    consolidating again: all 30 are read, and ``validate`` agrees."""
    rng = np.random.default_rng(4)
    path = tmp_path / "stale.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.attrs.update({**FORMAT, "run_id": "stale"})
    root.require_group("layers").attrs["order"] = ["a"]
    epoch = root.create_array("checkpoints/epoch", shape=(10,), chunks=(1024,), dtype="f8")
    epoch[:] = np.arange(1.0, 11)
    activations = root.create_array(
        "layers/a/activations", shape=(10, 4), chunks=(1, 4), dtype="f8"
    )
    activations[:] = rng.normal(size=(10, 4))
    with warnings.catch_warnings():  # format 3: "not part of the specification"
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(str(path))
    epoch.resize((T,))
    epoch[:] = np.arange(1.0, T + 1)
    values = rng.normal(size=(T, 4))
    activations.resize((T, 4))
    activations[:] = values
    with warnings.catch_warnings():  # zarr itself, trusting the consolidated copy, sees 10
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        assert zarr.open_group(str(path), mode="r")["checkpoints/epoch"].shape == (10,)
    with open_archive(path) as archive:
        assert archive.n_checkpoints == T
    np.testing.assert_allclose(read_signals(path).values[0], values.mean(axis=1))
    result = cli("validate", path)
    assert result.exit_code == 0
    assert f"ok {path} ({T} checkpoints" in result.stdout


@pytest.mark.parametrize(
    ("zarr_format", "encoding", "key"),
    [
        (3, {"name": "default", "separator": "/"}, "c/12/0/0"),
        (3, {"name": "default", "separator": "."}, "c.12.0.0"),
        (3, {"name": "v2", "separator": "."}, "12.0.0"),
        (3, {"name": "v2", "separator": "/"}, "12/0/0"),
        (2, ".", "12.0.0"),
        (2, "/", "12/0/0"),
    ],
)
def test_missing_chunk_found_in_every_key_encoding(tmp_path, zarr_format, encoding, key):
    """The chunk keys of the Zarr specifications (format 3 ``default`` and ``v2``
    encodings, format 2 with either dimension separator) are all understood."""
    path = tmp_path / "keys.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.attrs.update(FORMAT)
    root.require_group("layers").attrs["order"] = ["a"]
    root.create_array("checkpoints/epoch", shape=(T,), dtype="f8")[:] = np.arange(1.0, T + 1)
    kwargs = (
        {"chunk_key_encoding": encoding}
        if zarr_format == 3
        else {"chunk_key_encoding": {"name": "v2", "separator": encoding}}
    )
    array = root.create_array(
        "layers/a/activations",
        shape=(T, 4, 3),
        chunks=(1, 4, 3),
        dtype="f8",
        fill_value=np.nan,
        **kwargs,
    )
    array[...] = np.ones((T, 4, 3))
    (path / "layers/a/activations" / key).unlink()
    report = validate_archive(path)
    assert report.problems == [
        "layer 'a' activations: the chunk of checkpoint 12 (epoch 13) is missing from the"
        " store (lost data: a read would give the fill value NaN, as if the run had diverged)"
    ]


def test_url_stores_are_read_through_fsspec_with_the_same_checks():
    """A Zarr URL (here fsspec's in-memory file system) is read through zarr's public
    FsspecStore: the same values, the same missing-chunk report, the same bound on
    what a chunk may decompress to."""
    import fsspec
    from numcodecs import Zstd

    url = "memory://dynatrain-test/url-run.zarr"
    fs = fsspec.filesystem("memory")
    try:
        root = zarr.open_group(url, mode="w")
        root.attrs.update(FORMAT)
        root.require_group("layers").attrs["order"] = ["a"]
        root.create_array("checkpoints/epoch", shape=(T,), dtype="f8")[:] = np.arange(1.0, T + 1)
        values = np.random.default_rng(6).normal(size=(T, 4, 3))
        root.create_array(
            "layers/a/activations", shape=(T, 4, 3), chunks=(1, 4, 3), dtype="f8", fill_value=np.nan
        )[...] = values
        signals = read_signals(url)
        np.testing.assert_allclose(signals.values[0], values.reshape(T, -1).mean(axis=1))
        fs.rm("/dynatrain-test/url-run.zarr/layers/a/activations/c/4/0/0")
        assert validate_archive(url).problems == [
            "layer 'a' activations: the chunk of checkpoint 4 (epoch 5) is missing from the"
            " store (lost data: a read would give the fill value NaN, as if the run had diverged)"
        ]
        fs.pipe(
            "/dynatrain-test/url-run.zarr/layers/a/activations/c/5/0/0",
            Zstd(level=1).encode(bytes(2**22)),
        )
        with pytest.raises(ArchiveError, match="would decompress to 4194304 bytes"):
            read_signals(url, epochs=(6, 7))
    finally:
        if fs.exists("/dynatrain-test"):
            fs.rm("/dynatrain-test", recursive=True)
