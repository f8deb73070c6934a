"""The recorder: the probe batch through the model, outputs pooled, one append a checkpoint."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dynatrain.archive import format as fmt
from dynatrain.archive.writer import ArchiveWriter
from dynatrain.errors import InputError
from dynatrain.live import recorder_monitor
from dynatrain.torch import _layout
from dynatrain.torch._layout import OutputInfo
from dynatrain.torch._selection import default_layers, is_pattern, match_layers

__all__ = ["ActivationRecorder"]

#: Torch dtypes stored as they are; every other type is stored as float32.
_KEPT_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
#: The transfer type of an accelerator's outputs: the widest of the layers' stored types.
_WIDTH: dict[Any, int] = {np.float16: 0, np.float32: 1, np.float64: 2}
_BY_WIDTH = {0: torch.float16, 1: torch.float32, 2: torch.float64}
#: Module names listed in the error for an unknown name when none is close.
_LISTED_NAMES = 20


@dataclass(frozen=True)
class _Call:
    """A module's first call in the survey pass (see :meth:`ActivationRecorder._survey`)."""

    finished: int  # position among the modules' completions (input side first)
    calls: int
    info: OutputInfo | None  # None: the output is not a tensor with a batch dimension
    problem: str  # why info is None ("" otherwise)


class ActivationRecorder:
    """Append the activations of chosen modules on a fixed probe batch, checkpoint by checkpoint.

    Parameters
    ----------
    model : torch.nn.Module
        The network being trained.
    layers : sequence of str, optional
        What to record: module names as in ``model.named_modules()`` (``"fc1"``,
        ``"layer1.0"``) and patterns with wildcards (``"layer*.?"``,
        ``"encoder.layers.*"``; ``*`` and ``?`` stay within one dot-separated part,
        ``**`` spans parts). Names keep the order given; the matches of a pattern come
        in the order the probe pass runs them. Default: the network's blocks, input
        side first (the residual blocks of a ResNet, the encoder layers of a
        transformer, each conv + ReLU of a VGG, each ``Linear`` + activation of an
        MLP; the rule is in :func:`dynatrain.torch.default_layers`). The order is the
        archive's layer order; :meth:`describe` lists what was chosen.
    probe : torch.Tensor
        The probe batch, shape ``(N, ...)``, the same at every checkpoint (e.g. the
        first 64 validation samples). It is copied once, and kept on the model's
        device.
    path : str or path-like
        The archive to create (``.h5``/``.hdf5`` or ``.zarr``). Its folder must exist;
        an existing archive is refused unless ``mode="w"``.
    metadata : mapping, optional
        Run metadata stored as root attributes (``run_id``, ``model``, ``dataset``,
        ``seed``, ``optimizer``, ``lr``, ``expected_checkpoints``, ...).
    pool : str or mapping, default "auto"
        How each output is reduced before it is stored. ``"auto"`` averages what is
        not a feature, by the output's layout: ``(N, C, H, W) -> (N, C)`` for
        convolutional outputs (``"spatial_mean"``), ``(N, tokens, D) -> (N, D)`` for
        token sequences (``"token_mean"``), ``(N, features)`` kept. One name for every
        layer: ``"spatial_mean"`` (``"channel_mean"`` is its older name),
        ``"token_mean"``, ``"class_token"`` (the first token of ``(N, tokens, D)``),
        ``"none"`` (or ``None``: stored as they are). A mapping states it per layer
        (names or patterns, e.g. ``{"encoder.layers.*": "class_token"}``); layers it
        does not name get ``"auto"``. What each layer got is stored as the attribute
        ``pooling`` of ``/layers/<name>``. How ``"auto"`` decides is in
        ``dynatrain.torch._layout``.
    monitor : bool or dynatrain.live.Monitor, optional
        Also analyse each checkpoint in the training loop, without reading the
        archive: ``True`` makes a :class:`~dynatrain.live.Monitor` with the default
        settings (it needs ``expected_checkpoints`` among the writer options or in
        the metadata, to fix its windows), or pass your own. After each
        :meth:`record`, :attr:`status` holds its status (see
        :meth:`dynatrain.live.Monitor.status`).
    autocast : torch.dtype, optional
        Run the probe pass under ``torch.autocast`` with this type
        (``torch.bfloat16``, ``torch.float16``), as a mixed-precision training step
        does. Default: the precision of the context :meth:`record` is called in.
    **writer_options
        Passed to :class:`~dynatrain.archive.writer.ArchiveWriter`: ``mode``,
        ``activation_dtype`` (e.g. ``"float16"``), ``chunk_checkpoints``,
        ``compression`` (e.g. ``"gzip"``).

    Raises
    ------
    InputError
        Before anything is created: if the archive exists (and ``mode`` is not
        ``"w"``) or its folder does not; if a layer names no module (the message lists
        close matches), a pattern matches none, a name is repeated or a named module
        does not run exactly once in the probe pass; if ``pool`` is unknown or an
        output's layout cannot be told; if ``probe`` is not a tensor with a batch
        dimension.

    Notes
    -----
    **The probe pass.** Making the recorder runs the probe batch through the model
    once, to check the layers and decide their pooling (nothing is stored). Each
    :meth:`record` runs it again, in eval mode and under ``torch.no_grad()``, with
    forward hooks on the recorded modules that pool each output where it lies (on
    the GPU for a GPU model) as soon as it is made, then copies all of them to the
    host at once and appends them as one checkpoint. ``torch.no_grad()`` rather than
    ``torch.inference_mode()``: a module that caches a tensor in its forward pass
    (lazy modules, rotary-embedding caches) would otherwise keep an inference tensor
    that breaks the next training step. The training state is left as it was: every
    module's train/eval mode, every ``.grad`` and the random number generators.

    **Outputs.** A module that returns a tuple or list (``nn.LSTM``,
    ``nn.MultiheadAttention``) is recorded by its first element, which by PyTorch's
    convention is the main output; if that element is not a tensor, or the output is
    something else (a dict, ``None``), the recorder refuses the layer. Every recorded
    output must have the probe samples as its first dimension (batch-first models:
    a layer built with ``batch_first=False`` is refused under ``"auto"``).

    **Types.** Activations are copied to the host as NumPy arrays: float16, float32
    and float64 outputs keep their type, any other type (bfloat16, integers)
    becomes float32; ``activation_dtype="float16"`` then stores them at half size.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | None = None,
        probe: torch.Tensor | None = None,
        path: str | os.PathLike[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        pool: str | Mapping[str, str] | None = "auto",
        autocast: torch.dtype | None = None,
        monitor: Any = None,
        **writer_options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(probe, torch.Tensor) or probe.ndim < 1 or len(probe) == 0:
            shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else None
            raise InputError(
                f"probe must be a tensor of shape (N, ...) with N >= 1, got"
                f" {type(probe).__name__} of shape {shape}"
            )
        if path is None:
            raise InputError("path is required: the archive to create (.h5, .hdf5 or .zarr)")
        _check_archive_path(os.fspath(path), writer_options.get("mode", "w-"))
        if isinstance(layers, str) or (layers is not None and not layers):
            raise InputError(
                f"layers must be a non-empty list of module names or patterns, got {layers!r}"
            )
        _check_pool(pool)
        if autocast is not None and not isinstance(autocast, torch.dtype):
            raise InputError(
                f"autocast must be a torch dtype such as torch.bfloat16, got {autocast!r}"
            )
        self.model = model
        self.probe = probe.detach().clone()
        self.autocast = autocast
        self._device_probe: torch.Tensor | None = None
        self._pinned: torch.Tensor | None = None
        self._activation_dtype = writer_options.get("activation_dtype")

        calls = self._survey()
        #: Modules left out of the default selection or a pattern's matches, and why.
        self.skipped: dict[str, str] = {}
        self.layers: list[str] = self._select(layers, calls)
        self.layer_modules: dict[str, nn.Module] = {
            name: model.get_submodule(name) for name in self.layers
        }
        self.output_shapes: dict[str, tuple[int, ...]] = {}
        #: Per layer, the pooling it gets (one of ``dynatrain.torch.POOLINGS``).
        self.pooling: dict[str, str] = {}
        for name, choice in _pool_choices(pool, self.layers).items():
            info = _usable(name, calls[name])
            self.output_shapes[name] = info.shape
            if choice == "auto":
                source = _layout_source(name, calls, info)
                self.pooling[name] = _layout.auto_pooling(name, info, source)
            else:
                self.pooling[name] = _layout.check_pooling(name, choice, info.shape)
        #: Per layer, the shape of one checkpoint's stored activations.
        self.stored_shapes: dict[str, tuple[int, ...]] = {
            name: _layout.pooled_shape(shape, self.pooling[name])
            for name, shape in self.output_shapes.items()
        }
        # str subclasses (torch.__version__ is one) become plain strings: h5py cannot
        # store them as attributes.
        plain_metadata = {
            key: str(value) if isinstance(value, str) else value
            for key, value in (metadata or {}).items()
        }
        # The live analysis (optional) is fixed before the archive exists.
        self.monitor = recorder_monitor(
            monitor, list(self.layers), metadata=metadata, writer_options=writer_options
        )
        #: The monitor's status after the last record (None without a monitor).
        self.status: dict[str, Any] | None = None
        _make_folder(os.fspath(path))
        self.writer = ArchiveWriter(
            path,
            plain_metadata,
            layer_attributes={name: {fmt.POOLING_ATTR: p} for name, p in self.pooling.items()},
            **writer_options,
        )

    @property
    def path(self) -> str:
        """The archive being written."""
        return self.writer.path

    @property
    def n_checkpoints(self) -> int:
        """Checkpoints recorded so far."""
        return self.writer.n_checkpoints

    def describe(self) -> str:
        """The recorded layers, one a line: module type, output shape, pooling, stored shape.

        The modules that a default selection or a pattern left out follow, with why.
        """
        rows = [("layer", "module", "output", "pooling", "stored")]
        for name in self.layers:
            rows.append(
                (
                    name,
                    type(self.layer_modules[name]).__name__,
                    _shape_text(self.output_shapes[name]),
                    self.pooling[name],
                    _shape_text(self.stored_shapes[name]),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        lines += [f"left out: {name} ({why})" for name, why in self.skipped.items()]
        return "\n".join(lines)

    def capture(self) -> dict[str, np.ndarray]:
        """Run the probe batch and return each recorded module's output, pooled.

        The model runs in eval mode under ``torch.no_grad()``; afterwards every
        module is back in the mode it was in, no ``.grad`` has changed, the random
        number generators are in the state they were in and no hook is left on the
        model, also when the forward pass raises.

        Returns
        -------
        dict of str to numpy.ndarray
            Per layer name, in the recorder's layer order, the pooled output on the
            probe batch as a host array of shape ``stored_shapes[name]``.
        """
        pooled: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        handles = []
        try:
            for name, module in self.layer_modules.items():
                hook = _pooling_hook(name, self.pooling[name], pooled[name])
                handles.append(module.register_forward_hook(hook))
            with self._probe_pass() as probe:
                self.model(probe)
        finally:
            for handle in handles:
                handle.remove()
        tensors = []
        for name, outputs in pooled.items():
            if len(outputs) != 1:
                raise InputError(f"layer {name!r} {_ran(len(outputs))} in the probe pass")
            if tuple(outputs[0].shape) != self.stored_shapes[name]:
                raise InputError(
                    f"layer {name!r}: its pooled output is now {_shape_text(outputs[0].shape)},"
                    f" it was {_shape_text(self.stored_shapes[name])} when the recorder was made"
                )
            tensors.append(outputs[0])
        return dict(zip(self.layers, self._to_host(tensors), strict=True))

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
            Epoch of the checkpoint, strictly greater than the previous one (record
            epoch 0, before training, to keep the untrained state).
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

    def close(self) -> None:
        """Close the archive (every recorded checkpoint is already on disk)."""
        self.writer.close()

    def __enter__(self) -> ActivationRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the probe pass ------------------------------------------------------------------------

    @contextmanager
    def _probe_pass(self) -> Iterator[torch.Tensor]:
        """Eval mode, no autograd, forked RNG, autocast if asked; yields the probe on device."""
        device = _model_device(self.model)
        if self._device_probe is None or self._device_probe.device != device:
            self._device_probe = self.probe.to(device)
        precision = (
            torch.autocast(device.type, dtype=self.autocast)
            if self.autocast is not None
            else nullcontext()
        )
        with _probe_state(self.model, device), torch.no_grad(), precision:
            yield self._device_probe

    def _survey(self) -> dict[str, _Call]:
        """Run the probe once with a hook on every module; note each one's first call."""
        finished: dict[str, int] = {}
        calls: dict[str, int] = {}
        infos: dict[str, tuple[OutputInfo | None, str]] = {}
        n_probe = len(self.probe)

        def watcher(name: str, module: nn.Module) -> Any:
            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1
                if name not in finished:
                    finished[name] = len(finished)
                    infos[name] = _output_info(module, output, n_probe)

            return hook

        handles = []
        try:
            for name, module in self.model.named_modules():
                if name:
                    handles.append(module.register_forward_hook(watcher(name, module)))
            with self._probe_pass() as probe:
                self.model(probe)
        finally:
            for handle in handles:
                handle.remove()
        return {name: _Call(finished[name], calls[name], *infos[name]) for name in finished}

    def _select(self, layers: Sequence[str] | None, calls: dict[str, _Call]) -> list[str]:
        """The recorded names: checked exact names, expanded patterns, or the default."""
        named = [name for name, _ in self.model.named_modules() if name]
        in_order = sorted(calls, key=lambda name: calls[name].finished)
        if layers is None:
            blocks = self._keep_runnable(default_layers(self.model), calls, "default blocks")
            blocks.sort(key=lambda name: calls[name].finished)
            if not blocks:
                raise InputError(
                    f"{type(self.model).__name__} has no blocks to record by default; name"
                    " its modules with layers=[...]"
                )
            return blocks
        chosen: list[str] = []
        for entry in layers:
            if not isinstance(entry, str):
                raise InputError(f"layer names must be strings, got {entry!r}")
            if is_pattern(entry):
                matches = match_layers(entry, in_order + [n for n in named if n not in calls])
                if not matches:
                    raise InputError(
                        f"layer pattern {entry!r} matches no module of {type(self.model).__name__}"
                    )
                runnable = self._keep_runnable(matches, calls, f"pattern {entry!r}")
                chosen += [name for name in runnable if name not in chosen]
                continue
            if entry in chosen:
                raise InputError(f"layer {entry!r} is listed twice")
            if entry not in named:
                raise InputError(_unknown_module_message(self.model, entry, named))
            try:
                fmt.check_layer_name(entry)
            except ValueError as exc:
                raise InputError(str(exc)) from exc
            call = calls.get(entry)
            if call is None or call.calls != 1:
                raise InputError(
                    f"module {entry!r} {_ran(0 if call is None else call.calls)} in the probe"
                    " pass; record modules that run exactly once (a module reused at several"
                    " places, such as a shared activation, has no single output)"
                )
            chosen.append(entry)
        return chosen

    def _keep_runnable(self, names: list[str], calls: dict[str, _Call], why: str) -> list[str]:
        """The names that ran exactly once; the others go to ``skipped``."""
        kept = []
        for name in names:
            call = calls.get(name)
            if call is None or call.calls != 1:
                self.skipped[name] = f"{why}: {_ran(0 if call is None else call.calls)}"
            else:
                kept.append(name)
        return kept

    # -- to the host ---------------------------------------------------------------------------

    def _to_host(self, tensors: list[torch.Tensor]) -> list[np.ndarray]:
        """Pooled outputs -> host arrays, with one device-to-host copy for an accelerator."""
        kept = [_KEPT_DTYPES.get(t.dtype, np.float32) for t in tensors]
        if tensors[0].device.type == "cpu":
            return [t.numpy() if t.dtype in _KEPT_DTYPES else t.float().numpy() for t in tensors]
        width = max(_WIDTH[dtype] for dtype in kept)
        if self._activation_dtype in ("float16", "float32"):  # stored narrower: send narrower
            width = min(width, _WIDTH[np.dtype(self._activation_dtype).type])
        flat = torch.cat([t.reshape(-1).to(_BY_WIDTH[width]) for t in tensors])
        host = self._host_buffer(flat)
        arrays, start = [], 0
        for tensor, dtype in zip(tensors, kept, strict=True):
            size = tensor.numel()
            chunk = host[start : start + size].reshape(tuple(tensor.shape))
            narrower = dtype if _WIDTH[dtype] <= _WIDTH[host.dtype.type] else host.dtype.type
            arrays.append(chunk.astype(narrower, copy=True))
            start += size
        return arrays

    def _host_buffer(self, flat: torch.Tensor) -> np.ndarray:
        """Copy ``flat`` to the host; from CUDA into a reused pinned buffer, asynchronously."""
        if flat.device.type != "cuda":
            return flat.cpu().numpy()
        if (
            self._pinned is None
            or self._pinned.shape != flat.shape
            or self._pinned.dtype != flat.dtype
        ):
            self._pinned = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
        self._pinned.copy_(flat, non_blocking=True)
        torch.cuda.current_stream(flat.device).synchronize()
        return self._pinned.numpy()


