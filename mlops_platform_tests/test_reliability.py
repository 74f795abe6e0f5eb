"""Reliability under load: writes that wait for DuckDB's lock (and incidents that are never
lost), and bounded outside calls. The gate's latency under load: test_gate_latency.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import dagster as dg
import pandas as pd
import pytest
from fastapi import FastAPI, Request, Response

from mlops_platform.alerting.incidents import raise_incident, spool_path, spooled_incidents
from mlops_platform.alerting.resources import AlertingResource
from mlops_platform.alerting.sensors import alert_on_run_failure
from mlops_platform.http_server import BackgroundServer
from mlops_platform.reliability import Backoff, is_lock_conflict, retry
from mlops_platform.warehouse.resources import DuckDBWarehouse
from mlops_platform_tests.serving_support import wait_until

# -- backoff -----------------------------------------------------------------------------


@pytest.mark.parametrize("total", [0.0, 0.3, 5.0, 15.0])
def test_backoff_sleeps_grow_and_never_exceed_the_total(total):
    delays = list(Backoff(first_s=0.05, factor=2.0, max_delay_s=2.0, total_s=total).delays())
    assert sum(delays) == pytest.approx(total) if total else delays == []
    assert all(d <= 2.0 for d in delays)
    assert all(b >= a * 0.79 for a, b in zip(delays[:-2], delays[1:-1], strict=True))


def test_retry_gives_up_with_the_last_error_and_never_retries_other_errors():
    calls = []

    def locked():
        calls.append(1)
        raise OSError(f"Conflicting lock is held (attempt {len(calls)})")

    with pytest.raises(OSError, match="Conflicting lock") as failure:
        retry(locked, is_lock_conflict, Backoff(first_s=0.01, total_s=0.1))
    assert len(calls) > 2 and f"attempt {len(calls)}" in str(failure.value)

    calls.clear()
    with pytest.raises(ValueError):
        retry(lambda: calls.append(1) or int("x"), is_lock_conflict, Backoff(total_s=5))
    assert len(calls) == 1


# -- DuckDB's lock held by another process ---------------------------------------------------

HOLDER = """
import duckdb, sys
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("held", flush=True)
sys.stdin.read()
conn.close()
"""


def hold_lock(path) -> subprocess.Popen:
    """Another process with a read-write connection on `path`, released when its stdin is
    closed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def while_locked(path, action, caplog):
    """`action()` run while another process holds `path`'s write lock, which is released only
    once `action` has been refused and is waiting (its retry logged): the wait is proven, and
    no sleep of the holder's can run out before `action` gets there on a busy machine."""
    holder = hold_lock(path)
    done: dict = {}

    def run() -> None:
        try:
            done["result"] = action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test
            done["error"] = exc

    worker = threading.Thread(target=run)
    try:
        with caplog.at_level("INFO", logger="mlops.reliability"):
            worker.start()
            wait_until(
                lambda: "error" in done or any("retrying" in m for m in caplog.messages),
                "the write refused by the held lock, and waiting",
            )
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        worker.join(timeout=120)
    assert not worker.is_alive(), "the write never finished after the lock was released"
    if "error" in done:
        raise done["error"]
    return done["result"]


def test_a_write_waits_for_another_process_to_release_the_lock(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("MLOPS_WAREHOUSE_LOCK_WAIT_SECONDS", "60")  # a bound for a hang
    path = tmp_path / "warehouse.duckdb"
    frame = pd.DataFrame({"n": [1]})
    while_locked(
        path, lambda: DuckDBWarehouse(path=str(path)).append("ops", "notes", frame), caplog
    )
    assert DuckDBWarehouse(path=str(path)).read_table("ops", "notes")["n"].tolist() == [1]


def test_cli_waits_for_a_step_holding_the_warehouse(data_dir, capsys, caplog, monkeypatch):
    from mlops_platform.cli import main

    monkeypatch.setenv("MLOPS_WAREHOUSE_LOCK_WAIT_SECONDS", "60")
    while_locked(data_dir / "warehouse.duckdb", lambda: main(["model", "audit"]), caplog)
    assert "no alias changes yet" in capsys.readouterr().out


@dg.op
def failing() -> None:
    raise RuntimeError("contract failed")


@dg.job
def ingest():
    failing()


def _alert_tick(instance, warehouse: DuckDBWarehouse, run_id: str) -> None:
    (record,) = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    with dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),
        dagster_event=record.event_log_entry.dagster_event,
        resources={"warehouse": warehouse, "alerting": AlertingResource()},
    ) as context:
        alert_on_run_failure(context.for_run_failure())


