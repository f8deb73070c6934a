"""`dynatrain analyze` and `dynatrain simulate` from the command line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from dynatrain.simulate import simulate_run, write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run.h5"
    write_run(path, simulate_run("training", seed=1), seed=1)
    return path


def test_json_is_the_contract(cli, run):
    result = cli("analyze", run, "--format", "json", "--surrogates", "49")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["run"] == str(run)
    assert data["settings"]["surrogates"] == 49
    assert data["layers_analysed"] == 6


def test_output_is_identical_byte_for_byte(cli, run):
    first = cli("analyze", run, "--format", "json")
    second = cli("analyze", run, "--format", "json")
    assert first.stdout == second.stdout


def test_jsonl_is_one_line(cli, run):
    out = cli("analyze", run, "--format", "jsonl", "--surrogates", "0").stdout
    assert out.count("\n") == 1
    assert json.loads(out)["integration_p"] is None


def test_csv_is_one_header_and_one_row(cli, run):
    out = cli("analyze", run, "--format", "csv", "--surrogates", "0").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    assert rows[0]["run_id"] == "run"
    assert float(rows[0]["integration"]) > 0
    assert rows[0]["integration_p"] == ""  # null -> empty field
    assert "metadata.simulated_kind" in rows[0]


def test_markdown_and_table(cli, run):
    markdown = cli("analyze", run, "--format", "markdown", "--surrogates", "0").stdout
    assert "| integration |" in markdown
    table = cli("analyze", run, "--format", "table", "--surrogates", "0").stdout
    assert "integration" in table and "metastability" in table and "layer0" in table


def test_default_format_off_a_terminal_is_json(cli, run):
    json.loads(cli("analyze", run, "--surrogates", "0").stdout)


def test_fail_if_not_converged_exits_1(cli, tmp_path):
    path = tmp_path / "flat.h5"
    write_run(path, simulate_run("oscillators", coupling="locked", seed=0), seed=0)
    result = cli(
        "analyze", path, "--surrogates", "0", "--fail-if-not-converged", "--vol-threshold", "0"
    )
    assert result.exit_code == 1
    assert "did not converge" in result.stderr
    assert json.loads(result.stdout)["convergence"]["epoch"] is None


def test_warnings_go_to_stderr_and_json(cli, plain_archive):
    import numpy as np

    rng = np.random.default_rng(0)
    path = plain_archive(
        "nometric.h5", layers={"a": rng.normal(size=(40, 3)), "b": rng.normal(size=(40, 3))}
    )
    result = cli("analyze", path, "--surrogates", "0", "--format", "json")
    assert result.exit_code == 0
    assert "warning" in result.stderr and "no accuracy metric" in result.stderr
    assert any("no accuracy metric" in w for w in json.loads(result.stdout)["warnings"])


def test_too_short_is_exit_2_with_the_count(cli, plain_archive):
    import numpy as np

    rng = np.random.default_rng(0)
    path = plain_archive(
        "short.h5", layers={"a": rng.normal(size=(10, 3)), "b": rng.normal(size=(10, 3))}
    )
    result = cli("analyze", path)
    assert result.exit_code == 2
    assert "25 checkpoints" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_option_is_exit_2(cli, run):
    assert cli("analyze", run, "--reduce", "max").exit_code == 2
    assert cli("analyze", run, "--epochs", "nine").exit_code == 2


def test_simulate_writes_an_archive_with_metadata(cli, tmp_path):
    out = tmp_path / "sim.zarr"
    result = cli(
        "simulate",
        out,
        "--kind",
        "hurst",
        "--hurst",
        "0.7",
        "--meta",
        "dataset=A",
        "--meta",
        "lr=0.01",
        "--checkpoints",
        "40",
    )
    assert result.exit_code == 0, result.stderr
    info = json.loads(cli("inspect", out, "--format", "json").stdout)
    assert info["metadata"]["dataset"] == "A"
    assert info["metadata"]["lr"] == 0.01
    assert info["metadata"]["planted_hurst"] == 0.7
    assert info["checkpoints"] == 40
    again = cli("simulate", out)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert cli("simulate", out, "--force").exit_code == 0


def test_help_is_fast_and_light():
    """`dynatrain --help` imports neither NumPy nor the back ends nor plotting."""
    code = (
        "import sys; from dynatrain.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'h5py', 'zarr', 'matplotlib', 'rich', 'torch', 'dask')"
        " if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_core_import_is_light():
    code = (
        "import sys, dynatrain, dynatrain.analysis\n"
        "print(','.join(m for m in ('matplotlib', 'zarr', 'torch', 'dask', 'scipy.signal',"
        " 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_threads_change_nothing_but_time(cli, run, monkeypatch):
    """--threads 1 and --threads 3: the same bytes, every p-value and window included."""
    from dynatrain import defaults

    monkeypatch.setattr(defaults, "THREADS_FROM_VALUES", 0)  # a small run uses them too
    outputs = [
        cli("analyze", run, "--format", "json", "--detail", "--threads", threads)
        for threads in ("1", "3")
    ]
    assert all(result.exit_code == 0 for result in outputs), outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout
    assert "threads" not in json.loads(outputs[0].stdout)["settings"]  # not a setting


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_a_bad_thread_count_is_one_line(cli, run, threads):
    result = cli("analyze", run, "--threads", threads)
    assert result.exit_code == 2
    assert "--threads" in result.stderr and "Traceback" not in result.stderr


def _terminal(tmp_path):
    from rich.console import Console

    terminal = open(tmp_path / "terminal", "w")
    return terminal, Console(file=terminal, record=True, force_terminal=True, width=120)


def test_a_terminal_sees_which_null_and_the_output_does_not_change(cli, run, tmp_path, monkeypatch):
    from dynatrain import cli as cli_module
    from dynatrain.report import progress

    plain = cli("analyze", run, "--format", "json")
    terminal, console = _terminal(tmp_path)
    monkeypatch.setattr(cli_module, "_stderr_terminal", lambda: console)
    monkeypatch.setattr(progress, "STATUS_AFTER", 0.0)
    with terminal:
        shown = cli("analyze", run, "--format", "json")
    assert shown.exit_code == 0 and shown.stdout == plain.stdout
    assert shown.stderr == plain.stderr == ""  # the status went to the terminal only
    # The line is redrawn in place; what stays recorded is its last state.
    assert f"{run}: surrogates for the convergence p-value, " in console.export_text()


def test_the_analysis_reports_each_null_in_turn_and_gives_the_same_result(run):
    from dynatrain.analysis import analyze

    calls = []
    reported = analyze(run, progress=lambda *call: calls.append(call))
    assert reported.to_dict() == analyze(run).to_dict()
    stages = [stage for stage, _, _ in calls]
    assert stages == sorted(stages, key=["shuffle null", "phase null", "convergence null"].index)
    last = {stage: (done, total) for stage, done, total in calls}
    assert last["shuffle null"] == last["phase null"] == (199, 199)
    assert last["convergence null"] == (reported.convergence_surrogates_drawn, 99)


def test_the_status_waits_shows_names_safely_and_is_off_without_a_terminal(tmp_path):
    from dynatrain.report.progress import analysis_status

    now = [0.0]
    terminal, console = _terminal(tmp_path)
    status = analysis_status("run\x1b[2J.h5", console, after=2.0, clock=lambda: now[0])
    with terminal, status as step:
        assert step is not None
        step("shuffle null", 10, 199)  # before `after`: nothing
        assert console.export_text(clear=False) == ""
        now[0] = 2.5
        step("shuffle null", 20, 199)
    text = console.export_text()
    assert "run\\x1b[2J.h5: surrogates for the integration p-value, 20 of 199" in text
    assert "\x1b[2J" not in text
    with analysis_status("run.h5", None) as step:
        assert step is None
