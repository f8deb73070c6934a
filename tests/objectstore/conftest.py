"""Fixtures for the object-storage tests: a real S3 API on 127.0.0.1.

One moto server (server mode, a child process) serves the whole session; every test
gets a bucket of its own and an environment that points the AWS SDK at the server
(credentials, ``AWS_ENDPOINT_URL``), as a user's would. The tests drive the real
commands. They are skipped, with the reason shown, where moto's server mode or s3fs
is not installed (``pip install 'dynatrain[test]'`` installs both).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from s3server import S3Server

_MISSING = [
    name
    for name in ("moto", "flask", "flask_cors", "s3fs")
    if importlib.util.find_spec(name) is None
]
_SKIP_REASON = (
    f"object-storage tests need moto's server mode and s3fs ({', '.join(_MISSING)} not"
    " installed: pip install 'moto[server]' s3fs)"
)
_buckets = itertools.count()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    if _MISSING:
        pytest.skip(_SKIP_REASON)
    with S3Server() as server:
        yield server


@dataclass
class Bucket:
    """A bucket of its own on the session's server, and what reaching it takes."""

    name: str
    server: S3Server
    fs: Any  # s3fs.S3FileSystem

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    @property
    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.server.environment()}

    def invoke(self, *args: str, input: str | None = None) -> Any:
        """``dynatrain ARGS`` in this process (click's runner): much faster than a child
        process; the environment is this process's (see ``s3_environment``)."""
        from click.testing import CliRunner

        from dynatrain.cli import main

        return CliRunner().invoke(main, list(args), input=input)

    def run_cli(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """``dynatrain ARGS`` in a child process, as a user runs it (where the test needs
        a process of its own: its environment, its network traffic, worker processes)."""
        text_input = input.decode() if isinstance(input, bytes) else input
        return subprocess.run(
            [sys.executable, "-m", "dynatrain.cli", *args],
            input=text_input,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else self.environment,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def s3_environment(s3_server: S3Server) -> Iterator[dict[str, str]]:
    """This process's environment points at the server, for one test module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.environment().items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        yield dict(os.environ)


def _new_bucket(server: S3Server) -> Bucket:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    name = f"test-{os.getpid()}-{next(_buckets)}"
    fs.mkdir(name)
    return Bucket(name, server, fs)


@pytest.fixture
def bucket(s3_server: S3Server, s3_environment: dict[str, str]) -> Bucket:
    """A fresh bucket for one test."""
    return _new_bucket(s3_server)


@pytest.fixture(scope="module")
def module_bucket(s3_server: S3Server, s3_environment: dict[str, str]) -> Bucket:
    """A bucket shared by the tests of one module (for what is slow to write)."""
    return _new_bucket(s3_server)
