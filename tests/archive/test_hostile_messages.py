"""Hostile archives that used to escape the one-line rule: each now gives one line.

Non-UTF-8 member names (HDF5 links, Zarr folders), metadata nested 100,000 deep, a
missing HDF5 filter plugin, an allocation of petabytes, byte-flipped files; and
``validate`` goes on to the next archive after each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from cli_checks import assert_one_line_error, assert_validate_lists
from plain_archives import write_plain_archive

from dynatrain import open_archive

T = 30


def _layers() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(T, 4, 3)), "b": rng.normal(size=(T, 4))}


def _metrics() -> dict[str, np.ndarray]:
    return {"val_accuracy": np.linspace(0, 1, T)}


def non_utf8_hdf5_link(tmp: Path) -> tuple[Path, str]:
    path = write_plain_archive(tmp / "link.h5", layers=_layers(), metrics=_metrics())
    with h5py.File(path, "r+") as f:
        metrics = f["metrics"]
        plist = h5py.h5p.create(h5py.h5p.LINK_CREATE)
        plist.set_char_encoding(h5py.h5t.CSET_UTF8)
        metrics.id.links.create_hard(b"acc\xff", f.id, b"metrics/val_accuracy", lcpl=plist)
    return path, "/metrics has a member named 'acc\\xff', which is not UTF-8 text"


def non_utf8_zarr_folder(tmp: Path) -> tuple[Path, str]:
    path = write_plain_archive(tmp / "folder.zarr", layers=_layers(), metrics=_metrics())
    os.rename(path / "metrics/val_accuracy", os.fsencode(path / "metrics") + b"/acc\xff")
    return path, "/metrics has a member named 'acc\\xff', which is not UTF-8 text"


def non_utf8_hdf5_attribute(tmp: Path) -> tuple[Path, str]:
    path = write_plain_archive(tmp / "attr.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        h5py.h5a.create(f.id, b"seed\xfe", h5py.h5t.NATIVE_INT32, space)
    return path, "has a member named 'seed\\xfe'"


def attribute_nested_100k_deep(tmp: Path) -> tuple[Path, str]:
    path = write_plain_archive(tmp / "deep.zarr", layers=_layers())
    document = json.loads((path / "zarr.json").read_text())
    document["attributes"]["nested"] = "HERE"
    text = json.dumps(document).replace('"HERE"', "[" * 100_000 + "]" * 100_000)
    (path / "zarr.json").write_text(text)
    return path, "nested too deeply"


def layer_metadata_nested_100k_deep(tmp: Path) -> tuple[Path, str]:
    path = write_plain_archive(tmp / "deep-layer.zarr", layers=_layers())
    document = json.loads((path / "layers/b/zarr.json").read_text())
    document["attributes"] = {"nested": "HERE"}
    text = json.dumps(document).replace('"HERE"', "{" + '"k": {' * 100_000 + "}" * 100_001)
    (path / "layers/b/zarr.json").write_text(text)
    return path, "/layers/b (its metadata is nested too deeply)"


def missing_filter_plugin(tmp: Path) -> tuple[Path, str]:
    path = write_plain_archive(tmp / "plugin.h5", layers=_layers())
    with h5py.File(path, "r+") as f:
        del f["layers/b/activations"]
        dataset = f["layers/b"].create_dataset(
            "activations",
            shape=(T, 4),
            chunks=(1, 4),
            dtype="f8",
            compression=32123,
            allow_unknown_filter=True,
        )
        for t in range(T):
            dataset.id.write_direct_chunk((t, 0), np.ones(4).tobytes())
    return path, "compressed with HDF5 filter 32123"


def petabyte_allocation(tmp: Path) -> tuple[Path, str]:
    """An epoch vector declaring 2**50 rows, no ``complete_checkpoints``: all of them count."""
    path = write_plain_archive(tmp / "huge.zarr", layers=_layers())
    root = zarr.open_group(str(path), mode="r+")
    del root["checkpoints/epoch"]
    root.create_array("checkpoints/epoch", shape=(2**50,), chunks=(1024,), dtype="f8", fill_value=1)
    return path, "cannot read checkpoints/epoch: not enough memory (Unable to allocate 8.00 PiB"


CASES = [
    non_utf8_hdf5_link,
    non_utf8_zarr_folder,
    non_utf8_hdf5_attribute,
    attribute_nested_100k_deep,
    layer_metadata_nested_100k_deep,
    missing_filter_plugin,
    petabyte_allocation,
]


@pytest.fixture(params=CASES, ids=[case.__name__ for case in CASES])
def hostile(request, tmp_path):
    return request.param(tmp_path)


@pytest.mark.parametrize("command", ["inspect", "signals", "analyze"])
def test_one_line(cli, hostile, command):
    path, phrase = hostile
    assert_one_line_error(cli(command, path), path, phrase)


def test_validate_reports_it_and_goes_on(cli, hostile, tmp_path):
    path, phrase = hostile
    good = write_plain_archive(tmp_path / "good.h5", layers=_layers())
    result = cli("validate", path, good, path)
    assert_validate_lists(result, path, phrase)
    assert f"ok {good}" in result.stdout
    assert result.stdout.count(f"invalid {path}") == 2


def test_moderate_nesting_is_read_and_shown_short(tmp_path):
    """Nesting zarr can parse (500 deep) is kept to 32 levels in the metadata, noted."""
    path = write_plain_archive(tmp_path / "nested.zarr", layers=_layers())
    document = json.loads((path / "zarr.json").read_text())
    document["attributes"]["nested"] = "HERE"
    (path / "zarr.json").write_text(
        json.dumps(document).replace('"HERE"', "[" * 500 + "1" + "]" * 500)
    )
    with open_archive(path) as archive:
        value = archive.metadata["nested"]
        depth = 0
        while isinstance(value, list):
            value, depth = value[0], depth + 1
        assert value == "(nested too deeply)"
        assert depth == 33
        assert any("nesting deeper than 32" in note for note in archive.metadata_notes)
        json.dumps(archive.metadata)  # writable as JSON


def test_non_utf8_names_under_a_strict_utf8_stdout(tmp_path):
    """A real process whose stdout refuses anything but UTF-8: still one line, exit 2."""
    path, _ = non_utf8_zarr_folder(tmp_path)
    script = Path(sys.executable).with_name("dynatrain")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dynatrain.cli"]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    for args in (["inspect", "--format", "json"], ["signals"], ["validate"]):
        result = subprocess.run(
            [*command, args[0], str(path), *args[1:]],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        out = (result.stdout if args[0] == "validate" else result.stderr).decode("utf-8")
        assert len(out.strip().splitlines()) == 1, out
        assert "acc\\xff" in out
        assert "Traceback" not in result.stderr.decode("utf-8")


#: Runs each byte-flipped file through the CLI in a forked child (should the HDF5
#: library crash, it kills the child, not the test) and prints one JSON line per
#: outcome. The probe gets 2 s instead of 60 for a file that makes HDF5 loop.
FLIP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from click.testing import CliRunner
    import h5py  # imported before forking
    import dynatrain.archive._hdf5 as hdf5
    from dynatrain.cli import main

    hdf5.PROBE_SECONDS = 2
    data = open(sys.argv[1], "rb").read()
    for offset in map(int, sys.argv[3].split(",")):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        path = os.path.join(sys.argv[2], f"flip-{offset}.h5")
        with open(path, "wb") as f:
            f.write(flipped)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            for command in (["inspect", "--format", "json"], ["validate"], ["signals"]):
                result = CliRunner().invoke(main, [command[0], path, *command[1:]])
                exception = result.exception
                outcome = {
                    "offset": offset,
                    "command": command[0],
                    "exit": result.exit_code,
                    "stderr": result.stderr,
                    "stdout": result.stdout[-300:],
                    "exception": None
                    if exception is None or isinstance(exception, SystemExit)
                    else repr(exception),
                }
                os.write(write, (json.dumps(outcome) + "\\n").encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as lines:
            print(lines.read(), end="", flush=True)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(json.dumps({"offset": offset, "signal": os.WTERMSIG(status)}), flush=True)
        os.remove(path)
    """
)


