"""The recorder's live status: the monitor sees, without reading the file, what analyze reads."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from dynatrain.analysis import Settings, analyze  # noqa: E402
from dynatrain.errors import InputError  # noqa: E402
from dynatrain.live import Monitor  # noqa: E402
from dynatrain.torch import ActivationRecorder  # noqa: E402

LAYERS = ["0", "1", "2", "3"]
EPOCHS = 60


def model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.Linear(12, 3))
    inputs = torch.randn(96, 6)
    labels = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    return model, inputs, labels


def train(recorder, model, inputs, labels, epochs=EPOCHS):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    statuses = []
    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        accuracy = (model(inputs).argmax(1) == labels).float().mean()
        recorder.record(epoch=epoch, metrics={"val_accuracy": accuracy, "train_loss": loss})
        statuses.append(recorder.status)
    return statuses


@pytest.mark.parametrize("dtype", [None, "float16"])
def test_the_status_after_each_record_is_what_analyze_reads_back(tmp_path, dtype):
    model, inputs, labels = model_and_data()
    path = tmp_path / "run.h5"
    options = {} if dtype is None else {"activation_dtype": dtype}
    with ActivationRecorder(
        model, LAYERS, inputs[:16], path, monitor=True, expected_checkpoints=EPOCHS, **options
    ) as recorder:
        statuses = train(recorder, model, inputs, labels)
    assert [s["checkpoints"] for s in statuses] == list(range(1, EPOCHS + 1))
    settings = Settings(surrogates=19)
    result = analyze(path, settings)
    monitor = recorder.monitor
    # The same windows as analyze: bit for bit (so the signals were too).
    np.testing.assert_array_equal(
        monitor.timeseries()["stability_index"], result.window_stability_index
    )
    np.testing.assert_array_equal(monitor.timeseries()["volatility"], result.volatility)
    assert statuses[-1]["convergence"]["decided_epoch"] == result.decided_epoch
    assert statuses[-1]["convergence"]["metric"] == "val_accuracy"


def test_a_monitor_given_is_fed_and_its_layers_must_match(tmp_path):
    model, inputs, labels = model_and_data(1)
    monitor = Monitor(LAYERS, Settings(window=20, surrogates=0))
    with ActivationRecorder(
        model, LAYERS, inputs[:8], tmp_path / "a.h5", monitor=monitor
    ) as recorder:
        train(recorder, model, inputs, labels, epochs=25)
    assert monitor.checkpoints == 25 and recorder.status["windows"] == 25 - 1 - 20 + 1
    with pytest.raises(InputError, match="not the recorder's"):
        ActivationRecorder(model, LAYERS[:3], inputs[:8], tmp_path / "b.h5", monitor=monitor)
    assert not (tmp_path / "b.h5").exists()


def test_monitor_true_needs_the_runs_length(tmp_path):
    model, inputs, _ = model_and_data()
    with pytest.raises(InputError, match="expected_checkpoints=N"):
        ActivationRecorder(model, LAYERS, inputs[:8], tmp_path / "c.h5", monitor=True)
    with pytest.raises(InputError, match="monitor must be"):
        ActivationRecorder(model, LAYERS, inputs[:8], tmp_path / "c.h5", monitor="yes")
    assert not (tmp_path / "c.h5").exists()
    # In the metadata is as good as the writer option.
    with ActivationRecorder(
        model, LAYERS, inputs[:8], tmp_path / "d.h5", {"expected_checkpoints": 30}, monitor=True
    ) as recorder:
        recorder.record(epoch=1)
    assert recorder.status["window"]["expected_checkpoints"] == 30
    assert recorder.status["window"]["length"] == 16
