"""`daily_cycle_<spec>`: one `daily_<spec>` run per period of the clock (a day or a month, the
domain's cadence), for the period before (see cycle.py). The names keep `daily_` whatever the
cadence: they are what operators and runbooks know.

Two triggers, one rule. On the wall clock (production) it is a schedule: cron just after the
period ends in the partitions' timezone (00:15 each day, or on each month's first day), asking
for the period before, as Dagster users expect. On a clock that does not pass by itself (the
replay clock, locally) it is a sensor that reads the `clock` resource each tick and starts the
period once the clock has passed it, retrying a failed period up to `cycle.MAX_ATTEMPTS` times.
"""

import dagster as dg

from mlops_platform.clock import Clock
from mlops_platform.domains import domain_for
from mlops_platform.domains.periods import Period
from mlops_platform.specs import ModelSpec

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
#: Tags every cycle run carries: which spec, which partition (the period's first day), and the
#: period's last day (the day its monitoring evaluates; for a daily cadence the same day).
CYCLE_TAG = "mlops/cycle"
CYCLE_PARTITION_TAG = "mlops/cycle_partition"
CYCLE_DAY_TAG = "mlops/cycle_day"


def cycle_tags(spec: ModelSpec, period: Period) -> dict[str, str]:
    return {
        CYCLE_TAG: spec.name,
        CYCLE_PARTITION_TAG: period.key,
        CYCLE_DAY_TAG: str(period.last),
    }


def _outside(partitions, period: Period, spec: ModelSpec) -> str | None:
    """Why `period` cannot be run (outside the job's partitions), or None."""
    if partitions is None or partitions.has_partition_key(period.key):
        return None
    first, last = partitions.get_first_partition_key(), partitions.get_last_partition_key()
    where = f"{period.key} is outside the partitions of daily_{spec.name} ({first}..{last})"
    if first is not None and period.key < first:
        return f"{where}: the clock has not passed the first period yet"
    return (
        f"{where}: they end at the domain's declared end, or at the clock's time when the "
        "code location was loaded (reload it)"
    )


def build_cycle_sensor(spec: ModelSpec, daily_job) -> dg.SensorDefinition:
    cadence = domain_for(spec).partitions.cadence
    partitions = daily_job.partitions_def
    each = "day" if cadence == "daily" else "month"

    @dg.sensor(
        name=f"daily_cycle_{spec.name}",
        job=daily_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Each {each} of the clock: ingest, features, then score and monitor the "
        f"{each} before ({spec.name}), as one daily_{spec.name} run. The clock is the `clock` "
        "resource (locally the replay clock: the simulator moves it).",
    )
    def daily_cycle(context: dg.SensorEvaluationContext, clock: Clock):
        from mlops_platform.monitoring.cycle import Wait, next_request, scored_period

        clock_day = clock.now().date()
        period = scored_period(clock_day, cadence)
        outside = _outside(partitions, period, spec)
        if outside:
            return dg.SkipReason(outside)
        tags = cycle_tags(spec, period)
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={CYCLE_TAG: spec.name, CYCLE_PARTITION_TAG: period.key})
        )
        decision = next_request(
            spec.name,
            clock_day,
            succeeded=any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs),
            in_progress=any(r.status in IN_PROGRESS for r in runs),
            failures=sum(r.status == dg.DagsterRunStatus.FAILURE for r in runs),
            cadence=cadence,
        )
        if isinstance(decision, Wait):
            return dg.SkipReason(decision.reason)
        return dg.RunRequest(
            run_key=f"cycle-{spec.name}-{decision.partition}-{decision.attempt}",
            partition_key=decision.partition,
            tags=tags,
        )

    return daily_cycle


def build_cycle_schedule(spec: ModelSpec, daily_job) -> dg.ScheduleDefinition:
    from mlops_platform.monitoring.cycle import CYCLE_CRONS

    cadence = domain_for(spec).partitions.cadence
    partitions = daily_job.partitions_def
    timezone = getattr(partitions, "timezone", None) or "UTC"
    when = "each day at 00:15" if cadence == "daily" else "on each month's first day at 00:15"
    before = "yesterday" if cadence == "daily" else "last month"

    @dg.schedule(
        name=f"daily_cycle_{spec.name}",
        job=daily_job,
        cron_schedule=CYCLE_CRONS[cadence],
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{when.capitalize()} {timezone}: ingest, features, then score and monitor "
        f"{before} ({spec.name}), as one daily_{spec.name} run.",
    )
    def daily_cycle(context: dg.ScheduleEvaluationContext):
        from mlops_platform.monitoring.cycle import scored_period

        period = scored_period(context.scheduled_execution_time.date(), cadence)
        outside = _outside(partitions, period, spec)
        if outside:
            return dg.SkipReason(outside)
        return dg.RunRequest(
            run_key=f"cycle-{spec.name}-{period.key}",
            partition_key=period.key,
            tags=cycle_tags(spec, period),
        )

    return daily_cycle
