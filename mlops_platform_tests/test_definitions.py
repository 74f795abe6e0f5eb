"""The whole code location loads, fast, with the asset keys, checks and jobs we expect."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg

from mlops_platform.settings import PROJECT_ROOT

EXPECTED_ASSETS = {
    *(f"landing/{t}" for t in ("airlines", "airports", "flights", "planes", "weather")),
    "raw/airlines",
    "raw/airports",
    "raw/flights",
    "raw/planes",
    "raw/weather",
    "source/flight_ops_db",
    "source/weather_feed",
    "features/flight_delay",
    "models/flight_delay",
    "registry/flight_delay",
    "scores/flight_delay",
    "drift_report/flight_delay",
    "model_performance/flight_delay",
    "deploy_guard/flight_delay",
}


def test_definitions_snapshot():
    from mlops_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    raw_tables = ("airlines", "airports", "flights", "planes", "weather")
    warnings = {
        ("drift_report/flight_delay", "drift_share"),
        ("model_performance/flight_delay", "live_performance"),
    }
    assert checks == {
        *((f"raw/{t}", "contract") for t in raw_tables),
        ("models/flight_delay", "evaluation_gate"),
        *warnings,
    }
    for key in graph.asset_check_keys:
        # Contracts and the gate stop what follows; the monitoring checks only warn.
        blocking = (key.asset_key.to_user_string(), key.name) not in warnings
        assert graph.get_check_spec(key).blocking is blocking, key
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "ingest",
        "advance_clock",
        "train_flight_delay",
        "approve_model",
        "rollback_model",
        "daily_flight_delay",
    }
    for name in ("retrain_flight_delay", "alert_on_run_failure", "daily_cycle_flight_delay"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    ingest = defs.resolve_job_def("ingest")
    assert ingest.asset_layer.executable_asset_keys >= {
        dg.AssetKey(["raw", t]) for t in ("flights", "weather")
    }
    # One run per replay day: landing and the raw tables (with their contracts), features, scores
    # and the monitoring assets, in asset-graph order; training is not part of it.
    daily = defs.resolve_job_def("daily_flight_delay")
    assert {k.to_user_string() for k in daily.asset_layer.executable_asset_keys} == {
        *(f"landing/{t}" for t in raw_tables),
        *(f"raw/{t}" for t in raw_tables),
        "features/flight_delay",
        "scores/flight_delay",
        "drift_report/flight_delay",
        "model_performance/flight_delay",
        "deploy_guard/flight_delay",
    }
    assert daily.partitions_def is not None


def test_dagster_validates_the_location_quickly(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    started = time.monotonic()
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster"),
            "definitions",
            "validate",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Generous bound for a busy CI machine; the 5 s target is measured by `make bench-load`.
    assert time.monotonic() - started < 30


def test_production_profile_reads_its_settings_from_the_environment(monkeypatch):
    from mlops_platform.profiles import resources_for
    from mlops_platform.warehouse import PostgresWarehouse

    resources = resources_for("production")
    assert isinstance(resources["warehouse"], PostgresWarehouse)
    monkeypatch.setenv("MLOPS_PROFILE", "staging")
    import pytest

    from mlops_platform.settings import active_profile

    with pytest.raises(ValueError, match="MLOPS_PROFILE='staging'"):
        active_profile()
