"""Live analysis: a monitor fed one checkpoint at a time.

:class:`Monitor` is the engine of ``dynatrain watch``, of the torch recorder's status and
of the Lightning callback.  Each :meth:`Monitor.update` takes one checkpoint (its epoch,
the reduced value of every layer, optionally metrics) and returns a JSON-ready status:

>>> import numpy as np
>>> from dynatrain.live import Monitor
>>> monitor = Monitor(["conv1", "conv2", "fc"], expected_checkpoints=101)
>>> for epoch, values in enumerate(np.random.default_rng(0).standard_normal((101, 3))):
...     status = monitor.update(epoch, values)
>>> status["checkpoints"], status["window"]["length"], status["convergence"]["epoch"] is None
(101, 25, True)

The windowed measures, the stability index, its volatility and the causal convergence go
through the same functions as :func:`dynatrain.analysis.analyze`, one window at a time, so
feeding a finished run checkpoint by checkpoint gives bit for bit the windowed series of
``analyze`` with the same window, step and seed, the same converged and decided epochs and
the same p-value.

Costs.  Each new window costs the DFA and phases of that window alone (the DFA reads at
most one window of points before it): O(layers x window) per window, one window every
``window_step`` checkpoints, never the whole history.  The run-level integration and
metastability (over every checkpoint so far) are refreshed whenever the run has grown by
an eighth since the last refresh (every checkpoint while it is short): amortised
O(layers x scales) per checkpoint; each status says on how many checkpoints they were
measured.  Once, when the convergence is decided, the surrogate null runs on the points
seen so far (see :func:`dynatrain.analysis.convergence_significance`).  Memory: the
analysed signals (layers x checkpoints), as for ``analyze``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynatrain import defaults
from dynatrain import measures as m
from dynatrain.analysis import Settings, convergence_significance
from dynatrain.errors import InputError
from dynatrain.measures.windows import kernel_origin, window_measures
from dynatrain.signals import flush_tiny, usable_signal

__all__ = ["EXPECTED_CHECKPOINTS_ATTR", "Monitor", "WindowPlan", "plan_windows"]

#: Root attribute in which a training job states how many checkpoints it plans.
EXPECTED_CHECKPOINTS_ATTR = "expected_checkpoints"
#: The run-level measures are refreshed once the run has grown by this fraction.
_REFRESH_GROWTH = 1 / 8


@dataclass(frozen=True)
class WindowPlan:
    """The windows of a live run, fixed before its first checkpoint.

    Attributes
    ----------
    window : int
        Window length, in analysed points.
    step : int
        Points between window starts.
    window_from, step_from : str
        Where each came from: ``"settings"``, ``"expected_checkpoints"`` (the default
        rule of ``analyze`` applied to the length the run is expected to reach) or
        ``"default"`` (a step of 1, when neither says).
    expected_checkpoints : int or None
        The planned number of checkpoints, if known.
    """

    window: int
    step: int
    window_from: str
    step_from: str
    expected_checkpoints: int | None

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data (what every status carries under ``window``)."""
        return {
            "length": self.window,
            "step": self.step,
            "length_from": self.window_from,
            "step_from": self.step_from,
            "expected_checkpoints": self.expected_checkpoints,
        }


def plan_windows(settings: Settings, expected_checkpoints: int | None = None) -> WindowPlan:
    """Window and step for a live run, by the rules ``analyze`` uses.

    Parameters
    ----------
    settings : Settings
        ``window`` and ``window_step``, when given, win.
    expected_checkpoints : int or None
        How many checkpoints the job plans (the archive's root attribute
        ``expected_checkpoints``); the defaults of ``analyze`` are applied to the
        number of analysed points it gives.

    Returns
    -------
    WindowPlan

    Raises
    ------
    InputError
        If neither the settings nor `expected_checkpoints` give the window: a live
        monitor cannot know the final length of the run.
    """
    if expected_checkpoints is not None:
        if isinstance(expected_checkpoints, bool) or int(expected_checkpoints) < 2:
            raise InputError(f"expected_checkpoints must be >= 2, got {expected_checkpoints!r}")
        expected_checkpoints = int(expected_checkpoints)
    expected_points = None
    if expected_checkpoints is not None:
        expected_points = expected_checkpoints - (1 if settings.transform == "change" else 0)
    if settings.window is not None:
        window, window_from = settings.window, "settings"
    elif expected_points is not None:
        window, window_from = defaults.default_window(expected_points), "expected_checkpoints"
    else:
        raise InputError(
            "a live monitor needs its windows before the run ends: give the window (and "
            "window_step) in the settings, or the number of checkpoints the run expects "
            f"(root attribute {EXPECTED_CHECKPOINTS_ATTR!r})"
        )
    if settings.window_step is not None:
        step, step_from = settings.window_step, "settings"
    elif expected_points is not None:
        step = defaults.default_window_step(expected_points, window)
        step_from = "expected_checkpoints"
    else:
        step, step_from = 1, "default"
    return WindowPlan(window, step, window_from, step_from, expected_checkpoints)


