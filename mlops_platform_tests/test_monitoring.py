"""Monitoring: real Evidently drift, and the retraining sensor against a real Dagster instance."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest

from mlops_platform.monitoring.drift import compute_drift
from mlops_platform.monitoring.sensors import build_retrain_sensor
from mlops_platform.monitoring.triggers import Pace, age_limit, decide_retrain, pace_of
from mlops_platform.specs import ModelSpec, load_spec

SPEC = load_spec("flight_delay")
SENSOR = build_retrain_sensor(SPEC)
DRIFT = dg.AssetKey([SPEC.name, "drift"])


def report(instance, day: str, share: float, prediction: float = 0.01) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=DRIFT,
            partition=day,
            metadata={
                "drift_share": share,
                "prediction_drift": prediction,
                "drifted_features": "temp, dewp",
            },
        )
    )


def tick(instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return SENSOR(context), context.cursor


def test_drift_fires_one_run_and_the_same_drift_twice_fires_one():
    with dg.instance_for_test() as instance:
        report(instance, "2013-05-01", share=0.5)
        request, cursor = tick(instance)
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == "retrain-flight_delay-2013-05-01"
        assert request.tags["mlops/trigger"] == "drift"
        assert "drift share 0.50 > 0.3 (temp, dewp)" in request.tags["mlops/reason"]
        again, _ = tick(instance, cursor)
        assert isinstance(again, dg.SkipReason) and "no new" in again.skip_message


def test_no_second_retrain_while_one_is_in_flight():
    """An unfinished training run has not replaced the champion yet; that must not read as a
    rejection (whose shorter wait would start a second retrain of the same episode)."""
    from mlops_platform.model.tags import RUN_MONITORED_DAY

    with dg.instance_for_test() as instance:
        report(instance, "2013-05-01", share=0.5)
        first, cursor = tick(instance)
        assert isinstance(first, dg.RunRequest)
        run = instance.create_run_for_job(
            dg.GraphDefinition(name="noop").to_job(name=f"train_{SPEC.name}"),
            tags={RUN_MONITORED_DAY: "2013-05-01"},
        )
        instance.handle_run_event(
            run.run_id,
            dg.DagsterEvent(dg.DagsterEventType.PIPELINE_START.value, job_name=run.job_name),
        )
        report(instance, "2013-05-20", share=0.6)  # past the cooldown, the run still going
        held, cursor = tick(instance, cursor)
        assert isinstance(held, dg.SkipReason), held
        assert run.run_id[:8] in held.skip_message and "started" in held.skip_message
        instance.report_run_failed(instance.get_run_by_id(run.run_id))
        after, _ = tick(instance, cursor)  # the same results, judged once it has ended
        assert isinstance(after, dg.RunRequest)
        assert after.run_key == "retrain-flight_delay-2013-05-20"


def test_below_threshold_fires_nothing():
    with dg.instance_for_test() as instance:
        report(instance, "2013-05-01", share=0.1)
        result, _ = tick(instance)
        assert isinstance(result, dg.SkipReason) and "within thresholds" in result.skip_message


def test_cooldown_holds_then_releases():
    with dg.instance_for_test() as instance:
        report(instance, "2013-05-01", share=0.5)
        first, cursor = tick(instance)
        assert isinstance(first, dg.RunRequest)
        report(instance, "2013-05-05", share=0.7)  # same episode
        held, cursor = tick(instance, cursor)
        assert isinstance(held, dg.SkipReason) and "2013-05-01" in held.skip_message
        report(instance, "2013-05-20", share=0.6)  # cooldown over
        second, _ = tick(instance, cursor)
        assert isinstance(second, dg.RunRequest)
        assert second.run_key == "retrain-flight_delay-2013-05-20"


def test_prediction_drift_alone_fires_where_the_spec_retrains_on_it():
    every_alarm = SPEC.model_copy(
        update={
            "drift": SPEC.drift.model_copy(update={"retrain_on": ["features", "score", "label"]})
        }
    )
    with dg.instance_for_test() as instance:
        report(instance, "2013-06-01", share=0.0, prediction=0.5)
        context = dg.build_sensor_context(instance=instance)
        request = build_retrain_sensor(every_alarm)(context)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["mlops/trigger"] == "prediction_drift"
        # Flights leaves score drift to the performance trigger (its labels arrive the same day).
        assert SPEC.drift.retrain_on == ["features"]
        skipped, _ = tick(instance)
        assert isinstance(skipped, dg.SkipReason)
        assert "alarms not retrained on: score" in skipped.skip_message


AGED = SPEC.model_copy(update={"drift": SPEC.drift.model_copy(update={"max_model_age_days": 28})})


UNLIMITED = SPEC.model_copy(
    update={"drift": SPEC.drift.model_copy(update={"max_model_age_days": None})}
)


@pytest.mark.parametrize(
    ("spec", "trained_to", "last", "fires"),
    [
        (AGED, "2013-04-02", None, True),  # 28 days before 2013-04-30: the limit
        (AGED, "2013-04-03", None, False),  # 27 days: young enough
        (AGED, "2013-04-02", "2013-04-25", False),  # old, but a retrain started 5 days ago
        (AGED, "2013-04-02", "2013-04-10", True),  # that one was 20 days ago (cooldown 14)
        # A day monitored again after a later trigger (a retried run, a scores backfill) is
        # part of the episode that trigger answered: no second retrain.
        (AGED, "2013-04-02", "2013-05-02", False),
        (AGED, None, None, False),  # age unknown (no performance result yet): no age rule
        (UNLIMITED, "2012-01-01", None, False),  # no limit in the spec
    ],
)
def test_model_age_rule(spec, trained_to, last, fires):
    decision = decide_retrain(spec, "2013-04-30", {"drift_share": 0.0}, None, last, trained_to)
    assert decision.fire is fires, decision.reason


@pytest.mark.parametrize(
    ("trained_to", "last", "day", "fires"),
    [
        # The 04-10 trigger's challenger was rejected: the champion's data still end 04-02
        # (a model trained on 04-10 would end 8 days before, 04-02 or later). The next
        # challenger can be judged on a new held-out week (holdout_days 7), not 14 days later.
        ("2013-03-20", "2013-04-10", "2013-04-16", False),  # 6 days: the held-out weeks overlap
        ("2013-03-20", "2013-04-10", "2013-04-17", True),  # 7 days: a fresh held-out week
        # The challenger replaced the champion (data to 04-02): the full 14-day cooldown holds.
        ("2013-04-02", "2013-04-10", "2013-04-17", False),
        ("2013-04-02", "2013-04-10", "2013-04-24", True),
    ],
)
def test_after_a_rejected_challenger_the_next_waits_for_a_fresh_held_out_period(
    trained_to, last, day, fires
):
    # Age 28 is reached by both champions on the days fired here (AGED's limit is 28 days):
    # for the replaced one only from 04-30, so give it a drift alarm to keep a reason.
    drift = {"drift_share": 0.5, "prediction_drift": 0.0, "drifted_features": "temp"}
    decision = decide_retrain(AGED, day, drift, None, last, trained_to)
    assert decision.fire is fires, decision.reason
    if not fires and trained_to == "2013-03-20":
        assert "its challenger was not promoted" in decision.reason
    # With approval required the challenger may be waiting for a person: the full cooldown.
    approved = AGED.model_copy(
        update={"approval": AGED.approval.model_copy(update={"required": True})}
    )
    waiting = decide_retrain(approved, day, drift, None, last, trained_to)
    assert waiting.fire is (fires and day == "2013-04-24"), waiting.reason


def test_alarms_the_spec_does_not_retrain_on_are_not_reasons():
    drift = {"drift_alarms": "score, label", "prediction_drift": 0.5, "label_shift": 0.4}
    every_alarm = SPEC.model_copy(
        update={
            "drift": SPEC.drift.model_copy(update={"retrain_on": ["features", "score", "label"]})
        }
    )
    assert decide_retrain(every_alarm, "2013-06-01", drift, None, None).fire
    features_only = SPEC.model_copy(
        update={"drift": SPEC.drift.model_copy(update={"retrain_on": ["features"]})}
    )
    quiet = decide_retrain(features_only, "2013-06-01", drift, None, None)
    assert not quiet.fire and "within thresholds" in quiet.reason
    loud = {**drift, "drift_alarms": "features, score", "drift_share": 0.5}
    fired = decide_retrain(features_only, "2013-06-01", loud, None, None)
    assert fired.fire and fired.tags["mlops/trigger"] == "drift"
    assert "prediction drift" not in fired.reason


def test_an_old_champion_is_retrained_for_its_age_and_a_detector_reason_comes_first():
    quiet = {"performance_drop": 0.01, "significant_drop": False}
    old = decide_retrain(AGED, "2013-04-30", {"drift_share": 0.0}, quiet, None, "2013-04-02")
    assert old.fire and old.tags["mlops/trigger"] == "age"
    assert "model age 28 days >= 28" in old.reason and "2013-04-02" in old.reason
    loud = {**quiet, "significant_drop": True, "verdict": "roc_auc dropped, significant"}
    both = decide_retrain(AGED, "2013-04-30", None, loud, None, "2013-04-02")
    assert both.tags["mlops/trigger"] == "performance" and "model age 28" in both.reason


#: An age limit that adapts: a new flights model is 8 days old; due when it is expected to have
#: lost 0.01 of ROC AUC at its promotion's pace, between 20 and 35 days.
ADAPTIVE = SPEC.model_copy(
    update={
        "drift": SPEC.drift.model_copy(
            update={
                "max_model_age_days": 35,
                "min_model_age_days": 20,
                "age_loss_budget": 0.01,
            }
        )
    }
)


def test_a_pace_is_the_gain_per_day_of_staleness_and_never_negative():
    assert Pace(0.02, 20).per_day == pytest.approx(0.001)
    # A challenger that was no better, or no days apart, shows no pace (not a negative one).
    assert Pace(-0.01, 20).per_day == 0 and Pace(0.02, 0).per_day == 0
    assert Pace(float("nan"), 20).per_day == 0
    # The gate's figures: the gain is oriented so that positive is better.
    assert pace_of({"roc_auc": 0.74}, {"roc_auc": 0.71}, "roc_auc", True, 24) == Pace(
        pytest.approx(0.03), 24
    )
    assert pace_of({"rmse": 9.0}, {"rmse": 10.0}, "rmse", False, 14).gain == pytest.approx(1.0)
    # A first model had no champion to beat: no evidence of the pace.
    assert pace_of({"roc_auc": 0.74}, None, "roc_auc", True, 24) is None
    assert pace_of({"roc_auc": 0.74}, {"brier": 0.2}, "roc_auc", True, 24) is None
    # What a monitoring result carries to the sensor reads back the same.
    assert Pace.from_metadata(Pace.metadata_of(Pace(0.012, 21))) == Pace(0.012, 21)
    assert Pace.metadata_of(None) == {} and Pace.from_metadata({"x": 1}) is None


def test_a_pooled_pace_is_the_total_gain_over_the_total_days_of_its_comparisons():
    # The flights backtest's line in late May: a promotion that gained 0.0361 over a model 24
    # days staler, then one that gained nothing measurable (-0.0006 over 18 days).
    spring, flat = Pace(0.0361, 24), Pace(-0.0006, 18)
    assert Pace.pooled([spring, flat]) == Pace(pytest.approx(0.0355), 42)
    # One flat week alone reads as a world standing still (the longest limit); pooled with the
    # comparison before it, the pace stays that of spring and the limit short.
    assert age_limit(ADAPTIVE, flat) == 35
    assert age_limit(ADAPTIVE, Pace.pooled([spring, flat])) == 20  # 8 + 12 days
    # A rejected challenger's comparison counts as measured: a loss lengthens the limit.
    assert age_limit(ADAPTIVE, Pace.pooled([spring, flat, Pace(-0.02, 14)])) == 35
    # Unknown comparisons are left out; none known is no evidence.
    assert Pace.pooled([None, spring, Pace(float("nan"), 7)]) == spring
    assert Pace.pooled([]) is None and Pace.pooled([None]) is None


def test_the_champions_pace_is_read_from_its_lines_gate_comparisons_in_the_registry(tmp_path):
    """A real MLflow registry: v1 first, v2 promoted over v1, v3 rejected against v2, v4
    promoted over v2, v5 rejected against v4, v6 gated against the rejected v3 (of no concern
    to the champion's line). Champion v4."""
    import datetime as dt

    from mlops_platform.model.split import TimeSplit
    from mlops_platform.model.version import GateSummary
    from mlops_platform.monitoring.run import champion_pace
    from mlops_platform.registry.store import ModelRegistry

    registry = ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    name, metric = SPEC.name, SPEC.gate.primary_metric
    registry.client.create_registered_model(name)
    ends = {1: "2013-02-20", 2: "2013-03-22", 3: "2013-04-07", 4: "2013-04-21", 5: "2013-05-05"}
    ends[6] = "2013-05-12"
    gates = {2: (1, 0.70, 0.68), 3: (2, 0.69, 0.70), 4: (2, 0.72, 0.70), 5: (4, 0.71, 0.72)}
    gates[6] = (3, 0.73, 0.69)
    for v, end in ends.items():
        version = registry.client.create_model_version(name, source=str(tmp_path / f"m{v}"))
        assert str(version.version) == str(v)
        day = dt.date.fromisoformat(end)
        split = TimeSplit(day - dt.timedelta(days=60), day, day, day + dt.timedelta(days=7))
        tags = split.to_tags()
        if v in gates:
            champion, ours, theirs = gates[v]
            summary = GateSummary(
                ours > theirs, str(v), str(champion), {metric: ours}, {metric: theirs}
            )
            tags.update(summary.to_tags())
        registry.set_version_tags(name, str(v), tags)

    def pace(comparisons: int) -> Pace | None:
        drift = SPEC.drift.model_copy(
            update={
                "max_model_age_days": 35,
                "age_loss_budget": 0.01,
                "pace_comparisons": comparisons,
            }
        )
        return champion_pace(SPEC.model_copy(update={"drift": drift}), registry, "4")

    # Newest first: v6 is skipped; v5 (-0.01 over v4, 14 days), v4 (+0.02 over v2, 30 days),
    # v3 (-0.01 over v2, 16 days), v2 (+0.02 over v1, 30 days); v1 ends the line.
    assert pace(1) == Pace(pytest.approx(-0.01), 14)  # the rejection after the promotion
    assert pace(2) == Pace(pytest.approx(0.01), 44)
    assert pace(3) == Pace(pytest.approx(0.0), 60)
    assert pace(10) == Pace(pytest.approx(0.02), 90)
    # A fixed age limit reads nothing.
    assert champion_pace(SPEC, registry, "4") is None


@pytest.mark.parametrize(
    ("pace", "limit"),
    [
        (None, 35),  # a first model: no evidence, the longest limit
        (Pace(-0.004, 24), 35),  # its challenger was no better: the world did not move
        (Pace(0.001, 24), 35),  # 8 + 0.01 / (0.001 / 24) = 248 days: the longest
        (Pace(0.01, 25), 33),  # 0.0004 a day: 8 + 25
        (Pace(0.012, 24), 28),  # 0.0005 a day: 8 + 20
        (Pace(0.04, 24), 20),  # 8 + 6 = 14: the shortest is 20
    ],
)
def test_the_age_limit_comes_sooner_the_faster_the_champions_promotion_showed_the_world_moving(
    pace, limit
):
    assert age_limit(ADAPTIVE, pace) == limit
    # Without a budget the limit is fixed, whatever the pace.
    assert age_limit(AGED, pace) == 28 and age_limit(UNLIMITED, pace) is None


def test_a_fast_pace_retrains_a_younger_champion_and_says_why():
    day, trained_to = "2013-04-30", "2013-04-08"  # 22 days old
    quiet = {"drift_share": 0.0}
    slow = decide_retrain(ADAPTIVE, day, quiet, None, None, trained_to, Pace(0.002, 24))
    assert not slow.fire, slow.reason
    fast = decide_retrain(ADAPTIVE, day, quiet, None, None, trained_to, Pace(0.04, 24))
    assert fast.fire and fast.tags["mlops/trigger"] == "age"
    assert "model age 22 days >= 20" in fast.reason
    assert "age_loss_budget 0.01, gain +0.0400 over a model 24 days staler" in fast.reason
    # The cooldown holds whatever the pace.
    waiting = decide_retrain(ADAPTIVE, day, quiet, None, "2013-04-25", trained_to, Pace(0.04, 24))
    assert not waiting.fire


def test_the_sensor_reads_the_champions_pace_with_its_age():
    sensor = build_retrain_sensor(ADAPTIVE)
    with dg.instance_for_test() as instance:

        def performance(day: str, trained_to: str, **pace) -> None:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey([SPEC.name, "performance"]),
                    partition=day,
                    metadata={
                        "performance_drop": 0.0,
                        "significant_drop": False,
                        "champion_trained_to": trained_to,
                        **pace,
                    },
                )
            )

        performance("2013-04-30", "2013-04-08")  # 22 days old, no pace named: limit 35
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(sensor(context), dg.SkipReason)
        # The same age, the champion's promotion gained 0.04 over a model 24 days staler.
        performance("2013-05-01", "2013-04-09", **Pace.metadata_of(Pace(0.04, 24)))
        context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        request = sensor(context)
        assert isinstance(request, dg.RunRequest) and request.tags["mlops/trigger"] == "age"
        assert "gain +0.0400" in request.tags["mlops/reason"]


