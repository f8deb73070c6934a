"""The Python entry points at the top of the package: analyse one run or many, open an archive.

>>> import dynatrain
>>> result = dynatrain.analyze("sample_data/mlp-digits-seed1.h5", surrogates=99)
>>> round(result.integration, 3)
0.812
>>> runs = dynatrain.analyze_many("sample_data/", jobs=1, surrogates=0)  # doctest: +SKIP

Options are the command line's, with ``_`` for ``-`` (``min_scale`` for ``--min-scale``);
any other keyword is refused with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dynatrain import defaults
from dynatrain._format import did_you_mean
from dynatrain.analysis import AnalysisResult, Settings
from dynatrain.analysis import analyze as _analyze
from dynatrain.archive.reader import Archive, open_archive
from dynatrain.errors import OptionError
from dynatrain.signals import LayerSignals, parse_epoch_range, read_signals

if TYPE_CHECKING:
    from dynatrain.batch import GroupSummary

__all__ = ["BatchResult", "analyze", "analyze_many", "open", "settings_from", "signals_dataset"]

Run = str | os.PathLike[str]


def settings_from(settings: Settings | None, options: Mapping[str, Any], caller: str) -> Settings:
    """``settings`` (default :class:`Settings`) with ``options`` applied, every name checked.

    Raises
    ------
    OptionError
        For a name that is not a setting: one line with the closest names and every
        valid one (it is a ``TypeError`` and an :class:`~dynatrain.errors.InputError`).
    InputError
        For a value the settings refuse.
    """
    valid = [field.name for field in dataclasses.fields(Settings)]
    for name in options:
        if name not in valid:
            raise OptionError(
                f"{caller}() got an unknown option {name!r}{did_you_mean(name, valid)}"
                f" (options: {', '.join(valid)})"
            )
    if settings is not None and not isinstance(settings, Settings):
        raise OptionError(f"{caller}(): settings must be a Settings, got {type(settings).__name__}")
    base = settings or Settings()
    return dataclasses.replace(base, **options) if options else base


def analyze(
    run: Run | Archive | LayerSignals,
    settings: Settings | None = None,
    *,
    threads: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> AnalysisResult:
    """Analyse one run: integration, metastability, stability index, convergence.

    Parameters
    ----------
    run : str, path, Archive or LayerSignals
        An HDF5 file or Zarr store (or its URL), an open archive, or signals in memory.
    settings : Settings, optional
        A base for the options.
    threads : int, optional
        Threads for the surrogates and windows (default: the cores available, at most
        :data:`~dynatrain.defaults.MAX_ANALYSIS_THREADS`); the result is the same for any
        number.
    progress : callable, optional
        ``progress(stage, done, total)``, called as the surrogate nulls advance: `stage`
        is "shuffle null", "phase null" or "convergence null", `done` of `total`
        surrogates are computed (e.g. to drive a progress bar on a long run); the
        result does not change.
    **options
        The options of ``dynatrain analyze``, with ``_`` for ``-``: ``reduce``,
        ``transform``, ``layers`` (a name, a glob or a list of them), ``epochs``
        (``"10:80"`` or ``(10, 80)``), ``min_scale``, ``max_scale``, ``n_scales``,
        ``dfa_order``, ``window``, ``window_step``, ``vol_window``, ``vol_threshold``,
        ``vol_patience``, ``convergence_rule``, ``phase_edge``, ``significance_level``,
        ``metric``, ``surrogates``, ``convergence_surrogates``, ``seed``, ``strict``; and the
        settings with no command-line option (``style_threshold``, ``plateau_tolerance``,
        ``plateau_smoothing``).
        Defaults as on the command line (:mod:`dynatrain.defaults`).

    Returns
    -------
    AnalysisResult
        Prints as a few lines; ``to_dict()`` is the JSON of ``--format json``,
        ``to_frame()`` a row of its CSV.

    Raises
    ------
    OptionError
        An unknown option (also a ``TypeError``).
    InputError
        A bad value, or data that cannot be analysed with these settings.
    ArchiveError
        An archive that cannot be read.
    """
    chosen = settings_from(settings, options, "analyze")
    if progress is not None and not callable(progress):
        raise OptionError(f"analyze(): progress must be callable, got {type(progress).__name__}")
    return _analyze(
        run,
        chosen,
        threads=defaults.default_threads() if threads is None else threads,
        progress=progress,
    )


def analyze_many(
    runs: Run | Iterable[Run],
    settings: Settings | None = None,
    *,
    jobs: int | None = None,
    scheduler: str = "local",
    dask_address: str | None = None,
    **options: Any,
) -> BatchResult:
    """Analyse many runs, in parallel, with the same settings (``dynatrain batch``).

    Parameters
    ----------
    runs : str, path or iterable of them
        Archives, globs (``"runs/**/*.h5"``), folders (searched for archives) or Zarr URLs.
    settings : Settings, optional
    jobs : int, optional
        Worker processes (default: the cores available; 1: in this process). A script
        that uses workers must guard its entry point with ``if __name__ == "__main__":``.
    scheduler : {"local", "dask"}
    dask_address : str, optional
        An existing Dask scheduler (``tcp://host:8786``).
    **options
        As for :func:`analyze`.

    Returns
    -------
    BatchResult
        The results in input order; a run that failed is in ``failed``, never raised.
    """
    from dynatrain.batch import collect_runs, iter_analyses, result_or_error

    chosen = settings_from(settings, options, "analyze_many")
    specs = (
        [os.fspath(runs)]
        if isinstance(runs, (str, os.PathLike))
        else [os.fspath(run) for run in runs]
    )
    paths = collect_runs(specs)
    outcomes = list(
        iter_analyses(
            paths,
            chosen,
            jobs=jobs,
            scheduler=scheduler,
            dask_address=dask_address,
            task=result_or_error,
        )
    )
    return BatchResult(outcomes, chosen)


class BatchResult:
    """Many runs analysed with one :class:`Settings` (what :func:`analyze_many` returns).

    Attributes
    ----------
    results : list of AnalysisResult
        The runs analysed, in input order.
    failed : dict of str to str
        Each run that failed, and its one-line error.
    settings : Settings
    """

    def __init__(
        self, outcomes: Sequence[AnalysisResult | Mapping[str, Any]], settings: Settings
    ) -> None:
        self._outcomes = list(outcomes)
        self.settings = settings
        self.results = [o for o in self._outcomes if isinstance(o, AnalysisResult)]
        self.failed = {
            str(o["run"]): str(o["error"]) for o in self._outcomes if isinstance(o, Mapping)
        }

    def __len__(self) -> int:
        """Runs given (analysed and failed)."""
        return len(self._outcomes)

    def __repr__(self) -> str:
        from dynatrain._repr import batch_text

        return batch_text(self.records)

    def _repr_html_(self) -> str:
        from dynatrain._repr import batch_html

        return batch_html(self.records)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The JSON record of every run, in input order (``dynatrain batch --format jsonl``)."""
        return [o.to_dict() if isinstance(o, AnalysisResult) else dict(o) for o in self._outcomes]

    def groups(self, *keys: str) -> GroupSummary:
        """The runs grouped by metadata keys, summarised and compared (``--group-by``).

        Raises
        ------
        InputError
            For a key that no analysed run has (with the closest keys).
        """
        from dynatrain.batch import group_summary

        return group_summary(self.records, keys)

    def to_frame(self, *group_by: str) -> Any:
        """One row per run, the columns of ``batch --format csv`` (with ``group`` if grouped)."""
        from dynatrain.frames import runs_frame

        records = self.records
        summary = None
        if group_by:
            from dynatrain.batch import group_summary

            summary = group_summary(records, group_by)
        return runs_frame(records, summary)

    def groups_frame(self, *keys: str) -> Any:
        """One row per group and measure: n, mean, sd, median, 95% CI (``groups.csv``)."""
        from dynatrain.frames import groups_frame

        return groups_frame(self.groups(*keys))

    def comparisons_frame(self, *keys: str) -> Any:
        """One row per pair of groups and measure (``comparisons.csv``)."""
        from dynatrain.frames import comparisons_frame

        return comparisons_frame(self.groups(*keys))

    def write_report(self, directory: Run, *group_by: str, force: bool = False) -> list[str]:
        """Write the report folder of ``dynatrain batch -o DIR`` (``report.html``, CSVs, ...).

        Returns the paths written. Each run's JSON keeps its ``detail``, so
        ``dynatrain plot DIR/runs/<run>.json`` redraws its figures.
        """
        from dynatrain import __version__
        from dynatrain.batch import group_summary
        from dynatrain.report.batch_report import write_report

        records = [
            o.to_dict(detail=True) if isinstance(o, AnalysisResult) else dict(o)
            for o in self._outcomes
        ]
        summary = group_summary(records, group_by)
        settings = dataclasses.asdict(self.settings)
        return write_report(directory, records, summary, settings, version=__version__, force=force)


def open(run: Run) -> Archive:
    """Open an archive for reading (use it in a ``with`` block, or call ``close()``).

    The :class:`~dynatrain.archive.reader.Archive` gives the layers, epochs, metrics and
    metadata (``summary()`` lists them) and reads activations and stored signals.
    """
    return open_archive(run)


def signals_dataset(
    run: Run | Archive | LayerSignals,
    *,
    reduce: str = "mean",
    layers: str | Sequence[str] | None = None,
    epochs: str | tuple[float | None, float | None] | None = None,
) -> Any:
    """The layer signals of a run as an :class:`xarray.Dataset` (layer x epoch, metrics).

    The reduced activations x_l(t) before any transform, labelled by layer and epoch,
    with the metrics along ``epoch`` and the archive's metadata as attributes
    (:func:`dynatrain.frames.signals_dataset`). Needs ``pip install 'dynatrain[xarray]'``.
    """
    from dynatrain.frames import require
    from dynatrain.frames import signals_dataset as to_dataset

    require("xarray", "xarray datasets")  # before the archive is read
    if isinstance(run, LayerSignals):
        return to_dataset(run)
    chosen = Settings(reduce=reduce, layers=layers, epochs=epochs)  # type: ignore[arg-type]
    signals = read_signals(
        run if isinstance(run, Archive) else os.fspath(run),
        reduce=chosen.reduce,
        layers=chosen.layers,
        epochs=parse_epoch_range(chosen.epochs),
    )
    return to_dataset(signals)
