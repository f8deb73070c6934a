"""Storage options, URL credentials and redaction; the object-store writer on memory://.

(Against a real S3 API: tests/objectstore.)
"""

from __future__ import annotations

import errno
import uuid

import numpy as np
import pytest

from dynatrain import ArchiveWriter, open_archive
from dynatrain.archive import storage
from dynatrain.archive.storage import (
    filesystem,
    parse_storage_options,
    redact,
    redact_data,
    split_credentials,
    use_storage_options,
)
from dynatrain.errors import ArchiveError, InputError


def test_storage_option_values_are_typed_and_secrets_stay_text():
    options = parse_storage_options(
        [
            "anon=true",
            "use_ssl=false",
            "region=null",
            "max_concurrency=8",
            "timeout=2.5",
            'client_kwargs={"region_name": "eu-west-1"}',
            "endpoint_url=http://127.0.0.1:9000",
            "secret=12345678",
            "token=007",
            "profile=a=b",
        ]
    )
    assert options == {
        "anon": True,
        "use_ssl": False,
        "region": None,
        "max_concurrency": 8,
        "timeout": 2.5,
        "client_kwargs": {"region_name": "eu-west-1"},
        "endpoint_url": "http://127.0.0.1:9000",
        "secret": "12345678",
        "token": "007",
        "profile": "a=b",
    }


@pytest.mark.parametrize("item", ["novalue", "=hidden-value-123", " =x"])
def test_a_bad_storage_option_is_refused_without_its_value(item):
    with pytest.raises(InputError, match="--storage-option") as caught:
        parse_storage_options([item])
    assert "hidden-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://AKIA:wJal%2Fr@bucket/run.zarr", "s3://***@bucket/run.zarr"),
        ("https://user:pw@host/x.zarr and more", "https://***@host/x.zarr and more"),
        ("https://TOKENONLY@host/x", "https://***@host/x"),
        ("abfs://container@account.dfs.core.windows.net/x", None),  # not credentials
        ("abfs://user:pw@account/x", "abfs://***@account/x"),
        ("https://h/x?sig=abc%2Bdef&sv=2024", "https://h/x?sig=***&sv=2024"),
        ("https://h/x?X-Amz-Signature=abc&X-Amz-Credential=AKIA/x", None),
        ("no url here", None),
    ],
)
def test_redact_urls(text, expected):
    redacted = redact(text)
    if expected is not None:
        assert redacted == expected
    elif "X-Amz" in text:
        assert "abc" not in redacted
        assert "AKIA" not in redacted
    else:
        assert redacted == text


