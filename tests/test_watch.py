"""``dynatrain watch``: following a run while a writer appends to it.

The central guarantee: on every shipped run, replayed checkpoint by checkpoint into a new
archive (in this process, and by a separate writer process), the convergence ``watch``
reports live is the one ``analyze`` reports on the finished run. Then: a writer killed
mid-run, a writer at 20 checkpoints a second, the end of a run, and bad inputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dynatrain.analysis import Settings, analyze
from dynatrain.archive.reader import open_archive
from dynatrain.archive.writer import ArchiveWriter
from dynatrain.errors import ArchiveError, InputError
from dynatrain.watch import UNTIL, RunFollower, watch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from replay_writer import load, replay

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = sorted((ROOT / "sample_data").glob("*.h5"))
REPLAY_WRITER = Path(__file__).resolve().parent / "replay_writer.py"
CONVERGENCE = ("epoch", "decided_epoch", "p", "surrogates_drawn")
#: 99 surrogates at most for the convergence either way: analyze's default p-value.
SETTINGS = Settings(surrogates=99)


def offline(path: Path, settings: Settings = SETTINGS) -> dict:
    return analyze(path, settings).to_dict()["convergence"]


def follow_replay(source: Path, dest: Path, settings: Settings = SETTINGS, seed: int = 0):
    """Replay `source` into `dest` in this process, polling after 1 to 6 appends at random."""
    rng = np.random.default_rng(seed)
    follower = RunFollower(dest, settings)
    events, next_poll = [], 1
    for t in replay(source, dest):
        if t + 1 >= next_poll:
            events += follower.poll()
            next_poll = t + 1 + int(rng.integers(1, 7))
    events += follower.poll()
    follower.wait_for_null()
    return follower, events


@pytest.mark.parametrize("source", SAMPLE_RUNS, ids=lambda p: p.stem)
def test_every_shipped_run_watched_live_converges_where_analyze_says(source, tmp_path):
    # The epochs on every run; the p-values (which do not change them) on fewer runs
    # below, and on every run between the monitor and analyze in test_live.py.
    settings = Settings(surrogates=0)
    follower, events = follow_replay(source, tmp_path / source.name, settings)
    with follower:
        expected = offline(source, settings)
        live = follower.status()["convergence"]
        assert {k: live[k] for k in CONVERGENCE} == {k: expected[k] for k in CONVERGENCE}
        # One event per checkpoint, in order, and the decision announced at its epoch.
        assert [e["checkpoint"] for e in events] == list(range(101))
        if expected["decided_epoch"] is not None:
            first = next(e for e in events if e["convergence"]["decided_epoch"] is not None)
            assert first["epoch"] == expected["decided_epoch"]


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "dynatrain.cli", "watch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )


def start_writer(source: Path, dest: Path, *options, report: bool = False) -> subprocess.Popen:
    """A writer process; with `report`, it prints the index of each checkpoint appended."""
    writer = subprocess.Popen(
        [sys.executable, str(REPLAY_WRITER), str(source), str(dest), *map(str, options)],
        stdout=subprocess.PIPE if report else subprocess.DEVNULL,
        text=True,
    )
    # Watch starts once the writer has made something to watch (for HDF5 the staging
    # file, before the first checkpoint is published under the real name).
    deadline = time.monotonic() + 60
    while not (dest.exists() or Path(f"{dest}.incomplete").exists()):
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    return writer


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_watch_follows_a_writer_process_to_the_epoch_analyze_reports(suffix, tmp_path):
    source = ROOT / "sample_data" / "mlp-digits-seed1.h5"
    dest = tmp_path / f"run{suffix}"
    writer = start_writer(source, dest, "--rate", 200)
    result = run_cli(dest, "--until", "complete", "--surrogates", 99, "--interval", 0.02)
    assert writer.wait(timeout=60) == 0
    assert result.returncode == 0, result.stderr
    events = lines(result.stdout)
    assert [e["checkpoint"] for e in events[:-1]] == list(range(101))
    end = events[-1]
    assert end["event"] == "end" and end["reason"] == "complete"
    expected = offline(source)
    assert {k: end["convergence"][k] for k in CONVERGENCE} == {k: expected[k] for k in CONVERGENCE}
    assert result.stderr.count("\n") == 1 and "complete" in result.stderr


def test_a_writer_at_20_checkpoints_a_second_is_followed_checkpoint_by_checkpoint(tmp_path):
    source = ROOT / "sample_data" / "cnn-digits-seed2.h5"
    dest = tmp_path / "run.h5"
    writer = start_writer(source, dest, "--rate", 20)
    result = run_cli(dest, "--until", "converged", "--interval", 0.05)
    writer.wait(timeout=60)
    expected = offline(source, Settings())
    events = lines(result.stdout)
    checkpoints = [e["checkpoint"] for e in events if e["event"] == "checkpoint"]
    assert checkpoints == list(range(len(checkpoints)))
    end = events[-1]
    if expected["decided_epoch"] is None:
        assert result.returncode == 1 and end["reason"] == "complete"
    else:
        # Stopped at the decision, with its p-value, though the writer went on.
        assert result.returncode == 0, result.stderr
        assert end["reason"] == "converged" and end["epoch"] == expected["decided_epoch"]
        assert end["convergence"]["p"] == expected["p"]


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_a_killed_writer_ends_the_watch_with_what_it_saw(suffix, tmp_path):
    source = ROOT / "sample_data" / "mlp-digits-hard-seed0.h5"
    dest = tmp_path / f"run{suffix}"
    writer = start_writer(source, dest, "--hang-after", 40, report=True)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "dynatrain.cli", "watch", str(dest), "--until", "complete"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(40):  # the writer says each checkpoint it has appended
        writer.stdout.readline()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    stdout, stderr = watcher.communicate(timeout=60)
    assert watcher.returncode == 1
    assert "Traceback" not in stderr and stderr.count("\n") == 1
    assert "went away without closing the archive after 40 checkpoints" in stderr
    events = lines(stdout)
    assert [e["checkpoint"] for e in events[:-1]] == list(range(40))
    assert events[-1]["reason"] == "writer gone" and events[-1]["checkpoints"] == 40


def test_a_zarr_writer_that_closes_early_ends_the_run(tmp_path):
    source = ROOT / "sample_data" / "mlp-digits-seed0.h5"
    dest = tmp_path / "run.zarr"
    follower = RunFollower(dest, SETTINGS)
    with follower:
        steps = replay(source, dest)
        for _ in range(30):
            next(steps)
        events = list(follower.poll())
        assert follower.writer_present() is True
        steps.close()  # the writer closes, as a job that stops early does
        assert follower.writer_present() is False
        assert len(events) == 30 and not follower.trimmed
        assert list(follower.poll()) == [] and follower.trimmed  # what close() leaves


# -- the end of a run, in this process -------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run():
    return load(ROOT / "sample_data" / "mlp-digits-seed1.h5")


def test_until_complete_follows_a_closed_run_to_its_end(sample_run, tmp_path):
    dest = tmp_path / "run.h5"
    for _ in replay(sample_run, dest, expected=False):
        pass
    seen = []
    end = watch(dest, SETTINGS, until="complete", on_event=seen.append, sleep=pytest.fail)
    assert (end.reason, end.exit_code) == ("complete", 0)
    assert len(seen) == 101 and seen[-1]["window"]["length_from"] == "run length"
    # Not converged by --until converged's standard: the run ended, exit 1.
    none = watch(dest, SETTINGS.replace(vol_threshold=0.0), until="converged", sleep=pytest.fail)
    assert (none.reason, none.exit_code) == ("complete", 1)
    assert "not converged" in none.message


def test_until_converged_stops_at_the_decision_with_its_p_value(sample_run, tmp_path):
    dest = tmp_path / "run.h5"
    for _ in replay(sample_run, dest):
        pass
    expected = offline(ROOT / "sample_data" / "mlp-digits-seed1.h5")
    seen = []
    end = watch(dest, SETTINGS, until="converged", on_event=seen.append, sleep=pytest.fail)
    assert (end.reason, end.exit_code) == ("converged", 0)
    assert seen[-1]["epoch"] == expected["decided_epoch"] == end.status["epoch"]
    assert end.to_dict()["convergence"]["p"] == expected["p"]
    # With --max-p below that p-value the convergence does not count: run to the end.
    strict = watch(dest, SETTINGS, until="converged", max_p=expected["p"] / 2, sleep=pytest.fail)
    assert (strict.reason, strict.exit_code) == ("complete", 1)
    assert "convergence above max_p" in strict.message


def test_a_writer_that_stalls_times_out(sample_run, tmp_path):
    dest = tmp_path / "run.h5"
    steps = replay(sample_run, dest)
    for _ in range(5):
        next(steps)
    clock = iter(np.arange(0.0, 100.0, 0.5))
    end = watch(
        dest,
        SETTINGS.replace(window=20),
        until="complete",
        timeout=3,
        clock=lambda: next(clock),
        sleep=lambda _s: None,
    )
    steps.close()
    assert (end.reason, end.exit_code) == ("timeout", 1)
    assert "no new checkpoint for 3 s (5 read)" in end.message


def test_the_window_must_be_known_while_the_writer_runs(sample_run, tmp_path):
    dest = tmp_path / "run.h5"
    steps = replay(sample_run, dest, expected=False)
    next(steps)
    with pytest.raises(InputError, match="pass --window"):
        watch(dest, SETTINGS, sleep=pytest.fail)
    # With a window given, it starts (and stops here, at the timeout).
    clock = iter(range(100))
    end = watch(
        dest,
        SETTINGS.replace(window=30),
        timeout=2,
        clock=lambda: next(clock),
        sleep=lambda _s: None,
    )
    assert end.reason == "timeout" and end.status["window"]["length_from"] == "settings"
    steps.close()


def test_a_run_replaced_while_watched_is_refused(sample_run, tmp_path):
    dest = tmp_path / "run.h5"
    steps = replay(sample_run, dest)
    for _ in range(3):
        next(steps)
    follower = RunFollower(dest, SETTINGS)
    assert len(list(follower.poll())) == 3
    steps.close()
    for _ in replay(sample_run, dest, mode="w", stop_after=4):
        pass
    with pytest.raises(ArchiveError, match="replaced or removed while being watched"):
        list(follower.poll())
    follower.close()


def test_refresh_reads_only_new_rows_across_growth(tmp_path):
    """Archive.refresh across the writer's array growth (1,024 rows), HDF5 and Zarr."""
    for name in ("grow.h5", "grow.zarr"):
        path = tmp_path / name
        with ArchiveWriter(path) as writer:
            writer.append(epoch=0, activations={"a": np.zeros((2, 2))}, metrics={"m": 0.0})
            archive = open_archive(path)
            added = 0
            for t in range(1, 1100):
                writer.append(epoch=t, activations={"a": np.full((2, 2), t)}, metrics={"m": t})
                if t % 97 == 0:
                    added += archive.refresh()
                    assert archive.n_checkpoints == t + 1
            assert archive.n_rows_stored == 2048  # grown, not yet trimmed
        added += archive.refresh()
        assert added == 1099 and archive.n_checkpoints == archive.n_rows_stored == 1100
        np.testing.assert_array_equal(archive.epochs, np.arange(1100))
        tail = archive.metric("m", start=1000, stop=1100)
        np.testing.assert_array_equal(tail, np.arange(1000, 1100))
        archive.close()


