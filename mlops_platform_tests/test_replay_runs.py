"""Runs the replay (and `make run`) execute in process are the UI's runs: the job page lists
them, and they re-execute from the UI, exactly as runs the daemon launched.

The workspace is the real one (`workspace.yaml`, its code location served by a gRPC server as
`make dev` serves it), the instance is the repo's `dagster.yaml` (its run launcher starts the
re-executed run's worker), and the queries are the UI's own GraphQL.
"""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from mlops_platform.settings import PROJECT_ROOT
from mlops_platform.specs import load_spec
from mlops_platform_tests.serving_support import wait_until
from simulator.domains import FLIGHTS
from simulator.replay.driver import Driver
from simulator.replay.runs import WORKSPACE, workspace_location

# What the UI's job page asks for (PipelineRunsRoot: the job's name and its repository tag).
JOB_RUNS = """
query JobRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs {
      results { runId status repositoryOrigin { repositoryLocationName repositoryName } }
    }
  }
}
"""
# The run page's "Re-execute all" button.
REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def test_a_replay_run_is_listed_on_its_job_page_and_re_executes(source_url, data_dir, monkeypatch):
    from simulator.definitions import build_simulated_definitions

    home = data_dir / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with open(home / "dagster.yaml", "a") as config:  # a bound for a hang on a busy machine
        config.write("\ncode_servers:\n  local_startup_timeout: 900\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MLOPS_MODEL_SPECS", "flight_delay")
    spec = load_spec("flight_delay")
    defs = build_simulated_definitions([spec], profile="local", partitions_until=None)

    with dg.DagsterInstance.get() as instance:
        driver = Driver(instance, defs, source_url, [spec], FLIGHTS)
        summary = driver.execute("advance_clock", tags={"mlops/replay": "test"})
        assert summary.success, summary.error
        assert FLIGHTS.now(source_url).date().isoformat() == "2013-01-02"
        run = instance.get_run_by_id(summary.run_id)
        location = workspace_location()
        assert location.label == "__repository__@mlops_platform"
        # Stored with the repository tag (`tags_for_storage`), as a daemon-launched run is.
        by_label = dg.RunsFilter(
            job_name="advance_clock", tags={".dagster/repository": location.label}
        )
        assert [r.run_id for r in instance.get_runs(filters=by_label)] == [run.run_id]
        assert run.tags["mlops/replay"] == "test"
        # Executed here on the in-process executor, as the run config says (and a re-execution
        # keeps); the console logger quiet.
        assert run.run_config["execution"] == {"config": {"in_process": {}}}

        with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(WORKSPACE)])) as process:
            context = process.create_request_context()
            served = context.get_code_location("mlops_platform").get_repository("__repository__")
            # The origin the run records is the one `make dev` serves the job from.
            assert run.remote_job_origin == served.get_full_job("advance_clock").get_remote_origin()

            listed = execute_dagster_graphql(
                context,
                JOB_RUNS,
                {
                    "filter": {
                        "pipelineName": "advance_clock",
                        "tags": [{"key": ".dagster/repository", "value": location.label}],
                    }
                },
            ).data["runsOrError"]["results"]
            assert [r["runId"] for r in listed] == [run.run_id]
            assert listed[0]["repositoryOrigin"] == {
                "repositoryLocationName": "mlops_platform",
                "repositoryName": "__repository__",
            }

            launched = execute_dagster_graphql(
                context,
                REEXECUTE,
                {"params": {"parentRunId": run.run_id, "strategy": "ALL_STEPS"}},
            ).data["launchPipelineReexecution"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            child_id = launched["run"]["runId"]
            # dagster.yaml limits concurrent runs, so the UI's launch enqueues the run; launch
            # it as the queue daemon does (the instance's run launcher starts its worker).
            assert instance.get_run_by_id(child_id).status == dg.DagsterRunStatus.QUEUED
            instance.launch_run(child_id, context)
            child = wait_until(
                lambda: (r := instance.get_run_by_id(child_id)) and r.is_finished and r,
                "the re-executed run to finish",
                timeout=180,
                poll=0.3,
            )
            assert child.status == dg.DagsterRunStatus.SUCCESS
            assert child.parent_run_id == run.run_id
            assert {r.run_id for r in instance.get_runs(filters=by_label)} == {
                run.run_id,
                child.run_id,
            }
            # It ran the job again, in its own worker: the clock moved one more day.
            assert FLIGHTS.now(source_url).date().isoformat() == "2013-01-03"


def test_held_sqlite_files_keep_every_event_and_leave_no_shard_for_a_refused_run(tmp_path):
    from simulator.replay.runs import SqliteAnchors

    @dg.op
    def one() -> int:
        return 1

    @dg.job
    def tiny():
        one()

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        anchors = SqliteAnchors(instance)
        shards = tmp_path / "history" / "runs"
        try:
            with anchors.run():
                raise ValueError("the partition key was refused")
        except ValueError:
            pass
        assert not [p for p in shards.glob("*") if not p.name.startswith("index.db")]

        for _ in range(2):  # the second run finds runs.db and index.db there, and holds them too
            with anchors.run() as run_id:
                result = tiny.execute_in_process(instance=instance, run_id=run_id)
            assert result.success and result.run_id == run_id
            stored = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            assert [e.step_key for e in stored] == ["one"]
            # The run's shard is let go after its run: the last close checkpointed it (no
            # WAL left behind); the indexes stay held, their closes by Dagster never the last.
            assert sorted(p.name for p in shards.glob(f"{run_id}*")) == [f"{run_id}.db"]
            assert (shards / "index.db-wal").exists()
            assert (tmp_path / "history" / "runs.db-wal").exists()
        anchors.close()  # let go of the indexes: checkpointed, no WAL left behind
        assert sorted(p.suffix for p in shards.glob("*")) == [".db", ".db", ".db"]
        assert not list((tmp_path / "history").glob("runs.db-*"))


def test_a_replay_runs_shard_is_the_shard_dagster_makes(tmp_path):
    """A run's shard starts as a copy of an empty shard the event storage initialised: the
    same tables, indexes, Alembic revision and WAL mode as a shard Dagster creates for a run,
    and the run's events in it."""
    import sqlite3

    from simulator.replay.runs import SqliteAnchors

    @dg.op
    def one() -> int:
        return 1

    @dg.job
    def tiny():
        one()

    def schema(run_id: str) -> tuple:
        conn = sqlite3.connect(tmp_path / "history" / "runs" / f"{run_id}.db")
        try:
            return (
                conn.execute(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
                ).fetchall(),
                conn.execute("SELECT version_num FROM alembic_version").fetchall(),
                conn.execute("PRAGMA journal_mode").fetchall(),
            )
        finally:
            conn.close()

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        own = tiny.execute_in_process(instance=instance).run_id  # Dagster's own shard
        anchors = SqliteAnchors(instance)
        copied = []
        for _ in range(2):  # the first run makes the empty shard, the second reuses it
            with anchors.run() as run_id:
                assert tiny.execute_in_process(instance=instance, run_id=run_id).success
            copied.append(run_id)
            stored = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            assert [e.step_key for e in stored] == ["one"]
        assert schema(copied[0]) == schema(copied[1]) == schema(own)
        assert schema(own)[1] and schema(own)[2] == [("wal",)]


def test_held_files_commit_without_fsync_only_inside_the_block(tmp_path):
    """Connections opened on the instance's files while a run is held commit with
    synchronous=NORMAL (WAL); the same files outside the block, and other SQLite files inside
    it, keep SQLite's default (FULL)."""
    import sqlalchemy as sa

    from simulator.replay.runs import SqliteAnchors

    def synchronous(path) -> int:
        engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            level = conn.execute(sa.text("PRAGMA synchronous")).scalar()
        engine.dispose()
        return level

    normal, full = 1, 2
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.get_runs()  # creates runs.db and index.db
        runs_db = tmp_path / "history" / "runs.db"
        index_db = tmp_path / "history" / "runs" / "index.db"
        other = tmp_path / "other.db"
        anchors = SqliteAnchors(instance)
        assert synchronous(runs_db) == full
        with anchors.run() as run_id:
            shard = tmp_path / "history" / "runs" / f"{run_id}.db"
            assert [synchronous(p) for p in (runs_db, index_db, shard)] == [normal] * 3
            assert synchronous(other) == full
        assert synchronous(runs_db) == full and synchronous(index_db) == full


def test_the_replay_freeze_hands_frozen_objects_back_to_the_collector_every_reclaim_every(
    monkeypatch,
):
    """What the replay freezes between runs and later drops in a cycle is collected at the next
    reclaim, not kept for the rest of the year (`freeze_survivors`)."""
    import gc
    import weakref

    from simulator.replay import driver

    monkeypatch.setattr(driver, "RECLAIM_EVERY", 3)
    monkeypatch.setattr(driver, "_freezes", 0)

    class Node:
        pass

    node = Node()
    node.cycle = node  # only the cyclic collector can free it
    alive = weakref.ref(node)
    try:
        driver.freeze_survivors()  # 1: alive, so frozen
        del node
        driver.freeze_survivors()  # 2: garbage now, but frozen: kept
        assert alive() is not None
        driver.freeze_survivors()  # 3: the reclaim
        assert alive() is None
    finally:
        gc.unfreeze()


def test_an_interrupted_run_is_told_from_a_failed_one(tmp_path):
    """Dagster catches a KeyboardInterrupt in an in-process run (Ctrl-C, or SIGTERM once it
    handles it as SIGINT) and records a failed run: `interrupted` tells that run from one whose
    step raised, so the replay stops instead of logging a failed day and going on."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run

    from simulator.replay.driver import interrupted

    def job_raising(error: type[BaseException] | None) -> dg.JobDefinition:
        @dg.op
        def step() -> None:
            if error is not None:
                raise error("stop")

        @dg.job(
            name=f"raises_{error.__name__ if error else 'nothing'}",
            executor_def=dg.in_process_executor,
        )
        def job():
            step()

        return job

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        seen = {}
        for error in (KeyboardInterrupt, ValueError, None):
            job = job_raising(error)
            run = instance.create_run_for_job(job_def=job)
            result = execute_run(InMemoryJob(job), run, instance, raise_on_error=False)
            seen[error] = (result.success, interrupted(result))
    assert seen[KeyboardInterrupt] == (False, True)
    assert seen[ValueError] == (False, False)
    assert seen[None] == (True, False)


def test_a_replay_asked_past_the_sources_data_stops_at_its_end_or_says_nothing_is_left():
    """`simulator quickstart` on the state a year's replay left (the clock after the data's last
    day) says so in one line instead of failing on a partition that does not exist; a loop
    reaching past the data stops at its end."""
    import datetime as dt

    from simulator.replay.replay import within_data

    end = FLIGHTS.domain.partitions.end
    assert end == dt.date(2013, 12, 31)
    after = end + dt.timedelta(days=1)
    until, note = within_data(after, after + dt.timedelta(days=14), end, FLIGHTS.label)
    assert until is None
    assert "data ends on 2013-12-31" in note and "--fresh" in note
    until, note = within_data(dt.date(2013, 12, 25), dt.date(2014, 1, 8), end, FLIGHTS.label)
    assert until == after and "the loop stops there" in note
    until, note = within_data(dt.date(2013, 3, 1), dt.date(2013, 3, 15), end, FLIGHTS.label)
    assert (until, note) == (dt.date(2013, 3, 15), "")
    assert within_data(dt.date(2013, 3, 1), dt.date(2030, 1, 1), None, "x") == (
        dt.date(2030, 1, 1),
        "",
    )


def test_the_replay_holds_the_warehouse_between_runs_and_lets_go_at_close(tmp_path):
    """Between two replay runs the DuckDB warehouse stays open in the replay's process (no
    reopen and checkpoint per run): another process cannot open it until `Driver.close`, then
    finds every run's rows."""
    import subprocess
    import sys

    import pandas as pd

    from mlops_platform.warehouse.resources import DuckDBWarehouse

    path = tmp_path / "warehouse" / "warehouse.duckdb"

    @dg.asset(required_resource_keys={"warehouse"})
    def table(context) -> None:
        context.resources.warehouse.append("s", "t", pd.DataFrame({"k": [1]}))

    defs = dg.Definitions(
        assets=[table],
        jobs=[dg.define_asset_job("write", [table])],
        resources={"warehouse": DuckDBWarehouse(path=str(path))},
    )
    opens = [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"]
    count = [
        sys.executable,
        "-c",
        f"import duckdb; print(duckdb.connect({str(path)!r}).sql('SELECT count(*) FROM s.t')"
        ".fetchall()[0][0])",
    ]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        driver = Driver(instance, defs, "", [], FLIGHTS)
        for _ in range(2):
            assert driver.execute("write").success
            held = subprocess.run(opens, capture_output=True, text=True)
            assert held.returncode != 0 and "lock" in held.stderr.lower()
        driver.close()
        found = subprocess.run(count, capture_output=True, text=True, check=True)
        assert found.stdout.strip() == "2"
        # The replay drives its runs in `with Driver(...)`: an interrupt lets go of the file too.
        with pytest.raises(KeyboardInterrupt), Driver(instance, defs, "", [], FLIGHTS) as driver:
            assert driver.execute("write").success
            raise KeyboardInterrupt
        found = subprocess.run(count, capture_output=True, text=True, check=True)
        assert found.stdout.strip() == "3"
