"""Many runs at once: collect archives, analyse them in parallel, compare groups.

>>> from dynatrain.analysis import Settings
>>> from dynatrain.batch import collect_runs, analyze_runs, group_summary
>>> runs = collect_runs(["runs/"])  # doctest: +SKIP
>>> records = analyze_runs(runs, Settings(surrogates=99), jobs=4)  # doctest: +SKIP
>>> summary = group_summary(records, ["dataset"])  # doctest: +SKIP

A *record* is the JSON object of one run: :meth:`AnalysisResult.to_dict` for a run
that was analysed, ``{"run": path, "error": "<one line>"}`` for one that failed.
Records always come back in input order, whatever the number of workers and the
order in which they finish.

Every run is analysed with the same ``Settings`` (``seed`` included), so a run's
record is exactly what ``dynatrain analyze RUN`` gives for it, and a run's numbers
do not change when the inputs are reordered, renamed or spread over other workers.
Only the surrogate p-values draw random numbers; reusing the seed across runs applies
the same permutations to different data, which leaves each run's p-value valid and, for
independent runs, the p-values independent.

Groups are compared on the raw integration and on ``integration_corrected``, the
exponent corrected for the finite-size bias of DFA at each run's own length: runs of
different lengths are comparable on the corrected one only, and the summary warns
when their lengths differ.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import stat
import threading
from collections import deque
from collections.abc import (
    Callable,
    Generator,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, TextIO

import numpy as np

from dynatrain import defaults
from dynatrain.analysis import AnalysisResult, Settings, analyze
from dynatrain.archive.format import ZARR_SUFFIXES, is_url
from dynatrain.archive.storage import local_path
from dynatrain.errors import DynatrainError, InputError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "GROUP_MEASURES",
    "MAX_COMPARED_GROUPS",
    "MISSING",
    "Comparison",
    "Group",
    "GroupSummary",
    "MeasureStats",
    "analyze_or_error",
    "analyze_runs",
    "check_group_keys",
    "collect_runs",
    "default_jobs",
    "group_summary",
    "iter_analyses",
    "measure_value",
    "measure_values",
    "result_or_error",
    "smallest_p_value",
    "unconverged_runs",
]

#: File and directory suffixes searched for in a directory given as a run.
ARCHIVE_SUFFIXES = (".h5", ".hdf5", ".zarr")
_ZARR_SUFFIX = ZARR_SUFFIXES[0]
#: Measures summarised per group and compared between groups (dotted JSON paths).
GROUP_MEASURES = (
    "integration",
    "integration_corrected",
    "integration_global",
    "synchrony",
    "metastability",
    "stability_index",
    "style.spearman",
    "convergence.epoch",
    "convergence.lead_epochs",
)
#: Group value of a run whose metadata lacks a ``--group-by`` key.
MISSING = "(missing)"
#: Most groups whose pairs are compared: k groups make k (k - 1) / 2 pairs, each compared
#: on every measure (20 groups: 190 pairs, 1520 tests). Above it the groups are summarised,
#: not compared, with a warning: pairs by the thousand are a key that differs by run.
MAX_COMPARED_GROUPS = 20
#: Thread-pool sizes of the numerical libraries, pinned to 1 in worker processes:
#: the parallelism is one run per process, and more threads would oversubscribe.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_DASK_MISSING = "--scheduler dask needs Dask, which is not installed: pip install 'dynatrain[dask]'"


# -- which runs ----------------------------------------------------------------------------------


def collect_runs(
    specs: Iterable[str],
    *,
    stdin: TextIO | BinaryIO | None = None,
    null: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Expand the ``RUN...`` arguments of ``batch`` into archive paths.

    Parameters
    ----------
    specs : iterable of str
        Each one a path, a glob pattern (``runs/*/seed-?.h5``, ``**`` included), a
        directory (searched recursively for ``.h5``, ``.hdf5`` and ``.zarr``; a Zarr
        store is one run and is not searched), an fsspec URL (``s3://bucket/sweep/``
        or ``s3://bucket/sweep/**/*.zarr``: a prefix is searched and a glob expanded
        in the same way, through fsspec listings; ``file://`` URLs and fsspec chains
        are kept as given), or ``-``: paths from ``stdin``, one a line, blank lines
        ignored, each expanded the same way.
    stdin : text or binary stream, optional
        Where ``-`` reads from. Bytes (a binary stream, or a text stream's ``buffer``)
        are decoded as file names are, so a name that is not UTF-8 survives.
    null : bool
        Paths on ``stdin`` are separated by NUL characters, not newlines (as ``find
        -print0`` writes them and ``xargs -0`` reads them): a name may then hold a
        newline. Empty entries are skipped; nothing else is stripped.
    storage_options : mapping, optional
        fsspec storage options for the listings of URLs (see
        :mod:`dynatrain.archive.storage`).

    Returns
    -------
    list of str
        Paths as given or as found, in input order (sorted within a glob or a
        directory), each archive once (the first spelling of a file is kept).
        A path that does not exist is kept: its analysis reports it. So is a path
        that is not a regular file or a folder (a FIFO named ``b.h5``): it is never
        opened, and its analysis reports that (:func:`analyze_or_error`).

    Raises
    ------
    InputError
        If a glob matches nothing, a directory holds no archive or there is no run at
        all: a typo should stop the batch before it runs, not shrink it silently.

    Notes
    -----
    Globs and directories are expanded without opening any file, following links to
    directories but entering each directory (by device and inode) at most once per
    ``**`` or directory search: a link back up the tree (``runs/a/up -> ..``) cannot
    make the expansion loop or grow exponentially. In object storage, only listings
    are read, and a Zarr store (a prefix ending in ``.zarr`` or holding ``zarr.json``
    or ``.zgroup``) is never listed inside: the cost is one listing per prefix that
    leads to runs, whatever the number of chunks.
    """
    specs = list(specs)
    if null and "-" not in specs:
        raise InputError("-0 (--null) reads NUL-separated paths from stdin: give - as a RUN")
    runs: dict[str, str] = {}  # identity of the archive -> path as given
    for spec in _with_stdin(specs, stdin, null):
        found = _expand_url(spec, storage_options) if _is_remote(spec) else _expand(spec)
        for path in found:
            runs.setdefault(_identity(path), path)
    if not runs:
        raise InputError("no run to analyse (stdin gave no path)")
    return list(runs.values())


