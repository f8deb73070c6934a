"""A PyTorch Lightning callback: record, analyse live, log, and stop on convergence.

Optional: needs the ``lightning`` extra (``pip install 'dynatrain[lightning]'``); the core
package never imports this module.

>>> from lightning.pytorch import Trainer
>>> from lightning.pytorch.loggers import CSVLogger
>>> from dynatrain.lightning import DynatrainCallback
>>> callback = DynatrainCallback(probe=x_val[:64], layers=["layer1", "layer2", "fc"],
...                              stop_on_convergence=True, min_epochs=20)  # doctest: +SKIP
>>> trainer = Trainer(max_epochs=100, callbacks=[callback], logger=CSVLogger("logs"))
>>> trainer.fit(model, data)  # doctest: +SKIP

At the end of each validation epoch the callback runs the probe batch through the model
(:class:`dynatrain.torch.ActivationRecorder`: an archive is written as the run goes, so
``dynatrain analyze`` can read it afterwards), feeds the checkpoint to a
:class:`dynatrain.live.Monitor` without reading the file, and logs through the trainer's
loggers (TensorBoard, CSV, W&B, ...), beside the loss:

* ``dynatrain/integration`` and ``dynatrain/metastability`` over the run so far;
* ``dynatrain/stability_index`` and ``dynatrain/volatility`` of the newest window;
* ``dynatrain/converged`` (0 or 1) and, once known, ``dynatrain/convergence_p``.

With ``stop_on_convergence=True`` it sets ``trainer.should_stop`` at the first
validation at which the stability index's convergence is decided (and its p-value is at
most ``max_p``), once ``min_epochs`` epochs have been trained.

One checkpoint per training epoch: with several validations in an epoch
(``val_check_interval`` < 1) only the first is recorded. Resuming from a Lightning
checkpoint starts a new archive (pass ``mode="w"`` to replace the old one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

try:
    import torch
    from lightning.pytorch import Callback, LightningModule, Trainer
    from lightning.pytorch.utilities import rank_zero_warn
except ImportError as exc:  # one line, not a chain of tracebacks
    raise ImportError(
        f"dynatrain.lightning needs PyTorch Lightning ({exc.name or exc} is missing):"
        " pip install 'dynatrain[lightning]'"
    ) from None

from dynatrain.analysis import Settings
from dynatrain.archive import format as fmt
from dynatrain.errors import InputError
from dynatrain.live import Monitor

__all__ = ["LOGGED", "DynatrainCallback"]

#: What the callback logs, under ``log_prefix``: status key -> logged name.
LOGGED = {
    "integration": "integration",
    "metastability": "metastability",
    "stability_index": "stability_index",
    "volatility": "volatility",
}


class DynatrainCallback(Callback):
    """Record a probe batch at each validation epoch end, analyse it live, log, maybe stop.

    Parameters
    ----------
    probe : torch.Tensor
        The probe batch, shape ``(N, ...)``, the same at every checkpoint.
    layers : sequence of str, optional
        Modules to record (see :class:`dynatrain.torch.ActivationRecorder`).
    path : str or path-like, optional
        The archive to write. Default: ``activations.h5`` in the trainer's log
        directory (``trainer.log_dir``, else ``default_root_dir``).
    metadata : mapping, optional
        Run metadata for the archive.
    settings : dynatrain.analysis.Settings, optional
        The analysis settings of the monitor (window, thresholds, surrogates, seed).
    expected_epochs : int, optional
        How many checkpoints the run will have, which fixes the analysis windows as
        ``analyze`` will choose them on the finished run. Default: the trainer's
        ``max_epochs`` divided by ``check_val_every_n_epoch``; needed if neither
        that nor ``settings.window`` is set.
    stop_on_convergence : bool
        Stop the run once the convergence is decided.
    min_epochs : int
        Never stop before this many training epochs.
    max_p : float or None
        Stop only on a convergence whose surrogate p-value is at most this (default
        0.05: the level at which the reports call it distinguishable from its
        surrogates); None: on the decision alone.
    log_prefix : str
        Prefix of the logged names.
    **recorder_options
        Passed to :class:`~dynatrain.torch.ActivationRecorder` (``pool``,
        ``activation_dtype``, ``compression``, ``mode``, ...).

    Attributes
    ----------
    recorder : ActivationRecorder or None
        Made at the start of fitting.
    monitor : Monitor or None
    status : dict or None
        The monitor's status after the last record.
    stopped_epoch : int or None
        The epoch at which the callback asked the trainer to stop.
    """

    def __init__(
        self,
        probe: torch.Tensor,
        layers: Sequence[str] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
        expected_epochs: int | None = None,
        stop_on_convergence: bool = False,
        min_epochs: int = 0,
        max_p: float | None = 0.05,
        log_prefix: str = "dynatrain/",
        **recorder_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(min_epochs, int) or min_epochs < 0:
            raise InputError(f"min_epochs must be an integer >= 0, got {min_epochs!r}")
        if max_p is not None and not 0 < max_p <= 1:
            raise InputError(f"max_p must be in (0, 1] or None, got {max_p!r}")
        self.settings = settings or Settings()
        if stop_on_convergence and max_p is not None and self.settings.surrogates == 0:
            raise InputError(
                "stop_on_convergence with max_p needs the convergence's p-value: give"
                " surrogates > 0, or max_p=None to stop on the decision alone"
            )
        self.probe = probe
        self.layers = None if layers is None else list(layers)
        self.path = None if path is None else os.fspath(path)
        self.metadata = dict(metadata or {})
        self.expected_epochs = expected_epochs
        self.stop_on_convergence = stop_on_convergence
        self.min_epochs = min_epochs
        self.max_p = max_p
        self.log_prefix = log_prefix
        self.recorder_options = recorder_options
        self.recorder: Any = None
        self.monitor: Monitor | None = None
        self.status: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None
        self._metric_names: tuple[str, ...] | None = None
        self._last_epoch = -math.inf

    # -- set up and tear down --------------------------------------------------------------

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Make the recorder (and its archive) and the monitor (on the global rank 0)."""
        if not trainer.is_global_zero:
            return
        from dynatrain.torch import ActivationRecorder

        path = self.path or os.path.join(
            trainer.log_dir or trainer.default_root_dir, "activations.h5"
        )
        expected = self.expected_epochs
        if expected is None and self.settings.window is None:
            max_epochs = trainer.max_epochs
            if max_epochs is None or max_epochs < 1:
                raise InputError(
                    "DynatrainCallback needs the number of epochs to fix its windows: set the"
                    " trainer's max_epochs, expected_epochs=, or settings=Settings(window=...)"
                )
            expected = max_epochs // max(1, trainer.check_val_every_n_epoch or 1)
        metadata = dict(self.metadata)
        if expected is not None:
            metadata.setdefault(fmt.EXPECTED_ATTR, expected)
        self.recorder = ActivationRecorder(
            pl_module,
            self.layers,  # type: ignore[arg-type]  # None: the recorder's default layers
            probe=self.probe,
            path=path,
            metadata=metadata,
            **self.recorder_options,
        )
        # The recorder's layers are known once it is made (it may choose them itself).
        names = list(self.recorder.layer_modules)
        self.monitor = Monitor(names, self.settings, expected_checkpoints=expected)
        self.recorder.monitor = self.monitor

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Close the archive (every recorded checkpoint is already on disk)."""
        if self.recorder is not None:
            self.recorder.close()

    # -- each validation -------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record, analyse, log, and decide whether to stop."""
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        epoch = trainer.current_epoch + 1  # training epochs done at this validation
        should_stop = False
        if self.recorder is not None:
            if epoch <= self._last_epoch:
                rank_zero_warn(
                    f"DynatrainCallback: a second validation in epoch {epoch} is not recorded"
                    " (one checkpoint per training epoch)"
                )
            else:
                self._last_epoch = epoch
                self.recorder.record(
                    epoch=epoch, metrics=self._metrics(trainer), step=trainer.global_step
                )
                self.status = self.recorder.status
                self._log(pl_module)
                should_stop = self._should_stop(epoch)
        if self.stop_on_convergence:
            should_stop = trainer.strategy.reduce_boolean_decision(should_stop, all=False)
            if should_stop and not trainer.should_stop:
                trainer.should_stop = True
                self.stopped_epoch = epoch

    def _metrics(self, trainer: Trainer) -> dict[str, float]:
        """The trainer's scalar metrics now, under the names fixed at the first record."""
        current = {}
        for name, value in trainer.callback_metrics.items():
            if name.startswith(self.log_prefix):
                continue
            try:
                fmt.check_metric_name(name)
                current[name] = float(
                    value.detach().cpu().item() if hasattr(value, "detach") else value
                )
            except (InputError, TypeError, ValueError, RuntimeError):
                continue  # not a scalar, or a name the archive cannot hold
        if self._metric_names is None:
            self._metric_names = tuple(sorted(current))
        return {name: current.get(name, math.nan) for name in self._metric_names}

    def _log(self, pl_module: LightningModule) -> None:
        status = self.status
        assert status is not None
        logged = {
            self.log_prefix + name: float(status[key])
            for key, name in LOGGED.items()
            if status[key] is not None
        }
        convergence = status["convergence"]
        logged[self.log_prefix + "converged"] = float(convergence["decided_epoch"] is not None)
        if convergence["p"] is not None:
            logged[self.log_prefix + "convergence_p"] = float(convergence["p"])
        pl_module.log_dict(logged, on_epoch=True, logger=True, rank_zero_only=True)

    def _should_stop(self, epoch: int) -> bool:
        if not self.stop_on_convergence or epoch < self.min_epochs or self.monitor is None:
            return False
        if not self.monitor.converged:
            return False
        p = self.monitor.convergence()["p"]
        return self.max_p is None or (p is not None and p <= self.max_p)
