"""Recording as a training job does it: mixed precision, devices, the archive's path."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from architectures import ARCHITECTURES  # noqa: E402

from dynatrain.archive import format as fmt  # noqa: E402
from dynatrain.archive.reader import open_archive  # noqa: E402
from dynatrain.errors import InputError  # noqa: E402
from dynatrain.torch import ActivationRecorder  # noqa: E402


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.LazyLinear(4)
    )


def test_bfloat16_autocast_is_recorded_as_float32_pooled_in_float32(tmp_path):
    model = small_cnn()
    probe = torch.randn(4, 3, 8, 8)
    model(probe)  # materialise the lazy layer
    path = tmp_path / "bf16.h5"
    with ActivationRecorder(model, ["1", "4"], probe, path, autocast=torch.bfloat16) as rec:
        rec.record(epoch=0)
    caught = {}
    model[1].register_forward_hook(lambda _m, _i, out: caught.__setitem__("1", out.clone()))
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(probe)
    assert caught["1"].dtype == torch.bfloat16  # what autocast gives, and NumPy cannot hold
    with h5py.File(path, "r") as f:
        relu = f["layers/1/activations"][0]
        stored_logits = f["layers/4/activations"][0]
    assert relu.dtype == np.float32 and stored_logits.dtype == np.float32
    np.testing.assert_allclose(relu, caught["1"].double().mean(dim=(2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(stored_logits, logits.float().numpy())


def test_record_inside_an_autocast_region_takes_its_precision(tmp_path):
    model = small_cnn()
    probe = torch.randn(4, 3, 8, 8)
    model(probe)
    with ActivationRecorder(model, ["4"], probe, tmp_path / "a.h5") as rec:
        full = rec.capture()["4"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = rec.capture()["4"]
    assert full.dtype == reduced.dtype == np.float32
    assert not np.array_equal(full, reduced)  # bfloat16 rounding shows
    np.testing.assert_allclose(reduced, full, rtol=0.05, atol=0.05)


def test_a_float16_model_keeps_float16_and_is_averaged_in_float32(tmp_path):
    model = nn.Sequential(nn.Conv2d(2, 3, 1)).half()
    probe = torch.full((2, 2, 64, 64), 1.0).half()
    with ActivationRecorder(model, ["0"], probe, tmp_path / "h.h5") as rec:
        pooled = rec.capture()["0"]
    with torch.no_grad():
        raw = model(probe).double()
    assert pooled.dtype == np.float16
    np.testing.assert_allclose(pooled, raw.mean(dim=(2, 3)).numpy(), rtol=1e-3)


def test_no_graph_is_kept_and_grads_flow_as_before(tmp_path):
    model = small_cnn()
    probe = torch.randn(4, 3, 8, 8)
    model(probe)
    with ActivationRecorder(model, ["1", "4"], probe, tmp_path / "g.h5") as rec:
        loss = model(probe).square().mean()  # a training step's graph is open
        rec.record(epoch=0)
        loss.backward()  # the probe pass did not free or touch it
    assert all(p.grad is not None for p in model.parameters())
    assert rec.probe.grad_fn is None


class FrozenNorm(nn.Module):
    """Keeps its batch norm in eval mode whatever ``train`` is asked (a common override)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.calls: list[bool] = []

    def train(self, mode: bool = True) -> FrozenNorm:
        self.calls.append(mode)
        super().train(mode)
        self.norm.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def test_a_module_that_overrides_train_sees_the_calls_and_ends_as_it_was(tmp_path):
    model = nn.Sequential(FrozenNorm(), nn.ReLU())
    model.train()
    before = {name: module.training for name, module in model.named_modules()}
    assert before["0.norm"] is False
    with ActivationRecorder(model, ["0", "1"], torch.randn(2, 3, 6, 6), tmp_path / "f.h5") as rec:
        model[0].calls.clear()
        rec.record(epoch=0)
    assert model[0].calls == [False, True]  # model.eval(), then train(True) on the way back
    assert {name: module.training for name, module in model.named_modules()} == before


