"""The model layer on its own: the version record's tags, the time split, metrics, input."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from mlops_platform.model import tags as t
from mlops_platform.model.columns import EVENT_DATE, LABEL
from mlops_platform.model.input import InputError, model_input, normalize, rows_input
from mlops_platform.model.metrics import LOWER_IS_BETTER, compute_metrics, worse_by
from mlops_platform.model.split import TimeSplit, plan_split, split_by_time
from mlops_platform.model.version import GateSummary, VersionRecord, data_digest
from mlops_platform.specs import load_spec

SPEC = load_spec("flight_delay")
REGRESSION = load_spec("flight_delay_minutes")
SPLIT = TimeSplit(
    dt.date(2013, 1, 1), dt.date(2013, 1, 31), dt.date(2013, 2, 1), dt.date(2013, 2, 7)
)


def record(**changes) -> VersionRecord:
    base = VersionRecord(SPLIT, "ab" * 32, 12_000, 2_500, "run1", "dagster1", "abc123")
    return VersionRecord(**{**base.__dict__, **changes})


@pytest.mark.parametrize(
    "version",
    [
        record(),
        record(shuffle_labels=True, approval=t.APPROVAL_PENDING),
        record(gate=GateSummary(True, "3", None, {"roc_auc": 0.71}, latency_rounds=2)),
        record(
            gate=GateSummary(False, "4", "3", {"roc_auc": 0.5}, {"roc_auc": 0.7}, ["vs_champion"]),
            approval=t.APPROVAL_APPROVED,
            approved_by="ana",
        ),
    ],
)
def test_version_record_round_trips_through_tags(version):
    tags = version.to_tags()
    assert all(isinstance(v, str) for v in tags.values())  # MLflow tags are strings
    assert VersionRecord.from_tags(tags) == version
    assert tags[t.WINDOW_PREFIX + "holdout_end"] == "2013-02-07"


def test_a_rejection_is_on_the_tags_by_name():
    gate = GateSummary(False, "4", "3", failed_checks=["floor:roc_auc", "vs_champion"])
    tags = record(gate=gate).to_tags()
    assert tags[t.GATE_PASSED] == "false" and tags[t.GATE_STATUS] == t.GATE_REJECTED
    assert tags[t.GATE_FAILED_CHECKS] == "floor:roc_auc,vs_champion"
    assert VersionRecord.from_tags(tags).rejected
    assert not record().rejected  # never gated is not rejected
    accepted = record(gate=GateSummary(True, "4")).to_tags()
    assert accepted[t.GATE_STATUS] == t.GATE_ACCEPTED and accepted[t.GATE_FAILED_CHECKS] == ""


def test_version_record_names_what_is_missing():
    tags = record().to_tags()
    del tags[t.HOLDOUT_ROWS]
    with pytest.raises(ValueError, match="holdout_rows"):
        VersionRecord.from_tags(tags)
    tags = record().to_tags()
    del tags[t.WINDOW_PREFIX + "train_start"]
    with pytest.raises(ValueError, match="no recorded time window"):
        VersionRecord.from_tags(tags)


def test_gate_summary_reads_a_legacy_signed_summary():
    legacy = {"passed": True, "challenger": "1", "signed_later_by": "ana", "reason": "old"}
    assert GateSummary.from_dict(legacy) == GateSummary(True, "1")
    with pytest.raises(ValueError, match="not a gate summary"):
        GateSummary.from_dict({"metrics": {}})


@pytest.mark.parametrize(
    ("last_labelled", "holdout"),
    [
        # The newest labelled day is partial: the holdout ends the day before it.
        (dt.date(2013, 3, 25), (dt.date(2013, 3, 18), dt.date(2013, 3, 24))),
        (dt.date(2013, 1, 2), (dt.date(2012, 12, 26), dt.date(2013, 1, 1))),
    ],
)
def test_plan_split_windows(last_labelled, holdout):
    assert SPEC.holdout_days == 7  # the expected windows below are for one week
    split = plan_split(last_labelled, SPEC)
    assert (split.holdout_start, split.holdout_end) == holdout
    assert split.train_end == split.holdout_start - dt.timedelta(days=1)
    assert (split.train_end - split.train_start).days == SPEC.training_window_days - 1


def test_split_refuses_too_little_and_unlabelled_data():
    days = pd.date_range("2013-01-01", periods=10, freq="D").repeat(10)
    with pytest.raises(ValueError, match="no labelled rows"):
        split_by_time(pd.DataFrame({EVENT_DATE: days, LABEL: np.nan}), SPEC)
    with pytest.raises(ValueError, match="too little labelled data"):
        split_by_time(pd.DataFrame({EVENT_DATE: days, LABEL: 1.0}), SPEC)


@pytest.mark.parametrize(
    ("min_train_rows", "min_holdout_rows", "refused"),
    [(20, 70, None), (21, 70, "min_train_rows"), (20, 71, "min_holdout_rows"), (10, 10, None)],
)
def test_split_minimums_come_from_the_spec(min_train_rows, min_holdout_rows, refused):
    """Ten labelled days of ten rows: the newest day is left out, seven are held out (70 rows),
    two train (20 rows); the spec's minimums decide."""
    days = pd.date_range("2013-01-01", periods=10, freq="D").repeat(10)
    table = pd.DataFrame({EVENT_DATE: days, LABEL: 1.0})
    spec = SPEC.model_copy(
        update={"min_train_rows": min_train_rows, "min_holdout_rows": min_holdout_rows}
    )
    if refused:
        with pytest.raises(ValueError, match=f"too little labelled data.*{refused}"):
            split_by_time(table, spec)
    else:
        train, holdout, _ = split_by_time(table, spec)
        assert (len(train), len(holdout)) == (20, 70)


