"""Pooling that knows the layout, on the module trees of real architectures.

Every expected value is computed here from the modules' raw outputs (caught with
plain forward hooks) and the layout each architecture is known to have: convolution
outputs (N, C, H, W) are averaged over H and W, token sequences (N, tokens, D) over
the tokens. The networks are torch.nn equivalents of torchvision's constructors
(``architectures.py``); ``test_torchvision_models.py`` runs torchvision's own.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from architectures import ARCHITECTURES, TextTransformer, VisionTransformer  # noqa: E402

from dynatrain.archive import format as fmt  # noqa: E402
from dynatrain.errors import InputError  # noqa: E402
from dynatrain.torch import ActivationRecorder  # noqa: E402

SPATIAL, TOKENS, NONE = "spatial_mean", "token_mean", "none"

#: Default layers of each architecture and the pooling each must get.
EXPECTED = {
    "resnet": [("maxpool", SPATIAL)]
    + [(f"layer{s}.{b}", SPATIAL) for s in range(1, 5) for b in range(2)]
    + [("fc", NONE)],
    "resnet-bottleneck": [
        ("maxpool", SPATIAL),
        ("layer1.0", SPATIAL),
        ("layer2.0", SPATIAL),
        ("layer2.1", SPATIAL),
        ("layer3.0", SPATIAL),
        ("layer4.0", SPATIAL),
        ("fc", NONE),
    ],
    "densenet": [
        ("features.pool0", SPATIAL),
        ("features.denseblock1", SPATIAL),
        ("features.transition1", SPATIAL),
        ("features.denseblock2", SPATIAL),
        ("features.transition2", SPATIAL),
        ("features.denseblock3", SPATIAL),
        ("classifier", NONE),
    ],
    "mobilenet_v2": [(f"features.{i}", SPATIAL) for i in range(7)] + [("classifier", NONE)],
    "vgg": [
        ("features.2", SPATIAL),
        ("features.5", SPATIAL),
        ("features.7", SPATIAL),
        ("features.10", SPATIAL),
        ("classifier.1", NONE),
        ("classifier.4", NONE),
        ("classifier.6", NONE),
    ],
    "vit": [
        ("conv_proj", SPATIAL),
        ("encoder.layers.encoder_layer_0", TOKENS),
        ("encoder.layers.encoder_layer_1", TOKENS),
        ("heads", NONE),
    ],
    "transformer_encoder": [
        ("embedding", TOKENS),
        ("encoder.layers.0", TOKENS),
        ("encoder.layers.1", TOKENS),
        ("encoder.layers.2", TOKENS),
        ("head", NONE),
    ],
}


def raw_outputs(model: nn.Module, probe: torch.Tensor, names: list[str]) -> dict[str, np.ndarray]:
    """Each named module's output in eval mode, copied as it leaves the module."""
    caught: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: caught.__setitem__(
                name, (out[0] if isinstance(out, tuple) else out).detach().clone()
            )
        )
        for name in names
    ]
    model.eval()
    with torch.no_grad():
        model(probe)
    for handle in handles:
        handle.remove()
    return {name: tensor.double().numpy() for name, tensor in caught.items()}


def reference_pool(raw: np.ndarray, pooling: str) -> np.ndarray:
    if pooling == SPATIAL:
        return raw.mean(axis=tuple(range(2, raw.ndim)))
    if pooling == TOKENS:
        return raw.mean(axis=tuple(range(1, raw.ndim - 1)))
    if pooling == "class_token":
        return raw[:, 0]
    return raw


def stored(path: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, str]]:
    """Layer order, first checkpoint's activations and pooling attribute of every layer."""
    with h5py.File(path, "r", swmr=True) as f:
        order = [str(name) for name in f["layers"].attrs["order"]]
        values = {name: f["layers"][name]["activations"][0] for name in order}
        pooling = {name: str(f["layers"][name].attrs[fmt.POOLING_ATTR]) for name in order}
    return order, values, pooling


@pytest.mark.parametrize("name", list(EXPECTED))
def test_default_layers_and_their_pooling(name, tmp_path):
    build, make_probe = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = build()
    probe = make_probe(5)
    path = tmp_path / f"{name}.h5"
    with ActivationRecorder(model, probe=probe, path=path) as recorder:
        recorder.record(epoch=0)
    expected_names = [layer for layer, _ in EXPECTED[name]]
    assert recorder.layers == expected_names
    order, values, pooling = stored(path)
    assert order == expected_names
    assert pooling == dict(EXPECTED[name])
    raw = raw_outputs(model, probe, expected_names)
    for layer, how in EXPECTED[name]:
        expected = reference_pool(raw[layer], how)
        assert values[layer].shape == expected.shape, layer
        np.testing.assert_allclose(values[layer], expected, rtol=1e-5, atol=1e-6, err_msg=layer)
        if how != NONE:  # pooled: the samples, then the channels / hidden features
            channels = raw[layer].shape[1 if how == SPATIAL else -1]
            assert values[layer].shape == (5, channels), layer


def test_the_vit_of_the_issue_keeps_its_64_features_not_its_65_tokens(tmp_path):
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=32, patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128
    )
    layers = [f"encoder.layers.encoder_layer_{i}" for i in range(4)]
    probe = torch.randn(16, 3, 32, 32)
    with ActivationRecorder(vit, layers, probe, tmp_path / "vit.h5") as recorder:
        recorder.record(epoch=0)
    _, values, pooling = stored(tmp_path / "vit.h5")
    assert {values[layer].shape for layer in layers} == {(16, 64)}
    assert set(pooling.values()) == {TOKENS}
    raw = raw_outputs(vit, probe, layers)
    for layer in layers:
        assert raw[layer].shape == (16, 65, 64)
        np.testing.assert_allclose(values[layer], raw[layer].mean(axis=1), rtol=1e-5, atol=1e-6)


