"""`daily_cycle_<spec>`: runs the day's steps in replay-clock order (see cycle.py)."""

import dagster as dg

from mlops_platform.ingestion.resources import FlightOpsDatabase
from mlops_platform.specs import ModelSpec

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_cycle_sensor(spec: ModelSpec, jobs: list) -> dg.SensorDefinition:
    """`jobs`: the job definitions the steps name (ingest, features, score, monitor)."""

    @dg.sensor(
        name=f"daily_cycle_{spec.name}",
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Each replay day, in order: ingest, features, then score and monitor the "
        f"day before ({spec.name}). Advance the clock (job advance_clock) to start a day.",
    )
    def daily_cycle(context: dg.SensorEvaluationContext, source_system: FlightOpsDatabase):
        from mlops_platform.monitoring.cycle import next_step, steps_for

        day = source_system.clock().now.date()
        steps = steps_for(spec.name, day)
        tag = {"mlops/cycle_day": str(day)}
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags=tag, job_name=None))
        succeeded = {
            r.tags.get("mlops/cycle_step") for r in runs if r.status == dg.DagsterRunStatus.SUCCESS
        }
        running = {r.tags.get("mlops/cycle_step") for r in runs if r.status in IN_PROGRESS}
        failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        step = next_step(steps, succeeded, running)
        if step is None:
            return dg.SkipReason(
                f"{day}: "
                + ("waiting for " + ", ".join(sorted(running)) if running else "all steps done")
            )
        attempts = sum(1 for r in failed if r.tags.get("mlops/cycle_step") == step.name)
        if attempts >= 3:
            return dg.SkipReason(
                f"{day}: {step.name} failed {attempts} times; see the incident and its runbook"
            )
        return dg.RunRequest(
            run_key=f"cycle-{spec.name}-{day}-{step.name}-{attempts}",
            job_name=step.job,
            partition_key=step.partition,
            tags={**tag, "mlops/cycle_step": step.name},
        )

    return daily_cycle
