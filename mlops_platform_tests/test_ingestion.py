"""Real dlt loads into a real DuckDB warehouse: incremental, merge, schema change, recovery."""

from __future__ import annotations

import datetime as dt

import dlt
import pytest

from mlops_platform_tests.helpers import (
    flight_ops_source,
    ingest,
    rows_loaded,
    source_execute,
    source_query,
)
from simulator.flights import replay


def counts(warehouse, table: str) -> tuple[int, int]:
    keys = (
        "year, month, day, carrier, flight, origin" if table == "flights" else "origin, time_hour"
    )
    frame = warehouse.query(f"SELECT count(*) AS n, count(DISTINCT ({keys})) AS k FROM raw.{table}")
    return int(frame["n"].iloc[0]), int(frame["k"].iloc[0])


def test_first_load_then_rerun_loads_nothing(resources, source_url):
    replay.advance(source_url, 2)
    first = ingest(resources)
    assert first.success
    source_flights = source_query(source_url, "SELECT count(*) FROM flights")[0][0]
    assert rows_loaded(first)["flights"] == source_flights
    assert counts(resources["warehouse"], "flights") == (source_flights, source_flights)
    weather_before = counts(resources["warehouse"], "weather")
    assert weather_before[0] == weather_before[1] > 0

    again = ingest(resources)
    assert again.success
    assert not any(rows_loaded(again).values()), rows_loaded(again)
    assert counts(resources["warehouse"], "flights") == (source_flights, source_flights)
    assert counts(resources["warehouse"], "weather") == weather_before


def test_late_outcome_updates_the_flight_in_place(resources, source_url):
    warehouse = resources["warehouse"]
    replay.set_clock(source_url, dt.datetime(2013, 1, 1, 12))
    assert ingest(resources).success
    pending = warehouse.query(
        "SELECT count(*) AS n FROM raw.flights WHERE arr_delay IS NULL AND day = 1"
    )["n"].iloc[0]
    landed_by_noon = source_query(source_url, "SELECT count(arr_delay) FROM flights")[0][0]
    assert pending == 842 - landed_by_noon > 400  # the afternoon's flights are still flying

    replay.advance(source_url, 1)
    result = ingest(resources)
    assert result.success
    total, distinct = counts(warehouse, "flights")
    assert total == distinct == source_query(source_url, "SELECT count(*) FROM flights")[0][0]
    landed = warehouse.query(
        "SELECT count(*) AS n FROM raw.flights WHERE day = 1 AND status = 'landed' "
        "AND arr_delay IS NOT NULL"
    )["n"].iloc[0]
    expected = source_query(
        source_url, "SELECT count(*) FROM flights WHERE day = 1 AND status = 'landed'"
    )[0][0]
    assert landed == expected > 0


def test_weather_loads_incrementally_over_the_feed(resources, source_url):
    warehouse = resources["warehouse"]
    replay.advance(source_url, 1)
    assert ingest(resources).success
    first = counts(warehouse, "weather")[0]
    replay.advance(source_url, 1)
    second_run = ingest(resources)
    assert second_run.success
    assert rows_loaded(second_run)["weather"] == 72  # 24 new hours at 3 airports
    expected = source_query(
        source_url,
        "SELECT count(*) FROM weather_observations WHERE time_hour <= '2013-01-03 00:00:00.000000'",
    )[0][0]
    assert counts(warehouse, "weather") == (expected, expected) and expected == first + 72


def test_column_added_at_the_source_appears_in_the_warehouse(resources, source_url):
    warehouse = resources["warehouse"]
    replay.set_clock(source_url, dt.datetime(2013, 1, 1, 12))
    assert ingest(resources).success
    source_execute(source_url, "ALTER TABLE flights ADD COLUMN gate VARCHAR(8)")
    source_execute(
        source_url,
        "UPDATE flights SET gate = 'B' || (id % 40), updated_at = '2013-01-01 12:00:00.000000' "
        "WHERE id IN (SELECT id FROM flights ORDER BY id LIMIT 25)",
    )
    result = ingest(resources)
    assert result.success
    assert "gate" in warehouse.columns("raw", "flights")
    gates = warehouse.query("SELECT count(gate) AS n FROM raw.flights")["n"].iloc[0]
    assert gates == 25
    assert counts(warehouse, "flights")[0] == 842


