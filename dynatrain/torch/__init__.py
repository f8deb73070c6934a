"""Record layer activations of a PyTorch model into an activation archive.

Optional: needs the ``torch`` extra (``pip install 'dynatrain[torch]'``, or first
``pip install torch --index-url https://download.pytorch.org/whl/cpu`` for the CPU
build); the core package never imports this module.

>>> from dynatrain.torch import ActivationRecorder
>>> with ActivationRecorder(model, probe=x_val[:64], path="runs/resnet-seed0.h5",
...                         metadata={"run_id": "resnet-seed0"},
...                         compression="gzip") as recorder:  # doctest: +SKIP
...     print(recorder.describe())          # the blocks chosen, their pooling
...     recorder.record(epoch=0, metrics={"val_accuracy": evaluate(model)})
...     for epoch in range(1, 101):
...         train_one_epoch(model)
...         recorder.record(epoch=epoch, metrics={"val_accuracy": evaluate(model)})

Each :meth:`ActivationRecorder.record` runs the fixed probe batch through the model
once, in eval mode and without autograd, pools the outputs of the recorded modules
on the model's device with forward hooks (convolutional outputs over space, token
sequences over tokens), copies them to the host at once and appends them as one
checkpoint through :class:`~dynatrain.archive.writer.ArchiveWriter`. The training
state is left as it was: every module's train/eval mode, every ``.grad`` and the
random number generators.
"""

from __future__ import annotations

from dynatrain.torch._layout import POOL_CHOICES, POOLINGS
from dynatrain.torch._recorder import ActivationRecorder
from dynatrain.torch._selection import default_layers, match_layers

__all__ = [
    "POOLING",
    "POOLINGS",
    "POOL_CHOICES",
    "ActivationRecorder",
    "default_layers",
    "match_layers",
]

#: Accepted values of ``pool`` for one layer (besides ``None``, no pooling); kept for
#: compatibility, the same as ``POOL_CHOICES``.
POOLING = POOL_CHOICES
