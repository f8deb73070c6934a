"""A writer killed while the kernel copies one of its HDF5 metadata writes.

Linux copies a write into the page cache one page at a time and stops between two
pages when the process is killed (SIGKILL). A metadata entry that straddles a page
boundary is then half new and half old: its checksum fails for good. HDF5 in SWMR
mode retries such a read with pauses that double from 1 ns (34 s after the 36th of
its 100 attempts; a live writer's next flush would complete the entry), and the chunk
index of a whole array is out of reach.

* The writer places no metadata entry across a page boundary (paged file space), so
  a kill cannot tear one: checked here on the entries of a killed writer's file,
  found by their signatures and checksums.
* A reader of an archive that no writer holds does not retry: a torn entry (a file
  from another writer, or corrupt) is refused at once, in one line, and the other
  arrays still read. While a writer holds the archive, HDF5 retries as before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from cli_checks import assert_one_line_error

import dynatrain.archive._hdf5 as hdf5
from dynatrain import ArchiveWriter, open_archive
from dynatrain.archive._files import lock_file
from dynatrain.archive._sinks import _lookup3
from dynatrain.errors import ArchiveError

#: Appends the soak writer's checkpoints, then kills itself (its file is left open,
#: in SWMR write mode, as after any SIGKILL). Metrics are binary fractions: no random
#: mantissa bytes in the file that could spell a signature.
KILLED_WRITER = r"""
import os, signal, sys
import numpy as np
from dynatrain import ArchiveWriter

path, n = sys.argv[1], int(sys.argv[2])
writer = ArchiveWriter(path, metadata={"run_id": "torn"}).__enter__()
for t in range(n):
    writer.append(
        epoch=t + 1,
        activations={"a": np.full((4, 16), t, np.float32), "b": np.full((3,), -t, np.float64)},
        signals={"b": 0.25 * t},
        metrics={"val/acc": t / 8, "loss": -t},
        step=t,
    )
