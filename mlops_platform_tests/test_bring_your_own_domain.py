"""A domain the platform has never seen, onboarded as `docs/bring-your-own-model.md` says: a
folder with a declaration, a spec and feature functions (the guide's own code blocks, written
here to a temporary directory), named in `MLOPS_DOMAIN_PATH` and `MLOPS_MODEL_SPECS`, and a
source database with one table made by the guide's script.
No platform code changes: ingest (dlt + contract) -> features -> train -> gate -> promote run as
the platform's own Dagster jobs, and the champion answers a real HTTP request."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import httpx
import pytest
import yaml

from mlops_platform_tests.serving_support import wait_ready

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "bring-your-own-model.md"
PUMPS, DAYS = 4, 500


def guide_blocks(language: str) -> list[str]:
    """The guide's code blocks in `language`, in order: what a reader copies."""
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)


def guide_files() -> dict[str, str]:
    """The domain folder and the source script exactly as the guide prints them."""
    declaration, spec = guide_blocks("yaml")[:2]
    features, make_pumps = guide_blocks("python")[:2]
    raw = yaml.safe_load(spec)
    # Generous: this test checks onboarding, not speed, on a machine that may be busy.
    raw["gate"].update(latency_single_row_ms=2000, latency_1000_rows_ms=20000)
    return {
        "domain.yaml": declaration,
        "features.py": features,
        "pump_failure.yaml": yaml.safe_dump(raw),
        "make_pumps.py": make_pumps,
    }


def test_the_guide_prints_the_files_this_test_onboards():
    files = guide_files()
    assert yaml.safe_load(files["domain.yaml"])["name"] == "pumps"
    assert "FEATURE_FUNCTIONS" in files["features.py"]
    assert yaml.safe_load(files["pump_failure.yaml"])["domain"] == "pumps"
    assert "replay_clock" in files["make_pumps.py"]


@pytest.fixture()
def pumps(tmp_path, monkeypatch, data_dir):
    folder = tmp_path / "my_domains" / "pumps"
    folder.mkdir(parents=True)
    files = guide_files()
    for name in ("domain.yaml", "features.py", "pump_failure.yaml"):
        (folder / name).write_text(files[name])
    script = folder.parent / "make_pumps.py"
    script.write_text(files["make_pumps.py"])
    monkeypatch.setenv("MLOPS_DOMAIN_PATH", str(folder.parent))
    monkeypatch.setenv("MLOPS_MODEL_SPECS", "pump_failure")
    monkeypatch.delenv("MLOPS_CLOCK_URL", raising=False)
    monkeypatch.delenv("MLOPS_SIGNING_KEY", raising=False)
    monkeypatch.setenv("DLT_DATA_DIR", str(data_dir / "dlt_global"))
    # The team's own database (one table of readings) and the clock table the local profile
    # reads time from, made by the guide's script as a reader runs it.
    made = subprocess.run(
        [sys.executable, str(script), str(data_dir / "pumps.sqlite")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "2000 rows of pump_days; clock 2023-05-16 09:00"
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
