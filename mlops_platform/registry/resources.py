"""The MLflow resource: local SQLite + artifact directory by default, PostgreSQL in production."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from mlops_platform.settings import data_dir


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking + model registry."""

    tracking_uri: str = Field(
        default="", description="empty means sqlite:///<data dir>/mlflow/mlflow.db"
    )
    artifact_root: str = Field(default="", description="empty means <data dir>/mlflow/artifacts")

    def registry(self):
        from mlops_platform.registry.store import ModelRegistry

        base = data_dir() / "mlflow"
        base.mkdir(parents=True, exist_ok=True)
        return ModelRegistry(
            tracking_uri=self.tracking_uri or f"sqlite:///{base / 'mlflow.db'}",
            artifact_root=self.artifact_root or str(base / "artifacts"),
        )