def test_interrupted_extract_is_completed_by_the_next_run(resources, source_url):
    """A load that dies halfway commits nothing; the next run loads everything exactly once."""
    warehouse = resources["warehouse"]
    replay.set_clock(source_url, dt.datetime(2013, 1, 20))
    pipeline = warehouse.dlt_pipeline("flight_ops")
    source = flight_ops_source(source_url)

    def connection_lost(table):
        raise ConnectionError("source connection lost")

    # flights are extracted first; the connection drops while reading planes.
    source.resources["planes"].add_map(connection_lost)
    with pytest.raises(Exception, match="source connection lost"):
        pipeline.run(source)
    assert not warehouse.table_exists("raw", "flights")

    result = ingest(resources)
    assert result.success
    expected = source_query(source_url, "SELECT count(*) FROM flights")[0][0]
    assert counts(warehouse, "flights") == (expected, expected)
    assert warehouse.query("SELECT count(*) AS n FROM raw.planes")["n"].iloc[0] == 3322


def test_load_interrupted_after_extract_is_finished_by_the_next_run(resources, source_url):
    """Extracted and normalized but never loaded (process killed): the package is pending and
    the next run loads it, then carries on with new data, with no loss and no duplicates."""
    warehouse = resources["warehouse"]
    replay.advance(source_url, 3)
    pipeline = warehouse.dlt_pipeline("flight_ops")
    pipeline.extract(flight_ops_source(source_url))
    pipeline.normalize()
    assert pipeline.has_pending_data
    replay.advance(source_url, 1)

    assert ingest(resources).success
    # A second run picks up whatever the pending package's run did not extract.
    assert ingest(resources).success
    fresh = dlt.attach("flight_ops", pipelines_dir=warehouse.pipelines_dir)
    assert not fresh.has_pending_data
    expected = source_query(source_url, "SELECT count(*) FROM flights")[0][0]
    assert counts(warehouse, "flights") == (expected, expected)
    labelled = warehouse.query("SELECT count(arr_delay) AS n FROM raw.flights")["n"].iloc[0]
    assert labelled == source_query(source_url, "SELECT count(arr_delay) FROM flights")[0][0]


def test_a_reread_row_lands_again_when_a_clock_checked_column_moved():
    """Landing leaves out a re-read row that `raw` holds at the same key and version, but not
    one whose column checked against the clock moved (the source rewrote a day's `reported_at`
    into the future without a new `updated_at`): that row must reach the audit, which
    quarantines it as from the future."""
    import pandas as pd
    import pyarrow as pa

    from mlops_platform.domains import load_domain
    from mlops_platform.ingestion.assets import landing_reads
    from mlops_platform.ingestion.sources import MISSING_COLUMNS, TYPE_ERRORS, _without_published

    key, compared, _, _ = landing_reads(load_domain("rainfall"), "station_db")["daily_summary"]
    assert compared == ["updated_at", "reported_at"]
    at = pd.Timestamp("1981-06-02 08:00", tz="UTC")
    stored = pd.DataFrame(
        {
            **{c: [f"{c}-1", f"{c}-2"] for c in key},
            "updated_at": [at, at],
            "reported_at": [at, at],
        }
    )
    read = pa.Table.from_pandas(
        stored.assign(reported_at=[at, at + pd.Timedelta(days=400)]), preserve_index=False
    )
    read = read.append_column(MISSING_COLUMNS, pa.nulls(2, pa.string()))
    read = read.append_column(TYPE_ERRORS, pa.nulls(2, pa.string()))
    landed = _without_published(read, stored[[*key, *compared]], key)
    assert landed.num_rows == 1
    assert landed["reported_at"][0].as_py() == at + pd.Timedelta(days=400)