def test_registered_and_environment_secrets_are_redacted(monkeypatch):
    secret = f"planted/{uuid.uuid4().hex}"
    parse_storage_options([f"secret={secret}", "endpoint_url=http://h:1"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-planted")
    text = f"error with {secret} and {secret.replace('/', '%2F')} and session-token-planted"
    assert redact(text) == "error with *** and *** and ***"
    assert redact("http://h:1") == "http://h:1"  # not a credential
    data = {"run": f"s3://k:{secret}@b/r.zarr", "values": [1.5, {"e": secret}], "n": 3}
    assert redact_data(data) == {"run": "s3://***@b/r.zarr", "values": [1.5, {"e": "***"}], "n": 3}


def test_credentials_leave_the_url_for_the_options():
    url, options = split_credentials("s3://AKIA%3A1:se%2Fcret@bucket/a/run.zarr")
    assert url == "s3://bucket/a/run.zarr"
    assert options == {"key": "AKIA:1", "secret": "se/cret"}
    assert split_credentials("https://u:p@h/x") == ("https://u:p@h/x", {})
    assert split_credentials("s3://bucket/x@y.zarr") == ("s3://bucket/x@y.zarr", {})
    # AWS secret keys hold '/': taken as they are, up to the '@' before the bucket.
    url, options = split_credentials("s3://AKIA:wJal/rXU+tn@my-bucket/run.zarr")
    assert (url, options) == ("s3://my-bucket/run.zarr", {"key": "AKIA", "secret": "wJal/rXU+tn"})
    assert redact("s3://AKIA:wJal/rXU+tn@my-bucket/run.zarr") == "s3://***@my-bucket/run.zarr"


def test_options_in_effect_apply_and_explicit_ones_win():
    with use_storage_options({"auto_mkdir": True}):
        fs, _ = filesystem("file:///tmp/x.zarr")
        assert fs.auto_mkdir is True
        fs, _ = filesystem("file:///tmp/x.zarr", {"auto_mkdir": False})
        assert fs.auto_mkdir is False
    assert storage.current_storage_options() == {}


def test_a_missing_storage_library_or_protocol_is_one_line():
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match=r"gs:// URLs need gcsfs \(pip install gcsfs\)"):
            filesystem("gs://bucket/run.zarr")
    with pytest.raises(InputError, match="nosuchproto"):
        filesystem("nosuchproto://bucket/run.zarr")


# -- the object-store writer, on fsspec's memory file system --------------------------------------


@pytest.fixture
def memory_url():
    import fsspec

    name = f"/dynatrain-test-{uuid.uuid4().hex}"
    yield f"memory://{name}/run.zarr"
    memory = fsspec.filesystem("memory")
    if memory.exists(name):
        memory.rm(name, recursive=True)


def test_a_run_in_memory_reads_back(memory_url):
    with ArchiveWriter(memory_url, {"run_id": "m"}, chunk_checkpoints=3) as writer:
        for t in range(10):
            writer.append(epoch=t + 1, activations={"a": np.full((2, 2), t, np.float32)})
    with open_archive(memory_url) as archive:
        assert archive.n_checkpoints == 10
        assert archive.metadata == {"run_id": "m"}  # writer_id is part of the format
        values = np.concatenate([b.values for b in archive.iter_activations("a")])
        np.testing.assert_array_equal(values[:, 0], np.arange(10))


def test_durable_every_counts_in_blocks(memory_url):
    import zarr

    writer = ArchiveWriter(memory_url, durable_every=4, chunk_checkpoints=3)
    counts = []
    for t in range(9):
        writer.append(epoch=t + 1, signals={"a": float(t)})
        counts.append(zarr.open_group(memory_url, mode="r").attrs["complete_checkpoints"])
    assert counts == [0, 0, 0, 4, 4, 4, 4, 8, 8]
    writer.close()
    assert zarr.open_group(memory_url, mode="r").attrs["complete_checkpoints"] == 9


def test_writer_id_is_reserved(memory_url):
    with pytest.raises(InputError, match="writer_id"):
        ArchiveWriter(memory_url, {"writer_id": "mine"})


def test_a_store_without_conditional_writes_warns_once_and_goes_on(memory_url, monkeypatch):
    writer = ArchiveWriter(memory_url)
    sink = writer._sink
    sink._conditional, sink._etag = True, '"an-etag"'  # as on S3
    pipe_file = sink._fs.pipe_file
    refused = []

    def no_conditions(path, value, **kwargs):
        if "IfMatch" in kwargs:
            refused.append(path)
            raise OSError(errno.ENOSYS, "conditional writes are not implemented")
        return pipe_file(path, value, **kwargs)

    monkeypatch.setattr(sink._fs, "pipe_file", no_conditions)
    with pytest.warns(RuntimeWarning, match="refuses conditional writes"):
        writer.append(epoch=1, signals={"a": 1.0})
    writer.append(epoch=2, signals={"a": 2.0})  # no second warning (filterwarnings=error)
    writer.close()
    assert len(refused) == 1
    with open_archive(memory_url) as archive:
        assert archive.n_checkpoints == 2


def test_a_failed_upload_keeps_the_counted_checkpoints(memory_url, monkeypatch):
    writer = ArchiveWriter(memory_url)
    writer.append(epoch=1, signals={"a": 1.0})

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "the store went away")

    monkeypatch.setattr(writer._sink._fs, "pipe", fail)
    with pytest.raises(ArchiveError, match="the store went away; the archive keeps the 1 check"):
        writer.append(epoch=2, signals={"a": 2.0})
    writer.close()
    with open_archive(memory_url) as archive:
        assert archive.n_checkpoints == 1


def _layered_run(url: str, n_layers: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = {
        f"l{i:02d}": rng.standard_normal((30, 3, 4)).astype(np.float32) for i in range(n_layers)
    }
    with ArchiveWriter(url, chunk_checkpoints=4) as writer:
        for t in range(30):
            writer.append(epoch=t + 1, activations={name: v[t] for name, v in rows.items()})
    return rows


@pytest.mark.parametrize("reduce", ["mean", "rms", "std", "mean-abs"])
def test_layers_of_a_url_read_at_once_are_each_layers_own(memory_url, reduce):
    """More layers than are read at once, blocks smaller than a layer: every signal in
    its layer's row, equal to NumPy's reduction of what was written."""
    from dynatrain.signals import read_signals

    rows = _layered_run(memory_url, 11, np.random.default_rng(4))
    signals = read_signals(memory_url, reduce=reduce, max_block_bytes=8 * 48 * 4)
    assert signals.layer_names == tuple(rows)
    reference = {
        "mean": lambda v: v.mean(axis=(1, 2), dtype=np.float64),
        "rms": lambda v: np.sqrt((v.astype(np.float64) ** 2).mean(axis=(1, 2))),
        "std": lambda v: v.astype(np.float64).std(axis=(1, 2)),
        "mean-abs": lambda v: np.abs(v.astype(np.float64)).mean(axis=(1, 2)),
    }[reduce]
    expected = np.vstack([reference(v) for v in rows.values()])
    np.testing.assert_allclose(signals.values, expected, rtol=1e-6, atol=1e-9)


def test_a_bad_chunk_in_one_of_the_layers_read_at_once_is_the_error(memory_url):
    import fsspec

    from dynatrain.signals import read_signals

    _layered_run(memory_url, 11, np.random.default_rng(5))
    fs = fsspec.filesystem("memory")
    root = memory_url.removeprefix("memory://")
    fs.pipe(f"{root}/layers/l07/activations/c/2/0/0", b"not a chunk")
    with pytest.raises(ArchiveError, match="l07"):
        read_signals(memory_url)
