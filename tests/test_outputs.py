"""Outputs never touch the archives read, and bad output paths are named before any analysis.

Every command that writes (``batch --groups-json FILE``, ``batch -o DIR``, ``analyze
--plot DIR``, ``plot --out DIR``) refuses a path that is, lies inside, or holds one of
its inputs, and one it cannot write; both before anything is analysed, in one line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dynatrain.errors import InputError
from dynatrain.simulate import simulate_run, write_run

FAST = ("--surrogates", "0")
NEVER = "(dynatrain never writes into what it reads)"


def snapshot(path: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry below ``path`` (or ``path`` itself): its mtime and, for a file, its bytes."""
    entries = [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
    return {
        os.fspath(entry.relative_to(path.parent)): (
            entry.lstat().st_mtime_ns,
            entry.read_bytes() if entry.is_file() else None,
        )
        for entry in entries
    }


def _write(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = simulate_run("hurst", n_layers=3, n_checkpoints=30, seed=seed)
    write_run(path, run, metadata={"dataset": "A"}, samples=2, features=2, seed=seed)
    return path


@pytest.fixture
def h5(tmp_path) -> Path:
    return _write(tmp_path / "runs" / "a.h5")


@pytest.fixture
def store(tmp_path) -> Path:
    return _write(tmp_path / "runs" / "b.zarr", seed=1)


def _refused(result, *needles: str) -> None:
    """Exit 2, one line on stderr with every needle, nothing analysed (stdout empty)."""
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynatrain: error: "), result.stderr
    assert "internal error" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


# -- outputs over, inside or around an input -------------------------------------------------------


def test_groups_json_over_an_input_is_refused(cli, h5, tmp_path):
    link, hard = tmp_path / "link.json", tmp_path / "hard.json"
    link.symlink_to(h5)
    os.link(h5, hard)
    before = snapshot(h5)
    for target in (h5, link, hard):
        result = cli("batch", h5, *FAST, "-j", "1", "--groups-json", target)
        _refused(result, f"{target}: --groups-json would write over the input archive {h5}", NEVER)
    assert snapshot(h5) == before


def test_report_folder_in_or_over_an_input_is_refused(cli, h5, store, tmp_path):
    link = tmp_path / "store-link"
    link.symlink_to(store, target_is_directory=True)
    before = snapshot(store)
    for report, message in [
        (store, f"{store}: -o would write into the input archive {store}"),
        (link, f"{link}: -o would write into the input archive {store}"),
        (store / "report", f"{store / 'report'}: -o would write inside the input archive"),
    ]:
        _refused(cli("batch", store, h5, *FAST, "-j", "1", "-o", report, "--force"), message)
    assert snapshot(store) == before

    # An input among the report's own files: a run named like one, or in its runs/ folder.
    report = tmp_path / "report"
    (report / "runs").mkdir(parents=True)
    named_like_a_report_file = shutil.copy(h5, report / "groups.csv")
    in_runs = shutil.copy(h5, report / "runs" / "a.h5")
    for run, message in [
        (named_like_a_report_file, "would write over the input archive"),
        (in_runs, f"into {report / 'runs'}/, which holds the input archive {in_runs}"),
    ]:
        before = snapshot(report)
        _refused(cli("batch", run, *FAST, "-j", "1", "-o", report, "--force"), message)
        assert snapshot(report) == before


def test_a_report_beside_its_inputs_is_written(cli, h5, tmp_path):
    before = snapshot(h5)
    result = cli("batch", h5, *FAST, "-j", "1", "-o", h5.parent, "--force")
    assert result.exit_code == 0, result.stderr
    assert (h5.parent / "report.html").exists() and snapshot(h5) == before


def test_plot_folder_in_or_over_an_input_is_refused(cli, h5, store, tmp_path):
    before = snapshot(store)
    _refused(
        cli("analyze", store, *FAST, "--plot", store),
        f"{store}: --plot would write into the input archive {store}",
    )
    _refused(
        cli("analyze", store, *FAST, "--plot", store / "figures"),
        "--plot would write inside the input archive",
    )
    assert snapshot(store) == before
    # A figure's file name linked to the archive: saving the figure would overwrite it.
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "a-signals.svg").symlink_to(h5)
    before = snapshot(h5)
    _refused(
        cli("analyze", h5, *FAST, "--plot", figures, "--plot-format", "svg"),
        f"{figures}: --plot would write over the input archive {h5}",
    )
    assert snapshot(h5) == before


def test_figures_beside_the_archive_are_written(cli, h5):
    before = snapshot(h5)
    result = cli("analyze", h5, *FAST, "--plot", h5.parent)
    assert result.exit_code == 0, result.stderr
    assert (h5.parent / "a-signals.png").exists() and snapshot(h5) == before


def test_plot_out_never_writes_over_the_json_or_its_archive(cli, store, tmp_path):
    data = cli("analyze", store.resolve(), *FAST, "--format", "json", "--detail").stdout
    result_file = tmp_path / "run.json"
    result_file.write_text(data)
    before = snapshot(store)
    _refused(
        cli("plot", result_file, "--out", store),
        f"{store}: --out would write into the input archive {store.resolve()}",
    )
    assert snapshot(store) == before
    # A JSON saved under a figure's name, in the output folder.
    figures = tmp_path / "figures"
    figures.mkdir()
    saved = figures / "b-dfa.png"
    saved.write_text(data)
    _refused(cli("plot", saved, "--out", figures), "--out would write over the input file")
    assert saved.read_text() == data
    assert cli("plot", result_file, "--out", figures).exit_code == 0


# -- outputs that cannot be written ----------------------------------------------------------------


def test_unwritable_outputs_are_named_before_any_analysis(cli, h5, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for args, message in [
        (("batch", h5, "-o", a_file / "report"), f"{a_file / 'report'}: cannot create the folder"),
        (("batch", h5, "--groups-json", a_file / "g.json"), "cannot write: the folder"),
        (("batch", h5, "--groups-json", tmp_path / "no" / "g.json"), "does not exist"),
        (("analyze", h5, "--plot", a_file / "figures"), f"{a_file} is not a directory"),
    ]:
        _refused(cli(*args, *FAST), message)
    figures = tmp_path / "figures"
    (figures / "a-signals.png").mkdir(parents=True)
    _refused(
        cli("analyze", h5, *FAST, "--plot", figures),
        f"{figures / 'a-signals.png'}: --plot would write this file, and it is a directory",
    )


def test_an_error_while_writing_names_the_file(cli, h5, tmp_path, monkeypatch):
    import dynatrain.report.plots

    def full_disk(result, directory, *, fmt):
        raise OSError(28, "No space left on device", os.path.join(directory, "dfa.png"))

    monkeypatch.setattr(dynatrain.report.plots, "plot_analysis", full_disk)
    result = cli("analyze", h5, *FAST, "--plot", tmp_path / "figures", "--format", "json")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"dynatrain: error: {tmp_path / 'figures' / 'dfa.png'}: cannot write:"
        " No space left on device"
    )


# -- the library functions -------------------------------------------------------------------------


def test_check_functions(tmp_path, store):
    from dynatrain.report.outputs import check_output_dir, check_output_file, writing

    # URLs are read where the work runs: nothing to compare here.
    check_output_dir(tmp_path / "out", inputs=["s3://bucket/run.zarr"], option="-o")
    check_output_file(tmp_path / "g.json", inputs=[os.fspath(store)], option="--groups-json")
    # Without entries the folder is the command's, so no input may lie in it.
    with pytest.raises(InputError, match="which holds the input archive"):
        check_output_dir(store.parent, inputs=[os.fspath(store)], option="--out")
    check_output_dir(store.parent, inputs=[os.fspath(store)], option="--out", entries=["x.png"])
    with pytest.raises(InputError, match=r"^/nope/x: cannot write: Permission denied$"):
        with writing("/nope"):
            raise PermissionError(13, "Permission denied", "/nope/x")


def test_every_input_is_left_byte_identical(cli, h5, store, tmp_path):
    """A whole batch (report, groups JSON, worker processes) leaves bytes and mtimes alone."""
    (tmp_path / "runs" / "broken.h5").write_text("not an archive")
    inputs = [h5, store, tmp_path / "runs" / "broken.h5"]
    before = [snapshot(path) for path in inputs]
    result = cli(
        "batch",
        tmp_path / "runs",
        "--surrogates",
        "19",
        "-j",
        "2",
        "--group-by",
        "dataset",
        "--format",
        "csv",
        "-o",
        tmp_path / "report",
        "--groups-json",
        tmp_path / "groups.json",
    )
    assert result.exit_code == 2  # the broken run
    assert json.loads((tmp_path / "groups.json").read_text())["groups"]
    assert [snapshot(path) for path in inputs] == before


# -- links planted at an output's name -------------------------------------------------------------


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim" / "precious.txt"
    victim.parent.mkdir(exist_ok=True)
    victim.write_text("not yours to overwrite\n")
    return victim


def _replaced_not_written_through(link: Path, victim: Path, magic: bytes) -> None:
    """The link at ``link`` is now a regular file with the output; ``victim`` is as it was."""
    assert victim.read_text() == "not yours to overwrite\n"
    assert not link.is_symlink() and link.read_bytes().startswith(magic)


def test_analyze_plot_and_plot_out_never_write_through_a_planted_link(cli, h5, tmp_path):
    """`analyze --plot DIR` and `plot --out DIR` wrote through a link at a figure's name."""
    victim = _victim(tmp_path)
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "a-signals.png").symlink_to(victim)  # absolute
    (figures / "a-dfa.png").symlink_to(os.path.relpath(victim, figures))  # relative
    (figures / "a-kuramoto.png").symlink_to(tmp_path / "nowhere" / "new.png")  # dangling
    result = cli("analyze", h5, *FAST, "--plot", figures, "--format", "json", "--detail")
    assert result.exit_code == 0, result.stderr
    for name in ("a-signals.png", "a-dfa.png", "a-kuramoto.png"):
        _replaced_not_written_through(figures / name, victim, b"\x89PNG")
    assert not (tmp_path / "nowhere").exists()
    assert not [p for p in figures.iterdir() if p.name.startswith(".")]  # no temporary left

    saved = tmp_path / "run.json"
    saved.write_text(result.stdout)
    again = tmp_path / "again"
    again.mkdir()
    (again / "a-style.svg").symlink_to(victim)
    result = cli("plot", saved, "--out", again, "--plot-format", "svg")
    assert result.exit_code == 0, result.stderr
    _replaced_not_written_through(again / "a-style.svg", victim, b"<?xml")