def test_the_sensor_reads_the_champions_age_from_the_performance_result():
    sensor = build_retrain_sensor(AGED)
    with dg.instance_for_test() as instance:

        def performance(day: str, trained_to: str) -> None:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey([SPEC.name, "performance"]),
                    partition=day,
                    metadata={
                        "performance_drop": 0.0,
                        "significant_drop": False,
                        "champion_trained_to": trained_to,
                    },
                )
            )

        performance("2013-04-20", "2013-04-02")  # 18 days old
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(sensor(context), dg.SkipReason)
        performance("2013-05-01", "2013-04-02")  # 29 days old
        context = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        request = sensor(context)
        assert isinstance(request, dg.RunRequest) and request.tags["mlops/trigger"] == "age"


def test_the_age_is_of_the_champion_the_newest_result_monitored():
    # v1 (data to 04-02) was replaced by v2 (data to 04-26) outside the sensor (a promotion by
    # hand). The performance result of 05-03 is the last one from v1's days; on 05-04 only the
    # drift result is in (performance of 05-04 failed, or is not written yet), from v2.
    sensor = build_retrain_sensor(AGED)
    with dg.instance_for_test() as instance:

        def result(stage: str, day: str, trained_to: str, **figures) -> None:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey([SPEC.name, stage]),
                    partition=day,
                    metadata={"champion_trained_to": trained_to, **figures},
                )
            )

        result("performance", "2013-05-03", "2013-04-02", significant_drop=False)
        result("drift", "2013-05-04", "2013-04-26", drift_share=0.0, prediction_drift=0.0)
        context = dg.build_sensor_context(instance=instance)
        verdict = sensor(context)
        # v1 would be 32 days old on 05-04 (>= 28); v2 is 8 days old.
        assert isinstance(verdict, dg.SkipReason), verdict
        assert "within thresholds" in verdict.skip_message