def test_incident_is_spooled_while_the_lock_is_held_and_flushed_by_the_next_write(
    data_dir, monkeypatch
):
    monkeypatch.setenv("MLOPS_WAREHOUSE_LOCK_WAIT_SECONDS", "0.5")
    path = data_dir / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path=str(path))
    holder = hold_lock(path)
    try:
        with dg.instance_for_test() as instance:
            result = ingest.execute_in_process(instance=instance, raise_on_error=False)
            _alert_tick(instance, warehouse, result.run_id)  # does not raise
        (spooled,) = spooled_incidents()
        assert spooled["dagster_run_id"] == result.run_id and spooled["job"] == "ingest"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    later = raise_incident(
        warehouse,
        "",
        kind="run_failure",
        job="monitor_flight_delay",
        run_id="r2",
        message="drift seen on a row with tailnum=N999ZZ",
        runbook="docs/runbooks/drift-alert.md",
    )
    assert later.stored_in == "warehouse"
    incidents = warehouse.read_table("ops", "incidents")
    assert sorted(incidents["dagster_run_id"]) == sorted([result.run_id, "r2"])
    # Classified values are masked in the incident record too.
    assert "tailnum=***" in later.message and not incidents["message"].str.contains("N999").any()
    assert spooled_incidents() == []

    # A flush that died after writing leaves the spool behind: it is not written twice.
    spool_path().write_text(incidents.head(1).to_json(orient="records", date_format="iso")[1:-1])
    raise_incident(warehouse, "", kind="k", job="j", run_id="r3", message="m", runbook="rb")
    assert len(warehouse.read_table("ops", "incidents")) == 3


# -- outside calls: webhook, PostgreSQL, MLflow ----------------------------------------------


def test_webhook_is_retried_with_backoff_until_it_answers(monkeypatch):
    from mlops_platform.alerting.incidents import post_webhook

    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_RETRIES", "3")
    replies = {"/flaky": [503, 502, 200], "/refused": [400], "/down": [503] * 10}
    seen = {path: 0 for path in replies}
    hook = FastAPI()

    @hook.post("/{name}")
    async def alert(name: str, request: Request) -> Response:
        await request.json()
        status = replies[f"/{name}"][seen[f"/{name}"]]
        seen[f"/{name}"] += 1
        return Response(status_code=status)

    with BackgroundServer(hook) as server:
        assert post_webhook(f"{server.url}/flaky", {"a": 1}) == "HTTP 200 after 3 attempts"
        assert post_webhook(f"{server.url}/refused", {"a": 1}) == "HTTP 400"
        monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_RETRIES", "2")
        gave_up = post_webhook(f"{server.url}/down", {"a": 1})
    assert gave_up == "HTTP 503 (gave up after 3 attempts)"
    assert seen == {"/flaky": 3, "/refused": 1, "/down": 3}


def test_postgres_statement_timeout_cuts_a_long_query(monkeypatch):
    import sqlalchemy as sa

    from mlops_platform.ingestion.resources import SourceDatabase
    from mlops_platform.warehouse.resources import PostgresWarehouse
    from mlops_platform_tests.test_production_profile import SERVER, _server_or_skip

    _server_or_skip()
    monkeypatch.setenv("MLOPS_PG_STATEMENT_TIMEOUT_MS", "300")
    url = f"{SERVER}?options=-csearch_path%3Dpg_catalog"
    warehouse = PostgresWarehouse(url=url)
    with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
        warehouse.query("SELECT pg_sleep(30)")
    # The URL's own options survive next to the timeout.
    assert warehouse.query("SELECT current_setting('search_path') AS p")["p"][0] == "pg_catalog"

    # The source's URL carries the bounds itself (dlt and connectorx read the URL only).
    engine = sa.create_engine(SourceDatabase(url=SERVER).database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "300ms"
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                conn.execute(sa.text("SELECT pg_sleep(30)"))
    finally:
        engine.dispose()


def test_mlflow_calls_to_a_silent_server_time_out(monkeypatch):
    from mlops_platform.registry.resources import MLflowResource

    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_MLFLOW_HTTP_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("MLOPS_MLFLOW_HTTP_MAX_RETRIES", "0")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    port = silent.getsockname()[1]
    try:
        registry = MLflowResource(tracking_uri=f"http://127.0.0.1:{port}").registry()
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)timed? ?out|timeout"):
            registry.client.search_registered_models()
        # Generous bound: MLflow's defaults (120 s, 7 retries) would wait many minutes.
        assert time.monotonic() - started < 60
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"
    finally:
        silent.close()
