"""Train small networks on scikit-learn's digits and record their activations with dynatrain.

This script makes the training runs shipped in ``sample_data/``: real PyTorch training
on real data that ships with scikit-learn (1797 8x8 images of handwritten digits;
nothing is downloaded), recorded checkpoint by checkpoint with
:class:`dynatrain.torch.ActivationRecorder`.

Runs: every combination of

* model (``model`` in the metadata), each recorded at its blocks, which are the ones
  ``dynatrain.torch.default_layers`` chooses, each ending in its ReLU (the last in the
  logits):

  - ``mlp``: 64-64-32-16-10 with ReLU; ``fc1`` .. ``fc4``;
  - ``cnn``: three 3x3 convolutions with 8, 16 and 16 channels, max-pooling after the
    second, then 32 hidden units; ``conv1``, ``conv2``, ``conv3``, ``fc1``, ``fc2``;
  - ``resnet``: a 3x3 stem, 8 residual basic blocks (two 3x3 convolutions with batch
    norm each) in stages of 3, 3 and 2 blocks with 8, 16 and 32 channels at 8x8, 4x4
    and 2x2, global average pooling and a linear head; ``stem``, ``layer1.0`` ..
    ``layer3.1``, ``fc``;
  - ``vit``: a Vision Transformer with 2x2 patches (16 tokens and a class token) of 32
    dimensions, 4 pre-norm ``nn.TransformerEncoderLayer`` (4 heads, MLP of 64, GELU)
    and a linear head on the class token; ``patch_embed``, ``encoder.layers.0`` ..
    ``encoder.layers.3``, ``head``;

  pooled by the recorder's default: convolutional outputs averaged over space, the
  encoder layers' token sequences over the tokens;
* task (``dataset`` in the metadata): ``digits``, the 10-class task, or
  ``digits-hard``: the same images and split, 40% of the training labels replaced by
  a different random class and Gaussian noise (sd 0.3, pixels scaled to 0..1) added
  once to every image, training and validation alike. Validation labels stay clean,
  so ``val_accuracy`` measures how well the true digit is recovered;
* seed: the initial weights and the order of the mini-batches. The data split, the
  corrupted labels, the noise and the probe batch are the same in every run.

Training: 100 epochs; SGD with momentum 0.9 in batches of 32 at learning rate 0.003
for the MLP and the CNN, SGD with momentum 0.9 in batches of 128 at 0.0006 for the
ResNet, Adam in batches of 128 at 0.0003 for the ViT (transformers are trained with
Adam; with SGD this one sits at chance for half the run on ``digits-hard``). The
larger batches quarter the deeper networks' CPU time, which at this size is paid per
step, not per sample. The rates are chosen so that validation accuracy plateaus well
inside the run, not in its first few epochs nor at its end; on ``digits-hard`` it
peaks and then falls as the networks memorise the wrong labels. Checkpoints: epoch 0 (the initial
network) and the end of every epoch, 101 in all (stored as ``expected_checkpoints``).
Each holds the activations of the recorded layers on a fixed probe batch (the first
two validation images of every digit, 20 in all) in float16 with gzip, and
``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy`` (fractions); the
training metrics are measured after the epoch, in eval mode, against the labels
trained on (corrupted ones included).

Deterministic: the same seed gives bit-identical archives on CPU (one thread,
``torch.use_deterministic_algorithms``, seeded generators, no timestamps in the files).

Usage::

    pip install -e '.[examples]'
    python examples/train_digits.py --out sample_data/ [--seeds 0 1 2 3 4] [--epochs 100]

The default (4 models x 2 tasks x 5 seeds, 40 archives, 22 MB) takes about 20
minutes of one idle CPU core: ~5 s per MLP run, ~20 s per CNN run and ~40-60 s per
ResNet or ViT run (``--models`` and ``--tasks`` split it over several processes).
Archives are named ``<model>-<dataset>-seed<seed>.h5``; existing ones of the same
name are replaced. ``--models``, ``--tasks``, ``--lr``, ``--probe-per-class``
and ``--activation-dtype`` make variants (e.g. for the findings document).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from dynatrain.torch import ActivationRecorder

#: Seed of everything about the data (split, corrupted labels, input noise): fixed, so
#: that runs differ only in their training seed and share one probe batch.
DATA_SEED = 0
VALIDATION_FRACTION = 0.25
N_CLASSES = 10


@dataclass(frozen=True)
class Task:
    """A classification task made from the digits (stored as run metadata)."""

    dataset: str
    task: str
    label_noise: float
    input_noise: float


TASKS = {
    "digits": Task(
        dataset="digits",
        task="10-class digits, clean labels and images",
        label_noise=0.0,
        input_noise=0.0,
    ),
    "digits-hard": Task(
        dataset="digits-hard",
        task=(
            "10-class digits, 40% of training labels replaced by a different random class,"
            " Gaussian noise (sd 0.3) added once to every image; validation labels clean"
        ),
        label_noise=0.4,
        input_noise=0.3,
    ),
}


@dataclass(frozen=True)
class Training:
    """Optimiser and schedule, the same for every run (stored as run metadata)."""

    optimizer: str = "sgd"
    lr: float = 0.003
    momentum: float = 0.9
    batch_size: int = 32
    epochs: int = 100
    probe_per_class: int = 2
    activation_dtype: str = "float16"


@dataclass(frozen=True)
class Split:
    """Images ``(n, 1, 8, 8)`` float32 in 0..1 (plus noise) and integer labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def load_task(task: Task) -> Split:
    """The digits split into training and validation sets, corrupted as ``task`` says."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    x_train, x_val, y_train, y_val = train_test_split(
        images,
        digits.target,
        test_size=VALIDATION_FRACTION,
        stratify=digits.target,
        random_state=DATA_SEED,
    )
    rng = np.random.default_rng(DATA_SEED)
    if task.label_noise:
        corrupted = rng.random(len(y_train)) < task.label_noise
        shift = rng.integers(1, N_CLASSES, size=int(corrupted.sum()))
        y_train = y_train.copy()
        y_train[corrupted] = (y_train[corrupted] + shift) % N_CLASSES  # never the true class
    if task.input_noise:
        x_train = x_train + rng.normal(0.0, task.input_noise, x_train.shape).astype(np.float32)
        x_val = x_val + rng.normal(0.0, task.input_noise, x_val.shape).astype(np.float32)
    return Split(
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train),
        x_val=torch.from_numpy(x_val),
        y_val=torch.from_numpy(y_val),
    )


def probe_indices(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` images of every class, in their original order."""
    chosen = [torch.nonzero(labels == digit).flatten()[:per_class] for digit in range(N_CLASSES)]
    return torch.cat(chosen).sort().values


