"""The one place that chooses the environment: local (embedded) or production (servers).

| resource       | local (default)                    | production (`MLOPS_PROFILE=production`) |
| -------------- | ---------------------------------- | --------------------------------------- |
| each declared  | SQL: SQLite file under the data dir| the source's declared `url_env`         |
| source         | feed: its local server on loopback | (e.g. `MLOPS_SOURCE_URL`, PostgreSQL)   |
| warehouse      | DuckDB file under the data dir     | `MLOPS_WAREHOUSE_URL` (PostgreSQL)      |
| mlflow_registry| SQLite + artifacts under data dir  | `MLOPS_MLFLOW_TRACKING_URI` (PostgreSQL)|
|                |                                    | + `MLOPS_MLFLOW_ARTIFACT_ROOT`          |
| clock          | the replay clock table of the      | the wall clock; or the table at         |
|                | source database (`TableClock`)     | `MLOPS_CLOCK_URL` (a replayed stack)    |
| daily cycle    | sensor following that clock        | cron schedule on the wall clock         |

In production, steps run on dagster-celery workers (`executor_for`): broker `MLOPS_CELERY_BROKER`,
queues and acknowledgement settings in `mlops_platform.deploy.queues`, three retries per step.
Secrets and URLs come only through `dg.EnvVar`, read when a run starts, never at import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlops_platform.settings import active_profile, default_source_url

if TYPE_CHECKING:
    import dagster as dg

    from mlops_platform.clock import Clock

# Dagster and the resources are imported inside the functions that build them, so loading this
# module stays cheap. Processes outside Dagster (the serving API, the CLI) take the same
# profile's warehouse and MLflow as plain objects from `mlops_platform.stores`.


def _sources(production: bool) -> dict:
    """The resources of every enabled domain's declared sources; a key declared twice is an
    error (two domains' sources must have their own resource keys)."""
    from mlops_platform.domains import enabled_domains
    from mlops_platform.ingestion.resources import source_resources

    found: dict = {}
    for domain in enabled_domains():
        for key, resource in source_resources(domain, production).items():
            if key in found:
                raise ValueError(f"resource key {key!r} is declared by two domains' sources")
            found[key] = resource
    return found


def dlt_resource():
    """dagster-dlt's resource, imported when a run that loads starts it: importing dlt costs
    about 0.4 s of CPU, which every process loading the code location would pay (each run's
    own process among them), not only the runs that use it."""
    import dagster as dg

    @dg.resource(description="dagster-dlt: runs a dlt pipeline and reports what it loaded.")
    def dlt(_init_context):
        from dagster_dlt import DagsterDltResource

        return DagsterDltResource()

    return dlt


def local_resources() -> dict:
    from mlops_platform.alerting.resources import AlertingResource
    from mlops_platform.registry.resources import MLflowResource
    from mlops_platform.warehouse.resources import DuckDBWarehouse

    return {
        "dlt": dlt_resource(),
        **_sources(production=False),
        "warehouse": DuckDBWarehouse(),
        "mlflow_registry": MLflowResource(),
        "alerting": AlertingResource(),
        "clock": clock_for("local"),
    }


def production_resources() -> dict:
    import dagster as dg

    from mlops_platform.alerting.resources import AlertingResource
    from mlops_platform.registry.resources import MLflowResource
    from mlops_platform.warehouse.resources import PostgresWarehouse

    return {
        "dlt": dlt_resource(),
        **_sources(production=True),
        "warehouse": PostgresWarehouse(url=dg.EnvVar("MLOPS_WAREHOUSE_URL")),
        "mlflow_registry": MLflowResource(
            tracking_uri=dg.EnvVar("MLOPS_MLFLOW_TRACKING_URI"),
            artifact_root=dg.EnvVar("MLOPS_MLFLOW_ARTIFACT_ROOT"),
        ),
        "alerting": AlertingResource(webhook_url=dg.EnvVar("MLOPS_ALERT_WEBHOOK_URL")),
        "clock": clock_for("production"),
    }


def clock_for(profile: str | None = None) -> Clock:
    """Locally the replay clock (the `replay_clock` table of the source database); in
    production the wall clock, unless `MLOPS_CLOCK_URL` names a clock table (a stack that
    replays history, like `make prod-up`). Whether it is set is read now (it decides whether
    the daily cycle is a schedule or a sensor, part of the definitions); its value, a URL that
    may hold a password, only through `dg.EnvVar` when a run starts."""
    import dagster as dg

    from mlops_platform.clock import TableClock, WallClock

    profile = profile or active_profile()
    url = os.environ.get("MLOPS_CLOCK_URL", "")
    table = os.environ.get("MLOPS_CLOCK_TABLE", "") or "replay_clock"
    if profile == "production":
        return TableClock(url=dg.EnvVar("MLOPS_CLOCK_URL"), table=table) if url else WallClock()
    return TableClock(url=url or local_clock_url(), table=table)


def local_clock_url() -> str:
    """Locally, the clock table lives in the first enabled domain's first SQL source database
    (the replay's; `MLOPS_CLOCK_URL` names another)."""
    from mlops_platform.domains import enabled_domains
    from mlops_platform.domains.schema import SqlSource

    for domain in enabled_domains():
        for source in domain.sources.values():
            if isinstance(source, SqlSource):
                return default_source_url(source.default_file)
    raise RuntimeError(
        "no enabled domain declares a SQL source to hold the clock: set MLOPS_CLOCK_URL"
    )


def daily_cycle_trigger(profile: str | None = None) -> str:
    """`schedule` (cron on the wall clock) or `sensor` (follows a clock table)."""
    return "schedule" if clock_for(profile).follows_wall_time else "sensor"


def plain_clock(profile: str | None = None) -> Clock:
    """The profile's clock for processes outside Dagster (the CLI), its URL read now."""
    from mlops_platform.clock import TableClock, WallClock

    profile = profile or active_profile()
    url = os.environ.get("MLOPS_CLOCK_URL", "")
    table = os.environ.get("MLOPS_CLOCK_TABLE", "") or "replay_clock"
    if profile == "production":
        return TableClock(url=url, table=table) if url else WallClock()
    return TableClock(url=url or local_clock_url(), table=table)


def production_executor() -> dg.ExecutorDefinition:
    """dagster-celery over the broker in `MLOPS_CELERY_BROKER`, the settings workers share
    (`mlops_platform.deploy.executor`: the run looks at its steps every 0.1 s, not every 1 s)."""
    from mlops_platform.deploy.executor import celery_executor_definition
    from mlops_platform.deploy.queues import CELERY_SETTINGS

    celery_executor = celery_executor_definition()

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
