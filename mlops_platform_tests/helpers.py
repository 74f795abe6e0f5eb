"""Small helpers the tests share: run ingestion for real, read and poke the source."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from mlops_platform.contracts.checks import published_tables
from mlops_platform.domains import load_domain
from mlops_platform.ingestion.assets import landing_assets
from mlops_platform.ingestion.resources import source_resources

FLIGHTS = load_domain("flights")

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def sources(url: str) -> dict:
    """The flights domain's source resources on the ops database at `url` (its weather feed
    runs on loopback over the same database)."""
    from mlops_platform.clock import TableClock

    return {**source_resources(FLIGHTS, urls={"flight_ops": url}), "clock": TableClock(url=url)}


def flight_ops_source(url, cursors=None, required=None, **kwargs):
    """The flight-ops database's tables as a dlt source (what its landing asset reads)."""
    from mlops_platform.ingestion.sources import sql_source

    return sql_source(FLIGHTS, "flight_ops", url, cursors, required, **kwargs)


def ingest(resources: dict, *extra, instance=None, **kwargs) -> dg.ExecuteInJobResult:
    """Land both sources, audit and publish every table, as the `ingest` job does."""
    return dg.materialize(
        [*landing_assets(FLIGHTS), *published_tables(FLIGHTS), *extra],
        resources=resources,
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        **kwargs,
    )


def rows_loaded(result: dg.ExecuteInJobResult) -> dict[str, int]:
    """Rows published into each raw table by the run."""
    loaded = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[0] != "raw":
            continue
        value = materialization.metadata.get("rows_loaded")
        loaded[materialization.asset_key.path[-1]] = int(value.value) if value else 0
    return loaded


def check_results(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


def source_execute(url: str, sql: str, params: dict | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params or {})
    engine.dispose()


def source_query(url: str, sql: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql)).fetchall()
    engine.dispose()
    return rows


def land(warehouse, source_url: str, whole_window: bool = False) -> None:
    """Land the flight-ops tables with dlt (what the `landing/*` asset does), no Dagster.
    `whole_window`: the rows `raw` holds in each read's window land too (as where the window
    is too large to leave them out, `cursors.WINDOW_ROWS`)."""
    from mlops_platform.ingestion.assets import landing_reads, required_columns
    from mlops_platform.ingestion.cursors import published_in_window, read_cursors
    from mlops_platform.ingestion.sources import LANDING_DATASET

    pipeline = warehouse.dlt_pipeline("flight_ops", LANDING_DATASET)
    cursors = read_cursors(warehouse)
    published = (
        {}
        if whole_window
        else published_in_window(warehouse, landing_reads(FLIGHTS, "flight_ops"), cursors)
    )
    pipeline.run(
        flight_ops_source(source_url, cursors, required_columns(FLIGHTS), published=published),
        loader_file_format=warehouse.loader_file_format,
    )


def publish_table(warehouse, source_url: str, table: str = "flights", run_id: str = "test"):
    """Audit and publish a landed table (what its `raw/<table>` asset does), no Dagster."""
    from mlops_platform.contracts.publish import audit_and_publish
    from mlops_platform.contracts.rules import CONTRACTS
    from mlops_platform.ingestion.resources import SourceDatabase
    from simulator.flights.replay import read_clock

    contract = CONTRACTS[table]
    keys = None
    if contract.on_source_delete != "ignore":
        keys = SourceDatabase(url=source_url).table_keys(table, contract.key)
    return audit_and_publish(warehouse, contract, read_clock(source_url).now, run_id, keys)