def test_performance_window_cannot_exceed_the_monitored_window():
    with pytest.raises(ValueError, match="performance_window_days"):
        SPEC.drift.model_validate({**SPEC.drift.model_dump(), "performance_window_days": 8})

    def spec_with(days: int) -> ModelSpec:
        drift = {**SPEC.drift.model_dump(), "performance_window_days": days}
        return ModelSpec.model_validate({**SPEC.model_dump(), "drift": drift})

    # Shorter is allowed down to the day-block bootstrap's minimum of 5 labelled days.
    shorter = spec_with(5)
    assert shorter.drift.performance_days == 5 and SPEC.drift.performance_days == 7
    with pytest.raises(ValueError, match="drift.performance_window_days: 4 days"):
        spec_with(4)


@pytest.fixture(scope="module")
def features(golden_features):
    return golden_features.assign(score=0.2)


def test_evidently_finds_a_forced_shift_and_not_a_same_period_split(features):
    january = features[features["event_date"] < "2013-02-01"]
    first, second = january.iloc[::2], january.iloc[1::2]
    calm = compute_drift(first, second, SPEC)
    assert calm.share < SPEC.drift.share_threshold and not calm.detected(SPEC)
    assert "dest" in calm.per_feature
    drift = SPEC.drift.model_copy(update={"exclude": ["dest"]})
    excluding = compute_drift(first, second, SPEC.model_copy(update={"drift": drift}))
    assert "dest" not in excluding.per_feature  # excluded by the spec

    # A calm day has no gust reported at all: that column cannot be compared, and says so.
    calm_day = compute_drift(first, second.assign(wind_gust=float("nan")), SPEC)
    assert calm_day.empty == ["wind_gust"] and "wind_gust" not in calm_day.per_feature
    assert "temp" in calm_day.per_feature

    shifted = second.assign(
        temp=second["temp"] + 40,
        dewp=second["dewp"] + 40,
        humid=100 - second["humid"],
        visib=second["visib"] / 4,
        pressure=second["pressure"] - 30,
        wind_speed=second["wind_speed"] * 3,
        wind_gust=second["wind_gust"] * 3,
        precip=second["precip"] + 1,
        wind_dir=(second["wind_dir"] + 180) % 360,
        score=0.6,
    )
    storm = compute_drift(first, shifted, SPEC)
    assert storm.detected(SPEC) and storm.share > SPEC.drift.share_threshold
    assert {"temp", "dewp", "humid"} <= set(storm.drifted)
    assert storm.prediction_drift > SPEC.drift.prediction_threshold


