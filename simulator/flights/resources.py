"""The platform's resources, wired to the flight-ops simulator.

`ReplayWeatherFeed` is the platform's `SourceFeed` that, given no URL, runs the replay feed on
loopback (once per process, for all its runs: a laptop needs no feed process of its own).
"""

from __future__ import annotations

from pydantic import Field

from mlops_platform.ingestion.resources import SourceFeed


class ReplayWeatherFeed(SourceFeed):
    """The weather feed at `url`, or with no URL the replay feed served on 127.0.0.1 over
    `source_system`'s observations, started by the first run of the process that reads it."""

    local_server: str = Field(
        default="simulator.flights.weather_feed:FeedServer",
        description="module:attribute of the loopback server run when no URL is set",
    )