# -- checks ------------------------------------------------------------------------------------


def _check_archive_path(path: str, mode: str) -> None:
    """Refuse, in one line, an archive that exists (unless replaced) or cannot have a folder.

    Missing folders are not an error (they are created with the archive, after the probe
    pass has checked the layers); a file where a folder should be is.
    """
    if fmt.is_url(path):
        return
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise InputError(f"{path}: cannot create the archive: {ancestor} is not a folder")
    if mode == "w-" and os.path.lexists(path):
        raise InputError(
            f"{path}: already exists; pass mode='w' to replace it, or choose another path"
        )


def _make_folder(path: str) -> None:
    """Create the missing folders above ``path``; one line if the system refuses."""
    if fmt.is_url(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{path}: cannot create its folder {folder} ({exc.strerror or exc})"
        ) from None


def _check_pool(pool: str | Mapping[str, str] | None) -> None:
    choices = ", ".join(_layout.POOL_CHOICES)
    values = pool.values() if isinstance(pool, Mapping) else [pool]
    for value in values:
        if value is not None and value not in _layout.POOL_CHOICES:
            raise InputError(f"invalid pool {value!r}: use None or one of {choices}")


def _pool_choices(pool: str | Mapping[str, str] | None, layers: list[str]) -> dict[str, str]:
    """Per recorded layer, the pooling asked for (``"auto"`` where nothing is said)."""

    def canonical(value: str | None) -> str:
        value = "none" if value is None else value
        return _layout.ALIASES.get(value, value)

    if not isinstance(pool, Mapping):
        return {name: canonical(pool) for name in layers}
    choices: dict[str, str] = {}
    for key in pool:
        matched = match_layers(key, layers) if is_pattern(key) else [key] * (key in layers)
        if not matched:
            raise InputError(f"pool names {key!r}, which matches no recorded layer")
    for name in layers:
        if name in pool:
            choices[name] = canonical(pool[name])
            continue
        stated = [key for key in pool if is_pattern(key) and match_layers(key, [name])]
        choices[name] = canonical(pool[stated[0]]) if stated else "auto"
    return choices


