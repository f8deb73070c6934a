"""`dynatrain batch`: collecting runs, isolation of failures, output formats, parallel runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynatrain.batch import analyze_runs, collect_runs, iter_analyses
from dynatrain.errors import InputError
from dynatrain.report.export import to_jsonl
from dynatrain.simulate import simulate_run, write_run

FAST = ("--surrogates", "19")
N_PER_GROUP = 4


def _write_group_runs(folder: Path) -> list[Path]:
    """Runs of two planted groups: integration ~0.55 (dataset A) and ~0.9 (dataset B)."""
    paths = []
    for i in range(N_PER_GROUP):
        for dataset, hurst in (("A", 0.55), ("B", 0.9)):
            path = folder / f"{dataset}-{i}.h5"
            run = simulate_run("hurst", n_layers=6, n_checkpoints=51, hurst=hurst, seed=10 * i)
            write_run(path, run, metadata={"dataset": dataset}, samples=4, features=4, seed=i)
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def group_runs(tmp_path_factory) -> list[Path]:
    return _write_group_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def corrupt(tmp_path) -> Path:
    path = tmp_path / "corrupt.h5"
    path.write_bytes(b"PK\x03\x04 not an HDF5 file")
    return path


@pytest.fixture
def bad_superblock(tmp_path) -> Path:
    path = tmp_path / "bad-superblock.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature, then nothing
    return path


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_planted_groups_are_separated(cli, group_runs, tmp_path):
    groups_file = tmp_path / "groups.json"
    result = cli(
        "batch",
        group_runs[0].parent,
        *FAST,
        "-j",
        "1",
        "--group-by",
        "dataset",
        "--groups-json",
        groups_file,
    )
    assert result.exit_code == 0, result.stderr
    records = _jsonl(result.stdout)
    assert [r["run"] for r in records] == sorted(str(p) for p in group_runs)
    summary = json.loads(groups_file.read_text())
    assert [g["group"] for g in summary["groups"]] == ["A", "B"]
    comparison = next(c for c in summary["comparisons"] if c["measure"] == "integration")
    assert (comparison["group_a"], comparison["group_b"]) == ("A", "B")
    assert comparison["auroc"] == 1.0  # every B run above every A run
    assert comparison["p_value"] < 0.05  # exact two-sided: 2 / C(8, 4) = 0.029
    assert comparison["difference"] > 0.2 and comparison["cohens_d"] > 2


def test_a_corrupt_archive_is_isolated(cli, group_runs, corrupt, bad_superblock):
    runs = [group_runs[0], corrupt, group_runs[1], bad_superblock]
    result = cli("batch", *runs, *FAST, "-j", "1", "--format", "jsonl")
    assert result.exit_code == 2
    records = _jsonl(result.stdout)
    assert [r["run"] for r in records] == [str(p) for p in runs]
    assert records[1] == {
        "run": str(corrupt),
        "error": f"{corrupt}: not an HDF5 file (no HDF5 signature)",
    }
    assert set(records[3]) == {"run", "error"} and "\n" not in records[3]["error"]
    assert records[0]["integration"] > 0 and records[2]["integration"] > 0
    assert result.stderr.count("dynatrain: error:") == 2 and "Traceback" not in result.stderr

    out = cli("batch", *runs, *FAST, "-j", "1", "--format", "csv", "--group-by", "dataset").stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert out.startswith("run,run_id,error,group,metadata.")
    assert [row["error"] != "" for row in table] == [False, True, False, True]
    assert [row["group"] for row in table] == ["A", "", "B", ""]
    assert table[0]["metadata.dataset"] == "A" and table[1]["integration"] == ""


def test_an_unexpected_exception_becomes_an_error_row(group_runs, monkeypatch):
    import dynatrain.batch

    real_analyze = dynatrain.batch.analyze

    def analyze(run, settings):
        if run == str(group_runs[1]):
            raise ZeroDivisionError("float division by zero\nsecond line")
        return real_analyze(run, settings)

    monkeypatch.setattr(dynatrain.batch, "analyze", analyze)
    records = analyze_runs([str(p) for p in group_runs[:3]], jobs=1)
    assert records[1] == {
        "run": str(group_runs[1]),
        "error": "internal error: ZeroDivisionError: float division by zero",
    }
    assert "error" not in records[0] and "error" not in records[2]


def test_paths_from_stdin(cli, group_runs):
    lines = f"{group_runs[2]}\n\n  \n{group_runs[0]}\r\n{group_runs[2]}\n"
    result = cli("batch", "-", *FAST, "-j", "1", "--format", "csv", input=lines)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["run"] for row in rows] == [str(group_runs[2]), str(group_runs[0])]


def test_directories_and_globs_are_expanded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in (
        "runs/a.h5",
        "runs/deep/b.hdf5",
        "runs/notes.txt",
        "runs/c.h5.incomplete",
        "runs/store.zarr/zarr.json",
        "runs/store.zarr/layers/x.h5",
        "runs/plain/zarr.json",
        "other/d.h5",
        "odd[1].h5",
    ):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("")
    assert collect_runs(["runs"]) == [
        "runs/a.h5",
        "runs/plain",
        "runs/store.zarr",
        "runs/deep/b.hdf5",
    ]
    # quoted globs, `**`, duplicates under another spelling, a missing path, a URL
    assert collect_runs(
        [
            "other/*.h5",
            "runs/**/*.hdf5",
            "./other/d.h5",
            "runs/a.h5",
            "missing.h5",
            "s3://bucket/run.zarr",
            "odd[1].h5",
        ]
    ) == [
        "other/d.h5",
        "runs/deep/b.hdf5",
        "runs/a.h5",
        "missing.h5",
        "s3://bucket/run.zarr",
        "odd[1].h5",
    ]
    with pytest.raises(InputError, match="no file matches"):
        collect_runs(["runs/*.hdf"])
    Path("empty").mkdir()
    with pytest.raises(InputError, match=r"no \.h5, \.hdf5, \.zarr archive"):
        collect_runs(["empty"])
    with pytest.raises(InputError, match="stdin"):
        collect_runs(["-"])
    with pytest.raises(InputError, match="no run to analyse"):
        collect_runs(["-"], stdin=io.StringIO("\n\n"))


def test_missing_path_fails_in_its_row(cli, group_runs, tmp_path):
    result = cli("batch", group_runs[0], tmp_path / "nope.h5", *FAST, "-j", "1")
    assert result.exit_code == 2
    assert "no such file" in _jsonl(result.stdout)[1]["error"]


def test_a_run_reads_as_analyze_reads_it(cli, group_runs):
    """Each run keeps --seed: its batch line is its `analyze` line, whatever the order."""
    forward = _jsonl(cli("batch", *group_runs[:3], *FAST, "-j", "1").stdout)
    backward = _jsonl(cli("batch", *reversed(group_runs[:3]), *FAST, "-j", "1").stdout)
    assert forward == backward[::-1]
    single = cli("analyze", group_runs[1], *FAST, "--format", "jsonl").stdout
    assert json.loads(single) == forward[1]


def test_jobs_1_equals_jobs_2_byte_for_byte(cli, group_runs, corrupt):
    runs = [*group_runs[:5], corrupt]
    for output_format in ("jsonl", "csv"):
        one = cli("batch", *runs, *FAST, "-j", "1", "--format", output_format)
        two = cli("batch", *runs, *FAST, "-j", "2", "--format", output_format)
        assert one.exit_code == two.exit_code == 2
        assert one.stdout == two.stdout


def test_table_and_markdown_show_runs_then_groups(cli, group_runs, corrupt, monkeypatch):
    monkeypatch.setenv("COLUMNS", "150")  # the width of a terminal
    for output_format in ("table", "markdown"):
        result = cli(
            "batch",
            *group_runs,
            corrupt,
            "--surrogates",
            "0",
            "-j",
            "1",
            "--group-by",
            "dataset",
            "--format",
            output_format,
        )
        assert result.exit_code == 2
        out = result.stdout
        assert (
            out.index("Runs (9)") < out.index("Groups (by dataset)") < out.index("Between groups")
        )
        assert "A-0" in out and "corrupt" in out and "AUROC" in out
    assert "| run | dataset | integration [95% CI] |" in result.stdout


def test_stderr_is_quiet_off_a_terminal(cli, group_runs):
    result = cli("batch", *group_runs[:2], *FAST, "-j", "1")
    assert result.exit_code == 0 and result.stderr == ""


def test_missing_group_key_warns(cli, group_runs, tmp_path):
    with_optimizer = tmp_path / "C-0.h5"
    run = simulate_run("hurst", n_layers=6, n_checkpoints=51, seed=5)
    write_run(with_optimizer, run, metadata={"dataset": "C", "optimizer": "sgd"}, samples=4)
    result = cli(
        "batch",
        *group_runs[:2],
        with_optimizer,
        *FAST,
        "-j",
        "1",
        "--group-by",
        "dataset,optimizer",
        "--format",
        "markdown",
    )
    assert result.exit_code == 0
    assert "2 run(s) without metadata 'optimizer', grouped as (missing)" in result.stderr
    assert "A / (missing)" in result.stdout and "B / (missing)" in result.stdout
    assert "C / sgd" in result.stdout


def test_a_group_key_no_run_has_is_refused_before_the_analysis(cli, group_runs, tmp_path):
    report = tmp_path / "report"
    result = cli("batch", *group_runs[:2], *FAST, "--group-by", "datset", "-o", report)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "dynatrain: error: --group-by 'datset': no run has this metadata key; did you mean"
        " 'dataset'? (keys: dataset, expected_checkpoints, model, "
    )
    assert result.stderr.count("\n") == 1
    assert not report.exists()  # refused before anything was analysed or written


def test_list_valued_metadata_groups(cli, plain_archive, tmp_path):
    """A metadata value that is an array (unhashable once read) groups like any other."""
    import numpy as np

    rng = np.random.default_rng(0)
    paths = [
        plain_archive(
            f"r{i}.h5",
            layers={"a": rng.normal(size=(40, 3)), "b": rng.normal(size=(40, 3))},
            attrs={"widths": widths},
        )
        for i, widths in enumerate([np.array([64, 32]), np.array([128]), np.array([64, 32])])
    ]
    groups = tmp_path / "groups.json"
    result = cli(
        "batch",
        *paths,
        *FAST,
        "-j",
        "1",
        "--group-by",
        "widths",
        "--format",
        "csv",
        "--groups-json",
        groups,
    )
    assert result.exit_code == 0, result.stderr
    assert [row["group"] for row in csv.DictReader(io.StringIO(result.stdout))] == [
        "[64, 32]",
        "[128]",
        "[64, 32]",
    ]
    summary = json.loads(groups.read_text())
    assert [(g["group"], g["values"], len(g["runs"])) for g in summary["groups"]] == [
        ("[128]", {"widths": [128]}, 1),
        ("[64, 32]", {"widths": [64, 32]}, 2),
    ]


def test_fail_if_not_converged(cli, tmp_path, corrupt):
    """Exit 1 if a run never converged, 2 if a run failed (a failure outranks the check)."""
    from dynatrain.batch import unconverged_runs

    converging, flat = tmp_path / "converging.h5", tmp_path / "flat.h5"
    write_run(converging, simulate_run("training", seed=1), seed=1)
    write_run(flat, simulate_run("oscillators", coupling="locked", seed=0), seed=0)
    check = ("--surrogates", "0", "-j", "1", "--fail-if-not-converged")
    assert cli("batch", converging, *check).exit_code == 0

    never = ("--vol-threshold", "0")  # nothing falls below 0 x its peak volatility
    result = cli("batch", converging, flat, *check, *never)
    assert result.exit_code == 1
    assert f"{flat}: the stability index did not converge (--fail-if-not-converged)" in (
        result.stderr
    )
    assert len(_jsonl(result.stdout)) == 2  # every row is still printed
    assert unconverged_runs(_jsonl(result.stdout)) == [str(converging), str(flat)]

    assert cli("batch", flat, corrupt, *check, *never).exit_code == 2
    assert cli("batch", flat, "--surrogates", "0", "-j", "1", *never).exit_code == 0
    assert unconverged_runs([{"run": "x", "error": "broken"}]) == []


# -- Dask ------------------------------------------------------------------------------------------


def test_dask_cluster_equals_local(group_runs, corrupt):
    distributed = pytest.importorskip("distributed")
    runs = [str(p) for p in [*group_runs[:4], corrupt]]
    local = to_jsonl(analyze_runs(runs, jobs=1))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        on_dask = list(
            iter_analyses(runs, scheduler="dask", dask_address=cluster.scheduler_address)
        )
    assert to_jsonl(on_dask) == local


def test_dask_default_local_cluster_from_the_cli(cli, group_runs):
    pytest.importorskip("distributed")
    local = cli("batch", *group_runs[:3], *FAST, "-j", "1")
    on_dask = cli("batch", *group_runs[:3], *FAST, "-j", "2", "--scheduler", "dask")
    assert on_dask.exit_code == 0, on_dask.stderr
    assert on_dask.stdout == local.stdout


def test_dask_missing_is_a_one_line_error(cli, group_runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    result = cli("batch", group_runs[0], "--scheduler", "dask")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "dynatrain: error: --scheduler dask needs Dask, which is not installed:"
        " pip install 'dynatrain[dask]'"
    ]


@pytest.mark.parametrize("address", ["foo", "tcp://host:port", "bogus://host:8786"])
def test_a_malformed_dask_address_is_a_one_line_error(cli, group_runs, address):
    pytest.importorskip("distributed")
    result = cli("batch", group_runs[0], *FAST, "--dask-address", address)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dynatrain: error: invalid Dask scheduler address {address!r}")


def test_progress_bar_counts_the_runs(tmp_path):
    from rich.console import Console

    from dynatrain.report.batch_report import batch_progress

    with open(tmp_path / "terminal", "w") as terminal:
        console = Console(file=terminal, record=True, force_terminal=True, width=80)
        with batch_progress(3, console) as advance:
            for _ in range(3):
                advance()
    shown = console.export_text()
    assert "analysing runs" in shown and "3/3" in shown
    with batch_progress(3, None) as advance:
        advance()  # off a terminal: silent


def _batch_process(runs, stderr) -> subprocess.Popen:
    command = [sys.executable, "-m", "dynatrain.cli", "batch", *map(str, runs), *FAST, "-j", "1"]
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env
    )


def test_the_command_draws_a_progress_bar_only_on_a_terminal(group_runs):
    """The real `batch`: a bar on stderr when it is a terminal (a pseudo-terminal), else nothing."""
    import pty
    import threading

    terminal, child_end = pty.openpty()
    process = _batch_process(group_runs[:2], stderr=child_end)
    os.close(child_end)
    drawn: list[bytes] = []

    def read() -> None:  # drain the terminal, or a full buffer would block the child
        while True:
            try:
                data = os.read(terminal, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            drawn.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    out, _ = process.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(terminal)
    shown = b"".join(drawn).decode("utf-8", "replace")
    assert process.returncode == 0, shown
    assert "analysing runs" in shown and "2/2" in shown
    assert len(out.decode().splitlines()) == 2  # the data still goes to stdout, a line a run

    process = _batch_process(group_runs[:2], stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and err == b"" and len(out.decode().splitlines()) == 2


def test_a_warning_shared_by_runs_is_said_once(cli, tmp_path):
    """Four runs with the same warning give one stderr line naming them, not four."""
    runs = []
    for name in "abcd":
        runs.append(tmp_path / f"{name}.h5")
        # 30 checkpoints: below the 50 analysed points DFA needs to be reliable, a warning
        write_run(runs[-1], simulate_run("hurst", n_checkpoints=30, seed=0), samples=2, features=2)
    result = cli("batch", *runs, *FAST, "-j", "1", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    records = _jsonl(result.stdout)
    shared = set(records[0]["warnings"])
    assert shared and all(set(r["warnings"]) == shared for r in records)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(shared), result.stderr
    for line in lines:
        assert line.startswith(
            f"dynatrain: warning: 4 runs ({runs[0]}, {runs[1]}, {runs[2]}, ...): "
        )