def test_drift_reads_what_evidentlys_own_preset_and_value_drift_give(features):
    """The report computes each column once, from its drift table: the per-column scores are
    what Evidently's `ValueDrift` gives each column, the drifted share is what its
    `DataDriftPreset` counts, and the stored page is the page that preset renders."""
    import re

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    from mlops_platform.monitoring.drift import drift_table_preset, monitored_columns

    january = features[features["event_date"] < "2013-02-01"]
    first, second = january.iloc[::2], january.iloc[1::2]
    shifted = second.assign(temp=second["temp"] + 10, humid=100 - second["humid"])
    result = compute_drift(first, shifted, SPEC)

    numeric, categorical = monitored_columns(SPEC)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = [*numeric, *categorical]
    thresholds = {c: result.thresholds[c] for c in columns}
    settings = {
        "columns": columns,
        "method": SPEC.drift.method,
        "per_column_threshold": {c: float(np.nextafter(t, np.inf)) for c, t in thresholds.items()},
        "drift_share": SPEC.drift.share_threshold,
    }
    preset = DataDriftPreset(**settings)
    stock = Report([preset]).run(
        Dataset.from_pandas(shifted[columns], data_definition=definition),
        Dataset.from_pandas(first[columns], data_definition=definition),
    )
    metrics = stock.dict()["metrics"]
    scores = {m["config"]["column"]: m["value"] for m in metrics if "column" in m["config"]}
    alone = Report([ValueDrift(column=c, method=SPEC.drift.method) for c in columns]).run(
        Dataset.from_pandas(shifted[columns], data_definition=definition),
        Dataset.from_pandas(first[columns], data_definition=definition),
    )
    by_itself = {m["config"]["column"]: m["value"] for m in alone.dict()["metrics"]}
    assert result.per_feature == pytest.approx(scores, rel=1e-12)
    assert result.per_feature == pytest.approx(by_itself, rel=1e-12)
    assert result.per_feature["temp"] > SPEC.drift.feature_threshold
    share = next(
        m["value"]["share"] for m in metrics if "DriftedColumnsCount" in m["config"]["type"]
    )
    assert result.share == pytest.approx(share) and result.share > 0

    def page(snapshot) -> str:  # the report's widgets' random ids aside
        html = snapshot.get_html_str(as_iframe=False)
        return re.sub(r"metric_[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", html)

    ours = Report([drift_table_preset()(**settings)]).run(
        Dataset.from_pandas(shifted[columns], data_definition=definition),
        Dataset.from_pandas(first[columns], data_definition=definition),
    )
    assert page(ours) == page(stock)  # the same page, each column computed once
    assert '"title": "Drift Score", "field": "drift_score"' in page(result.snapshot)