def _with_stdin(specs: Iterable[str], stdin: TextIO | BinaryIO | None, null: bool) -> Iterator[str]:
    for spec in specs:
        if spec != "-":
            yield spec
        elif stdin is None:
            raise InputError("'-' reads paths from stdin, but none was given")
        else:
            yield from _stdin_paths(stdin, null)


def _stdin_paths(stdin: TextIO | BinaryIO, null: bool) -> list[str]:
    """The paths on ``stdin``: NUL-separated with ``null``, else one a line."""
    data: str | bytes = getattr(stdin, "buffer", stdin).read()
    text = os.fsdecode(data) if isinstance(data, bytes) else data
    if null:
        return [path for path in text.split("\0") if path]
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _expand(spec: str) -> list[str]:
    if is_url(spec):  # a file:// URL or an fsspec chain: opened as given
        return [spec]
    if os.path.isdir(spec) and not _is_zarr_store(spec):
        found = _archives_below(spec)
        if not found:
            raise InputError(
                f"{spec}: no {', '.join(ARCHIVE_SUFFIXES)} archive in this directory"
                " (searched recursively)"
            )
        return found
    if os.path.lexists(spec) or not glob.has_magic(spec):
        return [spec]
    matches = sorted(_glob(spec))
    if not matches:
        raise InputError(f"{spec}: no file matches this pattern")
    return [path for match in matches for path in _expand(match)]


def _is_zarr_store(path: str) -> bool:
    return path.rstrip(os.sep).endswith(".zarr") or any(
        os.path.exists(os.path.join(path, name)) for name in ("zarr.json", ".zgroup")
    )


