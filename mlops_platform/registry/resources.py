"""The MLflow resource: local SQLite + artifact directory by default, PostgreSQL in production."""

from __future__ import annotations

import dagster as dg

from mlops_platform.registry.settings import MLflowSettings


class MLflowResource(dg.ConfigurableResource, MLflowSettings):
    """MLflow tracking + model registry (`registry()` gives the `ModelRegistry`)."""
