"""The challenger model of each spec: trained, tracked in MLflow, registered, alias `challenger`."""

import dagster as dg
from pydantic import Field

from mlops_platform.asset_keys import FEATURES, MODEL, stage_attributes, stage_key
from mlops_platform.deploy.queues import CPU_STEP
from mlops_platform.registry.mlflow_ui import mlflow_run_url, mlflow_version_url
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.specs import ModelSpec
from mlops_platform.training.params import Hyperparameters
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform.warehouse.resources import Warehouse

DEFAULTS = Hyperparameters()


class TrainingConfig(dg.Config):
    """Hyperparameters of the HistGradientBoosting model, editable in the Launchpad."""

    learning_rate: float = Field(
        default=DEFAULTS.learning_rate, gt=0, le=1, description="shrinkage per tree"
    )
    max_iter: int = Field(
        default=DEFAULTS.max_iter, ge=1, description="boosting iterations (trees)"
    )
    max_leaf_nodes: int = Field(
        default=DEFAULTS.max_leaf_nodes, ge=2, description="leaves per tree"
    )
    min_samples_leaf: int = Field(
        default=DEFAULTS.min_samples_leaf, ge=1, description="minimum rows per leaf"
    )
    l2_regularization: float = Field(
        default=DEFAULTS.l2_regularization, ge=0, description="L2 penalty on leaves"
    )
    random_state: int = Field(default=DEFAULTS.random_state, description="seed")
    shuffle_labels: bool = Field(
        default=False,
        description="Drill only: train on permuted labels, to watch the gate stop a bad model.",
    )


def build_model_asset(spec: ModelSpec) -> dg.AssetsDefinition:
    @dg.asset(
        **stage_attributes(spec, MODEL),
        deps=[stage_key(spec, FEATURES)],
        kinds={"sklearn", "mlflow"},
        pool=WAREHOUSE_POOL,
        op_tags=CPU_STEP,  # the fit goes to the CPU workers' queue in production
        description=f"A new {spec.name} model version, tracked in MLflow (challenger once gated).",
    )
    def challenger_model(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        warehouse: Warehouse,
        mlflow_registry: MLflowResource,
    ):
        from mlops_platform.training.tracking import train_and_register

        params = config.model_dump(exclude={"shuffle_labels"})
        registry = mlflow_registry.registry()
        result = train_and_register(
            spec,
            warehouse.read_table("features", spec.name),
            registry,
            warehouse,
            params=params,
            shuffle_labels=config.shuffle_labels,
            dagster_run_id=context.run.run_id,
        )
        record, split = result.record, result.split
        context.log.info(f"registered {spec.name} v{result.version}; the gate decides next")
        experiment = registry.client.get_run(result.run_id).info.experiment_id
        return dg.MaterializeResult(
            metadata={
                "version": result.version,
                "mlflow_run_id": result.run_id,
                "mlflow_run": dg.MetadataValue.url(mlflow_run_url(experiment, result.run_id)),
                "mlflow_version": dg.MetadataValue.url(
                    mlflow_version_url(spec.name, result.version)
                ),
                "train_rows": record.train_rows,
                "holdout_rows": record.holdout_rows,
                "train_window": f"{split.train_start} .. {split.train_end}",
                "holdout_window": f"{split.holdout_start} .. {split.holdout_end}",
                "data_digest": record.data_digest,
                "artifact_sha256": result.artifact_sha256,
                "fit_seconds": round(result.fit_seconds, 2),
                **{f"train_{k}": round(v, 4) for k, v in result.train_metrics.items()},
            }
        )

    return challenger_model
