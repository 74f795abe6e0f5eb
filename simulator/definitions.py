"""The local code location: the platform (`mlops_platform.definitions.build_definitions`) wired
to the simulator, plus the simulator's own `advance_clock` job.

`workspace.yaml` loads this module for `make dev`; the year replay (`make year`) and the
quickstart (`make run`) drive it in process. It differs from the platform's code location only
in what the simulator brings: the replay weather feed served on loopback (once per process),
and the job that moves the replay clock. The platform reads that clock through its `clock` resource
(a `TableClock` on the source database's `replay_clock` table), never by importing this package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg

from mlops_platform.definitions import AT_CLOCK, build_definitions
from mlops_platform.profiles import resources_for
from mlops_platform.settings import active_profile
from mlops_platform.specs import ModelSpec
from simulator.flights.resources import ReplayWeatherFeed
from simulator.jobs import advance_clock, advance_rainfall_clock


def simulated_resources(profile: str | None = None) -> dict:
    """The profile's resources with the replay weather feed: at `MLOPS_WEATHER_FEED_URL` if
    set, else served on loopback over the source database (once per process, for its runs)."""
    profile = profile or active_profile()
    resources = resources_for(profile)
    url = (
        dg.EnvVar("MLOPS_WEATHER_FEED_URL")
        if profile == "production"
        else os.environ.get("MLOPS_WEATHER_FEED_URL", "")
    )
    if "weather_feed" in resources:  # the flights domain is enabled
        resources["weather_feed"] = ReplayWeatherFeed(
            url=url, source_system=resources.get("source_system")
        )
    return resources


def build_simulated_definitions(
    specs: Sequence[ModelSpec] | None = None,
    *,
    profile: str | None = None,
    partitions_until=AT_CLOCK,
) -> dg.Definitions:
    """The platform's definitions on the simulator's resources, and the job that advances
    each enabled domain's replay clock (`advance_clock` for flights, `advance_rainfall_clock`).
    Partitions end at the replay clock when they are built (`make dev` shows no future period
    as missing; reload the code location after moving the clock); the replay, which moves the
    clock itself, builds them with `partitions_until=None` (see `build_definitions`)."""
    resources = simulated_resources(profile)
    jobs = []
    if "source_system" in resources:
        jobs.append(advance_clock)
    if "station_db" in resources:
        jobs.append(advance_rainfall_clock)
    return dg.Definitions.merge(
        build_definitions(
            specs, profile=profile, resources=resources, partitions_until=partitions_until
        ),
        dg.Definitions(jobs=jobs),
    )


defs = build_simulated_definitions()
