"""Where MLflow is: local SQLite + artifact directory by default, a tracking server in
production. Plain Python (no Dagster): the serving API and the CLI use it as is, and
`MLflowResource` (resources.py) is the same settings as a Dagster resource."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mlops_platform.settings import data_dir


class MLflowSettings(BaseModel):
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
