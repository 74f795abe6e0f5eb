"""`daily_cycle_<spec>`: one `daily_<spec>` run per replay day, in clock order (see cycle.py)."""

import dagster as dg

from mlops_platform.ingestion.resources import SourceDatabase
from mlops_platform.specs import ModelSpec

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_cycle_sensor(spec: ModelSpec, daily_job) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"daily_cycle_{spec.name}",
        job=daily_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Each replay day: ingest, features, then score and monitor the day before "
        f"({spec.name}), as one daily_{spec.name} run. Advance the clock (job advance_clock) "
        "to start a day.",
    )
    def daily_cycle(context: dg.SensorEvaluationContext, source_system: SourceDatabase):
        from mlops_platform.monitoring.cycle import Wait, next_request, scored_day

        clock_day = source_system.clock().now.date()
        tag = {"mlops/cycle": spec.name, "mlops/cycle_day": str(scored_day(clock_day))}
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
