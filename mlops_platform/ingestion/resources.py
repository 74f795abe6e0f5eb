"""Resources for the systems ingestion reads from: the flight-ops database and the weather feed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from mlops_platform.settings import default_source_url


class FlightOpsDatabase(dg.ConfigurableResource):
    """The airline-ops database (SQLite by default, any SQLAlchemy URL)."""

    url: str = Field(
        default="", description="SQLAlchemy URL; empty means <data dir>/flight_ops.sqlite"
    )

    @property
    def database_url(self) -> str:
        from mlops_platform.reliability import with_pg_timeouts

        # Every reader (dlt, connectorx, the clock) gets bounded connect and statement times.
        return with_pg_timeouts(self.url) if self.url else default_source_url()

    def table_keys(self, table: str, columns: list[str]):
        """Every key of a source table (to find rows deleted at the source)."""
        import pandas as pd
        import sqlalchemy as sa

        engine = sa.create_engine(self.database_url)
        try:
            names = ", ".join(f'"{c}"' for c in columns)
            with engine.connect() as conn:
                return pd.read_sql_query(sa.text(f"SELECT {names} FROM {table}"), conn)
        finally:
            engine.dispose()


class WeatherFeed(dg.ConfigurableResource):
    """The hourly weather HTTP feed at `url` (a service of its own, like any external API)."""

    url: str = Field(default="", description="Base URL of the feed")

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Yield the base URL to read from (a subclass may run a feed for the duration)."""
        if not self.url:
            raise RuntimeError("no weather feed URL: set MLOPS_WEATHER_FEED_URL (.env.example)")
        yield self.url
