"""The retraining-policy backtest's walk on small synthetic histories (no real year here).

The histories go through the rainfall domain's real feature build (`history_from` calls
`features.build.build_feature_table`), with 60 stations so a day has 60 rows; the spec's
windows are shrunk to fit 120 days. Training, the gate, calibration and the significance rule
are the platform's own.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_platform.specs import load_spec
from mlops_platform.training.params import Hyperparameters
from simulator.backtest.policies import (
    CADENCE,
    DEFAULT,
    DRIFT,
    NEVER,
    PERFORMANCE,
    Policy,
    plan_steps,
    standard_policies,
)
from simulator.backtest.report import summarise
from simulator.backtest.sources import ARRIVES, history_from
from simulator.backtest.targets import check_targets
from simulator.backtest.walk import walk
from simulator.rainfall.data import MEASUREMENTS

FIRST = dt.date(2000, 1, 1)
DAYS, CHANGE, STATIONS = 120, 80, 60
PARAMS = Hyperparameters(max_iter=25, min_samples_leaf=20)


def small_spec():
    spec = load_spec("rain")
    drift = spec.drift.model_copy(
        update={
            "window_days": 7,
            "cooldown_days": 10,
            "min_labelled_rows": 150,
            "bootstrap_samples": 200,
            "performance_drop": 0.05,
            # The performance window is the (shrunk) drift window, the minimum rows its own.
            "performance_window_days": None,
            "performance_min_labelled_rows": None,
        }
    )
    return spec.model_copy(update={"training_window_days": 20, "holdout_days": 5, "drift": drift})


def synthetic(kind: str, spec=None):
    """Days of STATIONS stations; the label is `temperature > 0` (with noise). From day CHANGE
    on, `concept`: the label follows `dew_point` instead (inputs unchanged); `covariate`:
    every measurement shifts by 3 standard deviations (the rule unchanged)."""
    rng = np.random.default_rng(7)
    n = DAYS * STATIONS
    day = np.repeat(np.arange(DAYS), STATIONS)
    frame = pd.DataFrame(
        {
            "station": np.tile([f"s{i}" for i in range(STATIONS)], DAYS),
            "obs_date": pd.Timestamp(FIRST) + pd.to_timedelta(day, "D"),
        }
    )
    for column in MEASUREMENTS:
        frame[column] = rng.normal(size=n)
    signal = frame["temperature"] + 0.5 * rng.normal(size=n)
    after = day >= CHANGE
    if kind == "concept":
        signal = np.where(after, frame["dew_point"] + 0.5 * rng.normal(size=n), signal)
    elif kind == "covariate":
        for column in MEASUREMENTS:
            frame.loc[after, column] += 3.0
    frame["rain"] = (signal > 0).astype(int)
    frame["reported_at"] = frame["obs_date"] + pd.Timedelta(hours=23)
    frame[ARRIVES] = frame["obs_date"] + pd.Timedelta(hours=33)  # next morning, 09:00
    spec = spec or small_spec()
    return history_from(spec, {"daily_summary": frame.drop(columns=ARRIVES)}, frame)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Fitted models shared by the tests (the three histories agree before the change)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def concept(cache):
    steps = plan_steps(FIRST + dt.timedelta(days=50), FIRST + dt.timedelta(days=DAYS - 1), "day")
    policies = [Policy("static", NEVER), Policy("performance", PERFORMANCE)]
    return walk(synthetic("concept"), steps, policies, params=PARAMS, threads=1, cache_dir=cache)


def test_performance_policy_retrains_after_a_concept_change_and_static_does_not(concept):
    static, performance = concept.lanes
    assert static.retrains == []
    assert performance.retrains, "the performance trigger never fired after the label flipped"
    change = FIRST + dt.timedelta(days=CHANGE)
    assert all(r.day >= change for r in performance.retrains), performance.retrains
    first = performance.retrains[0]
    assert (first.day - change).days <= 10
    assert "significant" in first.reason
    assert any(r.replaced and r.gate == "passed" for r in performance.retrains)


def test_after_the_change_the_retrained_policy_scores_better_than_static(concept):
    outcome = summarise(concept, "month")
    last = outcome.metrics.index[-1]  # April 2000: all after the change
    assert outcome.metrics.at[last, "performance"] > outcome.metrics.at[last, "static"] + 0.1
    assert outcome.metrics.at[last, "static"] < 0.6  # the new concept, unlearnt
    counts = outcome.counts()
    assert counts["static"].sum() == 0 and counts["performance"].sum() >= 1


def test_drift_policy_retrains_on_a_covariate_shift(cache):
    history = synthetic("covariate")
    steps = plan_steps(FIRST + dt.timedelta(days=50), FIRST + dt.timedelta(days=DAYS - 1), "day")
    result = walk(
        history, steps, [Policy("drift", DRIFT)], params=PARAMS, threads=1, cache_dir=cache
    )
    (lane,) = result.lanes
    change = FIRST + dt.timedelta(days=CHANGE)
    assert lane.retrains, "the calibrated drift alarm never fired on a 3-sigma shift"
    assert all(r.day >= change for r in lane.retrains)
    assert "drift share" in lane.retrains[0].reason
    # The cooldown after a challenger that replaced the model; after one the gate rejected,
    # the wait for a fresh held-out period (holdout_days, shorter), as the sensor waits.
    spec = small_spec()
    for a, b in zip(lane.retrains, lane.retrains[1:], strict=False):
        wait = spec.drift.cooldown_days if a.replaced else spec.holdout_days
        assert (b.day - a.day).days >= wait, (a, b)


def test_cadence_retrains_every_n_steps_and_ungated_always_replaces(cache):
    history = synthetic("none")
    steps = plan_steps(FIRST + dt.timedelta(days=50), FIRST + dt.timedelta(days=79), "day")
    result = walk(
        history,
        steps,
        [Policy("every 10d", CADENCE, gated=False, every_steps=10)],
        params=PARAMS,
        threads=1,
        cache_dir=cache,
    )
    (lane,) = result.lanes
    # Every 10th step's last day (the step is monitored and retrained at the next midnight).
    assert [r.day for r in lane.retrains] == [
        dt.date(2000, 2, 29),
        dt.date(2000, 3, 10),
        dt.date(2000, 3, 20),
    ]
    assert all(r.replaced and r.gate == "not gated" for r in lane.retrains)
    assert len({r.model for r in lane.retrains}) == 3


def test_default_policy_retrains_a_champion_past_its_age_and_static_does_not(cache):
    """Nothing changes: only the spec's maximum model age makes the default policy retrain,
    through the same `decide_retrain` as the platform's sensor."""
    spec = small_spec()
    spec = spec.model_copy(
        update={"drift": spec.drift.model_copy(update={"max_model_age_days": 15})}
    )
    steps = plan_steps(FIRST + dt.timedelta(days=50), FIRST + dt.timedelta(days=79), "day")
    result = walk(
        synthetic("none", spec),
        steps,
        [Policy("static", NEVER), Policy("default", DEFAULT)],
        params=PARAMS,
        threads=1,
        cache_dir=cache,
    )
    static, default = result.lanes
    assert static.retrains == []
    assert default.retrains, "the age limit never fired"
    assert all("model age" in r.reason for r in default.retrains), default.retrains
    first = default.retrains[0]
    assert (first.day - result.bootstrap.split.train_end).days == 15
    # A retrain makes the champion young again: the next one waits for it to age.
    pairs = zip(default.retrains, default.retrains[1:], strict=False)
    gaps = [(after.day - before.train_end).days for before, after in pairs if before.replaced]
    assert gaps and all(g >= 15 for g in gaps), gaps
    # The lane carries the pace the sensor reads from the registry: with one comparison
    # pooled, the newest gate comparison's (promoted or rejected), over the days between the
    # challenger's training data end and that of the champion it was compared with.
    champion_end, newest = result.bootstrap.split.train_end, None
    for r in default.retrains:
        if r.gate == "passed" or r.gate.startswith("failed"):
            newest = (r.train_end - champion_end).days
        if r.replaced:
            champion_end = r.train_end
    assert newest is not None and default.pace.days == newest
    assert default.pace == default.comparisons[-1]


