"""Check an archive against the format, data included.

Opening an archive already checks its structure; :func:`validate_archive` also
reads every stored value once (streaming), so a corrupt chunk or a non-finite value
is found before an analysis trips over it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynatrain.archive._backends import first_line
from dynatrain.archive.format import is_url
from dynatrain.archive.reader import Archive
from dynatrain.archive.storage import redact
from dynatrain.errors import ArchiveError

__all__ = ["ValidationReport", "validate_archive"]


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_archive`.

    Attributes
    ----------
    path : str
    problems : list of str
        Violations of the format: the archive is invalid if there is any.
    notes : list of str
        Valid but worth knowing (non-finite activations, a partly written last
        checkpoint).
    n_checkpoints, n_layers : int or None
        Size, when the structure could be read.
    """

    path: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_checkpoints: int | None = None
    n_layers: int | None = None

    @property
    def valid(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def validate_archive(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
) -> ValidationReport:
    """Check the structure and every stored value of an archive.

    Problems: anything that breaks the format, a chunk that cannot be read, and a
    Zarr chunk missing from the store inside the complete checkpoints of an array
    whose fill value is NaN (lost data). Notes: non-finite values, checkpoints beyond
    ``complete_checkpoints``, missing Zarr chunks of arrays with another fill value
    (zarr leaves out chunks equal to it), metadata shown as text.

    Parameters
    ----------
    path : str or path-like
    storage_options : mapping, optional
        For a URL: fsspec storage options (see :mod:`dynatrain.archive.storage`).

    Returns
    -------
    ValidationReport
        Never raises for a bad archive: problems are listed in the report. Its
        ``path`` shows a URL without credentials.
    """
    location = os.fspath(path)
    report = ValidationReport(redact(location) if is_url(location) else location)
    try:
        _validate(report, location, storage_options)
    except ArchiveError as exc:
        report.problems.extend(getattr(exc, "problems", [exc.problem]))
    except (MemoryError, RecursionError) as exc:
        report.problems.append(f"cannot read it: {type(exc).__name__} ({first_line(exc)})")
    except Exception as exc:  # a bug, not the archive's fault: say so, and let the caller go on
        report.problems.append(
            f"cannot read it: unexpected {type(exc).__name__} ({first_line(exc)}); please report it"
        )
    # The same refusal can be met twice (listing the chunks, then reading them).
    report.problems = list(dict.fromkeys(report.problems))
    return report


def _validate(
    report: ValidationReport, path: str, storage_options: Mapping[str, Any] | None
) -> None:
    archive = Archive(path, storage_options=storage_options)
    with archive:
        report.n_checkpoints = archive.n_checkpoints
        report.n_layers = len(archive.layer_names)
        report.notes.extend(archive.metadata_notes)
        pending = archive.n_rows_stored - archive.n_checkpoints
        if pending > 0:
            report.notes.append(
                f"{pending} row(s) beyond complete_checkpoints are ignored (space a writer"
                " reserved, a writer still running, or one stopped mid-checkpoint)"
            )
        if archive.n_checkpoints == 0:
            report.notes.append("no complete checkpoint yet")
            return
        _check_chunk_gaps(report, archive)
        for name, info in archive.layers.items():
            try:
                if info.has_activations:
                    finite = _finite_rows(archive, name)
                    _note_non_finite(report, f"layer {name!r} activations", finite, archive.epochs)
                if info.has_signal:
                    finite = np.isfinite(archive.signal(name))
                    _note_non_finite(report, f"layer {name!r} signal", finite, archive.epochs)
            except ArchiveError as exc:
                report.problems.append(exc.problem)
        for name in archive.metric_names:
            try:
                archive.metric(name)
            except ArchiveError as exc:
                report.problems.append(exc.problem)


def _check_chunk_gaps(report: ValidationReport, archive: Archive) -> None:
    """Chunks absent from a Zarr store, inside the complete checkpoints.

    Where the fill value is NaN the chunk is lost data: reading it raises, and that
    is reported as a problem with the other read errors. Where it is anything else,
    zarr may simply not have stored a chunk full of the fill value (its default): a
    note. See :class:`~dynatrain.archive.reader.Archive`.
    """
    try:
        gaps = archive.chunk_gaps()
    except ArchiveError as exc:
        report.problems.append(exc.problem)
        return
    for gap in gaps:
        if gap.lost:
            continue  # reported below, when its data is read
        first = gap.first
        report.notes.append(
            f"{gap.what}: no chunk stored for {gap.count} checkpoint(s), from"
            f" checkpoint {first} (epoch {archive.epochs[first]:g}); read as the fill value"
            f" {gap.fill_value!r} (zarr does not store chunks equal to the fill value)"
        )


def _finite_rows(archive: Archive, layer: str) -> np.ndarray:
    """Whether each checkpoint's activations are all finite (reads every chunk once)."""
    finite = np.ones(archive.n_checkpoints, dtype=bool)
    with closing(archive.iter_activations(layer)) as blocks:
        for block in blocks:
            values = block.values
            if values.size and not any(values.strides):  # a broadcast fill value
                finite[block.start : block.stop] &= bool(np.isfinite(values.flat[0]))
                continue
            finite[block.start : block.stop] &= np.isfinite(values).all(axis=1)
    return finite


def _note_non_finite(
    report: ValidationReport, what: str, finite: np.ndarray, epochs: np.ndarray
) -> None:
    bad = ~finite
    if bad.any():
        first = int(np.argmax(bad))
        report.notes.append(
            f"{what}: non-finite values from checkpoint {first} (epoch {epochs[first]:g})"
            f" in {int(bad.sum())} of {bad.size} checkpoints"
        )
