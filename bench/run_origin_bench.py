"""What a replay run costs beyond its own work, by the way it is started (`make bench-runs`).

The same tiny job (`advance_clock`: move the replay clock one day) is run N times each way, on
one persistent instance made from the repo's dagster.yaml:

- floor: `execute_in_process` (no code-location origin: the UI's job pages do not list it);
- the replay's path (simulator/replay/runs.py): created with the workspace's origin, executed
  here with `execute_run`;
- peer: the daemon's path, launched through the instance's run launcher from the workspace's
  code server (started once, not counted): a worker process per run.

Prints the median seconds a run, the ratios, and what the peer's per-run cost would add to the
year replay's 365 daily runs. Preparation (the source database) is not timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def report(results: dict[str, list[float]]) -> None:
    name, times = list(results.items())[-1]
    print(
        f"{name:40s} median {statistics.median(times):6.2f} s a run  ({len(times)} runs: "
        f"{', '.join(f'{t:.2f}' for t in times)})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs each in process (default 5)")
    parser.add_argument("--launched", type=int, default=3, help="runs through the launcher")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    os.environ["MLOPS_DATA_DIR"] = str(work)
    # Bounds for a hang on a busy machine (the code server's replies), not speed budgets.
    os.environ.setdefault("DAGSTER_GRPC_TIMEOUT_SECONDS", "600")
    os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
    (work / "dagster_home").mkdir()
    from mlops_platform.settings import PROJECT_ROOT

    shutil.copy(PROJECT_ROOT / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    with open(work / "dagster_home" / "dagster.yaml", "a") as config:  # busy machines
        config.write("\ncode_servers:\n  local_startup_timeout: 900\n")

    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from simulator.definitions import build_simulated_definitions
    from simulator.domains import FLIGHTS
    from simulator.replay.runs import (
        WORKSPACE,
        execute_with_origin,
        run_config_for,
        workspace_location,
    )

    url = FLIGHTS.source_url()
    FLIGHTS.create_source(url)
    job = build_simulated_definitions(partitions_until=None).resolve_job_def("advance_clock")
    location = workspace_location()
    results: dict[str, list[float]] = {}
    with dg.DagsterInstance.get() as instance:

        def floor():
            assert job.execute_in_process(instance=instance, run_config=QUIET).success

        def ours():
            assert execute_with_origin(job, instance, location, run_config=QUIET).success

        floor()  # warm: the first run of a job pays one-off imports and migrations
        results["execute_in_process (floor)"] = [timed(floor) for _ in range(args.runs)]
        report(results)
        results["replay path: origin + execute_run"] = [timed(ours) for _ in range(args.runs)]
        report(results)

        with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(WORKSPACE)])) as process:
            context = process.create_request_context()
            remote = (
                context.get_code_location(location.name)
                .get_repository(location.repository)
                .get_full_job("advance_clock")
            )

            def launched():
                run = instance.create_run_for_job(
                    job,
                    run_config=run_config_for(job, QUIET),  # in process, as the replay's
                    remote_job_origin=remote.get_remote_origin(),
                    job_code_origin=remote.get_python_origin(),
                )
                instance.launch_run(run.run_id, context)
                deadline = time.monotonic() + 600
                while not instance.get_run_by_id(run.run_id).is_finished:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"run {run.run_id} did not finish in 600 s")
                    time.sleep(0.1)
                status = instance.get_run_by_id(run.run_id).status
                assert status == dg.DagsterRunStatus.SUCCESS, status

            results["run launcher: a worker per run (peer)"] = [
                timed(launched) for _ in range(args.launched)
            ]
            report(results)

    medians = {name: statistics.median(times) for name, times in results.items()}
    floor_s, ours_s, peer_s = medians.values()
    print(
        f"replay path / floor: {ours_s / floor_s:.2f}x; peer / replay path: {peer_s / ours_s:.1f}x"
    )
    print(
        f"the peer's extra cost over the year's 365 daily runs: "
        f"{(peer_s - ours_s) * 365 / 60:.0f} min"
    )
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