os.kill(os.getpid(), signal.SIGKILL)
"""

#: Signatures of the HDF5 metadata entries that end with a checksum (file format
#: specification, version 2 structures): object headers and their continuations,
#: v2 B-trees, fractal heaps, free-space managers, extensible and fixed arrays.
SIGNATURES = (
    b"OHDR",
    b"OCHK",
    b"BTHD",
    b"BTIN",
    b"BTLF",
    b"FRHP",
    b"FHIB",
    b"FHDB",
    b"FSHD",
    b"FSSE",
    b"EAHD",
    b"EAIB",
    b"EASB",
    b"EADB",
    b"FAHD",
    b"FADB",
)
SUPERBLOCK = b"\x89HDF\r\n\x1a\n"
PAGE = 4096


def killed_writer_archive(path, n: int):
    """The file of a writer killed (SIGKILL) after ``n`` appends returned."""
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), str(n)], check=False)
    assert result.returncode == -signal.SIGKILL
    return path


def _rot(x: np.ndarray, k: int) -> np.ndarray:
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def lookup3_of_prefixes(data: bytes) -> np.ndarray:
    """Bob Jenkins' lookup3 ``hashlittle(data[:n], 0)`` (HDF5's metadata checksum) for
    every ``n`` from 1 to ``len(data)``, at index ``n`` (index 0 is meaningless)."""
    n = np.arange(len(data) + 1, dtype=np.int64)
    init = ((0xDEADBEEF + n) & 0xFFFFFFFF).astype(np.uint32)
    a, b, c = init.copy(), init.copy(), init.copy()
    padded = np.frombuffer(bytes(data) + bytes(16), dtype=np.uint8)
    words = padded[: len(padded) // 4 * 4].view("<u4")
    rounds = (n - 1) // 12  # 12-byte blocks mixed before the last 1 to 12 bytes
    for k in range(int(rounds.max(initial=0))):
        x, y, z = a + words[3 * k], b + words[3 * k + 1], c + words[3 * k + 2]
        x = (x - z) ^ _rot(z, 4)
        z = z + y
        y = (y - x) ^ _rot(x, 6)
        x = x + z
        z = (z - y) ^ _rot(y, 8)
        y = y + x
        x = (x - z) ^ _rot(z, 16)
        z = z + y
        y = (y - x) ^ _rot(x, 19)
        x = x + z
        z = (z - y) ^ _rot(y, 4)
        y = y + x
        on = rounds > k
        a, b, c = np.where(on, x, a), np.where(on, y, b), np.where(on, z, c)
    start = 12 * np.maximum(rounds, 0)
    tail = padded[start[:, None] + np.arange(12)].astype(np.uint32)
    tail[np.arange(12) >= (n - start)[:, None]] = 0
    shifts = np.array([0, 8, 16, 24], dtype=np.uint32)
    w = (tail.reshape(-1, 3, 4) << shifts).sum(axis=2, dtype=np.uint32)
    a, b, c = a + w[:, 0], b + w[:, 1], c + w[:, 2]
    c = (c ^ b) - _rot(b, 14)
    a = (a ^ c) - _rot(c, 11)
    b = (b ^ a) - _rot(a, 25)
    c = (c ^ b) - _rot(b, 16)
    a = (a ^ c) - _rot(c, 4)
    b = (b ^ a) - _rot(a, 14)
    c = (c ^ b) - _rot(b, 24)
    return c


def entry_length(data: bytes, offset: int, longest: int = PAGE) -> int | None:
    """Length of the checksummed entry at ``offset``: the first ``n`` whose last 4 bytes
    are the checksum of the ``n - 4`` before them. None if none up to ``longest``."""
    window = data[offset : offset + longest]
    sums = lookup3_of_prefixes(window[:-4])
    raw = np.frombuffer(window + bytes(4), dtype=np.uint8).astype(np.uint32)
    stored = raw[:-3] | raw[1:-2] << 8 | raw[2:-1] << 16 | raw[3:] << 24
    match = np.nonzero(sums[8:] == stored[8 : len(sums)])[0]
    return int(match[0]) + 8 + 4 if match.size else None


def metadata_entries(data: bytes) -> list[tuple[bytes, int, int | None]]:
    """``(signature, offset, length)`` of every checksummed metadata entry in ``data``."""
    found = []
    for signature in SIGNATURES:
        offset = data.find(signature)
        while offset >= 0:
            found.append((signature, offset, entry_length(data, offset)))
            offset = data.find(signature, offset + 1)
    return found


def test_checksum_helper_agrees_with_hdf5(tmp_path):
    """The superblock's checksum, written by HDF5, is found where the format puts it."""
    data = killed_writer_archive(tmp_path / "run.h5", 20).read_bytes()
    assert data.startswith(SUPERBLOCK)
    assert entry_length(data, 0) == 48  # version 2/3 superblock, 8-byte addresses


