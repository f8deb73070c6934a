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
Only the surrogate p-values and the bootstrap CI draw random numbers; reusing the
seed across runs applies the same permutations to different data, which leaves each
run's p-value valid and, for independent runs, the p-values independent.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np

from dynatrain import defaults
from dynatrain.analysis import Settings, analyze
from dynatrain.archive.format import is_url
from dynatrain.errors import DynatrainError, InputError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "GROUP_MEASURES",
    "MISSING",
    "Comparison",
    "Group",
    "GroupSummary",
    "MeasureStats",
    "analyze_or_error",
    "analyze_runs",
    "collect_runs",
    "default_jobs",
    "group_summary",
    "iter_analyses",
    "measure_value",
    "measure_values",
    "unconverged_runs",
]

#: File and directory suffixes searched for in a directory given as a run.
ARCHIVE_SUFFIXES = (".h5", ".hdf5", ".zarr")
#: Measures summarised per group and compared between groups (dotted JSON paths).
GROUP_MEASURES = (
    "integration",
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


def collect_runs(specs: Iterable[str], *, stdin: TextIO | None = None) -> list[str]:
    """Expand the ``RUN...`` arguments of ``batch`` into archive paths.

    Parameters
    ----------
    specs : iterable of str
        Each one a path, a glob pattern (``runs/*/seed-?.h5``, ``**`` included), a
        directory (searched recursively for ``.h5``, ``.hdf5`` and ``.zarr``; a Zarr
        store is one run and is not searched), an fsspec URL of a Zarr store (kept as
        given), or ``-``: paths from ``stdin``, one a line, blank lines ignored, each
        expanded the same way.
    stdin : text stream, optional
        Where ``-`` reads from.

    Returns
    -------
    list of str
        Paths as given or as found, in input order (sorted within a glob or a
        directory), each archive once (the first spelling of a file is kept).
        A path that does not exist is kept: its analysis reports it.

    Raises
    ------
    InputError
        If a glob matches nothing, a directory holds no archive or there is no run at
        all: a typo should stop the batch before it runs, not shrink it silently.
    """
    runs: dict[str, str] = {}  # identity of the archive -> path as given
    for spec in _with_stdin(specs, stdin):
        for path in _expand(spec):
            runs.setdefault(_identity(path), path)
    if not runs:
        raise InputError("no run to analyse (stdin gave no path)")
    return list(runs.values())


def _with_stdin(specs: Iterable[str], stdin: TextIO | None) -> Iterator[str]:
    for spec in specs:
        if spec != "-":
            yield spec
        elif stdin is None:
            raise InputError("'-' reads paths from stdin, but none was given")
        else:
            yield from (line.rstrip("\r\n") for line in stdin if line.strip())


def _expand(spec: str) -> list[str]:
    if is_url(spec):  # zarr opens it where the work runs
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
    matches = sorted(glob.glob(spec, recursive=True))
    if not matches:
        raise InputError(f"{spec}: no file matches this pattern")
    return [path for match in matches for path in _expand(match)]


def _is_zarr_store(path: str) -> bool:
    return path.rstrip(os.sep).endswith(".zarr") or any(
        os.path.exists(os.path.join(path, name)) for name in ("zarr.json", ".zgroup")
    )


def _archives_below(directory: str) -> list[str]:
    found = []
    for folder, subfolders, files in os.walk(directory):
        subfolders.sort()
        stores = [name for name in subfolders if _is_zarr_store(os.path.join(folder, name))]
        subfolders[:] = [name for name in subfolders if name not in stores]
        names = sorted([*stores, *(f for f in files if f.endswith(ARCHIVE_SUFFIXES))])
        found += [os.path.join(folder, name) for name in names]
    return found


def _identity(path: str) -> str:
    return path if is_url(path) else os.path.realpath(path)


# -- running the analyses --------------------------------------------------------------------------


def default_jobs() -> int:
    """Cores this process may use (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def analyze_or_error(run: str, settings: Settings) -> dict[str, Any]:
    """Analyse one run; never raises (what runs in a worker).

    Returns
    -------
    dict
        ``AnalysisResult.to_dict()``, or ``{"run": run, "error": message}`` where the
        message is the one line of a :class:`DynatrainError`, or ``"internal error:
        <type>: <first line>"`` for any other exception.
    """
    try:
        return analyze(run, settings).to_dict()
    except Exception as exc:  # a worker must report, never crash the batch
        return _error_record(run, exc)


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
) -> Iterator[dict[str, Any]]:
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
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    if scheduler == "dask":
        completed = _on_dask(runs, settings, jobs, dask_address)
    elif scheduler != "local":
        raise InputError(f"invalid scheduler {scheduler!r}: use local or dask")
    elif min(jobs, len(runs)) <= 1:
        completed = ((i, analyze_or_error(run, settings)) for i, run in enumerate(runs))
    else:
        completed = _on_process_pool(runs, settings, min(jobs, len(runs)))
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
    runs: list[str], settings: Settings, workers: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, record)`` pairs in completion order, from a pool of worker processes."""
    # spawn, not fork: a forked child of a process with threads (h5py, BLAS, rich's
    # progress refresher) can deadlock; the variables above reach a spawned child
    # before it imports NumPy.
    with _single_threaded_children():
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = {
                executor.submit(analyze_or_error, run, settings): i for i, run in enumerate(runs)
            }
            for future in as_completed(futures):
                index = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # the worker died (e.g. killed): BrokenProcessPool
                    record = _error_record(runs[index], exc)
                yield index, record
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def _on_dask(
    runs: list[str], settings: Settings, jobs: int, address: str | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, record)`` pairs in completion order, from a Dask cluster."""
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
        futures = client.map(analyze_or_error, runs, settings=settings, pure=False)
        index_of = {future.key: i for i, future in enumerate(futures)}
        for future in distributed.as_completed(futures):
            index = index_of[future.key]
            try:
                record = future.result()
            except Exception as exc:  # e.g. KilledWorker
                record = _error_record(runs[index], exc)
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
        Every pair of groups, for every measure.
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
        values, indices = shown[group_key], members[group_key]
        columns = {measure: measure_values(records, indices, measure) for measure in measures}
        groups.append(
            Group(
                label=" / ".join(map(_value_text, values)) if keys else "all runs",
                values=dict(zip(keys, values, strict=True)),
                members=tuple(indices),
                runs=tuple(records[i]["run"] for i in indices),
                stats={m: _measure_stats(column, scipy_stats) for m, column in columns.items()},
            )
        )
    comparisons = [
        _compare(measure, a, b, records, scipy_stats)
        for i, a in enumerate(groups)
        for b in groups[i + 1 :]
        for measure in measures
    ]
    warnings = [
        f"{len(runs)} run(s) without metadata {key!r}, grouped as {MISSING}: "
        + ", ".join(runs[:5])
        + (", ..." if len(runs) > 5 else "")
        for key, runs in lacking.items()
        if runs
    ]
    return GroupSummary(keys, tuple(measures), groups, comparisons, warnings)


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
    order = []
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
