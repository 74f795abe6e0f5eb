"""Replay a domain's history through the whole platform: warm-up, bootstrap champion, then the
loop. One code path for every simulated domain (simulator/domains.py): flights' 2013 day by day,
rainfall's 1978-1988 month by month.

1. Warm-up: the clock advances `step` days at a time and the `ingest` job loads each step.
2. Bootstrap: `train_<spec>` trains, gates and promotes the first champion. It is never
   retrained by hand; it is also the "static" model the report compares against.
3. The loop, one cycle period at a time (replay/driver.py): the cycle (one `daily_<spec>` run:
   ingest, features, score and monitor the period just closed) and the retraining sensor,
   exactly the definitions the daemon runs. Each cycle's line ends with the progress and an ETA.
4. The report (replay/report.py): month by month (flights) or year by year (rainfall), live
   champion vs static model, drift, retrains; saved as Markdown, CSV and a PNG under
   `<data dir>/reports/<spec>/`.

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
from simulator.domains import SimulatedDomain, simulated_for
from simulator.replay.driver import Day, Driver, RunSummary

#: What a fresh replay removes from the data dir (and it starts a fresh Dagster home).
STATE = (
    "backtest",  # the policy backtest's fits (`simulator replay --backtest` refits them all)
    "flight_ops.sqlite",
    "rainfall_station.sqlite",
    "warehouse.duckdb",
    "dlt",
    "mlflow",
    "monitoring",
    "reports",
    "serving",
)


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
    started, first = time.perf_counter(), driver.now().date()
    while (now := driver.now().date()) < until:
        driver.set_clock(dt.datetime.combine(min(now + dt.timedelta(days=step), until), dt.time()))
        run = driver.execute("ingest", tags={"mlops/replay": "warm-up"})
        loaded = run.materializations
        # Each table twice: as landed by dlt (`landing/...`), then as published past its
        # contract (`raw/...`); one part per stage.
        stages: dict[str, list[str]] = {}
        for key, meta in sorted(loaded.items()):
            if meta.get("rows_loaded"):
                stage, _, table = key.rpartition("/")
                stages.setdefault(stage, []).append(f"{table} {int(meta['rows_loaded']):,}")
        rows = "; ".join(f"{stage}: {', '.join(parts)}" for stage, parts in stages.items())
        done = (driver.now().date() - first).days / max((until - first).days, 1)
        print(
            f"  {driver.now():%Y-%m-%d}: ingest loaded {rows or 'nothing'}"
            f"  [{run.seconds:.1f} s{progress(done, time.perf_counter() - started)}]",
            flush=True,
        )
        for line in _contract_lines(run):
            print(line)


def progress(done: float, elapsed: float) -> str:
    """`, 40%, ETA 3 min` from the share done and the seconds it took (nothing when done)."""
    if not 0 < done < 1:
        return ""
    remaining = elapsed / done * (1 - done)
    eta = f"{remaining / 60:.0f} min" if remaining >= 90 else f"{remaining:.0f} s"
    return f", {done:.0%}, ETA {eta}"


def cycles_between(sim: SimulatedDomain, start: dt.datetime, until: dt.date) -> int:
    """How many loop cycles take the clock from `start` to `until`."""
    count, now, end = 0, start, dt.datetime.combine(until, dt.time())
    while now < end:
        now, count = min(sim.next_cycle(now), end), count + 1
    return count


def within_data(
    loop_start: dt.date, until: dt.date, data_end: dt.date | None, label: str
) -> tuple[dt.date | None, str]:
    """Where the loop can end: `until`, or the clock after the source's last day of data
    (`data_end`, the domain's `partitions.end`) when `until` is past it; None when the clock is
    there already (a quickstart on the state a year's replay left). With the line to print
    when `until` was cut short ("" otherwise)."""
    if data_end is None:
        return until, ""
    end = data_end + dt.timedelta(days=1)
    if loop_start >= end:
        return None, (
            f"the clock is at {loop_start}: the {label} source's data ends on {data_end}, "
            "nothing is left to replay (--fresh starts over from an empty state)"
        )
    if until > end:
        return end, f"the {label} source's data ends on {data_end}: the loop stops there"
    return until, ""


def check_partitions_reach(defs, specs, cadence: str, until: dt.date) -> None:
    """A `ValueError` if a spec's daily job has no partition for the last period the replay
    runs (definitions built with their partitions ending at the clock, not for a replay)."""
    from mlops_platform.domains.periods import period_before

    last = period_before(until, cadence)
    for spec in specs:
        partitions = defs.resolve_job_def(f"daily_{spec.name}").partitions_def
        if partitions is not None and not partitions.has_partition_key(last.key):
            keys = partitions.get_partition_keys()
            raise ValueError(
                f"daily_{spec.name} has no partition {last.key} (its partitions: "
                f"{keys[0] + '..' + keys[-1] if keys else 'none'}); a replay needs definitions "
                "built with partitions_until=None, since it moves the clock itself"
            )


def bootstrap(driver: Driver, spec) -> bool:
    from mlops_platform.domains import domain_for

    run = driver.execute(f"train_{spec.name}", tags={"mlops/replay": "bootstrap"})
    gate = run.checks.get(f"{spec.name}/model")
    if gate is None:
        print(f"  {spec.name}: bootstrap training failed before the gate (run {run.run_id[:8]})")
        return False
    meta = {k: v.value for k, v in gate.metadata.items()}
    metric = spec.gate.primary_metric
    verdict = "passed" if gate.passed else f"FAILED ({meta.get('failed_checks')})"
    print(
        f"  {spec.name} v{meta['version']}: gate {verdict} on {meta['holdout_rows']:,} held-out "
        f"{domain_for(spec).entity.plural}, holdout {metric} "
        f"{meta.get(f'holdout_{metric}', float('nan')):.4f}"
        f"  [{run.seconds:.1f} s]"
    )
    return bool(gate.passed)


def describe_day(day: Day, specs, seconds: float, cadence: str = "daily") -> str:
    """One line per cycle: what ran and what it found."""
    from mlops_platform.domains import domain_for

    parts = []
    for spec in specs:
        name = spec.name
        domain = domain_for(spec)
        event_table, entities = domain.event.table, domain.entity.plural
        daily = [r for r in day.runs if r.job == f"daily_{name}"]
        for run in daily:
            meta = run.materializations
            loaded = meta.get(f"raw/{event_table}", {}).get("rows_loaded")
            if loaded is not None:
                parts.append(f"ingest {int(loaded):,} {event_table} rows")
            for line in _contract_lines(run):
                parts.append(line.strip())
            scores = meta.get(f"{name}/scores")
            if scores:
                # a day's partition without its year (02-10), a month's without its day
                period = run.partition[5:] if cadence == "daily" else run.partition[:7]
                parts.append(
                    f"scored {period}: {int(scores['rows']):,} {entities} by "
                    f"v{scores['model_version']}"
                )
            drift = meta.get(f"{name}/drift")
            if drift and drift.get("drift_share") is not None:
                parts.append(f"drift {drift['drift_share']:.2f} ({drift.get('seconds', 0):.1f} s)")
            performance = meta.get(f"{name}/performance", {})
            metric = spec.gate.primary_metric
            if performance.get("status") == "ok":
                window = spec.drift.window_days
                parts.append(f"{window}-day {metric} {performance[metric]:.3f}")
            if not run.success:
                parts.append(f"daily run {run.run_id[:8]} FAILED ({run.error[:160] or '?'})")
        retrain = day.run_of(f"train_{name}")
        if retrain:
            gate = retrain.checks.get(f"{name}/model")
            promoted = retrain.materializations.get(f"{name}/registry", {})
            if gate is None:
                outcome = "failed before the gate"
            elif gate.passed and promoted.get("alias_changes"):
                outcome = f"gate passed -> champion v{promoted['champion_version']}"
            elif gate.passed:
                outcome = "gate passed, not promoted"
            else:
                failed = gate.metadata.get("failed_checks")
                outcome = f"gate FAILED ({failed.value if failed else '?'}) -> champion kept"
            parts.append(f"RETRAIN ({retrain.tags.get('mlops/reason', '')}): {outcome}")
    return f"  {day.day}: " + "; ".join(parts or ["nothing ran"]) + f"  [{seconds:.1f} s]"


def run_replay(
    *,
    until: dt.date | None = None,
    loop_days: int = 14,
    warmup_days: int | None = None,
    step: int | None = None,
    fresh: bool = False,
    report_name: str = "replay",
    defs=None,
    specs=None,
    instance=None,
    source_days=None,
    backtest: list[str] | None = None,
) -> int:
    """Replay until the clock reaches `until`, or for `loop_days` days of the loop when `until`
    is None (each loop cycle scores and monitors the period just closed);
    returns an exit code (non-zero if the bootstrap champion failed its gate or a cycle broke).

    The specs' domain chooses the source system, its clock and the defaults (simulator/domains.py):
    `warmup_days` (days from the source's start ingested before the bootstrap) and `step` (days
    per warm-up ingestion) default to the domain's. `defs`, `specs` and `instance` default to
    the simulator's code location (the platform on the local profile, wired to the simulator),
    the enabled specs and the persistent Dagster instance ($DAGSTER_HOME). `source_days` (a
    test's slice of the domain's data) is passed to the source's `create_source` when it is
    created here. `backtest` (`beside.backtest_command(spec)`, or any command standing in for
    it) runs beside the replay from its start, lowered (replay/beside.py); the replay waits for
    it at the end, prints its summary after its own report and adds it to the saved one; a
    failed backtest makes the exit code non-zero."""
    if backtest and report_name == "backtest":  # its files would overwrite the backtest's own
        raise ValueError("--report-name backtest is the backtest's: name the replay's another")
    started = time.perf_counter()
    if fresh:
        if instance is not None:
            raise ValueError("fresh=True starts a fresh Dagster home: pass no instance")
        home = Path(os.environ["DAGSTER_HOME"])
        print(f"starting from a clean state: removing {', '.join(STATE)} and the Dagster home")
        reset_state(home)
    from mlops_platform.specs import enabled_specs

    specs = specs or enabled_specs()
    beside = None
    if backtest:
        if len(specs) != 1:
            raise ValueError(f"a backtest beside the replay takes one spec, not {len(specs)}")
        from simulator.replay import beside as side

        beside = side.start(
            f"the {specs[0].name} policy backtest", backtest, data_dir() / "reports" / specs[0].name
        )
        print(
            f"the {specs[0].name} policy backtest runs beside the replay at low priority "
            f"(pid {beside.process.pid}, log {beside.log})"
        )
    try:
        status, saved = _replay(
            until=until,
            loop_days=loop_days,
            warmup_days=warmup_days,
            step=step,
            fresh=fresh,
            report_name=report_name,
            defs=defs,
            specs=specs,
            instance=instance,
            source_days=source_days,
            started=started,
        )
        if beside is not None:
            if saved is None:
                beside.stop()
                print(f"\n{beside.name} stopped: the replay ended before its report")
            else:
                code, summary = beside.finish()
                status = status or code
                if summary:
                    add_to_report(saved[specs[0].name], summary)
    finally:
        if beside is not None:
            beside.stop()
    if saved is not None:
        if beside is not None:
            print(f"\nreplay and backtest: {(time.perf_counter() - started) / 60:.1f} min")
        print("\nwhere to look:")
        print("  make dev          -> Dagster UI, http://127.0.0.1:3000 (runs, assets, checks)")
        print("  make mlflow       -> MLflow UI, http://127.0.0.1:5000 (runs, versions, aliases)")
        print("  uv run mlops model status | audit | rollback --reason ...")
        print("  uv run mlops quarantine list")
    return status


def add_to_report(paths: dict[str, Path], summary: str) -> None:
    """The backtest's summary (its table and target lines) appended to the replay's saved
    Markdown report, with links to the backtest's own report and plot beside it."""
    with paths["markdown"].open("a") as report:
        report.write(
            "\n## The policy backtest of the same period\n\n"
            "Six retraining policies walked offline over the same days beside the replay "
            "(`simulator backtest`): [backtest.md](backtest.md), [backtest.png](backtest.png), "
            "[the log](backtest.log).\n\n```text\n" + summary.rstrip() + "\n```\n"
        )


def _replay(
    *,
    until,
    loop_days,
    warmup_days,
    step,
    fresh,
    report_name,
    defs,
    specs,
    instance,
    source_days,
    started,
) -> tuple[int, dict[str, dict[str, Path]] | None]:
    """The replay of `run_replay` after the reset: (exit code, each spec's saved report paths,
    or None when it ended before the report)."""
    import dagster as dg

    from mlops_platform.registry.store import CHAMPION
    from simulator.replay.report import build_report

    # dlt's notes on arrow schema hints are for developers; the UI keeps the full logs.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    sim = simulated_for(specs)
    if defs is None:
        from simulator.definitions import build_simulated_definitions

        # The replay moves the clock itself: its partitions are not bounded by the clock at
        # load (each cycle's period exists when the cycle runs it).
        defs = build_simulated_definitions(specs, profile="local", partitions_until=None)
    instance = instance or dg.DagsterInstance.get()
    resources = dict(defs.resources)
    source_url = resources[sim.resource].database_url
    warehouse = resources["warehouse"]
    registry = resources["mlflow_registry"].registry()
    if not fresh:
        remove_interrupted_runs(instance)
    try:
        clock = sim.now(source_url).date()
    except RuntimeError:
        print(f"creating the {sim.label} source database ({sim.source_module}) ...")
        if source_days is None:
            clock = sim.create_source(source_url).now.date()
        else:
            clock = sim.module.create_source(source_url, days=source_days).now.date()
    # Closed however the loop ends (an error, Ctrl-C): what it holds open is let go.
    with Driver(instance, defs, source_url, specs, sim, freeze_between_runs=True) as driver:
        warmup_until = sim.warmup_end(warmup_days)
        step = step or sim.warmup_step
        if clock < warmup_until:
            print(f"warm-up: ingesting {clock} .. {warmup_until} in steps of {step} days")
            warm_up(driver, warmup_until, step)
        status = 0
        for spec in specs:
            if registry.alias_version(spec.name, CHAMPION) is None:
                print(f"bootstrap: training the first {spec.name} champion")
                if not bootstrap(driver, spec):
                    return 1, None
        loop_start = driver.now().date()
        until, note = within_data(
            loop_start,
            until or loop_start + dt.timedelta(days=loop_days),
            sim.domain.partitions.end,
            sim.label,
        )
        if until is None:
            print(f"\n{note}")
            return 0, None
        if note:
            print(f"\n{note}")
        if until <= loop_start:
            print(
                f"\nthe clock is at {loop_start}, already past {until}: nothing to replay "
                "(--fresh starts over from an empty state)"
            )
            return 0, None
        check_partitions_reach(defs, specs, sim.cadence, until)
        period = {"daily": "day by day", "monthly": "month by month"}.get(sim.cadence, sim.cadence)
        total_cycles = cycles_between(sim, driver.now(), until)
        print(
            f"\nthe loop, {period} from {loop_start} to {until}, {total_cycles} cycles (the "
            "Dagster sensors daily_cycle_* and retrain_*, executed in process):"
        )
        cycle_seconds: list[float] = []
        # CPU seconds of this process (all its threads) a cycle: on a shared machine the wall time
        # also counts other processes' turns, the CPU time only the cycle's own work.
        cycle_cpu: list[float] = []
        while driver.now().date() < until:
            tick, cpu = time.perf_counter(), time.process_time()
            day = driver.run_cycle(until)
            cycle_seconds.append(time.perf_counter() - tick)
            cycle_cpu.append(time.process_time() - cpu)
            line = describe_day(day, specs, cycle_seconds[-1], sim.cadence)
            eta = progress(len(cycle_seconds) / total_cycles, sum(cycle_seconds))
            print(f"{line[:-1]}, cpu {cycle_cpu[-1]:.1f} s{eta}]", flush=True)
            if not any(r.success for r in day.runs if r.job.startswith("daily_")):
                status = 1  # the cycle never completed (a retried contract failure still completes)

    total = time.perf_counter() - started
    first_scored = loop_start - dt.timedelta(days=1)
    last_scored = until - dt.timedelta(days=1)
    saved: dict[str, dict[str, Path]] = {}
    for spec in specs:
        report = build_report(
            instance, warehouse, registry, spec, first_scored, last_scored, by=sim.report_by
        )
        paths = saved[spec.name] = report.save(data_dir() / "reports" / spec.name, report_name)
        by = sim.report_by
        print(f"\n{spec.name}, {by} by {by} (static model: v{report.static_version}):")
        print(report.table())
        if report.retrains:
            print("\nretrains:")
            print(report.retrain_table())
        drift_seconds = report.daily["drift_seconds"].dropna()
        if len(drift_seconds):
            print(
                f"\n{sim.cadence} drift check: median {drift_seconds.median():.2f} s, "
                f"max {drift_seconds.max():.2f} s over {len(drift_seconds)} cycles"
            )
        print("saved: " + ", ".join(str(p) for p in paths.values()))
        print(f"champion now: v{registry.alias_version(spec.name, CHAMPION)}")
    if cycle_seconds:
        unit = {"daily": "day", "monthly": "month"}.get(sim.cadence, "cycle")
        print(
            f"\n{len(cycle_seconds)} loop cycles in {sum(cycle_seconds) / 60:.1f} min "
            f"(median {sorted(cycle_seconds)[len(cycle_seconds) // 2]:.1f} s a {unit}, CPU "
            f"{sorted(cycle_cpu)[len(cycle_cpu) // 2]:.1f} s); whole replay {total / 60:.1f} min"
        )
    return status, saved