def test_writer_checksum_agrees_with_the_helper():
    """The writer's own lookup3 (it rewrites one header, see the next test) against
    the helper's, itself checked against HDF5 above."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    sums = lookup3_of_prefixes(data)
    assert [_lookup3(data[:n]) for n in range(1, 201)] == sums[1:].tolist()


def test_identical_inputs_give_identical_files_seconds_apart(tmp_path):
    """Paged file space adds a superblock extension that HDF5 stamps with the time;
    the writer zeroes those stamps when it closes."""
    paths = [tmp_path / "first.h5", tmp_path / "second.h5"]
    for path in paths:
        with ArchiveWriter(path, metadata={"run_id": "same"}) as writer:
            for t in range(3):
                writer.append(epoch=t, activations={"a": np.full(4, t, np.float32)})
        time.sleep(1.1)  # into another second
    first = paths[0].read_bytes()
    assert first == paths[1].read_bytes()
    assert b"OHDR" in first[48:52]  # the extension, right after the superblock
    assert entry_length(first, 48) is not None  # its checksum holds
    with h5py.File(paths[0], "r") as file:
        assert (
            file.id.get_create_plist().get_file_space_strategy()[0] == h5py.h5f.FSPACE_STRATEGY_PAGE
        )
    with open_archive(paths[0]) as archive:
        np.testing.assert_array_equal(archive.epochs, [0, 1, 2])


@pytest.mark.slow
def test_no_metadata_entry_of_a_killed_writer_straddles_a_page(tmp_path):
    """Past two growths of the arrays (1,024 and 2,048 rows) and 130 new chunks of the
    16-row layer: every entry fits in one page, where a kill cannot cut it."""
    data = killed_writer_archive(tmp_path / "run.h5", 2_100).read_bytes()
    entries = metadata_entries(data)
    kinds = {signature for signature, _, _ in entries}
    assert {b"OHDR", b"EAHD", b"EAIB", b"EADB"} <= kinds  # what there is to check
    for signature, offset, length in entries:
        assert length is not None, f"{signature!r} at {offset}: no checksum in a page"
        first, last = offset // PAGE, (offset + length - 1) // PAGE
        assert first == last, f"{signature!r} at {offset} ({length} bytes) straddles a page"


def _read_attempts(archive) -> int:
    """HDF5's metadata read attempts of the archive's open file."""
    get = hdf5._hdf5_function(
        "H5Pget_metadata_read_attempts", (ctypes.c_int64, ctypes.POINTER(ctypes.c_uint))
    )
    if get is None:
        pytest.skip("HDF5's C API cannot be reached here (not Linux)")
    attempts = ctypes.c_uint()
    assert get(archive._store._file.id.get_access_plist().id, ctypes.byref(attempts)) >= 0
    return attempts.value


def tear_chunk_index_header(path) -> None:
    """Change the chunk index header of layer ``a`` (the array with the most chunks)
    after its checksum: as a write stopped at a page boundary leaves it."""
    data = bytearray(path.read_bytes())
    headers = [(o, n) for s, o, n in metadata_entries(bytes(data)) if s == b"EAHD"]
    assert headers and all(n == 72 for _, n in headers)
    # Statistics: secondary blocks, their size, data blocks, their size, the highest
    # index set, elements realized (8 bytes each, from byte 12).
    realized = [int.from_bytes(data[o + 52 : o + 60], "little") for o, _ in headers]
    assert realized.count(max(realized)) == 1
    offset = headers[realized.index(max(realized))][0]
    data[offset + 44] ^= 0x01  # the highest index set, a byte before the page's end
    path.write_bytes(bytes(data))


def test_torn_chunk_index_of_a_killed_writer_is_refused_at_once(tmp_path, cli, monkeypatch):
    """No endless retries ended by the probe's timeout ("corrupt"): one line naming
    the checksum, and every other array of the 100 checkpoints reads back."""
    monkeypatch.setattr(hdf5, "PROBE_SECONDS", 10)  # HDF5 would retry for ever
    path = killed_writer_archive(tmp_path / "torn.h5", 100)
    tear_chunk_index_header(path)
    with open_archive(path) as archive:
        assert _read_attempts(archive) == 1
        t = np.arange(100)
        assert archive.n_checkpoints == 100
        np.testing.assert_array_equal(archive.epochs, t + 1)
        np.testing.assert_array_equal(archive.metric("val/acc"), t / 8)
        np.testing.assert_array_equal(archive.signal("b"), 0.25 * t)
        values = np.concatenate([block.values for block in archive.iter_activations("b")])
        np.testing.assert_array_equal(values, np.broadcast_to(-t[:, None], values.shape))
        with pytest.raises(ArchiveError, match="fails its checksum"):
            list(archive.iter_activations("a"))
    result = cli("signals", path)
    assert_one_line_error(result, path, "layer 'a'", "fails its checksum", "writer killed")


def test_a_writer_holding_the_archive_keeps_hdf5_retries(tmp_path):
    """A reader following a live writer keeps HDF5's retries (a flush in progress ends
    them); once the writer lets go, the next refresh opens the file again without."""
    path = killed_writer_archive(tmp_path / "run.h5", 30)
    lock = os.open(path, os.O_RDWR)
    try:
        assert lock_file(lock, str(path))  # as the writer's lock
        with open_archive(path) as archive:
            assert _read_attempts(archive) > 1
            archive.refresh()
            assert _read_attempts(archive) > 1
            os.close(lock)
            lock = -1
            archive.refresh()
            assert _read_attempts(archive) == 1
            assert archive.n_checkpoints == 30
            np.testing.assert_array_equal(archive.epochs, np.arange(30) + 1)
    finally:
        if lock >= 0:
            os.close(lock)
