"""Benchmark the torch recorder: what one ``record()`` costs next to what training costs.

    python benchmarks/bench_recorder.py                       # CPU, one thread, probe of 64
    python benchmarks/bench_recorder.py --probe 256 --device cuda --threads 4
    python benchmarks/bench_recorder.py --device cuda --models tv-resnet50 tv-vit_b_16 \
        --autocast bfloat16               # torchvision's own networks at 224 x 224

For three networks on CIFAR-sized inputs (3 x 32 x 32, random data, no weights to load):
an MLP (3072-512-256-10), a ResNet-18-style CNN (4 stages of 2 basic blocks, 16 to 128
channels) and a small ViT (4x4 patches, 4 encoder layers of 64 dimensions, the
configuration torchvision builds with ``VisionTransformer(image_size=32, patch_size=4,
num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128)``), each recorded at its default
blocks with the default pooling, this prints the median time of

* ``forward``: one forward pass of the probe batch (eval mode, no autograd);
* ``append``: one ``ArchiveWriter.append`` of the pooled activations (HDF5, a
  separate archive of the same layout);
* ``record``: one ``ActivationRecorder.record()`` (the probe pass with the hooks and
  pooling, the copy to the host and the append);
* ``epoch``: one training epoch (SGD, batches of 64, ``--train`` samples),

and the ratios ``record / (forward + append)`` (target: at most 1.3) and
``record / epoch``. Rounds are interleaved (forward, append, record, forward, ...) so
that other work on the machine disturbs each the same; only ratios measured in the
same run mean anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

import torch
from torch import nn

from dynatrain.archive.writer import ArchiveWriter
from dynatrain.torch import ActivationRecorder


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def resnet(width: int = 16) -> nn.Module:
    stages: list[tuple[str, nn.Module]] = [
        (
            "stem",
            nn.Sequential(
                nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
            ),
        )
    ]
    inputs = width
    for index in range(4):
        outputs, stride = width * 2**index, 1 if index == 0 else 2
        blocks = nn.Sequential(BasicBlock(inputs, outputs, stride), BasicBlock(outputs, outputs))
        stages.append((f"layer{index + 1}", blocks))
        inputs = outputs
    stages += [
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(inputs, 10)),
    ]
    return nn.Sequential(OrderedDict(stages))


class ViT(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 4, heads: int = 4, mlp: int = 128) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, 4, 4)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(0.02 * torch.randn(1, 65, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.conv_proj(images).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(len(images), -1, -1), patches], 1)
        return self.head(self.encoder(tokens + self.pos_embedding)[:, 0])


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: nn.Sequential(
        nn.Flatten(),
        nn.Linear(3072, 512),
        nn.ReLU(),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    ),
    "resnet": resnet,
    "vit": ViT,
}


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models

        return getattr(torchvision.models, name)(weights=None, num_classes=10)

    return build


#: torchvision's networks, with the input size they are built for.
TORCHVISION = {f"tv-{name}": _torchvision(name) for name in ("resnet18", "resnet50", "vit_b_16")}
IMAGE_SIZE = {name: 224 for name in TORCHVISION}


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> float:
    synchronise(device)
    start = time.perf_counter()
    function()
    synchronise(device)
    return time.perf_counter() - start


def precision(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device`` (mixed precision), or nothing."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    autocast: torch.dtype | None = None,
) -> None:
    model.train()
    for start in range(0, len(images), 64):
        optimizer.zero_grad()
        with precision(images.device, autocast):
            loss = nn.functional.cross_entropy(
                model(images[start : start + 64]), labels[start : start + 64]
            )
        loss.backward()
        optimizer.step()


def bench_model(name: str, args: argparse.Namespace, device: torch.device, folder: str) -> None:
    torch.manual_seed(0)
    model = {**MODELS, **TORCHVISION}[name]().to(device)
    size = IMAGE_SIZE.get(name, 32)
    autocast = getattr(torch, args.autocast) if args.autocast else None
    generator = torch.Generator().manual_seed(1)
    probe = torch.randn(args.probe, 3, size, size, generator=generator).to(device)
    images = torch.randn(args.train, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, 10, (args.train,), generator=generator).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    recorder = ActivationRecorder(
        model, probe=probe, path=os.path.join(folder, f"{name}.h5"), autocast=autocast
    )
    pooled = recorder.capture()
    writer = ArchiveWriter(os.path.join(folder, f"{name}-append.h5"))

    def forward() -> None:
        model.eval()
        with torch.no_grad(), precision(device, autocast):
            model(probe)

    times: dict[str, list[float]] = {"forward": [], "append": [], "record": []}
    for _ in range(2):  # warm-up: allocator, first-call costs
        forward()
        recorder.capture()
    for epoch in range(args.repeat):
        times["forward"].append(timed(forward, device))
        times["append"].append(
            timed(partial(writer.append, epoch=epoch, activations=pooled), device)
        )
        times["record"].append(timed(partial(recorder.record, epoch=epoch), device))
    epochs = [
        timed(lambda: train_epoch(model, optimizer, images, labels, autocast), device)
        for _ in range(args.epochs)
    ]
    recorder.close()
    writer.close()
    median = {key: statistics.median(values) for key, values in times.items()}
    epoch_time = statistics.median(epochs)
    ratio = median["record"] / (median["forward"] + median["append"])
    forward_ms, append_ms, record_ms = (
        1e3 * median[key] for key in ("forward", "append", "record")
    )
    print(
        f"{name:12s} {len(recorder.layers):6d} {forward_ms:10.2f} {append_ms:9.2f} {record_ms:9.2f}"
        f" {epoch_time:8.2f} {ratio:19.2f} {record_ms / forward_ms:14.2f}"
        f" {100 * median['record'] / epoch_time:11.2f}%"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", type=int, default=64, help="probe samples (default 64)")
    parser.add_argument(
        "--train", type=int, default=2048, help="training samples per epoch (default 2048)"
    )
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--epochs", type=int, default=2, help="timed training epochs (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--models", nargs="+", choices=[*MODELS, *TORCHVISION], default=list(MODELS)
    )
    parser.add_argument(
        "--autocast",
        choices=["bfloat16", "float16"],
        help="mixed precision: forward passes, records and training under torch.autocast",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {args.threads} thread(s)"
    )
    print(
        f"torch {torch.__version__} on {where}; probe of {args.probe} images (32 x 32, 224 x"
        f" 224 for tv-*), epoch of {args.train} samples in batches of 64; autocast"
        f" {args.autocast or 'off'}; medians of {args.repeat} interleaved rounds"
    )
    if device.type == "cpu" and not torch.cuda.is_available():
        print("(no CUDA device here: CPU only)")
    header = ["model       ", "layers", "forward ms", "append ms", "record ms", " epoch s"]
    header += ["record/(fwd+append)", "record/forward", "record/epoch"]
    print(" ".join(header))
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            bench_model(name, args, device, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