@pytest.mark.slow
def test_byte_flips_anywhere_give_exit_0_or_one_line(tmp_path):
    """Every CLI outcome on a byte-flipped HDF5 archive is exit 0, or exit 2 with one
    line: no traceback, no "internal error", no crash of the process."""
    path = write_plain_archive(
        tmp_path / "base.h5",
        layers={k: v.astype(np.float32) for k, v in _layers().items()},
        metrics=_metrics(),
        steps=np.arange(T),
    )
    data = path.read_bytes()
    offsets = set(np.random.default_rng(0).integers(0, len(data), 30).tolist()) | {0, 8, 40}
    # Flips that crashed (SIGSEGV) or hung the HDF5 library itself: the datatype of the
    # root's first attribute, and the size of the first object in the global heap.
    offsets.add(data.find(b"format\x00\x00") + 9)
    offsets.add(data.find(b"GCOL") + 24)
    offsets = sorted(offsets)
    result = subprocess.run(
        [sys.executable, "-c", FLIP_SCRIPT, str(path), str(tmp_path), ",".join(map(str, offsets))],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line]
    assert not [o for o in outcomes if "signal" in o], result.stdout[-2000:]
    assert len(outcomes) == 3 * len(offsets), result.stderr[-3000:]
    failures = []
    for outcome in outcomes:
        lines = outcome["stderr"].strip().splitlines()
        good = (
            outcome["exception"] is None
            and (outcome["exit"] == 0 or (outcome["exit"] == 2 and len(lines) <= 1))
            and "internal error" not in outcome["stderr"]
            and "Traceback" not in outcome["stderr"]
        )
        if not good:
            failures.append(outcome)
    assert not failures, failures[:5]
