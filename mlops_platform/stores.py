"""The active profile's warehouse and MLflow as plain objects, for processes outside Dagster
(the serving API, the CLI). The same choice `profiles.py` makes for Dagster's resources, but
nothing here imports Dagster: settings are read from the environment when called."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlops_platform.registry.settings import MLflowSettings
from mlops_platform.settings import active_profile
from mlops_platform.warehouse import DuckDBStore, PostgresStore, WarehouseStore


@dataclass(frozen=True)
class Stores:
    """Where the platform's tables and models are, for one profile."""

    warehouse: WarehouseStore
    mlflow: MLflowSettings


def plain_stores(profile: str | None = None) -> Stores:
    """Locally a DuckDB file and MLflow on SQLite under the data dir; in production the
    servers named by `MLOPS_WAREHOUSE_URL`, `MLOPS_MLFLOW_TRACKING_URI` and
    `MLOPS_MLFLOW_ARTIFACT_ROOT` (an error naming the one that is missing)."""
    if (profile or active_profile()) != "production":
        return Stores(warehouse=DuckDBStore(), mlflow=MLflowSettings())
    return Stores(
        warehouse=PostgresStore(url=_need("MLOPS_WAREHOUSE_URL")),
        mlflow=MLflowSettings(
            tracking_uri=_need("MLOPS_MLFLOW_TRACKING_URI"),
            artifact_root=_need("MLOPS_MLFLOW_ARTIFACT_ROOT"),
        ),
    )


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} must be set for the production profile (.env.example)")
    return value
