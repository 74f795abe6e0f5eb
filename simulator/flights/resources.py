"""The platform's resources, wired to the flight-ops simulator.

`ReplayWeatherFeed` is the platform's `SourceFeed` that, given no URL, runs the replay feed on
loopback for the duration of each run (so a laptop needs no feed process of its own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mlops_platform.ingestion.resources import SourceFeed


class ReplayWeatherFeed(SourceFeed):
    """The weather feed at `url`, or with no URL the replay feed served on 127.0.0.1 over
    `source_system`'s observations, started for each run."""

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        if self.url:
            yield self.url
            return
        from simulator.flights.weather_feed import FeedServer

        if self.source_system is None:
            raise ValueError("the replay weather feed needs the flight-ops database")
        with FeedServer(self.source_system.database_url) as server:
            yield server.url
