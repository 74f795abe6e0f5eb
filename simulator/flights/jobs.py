"""`advance_clock`: move the flight-ops replay clock forward, from the Dagster UI."""

import dagster as dg
from pydantic import Field

from mlops_platform.ingestion.resources import SourceDatabase


class AdvanceClockConfig(dg.Config):
    days: float = Field(default=1.0, gt=0, description="How many days to move the replay clock")


@dg.op
def advance_replay_clock(
    context: dg.OpExecutionContext, config: AdvanceClockConfig, source_system: SourceDatabase
) -> None:
    """Release the next days' schedules and the outcomes of flights that have landed."""
    from simulator.flights.replay import advance

    result = advance(source_system.database_url, config.days)
    context.log.info(
        f"clock now {result.now:%Y-%m-%d %H:%M}; released {result.released} rows, "
        f"wrote {result.outcomes} outcomes"
    )


@dg.job(description="Advance the simulator's replay clock by N days (config: days).")
def advance_clock():
    advance_replay_clock()
