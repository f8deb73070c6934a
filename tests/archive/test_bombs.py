"""Hostile sizes: bounded time and memory, and one line when something is too big.

* a storage chunk may decode to at most ``MAX_CHUNK_BYTES`` (declared), and a
  compressed chunk may not inflate to more than its array's chunk (HDF5 deflate,
  Zarr zstd/gzip);
* blocks are made of whole chunks, so each chunk is decoded once;
* only the complete checkpoints are read, whatever length an array declares;
* chunks that were never written are found from the chunk index or the listing,
  not by reading fill values;
* a 20,000-name layer order is checked in linear time, and its messages are short.

Memory is measured with ``tracemalloc`` (NumPy reports its buffers to it); no test
measures time.
"""

from __future__ import annotations

import tracemalloc
import zlib
from collections import Counter

import h5py
import numpy as np
import pytest
import zarr
from cli_checks import assert_one_line_error, assert_validate_lists
from plain_archives import FORMAT, write_plain_archive

from dynatrain import open_archive
from dynatrain.archive import _backends, _hdf5
from dynatrain.archive.reader import MAX_CHUNK_BYTES
from dynatrain.archive.validate import validate_archive
from dynatrain.errors import ArchiveError
from dynatrain.signals import read_signals

T = 30


def _layers() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(T, 4, 3)), "b": rng.normal(size=(T, 4))}


