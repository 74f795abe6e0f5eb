"""`daily_cycle_<spec>`: one `daily_<spec>` run per day, for the day before (see cycle.py).

Two triggers, one rule. On the wall clock (production) it is a schedule: cron just after
midnight in the partitions' timezone, asking for yesterday's partition, as Dagster users expect.
On a clock that does not pass by itself (the replay clock, locally) it is a sensor that reads
the `clock` resource each tick and starts the day once the clock has reached it, retrying a
failed day up to `cycle.MAX_ATTEMPTS` times.
"""

import datetime as dt

import dagster as dg

from mlops_platform.clock import Clock
from mlops_platform.specs import ModelSpec

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
#: Tags every daily-cycle run carries: which spec, which (scored) day.
CYCLE_TAG = "mlops/cycle"
CYCLE_DAY_TAG = "mlops/cycle_day"
#: Just after midnight, so the day before is complete in the partitions' timezone.
CYCLE_CRON = "15 0 * * *"


def cycle_tags(spec: ModelSpec, day: dt.date) -> dict[str, str]:
    return {CYCLE_TAG: spec.name, CYCLE_DAY_TAG: str(day)}


def build_cycle_sensor(spec: ModelSpec, daily_job) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"daily_cycle_{spec.name}",
        job=daily_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Each day of the clock: ingest, features, then score and monitor the day "
        f"before ({spec.name}), as one daily_{spec.name} run. The clock is the `clock` "
        "resource (locally the replay clock: the simulator's advance_clock job moves it).",
    )
    def daily_cycle(context: dg.SensorEvaluationContext, clock: Clock):
        from mlops_platform.monitoring.cycle import Wait, next_request, scored_day

        clock_day = clock.now().date()
        tag = cycle_tags(spec, scored_day(clock_day))
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags=tag))
        decision = next_request(
            spec.name,
            clock_day,
            succeeded=any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs),
            in_progress=any(r.status in IN_PROGRESS for r in runs),
            failures=sum(r.status == dg.DagsterRunStatus.FAILURE for r in runs),
        )
        if isinstance(decision, Wait):
            return dg.SkipReason(decision.reason)
        return dg.RunRequest(
            run_key=f"cycle-{spec.name}-{decision.partition}-{decision.attempt}",
            partition_key=decision.partition,
            tags=tag,
        )

    return daily_cycle


def build_cycle_schedule(spec: ModelSpec, daily_job) -> dg.ScheduleDefinition:
    partitions = daily_job.partitions_def
    timezone = getattr(partitions, "timezone", None) or "UTC"

    @dg.schedule(
        name=f"daily_cycle_{spec.name}",
        job=daily_job,
        cron_schedule=CYCLE_CRON,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Each day at 00:15 {timezone}: ingest, features, then score and monitor "
        f"yesterday ({spec.name}), as one daily_{spec.name} run.",
    )
    def daily_cycle(context: dg.ScheduleEvaluationContext):
        from mlops_platform.monitoring.cycle import scored_day

        day = scored_day(context.scheduled_execution_time.date())
        partition = str(day)
        if partitions is not None and not partitions.has_partition_key(partition):
            return dg.SkipReason(f"{partition} is outside the partitions of daily_{spec.name}")
        return dg.RunRequest(
            run_key=f"cycle-{spec.name}-{partition}",
            partition_key=partition,
            tags=cycle_tags(spec, day),
        )

    return daily_cycle
