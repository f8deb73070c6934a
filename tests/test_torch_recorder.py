"""ActivationRecorder: what it records, and what it leaves as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed: pip install -e '.[test,torch]' runs the recorder tests"
)
nn = torch.nn

from dynatrain.archive.reader import open_archive  # noqa: E402
from dynatrain.errors import InputError  # noqa: E402
from dynatrain.torch import ActivationRecorder  # noqa: E402

LAYERS = ["features.conv", "features.relu", "head.fc1", "head.fc2"]


class TinyConvNet(nn.Module):
    """Conv -> ReLU -> flatten -> FC -> dropout -> FC, on (N, 1, 6, 6) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv", nn.Conv2d(1, 3, kernel_size=3))
        self.features.add_module("relu", nn.ReLU())
        self.head = nn.Sequential()
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc1", nn.Linear(3 * 4 * 4, 8))
        self.head.add_module("dropout", nn.Dropout(0.5))
        self.head.add_module("fc2", nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture
def model() -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet()


@pytest.fixture
def probe() -> torch.Tensor:
    return torch.randn(7, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def read_activations(path: Path) -> dict[str, np.ndarray]:
    """Every layer's stored activations, (checkpoints, N, ...), in the archive's order."""
    with open_archive(path) as archive:
        order = archive.layer_names
    with h5py.File(path, "r", swmr=True) as f:
        return {name: f["layers"][name]["activations"][...] for name in order}


def manual_outputs(model: TinyConvNet, probe: torch.Tensor) -> dict[str, np.ndarray]:
    """The recorded modules' outputs, by calling the modules one after the other in eval mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        conv = model.features.conv(probe)
        relu = model.features.relu(conv)
        fc1 = model.head.fc1(model.head.flatten(relu))
        fc2 = model.head.fc2(model.head.dropout(fc1))
    model.train(was_training)
    return {name: t.numpy() for name, t in zip(LAYERS, (conv, relu, fc1, fc2), strict=True)}


def test_records_shapes_and_values_of_a_manual_forward_pass(model, probe, tmp_path):
    path = tmp_path / "run.h5"
    metadata = {"run_id": "tiny", "torch_version": torch.__version__}  # a str subclass
    model.train()  # dropout on: the recorder must switch it off
    with ActivationRecorder(model, LAYERS, probe, path, metadata=metadata) as rec:
        first = manual_outputs(model, probe)
        rec.record(epoch=1, metrics={"val_accuracy": 0.5, "train_loss": torch.tensor(1.25)})
        with torch.no_grad():
            model.head.fc2.weight.add_(1.0)
        second = manual_outputs(model, probe)
        assert rec.record(epoch=2, metrics={"val_accuracy": 0.75, "train_loss": 1.0}) == 1
    stored = read_activations(path)
    assert list(stored) == LAYERS
    for name in LAYERS:
        assert stored[name].shape == (2, *first[name].shape)
        assert stored[name].dtype == np.float32
        np.testing.assert_array_equal(stored[name][0], first[name])
        np.testing.assert_array_equal(stored[name][1], second[name])
    with open_archive(path) as archive:
        assert archive.metadata["run_id"] == "tiny"
        assert archive.metadata["torch_version"] == str(torch.__version__)
        np.testing.assert_array_equal(archive.metric("train_loss"), [1.25, 1.0])
        np.testing.assert_array_equal(archive.epochs, [1.0, 2.0])


def test_channel_mean_pools_dims_after_the_channel_dim(model, probe, tmp_path):
    path = tmp_path / "pooled.h5"
    with ActivationRecorder(model, LAYERS, probe, path, pool="channel_mean") as rec:
        rec.record(epoch=1)
    stored = read_activations(path)
    expected = manual_outputs(model, probe)
    assert stored["features.conv"].shape == (1, 7, 3)
    np.testing.assert_allclose(
        stored["features.conv"][0], expected["features.conv"].mean(axis=(2, 3)), rtol=1e-6
    )
    # (N, features) outputs have no spatial dims: stored as they are.
    np.testing.assert_array_equal(stored["head.fc1"][0], expected["head.fc1"])


def test_channel_mean_on_a_sequence_output(tmp_path):
    conv1d = nn.Sequential(nn.Conv1d(2, 4, kernel_size=3), nn.Tanh())
    signal = torch.randn(5, 2, 10)
    with ActivationRecorder(
        conv1d, ["0", "1"], signal, tmp_path / "c.h5", pool="channel_mean"
    ) as rec:
        rec.record(epoch=1)
    stored = read_activations(tmp_path / "c.h5")
    with torch.no_grad():
        expected = conv1d[0](signal).mean(dim=2).numpy()
    assert stored["0"].shape == (1, 5, 4)
    np.testing.assert_allclose(stored["0"][0], expected, rtol=1e-6)


class ModeSpy(nn.Module):
    """Identity that remembers whether it ran in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_training: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        return x


def test_runs_in_eval_mode_and_restores_every_modules_mode(model, probe, tmp_path):
    spy = ModeSpy()
    model.features.add_module("spy", spy)
    model.train()
    model.features.eval()  # a frozen backbone under a training head
    model.features.spy.train()  # ... with one submodule in training mode again
    before = {name: module.training for name, module in model.named_modules()}
    assert len(set(before.values())) == 2
    with ActivationRecorder(model, LAYERS, probe, tmp_path / "run.h5") as rec:
        rec.record(epoch=1)
    assert spy.seen_training == [False]
    assert {name: module.training for name, module in model.named_modules()} == before


class NoisyIdentity(nn.Module):
    """Draws random numbers in every forward pass, even in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0 * torch.rand_like(x)


def test_leaves_grads_and_rng_state_untouched(model, probe, tmp_path):
    model.features.add_module("noise", NoisyIdentity())
    model.train()
    torch.manual_seed(3)
    model(probe).square().mean().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    rng_state = torch.get_rng_state()
    grad_enabled = torch.is_grad_enabled()
    with ActivationRecorder(model, LAYERS, probe, tmp_path / "run.h5") as rec:
        rec.record(epoch=1)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.is_grad_enabled() == grad_enabled
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter.grad, grads[name]), name
    # No graph was built for the probe pass: the recorded tensors never needed grads.
    assert all(p.requires_grad for p in model.parameters())


def train_a_few_steps(tmp_path: Path | None) -> list[torch.Tensor]:
    """Train a net with dropout and batch norm; record after every step if given a path."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Linear(8, 3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    data, labels = torch.randn(16, 4), torch.randint(0, 3, (16,))
    recorder = None
    if tmp_path is not None:
        recorder = ActivationRecorder(net, ["0", "1", "3"], data[:5], tmp_path / "run.h5")
    net.train()
    for step in range(1, 6):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(data), labels).backward()
        if recorder is not None:  # between backward and step: grads must survive it
            recorder.record(epoch=step)
        optimizer.step()
    if recorder is not None:
        recorder.close()
    return [t.detach().clone() for t in (*net.parameters(), *net.buffers())]


def test_recording_does_not_change_training(tmp_path):
    """Dropout draws, batch-norm statistics, grads: a recorded run trains exactly the same."""
    recorded = train_a_few_steps(tmp_path)
    unrecorded = train_a_few_steps(None)
    assert all(torch.equal(a, b) for a, b in zip(recorded, unrecorded, strict=True))


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_hooks_and_modes_are_restored_after_a_failing_forward(model, probe, tmp_path):
    model.head.add_module("explode", Exploding())
    model.train()
    rng_state = torch.get_rng_state()
    with ActivationRecorder(model, LAYERS, probe, tmp_path / "run.h5") as rec:
        with pytest.raises(RuntimeError, match="boom"):
            rec.record(epoch=1)
        assert rec.n_checkpoints == 0
    assert all(module.training for module in model.modules())
    assert not any(module._forward_hooks for module in model.modules())
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_no_hook_is_left_after_a_record(model, probe, tmp_path):
    with ActivationRecorder(model, LAYERS, probe, tmp_path / "run.h5") as rec:
        rec.record(epoch=1)
    assert not any(module._forward_hooks for module in model.modules())


@pytest.mark.parametrize(
    ("wrong", "suggestion"),
    [("head.fc3", "'head.fc1'"), ("features.comv", "'features.conv'"), ("fc1", "'head.fc1'")],
)
def test_unknown_module_name_lists_close_matches(model, probe, tmp_path, wrong, suggestion):
    path = tmp_path / "run.h5"
    with pytest.raises(InputError, match=f"no module named '{wrong}'") as caught:
        ActivationRecorder(model, ["head.fc2", wrong], probe, path)
    assert "did you mean" in str(caught.value) and suggestion in str(caught.value)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_unknown_module_name_without_close_match_lists_the_modules(model, probe, tmp_path):
    with pytest.raises(InputError, match=r"its modules are: features, features\.conv"):
        ActivationRecorder(model, ["zzz"], probe, tmp_path / "run.h5")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": []}, "non-empty list"),
        ({"layers": "head.fc1"}, "non-empty list"),
        ({"layers": ["head.fc1", "head.fc1"]}, "listed twice"),
        ({"layers": [""]}, "no module named ''"),
        ({"pool": "max"}, "invalid pool 'max'"),
        ({"probe": np.zeros((3, 1, 6, 6))}, "probe must be a tensor"),
        ({"probe": torch.tensor(1.0)}, "probe must be a tensor"),
    ],
)
def test_bad_arguments(model, probe, tmp_path, kwargs, message):
    arguments: dict[str, Any] = {"layers": LAYERS, "probe": probe, **kwargs}
    with pytest.raises(InputError, match=message):
        ActivationRecorder(model, path=tmp_path / "run.h5", **arguments)


class TupleOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=3, hidden_size=4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.lstm(x)
        return self.head(sequence[:, -1])


def test_tuple_output_records_its_first_tensor(tmp_path):
    torch.manual_seed(0)
    model = TupleOutputs()
    probe = torch.randn(6, 5, 3)
    with ActivationRecorder(model, ["lstm", "head"], probe, tmp_path / "run.h5") as rec:
        rec.record(epoch=1)
    with torch.no_grad():
        expected = model.lstm(probe)[0].numpy()
    stored = read_activations(tmp_path / "run.h5")["lstm"]
    assert stored.shape == (1, 6, 5, 4)
    np.testing.assert_array_equal(stored[0], expected)


class Wrapper(nn.Module):
    """Applies ``inner`` and returns what ``make_output`` makes of the result."""

    def __init__(self, make_output: Any) -> None:
        super().__init__()
        self.inner = nn.Linear(3, 3)
        self.make_output = make_output

    def forward(self, x: torch.Tensor) -> Any:
        return self.make_output(self.inner(x))


class Outer(nn.Module):
    def __init__(self, make_output: Any) -> None:
        super().__init__()
        self.block = Wrapper(make_output)

    def forward(self, x: torch.Tensor) -> None:
        self.block(x)


@pytest.mark.parametrize(
    ("make_output", "message"),
    [
        (lambda y: {"out": y}, "returned a dict, not a tensor"),
        (lambda y: (None, y), "first element is a NoneType"),
        (lambda y: y[0], "first dimension must be the 4 probe samples"),
    ],
    ids=["dict", "tuple-without-tensor-first", "no-batch-dim"],
)
def test_unusable_outputs_are_clear_errors(tmp_path, make_output, message):
    with ActivationRecorder(
        Outer(make_output), ["block"], torch.ones(4, 3), tmp_path / "r.h5"
    ) as rec:
        with pytest.raises(InputError, match=message):
            rec.record(epoch=1)


