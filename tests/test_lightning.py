"""The Lightning callback, against the real ``lightning`` package on CPU."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from dynatrain.analysis import Settings, analyze  # noqa: E402
from dynatrain.errors import InputError  # noqa: E402
from dynatrain.lightning import DynatrainCallback  # noqa: E402

# Lightning's advice about data-loader workers and logging intervals on a tiny CPU run, and
# its own use of a torch API that torch 2.13 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers.*",
    "ignore:.*isinstance.treespec, LeafSpec.*:FutureWarning",
    "ignore:.*number of training batches.*",
    "ignore:.*GPU available.*",
)
LAYERS = ["net.0", "net.2", "net.3"]


class TinyClassifier(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _index):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _index):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    dataset = TensorDataset(x, y)
    return DataLoader(dataset, batch_size=32), DataLoader(dataset, batch_size=128), x[:16]


def fit(tmp_path, callback, max_epochs):
    torch.manual_seed(0)
    train, val, _ = data()
    logger = CSVLogger(tmp_path, name="logs")
    trainer = Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        logger=logger,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(TinyClassifier(), train, val)
    with open(f"{logger.log_dir}/metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return trainer, rows


def test_the_measures_are_logged_beside_the_loss_and_the_archive_is_analysable(tmp_path):
    _, _, probe = data()
    callback = DynatrainCallback(probe, LAYERS, settings=Settings(surrogates=19))
    trainer, rows = fit(tmp_path, callback, max_epochs=40)
    columns = set(rows[0])
    for name in ("integration", "metastability", "stability_index", "volatility", "converged"):
        assert f"dynatrain/{name}" in columns
    assert "val_acc" in columns and "train_loss" in columns
    logged = [row for row in rows if row["dynatrain/stability_index"]]
    # Windows of 39 // 4 = 16 points (analyze's default on 40 checkpoints): from epoch 17.
    assert len(logged) == 40 - 16
    # What the callback logged is what analyze reads from the archive it wrote.
    result = analyze(callback.recorder.path, Settings(surrogates=19))
    np.testing.assert_allclose(
        [float(row["dynatrain/stability_index"]) for row in logged],
        result.window_stability_index,
        rtol=1e-6,  # the CSV logger writes float32
    )
    assert result.metadata["expected_checkpoints"] == 40
    assert callback.stopped_epoch is None and trainer.current_epoch == 40


def test_stop_on_convergence_stops_the_run_at_the_decision(tmp_path):
    _, _, probe = data()
    # A loose rule (any window below its running peak), so that this tiny run decides.
    settings = Settings(window=12, vol_window=3, vol_threshold=1.0, vol_patience=1, surrogates=0)
    callback = DynatrainCallback(
        probe, LAYERS, settings=settings, stop_on_convergence=True, min_epochs=20, max_p=None
    )
    trainer, rows = fit(tmp_path, callback, max_epochs=60)
    decided = callback.status["convergence"]["decided_epoch"]
    assert decided is not None
    assert callback.stopped_epoch == max(20, int(decided)) < 60
    assert trainer.current_epoch == callback.stopped_epoch  # no epoch trained after it
    flags = [float(row["dynatrain/converged"]) for row in rows if row["dynatrain/converged"]]
    assert flags[-1] == 1.0 and flags.count(1.0) == 1 + callback.stopped_epoch - int(decided)


def test_stopping_on_a_p_value_needs_surrogates():
    _, _, probe = data()
    with pytest.raises(InputError, match="surrogates > 0"):
        DynatrainCallback(probe, stop_on_convergence=True, settings=Settings(surrogates=0))
    with pytest.raises(InputError, match="min_epochs"):
        DynatrainCallback(probe, min_epochs=-1)


def test_without_lightning_the_import_error_is_one_line():
    code = (
        "import sys; sys.modules['lightning'] = None\n"
        "try:\n    import dynatrain.lightning\n"
        "except ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.count("\n") == 1
    assert "pip install 'dynatrain[lightning]'" in out.stdout