def test_groups_json_never_writes_through_a_planted_link(cli, h5, tmp_path):
    victim = _victim(tmp_path)
    groups = tmp_path / "groups.json"
    groups.symlink_to(victim)
    result = cli("batch", h5, *FAST, "-j", "1", "--groups-json", groups)
    assert result.exit_code == 0, result.stderr
    _replaced_not_written_through(groups, victim, b"{")


def test_an_output_hard_linked_elsewhere_is_replaced_not_rewritten(tmp_path):
    """A hard link shares the bytes: writing into the file would change the other name too."""
    from dynatrain.report.outputs import write_file

    victim = _victim(tmp_path)
    output = tmp_path / "out.json"
    os.link(victim, output)
    assert write_file(output, "{}\n") == str(output)
    assert output.read_text() == "{}\n" and victim.read_text() == "not yours to overwrite\n"
    assert sorted(os.listdir(tmp_path)) == ["out.json", "victim"]


# -- file:// URLs name local inputs ----------------------------------------------------------------


def test_file_urls_are_checked_as_the_paths_they_name(cli, store, tmp_path):
    """A `file://` input skipped the never-write-into-an-input check."""
    from dynatrain.report.outputs import local_path

    url = store.resolve().as_uri()  # file:///.../runs/b.zarr
    before = snapshot(store)
    _refused(
        cli("batch", url, *FAST, "--groups-json", store / "groups.json"),
        "--groups-json would write inside the input archive",
    )
    _refused(cli("batch", url, *FAST, "-o", store / "report"), "-o would write inside")
    _refused(cli("analyze", url, *FAST, "--plot", store), "--plot would write into the input")
    assert snapshot(store) == before
    assert local_path(url) == str(store.resolve())
    assert local_path("simplecache::" + url) == str(store.resolve())
    assert local_path("file://localhost/data/a%20b.zarr") == "/data/a b.zarr"
    assert local_path("s3://bucket/run.zarr") is None
    assert local_path("file://otherhost/data/run.zarr") is None
