"""Follow a training run while its archive is being written: the engine of ``dynatrain watch``.

>>> from dynatrain.watch import watch
>>> end = watch("runs/resnet-seed0.h5", until="converged", on_event=print)  # doctest: +SKIP
>>> end.reason, end.exit_code  # doctest: +SKIP
('converged', 0)

:class:`RunFollower` keeps the archive open and, at each :meth:`~RunFollower.poll`,
takes in the checkpoints the writer has completed since the last one (the root's
``complete_checkpoints``: HDF5 read in SWMR mode, Zarr's root document read again),
reduces only their activations and feeds them to a :class:`~dynatrain.live.Monitor`:
the cost of a poll is that of the new rows and the windows they close, never of the
history. :func:`watch` polls until a condition is met and says why it stopped.

**How the end of a run is known.** The run is *complete* when the archive holds the
``expected_checkpoints`` its writer announced, or when the writer has closed it: its
one-writer lock is released and the arrays are trimmed to the complete checkpoints,
which :meth:`ArchiveWriter.close <dynatrain.archive.writer.ArchiveWriter.close>` does
and a killed writer does not. A writer whose lock is gone without that trim has gone
away (killed, crashed): the run ended *incomplete*. The lock is looked at without
being taken (the writer's open-file lock on an HDF5 file, its ``flock`` on a Zarr
directory, both Linux); where it cannot be seen, only ``expected_checkpoints`` and
the timeout end a watch. One corner: a writer killed exactly when its arrays were
full (1,024, 2,048, ... checkpoints, the sizes they grow by) looks closed.

**A run in object storage** (a Zarr URL) has no lock to look at: a watch waits for the
store to appear (until the timeout), reads its root document at each poll, and ends
when the run holds its ``expected_checkpoints`` or its arrays are trimmed (the writer
closed it); a writer killed there is noticed only by the timeout.

**Windows.** A live run must fix its analysis windows before it ends: from the
settings (``--window``/``--window-step``), else from the archive's
``expected_checkpoints`` (the windows ``analyze`` will use on the finished run), else,
for a run whose writer has already gone, from its length. Otherwise the watch refuses
to start rather than guess a window that ``analyze`` would not use.

**The convergence's test** runs in a background thread once the rule decides, so the
deciding checkpoint is reported at once, with ``p_pending`` true until its p-value is
known.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynatrain.analysis import Settings
from dynatrain.archive import format as fmt
from dynatrain.archive._files import archive_writer_present
from dynatrain.archive.reader import Archive, open_archive
from dynatrain.archive.storage import local_path, redact
from dynatrain.errors import ArchiveError, InputError
from dynatrain.live import Monitor
from dynatrain.signals import reduce_layer, select_layers

__all__ = ["UNTIL", "RunFollower", "WatchEnd", "watch"]

#: Conditions ``watch`` can wait for.
UNTIL = ("converged", "complete")
#: The name an HDF5 writer builds its archive under until the first checkpoint.
_STAGING_SUFFIX = ".incomplete"


@dataclass(frozen=True)
class WatchEnd:
    """Why a watch stopped.

    Attributes
    ----------
    reason : str
        ``"converged"`` (the condition of ``until="converged"``), ``"complete"`` (the
        run reached its end), ``"writer gone"`` (the writer went away without closing
        the archive), ``"timeout"`` (no new checkpoint for ``timeout`` seconds) or
        ``"stopped"`` (the analysis stopped on a non-finite value: it cannot converge).
    exit_code : int
        0 when the condition was met, 1 otherwise.
    message : str
        One line for people.
    status : dict or None
        The monitor's last status (None if no checkpoint was read).
    """

    reason: str
    exit_code: int
    message: str
    status: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The end as the last JSON line of ``watch``: the status, then why it ended."""
        status = dict(self.status or {})
        return {
            "event": "end",
            **{key: value for key, value in status.items() if key != "event"},
            "reason": self.reason,
            "exit_code": self.exit_code,
            "message": self.message,
        }


