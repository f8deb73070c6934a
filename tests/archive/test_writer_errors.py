"""ArchiveWriter and hostile or unlucky input: one clear error, nothing half-written.

Bad arguments and bad checkpoints raise ``InputError`` (one line) before anything
is written; a full disk raises one ``ArchiveError`` naming the archive, keeps every
checkpoint counted before, and leaves a process that exits cleanly (an HDF5 writer
used to segfault at exit); float overflow at write is said, once per layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import h5py
import numpy as np
import pytest

from dynatrain import ArchiveWriter, open_archive
from dynatrain.errors import ArchiveError, InputError

SUFFIXES = [".h5", ".zarr"]
GOOD = {"a": np.zeros((4, 3), np.float32)}


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message, repr(message)
    return message


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"mode": "a"}, "invalid mode 'a'"),
        ({"mode": None}, "invalid mode None"),
        ({"activation_dtype": "int8"}, "invalid activation_dtype 'int8'"),
        ({"compression": "zstd"}, "invalid compression 'zstd'"),
        ({"chunk_checkpoints": 0}, "chunk_checkpoints must be an integer >= 1, got 0"),
        ({"chunk_checkpoints": "4"}, "chunk_checkpoints must be an integer >= 1, got '4'"),
        ({"chunk_checkpoints": True}, "chunk_checkpoints must be an integer >= 1, got True"),
        ({"durable_every": 0}, "durable_every must be an integer >= 1, got 0"),
        ({"durable_every": 2.5}, "durable_every must be an integer >= 1, got 2.5"),
        ({"expected_checkpoints": -3}, "expected_checkpoints must be an integer >= 1, got -3"),
        ({"expected_checkpoints": 1e3}, "expected_checkpoints must be an integer >= 1"),
        ({"metadata": {"format": "x"}}, "invalid metadata key 'format'"),
        ({"metadata": {"": 1}}, "invalid metadata key ''"),
        ({"metadata": {1: 1}}, "invalid metadata key 1"),
        ({"metadata": {"tags": [1, 2]}}, "metadata 'tags' must be a string, number or boolean"),
        ({"metadata": {"n": 2**70}}, "metadata 'n' = 1180591620717411303424 does not fit"),
        ({"metadata": "run1"}, "metadata must be a mapping"),
        ({"metadata": {"expected_checkpoints": 0}}, "'expected_checkpoints' must be an integer"),
        (
            {"metadata": {"expected_checkpoints": 10}, "expected_checkpoints": 20},
            "expected_checkpoints=20 and metadata 'expected_checkpoints'=10 disagree",
        ),
    ],
)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_bad_arguments_are_one_line_input_errors(tmp_path, suffix, kwargs, words):
    path = tmp_path / f"run{suffix}"
    with pytest.raises(InputError) as caught:
        ArchiveWriter(path, **kwargs)
    assert words in one_line(caught.value)
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing left behind


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("run.txt", "cannot tell the back end from the suffix"),
        ("s3://bucket/run.h5", "HDF5 archives are written to local paths"),
        (None, "invalid archive path None"),
    ],
)
def test_bad_paths_are_input_errors(tmp_path, monkeypatch, path, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as caught:
        ArchiveWriter(path)
    assert words in one_line(caught.value)


# -- checkpoints ---------------------------------------------------------------------------------

BAD_CHECKPOINTS = [
    ({"epoch": "one"}, "epoch must be a real number, got 'one'"),
    ({"epoch": None}, "epoch must be a real number, got None"),
    ({"epoch": 10**400}, "epoch must be a real number"),
    ({"epoch": 1 + 2j}, "epoch must be a real number"),
    ({"epoch": float("inf")}, "epoch must be finite and greater than the previous one"),
    ({"epoch": 0}, "epoch must be finite and greater than the previous one (1), got 0"),
    ({"step": 1.5}, "step must be an integer (int64), got 1.5"),
    ({"step": "7"}, "step must be an integer (int64), got '7'"),
    ({"step": 2**70}, "step must be an integer (int64)"),
    ({"step": float("nan")}, "step must be an integer (int64), got nan"),
    ({"activations": {"a": np.zeros((4, 3), complex)}}, "must be real numbers, got dtype complex"),
    ({"activations": {"a": np.array([["x"] * 3] * 4)}}, "must be real numbers, got dtype <U1"),
    ({"activations": {"a": 3.0}}, "must have shape (N, ...) with N >= 1, got ()"),
    ({"activations": {"a": np.zeros((4, 2))}}, "shape (4, 2), the first checkpoint had (4, 3)"),
    ({"activations": [np.zeros((4, 3))]}, "activations must be a mapping of layer name to values"),
    ({"activations": {"b": np.zeros((4, 3))}}, "layers differ from the first checkpoint"),
    ({"metrics": {"acc": "high"}}, "metric 'acc' must be a real number, got 'high'"),
    ({"metrics": {"acc": 1j}}, "metric 'acc' must be a real number"),
    ({"metrics": {"acc": 10**400}}, "metric 'acc' must be a real number"),
    ({"metrics": {"other": 1.0}}, "metric(s) other were not in the first checkpoint"),
    ({"signals": {"a": "x"}}, "signal of layer 'a' must be a real number"),
]


@pytest.mark.parametrize(("change", "words"), BAD_CHECKPOINTS)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_bad_checkpoint_is_refused_before_anything_is_written(tmp_path, suffix, change, words):
    path = tmp_path / f"run{suffix}"
    with ArchiveWriter(path) as writer:
        good = {"activations": GOOD, "signals": {"a": 0.5}, "metrics": {"acc": 0.5}, "step": 3}
        writer.append(epoch=1, **good)
        with pytest.raises(InputError) as caught:
            writer.append(**{"epoch": 2, **good, **change})
        message = one_line(caught.value)
        assert message.startswith(f"{path}: checkpoint 1: ")
        assert words in message, message
        writer.append(epoch=2, **good)  # the writer goes on
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 2
        np.testing.assert_array_equal(archive.epochs, [1, 2])


@pytest.mark.parametrize(
    ("first", "words"),
    [
        ({"activations": {"a/b": np.zeros(3)}}, "invalid layer name 'a/b'"),
        ({"activations": {".a": np.zeros(3)}}, "invalid layer name '.a'"),
        ({"activations": {"zarr.json": np.zeros(3)}}, "invalid layer name 'zarr.json'"),
        ({"activations": {}}, "give activations or signals for at least one layer"),
        ({"activations": GOOD, "metrics": {"": 1.0}}, "invalid metric name ''"),
        ({"activations": GOOD, "metrics": {"val//acc": 1.0}}, "invalid metric name 'val//acc'"),
        ({"activations": GOOD, "metrics": {"/acc": 1.0}}, "invalid metric name '/acc'"),
        ({"activations": GOOD, "metrics": {"val/.acc": 1.0}}, "invalid metric name 'val/.acc'"),
        ({"activations": GOOD, "metrics": {"a/zarr.json": 1.0}}, "invalid metric name"),
        ({"activations": GOOD, "metrics": {"/".join("abcdefghi"): 1.0}}, "at most 8 parts"),
        (
            {"activations": GOOD, "metrics": {"val": 1.0, "val/acc": 2.0}},
            "metrics 'val' and 'val/acc' clash",
        ),
    ],
)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_bad_names_at_the_first_append(tmp_path, suffix, first, words):
    path = tmp_path / f"run{suffix}"
    with ArchiveWriter(path) as writer:
        with pytest.raises(InputError) as caught:
            writer.append(epoch=1, **first)
        assert words in one_line(caught.value)
        writer.append(epoch=1, activations=GOOD, metrics={"val/acc": 0.25})  # then a good one
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 1 and archive.metric_names == ("val/acc",)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_metric_names_with_slashes_round_trip(tmp_path, suffix):
    """``val/acc`` (the TensorBoard and W&B habit) is stored as nested groups and read back
    under its own name, next to plain names; ``None`` is a metric not measured."""
    path = tmp_path / f"run{suffix}"
    names = ["val/acc", "val/loss", "train/loss/total", "lr"]
    with ArchiveWriter(path) as writer:
        for t in range(5):
            metrics = {name: (i + 1) * 10 + t for i, name in enumerate(names)}
            metrics["lr"] = None if t == 2 else metrics["lr"]
            writer.append(epoch=t, activations=GOOD, metrics=metrics)
    with open_archive(path) as archive:
        assert archive.metric_names == tuple(sorted(names))
        for i, name in enumerate(names):
            expected = (i + 1) * 10 + np.arange(5.0)
            if name == "lr":
                expected[2] = np.nan
            np.testing.assert_array_equal(archive.metric(name), expected)
    if suffix == ".h5":
        with h5py.File(path, "r") as f:  # nested groups, as plain h5py code would write them
            assert isinstance(f["metrics/train/loss"], h5py.Group)
            np.testing.assert_array_equal(f["metrics/val/acc"][:], 10 + np.arange(5.0))


# -- float overflow --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_float16_overflow_is_said_once_per_layer(tmp_path, suffix):
    path = tmp_path / f"half{suffix}"
    big = np.array([[1.0, 7e4, -1e5], [2.0, 3.0, 4.0]])  # two values beyond ±65504
    with ArchiveWriter(path, activation_dtype="float16") as writer:
        with pytest.warns(RuntimeWarning) as caught:
            writer.append(epoch=0, activations={"a": big, "b": np.ones((2, 3))})
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "2 finite activation value(s) of layer 'a' exceed float16's range" in message
        assert "stored as ±inf" in message and "activation_dtype=" in message
        assert caught[0].filename == __file__  # points at the caller's append
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            writer.append(epoch=1, activations={"a": big, "b": np.ones((2, 3))})  # said once
            inf_input = np.array([[np.inf, 1.0, 2.0], [np.nan, 1.0, 2.0]])
            writer.append(epoch=2, activations={"a": inf_input, "b": inf_input})  # not overflow
        with pytest.warns(RuntimeWarning, match="layer 'b' exceed float16's range"):
            writer.append(epoch=3, activations={"a": big, "b": big})
    with open_archive(path) as archive:
        values = next(archive.iter_activations("a")).values
        np.testing.assert_array_equal(values[0], [1.0, np.inf, -np.inf, 2.0, 3.0, 4.0])


def test_float32_overflow_from_float64_is_said_too(tmp_path):
    with ArchiveWriter(tmp_path / "f32.h5", activation_dtype="float32") as writer:
        with pytest.warns(RuntimeWarning, match="1 finite activation value.* float32's range"):
            writer.append(epoch=0, activations={"a": np.array([1e300, 1.0])})


# -- expected_checkpoints --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_expected_checkpoints_as_argument_or_metadata_gives_the_same_file(tmp_path, suffix):
    paths = [tmp_path / f"argument{suffix}", tmp_path / f"metadata{suffix}"]
    options = [
        {"metadata": {"run_id": "x", "seed": 1}, "expected_checkpoints": 500},
        {"metadata": {"expected_checkpoints": 500, "run_id": "x", "seed": 1}},
    ]
    for path, kwargs in zip(paths, options, strict=True):
        with ArchiveWriter(path, **kwargs) as writer:
            for t in range(3):
                writer.append(epoch=t, activations=GOOD)
    if suffix == ".h5":
        assert paths[0].read_bytes() == paths[1].read_bytes()
        with h5py.File(paths[0], "r") as f:
            assert f.attrs["expected_checkpoints"] == 500
    else:
        documents = [json.loads((path / "zarr.json").read_text()) for path in paths]
        assert documents[0] == documents[1]
        assert documents[0]["attributes"]["expected_checkpoints"] == 500
    with open_archive(paths[0]) as archive:
        assert archive.metadata["expected_checkpoints"] == 500


# -- destinations --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_parent_folders_are_created(tmp_path, suffix):
    path = tmp_path / "runs" / "deep" / f"run{suffix}"
    with ArchiveWriter(path) as writer:
        writer.append(epoch=0, activations=GOOD)
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 1


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_parent_that_is_a_file_is_one_clear_error(tmp_path, suffix):
    (tmp_path / "notes.txt").write_text("x")
    path = tmp_path / "notes.txt" / "runs" / f"run{suffix}"
    with pytest.raises(ArchiveError) as caught:
        ArchiveWriter(path)
    message = one_line(caught.value)
    assert message == f"{path}: cannot create the archive: {tmp_path / 'notes.txt'} is not a folder"


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_an_existing_archive_needs_mode_w(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    with ArchiveWriter(path) as writer:
        writer.append(epoch=0, activations=GOOD)
    with pytest.raises(InputError) as caught:
        ArchiveWriter(path)
    assert one_line(caught.value) == f"{path}: already exists (replace it with mode='w')"
    assert not (tmp_path / f"run{suffix}.incomplete").exists()
    with open_archive(path) as archive:  # untouched
        assert archive.n_checkpoints == 1


def test_mode_w_never_empties_a_folder_that_is_not_a_zarr_store(tmp_path):
    folder = tmp_path / "photos.zarr"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(ArchiveError) as caught:
        ArchiveWriter(folder, mode="w")
    assert "is a folder but not a Zarr store; refusing to replace it" in one_line(caught.value)
    assert (folder / "holiday.jpg").read_bytes() == b"jpeg"


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("dir.h5", "mkdir", "is a directory; an HDF5 archive is a file"),
        ("file.zarr", "file", "is a file; a Zarr archive is a directory store"),
    ],
)
def test_the_wrong_kind_of_thing_at_the_path(tmp_path, name, make, words):
    path = tmp_path / name
    path.mkdir() if make == "mkdir" else path.write_bytes(b"x")
    with pytest.raises(ArchiveError) as caught:
        ArchiveWriter(path, mode="w")
    assert words in one_line(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_read_only_folder_is_one_clear_error(tmp_path, suffix):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ArchiveError) as caught:
            ArchiveWriter(folder / f"run{suffix}")
        assert "cannot create the archive (permission denied)" in one_line(caught.value)
    finally:
        folder.chmod(0o755)


# -- a full disk, for real -------------------------------------------------------------------------

#: Writes until the disk is full, then checks what a training job would see. Prints
#: one JSON line; anything on stderr or a non-zero exit status is a failure.
FILL_DISK = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    from dynatrain import ArchiveWriter, open_archive
    from dynatrain.errors import ArchiveError

    path, limit = sys.argv[1], int(sys.argv[2])
    if limit:  # a file size limit instead of a small file system
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    report = {}
    writer = ArchiveWriter(path)
    try:
        for t in range(1_000_000):
            writer.append(epoch=t, activations={"a": np.full((64, 64), t, np.float32)},
                          metrics={"m": t})
    except ArchiveError as exc:
        report["error"] = str(exc)
        report["returned"] = t
    try:
        writer.append(epoch=1e9, activations={"a": np.zeros((64, 64), np.float32)},
                      metrics={"m": 0})
    except ArchiveError as exc:
        report["again"] = str(exc)
    writer.close()
    writer.close()
    with open_archive(path) as archive:
        report["readable"] = n = archive.n_checkpoints
        blocks = archive.iter_activations("a") if n else []
        values = np.concatenate([b.values[:, 0] for b in blocks]) if n else np.empty(0)
        report["exact"] = bool((values == np.arange(n)).all())
    print(json.dumps(report))
    """
)