# -- bad inputs: one line, exit 2 ------------------------------------------------------------------


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    return result.stderr


def test_bad_inputs_are_refused_in_one_line(cli, tmp_path, sample_run):
    one_line_error(cli("watch", tmp_path / "missing.h5"), "no such file or directory")
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(cli("watch", tmp_path / "notes.txt"), "cannot tell the back end")
    (tmp_path / "fake.h5").write_text("not hdf5")
    one_line_error(cli("watch", tmp_path / "fake.h5"), "not an HDF5 file")
    finished = tmp_path / "run.h5"
    for _ in replay(sample_run, finished):
        pass
    one_line_error(cli("watch", finished, "--epochs", "1:5"), "No such option")
    one_line_error(cli("watch", finished, "--timeout", "0"), "--timeout")
    one_line_error(cli("watch", finished, "--until", "plateau"), "--until")
    one_line_error(cli("watch", finished, "--until", "complete", "--max-p", "0.05"), "max_p")
    one_line_error(cli("watch", finished, "--max-p", "0.05", "--surrogates", "0"), "surrogates")
    one_line_error(cli("watch", finished, "--layers", "nope*"), "matches no layer")
    one_line_error(cli("watch", finished, "--reduce", "signal"), "no layer can be reduced")
    one_line_error(cli("watch", finished, "--metric", "val_f1"), "no metric 'val_f1'")
    one_line_error(cli("watch", finished, "--window", "500"), "window")
    one_line_error(cli("watch", finished, "--layers", "fc1"), "at least 2 layers")


