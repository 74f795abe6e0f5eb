"""The production stack for tests: started once from the Procfile on free ports, in databases of
its own on the server named by MLOPS_TEST_POSTGRES, and helpers to drive it like an operator."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_platform.deploy.config import StackConfig, with_free_ports
from mlops_platform.deploy.supervisor import Supervisor, wait_until

SERVER = os.environ.get("MLOPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = ("127.0.0.1", 5672)
LOCATION = "mlops_platform"
#: Fail fast on an unreachable MLflow (two quick tries) and let Dagster's run retry take over.
MLFLOW_CLIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
DONE = ("SUCCESS", "FAILURE", "CANCELED")
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def require_services() -> None:
    """PostgreSQL, RabbitMQ and nginx: a failure in CI, a skip (with the reason) elsewhere."""
    missing = []
    engine = sa.create_engine(SERVER)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        missing.append(f"PostgreSQL at {SERVER} ({exc.orig})")
    finally:
        engine.dispose()
    try:
        socket.create_connection(BROKER, timeout=3).close()
    except OSError as exc:
        missing.append(f"RabbitMQ at {BROKER[0]}:{BROKER[1]} ({exc})")
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        missing.append("nginx (apt-get install nginx)")
    if shutil.which("wrk") is None:
        missing.append("wrk, the load of the rolling promotion (apt-get install wrk)")
    if missing:
        message = "production stack needs: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)


def purge_queues(broker: str) -> None:
    """Empty the stack's Celery queues: a task left by an earlier, aborted stack would run on
    this stack's workers (against the other instance, in this stack's data directory)."""
    from kombu import Connection

    from mlops_platform.deploy.queues import CPU_QUEUE, WAREHOUSE_QUEUE

    with Connection(broker, connect_timeout=5) as connection:
        for name in (WAREHOUSE_QUEUE, CPU_QUEUE):
            channel = connection.channel()
            try:
                channel.queue_purge(name)
            except Exception:  # noqa: BLE001 - the queue does not exist yet: nothing to purge
                pass
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - closed by the broker's 404 already
                    pass


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(
        sa.engine.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )


def drop_databases(names: list[str]) -> None:
    engine = _admin(SERVER)
    with engine.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@dataclass
class Stack:
    config: StackConfig
    supervisor: Supervisor
    instance: object  # DagsterInstance on the stack's PostgreSQL storage
    workspace: Path

    # -- Dagster, the way the UI does it ------------------------------------------------------
    def launch(self, job: str, tags: dict | None = None) -> str:
        """Submit a run through the webserver (GraphQL): queued, then launched by the daemon
        from the gRPC code location, like a click in the UI."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.config.mlops_dagster_ui_port)
        return client.submit_job_execution(job, run_config={}, tags=tags)

    def backfill(self, asset_key: list[str], partitions: list[str]) -> str:
        """An asset backfill, as the UI's "Materialize selected" over partitions does: the
        daemon splits it into runs by the assets' backfill policy. Returns its id."""
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.config.mlops_dagster_ui_port)
        reply = client._execute(  # noqa: SLF001 - the client has no backfill method
            LAUNCH_BACKFILL,
            {
                "params": {
                    "assetSelection": [{"path": asset_key}],
                    "partitionNames": partitions,
                    "fromFailure": False,
                }
            },
        )["launchPartitionBackfill"]
        if reply["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill refused: {reply}")
        return reply["backfillId"]

    def backfill_runs(self, backfill_id: str) -> list:
        import dagster as dg

        return self.instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))

    def run(self, run_id: str):
        return self.instance.get_run_by_id(run_id)

    def wait_run(self, run_id: str, timeout: float = 420) -> str:
        status = wait_until(
            lambda: self.run(run_id).status.value in DONE and self.run(run_id).status.value,
            timeout,
            f"run {run_id}",
            every=1,
        )
        return status

    def failures(self, run_id: str) -> list[str]:
        """What failed in a run (step failures and run failure messages), for assertions."""
        found = []
        for entry in self.events(run_id):
            event = entry.dagster_event
            if event.is_failure or event.event_type_value == "RUN_FAILURE":
                found.append(f"{event.step_key}: {event.message}")
            elif event.event_type_value == "ASSET_CHECK_EVALUATION":
                check = event.event_specific_data
                if not check.passed:
                    details = {k: v.value for k, v in check.metadata.items()}
                    found.append(f"{event.step_key}: check failed {details}")
        return found

    def wait_run_or_retry(self, run_id: str, timeout: float = 600) -> str:
        """The run, or one of the daemon's automatic retries of it, that succeeded."""

        def settled():
            chain = [self.run(run_id)] + [
                r for r in self.instance.get_runs() if r.root_run_id == run_id
            ]
            won = [r.run_id for r in chain if r.status.value == "SUCCESS"]
            if won:
                return won[0]
            if len(chain) > 2 and all(r.status.value in DONE for r in chain):
                raise AssertionError([self.failures(r.run_id) for r in chain])
            return None

        return wait_until(settled, timeout, f"run {run_id} or its retries", every=1)

    def events(self, run_id: str, kind: str | None = None) -> list:
        entries = [e for e in self.instance.all_logs(run_id) if e.dagster_event is not None]
        return [e for e in entries if kind is None or e.dagster_event.event_type_value == kind]

    def celery_workers(self, run_id: str, step_key: str) -> list[tuple[float, str]]:
        """(time, worker) of every Celery execution of the step (or of every step whose key
        starts with `step_key` when it ends with `[`: a dynamic step's copies), in order."""
        found = []
        for entry in self.events(run_id, "ENGINE_EVENT"):
            event = entry.dagster_event
            metadata = event.engine_event_data.metadata if event.engine_event_data else {}
            key = event.step_key or ""
            matches = key.startswith(step_key) if step_key.endswith("[") else key == step_key
            if matches and "Celery worker" in metadata:
                found.append((entry.timestamp, metadata["Celery worker"].value))
        return found

    def _event_rows(self, sql: str, **params) -> list:
        engine = sa.create_engine(self.config.mlops_dagster_pg_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql), params))
        finally:
            engine.dispose()

    def step_starts_on(self, step_key: str, worker_prefix: str) -> list[str]:
        """Runs whose step `step_key` a worker named `worker_prefix...` started, in order
        (read straight from the event log table: cheap enough to poll every 50 ms)."""
        rows = self._event_rows(
            "SELECT run_id FROM event_logs WHERE dagster_event_type = 'ENGINE_EVENT' "
            "AND step_key = :step AND event LIKE :worker ORDER BY id",
            step=step_key,
            worker=f'%"text": "{worker_prefix}%',
        )
        return list(dict.fromkeys(row[0] for row in rows))

    def open_steps(self, run_id: str, step_prefix: str, worker_prefix: str) -> list[str]:
        """Steps of a run (keys starting with `step_prefix`) that a worker named
        `worker_prefix...` started and that have not succeeded yet, in start order."""
        started = self._event_rows(
            "SELECT step_key FROM event_logs WHERE run_id = :run AND dagster_event_type = "
            "'ENGINE_EVENT' AND starts_with(step_key, :prefix) AND event LIKE :worker ORDER BY id",
            run=run_id,
            prefix=step_prefix,
            worker=f'%"text": "{worker_prefix}%',
        )
        done = self._event_rows(
            "SELECT step_key FROM event_logs WHERE run_id = :run AND dagster_event_type = "
            "'STEP_SUCCESS' AND starts_with(step_key, :prefix)",
            run=run_id,
            prefix=step_prefix,
        )
        finished = {row[0] for row in done}
        return [key for key in dict.fromkeys(row[0] for row in started) if key not in finished]

    def finished_runs(self, step_key: str) -> set[str]:
        rows = self._event_rows(
            "SELECT run_id FROM event_logs WHERE dagster_event_type = 'STEP_SUCCESS' "
            "AND step_key = :step",
            step=step_key,
        )
        return {row[0] for row in rows}

    def remote_sensor(self, name: str):
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        with WorkspaceProcessContext(
            self.instance, WorkspaceFileTarget([str(self.workspace)])
        ) as context:
            location = context.create_request_context().get_code_location(LOCATION)
            (repository,) = location.get_repositories().values()
            return repository.get_sensor(name)

    def set_sensor(self, name: str, running: bool) -> None:
        sensor = self.remote_sensor(name)
        if running:
            self.instance.start_sensor(sensor)
        else:
            self.instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)


