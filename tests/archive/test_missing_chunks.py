"""A Zarr chunk missing from the store: lost data where the fill value is NaN (an error),
possibly a chunk full of the fill value otherwise (a note). See ``Archive``'s notes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr
from plain_archives import FORMAT

from dynatrain import ArchiveWriter, open_archive
from dynatrain.archive.validate import validate_archive
from dynatrain.errors import ArchiveError
from dynatrain.signals import read_signals

T = 30


def write_run(path, *, diverge_at=None):
    rng = np.random.default_rng(11)
    # One checkpoint per chunk (Zarr's default groups several), so that single
    # checkpoints' chunks can be removed.
    with ArchiveWriter(path, metadata={"run_id": "gaps"}, chunk_checkpoints=1) as writer:
        for t in range(T):
            a = rng.normal(size=(4, 3))
            if diverge_at is not None and t >= diverge_at:
                a[:] = np.nan
            writer.append(
                epoch=t + 1,
                activations={"a": a, "b": rng.normal(size=(4,))},
                metrics={"val_accuracy": t / T},
                step=t,
            )
    return path


def plain_zarr(path, *, fill_value, zarr_format=3, shards=None, complete=None):
    """One layer written with zarr itself, checkpoint 7 all zeros, fill value as given."""
    values = np.random.default_rng(2).normal(size=(T, 4, 3))
    values[7] = 0.0
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.attrs.update(FORMAT)
    if complete is not None:
        root.attrs["complete_checkpoints"] = complete
    root.require_group("layers").attrs["order"] = ["a"]
    epoch = root.create_array("checkpoints/epoch", shape=(T,), dtype="f8", chunks=(T,))
    epoch[:] = np.arange(1.0, T + 1)
    kwargs = {"shards": shards} if shards else {}
    array = root.create_array(
        "layers/a/activations",
        shape=values.shape,
        dtype="f8",
        chunks=(1, 4, 3),
        fill_value=fill_value,
        **kwargs,
    )
    array[...] = values
    return path, values


def test_writer_stores_every_chunk_even_all_nan(tmp_path):
    """A diverged run's all-NaN checkpoints are stored: a missing chunk is always lost."""
    path = write_run(tmp_path / "diverged.zarr", diverge_at=20)
    chunks = sorted(int(p.name) for p in (path / "layers/a/activations/c").iterdir())
    assert chunks == list(range(T))
    report = validate_archive(path)
    assert report.valid, report.problems
    assert any("non-finite values from checkpoint 20" in note for note in report.notes)
    signals = read_signals(path)
    assert np.isfinite(signals.values[0, :20]).all()
    assert np.isnan(signals.values[0, 20:]).all()


@pytest.mark.parametrize(
    ("chunk", "what"),
    [
        ("layers/a/activations/c/12/0/0", "layer 'a' activations: the chunk of checkpoint 12"),
        ("metrics/val_accuracy/c/0", "metric 'val_accuracy': the chunks of 30 checkpoints"),
    ],
)
def test_missing_chunk_of_writer_archive_is_a_problem(cli, tmp_path, chunk, what):
    path = write_run(tmp_path / "run.zarr")
    (path / chunk).unlink()
    report = validate_archive(path)
    assert not report.valid
    assert any(what in p and "missing from the store" in p for p in report.problems)
    with pytest.raises(ArchiveError, match="missing from the store"):
        read_signals(path)
    for command in ("signals", "analyze"):
        result = cli(command, path)
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1
        assert str(path) in lines[0]
        assert what in lines[0]


def test_missing_epoch_chunk_is_a_structural_problem(tmp_path):
    path = write_run(tmp_path / "noepoch.zarr")
    (path / "checkpoints/epoch/c/0").unlink()
    with pytest.raises(ArchiveError, match="checkpoints/epoch: the chunks of 30 checkpoints"):
        open_archive(path)


def test_all_fill_chunk_with_finite_fill_value_is_a_note(tmp_path):
    """zarr's default: a chunk equal to the fill value (0) is not stored, legitimately."""
    path, values = plain_zarr(tmp_path / "zeros.zarr", fill_value=0.0)
    assert not (path / "layers/a/activations/c/7").exists()
    report = validate_archive(path)
    assert report.valid, report.problems
    assert any("no chunk stored for 1 checkpoint(s), from checkpoint 7" in n for n in report.notes)
    signals = read_signals(path, reduce="rms")
    assert signals.values[0, 7] == 0.0
    np.testing.assert_allclose(signals.values[0], np.sqrt((values**2).mean(axis=(1, 2))))


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_plain_zarr_with_nan_fill_missing_chunk_is_a_problem(tmp_path, zarr_format):
    path, _ = plain_zarr(tmp_path / "nanfill.zarr", fill_value=np.nan, zarr_format=zarr_format)
    key = "c/20/0/0" if zarr_format == 3 else "20.0.0"
    (path / "layers/a/activations" / key).unlink()
    report = validate_archive(path)
    assert report.problems == [
        "layer 'a' activations: the chunk of checkpoint 20 (epoch 21) is missing from the store"
        " (lost data: a read would give the fill value NaN, as if the run had diverged)"
    ]


def test_missing_shard_is_a_problem(tmp_path):
    path, _ = plain_zarr(tmp_path / "sharded.zarr", fill_value=np.nan, shards=(5, 4, 3))
    shutil.rmtree(path / "layers/a/activations/c/2")  # checkpoints 10..14
    with pytest.raises(ArchiveError, match="the chunks of 5 checkpoints, from checkpoint 10"):
        read_signals(path)


def test_chunks_beyond_complete_checkpoints_do_not_count(tmp_path):
    """A writer still at work (or killed) has not written them yet."""
    path, _ = plain_zarr(tmp_path / "partial.zarr", fill_value=np.nan, complete=20)
    for t in range(20, T):
        (path / f"layers/a/activations/c/{t}/0/0").unlink()
    report = validate_archive(path)
    assert report.valid, report.problems
    assert read_signals(path).n_checkpoints == 20
