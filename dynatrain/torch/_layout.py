"""Where a layer's output keeps its features, and how the layer is pooled.

Recorded outputs are ``(N, ...)``: the probe samples, then features. Convolutional
networks keep the channels on dimension 1, ``(N, C, H, W)`` (*channels first*);
transformers keep them last, ``(N, tokens, D)`` (*channels last*). Pooling averages
the dimensions that are not channels, so that a layer's stored activations are
``(N, C)`` whatever the resolution, and it must know which is which: averaging a ViT
encoder layer's ``(N, 65, 64)`` over its last dimension keeps the 65 tokens and loses
the 64 features.

**Pooling names** (stored per layer in the archive):

``"spatial_mean"``
    ``(N, C, *spatial) -> (N, C)``: mean over every dimension after the channels.
``"token_mean"``
    ``(N, *tokens, D) -> (N, D)``: mean over every dimension between the samples and
    the features (the tokens of a sequence, the positions of a channels-last map).
``"class_token"``
    ``(N, tokens, D) -> (N, D)``: the first token (a ViT's class token).
``"none"``
    stored as it is (also what ``(N, features)`` outputs get under ``"auto"``).

**How** ``"auto"`` **decides**, from a probe pass in which every module's output shape is
seen: a module whose type fixes its layout says it (``Conv*``, batch/instance/group
norm, pooling and ``Upsample`` layers: channels first; ``Linear``, ``LayerNorm``,
``Embedding``, ``MultiheadAttention``, ``nn.Transformer*`` layers, RNNs and
torchvision's ``Permute([0, 2, 3, 1])``: channels last). Any other module (an
activation, a residual block, an encoder block, a custom module) takes the layout of
the last module with a layout that finished before it in the pass (for a block, its
own last such layer). If its output shape differs from that module's, the layout
follows from where that module's channel count sits in the output (dimension 1:
channels first; the last dimension: channels last; so a patch embedding that
flattens and transposes a convolution's output is channels last) or from its other
dimensions being kept (a DenseNet block concatenates more channels at the same
resolution: channels first). When those disagree or no module says, an output of
three or more dimensions is an error that asks for the layer's pooling to be stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import torch
from torch import nn

from dynatrain.errors import InputError

__all__ = [
    "POOLINGS",
    "POOL_CHOICES",
    "Layout",
    "OutputInfo",
    "auto_pooling",
    "own_layout",
    "pool",
    "pooled_shape",
]

Layout = Literal["channels_first", "channels_last"]
Pooling = Literal["spatial_mean", "token_mean", "class_token", "none"]
#: What a layer can be stored as (the values of the archive's per-layer attribute).
POOLINGS: Final[tuple[str, ...]] = ("spatial_mean", "token_mean", "class_token", "none")
#: What ``pool`` accepts for a layer: a pooling, ``"auto"``, or the older name of
#: ``"spatial_mean"``.
POOL_CHOICES: Final[tuple[str, ...]] = ("auto", *POOLINGS, "channel_mean")
ALIASES: Final = {"channel_mean": "spatial_mean"}
_LAYOUT_POOLING: Final[dict[str, str]] = {
    "channels_first": "spatial_mean",
    "channels_last": "token_mean",
}

_CHANNELS_FIRST: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
    nn.FractionalMaxPool2d,
    nn.FractionalMaxPool3d,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
)
_CHANNELS_LAST: tuple[type[nn.Module], ...] = tuple(
    kind
    for kind in (
        nn.Linear,
        nn.Bilinear,
        nn.LayerNorm,
        getattr(nn, "RMSNorm", None),  # torch >= 2.4
        nn.Embedding,
        nn.EmbeddingBag,
        nn.MultiheadAttention,
        nn.TransformerEncoderLayer,
        nn.TransformerDecoderLayer,
        nn.TransformerEncoder,
        nn.TransformerDecoder,
        nn.Transformer,
        nn.RNNBase,
    )
    if kind is not None
)
#: torchvision's ``Permute`` (ConvNeXt, Swin) moves the channels: by its ``dims``.
_PERMUTE_LAYOUTS: Final[dict[tuple[int, ...], str]] = {
    (0, 2, 3, 1): "channels_last",
    (0, 3, 1, 2): "channels_first",
}


@dataclass(frozen=True)
class OutputInfo:
    """A module's output in the probe pass: what layout inference needs of it.

    Attributes
    ----------
    shape : tuple of int
        Shape of the (first) output tensor.
    layout : {"channels_first", "channels_last"} or None
        The layout its type fixes, if any (:func:`own_layout`).
    sequence_first : bool
        The module is (or holds) a transformer or RNN layer built with
        ``batch_first=False``, whose outputs are ``(tokens, N, features)``.
    """

    shape: tuple[int, ...]
    layout: Layout | None
    sequence_first: bool = False


def own_layout(module: nn.Module, shape: tuple[int, ...]) -> Layout | None:
    """The layout a module's type fixes for its output of ``shape``, or ``None``.

    Where the module knows its feature count (``out_channels``, ``num_features``,
    ``out_features``, ``normalized_shape``, ...), the output must show it where the
    type says; a subclass that moves it (torchvision's ``LayerNorm2d``, a channels-
    first ``LayerNorm``) gets the other layout if the count is there, else ``None``.
    """
    if isinstance(module, _CHANNELS_FIRST):
        layout: Layout = "channels_first"
    elif isinstance(module, _CHANNELS_LAST):
        layout = "channels_last"
    elif type(module).__name__ == "Permute":
        dims = getattr(module, "dims", None)
        return _PERMUTE_LAYOUTS.get(tuple(dims)) if dims is not None else None  # type: ignore[return-value]
    else:
        return None
    size = _feature_count(module)
    if size is None or len(shape) < 3:
        return layout
    first, last = shape[1] == size, shape[-1] == size
    if first and last:
        return layout
    if first:
        return "channels_first"
    if last:
        return "channels_last"
    return None


def _feature_count(module: nn.Module) -> int | None:
    """The number of features a module's output has, where its attributes say it."""
    if isinstance(module, nn.RNNBase):
        size = module.proj_size or module.hidden_size
        return size * (2 if module.bidirectional else 1)
    if isinstance(module, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
        return module.linear2.out_features
    for attribute in (
        "out_channels",
        "num_features",
        "num_channels",
        "out_features",
        "embedding_dim",
        "embed_dim",
    ):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
    normalized = getattr(module, "normalized_shape", None)
    if isinstance(normalized, tuple | list) and normalized:
        return int(normalized[-1])
    return None


def is_sequence_first(module: nn.Module) -> bool:
    """Whether a transformer or RNN layer (or the first one inside) is ``batch_first=False``."""
    for inner in module.modules():
        if isinstance(inner, (nn.MultiheadAttention, nn.RNNBase, nn.Transformer)):
            return not inner.batch_first
    return False


def auto_pooling(name: str, info: OutputInfo, source: OutputInfo | None) -> str:
    """The pooling ``"auto"`` gives a layer.

    Parameters
    ----------
    name : str
        The layer (for messages).
    info : OutputInfo
        The layer's output.
    source : OutputInfo or None
        ``info`` itself if the layer's type fixes a layout; otherwise the last module
        with a layout that finished before it in the probe pass (``None`` if none did).

    Raises
    ------
    InputError
        If the output has three or more dimensions and its layout cannot be told, or
        comes from a ``batch_first=False`` layer.
    """
    if len(info.shape) <= 2:
        return "none"
    if source is not None and source.sequence_first:
        raise InputError(
            f"layer {name!r}: its output {_shape_text(info.shape)} comes from a layer built"
            " with batch_first=False, whose outputs are (tokens, N, features); build the"
            " model with batch_first=True, or state the layer's pooling (pool={...})"
        )
    layout = _layout_of(info, source)
    if layout is None:
        raise InputError(
            f"layer {name!r}: cannot tell whether its output {_shape_text(info.shape)} is"
            " channels first (N, C, ...) or a token sequence (N, tokens, D); state its"
            f" pooling: pool={{{name!r}: 'spatial_mean'}} or 'token_mean' (or"
            " 'class_token', 'none')"
        )
    return _LAYOUT_POOLING[layout]


def _layout_of(info: OutputInfo, source: OutputInfo | None) -> Layout | None:
    if info.layout is not None:
        return info.layout
    if source is None or source.layout is None or len(source.shape) < 2:
        return None
    if source.shape == info.shape:
        return source.layout
    # The shape changed after the source (a concatenation, a flatten + transpose):
    # where did its channels go, and are its other dimensions still where they were?
    votes: set[Layout] = set()
    if source.layout == "channels_first":
        channels, others, kept = source.shape[1], source.shape[2:], info.shape[2:]
    else:
        channels, others, kept = source.shape[-1], source.shape[1:-1], info.shape[1:-1]
    if others == kept:  # e.g. DenseNet: more channels at the same resolution
        votes.add(source.layout)
    where = [dim for dim in range(1, len(info.shape)) if info.shape[dim] == channels]
    if where == [1]:
        votes.add("channels_first")
    elif where == [len(info.shape) - 1]:
        votes.add("channels_last")
    return votes.pop() if len(votes) == 1 else None


def check_pooling(name: str, pooling: str, shape: tuple[int, ...]) -> str:
    """Check that ``pooling`` applies to an output of ``shape``; return what is stored.

    A spatial or token mean of an output without such dimensions (``(N, D)``) stores
    it as it is, and says so: ``"none"``.
    """
    if pooling == "class_token" and len(shape) != 3:
        raise InputError(
            f"layer {name!r}: 'class_token' takes the first token of a (N, tokens, D)"
            f" output; this one is {_shape_text(shape)}"
        )
    if pooling in ("spatial_mean", "token_mean") and len(shape) <= 2:
        return "none"
    return pooling


def pooled_shape(shape: tuple[int, ...], pooling: str) -> tuple[int, ...]:
    """Shape of an output of ``shape`` once pooled: ``(N, C)``, ``(N, D)`` or ``shape``."""
    if pooling == "spatial_mean":
        return shape[:2]
    if pooling in ("token_mean", "class_token"):
        return (shape[0], shape[-1])
    return shape


def pool(output: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool one output where it lies (on its device), in a new tensor.

    Half-precision outputs (float16, bfloat16, as autocast gives them) are averaged in
    float32, so that a mean over thousands of positions loses nothing; float16 comes
    back as float16, bfloat16 stays float32 (NumPy has no bfloat16). ``"none"``
    returns a copy: a later in-place operation (``ReLU(inplace=True)``) must not
    change what was recorded.
    """
    accumulate = torch.float32 if output.dtype in (torch.float16, torch.bfloat16) else None
    if pooling == "spatial_mean":
        pooled = output.mean(dim=tuple(range(2, output.ndim)), dtype=accumulate)
    elif pooling == "token_mean":
        pooled = output.mean(dim=tuple(range(1, output.ndim - 1)), dtype=accumulate)
    elif pooling == "class_token":
        return output[:, 0].clone()
    else:
        return output.clone()
    return pooled.to(torch.float16) if output.dtype == torch.float16 else pooled


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"
