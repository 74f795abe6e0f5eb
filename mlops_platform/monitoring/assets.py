"""Daily monitoring assets per spec: `drift_report/<spec>` and `model_performance/<spec>`.

Their metadata (drift share, prediction drift, ROC AUC on late labels...) is what the UI plots
over time and what the retraining sensor reads; the HTML report goes to a file and to MLflow.
"""

import dagster as dg

from mlops_platform.registry.resources import MLflowResource
from mlops_platform.scoring.assets import DAILY
from mlops_platform.specs import ModelSpec
from mlops_platform.warehouse import Warehouse
from mlops_platform.warehouse.pool import WAREHOUSE_POOL


def build_monitoring_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=["drift_report", spec.name],
        deps=[dg.AssetKey(["scores", spec.name])],
        partitions_def=DAILY,
        group_name="monitoring",
        kinds={"evidently"},
        pool=WAREHOUSE_POOL,
        description=f"Drift of the last {spec.drift.window_days} days of {spec.name} inputs and "
        "scores (batch-scored days and the serving prediction log) against the champion's "
        "training data (Evidently).",
    )
    def drift_report(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_registry: MLflowResource
    ) -> dg.MaterializeResult:
        from mlops_platform.monitoring.run import run_drift

        day = context.partition_time_window.start.date()
        drift = run_drift(spec, day, warehouse, mlflow_registry.registry())
        result = drift.result
        return dg.MaterializeResult(
            metadata={
                "drift_share": result.share,
                "prediction_drift": result.prediction_drift,
                "drift_detected": result.detected(spec),
                "drifted_features": ", ".join(result.drifted) or "none",
                "empty_features": ", ".join(result.empty) or "none",
                "champion_version": drift.champion_version,
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "batch_scored_rows": drift.batch_rows,
                "served_rows": drift.served_rows,
                "seconds": round(drift.seconds, 3),
                "report": dg.MetadataValue.path(str(drift.report_path)),
                "mlflow_run_id": drift.mlflow_run_id,
                **{f"psi_{k}": v for k, v in sorted(result.per_feature.items())},
            }
        )

    @dg.asset(
        key=["model_performance", spec.name],
        deps=[dg.AssetKey(["scores", spec.name])],
        partitions_def=DAILY,
        group_name="monitoring",
        pool=WAREHOUSE_POOL,
        description=f"{spec.name} champion quality on the last {spec.drift.window_days} days of "
        "rows whose outcome has arrived.",
    )
    def model_performance(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_registry: MLflowResource
    ) -> dg.MaterializeResult:
        from mlops_platform.monitoring.run import run_performance

        day = context.partition_time_window.start.date()
        performance = run_performance(spec, day, warehouse, mlflow_registry.registry())
        return dg.MaterializeResult(metadata=performance.metadata())

    return [drift_report, model_performance]
