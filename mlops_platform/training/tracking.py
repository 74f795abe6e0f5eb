"""Train a spec's model and record everything about it in MLflow (no Dagster)."""

from __future__ import annotations

import time

import pandas as pd

from mlops_platform.features.build import LABEL
from mlops_platform.registry.store import ModelRegistry
from mlops_platform.settings import code_version
from mlops_platform.specs import ModelSpec
from mlops_platform.training.train import (
    Hyperparameters,
    data_digest,
    fit,
    model_input,
    predict,
    split_by_time,
)
from mlops_platform.warehouse import Warehouse

#: Training metrics are computed on at most this many rows (the gate's held-out metrics are the
#: ones that decide; these only show over-fitting).
TRAIN_METRIC_ROWS = 20_000


def _training_dataset(frame: pd.DataFrame, name: str, digest: str, window: dict):
    """An `mlflow.data` dataset for the training rows.

    MLflow infers a dataset's schema with a Python pass over every value (~5 s for 150k rows
    here); types are the same on a sample and null checks vectorise, so the schema is built
    that way. The digest is the first 32 hex digits of our SHA-256 of the exact rows.
    """
    from functools import cached_property

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types.schema import ColSpec, Schema
    from mlflow.types.utils import _infer_schema

    class TrainingRows(PandasDataset):
        @cached_property
        def schema(self) -> Schema:
            sample = _infer_schema(self._df.head(5_000))
            nulls = self._df.isna().any()
            return Schema(
                [ColSpec(c.type, c.name, required=not bool(nulls[c.name])) for c in sample.inputs]
            )

    return TrainingRows(
        df=frame,
        source=CodeDatasetSource(tags=window),
        targets=LABEL,
        name=name,
        digest=digest[:32],
    )


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
) -> dict:
    """Split by time, fit, log params/metrics/data/model (+ SBOM) and register a version.

    No alias moves here: only a version that passes its gate becomes `challenger`."""
    from mlops_platform.evaluation.gate import score

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
                "dagster_run_id": dagster_run_id,
                "code_version": code,
                "mlflow.source.git.commit": code,
                "model_spec": spec.name,
                "data_digest": digest,
                "shuffle_labels": str(shuffle_labels).lower(),
                **split.as_tags(),
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
        dataset = _training_dataset(
            training_rows,
            f"{spec.name}_train_{split.train_start}_{split.train_end}",
            digest,
            split.as_tags(),
        )
        mlflow.log_input(dataset, context="training")

        started = time.perf_counter()
        model = fit(spec, train, hyper, shuffle_labels=shuffle_labels)
        fit_seconds = time.perf_counter() - started
        sample = train.sample(n=min(len(train), TRAIN_METRIC_ROWS), random_state=0)
        train_metrics = score(spec, sample[LABEL].to_numpy(), predict(model, sample, spec))
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
    registry.set_version_tags(
        spec.name,
        version,
        {
            "dagster_run_id": dagster_run_id,
            "code_version": code,
            "data_digest": digest,
            "mlflow_run_id": run.info.run_id,
            "train_rows": len(train),
            "holdout_rows": len(holdout),
            "shuffle_labels": str(shuffle_labels).lower(),
            **split.as_tags(),
        },
    )
    return {
        "version": version,
        "run_id": run.info.run_id,
        "split": split,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "data_digest": digest,
        "artifact_sha256": sha,
        "fit_seconds": fit_seconds,
        "train_metrics": train_metrics,
    }