def test_drift_pages_figures_are_the_ones_plotly_builds(features):
    """Evidently's plots take their subplot grids from `SubplotGrids` (a grid built once, then
    copied): every figure on the page, and every number, is what plotly's own `make_subplots`
    gives."""
    import re

    from evidently.legacy.utils import visualizations

    from mlops_platform.monitoring.drift import SubplotGrids
    from mlops_platform.monitoring.reports import _page_json, page_data

    january = features[features["event_date"] < "2013-02-01"]
    first, second = january.iloc[::2], january.iloc[1::2]
    shifted = second.assign(temp=second["temp"] + 10, humid=100 - second["humid"])

    def page(result) -> str:  # the widgets' random ids aside
        text = _page_json(page_data(result.snapshot))
        return re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", text)

    copied = [compute_drift(first, shifted, SPEC) for _ in range(2)]  # the second: all copies
    grids = visualizations.make_subplots
    assert isinstance(grids, SubplotGrids) and grids.grids
    try:
        visualizations.make_subplots = grids.build  # plotly's own, every time
        built = compute_drift(first, shifted, SPEC)
    finally:
        visualizations.make_subplots = grids
    assert page(copied[0]) == page(copied[1]) == page(built)
    assert copied[1].per_feature == built.per_feature and copied[1].share == built.share
    assert page(built).count('"template"') >= 2 * len(built.per_feature)  # two plots a column


