"""The retraining sensor: a cheap read of the latest monitoring materializations."""

import json

import dagster as dg

from mlops_platform.asset_keys import DRIFT, PERFORMANCE, stage_key
from mlops_platform.model.tags import RUN_MONITORED_DAY
from mlops_platform.monitoring.triggers import Pace
from mlops_platform.specs import ModelSpec


def _latest(context: dg.SensorEvaluationContext, key: dg.AssetKey):
    """(metadata, monitored day, storage id) of the newest materialization, or (None, None, -1).
    The day is the one the figures were evaluated at (a monthly partition's last day), read
    from the metadata; a result without it is dated by its (daily) partition."""
    records = context.instance.fetch_materializations(key, limit=1).records
    if not records:
        return None, None, -1
    materialization = records[0].event_log_entry.asset_materialization
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    day = metadata.get("monitored_day") or materialization.partition
    return metadata, day, records[0].storage_id


def champion_of(
    results: list[tuple[dict | None, str | None, int]],
) -> tuple[str | None, Pace | None]:
    """The champion's last training day and its promotion's pace, as named by the newest of
    `results` (metadata, monitored day, storage id) that names the day: the latest day, then
    the latest stored. Both from one result, so they are of the same champion."""
    named = [
        (day or "", storage_id, i)
        for i, (metadata, day, storage_id) in enumerate(results)
        if metadata and metadata.get("champion_trained_to")
    ]
    if not named:
        return None, None
    metadata = results[max(named)[2]][0]
    return metadata["champion_trained_to"], Pace.from_metadata(metadata)


def _last_trigger(context: dg.SensorEvaluationContext, job_name: str) -> str | None:
    """The monitored day of the latest retrain this sensor started, from the runs themselves,
    so the cooldown survives a reset cursor (a restarted or re-deployed daemon)."""
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=job_name), limit=50)
    days = [r.tags[RUN_MONITORED_DAY] for r in runs if RUN_MONITORED_DAY in r.tags]
    return max(days, default=None)


#: A training run in one of these has not yet told whether its challenger replaced the champion.
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _retrain_in_flight(context: dg.SensorEvaluationContext, job_name: str) -> dg.DagsterRun | None:
    """An unfinished run of `job_name`, if any. While one runs, the champion was not replaced
    yet: read as a rejection, that would start a second retrain of the same episode once the
    shorter wait after a rejection (the holdout) is over."""
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=_UNFINISHED), limit=1
    )
    return runs[0] if runs else None


def build_retrain_sensor(spec: ModelSpec) -> dg.SensorDefinition:
    drift_key = stage_key(spec, DRIFT)
    performance_key = stage_key(spec, PERFORMANCE)

    job_name = f"train_{spec.name}"

    @dg.sensor(
        name=f"retrain_{spec.name}",
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts train_{spec.name} when drift or the performance drop crosses the "
        f"spec's thresholds, or the champion reaches the spec's maximum age; one run per "
        f"episode ({spec.drift.cooldown_days}-day cooldown).",
    )
    def retrain(context: dg.SensorEvaluationContext):
        from mlops_platform.monitoring.triggers import decide_retrain

        cursor = json.loads(context.cursor or "{}")
        drift, drift_day, drift_id = _latest(context, drift_key)
        performance, performance_day, performance_id = _latest(context, performance_key)
        seen = max(drift_id, performance_id)
        if seen <= cursor.get("seen", -1):
            return dg.SkipReason("no new monitoring results")
        day = max(d for d in (drift_day, performance_day, "0000-00-00") if d)
        running = _retrain_in_flight(context, job_name)
        if running is not None:  # results stay unseen: judged again once it has finished
            started_for = running.tags.get(RUN_MONITORED_DAY, "?")
            return dg.SkipReason(
                f"{day}: {job_name} run {running.run_id[:8]} (for {started_for}) is "
                f"{running.status.value.lower()}; the next decision waits for its outcome"
            )
        last = max(
            (d for d in (cursor.get("last_trigger"), _last_trigger(context, job_name)) if d),
            default=None,
        )
        # The champion's age (and pace): each result names the last day its champion learnt
        # from. The newest result's, so the age is that of the champion monitored on `day`,
        # not of one replaced since (a performance result that lags the drift one, say).
        trained_to, pace = champion_of(
            [(drift, drift_day, drift_id), (performance, performance_day, performance_id)]
        )
        decision = decide_retrain(spec, day, drift, performance, last, trained_to, pace)
        cursor["seen"] = seen
        if decision.fire:
            cursor["last_trigger"] = day
        context.update_cursor(json.dumps(cursor))
        if not decision.fire:
            return dg.SkipReason(decision.reason)
        context.log.info(f"retraining {spec.name}: {decision.reason}")
        return dg.RunRequest(run_key=f"retrain-{spec.name}-{day}", tags=decision.tags)

    return retrain
