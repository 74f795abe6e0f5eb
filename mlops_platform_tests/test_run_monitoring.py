"""Run monitoring for real: a run launched through a real instance (the repo's dagster.yaml,
its run launcher starting a worker process) is killed with SIGKILL mid-step; the monitoring
daemon's iterations mark it failed and free its `warehouse` pool slot, and the next run,
launched the same way, completes."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.monitoring import (
    execute_concurrency_slots_iteration,
    execute_run_monitoring_iteration,
)

from mlops_platform.runs.launcher import run_worker_pid
from mlops_platform.settings import PROJECT_ROOT
from mlops_platform.warehouse.pool import WAREHOUSE_POOL
from mlops_platform_tests.serving_support import wait_until

DAGSTER = str(Path(sys.executable).parent / "dagster")
MODULE = "mlops_platform_tests.run_monitoring_defs"
LOG = logging.getLogger("run-monitoring-test")


def wait_for(condition, timeout: float, what: str):
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    return wait_until(condition, what, timeout, poll=0.3)


def test_sigkilled_run_is_marked_failed_and_its_pool_slot_freed(data_dir, monkeypatch):
    home = data_dir / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    target = ModuleTarget(MODULE, None, str(PROJECT_ROOT), MODULE)

    with (
        dg.DagsterInstance.get() as instance,
        WorkspaceProcessContext(instance, target) as context,
    ):

        def launch(known: set[str]) -> str:
            """Enqueue a run with the CLI, then launch it as the queue daemon does."""
            subprocess.run(
                [DAGSTER, "job", "launch", "-m", MODULE, "-j", "hold_warehouse"],
                cwd=PROJECT_ROOT,
                check=True,
                capture_output=True,
                timeout=180,
            )
            run_id = [r.run_id for r in instance.get_runs() if r.run_id not in known][0]
            instance.launch_run(run_id, context.create_request_context())
            return run_id

        first = launch(set())
        pid = wait_for(lambda: run_worker_pid(instance, first), 120, "the worker's pid")
        wait_for(lambda: list(data_dir.glob("started-*")), 120, "the step to start")
        slots = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
        assert [c.run_id for c in slots.claimed_slots] == [first] and slots.slot_count == 1

        os.kill(pid, signal.SIGKILL)

        def first_failed():
            list(execute_run_monitoring_iteration(context, LOG))
            return instance.get_run_by_id(first).status == DagsterRunStatus.FAILURE

        wait_for(first_failed, 60, "monitoring to mark the killed run failed")
        (data_dir / "release").touch()
        second = launch({first})

        def second_done():
            # The daemon frees the slots of ended runs after `free_slots_after_run_end_seconds`.
            list(execute_concurrency_slots_iteration(context, LOG))
            return instance.get_run_by_id(second).is_finished

        wait_for(second_done, 120, "the next run to finish")
        assert instance.get_run_by_id(second).status == DagsterRunStatus.SUCCESS
        failure = instance.all_logs(first, of_type=dg.DagsterEventType.RUN_FAILURE)
        # Our launcher's health check usually gets there first; on a busy machine the code
        # server that started the worker may notice its exit first. Either way it is failed.
        message = failure[-1].dagster_event.message
        assert f"run worker process {pid} is gone" in message or (
            "marked as failed from outside the execution context" in message
        ), message
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots == []
