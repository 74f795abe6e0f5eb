"""The ingestion package's definitions: the source systems, the landing tables dlt loads from
them, and the `ingest` job (landing + the raw tables with their blocking contracts)."""

from collections.abc import Sequence

import dagster as dg

from mlops_platform.ingestion import assets
from mlops_platform.specs import ModelSpec

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Load every raw table with dlt and run its data contract (blocking checks).",
)


def build_defs(specs: Sequence[ModelSpec]) -> dg.Definitions:
    """Ingestion is shared by every spec of the domain: one set whatever `specs` holds."""
    return dg.Definitions(
        assets=[
            assets.flight_ops_db,
            assets.weather_api,
            assets.flight_ops_tables,
            assets.weather_feed_tables,
        ],
        jobs=[ingest_job],
    )
