"""Every file a SIGKILL can leave behind an HDF5 writer, replayed and read back.

A writer process appends ``--first`` checkpoints (the crash-safety soak layout), copies
its file, then appends ``--appends`` more under ``strace``, which records every write
to the archive with its bytes. The copy is then brought forward write by write, and at
each point the file a kill could leave is read in a forked child (``open_archive``,
``chunk_gaps``, every counted checkpoint of every array compared with what was
written):

* **between writes**: the writes so far, whole (``--between``);
* **inside a write**: the writes so far and the first pages of the current one, cut at
  each 4 KiB page boundary inside it. Linux copies a write into the page cache page by
  page and stops between two pages when the process is killed; within one page a
  write is whole or absent.

Only the appends that write metadata other than the root's count (a chunk index, an
object header, the superblock, the file's length) are replayed cut; the others write
chunk data (in the row being appended, not counted yet) and the count. A read that
takes longer than ``--timeout`` seconds (HDF5 retrying a metadata read) or fails, or
that does not give back every checkpoint counted, is printed and its file kept.

Linux only; needs ``strace``. Usage::

    python benchmarks/crash_states_hdf5.py --first 1500 --appends 3000 --between
    python benchmarks/crash_states_hdf5.py --first 8190 --appends 30 --row-bytes 4096
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PAGE = 4096

#: Appends ``first`` checkpoints, copies the file, says so, appends ``more``, and ends
#: without closing (as a kill). Activations: the soak layout, or one layer of
#: ``row_bytes`` bytes per checkpoint (one checkpoint a chunk from 4 KiB on).
WRITER = r"""
import os, shutil, sys
import numpy as np
from dynatrain import ArchiveWriter

path, copy = sys.argv[1], sys.argv[4]
first, more, row_bytes = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
mark = os.open(os.devnull, os.O_WRONLY)
writer = ArchiveWriter(path, metadata={"run_id": "crash-states"}).__enter__()

