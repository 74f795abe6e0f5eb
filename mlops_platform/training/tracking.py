"""Train a spec's model and record everything about it in MLflow (no Dagster)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from mlops_platform.model import tags as t
from mlops_platform.model.columns import LABEL
from mlops_platform.model.input import model_input
from mlops_platform.model.metrics import compute_metrics
from mlops_platform.model.predict import predict
from mlops_platform.model.split import TimeSplit, split_by_time
from mlops_platform.model.version import VersionRecord, data_digest
from mlops_platform.registry.datasets import rows_dataset, warehouse_source
from mlops_platform.registry.mlflow_ui import (
    dagster_run_url,
    set_registered_model_description,
    training_run_description,
)
from mlops_platform.registry.store import ModelRegistry
from mlops_platform.settings import code_version
from mlops_platform.specs import ModelSpec
from mlops_platform.training.params import Hyperparameters
from mlops_platform.training.train import fit
from mlops_platform.warehouse import WarehouseStore as Warehouse

#: Training metrics are computed on at most this many rows (the gate's held-out metrics are the
#: ones that decide; these only show over-fitting).
TRAIN_METRIC_ROWS = 20_000


@dataclass(frozen=True)
class TrainingResult:
    """A trained and registered version (no alias moved yet: the gate decides next)."""

    version: str
    run_id: str
    record: VersionRecord
    artifact_sha256: str
    fit_seconds: float
    train_metrics: dict[str, float]

    @property
    def split(self) -> TimeSplit:
        return self.record.split


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "skops", "pandas", "numpy", "mlflow")]


def train_and_register(
    spec: ModelSpec,
    features: pd.DataFrame,
    registry: ModelRegistry,
    warehouse: Warehouse,
    params: dict,
    dagster_run_id: str,
    shuffle_labels: bool = False,
) -> TrainingResult:
    """Split by time, fit, log params/metrics/data/model (+ SBOM) and register a version.

    No alias moves here: only a version that passes its gate becomes `challenger`."""
    hyper = Hyperparameters(**params)
    train, holdout, split = split_by_time(features, spec)
    training_rows = train[[*spec.features.columns, LABEL]].reset_index(drop=True)
    digest = data_digest(training_rows)

    mlflow = registry.fluent()
    experiment = registry.experiment_id(spec.name)
    code = code_version()
    with mlflow.start_run(
        experiment_id=experiment, run_name=f"{spec.name}-{split.train_end}"
    ) as run:
        mlflow.set_tags(
            {
                t.DAGSTER_RUN_ID: dagster_run_id,
                t.DAGSTER_RUN_URL: dagster_run_url(dagster_run_id),
                t.MLFLOW_NOTE: training_run_description(
                    spec.name, split, len(train), len(holdout), dagster_run_id, shuffle_labels
                ),
                t.CODE_VERSION: code,
                t.RUN_GIT_COMMIT: code,
                t.RUN_MODEL_SPEC: spec.name,
                t.DATA_DIGEST: digest,
                t.SHUFFLE_LABELS: str(shuffle_labels).lower(),
                **split.to_tags(),
            }
        )
        mlflow.log_params(
            {
                **hyper.as_dict(),
                "task": spec.task,
                "features": ",".join(spec.features.columns),
                "training_window_days": spec.training_window_days,
                "holdout_days": spec.holdout_days,
            }
        )
        # Named by where the rows live: the window of the warehouse's feature table.
        dataset = rows_dataset(
            training_rows,
            f"{spec.name}_train_{split.train_start}_{split.train_end}",
            digest,
            warehouse_source("features", spec.name, split.train_start, split.train_end, warehouse),
        )
        mlflow.log_input(dataset, context="training")

        started = time.perf_counter()
        model = fit(spec, train, hyper, shuffle_labels=shuffle_labels)
        fit_seconds = time.perf_counter() - started
        sample = train.sample(n=min(len(train), TRAIN_METRIC_ROWS), random_state=0)
        train_metrics = compute_metrics(
            spec, sample[LABEL].to_numpy(), predict(model, sample, spec)
        )
        mlflow.log_metrics({f"train_{k}": v for k, v in train_metrics.items()})
        mlflow.log_metrics(
            {"train_rows": len(train), "holdout_rows": len(holdout), "fit_seconds": fit_seconds}
        )

        example = model_input(train.head(5), spec)
        version, sha = registry.log_model_version(
            spec.name,
            model,
            example,
            predict(model, train.head(5), spec),
            _requirements(),
            predict_fn="predict_proba" if spec.task == "classification" else "predict",
        )
    set_registered_model_description(registry.client, spec.name, spec.description)
    record = VersionRecord(
        split=split,
        data_digest=digest,
        train_rows=len(train),
        holdout_rows=len(holdout),
        mlflow_run_id=run.info.run_id,
        dagster_run_id=dagster_run_id,
        code_version=code,
        shuffle_labels=shuffle_labels,
    )
    registry.set_version_tags(spec.name, version, record.to_tags())
    return TrainingResult(version, run.info.run_id, record, sha, fit_seconds, train_metrics)
