"""Writing archives to S3: layout, durability under SIGKILL, one writer per archive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from s3server import write_run

from dynatrain import ArchiveWriter, open_archive
from dynatrain.archive.validate import validate_archive
from dynatrain.errors import ArchiveError, InputError


def test_a_run_written_to_s3_reads_back_through_zarr_and_the_commands(bucket):
    url = bucket.url("sweep/a.zarr")
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((80, 5, 7)).astype(np.float32)
    with ArchiveWriter(url, metadata={"run_id": "a", "dataset": "d"}) as writer:
        for t, row in enumerate(rows):
            writer.append(
                epoch=t + 1, activations={"fc": row}, metrics={"val/acc": t / 80}, step=10 * t
            )
    import zarr
    from zarr.storage import FsspecStore

    root = zarr.open_group(FsspecStore.from_url(url, read_only=True), mode="r")
    assert root.attrs["complete_checkpoints"] == 80
    np.testing.assert_array_equal(root["layers/fc/activations"][...], rows)
    np.testing.assert_array_equal(root["checkpoints/step"][...], 10 * np.arange(80))
    # Chunks hold many checkpoints: 80 rows of 140 bytes are 1 chunk, not 80 objects.
    keys = bucket.fs.find(f"{bucket.name}/sweep/a.zarr/layers/fc/activations")
    assert len([key for key in keys if "/c/" in key]) == 1

    result = bucket.invoke("validate", url)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ok ")
    result = bucket.invoke("inspect", url, "--format", "json")
    assert json.loads(result.stdout)["checkpoints"] == 80
    with open_archive(url) as archive:
        assert archive.metric_names == ("val/acc",)
        np.testing.assert_array_equal(archive.metric("val/acc"), np.arange(80) / 80)


def test_each_append_is_visible_to_a_new_reader_at_once(bucket):
    """What ``watch`` relies on: re-reading the root sees every counted checkpoint."""
    url = bucket.url("live.zarr")
    with ArchiveWriter(url, chunk_checkpoints=3) as writer:
        for t in range(8):
            writer.append(epoch=t + 1, activations={"a": np.full((2, 2), t, np.float32)})
            with open_archive(url) as archive:
                assert archive.n_checkpoints == t + 1
                values = np.concatenate([b.values for b in archive.iter_activations("a")])
                np.testing.assert_array_equal(values[:, 0], np.arange(t + 1))


#: A process that imports dynatrain once, then forks one writer per URL read from its
#: stdin (a writer per attempt without paying the imports each time). Nothing has been
#: read or written before a fork, so no event-loop thread of the storage library exists
#: to be copied. Each writer says "ready PID", then the index of every append returned;
#: the parent says "gone" once the writer has died.
WRITERS = r"""
import os
import sys

import numpy as np
import s3fs  # noqa: F401
import zarr  # noqa: F401

from dynatrain import ArchiveWriter


def write(url):
    with ArchiveWriter(url, metadata={"run_id": "crash"}, chunk_checkpoints=4) as writer:
        print("ready", os.getpid(), flush=True)
        for t in range(100_000):
            writer.append(
                epoch=t + 1,
                activations={
                    "a": np.full((3, 5), t, np.float32),
                    "b": np.full((2,), -t, np.float64),
                },
                metrics={"val_accuracy": t / 1000},
                step=t,
            )
            print(t, flush=True)