def test_subplot_grid_copies_are_plotlys_figures_each_with_its_own_template():
    """A copied grid is the figure plotly builds (its template included, in its place), and
    each copy has a template of its own: changing one changes no other figure. Fails if
    plotly stops keeping an unvalidated template as given (`_validate=False`) or applies its
    default template over the placeholder."""
    import json

    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    from mlops_platform.monitoring.drift import SubplotGrids

    grids = SubplotGrids(make_subplots)
    for cols, titles in ((1, ""), (2, ["current", "reference"])):
        settings = {"rows": 1, "cols": cols, "shared_yaxes": True, "subplot_titles": titles}
        first, second, plotly = grids(**settings), grids(**settings), make_subplots(**settings)
        for figure in (first, second, plotly):
            figure.add_trace(go.Bar(x=[1, 2], y=[3, 4], name="current"), 1, 1)
            figure.update_xaxes(title_text="x", row=1, col=1)
            figure.update_layout(yaxis_title="Count", showlegend=False)
        assert json.loads(first.to_json()) == json.loads(plotly.to_json())
        if cols == 1:  # the drift table's grids: the same JSON, key for key
            assert first.to_json() == plotly.to_json()
        assert first.to_json() == second.to_json()
        first.layout.template.layout.font.size = 99
        assert second.layout.template.layout.font.size != 99
        assert grids(**settings).to_json() != first.to_json()


