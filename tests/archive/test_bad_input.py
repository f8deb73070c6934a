"""Every kind of bad archive: exit code 2, one line naming the file and the problem,
no traceback, and the archive left exactly as it was."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from plain_archives import archive_untouched, write_plain_archive

from dynatrain import open_archive
from dynatrain.errors import ArchiveError


def _layers(n=30):
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(n, 4, 3)), "b": rng.normal(size=(n, 4))}


def missing_path(tmp: Path) -> Path:
    return tmp / "nowhere.h5"


def empty_file(tmp: Path) -> Path:
    path = tmp / "empty.h5"
    path.touch()
    return path


def not_hdf5(tmp: Path) -> Path:
    path = tmp / "notes.h5"
    path.write_text("epoch,loss\n1,0.5\n")
    return path


def truncated_hdf5(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "cut.h5", layers=_layers())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def directory_not_zarr(tmp: Path) -> Path:
    path = tmp / "plain.zarr"
    path.mkdir()
    (path / "readme.txt").write_text("not a store")
    return path


def corrupt_zarr_chunk(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "bad.zarr", layers=_layers())
    chunk = sorted((path / "layers" / "a" / "activations" / "c").rglob("*"))[-1]
    chunk.write_bytes(b"\x00garbage" * 3)
    return path


def wrong_format(tmp: Path) -> Path:
    return write_plain_archive(tmp / "other.h5", layers=_layers(), attrs={"format": "keras"})


def wrong_format_zarr(tmp: Path) -> Path:
    return write_plain_archive(tmp / "other.zarr", layers=_layers(), attrs={"format": "keras"})


def unknown_version(tmp: Path) -> Path:
    return write_plain_archive(tmp / "v9.zarr", layers=_layers(), attrs={"format_version": 9})


def unknown_version_hdf5(tmp: Path) -> Path:
    return write_plain_archive(tmp / "v9.h5", layers=_layers(), attrs={"format_version": 9})


def missing_epoch(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "noepoch.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["checkpoints/epoch"]
    return path


def epochs_not_increasing(tmp: Path) -> Path:
    epochs = np.arange(1.0, 31)
    epochs[10] = epochs[9]
    return write_plain_archive(tmp / "repeat.h5", layers=_layers(), epochs=epochs)


def layer_too_short(tmp: Path) -> Path:
    layers = _layers()
    layers["b"] = layers["b"][:20]
    return write_plain_archive(tmp / "short.h5", layers=layers, epochs=np.arange(1.0, 31))


def non_numeric_activations(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "text.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/b/activations"]
        f["layers/b/activations"] = np.full((30, 4), "x", dtype="S1")
    return path


def order_names_missing_layer(tmp: Path) -> Path:
    return write_plain_archive(tmp / "ghost.zarr", layers=_layers(), order=["a", "b", "ghost"])


def no_layers(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "nolayers.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers"]
    return path


def empty_layer_order(tmp: Path) -> Path:
    return write_plain_archive(tmp / "noorder.h5", layers=_layers(), order=[])


def external_link(tmp: Path) -> Path:
    secret = write_plain_archive(tmp / "elsewhere.h5", layers=_layers())
    path = write_plain_archive(tmp / "linked.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/b"]
        f["layers/b"] = h5py.ExternalLink(str(secret), "/layers/b")
    return path


def virtual_dataset_elsewhere(tmp: Path) -> Path:
    source = tmp / "source.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.ones((30, 4))
    path = write_plain_archive(tmp / "virtual.h5", layers=_layers())
    layout = h5py.VirtualLayout(shape=(30, 4), dtype="f8")
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(30, 4))
    with h5py.File(path, "r+") as f:
        del f["layers/b/activations"]
        f["layers/b"].create_virtual_dataset("activations", layout)
    return path


def external_raw_storage(tmp: Path) -> Path:
    raw = tmp / "raw.bin"
    raw.write_bytes(np.ones((30, 4)).tobytes())
    path = write_plain_archive(tmp / "external.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/b/activations"]
        f["layers/b"].create_dataset(
            "activations", shape=(30, 4), dtype="f8", external=[(str(raw), 0, 30 * 4 * 8)]
        )
    return path


#: A value planted in the files that links point to: it must never be read.
SECRET = 4242.0


def _secret_file(tmp: Path) -> Path:
    """Another file, laid out like an archive, whose data must never be read."""
    secret = write_plain_archive(
        tmp / "secret.h5",
        layers={"b": np.full((30, 4), SECRET)},
        metrics={"val_accuracy": np.full(30, SECRET)},
    )
    with h5py.File(secret, "r+") as f:
        f["data"] = np.full((30, 4), SECRET)
    return secret


def soft_link_through_external_link(tmp: Path) -> Path:
    """/layers/b -> /hidden/b, where /hidden is an external link to another file."""
    secret = _secret_file(tmp)
    path = write_plain_archive(tmp / "soft.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f["hidden"] = h5py.ExternalLink(str(secret), "/layers")
        del f["layers/b"]
        f["layers/b"] = h5py.SoftLink("/hidden/b")
    return path


def relative_soft_link_through_external_link(tmp: Path) -> Path:
    secret = _secret_file(tmp)
    path = write_plain_archive(tmp / "relsoft.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f["layers/stash"] = h5py.ExternalLink(str(secret), "/layers")
        del f["layers/b"]
        f["layers/b"] = h5py.SoftLink("stash/b")  # relative to /layers
    return path


def soft_link_through_missing_external_file(tmp: Path) -> Path:
    """The external file does not exist: refused as a link, not 'no such layer'."""
    path = write_plain_archive(tmp / "ghostlink.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f["hidden"] = h5py.ExternalLink(str(tmp / "does-not-exist.h5"), "/layers")
        del f["layers/b"]
        f["layers/b"] = h5py.SoftLink("/hidden/b")
    return path


def checkpoints_through_external_link(tmp: Path) -> Path:
    secret = _secret_file(tmp)
    path = write_plain_archive(tmp / "ckpt.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f["hidden"] = h5py.ExternalLink(str(secret), "/")
        del f["checkpoints/epoch"]
        f["checkpoints/epoch"] = h5py.SoftLink("/hidden/checkpoints/epoch")
    return path


def checkpoints_group_through_external_link(tmp: Path) -> Path:
    secret = _secret_file(tmp)
    path = write_plain_archive(tmp / "ckptgroup.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f["hidden"] = h5py.ExternalLink(str(secret), "/checkpoints")
        del f["checkpoints"]
        f["checkpoints"] = h5py.SoftLink("/hidden")
    return path


def metric_through_external_link(tmp: Path) -> Path:
    secret = _secret_file(tmp)
    path = write_plain_archive(
        tmp / "metric-link.h5", layers=_layers(), metrics={"val_accuracy": np.ones(30)}
    )
    with h5py.File(path, "r+") as f:
        f["hidden"] = h5py.ExternalLink(str(secret), "/metrics")
        del f["metrics/val_accuracy"]
        f["metrics/val_accuracy"] = h5py.SoftLink("/hidden/val_accuracy")
    return path


def virtual_source_through_external_link(tmp: Path) -> Path:
    """A virtual dataset mapping '.' (this file), at a path that leaves the file."""
    secret = _secret_file(tmp)
    path = write_plain_archive(tmp / "vds-dot.h5", layers=_layers())
    layout = h5py.VirtualLayout(shape=(30, 4), dtype="f8")
    layout[:] = h5py.VirtualSource(".", "/hidden/data", shape=(30, 4))
    with h5py.File(path, "r+") as f:
        f["hidden"] = h5py.ExternalLink(str(secret), "/")
        del f["layers/b/activations"]
        f["layers/b"].create_virtual_dataset("activations", layout)
    return path


def soft_link_to_virtual_dataset_elsewhere(tmp: Path) -> Path:
    secret = _secret_file(tmp)
    path = write_plain_archive(tmp / "soft-vds.h5", layers=_layers())
    layout = h5py.VirtualLayout(shape=(30, 4), dtype="f8")
    layout[:] = h5py.VirtualSource(str(secret), "data", shape=(30, 4))
    with h5py.File(path, "r+") as f:
        f.create_virtual_dataset("stash", layout)
        del f["layers/b/activations"]
        f["layers/b/activations"] = h5py.SoftLink("/stash")
    return path


def soft_link_to_external_raw_storage(tmp: Path) -> Path:
    raw = tmp / "raw.bin"
    raw.write_bytes(np.full((30, 4), SECRET).tobytes())
    path = write_plain_archive(tmp / "soft-raw.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        f.create_dataset("stash", shape=(30, 4), dtype="f8", external=[(str(raw), 0, 960)])
        del f["layers/b/activations"]
        f["layers/b/activations"] = h5py.SoftLink("/stash")
    return path


def soft_link_loop(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "loop.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/b"]
        f["layers/b"] = h5py.SoftLink("/layers/c")
        f["layers/c"] = h5py.SoftLink("/layers/b")
    return path


def layer_name_with_slash(tmp: Path) -> Path:
    """``order`` comes from the archive: a name with '/' must not walk the tree."""
    return write_plain_archive(tmp / "slash.h5", layers=_layers(), order=["a", "b/../../x"])


def metric_too_short(tmp: Path) -> Path:
    return write_plain_archive(
        tmp / "metric.h5", layers=_layers(), metrics={"val_accuracy": np.ones(10)}
    )


def activations_one_dimensional(tmp: Path) -> Path:
    path = write_plain_archive(tmp / "flat.zarr", layers=_layers())
    root = zarr.open_group(str(path), mode="r+")
    del root["layers/b/activations"]
    root.create_array("layers/b/activations", shape=(30,), dtype="f4")[:] = 1
    return path


CASES = {
    missing_path: "no such file",
    empty_file: "empty file",
    not_hdf5: "not an HDF5 file",
    truncated_hdf5: "truncated or corrupt",
    directory_not_zarr: "not a Zarr store",
    corrupt_zarr_chunk: "corrupt",
    wrong_format: "not a dynatrain archive",
    wrong_format_zarr: "not a dynatrain archive",
    unknown_version: "unsupported format_version 9",
    unknown_version_hdf5: "unsupported format_version 9",
    missing_epoch: "missing checkpoints/epoch",
    epochs_not_increasing: "not strictly increasing",
    layer_too_short: "layer 'b' activations has 20 checkpoints, the archive claims 30",
    non_numeric_activations: "dtype |S1",
    order_names_missing_layer: "no such layer group",
    no_layers: "no layers",
    empty_layer_order: "no layers",
    external_link: "external link",
    virtual_dataset_elsewhere: "virtual dataset",
    external_raw_storage: "external file",
    soft_link_through_external_link: "leads through /hidden, which is an external link",
    relative_soft_link_through_external_link: "external link",
    soft_link_through_missing_external_file: "external link",
    checkpoints_through_external_link: "external link",
    checkpoints_group_through_external_link: "external link",
    metric_through_external_link: "external link",
    virtual_source_through_external_link: "external link",
    soft_link_to_virtual_dataset_elsewhere: "virtual dataset",
    soft_link_to_external_raw_storage: "external file",
    soft_link_loop: "more than 16 soft links",
    layer_name_with_slash: "not valid layer names",
    metric_too_short: "metric 'val_accuracy' has 10 checkpoints",
    activations_one_dimensional: "must have shape [T, N, ...]",
}


@pytest.fixture(params=list(CASES), ids=[case.__name__ for case in CASES])
def bad_archive(request, tmp_path):
    path = request.param(tmp_path)
    return path, CASES[request.param]


def _assert_one_line_error(result, path, phrase):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert phrase in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


#: Problems in the data itself: `inspect` reads only the structure and does not see them.
DATA_PROBLEMS = {"bad.zarr"}


@pytest.mark.parametrize("command", ["inspect", "signals", "analyze"])
def test_cli_reports_bad_archive_in_one_line(cli, bad_archive, command):
    path, phrase = bad_archive
    if command == "inspect" and path.name in DATA_PROBLEMS:
        pytest.skip("inspect reads no chunk data")
    with archive_untouched(path):
        result = cli(command, path)
    _assert_one_line_error(result, path, phrase)
    assert str(SECRET) not in result.stdout


def test_validate_lists_the_problem(cli, bad_archive):
    path, phrase = bad_archive
    with archive_untouched(path):
        result = cli("validate", path)
    assert result.exit_code == 2
    assert any(phrase in line and str(path) in line for line in result.stdout.splitlines())


def test_debug_shows_the_traceback(cli, tmp_path):
    path = wrong_format(tmp_path)
    with pytest.raises(ArchiveError, match="not a dynatrain archive"):
        cli("inspect", path, "--debug")


def test_validate_reports_every_structural_problem(tmp_path):
    layers = _layers()
    layers["b"] = layers["b"][:20]
    path = write_plain_archive(
        tmp_path / "two.h5", layers=layers, order=["a", "b", "c"], metrics={"acc": np.ones(5)}
    )
    with pytest.raises(ArchiveError) as info:
        open_archive(path)
    assert len(info.value.problems) == 3


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95])
def test_truncation_anywhere_is_a_clean_error(cli, tmp_path, fraction):
    path = write_plain_archive(
        tmp_path / "cut.h5", layers=_layers(), metrics={"acc": np.linspace(0, 1, 30)}
    )
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    result = cli("signals", path)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unreadable_file_is_a_clean_error(cli, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = write_plain_archive(tmp_path / "locked.h5", layers=_layers())
    path.chmod(0)
    _assert_one_line_error(cli("inspect", path), path, "permission denied")


def test_stray_entries_in_zarr_groups_are_ignored_quietly(cli, tmp_path):
    """What a killed zarr writer leaves (``*.partial`` temporary files) and other stray
    entries are ignored, as the format says, without zarr's warning (an error under
    this suite's filterwarnings=error)."""
    path = write_plain_archive(
        tmp_path / "stray.zarr", layers=_layers(), metrics={"acc": np.linspace(0, 1, 30)}
    )
    (path / "metrics" / "zarr.0123456789abcdef.partial").write_bytes(b'{"zarr_fo')
    (path / "metrics" / "acc.partial").write_text("")
    (path / "metrics" / "notes.txt").write_text("stray")
    (path / "metrics" / "empty-dir").mkdir()
    (path / "zarr.fedcba9876543210.partial").write_bytes(b"")
    with open_archive(path) as archive:
        assert archive.metric_names == ("acc",)
    result = cli("inspect", path, "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_corrupt_metadata_of_a_zarr_member_is_a_clean_error(cli, tmp_path):
    metrics = {f"m{i:02d}": np.ones(30) for i in range(20)}
    path = write_plain_archive(tmp_path / "meta.zarr", layers=_layers(), metrics=metrics)
    (path / "metrics" / "m07" / "zarr.json").write_text("{garbage")
    _assert_one_line_error(cli("inspect", path), path, "cannot read /metrics/m07")
