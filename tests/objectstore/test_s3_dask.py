"""A sweep in a bucket on a Dask cluster: workers read the runs, the client only lists.

The client (the ``dynatrain batch`` process) and the cluster's workers reach the S3
server through two counting proxies, so the bytes each side reads from the server
are measured, and every request the client makes is seen.
"""

from __future__ import annotations

import json

import pytest
from s3server import CountingProxy, write_run


@pytest.fixture(scope="module")
def sweep(module_bucket):
    for i in range(4):
        url = module_bucket.url(f"sweep/run{i}.zarr")
        write_run(url, metadata={"dataset": "ab"[i % 2]}, seed=i, durable_every=1000)
    return module_bucket


def test_workers_read_the_runs_and_the_client_only_lists(sweep, monkeypatch):
    distributed = pytest.importorskip("distributed")
    archive_bytes = sum(sweep.fs.du(f"{sweep.name}/sweep/run{i}.zarr") for i in range(4))
    client_proxy = CountingProxy(sweep.server.port)
    worker_proxy = CountingProxy(sweep.server.port)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", worker_proxy.endpoint)  # the workers' own
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            environment = {**sweep.environment, "AWS_ENDPOINT_URL": client_proxy.endpoint}
            result = sweep.run_cli(
                "batch",
                sweep.url("sweep/"),
                "--dask-address",
                cluster.scheduler_address,
                "--surrogates",
                "0",
                "--group-by",
                "dataset",
                "--format",
                "jsonl",
                env=environment,
            )
    finally:
        client_proxy.close()
        worker_proxy.close()
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["run"] for record in records] == [
        sweep.url(f"sweep/run{i}.zarr") for i in range(4)
    ]
    assert all(record["checkpoints"] == 40 for record in records)
    # The workers read every run's data; the client read listings only.
    assert worker_proxy.bytes_from_server >= archive_bytes
    assert client_proxy.requests, "the client never reached the server"
    objects_read = [path for method, path in client_proxy.requests if "?" not in path]
    assert objects_read == []
    assert all("list-type=2" in path for _, path in client_proxy.requests)
    # Measured: 858 bytes in 1 listing, for 865 KB of archives (4 runs).
    assert client_proxy.bytes_from_server < archive_bytes / 20
