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
        from mlops_platform.reliability import apply_mlflow_http_timeouts, with_pg_timeouts

        base = data_dir() / "mlflow"
        base.mkdir(parents=True, exist_ok=True)
        # Bounded waits on the tracking server (HTTP) or its database (PostgreSQL URL).
        apply_mlflow_http_timeouts()
        return ModelRegistry(
            tracking_uri=with_pg_timeouts(self.tracking_uri)
            if self.tracking_uri
            else f"sqlite:///{base / 'mlflow.db'}",
            artifact_root=self.artifact_root or str(base / "artifacts"),
        )