def build_mlp() -> nn.Module:
    """64-64-32-16-10 ReLU network on the flattened image; blocks fc1..fc3 end in their ReLU."""
    return nn.Sequential(
        OrderedDict(
            flatten=nn.Flatten(),
            fc1=nn.Sequential(nn.Linear(64, 64), nn.ReLU()),
            fc2=nn.Sequential(nn.Linear(64, 32), nn.ReLU()),
            fc3=nn.Sequential(nn.Linear(32, 16), nn.ReLU()),
            fc4=nn.Linear(16, N_CLASSES),
        )
    )


def build_cnn() -> nn.Module:
    """Three 3x3 convolutions (8, 16, 16 channels, max-pooling after the second), 32 units.

    Every block but the last ends in its ReLU (and pooling), so a recorded block gives
    the activity it passes on.
    """
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Sequential(nn.Conv2d(1, 8, kernel_size=3, padding=1), nn.ReLU()),
            conv2=nn.Sequential(
                nn.Conv2d(8, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
            ),
            conv3=nn.Sequential(nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU()),
            flatten=nn.Flatten(),
            fc1=nn.Sequential(nn.Linear(16 * 4 * 4, 32), nn.ReLU()),
            fc2=nn.Linear(32, N_CLASSES),
        )
    )


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions with batch norm, plus the identity."""

    def __init__(self, inputs: int, outputs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def build_resnet() -> nn.Module:
    """A ResNet for 8x8 images: a 3x3 stem, 8 basic blocks in three stages, a linear head.

    Stages of 3, 3 and 2 blocks with 8, 16 and 32 channels at 8x8, 4x4 and 2x2 (the
    first block of the second and third stage has stride 2), then global average
    pooling and a linear layer to the 10 classes.
    """

    def stage(inputs: int, outputs: int, blocks: int, stride: int) -> nn.Sequential:
        first = BasicBlock(inputs, outputs, stride)
        return nn.Sequential(first, *[BasicBlock(outputs, outputs) for _ in range(blocks - 1)])

    return nn.Sequential(
        OrderedDict(
            stem=nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
            layer1=stage(8, 8, 3, 1),
            layer2=stage(8, 16, 3, 2),
            layer3=stage(16, 32, 2, 2),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(32, N_CLASSES),
        )
    )


class VisionTransformer(nn.Module):
    """A ViT for 8x8 images: 2x2 patches, a class token, 4 pre-norm encoder layers.

    The 16 patches are embedded by a strided convolution into 32 dimensions, a
    learned class token is put first and learned position embeddings are added; the
    encoder is ``nn.TransformerEncoder`` (4 heads, MLP of 64, GELU, no dropout,
    batch first) and the head reads the class token after a final layer norm.
    """

    def __init__(
        self, dim: int = 32, depth: int = 4, heads: int = 4, mlp: int = 64, patch: int = 2
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        tokens = (8 // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(0.02 * torch.randn(1, tokens, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, N_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(images).flatten(2).transpose(1, 2)  # (N, 16, dim)
        cls = self.class_token.expand(len(images), -1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self.pos_embedding
        return self.head(self.norm(self.encoder(tokens)[:, 0]))


#: model name -> (builder, recorded blocks, input side first). The blocks are what
#: ``dynatrain.torch.default_layers`` chooses (a test checks it); they are written out
#: so that the shipped runs keep their layers if that rule ever changes.
MODELS = {
    "mlp": (build_mlp, ["fc1", "fc2", "fc3", "fc4"]),
    "cnn": (build_cnn, ["conv1", "conv2", "conv3", "fc1", "fc2"]),
    "resnet": (
        build_resnet,
        ["stem", *[f"layer{s}.{b}" for s, n in ((1, 3), (2, 3), (3, 2)) for b in range(n)], "fc"],
    ),
    "vit": (VisionTransformer, ["patch_embed", *[f"encoder.layers.{i}" for i in range(4)], "head"]),
}
#: Learning rate and batch size per model (SGD with momentum 0.9 for all): chosen so
#: that validation accuracy plateaus in the middle of the 100 epochs, not in the first
#: few. The deeper networks take batches of 64, which halves their CPU time (their cost
#: is per step, not per sample, at this size).
LEARNING_RATES = {"mlp": 0.003, "cnn": 0.003, "resnet": 0.0006, "vit": 0.0003}
BATCH_SIZES = {"mlp": 32, "cnn": 32, "resnet": 128, "vit": 128}
#: The ViT is trained with Adam, as transformers are: with SGD it sits at chance for
#: half the run on ``digits-hard`` before it learns.
OPTIMIZERS = {"mlp": "sgd", "cnn": "sgd", "resnet": "sgd", "vit": "adam"}


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) of ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    model.train(was_training)
    return loss, accuracy


def epoch_metrics(model: nn.Module, split: Split) -> dict[str, float]:
    """Training and validation loss and accuracy, as stored at every checkpoint."""
    train_loss, train_accuracy = evaluate(model, split.x_train, split.y_train)
    val_loss, val_accuracy = evaluate(model, split.x_val, split.y_val)
    return {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }


def train_run(
    model_name: str,
    task: Task,
    split: Split,
    seed: int,
    training: Training,
    out_dir: Path,
    *,
    describe: bool = False,
) -> Path:
    """Train one network and record it; return the archive's path.

    With ``describe``, the recorded layers, their output shapes and pooling are
    printed on stderr.
    """
    build, layers = MODELS[model_name]
    run_id = f"{model_name}-{task.dataset}-seed{seed}"
    path = out_dir / f"{run_id}.h5"
    torch.manual_seed(seed)
    model = build()
    batch_order = torch.Generator().manual_seed(seed)
    if training.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=training.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum)
    probe = split.x_val[probe_indices(split.y_val, training.probe_per_class)]
    metadata = {
        "run_id": run_id,
        "model": model_name,
        **asdict(task),
        "seed": seed,
        "data_seed": DATA_SEED,
        # Adam (default betas) has no momentum setting of its own to report.
        **{
            key: value
            for key, value in asdict(training).items()
            if key != "momentum" or training.optimizer == "sgd"
        },
        "n_train": len(split.y_train),
        "n_val": len(split.y_val),
        "probe": f"first {training.probe_per_class} validation images of every class",
        "probe_samples": len(probe),
        "source": "sklearn.datasets.load_digits",
        "torch_version": torch.__version__,
        # Epoch 0 and the end of every epoch: what a complete run holds, so that a
        # reader can tell a finished run from one that stopped.
        "expected_checkpoints": training.epochs + 1,
    }
    step = 0
    with ActivationRecorder(
        model,
        layers,
        probe,
        path,
        metadata,
        activation_dtype=training.activation_dtype,
        compression="gzip",
        mode="w",
    ) as recorder:
        if describe:
            print(f"{model_name}: recorded layers\n{recorder.describe()}", file=sys.stderr)
        recorder.record(epoch=0, metrics=epoch_metrics(model, split), step=step)
        for epoch in range(1, training.epochs + 1):
            model.train()
            order = torch.randperm(len(split.y_train), generator=batch_order)
            for batch in order.split(training.batch_size):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(
                    model(split.x_train[batch]), split.y_train[batch]
                )
                loss.backward()
                optimizer.step()
                step += 1
            recorder.record(epoch=epoch, metrics=epoch_metrics(model, split), step=step)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: train and record every model x task x seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the archives")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="training seeds (default 0 1 2 3 4)",
    )
    parser.add_argument(
        "--epochs", type=int, default=Training.epochs, help="epochs per run (default 100)"
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="default: all"
    )
    parser.add_argument(
        "--tasks", nargs="+", choices=list(TASKS), default=list(TASKS), help="default: all"
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="SGD learning rate (default: per model, "
        + ", ".join(f"{name} {lr:g}" for name, lr in LEARNING_RATES.items())
        + ")",
    )
    parser.add_argument(
        "--probe-per-class",
        type=int,
        default=Training.probe_per_class,
        help="probe images per digit, from the validation set (default 2)",
    )
    parser.add_argument(
        "--activation-dtype",
        choices=["float16", "float32"],
        default=Training.activation_dtype,
        help="stored type of the activations (default float16)",
    )
    args = parser.parse_args(argv)

    # Bit-for-bit reproducible on CPU: one thread, deterministic kernels.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    described: set[str] = set()
    for task_name in args.tasks:
        task = TASKS[task_name]
        split = load_task(task)
        for model_name in args.models:
            training = Training(
                epochs=args.epochs,
                lr=LEARNING_RATES[model_name] if args.lr is None else args.lr,
                batch_size=BATCH_SIZES[model_name],
                optimizer=OPTIMIZERS[model_name],
                probe_per_class=args.probe_per_class,
                activation_dtype=args.activation_dtype,
            )
            for seed in args.seeds:
                started = time.perf_counter()
                path = train_run(
                    model_name,
                    task,
                    split,
                    seed,
                    training,
                    args.out,
                    describe=model_name not in described,
                )
                described.add(model_name)
                seconds = time.perf_counter() - started
                size_kb = path.stat().st_size / 1024
                print(f"{path}  {seconds:5.1f} s  {size_kb:6.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
