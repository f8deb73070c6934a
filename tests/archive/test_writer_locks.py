"""One writer per archive, on both back ends, seen from real concurrent processes.

A second writer, in any mode, is refused while the first one is open (``mode="w"``
on a live run used to destroy it without a word); two writers started together with
``mode="w-"`` on a new path: exactly one wins (on Zarr both used to, now and then);
and the lock dies with its process, SIGKILL included.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dynatrain import ArchiveWriter, open_archive
from dynatrain.errors import ArchiveError, InputError

SUFFIXES = [".h5", ".zarr"]

#: A writer that appends one checkpoint (values = its id) per line read on stdin and
#: prints the index; "close" closes it. Output: "ready", then one line per command.
HOLDER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dynatrain import ArchiveWriter

    path, ident, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    writer = ArchiveWriter(path, mode=mode)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "close":
            writer.close()
            print("closed", flush=True)
            break
        t = writer.n_checkpoints
        writer.append(epoch=t, activations={"a": np.full((4, 8), ident, np.float32)},
                      metrics={"val/acc": ident})
        print(t, flush=True)
    """
)

#: Tries to create a new archive when told to (one path per stdin line), then writes
#: three checkpoints of its own id; prints "ok" or "refused: <message>" per path.
RACER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from dynatrain import ArchiveWriter
    from dynatrain.errors import DynatrainError

    ident = float(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        path = line.strip()
        try:
            with ArchiveWriter(path, mode="w-") as writer:
                for t in range(3):
                    writer.append(epoch=t, activations={"a": np.full((4, 8), ident, np.float32)})
        except DynatrainError as exc:
            print("refused:", exc, flush=True)
        else:
            print("ok", flush=True)
    """
)


def start(script: str, *args: object) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    return child


def command(child: subprocess.Popen, line: str) -> str:
    child.stdin.write(line + "\n")
    child.stdin.flush()
    return child.stdout.readline().strip()


def read_values(path):
    with open_archive(path) as archive:
        values = np.concatenate([b.values for b in archive.iter_activations("a")])
        accuracy = archive.metric("val/acc") if archive.metric_names else None
        return archive.n_checkpoints, values, accuracy


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_second_writer_in_this_process_is_refused(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    first = ArchiveWriter(path)
    for mode in ("w-", "w"):  # before the first append (an HDF5 file is still staged)
        with pytest.raises((ArchiveError, InputError), match="writer"):
            ArchiveWriter(path, mode=mode)
    first.append(epoch=0, activations={"a": np.zeros((2, 2))})
    for mode in ("w-", "w"):
        with pytest.raises(
            (ArchiveError, InputError), match=r"being written by another writer|already exists"
        ):
            ArchiveWriter(path, mode=mode)
    with pytest.raises(ArchiveError, match="being written by another writer"):
        ArchiveWriter(path, mode="w")
    first.append(epoch=1, activations={"a": np.ones((2, 2))})
    first.close()
    with ArchiveWriter(path, mode="w") as second:  # closed: replacing it is allowed
        second.append(epoch=5, activations={"a": np.zeros((2, 2))})
    with open_archive(path) as archive:
        assert archive.n_checkpoints == 1 and archive.epochs[0] == 5


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_mode_w_on_a_live_run_is_refused_and_the_run_goes_on(tmp_path, suffix):
    path = tmp_path / f"live{suffix}"
    holder = start(HOLDER, path, 1, "w-")
    try:
        for t in range(5):
            assert command(holder, "append") == str(t)
        for mode in ("w", "w-"):
            with pytest.raises((ArchiveError, InputError)) as caught:
                ArchiveWriter(path, mode=mode)
            message = str(caught.value)
            assert "being written by another writer" in message
            assert str(path) in message and "\n" not in message
        for t in range(5, 10):
            assert command(holder, "append") == str(t)
        assert command(holder, "close") == "closed"
    finally:
        holder.kill()
        holder.communicate()
    n, values, accuracy = read_values(path)
    assert n == 10
    assert (values == 1).all() and (accuracy == 1).all()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_lock_dies_with_a_killed_writer(tmp_path, suffix):
    path = tmp_path / f"killed{suffix}"
    holder = start(HOLDER, path, 1, "w-")
    for t in range(3):
        assert command(holder, "append") == str(t)
    with pytest.raises(ArchiveError, match="being written by another writer"):
        ArchiveWriter(path, mode="w")
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    n, values, _ = read_values(path)  # what the killed writer left is readable
    assert n == 3 and (values == 1).all()
    with ArchiveWriter(path, mode="w") as writer:  # and may now be replaced
        writer.append(epoch=0, activations={"a": np.full((4, 8), 2.0, np.float32)})
    n, values, _ = read_values(path)
    assert n == 1 and (values == 2).all()


def test_a_writer_killed_before_its_first_append_leaves_nothing_in_the_way(tmp_path):
    """HDF5 builds the file under a staging name until the first append; a writer killed
    before that leaves the staging file, unlocked: the next writer takes it over."""
    path = tmp_path / "early.h5"
    holder = start(HOLDER, path, 1, "w-")
    assert (tmp_path / "early.h5.incomplete").exists() and not path.exists()
    with pytest.raises(ArchiveError, match="another writer is creating this archive"):
        ArchiveWriter(path)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    with ArchiveWriter(path) as writer:
        writer.append(epoch=0, activations={"a": np.full((4, 8), 2.0, np.float32)})
    assert not (tmp_path / "early.h5.incomplete").exists()
    n, values, _ = read_values(path)
    assert n == 1 and (values == 2).all()


#: Trials per back end of two writers racing to create the same new archive.
RACE_TRIALS = 24


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_two_writers_racing_to_create_one_archive_exactly_one_wins(tmp_path, suffix):
    racers = [start(RACER, ident) for ident in (1, 2)]
    try:
        for trial in range(RACE_TRIALS):
            path = tmp_path / f"race{trial}{suffix}"
            for racer in racers:  # both told at once: they start within microseconds
                racer.stdin.write(f"{path}\n")
            for racer in racers:
                racer.stdin.flush()
            answers = [racer.stdout.readline().strip() for racer in racers]
            winners = [i for i, answer in enumerate(answers) if answer == "ok"]
            assert len(winners) == 1, answers
            loser = answers[1 - winners[0]]
            assert loser.startswith(f"refused: {path}: "), loser
            assert any(
                words in loser
                for words in ("another writer", "already exists (replace it with mode='w')")
            ), loser
            with open_archive(path) as archive:
                assert archive.n_checkpoints == 3
                values = np.concatenate([b.values for b in archive.iter_activations("a")])
            assert (values == winners[0] + 1).all()  # one writer's checkpoints, not a mix
    finally:
        for racer in racers:
            racer.communicate(timeout=60)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_file_system_without_locks_is_said_and_writing_goes_on(tmp_path, monkeypatch, suffix):
    """Some network file systems cannot lock (ENOLCK): a warning, not a failed job."""
    import errno

    from dynatrain.archive import _files

    def no_locks(*args, **kwargs):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_files.fcntl, "fcntl", no_locks)
    monkeypatch.setattr(_files.fcntl, "flock", no_locks)
    monkeypatch.setattr(_files.fcntl, "lockf", no_locks)
    path = tmp_path / f"nfs{suffix}"
    with pytest.warns(RuntimeWarning, match="cannot lock the archive .* would not be noticed"):
        writer = ArchiveWriter(path)
    with writer:
        writer.append(epoch=0, activations={"a": np.zeros((4, 8), np.float32)})
    assert read_values(path)[0] == 1