def _output_info(module: nn.Module, output: Any, n_probe: int) -> tuple[OutputInfo | None, str]:
    """What the survey keeps of a module's output, or why it cannot be recorded."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
        if not isinstance(output, torch.Tensor):
            return None, (
                f"returned a sequence whose first element is a {type(output).__name__}, not a"
                " tensor; record a module that returns a tensor"
            )
    if not isinstance(output, torch.Tensor):
        return None, (
            f"returned a {type(output).__name__}, not a tensor (or a tuple whose first"
            " element is one); record a module that returns a tensor"
        )
    if output.ndim < 1 or output.shape[0] != n_probe:
        why = (
            "; it is built with batch_first=False, so its outputs are (tokens, N, features):"
            " build it with batch_first=True"
            if output.ndim >= 2 and output.shape[1] == n_probe and _layout.is_sequence_first(module)
            else ""
        )
        return None, (
            f"output has shape {_shape_text(output.shape)}; its first dimension must be the"
            f" {n_probe} probe samples{why}"
        )
    layout = _layout.own_layout(module, tuple(output.shape))
    sequence_first = layout == "channels_last" and _layout.is_sequence_first(module)
    return OutputInfo(tuple(output.shape), layout, sequence_first), ""


def _usable(name: str, call: _Call) -> OutputInfo:
    if call.info is None:
        raise InputError(f"module {name!r} {call.problem}")
    return call.info


def _layout_source(name: str, calls: dict[str, _Call], info: OutputInfo) -> OutputInfo | None:
    """The layer itself if its type fixes a layout, else the last such module before it."""
    if info.layout is not None:
        return info
    before = calls[name].finished
    candidates = [
        call
        for call in calls.values()
        if call.finished < before and call.info is not None and call.info.layout is not None
    ]
    return max(candidates, key=lambda call: call.finished).info if candidates else None


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


# -- hooks and state ---------------------------------------------------------------------------


def _pooling_hook(name: str, pooling: str, sink: list[torch.Tensor]) -> Any:
    """A forward hook that pools the module's output at once and keeps only the result."""

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        tensor = output[0] if isinstance(output, (tuple, list)) and output else output
        if not isinstance(tensor, torch.Tensor):
            raise InputError(f"module {name!r} returned a {type(tensor).__name__}, not a tensor")
        sink.append(_layout.pool(tensor.detach(), pooling))

    return hook