def test_the_pooling_of_every_layer_is_stored_in_zarr_too(tmp_path):
    build, make_probe = ARCHITECTURES["vit"]
    path = tmp_path / "vit.zarr"
    with ActivationRecorder(build(), probe=make_probe(2), path=path) as rec:
        rec.record(epoch=0)
    import zarr

    layers = zarr.open_group(str(path), mode="r")["layers"]
    assert {name: layers[name].attrs[fmt.POOLING_ATTR] for name in rec.layers} == rec.pooling
    with open_archive(path) as archive:
        assert archive.layer_names == tuple(rec.layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_a_cuda_model_records_what_the_cpu_model_records(tmp_path):  # pragma: no cover
    build, make_probe = ARCHITECTURES["resnet"]
    torch.manual_seed(0)
    model = build()
    probe = make_probe(4)
    with ActivationRecorder(model, probe=probe, path=tmp_path / "cpu.h5") as rec:
        on_cpu = rec.capture()
    model.cuda()
    with ActivationRecorder(model, probe=probe, path=tmp_path / "gpu.h5") as rec:
        on_gpu = rec.capture()
        rec.record(epoch=0)
        assert rec._device_probe.is_cuda
    for name, values in on_cpu.items():
        np.testing.assert_allclose(on_gpu[name], values, rtol=1e-3, atol=1e-4)


# -- the archive's path ----------------------------------------------------------------------


def test_an_existing_archive_is_refused_in_one_line_and_replaced_on_request(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    path = tmp_path / "run.h5"
    path.write_bytes(b"an earlier run")
    with pytest.raises(InputError) as caught:
        ActivationRecorder(model, ["0"], torch.ones(3, 2), path)
    message = str(caught.value)
    assert message == (
        f"{path}: already exists; pass mode='w' to replace it, or choose another path"
    )
    assert path.read_bytes() == b"an earlier run"
    with ActivationRecorder(model, ["0"], torch.ones(3, 2), path, mode="w") as rec:
        rec.record(epoch=0)
    assert h5py.is_hdf5(path)


def test_missing_folders_are_created_only_once_the_probe_pass_succeeds(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    path = tmp_path / "runs" / "mlp" / "run.h5"
    with pytest.raises(InputError, match="no module named 'nope'"):
        ActivationRecorder(model, ["nope"], torch.ones(3, 2), path)
    assert list(tmp_path.iterdir()) == []  # a wrong layer name leaves nothing behind
    with ActivationRecorder(model, ["0"], torch.ones(3, 2), path) as rec:
        rec.record(epoch=0)
    assert h5py.is_hdf5(path)


def test_a_file_where_a_folder_should_be_is_a_one_line_error_before_anything_runs(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    model = nn.Sequential(nn.Linear(2, 2))
    path = blocker / "mlp" / "run.h5"
    with pytest.raises(InputError) as caught:
        ActivationRecorder(model, ["0"], torch.ones(3, 2), path)
    assert str(caught.value) == f"{path}: cannot create the archive: {blocker} is not a folder"
    assert blocker.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_a_relative_path_in_the_working_folder_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ActivationRecorder(nn.Sequential(nn.Linear(2, 2)), ["0"], torch.ones(3, 2), "r.h5") as rec:
        rec.record(epoch=0)
    assert (tmp_path / "r.h5").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": None}, "path is required"),
        ({"probe": None}, "probe must be a tensor"),
        ({"autocast": "bf16"}, "autocast must be a torch dtype"),
        ({"pool": {"0": "max"}}, "invalid pool 'max'"),
        ({"layers": ["0", 1]}, "layer names must be strings"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, message):
    arguments = {"layers": ["0"], "probe": torch.ones(3, 2), "path": tmp_path / "a.h5", **kwargs}
    with pytest.raises(InputError, match=message):
        ActivationRecorder(nn.Sequential(nn.Linear(2, 2)), **arguments)