def test_steps_by_month_and_policies_validated():
    steps = plan_steps(dt.date(1981, 1, 15), dt.date(1981, 3, 31), "month")
    assert [(s.start, s.end) for s in steps] == [
        (dt.date(1981, 1, 15), dt.date(1981, 1, 31)),
        (dt.date(1981, 2, 1), dt.date(1981, 2, 28)),
        (dt.date(1981, 3, 1), dt.date(1981, 3, 31)),
    ]
    assert steps[1].clock == pd.Timestamp("1981-03-01")
    assert [p.name for p in standard_policies(14, "14d")] == [
        "static",
        "every 14d",
        "every 14d + gate",
        "drift",
        "performance",
        "default",
    ]
    with pytest.raises(ValueError, match="every_steps"):
        Policy("x", CADENCE)
    with pytest.raises(ValueError, match="unknown step"):
        plan_steps(dt.date(2000, 1, 1), dt.date(2000, 2, 1), "week")


@pytest.mark.parametrize(
    ("default", "gated", "retrains", "met"),
    [
        ([0.71, 0.72, 0.73], [0.71, 0.72, 0.73], (2, 4), [True, True, True, True]),
        ([0.71, 0.70, 0.73], [0.71, 0.72, 0.73], (2, 4), [True, False, False, True]),
        ([0.71, 0.72, 0.73], [0.71, 0.72, 0.73], (3, 4), [True, True, True, False]),
    ],
)
def test_targets_say_met_or_not(default, gated, retrains, met):
    from types import SimpleNamespace

    index = ["2013-03", "2013-04", "2013-05"]
    metrics = pd.DataFrame(
        {"static": [0.70, 0.69, 0.68], "every 14d + gate": gated, "default": default}, index=index
    )
    rows = [{"policy": "default"}] * retrains[0] + [{"policy": "every 14d + gate"}] * retrains[1]
    outcome = SimpleNamespace(
        spec=load_spec("flight_delay"),
        period="month",
        policies=list(metrics.columns),
        metrics=metrics,
        retrains=pd.DataFrame(rows),
    )
    lines = check_targets(outcome)[1:]
    assert [line.startswith("  [met]") for line in lines] == met


