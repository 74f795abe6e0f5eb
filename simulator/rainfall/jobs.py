"""`advance_rainfall_clock`: move the weather station's replay clock forward, from the UI."""

import dagster as dg
from pydantic import Field

from mlops_platform.ingestion.resources import SourceDatabase


class AdvanceStationClockConfig(dg.Config):
    days: float = Field(default=1.0, gt=0, description="How many days to move the replay clock")


@dg.op
def advance_station_clock(
    context: dg.OpExecutionContext, config: AdvanceStationClockConfig, station_db: SourceDatabase
) -> None:
    """Publish the next days' summaries and the rain reports that have arrived by then."""
    from simulator.rainfall.replay import advance

    result = advance(station_db.database_url, config.days)
    context.log.info(
        f"clock now {result.now:%Y-%m-%d %H:%M}; published {result.released} daily summaries, "
        f"{result.labels} rain reports"
    )


@dg.job(description="Advance the weather station's replay clock by N days (config: days).")
def advance_rainfall_clock():
    advance_station_clock()