def test_a_module_that_runs_twice_or_never_is_refused(tmp_path):
    shared = nn.ReLU()
    unused = nn.Linear(2, 2)
    model = nn.Module()
    model.fc = nn.Linear(2, 2)
    model.act = shared
    model.unused = unused
    model.forward = lambda x: model.act(model.fc(model.act(x)))  # type: ignore[method-assign]
    with ActivationRecorder(model, ["act"], torch.ones(3, 2), tmp_path / "a.h5") as rec:
        with pytest.raises(InputError, match="'act' ran 2 times"):
            rec.record(epoch=1)
    with ActivationRecorder(model, ["unused"], torch.ones(3, 2), tmp_path / "b.h5") as rec:
        with pytest.raises(InputError, match="'unused' did not run"):
            rec.record(epoch=1)


def test_dtypes_are_kept_or_made_float32_and_can_be_stored_as_float16(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2)).double()
    probe = torch.ones(4, 3, dtype=torch.float64)
    with ActivationRecorder(model, ["0"], probe, tmp_path / "f64.h5") as rec:
        rec.record(epoch=1)
    assert read_activations(tmp_path / "f64.h5")["0"].dtype == np.float64

    model = nn.Sequential(nn.Linear(3, 2)).to(torch.bfloat16)
    with ActivationRecorder(model, ["0"], probe.to(torch.bfloat16), tmp_path / "bf16.h5") as rec:
        rec.record(epoch=1)
    assert read_activations(tmp_path / "bf16.h5")["0"].dtype == np.float32

    model = nn.Sequential(nn.Linear(3, 2))
    with ActivationRecorder(
        model, ["0"], probe.float(), tmp_path / "f16.h5", activation_dtype="float16"
    ) as rec:
        rec.record(epoch=1)
    assert read_activations(tmp_path / "f16.h5")["0"].dtype == np.float16


def test_the_probe_is_a_copy(model, probe, tmp_path):
    with ActivationRecorder(model, ["head.fc2"], probe, tmp_path / "run.h5") as rec:
        rec.record(epoch=1)
        probe.add_(100.0)  # the caller reuses its tensor: the probe batch stays fixed
        rec.record(epoch=2)
    stored = read_activations(tmp_path / "run.h5")["head.fc2"]
    np.testing.assert_array_equal(stored[0], stored[1])


def test_a_recorded_archive_is_analysed_by_the_cli(model, probe, tmp_path, cli):
    path = tmp_path / "perturbed.h5"
    generator = torch.Generator().manual_seed(5)
    metadata = {"run_id": "tiny-perturbed", "model": "tiny-cnn", "dataset": "noise"}
    with ActivationRecorder(
        model, LAYERS, probe, path, metadata=metadata, pool="channel_mean", compression="gzip"
    ) as rec:
        for epoch in range(1, 31):
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
            rec.record(
                epoch=epoch, metrics={"val_accuracy": 1 - 0.5 ** (epoch / 5)}, step=10 * epoch
            )
    validate = cli("validate", path)
    assert validate.exit_code == 0, validate.stderr
    result = cli("analyze", path, "--format", "json", "--surrogates", "19")
    assert result.exit_code == 0, result.stderr
    analysis = json.loads(result.stdout)
    assert analysis["run_id"] == "tiny-perturbed"
    assert analysis["checkpoints"] == 30
    assert analysis["layers_analysed"] == len(LAYERS)
    assert analysis["convergence"]["metric"] == "val_accuracy"
    assert np.isfinite(analysis["integration"])
