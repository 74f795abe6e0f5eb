"""Monitoring assets per spec: `<spec>/drift`, `<spec>/performance` and
`<spec>/deploy_guard`, partitioned like its scores (a day or a month): each partition is
evaluated once, at its last day (a backfill's range: once per partition, in order), with the
spec's windows in days ending there.

Their metadata (drift share, prediction drift, label shift, the live metric and its drop with a
confidence interval...) is what the UI plots over time and what the retraining sensor reads;
drift share and live performance are also WARN asset checks, so their history shows on the
check with the partition's date. The titled HTML report is one file, linked from the metadata.
"""

import datetime as dt

import dagster as dg

from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.asset_keys import DRIFT, GUARD, PERFORMANCE, SCORES, stage_attributes, stage_key
from mlops_platform.domains import domain_for
from mlops_platform.domains.partitions import PartitionsDefinition
from mlops_platform.domains.periods import period_from_key
from mlops_platform.metadata import rounded
from mlops_platform.monitoring.triggers import Pace
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.scoring.assets import spec_partitions, with_backfill_policy
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

DRIFT_CHECK = "drift_share"
PERFORMANCE_CHECK = "live_performance"


def drift_metadata(drift, spec: ModelSpec) -> dict:
    """The drift asset's metadata (and its check's), from a `run.DriftRun`."""
    common = {
        "champion_version": drift.champion_version,
        "champion_trained_to": drift.champion_trained_to,
        **Pace.metadata_of(drift.champion_pace),
        "window_days_scored": drift.window_days_present,
        "window_full": drift.result is not None,
        "batch_scored_rows": drift.batch_rows,
        "served_rows": drift.served_rows,
        "seconds": round(drift.seconds, 3),
    }
    result = drift.result
    if result is None:
        return {
            "status": drift.status,
            "drift_share": float("nan"),
            "prediction_drift": float("nan"),
            "drift_detected": False,
            **common,
        }
    calibration = result.calibration
    alarms = result.alarms(spec)
    return {
        "status": "ok",
        "title": drift.title,
        "drift_share": result.share,
        "prediction_drift": result.prediction_drift,
        "label_shift": result.label_shift,
        "drift_detected": bool(alarms),
        "drift_alarms": ", ".join(alarms) or "none",
        "drifted_features": ", ".join(result.drifted) or "none",
        "empty_features": ", ".join(result.empty) or "none",
        "false_alarm_rate": result.false_alarm_rate,
        "calibration": calibration.describe() if calibration else "fixed thresholds",
        "thresholds": dg.MetadataValue.json(result.thresholds),
        "reference_rows": result.reference_rows,
        "current_rows": result.current_rows,
        "report": dg.MetadataValue.path(str(drift.report_path)),
        "mlflow_run_id": drift.mlflow_run_id,
        **common,
        **{f"psi_{k}": v for k, v in sorted(result.per_feature.items())},
    }


def monitored_days(context: dg.AssetExecutionContext, spec: ModelSpec) -> list[dt.date]:
    """The day each partition of the run is evaluated at, in order: its last day (not after the
    domain's declared end). One for a partition; one per partition for a backfill's range."""
    partitions = domain_for(spec).partitions
    days = []
    for key in context.partition_keys:
        last = period_from_key(key, partitions.cadence).last
        days.append(min(last, partitions.end) if partitions.end else last)
    return days


def range_metadata(days: list[dt.date]) -> dict:
    """Where the figures come from: the day evaluated; a run over several partitions (a
    backfill's) reports its last one's figures, and says so."""
    meta = {"monitored_day": str(days[-1])}
    return meta if len(days) == 1 else {**meta, "partitions": len(days)}