def _columns():
    rng = np.random.default_rng(3)
    n = 4_000
    many = rng.normal(size=n)
    many[::50] = np.nan
    many[::77] = np.inf
    return {
        "floats, binned": (pd.Series(many), False),
        "a few integers": (pd.Series(rng.integers(0, 8, size=n)), False),
        "strings": (pd.Series(rng.choice(["AA", "B6", "DL", "EV", None], size=n)), True),
        "booleans as labels": (pd.Series(rng.random(n) < 0.3, dtype=float), True),
        "mixed types": (pd.Series(rng.choice(["x", 1, 2.5], size=n).tolist()), True),
        "all missing": (pd.Series([np.nan] * n), False),
    }


@pytest.mark.parametrize("name", list(_columns()))
def test_a_prepared_reference_column_gives_the_platforms_statistic_exactly(name):
    from mlops_platform.monitoring.calibration import statistic
    from simulator.backtest.drift import ReferenceColumn

    series, categorical = _columns()[name]
    prepared = ReferenceColumn.of(series.iloc[:3_000], categorical)
    windows = [series.iloc[3_000:3_300], series.iloc[3_300:], series.iloc[3_000:3_001]]
    shifted = series.iloc[3_000:].map(lambda v: v * 2 if isinstance(v, float) else v)
    for method in ("psi", "jensenshannon"):
        for window in [*windows, shifted]:
            expected = statistic(method, series.iloc[:3_000], window, categorical)
            got = prepared.statistic(method, window)
            assert got == expected or (np.isnan(got) and np.isnan(expected)), (method, got)


def test_the_lab_scores_references_and_gates_as_the_pipeline_does_bit_for_bit(cache):
    """The lab scores with each model's compiled trees (`ExactScorer`); every figure it keeps
    is the one the fitted pipeline itself gives: step scores, both references, gate metrics."""
    from mlops_platform.evaluation.gate import evaluate
    from mlops_platform.model.predict import predict
    from mlops_platform.model.split import holdout_of
    from mlops_platform.monitoring.reference import (
        drift_reference_rows,
        performance_reference_rows,
    )
    from simulator.backtest.models import Lab

    history = synthetic("concept")
    lab = Lab(history, PARAMS, cache_dir=cache, threads=1)
    first = pd.Timestamp(FIRST + dt.timedelta(days=50))
    later = pd.Timestamp(FIRST + dt.timedelta(days=90))
    old, new = lab.train(first), lab.train(later)
    rows = np.flatnonzero(history.days >= np.datetime64(FIRST + dt.timedelta(days=85)))
    for model in (old, new):
        expected = predict(model.estimator, history.table.iloc[rows], lab.spec)
        np.testing.assert_array_equal(lab.scores(model, 0, rows), expected)
        monitoring = lab.monitoring(model)
        table = history.table
        pd.testing.assert_frame_equal(
            monitoring.drift_reference,
            drift_reference_rows(lab.spec, table, model.split, model.estimator),
            check_exact=True,
        )
        pd.testing.assert_frame_equal(
            monitoring.performance_reference,
            performance_reference_rows(lab.spec, table, model.split, model.estimator),
            check_exact=True,
        )
    gated = lab.gate(new, old, later).result
    holdout = holdout_of(lab.table_at(later), new.split)
    for evaluation, model in ((gated.challenger, new), (gated.champion, old)):
        pipeline = evaluate(model.estimator, model.id, holdout, lab.spec, latency=False)
        assert evaluation.metrics == pipeline.metrics
        assert evaluation.slices == pipeline.slices
