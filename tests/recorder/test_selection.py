"""Which layers the recorder takes: the default blocks, patterns, hundreds of layers."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from architectures import ARCHITECTURES  # noqa: E402

from dynatrain.analysis import Settings, analyze  # noqa: E402
from dynatrain.errors import InputError  # noqa: E402
from dynatrain.torch import ActivationRecorder, default_layers, match_layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAMES = [
    "layer1",
    "layer1.0",
    "layer1.0.conv1",
    "layer1.0.downsample.0",
    "layer1.1",
    "layer2.0",
    "layer10.1",
    "encoder.layers.encoder_layer_0.mlp",
    "encoder.layers.encoder_layer_0.mlp.0",
    "fc",
]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("layer*.?", ["layer1.0", "layer1.1", "layer2.0", "layer10.1"]),
        ("layer?.?", ["layer1.0", "layer1.1", "layer2.0"]),
        ("layer1.*", ["layer1.0", "layer1.1"]),
        (
            "layer1.**",
            ["layer1", "layer1.0", "layer1.0.conv1", "layer1.0.downsample.0", "layer1.1"],
        ),
        (
            "**.0",
            [
                "layer1.0",
                "layer1.0.downsample.0",
                "layer2.0",
                "encoder.layers.encoder_layer_0.mlp.0",
            ],
        ),
        ("encoder.**.mlp", ["encoder.layers.encoder_layer_0.mlp"]),
        ("layer[2-9].*", ["layer2.0"]),
        ("f?", ["fc"]),
        ("nothing*", []),
    ],
)
def test_patterns_work_segment_by_segment(pattern, expected):
    assert match_layers(pattern, NAMES) == expected


def load_training_script():
    path = ROOT / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_default_is_the_blocks_the_training_script_records():
    """The sample runs name their blocks by hand; the default finds the same ones."""
    pytest.importorskip("sklearn")
    script = load_training_script()
    for name, (build, layers) in script.MODELS.items():
        torch.manual_seed(0)
        assert default_layers(build()) == layers, name
    assert len(script.MODELS["resnet"][1]) >= 10  # stem, >= 8 residual blocks, head


def test_default_of_plain_modules():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 8), nn.Linear(8, 2))
    assert default_layers(mlp) == ["1", "3", "4"]  # the ReLU ends the first group, not dropout
    assert default_layers(nn.Linear(3, 3)) == []
    wrapped = nn.Sequential()
    wrapped.add_module("body", nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)))
    assert default_layers(wrapped) == ["body.1", "body.2"]  # one block found: opened


def test_patterns_in_the_recorder_come_in_execution_order(tmp_path):
    build, make_probe = ARCHITECTURES["resnet"]
    torch.manual_seed(0)
    model = build()
    with ActivationRecorder(model, ["layer*.?", "fc"], make_probe(2), tmp_path / "r.h5") as rec:
        rec.record(epoch=0)
    expected = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["fc"]
    assert rec.layers == expected
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert [str(name) for name in f["layers"].attrs["order"]] == expected
    assert rec.describe().splitlines()[1].split()[:2] == ["layer1.0", "BasicBlock"]


def test_a_pattern_that_matches_nothing_or_a_pool_for_an_unrecorded_layer(tmp_path):
    build, make_probe = ARCHITECTURES["resnet"]
    model = build()
    with pytest.raises(
        InputError, match=re.escape("layer pattern 'block*' matches no module of ResNet")
    ):
        ActivationRecorder(model, ["block*"], make_probe(2), tmp_path / "a.h5")
    with pytest.raises(
        InputError, match=re.escape("pool names 'layer9.*', which matches no recorded")
    ):
        ActivationRecorder(
            model, ["layer1.0"], make_probe(2), tmp_path / "a.h5", pool={"layer9.*": "none"}
        )
    assert not list(tmp_path.iterdir())


class SharedActivation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(2, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.act(self.conv1(x))))


def test_modules_that_do_not_run_once_are_left_out_of_a_default_or_a_pattern(tmp_path):
    model = SharedActivation()
    probe = torch.randn(2, 1, 8, 8)
    with ActivationRecorder(model, probe=probe, path=tmp_path / "a.h5") as rec:
        rec.record(epoch=0)
    assert rec.layers == ["conv2"]
    assert rec.skipped == {"act": "default blocks: ran 2 times"}
    assert "left out: act (default blocks: ran 2 times)" in rec.describe()
    with ActivationRecorder(model, ["*"], probe, tmp_path / "b.h5") as rec:
        assert rec.layers == ["conv1", "conv2"]


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.act(self.fc(x))


def test_hundreds_of_layers_are_recorded_and_analysed(tmp_path):
    n_blocks, width = 240, 4
    torch.manual_seed(0)
    model = nn.Sequential(*[Residual(width) for _ in range(n_blocks)])
    probe = torch.randn(3, width)
    path = tmp_path / "deep.h5"
    generator = torch.Generator().manual_seed(1)
    with ActivationRecorder(model, probe=probe, path=path, activation_dtype="float32") as rec:
        assert rec.layers == [str(i) for i in range(n_blocks)]
        for epoch in range(30):
            rec.record(epoch=epoch, metrics={"val_accuracy": 1 - 0.5 ** (1 + epoch / 5)})
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    result = analyze(str(path), Settings(surrogates=9)).to_dict()
    assert result["checkpoints"] == 30
    assert result["layers_analysed"] == n_blocks
    assert [layer["name"] for layer in result["layers"]] == rec.layers
    assert np.isfinite(result["integration"])
