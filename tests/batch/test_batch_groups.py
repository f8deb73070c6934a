"""Group statistics against scipy.stats and brute force, on known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dynatrain.batch import MISSING, group_summary, measure_value

A = [0.61, 0.55, 0.70, 0.58, 0.66]
B = [0.92, 0.71, 0.88, 0.97]
C = [0.80]


def _record(run: str, integration: float | None, **metadata) -> dict:
    return {
        "run": run,
        "run_id": run,
        "metadata": metadata,
        "integration": float("nan") if integration is None else integration,
        "convergence": {"lead_epochs": None},
    }


@pytest.fixture
def records() -> list[dict]:
    rows = [_record(f"b{i}", x, dataset="B") for i, x in enumerate(B)]
    rows += [_record(f"a{i}", x, dataset="A") for i, x in enumerate(A)]
    rows += [_record("c0", C[0], dataset=10), {"run": "bad.h5", "error": "broken"}]
    rows += [_record("nan", None, dataset="A"), _record("nodata", 0.5)]
    return rows


def test_per_group_statistics(records):
    summary = group_summary(records, ["dataset"], measures=["integration"])
    # numbers before text, missing last; failed runs left out
    assert [g.label for g in summary.groups] == ["10", "A", "B", MISSING]
    by_label = {g.label: g.stats["integration"] for g in summary.groups}
    a = by_label["A"]
    assert a.n == len(A)  # the NaN run is not counted
    assert a.mean == pytest.approx(np.mean(A), abs=1e-15)
    assert a.sd == pytest.approx(np.std(A, ddof=1), abs=1e-15)
    assert a.median == pytest.approx(np.median(A), abs=1e-15)
    low, high = stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=stats.sem(A))
    assert a.ci95 == pytest.approx((low, high), abs=1e-12)
    single = by_label["10"]
    assert (single.n, single.mean, single.sd, single.ci95) == (1, 0.8, None, None)
    assert summary.groups[1].runs == ("a0", "a1", "a2", "a3", "a4", "nan")
    assert summary.warnings == [
        f"1 run(s) without metadata 'dataset', grouped as {MISSING}: nodata"
    ]


def test_between_groups_against_scipy(records):
    summary = group_summary(records, ["dataset"], measures=["integration"])
    comparison = next(c for c in summary.comparisons if (c.group_a, c.group_b) == ("A", "B"))
    assert (comparison.n_a, comparison.n_b) == (len(A), len(B))
    assert comparison.difference == pytest.approx(np.mean(B) - np.mean(A), abs=1e-15)
    pooled = math.sqrt(
        ((len(A) - 1) * np.var(A, ddof=1) + (len(B) - 1) * np.var(B, ddof=1))
        / (len(A) + len(B) - 2)
    )
    assert comparison.cohens_d == pytest.approx((np.mean(B) - np.mean(A)) / pooled, rel=1e-12)
    reference = stats.mannwhitneyu(B, A, alternative="two-sided")
    assert comparison.mann_whitney_u == reference.statistic
    assert comparison.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    # AUROC by brute force: P(b > a) + P(b == a) / 2
    pairs = [(b > a) + 0.5 * (b == a) for a in A for b in B]
    assert comparison.auroc == pytest.approx(np.mean(pairs), abs=1e-15)
    # every pair of the four groups is compared, in group order
    assert [(c.group_a, c.group_b) for c in summary.comparisons] == [
        ("10", "A"),
        ("10", "B"),
        ("10", MISSING),
        ("A", "B"),
        ("A", MISSING),
        ("B", MISSING),
    ]


def test_ties_and_empty_measures():
    records = [_record(f"r{i}", x, g=g) for i, (x, g) in enumerate([(1.0, 1), (1.0, 1), (1.0, 2)])]
    summary = group_summary(records, ["g"], measures=["integration", "convergence.lead_epochs"])
    tie, empty = summary.comparisons
    assert tie.auroc == 0.5 and tie.cohens_d is None and tie.p_value == 1.0
    assert empty.n_a == 0 and empty.auroc is None and empty.p_value is None
    assert summary.groups[0].stats["convergence.lead_epochs"].n == 0


def test_without_keys_one_group_of_all_runs(records):
    summary = group_summary(records, measures=["integration"])
    assert [g.label for g in summary.groups] == ["all runs"]
    assert summary.groups[0].stats["integration"].n == len(A) + len(B) + len(C) + 1
    assert summary.comparisons == [] and summary.warnings == []


def test_flat_rows_and_json(records):
    summary = group_summary(records, ["dataset"], measures=["integration"])
    row = summary.group_rows()[1]
    assert row["group"] == "A" and row["dataset"] == "A" and row["measure"] == "integration"
    assert row["ci95_low"] < row["mean"] < row["ci95_high"]
    data = summary.to_dict()
    assert data["group_by"] == ["dataset"] and data["groups"][1]["values"] == {"dataset": "A"}
    assert set(data["comparisons"][0]) >= {"auroc", "p_value", "cohens_d", "difference"}


def test_measure_value_paths():
    record = {"a": {"b": 2}, "nan": float("nan"), "none": None}
    assert measure_value(record, "a.b") == 2.0
    assert measure_value(record, "nan") is None
    assert measure_value(record, "none") is None
    assert measure_value(record, "a.c") is None
    assert measure_value({"run": "x", "error": "e"}, "integration") is None


def test_unhashable_metadata_values_group_by_their_json():
    """Lists and mappings (HDF5 array attributes, JSON objects) group; labels stay readable."""
    records = [
        _record("r0", 0.5, widths=[64, 32], opt={"lr": 0.1, "name": "sgd"}),
        _record("r1", 0.6, widths=[64, 32], opt={"name": "sgd", "lr": 0.1}),  # keys reordered
        _record("r2", 0.7, widths=np.array([128]), opt={"lr": 0.1, "name": "sgd"}),
        _record("r3", 0.8, widths=[64, 32], opt="adam"),
        _record("r4", 0.9, widths=True, opt="adam"),
        _record("r5", 1.0, widths=1, opt="adam"),  # equal to True in Python, not here
        _record("r6", 1.1, widths=float("nan"), opt="adam"),
        _record("r7", 1.2, widths=float("nan"), opt="adam"),  # NaN groups with NaN
    ]
    summary = group_summary(records, ["widths", "opt"], measures=["integration"])
    labels = [group.label for group in summary.groups]
    assert labels == [
        "1 / adam",
        "True / adam",
        '[128] / {"lr": 0.1, "name": "sgd"}',
        "[64, 32] / adam",
        '[64, 32] / {"lr": 0.1, "name": "sgd"}',
        "nan / adam",
    ]
    assert [group.runs for group in summary.groups][4] == ("r0", "r1")
    assert [group.runs for group in summary.groups][5] == ("r6", "r7")
    assert summary.groups[4].values == {"widths": [64, 32], "opt": {"lr": 0.1, "name": "sgd"}}
    # the same groups, whatever the order of the runs
    again = group_summary(records[::-1], ["widths", "opt"], measures=["integration"])
    assert [group.label for group in again.groups] == labels


def _with_length(record: dict, n_points: int) -> dict:
    return {**record, "timeseries": {"epoch": list(range(n_points))}}


def test_corrected_integration_is_compared_and_a_length_difference_warned():
    from dynatrain.batch import GROUP_MEASURES

    assert GROUP_MEASURES[:2] == ("integration", "integration_corrected")
    same = [_with_length(_record(f"r{i}", 0.6, dataset="A"), 99) for i in range(3)]
    assert group_summary(same, ["dataset"]).warnings == []
    mixed = [*same, _with_length(_record("long", 0.6, dataset="B"), 1999)]
    mixed.append({"run": "bad.h5", "error": "broken"})  # failed runs have no length
    [warning] = group_summary(mixed, ["dataset"]).warnings
    assert warning.startswith("runs differ in length (99 to 1999 analysed points)")
    assert "compare integration_corrected" in warning