def test_stored_report_is_evidentlys_page_with_its_bundle_kept_once(features, tmp_path):
    """The stored page is Evidently's own standalone page (same widgets, same data), titled,
    with Evidently's JavaScript bundle and font kept once in the reports folder and referenced
    instead of copied into every page."""
    import base64
    import re
    from pathlib import Path

    import evidently
    from evidently.legacy.utils.dashboard import STATIC_PATH

    from mlops_platform.monitoring.reports import save_report

    january = features[features["event_date"] < "2013-02-01"]
    first, second = january.iloc[::2], january.iloc[1::2]
    result = compute_drift(first, second.assign(temp=second["temp"] + 10), SPEC)
    title = "flight_delay v3 — drift of 2013-01-25..2013-01-31 <window>"
    folder = tmp_path / "reports" / SPEC.name
    pages = [save_report(result.snapshot, title, folder / f"drift-{n}.html") for n in (1, 2)]

    static = Path(STATIC_PATH)
    bundle = folder / "js" / f"evidently.{evidently.__version__}.js"
    assert bundle.read_bytes() == (static / "index.js").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["drift-1.html", "drift-2.html", "js"]
    # Retention removes files by age: the bundle is as recent as the newest page using it.
    assert bundle.stat().st_mtime >= pages[0].stat().st_mtime
    stored = pages[1].read_text(encoding="utf-8")
    script = f'<script src="js/{bundle.name}"></script>'
    assert script in stored and "url(js/material-ui-icons.woff2);" in stored
    stock = result.snapshot.get_html_str(as_iframe=False)
    assert len(stored) < len(stock) - 3_000_000  # the bundle is not in the page

    # Put the bundle and the font back inline, as Evidently embeds them: Evidently's page.
    font = base64.b64encode((static / "material-ui-icons.woff2").read_bytes()).decode()
    inlined = stored.replace(
        f"<!-- no embedded lib -->\n    {script}",
        f"<script>{(static / 'index.js').read_text(encoding='utf-8')}</script>\n    ",
    ).replace(
        "url(js/material-ui-icons.woff2);", f"url(data:font/ttf;base64,{font}) format('woff2');"
    )

    def ids_aside(page: str) -> str:  # the dashboard's and widgets' random ids
        return re.sub(r"metric_[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "", page)

    # Titled: once in the head, once as the heading above the dashboard (HTML-escaped).
    escaped = "flight_delay v3 — drift of 2013-01-25..2013-01-31 &lt;window&gt;"
    heading = f'<h1 style="font-family:sans-serif;font-size:1.3em;margin:12px">{escaped}</h1>'
    assert stored.count(f"<title>{escaped}</title>") == 1 and stored.count(heading) == 1
    assert stored.index("<title>") < stored.index("<script") < stored.index(heading)
    untitled = inlined.replace(f"<title>{escaped}</title>", "").replace(heading, "")
    assert ids_aside(untitled) == ids_aside(stock)
    assert '"title": "Drift Score", "field": "drift_score"' in stored


def test_daily_cycle_asks_for_yesterday_once_retries_and_gives_up(source_url):
    import datetime as dt
    import uuid

    from mlops_platform.clock import TableClock
    from mlops_platform.definitions import build_definitions
    from simulator.flights import replay

    # Built here, unbounded by a clock: the module-level `defs` reads whatever clock exists
    # when it is first imported (another test's, or this one's before it is set).
    defs = build_definitions(partitions_until=None)
    cycle = defs.resolve_sensor_def("daily_cycle_flight_delay")
    replay.set_clock(source_url, dt.datetime(2013, 3, 5))
    resources = {"clock": TableClock(url=source_url)}

    def record(instance, request, status):
        instance.add_run(
            dg.DagsterRun(
                job_name="daily_flight_delay",
                run_id=uuid.uuid4().hex,
                status=status,
                tags={**request.tags, "dagster/partition": request.partition_key},
            )
        )

    with dg.instance_for_test() as instance:

        def tick():
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                return cycle(context)

        request = tick()
        assert isinstance(request, dg.RunRequest)
        assert request.partition_key == "2013-03-04"  # the day before the clock's day
        assert request.run_key == "cycle-flight_delay-2013-03-04-0"
        record(instance, request, dg.DagsterRunStatus.STARTED)
        waiting = tick()
        assert isinstance(waiting, dg.SkipReason) and "waiting for" in waiting.skip_message
        instance.delete_run(instance.get_runs(limit=1)[0].run_id)
        record(instance, request, dg.DagsterRunStatus.SUCCESS)
        assert "done" in tick().skip_message  # once per day

        replay.advance(source_url, 1)  # a new day starts the cycle again
        request = tick()
        assert request.partition_key == "2013-03-05"
        for attempt in range(3):
            assert request.run_key == f"cycle-flight_delay-2013-03-05-{attempt}"
            record(instance, request, dg.DagsterRunStatus.FAILURE)
            request = tick()
        assert "failed 3 times" in request.skip_message


def test_a_quiet_day_names_no_ignored_alarm():
    """The drift asset writes `drift_alarms: none` on a quiet day: that is no alarm at all, not
    an alarm named "none" that the spec does not retrain on."""
    from mlops_platform.monitoring.triggers import _drift_reasons

    quiet = {"drift_alarms": "none", "drift_share": 0.01, "prediction_drift": 0.0}
    assert _drift_reasons(SPEC, quiet) == ([], None, [])
    score = _drift_reasons(SPEC, quiet | {"drift_alarms": "score"})
    assert score[2] == ["score"] and score[0] == []  # flights does not retrain on score drift
