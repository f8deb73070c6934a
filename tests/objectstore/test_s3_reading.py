"""Reading a run from S3: what it asks the server for (seen by a counting proxy)."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest
from s3server import CountingProxy, write_run

from dynatrain.archive.storage import use_storage_options
from dynatrain.signals import read_signals


def _reading(bucket, url, **options):
    """``read_signals(url)`` through a counting proxy: the signals, the listings and GETs."""
    proxy = CountingProxy(bucket.server.port)
    try:
        with use_storage_options({"endpoint_url": proxy.endpoint}):
            signals = read_signals(url, **options)
    finally:
        proxy.close()
    assert all(method == "GET" for method, _ in proxy.requests)
    listings = [path for _, path in proxy.requests if "?" in path]
    gets = [urllib.parse.unquote(path) for _, path in proxy.requests if "?" not in path]
    return signals, listings, gets


def _stored(bucket, store):
    return {"/" + key for key in bucket.fs.find(f"{bucket.name}/{store}")}


def test_reading_a_run_asks_only_for_stored_objects_each_once(bucket):
    """One listing, then GETs of stored objects only, none twice: no request for a node the
    listing shows absent (each layer's ``signal``, format 2's documents), as a missing
    object costs the server as much as a present one."""
    layers = ("l1", "l2", "l3")
    write_run(bucket.url("run.zarr"), checkpoints=40, layers=layers, chunk_checkpoints=16)
    stored = _stored(bucket, "run.zarr")

    signals, listings, gets = _reading(bucket, bucket.url("run.zarr"), reduce="mean")

    assert len(listings) == 1
    assert len(gets) == len(set(gets))
    assert set(gets) <= stored
    # Every chunk was read: the layers' (3 of 16 checkpoints each), epoch's, the metric's.
    chunks = {key for key in stored if "/c/" in key}
    assert len([key for key in chunks if "/activations/" in key]) == 3 * len(layers)
    assert chunks <= set(gets)
    assert signals.layer_names == layers
    assert signals.values.shape == (3, 40)


def _format_2_run(path, rng):
    """A run written with zarr itself, format 2: a nested metric, a signal-only layer, no
    steps, and a group under /layers that its order does not name."""
    import zarr

    values = rng.standard_normal((12, 3, 4)).astype(np.float32)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs.update({"format": "dynatrain-activations", "format_version": 1})
    layers = root.require_group("layers")
    layers.attrs["order"] = ["a", "s"]
    layers.require_group("stray")
    root.create_array("checkpoints/epoch", shape=(12,), dtype="f8", chunks=(5,))[:] = np.arange(
        1.0, 13.0
    )
    root.create_array("layers/a/activations", shape=values.shape, dtype="f4", chunks=(5, 3, 4))[
        ...
    ] = values
    root.create_array("layers/s/signal", shape=(12,), dtype="f8", chunks=(5,))[:] = np.arange(12.0)
    root.create_array("metrics/val/acc", shape=(12,), dtype="f8", chunks=(12,))[:] = np.linspace(
        0, 1, 12
    )
    return values


def test_a_format_2_run_in_a_bucket_reads_as_on_disk(bucket, tmp_path):
    """The root is asked for in format 3 first, then format 2; format 2's nodes are found
    from the listing (no probing for ``.zarray`` where there is a ``.zgroup``)."""
    local = tmp_path / "v2.zarr"
    values = _format_2_run(local, np.random.default_rng(5))
    bucket.fs.put(str(local), f"{bucket.name}/v2.zarr", recursive=True)
    assert f"{bucket.name}/v2.zarr/.zgroup" in bucket.fs.find(f"{bucket.name}/v2.zarr")

    remote, listings, gets = _reading(bucket, bucket.url("v2.zarr"), reduce="mean")

    expected = values.astype(np.float64).reshape(12, -1).mean(axis=1)
    np.testing.assert_allclose(remote.values[0], expected, rtol=1e-12)
    on_disk = read_signals(local, reduce="mean")
    np.testing.assert_array_equal(remote.values, on_disk.values)
    assert remote.layer_names == on_disk.layer_names == ("a",)
    assert remote.metrics.keys() == on_disk.metrics.keys() == {"val/acc"}
    np.testing.assert_array_equal(remote.metrics["val/acc"], np.linspace(0, 1, 12))
    assert remote.steps is None
    # The root's format 3 document is the one object asked for that is not there.
    stored = _stored(bucket, "v2.zarr")
    assert [key for key in gets if key not in stored] == [f"/{bucket.name}/v2.zarr/zarr.json"]
    assert len(listings) == 1
    assert len(gets) == len(set(gets))


@pytest.mark.parametrize("reduce", ["signal", "rms"])
def test_a_format_2_run_reduces_every_way(bucket, tmp_path, reduce):
    """The signal-only layer and the activations, through the same prefetched nodes."""
    local = tmp_path / "v2.zarr"
    _format_2_run(local, np.random.default_rng(6))
    bucket.fs.put(str(local), f"{bucket.name}/v2-{reduce}.zarr", recursive=True)
    remote, _, _ = _reading(bucket, bucket.url(f"v2-{reduce}.zarr"), reduce=reduce)
    on_disk = read_signals(local, reduce=reduce)
    assert remote.layer_names == on_disk.layer_names
    np.testing.assert_array_equal(remote.values, on_disk.values)


def test_lost_chunks_are_reported_as_a_sequential_read_meets_them(bucket):
    """Metrics are read alongside the layers; the error raised is still the first layer's
    (as reading one after the other would find it), and a metric's when only it is lost."""
    from dynatrain.errors import ArchiveError

    url = bucket.url("lost.zarr")
    write_run(url, checkpoints=40, layers=("l1", "l2", "l3"), chunk_checkpoints=16)
    metric_chunk = f"{bucket.name}/lost.zarr/metrics/val_accuracy/c/0"
    assert bucket.fs.exists(metric_chunk)
    bucket.fs.rm(metric_chunk)
    with pytest.raises(ArchiveError, match=r"^.*metric 'val_accuracy': .* missing from the store"):
        read_signals(url)
    bucket.fs.rm(f"{bucket.name}/lost.zarr/layers/l3/activations/c/1/0/0")
    bucket.fs.rm(f"{bucket.name}/lost.zarr/layers/l2/activations/c/2/0/0")
    with pytest.raises(ArchiveError) as caught:
        read_signals(url)
    assert "layer 'l2' activations: the chunks of 8 checkpoints, from checkpoint 32" in str(
        caught.value
    )
    assert len(str(caught.value).splitlines()) == 1


def test_each_array_sees_its_own_chunks_among_names_that_share_a_prefix(bucket):
    """The chunks of an array are looked up in the one listing by prefix: layers named
    ``a``, ``a-b``, ``a.b`` and ``a0`` (sorted around ``a/``) each see only their own."""
    from dynatrain.errors import ArchiveError

    layers = ("a", "a-b", "a.b", "a0")
    url = bucket.url("prefixes.zarr")
    write_run(url, checkpoints=20, layers=layers, chunk_checkpoints=8)
    bucket.fs.rm(f"{bucket.name}/prefixes.zarr/layers/a-b/activations/c/1/0/0")
    kept = read_signals(url, layers=["a", "a.b", "a0"])
    assert kept.layer_names == ("a", "a.b", "a0")
    assert np.isfinite(kept.values).all()
    with pytest.raises(ArchiveError, match=r"layer 'a-b' activations: the chunks of 8 checkpoints"):
        read_signals(url, layers=["a-b"])