def _directory_key(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the directory ``path`` leads to (links followed); None if none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None


def _entries(folder: str) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` sorted by name; none if it cannot be listed."""
    try:
        with os.scandir(folder or os.curdir) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError:
        return []


def _is_directory(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows a link: a linked folder is searched too
    except OSError:
        return False


def _archives_below(directory: str) -> list[str]:
    """Archives below ``directory``, folder by folder (depth first, names sorted)."""
    found = []
    entered: set[tuple[int, int]] = set()
    stack = [directory]
    while stack:
        folder = stack.pop()
        key = _directory_key(folder)
        if key is None or key in entered:  # a link back to a folder already searched
            continue
        entered.add(key)
        subfolders, names = [], []
        for entry in _entries(folder):
            if not _is_directory(entry):
                if entry.name.endswith(ARCHIVE_SUFFIXES):
                    names.append(entry.name)
            elif _is_zarr_store(entry.path):
                names.append(entry.name)  # one run, not searched
            else:
                subfolders.append(entry.path)
        found += [os.path.join(folder, name) for name in names]
        stack += reversed(subfolders)
    return found


def _glob(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, with ``**`` entering each directory once.

    Python's ``glob`` follows every link to a directory under ``**``, so two links to
    ``..`` make it enumerate an exponential number of paths. Here each ``**``
    component enters a directory (by device and inode) at most once, whichever link
    leads there. Hidden names (a leading ``.``) match only a pattern that starts with
    ``.``, and ``**`` does not enter hidden folders, as in ``glob``.
    """
    separators = os.sep + (os.altsep or "")
    drive, rest = os.path.splitdrive(pattern)
    root = drive + rest[: len(rest) - len(rest.lstrip(separators))]
    parts = [part for part in re.split(f"[{re.escape(separators)}]+", rest) if part]
    paths = [root]
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        matched: list[str] = []
        if part == "**":
            entered: set[tuple[int, int]] = set()  # shared by every start of this `**`
            for path in paths:
                matched += _below(path, entered, with_files=last)
        elif glob.has_magic(part):
            for path in paths:
                matched += [
                    os.path.join(path, entry.name)
                    for entry in _entries(path)
                    if fnmatch.fnmatch(entry.name, part)
                    and (part.startswith(".") or not entry.name.startswith("."))
                    and (last or _is_directory(entry))
                ]
        else:
            for path in paths:
                candidate = os.path.join(path, part)
                if os.path.lexists(candidate) if last else os.path.isdir(candidate):
                    matched.append(candidate)
        paths = matched
    return [path for path in paths if path]


def _below(path: str, entered: set[tuple[int, int]], *, with_files: bool) -> list[str]:
    """``path`` and every folder below it (with ``with_files``, files too), for ``**``.

    Folders whose ``(st_dev, st_ino)`` is in ``entered`` are skipped, and the ones
    entered are added to it.
    """
    found = []
    stack = [path]
    while stack:
        folder = stack.pop()
        key = _directory_key(folder or os.curdir)
        if key is None or key in entered:
            continue
        entered.add(key)
        found.append(folder)
        subfolders = []
        for entry in _entries(folder):
            if entry.name.startswith("."):
                continue
            child = os.path.join(folder, entry.name)
            if _is_directory(entry):
                subfolders.append(child)
            elif with_files:
                found.append(child)
        stack += reversed(subfolders)
    return found


def _identity(path: str) -> str:
    return path.rstrip("/") if is_url(path) else os.path.realpath(path)


# -- runs in object storage ---------------------------------------------------------------------

#: Documents that make a prefix a Zarr store (format 3, format 2).
_ZARR_ROOTS = ("zarr.json", ".zgroup")


def _is_remote(spec: str) -> bool:
    """Whether ``spec`` is a URL whose listings come from fsspec (not file://, no chain)."""
    return is_url(spec) and "::" not in spec and local_path(spec) is None


def _expand_url(spec: str, storage_options: Mapping[str, Any] | None) -> list[str]:
    """The runs a URL names: itself, those below its prefix, or its glob's matches.

    Found runs are spelt as ``spec`` is (scheme, credentials and all) up to where its
    pattern starts, and continue with the keys as listed.
    """
    from dynatrain.archive.storage import filesystem, redact

    scheme, _, rest = spec.partition("://")
    parts = rest.rstrip("/").split("/")
    magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), None)
    if magic == 0:
        raise InputError(f"{redact(spec)}: a glob in the bucket name is not expanded")
    base = f"{scheme}://{'/'.join(parts[:magic])}"
    fs, base_path = filesystem(base, storage_options)
    listing = _Listing(fs, base_path.rstrip("/"), spec)
    if magic is None:
        if spec.rstrip("/").endswith(ARCHIVE_SUFFIXES) or listing.is_store(""):
            return [spec]
        if not listing.exists(""):
            return [spec]  # its analysis says it is missing
        found = listing.archives_below("")
        if not found:
            raise InputError(
                f"{redact(spec)}: no {', '.join(ARCHIVE_SUFFIXES)} archive under this prefix"
                " (searched recursively)"
            )
    else:
        if listing.exists_literally(parts[magic:]):  # a key named with [ ] * ?
            return [spec]
        found = []
        for relative, is_folder in sorted(listing.glob(parts[magic:])):
            if (
                is_folder
                and not relative.endswith(ARCHIVE_SUFFIXES)
                and not listing.is_store(relative)
            ):
                found += listing.archives_below(relative)
            else:
                found.append(relative)
        if not found:
            raise InputError(f"{redact(spec)}: no archive matches this pattern")
    return [f"{base}/{relative}" for relative in found]


class _Listing:
    """Listings of one fsspec file system below ``base``, by path relative to it."""

    def __init__(self, fs: Any, base: str, spec: str) -> None:
        self.fs, self.base, self.spec = fs, base, spec
        self._cache: dict[str, list[tuple[str, bool]]] = {}

    def _path(self, relative: str) -> str:
        return f"{self.base}/{relative}" if relative else self.base

    def entries(self, relative: str) -> list[tuple[str, bool]]:
        """``(name, is_folder)`` of what is directly below, sorted by name."""
        if relative in self._cache:
            return self._cache[relative]
        path = self._path(relative).rstrip("/")
        try:
            listed = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            listed = []
        except Exception as exc:
            from dynatrain.archive.storage import redact

            raise InputError(
                f"{redact(self.spec)}: cannot list {redact(path)} ({_first_line(exc)})"
            ) from None
        entries: dict[str, bool] = {}
        for entry in listed:
            name = str(entry.get("name", "")).rstrip("/")
            if name == path or not name.startswith(path + "/"):
                continue  # the prefix itself (an empty key component lists it again)
            name = name[len(path) + 1 :]
            if name and "/" not in name:
                folder = entry.get("type") == "directory"
                entries[name] = entries.get(name, False) or folder
        result = sorted(entries.items())
        self._cache[relative] = result
        return result

    def exists(self, relative: str) -> bool:
        return bool(self.entries(relative))

    def exists_literally(self, parts: list[str]) -> bool:
        parent, name = "/".join(parts[:-1]), parts[-1]
        return any(entry == name for entry, _ in self.entries(parent))

    def is_store(self, relative: str) -> bool:
        """Whether the prefix is a Zarr store: its name, else a root document in it."""
        if relative.endswith(_ZARR_SUFFIX):
            return True
        return any(name in _ZARR_ROOTS for name, _ in self.entries(relative))

    def archives_below(self, relative: str) -> list[str]:
        """Archives below a prefix (depth first, names sorted); stores are not entered."""
        found = []
        stack = [relative]
        while stack:
            folder = stack.pop()
            if folder != relative and self.is_store(folder):
                found.append(folder)
                continue
            subfolders = []
            for name, is_folder in self.entries(folder):
                child = f"{folder}/{name}" if folder else name
                if name.endswith(ARCHIVE_SUFFIXES):
                    found.append(child)
                elif is_folder:
                    subfolders.append(child)
            stack += reversed(subfolders)
        return list(dict.fromkeys(found))

    def glob(self, parts: list[str]) -> list[tuple[str, bool]]:
        """``(relative path, is_folder)`` of what the pattern ``parts`` matches.

        As :func:`_glob`: hidden names match only a pattern that starts with ``.``,
        ``**`` matches zero or more folders and enters no hidden folder, and, unlike
        locally, no Zarr store.
        """
        paths: list[tuple[str, bool]] = [("", True)]
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            matched: list[tuple[str, bool]] = []
            for path, _ in paths:
                if path and self.is_store(path):
                    continue  # a run: its own keys are never matched
                if part == "**":
                    matched += self._below(path, with_files=last)
                    continue
                for name, is_folder in self.entries(path):
                    hidden = name.startswith(".") and not part.startswith(".")
                    if fnmatch.fnmatchcase(name, part) and not hidden and (last or is_folder):
                        matched.append((f"{path}/{name}" if path else name, is_folder))
            paths = matched
        return [(path, is_folder) for path, is_folder in dict.fromkeys(paths) if path]

    def _below(self, relative: str, *, with_files: bool) -> list[tuple[str, bool]]:
        """``relative`` and the folders below it (with ``with_files``, files too), for ``**``."""
        found = []
        stack = [relative]
        while stack:
            folder = stack.pop()
            found.append((folder, True))
            if folder != relative and self.is_store(folder):
                continue  # a run: matched, not entered
            subfolders = []
            for name, is_folder in self.entries(folder):
                if name.startswith("."):
                    continue
                child = f"{folder}/{name}" if folder else name
                if is_folder:
                    subfolders.append(child)
                elif with_files:
                    found.append((child, False))
            stack += reversed(subfolders)
        return found


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- running the analyses --------------------------------------------------------------------------


def default_jobs() -> int:
    """Cores this process may use (its CPU affinity where the system tells it)."""
    return defaults.available_cores()


def analyze_or_error(run: str, settings: Settings, *, detail: bool = False) -> dict[str, Any]:
    """Analyse one run; never raises (what runs in a worker).

    Parameters
    ----------
    run : str
        A path or URL; a URL is read here, directly from its store (with the storage
        options in effect, see :func:`~dynatrain.archive.storage.use_storage_options`).
    settings : Settings
    detail : bool
        Keep the ``detail`` the figures need (``AnalysisResult.to_dict(detail=True)``).

    Returns
    -------
    dict
        ``AnalysisResult.to_dict()``, or ``{"run": run, "error": message}`` where the
        message is the one line of a :class:`DynatrainError`, or ``"internal error:
        <type>: <first line>"`` for any other exception. A path that is neither a
        regular file nor a folder (a FIFO, a device) is not opened, which could block
        forever: its record says what it is. Every string in the record has its
        credentials redacted (``run`` too: ``s3://***@bucket/...``).
    """
    from dynatrain.archive.storage import redact_data

    outcome = result_or_error(run, settings)
    record = outcome if isinstance(outcome, dict) else outcome.to_dict(detail=detail)
    return redact_data(record)


def result_or_error(run: str, settings: Settings) -> AnalysisResult | dict[str, Any]:
    """Analyse one run: its :class:`AnalysisResult`, or its error record; never raises.

    See :func:`analyze_or_error` for the error record and the paths never opened.
    """
    special = _special_file(run)
    if special is not None:
        return {"run": run, "error": f"{run}: not an archive but a {special}; not opened"}
    try:
        return analyze(run, settings)
    except Exception as exc:  # a worker must report, never crash the batch
        return _error_record(run, exc)


def _with_storage_options(
    task: Callable[[str, Settings], Any],
    storage_options: dict[str, Any],
    run: str,
    settings: Settings,
) -> Any:
    """``task(run, settings)`` with the runs' storage options in effect, in any process."""
    from dynatrain.archive.storage import use_storage_options

    with use_storage_options(storage_options):
        return task(run, settings)


#: What a path is when it is neither a regular file nor a folder.
_SPECIAL_FILES = (
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _special_file(run: str) -> str | None:
    """What ``run`` is if it is a FIFO, device or socket (``stat`` opens nothing)."""
    if is_url(run):
        return None
    try:
        mode = os.stat(run).st_mode
    except (OSError, ValueError):  # missing, a link loop, a NUL in the name: the reader says
        return None
    return next((what for test, what in _SPECIAL_FILES if test(mode)), None)


def _error_record(run: str, exc: BaseException) -> dict[str, Any]:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    if not isinstance(exc, DynatrainError):
        message = f"internal error: {type(exc).__name__}" + (f": {message}" if message else "")
    return {"run": run, "error": message or type(exc).__name__}


def iter_analyses(
    runs: Sequence[str],
    settings: Settings | None = None,
    *,
    jobs: int | None = None,
    scheduler: str = "local",
    dask_address: str | None = None,
    on_done: Callable[[], None] | None = None,
    task: Callable[[str, Settings], Any] = analyze_or_error,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Analyse runs in parallel and yield their records in input order.

    A record is yielded as soon as it and every record before it are done, so output
    can be streamed while later runs are still being analysed.

    Parameters
    ----------
    runs : sequence of str
        Archive paths (see :func:`collect_runs`) or Zarr URLs.
    settings : Settings, optional
        The same for every run.
    jobs : int, optional
        Worker processes (default: :func:`default_jobs`). With 1 (or one run) the
        analyses run in this process. Workers are started with ``spawn``, so a
        script that calls this must guard its entry point with
        ``if __name__ == "__main__":``.
    scheduler : {"local", "dask"}
        ``dask``: run on a Dask cluster, a ``LocalCluster`` of ``jobs`` single-threaded
        worker processes unless ``dask_address`` is given; the archives are read by
        the workers, so their paths must be visible there.
    dask_address : str, optional
        Scheduler of an existing cluster, e.g. ``tcp://host:8786``.
    on_done : callable, optional
        Called with no argument each time a run finishes (in completion order), for
        progress bars.
    task : callable, optional
        What each worker does with one run: ``task(run, settings)``, which must never
        raise (default :func:`analyze_or_error`; :func:`result_or_error` yields the
        :class:`AnalysisResult` objects, ``functools.partial(analyze_or_error,
        detail=True)`` records with ``detail``). A module-level function (or a partial
        of one), so that worker processes can receive it.
    storage_options : mapping, optional
        fsspec storage options of the runs given as URLs (default: those in effect
        here, see :func:`~dynatrain.archive.storage.use_storage_options`), sent to
        the workers with each run: a worker reads its runs directly from their store
        (this process reads none of their data).

    Yields
    ------
    dict
        One record per run (see the module docstring).

    Raises
    ------
    InputError
        For a bad ``jobs`` or ``scheduler``, Dask not installed, or a Dask scheduler
        address that is malformed or cannot be reached (raised before any run is
        analysed). A run's own failure is never raised: it is its record.
    """
    settings = settings or Settings()
    runs = list(runs)
    from dynatrain.archive.storage import current_storage_options

    # Default: those in effect here (use_storage_options), sent on to the workers.
    options = current_storage_options() if storage_options is None else dict(storage_options)
    if options:  # each run is analysed with them in effect, wherever it runs
        task = functools.partial(_with_storage_options, task, options)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    completed: Generator[tuple[int, Any], None, None]
    if scheduler == "dask":
        completed = _on_dask(runs, settings, jobs, dask_address, task)
    elif scheduler != "local":
        raise InputError(f"invalid scheduler {scheduler!r}: use local or dask")
    elif min(jobs, len(runs)) <= 1:
        completed = ((i, task(run, settings)) for i, run in enumerate(runs))
    else:
        completed = _on_process_pool(runs, settings, min(jobs, len(runs)), task)
    with contextlib.closing(completed):
        finished: dict[int, dict[str, Any]] = {}
        next_index = 0
        for index, record in completed:
            if on_done is not None:
                on_done()
            finished[index] = record
            while next_index in finished:
                yield finished.pop(next_index)
                next_index += 1


def analyze_runs(
    runs: Sequence[str], settings: Settings | None = None, **options: Any
) -> list[dict[str, Any]]:
    """The records of all ``runs``, in input order (:func:`iter_analyses` as a list)."""
    return list(iter_analyses(runs, settings, **options))


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Pin the thread pools of child processes started meanwhile to one thread each."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _on_process_pool(
    runs: list[str], settings: Settings, workers: int, task: Callable[[str, Settings], Any]
) -> Generator[tuple[int, Any], None, None]:
    """``(index, record)`` pairs in completion order, from worker processes.

    Each worker analyses one run at a time, so when one dies (killed by the
    out-of-memory killer, say) the run it held is known: that run gets an error
    record naming how the worker died, a new worker takes its place, and the other
    runs go on. (A ``ProcessPoolExecutor`` fails every pending run instead, naming none.)
    Workers ignore Ctrl-C: it is this process's to handle, and on any exit, an
    interrupt included, the workers are stopped.
    """
    context = multiprocessing.get_context("spawn")
    waiting = deque(enumerate(runs))
    pool: list[_Worker] = []
    try:
        for _ in range(workers):
            _start_worker(context, pool)
        for worker in pool:
            _give_run(worker, waiting, settings, task)
        while any(worker.task is not None for worker in pool):
            busy = [worker for worker in pool if worker.task is not None]
            multiprocessing.connection.wait(
                [worker.connection for worker in busy]
                + [worker.process.sentinel for worker in busy]
            )
            for worker in busy:
                assert worker.task is not None
                index, run = worker.task
                try:
                    if not worker.connection.poll():
                        if worker.process.is_alive():
                            continue  # still working
                        raise EOFError
                    done_index, record = worker.connection.recv()
                except (EOFError, OSError):  # it died without an answer
                    worker.process.join()
                    pool.remove(worker)
                    worker.connection.close()
                    yield index, _died_record(run, worker.process.exitcode)
                    if waiting:
                        _give_run(_start_worker(context, pool), waiting, settings, task)
                    continue
                worker.task = None
                yield done_index, record
                _give_run(worker, waiting, settings, task)
    finally:
        _stop(pool)


@dataclass
class _Worker:
    """A worker process, the parent's end of its pipe and the run it holds."""

    process: Any
    connection: Any
    task: tuple[int, str] | None = None


def _start_worker(context: Any, pool: list[_Worker]) -> _Worker:
    """Start a worker and add it to ``pool`` (before an interrupt can land in between)."""
    ours, theirs = context.Pipe(duplex=True)
    process = context.Process(target=_work, args=(theirs,), daemon=True)
    if os.name == "posix":
        # Started first: starting it unblocks SIGINT in this thread (see below).
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    # Ctrl-C reaches every process of the terminal's foreground group. Held back while
    # the child starts: the child then starts with SIGINT blocked (the mask survives
    # the exec), so it prints no traceback of an import it was interrupted in, and
    # this process is not interrupted between starting the child and handing it its
    # start-up data (the child would fail on a truncated pickle).
    with _single_threaded_children(), _interrupts_deferred():
        process.start()
        worker = _Worker(process, ours)
        pool.append(worker)
    theirs.close()
    return worker


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back during the block and raise ``KeyboardInterrupt`` after it.

    SIGINT is blocked in this thread (children started meanwhile inherit the mask),
    and, in the main thread, a SIGINT that another thread receives is noted instead of
    raising in the middle of the block. Outside the main thread, or without
    ``pthread_sigmask``, only what can be done is.
    """
    interrupted: list[int] = []
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_handler = signal.signal(
            signal.SIGINT, lambda signum, _: interrupted.append(signum)
        )
    masked = hasattr(signal, "pthread_sigmask")
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masked else None
    try:
        yield
    finally:
        if previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        if in_main_thread:  # None: a handler not set from Python, taken as the default
            signal.signal(
                signal.SIGINT, signal.SIG_DFL if previous_handler is None else previous_handler
            )
    if interrupted:
        raise KeyboardInterrupt


def _give_run(
    worker: _Worker,
    waiting: deque[tuple[int, str]],
    settings: Settings,
    task: Callable[[str, Settings], Any],
) -> None:
    """Send the next waiting run to ``worker`` (nothing if none is left)."""
    if not waiting:
        return
    index, run = waiting.popleft()
    worker.task = (index, run)
    with contextlib.suppress(OSError):  # a worker already dead: its sentinel says so
        worker.connection.send((index, run, settings, task))


def _work(connection: Any) -> None:
    """A worker process: analyse the runs it is sent until ``None`` or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, run, settings, analyse = task
        connection.send((index, analyse(run, settings)))


def _died_record(run: str, exitcode: int | None) -> dict[str, Any]:
    """The record of a run whose worker process died while analysing it (redacted)."""
    from dynatrain.archive.storage import redact_data

    return redact_data({"run": run, "error": _died(run, exitcode)})


def _died(run: str, exitcode: int | None) -> str:
    """The error of a run whose worker process died while analysing it."""
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
        if exitcode == -signal.SIGKILL:
            how += ", as the out-of-memory killer does"
    else:
        how = f"exit status {exitcode}"
    return f"{run}: the worker process analysing this run died ({how}); no result"


def _stop(pool: list[_Worker]) -> None:
    """Stop every worker: idle ones are asked to finish, busy ones are terminated."""
    for worker in pool:
        if worker.task is None:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        else:
            worker.process.terminate()
    for worker in pool:
        worker.process.join(timeout=5)
        if worker.process.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            worker.process.kill()
            worker.process.join()
        worker.connection.close()


def _on_dask(
    runs: list[str],
    settings: Settings,
    jobs: int,
    address: str | None,
    task: Callable[[str, Settings], Any],
) -> Generator[tuple[int, Any], None, None]:
    """``(index, record)`` pairs in completion order, from a Dask cluster.

    Each task is a run's path or URL: the worker reads the run itself, and sends back
    only its record.
    """
    try:
        import distributed
    except ImportError as exc:
        raise InputError(_DASK_MISSING) from exc
    with contextlib.ExitStack() as stack:
        if address is None:
            cluster: Any = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=max(1, min(jobs, len(runs))),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
        else:
            _check_dask_address(address)
            cluster = address
        try:
            client = stack.enter_context(distributed.Client(cluster, timeout="20s"))
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        except ValueError as exc:
            if address is None:
                raise
            raise InputError(_bad_dask_address(address, exc)) from exc
        futures = client.map(task, runs, settings=settings, pure=False)
        index_of = {future.key: i for i, future in enumerate(futures)}
        for future in distributed.as_completed(futures):
            index = index_of[future.key]
            try:
                record = future.result()
            except Exception as exc:  # e.g. KilledWorker
                from dynatrain.archive.storage import redact_data

                record = redact_data(_error_record(runs[index], exc))
            yield index, record


def unconverged_runs(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The runs analysed whose stability index never converged (failed runs left out)."""
    return [
        str(record["run"])
        for record in records
        if "error" not in record and (record.get("convergence") or {}).get("epoch") is None
    ]


def _check_dask_address(address: str) -> None:
    """Raise :class:`InputError` for a scheduler address Dask cannot parse.

    Checked before a ``Client`` is made: besides the clearer message, a ``Client``
    that fails to start on a malformed address can leave Dask's shared event-loop
    runner unusable for the next ``Client`` of the process.
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)  # no scheme: tcp
        get_backend(scheme)  # an unknown scheme raises
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)  # a missing or non-numeric port raises
    except ValueError as exc:
        raise InputError(_bad_dask_address(address, exc)) from exc


def _bad_dask_address(address: str, exc: Exception) -> str:
    return f"invalid Dask scheduler address {address!r} (expected tcp://HOST:PORT): {exc}"


# -- groups ----------------------------------------------------------------------------------------


def measure_value(record: Mapping[str, Any], measure: str) -> float | None:
    """The value of ``measure`` (a dotted path, e.g. ``convergence.lead_epochs``) in a record.

    ``None`` for a failed run, a missing or null value, and NaN.
    """
    value: Any = record
    for key in measure.split("."):
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        value = value[key]
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class MeasureStats:
    """One measure over the runs of one group.

    Attributes
    ----------
    n : int
        Runs with a value (a run whose value is null, e.g. no lead time, is left out).
    mean, sd, median : float or None
        ``sd`` is the sample standard deviation (``ddof=1``); ``None`` below 2 runs.
    ci95 : (float, float) or None
        95% t-interval of the mean, ``mean +/- t(0.975, n - 1) * sd / sqrt(n)``;
        ``None`` below 2 runs.
    """

    n: int
    mean: float | None
    sd: float | None
    median: float | None
    ci95: tuple[float, float] | None


@dataclass(frozen=True)
class Group:
    """The runs that share the values of the ``--group-by`` keys.

    Attributes
    ----------
    label : str
        The values joined with ``" / "`` (``"all runs"`` without keys).
    values : dict
        Key -> metadata value, or :data:`MISSING`.
    members : tuple of int
        Indices of the group's runs in the records.
    runs : tuple of str
        Their paths, as given.
    stats : dict of str to MeasureStats
        One entry per measure of :data:`GROUP_MEASURES`.
    """

    label: str
    values: dict[str, Any]
    members: tuple[int, ...]
    runs: tuple[str, ...]
    stats: dict[str, MeasureStats]


@dataclass(frozen=True)
class Comparison:
    """One measure compared between groups A and B (A comes first in the group order).

    Attributes
    ----------
    measure, group_a, group_b : str
    n_a, n_b : int
        Runs with a value in each group.
    difference : float or None
        ``mean(B) - mean(A)``.
    cohens_d : float or None
        The difference over the pooled sample standard deviation,
        ``sqrt(((n_a - 1) sd_a**2 + (n_b - 1) sd_b**2) / (n_a + n_b - 2))``; ``None`` when
        that is 0 or undefined (fewer than 3 runs in all).
    mann_whitney_u : float or None
        U statistic of B: pairs (b, a) with b > a, plus half the ties.
    p_value : float or None
        Two-sided Mann-Whitney U test (exact for small samples without ties, normal
        approximation otherwise, as ``scipy.stats.mannwhitneyu`` chooses); not adjusted
        for the number of comparisons.
    auroc : float or None
        ``U / (n_a * n_b)``: the probability that a run of B has a larger value than a
        run of A (ties count half). 0.5 is no separation; 0 or 1, complete separation.
    """

    measure: str
    group_a: str
    group_b: str
    n_a: int
    n_b: int
    difference: float | None
    cohens_d: float | None
    mann_whitney_u: float | None
    p_value: float | None
    auroc: float | None


@dataclass
class GroupSummary:
    """Groups of runs, each measure summarised per group and compared between groups.

    Attributes
    ----------
    keys : tuple of str
        The ``--group-by`` metadata keys (empty: one group of all runs).
    measures : tuple of str
    groups : list of Group
        Sorted by their values (numbers before text, :data:`MISSING` last), so the
        order does not depend on the order of the runs.
    comparisons : list of Comparison
        Every pair of groups, for every measure; none above
        :data:`MAX_COMPARED_GROUPS` groups (a warning says so).
    warnings : list of str
    """

    keys: tuple[str, ...]
    measures: tuple[str, ...]
    groups: list[Group]
    comparisons: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def group_rows(self) -> list[dict[str, Any]]:
        """One flat row per group and measure (``groups.csv``)."""
        return [
            {
                "group": group.label,
                **group.values,
                "measure": measure,
                "n": stats.n,
                "mean": stats.mean,
                "sd": stats.sd,
                "median": stats.median,
                "ci95_low": stats.ci95[0] if stats.ci95 else None,
                "ci95_high": stats.ci95[1] if stats.ci95 else None,
            }
            for group in self.groups
            for measure, stats in group.stats.items()
        ]

    def comparison_rows(self) -> list[dict[str, Any]]:
        """One flat row per pair of groups and measure (``comparisons.csv``)."""
        return [asdict(comparison) for comparison in self.comparisons]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``groups.json``."""
        return {
            "group_by": list(self.keys),
            "measures": list(self.measures),
            "groups": [
                {
                    "group": group.label,
                    "values": group.values,
                    "runs": list(group.runs),
                    "measures": {name: asdict(stats) for name, stats in group.stats.items()},
                }
                for group in self.groups
            ],
            "comparisons": self.comparison_rows(),
            "warnings": list(self.warnings),
        }


def group_summary(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str] = (),
    measures: Sequence[str] = GROUP_MEASURES,
) -> GroupSummary:
    """Group the analysed runs by metadata and summarise and compare the groups.

    Parameters
    ----------
    records : sequence of dict
        Run records (:func:`iter_analyses`); failed runs are left out.
    keys : sequence of str
        Metadata keys; a run that lacks one (or has it null) goes to the group
        :data:`MISSING` for that key, with a warning. A value that is a list or a
        mapping groups by its JSON text (keys sorted) and is labelled with it.
    measures : sequence of str
        Dotted paths into the records.

    Returns
    -------
    GroupSummary
    """
    from scipy import stats as scipy_stats  # ~1 s to import: only when summarising

    keys = tuple(keys)
    analysed = [record.get("metadata") or {} for record in records if "error" not in record]
    for key in keys:
        if analysed and all(metadata.get(key) is None for metadata in analysed):
            raise InputError(_unknown_key(key, {k for metadata in analysed for k in metadata}))
    members: dict[tuple[Hashable, ...], list[int]] = {}
    shown: dict[tuple[Hashable, ...], tuple[Any, ...]] = {}  # values as the group shows them
    lacking: dict[str, list[str]] = {key: [] for key in keys}
    for index, record in enumerate(records):
        if "error" in record:
            continue
        metadata = record.get("metadata") or {}
        values = []
        for key in keys:
            if metadata.get(key) is None:
                lacking[key].append(record["run"])
            values.append(MISSING if metadata.get(key) is None else metadata[key])
        group_key = tuple(_group_key(value) for value in values)
        members.setdefault(group_key, []).append(index)
        shown.setdefault(group_key, tuple(map(_canonical, values)))

    groups = []
    for group_key in sorted(members, key=lambda group_key: _group_order(shown[group_key])):
        group_values, indices = shown[group_key], members[group_key]
        columns = {measure: measure_values(records, indices, measure) for measure in measures}
        groups.append(
            Group(
                label=" / ".join(map(_value_text, group_values)) if keys else "all runs",
                values=dict(zip(keys, group_values, strict=True)),
                members=tuple(indices),
                runs=tuple(records[i]["run"] for i in indices),
                stats={m: _measure_stats(column, scipy_stats) for m, column in columns.items()},
            )
        )
    warnings = [
        f"{len(runs)} run(s) without metadata {key!r}, grouped as {MISSING}: "
        + ", ".join(runs[:5])
        + (", ..." if len(runs) > 5 else "")
        for key, runs in lacking.items()
        if runs
    ]
    warnings += _length_warning(records, [i for group in members.values() for i in group])
    comparisons = []
    if len(groups) <= MAX_COMPARED_GROUPS:
        comparisons = [
            _compare(measure, a, b, records, scipy_stats)
            for i, a in enumerate(groups)
            for b in groups[i + 1 :]
            for measure in measures
        ]
    else:
        pairs = len(groups) * (len(groups) - 1) // 2
        warnings.append(
            f"{len(groups)} groups by {', '.join(keys)}: {pairs} pairs of groups is more than"
            f" dynatrain compares (pairs are compared for up to {MAX_COMPARED_GROUPS} groups);"
            " groups summarised, not compared (is it a key that differs from run to run?)"
        )
    return GroupSummary(keys, tuple(measures), groups, comparisons, warnings)


def _analysed_points(record: Mapping[str, Any]) -> int | None:
    """Length of the series a run's DFA was measured on (None if the record lacks it)."""
    timeseries = record.get("timeseries")
    epochs = timeseries.get("epoch") if isinstance(timeseries, Mapping) else None
    return None if epochs is None else len(epochs)


def _length_warning(records: Sequence[Mapping[str, Any]], indices: Iterable[int]) -> list[str]:
    """A warning when the analysed runs differ in length (their raw integration then does)."""
    lengths = {n for n in (_analysed_points(records[i]) for i in indices) if n is not None}
    if len(lengths) < 2:
        return []
    return [
        f"runs differ in length ({min(lengths)} to {max(lengths)} analysed points): DFA reads"
        " shorter series higher, so compare integration_corrected (corrected for the"
        " finite-size bias at each run's length), not integration"
    ]


def check_group_keys(runs: Sequence[str], keys: Sequence[str]) -> None:
    """Refuse a ``--group-by`` key that no run's metadata has, before any run is analysed.

    Reads the metadata of the local runs (attributes only, no data), each only until
    every key has been seen; a run that cannot be opened is skipped (its analysis
    reports it), and so is a run in object storage, which only its worker reads
    (:func:`group_summary` refuses the key after the analysis).

    Raises
    ------
    InputError
        One line naming the key, with the closest keys the runs do have.
    """
    from dynatrain.archive.reader import open_archive

    missing = {key for key in keys}
    available: set[str] = set()
    for run in runs:
        if not missing:
            return
        if _special_file(run) is not None or is_url(run):
            # A FIFO could block; a run in object storage is read by its worker only (the
            # summary refuses the key afterwards if no analysed run has it).
            continue
        try:
            with open_archive(run) as archive:
                metadata = dict(archive.metadata)
        except Exception:
            continue
        available.update(metadata)
        missing -= {key for key in missing if metadata.get(key) is not None}
    if missing and available:  # none readable: each run's row says why
        raise InputError(_unknown_key(sorted(missing)[0], available))


def _unknown_key(key: str, available: Iterable[str]) -> str:
    """``--group-by 'datset': no run has this metadata key; did you mean 'dataset'? ...``."""
    from dynatrain._format import did_you_mean

    available = sorted(available)
    keys = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
    hint = did_you_mean(key, available)
    return f"--group-by {key!r}: no run has this metadata key{hint} (keys: {keys})"


def smallest_p_value(n_a: int, n_b: int) -> float:
    """Smallest two-sided Mann-Whitney p that groups of ``n_a`` and ``n_b`` runs can give.

    Reached when every run of one group is above every run of the other (no ties):
    ``2 / C(n_a + n_b, n_a)``, capped at 1; with 3 runs against 3 it is 0.1, so such
    groups can never reach p < 0.1. ``scipy.stats.mannwhitneyu`` computes this exact p
    for samples this small.

    Examples
    --------
    >>> smallest_p_value(3, 3), smallest_p_value(4, 4)
    (0.1, 0.02857142857142857)
    """
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def _group_key(value: Any) -> Hashable:
    """A hashable, stable stand-in for one metadata value, to group runs on.

    Metadata may hold a list or a mapping (an HDF5 array attribute, a JSON object),
    which cannot be a dict key: it is replaced by its JSON text (keys sorted), so equal
    values group together. ``True`` and ``1``, equal in Python, stay apart, and NaN,
    which equals nothing, groups with NaN.
    """
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return ("json", json.dumps(value, sort_keys=True, default=_json_default))
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    try:
        hash(value)
    except TypeError:  # any other unhashable value: its text
        return ("text", str(value))
    return value


def _canonical(value: Any) -> Any:
    """A list or mapping as its key's JSON reads back (keys sorted, NumPy as lists)."""
    key = _group_key(value)
    if isinstance(key, tuple) and key[:1] == ("json",):
        return json.loads(key[1])
    return value


def _json_default(value: Any) -> Any:
    """JSON for NumPy values inside a metadata value (anything else: its text)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _value_text(value: Any) -> str:
    """A metadata value in a group label: a list or mapping as compact JSON."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return str(value)


def _group_order(values: tuple[Any, ...]) -> tuple[tuple[int, int, Any], ...]:
    """Sort key: numbers by value, then text (lists and mappings by their JSON), then MISSING."""
    order: list[tuple[int, int, Any]] = []
    for value in values:
        if isinstance(value, str) and value == MISSING:
            order.append((2, 0, ""))
        elif (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ):
            order.append((0, 0, value))
        else:
            order.append((1, 0, _value_text(value)))
    return tuple(order)


def measure_values(
    records: Sequence[Mapping[str, Any]], indices: Iterable[int], measure: str
) -> np.ndarray:
    """The non-null values of ``measure`` in the records at ``indices``, shape (n,)."""
    values = (measure_value(records[i], measure) for i in indices)
    return np.array([value for value in values if value is not None], dtype=np.float64)


def _measure_stats(values: np.ndarray, scipy_stats: Any) -> MeasureStats:
    n = len(values)
    if n == 0:
        return MeasureStats(0, None, None, None, None)
    mean, median = float(values.mean()), float(np.median(values))
    if n < 2:
        return MeasureStats(n, mean, None, median, None)
    sd = float(values.std(ddof=1))
    half_width = float(scipy_stats.t.ppf(0.5 + defaults.CI_LEVEL / 2, n - 1)) * sd / math.sqrt(n)
    return MeasureStats(n, mean, sd, median, (mean - half_width, mean + half_width))


def _compare(
    measure: str,
    group_a: Group,
    group_b: Group,
    records: Sequence[Mapping[str, Any]],
    scipy_stats: Any,
) -> Comparison:
    a = measure_values(records, group_a.members, measure)
    b = measure_values(records, group_b.members, measure)
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return Comparison(measure, group_a.label, group_b.label, n_a, n_b, *[None] * 5)
    difference = float(b.mean() - a.mean())
    cohens_d = None
    if n_a + n_b > 2:
        squares = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
        pooled_variance = squares / (n_a + n_b - 2)
        if pooled_variance > 0:
            cohens_d = difference / math.sqrt(pooled_variance)
    u_statistic, p_value = scipy_stats.mannwhitneyu(b, a, alternative="two-sided")
    return Comparison(
        measure,
        group_a.label,
        group_b.label,
        n_a,
        n_b,
        difference,
        cohens_d,
        float(u_statistic),
        float(p_value) if math.isfinite(p_value) else None,
        float(u_statistic) / (n_a * n_b),
    )
