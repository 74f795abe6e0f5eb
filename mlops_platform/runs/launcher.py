"""The local run launcher: Dagster's default one, plus a worker health check.

`DefaultRunLauncher` starts each run in its own process (through the code location's server)
but cannot tell the run-monitoring daemon whether that process is still alive, so a run whose
worker was killed (SIGKILL, OOM) stays STARTED forever and keeps its pool slots: every later
run waits on them. This launcher answers the daemon: it reads the worker's pid from the run's
own "Started process for run (pid: N)" event and checks that process. A dead worker makes the
daemon mark the run failed, and `free_slots_after_run_end_seconds` then frees its slots.

The pid is checked on the daemon's host, which is where the default launcher's code server
starts runs on the local profile; deployments that run workers elsewhere use a launcher with its
own health check (Celery, Docker, Kubernetes).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

PID_MARKER = "Started process for run (pid: "


def run_worker_pid(instance, run_id: str) -> int | None:
    """The pid the run's worker reported when it started, or None if it has not yet."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        message = record.dagster_event.message or "" if record.dagster_event else ""
        if message.startswith(PID_MARKER):
            return int(message[len(PID_MARKER) :].split(")")[0])
    return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        # A killed child not yet reaped by its parent is a zombie: dead for our purpose.
        state = stat.read_text().rsplit(")", 1)[-1].split()[0]
        return state not in {"Z", "X"}
    return True


class MonitoredRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers the run-monitoring daemon can check."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        pid = run_worker_pid(self._instance, run.run_id)
        if pid is None:
            # Not started yet (or started by another launcher): nothing to judge.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker pid not reported yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker pid {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process {pid} is gone (killed or crashed)"
        )
