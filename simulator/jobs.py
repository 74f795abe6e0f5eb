"""The jobs that move a simulated domain's replay clock forward, from the Dagster UI: one
factory for every domain (`advance_clock` for flights, `advance_rainfall_clock` for rainfall)."""

import dagster as dg
from pydantic import Field

from simulator.domains import FLIGHTS, RAINFALL, SimulatedDomain


class AdvanceClockConfig(dg.Config):
    days: float = Field(default=1.0, gt=0, description="How many days to move the replay clock")


def build_advance_clock_job(sim: SimulatedDomain, job_name: str, op_name: str) -> dg.JobDefinition:
    """A job whose one op moves `sim`'s replay clock by `days` (its source database is the
    resource the domain's declaration names)."""

    @dg.op(name=op_name, required_resource_keys={sim.resource})
    def advance_replay_clock(context: dg.OpExecutionContext, config: AdvanceClockConfig) -> None:
        """Publish what happens at the source in the next days (rows, then late labels)."""
        url = getattr(context.resources, sim.resource).database_url
        result = sim.advance(url, config.days)
        labels = getattr(result, "outcomes", getattr(result, "labels", 0))
        context.log.info(
            f"{sim.label} clock now {result.now:%Y-%m-%d %H:%M}; released {result.released} "
            f"rows, wrote {labels} late labels"
        )

    @dg.job(
        name=job_name,
        description=f"Advance the {sim.label} replay clock by N days (config: days).",
    )
    def advance_clock():
        advance_replay_clock()

    return advance_clock


advance_clock = build_advance_clock_job(FLIGHTS, "advance_clock", "advance_replay_clock")
advance_rainfall_clock = build_advance_clock_job(
    RAINFALL, "advance_rainfall_clock", "advance_station_clock"
)