class RunFollower:
    """Reads what a writer adds to one archive and feeds it to a :class:`Monitor`.

    Parameters
    ----------
    path : str or path-like
        The archive (``.h5``/``.hdf5`` or ``.zarr``); it may not exist yet while an
        HDF5 writer prepares it (under ``<path>.incomplete``).
    settings : Settings, optional
        ``reduce``, ``layers``, ``transform``, the DFA, window and convergence
        settings, ``surrogates``, ``seed``, ``metric`` and ``strict`` apply;
        ``epochs`` and ``convergence_rule="whole-run"`` are refused.

    Attributes
    ----------
    monitor : Monitor or None
        Made when the first checkpoint is read.
    warnings : list of str
        Layers left out, and why.
    """

    def __init__(self, path: str | os.PathLike[str], settings: Settings | None = None) -> None:
        self.path = os.fspath(path)
        #: A run in object storage: no lock, no file identity, the store may not exist yet.
        self.in_object_storage = fmt.is_url(self.path) and local_path(self.path) is None
        self.settings = settings or Settings()
        if self.settings.epochs is not None:
            raise InputError("watch follows the whole run: --epochs does not apply")
        if self.settings.convergence_rule != "causal":
            raise InputError(
                "the whole-run convergence rule needs the finished run: watch uses the causal"
                " rule (analyze the run afterwards for the other)"
            )
        if self.in_object_storage and fmt.backend_for_path(self.path) != "zarr":
            raise InputError(f"{redact(self.path)}: watch follows Zarr archives in object storage")
        if fmt.backend_for_path(self.path) is None and not os.path.isdir(self.path):
            raise InputError(
                f"{self.path}: cannot tell the back end; watch an archive ending in .h5,"
                " .hdf5 or .zarr"
            )
        self.monitor: Monitor | None = None
        self.warnings: list[str] = []
        self.layers: tuple[str, ...] = ()
        self._archive: Archive | None = None
        self._identity: tuple[int, int] | None = None
        self._read = 0  # checkpoints of the archive taken in
        self._null_thread: threading.Thread | None = None
        self._null_error: BaseException | None = None
        self._windows_from_length = False

    # -- state -----------------------------------------------------------------------------

    @property
    def opened(self) -> bool:
        """Whether the archive is open (it had a complete checkpoint)."""
        return self._archive is not None

    @property
    def n_checkpoints(self) -> int:
        """Checkpoints of the archive read so far."""
        return self._read

    @property
    def expected_checkpoints(self) -> int | None:
        """The number of checkpoints the writer announced, if it did."""
        if self._archive is None:
            return None
        expected = self._archive.metadata.get(fmt.EXPECTED_ATTR)
        return expected if isinstance(expected, int) and not isinstance(expected, bool) else None

    @property
    def trimmed(self) -> bool:
        """Whether the arrays end at the complete checkpoints (what closing leaves)."""
        archive = self._archive
        return archive is not None and archive.n_rows_stored == archive.n_checkpoints

    @property
    def p_pending(self) -> bool:
        """Whether the convergence's surrogate test is still running."""
        return self._null_thread is not None and self._null_thread.is_alive()

    def writer_present(self) -> bool | None:
        """Whether a writer holds the archive (or its HDF5 staging file); None: cannot tell."""
        if self.in_object_storage:
            return None  # no lock to look at
        present = archive_writer_present(self.path)
        if present is None and not os.path.lexists(self.path):
            present = archive_writer_present(self.path + _STAGING_SUFFIX)
        return present

    # -- reading -----------------------------------------------------------------------------

    def poll(self) -> Iterator[dict[str, Any]]:
        """Take in the checkpoints completed since the last poll; one event for each.

        The new rows are read at once; each is fed to the monitor when its event is
        asked for, so a caller that stops early (a convergence decided) leaves the
        rest for the next poll.

        Yields
        ------
        dict
            Per new checkpoint, the monitor's status (see
            :meth:`dynatrain.live.Monitor.status`) with ``event`` ("checkpoint"),
            ``run``, ``checkpoint`` (its index in the archive), ``metrics`` (its
            recorded metrics) and ``p_pending``.

        Raises
        ------
        InputError, ArchiveError
            If the archive cannot be followed (see :class:`RunFollower`).
        """
        if self._archive is None and not self._open():
            return
        archive = self._archive
        assert archive is not None
        self._check_same_archive()
        if self._read == archive.n_checkpoints:
            archive.refresh()
        start, stop = self._read, archive.n_checkpoints
        if stop == start:
            return
        values = np.vstack([self._layer_rows(name, start, stop) for name in self.layers])
        metrics = {
            name: archive.metric(name, start=start, stop=stop) for name in archive.metric_names
        }
        epochs = archive.epochs[start:stop]
        for k in range(stop - start):
            row_metrics = {name: float(series[k]) for name, series in metrics.items()}
            event = self._update(start + k, float(epochs[k]), values[:, k], row_metrics)
            self._read = start + k + 1
            yield event

    def _layer_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        assert self._archive is not None
        return reduce_layer(self._archive, name, self.settings.reduce, start=start, stop=stop)

    def _update(
        self, index: int, epoch: float, values: np.ndarray, metrics: dict[str, float]
    ) -> dict[str, Any]:
        monitor = self.monitor
        assert monitor is not None
        status = monitor.update(epoch, values, metrics)
        if status["stopped"] is not None and self.settings.strict:
            raise InputError(f"{self.path}: {status['stopped']} (--strict)")
        if monitor.converged and self._null_thread is None:
            self._start_null()
        return self._event(index, status, metrics)

    def _event(
        self, index: int, status: dict[str, Any], metrics: dict[str, float]
    ) -> dict[str, Any]:
        clean = {name: (value if math.isfinite(value) else None) for name, value in metrics.items()}
        if self._windows_from_length:  # not announced by the writer: the finished run's length
            status["window"] = {
                key: "run length" if value == "expected_checkpoints" else value
                for key, value in status["window"].items()
            }
        return {
            "event": "checkpoint",
            "run": self.path,
            "checkpoint": index,
            **status,
            "p_pending": self.p_pending,
            "metrics": clean,
        }

    def status(self) -> dict[str, Any] | None:
        """The monitor's status now (None before the first checkpoint), ``p_pending`` added."""
        if self.monitor is None:
            return None
        event = self._event(self._read - 1, self.monitor.status(), {})
        del event["event"], event["checkpoint"], event["metrics"]
        return event

    # -- the convergence's test ----------------------------------------------------------------

    def _start_null(self) -> None:
        monitor = self.monitor
        assert monitor is not None

        def compute() -> None:
            try:
                monitor.compute_null()
            except BaseException as exc:  # re-raised in the watching thread
                self._null_error = exc

        self._null_thread = threading.Thread(target=compute, name="dynatrain-null", daemon=True)
        self._null_thread.start()

    def wait_for_null(self) -> None:
        """Wait until the convergence's p-value is known (if a test is running)."""
        if self._null_thread is not None:
            self._null_thread.join()
        if self._null_error is not None:
            error, self._null_error = self._null_error, None
            raise error

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> bool:
        """Open the archive once it has a complete checkpoint; False while it has none."""
        if not self.in_object_storage and not os.path.lexists(self.path):
            if os.path.lexists(self.path + _STAGING_SUFFIX):
                return False  # an HDF5 writer preparing the file: it appears at checkpoint 1
            raise ArchiveError(self.path, "no such file or directory")
        present = self.writer_present()
        try:
            archive = open_archive(self.path)
        except ArchiveError:
            # A Zarr writer between creating the store and its root document; in object
            # storage, a store not written yet (or never: the timeout says so).
            if present or self.in_object_storage:
                return False
            raise
        if archive.n_checkpoints == 0:
            archive.close()
            return False
        try:
            self._start(archive, writer_gone=present is False)
        except BaseException:
            archive.close()
            raise
        self._archive = archive
        return True

    def _start(self, archive: Archive, *, writer_gone: bool) -> None:
        """Choose the layers, the metric and the windows; make the monitor."""
        settings = self.settings
        names = select_layers(archive.layer_names, settings.layers)
        layers = []
        for name in names:
            info = archive.layers[name]
            stored = info.has_signal if settings.reduce == "signal" else info.has_activations
            if stored:
                layers.append(name)
            else:
                what = "signal" if settings.reduce == "signal" else "activations"
                self.warnings.append(f"layer {name!r} left out: no stored {what}")
        if not layers and self.warnings:
            reasons = "; ".join(self.warnings)
            raise InputError(
                f"{self.path}: no layer can be reduced with --reduce {settings.reduce} ({reasons})"
            )
        self.layers = tuple(layers)
        if settings.metric is not None and settings.metric not in archive.metric_names:
            available = ", ".join(archive.metric_names) or "none"
            raise InputError(f"{self.path}: no metric {settings.metric!r} (metrics: {available})")
        expected = archive.metadata.get(fmt.EXPECTED_ATTR)
        if settings.window is None and expected is None:
            if not writer_gone:
                raise InputError(
                    f"{self.path}: the analysis windows must be fixed before the run ends, and"
                    f" the archive does not say how many checkpoints it will have (root"
                    f" attribute {fmt.EXPECTED_ATTR!r}): pass --window (and --window-step),"
                    " or write it with ArchiveWriter(expected_checkpoints=N)"
                )
            expected = archive.n_checkpoints  # a finished run: its length is known
            self._windows_from_length = True
        points = None if expected is None else expected - (settings.transform == "change")
        if settings.window is not None and points is not None and settings.window > points:
            raise InputError(
                f"{self.path}: --window {settings.window} is longer than the {points} analysed"
                f" points of the {expected} checkpoints the run expects"
            )
        try:
            self.monitor = Monitor(
                self.layers,
                settings,
                expected_checkpoints=expected,
                metric=settings.metric,
                null_on_decision=False,
            )
        except InputError as exc:
            raise InputError(f"{self.path}: {exc}") from exc
        self._identity = None if self.in_object_storage else _identity(self.path)

    def _check_same_archive(self) -> None:
        """Refuse to go on if the path now names another archive (a new run replaced it)."""
        if self._identity is not None and _identity(self.path) != self._identity:
            raise ArchiveError(self.path, "was replaced or removed while being watched")

    def close(self) -> None:
        """Close the archive."""
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def __enter__(self) -> RunFollower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of ``path``, None if it is gone."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def watch(
    path: str | os.PathLike[str],
    settings: Settings | None = None,
    *,
    until: str = "converged",
    timeout: float | None = None,
    interval: float = 0.25,
    max_p: float | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[RunFollower], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WatchEnd:
    """Follow a run until it converges or ends; report each new checkpoint.

    Parameters
    ----------
    path : str or path-like
        The archive a training job is writing (or has written).
    settings : Settings, optional
        See :class:`RunFollower`.
    until : {"converged", "complete"}
        ``"converged"``: stop as soon as the stability index's convergence is decided
        (and its p-value, needed for `max_p`, is known). ``"complete"``: follow the
        run to its end.
    timeout : float, optional
        Give up after this many seconds without a new checkpoint. Default: wait as
        long as the writer holds the archive.
    interval : float
        Seconds between two looks at the archive.
    max_p : float, optional
        With ``until="converged"``: count a convergence only if its p-value is at
        most this (needs surrogates). Default: the rule's decision alone.
    on_event : callable, optional
        Called with each event (see :meth:`RunFollower.poll`), as it happens.
    on_start : callable, optional
        Called with the follower once the first checkpoint has been read (its
        ``warnings`` and window plan are known then).
    clock, sleep : callable
        Time source and pause, in seconds (for tests).

    Returns
    -------
    WatchEnd

    Raises
    ------
    InputError, ArchiveError
        On options that do not apply, or an archive that cannot be followed.
    """
    if until not in UNTIL:
        raise InputError(f"invalid until {until!r}: use one of {', '.join(UNTIL)}")
    if timeout is not None and not timeout > 0:
        raise InputError(f"timeout must be > 0 seconds, got {timeout!r}")
    if not interval > 0:
        raise InputError(f"interval must be > 0 seconds, got {interval!r}")
    settings = settings or Settings()
    if max_p is not None:
        if not 0 < max_p <= 1:
            raise InputError(f"max_p must be in (0, 1], got {max_p!r}")
        if until != "converged":
            raise InputError("max_p applies with until='converged'")
        if settings.surrogates == 0 or settings.convergence_surrogates == 0:
            raise InputError("max_p needs the convergence's p-value: give surrogates > 0")
    emit = on_event or (lambda _event: None)
    with RunFollower(path, settings) as follower:
        last_news = clock()
        converged_seen = started = False
        while True:
            # The writer is looked at before the archive: if it had gone by then, this
            # poll reads everything it wrote.
            present = follower.writer_present()
            for event in follower.poll():
                if not started and on_start is not None:
                    on_start(follower)
                started = True
                emit(event)
                last_news = clock()
                monitor = follower.monitor
                assert monitor is not None  # made with the first checkpoint
                if until == "converged" and monitor.converged and not converged_seen:
                    converged_seen = True
                    follower.wait_for_null()
                    end = _converged_end(follower, max_p)
                    if end is not None:
                        return end
            end = _run_end(follower, present, until)
            if end is not None:
                return end
            if timeout is not None and clock() - last_news >= timeout:
                follower.wait_for_null()
                what = "checkpoint" if follower.opened else "complete checkpoint yet"
                return _end(
                    follower,
                    "timeout",
                    until,
                    f"no new {what} for {timeout:g} s ({follower.n_checkpoints} read)",
                )
            sleep(interval)