def check_full_disk_report(result, path, words, *, at_first_append=False):
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stderr == ""
    report = json.loads(result.stdout)
    error = report["error"]
    assert error.startswith(f"{path}: cannot write checkpoint {report['returned']}: {words}")
    assert "\n" not in error and ".incomplete" not in error
    counted = f"the archive keeps the {report['returned']} checkpoint(s) counted before"
    assert error.endswith(counted)
    assert report["again"].startswith(f"{path}: the writer stopped at an earlier error")
    assert report["readable"] == report["returned"]
    assert (report["returned"] == 0) == at_first_append
    assert report["exact"]


def private_tmpfs_command(size_kib: int) -> list[str] | None:
    """``unshare`` arguments that run a command with a fresh small tmpfs, or None."""
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        return None
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size={size_kib}k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return [unshare, "-rm"] if probe.returncode == 0 else None


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_full_disk_gives_one_error_and_keeps_what_was_counted(tmp_path, suffix):
    """A real ENOSPC: a 1 MiB tmpfs, mounted in a private mount namespace."""
    unshare = private_tmpfs_command(1024)
    if unshare is None:
        pytest.skip("cannot mount a private tmpfs here (no unprivileged user namespaces)")
    mount = tmp_path / "small"
    mount.mkdir()
    path = mount / f"run{suffix}"
    script = 'mount -t tmpfs -o size=1024k tmpfs "$1" && exec "$2" -c "$3" "$4" 0'
    result = subprocess.run(
        [*unshare, "sh", "-c", script, "sh", mount, sys.executable, FILL_DISK, path],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    check_full_disk_report(result, path, "no space left on device")


@pytest.mark.parametrize(("suffix", "limit"), [(".h5", 400_000), (".zarr", 40_000)])
def test_a_file_size_limit_gives_one_error_and_keeps_what_was_counted(tmp_path, suffix, limit):
    """RLIMIT_FSIZE with SIGXFSZ ignored: writes beyond the limit fail with EFBIG.

    HDF5 is one file, which reaches the limit after a few checkpoints; a Zarr store's
    files are small, so a limit below one chunk (64 KiB) fails the first append.
    """
    path = tmp_path / f"run{suffix}"
    result = subprocess.run(
        [sys.executable, "-c", FILL_DISK, path, str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    check_full_disk_report(result, path, "file too large", at_first_append=suffix == ".zarr")