@contextmanager
def _probe_state(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode and forked RNG for the probe pass; restore both afterwards.

    Modes are saved per module because a model may mix them (a frozen, eval-mode
    backbone under a training head), and each module gets its own back. Where no
    module overrides ``train``, the flags are set directly: ``model.eval()`` walks
    the tree once per module through ``nn.Module.__setattr__``, which on a network of
    hundreds of modules costs more than the probe's forward pass. Where one does
    (a module that keeps its batch norm frozen, say), ``model.eval()`` and
    ``train(mode)`` are called, parents first, so that the override sees them.
    """
    modules = list(model.modules())
    saved_modes = [module.training for module in modules]
    plain = all(type(module).train is nn.Module.train for module in modules)
    accelerators = [device] if device.type != "cpu" else []
    with torch.random.fork_rng(devices=accelerators, device_type=device.type):
        if plain:
            for module in modules:
                module.__dict__["training"] = False
        else:
            model.eval()
        try:
            yield
        finally:
            if plain:
                for module, was_training in zip(modules, saved_modes, strict=True):
                    module.__dict__["training"] = was_training
            else:
                for module, was_training in zip(modules, saved_modes, strict=True):
                    if module.training != was_training or module is model:
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


def _ran(calls: int) -> str:
    return "did not run" if calls == 0 else f"ran {calls} times"


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"
