"""The one place that chooses the environment: local (embedded) or production (servers).

| resource       | local (default)                    | production (`MLOPS_PROFILE=production`) |
| -------------- | ---------------------------------- | --------------------------------------- |
| each declared  | SQL: SQLite file under the data dir| the source's declared `url_env`         |
| source         | feed: its local server on loopback | (e.g. `MLOPS_SOURCE_URL`, PostgreSQL)   |
| warehouse      | DuckDB file under the data dir     | `MLOPS_WAREHOUSE_URL` (PostgreSQL)      |
| mlflow_registry| SQLite + artifacts under data dir  | `MLOPS_MLFLOW_TRACKING_URI` (PostgreSQL)|
|                |                                    | + `MLOPS_MLFLOW_ARTIFACT_ROOT`          |

In production, steps run on dagster-celery workers (`executor_for`): broker `MLOPS_CELERY_BROKER`,
queues and acknowledgement settings in `mlops_platform.deploy.queues`, three retries per step.
Secrets and URLs come only through `dg.EnvVar`, read when a run starts, never at import.
"""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltResource

from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.domains import enabled_domains
from mlops_platform.ingestion.resources import source_resources
from mlops_platform.registry.resources import MLflowResource
from mlops_platform.settings import active_profile
from mlops_platform.warehouse import DuckDBWarehouse, PostgresWarehouse


def _sources(production: bool) -> dict:
    """The resources of every enabled domain's declared sources; a key declared twice is an
    error (two domains' sources must have their own resource keys)."""
    found: dict = {}
    for domain in enabled_domains():
        for key, resource in source_resources(domain, production).items():
            if key in found:
                raise ValueError(f"resource key {key!r} is declared by two domains' sources")
            found[key] = resource
    return found


def local_resources() -> dict:
    return {
        "dlt": DagsterDltResource(),
        **_sources(production=False),
        "warehouse": DuckDBWarehouse(),
        "mlflow_registry": MLflowResource(),
        "alerting": AlertingResource(),
    }


def production_resources() -> dict:
    return {
        "dlt": DagsterDltResource(),
        **_sources(production=True),
        "warehouse": PostgresWarehouse(url=dg.EnvVar("MLOPS_WAREHOUSE_URL")),
        "mlflow_registry": MLflowResource(
            tracking_uri=dg.EnvVar("MLOPS_MLFLOW_TRACKING_URI"),
            artifact_root=dg.EnvVar("MLOPS_MLFLOW_ARTIFACT_ROOT"),
        ),
        "alerting": AlertingResource(webhook_url=dg.EnvVar("MLOPS_ALERT_WEBHOOK_URL")),
    }


def plain_resources(profile: str | None = None) -> dict:
    """Warehouse and MLflow for processes outside Dagster (serving, CLI): settings are read
    from the environment now, since `dg.EnvVar` is only resolved when Dagster runs."""
    import os

    if (profile or active_profile()) != "production":
        return {"warehouse": DuckDBWarehouse(), "mlflow_registry": MLflowResource()}

    def need(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise RuntimeError(f"{name} must be set for the production profile (.env.example)")
        return value

    return {
        "warehouse": PostgresWarehouse(url=need("MLOPS_WAREHOUSE_URL")),
        "mlflow_registry": MLflowResource(
            tracking_uri=need("MLOPS_MLFLOW_TRACKING_URI"),
            artifact_root=need("MLOPS_MLFLOW_ARTIFACT_ROOT"),
        ),
    }


def production_executor() -> dg.ExecutorDefinition:
    """dagster-celery over the broker in `MLOPS_CELERY_BROKER`, the settings workers share."""
    from dagster_celery import celery_executor

    from mlops_platform.deploy.queues import CELERY_SETTINGS

    return celery_executor.configured(
        {
            "broker": {"env": "MLOPS_CELERY_BROKER"},
            # Results travel back to the run's own reply queue on the same broker.
            "backend": "rpc://",
            "config_source": CELERY_SETTINGS,
            "retries": {"enabled": {}},
        },
        name="celery_production",
    )


def executor_for(profile: str | None = None) -> dg.ExecutorDefinition | None:
    """The production executor, or None for Dagster's default (multiprocess) locally."""
    profile = profile or active_profile()
    return production_executor() if profile == "production" else None


def resources_for(profile: str | None = None) -> dict:
    profile = profile or active_profile()
    return production_resources() if profile == "production" else local_resources()
