"""Preparation the benchmarks share (never timed): the 2013 source at a clock, landed, audited
and published for real by the ingestion assets into a DuckDB warehouse in a work directory."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path


def loaded_warehouse(workdir: Path, clock: dt.datetime):
    """A DuckDB warehouse holding everything the source had published by `clock`, through the
    same landing -> audit -> publish path as the `ingest` job (the SQLite source is read through
    its type guard). Rows a contract stops (Feb 12's 1,048 mph wind) stay in quarantine, as in
    production; everything else is in `raw`."""
    import dagster as dg
    from dagster_dlt import DagsterDltResource

    from mlops_platform.clock import TableClock
    from mlops_platform.contracts.checks import published_tables
    from mlops_platform.contracts.rules import CONTRACTS
    from mlops_platform.ingestion.assets import flight_ops_tables, weather_feed_tables
    from mlops_platform.ingestion.resources import FlightOpsDatabase
    from mlops_platform.warehouse import DuckDBWarehouse
    from simulator.flights import replay
    from simulator.flights.resources import ReplayWeatherFeed

    url = f"sqlite:///{workdir / 'flight_ops.sqlite'}"
    replay.create_source(url)
    replay.set_clock(url, clock)
    source = FlightOpsDatabase(url=url)
    warehouse = DuckDBWarehouse(
        path=str(workdir / "warehouse.duckdb"), pipelines_dir=str(workdir / "dlt")
    )
    resources = {
        "dlt": DagsterDltResource(),
        "source_system": source,
        "weather_feed": ReplayWeatherFeed(source_system=source),
        "clock": TableClock(url=source.database_url),
        "warehouse": warehouse,
    }
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    assets = [flight_ops_tables, weather_feed_tables, *published_tables]
    # A failing contract (a real bad reading) is a blocking check: the run "fails" after the
    # table is published, so judge the load by what reached `raw`, not by the run's status.
    dg.materialize(assets, resources=resources, run_config=quiet, raise_on_error=False)
    missing = [t for t in CONTRACTS if not warehouse.table_exists("raw", t)]
    if missing:
        sys.exit(f"loading the benchmark's warehouse failed: no raw table {missing}")
    return warehouse
