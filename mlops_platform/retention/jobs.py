"""The retention job and its daily schedule (the logic is in `policy`)."""

from pathlib import Path

import dagster as dg

from mlops_platform.clock import Clock
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse


@dg.op(pool=WAREHOUSE_POOL)
def apply_retention(
    context: dg.OpExecutionContext, warehouse: Warehouse, clock: Clock
) -> dg.Output:
    """Delete what is past its retention (logs, quarantined rows, reports); merge closed days."""
    from mlops_platform.retention.policy import (
        RetentionSettings,
        apply_log_retention,
        delete_old_quarantine,
        expired_reports,
    )
    from mlops_platform.serving.settings import ServingSettings
    from mlops_platform.settings import data_dir

    settings = RetentionSettings()
    now = clock.now()  # replayed time locally: retention follows the data's days
    log_dir = Path(ServingSettings().log_dir)
    summary: dict = {}
    for name, days in (
        ("predictions", settings.prediction_days),
        ("feedback", settings.feedback_days),
    ):
        done = apply_log_retention(log_dir / name, days, now.date())
        summary[f"{name}_deleted_days"] = len(done.deleted_days)
        summary[f"{name}_merged_days"] = len(done.merged_days)
        context.log.info(f"{name}: deleted {done.deleted_days}, merged {done.merged_days}")
    reports = expired_reports(data_dir() / "reports", settings.report_days, now)
    for path in reports:
        path.unlink(missing_ok=True)
    summary["reports_deleted"] = len(reports)
    quarantine = delete_old_quarantine(warehouse, settings.quarantine_days, now)
    summary["quarantine_rows_deleted"] = sum(quarantine.values())
    return dg.Output(None, metadata=summary)


@dg.job(description="Apply the retention settings: logs, quarantined rows, reports.")
def retention():
    apply_retention()


retention_daily = dg.ScheduleDefinition(
    job=retention,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