def build_monitoring_assets(
    spec: ModelSpec, partitions: PartitionsDefinition | None = None
) -> list[dg.AssetsDefinition]:
    """Drift, performance and deploy guard of `spec` on `partitions` (default: its domain's,
    up to Dagster's clock)."""
    partitions = partitions or spec_partitions(spec)
    drift_key = stage_key(spec, DRIFT)
    performance_key = stage_key(spec, PERFORMANCE)

    @dg.asset(
        **stage_attributes(spec, DRIFT),
        deps=[stage_key(spec, SCORES)],
        partitions_def=partitions,
        kinds={"evidently"},
        pool=WAREHOUSE_POOL,
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=drift_key,
                description="WARN when the window's drift alarms (thresholds calibrated on the "
                "reference's own windows; the false-alarm rate is in the metadata).",
            )
        ],
        description=f"Drift of the last {spec.drift.window_days} days of {spec.name} inputs, "
        "scores and labels (batch-scored days and the serving prediction log) against the "
        "champion's reference (Evidently, thresholds calibrated on the reference's own windows; "
        "evaluated once the window is full).",
    )
    def drift_report(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_registry: MLflowResource
    ):
        from mlops_platform.monitoring.run import run_drift

        registry = mlflow_registry.registry()
        days = monitored_days(context, spec)
        for day in days:  # a backfill's run covers several partitions: one report each
            drift = run_drift(spec, day, warehouse, registry)
        metadata = rounded({**range_metadata(days), **drift_metadata(drift, spec)})
        check = {
            k: metadata[k]
            for k in (
                "status",
                "drift_share",
                "prediction_drift",
                "label_shift",
                "drift_alarms",
                "drifted_features",
                "false_alarm_rate",
                "calibration",
                "champion_version",
                "report",
            )
            if k in metadata
        }
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=DRIFT_CHECK,
                    passed=not metadata["drift_detected"],
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "partition": context.partition_keys[-1],
                        "monitored_day": str(day),
                        **check,
                    },
                )
            ],
        )

    @dg.asset(
        **stage_attributes(spec, PERFORMANCE),
        deps=[stage_key(spec, SCORES)],
        partitions_def=partitions,
        kinds={"sklearn", "mlflow"},
        pool=WAREHOUSE_POOL,
        check_specs=[
            dg.AssetCheckSpec(
                PERFORMANCE_CHECK,
                asset=performance_key,
                description=f"WARN when the live {spec.gate.primary_metric} is significantly "
                f"below the champion's held-out value (bootstrap {spec.drift.confidence:.0%} "
                f"interval, at least {spec.drift.performance_min_rows} labelled rows).",
            )
        ],
        description=f"{spec.name} champion quality on the last {spec.drift.performance_days} days "
        "of rows whose label has arrived, against its held-out rows, with a bootstrap confidence "
        "interval of the drop.",
    )
    def model_performance(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_registry: MLflowResource
    ):
        from mlops_platform.monitoring.run import run_performance

        registry = mlflow_registry.registry()
        days = monitored_days(context, spec)
        for day in days:
            performance = run_performance(spec, day, warehouse, registry)
        metadata = rounded({**range_metadata(days), **performance.metadata()})
        metric = spec.gate.primary_metric
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=PERFORMANCE_CHECK,
                    passed=not metadata["significant_drop"],
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "partition": context.partition_keys[-1],
                        "monitored_day": str(day),
                        "status": metadata["status"],
                        metric: metadata[metric],
                        "baseline": metadata["baseline"],
                        "performance_drop": metadata["performance_drop"],
                        "drop_ci_low": metadata["drop_ci_low"],
                        "drop_ci_high": metadata["drop_ci_high"],
                        "labelled_rows": metadata["labelled_rows"],
                        "verdict": metadata["verdict"],
                    },
                )
            ],
        )

    @dg.asset(
        **stage_attributes(spec, GUARD),
        deps=[stage_key(spec, SCORES)],
        partitions_def=partitions,
        kinds={"mlflow"},
        pool=WAREHOUSE_POOL,
        description=f"For {spec.drift.guard_days} days after a promotion: the new {spec.name} "
        "champion against the previous one on the same late-labelled rows (both batch-scored); "
        "significantly worse means an automatic, audited rollback and an incident.",
    )
    def deploy_guard(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        mlflow_registry: MLflowResource,
        alerting: AlertingResource,
    ) -> dg.MaterializeResult:
        from mlops_platform.monitoring.guard import guard_deploy

        registry = mlflow_registry.registry()
        days = monitored_days(context, spec)
        for day in days:
            outcome = guard_deploy(
                spec,
                day,
                warehouse,
                registry,
                run_id=context.run.run_id,
                webhook_url=alerting.webhook_url,
            )
            if outcome.status == "rolled back":
                context.log.warning(
                    f"{day}: {spec.name} v{outcome.champion} rolled back to v{outcome.previous}: "
                    f"{outcome.verdict.describe()}"
                )
        return dg.MaterializeResult(
            metadata=rounded({**range_metadata(days), **outcome.metadata()})
        )

    return [with_backfill_policy(a) for a in (drift_report, model_performance, deploy_guard)]
