"""Credentials never show: planted secrets are searched for in every output.

Each test gives the credentials one way (environment, ``--storage-option``, in the
URL), runs the commands that read archives (successes and failures), and searches
stdout, stderr and every file written (reports, figures, JSON) for the secrets.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_run

from dynatrain.cli import main

#: The server accepts any credentials: these are planted to be searched for.
KEY_ID = "PLANTEDKEYID7Q2"
SECRET = "PLANTEDs3cr3tVALUEx9"


@pytest.fixture(scope="module")
def runs(module_bucket):
    for name in ("a", "b"):
        write_run(
            module_bucket.url(f"sweep/{name}.zarr"),
            metadata={"run_id": name, "dataset": name},
            durable_every=1000,
        )
    return module_bucket


def _forms(secret: str) -> list[str]:
    return [secret, urllib.parse.quote(secret, safe="")]


def _commands(url_base: str, out: Path) -> list[list[str]]:
    """What a user runs on a sweep: the commands that read, successes and failures."""
    run = f"{url_base}sweep/a.zarr"
    return [
        ["inspect", run, "--format", "json"],
        ["inspect", run, "--format", "table"],
        ["validate", run, f"{url_base}sweep/missing.zarr"],
        ["signals", run, "--format", "json"],
        ["analyze", run, "--surrogates", "0", "--format", "json", "--detail"],
        ["analyze", run, "--surrogates", "0", "--format", "markdown"],
        ["analyze", run, "--surrogates", "0", "--format", "csv"],
        ["analyze", run, "--surrogates", "0", "--format", "table"],
        ["analyze", run, "--surrogates", "0", "--plot", str(out / "plots"), "--plot-format", "svg"],
        ["analyze", f"{url_base}sweep/missing.zarr"],
        ["analyze", f"{url_base}no-such-prefix/"],
        [
            "batch",
            f"{url_base}sweep/",
            f"{url_base}sweep/missing.zarr",
            "--surrogates",
            "0",
            "--jobs",
            "1",
            "--group-by",
            "dataset",
            "-o",
            str(out / "report"),
            "--groups-json",
            str(out / "groups.json"),
            "--format",
            "jsonl",
        ],
        ["batch", f"{url_base}sweep/*.zarr", "--surrogates", "0", "--jobs", "1", "--format", "csv"],
        ["batch", f"{url_base}sweep/*.zarr", "--surrogates", "0", "-j", "1", "--format", "table"],
        ["batch", f"{url_base}sweep/*.h5"],
        ["batch", f"{url_base}nothing/"],
        ["simulate", run],
    ]


def _run_all(url_base: str, out: Path, extra: list[str]) -> str:
    """Every command's stdout and stderr, and every file written, as one text."""
    runner = CliRunner()
    seen = []
    for command in _commands(url_base, out):
        result = runner.invoke(main, [*command, *extra])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command,
            result.exception,
        )
        seen += [result.stdout, result.stderr]
    files = [Path(folder, name) for folder, _, names in os.walk(out) for name in names]
    assert any(path.suffix == ".svg" for path in files)
    assert any(path.name == "report.html" for path in files)
    seen += [path.read_bytes().decode("utf-8", errors="replace") for path in files]
    return "\n".join(seen)


def _assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in _forms(secret):
            assert form not in text, f"{form!r} shown"


def test_credentials_from_the_environment_never_show(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    text = _run_all(runs.url(), tmp_path, [])
    assert "a.zarr" in text  # the commands ran
    _assert_no_secret(text, KEY_ID, SECRET)


def test_credentials_from_storage_options_never_show(runs, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    options = ["--storage-option", f"key={KEY_ID}", "--storage-option", f"secret={SECRET}"]
    text = _run_all(runs.url(), tmp_path, options)
    assert '"integration"' in text  # the credentials worked
    _assert_no_secret(text, KEY_ID, SECRET)


def test_credentials_in_the_url_are_used_and_redacted(runs, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url_base = f"s3://{KEY_ID}:{SECRET}@{runs.name}/"
    text = _run_all(url_base, tmp_path, [])
    assert f"s3://***@{runs.name}/sweep/a.zarr" in text  # the run, as every output names it
    assert '"integration"' in text
    _assert_no_secret(text, KEY_ID, SECRET)


def test_a_password_in_an_http_url_never_shows(runs, tmp_path):
    password = "PLANTEDhttpPASSWORD"
    host = runs.server.endpoint.removeprefix("http://")
    url = f"http://user:{password}@{host}/{runs.name}/sweep/a.zarr"
    runner = CliRunner()
    seen = []
    for command in (["inspect", url], ["analyze", url, "--surrogates", "0"], ["batch", url]):
        result = runner.invoke(main, command)
        seen += [result.stdout, result.stderr]
    text = "\n".join(seen)
    assert "http://***@" in text
    _assert_no_secret(text, password)


def test_a_bad_storage_option_names_the_key_not_the_value(runs):
    result = CliRunner().invoke(
        main, ["inspect", runs.url("sweep/a.zarr"), "--storage-option", "=" + SECRET]
    )
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "--storage-option" in result.stderr
    _assert_no_secret(result.stdout + result.stderr, SECRET)


def test_an_option_the_store_refuses_is_one_line_without_secrets(runs):
    result = CliRunner().invoke(
        main,
        [
            "inspect",
            runs.url("sweep/a.zarr"),
            "--storage-option",
            f"secret={SECRET}",
            "--storage-option",
            "bogus_option=1",
        ],
    )
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    _assert_no_secret(result.stdout + result.stderr, SECRET)
