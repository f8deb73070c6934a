"""Which modules of a network to record: the default blocks, and name patterns.

The default, :func:`default_layers`, picks the network's *blocks*: the units a
researcher names when describing the architecture (the residual blocks of a ResNet,
the encoder layers of a transformer, a VGG's conv + ReLU pairs), read from the module
tree alone, without running the model. The rule, in order:

1. A **stage** is a plain container that only runs its children in order
   (``nn.Sequential`` without its own ``forward``, ``nn.ModuleList``,
   ``nn.ModuleDict``) and holds at least one module with children, or two weight
   layers. A stage is opened, and its children are the candidates.
2. Inside a stage, a child with children of its own (a residual block, an encoder
   layer, a ``Conv2dNormActivation``, DenseNet's dense block) is one block: it is
   recorded whole and not opened, even if it holds stages itself.
3. Outside every stage (the model's top level, a wrapper such as a ViT's
   ``encoder``), a module with children is opened if a stage lies somewhere inside it
   and recorded whole otherwise.
4. Modules without children (leaves) form groups, each starting at a weight layer (a
   leaf with parameters that is not a normalisation layer or a ``PReLU``: ``Linear``,
   ``Conv2d``, ``Embedding``, ``LSTM``, ...). A group is recorded by its last member
   that changes the values (the ReLU after a convolution, the pooling that ends a VGG
   stage); dropout, identity and flatten leaves never end a group, and leaves before
   the first weight layer of a sequence belong to no group.
5. If that finds a single module, the rule is applied inside it instead.

Patterns (:func:`match_layers`) are module names with shell wildcards that work
segment by segment, like paths with ``.`` for ``/``: ``*`` and ``?`` never cross a
dot (``"layer*.?"`` is ``layer1.0`` but not ``layer1.0.downsample.0``) and a ``**``
segment matches any number of segments (``"encoder.**.mlp"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from torch import nn

__all__ = ["default_layers", "is_pattern", "match_layers"]

#: Leaves with parameters that are not weight layers: they belong to a group, never start one.
_NORMALISATION: tuple[type[nn.Module], ...] = tuple(
    kind
    for kind in (
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
        nn.LayerNorm,
        getattr(nn, "RMSNorm", None),  # torch >= 2.4
        nn.LocalResponseNorm,
        nn.PReLU,
    )
    if kind is not None
)
#: Leaves whose output is their input (in eval mode) or only reshaped: never a group's end.
_PASS_THROUGH: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
)
_WILDCARDS = frozenset("*?[")


def default_layers(model: nn.Module) -> list[str]:
    """The names of the network's blocks, in the order they are registered.

    Parameters
    ----------
    model : torch.nn.Module
        The network.

    Returns
    -------
    list of str
        Module names as in ``model.named_modules()`` (the rule is in this module's
        docstring); empty for a model without submodules.

    Examples
    --------
    >>> from torch import nn
    >>> mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> default_layers(mlp)
    ['1', '2']
    """
    root, prefix = model, ""
    while True:
        selected = _blocks(root, prefix, inside_stage=_is_plain_container(root))
        if len(selected) != 1:
            return selected
        only = model.get_submodule(selected[0])
        if not _has_children(only):
            return selected
        root, prefix = only, f"{selected[0]}."


def is_pattern(name: str) -> bool:
    """Whether ``name`` holds a wildcard (``*``, ``?``, ``[``) and is matched as a pattern."""
    return not _WILDCARDS.isdisjoint(name)


def match_layers(pattern: str, names: Iterable[str]) -> list[str]:
    """The names that ``pattern`` matches, in the order given.

    Parameters
    ----------
    pattern : str
        A module name with wildcards, matched segment by segment (``.`` separates
        segments): ``*``, ``?`` and ``[...]`` within one segment, ``**`` for any
        number of segments.
    names : iterable of str
        Candidate module names (``""``, the model itself, never matches).

    Examples
    --------
    >>> match_layers("layer*.?", ["layer1", "layer1.0", "layer1.0.conv1", "layer2.1"])
    ['layer1.0', 'layer2.1']
    """
    wanted = pattern.split(".")
    return [name for name in names if name and _match_segments(wanted, name.split("."))]


def _match_segments(pattern: list[str], name: list[str]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_segments(rest, name[skip:]) for skip in range(len(name) + 1))
    return bool(name) and fnmatchcase(name[0], head) and _match_segments(rest, name[1:])


def _blocks(module: nn.Module, prefix: str, *, inside_stage: bool) -> list[str]:
    """Rules 1-4 on the children of ``module``; names get ``prefix``."""
    selected: list[str] = []
    group_end: str | None = None  # the member that ends the current group of leaves
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if _has_children(child):
            if group_end is not None:
                selected.append(group_end)
                group_end = None
            if _is_stage(child):
                selected += _blocks(child, f"{path}.", inside_stage=True)
            elif not inside_stage and _holds_stage(child):
                selected += _blocks(child, f"{path}.", inside_stage=False)
            else:
                selected.append(path)
        elif _is_weight_layer(child):
            if group_end is not None:
                selected.append(group_end)
            group_end = path
        elif group_end is not None and not isinstance(child, _PASS_THROUGH):
            group_end = path
    if group_end is not None:
        selected.append(group_end)
    return selected


def _has_children(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _is_plain_container(module: nn.Module) -> bool:
    """A container that only runs its children in order, or never runs itself."""
    if isinstance(module, nn.Sequential):
        return type(module).forward is nn.Sequential.forward
    if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return type(module).forward is nn.Module.forward
    return False


def _is_weight_layer(module: nn.Module) -> bool:
    """A leaf with parameters of its own that is not a normalisation layer."""
    has_parameters = next(module.parameters(recurse=False), None) is not None
    return has_parameters and not isinstance(module, _NORMALISATION)


def _is_stage(module: nn.Module) -> bool:
    """Rule 1: a plain container of blocks, of two weight layers or more, or that never runs."""
    if not _is_plain_container(module):
        return False
    children = list(module.children())
    if not isinstance(module, nn.Sequential):  # a list or dict is run by its owner
        return True
    return any(map(_has_children, children)) or sum(map(_is_weight_layer, children)) >= 2


def _holds_stage(module: nn.Module) -> bool:
    return any(_is_stage(inner) for inner in module.modules() if inner is not module)
