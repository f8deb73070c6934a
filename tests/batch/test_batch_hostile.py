"""`dynatrain batch` on hostile trees and in hostile conditions: FIFOs, link loops, dead
workers, Ctrl-C during start-up, names with newlines, a group key that differs by run.

Each case ends in bounded time with the run named in its row (or one line on stderr),
never a hang, a traceback or the whole batch failing for one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynatrain.batch import MAX_COMPARED_GROUPS, collect_runs, group_summary
from dynatrain.errors import InputError
from dynatrain.simulate import simulate_run, write_run

FAST = ("--surrogates", "0")


def _write(path: Path, seed: int = 0, **metadata) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = simulate_run("hurst", n_layers=3, n_checkpoints=51, seed=seed)
    write_run(path, run, metadata=metadata or {"dataset": "A"}, samples=2, features=2, seed=seed)
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("small") / "a.h5")


def _copies(folder: Path, source: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        (folder / name).write_bytes(source.read_bytes())
        paths.append(folder / name)
    return paths


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block is still running after ``seconds``."""

    def expired(_signum, _frame):
        raise AssertionError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dynatrain.cli", *map(str, args)]


def _one_error_line(stderr: str, *needles: str) -> str:
    # The analysed runs' own warnings (an untested style at --surrogates 0) may come first.
    lines = [x for x in stderr.strip().splitlines() if not x.startswith("dynatrain: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("dynatrain: error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- FIFOs and devices ----------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_fifo_in_a_batch_folder_is_reported_not_opened(small_run, tmp_path, jobs):
    """A FIFO named b.h5 blocked `batch` forever: now its row says what it is."""
    runs = tmp_path / "runs"
    _copies(runs, small_run, ["a.h5", "c.h5"])
    os.mkfifo(runs / "b.h5")
    result = subprocess.run(
        _command("batch", runs, *FAST, "-j", jobs, "--format", "jsonl"),
        capture_output=True,
        text=True,
        timeout=300,  # the old behaviour: blocked forever on open()
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["run"]).name for r in records] == ["a.h5", "b.h5", "c.h5"]
    assert records[1] == {
        "run": str(runs / "b.h5"),
        "error": f"{runs / 'b.h5'}: not an archive but a FIFO (named pipe); not opened",
    }
    assert "error" not in records[0] and "error" not in records[2]
    _one_error_line(result.stderr, "b.h5", "FIFO")


def test_a_device_given_as_a_run_is_reported(cli, small_run):
    result = cli("batch", small_run, os.devnull, *FAST, "-j", "1", "--format", "jsonl")
    assert result.exit_code == 2
    row = json.loads(result.stdout.splitlines()[1])
    assert row["error"] == f"{os.devnull}: not an archive but a character device; not opened"
    _one_error_line(result.stderr, "character device")


# -- link loops -----------------------------------------------------------------------------------


def test_links_back_up_the_tree_are_entered_once(small_run, tmp_path, monkeypatch):
    """Two links to `..` made `runs/**/*.h5` expand exponentially; each folder is now
    entered once, and a folder search follows links the same way."""
    monkeypatch.chdir(tmp_path)
    _copies(Path("runs/x"), small_run, ["a.h5"])
    _copies(Path("runs/y"), small_run, ["b.h5"])
    _copies(Path("elsewhere"), small_run, ["e.h5"])
    os.symlink("..", "runs/x/up")
    os.symlink("..", "runs/y/up")
    os.symlink("../..", "runs/y/top")  # the folder above runs: elsewhere/ again
    os.symlink("../elsewhere", "runs/linked")  # a linked folder of runs is searched
    with deadline(60):
        assert collect_runs(["runs/**/*.h5"]) == [
            "runs/linked/e.h5",
            "runs/x/a.h5",
            "runs/y/b.h5",
        ]
        assert collect_runs(["runs"]) == ["runs/linked/e.h5", "runs/x/a.h5", "runs/y/b.h5"]
        # A loop of links only (no way out): nothing to find, found quickly.
        Path("loop").mkdir()
        os.symlink(".", "loop/self")
        os.symlink("..", "loop/parent")
        with pytest.raises(InputError, match="no file matches"):
            collect_runs(["loop/**/*.zarr"])


def test_globs_match_as_python_glob_does_on_a_tree_without_links(tmp_path, monkeypatch):
    """On a plain tree the expansion is Python's `glob.glob(recursive=True)`."""
    import glob

    monkeypatch.chdir(tmp_path)
    for name in ("a/1.h5", "a/b/2.h5", "a/b/c/3.hdf5", "a/.hidden/4.h5", "a/.5.h5", "6.h5"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("")
    from dynatrain.batch import _glob

    def expected(pattern: str) -> list[str]:  # glob writes `a/**`'s first match `a/`
        return sorted(os.path.normpath(path) for path in glob.glob(pattern, recursive=True))

    for pattern in ("**/*.h5", "a/**/*.h5", "a/**", "*/b/*", "a/*/*.hdf5", "**/.*.h5", "a/b"):
        assert sorted(_glob(pattern)) == expected(pattern), pattern
    absolute = str(tmp_path / "a" / "**" / "*.h5")
    assert sorted(_glob(absolute)) == expected(absolute)


# -- dead workers and Ctrl-C ----------------------------------------------------------------------

#: Loaded by every Python process of the test command through PYTHONPATH: a worker that
#: is handed a run named oom*.h5 kills itself with SIGKILL, as the out-of-memory killer would.
_KILLER = textwrap.dedent(
    """
    import multiprocessing, os, signal
    import dynatrain.batch

    _analyze = dynatrain.batch.analyze

    def analyze(run, settings):
        if multiprocessing.parent_process() is not None and os.path.basename(run).startswith("oom"):
            os.kill(os.getpid(), signal.SIGKILL)
        return _analyze(run, settings)

    dynatrain.batch.analyze = analyze
    """
)


def test_a_killed_worker_fails_only_its_run(small_run, tmp_path):
    """SIGKILL of one worker made most of the other runs fail with BrokenProcessPool,
    naming none; now its run is named and every other run is analysed."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_KILLER)
    names = [f"r{i}.h5" for i in range(6)]
    names.insert(2, "oom.h5")
    runs = _copies(tmp_path / "runs", small_run, names)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        _command("batch", *runs, *FAST, "-j", "2", "--format", "jsonl"),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["run"] for r in records] == [str(p) for p in runs]
    victim = str(runs[2])
    assert records[2] == {
        "run": victim,
        "error": f"{victim}: the worker process analysing this run died"
        " (killed by SIGKILL, as the out-of-memory killer does); no result",
    }
    assert all("error" not in r and r["integration"] > 0 for i, r in enumerate(records) if i != 2)
    _one_error_line(result.stderr, victim, "SIGKILL")


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as stream:
            return stream.read().split()
    except OSError:
        return []


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs Linux /proc")
@pytest.mark.parametrize("delay", [0.0, 0.02, 0.2])
def test_ctrl_c_while_workers_start_is_one_line(small_run, tmp_path, delay):
    """Ctrl-C reaches the whole process group; while the workers were starting it printed
    27-88 lines of their tracebacks. Now: exit 130 and one line."""
    runs = _copies(tmp_path / "runs", small_run, [f"r{i}.h5" for i in range(4)])
    process = subprocess.Popen(
        _command("batch", *runs, *FAST, "-j", "2"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    try:
        with deadline(120):
            while len(_children(process.pid)) < 2 and process.poll() is None:
                time.sleep(0.002)  # the workers exist: they are starting
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C at a terminal does
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert (process.returncode, err.decode()) == (130, "dynatrain: interrupted\n")


# -- names on stdin -------------------------------------------------------------------------------


def test_nul_separated_paths_on_stdin(cli, small_run, tmp_path):
    """`find -print0 | dynatrain batch -0 -`: a name may hold a newline or a space."""
    runs = _copies(tmp_path, small_run, ["new\nline.h5", " spaced .h5"])
    stdin = f"{runs[0]}\0{runs[1]}\0\0"
    result = cli("batch", "-0", "-", *FAST, "-j", "1", "--format", "jsonl", input=stdin)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["run"] for line in result.stdout.splitlines()] == [
        str(runs[0]),
        str(runs[1]),
    ]
    # The same names one a line cannot work: the newline splits the first.
    assert collect_runs(["-"], stdin=_Bytes(f"{runs[1]}\n".encode())) == [str(runs[1])]
    refused = cli("batch", "--null", runs[1], *FAST)
    assert refused.exit_code == 2
    _one_error_line(refused.stderr, "-0 (--null) reads NUL-separated paths from stdin")


class _Bytes:
    """A binary stdin, as ``sys.stdin.buffer`` is."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


def test_a_name_that_is_not_utf8_survives_stdin(tmp_path, small_run):
    name = os.fsdecode(b"caf\xe9.h5")  # Latin-1 bytes: not UTF-8
    (tmp_path / name).write_bytes(small_run.read_bytes())
    path = os.path.join(tmp_path, name)
    assert collect_runs(["-"], stdin=_Bytes(os.fsencode(path) + b"\0"), null=True) == [path]


# -- too many groups ------------------------------------------------------------------------------


def _records(n_groups: int, per_group: int = 2) -> list[dict]:
    return [
        {"run": f"r{g}-{i}.h5", "metadata": {"id": g}, "integration": g + i / 10}
        for g in range(n_groups)
        for i in range(per_group)
    ]


def test_pairwise_comparisons_stop_at_the_documented_number_of_groups():
    """A per-run key on 120 runs made 57k comparisons (48 s, 15 MB of JSON)."""
    capped = group_summary(_records(120, per_group=1), ["id"])
    assert len(capped.groups) == 120 and capped.comparisons == []
    assert capped.warnings == [
        "120 groups by id: 7140 pairs of groups is more than dynatrain compares (pairs are"
        f" compared for up to {MAX_COMPARED_GROUPS} groups); groups summarised, not compared"
        " (is it a key that differs from run to run?)"
    ]
    assert all(group.stats["integration"].n == 1 for group in capped.groups)
    compared = group_summary(_records(MAX_COMPARED_GROUPS), ["id"])
    pairs = MAX_COMPARED_GROUPS * (MAX_COMPARED_GROUPS - 1) // 2
    assert len(compared.comparisons) == pairs * len(compared.measures) and not compared.warnings