def test_spec_minimums_default_to_the_platforms_and_refuse_nonsense():
    from mlops_platform.specs import ModelSpec

    assert (SPEC.min_train_rows, SPEC.min_holdout_rows) == (1000, 200)
    rain = load_spec("rain")  # one row a day: its own minimums
    assert (rain.min_train_rows, rain.min_holdout_rows) == (1000, 180)
    assert rain.min_holdout_rows <= rain.holdout_days
    for field in ("min_train_rows", "min_holdout_rows"):
        with pytest.raises(ValueError, match=field):
            ModelSpec.model_validate({**SPEC.model_dump(), field: 5})


@pytest.mark.parametrize(
    ("metric", "value", "reference", "worse"),
    [("roc_auc", 0.70, 0.72, 0.02), ("roc_auc", 0.75, 0.72, -0.03), ("brier", 0.20, 0.18, 0.02),
     ("mae", 10.0, 12.0, -2.0), ("r2", 0.3, 0.4, 0.1)],
)  # fmt: skip
def test_worse_by_knows_each_metrics_direction(metric, value, reference, worse):
    assert worse_by(metric, value, reference) == pytest.approx(worse)
    assert (metric in LOWER_IS_BETTER) == (metric in {"brier", "mae"})


def test_metrics_refuse_undefined_values():
    with pytest.raises(ValueError, match="zero rows"):
        compute_metrics(SPEC, np.array([]), np.array([]))
    with pytest.raises(ValueError, match="single class"):
        compute_metrics(SPEC, np.ones(5), np.full(5, 0.3))
    found = compute_metrics(SPEC, np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]))
    assert found["roc_auc"] == 1.0 and set(found) >= {"brier", "log_loss"}
    assert set(compute_metrics(REGRESSION, np.array([1.0, 2.0]), np.array([1.0, 3.0]))) == {
        "mae",
        "rmse",
        "r2",
    }


def test_rows_from_a_client_make_the_same_input_as_the_feature_table(golden_features):
    rows = golden_features.head(50)
    columns = {c: rows[c].astype(object).where(rows[c].notna(), None).tolist() for c in rows}
    from_rows = rows_input(columns, len(rows), SPEC)
    pd.testing.assert_frame_equal(from_rows, model_input(rows, SPEC).reset_index(drop=True))


def test_client_rows_are_checked_column_by_column():
    columns = {c: [None] for c in SPEC.features.columns}
    assert math.isnan(normalize(columns, 1, SPEC)[SPEC.features.numeric[0]][0])
    with pytest.raises(InputError, match="missing column"):
        normalize({}, 1, SPEC)
    bad = {**columns, SPEC.features.numeric[0]: [float("inf")]}
    with pytest.raises(InputError, match="not a finite number"):
        normalize(bad, 1, SPEC)
    with pytest.raises(ValueError, match="lacks feature columns"):
        model_input(pd.DataFrame({"x": [1]}), SPEC)


def test_data_digest_is_sensitive_to_rows_and_columns():
    frame = pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0]})
    assert data_digest(frame) == data_digest(frame.copy())
    assert data_digest(frame) != data_digest(frame.iloc[::-1])
    assert data_digest(frame) != data_digest(frame.rename(columns={"b": "c"}))


@pytest.mark.parametrize(
    "value, expected",
    [
        (1400, 1400.0),
        (12.5, 12.5),
        (None, math.nan),
        (math.nan, math.nan),
        ("12.5", 12.5),
        ("", math.nan),
        (True, "must be numeric, got True"),
        ([1], r"must be numeric, got \[1\]"),
        (math.inf, "row {row}: inf is not a finite number"),
        (6000, r"row {row}: 6000 is outside the declared range \[0, 5000\]"),
        (10**400, "row {row}: beyond the float range"),
    ],
)
@pytest.mark.parametrize("rows", [1, 5, 40])
def test_numbers_are_checked_alike_however_many_rows(value, expected, rows):
    """Large requests check every numeric column at once; a value anywhere gets the answer
    (or the error, naming column and row) it gets alone."""
    ranges = {"distance": (0.0, 5000.0)}
    columns = {c: [1.0] * rows for c in SPEC.features.numeric} | {
        c: ["UA"] * rows for c in SPEC.features.categorical
    }
    columns["distance"] = [*columns["distance"][:-1], value]
    if isinstance(expected, str):
        with pytest.raises(InputError, match=f"column 'distance' {expected.format(row=rows - 1)}"):
            normalize(columns, rows, SPEC, ranges)
        return
    out = normalize(columns, rows, SPEC, ranges)
    got = out["distance"][-1]
    assert got == expected or (math.isnan(got) and math.isnan(expected))
    assert all(len(out[c]) == rows for c in SPEC.features.columns)
    assert list(out["temp"]) == [1.0] * rows and list(out["carrier"]) == ["UA"] * rows
