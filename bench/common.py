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
    from mlops_platform.domains import load_domain
    from mlops_platform.ingestion.assets import landing_assets
    from mlops_platform.ingestion.resources import source_resources
    from mlops_platform.warehouse.resources import DuckDBWarehouse
    from simulator.flights import replay

    url = f"sqlite:///{workdir / 'flight_ops.sqlite'}"
    replay.create_source(url)
    replay.set_clock(url, clock)
    flights = load_domain("flights")
    warehouse = DuckDBWarehouse(
        path=str(workdir / "warehouse.duckdb"), pipelines_dir=str(workdir / "dlt")
    )
    resources = {
        "dlt": DagsterDltResource(),
        **source_resources(flights, urls={"flight_ops": url}),
        "clock": TableClock(url=url),
        "warehouse": warehouse,
    }
    # A failing contract (a real bad reading) is a blocking check: the run "fails" after the
    # table is published, so judge the load by what reached `raw`, not by the run's status.
    # That expected failure is not printed (Dagster's console would log it with its stack
    # trace); any other step failure is.
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    assets = [*landing_assets(flights), *published_tables(flights)]
    result = dg.materialize(assets, resources=resources, run_config=quiet, raise_on_error=False)
    for failure in result.get_step_failure_events():
        error = failure.step_failure_data.error
        if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
            continue
        print(f"step {failure.step_key} failed:\n{error.to_string() if error else failure}")
    missing = [t for t in CONTRACTS if not warehouse.table_exists("raw", t)]
    if missing:
        sys.exit(f"loading the benchmark's warehouse failed: no raw table {missing}")
    return warehouse
