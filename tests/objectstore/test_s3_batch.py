"""Sweeps in a bucket: prefixes searched, globs expanded, stdin, hostile key names."""

from __future__ import annotations

import json
import os
import re

import pytest
from s3server import write_run

from dynatrain.batch import collect_runs
from dynatrain.errors import InputError

#: Runs are written in one go (a single commit): the tests are about finding them.
FAST = {"durable_every": 1000}


@pytest.fixture(scope="module")
def sweep(module_bucket):
    """``sweep/{a,b}/seed{0,1}.zarr`` (dataset a or b), a store without the suffix,
    a store inside a store, and objects that are no archive."""
    for group in "ab":
        for seed in range(2):
            url = module_bucket.url(f"sweep/{group}/seed{seed}.zarr")
            write_run(
                url, metadata={"dataset": group, "run_id": f"{group}{seed}"}, seed=seed, **FAST
            )
    # A store nested in a store is part of it, never a run of its own.
    write_run(module_bucket.url("sweep/a/seed0.zarr/nested.zarr"), **FAST)
    write_run(module_bucket.url("elsewhere/plain.zarr"), metadata={"dataset": "c"}, **FAST)
    fs, name = module_bucket.fs, module_bucket.name
    fs.copy(f"{name}/elsewhere/plain.zarr", f"{name}/sweep/c/plain", recursive=True)
    fs.pipe(f"{name}/sweep/b/notes.txt", b"not an archive")
    fs.pipe(f"{name}/sweep/empty/readme.md", b"nothing here")
    return module_bucket


def runs_of(bucket, *specs, **options):
    prefix = bucket.url()
    return [run.removeprefix(prefix) for run in collect_runs(specs, **options)]


SEEDS = ["sweep/a/seed0.zarr", "sweep/a/seed1.zarr", "sweep/b/seed0.zarr", "sweep/b/seed1.zarr"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("sweep/", [*SEEDS, "sweep/c/plain"]),
        ("sweep", [*SEEDS, "sweep/c/plain"]),
        ("sweep/*/*.zarr", SEEDS),
        ("sweep/**/*.zarr", SEEDS),
        ("sweep/?/seed[01].zarr", SEEDS),
        ("sweep/[!a]/seed?.zarr", SEEDS[2:]),
        ("sweep/*", [*SEEDS, "sweep/c/plain"]),
        ("sweep/a/seed0.zarr", ["sweep/a/seed0.zarr"]),
        ("sweep/c/plain", ["sweep/c/plain"]),
        ("sweep/a/missing.zarr", ["sweep/a/missing.zarr"]),  # kept: its row says it is missing
    ],
)
def test_prefixes_and_globs_in_a_bucket(sweep, pattern, expected):
    assert runs_of(sweep, sweep.url(pattern)) == expected


def test_a_store_is_one_run_and_is_never_listed_inside(sweep, monkeypatch):
    from dynatrain import batch

    listed = []
    original = batch._Listing.entries

    def entries(self, relative):
        listed.append(relative)
        return original(self, relative)

    monkeypatch.setattr(batch._Listing, "entries", entries)
    runs_of(sweep, sweep.url("sweep/"))
    runs_of(sweep, sweep.url("sweep/**/*.zarr"))
    assert listed
    assert not [path for path in listed if ".zarr" in path]


@pytest.mark.parametrize("pattern", ["sweep/*/*.h5", "sweep/x*/*.zarr", "nothing/**/*.zarr"])
def test_a_glob_that_matches_nothing_stops_the_batch(sweep, pattern):
    with pytest.raises(InputError, match="no archive matches this pattern"):
        collect_runs([sweep.url(pattern)])


def test_a_prefix_without_archives_stops_the_batch_in_one_line(sweep):
    with pytest.raises(InputError, match=r"no \.h5, \.hdf5, \.zarr archive under this prefix"):
        collect_runs([sweep.url("sweep/empty/")])
    result = sweep.invoke("batch", sweep.url("sweep/empty/"))
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_batch_reports_a_sweep_in_a_bucket(sweep, tmp_path):
    report = tmp_path / "report"
    result = sweep.invoke(
        "batch",
        sweep.url("sweep/"),
        "--group-by",
        "dataset",
        "--surrogates",
        "0",
        "--format",
        "jsonl",
        "-o",
        str(report),
        "--jobs",
        "1",  # worker processes: see test_storage_options_reach_the_worker_processes
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["run"] for record in records] == [
        sweep.url(run) for run in [*SEEDS, "sweep/c/plain"]
    ]
    assert all("error" not in record for record in records)
    assert [record["metadata"]["dataset"] for record in records] == ["a", "a", "b", "b", "c"]
    groups = json.loads((report / "groups.json").read_text())
    assert [group["group"] for group in groups["groups"]] == ["a", "b", "c"]
    assert sorted(os.listdir(report / "runs")) == [
        "a0.json",
        "a1.json",
        "b0.json",
        "b1.json",
        "plain.json",
    ]


