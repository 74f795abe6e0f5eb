"""Jobs of the ingestion domain: load the raw tables, and move the replay clock."""

import dagster as dg
from pydantic import Field

from mlops_platform.ingestion.assets import INGESTION_GROUP
from mlops_platform.ingestion.resources import SourceDatabase

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups(INGESTION_GROUP),
    description="Load every raw table with dlt and run its data contract (blocking checks).",
)


class AdvanceClockConfig(dg.Config):
    days: float = Field(default=1.0, gt=0, description="How many days to move the replay clock")


@dg.op
def advance_replay_clock(
    context: dg.OpExecutionContext, config: AdvanceClockConfig, source_system: SourceDatabase
) -> None:
    """Release the next days' rows and the outcomes that have arrived by then."""
    result = source_system.advance(config.days)
    context.log.info(
        f"clock now {result.now:%Y-%m-%d %H:%M}; released {result.released} rows, "
        f"wrote {result.outcomes} outcomes"
    )


@dg.job(description="Advance the source system's replay clock by N days (config: days).")
def advance_clock():
    advance_replay_clock()