def _converged_end(follower: RunFollower, max_p: float | None) -> WatchEnd | None:
    """The end for a decided convergence, or None if its p-value is above `max_p`."""
    status = follower.status()
    assert status is not None
    convergence = status["convergence"]
    p = convergence["p"]
    if max_p is not None and (p is None or p > max_p):
        return None  # decided once and for all: the watch goes on to the run's end
    p_text = "" if p is None else f", p = {p:.3g}"
    message = (
        f"the stability index converged at epoch {convergence['epoch']:g}, decided at epoch"
        f" {convergence['decided_epoch']:g}{p_text}"
    )
    return WatchEnd("converged", 0, message, status)


def _run_end(follower: RunFollower, present: bool | None, until: str) -> WatchEnd | None:
    """The end of the run, if it has ended: complete, or its writer gone."""
    read = follower.n_checkpoints
    expected = follower.expected_checkpoints
    if expected is not None and read >= expected:
        return _end(follower, "complete", until, f"the run is complete: {read} checkpoints")
    if present is None and follower.in_object_storage and follower.opened and follower.trimmed:
        return _end(
            follower, "complete", until, f"the writer closed the archive: {read} checkpoints"
        )
    if present is not False:
        return None
    follower.wait_for_null()
    if not follower.opened:
        return WatchEnd("writer gone", 1, "the writer has gone without a complete checkpoint", None)
    if follower.trimmed:
        return _end(
            follower, "complete", until, f"the writer closed the archive: {read} checkpoints"
        )
    return _end(
        follower,
        "writer gone",
        until,
        f"the writer went away without closing the archive after {read} checkpoints",
    )


def _end(follower: RunFollower, reason: str, until: str, message: str) -> WatchEnd:
    follower.wait_for_null()
    status = follower.status()
    met = until == "complete" and reason == "complete"
    if until == "converged" and status is not None:
        monitor = follower.monitor
        assert monitor is not None
        if monitor.stopped is not None:
            message += f"; {monitor.stopped}"
        message += "; not converged" if not monitor.converged else "; convergence above max_p"
    return WatchEnd(reason, 0 if met else 1, message, status)
