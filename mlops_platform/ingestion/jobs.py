"""Jobs of the ingestion domain: load the raw tables, and move the replay clock."""

import dagster as dg
from pydantic import Field

from mlops_platform.ingestion.resources import FlightOpsDatabase

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Load every raw table with dlt and run its data contract (blocking checks).",
)


class AdvanceClockConfig(dg.Config):
    days: float = Field(default=1.0, gt=0, description="How many days to move the replay clock")


@dg.op
def advance_replay_clock(
    context: dg.OpExecutionContext, config: AdvanceClockConfig, source_system: FlightOpsDatabase
) -> None:
    """Release the next days' schedules and the outcomes of flights that have landed."""
    result = source_system.advance(config.days)
    context.log.info(
        f"clock now {result.now:%Y-%m-%d %H:%M}; released {result.released} scheduled flights, "
        f"wrote {result.outcomes} outcomes"
    )
    context.log_event(
        dg.AssetObservation(
            asset_key=["source", "flight_ops_db"],
            metadata={
                "clock": result.now.isoformat(),
                "released_flights": result.released,
                "outcomes_written": result.outcomes,
            },
        )
    )


@dg.job(description="Advance the source system's replay clock by N days (config: days).")
def advance_clock():
    advance_replay_clock()
