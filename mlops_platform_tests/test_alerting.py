"""A failed run becomes an incident record and a real webhook call naming its runbook."""

from __future__ import annotations

import dagster as dg
from fastapi import FastAPI, Request

from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.alerting.sensors import alert_on_run_failure
from mlops_platform.http_server import BackgroundServer
from mlops_platform.warehouse.resources import DuckDBWarehouse


@dg.op
def flaky() -> None:
    raise RuntimeError("evaluation_gate could not run: source unreachable")


@dg.job
def train_flight_delay():
    flaky()


def test_failed_run_raises_an_incident_and_calls_the_webhook(tmp_path):
    received = []
    hook = FastAPI()

    @hook.post("/alert")
    async def alert(request: Request) -> dict:
        received.append(await request.json())
        return {"ok": True}

    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    with BackgroundServer(hook) as server, dg.instance_for_test() as instance:
        result = train_flight_delay.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        (record,) = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        # `with`: the DuckDB warehouse holds its file open while in use, as in a daemon tick.
        with dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=record.event_log_entry.dagster_event,
            resources={
                "warehouse": warehouse,
                "alerting": AlertingResource(webhook_url=f"{server.url}/alert"),
            },
        ) as status_context:
            alert_on_run_failure(status_context.for_run_failure())

    (payload,) = received
    assert payload["job"] == "train_flight_delay" and payload["dagster_run_id"] == result.run_id
    assert payload["runbook"] == "docs/runbooks/failed-gate.md"
    assert "runbook: docs/runbooks/failed-gate.md" in payload["text"]
    incidents = warehouse.read_table("ops", "incidents")
    assert list(incidents["dagster_run_id"]) == [result.run_id]
    assert incidents["webhook"].iloc[0] == "HTTP 200"


def test_unreachable_webhook_still_records_the_incident(tmp_path):
    from mlops_platform.alerting.incidents import raise_incident
    from mlops_platform.http_server import free_port

    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    incident = raise_incident(
        warehouse,
        f"http://127.0.0.1:{free_port()}/alert",
        kind="run_failure",
        job="ingest",
        run_id="r1",
        message="contract failed",
        runbook="docs/runbooks/data-contract.md",
    )
    assert incident.webhook.startswith("failed:")
    assert len(warehouse.read_table("ops", "incidents")) == 1


def test_every_runbook_an_alert_names_exists():
    from mlops_platform.alerting.incidents import RUNBOOKS
    from mlops_platform.monitoring.triggers import decide_retrain
    from mlops_platform.settings import PROJECT_ROOT
    from mlops_platform.specs import load_spec

    for path in RUNBOOKS.values():
        assert (PROJECT_ROOT / path).read_text().startswith("# ")
    decision = decide_retrain(
        load_spec("flight_delay"), "2013-05-01", {"drift_share": 0.9}, None, None
    )
    assert (PROJECT_ROOT / decision.tags["mlops/runbook"]).exists()