def test_until_choices_match_the_library():
    from dynatrain.cli import WATCH_UNTIL

    assert WATCH_UNTIL == UNTIL


def test_a_non_finite_value_with_strict_is_an_error(cli, tmp_path, sample_run):
    broken = {**sample_run, "activations": dict(sample_run["activations"])}
    first = next(iter(broken["activations"]))
    values = broken["activations"][first].copy()
    values[60] = np.nan
    broken["activations"][first] = values
    dest = tmp_path / "diverged.h5"
    for _ in replay(broken, dest):
        pass
    one_line_error(cli("watch", dest, "--strict", "--until", "complete"), "non-finite", "--strict")
    result = cli("watch", dest, "--until", "complete", "--surrogates", "0")
    assert result.exit_code == 0
    assert lines(result.stdout)[-1]["stopped"].startswith("non-finite values from epoch")


# -- the panel -------------------------------------------------------------------------------------


def test_the_panel_prints_names_as_they_are(cli, plain_archive, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    hostile = plain_archive(
        "red[bold].h5",
        layers={name: rng.normal(size=(60, 3)).cumsum(axis=0) for name in ("[b]a", ":smile:")},
        metrics={"[red]val_accuracy": np.linspace(0.1, 0.9, 60)},
    )
    monkeypatch.chdir(tmp_path)
    result = cli(
        "watch", hostile.name, "--format", "panel", "--until", "complete", "--surrogates", 19
    )
    assert result.exit_code == 0, result.stderr
    assert "red[bold].h5" in result.stdout and "[red]val_accuracy" in result.stdout
    assert "checkpoint" in result.stdout and "of 60" in result.stdout


def test_panel_wording_follows_the_p_value():
    from rich.console import Console

    from dynatrain.report.watch_panel import watch_panel

    event = {
        "event": "checkpoint",
        "run": "r.h5",
        "epoch": 40.0,
        "checkpoints": 41,
        "integration": 1.1,
        "metastability": 0.2,
        "measured_at_checkpoints": 40,
        "windows": 10,
        "window_end_epoch": 40.0,
        "stability_index": 0.8,
        "volatility": 0.01,
        "window": {
            "length": 25,
            "step": 1,
            "length_from": "settings",
            "expected_checkpoints": None,
        },
        "stopped": None,
        "metrics": {},
        "convergence": {"epoch": 37.0, "decided_epoch": 39.0, "p": 0.4, "relapse": None},
        "p_pending": False,
    }

    def shown(**changes):
        console = Console(width=120, record=True)
        console.print(watch_panel({**event, **changes}, surrogates=99))
        return console.export_text()

    assert "surrogates converge as early" in shown()
    significant = shown(convergence={**event["convergence"], "p": 0.01})
    assert "p ≤ 0.01" in significant and "as early" not in significant
    assert "surrogate test running" in shown(p_pending=True)
    assert "not yet" in shown(
        convergence={**event["convergence"], "epoch": None, "decided_epoch": None}
    )
