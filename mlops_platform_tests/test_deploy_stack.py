"""The production stack for real: Dagster on PostgreSQL (webserver, daemon, gRPC code location),
dagster-celery workers over RabbitMQ, the MLflow tracking server, two serving replicas behind
nginx, all started from the Procfile. One stack serves every test of this module, in order:
training (MLflow restarted under it), a rolling promotion under load, the daily cycle (daemon
restarted under it), and a backfill (a worker killed under it).

Runs in CI on the machine's PostgreSQL and RabbitMQ; elsewhere skips when they are missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from mlops_platform_tests.deploy_stack import (
    DONE,
    LOCATION,
    Stack,
    require_services,
    start_stack,
    stop_stack,
    wait_for,
)
from mlops_platform_tests.serving_support import ROW

SPEC = "flight_delay"
BACKFILL_DAYS = [f"2013-01-{day:02d}" for day in range(14, 21)]
#: The scores asset's chunk steps (`flight_delay__scores.flight_delay_score[<first>__<last>]`).
CHUNK_STEPS = f"{SPEC}__scores.{SPEC}_score["


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_services()
    started = time.monotonic()
    # MLOPS_STACK_TEST_DIR keeps the processes' logs somewhere known (debugging).
    root = os.environ.get("MLOPS_STACK_TEST_DIR")
    stack = start_stack(Path(root) if root else tmp_path_factory.mktemp("stack"))
    print(f"stack up in {time.monotonic() - started:.0f} s")
    yield stack
    stop_stack(stack, stack.database_names)


def _assert_from_code_location(stack: Stack, run_id: str) -> None:
    """Launched from the workspace: the run carries the gRPC location's origin (UI job pages,
    re-execution), like any daemon-launched run."""
    run = stack.run(run_id)
    assert run.remote_job_origin is not None
    assert run.remote_job_origin.location_name == LOCATION


def test_training_through_celery_survives_an_mlflow_restart(stack: Stack):
    # The first load into an empty warehouse can fail: the two dlt pipelines (flight_ops,
    # weather_feed) run at once on two workers and race to create dlt's tables in `raw`
    # (UniqueViolation); the daemon's run retry then loads from the failure. Wait for that.
    ingest = stack.launch("ingest")
    stack.wait_run_or_retry(ingest)
    first = stack.launch(f"train_{SPEC}")
    assert stack.wait_run(first) == "SUCCESS", stack.failures(first)
    _assert_from_code_location(stack, first)
    # The fit ran on the CPU queue's worker, the warehouse steps on the warehouse workers.
    assert {w for _, w in stack.celery_workers(first, f"{SPEC}__model")} == {
        f"cpu_1@{os.uname().nodename}"
    }
    assert {w.split("@")[0] for _, w in stack.celery_workers(first, f"{SPEC}__features")} <= {
        "warehouse_1",
        "warehouse_2",
    }
    # Artifacts went through the server (proxied), into its artifact directory.
    stored = Path(stack.config.mlops_data_dir, "mlflow-artifacts", "artifacts", SPEC)
    assert list(stored.rglob("MLmodel"))

    # Again, with the MLflow server taken down as soon as the fit starts.
    second = stack.launch(f"train_{SPEC}")
    wait_for(
        lambda: any(
            e.dagster_event.step_key == f"{SPEC}__model" for e in stack.events(second, "STEP_START")
        ),
        300,
        "the training step",
    )
    stack.supervisor.stop("mlflow")
    assert stack.wait_run(second) == "FAILURE"  # the step could not reach MLflow
    stack.supervisor.start("mlflow")

    def chain():
        return [r for r in stack.instance.get_runs() if r.root_run_id == second]

    # Retried from the failure (max_retries 2 in deploy/dagster.yaml) until one succeeds.
    wait_for(
        lambda: (
            any(r.status.value == "SUCCESS" for r in chain())
            or (len(chain()) >= 2 and all(r.status.value in DONE for r in chain()))
        ),
        480,
        "the retried training",
    )
    retried = chain()
    assert any(r.status.value == "SUCCESS" for r in retried), [r.status for r in retried]
    assert all(r.tags.get("dagster/parent_run_id") for r in retried)


def test_rolling_promotion_under_load_has_no_errors(stack: Stack):
    from mlops_platform.registry.store import CHAMPION, ModelRegistry

    config = stack.config
    registry = ModelRegistry(config.mlflow_uri, "mlflow-artifacts:/artifacts")
    current = registry.alias_version(SPEC, CHAMPION)
    versions = sorted(
        {mv.version for mv in registry.client.search_model_versions(f"name='{SPEC}'")}
    )
    target = next(v for v in versions if v != current)
    url = f"http://127.0.0.1:{config.mlops_serving_port}/predict"
    replicas = [
        f"http://127.0.0.1:{port}"
        for port in (config.mlops_serving_1_port, config.mlops_serving_2_port)
    ]

    def serving(replica: str) -> str:
        return httpx.post(f"{replica}/predict", json=ROW, timeout=10).json()["version"]

    wait_for(lambda: all(serving(r) == current for r in replicas), 60, "both replicas")
    # The replicas read the registry through nginx's read-only proxy: reads pass, writes do not.
    alias_api = f"{config.registry_readonly_uri}/api/2.0/mlflow/registered-models/alias"
    read = httpx.get(alias_api, params={"name": SPEC, "alias": CHAMPION})
    assert read.status_code == 200 and read.json()["model_version"]["version"] == current
    for method in ("POST", "DELETE"):
        write = httpx.request(method, alias_api, json={"name": SPEC, "alias": CHAMPION})
        assert write.status_code == 403, method
    assert registry.alias_version(SPEC, CHAMPION) == current
    # The load: wrk, 3 connections through nginx, until the roll is over (SIGINT: wrk stops
    # and prints its totals, non-2xx answers and socket errors included).
    script = Path(tempfile.mkdtemp(prefix="wrk_")) / "predict.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{json.dumps(ROW)}]==]\n"
    )
    logged_before = logged(config)
    load = subprocess.Popen(
        ["wrk", "-t1", "-c3", "-d600s", "-s", str(script), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Rolling: replica 1 restarts, the champion moves, replica 2 restarts; clients go on.
        stack.supervisor.restart("serving_1")
        wait_for(lambda: serving(replicas[0]), 120, "replica 1 back")
        registry.set_alias(SPEC, CHAMPION, target)
        wait_for(lambda: all(serving(r) == target for r in replicas), 60, "the new champion")
        stack.supervisor.restart("serving_2")
        wait_for(lambda: serving(replicas[1]) == target, 120, "replica 2 back")
        during = logged(config)  # the load goes on past the roll before it stops
        wait_for(lambda: logged(config) >= during + 30, 60, "load after the roll")
    finally:
        load.send_signal(signal.SIGINT)
        out, _ = load.communicate(timeout=60)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    print(f"rolling promotion (wrk, 3 connections): {total} requests, " + out.split("\n", 1)[1])
    assert total > 50, out
    assert non_2xx is None, out  # wrk prints the line only when there is one
    assert socket_errors is None, out

    # Every answered request is in the prediction log the replicas share (nothing collided),
    # and the load was answered by both champions.
    wait_for(lambda: logged(config) >= logged_before + total, 30, "every answered request logged")
    versions = _logged_versions(config)
    assert {current, target} <= versions, versions


def logged(config) -> int:
    """Rows of the prediction log the replicas share (its writers flush every 0.25 s)."""
    import pyarrow.dataset as ds

    folder = Path(config.mlops_data_dir, "serving")
    if not any(folder.rglob("*.parquet")):
        return 0
    return ds.dataset(folder, format="parquet").count_rows()


def _logged_versions(config) -> set[str]:
    import pyarrow.dataset as ds

    table = ds.dataset(Path(config.mlops_data_dir, "serving"), format="parquet").to_table(
        columns=["model_version"]
    )
    return {str(v) for v in table.column("model_version").to_pylist()}


def test_daily_cycle_survives_a_daemon_restart_without_duplicates(stack: Stack):
    import dagster as dg

    stack.set_sensor(f"daily_cycle_{SPEC}", running=True)
    cycle = {"mlops/cycle": SPEC}
    run = wait_for(
        lambda: next(
            (
                r
                for r in stack.instance.get_runs(filters=dg.RunsFilter(tags=cycle))
                if r.status == dg.DagsterRunStatus.STARTED
            ),
            None,
        ),
        300,
        "the daily run",
    )
    # Mid-cycle: the run is in flight; the daemon dies and comes back.
    stack.supervisor.kill("daemon")
    restarted = time.time()
    stack.supervisor.start("daemon")
    assert stack.wait_run(run.run_id) == "SUCCESS", stack.failures(run.run_id)
    _assert_from_code_location(stack, run.run_id)
    sensor = stack.remote_sensor(f"daily_cycle_{SPEC}")
    wait_for(
        lambda: any(
            tick.timestamp > restarted + 1
            for tick in stack.instance.get_ticks(
                sensor.get_remote_origin_id(), sensor.selector_id, limit=5
            )
        ),
        180,
        "a sensor tick after the restart",
    )
    runs = stack.instance.get_runs(filters=dg.RunsFilter(tags=cycle))
    keys = [r.tags["dagster/run_key"] for r in runs]
    assert len(keys) == len(set(keys)) == 1, keys  # resumed, and did not ask twice
    assert {w.split("@")[0] for _, w in stack.celery_workers(run.run_id, CHUNK_STEPS)}
    stack.set_sensor(f"daily_cycle_{SPEC}", running=False)


def test_backfill_runs_on_two_workers_and_survives_a_worker_kill(stack: Stack):
    """A 7-partition backfill, as the UI launches one: one run whose scoring is cut into chunk
    steps that both warehouse workers take at once; a worker killed mid-chunk has that chunk
    run by the other worker in the same run, which succeeds."""
    import dagster as dg

    backfill_id = stack.backfill([SPEC, "scores"], BACKFILL_DAYS)
    runs = wait_for(lambda: stack.backfill_runs(backfill_id), 120, "the backfill's run")
    assert len(runs) == 1  # the whole range in one run (one run process)
    run_id = runs[0].run_id

    # Kill warehouse_1 (its whole process group, as a crash would) while it is in the middle of
    # a chunk and warehouse_2 is in the middle of another: two workers at once, from the event
    # log; the killed chunk must then be handed to warehouse_2 within the same run.
    victim = None
    while victim is None:
        on_1 = stack.open_steps(run_id, CHUNK_STEPS, "warehouse_1@")
        on_2 = stack.open_steps(run_id, CHUNK_STEPS, "warehouse_2@")
        if on_1 and on_2:
            stack.supervisor.kill("worker_warehouse_1")
            if on_1[0] in stack.open_steps(run_id, CHUNK_STEPS, "warehouse_1@"):
                victim = on_1[0]
            else:  # it finished before the kill landed: try again on the next chunk
                stack.supervisor.start("worker_warehouse_1")
        elif stack.run(run_id).is_finished:
            pytest.fail("the chunks never ran on both workers at once before the run ended")
        time.sleep(0.05)
    wait_for(
        lambda: any(w.startswith("warehouse_2@") for _, w in stack.celery_workers(run_id, victim)),
        300,
        "the killed chunk on warehouse_2",
    )
    stack.supervisor.start("worker_warehouse_1")
    assert stack.wait_run(run_id) == "SUCCESS", stack.failures(run_id)
    assert stack.run(run_id).root_run_id is None  # not a re-execution: the same run
    workers = [w.split("@")[0] for _, w in stack.celery_workers(run_id, victim)]
    assert workers[0] == "warehouse_1" and workers[-1] == "warehouse_2", workers

    # Every day scored once, by the chunks the summary counted.
    scored = stack.instance.get_materialized_partitions(dg.AssetKey([SPEC, "scores"]))
    assert set(BACKFILL_DAYS) <= set(scored)
    event = stack.instance.get_latest_materialization_event(dg.AssetKey([SPEC, "scores"]))
    summary = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert summary["chunks"] == 4 and summary["days"] == 7, summary
    engine = sa.create_engine(stack.config.mlops_warehouse_url)
    try:
        with engine.connect() as conn:
            per_day = conn.execute(
                sa.text(
                    f"SELECT CAST(event_date AS DATE), count(*) FROM scores.{SPEC} "
                    "WHERE CAST(event_date AS DATE) BETWEEN :a AND :b GROUP BY 1"
                ),
                {"a": BACKFILL_DAYS[0], "b": BACKFILL_DAYS[-1]},
            ).all()
    finally:
        engine.dispose()
    assert len(per_day) == 7 and sum(n for _, n in per_day) == summary["rows"]

    # The CLI's job backfill (`dagster job backfill`, as the README shows) makes a run per
    # partition; each scores its day and succeeds.
    env = os.environ | {
        "DAGSTER_HOME": stack.config.dagster_home,
        "MLOPS_DAGSTER_PG_URL": stack.config.mlops_dagster_pg_url,
    }
    days = ["2013-01-21", "2013-01-22"]
    command = [str(Path(sys.executable).parent / "dagster"), "job", "backfill", "-w"]
    command += [str(stack.workspace), "-j", f"score_{SPEC}", "--partitions", ",".join(days)]
    subprocess.run([*command, "--noprompt"], env=env, check=True, capture_output=True, timeout=180)
    job = dg.RunsFilter(job_name=f"score_{SPEC}")
    cli_runs = wait_for(lambda: stack.instance.get_runs(filters=job) or None, 60, "the CLI's runs")
    assert sorted(r.tags["dagster/partition"] for r in cli_runs) == days
    for run in cli_runs:
        assert stack.wait_run(run.run_id) == "SUCCESS", stack.failures(run.run_id)