def start_stack(root: Path) -> Stack:
    """Databases `<test db>_stack_*`, the replay source at 2013-01-22, every Procfile process
    (the daemon last, once the cycle sensor is paused for the tests to drive)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from mlops_platform.deploy import stack as deploy_stack
    from simulator import stack as simulator_stack
    from simulator.flights import replay

    base = sa.engine.make_url(SERVER)
    names = [f"{base.database}_stack_{part}" for part in ("dagster", "mlflow", "data")]
    drop_databases(names)
    url = base.render_as_string(hide_password=False)
    at = url.rsplit("/", 1)[0]
    config = with_free_ports(
        StackConfig(
            mlops_data_dir=str(root / "data"),
            dagster_home=str(root / "dagster_home"),
            mlops_deploy_run_dir=str(root / "run"),
            mlops_dagster_pg_url=at.replace("postgresql://", "postgresql+psycopg2://", 1)
            + f"/{names[0]}",
            mlops_mlflow_backend_uri=f"{at}/{names[1]}",
            mlops_warehouse_url=f"{at}/{names[2]}",
            mlops_source_url=f"{at}/{names[2]}?options=-csearch_path%3Dsource_system",
        )
    )
    os.environ["MLOPS_DAGSTER_PG_URL"] = config.mlops_dagster_pg_url
    deploy_stack.prepare(config)
    simulator_stack.create_source(config)
    purge_queues(config.mlops_celery_broker)
    replay.set_clock(config.mlops_source_url, dt.datetime(2013, 1, 22))
    supervisor = Supervisor(config, extra_env=MLFLOW_CLIENT)
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(config.dagster_home))
    stack = Stack(config, supervisor, instance, config.run_dir / "workspace.yaml")
    try:
        supervisor.start(*(n for n in supervisor.commands if n != "daemon"))
        wait_until(lambda: all(deploy_stack.healthy(config).values()), 300, "the production stack")
        stack.set_sensor("daily_cycle_flight_delay", running=False)
        supervisor.start("daemon")
    except Exception:
        stop_stack(stack, names)
        raise
    stack.database_names = names  # type: ignore[attr-defined]
    return stack


def stop_stack(stack: Stack, names: list[str]) -> None:
    stack.supervisor.stop_all()
    stack.instance.dispose()
    drop_databases(names)


def wait_for(check, timeout: float, what: str):
    return wait_until(check, timeout, what, every=0.2)


def now() -> float:
    return time.time()
