"""The run-failure sensor: every failed run becomes an incident and an alert naming a runbook."""

import dagster as dg

from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.warehouse.resources import Warehouse


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records an incident (ops.incidents) and calls the alert webhook for every "
    "failed run, naming the runbook to follow.",
)
def alert_on_run_failure(
    context: dg.RunFailureSensorContext, warehouse: Warehouse, alerting: AlertingResource
) -> None:
    from mlops_platform.alerting.incidents import raise_incident, runbook_for

    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    raise_incident(
        warehouse,
        alerting.webhook_url,
        kind="run_failure",
        job=run.job_name,
        run_id=run.run_id,
        message=message,
        runbook=runbook_for(run.job_name, message),
    )
