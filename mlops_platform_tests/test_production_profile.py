"""The production profile for real: PostgreSQL as the source system and as the warehouse.

Runs against the server on these machines (127.0.0.1:5432, trust auth, database `test`).
In CI a missing server is a failure; elsewhere the tests skip and say why.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
import sqlalchemy as sa

from mlops_platform_tests.helpers import check_results, ingest, rows_loaded, source_execute
from simulator.flights import replay

SERVER = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SOURCE_SCHEMA = "flight_ops_source"
WAREHOUSE_SCHEMAS = ("raw", "landing", "ingest", "quarantine", "features", "audit")


def _server_or_skip() -> None:
    engine = sa.create_engine(SERVER)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {SERVER}: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    finally:
        engine.dispose()


@pytest.fixture()
def postgres(data_dir, postgres_default_schemas):
    """Empty source schema and warehouse schemas in the `test` database (held for the test)."""
    _server_or_skip()
    engine = sa.create_engine(SERVER)
    with engine.begin() as conn:
        for schema in (SOURCE_SCHEMA, *WAREHOUSE_SCHEMAS):
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{SOURCE_SCHEMA}"'))
    engine.dispose()
    source_url = f"{SERVER}?options=-csearch_path%3D{SOURCE_SCHEMA}"
    replay.create_source(source_url)
    return source_url


@pytest.fixture()
def pg_resources(postgres, data_dir) -> dict:
    from mlops_platform.profiles import dlt_resource
    from mlops_platform.warehouse.resources import PostgresWarehouse
    from mlops_platform_tests.helpers import sources

    return {
        "dlt": dlt_resource(),
        **sources(postgres),
        "warehouse": PostgresWarehouse(url=SERVER, pipelines_dir=str(data_dir / "dlt")),
    }


def test_ingestion_from_postgres_into_postgres(pg_resources, postgres):
    warehouse = pg_resources["warehouse"]
    replay.advance(postgres, 2)
    first = ingest(pg_resources)
    assert first.success, [e.message for e in first.all_events if e.is_failure]
    assert all(e.passed for e in check_results(first).values())
    source_rows = _scalar(postgres, "SELECT count(*) FROM flights")
    assert rows_loaded(first)["flights"] == source_rows
    assert _flight_counts(warehouse) == (source_rows, source_rows)

    # Nothing new: nothing loaded. Then late outcomes merge in place.
    assert not any(rows_loaded(ingest(pg_resources)).values())
    replay.advance(postgres, 1)
    assert ingest(pg_resources).success
    total = _scalar(postgres, "SELECT count(*) FROM flights")
    assert _flight_counts(warehouse) == (total, total)
    labelled = warehouse.query("SELECT count(arr_delay) AS n FROM raw.flights")["n"].iloc[0]
    assert labelled == _scalar(postgres, "SELECT count(arr_delay) FROM flights")
    weather = warehouse.query("SELECT count(*) AS n FROM raw.weather")["n"].iloc[0]
    assert weather == _scalar(
        postgres, "SELECT count(*) FROM weather_observations WHERE time_hour <= '2013-01-04'"
    )


def test_bad_batch_is_quarantined_in_postgres(pg_resources, postgres):
    warehouse = pg_resources["warehouse"]
    replay.advance(postgres, 1)
    assert ingest(pg_resources).success
    source_execute(
        postgres,
        "INSERT INTO flights (year, month, day, sched_dep_time, sched_arr_time, carrier, flight, "
        "origin, dest, distance, hour, minute, time_hour, status, updated_at) VALUES "
        "(2013, 1, 2, 900, 1200, 'ZZ', 9003, 'JFK', 'ORD', 700, 9, 0, '2013-01-02 14:00', "
        "'scheduled', '2013-01-02 06:00')",
    )
    replay.set_clock(postgres, dt.datetime(2013, 1, 2, 6))
    result = ingest(pg_resources)
    assert not check_results(result)["flights"].passed
    from mlops_platform.contracts.quarantine import pending_quarantine

    kept = pending_quarantine(warehouse, "flights")
    assert list(kept["flight"]) == [9003]
    assert "expect_column_values_to_be_in_set(carrier)" in kept["_quarantine_reason"].iloc[0]
    assert (
        warehouse.query("SELECT count(*) AS n FROM raw.flights WHERE flight = 9003")["n"].iloc[0]
        == 0
    )


def _scalar(url: str, sql: str):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


def _flight_counts(warehouse) -> tuple[int, int]:
    frame = warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT (year, month, day, carrier, flight, origin)) AS k "
        "FROM raw.flights"
    )
    return int(frame["n"].iloc[0]), int(frame["k"].iloc[0])


MLFLOW_SCHEMA = "mlflow_prod_test"


def test_training_gate_and_promotion_on_postgres(pg_resources, postgres, data_dir):
    """The model pipeline with PostgreSQL as warehouse and as MLflow's backend store."""
    import dagster as dg

    from mlops_platform.alerting.resources import AlertingResource
    from mlops_platform.definitions import spec_definitions
    from mlops_platform.registry.promotion import audit_log
    from mlops_platform.registry.resources import MLflowResource
    from mlops_platform.specs import load_spec
    from mlops_platform_tests.helpers import QUIET

    engine = sa.create_engine(SERVER)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{MLFLOW_SCHEMA}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{MLFLOW_SCHEMA}"'))
    engine.dispose()

    replay.set_clock(postgres, dt.datetime(2013, 1, 22))
    assert ingest(pg_resources).success
    spec = load_spec("flight_delay")
    gate = spec.gate.model_copy(
        update={"latency_single_row_ms": 5_000, "latency_1000_rows_ms": 20_000}
    )
    spec = spec.model_copy(update={"gate": gate})  # behaviour, not this machine's speed
    resources = {
        "warehouse": pg_resources["warehouse"],
        "mlflow_registry": MLflowResource(
            tracking_uri=f"{SERVER}?options=-csearch_path%3D{MLFLOW_SCHEMA}",
            artifact_root=str(data_dir / "mlflow_artifacts"),
        ),
        "alerting": AlertingResource(),
    }
    defs = dg.Definitions.merge(spec_definitions([spec]), dg.Definitions(resources=resources))
    result = defs.resolve_job_def(f"train_{spec.name}").execute_in_process(
        run_config=QUIET, raise_on_error=False
    )
    assert result.success
    registry = resources["mlflow_registry"].registry()
    assert registry.alias_version(spec.name, "champion") == "1"
    log = audit_log(pg_resources["warehouse"], spec.name)
    assert list(zip(log["alias"], log["to_version"], strict=True)) == [
        ("challenger", "1"),
        ("champion", "1"),
    ]
    engine = sa.create_engine(SERVER)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(f'SELECT count(*) FROM "{MLFLOW_SCHEMA}".model_versions')
        ).scalar()
    engine.dispose()
    assert stored == 1  # the registry really lives in PostgreSQL