for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            write(line.strip())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    print("gone", flush=True)
"""


def test_a_killed_writer_leaves_every_counted_checkpoint_readable(bucket):
    """SIGKILL at random moments, uploads in flight included: no returned append is lost."""
    rng = np.random.default_rng(15)
    writers = subprocess.Popen(
        [sys.executable, "-c", WRITERS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=bucket.environment,
    )
    try:
        for attempt in range(4):
            url = bucket.url(f"crash{attempt}.zarr")
            writers.stdin.write(url + "\n")
            writers.stdin.flush()
            word, pid = writers.stdout.readline().split()
            assert word == "ready"
            returned = -1
            target = int(rng.integers(3, 12))
            while returned < target:
                returned = int(writers.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.05))  # inside one of the next appends
            os.kill(int(pid), signal.SIGKILL)
            while (line := writers.stdout.readline().strip()) != "gone":
                returned = int(line)
            _assert_checkpoints_readable(url, returned + 1)
    finally:
        writers.stdin.close()
        writers.wait(timeout=30)
        writers.stdout.close()


def _assert_checkpoints_readable(url: str, returned: int) -> None:
    """At least ``returned`` checkpoints counted, each read back exactly as written."""
    with open_archive(url) as archive:
        n = archive.n_checkpoints
        assert n >= returned
        t = np.arange(n)
        np.testing.assert_array_equal(archive.epochs, t + 1)
        np.testing.assert_array_equal(archive.steps, t)
        np.testing.assert_array_equal(archive.metric("val_accuracy"), t / 1000)
        for layer, sign in (("a", 1), ("b", -1)):
            values = np.concatenate([block.values for block in archive.iter_activations(layer)])
            np.testing.assert_array_equal(values, np.broadcast_to(sign * t[:, None], values.shape))
    report = validate_archive(url)
    assert report.valid, report.problems


def test_mode_w_refuses_an_existing_run_and_w_replaces_it(bucket):
    url = bucket.url("runs/a.zarr")
    write_run(url, layers=("old",), checkpoints=5)
    with pytest.raises(InputError, match="already exists"):
        ArchiveWriter(url)
    write_run(url, layers=("new",), checkpoints=6, mode="w")
    with open_archive(url) as archive:
        assert archive.layer_names == ("new",)
        assert archive.n_checkpoints == 6
    assert not bucket.fs.exists(f"{bucket.name}/runs/a.zarr/layers/old")
    # A neighbour whose name starts the same is left alone.
    write_run(bucket.url("runs/a.zarr2/x.zarr"), checkpoints=5)
    write_run(url, checkpoints=5, mode="w")
    assert bucket.fs.exists(f"{bucket.name}/runs/a.zarr2/x.zarr/zarr.json")


def test_mode_w_refuses_what_is_not_a_zarr_store(bucket):
    bucket.fs.pipe(f"{bucket.name}/data.zarr/notes.txt", b"mine")
    with pytest.raises(ArchiveError, match="not a Zarr store; refusing to replace it"):
        ArchiveWriter(bucket.url("data.zarr"), mode="w")
    bucket.fs.pipe(f"{bucket.name}/object.zarr", b"an object")
    with pytest.raises(ArchiveError, match="is an object"):
        ArchiveWriter(bucket.url("object.zarr"), mode="w")
    assert bucket.fs.cat(f"{bucket.name}/data.zarr/notes.txt") == b"mine"


@pytest.mark.parametrize("mode", ["w-", "w"])
def test_of_writers_racing_to_create_one_archive_one_wins(bucket, mode):
    """The root is created with If-None-Match: exactly one creator succeeds."""
    for attempt in range(2):
        url = bucket.url(f"race-{mode}-{attempt}.zarr")
        barrier = threading.Barrier(4)
        outcomes: list[object] = []

        def create(url=url, barrier=barrier, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                ArchiveWriter(url, mode=mode).close()
                outcomes.append("created")
            except (InputError, ArchiveError) as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=create) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if mode == "w-":
            assert outcomes.count("created") == 1, outcomes
            assert all(
                "already exists" in o or "another writer created" in o
                for o in outcomes
                if o != "created"
            )
        else:  # each replaces the one before: at least one was refused by another's create
            assert outcomes.count("created") >= 1, outcomes


def test_a_writer_whose_archive_was_replaced_stops(bucket):
    url = bucket.url("taken.zarr")
    first = ArchiveWriter(url)
    first.append(epoch=1, activations={"a": np.zeros(3)})
    second = ArchiveWriter(url, mode="w")
    second.append(epoch=1, activations={"b": np.ones(2)})
    with pytest.raises(ArchiveError, match="replaced or written by another writer"):
        first.append(epoch=2, activations={"a": np.zeros(3)})
    first.close()
    second.append(epoch=2, activations={"b": np.ones(2)})
    second.close()
    with open_archive(url) as archive:
        assert archive.layer_names == ("b",)
        assert archive.n_checkpoints == 2


def test_hdf5_and_unknown_urls_are_refused_in_one_line(bucket):
    with pytest.raises(InputError, match="HDF5 archives are written to local paths"):
        ArchiveWriter(bucket.url("run.h5"))
    with pytest.raises(InputError, match=r"nosuchproto:// URLs|cannot open"):
        ArchiveWriter("nosuchproto://x/run.zarr")


def test_a_missing_bucket_is_one_clear_error(bucket):
    with pytest.raises(ArchiveError) as caught:
        write_run("s3://no-such-bucket-here/run.zarr")
    message = str(caught.value)
    assert "\n" not in message
    assert "bucket" in message.lower()
    result = bucket.invoke("simulate", "s3://no-such-bucket-here/sim.zarr")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "bucket" in result.stderr.lower()


def test_explicit_storage_options_without_environment(bucket, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    options = {
        "endpoint_url": bucket.server.endpoint,
        "key": "dynatrain-test-key-id",
        "secret": "dynatrain-test-secret-key",
    }
    url = bucket.url("explicit.zarr")
    write_run(url, checkpoints=5, storage_options=options)
    assert bucket.fs.exists(f"{bucket.name}/explicit.zarr/zarr.json")


def test_simulate_writes_to_the_bucket(bucket):
    url = bucket.url("sim/run.zarr")
    result = bucket.invoke("simulate", url, "--checkpoints", "30", "--layers", "3")
    assert result.exit_code == 0, result.stderr
    result = bucket.invoke("simulate", url, "--checkpoints", "30", "--layers", "3")
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    result = bucket.invoke("simulate", url, "--checkpoints", "20", "--layers", "3", "--force")
    assert result.exit_code == 0, result.stderr
    with open_archive(url) as archive:
        assert archive.n_checkpoints == 20
        assert archive.metadata["run_id"] == "run"


def test_the_torch_recorder_writes_to_the_bucket(bucket):
    torch = pytest.importorskip("torch")
    from dynatrain.torch import ActivationRecorder

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    probe = torch.randn(5, 4)
    url = bucket.url("torch/run.zarr")
    with ActivationRecorder(model, ["0", "2"], probe, url, {"run_id": "t"}) as recorder:
        for epoch in range(1, 4):
            with torch.no_grad():
                model[0].weight.add_(0.1)
            recorder.record(epoch=epoch, metrics={"val_accuracy": epoch / 4})
    with open_archive(url) as archive:
        assert archive.layer_names == ("0", "2")
        assert archive.n_checkpoints == 3
        with torch.no_grad():
            expected = model(probe).numpy()
        last = np.concatenate([b.values for b in archive.iter_activations("2")])[-1]
        np.testing.assert_allclose(last, expected.ravel(), rtol=1e-6)


def test_no_listing_cache_hides_a_new_checkpoint(bucket):
    """Each append adds a chunk object; a listing cached by an earlier read would hide it."""
    url = bucket.url("listed.zarr")
    with ArchiveWriter(url, chunk_checkpoints=1) as writer:
        for t in range(4):
            writer.append(epoch=t + 1, activations={"a": np.full((2,), t, np.float32)})
            report = validate_archive(url)  # lists the chunks (a missing one is a problem)
            assert report.valid, report.problems
            assert report.n_checkpoints == t + 1


def test_polling_the_count_of_a_run_in_a_bucket_is_one_small_read(bucket):
    """What a watcher polls: the root's count, fresh at each poll, without listings or chunks:
    one GET of the root's ``zarr.json`` (the format 2 documents only where it is absent)."""
    from s3server import CountingProxy

    from dynatrain.archive.reader import read_complete_checkpoints

    url = bucket.url("polled.zarr")
    proxy = CountingProxy(bucket.server.port)
    options = {"endpoint_url": proxy.endpoint}
    try:
        with ArchiveWriter(url, chunk_checkpoints=2) as writer:
            for t in range(5):
                writer.append(epoch=t + 1, activations={"a": np.zeros((64, 64), np.float32)})
                before = len(proxy.requests), proxy.bytes_from_server
                assert read_complete_checkpoints(url, storage_options=options) == t + 1
                requests = proxy.requests[before[0] :]
                assert all(method == "GET" and "?" not in path for method, path in requests)
                assert [path.rsplit("/", 1)[-1] for _, path in requests] == ["zarr.json"]
                assert proxy.bytes_from_server - before[1] < 8_000  # a chunk is 32 KiB
    finally:
        proxy.close()


def test_folder_markers_are_not_members(bucket):
    """Some tools store empty "folder/" objects; a group's members are its children."""
    url = bucket.url("marked.zarr")
    write_run(url, checkpoints=6, layers=("l1", "l2"))
    for key in ("marked.zarr/", "marked.zarr/layers/", "marked.zarr/layers/l1/"):
        bucket.fs.call_s3("put_object", Bucket=bucket.name, Key=key, Body=b"")
    with open_archive(url) as archive:
        assert archive.layer_names == ("l1", "l2")
        assert archive.n_checkpoints == 6
    assert validate_archive(url).valid


def test_watch_follows_a_run_being_written_to_the_bucket(bucket):
    """Every checkpoint reported once, in order, and the run complete at its end."""
    from dynatrain.analysis import Settings
    from dynatrain.watch import watch

    url = bucket.url("watched.zarr")
    events: list[dict] = []
    # The training job: another process, as it would be.
    writer = subprocess.Popen(
        [sys.executable, "-m", "dynatrain.cli", "simulate", url, "--checkpoints", "60",
         "--layers", "3", "--samples", "2", "--features", "2"],
        env=bucket.environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        end = watch(
            url,
            Settings(window=20, surrogates=0),
            until="complete",
            timeout=60,
            interval=0.05,
            on_event=events.append,
        )
    finally:
        _, stderr = writer.communicate(timeout=120)
    assert writer.returncode == 0, stderr
    assert (end.reason, end.exit_code) == ("complete", 0), end.message
    assert [event["checkpoint"] for event in events] == list(range(60))
    with open_archive(url) as archive:
        assert [event["epoch"] for event in events] == archive.epochs.tolist()


def test_watch_of_a_bucket_run_that_never_comes_times_out_in_one_line(bucket):
    result = bucket.invoke(
        "watch", bucket.url("never.zarr"), "--timeout", "0.5", "--interval", "0.1",
        "--format", "jsonl",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "no new complete checkpoint yet for 0.5 s" in result.stderr
    assert "Traceback" not in result.stderr