def test_class_token_and_per_layer_pooling(tmp_path):
    torch.manual_seed(0)
    vit = VisionTransformer()
    probe = torch.randn(3, 3, 16, 16)
    pool = {"encoder.layers.*": "class_token", "conv_proj": "none"}
    path = tmp_path / "vit.h5"
    with ActivationRecorder(vit, probe=probe, path=path, pool=pool) as recorder:
        recorder.record(epoch=0)
    _, values, pooling = stored(path)
    assert pooling == {
        "conv_proj": NONE,
        "encoder.layers.encoder_layer_0": "class_token",
        "encoder.layers.encoder_layer_1": "class_token",
        "heads": NONE,
    }
    raw = raw_outputs(vit, probe, list(pooling))
    np.testing.assert_allclose(values["conv_proj"], raw["conv_proj"], rtol=1e-6)
    assert values["conv_proj"].shape == (3, 16, 4, 4)
    for layer in ("encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"):
        np.testing.assert_allclose(values[layer], raw[layer][:, 0], rtol=1e-6)


def test_one_pooling_for_every_layer_and_the_older_name(tmp_path):
    """``pool="channel_mean"`` is what the user says: dims after dim 1, tokens included."""
    torch.manual_seed(0)
    vit = VisionTransformer()
    probe = torch.randn(3, 3, 16, 16)
    layer = "encoder.layers.encoder_layer_0"
    with ActivationRecorder(vit, [layer], probe, tmp_path / "a.h5", pool="channel_mean") as rec:
        rec.record(epoch=0)
    _, values, pooling = stored(tmp_path / "a.h5")
    assert pooling == {layer: SPATIAL}
    np.testing.assert_allclose(
        values[layer], raw_outputs(vit, probe, [layer])[layer].mean(axis=2), rtol=1e-5
    )


def test_a_later_in_place_operation_does_not_change_what_was_recorded(tmp_path):
    """VGG's ReLU(inplace=True) overwrites the convolution's output after its hook ran."""
    torch.manual_seed(0)
    model, make_probe = ARCHITECTURES["vgg"]
    vgg = model()
    probe = make_probe(4)
    with ActivationRecorder(
        vgg, ["features.0", "features.3"], probe, tmp_path / "a.h5", pool={"features.3": "none"}
    ) as recorder:
        recorder.record(epoch=0)
    _, values, _ = stored(tmp_path / "a.h5")
    conv0 = vgg.features[0]
    vgg.eval()
    with torch.no_grad():
        before_relu = conv0(probe).double().numpy()
    np.testing.assert_allclose(values["features.0"], before_relu.mean(axis=(2, 3)), rtol=1e-5)
    assert (values["features.3"] < 0).any()  # the convolution's output, not the ReLU's


@pytest.mark.parametrize("n_probe", [5, 7], ids=["tokens-differ-from-samples", "tokens-equal"])
def test_a_sequence_first_transformer_is_refused_with_the_reason(n_probe, tmp_path):
    """batch_first=False gives (tokens, N, D): pooled by the wrong axis unless refused."""
    torch.manual_seed(0)
    model = TextTransformer(batch_first=False)
    probe = torch.randint(0, 50, (n_probe, 7))
    with pytest.raises(InputError, match="batch_first=False") as caught:
        ActivationRecorder(model, ["encoder.layers.0"], probe, tmp_path / "t.h5")
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.iterdir())


class Functional(nn.Module):
    """Reshapes an input in its forward without any module that fixes a layout."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x.reshape(len(x), 4, 6))


def test_an_output_of_unknown_layout_asks_for_its_pooling(tmp_path):
    model = Functional()
    probe = torch.randn(3, 24)
    with pytest.raises(InputError, match=r"layer 'act': cannot tell .* \(3, 4, 6\)") as caught:
        ActivationRecorder(model, ["act"], probe, tmp_path / "u.h5")
    assert "pool={'act': 'spatial_mean'}" in str(caught.value)
    with ActivationRecorder(model, ["act"], probe, tmp_path / "u.h5", pool="token_mean") as rec:
        rec.record(epoch=0)
    _, values, _ = stored(tmp_path / "u.h5")
    np.testing.assert_allclose(
        values["act"], np.tanh(probe.double().numpy().reshape(3, 4, 6)).mean(axis=1), rtol=1e-5
    )


def test_class_token_on_an_image_is_an_error(tmp_path):
    model, make_probe = ARCHITECTURES["resnet"]
    with pytest.raises(InputError, match="'class_token' takes the first token"):
        ActivationRecorder(
            model(), ["layer1.0"], make_probe(2), tmp_path / "r.h5", pool="class_token"
        )


class PatchEmbed(nn.Module):
    """timm-style patch embedding: a convolution, then flatten and transpose to tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 12, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def test_a_convolution_turned_into_tokens_is_pooled_over_tokens(tmp_path):
    model = nn.Sequential(PatchEmbed(), nn.LayerNorm(12))
    probe = torch.randn(2, 3, 16, 16)
    with ActivationRecorder(model, ["0"], probe, tmp_path / "p.h5") as recorder:
        recorder.record(epoch=0)
    assert recorder.pooling == {"0": TOKENS}
    assert recorder.stored_shapes == {"0": (2, 12)}
