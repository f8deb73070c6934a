"""The recorder on torchvision's own constructors (no weights, small inputs).

torchvision's wheels on PyPI are built against one torch release; beside another
(the CPU build this project tests with, say) ``import torchvision`` fails with
``operator torchvision::nms does not exist``. These tests then skip, and
``test_layouts.py`` checks the same module trees through torch.nn equivalents.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

try:
    from torchvision import models
except Exception as exc:  # a RuntimeError, not an ImportError, when the builds disagree
    pytest.skip(
        f"torchvision does not import beside torch {torch.__version__}: {exc}",
        allow_module_level=True,
    )

from dynatrain.torch import ActivationRecorder  # noqa: E402

SPATIAL, TOKENS, NONE = "spatial_mean", "token_mean", "none"

CASES = {
    "resnet18": (
        lambda: models.resnet18(num_classes=10),
        32,
        ["maxpool", *[f"layer{s}.{b}" for s in range(1, 5) for b in range(2)], "fc"],
    ),
    "densenet121": (
        lambda: models.densenet121(num_classes=10),
        32,
        [
            "features.pool0",
            *[f"features.{kind}{i}" for i in range(1, 4) for kind in ("denseblock", "transition")],
            "features.denseblock4",
            "classifier",
        ],
    ),
    "mobilenet_v2": (
        lambda: models.mobilenet_v2(num_classes=10),
        32,
        [*[f"features.{i}" for i in range(19)], "classifier"],
    ),
    "vgg16": (
        lambda: models.vgg16(num_classes=10),
        32,
        [
            *[f"features.{i}" for i in (1, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27, 30)],
            "classifier.1",
            "classifier.4",
            "classifier.6",
        ],
    ),
    "vit": (
        lambda: models.VisionTransformer(
            image_size=32, patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128
        ),
        32,
        ["conv_proj", *[f"encoder.layers.encoder_layer_{i}" for i in range(4)], "heads"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_torchvision_default_layers_and_pooling(name, tmp_path):
    build, size, expected = CASES[name]
    torch.manual_seed(0)
    model = build()
    probe = torch.randn(2, 3, size, size)
    with ActivationRecorder(model, probe=probe, path=tmp_path / f"{name}.h5") as recorder:
        recorder.record(epoch=0)
    assert recorder.layers == expected
    caught = {}
    handles = [
        model.get_submodule(layer).register_forward_hook(
            lambda _m, _i, out, layer=layer: caught.__setitem__(layer, out.detach().clone())
        )
        for layer in expected
    ]
    model.eval()
    with torch.no_grad():
        model(probe)
    for handle in handles:
        handle.remove()
    captured = recorder.capture()
    for layer in expected:
        raw = caught[layer].double().numpy()
        if raw.ndim == 2:
            assert recorder.pooling[layer] == NONE
            reference = raw
        elif layer.startswith("encoder.layers"):
            assert recorder.pooling[layer] == TOKENS  # (N, 65 tokens, 64) -> (N, 64)
            reference = raw.mean(axis=1)
        else:
            assert recorder.pooling[layer] == SPATIAL
            reference = raw.mean(axis=(2, 3))
        np.testing.assert_allclose(captured[layer], reference, rtol=1e-4, atol=1e-5)
