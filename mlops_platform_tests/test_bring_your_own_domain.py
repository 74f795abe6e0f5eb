"""A domain the platform has never seen, onboarded as `docs/bring-your-own-model.md` says: a
folder with a declaration, a spec and feature functions (made here, in a temporary directory),
named in `MLOPS_DOMAIN_PATH` and `MLOPS_MODEL_SPECS`, and a source database with one table.
No platform code changes: ingest (dlt + contract) -> features -> train -> gate -> promote run as
the platform's own Dagster jobs, and the champion answers a real HTTP request."""

from __future__ import annotations

import datetime as dt
import textwrap

import dagster as dg
import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mlops_platform_tests.serving_support import wait_ready

DOMAIN = """
name: pumps
description: Daily condition readings of water pumps; a failure is logged the next day.
entity: {singular: pump day, plural: pump days}
entity_key: [pump_id, day]
event: {table: pump_days, date: {column: day}, at: {column: read_at}}
partitions: {start: 2022-01-01, timezone: UTC}
label: {table: pump_days, column: failed, arrives: with the maintenance log the next morning}
sources:
  pump_db:
    kind: sql
    description: The maintenance database.
    resource: pump_db
    url_env: PUMPS_DB_URL
    default_file: pumps.sqlite
feature_inputs: [pump_days]
leakage_columns: [failed]
owners: [team:reliability-ml]
default_specs: [pump_failure]
tables:
  pump_days:
    source: pump_db
    description: One row per pump and day; `failed` once the maintenance log is in.
    primary_key: [pump_id, day]
    cursor: updated_at
    feature_date: {column: day}
    contract:
      required_columns: [pump_id, day, read_at, vibration, temperature, updated_at]
      not_null: [pump_id, day, read_at, updated_at]
      ranges: {vibration: [0, 100], temperature: [-40, 150], failed: [0, 1]}
      version: updated_at
      not_after_clock: [updated_at]
    classification:
      - class: none
        reason: a machine's sensor readings, about no person
        columns: [pump_id, day, read_at, vibration, temperature, failed, updated_at]
"""

FEATURES = """
import pandas as pd

FEATURE_INPUTS = {"sensors": {"pump_days": ("vibration", "temperature")}}


def base_frame(tables):
    return tables["pump_days"].reset_index(drop=True)


def sensors(days, **_):
    return days[["vibration", "temperature"]].astype(float)


FEATURE_FUNCTIONS = {"sensors": sensors}
"""

SPEC = """
name: pump_failure
domain: pumps
description: Probability that a pump fails on a day, from the day's sensor readings.
task: classification
target: {column: failed, threshold: 0.5}
prediction_point: when the day's readings are in
features: {functions: [sensors], numeric: [vibration, temperature]}
training_window_days: 400
holdout_days: 60
gate:
  primary_metric: roc_auc
  floors: {roc_auc: {min: 0.7}}
  champion_tolerance: 0.01
  # Generous: this test checks onboarding, not speed, on a machine that may be busy.
  latency_single_row_ms: 2000
  latency_1000_rows_ms: 20000
"""

PUMPS, DAYS = 4, 500
START = dt.date(2022, 1, 1)


def make_source(path) -> None:
    """The team's own database: one table of readings, and the clock table the local profile
    reads time from (in production the wall clock)."""
    rng = np.random.default_rng(7)
    days = pd.date_range(START, periods=DAYS, freq="D")
    frame = pd.DataFrame(
        {
            "pump_id": np.repeat(np.arange(1, PUMPS + 1), DAYS),
            "day": np.tile(days.date, PUMPS),
            "read_at": np.tile(days + pd.Timedelta(hours=20), PUMPS),
            "vibration": rng.gamma(2.0, 5.0, PUMPS * DAYS),
            "temperature": rng.normal(60, 10, PUMPS * DAYS),
        }
    )
    risk = 0.15 * (frame["vibration"] - 10) + 0.05 * (frame["temperature"] - 60)
    frame["failed"] = (risk + rng.normal(0, 1, len(frame)) > 1.0).astype(int)
    frame["updated_at"] = pd.to_datetime(frame["day"]) + pd.Timedelta(days=1, hours=8)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE pump_days (pump_id INTEGER NOT NULL, day DATE NOT NULL, "
                "read_at DATETIME NOT NULL, vibration FLOAT, temperature FLOAT, failed INTEGER, "
                "updated_at DATETIME NOT NULL, PRIMARY KEY (pump_id, day))"
            )
        )
        frame.to_sql("pump_days", conn, if_exists="append", index=False)
        conn.execute(sa.text("CREATE TABLE replay_clock (now DATETIME NOT NULL)"))
        conn.execute(
            sa.text("INSERT INTO replay_clock VALUES (:now)"),
            {"now": dt.datetime.combine(START + dt.timedelta(days=DAYS + 1), dt.time(9))},
        )
    engine.dispose()


