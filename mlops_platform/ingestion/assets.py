"""`landing.*` tables: dlt lands each batch of the flight-ops database and the weather feed.

Nothing here writes `raw`: the contract assets (contracts/checks.py) audit the landed batches
and publish the rows that pass."""

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from mlops_platform.contracts.rules import CONTRACTS
from mlops_platform.ingestion.cursors import read_cursors
from mlops_platform.ingestion.resources import FlightOpsDatabase, WeatherFeed
from mlops_platform.ingestion.sources import (
    LANDING_DATASET,
    OPS_TABLES,
    flight_ops_source,
    source_shape,
    weather_feed_source,
)
from mlops_platform.warehouse import Warehouse
from mlops_platform.warehouse.pool import WAREHOUSE_POOL

DESCRIPTIONS = {
    "flights": "Scheduled flights of the NYC airports; outcome (times, arr_delay) once landed.",
    "planes": "Aircraft by tail number: manufacturer, model, year, seats.",
    "airlines": "Carrier codes and names.",
    "airports": "Airports by FAA code: name, location, time zone.",
    "weather": "Hourly weather at EWR, JFK and LGA from the weather feed.",
}

flight_ops_db = dg.AssetSpec(
    ["source", "flight_ops_db"],
    description="The airline-ops database (replayed 2013), read by dlt with sql_database.",
    group_name="sources",
    kinds={"sqlite", "postgres"},
)
weather_api = dg.AssetSpec(
    ["source", "weather_feed"],
    description="The hourly weather HTTP API (cursor pagination), read by dlt's rest_api.",
    group_name="sources",
    kinds={"fastapi"},
)


REQUIRED = {table: contract.required_columns for table, contract in CONTRACTS.items()}


class LandingTableTranslator(DagsterDltTranslator):
    """Asset keys `["landing", <table>]`, one group, upstream of them the system they come from."""

    def __init__(self, upstream: dg.AssetSpec) -> None:
        self.upstream = upstream

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        table = str(data.resource.table_name)
        return spec.replace_attributes(
            key=dg.AssetKey([LANDING_DATASET, table]),
            deps=[self.upstream.key],
            group_name="ingestion",
            description="Landed, not yet audited: " + DESCRIPTIONS.get(table, spec.description),
        ).merge_attributes(tags={"layer": LANDING_DATASET})


def _spec_pipeline(name: str):
    """A pipeline object only for building asset specs; runs use the warehouse's pipeline."""
    import dlt

    from mlops_platform.settings import data_dir

    return dlt.pipeline(
        pipeline_name=name,
        destination="duckdb",
        dataset_name=LANDING_DATASET,
        pipelines_dir=str(data_dir() / "dlt_specs"),
    )


@dlt_assets(
    dlt_source=source_shape("flight_ops", OPS_TABLES),
    dlt_pipeline=_spec_pipeline("flight_ops"),
    name="flight_ops_tables",
    dagster_dlt_translator=LandingTableTranslator(flight_ops_db),
    pool=WAREHOUSE_POOL,
)
def flight_ops_tables(
    context: dg.AssetExecutionContext,
    dlt: DagsterDltResource,
    source_system: FlightOpsDatabase,
    warehouse: Warehouse,
):
    """Land the operational tables' rows changed since each table's cursor."""
    yield from dlt.run(
        context=context,
        # A fresh source every run: dlt cannot re-run one source object in a process.
        dlt_source=flight_ops_source(source_system.database_url, read_cursors(warehouse), REQUIRED),
        dlt_pipeline=warehouse.dlt_pipeline("flight_ops", LANDING_DATASET),
        loader_file_format=warehouse.loader_file_format,
    )


@dlt_assets(
    dlt_source=source_shape("weather_feed", ["weather"]),
    dlt_pipeline=_spec_pipeline("weather_feed"),
    name="weather_feed_tables",
    dagster_dlt_translator=LandingTableTranslator(weather_api),
    pool=WAREHOUSE_POOL,
)
def weather_feed_tables(
    context: dg.AssetExecutionContext,
    dlt: DagsterDltResource,
    weather_feed: WeatherFeed,
    warehouse: Warehouse,
):
    """Land hourly weather from the feed since the cursor, following its pagination."""
    since = read_cursors(warehouse).get("weather")
    with weather_feed.serve() as base_url:
        yield from dlt.run(
            context=context,
            dlt_source=weather_feed_source(base_url, since, REQUIRED["weather"]),
            dlt_pipeline=warehouse.dlt_pipeline("weather_feed", LANDING_DATASET),
            loader_file_format=warehouse.loader_file_format,
        )