def test_urls_on_stdin(sweep):
    lines = "\n".join([sweep.url("sweep/a/"), sweep.url("sweep/b/seed0.zarr"), ""])
    result = sweep.invoke(
        "batch", "-", "--surrogates", "0", "--format", "jsonl", "--jobs", "1", input=lines
    )
    assert result.exit_code == 0, result.stderr
    runs = [json.loads(line)["run"] for line in result.stdout.splitlines()]
    assert runs == [sweep.url(run) for run in SEEDS[:3]]
    separated = "\0".join([sweep.url("sweep/b/seed1.zarr"), sweep.url("sweep/*/seed0.zarr")])
    assert runs_of(sweep, "-", stdin=_Text(separated), null=True) == [
        "sweep/b/seed1.zarr",
        "sweep/a/seed0.zarr",
        "sweep/b/seed0.zarr",
    ]


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text

    def read(self) -> str:
        return self.text


#: Key names a sweep may hold: glob characters, spaces, escapes, control characters,
#: path tricks. (An S3 key may hold any of them; moto refuses a newline.)
HOSTILE_NAMES = [
    "x[1].zarr",
    "star*.zarr",
    "q?.zarr",
    "sp ace.zarr",
    "#hash.zarr",
    "pct%2F.zarr",
    "esc\x1b[31m.zarr",
    "bell\x07.zarr",
    "..",
    "$(touch pwned).zarr",
    "CON.zarr",
    "semi;colon'quote\".zarr",
    "ünïcödé-\u202eevil.zarr",
]
#: run_id metadata that tries to escape the report folder or the terminal.
HOSTILE_IDS = ["../../../escape", "/etc/passwd", "\x1b]0;pwned\x07", "..", "a/b\\c", ""]


@pytest.fixture(scope="module")
def hostile(module_bucket):
    urls = []
    for i, name in enumerate(HOSTILE_NAMES):
        key = f"hostile/{name}" if name != ".." else "hostile/../dots.zarr"
        url = module_bucket.url(key)
        metadata = {"run_id": HOSTILE_IDS[i % len(HOSTILE_IDS)], "dataset": name}
        write_run(url, metadata=metadata, seed=i, **FAST)
        urls.append(url)
    return module_bucket, urls


def test_hostile_key_names_are_found_and_reported_safely(hostile, tmp_path):
    bucket, urls = hostile
    assert sorted(collect_runs([bucket.url("hostile/")])) == sorted(urls)
    report = tmp_path / "report"
    result = bucket.invoke(
        "batch",
        bucket.url("hostile/"),
        "--jobs",
        "1",
        "--surrogates",
        "0",
        "--format",
        "table",
        "-o",
        str(report),
        "--groups-json",
        str(tmp_path / "groups.json"),
    )
    assert result.exit_code == 0, result.stderr
    # Nothing escaped the report folder; every file name there is plain.
    written = [
        os.path.relpath(os.path.join(folder, name), report)
        for folder, _, names in os.walk(report)
        for name in names
    ]
    assert len([name for name in written if name.startswith("runs/")]) == len(urls)
    for name in written:
        assert re.fullmatch(r"[A-Za-z0-9._/-]+", name), name
    assert sorted(os.listdir(tmp_path)) == ["groups.json", "report"]
    # No raw control character reaches the terminal.
    for stream in (result.stdout, result.stderr):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", stream), stream
    records = [json.loads(path.read_text()) for path in (report / "runs").iterdir()]
    assert sorted(record["run"] for record in records) == sorted(urls)


def test_a_url_naming_a_key_with_glob_characters_is_that_key(hostile):
    bucket, _ = hostile
    for name in ("x[1].zarr", "star*.zarr", "q?.zarr"):
        url = bucket.url(f"hostile/{name}")
        assert collect_runs([url]) == [url]


def test_storage_options_reach_the_worker_processes(sweep, tmp_path):
    """No credentials or endpoint in the environment: only --storage-option gives them."""
    environment = {
        name: value
        for name, value in sweep.environment.items()
        if name not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
    }
    options = [
        "--storage-option",
        f"endpoint_url={sweep.server.endpoint}",
        "--storage-option",
        "key=dynatrain-test-key-id",
        "--storage-option",
        "secret=dynatrain-test-secret-key",
    ]
    result = sweep.run_cli(
        "batch",
        sweep.url("sweep/a/"),
        "--surrogates",
        "0",
        "--jobs",
        "2",
        "--format",
        "jsonl",
        *options,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
