"""Streaming reductions equal a whole-array NumPy reference, whatever the block size."""

from __future__ import annotations

import numpy as np
import pytest

from dynatrain import open_archive
from dynatrain.errors import InputError
from dynatrain.signals import checkpoint_range, parse_epoch_range, read_signals, select_layers

REFERENCE = {
    "mean": lambda a: a.mean(axis=1),
    "rms": lambda a: np.sqrt(np.mean(a * a, axis=1)),
    "mean-abs": lambda a: np.abs(a).mean(axis=1),
    "std": lambda a: a.std(axis=1),
}


@pytest.mark.parametrize("reduce", list(REFERENCE))
@pytest.mark.parametrize("budget", [40, 1000, 2**25], ids=["split-samples", "few-rows", "default"])
@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
def test_reductions_match_numpy(plain_archive, small_layers, reduce, budget, name):
    path = plain_archive(name, layers=small_layers)
    signals = read_signals(path, reduce=reduce, max_block_bytes=budget)
    for i, values in enumerate(small_layers.values()):
        expected = REFERENCE[reduce](values.reshape(30, -1).astype(np.float64))
        np.testing.assert_allclose(signals.values[i], expected, rtol=1e-13, atol=1e-15)


def test_std_does_not_cancel_on_large_offsets(plain_archive):
    rng = np.random.default_rng(1)
    values = 1e8 + rng.normal(size=(25, 50, 40))
    path = plain_archive("offset.h5", layers={"a": values})
    signals = read_signals(path, reduce="std", max_block_bytes=2000)  # many pieces per row
    expected = values.reshape(25, -1).std(axis=1)
    np.testing.assert_allclose(signals.values[0], expected, rtol=1e-12)


CANCELLATION = {
    # mean / std = 1e8: E[x^2] - E[x]^2 in float64 would lose every digit.
    "float64": lambda rng, shape: 1e4 + 1e-4 * rng.normal(size=shape),
    # mean / std = 1e5 in float32 (its spacing at 1000 is 6e-5).
    "float32": lambda rng, shape: (1e3 + 1e-2 * rng.normal(size=shape)).astype(np.float32),
}


