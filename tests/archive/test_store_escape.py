"""Nothing outside an archive is ever read, and nothing in it makes a command hang.

A Zarr store is a folder: a member that is a symbolic link (to ``/etc/passwd``, to
another store's layer), a FIFO, a socket or a device is refused with one line naming
the store and the member, by every command, and ``validate`` lists it. A FIFO given
as the archive itself fails at once. A symbolic link *to* the store or file, named
by the user, is followed.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_one_line_error, assert_validate_lists, no_hang
from plain_archives import archive_untouched, write_plain_archive

from dynatrain import open_archive
from dynatrain.archive.validate import validate_archive
from dynatrain.errors import ArchiveError
from dynatrain.signals import read_signals

#: What the files that links point to hold: it must never come out.
SECRET = b"root:x:0:0:SECRET-4242:/root:/bin/bash\n"
COMMANDS = [("signals", "--format", "json"), ("analyze", "--format", "json"), ("inspect",)]


def _layers(n: int = 30) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(n, 4, 3)), "b": rng.normal(size=(n, 4))}


def _store(tmp: Path, name: str) -> Path:
    return write_plain_archive(
        tmp / name, layers=_layers(), metrics={"val_accuracy": np.linspace(0, 1, 30)}
    )


def _secret(tmp: Path) -> Path:
    secret = tmp / "passwd"
    secret.write_bytes(SECRET * 4)
    return secret


def metric_chunk_to_file(tmp: Path) -> tuple[Path, str]:
    path = _store(tmp, "chunk-link.zarr")
    chunk = path / "metrics/val_accuracy/c/0"
    chunk.unlink()
    chunk.symlink_to(_secret(tmp))
    return path, "metrics/val_accuracy/c/0 is a symbolic link"


def metric_chunk_to_etc_passwd(tmp: Path) -> tuple[Path, str]:
    path = _store(tmp, "etc-passwd.zarr")
    chunk = path / "metrics/val_accuracy/c/0"
    chunk.unlink()
    chunk.symlink_to("/etc/passwd")
    return path, "metrics/val_accuracy/c/0 is a symbolic link"


def layer_folder_to_other_store(tmp: Path) -> tuple[Path, str]:
    other = _store(tmp, "other.zarr")
    path = _store(tmp, "folder-link.zarr")
    shutil.rmtree(path / "layers/b")
    (path / "layers/b").symlink_to(other / "layers/b", target_is_directory=True)
    return path, "layers/b is a symbolic link"


def chunk_folder_to_other_store(tmp: Path) -> tuple[Path, str]:
    """A link halfway down a key (``c`` of an array), not at its end."""
    other = _store(tmp, "other.zarr")
    path = _store(tmp, "c-link.zarr")
    shutil.rmtree(path / "layers/a/activations/c")
    (path / "layers/a/activations/c").symlink_to(other / "layers/a/activations/c")
    return path, "layers/a/activations/c is a symbolic link"


def array_metadata_link(tmp: Path) -> tuple[Path, str]:
    other = _store(tmp, "other.zarr")
    path = _store(tmp, "meta-link.zarr")
    (path / "layers/b/activations/zarr.json").unlink()
    (path / "layers/b/activations/zarr.json").symlink_to(other / "layers/b/activations/zarr.json")
    return path, "layers/b/activations/zarr.json is a symbolic link"


def stray_link_in_metrics(tmp: Path) -> tuple[Path, str]:
    """Not named by the archive, but inside it: refused all the same."""
    path = _store(tmp, "stray-link.zarr")
    (path / "metrics/notes").symlink_to(tmp, target_is_directory=True)
    return path, "metrics/notes is a symbolic link"


def fifo_chunk(tmp: Path) -> tuple[Path, str]:
    path = _store(tmp, "fifo-chunk.zarr")
    chunk = path / "layers/a/activations/c/3/0/0"
    chunk.unlink()
    os.mkfifo(chunk)
    return path, "layers/a/activations/c/3/0/0 is a FIFO"


def fifo_array_metadata(tmp: Path) -> tuple[Path, str]:
    path = _store(tmp, "fifo-meta.zarr")
    (path / "layers/b/zarr.json").unlink()
    os.mkfifo(path / "layers/b/zarr.json")
    return path, "layers/b/zarr.json is a FIFO"


def fifo_root_metadata(tmp: Path) -> tuple[Path, str]:
    path = _store(tmp, "fifo-root.zarr")
    (path / "zarr.json").unlink()
    os.mkfifo(path / "zarr.json")
    return path, "zarr.json is a FIFO"


def socket_chunk(tmp: Path) -> tuple[Path, str]:
    path = _store(tmp, "sock.zarr")
    chunk = path / "metrics/val_accuracy/c/0"
    chunk.unlink()
    here = Path.cwd()
    os.chdir(chunk.parent)  # a socket's path is limited to about 100 bytes
    try:
        server = socket.socket(socket.AF_UNIX)
        server.bind("0")
        server.close()
    finally:
        os.chdir(here)
    return path, "metrics/val_accuracy/c/0 is a socket"


CASES = [
    metric_chunk_to_file,
    metric_chunk_to_etc_passwd,
    layer_folder_to_other_store,
    chunk_folder_to_other_store,
    array_metadata_link,
    stray_link_in_metrics,
    fifo_chunk,
    fifo_array_metadata,
    fifo_root_metadata,
    socket_chunk,
]


@pytest.fixture(params=CASES, ids=[case.__name__ for case in CASES])
def hostile_store(request, tmp_path):
    return request.param(tmp_path)


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_refuses_in_one_line(cli, hostile_store, command):
    path, phrase = hostile_store
    with no_hang(), archive_untouched(path):
        result = cli(command[0], path, *command[1:])
    assert_one_line_error(result, path, phrase, "refused")
    assert "SECRET" not in result.output and "root:" not in result.output


def test_validate_lists_it(cli, hostile_store):
    path, phrase = hostile_store
    with no_hang(), archive_untouched(path):
        result = cli("validate", path)
    assert_validate_lists(result, path, phrase)


def test_library_refuses_too(hostile_store):
    path, phrase = hostile_store
    with no_hang(), pytest.raises(ArchiveError, match=phrase.split(" is ")[0]):
        read_signals(path)
    assert not validate_archive(path).valid


def test_device_in_store_is_refused(cli, tmp_path):
    path = _store(tmp_path, "device.zarr")
    chunk = path / "metrics/val_accuracy/c/0"
    chunk.unlink()
    try:
        os.mknod(chunk, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("creating a device node needs privileges")
    with no_hang():
        result = cli("signals", path)
    assert_one_line_error(result, path, "metrics/val_accuracy/c/0 is a character device")


@pytest.mark.parametrize("name", ["pipe.h5", "pipe.hdf5", "pipe", "pipe.zarr"])
@pytest.mark.parametrize("command", ["inspect", "signals", "analyze"])
def test_fifo_as_the_archive_fails_at_once(cli, tmp_path, name, command):
    path = tmp_path / name
    os.mkfifo(path)
    with no_hang():
        result = cli(command, path)
    assert_one_line_error(result, path, "is a FIFO")


def test_fifo_as_the_archive_in_validate_goes_on(cli, tmp_path):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    good = write_plain_archive(tmp_path / "good.h5", layers=_layers())
    with no_hang():
        result = cli("validate", fifo, good)
    assert result.exit_code == 2
    assert f"invalid {fifo}: is a FIFO" in result.stdout
    assert f"ok {good}" in result.stdout


@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
def test_link_to_the_archive_itself_is_followed(tmp_path, name):
    """The user chose that path: a link *to* the archive is not a member of it."""
    real = write_plain_archive(tmp_path / name, layers=_layers())
    link = tmp_path / f"latest{Path(name).suffix}"
    link.symlink_to(real, target_is_directory=real.is_dir())
    with open_archive(link) as archive:
        assert archive.n_checkpoints == 30
    assert validate_archive(link).valid
    np.testing.assert_array_equal(
        read_signals(link).values, read_signals(real).values
    )  # same data, through the link


def test_platforms_without_openat_read_through_zarrs_local_store(tmp_path, monkeypatch):
    """Where links cannot be refused race-free (no ``openat``/``O_NOFOLLOW``, i.e.
    Windows), stores are still read, through zarr's LocalStore, with the same bound on
    what a chunk may decompress to."""
    from numcodecs import Zstd

    from dynatrain.archive import _zarr

    monkeypatch.setattr(_zarr, "NO_FOLLOW_SUPPORTED", False)
    path = _store(tmp_path, "plain.zarr")
    signals = read_signals(path)
    np.testing.assert_allclose(signals.values[1], _layers()["b"].mean(axis=1))
    assert validate_archive(path).valid
    (path / "layers/a/activations/c/2/0/0").write_bytes(Zstd(level=1).encode(bytes(2**22)))
    with pytest.raises(ArchiveError, match="would decompress to 4194304 bytes"):
        read_signals(path)
