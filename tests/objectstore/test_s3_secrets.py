"""Credentials never show: planted secrets are searched for in every output.

The credentials are given every way at once (environment, ``--storage-option``, in
the URL), each way its own planted values; every command that reads archives runs
(successes and failures), and stdout, stderr and every file written (reports,
figures, JSON) are searched for each secret. Then each way alone, with a few
commands: it is the one used, and its secrets do not show either.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner
from s3server import CountingProxy, write_run

from dynatrain.cli import main

#: The server accepts any credentials: these are planted to be searched for.
ENV_KEY_ID, ENV_SECRET = "PLANTEDENVKEYID7Q2", "PLANTEDenvs3cr3tVALUEx9"
OPTION_KEY_ID, OPTION_SECRET = "PLANTEDOPTKEYID4R8", "PLANTEDopts3cr3t/VALUE+k2"
URL_KEY_ID, URL_SECRET = "PLANTEDURLKEYID3Z1", "PLANTEDurls3cr3t/VALUE+w7"
SECRETS = (ENV_KEY_ID, ENV_SECRET, OPTION_KEY_ID, OPTION_SECRET, URL_KEY_ID, URL_SECRET)


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


def _url_base(bucket_name: str) -> str:
    return f"s3://{URL_KEY_ID}:{URL_SECRET}@{bucket_name}/"


def _options() -> list[str]:
    return [
        "--storage-option",
        f"key={OPTION_KEY_ID}",
        "--storage-option",
        f"secret={OPTION_SECRET}",
    ]


def test_credentials_given_every_way_never_show(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    text = _run_all(_url_base(runs.name), tmp_path, _options())
    assert f"s3://***@{runs.name}/sweep/a.zarr" in text  # the run, as every output names it
    assert '"integration"' in text  # the commands ran
    _assert_no_secret(text, *SECRETS)


def _few_commands(url_base: str) -> list[list[str]]:
    """What shows a run's name (record, detail, errors), without the slow figures."""
    return [
        ["inspect", f"{url_base}sweep/a.zarr", "--format", "json"],
        ["analyze", f"{url_base}sweep/a.zarr", "--surrogates", "0", "--format", "json"],
        ["analyze", f"{url_base}sweep/missing.zarr"],
        ["batch", f"{url_base}sweep/", "--surrogates", "0", "-j", "1", "--format", "jsonl"],
    ]


@pytest.mark.parametrize("way", ["environment", "storage options", "url"])
def test_each_way_alone_is_used_and_never_shows(runs, monkeypatch, way):
    """Each way alone: the requests are signed with its key (seen by a proxy)."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    proxy = CountingProxy(runs.server.port)
    # The endpoint as an option: fsspec reuses the file system made earlier in this
    # process for the same options (with the environment it read then); this one's
    # options are new.
    url_base, extra = runs.url(), ["--storage-option", f"endpoint_url={proxy.endpoint}"]
    if way == "environment":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    elif way == "storage options":
        extra += _options()
    elif way == "url":
        url_base = _url_base(runs.name)
    runner = CliRunner()
    seen = []
    try:
        for command in _few_commands(url_base):
            result = runner.invoke(main, [*command, *extra])
            expected = 2 if "missing.zarr" in command[1] else 0
            assert result.exit_code == expected, (command, result.stderr)
            seen += [result.stdout, result.stderr]
    finally:
        proxy.close()
    key_id = {"environment": ENV_KEY_ID, "storage options": OPTION_KEY_ID, "url": URL_KEY_ID}
    assert proxy.key_ids == {key_id[way]}
    text = "\n".join(seen)
    assert '"integration"' in text
    _assert_no_secret(text, *SECRETS)


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
        main, ["inspect", runs.url("sweep/a.zarr"), "--storage-option", "=" + OPTION_SECRET]
    )
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "--storage-option" in result.stderr
    _assert_no_secret(result.stdout + result.stderr, OPTION_SECRET)


def test_an_option_the_store_refuses_is_one_line_without_secrets(runs):
    result = CliRunner().invoke(
        main,
        [
            "inspect",
            runs.url("sweep/a.zarr"),
            "--storage-option",
            f"secret={OPTION_SECRET}",
            "--storage-option",
            "bogus_option=1",
        ],
    )
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    _assert_no_secret(result.stdout + result.stderr, OPTION_SECRET)