class _Growing:
    """A float64 array growing along its last axis, with amortised O(1) appends."""

    def __init__(self, rows: int | None) -> None:
        self._shape = () if rows is None else (rows,)
        self._data = np.empty((*self._shape, 64))
        self.size = 0

    def append(self, column: Any) -> None:
        if self.size == self._data.shape[-1]:
            bigger = np.empty((*self._shape, 2 * self.size))
            bigger[..., : self.size] = self._data
            self._data = bigger
        self._data[..., self.size] = column
        self.size += 1

    @property
    def values(self) -> np.ndarray:
        return self._data[..., : self.size]


class Monitor:
    """The stability index of a run in progress, updated one checkpoint at a time.

    Parameters
    ----------
    layer_names : sequence of str
        The layers, in the order of the values given to :meth:`update` (at least 2).
    settings : Settings, optional
        The analysis settings (transform, DFA, windows, convergence, surrogates, seed).
        ``convergence_rule`` must be ``"causal"``.
    expected_checkpoints : int, optional
        How many checkpoints the run plans; gives the window and step when the settings
        do not (see :func:`plan_windows`).
    metric : str, optional
        The accuracy metric named in the status (default: the first of
        ``defaults.METRIC_CANDIDATES`` given to :meth:`update`).
    null_on_decision : bool, optional
        Compute the convergence p-value inside the :meth:`update` that decides the
        convergence (the default).  With False that update returns at once with
        ``p`` None, and :meth:`compute_null` computes it when called (e.g. from a worker
        thread, so that a watcher can print the decision before its test); the p-value
        is the same either way.

    Raises
    ------
    InputError
        On fewer than 2 layers, the whole-run rule, no way to fix the window, or a
        window too short for the DFA scales.

    Notes
    -----
    A checkpoint with a non-finite value stops the analysis (as ``analyze`` analyses the
    finite prefix of a diverged run): later checkpoints are counted but not analysed,
    and the status says so under ``stopped``.

    The status has no accuracy plateau: the plateau is defined against the best
    accuracy of the whole run, which only the finished run knows.
    """

    def __init__(
        self,
        layer_names: Sequence[str],
        settings: Settings | None = None,
        *,
        expected_checkpoints: int | None = None,
        metric: str | None = None,
        null_on_decision: bool = True,
    ) -> None:
        self.settings = settings or Settings()
        self.null_on_decision = null_on_decision
        self.layer_names = tuple(str(name) for name in layer_names)
        if len(self.layer_names) < 2:
            raise InputError(f"a monitor needs at least 2 layers, got {len(self.layer_names)}")
        if self.settings.convergence_rule != "causal":
            raise InputError(
                "the whole-run convergence rule needs the finished run: a live monitor uses "
                "the causal rule"
            )
        self.plan = plan_windows(self.settings, expected_checkpoints)
        try:
            self._scales = m.window_scales(
                self.plan.window,
                min_scale=self.settings.min_scale,
                n_scales=self.settings.n_scales,
                order=self.settings.dfa_order,
            )
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        self.metric = metric
        self.checkpoints = 0
        self.epoch: float | None = None
        self.stopped: str | None = None
        self._received = 0
        self._previous: np.ndarray | None = None
        self._points = _Growing(len(self.layer_names))
        self._point_epochs = _Growing(None)
        self._metrics: dict[str, list[float]] = {}
        self._window_end = _Growing(None)
        self._integration = _Growing(None)
        self._metastability = _Growing(None)
        self._dsi = _Growing(None)
        self._volatility = _Growing(None)
        self._convergence = m.CausalConvergence(
            threshold=self.settings.vol_threshold, patience=self.settings.vol_patience
        )
        self._null: m.ConvergenceNull | None = None
        self._decided_points: int | None = None  # analysed points when the rule decided
        self._running: tuple[float | None, float | None] = (None, None)
        self._running_checkpoints: int | None = None
        self._next_refresh = 1

    # -- feeding ----------------------------------------------------------------------------

    def update(
        self, epoch: float, values: Any, metrics: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
        """Take one checkpoint and return the status (see :meth:`status`).

        Parameters
        ----------
        epoch : float
            The checkpoint's epoch, greater than the previous one.
        values : array_like, shape (n_layers,)
            The reduced value of every layer at this checkpoint (``x_l(t)``, before the
            transform), in the order of `layer_names`.
        metrics : mapping of str to float, optional
            Metrics recorded at this checkpoint (e.g. ``val_accuracy``).

        Raises
        ------
        InputError
            On a wrong number of values, or an epoch that is not finite or not after
            the previous one.
        """
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (len(self.layer_names),):
            raise InputError(f"expected {len(self.layer_names)} layer values, got {values.size}")
        epoch = float(epoch)
        if not math.isfinite(epoch) or (self.epoch is not None and epoch <= self.epoch):
            raise InputError(
                f"epoch {epoch:g} must be finite and after the previous one ({self.epoch})"
            )
        self._received += 1
        self.epoch = epoch
        for name, value in (metrics or {}).items():
            self._metrics.setdefault(name, []).append(float(value))
        if self.stopped is None:
            values = flush_tiny(values)
            usable = usable_signal(values)
            if not np.all(usable):
                bad = [n for n, ok in zip(self.layer_names, usable, strict=True) if not ok]
                what = (
                    "non-finite values"
                    if not np.all(np.isfinite(values))
                    else f"values beyond ±{defaults.HUGE_SIGNAL:g} (a diverging run)"
                )
                self.stopped = (
                    f"{what} from epoch {epoch:g} (checkpoint {self._received - 1})"
                    f" in layer(s) {', '.join(bad)}: analysing the {self.checkpoints}"
                    " checkpoints before it"
                )
            else:
                self.checkpoints += 1
                self._take(epoch, values)
        return self.status()

    def _take(self, epoch: float, values: np.ndarray) -> None:
        """Add one finite checkpoint: a new analysed point, maybe a new window."""
        if self.settings.transform == "change":
            previous, self._previous = self._previous, (epoch, values)
            if previous is None:
                return
            # Element for element what analysis.transform_signals computes.
            point = (values - previous[1]) / (epoch - previous[0])
        else:
            point = values
        self._points.append(point)
        self._point_epochs.append(epoch)
        n_points = self._points.size
        if n_points >= self._next_refresh:
            self._refresh_running(n_points)
        window, step = self.plan.window, self.plan.step
        if n_points >= window and (n_points - window) % step == 0:
            self._new_window(n_points - window)

    def _new_window(self, start: int) -> None:
        """Measure the window starting at point `start` (it ends at the newest point)."""
        window = self.plan.window
        origin = kernel_origin(start, self._scales)
        tail = self._points.values[:, origin:]
        integration, metastability = window_measures(
            tail, np.array([start]), window, self._scales, self.settings.dfa_order, origin=origin
        )
        dsi = m.stability_index(integration, metastability)
        self._window_end.append(self.epoch)
        self._integration.append(integration[0])
        self._metastability.append(metastability[0])
        self._dsi.append(dsi[0])
        vol_window = self.settings.vol_window
        volatility = math.nan
        if self._dsi.size >= vol_window:
            volatility = float(m.rolling_volatility(self._dsi.values[-vol_window:], vol_window)[-1])
        self._volatility.append(volatility)
        if self._convergence.update(volatility):
            self._decided_points = self._points.size
            if self.null_on_decision:
                self.compute_null()

    def compute_null(self) -> m.ConvergenceNull | None:
        """The convergence's surrogate test, computed once (None before a decision).

        Uses the points up to the decision only, so it gives the same p-value whenever
        it is called (and the same as ``analyze``).
        """
        if self._null is None and self._decided_points is not None:
            self._null = convergence_significance(
                self._points.values[:, : self._decided_points],
                window=self.plan.window,
                step=self.plan.step,
                decided_window=self._convergence.decided_window,
                settings=self.settings,
            )
        return self._null

    def _refresh_running(self, n_points: int) -> None:
        """Run-level integration and metastability over every point so far."""
        self._next_refresh = n_points + max(1, int(n_points * _REFRESH_GROWTH))
        series = self._points.values
        series = series[np.ptp(series, axis=1) > 0]
        settings = self.settings
        max_scale = settings.max_scale or defaults.default_max_scale(n_points)
        try:
            needed = m.min_points_for_dfa(
                min_scale=settings.min_scale,
                max_scale=settings.max_scale,
                n_scales=settings.n_scales,
                order=settings.dfa_order,
            )
        except ValueError:
            return
        if len(series) < 2 or n_points < needed:
            return
        alpha = m.dfa(
            series,
            min_scale=settings.min_scale,
            max_scale=max_scale,
            n_scales=settings.n_scales,
            order=settings.dfa_order,
        )
        self._running = (float(np.mean(alpha)), float(m.kuramoto(series).metastability))
        self._running_checkpoints = self.checkpoints

    # -- reading ----------------------------------------------------------------------------

    @property
    def converged(self) -> bool:
        """Whether the convergence has been decided."""
        return self._convergence.decided_window is not None

    def _metric_name(self) -> str | None:
        if self.metric is not None:
            return self.metric
        return next((n for n in defaults.METRIC_CANDIDATES if n in self._metrics), None)

    def convergence(self) -> dict[str, Any]:
        """The ``convergence`` object of the output contract, as known so far.

        ``accuracy_plateau_epoch`` and ``lead_epochs`` are None: the plateau needs the
        finished run.
        """
        state, ends = self._convergence, self._window_end.values
        null = self._null
        return {
            "epoch": None if state.window is None else float(ends[state.window]),
            "decided_epoch": (
                None if state.decided_window is None else float(ends[state.decided_window])
            ),
            "p": None if null is None else null.p,
            "relapse": state.relapse,
            "surrogates_drawn": None if null is None else null.drawn,
            "accuracy_plateau_epoch": None,
            "lead_epochs": None,
            "metric": self._metric_name(),
        }

    def status(self) -> dict[str, Any]:
        """What is known now, as JSON-ready data (NaN as None).

        Returns
        -------
        dict
            ``epoch`` (the newest checkpoint's), ``checkpoints`` (analysed: the finite
            ones), ``integration`` and ``metastability`` over the run so far with
            ``measured_at_checkpoints`` (how many checkpoints they cover, see the module
            notes), ``windows`` (windows measured), ``window_end_epoch``,
            ``stability_index`` and ``volatility`` of the newest window, ``convergence``
            (as in the output contract), ``window`` (:meth:`WindowPlan.to_dict`), and
            ``stopped`` (None, or why the analysis stopped).
        """
        integration, metastability = self._running
        newest = self._dsi.size - 1
        return {
            "epoch": self.epoch,
            "checkpoints": self.checkpoints,
            "integration": integration,
            "metastability": metastability,
            "measured_at_checkpoints": self._running_checkpoints,
            "windows": self._dsi.size,
            "window_end_epoch": _number(self._window_end.values, newest),
            "stability_index": _number(self._dsi.values, newest),
            "volatility": _number(self._volatility.values, newest),
            "convergence": self.convergence(),
            "window": self.plan.to_dict(),
            "stopped": self.stopped,
        }

    def timeseries(self) -> dict[str, np.ndarray]:
        """The windowed series so far (copies), keyed as ``timeseries`` in the contract."""
        return {
            "window_end_epoch": self._window_end.values.copy(),
            "integration": self._integration.values.copy(),
            "metastability": self._metastability.values.copy(),
            "stability_index": self._dsi.values.copy(),
            "volatility": self._volatility.values.copy(),
        }

    def __repr__(self) -> str:
        state = "converged" if self.converged else "not converged"
        return (
            f"Monitor({len(self.layer_names)} layers, {self.checkpoints} checkpoints, "
            f"window {self.plan.window} step {self.plan.step}, {state})"
        )


def _number(values: np.ndarray, index: int) -> float | None:
    """values[index] as a float, None if there is none or it is NaN."""
    if index < 0:
        return None
    value = float(values[index])
    return None if math.isnan(value) else value