def append(t):
    if row_bytes:
        layers = {"a": np.full(row_bytes // 4, t, np.float32), "b": np.full(3, -t, np.float64)}
    else:
        layers = {"a": np.full((4, 16), t, np.float32), "b": np.full(3, -t, np.float64)}
    writer.append(epoch=t + 1, activations=layers, signals={"b": 0.25 * t},
                  metrics={"val/acc": t / 8, "loss": -t}, step=t)

for t in range(first):
    append(t)
shutil.copyfile(path, copy)
os.write(mark, b"COPIED")
for t in range(first, first + more):
    append(t)
    os.write(mark, b"RETURNED %d" % t)
os._exit(0)
"""

#: Signatures of the metadata an append may rewrite besides the root's count.
INDEX_SIGNATURES = (b"EAHD", b"EAIB", b"EASB", b"EADB", b"OHDR", b"\x89HDF")


def record(workdir: Path, first: int, more: int, row_bytes: int) -> tuple[Path, list[tuple]]:
    """Run the writer under strace; the copy and the archive's operations after it.

    Operations: ``("write", offset, bytes)``, ``("truncate", length)``, and
    ``("returned", t)`` when append ``t`` returned.
    """
    path, copy, trace = workdir / "run.h5", workdir / "copy.h5", workdir / "trace.txt"
    calls = "trace=openat,pwrite64,pwritev,write,ftruncate,fallocate"
    command = ["strace", "-qq", "-e", calls, "-xx", "-s", "1000000000", "-o", str(trace)]
    script = [sys.executable, "-c", WRITER, str(path), str(first), str(more), str(copy)]
    subprocess.run([*command, *script, str(row_bytes)], check=True)
    names: dict[int, str] = {}
    operations: list[tuple] = []
    copied = False
    for line in trace.read_text().splitlines():
        if match := re.match(r'openat\(AT_FDCWD, "([^"]*)", .*\) = (\d+)$', line):
            names[int(match[2])] = bytes.fromhex(match[1].replace("\\x", "")).decode()
        elif match := re.match(r'write\(\d+, "([^"]*)", \d+\) = \d+$', line):
            text = bytes.fromhex(match[1].replace("\\x", ""))
            if text == b"COPIED":
                copied = True
            elif text.startswith(b"RETURNED "):
                operations.append(("returned", int(text.split()[1])))
        elif not copied:
            continue
        elif match := re.match(r'pwrite64\((\d+), "([^"]*)", (\d+), (\d+)\) = (\d+)$', line):
            if names.get(int(match[1]), "").startswith(str(path)):
                data = bytes.fromhex(match[2].replace("\\x", ""))
                if len(data) != int(match[5]):
                    raise RuntimeError(f"a short write: {line[:120]}")
                operations.append(("write", int(match[4]), data))
        elif match := re.match(r"ftruncate\((\d+), (\d+)\)\s+= 0$", line):
            if names.get(int(match[1]), "").startswith(str(path)):
                operations.append(("truncate", int(match[2])))
        elif re.match(r"(pwritev|fallocate)\(", line):
            raise RuntimeError(f"not replayed: {line[:120]}")
    return copy, operations


def read_back(path: Path, counted: int, timeout: float) -> tuple[str, float]:
    """Read the archive in a forked child; ``("ok" | "stalled" | "failed", seconds)``."""
    import dynatrain.archive._hdf5 as hdf5
    from dynatrain import open_archive

    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            hdf5._in_probe = True  # timed here, not by the probe
            with open_archive(path) as archive:
                archive.chunk_gaps()
                n = archive.n_checkpoints
                t = np.arange(n)
                ok = n >= counted and np.array_equal(archive.epochs, t + 1)
                for layer, sign in (("a", 1), ("b", -1)):
                    blocks = [block.values.copy() for block in archive.iter_activations(layer)]
                    values = np.concatenate(blocks).reshape(n, -1)
                    ok = ok and bool(np.all(values == sign * t[:, None]))
                status = 0 if ok else 1
        except BaseException:
            status = 1
        os._exit(status)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "stalled", time.monotonic() - started
        time.sleep(0.005)
    verdict = "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
    return verdict, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=1500)
    parser.add_argument("--appends", type=int, default=3000)
    parser.add_argument("--row-bytes", type=int, default=0, help="one big layer (0: soak)")
    parser.add_argument("--between", action="store_true", help="also cut between writes")
    parser.add_argument("--timeout", type=float, default=4.0)
    parser.add_argument("--keep", type=Path, default=None, help="folder for failing files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        copy, operations = record(workdir, args.first, args.appends, args.row_bytes)
        groups: list[list[tuple]] = [[]]
        for operation in operations:
            groups[-1].append(operation)
            if operation[0] == "returned":
                groups.append([])
        writes = [op for op in operations if op[0] == "write"]
        root_header = writes[-1][1]  # each append ends with the root's count

        def rewrites_index(group: list[tuple]) -> bool:
            return any(
                op[0] == "truncate"
                or (op[0] == "write" and op[2][:4] in INDEX_SIGNATURES and op[1] != root_header)
                for op in group
            )

        state = workdir / "state.h5"
        cut = workdir / "cut.h5"
        shutil.copyfile(copy, state)
        counted, outcomes = args.first, {"between": {}, "inside": {}}
        fd = os.open(state, os.O_RDWR)
        for group in groups:
            replayed = rewrites_index(group)
            for operation in group:
                if operation[0] == "returned":
                    counted = operation[1] + 1
                    continue
                if operation[0] == "truncate":
                    os.ftruncate(fd, operation[1])
                    continue
                _, offset, data = operation
                if replayed:
                    for boundary in range((offset // PAGE + 1) * PAGE, offset + len(data), PAGE):
                        shutil.copyfile(state, cut)
                        with open(cut, "r+b") as file:
                            file.seek(offset)
                            file.write(data[: boundary - offset])
                        report(
                            cut,
                            counted,
                            args,
                            outcomes["inside"],
                            f"{offset}+{len(data)} {data[:4]!r} cut at {boundary}",
                        )
                os.pwrite(fd, data, offset)
                if replayed and args.between:
                    report(state, counted, args, outcomes["between"], f"after {offset}")
        os.close(fd)
    print(
        f"{len(writes)} writes over {args.appends} appends from {args.first},"
        f" {sum(map(rewrites_index, groups))} of them rewriting index metadata"
    )
    for where, counts in outcomes.items():
        print(f"cut {where} writes: {dict(sorted(counts.items()))}")


def report(path: Path, counted: int, args: argparse.Namespace, counts: dict, what: str) -> None:
    verdict, seconds = read_back(path, counted, args.timeout)
    counts[verdict] = counts.get(verdict, 0) + 1
    if verdict != "ok":
        print(f"{verdict} ({seconds:.1f} s): {counted} counted, write {what}", flush=True)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.keep / f"{verdict}-{counted}-{sum(counts.values())}.h5")


if __name__ == "__main__":
    main()