def _peak_bytes(function, *args, **kwargs):
    """(result, peak bytes allocated while it ran)."""
    tracemalloc.start()
    try:
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _deflated_zeros(n_bytes: int) -> bytes:
    """``zlib`` stream of ``n_bytes`` zeros, made a MiB at a time."""
    compressor = zlib.compressobj(9)
    mib = bytes(2**20)
    pieces = [compressor.compress(mib) for _ in range(n_bytes // 2**20)]
    return b"".join(pieces) + compressor.flush()


# -- what one chunk may decode to ------------------------------------------------------------


@pytest.mark.parametrize("name", ["huge.h5", "huge.zarr"])
def test_chunk_declared_over_the_limit_is_refused(cli, tmp_path, name):
    path = write_plain_archive(tmp_path / name, layers=_layers())
    shape, chunks = (T, 4096, 32768), (1, 4096, 32768)  # 512 MiB chunks, never written
    if name.endswith(".h5"):
        with h5py.File(path, "r+") as f:
            del f["layers/b/activations"]
            f["layers/b"].create_dataset(
                "activations", shape=shape, chunks=chunks, dtype="f4", compression="gzip"
            )
    else:
        root = zarr.open_group(str(path), mode="r+")
        del root["layers/b/activations"]
        root.create_array("layers/b/activations", shape=shape, chunks=chunks, dtype="f4")
    for command in ("signals", "inspect"):
        assert_one_line_error(
            cli(command, path),
            path,
            "layer 'b' activations is stored in chunks of 536870912 bytes",
            f"more than the {MAX_CHUNK_BYTES} bytes",
        )
    assert_validate_lists(cli("validate", path), path, "chunks of 536870912 bytes")


def test_hdf5_deflate_bomb_is_refused_without_inflating_it(cli, tmp_path):
    """256 KB of deflated zeros stored as one 96-byte chunk: HDF5 itself would inflate
    all 256 MiB and keep the first 96 bytes, without a word."""
    path = write_plain_archive(tmp_path / "bomb.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/a/activations"]
        dataset = f["layers/a"].create_dataset(
            "activations", shape=(T, 4, 3), chunks=(1, 4, 3), dtype="f8", compression="gzip"
        )
        dataset[...] = 1.0
        dataset.id.write_direct_chunk((2, 0, 0), _deflated_zeros(256 * 2**20), 0)
    with pytest.raises(ArchiveError) as info:
        read_signals(path)
    assert "the chunk at [2, 0, 0] inflates to more than the 96 bytes" in str(info.value)
    _, peak = _peak_bytes(validate_archive, path)
    assert peak < 8 * 2**20
    assert_one_line_error(cli("signals", path), path, "decompression bomb")


@pytest.mark.parametrize("shuffle", [False, True])
def test_hdf5_deflate_chunks_read_back_exactly(tmp_path, shuffle):
    """The chunks inflated by dynatrain itself equal HDF5's own reading, bit for bit,
    with chunks that split checkpoints and samples, and edge chunks."""
    rng = np.random.default_rng(5)
    values = rng.normal(size=(T, 5, 7)).astype(np.float32)
    metric = rng.normal(size=T)
    path = tmp_path / "gzip.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(FORMAT)
        f.create_group("layers").attrs["order"] = ["a"]
        f["checkpoints/epoch"] = np.arange(1.0, T + 1)
        for key, data, chunks in [
            ("layers/a/activations", values, (4, 2, 7)),
            ("metrics/m", metric, (7,)),
        ]:
            f.create_dataset(key, data=data, chunks=chunks, compression="gzip", shuffle=shuffle)
    with open_archive(path) as archive:
        for budget in (60, 10**6):
            pieces: dict[int, list[np.ndarray]] = {}
            for block in archive.iter_activations("a", max_block_bytes=budget):
                pieces.setdefault(block.start, []).append(block.values.copy())
            rows = np.concatenate([np.concatenate(p, axis=1) for _, p in sorted(pieces.items())])
            assert rows.tobytes() == values.reshape(T, -1).tobytes()
        assert archive.metric("m").tobytes() == metric.tobytes()


def test_each_chunk_is_decoded_once_whatever_the_budget(tmp_path, monkeypatch):
    """A checkpoint larger than the block budget is split at chunk edges only: a chunk
    split between two blocks would be inflated twice (16 times, in the case that
    took 103 s)."""
    rng = np.random.default_rng(2)
    values = rng.normal(size=(6, 64, 32))
    path = tmp_path / "chunks.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(FORMAT)
        f.create_group("layers").attrs["order"] = ["a"]
        f["checkpoints/epoch"] = np.arange(1.0, 7)
        f.create_dataset(
            "layers/a/activations", data=values, chunks=(2, 16, 32), compression="gzip"
        )
    decoded: Counter[tuple[int, ...]] = Counter()
    original = _hdf5._decode_chunk

    def counting(stored, mask, codes, chunk_bytes, dtype, chunks, offset, path):
        decoded[offset] += 1
        return original(stored, mask, codes, chunk_bytes, dtype, chunks, offset, path)

    monkeypatch.setattr(_hdf5, "_decode_chunk", counting)
    for budget in (1000, 9000, 40_000, 10**7):  # below, at, above one chunk (8 KiB)
        decoded.clear()
        signals = read_signals(path, reduce="rms", max_block_bytes=budget)
        assert len(decoded) == 3 * 4
        assert set(decoded.values()) == {1}, (budget, decoded)
        expected = np.sqrt((values.reshape(6, -1) ** 2).mean(axis=1))
        np.testing.assert_allclose(signals.values[0], expected, rtol=1e-13)


def test_zarr_zstd_bomb_is_refused(cli, tmp_path):
    """16 MiB of zeros in one zstd frame, stored as a 96-byte chunk."""
    from numcodecs import Zstd

    path = write_plain_archive(tmp_path / "bomb.zarr", layers=_layers())
    (path / "layers/a/activations/c/2/0/0").write_bytes(Zstd(level=1).encode(bytes(2**24)))
    line = assert_one_line_error(
        cli("signals", path), path, "chunk layers/a/activations/c/2/0/0 would decompress to"
    )
    assert "16777216 bytes" in line and "96 bytes" in line
    assert_validate_lists(cli("validate", path), path, "decompression bomb")


def test_zarr_zstd_frame_declaring_a_terabyte_is_refused_unread(tmp_path):
    """Only the frame header is looked at: nothing is decompressed or allocated."""
    path = write_plain_archive(tmp_path / "header.zarr", layers=_layers())
    header = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + (2**40).to_bytes(8, "little")
    (path / "layers/a/activations/c/2/0/0").write_bytes(header + bytes(8))
    with pytest.raises(ArchiveError, match="would decompress to 1099511627776 bytes"):
        read_signals(path)


@pytest.mark.parametrize("codec", ["zstd", "gzip", "zlib", "bz2", "lzma", "lz4", "blosc"])
def test_zarr_bombs_of_every_codec_are_refused(tmp_path, codec):
    """Format 2 stores may use any numcodecs compressor: 16 MiB of zeros in one chunk of
    96 bytes is refused for each (from the header, or by a bounded decompression)."""
    import numcodecs

    compressor = numcodecs.get_codec({"id": codec})
    path = tmp_path / "codec.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs.update(FORMAT)
    root.require_group("layers").attrs["order"] = ["a"]
    root.create_array("checkpoints/epoch", shape=(T,), dtype="f8")[:] = np.arange(1.0, T + 1)
    array = root.create_array(
        "layers/a/activations",
        shape=(T, 4, 3),
        chunks=(1, 4, 3),
        dtype="f8",
        compressors=compressor,
        fill_value=np.nan,
    )
    values = np.random.default_rng(1).normal(size=(T, 4, 3))
    array[...] = values
    np.testing.assert_allclose(read_signals(path).values[0], values.reshape(T, -1).mean(axis=1))
    (path / "layers/a/activations/5.0.0").write_bytes(compressor.encode(bytes(2**24)))
    with pytest.raises(ArchiveError, match=r"chunk layers/a/activations/5\.0\.0 would decompress"):
        read_signals(path)


# -- only the complete checkpoints -----------------------------------------------------------


@pytest.mark.parametrize("name", ["long.h5", "long.zarr"])
def test_vectors_declared_long_are_read_only_to_the_complete_checkpoints(tmp_path, name):
    """3e8 rows declared (2.4 GB each), 30 complete: a few KiB are read."""
    path = write_plain_archive(tmp_path / name, layers=_layers(), attrs={"complete_checkpoints": T})
    declared = 300_000_000
    vectors = {"checkpoints/epoch": np.arange(1.0, T + 1), "checkpoints/step": np.arange(T)}
    vectors["metrics/val_accuracy"] = np.linspace(0, 1, T)
    vectors["layers/b/signal"] = np.ones(T)
    if name.endswith(".h5"):
        with h5py.File(path, "r+") as f:
            for key, values in vectors.items():
                if key in f:
                    del f[key]
                dataset = f.create_dataset(
                    key, shape=(declared,), chunks=(1024,), dtype=values.dtype
                )
                dataset[:T] = values
    else:
        root = zarr.open_group(str(path), mode="r+")
        for key, values in vectors.items():
            if key in root:
                del root[key]
            fill = np.nan if values.dtype.kind == "f" else 0
            array = root.create_array(
                key, shape=(declared,), chunks=(1024,), dtype=values.dtype, fill_value=fill
            )
            array[:T] = values
    signals, peak = _peak_bytes(read_signals, path)
    assert peak < 4 * 2**20
    assert signals.n_checkpoints == T
    np.testing.assert_array_equal(signals.steps, np.arange(T))
    np.testing.assert_array_equal(signals.metrics["val_accuracy"], vectors["metrics/val_accuracy"])
    report, peak = _peak_bytes(validate_archive, path)
    assert report.valid, report.problems
    assert peak < 4 * 2**20
    assert any(f"{declared - T} row(s) beyond complete_checkpoints" in n for n in report.notes)
    with open_archive(path) as archive:
        assert archive.n_rows_stored == declared
        np.testing.assert_array_equal(archive.signal("b"), np.ones(T))


@pytest.mark.parametrize("rows_per_chunk", [1, 8])
@pytest.mark.parametrize("name", ["reserved.h5", "reserved.zarr"])
def test_rows_reserved_beyond_the_complete_checkpoints_are_not_lost(tmp_path, name, rows_per_chunk):
    """A writer may allocate ahead (several checkpoints per chunk, arrays longer than
    ``complete_checkpoints``): rows beyond the count are never read, and the chunks
    not written there are not lost data."""
    rng = np.random.default_rng(3)
    complete, allocated = 21, 64
    values = rng.normal(size=(complete, 4, 3))
    path = tmp_path / name
    arrays = {
        "checkpoints/epoch": (np.arange(1.0, complete + 1), (16,)),
        "layers/a/activations": (values, (rows_per_chunk, 4, 3)),
    }
    if name.endswith(".h5"):
        with h5py.File(path, "w", libver="latest") as f:
            f.attrs.update({**FORMAT, "complete_checkpoints": complete})
            f.create_group("layers").attrs["order"] = ["a"]
            for key, (data, chunks) in arrays.items():
                dataset = f.create_dataset(
                    key,
                    shape=(allocated, *data.shape[1:]),
                    chunks=chunks,
                    dtype="f8",
                    fillvalue=np.nan,
                )
                dataset[:complete] = data
    else:
        root = zarr.open_group(str(path), mode="w")
        root.attrs.update({**FORMAT, "complete_checkpoints": complete})
        root.require_group("layers").attrs["order"] = ["a"]
        for key, (data, chunks) in arrays.items():
            array = root.create_array(
                key,
                shape=(allocated, *data.shape[1:]),
                chunks=chunks,
                dtype="f8",
                fill_value=np.nan,
                config={"write_empty_chunks": True},
            )
            array[:complete] = data
    report = validate_archive(path)
    assert report.valid, report.problems
    signals = read_signals(path, reduce="mean")
    assert signals.n_checkpoints == complete
    np.testing.assert_allclose(signals.values[0], values.reshape(complete, -1).mean(axis=1))


# -- data declared but never written -------------------------------------------------------


def test_hdf5_activations_never_written_are_lost_in_one_line(cli, tmp_path):
    """2 GB declared, no chunk written: the chunk index says so, nothing is read."""
    path = write_plain_archive(tmp_path / "never.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/b/activations"]
        f["layers/b"].create_dataset(
            "activations", shape=(T, 4096, 4096), chunks=(1, 4096, 4096), dtype="f4"
        )
    with pytest.raises(ArchiveError) as info:
        _peak_bytes(read_signals, path)
    assert (
        "layer 'b' activations: the chunks of 30 checkpoints, from checkpoint 0 (epoch 1),"
        " are absent from the file (never written" in str(info.value)
    )
    report, peak = _peak_bytes(validate_archive, path)
    assert peak < 4 * 2**20
    assert any("never written" in problem for problem in report.problems)
    assert_one_line_error(cli("signals", path), path, "absent from the file")


def test_hdf5_chunk_never_written_in_the_middle_is_lost(tmp_path):
    path = write_plain_archive(tmp_path / "hole.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/a/activations"]
        dataset = f["layers/a"].create_dataset(
            "activations", shape=(T, 4, 3), chunks=(2, 4, 3), dtype="f8"
        )
        dataset[:10] = 1.0
        dataset[16:] = 1.0
    with pytest.raises(ArchiveError, match="the chunks of 6 checkpoints, from checkpoint 10"):
        read_signals(path)
    # Outside the gap, the layer reads.
    values = read_signals(path, epochs=(1, 10)).values
    np.testing.assert_array_equal(values[0], np.ones(10))


def test_zarr_activations_never_written_with_fill_zero_cost_nothing(tmp_path):
    """zarr's default fill value 0: absent chunks may be chunks of zeros (zarr does not
    store those), so they read as zeros, but without reading or allocating 2 GB."""
    path = write_plain_archive(tmp_path / "never0.zarr", layers=_layers())
    root = zarr.open_group(str(path), mode="r+")
    del root["layers/b/activations"]
    root.create_array(
        "layers/b/activations",
        shape=(T, 4096, 4096),
        chunks=(1, 4096, 4096),
        dtype="f4",
        fill_value=0.0,
    )
    for reduce in ("mean", "std", "rms", "mean-abs"):
        signals, peak = _peak_bytes(read_signals, path, reduce=reduce)
        assert peak < 8 * 2**20, reduce
        np.testing.assert_array_equal(signals.values[1], np.zeros(T))
    report, peak = _peak_bytes(validate_archive, path)
    assert report.valid
    assert peak < 8 * 2**20
    assert any("no chunk stored for 30 checkpoint(s)" in note for note in report.notes)


def test_zarr_fill_value_blocks_reduce_exactly(tmp_path):
    """An absent chunk with fill value 2.5 reduces as 2.5 everywhere (not read)."""
    values = np.random.default_rng(9).normal(size=(T, 4, 3))
    path = tmp_path / "fill.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.attrs.update(FORMAT)
    root.require_group("layers").attrs["order"] = ["a"]
    root.create_array("checkpoints/epoch", shape=(T,), dtype="f8")[:] = np.arange(1.0, T + 1)
    array = root.create_array(
        "layers/a/activations", shape=(T, 4, 3), chunks=(1, 4, 3), dtype="f8", fill_value=2.5
    )
    values[[4, 9]] = 2.5
    array[...] = values
    assert not (path / "layers/a/activations/c/4").exists()
    flat = values.reshape(T, -1)
    expected = {
        "mean": flat.mean(axis=1),
        "std": flat.std(axis=1),
        "rms": np.sqrt((flat**2).mean(axis=1)),
        "mean-abs": np.abs(flat).mean(axis=1),
    }
    for reduce, reference in expected.items():
        np.testing.assert_allclose(read_signals(path, reduce=reduce).values[0], reference)


# -- many names ------------------------------------------------------------------------------


def test_twenty_thousand_missing_layer_names_give_a_short_line(cli, tmp_path):
    order = ["a", "b", *(f"ghost{i}" for i in range(20_000))]
    path = write_plain_archive(tmp_path / "order.zarr", layers=_layers(), order=order)
    line = assert_one_line_error(
        cli("inspect", path), path, "'ghost0', 'ghost1'", "and 19995 more", "no such layer group"
    )
    assert len(line) < 300


def test_twenty_thousand_duplicate_layer_names_give_a_short_line(cli, tmp_path):
    path = write_plain_archive(tmp_path / "dups.zarr", layers=_layers(), order=["a", "b"] * 10_000)
    assert_one_line_error(cli("signals", path), path, "order names 'a', 'b' more than once")


def test_long_and_many_invalid_names_are_capped(cli, tmp_path):
    order = ["a", *(f"{'x' * 10_000}/{i}" for i in range(1000))]
    path = write_plain_archive(tmp_path / "long.zarr", layers=_layers(), order=order)
    line = assert_one_line_error(cli("inspect", path), path, "and 995 more", "not valid")
    assert len(line) < 600


def test_names_phrase_is_bounded():
    names = [f"n{i}" for i in range(10_000)]
    assert _backends.names_phrase(names) == "'n0', 'n1', 'n2', 'n3', 'n4' and 9995 more"
    assert len(_backends.show_name("y" * 10**6)) < 70
    assert _backends.show_name("bad\udcff\x1b[31m") == "'bad\\xff\\x1b[31m'"


def test_over_the_limit_chunks_of_every_small_array_are_refused(tmp_path):
    """Epochs, steps and metrics too: each array is checked before it is read."""
    path = write_plain_archive(tmp_path / "vector.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["checkpoints/epoch"]
        f.create_dataset(
            "checkpoints/epoch", shape=(2**30,), chunks=(2**26,), dtype="f8", fillvalue=np.nan
        )
    with pytest.raises(ArchiveError, match="checkpoints/epoch is stored in chunks of 536870912"):
        open_archive(path)


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_a_followers_check_of_new_rows_finds_what_the_whole_walk_finds(
    tmp_path, suffix, monkeypatch
):
    """``absent_ranges(..., start=s)``: the new rows only, the same ranges as the full walk.

    HDF5 looks chunks up one by one; the reference is the walk of the whole chunk index.
    """
    from dynatrain.archive import _hdf5
    from dynatrain.archive.reader import open_archive

    path = tmp_path / f"gappy{suffix}"
    write_plain_archive(path, layers=_layers())
    written = [0, 1, 2, 5, 6, 9, 10, 11, 17, 18, 19, 25]  # chunks of 1 checkpoint
    if suffix == ".h5":
        with h5py.File(path, "r+") as f:
            del f["layers/b/activations"]
            array = f["layers/b"].create_dataset(
                "activations", shape=(T, 3, 2), chunks=(1, 3, 2), dtype="f4"
            )
            for row in written:
                array[row] = row
    else:
        root = zarr.open_group(path, mode="r+")
        del root["layers/b/activations"]
        array = root.create_array(
            "layers/b/activations", shape=(T, 3, 2), chunks=(1, 3, 2), dtype="f4",
            fill_value=np.nan,
        )  # fmt: skip
        for row in written:
            array[row] = row
    with open_archive(path) as archive:
        store = archive._store
        array = store.array(("layers", "b", "activations"))
        with monkeypatch.context() as walk:
            walk.setattr(_hdf5, "_PROBED_CHUNKS", 0)
            whole = store.absent_ranges(array, T)
        for start in (1, 4, 8, 12, 20, 26, T):
            clipped = whole.clip(start, T)
            assert np.array_equal(
                store.absent_ranges(array, T, start=start),
                clipped[clipped[:, 1] > clipped[:, 0]],
            ), start
    expected = [[3, 5], [7, 9], [12, 17], [20, 25], [26, T]]
    assert whole.tolist() == expected


def test_merged_ranges_join_touching_ones():
    from dynatrain.archive.reader import _merge_ranges

    ranges = np.array([[5, 7], [0, 2], [2, 3], [6, 9], [12, 13]])
    assert _merge_ranges(ranges).tolist() == [[0, 3], [5, 9], [12, 13]]
