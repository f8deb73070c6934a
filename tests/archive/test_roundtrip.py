"""Archives written by ArchiveWriter, and by plain h5py/zarr code, read back exactly."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import zarr
from plain_archives import archive_untouched

from dynatrain import ArchiveWriter, open_archive
from dynatrain.errors import InputError
from dynatrain.signals import read_signals

BACKENDS = ["run.h5", "run.zarr"]


def write_with_writer(path, layers, metrics=None, signals=None, **kwargs):
    n = len(next(iter(layers.values())))
    with ArchiveWriter(path, metadata={"run_id": "r", "seed": 3, "lr": 0.05}, **kwargs) as w:
        for t in range(n):
            w.append(
                epoch=t + 1,
                activations={name: values[t] for name, values in layers.items()},
                signals={name: values[t] for name, values in (signals or {}).items()},
                metrics={name: values[t] for name, values in (metrics or {}).items()},
                step=100 * (t + 1),
            )
    return path


@pytest.mark.parametrize("name", BACKENDS)
def test_writer_roundtrip_is_exact(tmp_path, small_layers, name):
    accuracy = np.linspace(0.1, 0.9, 30)
    path = write_with_writer(
        tmp_path / name,
        small_layers,
        metrics={"val_accuracy": accuracy},
        signals={"fc": np.arange(30.0)},
    )
    with open_archive(path) as archive:
        assert archive.backend == ("hdf5" if name.endswith(".h5") else "zarr")
        assert archive.layer_names == ("conv1", "conv2", "fc")
        assert archive.n_checkpoints == 30
        np.testing.assert_array_equal(archive.epochs, np.arange(1.0, 31))
        np.testing.assert_array_equal(archive.steps, 100 * np.arange(1, 31))
        np.testing.assert_array_equal(archive.metric("val_accuracy"), accuracy)
        np.testing.assert_array_equal(archive.signal("fc"), np.arange(30.0))
        assert archive.metadata == {"run_id": "r", "seed": 3, "lr": 0.05}
        for layer, values in small_layers.items():
            info = archive.layers[layer]
            assert info.sample_shape == values.shape[1:]
            assert info.dtype == values.dtype.name
            stored = np.concatenate([b.values.copy() for b in archive.iter_activations(layer)])
            np.testing.assert_array_equal(stored, values.reshape(30, -1))
        assert archive.layers["fc"].kinds == ("activations", "signal")


PLAIN_BACKENDS = [("run.h5", 3), ("run.zarr", 3), ("v2.zarr", 2)]


@pytest.mark.parametrize(("name", "zarr_format"), PLAIN_BACKENDS, ids=["hdf5", "zarr3", "zarr2"])
def test_plain_archive_reads_back_exactly(plain_archive, small_layers, name, zarr_format):
    """Every stored value comes back bit for bit, with its dtype, whoever wrote it."""
    epochs = np.cumsum(np.linspace(0.5, 1.5, 30))  # not integers, not evenly spaced
    steps = np.arange(30) * 7
    metrics = {"train_loss": np.linspace(2, 0.1, 30), "val_accuracy": np.linspace(0.1, 0.9, 30)}
    metrics["val_accuracy"][3] = np.nan  # not measured at that checkpoint
    signal = np.random.default_rng(4).normal(size=30)
    attrs = {"seed": 3, "lr": 0.05, "dataset": "digits", "augment": True}
    path = plain_archive(
        name,
        layers=small_layers,
        signals={"fc": signal},
        epochs=epochs,
        steps=steps,
        metrics=metrics,
        attrs=attrs,
        zarr_format=zarr_format,
    )
    with open_archive(path) as archive:
        assert archive.layer_names == ("conv1", "conv2", "fc")
        assert archive.n_checkpoints == 30
        np.testing.assert_array_equal(archive.epochs, epochs)
        assert archive.epochs.dtype == np.float64
        np.testing.assert_array_equal(archive.steps, steps)
        assert archive.steps.dtype == np.int64
        assert archive.metric_names == ("train_loss", "val_accuracy")
        for metric, values in metrics.items():
            np.testing.assert_array_equal(archive.metric(metric), values)
        np.testing.assert_array_equal(archive.signal("fc"), signal)
        assert archive.metadata == {"run_id": "run" if name != "v2.zarr" else "v2", **attrs}
        for layer, values in small_layers.items():
            info = archive.layers[layer]
            assert info.sample_shape == values.shape[1:]
            assert info.dtype == values.dtype.name
            blocks = [b.values.copy() for b in archive.iter_activations(layer)]
            stored = np.concatenate(blocks)
            assert stored.dtype == values.dtype
            # Bit for bit: the bytes, not a tolerance.
            assert stored.tobytes() == values.reshape(30, -1).tobytes()
        assert archive.layers["fc"].kinds == ("activations", "signal")
    signals = read_signals(path, reduce="mean")
    np.testing.assert_array_equal(signals.epochs, epochs)
    np.testing.assert_array_equal(signals.steps, steps)
    for metric, values in metrics.items():
        np.testing.assert_array_equal(signals.metrics[metric], values)


def test_unknown_suffix_is_detected_by_content(plain_archive, small_layers, tmp_path):
    path = plain_archive("run.h5", layers=small_layers)
    renamed = path.rename(tmp_path / "run.activations")
    with open_archive(renamed) as archive:
        assert archive.backend == "hdf5"


def test_signal_only_layers(plain_archive):
    path = plain_archive("sig.h5", signals={"a": np.arange(20.0), "b": np.arange(20.0) ** 2})
    signals = read_signals(path, reduce="signal")
    np.testing.assert_array_equal(signals.values[1], np.arange(20.0) ** 2)
    with pytest.raises(InputError, match="no layer can be reduced"):
        read_signals(path, reduce="mean")


def test_complete_checkpoints_bounds_what_is_read(plain_archive, small_layers):
    path = plain_archive("partial.h5", layers=small_layers, attrs={"complete_checkpoints": 12})
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 12
        assert archive.n_rows_stored == 30
        assert len(archive.epochs) == 12


@pytest.mark.parametrize("name", BACKENDS)
def test_reader_never_writes(plain_archive, small_layers, name):
    path = plain_archive(name, layers=small_layers)
    with archive_untouched(path):
        read_signals(path, reduce="std")


@pytest.mark.parametrize("command", ["inspect", "signals", "analyze", "validate"])
@pytest.mark.parametrize("name", BACKENDS)
def test_commands_never_modify_the_archive(cli, plain_archive, small_layers, name, command):
    """Bytes and modification times, before and after (batch: tests/batch)."""
    path = plain_archive(name, layers=small_layers, metrics={"val_accuracy": np.ones(30)})
    with archive_untouched(path):
        result = cli(command, path)
    assert result.exit_code == 0, result.stderr


#: The keys of `inspect --format json`: the README's list ("back end, format version,
#: checkpoints, epoch range, layers (...), metrics, metadata, size on disk").
INSPECT_KEYS = {
    "path",
    "backend",
    "format_version",
    "checkpoints",
    "epochs",
    "layers",
    "metrics",
    "metadata",
    "size_bytes",
}


@pytest.mark.parametrize("name", BACKENDS)
def test_inspect_json_keys(cli, plain_archive, small_layers, name):
    path = plain_archive(
        name,
        layers=small_layers,
        signals={"fc": np.arange(30.0), "probe": np.arange(30.0)},
        metrics={"val_accuracy": np.ones(30), "train_loss": np.ones(30)},
        epochs=np.arange(30.0) + 0.5,
        attrs={"seed": 3},
    )
    result = cli("inspect", path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == INSPECT_KEYS
    assert summary["path"] == str(path)
    assert summary["backend"] == ("hdf5" if name.endswith(".h5") else "zarr")
    assert summary["format_version"] == 1
    assert summary["checkpoints"] == 30
    assert summary["epochs"] == [0.5, 29.5]
    assert summary["layers"] == [
        {"name": "conv1", "shape": [4, 3, 2, 2], "dtype": "float32", "kinds": ["activations"]},
        {"name": "conv2", "shape": [4, 5], "dtype": "float16", "kinds": ["activations"]},
        {"name": "fc", "shape": [4, 6], "dtype": "float64", "kinds": ["activations", "signal"]},
        {"name": "probe", "shape": [], "dtype": "float64", "kinds": ["signal"]},
    ]
    assert sorted(summary["metrics"]) == ["train_loss", "val_accuracy"]
    assert summary["metadata"] == {"run_id": "run", "seed": 3}
    assert summary["size_bytes"] > 0


def test_hdf5_archive_readable_while_writer_is_open(tmp_path, small_layers):
    path = tmp_path / "live.h5"
    with ArchiveWriter(path) as writer:
        for t in range(5):
            writer.append(epoch=t, activations={k: v[t] for k, v in small_layers.items()})
        with open_archive(path) as archive:  # a second handle, as `dynatrain` would open it
            assert archive.n_checkpoints == 5
        writer.append(epoch=5, activations={k: v[5] for k, v in small_layers.items()})
        with open_archive(path) as archive:
            assert archive.n_checkpoints == 6


def test_writer_uses_latest_file_format(tmp_path, small_layers):
    """SWMR needs superblock version 3 (libver="latest"); byte 8 holds the version."""
    path = write_with_writer(tmp_path / "w.h5", small_layers)
    assert path.read_bytes()[8] >= 3
    with h5py.File(path, "r") as f:  # closed cleanly: a plain open works too
        assert "layers" in f


@pytest.mark.parametrize("name", BACKENDS)
def test_writer_rejects_mismatched_checkpoints(tmp_path, name):
    path = tmp_path / name
    with ArchiveWriter(path, metadata={"run_id": "x"}) as w:
        w.append(epoch=1, activations={"a": np.zeros((4, 3))}, metrics={"acc": 0.1})
        with pytest.raises(InputError, match=r"shape \(4, 2\), the first checkpoint had \(4, 3\)"):
            w.append(epoch=2, activations={"a": np.zeros((4, 2))})
        with pytest.raises(InputError, match="layers differ"):
            w.append(epoch=2, activations={"b": np.zeros((4, 3))})
        with pytest.raises(InputError, match="greater than the previous"):
            w.append(epoch=1, activations={"a": np.zeros((4, 3))})
        with pytest.raises(InputError, match="were not in the first checkpoint"):
            w.append(epoch=2, activations={"a": np.zeros((4, 3))}, metrics={"loss": 1.0})
        with pytest.raises(InputError, match="step"):
            w.append(epoch=2, activations={"a": np.zeros((4, 3))}, step=5)
        w.append(epoch=2, activations={"a": np.ones((4, 3))})  # metric left out -> NaN
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 2
        np.testing.assert_array_equal(archive.metric("acc"), [0.1, np.nan])


def test_writer_refuses_to_replace_without_mode_w(tmp_path):
    path = tmp_path / "exists.h5"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="already exists"):
        ArchiveWriter(path)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [({"format": "x"}, "invalid metadata key"), ({"tags": {"a": 1}}, "must be a string")],
)
def test_writer_checks_metadata(tmp_path, metadata, match):
    with pytest.raises(InputError, match=match):
        ArchiveWriter(tmp_path / "m.h5", metadata=metadata)


def test_writer_stores_requested_dtype(tmp_path):
    path = tmp_path / "half.zarr"
    with ArchiveWriter(path, activation_dtype="float16") as w:
        w.append(epoch=0, activations={"a": np.full((2, 2), 1 / 3)})
    with open_archive(path) as archive:
        assert archive.layers["a"].dtype == "float16"


# -- the writer's storage layout, seen by plain h5py and zarr --------------------------------------


def write_counting(path, n, **kwargs):
    """``n`` checkpoints of a (4, 16) float32 layer holding t, metrics, step."""
    with ArchiveWriter(path, **kwargs) as writer:
        for t in range(n):
            writer.append(
                epoch=t + 1,
                activations={"a": np.full((4, 16), t, np.float32)},
                metrics={"val/acc": t / n},
                step=t,
            )
    return path


def test_hdf5_layout_read_by_plain_h5py(tmp_path):
    """Arrays trimmed to the checkpoints at close; 4 KiB chunks (16 checkpoints of 256 B)."""
    path = write_counting(tmp_path / "run.h5", 1_100)  # past the first growth (1,024 rows)
    with h5py.File(path, "r") as f:
        assert f.attrs["complete_checkpoints"] == 1_100
        activations = f["layers/a/activations"]
        assert activations.shape == (1_100, 4, 16) and activations.chunks == (16, 4, 16)
        assert activations.maxshape == (None, 4, 16) and activations.compression is None
        np.testing.assert_array_equal(activations[:, 0, 0], np.arange(1_100))
        assert f["checkpoints/epoch"].shape == (1_100,)
        np.testing.assert_array_equal(f["metrics/val/acc"][:], np.arange(1_100) / 1_100)


def test_zarr_layout_read_by_plain_zarr(tmp_path):
    """Uncompressed chunks of 256 checkpoints (64 KiB), trimmed shape, default chunk keys."""
    path = write_counting(tmp_path / "run.zarr", 1_100)
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["complete_checkpoints"] == 1_100
    activations = root["layers/a/activations"]
    assert activations.shape == (1_100, 4, 16) and activations.chunks == (256, 4, 16)
    assert activations.compressors == ()
    np.testing.assert_array_equal(activations[:, 0, 0], np.arange(1_100))
    np.testing.assert_array_equal(root["metrics/val/acc"][:], np.arange(1_100) / 1_100)
    chunks = sorted((path / "layers/a/activations/c").iterdir())
    assert [c.name for c in chunks] == ["0", "1", "2", "3", "4"]  # 5 files, not 1,100
    assert not [p for p in path.rglob(".*")]  # no temporary file left


@pytest.mark.parametrize("name", BACKENDS)
def test_a_live_archive_is_longer_than_its_count_and_reads_right(tmp_path, name):
    """While the writer runs, arrays have spare capacity; readers use the count."""
    path = tmp_path / name
    writer = ArchiveWriter(path)
    for t in range(40):
        writer.append(epoch=t, activations={"a": np.full((2, 3), t, np.float32)})
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 40 and archive.n_rows_stored == 1_024
        values = np.concatenate([b.values for b in archive.iter_activations("a")])
        np.testing.assert_array_equal(values[:, 0], np.arange(40))
    writer.close()
    with open_archive(path) as archive:
        assert archive.n_checkpoints == archive.n_rows_stored == 40


@pytest.mark.parametrize("name", BACKENDS)
def test_durable_every_counts_in_steps_and_close_counts_the_rest(tmp_path, name):
    path = tmp_path / name
    writer = ArchiveWriter(path, durable_every=10)
    for t in range(25):
        writer.append(epoch=t, activations={"a": np.full((2, 3), t, np.float32)})
    assert writer.n_checkpoints == 25 and writer.n_durable == 20
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 20
    writer.close()
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 25
        np.testing.assert_array_equal(archive.epochs, np.arange(25))


CHUNK_OPTIONS = [
    ("run.h5", {"chunk_checkpoints": 3}),
    ("run.h5", {"chunk_checkpoints": 1}),
    ("run.h5", {"compression": "gzip"}),
    ("run.h5", {"compression": "lzf", "chunk_checkpoints": 4}),
    ("run.zarr", {"chunk_checkpoints": 3}),
    ("run.zarr", {"chunk_checkpoints": 1}),
]


@pytest.mark.parametrize(("name", "options"), CHUNK_OPTIONS, ids=lambda v: str(v))
def test_chunking_and_compression_options_round_trip(tmp_path, name, options):
    path = write_counting(tmp_path / name, 50, **options)
    with open_archive(path) as archive:
        values = np.concatenate([b.values for b in archive.iter_activations("a")])
        np.testing.assert_array_equal(values, np.repeat(np.arange(50.0), 64).reshape(50, 64))
    if name.endswith(".h5"):
        with h5py.File(path, "r") as f:
            chunks = f["layers/a/activations"].chunks
    else:
        chunks = zarr.open_array(str(path / "layers/a/activations"), mode="r").chunks
    assert chunks == (options.get("chunk_checkpoints", 1), 4, 16)
