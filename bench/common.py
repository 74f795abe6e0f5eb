"""Preparation the benchmarks share (never timed): the 2013 source at a clock, loaded for real
with dlt into a DuckDB warehouse in a work directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path


def loaded_warehouse(workdir: Path, clock: dt.datetime):
    """A DuckDB warehouse holding everything the source had published by `clock`."""
    from mlops_platform.ingestion.sources import flight_ops_source, weather_feed_source
    from mlops_platform.source_system import replay
    from mlops_platform.source_system.weather_feed import FeedServer
    from mlops_platform.warehouse import DuckDBWarehouse

    url = f"sqlite:///{workdir / 'flight_ops.sqlite'}"
    replay.create_source(url)
    replay.set_clock(url, clock)
    warehouse = DuckDBWarehouse(
        path=str(workdir / "warehouse.duckdb"), pipelines_dir=str(workdir / "dlt")
    )
    # Straight into `raw` (a benchmark's setup, not the audited path); one load, so appending
    # cannot duplicate, and the typed connectorx read is fine for the untouched 2013 data.
    warehouse.dlt_pipeline("flight_ops").run(
        flight_ops_source(url, backend="connectorx"), loader_file_format="parquet"
    )
    with FeedServer(url) as feed:
        warehouse.dlt_pipeline("weather_feed").run(
            weather_feed_source(feed.url), loader_file_format="parquet"
        )
    return warehouse