@pytest.fixture()
def pumps(tmp_path, monkeypatch, data_dir):
    folder = tmp_path / "my_domains" / "pumps"
    folder.mkdir(parents=True)
    (folder / "domain.yaml").write_text(textwrap.dedent(DOMAIN))
    (folder / "features.py").write_text(textwrap.dedent(FEATURES))
    (folder / "pump_failure.yaml").write_text(textwrap.dedent(SPEC))
    monkeypatch.setenv("MLOPS_DOMAIN_PATH", str(folder.parent))
    monkeypatch.setenv("MLOPS_MODEL_SPECS", "pump_failure")
    monkeypatch.delenv("MLOPS_CLOCK_URL", raising=False)
    monkeypatch.delenv("MLOPS_SIGNING_KEY", raising=False)
    monkeypatch.setenv("DLT_DATA_DIR", str(data_dir / "dlt_global"))
    make_source(data_dir / "pumps.sqlite")
    return folder


def _failure(result) -> str:
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            return event.event_specific_data.error.to_string()[-2000:]
    return ""


def test_a_new_domain_runs_from_its_folder_to_a_served_champion(pumps, data_dir):
    from mlops_platform.definitions import build_definitions
    from mlops_platform.http_server import BackgroundServer
    from mlops_platform.registry.store import CHAMPION
    from mlops_platform.serving.app import create_app
    from mlops_platform.serving.settings import ServingSettings
    from mlops_platform.specs import load_spec
    from mlops_platform.stores import plain_stores

    spec = load_spec("pump_failure")
    defs = build_definitions([spec], profile="local")
    assert {"ingest", "train_pump_failure"} <= {j.name for j in defs.resolve_all_job_defs()}

    with dg.instance_for_test() as instance:
        for job in ("ingest", "train_pump_failure"):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False
            )
            assert result.success, f"{job}: {_failure(result)}"
        checks = {
            e.event_specific_data.asset_key.to_user_string(): e.event_specific_data
            for e in instance.get_records_for_run(result.run_id).records
            if e.event_log_entry.dagster_event is not None
            and e.event_log_entry.dagster_event.event_type
            == dg.DagsterEventType.ASSET_CHECK_EVALUATION
            for e in [e.event_log_entry.dagster_event]
        }
    gate = checks["pump_failure/model"]
    assert gate.passed, gate.metadata

    stores = plain_stores("local")
    registry, warehouse = stores.mlflow.registry(), stores.warehouse
    assert warehouse.query("SELECT count(*) AS n FROM raw.pump_days")["n"].iloc[0] == PUMPS * DAYS
    champion = registry.alias_version("pump_failure", CHAMPION)
    assert champion is not None

    settings = ServingSettings(model="pump_failure", log_dir=str(data_dir / "serving"))
    with BackgroundServer(create_app(settings, registry, warehouse)) as server:
        wait_ready(server.url, timeout=120)
        reply = httpx.post(
            f"{server.url}/invocations",
            json={
                "dataframe_records": [
                    {"vibration": 40.0, "temperature": 90.0},
                    {"vibration": 2.0, "temperature": 50.0},
                ]
            },
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        # A classifier answers [P(no), P(yes)] per row, as MLflow's pyfunc does.
        (risky_no, risky), (calm_no, calm) = reply.json()["predictions"]
        assert risky_no + risky == pytest.approx(1) and calm_no + calm == pytest.approx(1)
        assert 0 <= calm < risky <= 1
        wrong = httpx.post(
            f"{server.url}/invocations",
            json={"dataframe_records": [{"vibration": "loud", "temperature": 90.0}]},
            timeout=60,
        )
        assert wrong.status_code == 400 and "vibration" in wrong.text
