"""A local S3-compatible server (moto's server mode) for the object-storage tests, a
proxy that counts what crosses it, and a small run to write (``write_run``).

The server runs in a child process on 127.0.0.1, on a port the system chooses, and
stops when its standard input closes (so also when the test process dies).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_SERVE = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


class S3Server:
    """``with S3Server() as server:`` then ``server.endpoint`` (``http://127.0.0.1:PORT``)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the S3 server did not start (said {line!r})")
        self.port = int(line)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a client process needs to reach the server (and nothing else)."""
        return {
            "AWS_ACCESS_KEY_ID": "dynatrain-test-key-id",
            "AWS_SECRET_ACCESS_KEY": "dynatrain-test-secret-key",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Never the user's own configuration, never the instance metadata service.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


#: What a request line looks like (the client's side of a connection).
_REQUEST = re.compile(rb"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")
#: The access key id that signed a request (AWS signature version 4).
_SIGNED_BY = re.compile(rb"\r\nAuthorization: AWS4-HMAC-SHA256 Credential=([^/\s,]+)/", re.I)


class CountingProxy:
    """A TCP proxy to ``port`` that counts the bytes the server sends back, and sees the
    client's request lines and the access key ids that signed them."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.bytes_from_server = 0
        self.requests: list[tuple[str, str]] = []
        self.key_ids: set[str] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target)) as upstream:
            back = threading.Thread(target=self._forward, args=(upstream, client, False))
            back.start()
            self._forward(client, upstream, True)
            back.join()

    def _forward(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                with self._lock:
                    if from_client:
                        self.requests += [
                            (m.decode(), p.decode()) for m, p in _REQUEST.findall(data)
                        ]
                        self.key_ids.update(k.decode() for k in _SIGNED_BY.findall(data))
                    else:
                        self.bytes_from_server += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)  # pass the end of the stream on
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


def write_run(
    url: str,
    *,
    checkpoints: int = 40,
    layers: Sequence[str] = ("l1", "l2", "l3"),
    metadata: Mapping[str, Any] | None = None,
    seed: int = 0,
    **writer_options: Any,
) -> None:
    """A small run with varying signals and an accuracy that plateaus, at ``url``."""
    from dynatrain import ArchiveWriter

    rng = np.random.default_rng(seed)
    with ArchiveWriter(url, metadata=dict(metadata or {}), **writer_options) as writer:
        for t in range(checkpoints):
            writer.append(
                epoch=t + 1,
                activations={
                    name: rng.standard_normal((4, 6)).astype(np.float32) + np.sin(t / (i + 2))
                    for i, name in enumerate(layers)
                },
                metrics={"val_accuracy": 1 - np.exp(-t / 8)},
            )
