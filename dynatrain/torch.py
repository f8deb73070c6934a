"""Record layer activations of a PyTorch model into an activation archive.

Optional: needs the ``torch`` extra (``pip install 'dynatrain[torch]'``); the core
package never imports this module.

>>> from dynatrain.torch import ActivationRecorder
>>> with ActivationRecorder(model, layers=["fc1", "fc2", "fc3"], probe=x_val[:64],
...                         path="runs/mlp-seed0.h5", metadata={"run_id": "mlp-seed0"},
...                         compression="gzip") as recorder:  # doctest: +SKIP
...     for epoch in range(1, 101):
...         train_one_epoch(model)
...         recorder.record(epoch=epoch, metrics={"val_accuracy": evaluate(model)})

Each :meth:`ActivationRecorder.record` runs the fixed probe batch through the model
once, in eval mode and without autograd, captures the outputs of the named modules
with forward hooks and appends them as one checkpoint through
:class:`~dynatrain.archive.writer.ArchiveWriter`. The training state is left as it
was: every module's train/eval mode, every ``.grad`` and the random number
generators.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from dynatrain.archive import format as fmt
from dynatrain.archive.writer import ArchiveWriter
from dynatrain.errors import InputError
from dynatrain.live import recorder_monitor

__all__ = ["POOLING", "ActivationRecorder"]

Pooling = Literal["channel_mean"]
#: Accepted values of ``pool`` (besides ``None``, no pooling).
POOLING: tuple[str, ...] = ("channel_mean",)
#: Torch dtypes stored as they are; every other floating type is stored as float32.
_KEPT_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
#: Module names listed in the error for an unknown name when none is close.
_LISTED_NAMES = 20


class ActivationRecorder:
    """Append the activations of chosen modules on a fixed probe batch, checkpoint by checkpoint.

    Parameters
    ----------
    model : torch.nn.Module
        The network being trained.
    layers : sequence of str
        Names of the modules to record, as in ``model.named_modules()``
        (``"fc1"``, ``"features.3"``), input side first: this order becomes the
        archive's layer order. Each module must run exactly once per forward pass.
    probe : torch.Tensor
        The probe batch, shape ``(N, ...)``, the same at every checkpoint (e.g. the
        first 64 validation samples). It is copied once, and moved to the model's
        device at each record.
    path : str or path-like
        The archive to create (``.h5``/``.hdf5`` or ``.zarr``).
    metadata : mapping, optional
        Run metadata stored as root attributes (``run_id``, ``model``, ``dataset``,
        ``seed``, ``optimizer``, ``lr``, ...).
    monitor : bool or dynatrain.live.Monitor, optional
        Also analyse each checkpoint in the training loop, without reading the
        archive: ``True`` makes a :class:`~dynatrain.live.Monitor` with the default
        settings (it needs ``expected_checkpoints`` among the writer options or in
        the metadata, to fix its windows), or pass your own. After each
        :meth:`record`, :attr:`status` holds its status (see
        :meth:`dynatrain.live.Monitor.status`).
    pool : {None, "channel_mean"}
        ``None`` stores each output as it is. ``"channel_mean"`` averages every
        dimension after the channel dimension of outputs with three or more
        dimensions, ``(N, C, H, W) -> (N, C)``, to keep archives small; outputs with
        one or two dimensions are stored as they are.
    **writer_options
        Passed to :class:`~dynatrain.archive.writer.ArchiveWriter`: ``mode``,
        ``activation_dtype`` (e.g. ``"float16"``), ``chunk_checkpoints``,
        ``compression`` (e.g. ``"gzip"``).

    Raises
    ------
    InputError
        If a layer name names no module (the message lists close matches), a name
        is repeated, ``pool`` is unknown or ``probe`` is not a tensor with a batch
        dimension. Nothing is created then.

    Notes
    -----
    **Outputs.** A module that returns a tuple or list (``nn.LSTM``,
    ``nn.MultiheadAttention``) is recorded by its first element, which by PyTorch's
    convention is the main output; if that element is not a tensor, or the output is
    something else (a dict, ``None``), :meth:`record` raises :class:`InputError`
    naming the module. Every recorded output must have the probe samples as its first
    dimension.

    **Types.** Activations are copied to the CPU as NumPy arrays: float16, float32
    and float64 outputs keep their type, any other type (bfloat16, integers)
    becomes float32; ``activation_dtype="float16"`` then stores them at half size.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        probe: torch.Tensor,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        pool: Pooling | None = None,
        monitor: Any = None,
        **writer_options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if pool is not None and pool not in POOLING:
            raise InputError(f"invalid pool {pool!r}: use None or one of {', '.join(POOLING)}")
        if not isinstance(probe, torch.Tensor) or probe.ndim < 1 or len(probe) == 0:
            shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else None
            raise InputError(
                f"probe must be a tensor of shape (N, ...) with N >= 1, got"
                f" {type(probe).__name__} of shape {shape}"
            )
        self.model = model
        self.layer_modules = _resolve_modules(model, layers)
        self.probe = probe.detach().clone()
        self.pool = pool
        # str subclasses (torch.__version__ is one) become plain strings: h5py cannot
        # store them as attributes.
        plain_metadata = {
            key: str(value) if isinstance(value, str) else value
            for key, value in (metadata or {}).items()
        }
        # The live analysis (optional) is fixed before the archive exists.
        self.monitor = recorder_monitor(
            monitor, list(self.layer_modules), metadata=metadata, writer_options=writer_options
        )
        #: The monitor's status after the last record (None without a monitor).
        self.status: dict[str, Any] | None = None
        self._activation_dtype = writer_options.get("activation_dtype")
        self.writer = ArchiveWriter(path, plain_metadata, **writer_options)

    @property
    def path(self) -> str:
        """The archive being written."""
        return self.writer.path

    @property
    def n_checkpoints(self) -> int:
        """Checkpoints recorded so far."""
        return self.writer.n_checkpoints

    def capture(self) -> dict[str, np.ndarray]:
        """Run the probe batch and return each recorded module's output, pooled.

        The model runs in eval mode under ``torch.no_grad()``; afterwards every
        module is back in the mode it was in, no ``.grad`` has changed, the random
        number generators are in the state they were in and no hook is left on the
        model, also when the forward pass raises.

        Returns
        -------
        dict of str to numpy.ndarray
            Per layer name, in the recorder's layer order, the output on the probe
            batch as a CPU array of shape ``(N, ...)`` (``(N, C)`` for pooled
            outputs with spatial dimensions).
        """
        outputs: dict[str, list[Any]] = {name: [] for name in self.layer_modules}
        handles = []
        try:
            for name, module in self.layer_modules.items():
                handles.append(module.register_forward_hook(_collector(outputs[name])))
            with _probe_state(self.model), torch.no_grad():
                self.model(self.probe.to(_model_device(self.model)))
        finally:
            for handle in handles:
                handle.remove()
        return {
            name: self._to_array(name, captured, len(self.probe))
            for name, captured in outputs.items()
        }

    def record(
        self,
        *,
        epoch: float,
        metrics: Mapping[str, float | torch.Tensor] | None = None,
        step: int | None = None,
    ) -> int:
        """Capture the activations on the probe batch and append them as one checkpoint.

        Parameters
        ----------
        epoch : float
            Epoch of the checkpoint, strictly greater than the previous one.
        metrics : mapping of str to float or 0-d tensor, optional
            ``train_loss``, ``val_loss``, ``val_accuracy`` (a fraction), ...; the
            first record fixes the names.
        step : int, optional
            Global optimisation step (give it at every record or at none).

        Returns
        -------
        int
            Index of the checkpoint in the archive. With a monitor, :attr:`status`
            then holds its status at this checkpoint.
        """
        scalars = {name: _as_float(value) for name, value in (metrics or {}).items()}
        activations = self.capture()
        index = self.writer.append(epoch=epoch, activations=activations, metrics=scalars, step=step)
        if self.monitor is not None:
            self.status = self.monitor.update_activations(
                epoch, activations, scalars, dtype=self._activation_dtype
            )
        return index

    def _to_array(self, name: str, captured: list[Any], n_probe: int) -> np.ndarray:
        """One module's captured output -> a pooled CPU array, checked."""
        if len(captured) != 1:
            ran = "did not run" if not captured else f"ran {len(captured)} times"
            raise InputError(
                f"module {name!r} {ran} in the probe forward pass; record modules that run"
                " exactly once (a module reused at several places, such as a shared"
                " activation, has no single output)"
            )
        output = _first_tensor(name, captured[0])
        if output.ndim < 1 or output.shape[0] != n_probe:
            raise InputError(
                f"output of module {name!r} has shape {tuple(output.shape)}; its first"
                f" dimension must be the {n_probe} probe samples"
            )
        output = output.detach()
        if self.pool == "channel_mean" and output.ndim >= 3:
            output = output.mean(dim=tuple(range(2, output.ndim)))
        numpy_dtype = _KEPT_DTYPES.get(output.dtype)
        if numpy_dtype is None:
            output, numpy_dtype = output.float(), np.float32
        return output.cpu().numpy().astype(numpy_dtype, copy=False)

    def close(self) -> None:
        """Close the archive (every recorded checkpoint is already on disk)."""
        self.writer.close()

    def __enter__(self) -> ActivationRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _resolve_modules(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """Map each requested name to its module; unknown names get close matches."""
    if isinstance(layers, str) or not layers:
        raise InputError(f"layers must be a non-empty list of module names, got {layers!r}")
    named = dict(model.named_modules())
    names = [name for name in named if name]  # "" is the model itself
    resolved: dict[str, nn.Module] = {}
    for layer in layers:
        if layer in resolved:
            raise InputError(f"layer {layer!r} is listed twice")
        if not layer or layer not in named:
            raise InputError(_unknown_module_message(model, layer, names))
        try:
            fmt.check_layer_name(layer)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        resolved[layer] = named[layer]
    return resolved


def _unknown_module_message(model: nn.Module, layer: str, names: list[str]) -> str:
    what = f"{type(model).__name__} has no module named {layer!r}"
    # A leaf name given without its parents ("fc1" for "head.fc1") is the usual slip,
    # and difflib rates it low, so such names come first.
    leaf_matches = [name for name in names if layer and name.endswith(f".{layer}")]
    close = list(dict.fromkeys(leaf_matches + difflib.get_close_matches(layer, names, n=5)))[:5]
    if close:
        return f"{what}; did you mean {', '.join(map(repr, close))}?"
    listed = ", ".join(names[:_LISTED_NAMES]) + (", ..." if len(names) > _LISTED_NAMES else "")
    return f"{what}; its modules are: {listed or '(none)'}"


def _collector(sink: list[Any]) -> Any:
    """A forward hook that appends the module's output to ``sink``."""

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        sink.append(output)

    return hook


def _first_tensor(name: str, output: Any) -> torch.Tensor:
    """The tensor a module's output stands for: itself, or the first of a tuple/list."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
        if not isinstance(output, torch.Tensor):
            raise InputError(
                f"module {name!r} returned a sequence whose first element is a"
                f" {type(output).__name__}, not a tensor; record a module that returns a tensor"
            )
    if not isinstance(output, torch.Tensor):
        raise InputError(
            f"module {name!r} returned a {type(output).__name__}, not a tensor (or a tuple"
            " whose first element is one); record a module that returns a tensor"
        )
    return output


@contextmanager
def _probe_state(model: nn.Module) -> Iterator[None]:
    """Eval mode and forked RNG for the probe pass; restore both afterwards.

    Modes are saved per module because a model may mix them (a frozen, eval-mode
    backbone under a training head). They are restored parents first with
    ``train(mode)``, so a module that overrides ``train`` still sees the call and
    each child ends in its own saved mode.
    """
    saved_modes = [(module, module.training) for module in model.modules()]
    device = _model_device(model)
    accelerators = [device] if device.type != "cpu" else []
    with torch.random.fork_rng(devices=accelerators, device_type=device.type):
        model.eval()
        try:
            yield
        finally:
            for module, was_training in saved_modes:
                module.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def _as_float(value: float | torch.Tensor) -> float:
    """A metric as a Python float (0-d tensors on any device included)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().cpu().item())
    return value