@pytest.mark.parametrize("dtype", list(CANCELLATION))
@pytest.mark.parametrize("budget", [400_000, 2**25], ids=["split-samples", "default"])
@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
def test_std_large_mean_tiny_variance(plain_archive, dtype, budget, name):
    """The catastrophic-cancellation case, against NumPy's two-pass float64 std, with
    rows longer than a float64 piece and than a dot-product segment (E[x^2] - E[x]^2
    is off by 100% on the float64 case, by 1e-6 on the float32 one)."""
    rng = np.random.default_rng(8)
    values = CANCELLATION[dtype](rng, (6, 96, 3000))  # 288,000 elements per checkpoint
    path = plain_archive(name, layers={"a": values})
    signals = read_signals(path, reduce="std", max_block_bytes=budget)
    expected = values.reshape(6, -1).astype(np.float64).std(axis=1)
    np.testing.assert_allclose(signals.values[0], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduce", list(REFERENCE))
def test_reductions_long_rows(plain_archive, reduce):
    """Rows of more than one float64 piece (2**18 elements) and a ragged last segment."""
    rng = np.random.default_rng(9)
    values = (3 + rng.normal(size=(4, 7, 41_001))).astype(np.float32)
    path = plain_archive("long.h5", layers={"a": values})
    signals = read_signals(path, reduce=reduce)
    expected = REFERENCE[reduce](values.reshape(4, -1).astype(np.float64))
    np.testing.assert_allclose(signals.values[0], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduce", ["std", "rms"])
def test_reductions_without_numpy_vecdot(plain_archive, small_layers, monkeypatch, reduce):
    """NumPy 1.x has no vecdot: the einsum fallback gives the same values."""
    import dynatrain.signals

    monkeypatch.setattr(dynatrain.signals, "_vecdot", None)
    path = plain_archive("old-numpy.h5", layers=small_layers)
    signals = read_signals(path, reduce=reduce, max_block_bytes=1000)
    for i, values in enumerate(small_layers.values()):
        expected = REFERENCE[reduce](values.reshape(30, -1).astype(np.float64))
        np.testing.assert_allclose(signals.values[i], expected, rtol=1e-13, atol=1e-15)


def test_float16_is_accumulated_in_float64(plain_archive):
    values = np.full((20, 4096, 8), 0.1, dtype=np.float16)  # a float16 sum would stall at 256
    path = plain_archive("half.zarr", layers={"a": values})
    signals = read_signals(path, reduce="mean")
    np.testing.assert_allclose(signals.values[0], float(np.float16(0.1)), rtol=1e-12)


def test_non_finite_values_propagate(plain_archive, small_layers):
    small_layers["fc"][17, 2, 3] = np.inf
    path = plain_archive("nan.h5", layers=small_layers)
    signals = read_signals(path, reduce="mean")
    assert np.isfinite(signals.values[2, :17]).all()
    assert not np.isfinite(signals.values[2, 17])


def test_epoch_range_and_layer_globs(plain_archive, small_layers):
    path = plain_archive("sel.h5", layers=small_layers, metrics={"acc": np.arange(30.0)})
    signals = read_signals(path, layers=["conv*"], epochs=(5, 12.5))
    assert signals.layer_names == ("conv1", "conv2")
    np.testing.assert_array_equal(signals.epochs, np.arange(5.0, 13))
    np.testing.assert_array_equal(signals.metrics["acc"], np.arange(4.0, 12))
    assert signals.first_checkpoint == 4
    expected = small_layers["conv2"][4:12].reshape(8, -1).astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(signals.values[1], expected, rtol=1e-13)


def test_open_archive_can_be_reused(plain_archive, small_layers):
    path = plain_archive("reuse.zarr", layers=small_layers)
    with open_archive(path) as archive:
        first = read_signals(archive, reduce="rms")
        second = read_signals(archive, reduce="rms")
    np.testing.assert_array_equal(first.values, second.values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10:80", (10.0, 80.0)), ("10:", (10.0, None)), (":80", (None, 80.0)), (None, (None, None))],
)
def test_parse_epoch_range(text, expected):
    assert parse_epoch_range(text) == expected


@pytest.mark.parametrize("text", ["10", "a:b", "9:3", "1:2:3"])
def test_parse_epoch_range_rejects(text):
    with pytest.raises(InputError, match="--epochs"):
        parse_epoch_range(text)


def test_checkpoint_range_is_inclusive():
    epochs = np.array([0.5, 1.0, 2.0, 3.0])
    assert checkpoint_range(epochs, 1.0, 2.0) == (1, 3)
    assert checkpoint_range(epochs, 5.0, None) == (4, 4)


def test_select_layers_rejects_unknown_pattern():
    with pytest.raises(InputError, match="matches no layer"):
        select_layers(["a", "b"], ["c*"])
    assert select_layers(["a", "b", "c"], ["c", "a"]) == ["a", "c"]


def test_unknown_reduction_is_rejected(plain_archive, small_layers):
    with pytest.raises(InputError, match="invalid reduce"):
        read_signals(plain_archive("x.h5", layers=small_layers), reduce="median")


@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
def test_signals_cli_prints_csv_in_layer_order(cli, plain_archive, small_layers, name):
    """Header ``epoch,<layer>,...`` in the archive's layer order (not alphabetical), then
    one row per checkpoint whose values read back as the reduction."""
    epochs = np.arange(30.0) * 0.5 + 1
    path = plain_archive(name, layers=small_layers, epochs=epochs, order=["fc", "conv2", "conv1"])
    result = cli("signals", path, "--reduce", "rms", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "epoch,fc,conv2,conv1"
    table = np.array([[float(cell) for cell in line.split(",")] for line in lines[1:]])
    assert table.shape == (30, 4)
    np.testing.assert_array_equal(table[:, 0], epochs)
    for column, layer in enumerate(["fc", "conv2", "conv1"], start=1):
        expected = REFERENCE["rms"](small_layers[layer].reshape(30, -1).astype(np.float64))
        np.testing.assert_allclose(table[:, column], expected, rtol=1e-13, atol=0)


#: Reference reductions in extended precision (x87 80-bit: exponents to 1e4932, so
#: squares of 1e300 do not overflow), computed independently of the streaming code.
LONG_REFERENCE = {
    "mean": lambda a: a.mean(axis=1),
    "rms": lambda a: np.sqrt(np.mean(a * a, axis=1)),
    "mean-abs": lambda a: np.abs(a).mean(axis=1),
    "std": lambda a: np.sqrt(np.mean((a - a.mean(axis=1, keepdims=True)) ** 2, axis=1)),
}
needs_long_double = pytest.mark.skipif(
    np.finfo(np.longdouble).maxexp <= np.finfo(np.float64).maxexp,
    reason="long double is float64 here: no independent reference beyond float64's range",
)


@needs_long_double
@pytest.mark.parametrize("reduce", list(LONG_REFERENCE))
@pytest.mark.parametrize("budget", [300, 2**25], ids=["split-samples", "default"])
@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
def test_huge_values_do_not_overflow(plain_archive, reduce, budget, name):
    """A diverging run: float64 activations from 1e150 to 1e307 (squares and sums
    overflow float64) reduce to the right finite values, without a NumPy warning
    (warnings are errors in this suite)."""
    rng = np.random.default_rng(12)
    scale = np.logspace(150, 307, 30)[:, None, None]
    values = rng.normal(size=(30, 8, 5)) * scale
    values[:, 0, 0] = 1.7e308  # the largest magnitudes float64 holds
    values[3] = 1.7e308  # a constant row: std 0, mean and rms 1.7e308
    path = plain_archive(name, layers={"a": values})
    signals = read_signals(path, reduce=reduce, max_block_bytes=budget)
    expected = LONG_REFERENCE[reduce](values.reshape(30, -1).astype(np.longdouble))
    assert np.isfinite(signals.values).all()
    np.testing.assert_allclose(signals.values[0], expected.astype(np.float64), rtol=1e-12)


@pytest.mark.parametrize("reduce", list(LONG_REFERENCE))
def test_values_beyond_float64_are_non_finite(plain_archive, reduce):
    """inf in the data (beyond float64) gives a non-finite result for that checkpoint
    only, quietly; validate notes it as non-finite data."""
    values = np.random.default_rng(3).normal(size=(30, 4, 3)) * 1e200
    values[11, 2, 1] = np.inf
    path = plain_archive("inf.h5", layers={"a": values})
    signals = read_signals(path, reduce=reduce)
    assert not np.isfinite(signals.values[0, 11])
    assert np.isfinite(np.delete(signals.values[0], 11)).all()
    from dynatrain.archive.validate import validate_archive

    notes = validate_archive(path).notes
    assert any("non-finite values from checkpoint 11 (epoch 12) in 1 of 30" in n for n in notes)


@needs_long_double
@pytest.mark.parametrize("reduce", list(LONG_REFERENCE))
@pytest.mark.parametrize("name", ["run.h5", "run.zarr"])
def test_subnormal_values_reduce_exactly_and_quietly(plain_archive, reduce, name):
    """Values around 1e-310 (subnormal float64): right results, finite, no warning."""
    rng = np.random.default_rng(13)
    values = rng.normal(size=(30, 6, 4)) * 1e-310
    path = plain_archive(name, layers={"a": values})
    signals = read_signals(path, reduce=reduce)
    expected = LONG_REFERENCE[reduce](values.reshape(30, -1).astype(np.longdouble))
    assert np.isfinite(signals.values).all()
    # Subnormals carry fewer significant bits: compare at their own resolution.
    np.testing.assert_allclose(
        signals.values[0], expected.astype(np.float64), rtol=1e-6, atol=1e-322
    )
